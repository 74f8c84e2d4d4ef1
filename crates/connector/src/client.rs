//! Requests to the environment through the host's `http` import: standard OData headers, the
//! bearer token for the environment's own origin only, retries, and error answers read.
//!
//! The import sits behind [`Transport`], so native unit tests can answer requests from a script
//! (`test_host.rs`) where the component has the host.

use std::cell::{Cell, RefCell};

use dataverse::environment::Environment;
use dataverse::retry::{Outcome, RetryPolicy};
use serde_json::Value;

use crate::bindings::dynamics::connector::http::{
    self, HttpError, Request as WitRequest, Response as WitResponse,
};
use crate::bindings::dynamics::connector::types::{ConnectorError, ErrorCode, Token};
use crate::connection::Settings;
use crate::error::{Result, error, from_http_error, from_service, malformed, short, with_hint};
use crate::log;

/// A response with lower-case header names.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How many attempts it took, retries included.
    pub attempts: u32,
    /// How many earlier attempts ended with no usable answer (lost connection, timeout, cut or
    /// malformed body): when more than 0, an earlier attempt may have been applied.
    pub lost_answers: u32,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`null` when empty).
    pub fn json(&self) -> Result<Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|problem| {
            let snippet: String = String::from_utf8_lossy(&self.body)
                .chars()
                .take(120)
                .collect();
            malformed(format!(
                "the response is not valid JSON ({problem}): {snippet}"
            ))
        })
    }

    /// Turns a non-2xx response into the service's error.
    pub fn into_success(self) -> Result<Response> {
        if self.is_success() {
            Ok(self)
        } else {
            let failure = from_service(dataverse::error::read_error(
                self.status,
                &self.body,
                self.header("retry-after"),
            ));
            Err(add_attempts(failure, self.attempts))
        }
    }
}

/// One request, before the standard headers are added.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: Option<u32>,
}

impl Request {
    pub fn new(method: &str, url: String) -> Request {
        Request {
            method: method.to_string(),
            url,
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(key, _)| key.eq_ignore_ascii_case(name))
    }

    /// `METHOD path` without the query, for messages (queries can hold personal data).
    pub fn target(&self) -> String {
        let without_query = self.url.split('?').next().unwrap_or_default();
        let path = without_query
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(without_query);
        let path = path.find('/').map(|index| &path[index..]).unwrap_or("/");
        format!("{} {}", self.method, short(path))
    }
}

/// Where requests go: the host's `http` import ([`Host`]), or a test double.
pub trait Transport {
    /// Sends one request as it is; any status is an answer.
    fn send(&self, request: &WitRequest) -> std::result::Result<WitResponse, HttpError>;
    /// Waits `ms` milliseconds before a retry; false when the invocation's time limit is too near.
    fn wait(&self, ms: u32) -> bool;
    /// Sends several requests, answers in the same order; in turn unless the transport can do
    /// better.
    fn send_all(
        &self,
        requests: &[WitRequest],
    ) -> Vec<std::result::Result<WitResponse, HttpError>> {
        requests.iter().map(|request| self.send(request)).collect()
    }
    /// Starts one request and returns before its answer unless the transport cannot do better,
    /// when it sends it now.
    fn start(&self, request: &WitRequest) -> Started {
        Started::Answered(self.send(request))
    }
}

/// See [`Client::reading_ahead`].
pub struct ReadingAhead<'c, 'a>(&'c Client<'a>);

impl Drop for ReadingAhead<'_, '_> {
    fn drop(&mut self) {
        self.0.discard_started();
    }
}

/// A request under way ([`Transport::start`]).
pub enum Started {
    Answered(std::result::Result<WitResponse, HttpError>),
    Host(http::Pending),
}

impl Started {
    /// Waits for the answer.
    fn finish(self) -> std::result::Result<WitResponse, HttpError> {
        match self {
            Started::Answered(result) => result,
            Started::Host(pending) => http::finish(pending),
        }
    }
}

/// The host's `http` import.
pub struct Host;

impl Transport for Host {
    fn send(&self, request: &WitRequest) -> std::result::Result<WitResponse, HttpError> {
        http::send(request)
    }

    fn wait(&self, ms: u32) -> bool {
        http::wait(ms)
    }

    fn send_all(
        &self,
        requests: &[WitRequest],
    ) -> Vec<std::result::Result<WitResponse, HttpError>> {
        http::send_all(requests)
    }

    fn start(&self, request: &WitRequest) -> Started {
        Started::Host(http::start(request))
    }
}

