//! A small Finance and Operations OData service, on a port of its own so that a connection's
//! `<environment>/data` root works and its tokens name another resource than Dataverse's.
//!
//! Sources (learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/...):
//! - "Open Data Protocol (OData)", `data-entities/odata`: the service root is
//!   `[Your organization's root URL]/data`; `$filter`, `$count`, `$orderby`, `$skip`, `$top`,
//!   `$expand` (first level) and `$select`; server-driven paging "with a maximum page size of
//!   10,000"; batch requests with change sets run as one atomic unit; "By default, OData returns
//!   only data that belongs to the user's default company", `?cross-company=true` returns every
//!   company's; all fields of an entity key must be given; enums live in
//!   `Microsoft.Dynamics.DataEntities`.
//! - "Service endpoints overview", `data-entities/services-home-page`: OData sits on Microsoft
//!   Entra ID authentication, with the finance and operations environment URL as the resource;
//!   a token for another resource is refused with 401.
//! - "Throttling prioritization", `data-entities/priority-based-throttling`: a throttled request
//!   answers 429 with `Retry-After` (the emulator's fault injection serves it on this port too).
//!
//! What is not emulated answers 501 naming it: `$expand`, property paths, PUT, bound actions,
//! `$apply`/`$search`, arithmetic in `$filter`.

mod batch;
mod csdl;
pub mod entities;
mod query;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use entities::{Entity, Kind, MODIFIED};

use crate::server::App;

/// The namespace of the entity types and enums in `$metadata`.
pub const NAMESPACE: &str = "Microsoft.Dynamics.DataEntities";

/// The documented largest page ("maximum page size of 10,000").
pub const MAX_PAGE: usize = 10_000;

type Parts = (u16, Vec<(String, String)>, Vec<u8>);

/// The F&O data: rows by entity set, and the number sequences of created keys.
pub struct Service {
    rows: BTreeMap<&'static str, Vec<Map<String, Value>>>,
    /// The page size served; the documented 10,000 unless a test lowers it.
    pub page_size: usize,
    next_number: u64,
}

impl Service {
    pub fn new(per_company: usize) -> Service {
        let stamp = crate::datetime::format_iso(crate::datetime::now_secs() - 86_400);
        Service {
            rows: entities::seed(per_company, &stamp).into_iter().collect(),
            page_size: MAX_PAGE,
            next_number: 1,
        }
    }

    /// A snapshot of an entity's rows in every company, ordered by key (for tests).
    pub fn table(&self, set: &str) -> Vec<Value> {
        let Some(e) = entities::by_set(set) else {
            return Vec::new();
        };
        let mut rows = self.rows.get(e.set).cloned().unwrap_or_default();
        rows.sort_by(|a, b| key_order(e, a, b));
        rows.into_iter().map(Value::Object).collect()
    }
}

fn key_order(e: &Entity, a: &Map<String, Value>, b: &Map<String, Value>) -> std::cmp::Ordering {
    let by: Vec<(String, bool)> = e.keys.iter().map(|k| (k.to_string(), false)).collect();
    query::order(a, b, &by)
}

/// An F&O error: OData's JSON error with F&O's `innererror` (message, type, stacktrace).
#[derive(Debug, Clone)]
pub struct FnoError {
    pub status: u16,
    pub message: String,
    pub inner: Option<(String, &'static str)>,
}

impl FnoError {
    fn new(status: u16, message: impl Into<String>) -> FnoError {
        FnoError {
            status,
            message: message.into(),
            inner: None,
        }
    }

    /// A query option F&O refuses: 400 naming the option.
    pub fn bad_query(option: &str, detail: &str) -> FnoError {
        FnoError::new(
            400,
            format!("The query specified in the URI is not valid. {option}: {detail}"),
        )
    }

    /// A write F&O refuses: "An error has occurred." with the reason in `innererror`.
    fn write_failed(detail: impl Into<String>) -> FnoError {
        FnoError {
            status: 400,
            message: "An error has occurred.".into(),
            inner: Some((
                detail.into(),
                "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
            )),
        }
    }

