//! The HTTP front: recording, fault injection, auth, service protection, then dispatch to the
//! token service or the Web API.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::auth::Auth;
use crate::error::{self, DvError};
use crate::faults::{Fault, FaultHandle};
use crate::routes;
use crate::seed::Identities;
use crate::store::{Store, Val};
use crate::throttle::{RateLimit, Throttle, Verdict};
use crate::wire::{self, Caller, Limits, Req, Resp};
use crate::{Config, RecordedRequest};

/// Shared state of a running emulator.
pub struct App {
    pub config: Config,
    pub store: RwLock<Store>,
    pub auth: Mutex<Auth>,
    pub throttle: Mutex<Throttle>,
    pub rate_limit: Mutex<Option<RateLimit>>,
    /// Latency, server time, `x-ms-dop-hint` and the per-user limits (`cost.rs`).
    pub cost: crate::cost::Cost,
    pub faults: FaultHandle,
    pub requests: Mutex<crate::RequestLog>,
    /// The sequence number of the last request logged.
    pub request_seq: std::sync::atomic::AtomicU64,
    /// The key of the admin API (`admin.rs`).
    pub admin_key: String,
    pub ids: Identities,
    pub addr: SocketAddr,
    /// `http`, or `https` when served with TLS: the scheme of every absolute URL written.
    pub scheme: &'static str,
    pub webhooks: crate::webhooks::Dispatcher,
    /// The Finance and Operations OData service (`fno`), served on its own port.
    pub fno: Mutex<crate::fno::Service>,
    /// The address of the F&O port; None when not served (with TLS).
    pub fno_addr: Option<SocketAddr>,
}

impl App {
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Writes the answer's status, and the fault met, into the logged request `seq`.
    fn note_answer(&self, seq: Option<u64>, status: u16, fault: Option<&Fault>) {
        let Some(seq) = seq else { return };
        if let Ok(mut log) = self.requests.lock()
            && let Some(r) = log.iter_mut().rev().find(|r| r.seq == seq)
        {
            r.status = Some(status);
            r.fault = fault.map(|f| f.kind().to_string());
        }
    }
}

/// The router: every path goes through one handler, which routes OData paths itself.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

fn header_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn response(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            r.headers_mut().append(name, value);
        }
    }
    r
}

