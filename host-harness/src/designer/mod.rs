//! A flow designer in the browser, served on a loopback port.
//!
//! The page (`assets/`: plain HTML, CSS and JavaScript, embedded in the binary, nothing fetched
//! from the network) builds every form from the component's definitions: connection forms from
//! the connection definitions, action forms from the action inputs, picklists from the declared
//! data sources through `actions.choices`. Everything runs through the same [`Host`] and
//! [`TokenManager`] as the CLI.
//!
//! The JSON API under `/api/` is for the page only: it answers only requests whose `Host` is this
//! server and, for anything that changes state, whose body is JSON and whose `Origin` (when sent)
//! is this server, so another web page open in the same browser cannot drive it; and every API
//! request must carry the random key of the link the command prints (kept as a cookie), so other
//! local users and requests through a tunnel cannot either. Secrets entered in a connection form
//! go to the harness and never come back: connection listings say only whether a secret is set.
//! (The presets carry the embedded emulator's own demo credentials, which are no one's secret.)

pub mod flow;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use dynamics_host::TriggerKind;
use dynamics_host::manifest::input_type_name;
use dynamics_host::tokens::{TokenManager, TokenStore, format_utc, unix_now};
use dynamics_host::{
    ComponentDefinition, Connection, ConnectorError, Host, HostError, IncomingRequest,
    InputDefinition, InputType, WebhookOutcome,
};

use flow::Flow;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The path Dataverse posts webhook requests to.
pub const WEBHOOK_PATH: &str = "/webhooks/dynamics";
/// The loopback redirect path of the auth-code sign-in (as `dynamics login` uses).
pub const CALLBACK_PATH: &str = crate::login::CALLBACK_PATH;
/// Largest request body the designer accepts (a batch of 1000 items fits).
const MAX_BODY: usize = 16 << 20;
/// The whole request must arrive within this time.
const REQUEST_TIME: Duration = Duration::from_secs(30);
/// How long `GET /api/events` waits for a new event before answering with none.
const EVENT_WAIT: Duration = Duration::from_secs(10);

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

/// A connection as the designer keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    #[serde(rename = "type")]
    kind: String,
    fields: BTreeMap<String, String>,
}

/// The trigger that runs a flow when its events arrive.
struct Armed {
    trigger: String,
    connection: String,
    /// The trigger's config, with the webhook key the registration generated.
    config: String,
    listening: Listening,
    flow: Flow,
}

/// How an armed trigger receives its events.
enum Listening {
    /// Registered with the environment; what `triggers.enable` returned, for `triggers.disable`.
    Webhook { registration: String },
    /// A thread polls every `every` until `stop` is set.
    Polling {
        every: Duration,
        stop: Arc<AtomicBool>,
    },
}

/// Polling intervals the designer accepts, in seconds.
const POLL_SECONDS: std::ops::RangeInclusive<u64> = 1..=86_400;

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
/// How long a started sign-in waits for its redirect.
const SIGN_IN_TIME: Duration = Duration::from_secs(600);
/// Events kept (the page shows the latest 100).
const MAX_EVENTS: usize = 500;
/// The cookie that carries the designer's key.
const KEY_COOKIE: &str = "dynamics_designer_key";

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

/// Received events with their flow runs: the latest [`MAX_EVENTS`], numbered from 1.
#[derive(Default)]
struct EventLog {
    /// Grows with every change, for long polls.
    revision: u64,
    /// How many events were dropped: the first kept is number `first + 1`.
    first: usize,
    items: std::collections::VecDeque<Value>,
}