    pub fn not_emulated(feature: &str) -> FnoError {
        FnoError::new(
            501,
            format!("The Finance and Operations emulator does not implement {feature}."),
        )
    }

    fn not_found(segment: &str) -> FnoError {
        FnoError::new(
            404,
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    fn body(&self) -> Vec<u8> {
        let mut error = json!({"code": "", "message": self.message});
        if let Some((message, kind)) = &self.inner {
            error["innererror"] = json!({"message": message, "type": kind, "stacktrace": ""});
        }
        json!({ "error": error }).to_string().into_bytes()
    }

    fn parts(&self) -> Parts {
        (
            self.status,
            vec![
                ("Content-Type".into(), JSON.into()),
                ("OData-Version".into(), "4.0".into()),
            ],
            self.body(),
        )
    }
}

const JSON: &str = "application/json; odata.metadata=minimal; odata.streaming=true";

fn port_of(origin: &str) -> Option<u16> {
    origin.rsplit(':').next()?.parse().ok()
}

/// Serves a request that reached the F&O port under `/data`; None for anything else (the token
/// service answers on this port too, so a connection may name it).
pub fn route(
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    origin: &str,
) -> Option<Parts> {
    let fno = app.fno_addr?;
    if port_of(origin) != Some(fno.port()) {
        return None;
    }
    let rest = if path == "/data" {
        ""
    } else {
        path.strip_prefix("/data/")?
    };
    let user = match authenticate(app, headers, origin) {
        Ok(user) => user,
        Err(refusal) => return Some(refusal),
    };
    if let Some(refusal) = throttle(app, user) {
        return Some(refusal);
    }
    let root = format!("{origin}/data");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if rest == "$batch" {
        if method != "POST" {
            return Some(FnoError::new(405, "The $batch endpoint takes POST only.").parts());
        }
        let content_type = header("content-type").unwrap_or("");
        let Ok(mut svc) = app.fno.lock() else {
            return Some(FnoError::new(500, "the F&O store is unavailable").parts());
        };
        return Some(
            match batch::handle_batch(&mut svc, body, content_type, &root) {
                Ok(parts) => parts,
                Err(e) => e.parts(),
            },
        );
    }
    let if_match = header("if-match");
    let Ok(mut svc) = app.fno.lock() else {
        return Some(FnoError::new(500, "the F&O store is unavailable").parts());
    };
    Some(
        match handle(&mut svc, method, rest, query, body, if_match, &root) {
            Ok(parts) => parts,
            Err(e) => e.parts(),
        },
    )
}

/// Service protection on the F&O port, with the emulator's request limit per user ("Throttling
/// prioritization", learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/priority-based-throttling:
/// a throttled request answers 429 Too Many Requests with a `Retry-After` header).
fn throttle(app: &App, user: crate::guid::Guid) -> Option<Parts> {
    let limit = app.rate_limit.lock().ok().and_then(|l| *l)?;
    let verdict = app
        .throttle
        .lock()
        .ok()?
        .check(user, limit, std::time::Instant::now());
    match verdict {
        crate::throttle::Verdict::Allowed { .. } => None,
        crate::throttle::Verdict::Throttled { retry_after } => {
            let (status, mut headers, body) = FnoError::new(
                429,
                "The request was throttled: too many requests. Retry after the time in Retry-After.",
            )
            .parts();
            headers.push(("Retry-After".into(), retry_after.to_string()));
            Some((status, headers, body))
        }
    }
}

/// The bearer token must be one the token service issued for this F&O environment (its `aud`
/// the environment URL); a Dataverse token is refused with 401 and no body. The caller's user.
fn authenticate(
    app: &App,
    headers: &[(String, String)],
    origin: &str,
) -> Result<crate::guid::Guid, Parts> {
    let bearer = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let port = app.fno_addr.map(|a| a.port()).unwrap_or_default();
    let ours = |aud: &str| {
        let aud = aud.trim_end_matches('/').to_ascii_lowercase();
        aud == origin.to_ascii_lowercase()
            || aud == format!("{}://127.0.0.1:{port}", app.scheme)
            || aud == format!("{}://localhost:{port}", app.scheme)
    };
    let accepted = match &bearer {
        Some(token) => app.auth.lock().ok().and_then(|a| {
            a.validate(token)
                .filter(|i| ours(&i.audience))
                .map(|i| i.user)
        }),
        None if !app.config.require_auth => Some(app.ids.admin_user),
        None => None,
    };
    if let Some(user) = accepted {
        return Ok(user);
    }
    Err((
        401,
        vec![(
            "WWW-Authenticate".into(),
            format!("Bearer resource_id={origin}"),
        )],
        Vec::new(),
    ))
}

/// Query options of a request: the `$` options and `cross-company`.
struct Options {
    filter: Option<String>,
    select: Option<String>,
    orderby: Option<String>,
    top: Option<usize>,
    skip: usize,
    count: bool,
    cross_company: bool,
}

fn options(query: &str) -> Result<Options, FnoError> {
    let mut o = Options {
        filter: None,
        select: None,
        orderby: None,
        top: None,
        skip: 0,
        count: false,
        cross_company: false,
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let number = |name: &str| {
            v.parse::<usize>().map_err(|_| {
                FnoError::bad_query(name, &format!("'{v}' is not a non-negative integer"))
            })
        };
        match k.as_ref() {
            "$filter" => o.filter = Some(v.to_string()),
            "$select" => o.select = Some(v.to_string()),
            "$orderby" => o.orderby = Some(v.to_string()),
            "$top" => o.top = Some(number("$top")?),
            "$skip" => o.skip = number("$skip")?,
            "$count" => {
                o.count = match v.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(FnoError::bad_query("$count", "must be true or false")),
                }
            }
            "$format" if v == "json" || v.starts_with("application/json") => {}
            "cross-company" => {
                o.cross_company = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(FnoError::bad_query(
                            "cross-company",
                            "must be true or false",
                        ));
                    }
                }
            }
            "$expand" => return Err(FnoError::not_emulated("$expand")),
            "$apply" | "$search" | "$compute" | "$skiptoken" | "$deltatoken" => {
                return Err(FnoError::not_emulated(&format!("the query option {k}")));
            }
            other if other.starts_with('$') => {
                return Err(FnoError::bad_query(
                    other,
                    "is not a supported query option",
                ));
            }
            _ => {}
        }
    }
    Ok(o)
}

