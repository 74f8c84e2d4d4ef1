//! The admin API: what Rust tests reach through [`crate::Emulator`] (fault injection, the
//! service-protection limit, the request log, table snapshots), over HTTP on the emulator's own
//! port, so a flow builder running `dynamics emulator` can rehearse what their flow does when
//! Dataverse throttles or fails.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/_admin/faults` | the pending fault rules |
//! | POST | `/_admin/faults` | adds a rule: `{"rule": "throttle:3@/accounts"}`, or its parts `{"fault": "throttle", "retryAfterSecs": 2, "times": 3, "skip": 0, "path": "/accounts"}` (`delayMs` for `delay`) |
//! | DELETE | `/_admin/faults` | clears every rule |
//! | GET | `/_admin/limits` | the service-protection limit: `{"rateLimit": {"requests": 100, "windowSecs": 60, "text": "100/60s"}}` or `{"rateLimit": null}` |
//! | PUT | `/_admin/limits` | sets it: `{"rateLimit": "100/60s"}`, `{"rateLimit": {"requests": 100, "windowSecs": 60}}`, or `{"rateLimit": null}` to switch it off |
//! | GET | `/_admin/cost` | the cost model and how many requests its limits refused: `{"costModel": {"latencyMs": 100, "perRecordMs": 1, "concurrentRequests": 52, "dopHint": 48, "requests": 6000, "executionMs": 1200000, "windowSecs": 300} or null, "throttled": {"requests": 0, "executionTime": 0, "concurrency": 0, "total": 0}}` |
//! | PUT | `/_admin/cost` | sets it: `{"costModel": {"latencyMs": 100, "perRecordMs": 1}}` (every field optional: `windowSecs` scales the documented budgets, the others set their value), or `{"costModel": null}` to switch it off |
//! | GET | `/_admin/requests[?since=N]` | the request log (entries after sequence number N): method, path, status, the fault met, headers (Authorization values withheld), body (secrets of token requests withheld) |
//! | DELETE | `/_admin/requests` | clears the request log |
//! | GET | `/_admin/tables/{entity set or logical name}` | every row of a table, all columns |
//!
//! Fault rules are written as `KIND[=VALUE][:[SKIP+]TIMES][@PATH]` (see `faults`). Admin requests
//! are neither logged, faulted nor counted against the limit.
//!
//! Guarded as the flow designer's API is: every request carries the random key the emulator
//! prints at start (`X-Emulator-Admin-Key: KEY` or `Authorization: Bearer KEY`, else 401); the
//! `Host` must be this server (`127.0.0.1:PORT` or `localhost:PORT`, else 403, so a page that
//! rebinds its DNS name to 127.0.0.1 cannot reach it); an `Origin`, when sent, must be this
//! server (403); bodies must be JSON (`application/json`, else 415) and at most 64 KiB (413).
//! Errors answer `{"error": {"code": "...", "message": "..."}}`.

use serde_json::{Map, Value, json};

use crate::RecordedRequest;
use crate::faults::{Fault, FaultRule};
use crate::server::App;
use crate::store::Store;
use crate::throttle::RateLimit;

/// The prefix every admin path starts with.
pub const PREFIX: &str = "/_admin";

/// The header that carries the admin key (or `Authorization: Bearer KEY`).
pub const KEY_HEADER: &str = "x-emulator-admin-key";

const MAX_BODY: usize = 64 * 1024;

type Parts = (u16, Vec<(String, String)>, Vec<u8>);

/// A new random admin key (48 hex digits).
pub fn random_key() -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: a key nobody can guess is impossible, so none works at all.
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty()
        && given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn answer(status: u16, body: &Value) -> Parts {
    (
        status,
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        body.to_string().into_bytes(),
    )
}

fn fail(status: u16, code: &str, message: impl Into<String>) -> Parts {
    answer(
        status,
        &json!({"error": {"code": code, "message": message.into()}}),
    )
}

