//! Dataverse search 2.0: the `searchquery`, `searchsuggest` and `searchautocomplete` actions and
//! the `searchstatus` and `searchstatistics` functions of the Web API, also served at
//! `/api/search/v2.0/{query,suggest,autocomplete,status,statistics}` ("The request parameters and
//! the response ... are the same as the Web API. Only the URL is different.").
//!
//! Pages: "Dataverse Search query" (learn.microsoft.com/power-apps/developer/data-platform/search/query),
//! "... suggest" (.../search/suggest), "... autocomplete" (.../search/autocomplete) and
//! "... statistics and status" (.../search/statistics-status).
//!
//! Each answer is `{"@odata.context": ..., "response": "<JSON text>"}`; the text of a query holds
//! `Error`, `Value` (each result with `Id`, `EntityName`, `ObjectTypeCode`, `Attributes` with
//! `@search.objecttypecode`, `Highlights` with `{crmhit}`…`{/crmhit}` around the hits, `Score`),
//! `Facets`, `QueryContext` and `Count` (-1 unless `count` is true).
//!
//! What is emulated: the simple query syntax (`+` and, `|` or, `-` not, parentheses, trailing
//! `*` wildcards, quoted phrases, `\` escapes) matched word by word, case-insensitively, over the
//! searched text columns, with `searchmode` any (the default) or all; a score that counts the
//! hits; `entities` (`name`, `selectColumns`, `searchColumns`, `filter`), the top-level `filter`
//! (the `$filter` subset the rest of the emulator runs), `orderby`, `top` (default 50, at most
//! 100) and `skip`, `count`, and facets by value with `count` and `sort`. What is not answers
//! 501 naming it: the Lucene syntax (`querytype: lucene`), fuzzy matching, best-effort search,
//! group ranking, advanced suggest, and range facets (`values`, `interval`). The legacy 1.0
//! endpoints (`/api/search/v1.0/...`, .../search/legacy) answer 501 too.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::error::DvError;
use crate::odata::eval::Filter;
use crate::odata::filter;
use crate::odata::path::Segment;
use crate::render;
use crate::schema::{AttrKind, Entity, TableId};
use crate::store::{Row, Store, Val};
use crate::wire::{Req, Resp};

/// The tables enabled for search in the emulator's environment (what `searchstatus` lists).
pub const SEARCHABLE: &[&str] = &[
    "account",
    "contact",
    "lead",
    "opportunity",
    "product",
    "salesorder",
    "task",
    "new_project",
];

/// The longest search term ("Search term ... has a 100 character limit").
const MAX_SEARCH_LEN: usize = 100;
/// `top` of a query: 50 by default, at most 100 ("skip and top parameters").
const DEFAULT_TOP: u64 = 50;
const MAX_TOP: u64 = 100;
/// `top` of suggest: 5 by default ("top parameter").
const DEFAULT_SUGGEST_TOP: u64 = 5;

/// The Web API names of the operations, and their 2.0 endpoint names.
const OPERATIONS: &[(&str, &str)] = &[
    ("searchquery", "query"),
    ("searchsuggest", "suggest"),
    ("searchautocomplete", "autocomplete"),
    ("searchstatus", "status"),
    ("searchstatistics", "statistics"),
];

/// The Web API path (below the version) a search endpoint path stands for:
/// `/api/search/v2.0/query` is `searchquery`. The legacy 1.0 endpoints, and any other version,
/// are refused with 501.
pub fn endpoint(path: &str) -> Option<Result<String, DvError>> {
    let rest = path.strip_prefix("/api/search/")?;
    let (version, op) = rest.split_once('/').unwrap_or((rest, ""));
    if version != "v2.0" {
        return Some(Err(DvError::not_implemented(format_args!(
            "the Dataverse search endpoint /api/search/{version} (only v2.0 is emulated; the legacy v1.0 is at learn.microsoft.com/power-apps/developer/data-platform/search/legacy)"
        ))));
    }
    let op = op.trim_matches('/');
    Some(
        OPERATIONS
            .iter()
            .find(|(_, short)| *short == op)
            .map(|(name, _)| format!("v9.2/{name}"))
            .ok_or_else(|| DvError::segment_not_found(op)),
    )
}

