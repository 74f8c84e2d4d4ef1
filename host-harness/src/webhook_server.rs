//! A small HTTP server on a loopback port that hands each request to a webhook trigger and
//! passes the events it produces on. Plain HTTP/1.1, one request per connection.
//!
//! Everything the headers alone can refuse is refused before the body is read, and before the
//! trigger runs: another path (404), another method (405), a body that is not JSON (415), a
//! body larger than Dataverse ever sends (413), ambiguous framing (400).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

use dynamics_host::{IncomingRequest, WebhookOutcome};

/// Dataverse trims contexts to this size, so a bigger body is not one of its deliveries.
pub const MAX_BODY: usize = dataverse::webhook::MAX_BODY_BYTES;

/// What answers one request: the trigger, run by the caller's host.
pub type Handler = Arc<dyn Fn(IncomingRequest) -> WebhookOutcome + Send + Sync>;

/// A running server. Stops when dropped.
pub struct WebhookServer {
    url: String,
    events: Receiver<String>,
    stop: Arc<AtomicBool>,
}

impl WebhookServer {
    /// Listens on `127.0.0.1:port` (0 picks a free port) and serves until dropped. Only `path`
    /// is answered; the trigger sees POSTs of JSON bodies of at most [`MAX_BODY`] bytes.
    pub fn start(port: u16, path: &str, handler: Handler) -> std::io::Result<WebhookServer> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}{}", listener.local_addr()?, path);
        let path: Arc<str> = Arc::from(path);
        let (sender, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::Builder::new()
            .name("webhook-server".to_string())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (handler, sender, path) =
                                (handler.clone(), sender.clone(), path.clone());
                            thread::spawn(move || serve(stream, &path, &handler, &sender));
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(WebhookServer { url, events, stop })
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

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, path: &str, handler: &Handler, events: &Sender<String>) {
    let _ = stream.set_nonblocking(false);
    let deadline = Instant::now() + REQUEST_TIME;
    let mut reader = BufReader::new(&stream);
    let outcome = match read_head(&stream, &mut reader, deadline) {
        Err(problem) => refusal(400, &problem),
        Ok(head) => match screen(&head, path) {
            Err(refused) => refused,
            Ok(length) => match read_body(&stream, &mut reader, length, deadline) {
                Err(problem) => refusal(400, &problem),
                Ok(body) => handler(head.into_request(body)),
            },
        },
    };
    drop(reader);
    for event in &outcome.events {
        let _ = events.send(event.clone());
    }
    let mut stream = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        outcome.status,
        reason(outcome.status),
        outcome.body.len()
    );
    for (name, value) in &outcome.headers {
        // The framing is the server's; and a header that could split the answer is dropped.
        let framing = ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|framing| name.eq_ignore_ascii_case(framing));
        let splits = format!("{name}{value}").chars().any(char::is_control);
        if !framing && !splits {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&outcome.body);
    close(stream);
}

/// Whether the request may reach the trigger, and then its body length: judged on the head
/// alone, so that nothing is read or run for a request that cannot be a delivery.
fn screen(head: &Head, path: &str) -> Result<usize, WebhookOutcome> {
    let length = head.body_length().map_err(|reason| refusal(400, &reason))?;
    let (request_path, _) = head.target.split_once('?').unwrap_or((&head.target, ""));
    if request_path != path {
        return Err(refusal(404, "nothing is served here"));
    }
    if head.method != "POST" {
        let mut refused = refusal(405, "webhooks arrive as POST requests");
        refused
            .headers
            .push(("allow".to_string(), "POST".to_string()));
        return Err(refused);
    }
    let types: Vec<&str> = head.values("content-type").collect();
    if types.is_empty() || !types.iter().all(|value| is_json(value)) {
        return Err(refusal(415, "the body must be application/json"));
    }
    if length > MAX_BODY {
        return Err(refusal(
            413,
            &format!("the body is larger than the {MAX_BODY} bytes Dataverse sends"),
        ));
    }
    Ok(length)
}

/// `application/json`, with parameters (`; charset=utf-8`) or without, in any case; not
/// `application/jsonx`, `text/json` or `application/json-patch+json`.
fn is_json(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
}

fn refusal(status: u16, reason: &str) -> WebhookOutcome {
    WebhookOutcome {
        status,
        headers: vec![("content-type".to_string(), "text/plain".to_string())],
        body: reason.as_bytes().to_vec(),
        events: Vec::new(),
    }
}

