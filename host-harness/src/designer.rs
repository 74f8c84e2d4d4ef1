//! A flow designer in the browser, served on a loopback port.
//!
//! The page (`assets/`: plain HTML, CSS and JavaScript ES modules — `app.js` and `js/*.js` —
//! embedded in the binary, nothing fetched from the network) builds every form from the
//! component's definitions: connection forms from the connection definitions, action forms from
//! the action inputs, picklists from the declared data sources through `actions.choices`.
//! Everything runs through the same [`Host`] and [`TokenManager`](dynamics_host::TokenManager) as
//! the CLI.
//!
//! The JSON API under `/api/` is for the page only: it answers only requests whose `Host` is this
//! server and, for anything that changes state, whose body is JSON and whose `Origin` (when sent)
//! is this server, so another web page open in the same browser cannot drive it; and every API
//! request must carry the random key of the link the command prints (kept as a cookie), so other
//! local users and requests through a tunnel cannot either. Secrets entered in a connection form
//! go to the harness and never come back: connection listings say only whether a secret is set.
//! (The presets carry the embedded emulator's own demo credentials, which are no one's secret.)

mod api;
mod connections;
mod definition_view;
mod events;
pub mod flow;
mod guard;
mod runs;
mod sign_in;
mod trigger;

pub use definition_view::definition_json;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use dynamics_host::tokens::TokenStore;
use dynamics_host::{Host, IncomingRequest};

use connections::{Saved, load_connections};
use events::EventLog;
use guard::KEY_COOKIE;
use trigger::{Armed, Listening};

const INDEX_HTML: &str = include_str!("designer/assets/index.html");
const APP_JS: &str = include_str!("designer/assets/app.js");
/// The modules `app.js` imports, served under `/js/`.
const MODULES: [(&str, &str); 9] = [
    ("/js/state.js", include_str!("designer/assets/js/state.js")),
    ("/js/dom.js", include_str!("designer/assets/js/dom.js")),
    ("/js/api.js", include_str!("designer/assets/js/api.js")),
    ("/js/forms.js", include_str!("designer/assets/js/forms.js")),
    (
        "/js/output.js",
        include_str!("designer/assets/js/output.js"),
    ),
    (
        "/js/connections.js",
        include_str!("designer/assets/js/connections.js"),
    ),
    (
        "/js/actions.js",
        include_str!("designer/assets/js/actions.js"),
    ),
    ("/js/flow.js", include_str!("designer/assets/js/flow.js")),
    (
        "/js/trigger.js",
        include_str!("designer/assets/js/trigger.js"),
    ),
];
const APP_CSS: &str = include_str!("designer/assets/app.css");

/// The path Dataverse posts webhook requests to.
pub const WEBHOOK_PATH: &str = "/webhooks/dynamics";
/// The loopback redirect path of the auth-code sign-in (as `dynamics login` uses).
pub const CALLBACK_PATH: &str = crate::login::CALLBACK_PATH;
/// Largest request body the designer accepts (a batch of 1000 items fits).
const MAX_BODY: usize = 16 << 20;
/// The whole request must arrive within this time.
const REQUEST_TIME: Duration = Duration::from_secs(30);

/// Values the page may pre-fill a connection form with: the embedded emulator's.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preset {
    pub label: String,
    /// The connection type key.
    #[serde(rename = "type")]
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

/// How to start a designer.
pub struct DesignerOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Where tokens are kept (under keys `designer/<connection name>`).
    pub token_store: TokenStore,
    /// The file the designer's connections are saved in (mode 0600: it holds their secrets).
    pub connections_file: PathBuf,
    /// Connection forms the page can pre-fill (the embedded emulator).
    pub presets: Vec<Preset>,
    /// The webhook URL to register instead of the loopback one, when the environment reaches
    /// the designer through a tunnel or proxy (Dataverse online cannot call 127.0.0.1).
    pub public_webhook_url: Option<String>,
}

/// A running designer. Stops accepting requests when dropped.
pub struct Designer {
    shared: Arc<Shared>,
    _server: crate::http::LoopbackServer,
}

struct Shared {
    host: Arc<Host>,
    store: TokenStore,
    connections_file: PathBuf,
    connections: Mutex<BTreeMap<String, Saved>>,
    /// Sign-ins waiting for their redirect, by OAuth `state`: connection name and PKCE verifier.
    pending: Mutex<HashMap<String, (String, String, Instant)>>,
    armed: Mutex<Option<Armed>>,
    /// Received events with their flow runs, and a revision that grows with every change.
    events: Mutex<EventLog>,
    events_changed: Condvar,
    origin: String,
    port: u16,
    presets: Vec<Preset>,
    webhook_url: String,
    /// The random key the API asks for (a cookie the opening link sets, or the
    /// `x-designer-key` header): other local users and anything reaching a tunnel lack it.
    key: String,
    /// Serialises starting and stopping triggers, so two starts cannot leave an orphan.
    arming: Mutex<()>,
}

/// Most requests served at once (long polls included).
const MAX_CONNECTIONS: usize = 64;

