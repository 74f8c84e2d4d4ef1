//! The webhook server as a client on the wire sees it: raw HTTP over TCP to 127.0.0.1. The
//! trigger behind it is a stand-in that counts the requests it is handed, so each test can tell
//! a refusal of the server from one of the trigger.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamics_host::{IncomingRequest, WebhookOutcome};
use host_harness::webhook_server::{MAX_BODY, WebhookServer};

const PATH: &str = "/webhooks/dynamics";

struct Served {
    server: WebhookServer,
    /// Requests handed to the trigger.
    handled: Arc<Mutex<Vec<IncomingRequest>>>,
}

impl Served {
    fn start() -> Served {
        let handled = Arc::new(Mutex::new(Vec::new()));
        let seen = handled.clone();
        let server = WebhookServer::start(
            0,
            PATH,
            Arc::new(move |request: IncomingRequest| {
                let body = String::from_utf8_lossy(&request.body).into_owned();
                seen.lock().unwrap().push(request);
                WebhookOutcome {
                    status: 200,
                    headers: vec![("content-type".to_string(), "application/json".to_string())],
                    body: br#"{"accepted": true}"#.to_vec(),
                    events: vec![body],
                }
            }),
        )
        .unwrap();
        Served { server, handled }
    }

    fn address(&self) -> String {
        let rest = self.server.url().strip_prefix("http://").unwrap();
        rest[..rest.find('/').unwrap()].to_string()
    }

    fn handled(&self) -> usize {
        self.handled.lock().unwrap().len()
    }

    /// Sends `raw` as is and reads the whole answer: its status and the text after it.
    fn exchange(&self, raw: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(self.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(raw).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        status_of(&answer)
    }
}

fn status_of(answer: &str) -> (u16, String) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer.to_string())
}