fn random_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|problem| anyhow::anyhow!("no randomness: {problem}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Percent-encodes everything but unreserved characters (spaces as %20, which the page's
/// `decodeURIComponent` reads back).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

type Answer = (u16, Value);

fn fail(status: u16, code: &str, message: impl Into<String>, field: Option<&str>) -> Answer {
    let mut error = json!({"code": code, "message": message.into()});
    if let Some(field) = field {
        error["field"] = json!(field);
    }
    (status, json!({ "error": error }))
}

/// A connector error as the page shows it (the component never puts secrets in one).
fn connector_error(error: &ConnectorError) -> Value {
    let mut value = json!({"code": error.code.to_string(), "message": error.message});
    let fields = [
        ("httpStatus", error.http_status.map(|s| json!(s))),
        ("serviceCode", error.service_code.as_ref().map(|s| json!(s))),
        ("retryAfterMs", error.retry_after_ms.map(|s| json!(s))),
        ("hint", error.hint.as_ref().map(|s| json!(s))),
        ("field", error.field.as_ref().map(|s| json!(s))),
    ];
    for (key, field) in fields {
        if let Some(field) = field {
            value[key] = field;
        }
    }
    value
}

fn host_error(error: &HostError) -> Value {
    json!({"code": "host", "message": error.to_string()})
}

fn status_of(error: &Value) -> u16 {
    match error["code"].as_str() {
        Some("invalid-input") => 400,
        Some("host") => 500,
        _ => 502,
    }
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

    fn header<'a>(request: &'a IncomingRequest, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Only our own names: a page elsewhere that rebinds its DNS name to 127.0.0.1 is refused.
    fn host_header_ok(&self, request: &IncomingRequest) -> bool {
        let port = self.port;
        Self::header(request, "host").is_some_and(|host| {
            host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
        })
    }

    /// Changes need a JSON body (a cross-site form cannot send one without asking first) and, when
    /// the browser says where the request comes from, our own origin.
    fn api_request_ok(&self, request: &IncomingRequest) -> Result<(), Answer> {
        let cookie_key = Self::header(request, "cookie").and_then(|cookies| {
            cookies.split(';').find_map(|cookie| {
                cookie
                    .trim()
                    .strip_prefix(KEY_COOKIE)
                    .and_then(|rest| rest.strip_prefix('='))
            })
        });
        let key = cookie_key.or_else(|| Self::header(request, "x-designer-key"));
        if !key.is_some_and(|key| crate::http::same_secret(key, &self.key)) {
            return Err(fail(
                401,
                "unauthenticated",
                "this page does not carry the designer's key; open the link `dynamics designer` printed",
                None,
            ));
        }
        if let Some(origin) = Self::header(request, "origin")
            && origin != self.origin
            && origin != format!("http://localhost:{}", self.port)
        {
            return Err(fail(
                403,
                "forbidden",
                "requests from other origins are refused",
                None,
            ));
        }
        if request.method != "GET" {
            let json = Self::header(request, "content-type")
                .is_some_and(|kind| kind.starts_with("application/json"));
            if !json {
                return Err(fail(
                    415,
                    "invalid-input",
                    "send the request body as application/json",
                    None,
                ));
            }
        }
        Ok(())
    }

    fn api(self: &Arc<Self>, request: &IncomingRequest) -> Answer {
        let body: Value = if request.body.is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice(&request.body) {
                Ok(body) => body,
                Err(problem) => {
                    return fail(
                        400,
                        "invalid-input",
                        format!("the request body is not JSON: {problem}"),
                        None,
                    );
                }
            }
        };
        let path = request.path.trim_start_matches("/api/");
        let segments: Vec<&str> = path.split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["definition"]) => (200, definition_json(self.host.definition())),
            ("GET", ["presets"]) => (200, json!(self.presets)),
            ("GET", ["connections"]) => (200, self.list_connections()),
            ("POST", ["connections"]) => {
                let name = body["name"].as_str().unwrap_or_default().trim().to_string();
                let kind = body["type"].as_str().unwrap_or_default().to_string();
                let fields = match text_fields(&body["fields"]) {
                    Ok(fields) => fields,
                    Err(answer) => return answer,
                };
                match self.save_connection(&name, &kind, fields) {
                    Ok(()) => (200, self.list_connections()),
                    Err(answer) => answer,
                }
            }
            ("DELETE", ["connections", name]) => self.delete_connection(&decode(name)),
            ("POST", ["connections", name, "test"]) => self.test_connection(&decode(name)),
            ("POST", ["connections", name, "sign-in"]) => self.begin_sign_in(&decode(name)),
            ("POST", ["run"]) => {
                let (Some(connection), Some(action)) =
                    (body["connection"].as_str(), body["action"].as_str())
                else {
                    return fail(
                        400,
                        "invalid-input",
                        "connection and action are required",
                        None,
                    );
                };
                let input = body.get("input").cloned().unwrap_or_else(|| json!({}));
                match self.run_action(connection, action, &input) {
                    Ok(output) => (200, json!({ "output": output })),
                    Err(error) => (status_of(&error), json!({ "error": error })),
                }
            }
            ("POST", ["choices"]) => self.choices(&body),
            ("POST", ["flows", "run"]) => self.run_flow(&body),
            ("GET", ["trigger"]) => (200, self.trigger_status()),
            ("POST", ["trigger", "start"]) => {
                // One start or stop at a time: a second start never overwrites a registration
                // or poller the first one made.
                let _arming = self.arming.lock().unwrap_or_else(|p| p.into_inner());
                self.start_trigger(&body)
            }
            ("POST", ["trigger", "stop"]) => {
                let _arming = self.arming.lock().unwrap_or_else(|p| p.into_inner());
                match self.disarm() {
                    Ok(stopped) => (200, json!({"stopped": stopped})),
                    Err(problem) => fail(502, "upstream", problem, None),
                }
            }
            ("GET", ["events"]) => {
                let after = request
                    .query
                    .iter()
                    .find(|(key, _)| key == "after")
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0u64);
                (200, self.events_after(after))
            }
            _ => fail(
                404,
                "not-found",
                format!("no API {} /api/{path}", request.method),
                None,
            ),
        }
    }

    fn connection(&self, name: &str) -> Result<(String, Connection), Value> {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let saved = connections.get(name).ok_or_else(|| {
            json!({
                "code": "invalid-input",
                "field": "connection",
                "message": format!("there is no connection called {name:?}; create it on the Connections page"),
            })
        })?;
        Ok((
            token_key(name),
            Connection {
                definition: saved.kind.clone(),
                fields: saved.fields.clone().into_iter().collect(),
                token: None,
            },
        ))
    }

    fn list_connections(&self) -> Value {
        let statuses = self.store.status(unix_now()).unwrap_or_default();
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let definition = self.host.definition();
        let list: Vec<Value> = connections
            .iter()
            .map(|(name, saved)| {
                let inputs = definition
                    .connections
                    .iter()
                    .find(|c| c.key == saved.kind)
                    .map(|c| c.inputs.as_slice());
                let fields: Map<String, Value> = saved
                    .fields
                    .iter()
                    .map(|(key, value)| {
                        // A type the component no longer defines: every field counts as secret.
                        let secret = inputs.is_none_or(|inputs| {
                            inputs
                                .iter()
                                .any(|i| &i.key == key && i.input_type == InputType::Secret)
                        });
                        let shown = if secret {
                            json!({"set": !value.is_empty()})
                        } else {
                            json!(value)
                        };
                        (key.clone(), shown)
                    })
                    .collect();
                let status = statuses.iter().find(|s| s.key == token_key(name));
                json!({
                    "name": name,
                    "type": saved.kind,
                    "fields": fields,
                    "signedIn": status.is_some_and(|s| s.valid),
                    "refreshable": status.is_some_and(|s| s.refreshable),
                    "expiresAt": status.and_then(|s| s.expires_at).map(format_utc),
                })
            })
            .collect();
        json!(list)
    }

    fn save_connection(
        &self,
        name: &str,
        kind: &str,
        mut fields: BTreeMap<String, String>,
    ) -> Result<(), Answer> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
        if !valid_name {
            return Err(fail(
                400,
                "invalid-input",
                "name: give the connection a name of up to 64 letters, digits, spaces, - _ or .",
                Some("name"),
            ));
        }
        let definition = self.host.definition();
        let Some(connection_type) = definition.connections.iter().find(|c| c.key == kind) else {
            let known: Vec<&str> = definition
                .connections
                .iter()
                .map(|c| c.key.as_str())
                .collect();
            return Err(fail(
                400,
                "invalid-input",
                format!(
                    "type: unknown connection type {kind:?}; the types are {}",
                    known.join(", ")
                ),
                Some("type"),
            ));
        };
        for (key, _) in fields.iter() {
            if !connection_type.inputs.iter().any(|input| &input.key == key) {
                return Err(fail(
                    400,
                    "invalid-input",
                    format!("{key}: {} has no field {key:?}", connection_type.label),
                    Some(key),
                ));
            }
        }
        // A secret left empty when editing keeps the value already saved, but only while the
        // other fields stay as they were: a saved secret never follows the connection to
        // another token URL or environment.
        let existing = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .filter(|e| e.kind == kind)
            .cloned();
        if let Some(existing) = existing {
            let is_secret = |key: &str| {
                connection_type
                    .inputs
                    .iter()
                    .any(|i| i.key == key && i.input_type == InputType::Secret)
            };
            let plain = |fields: &BTreeMap<String, String>| -> BTreeMap<String, String> {
                fields
                    .iter()
                    .filter(|(key, value)| !is_secret(key) && !value.trim().is_empty())
                    .map(|(key, value)| (key.clone(), value.trim().to_string()))
                    .collect()
            };
            let unchanged = plain(&existing.fields) == plain(&fields);
            for input in &connection_type.inputs {
                let empty = fields.get(&input.key).is_none_or(|v| v.is_empty());
                let Some(value) = existing.fields.get(&input.key) else {
                    continue;
                };
                if input.input_type != InputType::Secret || !empty {
                    continue;
                }
                if !unchanged {
                    return Err(fail(
                        400,
                        "invalid-input",
                        format!(
                            "{}: type {} again: the other fields changed, and a saved secret stays only with the values it was saved with",
                            input.key, input.label
                        ),
                        Some(&input.key),
                    ));
                }
                fields.insert(input.key.clone(), value.clone());
            }
        }
        fields.retain(|_, value| !value.trim().is_empty());
        for input in &connection_type.inputs {
            if input.required && !fields.contains_key(&input.key) {
                return Err(fail(
                    400,
                    "invalid-input",
                    format!("{}: {} is required", input.key, input.label),
                    Some(&input.key),
                ));
            }
        }
        let connection = Connection {
            definition: kind.to_string(),
            fields: fields.clone().into_iter().collect(),
            token: None,
        };
        match self.host.endpoints(&connection) {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err((400, json!({ "error": connector_error(&error) }))),
            Err(error) => return Err((500, json!({ "error": host_error(&error) }))),
        }
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.insert(
            name.to_string(),
            Saved {
                kind: kind.to_string(),
                fields,
            },
        );
        save_connections(&self.connections_file, &connections).map_err(|problem| {
            fail(
                500,
                "host",
                format!("saving the connections: {problem:#}"),
                None,
            )
        })
    }

    fn delete_connection(&self, name: &str) -> Answer {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if connections.remove(name).is_none() {
            return fail(
                404,
                "not-found",
                format!("there is no connection called {name:?}"),
                None,
            );
        }
        let saved = save_connections(&self.connections_file, &connections);
        drop(connections);
        let forgotten = self.store.remove(&token_key(name));
        match saved.and(forgotten) {
            Ok(_) => (200, self.list_connections()),
            Err(problem) => fail(500, "host", format!("{problem:#}"), None),
        }
    }

    fn test_connection(&self, name: &str) -> Answer {
        let (key, mut connection) = match self.connection(name) {
            Ok(found) => found,
            Err(error) => return (400, json!({ "error": error })),
        };
        let manager = TokenManager::new(&self.host, &self.store);
        match manager.test_connection(&key, &mut connection) {
            Ok(Ok(text)) => (200, json!({ "output": parse_output(text) })),
            Ok(Err(error)) => {
                let error = connector_error(&error);
                (status_of(&error), json!({ "error": error }))
            }
            Err(error) => (500, json!({ "error": host_error(&error) })),
        }
    }

    fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.origin)
    }

    fn begin_sign_in(&self, name: &str) -> Answer {
        let (_, connection) = match self.connection(name) {
            Ok(found) => found,
            Err(error) => return (400, json!({ "error": error })),
        };
        match self
            .host
            .begin_authorization(&connection, &self.redirect_uri())
        {
            Ok(Ok(request)) => {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                // Sign-ins never finished are forgotten after a while.
                pending.retain(|_, (_, _, started)| started.elapsed() < SIGN_IN_TIME);
                pending.insert(
                    request.state,
                    (name.to_string(), request.code_verifier, Instant::now()),
                );
                (200, json!({ "url": request.url }))
            }
            Ok(Err(error)) => {
                let error = connector_error(&error);
                (status_of(&error), json!({ "error": error }))
            }
            Err(error) => (500, json!({ "error": host_error(&error) })),
        }
    }

    /// The identity provider's redirect: exchange the code, keep the tokens, and send the page
    /// back to the connections with the outcome in the fragment.
    fn callback(&self, request: &IncomingRequest) -> String {
        let query = |name: &str| {
            request
                .query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let back = |outcome: &str, message: &str| {
            format!("/#connections/{outcome}/{}", percent_encode(message))
        };
        let pending = query("state").and_then(|state| {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(state)
                .filter(|(_, _, started)| started.elapsed() < SIGN_IN_TIME)
        });
        let Some((name, verifier, _)) = pending else {
            return back(
                "sign-in-failed",
                "the sign-in answer did not match a sign-in started here",
            );
        };
        if let Some(error) = query("error") {
            let description = query("error_description").unwrap_or_default();
            return back("sign-in-failed", &format!("{name}: {error}: {description}"));
        }
        let Some(code) = query("code") else {
            return back(
                "sign-in-failed",
                &format!("{name}: the answer carried no code"),
            );
        };
        let (key, connection) = match self.connection(&name) {
            Ok(found) => found,
            Err(error) => return back("sign-in-failed", error["message"].as_str().unwrap_or("")),
        };
        match self
            .host
            .exchange_code(&connection, &self.redirect_uri(), code, &verifier)
        {
            Ok(Ok(token)) => {
                let manager = TokenManager::new(&self.host, &self.store);
                match manager.remember(&key, &connection, &token) {
                    Ok(()) => back("signed-in", &name),
                    Err(problem) => back("sign-in-failed", &format!("{name}: {problem:#}")),
                }
            }
            Ok(Err(error)) => back(
                "sign-in-failed",
                &format!("{name}: {}", dynamics_host::describe_error(&error)),
            ),
            Err(error) => back("sign-in-failed", &format!("{name}: {error}")),
        }
    }

    fn run_action(&self, connection: &str, action: &str, input: &Value) -> Result<Value, Value> {
        let (key, mut connection) = self.connection(connection)?;
        let manager = TokenManager::new(&self.host, &self.store);
        match manager.run_action(&key, &mut connection, action, &input.to_string()) {
            Ok(Ok(text)) => Ok(parse_output(text)),
            Ok(Err(error)) => Err(connector_error(&error)),
            Err(error) => Err(host_error(&error)),
        }
    }

    fn choices(&self, body: &Value) -> Answer {
        let (Some(name), Some(source)) = (body["connection"].as_str(), body["dataSource"].as_str())
        else {
            return fail(
                400,
                "invalid-input",
                "connection and dataSource are required",
                None,
            );
        };
        let connection = match self.prepared(name) {
            Ok((_, connection)) => connection,
            Err(error) => return (status_of(&error), json!({ "error": error })),
        };
        let input = body.get("input").cloned().unwrap_or_else(|| json!({}));
        match self.host.choices(source, &connection, &input.to_string()) {
            Ok(Ok(choices)) => {
                let list: Vec<Value> = choices
                    .iter()
                    .map(|c| json!({"label": c.label, "value": c.value}))
                    .collect();
                (200, json!({ "choices": list }))
            }
            Ok(Err(error)) => {
                let error = connector_error(&error);
                (status_of(&error), json!({ "error": error }))
            }
            Err(error) => (500, json!({ "error": host_error(&error) })),
        }
    }

    fn parse_flow(&self, body: &Value) -> Result<Flow, Answer> {
        let flow: Flow = serde_json::from_value(body["flow"].clone()).map_err(|problem| {
            fail(
                400,
                "invalid-input",
                format!("flow: {problem}"),
                Some("flow"),
            )
        })?;
        let actions: Vec<&str> = self
            .host
            .definition()
            .actions
            .iter()
            .map(|action| action.key.as_str())
            .collect();
        flow::check(&flow, &actions).map_err(|problem| {
            let field = problem.split(':').next().unwrap_or("flow").to_string();
            fail(400, "invalid-input", problem, Some(&field))
        })?;
        Ok(flow)
    }

    fn run_flow(&self, body: &Value) -> Answer {
        let flow = match self.parse_flow(body) {
            Ok(flow) => flow,
            Err(answer) => return answer,
        };
        let Some(connection) = body["connection"].as_str().or(flow.connection.as_deref()) else {
            return fail(
                400,
                "invalid-input",
                "connection: choose a connection for the flow",
                Some("connection"),
            );
        };
        if let Err(error) = self.connection(connection) {
            return (400, json!({ "error": error }));
        }
        let trigger = body.get("trigger").filter(|t| !t.is_null());
        let steps = flow::run(&flow, trigger, |action, input| {
            self.run_action(connection, action, input)
        });
        (200, json!({ "steps": steps }))
    }

    /// The named connection with a usable token (stored, renewed or newly acquired).
    fn prepared(&self, name: &str) -> Result<(String, Connection), Value> {
        let (key, mut connection) = self.connection(name)?;
        let manager = TokenManager::new(&self.host, &self.store);
        match manager.prepare(&key, &mut connection) {
            Ok(Ok(())) => Ok((key, connection)),
            Ok(Err(error)) => Err(connector_error(&error)),
            Err(error) => Err(host_error(&error)),
        }
    }

    fn start_trigger(self: &Arc<Self>, body: &Value) -> Answer {
        let flow = match self.parse_flow(body) {
            Ok(flow) => flow,
            Err(answer) => return answer,
        };
        let trigger = body["trigger"].as_str().unwrap_or("webhook").to_string();
        let Some(kind) = self
            .host
            .definition()
            .triggers
            .iter()
            .find(|definition| definition.key == trigger)
            .map(|definition| definition.kind)
        else {
            return fail(
                400,
                "invalid-input",
                format!("trigger: the component has no trigger {trigger:?}"),
                Some("trigger"),
            );
        };
        let Some(name) = body["connection"].as_str() else {
            return fail(
                400,
                "invalid-input",
                "connection: choose a connection for the trigger",
                Some("connection"),
            );
        };
        let mut config = match body.get("config") {
            Some(Value::Object(config)) => config.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => {
                return fail(
                    400,
                    "invalid-input",
                    "config: must be a JSON object",
                    Some("config"),
                );
            }
        };
        let every = match &body["intervalSeconds"] {
            Value::Null => 60,
            value => match value.as_u64().filter(|secs| POLL_SECONDS.contains(secs)) {
                Some(secs) => secs,
                None => {
                    return fail(
                        400,
                        "invalid-input",
                        format!("intervalSeconds: poll every 1 to 86400 seconds; got {value}"),
                        Some("intervalSeconds"),
                    );
                }
            },
        };
        if let Err(problem) = self.disarm() {
            return fail(502, "upstream", problem, None);
        }
        let connection = match self.prepared(name) {
            Ok((_, connection)) => connection,
            Err(error) => return (status_of(&error), json!({ "error": error })),
        };
        let listening = match kind {
            TriggerKind::Webhook => {
                let config_text = Value::Object(config.clone()).to_string();
                let registration = match self.host.enable_trigger(
                    &trigger,
                    &connection,
                    &config_text,
                    &self.webhook_url,
                ) {
                    Ok(Ok(registration)) => registration,
                    Ok(Err(error)) => {
                        let error = connector_error(&error);
                        return (status_of(&error), json!({ "error": error }));
                    }
                    Err(error) => return (500, json!({ "error": host_error(&error) })),
                };
                if let Some(webhook_key) = serde_json::from_str::<Value>(&registration)
                    .ok()
                    .and_then(|state| state["webhookKey"].as_str().map(str::to_string))
                {
                    config.insert("webhookKey".to_string(), json!(webhook_key));
                }
                Listening::Webhook { registration }
            }
            TriggerKind::Polling => {
                let stop = Arc::new(AtomicBool::new(false));
                let every = Duration::from_secs(every);
                self.spawn_poller(
                    trigger.clone(),
                    name.to_string(),
                    Value::Object(config.clone()).to_string(),
                    flow.clone(),
                    every,
                    stop.clone(),
                );
                Listening::Polling { every, stop }
            }
        };
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Armed {
            trigger,
            connection: name.to_string(),
            config: Value::Object(config).to_string(),
            listening,
            flow,
        });
        (200, self.trigger_status())
    }

    /// Polls `trigger` now and then every `every` until `stop`; each event runs `flow`. A poll
    /// that fails is shown as an event of its own, and the next poll tries again.
    fn spawn_poller(
        self: &Arc<Self>,
        trigger: String,
        connection: String,
        config: String,
        flow: Flow,
        every: Duration,
        stop: Arc<AtomicBool>,
    ) {
        let shared = self.clone();
        thread::spawn(move || {
            let mut state: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                let outcome = shared.prepared(&connection).and_then(|(_, prepared)| {
                    match shared
                        .host
                        .poll(&trigger, &prepared, &config, state.as_deref())
                    {
                        Ok(Ok(outcome)) => Ok(outcome),
                        Ok(Err(error)) => Err(connector_error(&error)),
                        Err(error) => Err(host_error(&error)),
                    }
                });
                match outcome {
                    Ok(outcome) => {
                        state = Some(outcome.state);
                        for event in &outcome.events {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let event =
                                serde_json::from_str(event).unwrap_or_else(|_| json!(event));
                            let id =
                                shared.push_event(json!({"event": &event, "status": "running"}));
                            shared.run_for_event(id, &connection, &flow, event);
                        }
                    }
                    Err(error) => {
                        shared.push_event(json!({"status": "failed", "error": error, "event": {"message": "poll"}}));
                    }
                }
                let until = Instant::now() + every;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                }
            }
        });
    }

    /// Runs `flow` for event record `id` and records the step results.
    fn run_for_event(&self, id: usize, connection: &str, flow: &Flow, event: Value) {
        let steps = flow::run(flow, Some(&event), |action, input| {
            self.run_action(connection, action, input)
        });
        let failed = steps.iter().any(|step| step.status == "failed");
        self.update_event(
            id,
            json!({
                "event": event,
                "status": if failed { "failed" } else { "succeeded" },
                "steps": steps,
            }),
        );
    }

    fn trigger_status(&self) -> Value {
        let armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        match armed.as_ref() {
            Some(armed) => {
                let mut status = json!({
                    "armed": true,
                    "trigger": armed.trigger,
                    "connection": armed.connection,
                    "flow": armed.flow.name,
                });
                match &armed.listening {
                    Listening::Webhook { .. } => status["webhookUrl"] = json!(self.webhook_url),
                    Listening::Polling { every, .. } => {
                        status["intervalSeconds"] = json!(every.as_secs())
                    }
                }
                status
            }
            None => json!({"armed": false}),
        }
    }

    /// Unregisters (or stops polling) the armed trigger, if any; true when there was one.
    fn disarm(&self) -> Result<bool, String> {
        let Some(armed) = self.armed.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(false);
        };
        let Listening::Webhook { registration } = &armed.listening else {
            if let Listening::Polling { stop, .. } = &armed.listening {
                stop.store(true, Ordering::Relaxed);
            }
            return Ok(true);
        };
        let unregistered = self
            .prepared(&armed.connection)
            .and_then(|(_, connection)| {
                match self.host.disable_trigger(
                    &armed.trigger,
                    &connection,
                    &armed.config,
                    registration,
                ) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(connector_error(&error)),
                    Err(error) => Err(host_error(&error)),
                }
            });
        unregistered.map(|()| true).map_err(|error| {
            // The registration also holds the webhook key: name only the endpoint.
            let endpoint = serde_json::from_str::<Value>(registration)
                .ok()
                .and_then(|state| state["serviceEndpointId"].as_str().map(str::to_string))
                .unwrap_or_else(|| "(unknown)".to_string());
            format!(
                "the webhook registration could not be removed ({}); delete service endpoint {endpoint} and its steps by hand",
                error["message"].as_str().unwrap_or("unknown error"),
            )
        })
    }

    /// A webhook request: the trigger checks and reads it; each event runs the armed flow on a
    /// thread of its own, after the answer (Dataverse waits for synchronous steps).
    fn webhook(self: &Arc<Self>, request: IncomingRequest) -> WebhookOutcome {
        let armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let listening = armed
            .as_ref()
            .filter(|active| matches!(active.listening, Listening::Webhook { .. }));
        let Some(active) = listening else {
            return WebhookOutcome {
                status: 404,
                headers: Vec::new(),
                body: b"no webhook trigger is listening".to_vec(),
                events: Vec::new(),
            };
        };
        let (trigger, config) = (active.trigger.clone(), active.config.clone());
        let (connection, flow) = (active.connection.clone(), active.flow.clone());
        drop(armed);
        let outcome = match self.host.handle_webhook(&trigger, &config, request) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => WebhookOutcome {
                status: 500,
                headers: Vec::new(),
                body: dynamics_host::describe_error(&error).into_bytes(),
                events: Vec::new(),
            },
            Err(error) => WebhookOutcome {
                status: 500,
                headers: Vec::new(),
                body: error.to_string().into_bytes(),
                events: Vec::new(),
            },
        };
        for event in &outcome.events {
            let event: Value = serde_json::from_str(event).unwrap_or_else(|_| json!(event));
            let id = self.push_event(json!({"event": &event, "status": "running"}));
            let (shared, connection, flow) = (self.clone(), connection.clone(), flow.clone());
            thread::spawn(move || shared.run_for_event(id, &connection, &flow, event));
        }
        outcome
    }

    fn push_event(&self, mut record: Value) -> usize {
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if log.items.len() == MAX_EVENTS {
            log.items.pop_front();
            log.first += 1;
        }
        let id = log.first + log.items.len() + 1;
        record["id"] = json!(id);
        record["receivedAt"] = json!(format_utc(unix_now()));
        log.items.push_back(record);
        log.revision += 1;
        self.events_changed.notify_all();
        id
    }

    fn update_event(&self, id: usize, mut record: Value) {
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let index = id.checked_sub(log.first + 1);
        if let Some(slot) = index.and_then(|index| log.items.get_mut(index)) {
            record["id"] = json!(id);
            record["receivedAt"] = slot["receivedAt"].clone();
            *slot = record;
        }
        log.revision += 1;
        self.events_changed.notify_all();
    }

    /// The events (the latest 100) once the revision is above `after`, waiting a while for a
    /// change.
    fn events_after(&self, after: u64) -> Value {
        let deadline = Instant::now() + EVENT_WAIT;
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        while log.revision <= after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            log = self
                .events_changed
                .wait_timeout(log, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let skip = log.items.len().saturating_sub(100);
        let latest: Vec<&Value> = log.items.iter().skip(skip).collect();
        json!({"events": latest, "revision": log.revision})
    }
}