impl Designer {
    /// Binds `127.0.0.1:port` and serves the designer until dropped.
    pub fn start(host: Arc<Host>, options: DesignerOptions) -> anyhow::Result<Designer> {
        let listener = crate::http::bind(options.port)
            .with_context(|| format!("listening on 127.0.0.1:{}", options.port))?;
        let port = listener.local_addr()?.port();
        let connections = load_connections(&options.connections_file)?;
        let shared = Arc::new(Shared {
            host,
            store: options.token_store,
            connections_file: options.connections_file,
            connections: Mutex::new(connections),
            pending: Mutex::new(HashMap::new()),
            armed: Mutex::new(None),
            events: Mutex::new(EventLog::default()),
            events_changed: Condvar::new(),
            origin: format!("http://127.0.0.1:{port}"),
            port,
            presets: options.presets,
            webhook_url: options
                .public_webhook_url
                .unwrap_or_else(|| format!("http://127.0.0.1:{port}{WEBHOOK_PATH}")),
            key: random_key()?,
            arming: Mutex::new(()),
        });
        let router = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        let limits = crate::http::Limits {
            max_connections: MAX_CONNECTIONS,
            ..crate::http::Limits::default()
        };
        let server = crate::http::LoopbackServer::start(listener, limits, router)
            .with_context(|| format!("serving on 127.0.0.1:{port}"))?;
        Ok(Designer {
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("{}/", self.shared.origin)
    }

    /// The link to open: the page with the designer's key, which the page keeps as a cookie.
    pub fn open_url(&self) -> String {
        format!("{}/?key={}", self.shared.origin, self.shared.key)
    }

    /// The key scripts send as `x-designer-key` (tests).
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// Adds (or replaces) a connection, as the page's connection form does.
    pub fn add_connection(
        &self,
        name: &str,
        kind: &str,
        fields: BTreeMap<String, String>,
    ) -> Result<(), String> {
        self.shared
            .save_connection(name, kind, fields)
            .map_err(|answer| {
                answer.1["error"]["message"]
                    .as_str()
                    .unwrap_or("the connection was refused")
                    .to_string()
            })
    }

    /// Unregisters a listening webhook trigger, or stops polling; the error says what could not
    /// be undone (the registration then stays in the environment).
    pub fn shutdown(&self) -> Result<(), String> {
        self.shared.disarm().map(|_| ())
    }
}

impl Drop for Designer {
    fn drop(&mut self) {
        // A poller would otherwise outlive its designer (unregistering needs the network, which
        // `shutdown` does).
        if let Some(armed) = self
            .shared
            .armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && let Listening::Polling { stop, .. } = &armed.listening
        {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

fn random_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|problem| anyhow::anyhow!("no randomness: {problem}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Shared {
    /// Answers one request: the webhook, the guard, the page's files, the sign-in redirect and
    /// the API.
    fn answer(self: &Arc<Self>, request: IncomingRequest) -> Response {
        if request.path == WEBHOOK_PATH {
            let outcome = self.webhook(request);
            let content_type = outcome
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.as_str())
                .unwrap_or("text/plain");
            let headers: Vec<(&str, &str)> = outcome
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            return respond(outcome.status, content_type, &outcome.body, &headers);
        }
        if !self.host_header_ok(&request) {
            return respond(
                421,
                "text/plain",
                b"this designer answers only on 127.0.0.1 or localhost",
                &[],
            );
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/") if request.query.iter().any(|(k, _)| k == "key") => {
                // The opening link: keep the key as a cookie and drop it from the address bar.
                let given = request
                    .query
                    .iter()
                    .find(|(k, _)| k == "key")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default();
                if crate::http::same_secret(given, &self.key) {
                    let cookie =
                        format!("{KEY_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax", self.key);
                    respond(
                        303,
                        "text/plain",
                        b"",
                        &[("location", "/"), ("set-cookie", &cookie)],
                    )
                } else {
                    respond(403,
                        "text/plain",
                        b"this key is not the designer's; open the link `dynamics designer` printed",
                        &[],
                    )
                }
            }
            ("GET", path) if let Some((status, kind, body)) = asset(path) => {
                respond(status, kind, body.as_bytes(), &[])
            }
            ("GET", CALLBACK_PATH) => {
                let location = self.callback(&request);
                respond(303, "text/plain", b"", &[("location", &location)])
            }
            (_, path) if path.starts_with("/api/") => {
                let (status, body) = if let Err(refusal) = self.api_request_ok(&request) {
                    refusal
                } else {
                    self.api(&request)
                };
                respond(status, "application/json", body.to_string().as_bytes(), &[])
            }
            _ => respond(404, "text/plain", b"not found", &[]),
        }
    }
}

/// The page's files: status, content type, body.
fn asset(path: &str) -> Option<(u16, &'static str, &'static str)> {
    match path {
        "/" => Some((200, "text/html; charset=utf-8", INDEX_HTML)),
        "/app.js" => Some((200, "text/javascript; charset=utf-8", APP_JS)),
        path if let Some((_, module)) = MODULES.iter().find(|(name, _)| *name == path) => {
            Some((200, "text/javascript; charset=utf-8", module))
        }
        "/app.css" => Some((200, "text/css; charset=utf-8", APP_CSS)),
        "/favicon.ico" => Some((204, "image/x-icon", "")),
        _ => None,
    }
}

type Response = axum::http::Response<axum::body::Body>;

/// The designer's answer: no caching, no sniffing, no referrer, and a CSP that keeps the page to
/// its own files.
fn respond(status: u16, content_type: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
    use axum::http::{HeaderName, HeaderValue, StatusCode};
    let mut response = Response::new(axum::body::Body::from(body.to_vec()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let fixed = [
        ("content-type", content_type),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    ];
    for (name, value) in fixed.iter().chain(headers) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Every request: read within the limits, then answered off the server's thread (the component
/// runs, long polls wait).
async fn serve(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
) -> Response {
    match crate::http::incoming(request, MAX_BODY, REQUEST_TIME).await {
        Err(reason) => respond(400, "text/plain", reason.as_bytes(), &[]),
        Ok(request) => crate::http::blocking(move || shared.answer(request))
            .await
            .unwrap_or_else(|| respond(500, "text/plain", b"the request failed", &[])),
    }
}