/// The guard: Host, key, Origin, JSON body.
fn refused(app: &App, method: &str, headers: &[(String, String)], body: &[u8]) -> Option<Parts> {
    let port = app.addr.port();
    let ours =
        |host: &str| host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}");
    if !header(headers, "host").is_some_and(ours) {
        return Some(fail(
            403,
            "forbidden",
            format!("the admin API answers only requests to 127.0.0.1:{port} or localhost:{port}"),
        ));
    }
    let bearer = header(headers, "authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let key = header(headers, KEY_HEADER).or(bearer);
    if !key.is_some_and(|k| same_secret(k, &app.admin_key)) {
        return Some(fail(
            401,
            "unauthenticated",
            "send the admin key the emulator printed at start as X-Emulator-Admin-Key or Authorization: Bearer",
        ));
    }
    if let Some(origin) = header(headers, "origin")
        && !origin
            .split_once("://")
            .is_some_and(|(scheme, host)| scheme == app.scheme && ours(host))
    {
        return Some(fail(
            403,
            "forbidden",
            "requests from other origins are refused",
        ));
    }
    if body.len() > MAX_BODY {
        return Some(fail(413, "too-large", "admin requests take at most 64 KiB"));
    }
    let json = header(headers, "content-type").is_some_and(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case("application/json")
    });
    if (!body.is_empty() || matches!(method, "POST" | "PUT")) && !json {
        return Some(fail(
            415,
            "unsupported-media-type",
            "send the request body as application/json",
        ));
    }
    None
}

/// Answers a request below [`PREFIX`].
pub fn handle(
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Parts {
    if let Some(refusal) = refused(app, method, headers, body) {
        return refusal;
    }
    let parsed: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return fail(400, "invalid-json", format!("the body is not JSON: {e}")),
        }
    };
    let rest = path
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .trim_end_matches('/');
    let not_allowed = |allow: &str| {
        let (s, mut h, b) = fail(405, "method-not-allowed", format!("{path} takes {allow}"));
        h.push(("Allow".into(), allow.into()));
        (s, h, b)
    };
    match (method, rest) {
        ("GET", "") => answer(
            200,
            &json!({"endpoints": [
                "GET /_admin/faults", "POST /_admin/faults", "DELETE /_admin/faults",
                "GET /_admin/limits", "PUT /_admin/limits",
                "GET /_admin/cost", "PUT /_admin/cost",
                "GET /_admin/requests", "DELETE /_admin/requests",
                "GET /_admin/tables/{name}",
            ]}),
        ),
        (_, "") => not_allowed("GET"),
        ("GET", "/faults") => answer(200, &faults_json(app)),
        ("POST", "/faults") => match rule_from(&parsed) {
            Ok(rule) => {
                let added = rule_json(&rule);
                app.faults.add(rule);
                let mut out = faults_json(app);
                out["added"] = added;
                answer(201, &out)
            }
            Err(e) => fail(400, "invalid-rule", e),
        },
        ("DELETE", "/faults") => {
            let cleared = app.faults.rules().len();
            app.faults.clear();
            answer(200, &json!({"cleared": cleared, "faults": []}))
        }
        (_, "/faults") => not_allowed("GET, POST, DELETE"),
        ("GET", "/limits") => answer(200, &limits_json(app)),
        ("PUT", "/limits") => match limit_from(&parsed) {
            Ok(limit) => {
                if let Ok(mut l) = app.rate_limit.lock() {
                    *l = limit;
                }
                answer(200, &limits_json(app))
            }
            Err(e) => fail(400, "invalid-limit", e),
        },
        (_, "/limits") => not_allowed("GET, PUT"),
        ("GET", "/cost") => answer(200, &cost_json(app)),
        ("PUT", "/cost") => {
            let model = match parsed.get("costModel") {
                Some(Value::Null) => Ok(None),
                Some(m) => crate::cost::CostModel::from_json(m).map(Some),
                None => Err(r#"send {"costModel": {"latencyMs": 100, "perRecordMs": 1}} or {"costModel": null}"#.to_string()),
            };
            match model {
                Ok(model) => {
                    app.cost.set_model(model);
                    answer(200, &cost_json(app))
                }
                Err(e) => fail(400, "invalid-cost-model", e),
            }
        }
        (_, "/cost") => not_allowed("GET, PUT"),
        ("GET", "/requests") => {
            let since = crate::odata::query::parse_pairs(query)
                .into_iter()
                .find(|(k, _)| k == "since")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .unwrap_or(0);
            let (requests, dropped) = app
                .requests
                .lock()
                .map(|log| {
                    let requests: Vec<Value> = log
                        .iter()
                        .filter(|r| r.seq > since)
                        .map(request_json)
                        .collect();
                    (requests, log.dropped())
                })
                .unwrap_or_default();
            answer(
                200,
                &json!({"recording": app.config.record_requests, "requests": requests, "dropped": dropped}),
            )
        }
        ("DELETE", "/requests") => {
            let cleared = app.requests.lock().map(|mut r| r.clear()).unwrap_or(0);
            answer(200, &json!({"cleared": cleared}))
        }
        (_, "/requests") => not_allowed("GET, DELETE"),
        ("GET", t) if t.starts_with("/tables/") => {
            let name = percent_encoding::percent_decode_str(&t["/tables/".len()..])
                .decode_utf8_lossy()
                .into_owned();
            let store = app.store.read().unwrap_or_else(|p| p.into_inner());
            match table_rows(&store, &name) {
                Some(rows) => answer(
                    200,
                    &json!({"table": name, "count": rows.len(), "value": rows}),
                ),
                None => fail(
                    404,
                    "not-found",
                    format!("the emulator has no table {name:?}"),
                ),
            }
        }
        (_, t) if t.starts_with("/tables/") => not_allowed("GET"),
        _ => fail(
            404,
            "not-found",
            format!("no admin endpoint {path}; GET {PREFIX} lists them"),
        ),
    }
}