/// The page's files: status, content type, body.
fn asset(path: &str) -> Option<(u16, &'static str, &'static str)> {
    match path {
        "/" => Some((200, "text/html; charset=utf-8", INDEX_HTML)),
        "/app.js" => Some((200, "text/javascript; charset=utf-8", APP_JS)),
        "/app.css" => Some((200, "text/css; charset=utf-8", APP_CSS)),
        "/favicon.ico" => Some((204, "image/x-icon", "")),
        _ => None,
    }
}

fn token_key(name: &str) -> String {
    format!("designer/{name}")
}

fn decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

fn parse_output(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn text_fields(value: &Value) -> Result<BTreeMap<String, String>, Answer> {
    let Value::Object(fields) = value else {
        return Err(fail(
            400,
            "invalid-input",
            "fields: must be a JSON object",
            Some("fields"),
        ));
    };
    fields
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            Value::Null => Ok((key.clone(), String::new())),
            Value::Bool(_) | Value::Number(_) => Ok((key.clone(), value.to_string())),
            _ => Err(fail(
                400,
                "invalid-input",
                format!("{key}: a connection field is text"),
                Some(key),
            )),
        })
        .collect()
}

fn load_connections(path: &Path) -> anyhow::Result<BTreeMap<String, Saved>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("reading the designer's connections in {}", path.display())),
        Err(problem) if problem.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(problem) => Err(problem).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the connections (secrets included) to a 0600 file, through a temporary file so a
