//! A small HTTP server on a loopback port that hands each request to a webhook trigger and
//! passes the events it produces on, served by [`crate::http`]: HTTP/1.1, one request per
//! connection.
//!
//! Everything the headers alone can refuse is refused before the body is read, and before the
//! trigger runs: another path (404), another method (405), a body that is not JSON (415), a
//! body larger than Dataverse ever sends (413), ambiguous framing (400, by [`crate::http`]).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use dynamics_host::{IncomingRequest, WebhookOutcome};
use futures_util::StreamExt as _;

use crate::http::{Limits, LoopbackServer};

/// Dataverse trims contexts to this size, so a bigger body is not one of its deliveries.
pub const MAX_BODY: usize = dataverse::webhook::MAX_BODY_BYTES;

/// What answers one request: the trigger, run by the caller's host.
pub type Handler = Arc<dyn Fn(IncomingRequest) -> WebhookOutcome + Send + Sync>;

/// A running server. Stops when dropped.
pub struct WebhookServer {
    url: String,
    events: Receiver<String>,
    _server: LoopbackServer,
}

#[derive(Clone)]
struct Trigger {
    path: Arc<str>,
    handler: Handler,
    events: Sender<String>,
}

impl WebhookServer {
    /// Listens on `127.0.0.1:port` (0 picks a free port) and serves until dropped. Only `path`
    /// is answered; the trigger sees POSTs of JSON bodies of at most [`MAX_BODY`] bytes.
    pub fn start(port: u16, path: &str, handler: Handler) -> std::io::Result<WebhookServer> {
        let (sender, events) = channel();
        let trigger = Trigger {
            path: Arc::from(path),
            handler,
            events: sender,
        };
        let router = Router::new().fallback(deliver).with_state(trigger);
        let server = LoopbackServer::start(crate::http::bind(port)?, Limits::default(), router)?;
        let url = format!("{}{}", server.origin(), path);
        Ok(WebhookServer {
            url,
            events,
            _server: server,
        })
    }

    /// The URL to register with the service.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<String> {
        self.events.recv_timeout(timeout).ok()
    }
}

async fn deliver(State(trigger): State<Trigger>, request: Request) -> Response {
    let outcome = match screen(&request, &trigger.path) {
        Err(refused) => {
            // The client may still be sending the body: read and drop it for a while, so
            // closing with unread bytes does not reset the connection before the answer is read.
            tokio::spawn(drain(request.into_body()));
            let mut response = answer(refused);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Ok(()) => match crate::http::incoming(request, MAX_BODY, REQUEST_TIME).await {
            Err(problem) => refusal(400, &problem),
            Ok(incoming) => {
                let handler = trigger.handler.clone();
                crate::http::blocking(move || handler(incoming))
                    .await
                    .unwrap_or_else(|| refusal(500, "the trigger failed"))
            }
        },
    };
    for event in &outcome.events {
        let _ = trigger.events.send(event.clone());
    }
    answer(outcome)
}

/// Whether the request may reach the trigger: judged on the head alone, so that nothing is read
/// or run for a request that cannot be a delivery. (Ambiguous framing never gets here: the
/// shared head screen in [`crate::http`] refuses it with 400.)
fn screen(request: &Request, path: &str) -> Result<(), WebhookOutcome> {
    let headers = request.headers();
    if request.uri().path() != path {
        return Err(refusal(404, "nothing is served here"));
    }
    if request.method() != Method::POST {
        let mut refused = refusal(405, "webhooks arrive as POST requests");
        refused
            .headers
            .push(("allow".to_string(), "POST".to_string()));
        return Err(refused);
    }
    let types: Vec<&HeaderValue> = headers.get_all(header::CONTENT_TYPE).iter().collect();
    if types.is_empty() || !types.iter().all(|value| is_json(value)) {
        return Err(refusal(415, "the body must be application/json"));
    }
    if content_length(headers) > MAX_BODY {
        return Err(refusal(
            413,
            &format!("the body is larger than the {MAX_BODY} bytes Dataverse sends"),
        ));
    }
    Ok(())
}

fn content_length(headers: &HeaderMap) -> usize {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// `application/json`, with parameters (`; charset=utf-8`) or without, in any case; not
/// `application/jsonx`, `text/json` or `application/json-patch+json`.
fn is_json(content_type: &HeaderValue) -> bool {
    let content_type = String::from_utf8_lossy(content_type.as_bytes());
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// The whole request must arrive within this time (a client trickling bytes is cut off).
const REQUEST_TIME: Duration = Duration::from_secs(30);

fn refusal(status: u16, reason: &str) -> WebhookOutcome {
    WebhookOutcome {
        status,
        headers: vec![("content-type".to_string(), "text/plain".to_string())],
        body: reason.as_bytes().to_vec(),
        events: Vec::new(),
    }
}

fn answer(outcome: WebhookOutcome) -> Response {
    let mut response = Response::new(Body::from(outcome.body));
    *response.status_mut() =
        StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &outcome.headers {
        // The framing is the server's; and a header that could split the answer is dropped.
        let framing = ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|framing| name.eq_ignore_ascii_case(framing));
        if framing {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// How long a refused client gets to stop sending before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and thrown away while lingering.
const MAX_DRAIN: usize = 1 << 20;

/// Reads and drops what is left of a refused request's body, for a short time and up to a cap.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut drained = 0;
    let _ = crate::http::within(LINGER, async {
        while drained < MAX_DRAIN {
            match stream.next().await {
                Some(Ok(chunk)) => drained += chunk.len(),
                _ => break,
            }
        }
    })
    .await;
}