/// A key in the URL: `(dataAreaId='usmf',CustomerAccount='US-001')`, every key field named.
fn parse_key(e: &Entity, text: &str) -> Result<Map<String, Value>, FnoError> {
    let mut key = Map::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != ',' {
            i += 1;
        }
        let name: String = chars[start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_string();
        if chars.get(i) != Some(&'=') {
            return Err(FnoError::new(
                400,
                format!(
                    "The key of {} names each of its fields ({}): '{text}' does not.",
                    e.set,
                    e.keys.join(", ")
                ),
            ));
        }
        i += 1;
        let value = if chars.get(i) == Some(&'\'') {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(FnoError::new(
                            400,
                            format!("The key '{text}' has an unclosed string."),
                        ));
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        s.push(*c);
                        i += 1;
                    }
                }
            }
            Value::String(s)
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ',' {
                i += 1;
            }
            let raw: String = chars[start..i].iter().collect();
            raw.trim().parse::<i64>().map(Value::from).map_err(|_| {
                FnoError::new(
                    400,
                    format!("The key value '{raw}' of '{name}' is not valid."),
                )
            })?
        };
        if !e.keys.contains(&name.as_str()) {
            return Err(FnoError::new(
                400,
                format!(
                    "'{name}' is not a key field of {} ({}).",
                    e.set,
                    e.keys.join(", ")
                ),
            ));
        }
        key.insert(name, value);
        if chars.get(i) == Some(&',') {
            i += 1;
        }
    }
    let missing: Vec<&str> = e
        .keys
        .iter()
        .copied()
        .filter(|k| !key.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(FnoError::new(
            400,
            format!(
                "All fields of the key of {} must be given; missing: {}.",
                e.set,
                missing.join(", ")
            ),
        ));
    }
    Ok(key)
}