/// The environment as seen by one invocation.
pub struct Client<'a> {
    pub settings: &'a Settings,
    token: Option<&'a Token>,
    /// False for the token endpoint, which may share the environment's origin (emulators) but
    /// must never receive a bearer token.
    authenticate: bool,
    transport: &'a dyn Transport,
    /// Answers of requests sent ahead ([`Client::send_ahead`]), by method, URL and body.
    ahead: RefCell<Vec<(u64, Result<Response>)>>,
    /// The service's `x-ms-dop-hint`, once an answer brought one ([`Client::parallelism`]).
    hint: Cell<Option<usize>>,
    /// Reads started ahead ([`Client::start_reading`]): the request as it goes on the wire and
    /// its first attempt, under way.
    started: RefCell<Vec<(WitRequest, Started)>>,
}

impl<'a> Client<'a> {
    pub fn new(settings: &'a Settings, token: Option<&'a Token>) -> Client<'a> {
        Client {
            settings,
            token,
            authenticate: true,
            transport: &Host,
            ahead: RefCell::new(Vec::new()),
            hint: Cell::new(None),
            started: RefCell::new(Vec::new()),
        }
    }

    /// A client that sends through `transport` instead of the host.
    #[cfg(test)]
    pub fn with_transport(
        settings: &'a Settings,
        token: Option<&'a Token>,
        transport: &'a dyn Transport,
    ) -> Client<'a> {
        Client {
            transport,
            ..Client::new(settings, token)
        }
    }

    /// A client for the token endpoint: no bearer token, no OData headers.
    pub fn for_identity(settings: &'a Settings) -> Client<'a> {
        Client {
            settings,
            token: None,
            authenticate: false,
            transport: &Host,
            ahead: RefCell::new(Vec::new()),
            hint: Cell::new(None),
            started: RefCell::new(Vec::new()),
        }
    }

    /// `root/relative`, where root is the Web API root (`https://org.crm.dynamics.com/api/data/v9.2`).
    pub fn api_url(&self, relative: &str) -> String {
        api_url(&self.settings.environment, relative)
    }

    /// The Web API root as a path (`/api/data/v9.2`), for requests inside `$batch`.
    pub fn api_root_path(&self) -> String {
        let environment = &self.settings.environment;
        environment.web_api_root()[environment.origin.len()..].to_string()
    }

    /// Sends with the OData headers and the token, retrying as `policy` says. Any status is
    /// returned; transport failures that outlast the retries are errors.
    ///
    /// A 2xx answer that says it is JSON but does not parse (cut by a proxy, corrupted) is
    /// treated as a lost connection when `policy` may repeat the request: retried, and an error
    /// if it stays so.
    pub fn send(&self, request: Request, policy: RetryPolicy) -> Result<Response> {
        if let Some(answer) = self.answered_ahead(&request) {
            return answer;
        }
        let attempt = self.first_attempt(request, policy)?;
        let check = attempt.check_json;
        self.attempts(attempt, &mut |response| {
            check && is_broken_json(response.status, &response.headers, &response.body)
        })
    }

    /// [`Client::send`] for a JSON answer the caller reads anyway (a page of records): `read`
    /// is given each 2xx JSON body as it arrives and its product is returned with the answer.
    /// Its refusal counts as the body check [`Client::send`] makes, so a cut or corrupted page
    /// is retried the same way, and a page of 5,000 rows is parsed once instead of twice (the
    /// check, then the reader: most of a loopback read's time in the guest).
    ///
    /// `read` may run more than once (a retried answer), but succeeds at most once: it must
    /// change nothing when it refuses, as a serde parse does. The product is None when the
    /// answer is not a 2xx JSON body, or when `read` refused it and the request may not be
    /// repeated; the caller then reads (or refuses) the body as it would without this.
    pub fn send_reading<R>(
        &self,
        request: Request,
        policy: RetryPolicy,
        mut read: impl FnMut(&[u8]) -> std::result::Result<R, String>,
    ) -> Result<(Response, Option<R>)> {
        self.send_reading_when(request, policy, |response| {
            is_json_answer(response.status, &response.headers, &response.body)
                .then(|| read(&response.body))
        })
    }

    /// [`Client::send_reading`] for answers that are not JSON (a `$batch` answer is multipart):
    /// `read` sees the whole answer and says None when it is not one to read (an error status),
    /// else its product or its refusal, which counts as a cut answer.
    pub fn send_reading_when<R>(
        &self,
        request: Request,
        policy: RetryPolicy,
        mut read: impl FnMut(&WitResponse) -> Option<std::result::Result<R, String>>,
    ) -> Result<(Response, Option<R>)> {
        if let Some(answer) = self.answered_ahead(&request) {
            let response = answer?;
            let wire = WitResponse {
                status: response.status,
                headers: response.headers,
                body: response.body,
            };
            let product = read(&wire).and_then(|read| read.ok());
            let response = Response {
                status: wire.status,
                headers: wire.headers,
                body: wire.body,
                ..response
            };
            return Ok((response, product));
        }
        let attempt = self.first_attempt(request, policy)?;
        let check = attempt.check_json;
        let mut product = None;
        let response = self.attempts(attempt, &mut |response| match read(response) {
            None => false,
            Some(Ok(read)) => {
                product = Some(read);
                false
            }
            Some(Err(_)) => check,
        })?;
        Ok((response, product))
    }

    /// Starts the first attempt of a read now and returns at once; a later [`Client::send`] or
    /// [`Client::send_reading`] of the very same request (method, URL, headers, body) takes its
    /// answer as its first attempt's, and retries it as it would its own. The next page of a
    /// query travels this way while the guest reads the page before it.
    ///
    /// Only for requests that may be thrown away unanswered: reads. A write, or a request that
    /// cannot be sent, is not started (the later send reports what is wrong with it).
    pub fn start_reading(&self, request: Request, policy: RetryPolicy) {
        if request.method != "GET" || !policy.idempotent {
            return;
        }
        let Ok(attempt) = self.first_attempt(request, policy) else {
            return;
        };
        let started = self.transport.start(&attempt.wire);
        self.started.borrow_mut().push((attempt.wire, started));
    }

    /// Drops the reads started ahead that no send has taken: their answers are not waited for.
    pub fn discard_started(&self) {
        self.started.borrow_mut().clear();
    }

    /// A guard that discards the reads started ahead when it goes, whichever way the reader
    /// leaves (an error included), so none is taken by an unrelated request later.
    pub fn reading_ahead(&self) -> ReadingAhead<'_, 'a> {
        ReadingAhead(self)
    }

    /// The read started ahead for exactly `wire`, taken out.
    fn started_for(&self, wire: &WitRequest) -> Option<Started> {
        let mut started = self.started.borrow_mut();
        let position = started.iter().position(|(request, _)| {
            request.method == wire.method
                && request.url == wire.url
                && request.headers == wire.headers
                && request.body == wire.body
                && request.timeout_ms == wire.timeout_ms
        })?;
        Some(started.remove(position).1)
    }

    /// Sends `attempt` and its retries until one is the answer; `broken` says whether an
    /// answer's body is unusable (treated as no answer). A first attempt started ahead is
    /// waited for instead of sent.
    fn attempts(
        &self,
        mut attempt: Attempt,
        broken: &mut dyn FnMut(&WitResponse) -> bool,
    ) -> Result<Response> {
        let mut started = self.started_for(&attempt.wire);
        loop {
            let result = match started.take() {
                Some(started) => started.finish(),
                None => self.transport.send(&attempt.wire),
            };
            let is_broken = result.as_ref().is_ok_and(&mut *broken);
            match self.judge(&mut attempt, result, is_broken) {
                Judged::Done(answer) => return answer,
                Judged::Retry { delay, result } => {
                    if self.transport.wait(delay) {
                        attempt.next(&result);
                        continue;
                    }
                    log::warn(format!(
                        "{}: not retrying, the invocation's time limit is near",
                        attempt.target
                    ));
                    return attempt.finish(result);
                }
            }
        }
    }

    /// Sends several requests, each with its policy, and answers them in the same order, each
    /// as [`Client::send`] would. They go to the host together, at most
    /// [`Client::parallelism`] at a time, and the host runs them side by side within its
    /// bounds; retries of a group wait once, for the longest delay any of them asks.
    ///
    /// Only for requests that do not depend on each other's answers: they may run in any
    /// order. Pages of one query chain their next links, so they are not sent this way.
    pub fn send_all(&self, requests: Vec<(Request, RetryPolicy)>) -> Vec<Result<Response>> {
        let mut answers: Vec<Option<Result<Response>>> = Vec::with_capacity(requests.len());
        let mut pending: std::collections::VecDeque<(usize, Attempt)> =
            std::collections::VecDeque::new();
        for (index, (request, policy)) in requests.into_iter().enumerate() {
            if let Some(answer) = self.answered_ahead(&request) {
                answers.push(Some(answer));
                continue;
            }
            match self.first_attempt(request, policy) {
                Ok(attempt) => {
                    answers.push(None);
                    pending.push_back((index, attempt));
                }
                Err(failure) => answers.push(Some(Err(failure))),
            }
        }
        while !pending.is_empty() {
            let group: Vec<(usize, Attempt)> = pending
                .drain(..self.parallelism().min(pending.len()))
                .collect();
            let wires: Vec<WitRequest> = group.iter().map(|(_, a)| a.wire.clone()).collect();
            let results = self.transport.send_all(&wires);
            let mut retries = Vec::new();
            let mut results = results.into_iter();
            for (index, mut attempt) in group {
                let result = results.next().unwrap_or_else(|| {
                    Err(HttpError::ConnectionFailed(
                        "the host answered fewer requests than it was given".to_string(),
                    ))
                });
                let broken = attempt.check_json
                    && result.as_ref().is_ok_and(|response| {
                        is_broken_json(response.status, &response.headers, &response.body)
                    });
                match self.judge(&mut attempt, result, broken) {
                    Judged::Done(answer) => answers[index] = Some(answer),
                    Judged::Retry { delay, result } => {
                        retries.push((index, attempt, delay, result))
                    }
                }
            }
            if retries.is_empty() {
                continue;
            }
            let longest = retries
                .iter()
                .map(|(_, _, delay, _)| *delay)
                .max()
                .unwrap_or(0);
            let waited = self.transport.wait(longest);
            // Retries go first, so a request that met a 429 is not overtaken for ever.
            for (index, mut attempt, _, result) in retries.into_iter().rev() {
                if waited {
                    attempt.next(&result);
                    pending.push_front((index, attempt));
                } else {
                    log::warn(format!(
                        "{}: not retrying, the invocation's time limit is near",
                        attempt.target
                    ));
                    answers[index] = Some(attempt.finish(result));
                }
            }
        }
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| Err(malformed("a request of a group was never answered")))
            })
            .collect()
    }

    /// Sends `requests` together now ([`Client::send_all`]) and keeps their answers: a later
    /// [`Client::send`] of the same method, URL and body takes its answer from here instead of
    /// sending it again. This lets code written for one request at a time run a group of
    /// independent writes in parallel without changing how it reads each answer.
    pub fn send_ahead(&self, requests: Vec<(Request, RetryPolicy)>) {
        let keys: Vec<u64> = requests
            .iter()
            .map(|(request, _)| key_of(request))
            .collect();
        let answers = self.send_all(requests);
        self.ahead
            .borrow_mut()
            .extend(keys.into_iter().zip(answers));
    }

    /// How many requests go to the host at once: the service's `x-ms-dop-hint` once an answer
    /// brought one, [`DEFAULT_PARALLELISM`] until then.
    pub fn parallelism(&self) -> usize {
        self.hint.get().unwrap_or(DEFAULT_PARALLELISM)
    }

    /// The service's `x-ms-dop-hint`, once an answer brought one.
    pub fn hinted_parallelism(&self) -> Option<usize> {
        self.hint.get()
    }

    /// The answer sent ahead for `request`, taken out (each is used once).
    fn answered_ahead(&self, request: &Request) -> Option<Result<Response>> {
        let mut ahead = self.ahead.borrow_mut();
        if ahead.is_empty() {
            return None;
        }
        let key = key_of(request);
        let position = ahead.iter().position(|(k, _)| *k == key)?;
        Some(ahead.remove(position).1)
    }

    /// `request` with its headers, checked, as its first attempt.
    fn first_attempt(&self, request: Request, policy: RetryPolicy) -> Result<Attempt> {
        let request = self.prepare(request)?;
        check_on_the_wire(&request)?;
        let target = request.target();
        // Only requests the connector may repeat are read for a cut body: a write that must
        // not be repeated is answered as it came, and Raw Request (its own policies) too.
        let check_json =
            policy.idempotent && policy.retry_on == dataverse::retry::RetryOn::Transient;
        Ok(Attempt {
            wire: WitRequest {
                method: request.method,
                url: request.url,
                headers: request.headers,
                body: request.body,
                timeout_ms: request.timeout_ms,
            },
            target,
            policy,
            check_json,
            attempt: 1,
            lost_answers: 0,
            waited_ms: 0,
            seed: jitter_seed(),
        })
    }

    /// What one attempt's result means: the answer, or a retry after a delay.
    fn judge(
        &self,
        attempt: &mut Attempt,
        result: std::result::Result<WitResponse, HttpError>,
        broken: bool,
    ) -> Judged {
        if let Ok(response) = &result
            && let Some(hint) = header_of(&response.headers, "x-ms-dop-hint")
                .and_then(|value| value.trim().parse::<usize>().ok())
        {
            // "52 or higher" concurrent requests are allowed per user; the hint stays below.
            self.hint.set(Some(hint.clamp(1, MAX_PARALLELISM)));
        }
        let (outcome, retry_after) = match &result {
            Ok(_) if broken => (Outcome::NoResponse, None),
            Ok(response) => (
                Outcome::Status(response.status),
                header_of(&response.headers, "retry-after")
                    .and_then(dataverse::error::parse_retry_after),
            ),
            Err(HttpError::ConnectionFailed(_) | HttpError::Timeout) => (Outcome::NoResponse, None),
            Err(_) => (Outcome::Status(0), None),
        };
        let policy = attempt.policy;
        let retryable =
            !matches!(outcome, Outcome::Status(0)) && policy.should_retry(attempt.attempt, outcome);
        if retryable {
            attempt.seed = next_random(attempt.seed);
            let delay = policy.delay_ms(
                attempt.attempt,
                retry_after,
                (attempt.seed >> 11) as f64 / (1u64 << 53) as f64,
            );
            let delay = u32::try_from(delay).unwrap_or(u32::MAX);
            attempt.waited_ms += u64::from(delay);
            log::info(format!(
                "{}: attempt {} got {}; retrying in {delay} ms",
                attempt.target,
                attempt.attempt,
                describe(&outcome)
            ));
            if attempt.waited_ms > policy.max_total_wait_ms {
                log::warn(format!(
                    "{}: not retrying, the total wait would exceed {} ms",
                    attempt.target, policy.max_total_wait_ms
                ));
            } else {
                return Judged::Retry {
                    delay,
                    result: Tried {
                        result,
                        broken,
                        lost: outcome == Outcome::NoResponse,
                    },
                };
            }
        }
        Judged::Done(attempt.finish(Tried {
            result,
            broken,
            lost: false,
        }))
    }

    /// GET `relative` under the Web API root and read the JSON of a 2xx answer; transient
    /// failures are retried like every other read.
    pub fn get_json(&self, relative: &str) -> Result<Value> {
        let response = self.send(
            Request::new("GET", self.api_url(relative)),
            RetryPolicy::RECORDS,
        )?;
        response.into_success()?.json()
    }

    fn prepare(&self, mut request: Request) -> Result<Request> {
        let own = self.authenticate && self.settings.environment.owns_url(&request.url);
        if own {
            let token = self.token.ok_or_else(|| {
                with_hint(
                    error(ErrorCode::Unauthenticated, "the connection has no access token"),
                    "sign in (auth code) or let the host acquire a token (client credentials, password) first",
                )
            })?;
            request
                .headers
                .retain(|(key, _)| !key.eq_ignore_ascii_case("authorization"));
            request.headers.push((
                "Authorization".to_string(),
                format!("Bearer {}", token.access_token),
            ));
            for (name, value) in [
                ("Accept", "application/json"),
                ("OData-MaxVersion", "4.0"),
                ("OData-Version", "4.0"),
            ] {
                if !request.has_header(name) {
                    request.headers.push((name.to_string(), value.to_string()));
                }
            }
            if !request.body.is_empty() && !request.has_header("content-type") {
                request
                    .headers
                    .push(("Content-Type".to_string(), "application/json".to_string()));
            }
        }
        Ok(request)
    }
}