/// crash never leaves half a file.
fn save_connections(path: &Path, connections: &BTreeMap<String, Saved>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        dynamics_host::tokens::ensure_private_dir(dir, false)?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(connections)?;
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(&temporary)
            .with_context(|| format!("writing {}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
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

/// The component's definitions as the page reads them.
pub fn definition_json(definition: &ComponentDefinition) -> Value {
    use dynamics_host::ConnectionKind;
    let inputs = |inputs: &[InputDefinition]| -> Value {
        inputs
            .iter()
            .map(|input| {
                json!({
                    "key": input.key,
                    "label": input.label,
                    "type": input_type_name(input.input_type),
                    "required": input.required,
                    "default": input.default,
                    "comments": input.comments,
                    "example": input.example,
                    "choices": input.choices.iter().map(|c| json!({"label": c.label, "value": c.value})).collect::<Vec<_>>(),
                    "dataSource": input.data_source,
                })
            })
            .collect()
    };
    json!({
        "key": definition.key,
        "name": definition.name,
        "version": definition.version,
        "description": definition.description,
        "icon": definition.icon,
        "connections": definition.connections.iter().map(|c| json!({
            "key": c.key, "label": c.label, "description": c.description,
            "kind": match c.kind {
                ConnectionKind::Oauth2AuthorizationCode => "oauth2-authorization-code",
                ConnectionKind::Oauth2ClientCredentials => "oauth2-client-credentials",
                ConnectionKind::Oauth2Password => "oauth2-password",
            },
            "inputs": inputs(&c.inputs),
        })).collect::<Vec<_>>(),
        "actions": definition.actions.iter().map(|a| json!({
            "key": a.key, "label": a.label, "description": a.description, "group": a.group,
            "inputs": inputs(&a.inputs),
            "exampleOutput": a.example_output.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()),
        })).collect::<Vec<_>>(),
        "triggers": definition.triggers.iter().map(|t| json!({
            "key": t.key, "label": t.label, "description": t.description,
            "kind": match t.kind {
                TriggerKind::Webhook => "webhook",
                TriggerKind::Polling => "polling",
            },
            "inputs": inputs(&t.inputs),
        })).collect::<Vec<_>>(),
        "dataSources": definition.data_sources.iter().map(|d| json!({
            "key": d.key, "label": d.label, "description": d.description, "inputs": inputs(&d.inputs),
        })).collect::<Vec<_>>(),
    })
}
