//! `$filter`, `$orderby` and `$select` over an entity's rows.
//!
//! "Open Data Protocol (OData)", learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata,
//! "Filter details": the operators are eq, ne, gt, ge, lt, le, and, or, not, the arithmetic
//! ones and grouping; "Contains" is written as a wildcard inside an `eq` string
//! (`StringField eq '*retail*'`); "The operators 'has' and 'in' are not supported"; enum values
//! are written `Microsoft.Dynamics.DataEntities.NoYes'Yes'` and take only eq and ne.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::entities::{Entity, Kind};
use super::{FnoError, NAMESPACE};

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Enum(String),
    DateTime(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Cmp(String, &'static str, Lit),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Str(String),
}

fn tokens(text: &str) -> Result<Vec<Tok>, FnoError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '\'' {
            let (s, next) = quoted(&chars, i)?;
            out.push(Tok::Str(s));
            i = next;
        } else {
            let start = i;
            let mut enum_value = None;
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')') {
                if chars[i] == '\'' {
                    // An enum literal: Namespace.Type'Value'.
                    let (value, next) = quoted(&chars, i)?;
                    enum_value = Some((i, value));
                    i = next;
                    break;
                }
                i += 1;
            }
            match enum_value {
                Some((end, value)) => {
                    let name: String = chars[start..end].iter().collect();
                    out.push(Tok::Word(format!("{name}'{value}'")));
                }
                None => out.push(Tok::Word(chars[start..i].iter().collect())),
            }
        }
    }
    Ok(out)
}

/// A single-quoted string starting at `at` (`''` is a quote); the index after it.
fn quoted(chars: &[char], at: usize) -> Result<(String, usize), FnoError> {
    let mut s = String::new();
    let mut i = at + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(FnoError::bad_query(
                    "$filter",
                    "a string literal is not closed",
                ));
            }
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((s, i + 1)),
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    entity: &'a Entity,
}

impl Parser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Word(w)) if w == word)
    }

    fn or(&mut self) -> Result<Filter, FnoError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FnoError> {
        let mut left = self.not()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Filter, FnoError> {
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, FnoError> {
        match self.toks.get(self.at).cloned() {
            Some(Tok::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.toks.get(self.at) != Some(&Tok::Close) {
                    return Err(FnoError::bad_query("$filter", "a '(' is not closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Tok::Word(field)) => {
                self.at += 1;
                if matches!(self.toks.get(self.at), Some(Tok::Open)) {
                    return Err(FnoError::not_emulated(&format!(
                        "the $filter function {field}() (write contains as a wildcard: Field eq '*text*')"
                    )));
                }
                let Some(kind) = self.entity.kind(&field) else {
                    return Err(FnoError::bad_query(
                        "$filter",
                        &format!(
                            "Could not find a property named '{field}' on type '{NAMESPACE}.{}'.",
                            self.entity.type_name
                        ),
                    ));
                };
                let op = match self.toks.get(self.at) {
                    Some(Tok::Word(w)) => w.clone(),
                    _ => return Err(FnoError::bad_query("$filter", "an operator is missing")),
                };
                self.at += 1;
                let op: &'static str = match op.as_str() {
                    "eq" => "eq",
                    "ne" => "ne",
                    "gt" => "gt",
                    "ge" => "ge",
                    "lt" => "lt",
                    "le" => "le",
                    "has" | "in" => {
                        return Err(FnoError::bad_query(
                            "$filter",
                            &format!("The operator '{op}' is not supported."),
                        ));
                    }
                    "add" | "sub" | "mul" | "div" | "divby" | "mod" => {
                        return Err(FnoError::not_emulated(&format!(
                            "the arithmetic operator '{op}' in $filter"
                        )));
                    }
                    other => {
                        return Err(FnoError::bad_query(
                            "$filter",
                            &format!("'{other}' is not an operator."),
                        ));
                    }
                };
                let lit = match self.toks.get(self.at).cloned() {
                    Some(Tok::Str(s)) => Lit::Str(s),
                    Some(Tok::Word(w)) => literal(&w)?,
                    _ => return Err(FnoError::bad_query("$filter", "a value is missing")),
                };
                self.at += 1;
                let lit = check_literal(&field, kind, op, lit)?;
                Ok(Filter::Cmp(field, op, lit))
            }
            _ => Err(FnoError::bad_query("$filter", "a condition is missing")),
        }
    }
}

fn literal(word: &str) -> Result<Lit, FnoError> {
    if word == "null" {
        return Ok(Lit::Null);
    }
    if word == "true" || word == "false" {
        return Ok(Lit::Bool(word == "true"));
    }
    if let Some(rest) = word.strip_prefix(&format!("{NAMESPACE}.")) {
        let (_, value) = rest.split_once('\'').unwrap_or((rest, ""));
        return Ok(Lit::Enum(value.trim_end_matches('\'').to_string()));
    }
    if word.contains('T') && word.contains('-') {
        return crate::datetime::parse_iso(word)
            .map(Lit::DateTime)
            .ok_or_else(|| {
                FnoError::bad_query("$filter", &format!("'{word}' is not a date and time"))
            });
    }
    word.parse::<f64>()
        .map(Lit::Num)
        .map_err(|_| FnoError::bad_query("$filter", &format!("'{word}' is not a value")))
}

/// The literal against the field's type: enums take only eq/ne with an enum literal.
fn check_literal(field: &str, kind: Kind, op: &str, lit: Lit) -> Result<Lit, FnoError> {
    let fits = matches!(
        (kind, &lit),
        (_, Lit::Null)
            | (Kind::Str, Lit::Str(_))
            | (Kind::Decimal | Kind::Int, Lit::Num(_))
            | (Kind::DateTime, Lit::DateTime(_))
            | (Kind::Enum(_), Lit::Enum(_))
    );
    if !fits {
        return Err(FnoError::bad_query(
            "$filter",
            &format!(
                "the value compared with '{field}' is not of its type ({})",
                kind.edm()
            ),
        ));
    }
    if matches!(kind, Kind::Enum(_)) && !matches!(op, "eq" | "ne") {
        return Err(FnoError::bad_query(
            "$filter",
            &format!("the enum field '{field}' takes only eq and ne"),
        ));
    }
    Ok(lit)
}

pub fn parse_filter(text: &str, entity: &Entity) -> Result<Filter, FnoError> {
    let mut p = Parser {
        toks: tokens(text)?,
        at: 0,
        entity,
    };
    let f = p.or()?;
    if p.at != p.toks.len() {
        return Err(FnoError::bad_query(
            "$filter",
            "unexpected text after the condition",
        ));
    }
    Ok(f)
}

/// `*` in an eq string matches any run of characters (the doc's wildcard "Contains").
fn wildcard(pattern: &str, text: &str) -> bool {
    let p = pattern.to_lowercase();
    let t = text.to_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

fn compare(value: &Value, lit: &Lit) -> Option<Ordering> {
    match (value, lit) {
        (Value::String(s), Lit::Str(l)) | (Value::String(s), Lit::Enum(l)) => {
            Some(s.to_lowercase().cmp(&l.to_lowercase()))
        }
        (Value::String(s), Lit::DateTime(l)) => crate::datetime::parse_iso(s).map(|v| v.cmp(l)),
        (Value::Number(n), Lit::Num(l)) => n.as_f64().and_then(|v| v.partial_cmp(l)),
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        _ => None,
    }
}

pub fn matches(filter: &Filter, row: &Map<String, Value>) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, row) && matches(b, row),
        Filter::Or(a, b) => matches(a, row) || matches(b, row),
        Filter::Not(a) => !matches(a, row),
        Filter::Cmp(field, op, lit) => {
            let value = row.get(field).unwrap_or(&Value::Null);
            if *lit == Lit::Null {
                let null = value.is_null();
                return if *op == "ne" {
                    !null
                } else {
                    null && *op == "eq"
                };
            }
            if let (Value::String(s), Lit::Str(p), "eq" | "ne") = (value, lit, *op)
                && p.contains('*')
            {
                return wildcard(p, s) == (*op == "eq");
            }
            let Some(ord) = compare(value, lit) else {
                return *op == "ne";
            };
            match *op {
                "eq" => ord == Ordering::Equal,
                "ne" => ord != Ordering::Equal,
                "gt" => ord == Ordering::Greater,
                "ge" => ord != Ordering::Less,
                "lt" => ord == Ordering::Less,
                _ => ord != Ordering::Greater,
            }
        }
    }
}

/// `$orderby`: fields with `asc` or `desc`.
pub fn parse_orderby(text: &str, entity: &Entity) -> Result<Vec<(String, bool)>, FnoError> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let mut words = item.split_whitespace();
        let field = words.next().unwrap_or_default();
        if entity.kind(field).is_none() {
            return Err(FnoError::bad_query(
                "$orderby",
                &format!(
                    "Could not find a property named '{field}' on type '{NAMESPACE}.{}'.",
                    entity.type_name
                ),
            ));
        }
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(FnoError::bad_query(
                    "$orderby",
                    &format!("'{other}' is not asc or desc"),
                ));
            }
        };
        out.push((field.to_string(), desc));
    }
    Ok(out)
}