/// Answers a search operation called at the root of the Web API, or `None` when the path names
/// none.
pub fn handle(store: &Store, req: &Req, segs: &[Segment]) -> Option<Result<Resp, DvError>> {
    let [seg] = segs else {
        return None;
    };
    if seg.key.as_deref().is_some_and(|k| !k.is_empty()) {
        return None;
    }
    let name = seg
        .name
        .strip_prefix(crate::messages::NAMESPACE)
        .unwrap_or(&seg.name);
    let (name, _) = OPERATIONS.iter().find(|(n, _)| *n == name)?;
    let is_function = matches!(*name, "searchstatus" | "searchstatistics");
    Some((|| {
        let expected = if is_function { "GET" } else { "POST" };
        if req.method != expected && !(is_function && req.method == "HEAD") {
            let what = if is_function { "function" } else { "action" };
            return Err(DvError::method_not_allowed(
                req.method,
                &format!("the {what} {name}"),
            ));
        }
        let text = match *name {
            "searchstatus" => status(store),
            "searchstatistics" => statistics(store),
            _ => {
                let body = json_body(req.body)?;
                match *name {
                    "searchquery" => query(store, req, &body)?,
                    "searchsuggest" => suggest(store, req, &body)?,
                    _ => autocomplete(store, req, &body)?,
                }
            }
        };
        let out = json!({
            "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.{name}Response", req.api),
            "response": text,
        });
        Ok(Resp::json(200, out.to_string().into_bytes()))
    })())
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, DvError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DvError::bad_request(
            "The request body must be a JSON object with at least the 'search' parameter.",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DvError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(DvError::bad_request(format!("Invalid JSON. {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters.

/// A string parameter holding JSON (`entities`, `facets`, `orderby`, `options`): absent, null and
/// the text "null" (as the documented requests send) are all absent.
fn json_string_param(body: &Map<String, Value>, name: &str) -> Result<Option<Value>, DvError> {
    let text = match body.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(DvError::bad_request(format!(
                "The parameter '{name}' must be a string holding JSON, not {other}."
            )));
        }
    };
    if text.is_empty() || text == "null" {
        return Ok(None);
    }
    // The documented options are written with single quotes ("{'querytype': 'lucene'}").
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .map(Some)
        .map_err(|e| {
            DvError::bad_request(format!("The parameter '{name}' is not valid JSON: {e}."))
        })
}

fn string_param<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, DvError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(DvError::bad_request(format!(
            "The parameter '{name}' must be a string, not {other}."
        ))),
    }
}

fn int_param(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, DvError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            DvError::bad_request(format!(
                "The parameter '{name}' must be a non-negative integer, not {v}."
            ))
        }),
    }
}

fn bool_param(body: &Map<String, Value>, name: &str) -> Result<bool, DvError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(DvError::bad_request(format!(
            "The parameter '{name}' must be true or false, not {other}."
        ))),
    }
}

/// The `search` parameter: required, 1 to 100 characters (`min` is 3 for suggest).
fn search_param(body: &Map<String, Value>, min: usize) -> Result<String, DvError> {
    let s = string_param(body, "search")?
        .ok_or_else(|| DvError::bad_request("The parameter 'search' is required."))?;
    let len = s.trim().chars().count();
    if len < min {
        return Err(DvError::bad_request(format!(
            "The parameter 'search' must be at least {min} character{} long.",
            if min == 1 { "" } else { "s" }
        )));
    }
    if s.chars().count() > MAX_SEARCH_LEN {
        return Err(DvError::bad_request(format!(
            "The parameter 'search' is limited to {MAX_SEARCH_LEN} characters; it has {}.",
            s.chars().count()
        )));
    }
    Ok(s.to_string())
}

/// `options`: `querytype` simple (lucene is not emulated), `searchmode` any or all; the other
/// documented options change results in ways the emulator does not reproduce.
fn search_mode(body: &Map<String, Value>) -> Result<bool, DvError> {
    let Some(options) = json_string_param(body, "options")? else {
        return Ok(false);
    };
    let Value::Object(options) = options else {
        return Err(DvError::bad_request(
            "The parameter 'options' must be a JSON object such as {\"searchmode\": \"all\"}.",
        ));
    };
    let mut all = false;
    for (k, v) in &options {
        let text = match v {
            Value::String(s) => s.to_ascii_lowercase(),
            other => other.to_string(),
        };
        match k.to_ascii_lowercase().as_str() {
            "querytype" => match text.as_str() {
                "simple" => {}
                "lucene" | "full" => {
                    return Err(DvError::not_implemented(
                        "the Lucene query syntax of Dataverse search (querytype: lucene)",
                    ));
                }
                other => {
                    return Err(DvError::bad_request(format!(
                        "The option 'querytype' must be 'simple' or 'lucene', not '{other}'."
                    )));
                }
            },
            "searchmode" => match text.as_str() {
                "any" => all = false,
                "all" => all = true,
                other => {
                    return Err(DvError::bad_request(format!(
                        "The option 'searchmode' must be 'any' or 'all', not '{other}'."
                    )));
                }
            },
            "besteffortsearchenabled" | "grouprankingenabled" | "advancedsuggestenabled"
                if text == "true" =>
            {
                return Err(DvError::not_implemented(format_args!(
                    "the Dataverse search option '{k}'"
                )));
            }
            "besteffortsearchenabled" | "grouprankingenabled" | "advancedsuggestenabled" => {}
            other => {
                return Err(DvError::bad_request(format!(
                    "The option '{other}' is not a Dataverse search option."
                )));
            }
        }
    }
    Ok(all)
}

fn refuse_fuzzy(body: &Map<String, Value>) -> Result<(), DvError> {
    if bool_param(body, "fuzzy")? {
        return Err(DvError::not_implemented(
            "fuzzy matching of Dataverse search (fuzzy: true)",
        ));
    }
    Ok(())
}

/// One table searched, with its columns.
struct Scope {
    table: TableId,
    select: Vec<usize>,
    search: Vec<usize>,
    filter: Option<Filter>,
}

fn columns(ent: &Entity, list: Option<&Value>, what: &str) -> Result<Option<Vec<usize>>, DvError> {
    let Some(list) = list.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Array(items) = list else {
        return Err(DvError::bad_request(format!(
            "'{what}' of '{}' must be an array of column names.",
            ent.logical_name
        )));
    };
    let mut out = Vec::new();
    for item in items {
        let name = item.as_str().ok_or_else(|| {
            DvError::bad_request(format!("'{what}' must list column names, not {item}."))
        })?;
        let col = ent.attr(&name.to_ascii_lowercase()).ok_or_else(|| {
            DvError::bad_request(format!(
                "'{what}' names '{name}', which is not a column of {}.",
                ent.logical_name
            ))
        })?;
        out.push(col);
    }
    Ok((!out.is_empty()).then_some(out))
}