fn dv_error_parts(e: &DvError) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers = vec![
        ("Content-Type".to_string(), wire::JSON.to_string()),
        ("OData-Version".to_string(), "4.0".to_string()),
    ];
    headers.extend(e.headers.iter().cloned());
    (e.status, headers, e.body())
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            let e = DvError::new(
                413,
                error::REQUEST_TOO_LARGE,
                "The request body is too large.",
            );
            let (s, h, b) = dv_error_parts(&e);
            return response(s, h, b);
        }
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let headers = header_pairs(&parts.headers);
    // The admin API: neither logged, faulted nor counted against the limit.
    if path == crate::admin::PREFIX || path.starts_with("/_admin/") {
        let (s, h, b) = crate::admin::handle(&app, &method, &path, &query, &headers, &body);
        return response(s, h, b);
    }
    let mut seq = None;
    if app.config.record_requests
        && let Ok(mut log) = app.requests.lock()
    {
        let n = app
            .request_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        seq = Some(n);
        log.push(RecordedRequest {
            seq: n,
            method: method.clone(),
            path: if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{query}")
            },
            headers: headers.clone(),
            body: body.to_vec(),
            status: None,
            fault: None,
        });
    }
    let fault = app.faults.take(&path);
    match &fault {
        Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
        Some(Fault::Throttle { retry_after_secs }) => {
            let e = DvError::new(
                429,
                error::THROTTLED_REQUESTS,
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            )
            .with_header("Retry-After", retry_after_secs.to_string());
            let (s, h, b) = dv_error_parts(&e);
            app.note_answer(seq, s, fault.as_ref());
            return response(s, h, b);
        }
        Some(Fault::Unavailable) => {
            let e = DvError::new(
                503,
                error::UNEXPECTED,
                "The service is temporarily unavailable. Please try again later.",
            );
            let (s, h, b) = dv_error_parts(&e);
            app.note_answer(seq, s, fault.as_ref());
            return response(s, h, b);
        }
        Some(Fault::BadGateway) => {
            app.note_answer(seq, 502, fault.as_ref());
            return response(
                502,
                vec![("Content-Type".into(), "text/html".into())],
                b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            );
        }
        _ => {}
    }
    // The cost model admits (or refuses) a Web API request before it runs, here on the async
    // side so its wait holds no thread (`cost.rs`).
    let ticket = match path.starts_with("/api/data/") {
        true => match app.cost.admit(token_user(&app, &headers)) {
            Some(Ok(ticket)) => Some(ticket),
            Some(Err(e)) => {
                let (s, mut h, b) = dv_error_parts(&e);
                if let Some(model) = app.cost.model() {
                    h.push(("x-ms-dop-hint".into(), model.dop_hint.to_string()));
                }
                app.note_answer(seq, s, fault.as_ref());
                return response(s, h, b);
            }
            None => None,
        },
        false => None,
    };
    let bulk_records = match &ticket {
        Some(_) if path.ends_with("Multiple") => crate::cost::records(&path, &body, None, b""),
        _ => 0,
    };
    let host = headers
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| app.addr.to_string());
    let origin = format!("{}://{host}", app.scheme);
    let app2 = app.clone();
    let cost_path = path.clone();
    let (status, mut hdrs, bytes) = tokio::task::spawn_blocking(move || {
        dispatch(&app2, &method, &path, &query, &headers, &body, &origin)
    })
    .await
    .unwrap_or_else(|_| {
        let (s, h, b) = dv_error_parts(&DvError::internal("handler panicked"));
        (s, h, b)
    });
    if let Some(ticket) = ticket {
        let records = match bulk_records {
            0 => {
                let content_type = hdrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.as_str());
                crate::cost::records(&cost_path, b"", content_type, &bytes)
            }
            n => n,
        };
        tokio::time::sleep(ticket.settle(records)).await;
        // The model's budgets replace the figures `web_api` wrote without it.
        for (name, value) in ticket.rate_limit_headers() {
            hdrs.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
            hdrs.push((name, value));
        }
        hdrs.push(("x-ms-dop-hint".into(), ticket.model().dop_hint.to_string()));
    } else if cost_path.starts_with("/api/data/") {
        hdrs.push((
            "x-ms-dop-hint".into(),
            app.config.dop_hint.max(1).to_string(),
        ));
    }
    let answered = match (&fault, status) {
        (Some(Fault::MalformedJson), 204) => 200,
        _ => status,
    };
    app.note_answer(seq, answered, fault.as_ref());
    match fault {
        Some(Fault::CutMidBody) => {
            let full = bytes.len().max(2);
            let part = Bytes::from(bytes[..bytes.len() / 2].to_vec());
            let stream = futures_util::stream::iter(vec![
                Ok::<Bytes, std::io::Error>(part),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection cut by fault injection",
                )),
            ]);
            let mut r = Response::new(Body::from_stream(stream));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            for (k, v) in hdrs {
                if let (Ok(n), Ok(v)) = (
                    header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    r.headers_mut().append(n, v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&full.to_string()) {
                r.headers_mut().insert(header::CONTENT_LENGTH, v);
            }
            r
        }
        Some(Fault::MalformedJson) => {
            let mut broken = bytes[..bytes.len() / 2].to_vec();
            broken.extend_from_slice(b"{\"value\":[{\"name\":\"trunc");
            // The answer keeps its own content type (a `$batch` answer stays multipart, its
            // closing boundary lost), so the client meets a broken body of the kind it asked
            // for; only a 204, which has none, is given JSON's.
            let mut hdrs = hdrs;
            if !hdrs
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                hdrs.push(("Content-Type".into(), wire::JSON.into()));
            }
            let status = if status == 204 { 200 } else { status };
            response(status, hdrs, broken)
        }
        _ => response(status, hdrs, bytes),
    }
}

type Parts = (u16, Vec<(String, String)>, Vec<u8>);

fn dispatch(
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    origin: &str,
) -> Parts {
    // The F&O port serves `/data` (fno); its token service answers below as on the main port.
    if let Some(parts) = crate::fno::route(app, method, path, query, headers, body, origin) {
        return parts;
    }
    if let Some(rest) = path.strip_prefix("/api/data/") {
        return web_api(app, method, rest, query, headers, body, origin);
    }
    // Dataverse search 2.0 endpoints are the Web API's search operations (search.rs).
    if let Some(target) = crate::search::endpoint(path) {
        return match target {
            Ok(rest) => web_api(app, method, &rest, query, headers, body, origin),
            Err(e) => dv_error_parts(&e),
        };
    }
    // The status monitor resource of background operations (async_ops.rs).
    if let Some(id) = path.strip_prefix("/api/backgroundoperation/") {
        return crate::async_ops::monitor(app, method, id, headers);
    }
    if let Some(parts) = crate::entra::route(app, method, path, query, headers, body, origin) {
        return parts;
    }
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let e = DvError::new(
        404,
        error::ODATA_ERROR,
        format!("Resource not found for the segment '{first}'."),
    );
    dv_error_parts(&e)
}