fn cost_json(app: &App) -> Value {
    json!({
        "costModel": app.cost.model().map(|m| m.to_json()),
        "throttled": app.cost.throttled().to_json(),
    })
}

/// Every row of a table (by entity set or logical name), all columns in wire names with
/// `@odata.etag`, ordered by primary key; None for a table the emulator does not have.
pub fn table_rows(store: &Store, name: &str) -> Option<Vec<Value>> {
    let e = store
        .schema
        .entity_by_set(name)
        .or_else(|| store.schema.entity(name))?;
    Some(
        store
            .rows(e)
            .values()
            .map(|r| crate::render::row_to_json(store, e, r))
            .collect(),
    )
}

fn rule_json(rule: &FaultRule) -> Value {
    let mut v = json!({
        "rule": rule.to_string(),
        "fault": rule.fault.kind(),
        "times": rule.times,
        "skip": rule.skip,
        "path": rule.path_contains,
    });
    match &rule.fault {
        Fault::Throttle { retry_after_secs } => v["retryAfterSecs"] = json!(retry_after_secs),
        Fault::Delay(d) => v["delayMs"] = json!(d.as_millis() as u64),
        _ => {}
    }
    v
}

fn faults_json(app: &App) -> Value {
    let rules: Vec<Value> = app.faults.rules().iter().map(rule_json).collect();
    json!({"faults": rules})
}

/// A rule from `{"rule": "..."}` or from its parts.
fn rule_from(body: &Value) -> Result<FaultRule, String> {
    let Some(obj) = body.as_object() else {
        return Err(r#"send {"rule": "throttle:3@/accounts"} or {"fault": "throttle", "times": 3, "path": "/accounts"}"#.into());
    };
    if let Some(text) = obj.get("rule") {
        let text = text
            .as_str()
            .ok_or("\"rule\" is a string such as \"throttle:3@/accounts\"")?;
        return text.parse();
    }
    let kind = obj.get("fault").and_then(Value::as_str).ok_or(
        "\"fault\" names the fault: throttle, unavailable, bad-gateway, delay, cut or malformed",
    )?;
    let count = |name: &str, default: usize| -> Result<usize, String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(format!("\"{name}\" is a whole number")),
        }
    };
    let value = match kind {
        "throttle" | "429" => obj
            .get("retryAfterSecs")
            .filter(|v| !v.is_null())
            .map(|v| {
                v.as_u64()
                    .map(|n| n.to_string())
                    .ok_or("\"retryAfterSecs\" is a whole number")
            })
            .transpose()?,
        "delay" => Some(
            obj.get("delayMs")
                .and_then(Value::as_u64)
                .map(|n| format!("{n}ms"))
                .ok_or("a delay needs \"delayMs\"")?,
        ),
        _ => None,
    };
    let fault = Fault::from_kind(kind, value.as_deref())?;
    let times = count("times", 1)?;
    if times == 0 {
        return Err("\"times\" must be at least 1".into());
    }
    let path = match obj.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if !p.is_empty() => Some(p.clone()),
        Some(_) => return Err("\"path\" is a non-empty string".into()),
    };
    Ok(FaultRule {
        fault,
        skip: count("skip", 0)?,
        times,
        path_contains: path,
    })
}