pub fn order(a: &Map<String, Value>, b: &Map<String, Value>, by: &[(String, bool)]) -> Ordering {
    for (field, desc) in by {
        let (x, y) = (a.get(field), b.get(field));
        let ord = match (x, y) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (None | Some(Value::Null), Some(v)) if !v.is_null() => Ordering::Less,
            (Some(v), None | Some(Value::Null)) if !v.is_null() => Ordering::Greater,
            _ => Ordering::Equal,
        };
        let ord = if *desc { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// `$select`: the listed fields, each one of the entity's.
pub fn parse_select(text: &str, entity: &Entity) -> Result<Vec<String>, FnoError> {
    text.split(',')
        .map(str::trim)
        .map(|f| {
            if entity.kind(f).is_some() {
                Ok(f.to_string())
            } else {
                Err(FnoError::bad_query(
                    "$select",
                    &format!(
                        "Could not find a property named '{f}' on type '{NAMESPACE}.{}'.",
                        entity.type_name
                    ),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_enums_filter_as_documented() {
        let e = super::super::entities::by_set("ReleasedProductsV2").unwrap();
        let row: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "ProductName": "Speaker", "ProductType": "Item", "SalesPrice": 25.0
        }))
        .unwrap();
        for (f, want) in [
            ("ProductName eq '*eak*'", true),
            ("ProductName eq 'Spe*'", true),
            ("ProductName eq '*x*'", false),
            (
                "ProductType eq Microsoft.Dynamics.DataEntities.EcoResProductType'Item'",
                true,
            ),
            ("SalesPrice gt 20 and not (ProductName eq 'Cable')", true),
            ("SalesPrice lt 20 or ProductName ne 'Speaker'", false),
        ] {
            assert_eq!(matches(&parse_filter(f, e).unwrap(), &row), want, "{f}");
        }
        assert_eq!(
            parse_filter("ProductName in ('a')", e).unwrap_err().status,
            400
        );
        assert_eq!(
            parse_filter("contains(ProductName,'a')", e)
                .unwrap_err()
                .status,
            501
        );
        assert_eq!(parse_filter("Nope eq 1", e).unwrap_err().status, 400);
    }
}
