//! `POST $batch`: multipart/mixed requests with optional change sets (all-or-nothing),
//! `Content-ID` references, `Prefer: odata.continue-on-error` and the 1000-request limit.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::error::DvError;
use crate::guid::Guid;
use crate::impersonation;
use crate::routes;
use crate::store::Store;
use crate::wire::Caller;
use crate::wire::{JSON, Req, Resp};

/// Most requests one batch (and one change set) may hold.
pub const MAX_REQUESTS: usize = 1000;

/// One request inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub content_id: Option<String>,
    pub method: String,
    /// As written in the request line (absolute, origin-form, relative or `$n/...`).
    pub url: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A top-level part: a single request or a change set.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Single(Op),
    ChangeSet(Vec<Op>),
}

/// The answer to one request.
struct Answer {
    content_id: Option<String>,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

enum Out {
    Single(Answer),
    ChangeSet(Vec<Answer>),
}

/// The boundary parameter of a multipart content type (quoted or not).
pub fn boundary_of(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let kind = parts.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

fn bad(message: impl Into<String>) -> DvError {
    DvError::bad_request(message)
}

/// Splits a multipart body into the raw texts of its parts.
fn split_parts<'a>(body: &'a str, boundary: &str) -> Result<Vec<&'a str>, DvError> {
    let open = format!("--{boundary}");
    let close = format!("{open}--");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    let mut closed = false;
    while pos < body.len() {
        let end = body[pos..].find('\n').map_or(body.len(), |i| pos + i + 1);
        let line = body[pos..end].trim_end_matches(['\r', '\n']);
        let trimmed = line.trim_end();
        if trimmed == open || trimmed == close {
            if let Some(s) = start {
                // The line break before a delimiter belongs to the delimiter.
                let mut text = &body[s..pos];
                text = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(text);
                parts.push(text);
            }
            if trimmed.ends_with("--") && trimmed.len() == open.len() + 2 {
                closed = true;
                break;
            }
            start = Some(end);
        }
        pos = end;
    }
    if !closed {
        return Err(bad(format!(
            "The multipart body is missing its closing delimiter '--{boundary}--'."
        )));
    }
    Ok(parts)
}