/// Requests at once until the service's `x-ms-dop-hint` says more: a small environment's hint is
/// in the single digits ("there is no fixed number",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests#optimum-degree-of-parallelism-dop>).
pub const DEFAULT_PARALLELISM: usize = 4;

/// Dataverse allows "52 or higher" concurrent requests per user
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/api-limits#concurrent-requests>);
/// a hint above that is not followed past it.
const MAX_PARALLELISM: usize = 52;

/// One request on its way: what is sent and what its attempts so far have cost.
struct Attempt {
    wire: WitRequest,
    target: String,
    policy: RetryPolicy,
    check_json: bool,
    attempt: u32,
    lost_answers: u32,
    waited_ms: u64,
    seed: u64,
}

/// One attempt's result, as judged.
struct Tried {
    result: std::result::Result<WitResponse, HttpError>,
    /// A 2xx JSON answer that does not parse.
    broken: bool,
    /// No usable answer came: an earlier attempt may have been applied.
    lost: bool,
}

enum Judged {
    Done(Result<Response>),
    /// Send again after `delay` ms; `result` is the answer if the wait is refused.
    Retry {
        delay: u32,
        result: Tried,
    },
}

impl Attempt {
    /// The retry after `tried` is sent.
    fn next(&mut self, tried: &Tried) {
        self.attempt += 1;
        self.lost_answers += u32::from(tried.lost);
    }

