//! The one HTTP stack the CLI serves on: axum routers over hyper's HTTP/1.1, on a tokio runtime
//! of their own, bound to 127.0.0.1. The login callback, the webhook server and the designer
//! use it, with the helpers they share (limits, constant-time comparison, plain answers).
//!
//! Each server gets one thread that runs a current-thread runtime; handlers that call the
//! component or wait block on tokio's blocking pool, never on the accept loop. One request per
//! connection: nothing here needs keep-alive, and a closed connection is the clearest end.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};

mod head;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, oneshot};

/// What a server accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are answered 503 at once.
    pub max_connections: usize,
    /// Time for the request head to arrive (a client trickling headers is cut off).
    pub head_time: Duration,
    /// Largest request head, in bytes.
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            head_time: Duration::from_secs(30),
            max_head: 64 << 10,
        }
    }
}

/// Binds `127.0.0.1:port` (0 picks a free port): loopback only, so nothing off this machine
/// reaches the servers.
pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
}

/// How long a stopped server lets its open connections finish.
const GRACE: Duration = Duration::from_secs(2);

/// A server on a loopback port. Stops accepting when dropped.
pub struct LoopbackServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<thread::JoinHandle<()>>,
}

impl LoopbackServer {
    /// Serves `router` on a listener from [`bind`] until dropped.
    pub fn start(
        listener: TcpListener,
        limits: Limits,
        router: Router,
    ) -> std::io::Result<LoopbackServer> {
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let serving = thread::Builder::new()
            .name(format!("http-{}", address.port()))
            .spawn(move || {
                runtime.block_on(accept(listener, limits, router, stopped));
                // Long polls and component calls on the blocking pool end on their own.
                runtime.shutdown_background();
            })?;
        Ok(LoopbackServer {
            address,
            stop: Some(stop),
            serving: Some(serving),
        })
    }

    /// The bound address, `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>`
    pub fn origin(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for LoopbackServer {
    /// Stops accepting and waits (at most `GRACE`, two seconds) for the answers already decided
    /// to go out.
    /// Without the wait, a CLI that returns right after the sign-in redirect could exit before
    /// the browser's page was written, and the browser would see a cut connection.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take()
            && serving.thread().id() != thread::current().id()
        {
            let _ = serving.join();
        }
    }
}

async fn accept(
    listener: TcpListener,
    limits: Limits,
    router: Router,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => {
                // The port closes now; answers already decided (the sign-in page after the
                // redirect) still go out.
                drop(listener);
                let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
                let _ = within(GRACE, slots.acquire_many(all)).await;
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let slot = slots.clone().try_acquire_owned().ok();
        let service = match slot {
            Some(_) => TowerToHyperService::new(router.clone()),
            None => TowerToHyperService::new(Router::new().fallback(busy)),
        };
        tokio::spawn(async move {
            if let Some(stream) = head::screen(stream, &limits).await {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .title_case_headers(true)
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.head_time)
                    .max_buf_size(limits.max_head.max(8192))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
            drop(slot);
        });
    }
}

async fn busy() -> Response<Body> {
    text(StatusCode::SERVICE_UNAVAILABLE, "busy")
}

/// A `text/plain` answer.
pub fn text(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Compares two secrets in time that depends only on their lengths.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Runs blocking work (a component call, a wait) off the server's thread.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

/// `work`, or `None` when it takes longer than `limit`.
pub async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, work).await.ok()
}

/// A request as components and handlers see it, its body read within `time` and refused past
/// `max_body` bytes.
pub async fn incoming(
    request: axum::extract::Request,
    max_body: usize,
    time: Duration,
) -> Result<dynamics_host::IncomingRequest, String> {
    let (parts, body) = request.into_parts();
    let body = within(time, axum::body::to_bytes(body, max_body))
        .await
        .ok_or("the request took too long to arrive")?
        .map_err(|problem| format!("reading the body: {problem}"))?;
    Ok(dynamics_host::IncomingRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: query_pairs(parts.uri.query()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: body.to_vec(),
    })
}

/// Everything but RFC 3986's unreserved characters is escaped (as `encodeURIComponent` does).
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one URL component (spaces as `%20`, which `decodeURIComponent` reads back).
pub fn encode_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

/// Decodes one percent-encoded path segment (`+` stays a plus).
pub fn decode_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The decoded pairs of a query string (`+` and percent escapes decoded).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;

    fn hello() -> Router {
        Router::new().fallback(|| async { text(StatusCode::OK, "hello") })
    }

    fn exchange(stream: &mut TcpStream, raw: &str) -> String {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn a_dropped_server_sends_the_answers_it_was_writing_before_drop_returns() {
        // The sign-in page is decided just before the CLI drops its server and exits: drop must
        // not return before that page is on the wire.
        let (started, handler_started) = std::sync::mpsc::channel::<()>();
        let router = Router::new().fallback(move || {
            let _ = started.send(());
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                text(StatusCode::OK, "signed in")
            }
        });
        let server = LoopbackServer::start(bind(0).unwrap(), Limits::default(), router).unwrap();
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        handler_started
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
        drop(server);
        // Whatever the server wrote is in the socket now; nothing more is waited for.
        stream.set_nonblocking(true).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.ends_with("signed in"), "{answer:?}");
    }

    #[test]
    fn a_connection_past_the_limit_is_answered_503_at_once() {
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let server = LoopbackServer::start(bind(0).unwrap(), limits, hello()).unwrap();
        // The first connection holds the only slot: its head never ends.
        let mut first = TcpStream::connect(server.address()).unwrap();
        first.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut second = TcpStream::connect(server.address()).unwrap();
        let answer = exchange(&mut second, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        drop(first);
        std::thread::sleep(Duration::from_millis(200));
        let mut third = TcpStream::connect(server.address()).unwrap();
        let answer = exchange(&mut third, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("Connection: close"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
    }

    #[test]
    fn a_refused_head_is_answered_400_saying_why() {
        let server = LoopbackServer::start(bind(0).unwrap(), Limits::default(), hello()).unwrap();
        let mut stream = TcpStream::connect(server.address()).unwrap();
        let answer = exchange(
            &mut stream,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.ends_with("conflicting Content-Length headers"),
            "{answer}"
        );
    }

    #[test]
    fn a_stopped_server_refuses_new_connections_while_open_ones_finish() {
        let server = LoopbackServer::start(bind(0).unwrap(), Limits::default(), hello()).unwrap();
        let address = server.address();
        let mut open = TcpStream::connect(address).unwrap();
        open.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(server);
        std::thread::sleep(Duration::from_millis(300));
        assert!(TcpStream::connect(address).is_err());
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn components_round_trip_through_percent_coding() {
        let text = "a b/ü+&%~";
        assert_eq!(encode_component(text), "a%20b%2F%C3%BC%2B%26%25~");
        assert_eq!(decode_segment(&encode_component(text)), text);
        assert_eq!(decode_segment("100%"), "100%");
    }

    #[test]
    fn query_values_are_percent_and_plus_decoded() {
        assert_eq!(
            query_pairs(Some(
                "code=a%2Bb%2F&state=x+y&error_description=AADSTS65001%3A+no"
            )),
            vec![
                ("code".to_string(), "a+b/".to_string()),
                ("state".to_string(), "x y".to_string()),
                (
                    "error_description".to_string(),
                    "AADSTS65001: no".to_string()
                ),
            ]
        );
        assert_eq!(
            query_pairs(Some("a=100%")),
            vec![("a".into(), "100%".into())]
        );
        assert_eq!(query_pairs(None), Vec::new());
    }
}