/// How long a refused client gets to stop sending before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and thrown away while lingering.
const MAX_DRAIN: usize = 1 << 20;

/// Ends the answer and closes. Closing a socket with unread bytes makes the kernel send a reset,
/// which can destroy the answer before the client reads it (the 413 a client sending a large body
/// must see); so the unread rest is read and dropped first, for a short time and up to a cap.
fn close(stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + LINGER;
    let mut drained = 0;
    let mut buffer = [0u8; 16 << 10];
    while drained < MAX_DRAIN {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match (&stream).read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => drained += read,
        }
    }
}

/// Longest request or header line accepted.
const MAX_LINE: u64 = 8 << 10;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;
/// The whole request must arrive within this time (a client trickling bytes is cut off).
const REQUEST_TIME: Duration = Duration::from_secs(30);

/// A request line and its headers (names in lower case).
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body length the headers announce. A body whose end two readers could see in
    /// different places (chunked, or `Content-Length`s that disagree) is refused: a proxy in
    /// front could otherwise take the rest for a second request.
    fn body_length(&self) -> Result<usize, String> {
        if self.values("transfer-encoding").next().is_some() {
            return Err("chunked bodies are not supported; send a Content-Length".to_string());
        }
        let mut length = None;
        for value in self.values("content-length").flat_map(|v| v.split(',')) {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("the Content-Length {value:?} is not a number"));
            }
            let value: usize = value
                .parse()
                .map_err(|_| format!("the Content-Length {value:?} is not a number"))?;
            if length.is_some_and(|known| known != value) {
                return Err("the request has conflicting Content-Length headers".to_string());
            }
            length = Some(value);
        }
        Ok(length.unwrap_or(0))
    }

    fn into_request(self, body: Vec<u8>) -> IncomingRequest {
        let (path, query) = self.target.split_once('?').unwrap_or((&self.target, ""));
        let query = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        IncomingRequest {
            method: self.method,
            path: path.to_string(),
            query,
            headers: self.headers,
            body,
        }
    }
}

/// Reads one HTTP/1.1 request with a body of at most `max_body` bytes. Lines are capped at
/// 8 KiB and headers at 100; the body needs one unambiguous `Content-Length` (chunked bodies
/// are refused); the whole request must arrive within 30 seconds.
pub(crate) fn read_request(stream: &TcpStream, max_body: usize) -> Result<IncomingRequest, String> {
    let deadline = Instant::now() + REQUEST_TIME;
    let mut reader = BufReader::new(stream);
    let head = read_head(stream, &mut reader, deadline)?;
    let length = head.body_length()?;
    if length > max_body {
        return Err("the body is too large".to_string());
    }
    let body = read_body(stream, &mut reader, length, deadline)?;
    Ok(head.into_request(body))
}

fn read_head(
    stream: &TcpStream,
    reader: &mut BufReader<&TcpStream>,
    deadline: Instant,
) -> Result<Head, String> {
    let mut next_line = || -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the request took too long to arrive".to_string());
        }
        let _ = stream.set_read_timeout(Some(left));
        let mut line = Vec::new();
        reader
            .by_ref()
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if line.len() as u64 > MAX_LINE {
            return Err("a request line or header is longer than 8 KiB".to_string());
        }
        if !line.ends_with(b"\n") {
            return Err("the request ended before its headers did".to_string());
        }
        String::from_utf8(line).map_err(|_| "a header is not UTF-8".to_string())
    };
    let line = next_line()?;
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(method), Some(target)) => (method.to_string(), target.to_string()),
        _ => return Err("not an HTTP request".to_string()),
    };
    let mut headers = Vec::new();
    loop {
        let header = next_line()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err("the request has more than 100 headers".to_string());
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok(Head {
        method,
        target,
        headers,
    })
}

/// Reads exactly `length` bytes, as they arrive rather than allocating the announced length up
/// front, within what is left of the request's time.
fn read_body(
    stream: &TcpStream,
    reader: &mut BufReader<&TcpStream>,
    length: usize,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(length.min(64 << 10));
    let mut chunk = [0u8; 16 << 10];
    while body.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the request took too long to arrive".to_string());
        }
        let _ = stream.set_read_timeout(Some(left));
        let wanted = (length - body.len()).min(chunk.len());
        match reader.read(&mut chunk[..wanted]) {
            Ok(0) => return Err("the request ended before its body did".to_string()),
            Ok(read) => body.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(body)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