    /// `tried` as the request's answer.
    fn finish(&self, tried: Tried) -> Result<Response> {
        let target = &self.target;
        match tried.result {
            Ok(_) if tried.broken => Err(add_attempts(
                with_hint(
                    malformed(format!(
                        "{target}: the service's answer was cut or malformed"
                    )),
                    "nothing was written; try again later, or resume from the last cursor you received",
                ),
                self.attempt,
            )),
            Ok(response) => Ok(Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
                attempts: self.attempt,
                lost_answers: self.lost_answers,
            }),
            Err(failure) => Err(add_attempts(from_http_error(failure, target), self.attempt)),
        }
    }
}

/// Method, URL and body: what makes two requests the same write.
fn key_of(request: &Request) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.method.hash(&mut hasher);
    request.url.hash(&mut hasher);
    request.body.hash(&mut hasher);
    hasher.finish()
}

/// `root/relative` under the environment's Web API root.
pub fn api_url(environment: &Environment, relative: &str) -> String {
    format!(
        "{}/{}",
        environment.web_api_root(),
        relative.trim_start_matches('/')
    )
}

/// The last guard before the host: a header or URL with a control character would split the
/// request (header injection), whatever input it came from. Inputs are checked with their field
/// names first (`input::check_one_line`, `keys::RecordKey::parse`); this catches what a future
/// code path forgets, before anything is sent.
fn check_on_the_wire(request: &Request) -> Result<()> {
    if request.url.len() > MAX_URL {
        return Err(with_hint(
            error(
                ErrorCode::InvalidInput,
                format!(
                    "{}: the URL would be {} characters; Dataverse takes at most {MAX_URL}; nothing was sent",
                    request.target(),
                    request.url.len()
                ),
            ),
            "shorten the filter, the list of columns or the key",
        ));
    }
    let bad_url = request
        .url
        .bytes()
        .any(|byte| byte.is_ascii_control() || byte == b' ');
    if bad_url {
        return Err(error(
            ErrorCode::InvalidInput,
            format!(
                "{}: the URL contains a space or a control character; nothing was sent",
                request.target()
            ),
        ));
    }
    for (name, value) in &request.headers {
        let bad_name = name.is_empty()
            || !name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
        let bad_value = value
            .chars()
            .any(|character| character.is_control() && character != '\t');
        if bad_name || bad_value {
            return Err(error(
                ErrorCode::InvalidInput,
                format!(
                    "{}: the header {:?} contains a character headers cannot hold (such as a line break); nothing was sent",
                    request.target(),
                    name.chars()
                        .filter(|c| !c.is_control())
                        .take(64)
                        .collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// The longest URL Dataverse takes in a GET: 32,768 characters ("URL length limit",
/// learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview).
pub const MAX_URL: usize = 32_768;

/// What a page reader answers: `Err` refuses the body (sent for again), `Ok(Err(why))` is an
/// answer of the wrong shape (not retried), `Ok(Ok(_))` the page read.
pub type PageRead<T> = std::result::Result<std::result::Result<T, String>, String>;

/// Parses a page in a [`Client::send_reading`] reader. A body that is not JSON (cut short or
/// corrupted on the way) is refused, so it is sent for again; JSON of another shape (no `value`,
/// a value of the wrong type) is what the service answered, and comes back as `Ok(Err(why))`,
/// which is not retried: sending for it again would only bring the same answer.
pub fn parse_page<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> PageRead<T> {
    match serde_json::from_slice::<T>(body) {
        Ok(page) => Ok(Ok(page)),
        Err(problem) if problem.is_data() => Ok(Err(problem.to_string())),
        Err(problem) => Err(problem.to_string()),
    }
}

/// True for a 2xx answer with a body that says it is JSON: the answers whose body is checked.
fn is_json_answer(status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    (200..300).contains(&status)
        && !body.iter().all(u8::is_ascii_whitespace)
        && header_of(headers, "content-type")
            .is_some_and(|kind| kind.to_ascii_lowercase().contains("json"))
}

/// True for a 2xx answer that says it is JSON but does not parse.
fn is_broken_json(status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    is_json_answer(status, headers, body)
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err()
}

fn header_of<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Status(status) => format!("HTTP {status}"),
        Outcome::NoResponse => "no response".to_string(),
    }
}

fn add_attempts(mut failure: ConnectorError, attempts: u32) -> ConnectorError {
    if attempts > 1 {
        failure.message = format!("{} (after {attempts} attempts)", failure.message);
    }
    failure
}

fn jitter_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) | 1,
        Err(_) => 0x9e37_79b9_7f4a_7c15,
    }
}

fn next_random(state: u64) -> u64 {
    let mut x = state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Hex of `bytes` random bytes, for multipart boundaries. Uniqueness is checked where it
/// matters, so a missing source of randomness only makes the value predictable.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    let _ = getrandom::fill(&mut buffer);
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::{ACCESS_TOKEN, ORIGIN, Script, Signed, header};

    const ACCOUNTS: &str = r#"{"value":[{"name":"Contoso"}]}"#;

    #[test]
    fn the_bearer_token_and_odata_headers_go_to_the_environment_only() {
        let signed = Signed::new();
        let script = Script::new().json(200, ACCOUNTS).json(200, "{}");
        let context = signed.context(&script);
        context.client.get_json("accounts").unwrap();
        let elsewhere = Request::new(
            "GET",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration".to_string(),
        );
        context
            .client
            .send(elsewhere, RetryPolicy::RECORDS)
            .unwrap();

        let sent = script.sent();
        assert_eq!(sent[0].url, format!("{ORIGIN}/api/data/v9.2/accounts"));
        let expected_bearer = format!("Bearer {ACCESS_TOKEN}");
        assert_eq!(
            header(&sent[0].headers, "authorization"),
            Some(expected_bearer.as_str())
        );
        assert_eq!(header(&sent[0].headers, "odata-version"), Some("4.0"));
        assert_eq!(header(&sent[1].headers, "authorization"), None);
        assert_eq!(header(&sent[1].headers, "odata-version"), None);
    }

    #[test]
    fn a_given_authorization_header_is_replaced_by_the_connections_token() {
        let signed = Signed::new();
        let script = Script::new().json(200, ACCOUNTS);
        let context = signed.context(&script);
        let request = Request::new("GET", context.client.api_url("accounts"))
            .header("Authorization", "Bearer someone-elses");
        context.client.send(request, RetryPolicy::RECORDS).unwrap();

        let sent = script.sent();
        let authorizations: Vec<&str> = sent[0]
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(authorizations, [format!("Bearer {ACCESS_TOKEN}")]);
    }

    #[test]
    fn a_read_answered_503_is_sent_again_and_counts_its_attempts() {
        let signed = Signed::new();
        let script = Script::new()
            .json(503, r#"{"error":{"code":"0x80072321","message":"busy"}}"#)
            .json(200, ACCOUNTS);
        let context = signed.context(&script);
        let response = context
            .client
            .send(
                Request::new("GET", context.client.api_url("accounts")),
                RetryPolicy::RECORDS,
            )
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.attempts, 2);
        assert_eq!(response.lost_answers, 0);
        assert_eq!(script.sent().len(), 2);
    }

    #[test]
    fn a_page_read_as_it_arrives_is_parsed_once_and_a_cut_one_is_sent_for_again() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, r#"{"value":[{"name":"Cont"#)
            .json(200, ACCOUNTS);
        let context = signed.context(&script);
        let mut reads = 0;
        let (response, names) = context
            .client
            .send_reading(
                Request::new("GET", context.client.api_url("accounts")),
                RetryPolicy::RECORDS,
                |body| {
                    reads += 1;
                    let page: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
                    Ok(page["value"][0]["name"].to_string())
                },
            )
            .unwrap();
        assert_eq!(names.as_deref(), Some("\"Contoso\""));
        assert_eq!((reads, response.attempts, response.lost_answers), (2, 2, 1));
        assert_eq!(script.sent().len(), 2);
    }

    #[test]
    fn a_page_of_another_shape_is_the_answer_not_a_cut_one_and_is_not_sent_again() {
        #[derive(serde::Deserialize)]
        struct Page {
            value: Vec<Value>,
        }
        // Attempts, answers counted as lost, what the reader made of the last, requests sent.
        let read = |answers: &[&str]| {
            let signed = Signed::new();
            let script = answers
                .iter()
                .fold(Script::new(), |script, body| script.json(200, body));
            let context = signed.context(&script);
            let (response, read) = context
                .client
                .send_reading(
                    Request::new("GET", context.client.api_url("accounts")),
                    RetryPolicy::RECORDS,
                    |body| parse_page::<Page>(body),
                )
                .unwrap();
            let sent = script.sent().len();
            (response.attempts, response.lost_answers, read, sent)
        };
        for body in [
            r#"{"value":{}}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"value":null}"#,
        ] {
            let (attempts, lost, read, sent) = read(&[body]);
            let why = read.expect("read").err().expect("refused as a page");
            assert!(why.contains("line 1"), "{why}");
            assert_eq!((attempts, lost, sent), (1, 0, 1), "{body}");
        }
        // Not JSON at all: sent for again.
        let (attempts, lost, read, sent) = read(&[r#"{"value":[1,"#, r#"{"value":[1]}"#]);
        assert!(matches!(read, Some(Ok(page)) if page.value.len() == 1));
        assert_eq!((attempts, lost, sent), (2, 1, 2));
    }

    #[test]
    fn a_write_whose_answer_does_not_read_is_not_sent_again() {
        let signed = Signed::new();
        let script = Script::new().json(200, r#"{"value":[{"name":"Cont"#);
        let context = signed.context(&script);
        let (response, read) = context
            .client
            .send_reading(
                Request::new("POST", context.client.api_url("accounts")),
                RetryPolicy::RECORDS.not_idempotent(),
                |body| serde_json::from_slice::<Value>(body).map_err(|e| e.to_string()),
            )
            .unwrap();
        assert!(read.is_none());
        assert_eq!((response.status, response.attempts), (200, 1));
        assert_eq!(script.sent().len(), 1);
    }

    #[test]
    fn requests_sent_together_answer_in_order_and_a_throttled_one_is_sent_again() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, r#"{"value":[{"name":"first"}]}"#)
            .json(
                429,
                r#"{"error":{"code":"0x80072322","message":"Number of requests exceeded"}}"#,
            )
            .json(200, r#"{"value":[{"name":"third"}]}"#)
            .json(200, r#"{"value":[{"name":"second"}]}"#);
        let context = signed.context(&script);
        let client = &context.client;
        let requests = ["first", "second", "third"]
            .iter()
            .map(|name| {
                (
                    Request::new("GET", client.api_url(&format!("accounts?name={name}"))),
                    RetryPolicy::RECORDS,
                )
            })
            .collect();
        let answers = client.send_all(requests);
        let names: Vec<String> = answers
            .into_iter()
            .map(|answer| answer.unwrap().json().unwrap()["value"][0]["name"].to_string())
            .collect();
        assert_eq!(names, ["\"first\"", "\"second\"", "\"third\""]);
        let sent: Vec<String> = script.sent().iter().map(|r| r.url.clone()).collect();
        assert_eq!(sent.len(), 4);
        assert!(sent[3].ends_with("name=second"), "{sent:?}");
    }

    #[test]
    fn an_answer_sent_ahead_is_used_once_and_the_hint_sets_the_parallelism() {
        let signed = Signed::new();
        let script = Script::new()
            .answer_with(
                200,
                &[
                    ("content-type", "application/json"),
                    ("x-ms-dop-hint", "12"),
                ],
                ACCOUNTS,
            )
            .json(200, ACCOUNTS);
        let context = signed.context(&script);
        let client = &context.client;
        assert_eq!(client.parallelism(), DEFAULT_PARALLELISM);
        let mut write = Request::new("POST", client.api_url("accounts"));
        write.body = br#"{"name":"a"}"#.to_vec();
        client.send_ahead(vec![(write.clone(), RetryPolicy::RECORDS.not_idempotent())]);
        assert_eq!(client.parallelism(), 12);
        assert_eq!(script.sent().len(), 1);
        // The same write takes the answer sent ahead; sent once more, it goes out again.
        client
            .send(write.clone(), RetryPolicy::RECORDS.not_idempotent())
            .unwrap();
        assert_eq!(script.sent().len(), 1);
        client
            .send(write, RetryPolicy::RECORDS.not_idempotent())
            .unwrap();
        assert_eq!(script.sent().len(), 2);
    }

    #[test]
    fn a_cut_json_answer_to_a_read_counts_as_lost_and_is_read_again() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, r#"{"value":[{"name":"Cont"#)
            .json(200, ACCOUNTS);
        let context = signed.context(&script);
        let response = context
            .client
            .send(
                Request::new("GET", context.client.api_url("accounts")),
                RetryPolicy::RECORDS,
            )
            .unwrap();
        assert_eq!(response.json().unwrap()["value"][0]["name"], "Contoso");
        assert_eq!(response.lost_answers, 1);
    }

    #[test]
    fn a_write_that_may_not_repeat_is_not_sent_again_after_a_lost_connection() {
        let signed = Signed::new();
        let script =
            Script::new().fail(HttpError::ConnectionFailed("connection reset".to_string()));
        let context = signed.context(&script);
        let mut request = Request::new("POST", context.client.api_url("accounts"));
        request.body = br#"{"name":"Contoso"}"#.to_vec();
        let failure = context
            .client
            .send(request, RetryPolicy::RECORDS.not_idempotent())
            .unwrap_err();
        assert_eq!(script.sent().len(), 1);
        assert!(
            failure.message.contains("POST /api/data/v9.2/accounts"),
            "{failure:?}"
        );
    }

    #[test]
    fn an_error_answer_becomes_the_services_error() {
        let signed = Signed::new();
        let script = Script::new().json(
            404,
            r#"{"error":{"code":"0x80060888","message":"Resource not found for the segment 'acounts'."}}"#,
        );
        let context = signed.context(&script);
        let failure = context.client.get_json("acounts").unwrap_err();
        assert_eq!(failure.code, ErrorCode::NotFound);
        assert_eq!(failure.http_status, Some(404));
        assert_eq!(failure.service_code.as_deref(), Some("0x80060888"));
    }

    #[test]
    fn a_header_that_would_split_the_request_is_refused_before_anything_is_sent() {
        let signed = Signed::new();
        let script = Script::new();
        let context = signed.context(&script);
        let request = Request::new("GET", context.client.api_url("accounts"))
            .header("Prefer", "odata.maxpagesize=1\r\nX-Injected: yes");
        let failure = context
            .client
            .send(request, RetryPolicy::RECORDS)
            .unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput);
        assert!(script.sent().is_empty());
    }

    #[test]
    fn a_url_longer_than_dataverse_takes_is_refused_before_anything_is_sent() {
        let signed = Signed::new();
        let script = Script::new();
        let context = signed.context(&script);
        let filter = "a".repeat(MAX_URL);
        let failure = context
            .client
            .get_json(&format!("accounts?$filter={filter}"))
            .unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput);
        assert!(failure.message.contains("at most 32768"), "{failure:?}");
        assert!(script.sent().is_empty());
    }

    #[test]
    fn a_request_target_in_messages_leaves_out_the_query() {
        let request = Request::new(
            "GET",
            format!(
                "{ORIGIN}/api/data/v9.2/contacts?$filter=emailaddress1 eq 'someone@contoso.com'"
            ),
        );
        assert_eq!(request.target(), "GET /api/data/v9.2/contacts");
    }
}