/// A member of a SearchEntity object, whatever the case of its name (the documented examples
/// write both `name` and `Name`).
fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn compile_filter(
    store: &Store,
    req: &Req,
    table: TableId,
    text: &str,
    what: &str,
) -> Result<Filter, DvError> {
    let expr = filter::parse(text, &|_| None)
        .map_err(|e| e.into_dv_error(|text| format!("The {what} is not valid: {text}")))?;
    Filter::compile(store, table, &expr, req.caller)
}

/// The text columns searched by default: the table's writable text columns.
fn default_search_columns(ent: &Entity) -> Vec<usize> {
    ent.attributes
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            matches!(a.kind, AttrKind::String { .. } | AttrKind::Memo { .. })
                && (a.writable || a.is_primary_name)
        })
        .map(|(i, _)| i)
        .collect()
}

/// The tables a request searches: `entities` when given, else every searchable table.
fn scopes(store: &Store, req: &Req, body: &Map<String, Value>) -> Result<Vec<Scope>, DvError> {
    let top_filter = string_param(body, "filter")?.filter(|f| !f.trim().is_empty());
    let mut out = Vec::new();
    let requested = json_string_param(body, "entities")?;
    let items: Vec<Value> = match requested {
        None => SEARCHABLE.iter().map(|n| json!({ "name": n })).collect(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(DvError::bad_request(
                "The parameter 'entities' must be a JSON array of SearchEntity objects.",
            ));
        }
    };
    let mut skipped: Option<DvError> = None;
    let explicit = body
        .get("entities")
        .is_some_and(|v| v.as_str().is_some_and(|s| s.trim() != "null"));
    for item in items {
        let (name, obj) = match &item {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Object(o) => (
                member(o, "name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| DvError::bad_request("Each item of 'entities' needs a 'name'."))?
                    .to_string(),
                o.clone(),
            ),
            other => {
                return Err(DvError::bad_request(format!(
                    "Each item of 'entities' must be a SearchEntity object, not {other}."
                )));
            }
        };
        let table = store
            .schema
            .entity(&name)
            .filter(|_| SEARCHABLE.contains(&name.as_str()))
            .ok_or_else(|| {
                DvError::bad_request(format!(
                    "The table '{name}' of 'entities' is not enabled for Dataverse search (searchstatus lists those that are)."
                ))
            })?;
        let ent = store.entity(table);
        let select = columns(ent, member(&obj, "selectColumns"), "selectColumns")?
            .unwrap_or_else(|| vec![ent.primary_name]);
        // "If empty, only the table primary name is searched on." Without `entities`, each
        // table is searched on its text columns, as its search configuration would.
        let search = match columns(ent, member(&obj, "searchColumns"), "searchColumns")? {
            Some(c) => c,
            None if explicit => vec![ent.primary_name],
            None => default_search_columns(ent),
        };
        let entity_filter = member(&obj, "filter").and_then(Value::as_str);
        let text = match (top_filter, entity_filter) {
            (Some(a), Some(b)) => Some(format!("({a}) and ({b})")),
            (Some(a), None) => Some(a.to_string()),
            (None, Some(b)) => Some(b.to_string()),
            (None, None) => None,
        };
        let filter = match text {
            // The top-level filter is for columns the tables share ("filter parameter"): a
            // table it cannot apply to (a column it does not have) has nothing to find, unless
            // no table can take it.
            Some(t) => match compile_filter(store, req, table, &t, "filter") {
                Ok(f) => Some(f),
                Err(e) if entity_filter.is_none() && top_filter.is_some() => {
                    skipped = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        out.push(Scope {
            table,
            select,
            search,
            filter,
        });
    }
    match skipped {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

// ---------------------------------------------------------------------------------------------
// The simple query syntax.

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Word { text: String, prefix: bool },
    Phrase(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Query {
    Term(Term),
    Not(Box<Query>),
    And(Vec<Query>),
    Or(Vec<Query>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String, bool),
    Phrase(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokenize(src: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '+' => out.push(Tok::And),
            '|' => out.push(Tok::Or),
            '-' => out.push(Tok::Not),
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            '"' => {
                let mut text = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    text.push(c);
                }
                out.push(Tok::Phrase(text));
            }
            _ => {
                let mut text = String::new();
                let mut prefix = false;
                let mut c = Some(c);
                while let Some(ch) = c {
                    match ch {
                        '\\' => {
                            if let Some(next) = chars.next() {
                                text.push(next);
                            }
                        }
                        '*' => prefix = true,
                        ch if ch.is_whitespace() || "+|()\"".contains(ch) => break,
                        ch => text.push(ch),
                    }
                    match chars.peek() {
                        Some(n) if n.is_whitespace() || "+|()\"".contains(*n) => break,
                        Some(_) => c = chars.next(),
                        None => break,
                    }
                }
                if !text.is_empty() {
                    out.push(Tok::Word(text, prefix));
                }
            }
        }
    }
    out
}

/// Words of a text as the matcher sees them: runs of letters and digits, lower case, with their
/// byte ranges in the text.
fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i, text[s..i].to_lowercase()));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len(), text[s..].to_lowercase()));
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    all: bool,
}

impl Parser {
    fn parse(src: &str, all: bool) -> Result<Query, DvError> {
        let mut p = Parser {
            toks: tokenize(src),
            pos: 0,
            all,
        };
        let q = p.sequence()?;
        if p.pos < p.toks.len() {
            return Err(DvError::bad_request(format!(
                "The search text '{src}' has an unmatched ')'."
            )));
        }
        Ok(q)
    }

    /// `unary (op unary)*`: `|` is or, `+` and, two terms side by side follow `searchmode`
    /// (any: or, all: and); and binds tighter than or.
    fn sequence(&mut self) -> Result<Query, DvError> {
        let mut groups: Vec<Vec<Query>> = vec![Vec::new()];
        let mut pending_or = false;
        loop {
            match self.toks.get(self.pos) {
                None | Some(Tok::Close) => break,
                Some(Tok::Or) => {
                    self.pos += 1;
                    pending_or = true;
                    continue;
                }
                Some(Tok::And) => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let explicit_and = self.pos > 0 && self.toks[self.pos - 1] == Tok::And;
            let Some(q) = self.unary()? else {
                continue;
            };
            let current = groups.last().map_or(0, Vec::len);
            let new_group = current > 0 && (pending_or || (!self.all && !explicit_and));
            if new_group {
                groups.push(Vec::new());
            }
            if let Some(g) = groups.last_mut() {
                g.push(q);
            }
            pending_or = false;
        }
        let mut ors: Vec<Query> = groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .map(|mut g| {
                if g.len() == 1 {
                    g.remove(0)
                } else {
                    Query::And(g)
                }
            })
            .collect();
        Ok(match ors.len() {
            0 => Query::Or(Vec::new()),
            1 => ors.remove(0),
            _ => Query::Or(ors),
        })
    }

    fn unary(&mut self) -> Result<Option<Query>, DvError> {
        let Some(tok) = self.toks.get(self.pos).cloned() else {
            return Ok(None);
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Not => self.unary()?.map(|q| Query::Not(Box::new(q))),
            Tok::Open => {
                let q = self.sequence()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(DvError::bad_request(
                        "The search text has an unmatched '('.",
                    ));
                }
                self.pos += 1;
                Some(q)
            }
            Tok::Word(text, prefix) => {
                let mut ws = words(&text);
                match ws.len() {
                    0 => None,
                    1 => Some(Query::Term(Term::Word {
                        text: ws.remove(0).2,
                        prefix,
                    })),
                    // "555-1234": the words of one token, side by side.
                    _ => Some(Query::Term(Term::Phrase(
                        ws.into_iter().map(|w| w.2).collect(),
                    ))),
                }
            }
            Tok::Phrase(text) => {
                let ws: Vec<String> = words(&text).into_iter().map(|w| w.2).collect();
                (!ws.is_empty()).then_some(Query::Term(Term::Phrase(ws)))
            }
            Tok::And | Tok::Or | Tok::Close => None,
        })
    }
}