/// The user a request's bearer token was issued to; without a valid token, the admin user
/// when the emulator takes unauthenticated requests, else one GUID shared by every caller
/// without a token (their requests are answered 401).
fn token_user(app: &App, headers: &[(String, String)]) -> crate::guid::Guid {
    let token = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let user = token.and_then(|t| {
        app.auth
            .lock()
            .ok()
            .and_then(|a| a.validate(t).map(|i| i.user))
    });
    match (user, app.config.require_auth) {
        (Some(u), _) => u,
        (None, false) => app.ids.admin_user,
        (None, true) => crate::guid::Guid::from_seed(0, 0),
    }
}

fn caller_for(app: &App, user: crate::guid::Guid) -> Caller {
    let bu = app
        .store
        .read()
        .ok()
        .and_then(|s| {
            let su = s.schema.entity("systemuser")?;
            let col = s.entity(su).attr("businessunitid")?;
            match &s.get(su, &user)?.vals[col] {
                Val::Ref(g, _) => Some(*g),
                _ => None,
            }
        })
        .unwrap_or(app.ids.root_business_unit);
    Caller {
        user,
        business_unit: bu,
    }
}

#[allow(clippy::too_many_arguments)]
fn web_api(
    app: &App,
    method: &str,
    rest: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    origin: &str,
) -> Parts {
    let (version, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_version = version.strip_prefix('v').is_some_and(|v| {
        !v.is_empty()
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if !valid_version {
        return dv_error_parts(&DvError::segment_not_found(version));
    }
    let auth_header = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str());
    let bearer = auth_header.and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    });
    let user = bearer.as_deref().and_then(|t| {
        app.auth
            .lock()
            .ok()
            .and_then(|a| a.validate(t).map(|i| i.user))
    });
    let tenant = app
        .auth
        .lock()
        .map(|a| a.tenant_id.clone())
        .unwrap_or_default();
    let user = match (user, app.config.require_auth) {
        (Some(u), _) => u,
        (None, false) => app.ids.admin_user,
        (None, true) => {
            let e = DvError::new(
                401,
                error::NOT_AUTHENTICATED,
                "Bearer token is missing, expired or not valid for this organization.",
            )
            .with_header(
                "WWW-Authenticate",
                format!(
                    "Bearer authorization_uri={}/{tenant}/oauth2/authorize, resource_id={}/",
                    app.base_url(),
                    origin
                ),
            );
            return dv_error_parts(&e);
        }
    };
    let mut extra = vec![("OData-Version".to_string(), "4.0".to_string())];
    let limit = app.rate_limit.lock().ok().and_then(|l| *l);
    let remaining = match limit {
        Some(limit) => {
            let verdict = app
                .throttle
                .lock()
                .map(|mut t| t.check(user, limit, Instant::now()))
                .unwrap_or(Verdict::Allowed {
                    remaining: limit.requests,
                });
            match verdict {
                Verdict::Allowed { remaining } => remaining,
                Verdict::Throttled { retry_after } => {
                    let e = DvError::new(
                        429,
                        error::THROTTLED_REQUESTS,
                        format!(
                            "Number of requests exceeded the limit of {} over time window of {} seconds.",
                            limit.requests,
                            limit.window.as_secs()
                        ),
                    )
                    .with_header("Retry-After", retry_after.to_string());
                    return dv_error_parts(&e);
                }
            }
        }
        None => 5999,
    };
    extra.push((
        "x-ms-ratelimit-burst-remaining-xrm-requests".into(),
        remaining.to_string(),
    ));
    extra.push((
        "x-ms-ratelimit-time-remaining-xrm-requests".into(),
        "1,200.00".into(),
    ));
    extra.push((
        "x-ms-service-request-id".into(),
        crate::guid::Guid::from_seed(
            app.addr.port() as u64,
            remaining as u64 ^ crate::datetime::now_secs() as u64,
        )
        .to_string(),
    ));
    // MSCRMCallerID / CallerObjectId: the request runs as the user they name (impersonation.rs).
    let run_as = {
        let store = app.store.read().unwrap_or_else(|p| p.into_inner());
        let org = crate::impersonation::Organization {
            organization_id: app.ids.organization_id,
            delegates: &app.ids.delegates,
        };
        crate::impersonation::resolve(&store, &org, user, headers)
    };
    let impersonated = match run_as {
        Ok(u) => u,
        Err(e) => {
            let (s, mut h, b) = dv_error_parts(&e);
            h.extend(extra.into_iter().filter(|(k, _)| k != "OData-Version"));
            return (s, h, b);
        }
    };
    let req = Req {
        method,
        path: sub,
        query,
        headers,
        body,
        api: format!("{origin}/api/data/{version}"),
        caller: caller_for(app, impersonated.unwrap_or(user)),
        impersonator: impersonated.map(|_| user),
        delegates: &app.ids.delegates,
        organization_id: app.ids.organization_id,
        limits: Limits {
            max_page_size: app.config.max_page_size,
            count_limit: app.config.count_limit,
            alt_key_entity_id_as_guid: app.config.alt_key_entity_id_as_guid,
        },
    };
    let method_eff = if method == "HEAD" { "GET" } else { method };
    // A panic in a handler must not take the store down with it: keep serving from a
    // poisoned lock (writes are applied row by row, so the data stays consistent per row).
    let result = if method == "POST" && sub.trim_matches('/') == "$batch" {
        let result = crate::batch::handle(&app.store, &req);
        let calls = {
            let mut store = app.store.write().unwrap_or_else(|p| p.into_inner());
            take_webhook_calls(app, &mut store, &req)
        };
        // Inside a batch every call is made after the batch, without failing it.
        app.webhooks.enqueue(calls);
        result
    } else if routes::is_read(method_eff) {
        let store = app.store.read().unwrap_or_else(|p| p.into_inner());
        routes::handle_read(&store, &req)
    } else {
        write_with_webhooks(app, &req)
    };
    match result {
        Ok(Resp {
            status,
            headers,
            body,
            content_type,
        }) => {
            let mut h = extra;
            if let Some(ct) = content_type {
                h.push(("Content-Type".into(), ct.into()));
            }
            h.extend(headers);
            (status, h, body)
        }
        Err(e) => {
            let (s, mut h, b) = dv_error_parts(&e);
            h.extend(extra.into_iter().filter(|(k, _)| k != "OData-Version"));
            (s, h, b)
        }
    }
}