fn limits_json(app: &App) -> Value {
    let limit = app.rate_limit.lock().ok().and_then(|l| *l);
    json!({"rateLimit": limit.map(|l| json!({
        "requests": l.requests,
        "windowSecs": l.window.as_secs_f64(),
        "text": l.to_string(),
    }))})
}

fn limit_from(body: &Value) -> Result<Option<RateLimit>, String> {
    let usage = r#"send {"rateLimit": "100/60s"}, {"rateLimit": {"requests": 100, "windowSecs": 60}} or {"rateLimit": null}"#;
    let v = body
        .as_object()
        .and_then(|o| o.get("rateLimit"))
        .ok_or(usage)?;
    match v {
        Value::Null => Ok(None),
        Value::String(s) => s.parse().map(Some),
        Value::Object(o) => {
            let requests = o.get("requests").and_then(Value::as_u64).ok_or(usage)?;
            let secs = o.get("windowSecs").and_then(Value::as_f64).ok_or(usage)?;
            if requests == 0 || !(secs > 0.0 && secs.is_finite()) {
                return Err("a limit needs requests and a window above 0".into());
            }
            Ok(Some(RateLimit {
                requests: usize::try_from(requests).map_err(|_| usage.to_string())?,
                window: std::time::Duration::from_secs_f64(secs),
            }))
        }
        _ => Err(usage.into()),
    }
}

/// Headers whose values are secrets.
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", KEY_HEADER];

/// Form fields of token requests whose values are secrets.
const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "password",
    "refresh_token",
    "code",
    "code_verifier",
    "client_assertion",
    "assertion",
];

/// JSON properties whose values are secrets (compared without case).
const SECRET_PROPERTIES: &[&str] = &[
    "authvalue",
    "saskey",
    "sastoken",
    "password",
    "client_secret",
    "clientsecret",
    "secret",
    "token",
    "access_token",
    "refresh_token",
];

const WITHHELD: &str = "(withheld)";