/// Splits `text` at the first blank line into header lines and the rest.
fn split_head(text: &str) -> (Vec<(String, String)>, &str) {
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        let line = text[pos..end].trim_end_matches(['\r', '\n']);
        pos = end;
        if line.trim().is_empty() {
            return (headers, &text[pos..]);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (headers, "")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Parses an `application/http` part into a request.
fn parse_op(part: &str) -> Result<Op, DvError> {
    let (mime, rest) = split_head(part);
    let content_id = header(&mime, "content-id").map(str::to_string);
    let ct = header(&mime, "content-type").unwrap_or("application/http");
    if !ct
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/http"))
    {
        return Err(bad(format!(
            "A batch part must have Content-Type 'application/http', not '{ct}'."
        )));
    }
    let rest = rest.trim_start_matches(['\r', '\n']);
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let request_line = rest[..line_end].trim();
    let after = rest.get(line_end + 1..).unwrap_or("");
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(bad(format!(
            "The batch part request line '{request_line}' is not valid."
        )));
    };
    let method = method.to_ascii_uppercase();
    if !matches!(
        method.as_str(),
        "GET" | "POST" | "PATCH" | "PUT" | "DELETE" | "HEAD"
    ) {
        return Err(bad(format!(
            "The HTTP method '{method}' is not valid in a batch part."
        )));
    }
    let (headers, body) = split_head(after);
    let body = body.trim_end_matches(['\r', '\n']);
    Ok(Op {
        content_id,
        method,
        url: url.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
    })
}

/// Parses a whole `$batch` body.
pub fn parse(body: &[u8], content_type: &str) -> Result<Vec<Item>, DvError> {
    let boundary = boundary_of(content_type).ok_or_else(|| {
        bad("The content type of a $batch request must be multipart/mixed with a boundary.")
    })?;
    let text = std::str::from_utf8(body)
        .map_err(|_| bad("The $batch request body is not valid UTF-8."))?;
    let mut items = Vec::new();
    for part in split_parts(text, &boundary)? {
        let (mime, rest) = split_head(part);
        let ct = header(&mime, "content-type").unwrap_or("");
        if let Some(cs) = boundary_of(ct) {
            let mut ops = Vec::new();
            for p in split_parts(rest, &cs)? {
                let op = parse_op(p)?;
                if op.method == "GET" || op.method == "HEAD" {
                    return Err(bad("GET requests are not allowed inside a change set."));
                }
                ops.push(op);
            }
            items.push(Item::ChangeSet(ops));
        } else {
            items.push(Item::Single(parse_op(part)?));
        }
    }
    let mut total = 0;
    for item in &items {
        match item {
            Item::Single(_) => total += 1,
            Item::ChangeSet(ops) => {
                if ops.len() > MAX_REQUESTS {
                    return Err(bad(format!(
                        "The current change set contains too many operations. A maximum number of '{MAX_REQUESTS}' operations are allowed in a change set."
                    )));
                }
                total += ops.len();
            }
        }
    }
    if total > MAX_REQUESTS {
        return Err(bad(format!(
            "The current batch message contains too many parts. Only batch messages with a maximum number of '{MAX_REQUESTS}' query operations, including changeset operations, are allowed."
        )));
    }
    Ok(items)
}

fn content_id_error(reference: &str) -> DvError {
    bad(format!(
        "Content-ID Reference: '{reference}' does not exist in the batch context."
    ))
}

/// The path below the version segment (and the query) of a part's URL, with a leading
/// `$n` replaced by the entity it names.
fn resolve_url(url: &str, ids: &HashMap<String, String>) -> Result<(String, String), DvError> {
    let mut u = url.trim();
    if let Some(i) = u.find("://") {
        let after = &u[i + 3..];
        u = after.find('/').map_or("", |j| &after[j..]);
    }
    if let Some(i) = u.find("/api/data/v") {
        let rest = &u[i + "/api/data/".len()..];
        u = rest.split_once('/').map_or("", |x| x.1);
    }
    let u = u.trim_start_matches('/');
    let (path, query) = u.split_once('?').unwrap_or((u, ""));
    let mut path = path.to_string();
    if let Some(r) = path.strip_prefix('$') {
        let end = r
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
            .unwrap_or(r.len());
        let name = &r[..end];
        if let Some(target) = ids.get(name) {
            path = format!("{target}{}", &r[end..]);
        } else if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(content_id_error(&format!("${name}")));
        }
    }
    Ok((path, query.to_string()))
}