fn take_webhook_calls(app: &App, store: &mut Store, req: &Req) -> Vec<crate::webhooks::Outbound> {
    if store.events.is_empty() && store.message_events.is_empty() {
        return Vec::new();
    }
    let host = app.addr.to_string();
    let ctx = crate::webhooks::EventCtx {
        user: req.caller.user,
        business_unit: req.caller.business_unit,
        organization_id: app.ids.organization_id,
        organization_name: crate::ORGANIZATION_NAME,
        organization_host: &host,
        correlation_id: crate::webhooks::fresh_guid(),
        now_ms: (store.clock)().saturating_mul(1000),
    };
    let calls = crate::webhooks::collect(store, &ctx);
    // What the write's data-load switches bypass is not called (switches.rs).
    crate::switches::filter_calls(store, req, calls)
}

/// A write, then the webhook calls it triggers: synchronous steps are called before the
/// answer (a failure undoes the write and fails it), asynchronous ones are queued.
fn write_with_webhooks(app: &App, req: &Req) -> Result<Resp, DvError> {
    let mut store = app.store.write().unwrap_or_else(|p| p.into_inner());
    let guarded = store.captures_events();
    if guarded {
        store.begin_tx();
    }
    let mut result = routes::handle_write(&mut store, req);
    let calls = take_webhook_calls(app, &mut store, req);
    if result.is_err() {
        if guarded {
            store.commit_tx();
        }
        return result;
    }
    let (sync, later): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.synchronous);
    let mut failed = None;
    for call in sync {
        let d = app.webhooks.deliver_now(call);
        if !d.succeeded() {
            failed = Some(d);
            break;
        }
    }
    if guarded {
        if failed.is_some() {
            store.rollback_tx();
        } else {
            store.commit_tx();
        }
    }
    drop(store);
    match failed {
        Some(d) => {
            result = Err(DvError::new(
                400,
                error::SYNCHRONOUS_STEP_FAILED,
                format!(
                    "The synchronous webhook to '{}' failed with status {}.",
                    d.url.split('?').next().unwrap_or(""),
                    d.status
                ),
            ));
        }
        None => app.webhooks.enqueue(later),
    }
    result
}

/// How long a stopping server waits for open connections before it gives up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