fn withhold_form(text: &str) -> String {
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| {
            let v = if SECRET_FIELDS.contains(&k.as_ref()) {
                WITHHELD.into()
            } else {
                v
            };
            form_urlencoded::Serializer::new(String::new())
                .append_pair(&k, &v)
                .finish()
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn withhold_json(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                if SECRET_PROPERTIES.contains(&key.to_ascii_lowercase().as_str()) {
                    *inner = Value::String(WITHHELD.into());
                } else {
                    withhold_json(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(withhold_json),
        _ => {}
    }
}

fn request_json(r: &RecordedRequest) -> Value {
    let mut headers = Map::new();
    for (k, v) in &r.headers {
        let value = if SECRET_HEADERS.contains(&k.as_str()) {
            match v.split_once(' ') {
                // Keep the scheme: "Bearer (withheld)" still says how the caller signed in.
                Some((scheme, _)) if k == "authorization" => format!("{scheme} {WITHHELD}"),
                _ => WITHHELD.to_string(),
            }
        } else {
            v.clone()
        };
        match headers.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(k.clone(), Value::String(value));
            }
        }
    }
    // Token requests are forms whatever content type they claim (any case), so their bodies
    // are read as forms; JSON bodies lose the secret properties clients write (a webhook's
    // `authvalue`, SAS keys); query strings lose secret parameters.
    let form = r.path.contains("/oauth2/")
        || r.header("content-type").is_some_and(|t| {
            t.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let text = String::from_utf8_lossy(&r.body);
    let body = if form {
        withhold_form(&text)
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(mut value) => {
                withhold_json(&mut value);
                value.to_string()
            }
            Err(_) => text.into_owned(),
        }
    };
    let path = match r.path.split_once('?') {
        Some((path, query)) => format!("{path}?{}", withhold_form(query)),
        None => r.path.clone(),
    };
    json!({
        "seq": r.seq,
        "method": r.method,
        "path": path,
        "status": r.status,
        "fault": r.fault,
        "headers": headers,
        "body": body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_compared_whole() {
        let a = random_key();
        assert_eq!(a.len(), 48);
        assert_ne!(a, random_key());
        assert!(same_secret(&a, &a));
        assert!(!same_secret(&a[..47], &a));
        assert!(!same_secret("", ""), "an empty key opens nothing");
    }

    #[test]
    fn rules_come_from_text_or_parts() {
        let r = rule_from(&json!({"rule": "throttle:3@/accounts"})).unwrap();
        assert_eq!(r.times, 3);
        let r = rule_from(&json!({"fault": "throttle", "retryAfterSecs": 0, "times": 2, "skip": 1, "path": "/WhoAmI"})).unwrap();
        assert_eq!(r.to_string(), "throttle=0:1+2@/WhoAmI");
        let r = rule_from(&json!({"fault": "delay", "delayMs": 250})).unwrap();
        assert_eq!(r.to_string(), "delay=250ms:1");
        assert!(rule_from(&json!({"fault": "nope"})).is_err());
        assert!(rule_from(&json!({"fault": "delay"})).is_err());
        assert!(rule_from(&json!("throttle")).is_err());
    }

    #[test]
    fn limits_come_from_text_or_parts() {
        assert_eq!(
            limit_from(&json!({"rateLimit": "100/60s"})).unwrap(),
            "100/60s".parse().ok()
        );
        assert_eq!(
            limit_from(&json!({"rateLimit": {"requests": 5, "windowSecs": 10}})).unwrap(),
            "5/10s".parse().ok()
        );
        assert_eq!(limit_from(&json!({"rateLimit": null})).unwrap(), None);
        assert!(limit_from(&json!({})).is_err());
        assert!(limit_from(&json!({"rateLimit": {"requests": 0, "windowSecs": 10}})).is_err());
    }

    #[test]
    fn logged_requests_withhold_credentials() {
        let r = RecordedRequest {
            seq: 7,
            method: "POST".into(),
            path: "/t/oauth2/v2.0/token".into(),
            headers: vec![
                ("authorization".into(), "Bearer secret-token".into()),
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
            ],
            body: b"grant_type=client_credentials&client_id=abc&client_secret=s3cret&scope=x%2F.default".to_vec(),
            status: Some(200),
            fault: None,
        };
        let v = request_json(&r);
        assert_eq!(v["headers"]["authorization"], "Bearer (withheld)");
        let body = v["body"].as_str().unwrap();
        assert!(!body.contains("s3cret"), "{body}");
        assert!(body.contains("client_secret=%28withheld%29"), "{body}");
        assert!(body.contains("client_id=abc"), "{body}");
        assert!(!v.to_string().contains("secret-token"));
        assert_eq!(v["status"], 200);
        assert_eq!(v["seq"], 7);
    }

    #[test]
    fn secrets_are_withheld_whatever_the_content_type_case_in_json_and_in_query_strings() {
        let record = |path: &str, content_type: &str, body: &[u8]| RecordedRequest {
            seq: 1,
            method: "POST".into(),
            path: path.into(),
            status: Some(200),
            fault: None,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.to_vec(),
        };
        let shouted = request_json(&record(
            "/t/oauth2/v2.0/token",
            "Application/X-WWW-Form-Urlencoded",
            b"grant_type=client_credentials&client_secret=s3cret",
        ));
        assert!(!shouted.to_string().contains("s3cret"), "{shouted}");
        let endpoint = request_json(&record(
            "/api/data/v9.2/serviceendpoints",
            "application/json",
            br#"{"name":"hook","authtype":4,"AuthValue":"SUPERSECRETWEBHOOKKEY123"}"#,
        ));
        assert!(!endpoint.to_string().contains("SUPERSECRET"), "{endpoint}");
        assert!(endpoint.to_string().contains("hook"));
        let query = request_json(&record(
            "/t/oauth2/v2.0/token?client_secret=s3cret&x=1",
            "text/plain",
            b"",
        ));
        assert!(!query.to_string().contains("s3cret"), "{query}");
    }
}
