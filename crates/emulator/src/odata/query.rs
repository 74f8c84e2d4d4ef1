//! System query options (`$select`, `$filter`, `$orderby`, `$top`, `$count`, `$expand`,
//! `$skiptoken`). The `Prefer` header is in `wire.rs`.

use std::collections::HashMap;

use crate::error::DvError;
use crate::odata::filter::{self, Expr};

/// Percent-decodes a query component, treating `+` as a space (form encoding).
pub fn decode_component(s: &str) -> String {
    let replaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&replaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Splits a raw query string into decoded `(name, value)` pairs, in order.
pub fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_component(k), decode_component(v)),
            None => (decode_component(p), String::new()),
        })
        .collect()
}

/// One `$orderby` item.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub property: String,
    pub descending: bool,
}

/// One `$expand` item with its nested options.
#[derive(Debug, Clone, PartialEq)]
pub struct Expand {
    pub nav: String,
    pub is_ref: bool,
    pub options: QueryOptions,
}

/// Parsed query options of one request (or of one `$expand` item).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOptions {
    pub select: Option<Vec<String>>,
    pub filter: Option<Expr>,
    pub filter_text: Option<String>,
    pub orderby: Vec<OrderBy>,
    pub top: Option<usize>,
    pub count: bool,
    pub expand: Vec<Expand>,
    pub skiptoken: Option<String>,
    /// `$deltatoken` of a change-tracking delta link.
    pub deltatoken: Option<String>,
    /// Non-system parameters (`@p1` aliases, function parameters, `$id`).
    pub params: HashMap<String, String>,
}

impl QueryOptions {
    /// Parses the raw query string of a request.
    pub fn parse(raw: &str) -> Result<QueryOptions, DvError> {
        let pairs = parse_pairs(raw);
        let params: HashMap<String, String> = pairs
            .iter()
            .filter(|(k, _)| !k.starts_with('$'))
            .cloned()
            .collect();
        let mut q = QueryOptions {
            params,
            ..Default::default()
        };
        for (k, v) in &pairs {
            q.apply(k, v, false)?;
        }
        Ok(q)
    }

    fn apply(&mut self, key: &str, value: &str, nested: bool) -> Result<(), DvError> {
        match key {
            "$select" => {
                self.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "$filter" => {
                let params = self.params.clone();
                let lookup = move |alias: &str| params.get(alias).cloned();
                let expr =
                    filter::parse(value, &lookup).map_err(|e| e.into_dv_error(|text| text))?;
                self.filter = Some(expr);
                self.filter_text = Some(value.to_string());
            }
            "$orderby" => {
                self.orderby.clear();
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let mut parts = item.split_whitespace();
                    let mut prop = parts.next().unwrap_or_default().to_string();
                    if prop.starts_with('@')
                        && let Some(p) = self.params.get(&prop)
                    {
                        prop = p.clone();
                    }
                    let descending = match parts.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => {
                            return Err(DvError::bad_request(format!(
                                "Syntax error at position {} in '{value}'. '{other}' is not 'asc' or 'desc'.",
                                value.find(other).unwrap_or(0)
                            )));
                        }
                    };
                    self.orderby.push(OrderBy {
                        property: prop,
                        descending,
                    });
                }
            }
            "$top" => {
                let n: i64 = value.trim().parse().map_err(|_| {
                    DvError::bad_request(format!(
                        "Invalid value '{value}' for $top query option found. The $top query option requires a non-negative integer value."
                    ))
                })?;
                if n < 0 {
                    return Err(DvError::bad_request(format!(
                        "Invalid value '{value}' for $top query option found. The $top query option requires a non-negative integer value."
                    )));
                }
                self.top = Some(n as usize);
            }
            "$count" => {
                self.count = match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(DvError::bad_request(format!(
                            "'{value}' is not a valid count option."
                        )));
                    }
                }
            }
            "$expand" => {
                self.expand = parse_expand(value, &self.params)?;
            }
            "$skiptoken" if !nested => self.skiptoken = Some(value.to_string()),
            "$deltatoken" if !nested => self.deltatoken = Some(value.to_string()),
            "$id" if !nested => {}
            "$skip" | "$search" | "$format" | "$levels" => {
                return Err(DvError::bad_request(format!(
                    "The query parameter {key} is not supported"
                )));
            }
            "$apply" => {
                return Err(DvError::new(
                    501,
                    crate::error::ODATA_ERROR,
                    "The query parameter $apply is not supported by the emulator.",
                ));
            }
            k if k.starts_with('$') => {
                return Err(DvError::bad_request(format!(
                    "The query parameter '{k}' is not supported."
                )));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Splits on `sep` at nesting depth zero, outside single-quoted literals.
pub fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_expand(value: &str, params: &HashMap<String, String>) -> Result<Vec<Expand>, DvError> {
    let mut out = Vec::new();
    for item in split_top(value, ',')
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (head, inner) = match item.find('(') {
            Some(i) if item.ends_with(')') => (&item[..i], Some(&item[i + 1..item.len() - 1])),
            Some(_) => {
                return Err(DvError::bad_request(format!(
                    "Syntax error in $expand: unbalanced parentheses in '{item}'."
                )));
            }
            None => (item, None),
        };
        let (nav, is_ref) = match head.strip_suffix("/$ref") {
            Some(n) => (n.trim(), true),
            None => (head.trim(), false),
        };
        let mut options = QueryOptions {
            params: params.clone(),
            ..Default::default()
        };
        if let Some(inner) = inner {
            for opt in split_top(inner, ';')
                .into_iter()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let (k, v) = opt.split_once('=').ok_or_else(|| {
                    DvError::bad_request(format!("Syntax error in $expand option '{opt}'."))
                })?;
                if matches!(k.trim(), "$skip" | "$count" | "$search" | "$levels") {
                    return Err(DvError::bad_request(format!(
                        "The query option {} is not supported inside $expand.",
                        k.trim()
                    )));
                }
                options.apply(k.trim(), v, true)?;
            }
        }
        out.push(Expand {
            nav: nav.to_string(),
            is_ref,
            options,
        });
    }
    if out.len() > 15 {
        return Err(DvError::bad_request(
            "Number of link entities in query exceeded maximum limit.",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_and_plain_option_names_are_equivalent() {
        let a = QueryOptions::parse("%24select=name,revenue&%24filter=revenue%20gt%200&%24top=5")
            .unwrap();
        let b = QueryOptions::parse("$select=name,revenue&$filter=revenue+gt+0&$top=5").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.select.as_deref(),
            Some(&["name".to_string(), "revenue".to_string()][..])
        );
        assert_eq!(a.top, Some(5));
    }

    #[test]
    fn nested_expand_options_parse() {
        let q = QueryOptions::parse("$expand=primarycontactid($select=fullname,emailaddress1),Account_Tasks($select=subject;$filter=contains(subject,'a,b');$orderby=createdon desc;$top=2)").unwrap();
        assert_eq!(q.expand.len(), 2);
        assert_eq!(q.expand[0].nav, "primarycontactid");
        assert_eq!(q.expand[0].options.select.as_ref().map(Vec::len), Some(2));
        assert_eq!(q.expand[1].options.top, Some(2));
        assert!(q.expand[1].options.orderby[0].descending);
    }

    #[test]
    fn unsupported_options_are_rejected() {
        assert_eq!(QueryOptions::parse("$skip=10").unwrap_err().status, 400);
        assert_eq!(QueryOptions::parse("$top=-1").unwrap_err().status, 400);
        assert_eq!(
            QueryOptions::parse("$filter=name eq").unwrap_err().status,
            400
        );
    }
}