/// The positive terms of a query (what hits and highlights count).
fn positive_terms<'a>(q: &'a Query, out: &mut Vec<&'a Term>) {
    match q {
        Query::Term(t) => out.push(t),
        Query::Not(_) => {}
        Query::And(qs) | Query::Or(qs) => qs.iter().for_each(|q| positive_terms(q, out)),
    }
}

/// The word ranges (start, end index into `ws`) where a term hits.
fn hits(term: &Term, ws: &[Word]) -> Vec<(usize, usize)> {
    match term {
        Term::Word { text, prefix } => ws
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                if *prefix {
                    w.2.starts_with(text.as_str())
                } else {
                    w.2 == *text
                }
            })
            .map(|(i, _)| (i, i))
            .collect(),
        Term::Phrase(p) => (0..ws.len())
            .filter(|&i| {
                i + p.len() <= ws.len() && p.iter().enumerate().all(|(k, w)| ws[i + k].2 == *w)
            })
            .map(|i| (i, i + p.len() - 1))
            .collect(),
    }
}

/// A word of a text: its byte range and its lower-case form.
type Word = (usize, usize, String);

/// One searched column of a row: its position, its text and the text's words.
type Text = (usize, String, Vec<Word>);

/// The hits in one column: its position, its text and the byte ranges hit.
type Highlight = (usize, String, Vec<(usize, usize)>);

/// One document: the searched texts of one row.
struct Doc {
    texts: Vec<Text>,
}

impl Doc {
    fn of(store: &Store, scope: &Scope, row: &Row) -> Doc {
        let _ = store;
        Doc {
            texts: scope
                .search
                .iter()
                .filter_map(|&c| match &row.vals[c] {
                    Val::Str(s) => Some((c, s.to_string(), words(s))),
                    _ => None,
                })
                .collect(),
        }
    }

    fn matches(&self, q: &Query) -> bool {
        match q {
            Query::Term(t) => self.texts.iter().any(|(_, _, ws)| !hits(t, ws).is_empty()),
            Query::Not(q) => !self.matches(q),
            Query::And(qs) => qs.iter().all(|q| self.matches(q)),
            Query::Or(qs) => qs.iter().any(|q| self.matches(q)),
        }
    }