/// Replaces `$n` in `@odata.bind` / `@odata.id` values of a JSON body.
fn resolve_body(body: &[u8], ids: &HashMap<String, String>) -> Result<Vec<u8>, DvError> {
    if !body.windows(2).any(|w| w == b"\"$") {
        return Ok(body.to_vec());
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return Ok(body.to_vec()); // the handler reports the bad JSON
    };
    fn walk(v: &mut Value, ids: &HashMap<String, String>) -> Result<(), DvError> {
        match v {
            Value::Object(m) => {
                for (k, val) in m.iter_mut() {
                    let is_ref = k.ends_with("@odata.bind") || k == "@odata.id";
                    match val {
                        Value::String(s) if is_ref => swap(s, ids)?,
                        Value::Array(items) if is_ref => {
                            for it in items {
                                if let Value::String(s) = it {
                                    swap(s, ids)?;
                                }
                            }
                        }
                        other => walk(other, ids)?,
                    }
                }
            }
            Value::Array(items) => {
                for it in items {
                    walk(it, ids)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    fn swap(s: &mut String, ids: &HashMap<String, String>) -> Result<(), DvError> {
        if let Some(name) = s.strip_prefix('$') {
            let (head, tail) = name.split_once('/').unwrap_or((name, ""));
            let target = ids.get(head).ok_or_else(|| content_id_error(s))?;
            *s = if tail.is_empty() {
                format!("/{target}")
            } else {
                format!("/{target}/{tail}")
            };
        }
        Ok(())
    }
    walk(&mut v, ids)?;
    Ok(v.to_string().into_bytes())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn fresh_guid() -> Guid {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Guid::from_seed(crate::datetime::now_secs() as u64 ^ 0xba7c, n)
}

/// Runs one request against the store.
fn run(store: &mut StoreAccess, outer: &Req, op: &Op, ids: &HashMap<String, String>) -> Answer {
    let result = (|| {
        let (path, query) = resolve_url(&op.url, ids)?;
        if path == "$batch" || path.starts_with("$batch") {
            return Err(bad("Batch requests cannot be nested."));
        }
        let body = resolve_body(&op.body, ids)?;
        let (caller, impersonator) = match store {
            StoreAccess::Shared(lock) => {
                acting(&lock.read().unwrap_or_else(|p| p.into_inner()), outer, op)?
            }
            StoreAccess::Locked(s) => acting(s, outer, op)?,
        };
        let req = Req {
            method: &op.method,
            path: &path,
            query: &query,
            headers: &op.headers,
            body: &body,
            api: outer.api.clone(),
            caller,
            impersonator,
            delegates: outer.delegates,
            organization_id: outer.organization_id,
            limits: outer.limits,
        };
        let eff = if op.method == "HEAD" {
            "GET"
        } else {
            &op.method
        };
        let resp = match store {
            StoreAccess::Shared(lock) => {
                if routes::is_read(eff) {
                    let s = lock.read().unwrap_or_else(|p| p.into_inner());
                    routes::handle_read(&s, &req)
                } else {
                    let mut s = lock.write().unwrap_or_else(|p| p.into_inner());
                    routes::handle_write(&mut s, &req)
                }
            }
            StoreAccess::Locked(s) => {
                if routes::is_read(eff) {
                    routes::handle_read(s, &req)
                } else {
                    routes::handle_write(s, &req)
                }
            }
        }?;
        Ok((resp, routes::is_read(eff)))
    })();
    match result {
        Ok((
            Resp {
                status,
                headers: extra,
                body,
                content_type,
            },
            read,
        )) => {
            let mut headers = Vec::new();
            if let Some(ct) = content_type {
                let ct = if read && ct == JSON {
                    "application/json; odata.metadata=minimal; odata.streaming=true"
                } else {
                    ct
                };
                headers.push(("Content-Type".to_string(), ct.to_string()));
            }
            headers.push(("OData-Version".into(), "4.0".into()));
            if let Some((_, loc)) = extra
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("OData-EntityId"))
            {
                headers.push(("Location".into(), loc.clone()));
            }
            headers.extend(extra);
            Answer {
                content_id: op.content_id.clone(),
                status,
                headers,
                body,
            }
        }
        Err(e) => Answer {
            content_id: op.content_id.clone(),
            status: e.status,
            headers: vec![
                ("REQ_ID".into(), fresh_guid().to_string()),
                ("Content-Type".into(), JSON.into()),
                ("OData-Version".into(), "4.0".into()),
            ],
            body: e.body(),
        },
    }
}

/// Who one request of a batch runs as, and the calling user when that is someone else. The
/// batch request's `MSCRMCallerID` / `CallerObjectId` apply to every request in it (the caller
/// is resolved once, in server.rs); a request naming a user of its own runs as that user. The
/// calling user is always the bearer token's (impersonation.rs).
fn acting(store: &Store, outer: &Req, op: &Op) -> Result<(Caller, Option<Guid>), DvError> {
    if !impersonation::requested(&op.headers) {
        return Ok((outer.caller, outer.impersonator));
    }
    let calling = outer.calling_user();
    let org = impersonation::Organization {
        organization_id: outer.organization_id,
        delegates: outer.delegates,
    };
    let run_as = impersonation::resolve(store, &org, calling, &op.headers)?;
    let user = run_as.unwrap_or(calling);
    let caller = Caller {
        user,
        business_unit: impersonation::business_unit_of(store, user)
            .unwrap_or(outer.caller.business_unit),
    };
    Ok((caller, run_as.map(|_| calling)))
}

enum StoreAccess<'a> {
    Shared(&'a RwLock<Store>),
    Locked(&'a mut Store),
}

/// The entity path (`contacts(<guid>)`) an answer's `OData-EntityId` names.
fn entity_path(a: &Answer, api: &str) -> Option<String> {
    let (_, v) = a
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("OData-EntityId"))?;
    let p = v.strip_prefix(api).unwrap_or(v);
    Some(p.trim_start_matches('/').to_string())
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Handles `POST $batch`.
pub fn handle(lock: &RwLock<Store>, req: &Req) -> Result<Resp, DvError> {
    let ct = req.header("content-type").unwrap_or("");
    let items = parse(req.body, ct)?;
    let continue_on_error = req.prefer().continue_on_error;
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut outs = Vec::new();
    let mut outer_status = 200;
    for item in &items {
        match item {
            Item::Single(op) => {
                let a = run(&mut StoreAccess::Shared(lock), req, op, &ids);
                if let (Some(cid), Some(p)) = (&a.content_id, entity_path(&a, &req.api)) {
                    ids.insert(cid.clone(), p);
                }
                let failed = !ok(a.status) && a.status != 304;
                let status = a.status;
                outs.push(Out::Single(a));
                if failed && !continue_on_error {
                    outer_status = status;
                    break;
                }
            }
            Item::ChangeSet(ops) => {
                let mut store = lock.write().unwrap_or_else(|p| p.into_inner());
                store.begin_tx();
                let mut local = ids.clone();
                let mut answers = Vec::new();
                let mut failure = None;
                for op in ops {
                    let a = run(&mut StoreAccess::Locked(&mut store), req, op, &local);
                    if !ok(a.status) {
                        failure = Some(a);
                        break;
                    }
                    if let (Some(cid), Some(p)) = (&a.content_id, entity_path(&a, &req.api)) {
                        local.insert(cid.clone(), p);
                    }
                    answers.push(a);
                }
                match failure {
                    Some(a) => {
                        store.rollback_tx();
                        let status = a.status;
                        outs.push(Out::ChangeSet(vec![a]));
                        if !continue_on_error {
                            outer_status = status;
                            break;
                        }
                    }
                    None => {
                        store.commit_tx();
                        ids = local;
                        outs.push(Out::ChangeSet(answers));
                    }
                }
            }
        }
    }
    let boundary = format!("batchresponse_{}", fresh_guid());
    let mut body = Vec::with_capacity(outs.len() * 300);
    for out in &outs {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match out {
            Out::Single(a) => write_answer(&mut body, a),
            Out::ChangeSet(answers) => {
                let cs = format!("changesetresponse_{}", fresh_guid());
                body.extend_from_slice(
                    format!("Content-Type: multipart/mixed; boundary={cs}\r\n\r\n").as_bytes(),
                );
                for a in answers {
                    body.extend_from_slice(format!("--{cs}\r\n").as_bytes());
                    write_answer(&mut body, a);
                }
                body.extend_from_slice(format!("--{cs}--\r\n").as_bytes());
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(Resp {
        status: outer_status,
        headers: vec![(
            "Content-Type".into(),
            format!("multipart/mixed; boundary={boundary}"),
        )],
        body,
        content_type: None,
    })
}

fn write_answer(out: &mut Vec<u8>, a: &Answer) {
    out.extend_from_slice(
        b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
    );
    if let Some(cid) = &a.content_id {
        for piece in ["Content-ID: ", cid, "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", a.status, reason(a.status)).as_bytes());
    for (k, v) in &a.headers {
        for piece in [k.as_str(), ": ", v, "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&a.body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: &str = "--batch_1\r\nContent-Type: multipart/mixed; boundary=\"changeset_9\"\r\n\r\n--changeset_9\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPOST http://127.0.0.1:1/api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"firstname\":\"John\"}\r\n--changeset_9\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\nPOST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Acme\",\"primarycontactid@odata.bind\":\"$1\"}\r\n--changeset_9--\r\n\r\n--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET accounts?$select=name HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--batch_1--\r\n";

    #[test]
    fn boundaries_are_read_quoted_unquoted_and_without_spaces() {
        assert_eq!(
            boundary_of("multipart/mixed;boundary=dwa_batch_1").as_deref(),
            Some("dwa_batch_1")
        );
        assert_eq!(
            boundary_of("multipart/mixed; boundary=\"batch_2\"").as_deref(),
            Some("batch_2")
        );
        assert_eq!(boundary_of("application/json"), None);
    }

    #[test]
    fn a_change_set_and_a_get_parse_into_items_in_order() {
        let items = parse(CS.as_bytes(), "multipart/mixed;boundary=batch_1").unwrap();
        assert_eq!(items.len(), 2);
        let Item::ChangeSet(ops) = &items[0] else {
            panic!("first item is a change set")
        };
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].content_id.as_deref(), Some("1"));
        assert_eq!(ops[0].method, "POST");
        assert_eq!(ops[0].body, b"{\"firstname\":\"John\"}");
        assert_eq!(ops[1].url, "/api/data/v9.2/accounts");
        let Item::Single(get) = &items[1] else {
            panic!("second item is a request")
        };
        assert_eq!(get.method, "GET");
        assert_eq!(get.url, "accounts?$select=name");
        assert!(get.body.is_empty());
    }

    #[test]
    fn lf_only_line_endings_parse_too() {
        let text = CS.replace("\r\n", "\n");
        let items = parse(text.as_bytes(), "multipart/mixed; boundary=batch_1").unwrap();
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn urls_lose_their_origin_and_version_and_resolve_content_ids() {
        let mut ids = HashMap::new();
        ids.insert("1".to_string(), "contacts(abc)".to_string());
        assert_eq!(
            resolve_url("http://h:1/api/data/v9.2/accounts?$top=1", &ids).unwrap(),
            ("accounts".into(), "$top=1".into())
        );
        assert_eq!(
            resolve_url("$1/lastname", &ids).unwrap(),
            ("contacts(abc)/lastname".into(), String::new())
        );
        let err = resolve_url("$2", &ids).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message.contains("'$2' does not exist"),
            "{}",
            err.message
        );
        let body = resolve_body(br#"{"a@odata.bind":"$1","n":"$1"}"#, &ids).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["a@odata.bind"], "/contacts(abc)");
        assert_eq!(v["n"], "$1");
    }

    #[test]
    fn more_than_a_thousand_requests_are_refused() {
        let mut text = String::new();
        for _ in 0..1001 {
            text.push_str("--b\r\nContent-Type: application/http\r\n\r\nDELETE accounts(00000000-0000-0000-0000-000000000001) HTTP/1.1\r\n\r\n\r\n");
        }
        text.push_str("--b--\r\n");
        let err = parse(text.as_bytes(), "multipart/mixed;boundary=b").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("'1000'"), "{}", err.message);
    }

    #[test]
    fn a_missing_closing_delimiter_and_a_get_in_a_change_set_are_errors() {
        assert_eq!(
            parse(b"--b\r\n", "multipart/mixed;boundary=b")
                .unwrap_err()
                .status,
            400
        );
        let text = "--b\r\nContent-Type: multipart/mixed;boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\n\r\nGET accounts HTTP/1.1\r\n\r\n\r\n--c--\r\n--b--\r\n";
        let err = parse(text.as_bytes(), "multipart/mixed;boundary=b").unwrap_err();
        assert!(err.message.contains("GET"), "{}", err.message);
    }
}