fn same_key(e: &Entity, row: &Map<String, Value>, key: &Map<String, Value>) -> bool {
    e.keys.iter().all(|k| {
        match (row.get(*k), key.get(*k)) {
            // dataAreaId and the string keys compare without case, as F&O's SQL collation does.
            (Some(Value::String(a)), Some(Value::String(b))) => a.eq_ignore_ascii_case(b),
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    })
}

fn etag(row: &Map<String, Value>) -> String {
    let digest = Sha256::digest(Value::Object(row.clone()).to_string().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

fn key_text(e: &Entity, row: &Map<String, Value>) -> String {
    e.keys
        .iter()
        .map(|k| match row.get(*k) {
            Some(Value::String(s)) => format!("{k}='{}'", s.replace('\'', "''")),
            Some(v) => format!("{k}={v}"),
            None => format!("{k}=null"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn json_answer(status: u16, body: Value, extra: Vec<(String, String)>) -> Parts {
    let mut headers = vec![
        ("Content-Type".to_string(), JSON.to_string()),
        ("OData-Version".to_string(), "4.0".to_string()),
    ];
    headers.extend(extra);
    (status, headers, body.to_string().into_bytes())
}

fn empty(status: u16) -> Parts {
    (
        status,
        vec![("OData-Version".into(), "4.0".into())],
        Vec::new(),
    )
}

/// The default company of the caller (the demo data's USMF).
pub const DEFAULT_COMPANY: &str = "usmf";

/// One request below `/data/` (also each request of a `$batch`).
pub fn handle(
    svc: &mut Service,
    method: &str,
    rest: &str,
    query: &str,
    body: &[u8],
    if_match: Option<&str>,
    root: &str,
) -> Result<Parts, FnoError> {
    let rest = percent_encoding::percent_decode_str(rest)
        .decode_utf8_lossy()
        .into_owned();
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        if method != "GET" {
            return Err(FnoError::new(405, "The service document is read-only."));
        }
        let sets: Vec<Value> = entities::ENTITIES
            .iter()
            .map(|e| json!({"name": e.set, "kind": "EntitySet", "url": e.set}))
            .collect();
        return Ok(json_answer(
            200,
            json!({"@odata.context": format!("{root}/$metadata"), "value": sets}),
            Vec::new(),
        ));
    }
    if rest == "$metadata" {
        return Ok((
            200,
            vec![
                ("Content-Type".into(), "application/xml".into()),
                ("OData-Version".into(), "4.0".into()),
            ],
            csdl::document().into_bytes(),
        ));
    }
    let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (set, key) = match head.split_once('(') {
        Some((set, k)) => {
            let Some(k) = k.strip_suffix(')') else {
                return Err(FnoError::not_found(head));
            };
            (set, Some(k))
        }
        None => (head, None),
    };
    let Some(e) = entities::by_set(set) else {
        return Err(FnoError::not_found(set));
    };
    let opts = options(query)?;
    match (key, tail, method) {
        (None, "", "GET") => collection(svc, e, &opts, query, root),
        (None, "$count", "GET") => {
            let n = select_rows(svc, e, &opts)?.len();
            Ok((
                200,
                vec![
                    ("Content-Type".into(), "text/plain".into()),
                    ("OData-Version".into(), "4.0".into()),
                ],
                n.to_string().into_bytes(),
            ))
        }
        (None, "", "POST") => create(svc, e, body, root),
        (Some(k), "", "GET") => {
            let key = parse_key(e, k)?;
            let row = find(svc, e, &key, &opts)?.1;
            let mut out = row.clone();
            if let Some(select) = &opts.select {
                let fields = query::parse_select(select, e)?;
                out.retain(|f, _| fields.contains(f));
            }
            out.insert("@odata.etag".into(), etag(&row).into());
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                format!("{root}/$metadata#{}/$entity", e.set).into(),
            );
            body.extend(out);
            Ok(json_answer(200, Value::Object(body), Vec::new()))
        }
        (Some(k), "", "PATCH") => {
            let key = parse_key(e, k)?;
            update(svc, e, &key, &opts, body, if_match)
        }
        (Some(k), "", "DELETE") => {
            let key = parse_key(e, k)?;
            let (index, row) = find(svc, e, &key, &opts)?;
            check_etag(&row, if_match)?;
            svc.rows.entry(e.set).or_default().remove(index);
            Ok(empty(204))
        }
        (Some(_), "", "PUT") => Err(FnoError::not_emulated("PUT (replace a record); use PATCH")),
        (_, "", m) => Err(FnoError::new(
            405,
            format!("The method {m} is not allowed on this resource."),
        )),
        (Some(_), t, _) if t.starts_with("Microsoft.Dynamics") => {
            Err(FnoError::not_emulated(&format!("the bound action {t}")))
        }
        (Some(_), t, _) => Err(FnoError::not_emulated(&format!(
            "property and navigation paths ('{t}')"
        ))),
        (None, t, _) => Err(FnoError::not_found(t)),
    }
}

fn check_etag(row: &Map<String, Value>, if_match: Option<&str>) -> Result<(), FnoError> {
    match if_match {
        None | Some("*") => Ok(()),
        Some(tag) if tag == etag(row) => Ok(()),
        Some(_) => Err(FnoError::new(
            412,
            "The record has been changed since it was read (its ETag no longer matches).",
        )),
    }
}

/// The rows a read sees: the default company's, or every company's with `cross-company=true`,
/// then `$filter`, then `$orderby` (the key order by default).
fn select_rows(
    svc: &Service,
    e: &Entity,
    opts: &Options,
) -> Result<Vec<Map<String, Value>>, FnoError> {
    let filter = match &opts.filter {
        Some(f) => Some(query::parse_filter(f, e)?),
        None => None,
    };
    let mut rows: Vec<Map<String, Value>> = svc
        .rows
        .get(e.set)
        .map(|rows| {
            rows.iter()
                .filter(|r| opts.cross_company || in_default_company(r))
                .filter(|r| filter.as_ref().is_none_or(|f| query::matches(f, r)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    rows.sort_by(|a, b| key_order(e, a, b));
    if let Some(orderby) = &opts.orderby {
        let by = query::parse_orderby(orderby, e)?;
        rows.sort_by(|a, b| query::order(a, b, &by));
    }
    Ok(rows)
}

fn in_default_company(row: &Map<String, Value>) -> bool {
    row.get("dataAreaId")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case(DEFAULT_COMPANY))
}

fn collection(
    svc: &Service,
    e: &Entity,
    opts: &Options,
    query: &str,
    root: &str,
) -> Result<Parts, FnoError> {
    let rows = select_rows(svc, e, opts)?;
    let total = rows.len();
    let select = match &opts.select {
        Some(s) => Some(query::parse_select(s, e)?),
        None => None,
    };
    let wanted = opts.top.unwrap_or(usize::MAX);
    let take = wanted.min(svc.page_size);
    let page: Vec<Value> = rows
        .iter()
        .skip(opts.skip)
        .take(take)
        .map(|r| {
            let mut out = Map::new();
            out.insert("@odata.etag".into(), etag(r).into());
            for (k, v) in r {
                if select.as_ref().is_none_or(|s| s.contains(k)) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Object(out)
        })
        .collect();
    let context = match &select {
        Some(s) => format!("{root}/$metadata#{}({})", e.set, s.join(",")),
        None => format!("{root}/$metadata#{}", e.set),
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), context.into());
    if opts.count {
        body.insert("@odata.count".into(), total.into());
    }
    body.insert("value".into(), Value::Array(page.clone()));
    // Server-driven paging: the next link repeats the query with `$skip` moved on (and what is
    // left of `$top`), as the OData service of F&O writes it.
    let served_to = opts.skip + page.len();
    if page.len() == take && take < wanted && served_to < total {
        // The caller's options are kept as written; `$skip` and `$top` are replaced.
        let mut next: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or_default().replace("%24", "$");
                name != "$skip" && name != "$top"
            })
            .map(str::to_string)
            .collect();
        if let Some(top) = opts.top {
            next.push(format!("$top={}", top - page.len()));
        }
        next.push(format!("$skip={served_to}"));
        let next = next.join("&");
        body.insert(
            "@odata.nextLink".into(),
            format!("{root}/{}?{next}", e.set).into(),
        );
    }
    Ok(json_answer(200, Value::Object(body), Vec::new()))
}

/// The row a key names, in the default company unless `cross-company=true`.
fn find(
    svc: &Service,
    e: &Entity,
    key: &Map<String, Value>,
    opts: &Options,
) -> Result<(usize, Map<String, Value>), FnoError> {
    svc.rows
        .get(e.set)
        .and_then(|rows| {
            rows.iter()
                .enumerate()
                .find(|(_, r)| same_key(e, r, key) && (opts.cross_company || in_default_company(r)))
        })
        .map(|(i, r)| (i, r.clone()))
        .ok_or_else(|| FnoError::not_found(&format!("{}({})", e.set, key_text(e, key))))
}

/// A field value of the right type, or 400 naming the field.
fn check_value(e: &Entity, field: &str, value: &Value) -> Result<Value, FnoError> {
    let Some(kind) = e.kind(field) else {
        return Err(FnoError::new(
            400,
            format!(
                "The property '{field}' does not exist on type '{NAMESPACE}.{}'. Make sure to only use property names that are defined by the type.",
                e.type_name
            ),
        ));
    };
    let fits = match (kind, value) {
        (_, Value::Null) => true,
        (Kind::Str | Kind::Enum(_), Value::String(_)) => true,
        (Kind::Decimal, Value::Number(_)) => true,
        (Kind::Int, Value::Number(n)) => n.is_i64(),
        (Kind::DateTime, Value::String(s)) => crate::datetime::parse_iso(s).is_some(),
        _ => false,
    };
    if !fits {
        return Err(FnoError::new(
            400,
            format!(
                "Cannot convert the value of '{field}' ({value}) to the type '{}'.",
                kind.edm()
            ),
        ));
    }
    Ok(match (kind, value) {
        (Kind::Decimal, Value::Number(n)) => json!(n.as_f64().unwrap_or_default()),
        (Kind::DateTime, Value::String(s)) => crate::datetime::parse_iso(s)
            .map(crate::datetime::format_iso)
            .unwrap_or_default()
            .into(),
        _ => value.clone(),
    })
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, FnoError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m.into_iter().filter(|(k, _)| !k.starts_with('@')).collect()),
        _ => Err(FnoError::new(
            400,
            "The request body must be a JSON object of the entity's fields.",
        )),
    }
}

fn now() -> Value {
    crate::datetime::format_iso(crate::datetime::now_secs()).into()
}

fn create(svc: &mut Service, e: &Entity, body: &[u8], root: &str) -> Result<Parts, FnoError> {
    let given = body_object(body)?;
    let mut row = Map::new();
    for (field, kind) in e.fields {
        let value = match given.get(*field) {
            Some(v) => check_value(e, field, v)?,
            None if matches!(kind, Kind::Str | Kind::Enum(_)) => Value::String(String::new()),
            None if matches!(kind, Kind::Decimal | Kind::Int) => json!(0),
            None => Value::Null,
        };
        row.insert(field.to_string(), value);
    }
    for field in given.keys() {
        check_value(e, field, &given[field])?;
    }
    // dataAreaId defaults to the caller's company; numbered keys come from the number sequence.
    if row["dataAreaId"].as_str().is_none_or(str::is_empty) {
        row.insert("dataAreaId".into(), DEFAULT_COMPANY.into());
    }
    row.insert(
        "dataAreaId".into(),
        row["dataAreaId"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .into(),
    );
    for key in e.keys {
        let empty = matches!(row.get(*key), None | Some(Value::Null))
            || row.get(*key).and_then(Value::as_str) == Some("");
        if !empty {
            continue;
        }
        match e.numbered {
            Some((field, prefix)) if field == *key => {
                row.insert(
                    field.into(),
                    format!("{prefix}{:06}", svc.next_number).into(),
                );
                svc.next_number += 1;
            }
            _ => {
                return Err(FnoError::write_failed(format!(
                    "Write failed for table row of type '{}'. Infolog: Error: Field '{key}' must be filled in.",
                    e.type_name
                )));
            }
        }
    }
    if e.has_modified() {
        row.insert(MODIFIED.into(), now());
    }
    if e.set == "SalesOrderLinesV2" {
        let header: Map<String, Value> = e
            .keys
            .iter()
            .take(2)
            .map(|k| (k.to_string(), row[*k].clone()))
            .collect();
        let headers = entities::by_set("SalesOrderHeadersV2").expect("served");
        let exists = svc
            .rows
            .get(headers.set)
            .is_some_and(|rows| rows.iter().any(|r| same_key(headers, r, &header)));
        if !exists {
            return Err(FnoError::write_failed(format!(
                "Write failed for table row of type '{}'. Infolog: Error: Sales order {} does not exist in company {}.",
                e.type_name,
                row["SalesOrderNumber"].as_str().unwrap_or_default(),
                row["dataAreaId"].as_str().unwrap_or_default()
            )));
        }
    }
    let rows = svc.rows.entry(e.set).or_default();
    if rows.iter().any(|r| same_key(e, r, &row)) {
        return Err(FnoError::write_failed(format!(
            "Write failed for table row of type '{}'. Infolog: Error: Cannot create a record in {} ({}). The record already exists.",
            e.type_name,
            e.set,
            key_text(e, &row)
        )));
    }
    rows.push(row.clone());
    let id = format!("{root}/{}({})", e.set, key_text(e, &row));
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        format!("{root}/$metadata#{}/$entity", e.set).into(),
    );
    out.insert("@odata.etag".into(), etag(&row).into());
    out.extend(row);
    Ok(json_answer(
        201,
        Value::Object(out),
        vec![
            ("Location".into(), id.clone()),
            ("OData-EntityId".into(), id),
        ],
    ))
}

fn update(
    svc: &mut Service,
    e: &Entity,
    key: &Map<String, Value>,
    opts: &Options,
    body: &[u8],
    if_match: Option<&str>,
) -> Result<Parts, FnoError> {
    let given = body_object(body)?;
    let (index, mut row) = find(svc, e, key, opts)?;
    check_etag(&row, if_match)?;
    for (field, value) in &given {
        let value = check_value(e, field, value)?;
        if e.keys.contains(&field.as_str()) {
            let same = match (&value, row.get(field)) {
                (Value::String(a), Some(Value::String(b))) => a.eq_ignore_ascii_case(b),
                (a, Some(b)) => a == b,
                _ => false,
            };
            if !same {
                return Err(FnoError::write_failed(format!(
                    "Write failed for table row of type '{}'. Infolog: Error: The key field '{field}' cannot be changed.",
                    e.type_name
                )));
            }
            continue;
        }
        row.insert(field.clone(), value);
    }
    if e.has_modified() {
        row.insert(MODIFIED.into(), now());
    }
    svc.rows.entry(e.set).or_default()[index] = row;
    Ok(empty(204))
}