    /// Hits of the positive terms per column: (column, text, word ranges hit).
    fn highlights(&self, terms: &[&Term]) -> Vec<Highlight> {
        self.texts
            .iter()
            .filter_map(|(c, text, ws)| {
                let mut ranges: Vec<(usize, usize)> = Vec::new();
                for t in terms {
                    for (a, b) in hits(t, ws) {
                        ranges.push((ws[a].0, ws[b].1));
                    }
                }
                ranges.sort_unstable();
                ranges.dedup();
                (!ranges.is_empty()).then(|| (*c, text.clone(), ranges))
            })
            .collect()
    }
}

/// The text with `{crmhit}`…`{/crmhit}` around each hit (overlapping hits merged).
fn mark(text: &str, ranges: &[(usize, usize)]) -> String {
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for &(a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out = String::new();
    let mut at = 0;
    for (a, b) in merged {
        out.push_str(&text[at..a]);
        out.push_str("{crmhit}");
        out.push_str(&text[a..b]);
        out.push_str("{/crmhit}");
        at = b;
    }
    out.push_str(&text[at..]);
    out
}

/// One result before paging.
struct Hit<'a> {
    scope: usize,
    id: crate::guid::Guid,
    row: &'a Row,
    score: f64,
    highlights: Vec<Highlight>,
}

/// Runs a query over the scopes: matching rows with their score and highlights.
fn run<'a>(store: &'a Store, scopes: &[Scope], q: &Query) -> Vec<Hit<'a>> {
    let mut terms = Vec::new();
    positive_terms(q, &mut terms);
    let mut out = Vec::new();
    for (si, scope) in scopes.iter().enumerate() {
        for (id, row) in store.rows(scope.table) {
            if scope
                .filter
                .as_ref()
                .is_some_and(|f| !f.matches(store, row))
            {
                continue;
            }
            let doc = Doc::of(store, scope, row);
            if !doc.matches(q) {
                continue;
            }
            let highlights = doc.highlights(&terms);
            // Term frequency, damped by the length of the texts hit (a hit in a short name
            // counts more than one in a long description).
            let score = highlights
                .iter()
                .map(|(_, text, ranges)| {
                    let len = words(text).len().max(1) as f64;
                    ranges.len() as f64 / len.sqrt()
                })
                .sum::<f64>();
            out.push(Hit {
                scope: si,
                id: *id,
                row,
                score: (score * 1e6).round() / 1e6,
                highlights,
            });
        }
    }
    out
}

fn value_json(ent: &Entity, row: &Row, col: usize) -> Value {
    let mut out = Vec::new();
    render::write_val(&mut out, &ent.attributes[col].kind, &row.vals[col]);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

fn attributes(store: &Store, scope: &Scope, row: &Row) -> Map<String, Value> {
    let ent = store.entity(scope.table);
    let mut m = Map::new();
    m.insert("@search.objecttypecode".into(), json!(ent.object_type_code));
    for &c in &scope.select {
        let a = &ent.attributes[c];
        m.insert(a.wire_name(), value_json(ent, row, c));
        if let Some(f) = render::formatted(store, ent, row, c) {
            m.insert(
                format!(
                    "{}@OData.Community.Display.V1.FormattedValue",
                    a.wire_name()
                ),
                json!(f),
            );
        }
    }
    m
}

/// `orderby`: a JSON array of "column [asc|desc]" clauses (or one such string), where a column
/// may be `@search.score`.
fn order(body: &Map<String, Value>) -> Result<Vec<(String, bool)>, DvError> {
    let clauses: Vec<String> = match json_string_param(body, "orderby") {
        Ok(None) => return Ok(Vec::new()),
        Ok(Some(Value::Array(items))) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| {
                    DvError::bad_request("'orderby' must list clauses such as \"createdon desc\".")
                })
            })
            .collect::<Result<_, _>>()?,
        Ok(Some(Value::String(s))) => s.split(',').map(str::to_string).collect(),
        Ok(Some(other)) => {
            return Err(DvError::bad_request(format!(
                "'orderby' must list clauses such as \"createdon desc\", not {other}."
            )));
        }
        // A plain "createdon desc,name" (not JSON) is also a list of clauses.
        Err(_) => string_param(body, "orderby")?
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect(),
    };
    clauses
        .iter()
        .map(|c| {
            let mut parts = c.split_whitespace();
            let col = parts
                .next()
                .ok_or_else(|| DvError::bad_request("An 'orderby' clause is empty."))?;
            let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(DvError::bad_request(format!(
                        "The 'orderby' clause '{c}' must end in asc or desc, not '{other}'."
                    )));
                }
            };
            Ok((col.to_ascii_lowercase(), desc))
        })
        .collect()
}

fn cmp_vals(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Null, Val::Null) => Ordering::Equal,
        (Val::Null, _) => Ordering::Less,
        (_, Val::Null) => Ordering::Greater,
        (Val::Str(x), Val::Str(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Val::Date(x), Val::Date(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Guid(x), Val::Guid(y)) => x.to_string().cmp(&y.to_string()),
        (Val::Ref(x, _), Val::Ref(y, _)) => x.to_string().cmp(&y.to_string()),
        _ => Ordering::Equal,
    }
}