/// A POST of `body` to `target` with these extra header lines.
fn post(target: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut raw = format!("POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

const BODY: &str = r#"{"MessageName": "Create"}"#;

fn json_post(target: &str) -> Vec<u8> {
    let length = format!("Content-Length: {}", BODY.len());
    post(
        target,
        &["Content-Type: application/json; charset=utf-8", &length],
        BODY,
    )
}

#[test]
fn a_json_post_on_the_trigger_path_reaches_the_trigger_with_its_query_and_body() {
    let served = Served::start();
    let (status, answer) = served.exchange(&json_post(&format!("{PATH}?code=k%20ey")));
    assert_eq!(status, 200, "{answer}");
    assert!(answer.ends_with(r#"{"accepted": true}"#), "{answer}");
    let handled = served.handled.lock().unwrap();
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].path, PATH);
    assert_eq!(
        handled[0].query,
        vec![("code".to_string(), "k ey".to_string())]
    );
    assert_eq!(handled[0].body, BODY.as_bytes());
    drop(handled);
    assert_eq!(
        served.server.next_event(Duration::from_secs(5)).as_deref(),
        Some(BODY)
    );
}

#[test]
fn only_the_trigger_path_is_answered() {
    let served = Served::start();
    for target in [
        "/",
        "/webhooks",
        "/webhooks/dynamics/",
        "/webhooks/dynamics/extra",
        "/WEBHOOKS/DYNAMICS",
        "/api/webhooks/dynamics?code=k",
    ] {
        let (status, answer) = served.exchange(&json_post(target));
        assert_eq!(status, 404, "{target}: {answer}");
    }
    assert_eq!(served.handled(), 0);
}

#[test]
fn only_posts_reach_the_trigger() {
    let served = Served::start();
    let (status, answer) = served
        .exchange(format!("GET {PATH}?code=k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
    assert_eq!(status, 405, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("\r\nallow: post\r\n"),
        "{answer}"
    );
    assert_eq!(served.handled(), 0);
}

#[test]
fn the_content_type_must_be_application_json_with_or_without_parameters() {
    let served = Served::start();
    let length = format!("Content-Length: {}", BODY.len());
    let refused = [
        vec!["Content-Type: application/jsonx"],
        vec!["Content-Type: text/json"],
        vec!["Content-Type: application/json-patch+json"],
        vec!["Content-Type: application/x-www-form-urlencoded"],
        vec!["Content-Type: application/json charset=utf-8"],
        vec![],
        vec!["Content-Type: application/json", "Content-Type: text/plain"],
    ];
    for types in refused {
        let headers: Vec<&str> = types.iter().copied().chain([length.as_str()]).collect();
        let (status, answer) = served.exchange(&post(PATH, &headers, BODY));
        assert_eq!(status, 415, "{types:?}: {answer}");
    }
    assert_eq!(served.handled(), 0);

    let accepted = [
        "Content-Type: application/json",
        "content-type: Application/JSON",
        "Content-Type: application/json;charset=UTF-8",
        "Content-Type: application/json ; charset=utf-8",
    ];
    for content_type in accepted {
        let (status, answer) = served.exchange(&post(PATH, &[content_type, &length], BODY));
        assert_eq!(status, 200, "{content_type}: {answer}");
    }
    assert_eq!(served.handled(), accepted.len());
}

#[test]
fn a_body_whose_length_is_ambiguous_is_refused() {
    let served = Served::start();
    let json = "Content-Type: application/json";
    let ambiguous: [&[&str]; 5] = [
        &["Content-Length: 2", "Content-Length: 25"],
        &["Content-Length: 25", "Content-Length: 2"],
        &["Content-Length: 2, 25"],
        &["Content-Length: +25"],
        &["Transfer-Encoding: chunked", "Content-Length: 25"],
    ];
    for lengths in ambiguous {
        let headers: Vec<&str> = [json].into_iter().chain(lengths.iter().copied()).collect();
        let (status, answer) = served.exchange(&post(PATH, &headers, BODY));
        assert_eq!(status, 400, "{lengths:?}: {answer}");
    }
    assert_eq!(served.handled(), 0);

    // The same length said twice is one length.
    let (status, answer) = served.exchange(&post(
        PATH,
        &[json, "Content-Length: 25", "Content-Length: 25"],
        BODY,
    ));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(served.handled.lock().unwrap()[0].body, BODY.as_bytes());
}

#[test]
fn an_oversized_body_is_answered_413_before_it_is_sent_and_the_connection_closed() {
    let served = Served::start();
    let mut stream = TcpStream::connect(served.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let announced = 64 * MAX_BODY;
    stream
        .write_all(&post(
            PATH,
            &[
                "Content-Type: application/json",
                &format!("Content-Length: {announced}"),
            ],
            &"x".repeat(4096),
        ))
        .unwrap();
    // The client sends nothing more: the answer can only come from the head.
    let started = Instant::now();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (status, answer) = status_of(&answer);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the answer waited for a body that never came"
    );
    // read_to_string returned: the server closed its side.
    assert_eq!(stream.read(&mut [0u8; 16]).unwrap(), 0);
    assert_eq!(served.handled(), 0);

    // A body of exactly the limit is still a delivery.
    let body = format!("\"{}\"", "x".repeat(MAX_BODY - 2));
    let length = format!("Content-Length: {}", body.len());
    let (status, answer) = served.exchange(&post(
        PATH,
        &["Content-Type: application/json", &length],
        &body,
    ));
    assert_eq!(status, 200, "{}", &answer[..answer.len().min(200)]);
    assert_eq!(served.handled(), 1);
}

#[test]
fn a_client_that_sends_a_whole_oversized_body_still_reads_the_413() {
    let served = Served::start();
    let body = "x".repeat(2 * MAX_BODY);
    let mut stream = TcpStream::connect(served.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close while the body is still on its way: a reset here is the
    // client's write failing, the answer must still be readable.
    let _ = stream.write_all(&post(
        PATH,
        &[
            "Content-Type: application/json",
            &format!("Content-Length: {}", body.len()),
        ],
        &body,
    ));
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (status, answer) = status_of(&answer);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(served.handled(), 0);
}
