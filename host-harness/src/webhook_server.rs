//! A small HTTP server on a loopback port that hands each request to a webhook trigger and
//! passes the events it produces on. Plain HTTP/1.1, one request per connection, bodies up to
//! 1 MiB (the trigger itself refuses more than Dataverse sends).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::Duration;

use crate::{IncomingRequest, WebhookOutcome};

const MAX_BODY: usize = 1 << 20;

/// What answers one request: the trigger, run by the caller's host.
pub type Handler = Arc<dyn Fn(IncomingRequest) -> WebhookOutcome + Send + Sync>;

/// A running server. Stops when dropped.
pub struct WebhookServer {
    url: String,
    events: Receiver<String>,
    stop: Arc<AtomicBool>,
}

impl WebhookServer {
    /// Listens on `127.0.0.1:port` (0 picks a free port) and serves until dropped.
    pub fn start(port: u16, path: &str, handler: Handler) -> std::io::Result<WebhookServer> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}{}", listener.local_addr()?, path);
        let (sender, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::Builder::new()
            .name("webhook-server".to_string())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (handler, sender) = (handler.clone(), sender.clone());
                            thread::spawn(move || serve(stream, &handler, &sender));
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

fn serve(stream: TcpStream, handler: &Handler, events: &Sender<String>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let outcome = match read_request(&stream, MAX_BODY) {
        Ok(request) => handler(request),
        Err(reason) => WebhookOutcome {
            status: 400,
            headers: vec![("content-type".to_string(), "text/plain".to_string())],
            body: reason.into_bytes(),
            events: Vec::new(),
        },
    };
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
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&outcome.body);
}

/// Longest request or header line accepted.
const MAX_LINE: u64 = 8 << 10;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;
/// The whole request must arrive within this time (a client trickling bytes is cut off).
const REQUEST_TIME: Duration = Duration::from_secs(30);

/// Reads one HTTP/1.1 request with a body of at most `max_body` bytes. Lines are capped at
/// 8 KiB and headers at 100; the body needs a valid `Content-Length` (chunked bodies are
/// refused); the whole request must arrive within 30 seconds.
pub(crate) fn read_request(stream: &TcpStream, max_body: usize) -> Result<IncomingRequest, String> {
    let deadline = std::time::Instant::now() + REQUEST_TIME;
    let mut reader = BufReader::new(stream);
    let next_line = |reader: &mut BufReader<&TcpStream>| -> Result<String, String> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
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
    let line = next_line(&mut reader)?;
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(method), Some(target)) => (method.to_string(), target.to_string()),
        _ => return Err("not an HTTP request".to_string()),
    };
    let mut headers = Vec::new();
    loop {
        let header = next_line(&mut reader)?;
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
    if headers.iter().any(|(name, _)| name == "transfer-encoding") {
        return Err("chunked bodies are not supported; send a Content-Length".to_string());
    }
    let length: usize = match headers.iter().find(|(name, _)| name == "content-length") {
        None => 0,
        Some((_, value)) => value
            .parse()
            .map_err(|_| format!("the Content-Length {value:?} is not a number"))?,
    };
    if length > max_body {
        return Err("the body is too large".to_string());
    }
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
    // Read what arrives rather than allocating the announced length up front.
    let mut body = Vec::with_capacity(length.min(64 << 10));
    reader
        .take(length as u64)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() != length {
        return Err("the request ended before its body did".to_string());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok(IncomingRequest {
        method,
        path: path.to_string(),
        query,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        _ => "Status",
    }
}