fn sort(store: &Store, scopes: &[Scope], hits: &mut [Hit], clauses: &[(String, bool)]) {
    let value = |h: &Hit, col: &str| -> Val {
        let ent = store.entity(scopes[h.scope].table);
        ent.attr(col)
            .map(|c| h.row.vals[c].clone())
            .unwrap_or(Val::Null)
    };
    hits.sort_by(|a, b| {
        for (col, desc) in clauses {
            let o = if col == "@search.score" {
                a.score.partial_cmp(&b.score).unwrap_or(Ordering::Equal)
            } else {
                cmp_vals(&value(a, col), &value(b, col))
            };
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        // By relevance, then in a stable order (the service leaves ties in random order).
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(Ordering::Equal)
            .then(a.scope.cmp(&b.scope))
            .then(a.id.cmp(&b.id))
    });
}

/// One facet request: "field,count:N,sort:S", the field optionally "table:field".
struct Facet {
    key: String,
    table: Option<String>,
    field: String,
    count: usize,
    sort: String,
}

fn facets_param(body: &Map<String, Value>) -> Result<Vec<Facet>, DvError> {
    let Some(v) = json_string_param(body, "facets")? else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(DvError::bad_request(
            "The parameter 'facets' must be a JSON array of strings such as \"entityname,count:100\".",
        ));
    };
    items
        .iter()
        .map(|i| {
            let s = i.as_str().ok_or_else(|| {
                DvError::bad_request(format!("Each facet must be a string, not {i}."))
            })?;
            let mut parts = s.split(',');
            let key = parts.next().unwrap_or_default().trim().to_string();
            if key.is_empty() {
                return Err(DvError::bad_request(format!("The facet '{s}' names no field.")));
            }
            let (table, field) = match key.split_once(':') {
                Some((t, f)) => (Some(t.to_string()), f.to_ascii_lowercase()),
                None => (None, key.to_ascii_lowercase()),
            };
            let mut facet = Facet {
                key: key.clone(),
                table,
                field,
                count: 10,
                sort: "count".into(),
            };
            for p in parts {
                let (k, v) = p.split_once(':').ok_or_else(|| {
                    DvError::bad_request(format!("The facet parameter '{p}' of '{s}' must be name:value."))
                })?;
                match k.trim() {
                    "count" => {
                        facet.count = v.trim().parse().map_err(|_| {
                            DvError::bad_request(format!(
                                "The facet count '{v}' of '{s}' must be a number."
                            ))
                        })?;
                    }
                    "sort" => match v.trim() {
                        "count" | "-count" | "value" | "-value" => facet.sort = v.trim().into(),
                        other => {
                            return Err(DvError::bad_request(format!(
                                "The facet sort '{other}' of '{s}' must be count, -count, value or -value."
                            )));
                        }
                    },
                    "values" | "interval" | "timeoffset" => {
                        return Err(DvError::not_implemented(format_args!(
                            "range facets of Dataverse search ('{}' in '{s}')",
                            k.trim()
                        )));
                    }
                    other => {
                        return Err(DvError::bad_request(format!(
                            "'{other}' is not a facet parameter (count, sort, values, interval, timeoffset)."
                        )));
                    }
                }
            }
            Ok(facet)
        })
        .collect()
}

fn facet_results(
    store: &Store,
    scopes: &[Scope],
    hits: &[Hit],
    facets: &[Facet],
) -> Map<String, Value> {
    let mut out = Map::new();
    for f in facets {
        // (value as JSON text, value, optional value) -> count
        let mut counts: Vec<(Value, Value, usize)> = Vec::new();
        for h in hits {
            let ent = store.entity(scopes[h.scope].table);
            if f.table.as_ref().is_some_and(|t| *t != ent.logical_name) {
                continue;
            }
            let (value, optional) = if f.field == "entityname" {
                (json!(ent.logical_name), Value::Null)
            } else {
                let Some(c) = ent.attr(&f.field).or_else(|| ent.attr_by_wire(&f.field)) else {
                    continue;
                };
                let v = &h.row.vals[c];
                if v.is_null() {
                    continue;
                }
                let optional = match v {
                    Val::Ref(g, t) => store
                        .primary_name_of(*t, g)
                        .map_or(Value::Null, |n| json!(n)),
                    _ => Value::Null,
                };
                (value_json(ent, h.row, c), optional)
            };
            match counts.iter_mut().find(|(v, _, _)| *v == value) {
                Some(entry) => entry.2 += 1,
                None => counts.push((value, optional, 1)),
            }
        }
        let key = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        match f.sort.as_str() {
            "-count" => counts.sort_by(|a, b| a.2.cmp(&b.2).then(key(&a.0).cmp(&key(&b.0)))),
            "value" => counts.sort_by_key(|a| key(&a.0)),
            "-value" => counts.sort_by_key(|a| std::cmp::Reverse(key(&a.0))),
            _ => counts.sort_by(|a, b| b.2.cmp(&a.2).then(key(&a.0).cmp(&key(&b.0)))),
        }
        counts.truncate(f.count);
        out.insert(
            f.key.clone(),
            Value::Array(
                counts
                    .into_iter()
                    .map(|(value, optional, n)| {
                        json!({"count": n, "from": null, "to": null, "type": "Value", "value": value, "optionalvalue": optional})
                    })
                    .collect(),
            ),
        );
    }
    out
}

/// The response text, members in the documented order.
fn response_text(members: &[(&str, Value)]) -> String {
    let parts: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_string())))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn query(store: &Store, req: &Req, body: &Map<String, Value>) -> Result<String, DvError> {
    let search = search_param(body, 1)?;
    let all = search_mode(body)?;
    let top = int_param(body, "top")?.unwrap_or(DEFAULT_TOP);
    if top > MAX_TOP {
        return Err(DvError::bad_request(format!(
            "The parameter 'top' is at most {MAX_TOP}; it is {top}."
        )));
    }
    let skip = int_param(body, "skip")?.unwrap_or(0);
    let count = bool_param(body, "count")?;
    let clauses = order(body)?;
    let facets = facets_param(body)?;
    if let Some(bag) = body.get("propertybag")
        && !bag.is_null()
        && !bag.is_string()
    {
        return Err(DvError::bad_request(
            "The parameter 'propertybag' must be a string holding JSON.",
        ));
    }
    let scopes = scopes(store, req, body)?;
    let q = Parser::parse(&search, all)?;
    let mut hits = run(store, &scopes, &q);
    sort(store, &scopes, &mut hits, &clauses);
    let facets = facet_results(store, &scopes, &hits, &facets);
    let total = hits.len();
    let value: Vec<Value> = hits
        .iter()
        .skip(skip as usize)
        .take(top as usize)
        .map(|h| {
            let scope = &scopes[h.scope];
            let ent = store.entity(scope.table);
            let mut highlights = Map::new();
            for (c, text, ranges) in &h.highlights {
                highlights.insert(ent.attributes[*c].wire_name(), json!([mark(text, ranges)]));
            }
            json!({
                "Id": h.id.to_string(),
                "EntityName": ent.logical_name,
                // The documented response has 0 here and the table's code in
                // Attributes["@search.objecttypecode"].
                "ObjectTypeCode": 0,
                "Attributes": attributes(store, scope, h.row),
                "Highlights": highlights,
                "Score": h.score,
            })
        })
        .collect();
    Ok(response_text(&[
        ("Error", Value::Null),
        ("Value", Value::Array(value)),
        ("Facets", Value::Object(facets)),
        ("QueryContext", Value::Null),
        ("Count", json!(if count { total as i64 } else { -1 })),
    ]))
}

/// The suggestions: the matching rows, best first, their primary name (or the first searched
/// column hit) as `Text` with the hit marked, and `Document` naming the row. The search text is
/// matched as a prefix of words (as the user is still typing).
fn suggest(store: &Store, req: &Req, body: &Map<String, Value>) -> Result<String, DvError> {
    let search = search_param(body, 3)?;
    refuse_fuzzy(body)?;
    search_mode(body)?;
    let top = int_param(body, "top")?.unwrap_or(DEFAULT_SUGGEST_TOP);
    if top > MAX_TOP {
        return Err(DvError::bad_request(format!(
            "The parameter 'top' is at most {MAX_TOP}; it is {top}."
        )));
    }
    let clauses = order(body)?;
    let scopes = scopes(store, req, body)?;
    let q = prefix_query(&search);
    let mut hits = run(store, &scopes, &q);
    sort(store, &scopes, &mut hits, &clauses);
    let value: Vec<Value> = hits
        .iter()
        .take(top as usize)
        .map(|h| {
            let scope = &scopes[h.scope];
            let ent = store.entity(scope.table);
            let text = h
                .highlights
                .iter()
                .find(|(c, _, _)| *c == ent.primary_name)
                .or_else(|| h.highlights.first())
                .map(|(_, text, ranges)| mark(text, ranges))
                .unwrap_or_default();
            let mut doc = Map::new();
            doc.insert("@search.objectid".into(), json!(h.id.to_string()));
            doc.insert("@search.entityname".into(), json!(ent.logical_name));
            doc.insert("@search.objecttypecode".into(), json!(ent.object_type_code));
            for (k, v) in attributes(store, scope, h.row) {
                if k != "@search.objecttypecode" {
                    doc.insert(k, v);
                }
            }
            json!({"Text": text, "Document": doc})
        })
        .collect();
    Ok(response_text(&[
        ("Error", Value::Null),
        ("Value", Value::Array(value)),
        ("QueryContext", Value::Null),
    ]))
}

/// Every word of the text as a prefix, all required: what the user has typed so far.
fn prefix_query(search: &str) -> Query {
    let ws: Vec<Query> = words(search)
        .into_iter()
        .map(|w| {
            Query::Term(Term::Word {
                text: w.2,
                prefix: true,
            })
        })
        .collect();
    Query::And(ws)
}

/// The completion: the most frequent word of the searched columns that starts with the last
/// word typed, after the words before it, marked as a hit.
fn autocomplete(store: &Store, req: &Req, body: &Map<String, Value>) -> Result<String, DvError> {
    let search = search_param(body, 1)?;
    refuse_fuzzy(body)?;
    let scopes = scopes(store, req, body)?;
    let typed = words(&search);
    let Some((_, _, last)) = typed.last() else {
        return Err(DvError::bad_request(
            "The parameter 'search' must contain a letter or a digit.",
        ));
    };
    let q = prefix_query(&search);
    let hits = run(store, &scopes, &q);
    let mut counts: Vec<(String, usize)> = Vec::new();
    for h in &hits {
        let ent = store.entity(scopes[h.scope].table);
        let _ = ent;
        for (_, text, _) in &h.highlights {
            for (_, _, w) in words(text) {
                if w.starts_with(last.as_str()) {
                    match counts.iter_mut().find(|(x, _)| *x == w) {
                        Some(e) => e.1 += 1,
                        None => counts.push((w, 1)),
                    }
                }
            }
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let value = counts.first().map(|(w, _)| {
        let before: Vec<&str> = typed[..typed.len() - 1]
            .iter()
            .map(|(_, _, w)| w.as_str())
            .collect();
        let mut s = before.join(" ");
        if !s.is_empty() {
            s.push(' ');
        }
        format!("{s}{{crmhit}}{w}{{/crmhit}}")
    });
    Ok(response_text(&[
        ("Error", Value::Null),
        ("Value", value.map_or(Value::Null, Value::String)),
        ("QueryContext", Value::Null),
    ]))
}

/// `searchstatus`: provisioned, with each searchable table and its indexed columns.
fn status(store: &Store) -> String {
    let entities: Vec<Value> = SEARCHABLE
        .iter()
        .filter_map(|n| store.schema.entity(n))
        .map(|t| {
            let ent = store.entity(t);
            let mut fields = Map::new();
            for (i, c) in default_search_columns(ent)
                .into_iter()
                .chain([ent.primary_id])
                .enumerate()
            {
                fields.insert(
                    ent.attributes[c].logical_name.clone(),
                    json!({"indexfieldname": format!("f_{i}")}),
                );
            }
            json!({
                "entitylogicalname": ent.logical_name,
                "objecttypecode": ent.object_type_code.to_string(),
                "primarynamefield": ent.primary_name_name(),
                "entitystatus": "EntitySyncComplete",
                "searchableindexedfieldinfomap": fields,
            })
        })
        .collect();
    response_text(&[(
        "value",
        json!({
            "entitystatusresults": entities,
            "manytomanyrelationshipsyncstatus": [],
            "status": "provisioned",
            "lockboxstatus": "Disabled",
            "cmkstatus": "Disabled",
        }),
    )])
}

/// `searchstatistics`: the searchable rows and the size of their text.
fn statistics(store: &Store) -> String {
    let mut documents = 0u64;
    let mut bytes = 0u64;
    for t in SEARCHABLE.iter().filter_map(|n| store.schema.entity(n)) {
        for row in store.rows(t).values() {
            documents += 1;
            bytes += row
                .vals
                .iter()
                .map(|v| match v {
                    Val::Str(s) => s.len() as u64,
                    _ => 8,
                })
                .sum::<u64>();
        }
    }
    response_text(&[(
        "value",
        json!({
            "storagesizeinbytes": bytes,
            "storagesizeinmb": bytes / (1024 * 1024),
            "documentcount": documents,
        }),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn juxtaposed_terms_follow_the_search_mode_and_operators_bind_as_documented() {
        let w = |t: &str| {
            Query::Term(Term::Word {
                text: t.into(),
                prefix: false,
            })
        };
        assert_eq!(
            Parser::parse("hotel wifi", false).unwrap(),
            Query::Or(vec![w("hotel"), w("wifi")])
        );
        assert_eq!(
            Parser::parse("hotel wifi", true).unwrap(),
            Query::And(vec![w("hotel"), w("wifi")])
        );
        assert_eq!(
            Parser::parse("hotel+(wifi | luxury)", false).unwrap(),
            Query::And(vec![w("hotel"), Query::Or(vec![w("wifi"), w("luxury")])])
        );
        assert_eq!(
            Parser::parse("-luxury", false).unwrap(),
            Query::Not(Box::new(w("luxury")))
        );
        assert_eq!(
            Parser::parse("Alp*", false).unwrap(),
            Query::Term(Term::Word {
                text: "alp".into(),
                prefix: true
            })
        );
        assert_eq!(
            Parser::parse("\"blue sky\"", false).unwrap(),
            Query::Term(Term::Phrase(vec!["blue".into(), "sky".into()]))
        );
        assert!(Parser::parse("(open", false).is_err());
    }

    #[test]
    fn hits_are_marked_in_the_original_text() {
        let text = "Contoso Pharmaceuticals (sample)";
        let ws = words(text);
        let term = Term::Word {
            text: "contoso".into(),
            prefix: false,
        };
        let ranges: Vec<(usize, usize)> = hits(&term, &ws)
            .into_iter()
            .map(|(a, b)| (ws[a].0, ws[b].1))
            .collect();
        assert_eq!(
            mark(text, &ranges),
            "{crmhit}Contoso{/crmhit} Pharmaceuticals (sample)"
        );
    }

    #[test]
    fn the_search_endpoints_map_to_the_web_api_operations() {
        assert_eq!(
            endpoint("/api/search/v2.0/query").unwrap().unwrap(),
            "v9.2/searchquery"
        );
        assert_eq!(
            endpoint("/api/search/v2.0/status").unwrap().unwrap(),
            "v9.2/searchstatus"
        );
        assert_eq!(
            endpoint("/api/search/v1.0/query")
                .unwrap()
                .unwrap_err()
                .status,
            501
        );
        assert_eq!(
            endpoint("/api/search/v2.0/nope")
                .unwrap()
                .unwrap_err()
                .status,
            404
        );
        assert!(endpoint("/api/data/v9.2/accounts").is_none());
    }
}
