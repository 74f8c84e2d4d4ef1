//! The cost model: an emulator that answers as slowly as Dataverse does and refuses what
//! Dataverse's service protection refuses, so throughput can be measured (and a client's
//! parallelism and retries rehearsed) on loopback.
//!
//! Off by default. When on, every Web API request (`/api/data/...`) is:
//!
//! 1. admitted or refused per user (the user the bearer token was issued to, an application
//!    user for client credentials): "The service protection API limits are evaluated per user.
//!    Each authenticated user is limited independently" (Service protection API limits,
//!    <https://learn.microsoft.com/power-apps/developer/data-platform/api-limits#how-service-protection-api-limits-are-enforced>).
//!    The three facets, with the documented codes and messages
//!    (<https://learn.microsoft.com/power-apps/developer/data-platform/api-limits#service-protection-api-limit-errors-returned>):
//!    - number of requests in the sliding window (6000 per 300 s): 429, `0x80072322`
//!      (-2147015902);
//!    - combined execution time in the window (1,200,000 ms per 300 s): 429, `0x80072321`
//!      (-2147015903);
//!    - concurrent requests (52): 429, `0x80072326` (-2147015898), at once: "exceeding the number
//!      of concurrent requests will immediately return an error".
//!
//!    Each 429 carries `Retry-After` in whole seconds ("When a 429 error is returned from the Web
//!    API, the response will include a Retry-After with number of seconds"): for the two window
//!    limits, the time until enough of the window has slid by for the next request to pass; for
//!    concurrency, 1 (a slot frees as soon as one of the user's requests finishes). The service's
//!    lengthening of the duration for a client that keeps pushing ("the duration will be
//!    extended") is not emulated. A refused request is neither run nor counted.
//! 2. answered after its server time: `latency` per request plus `per_record` for each record it
//!    reads or writes (rows of a page, targets of a `CreateMultiple`, operations of a `$batch`).
//!    The wait is asynchronous, so other requests are served meanwhile. That server time is what
//!    the execution-time limit adds up.
//! 3. answered with `x-ms-dop-hint`, "a recommended degree of parallelism for the environment"
//!    (Send parallel requests,
//!    <https://learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests#optimum-degree-of-parallelism-dop>).
//!
//! Tests shrink the window with [`CostModel::with_window`]: the request and execution budgets
//! shrink in proportion, so a 5-minute behaviour plays out in seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::DvError;
use crate::guid::Guid;

/// The three codes, as the Web API answers them (hex; the SDK's -2147015902, -2147015903 and
/// -2147015898).
pub use crate::error::{
    THROTTLED_CONCURRENCY as CONCURRENCY_EXCEEDED,
    THROTTLED_EXECUTION_TIME as EXECUTION_TIME_EXCEEDED, THROTTLED_REQUESTS as REQUESTS_EXCEEDED,
};

/// Dataverse's documented window: "a 5 minute (300 second) sliding window".
pub const DOCUMENTED_WINDOW: Duration = Duration::from_secs(300);
/// "6000 within the 5 minute sliding window".
pub const DOCUMENTED_REQUESTS: usize = 6000;
/// "20 minutes (1200 seconds) within the 5 minute sliding window".
pub const DOCUMENTED_EXECUTION: Duration = Duration::from_secs(1200);
/// "52 or higher".
pub const DOCUMENTED_CONCURRENCY: usize = 52;

/// What a request costs and what a user may spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Server time of every request, whatever it does. Default 0.
    pub latency: Duration,
    /// Server time per record read or written. Default 0.
    pub per_record: Duration,
    /// Requests of one user running at once before the next is refused. Default 52.
    pub concurrent_requests: usize,
    /// The `x-ms-dop-hint` value. Default 48: the service varies it by environment ("there is
    /// no fixed number"; live environments have been seen answering from 4, a trial on one web
    /// server, to 48), and a hint is meant to stay under the 52 concurrent requests.
    pub dop_hint: usize,
    /// Requests of one user in `window`. Default 6000.
    pub requests: usize,
    /// Combined server time of one user's requests in `window`. Default 1,200 s.
    pub execution: Duration,
    /// The sliding window. Default 300 s.
    pub window: Duration,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            latency: Duration::ZERO,
            per_record: Duration::ZERO,
            concurrent_requests: DOCUMENTED_CONCURRENCY,
            dop_hint: 48,
            requests: DOCUMENTED_REQUESTS,
            execution: DOCUMENTED_EXECUTION,
            window: DOCUMENTED_WINDOW,
        }
    }
}

impl CostModel {
    /// The documented budgets scaled to a `window` other than 300 s (at least one request and
    /// one millisecond), so tests see the limits in seconds.
    pub fn with_window(self, window: Duration) -> CostModel {
        let ratio = window.as_secs_f64() / DOCUMENTED_WINDOW.as_secs_f64();
        CostModel {
            window,
            requests: ((DOCUMENTED_REQUESTS as f64 * ratio).round() as usize).max(1),
            execution: Duration::from_millis(
                ((DOCUMENTED_EXECUTION.as_millis() as f64 * ratio).round() as u64).max(1),
            ),
            ..self
        }
    }

    /// The server time of a request that read or wrote `records` records.
    pub fn server_time(&self, records: usize) -> Duration {
        self.latency + self.per_record * u32::try_from(records).unwrap_or(u32::MAX)
    }

    /// As the admin API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "latencyMs": self.latency.as_millis() as u64,
            "perRecordMs": self.per_record.as_secs_f64() * 1000.0,
            "concurrentRequests": self.concurrent_requests,
            "dopHint": self.dop_hint,
            "requests": self.requests,
            "executionMs": self.execution.as_millis() as u64,
            "windowSecs": self.window.as_secs_f64(),
        })
    }

    /// Reads the admin API's JSON: every field optional, `windowSecs` first scaling the
    /// documented budgets, the other fields over-riding what it gives. Unknown fields and
    /// values that are not positive numbers are refused, naming the field.
    pub fn from_json(body: &Value) -> Result<CostModel, String> {
        let obj = body.as_object().ok_or(
            "send the model as an object such as {\"latencyMs\": 100, \"perRecordMs\": 1}",
        )?;
        const FIELDS: [&str; 7] = [
            "latencyMs",
            "perRecordMs",
            "concurrentRequests",
            "dopHint",
            "requests",
            "executionMs",
            "windowSecs",
        ];
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field {unknown:?}; the model takes {}",
                FIELDS.join(", ")
            ));
        }
        let number = |name: &str, min: f64| -> Result<Option<f64>, String> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(n) if n.is_finite() && n >= min => Ok(Some(n)),
                    _ => Err(format!("\"{name}\" must be a number of at least {min}")),
                },
            }
        };
        let ms = |n: f64| Duration::from_secs_f64(n / 1000.0);
        let mut model = CostModel::default();
        if let Some(w) = number("windowSecs", 0.001)? {
            model = model.with_window(Duration::from_secs_f64(w));
        }
        if let Some(n) = number("latencyMs", 0.0)? {
            model.latency = ms(n);
        }
        if let Some(n) = number("perRecordMs", 0.0)? {
            model.per_record = ms(n);
        }
        if let Some(n) = number("concurrentRequests", 1.0)? {
            model.concurrent_requests = n as usize;
        }
        if let Some(n) = number("dopHint", 1.0)? {
            model.dop_hint = n as usize;
        }
        if let Some(n) = number("requests", 1.0)? {
            model.requests = n as usize;
        }
        if let Some(n) = number("executionMs", 1.0)? {
            model.execution = ms(n);
        }
        Ok(model)
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    ExecutionTime,
    Concurrency,
}

/// How many requests each limit refused since the emulator started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttled {
    pub requests: u64,
    pub execution_time: u64,
    pub concurrency: u64,
}

impl Throttled {
    pub fn total(&self) -> u64 {
        self.requests + self.execution_time + self.concurrency
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "executionTime": self.execution_time,
            "concurrency": self.concurrency,
            "total": self.total(),
        })
    }
}

/// One user's load.
#[derive(Debug, Default)]
struct Load {
    in_flight: usize,
    arrivals: VecDeque<Instant>,
    /// When each request finished and the server time it took, oldest first.
    executions: VecDeque<(Instant, Duration)>,
    execution_sum: Duration,
}

impl Load {
    fn slide(&mut self, window: Duration, now: Instant) {
        while self
            .arrivals
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.arrivals.pop_front();
        }
        while let Some((t, d)) = self.executions.front().copied()
            && now.duration_since(t) >= window
        {
            self.executions.pop_front();
            self.execution_sum = self.execution_sum.saturating_sub(d);
        }
    }
}

/// Whole seconds, rounded up, at least 1: Retry-After takes an integer.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The model in force and every user's load.
#[derive(Debug, Default)]
pub struct Cost {
    model: Mutex<Option<CostModel>>,
    loads: Arc<Mutex<HashMap<Guid, Load>>>,
    refused: [Arc<AtomicU64>; 3],
}

/// A request admitted: it counts as running until dropped.
#[derive(Debug)]
pub struct Ticket {
    model: CostModel,
    user: Guid,
    loads: Arc<Mutex<HashMap<Guid, Load>>>,
    started: Instant,
    /// What the window had left when the request came in, for the rate-limit headers.
    remaining_requests: usize,
    remaining_execution: Duration,
}

impl Cost {
    pub fn new(model: Option<CostModel>) -> Cost {
        Cost {
            model: Mutex::new(model),
            ..Cost::default()
        }
    }

    pub fn model(&self) -> Option<CostModel> {
        self.model.lock().ok().and_then(|m| *m)
    }

    /// Switches the model (None: off). Loads already counted stay counted.
    pub fn set_model(&self, model: Option<CostModel>) {
        if let Ok(mut m) = self.model.lock() {
            *m = model;
        }
    }

    pub fn throttled(&self) -> Throttled {
        let n = |i: usize| self.refused[i].load(Ordering::Relaxed);
        Throttled {
            requests: n(0),
            execution_time: n(1),
            concurrency: n(2),
        }
    }

    /// Admits a request of `user` now, or refuses it with the documented 429. None when the
    /// model is off.
    pub fn admit(&self, user: Guid) -> Option<Result<Ticket, DvError>> {
        let model = self.model()?;
        let now = Instant::now();
        let mut loads = self.loads.lock().unwrap_or_else(|p| p.into_inner());
        let load = loads.entry(user).or_default();
        load.slide(model.window, now);
        let refusal = if load.in_flight >= model.concurrent_requests {
            Some((Limit::Concurrency, 1))
        } else if load.arrivals.len() >= model.requests {
            let oldest = load.arrivals.front().copied().unwrap_or(now);
            let wait = model.window.saturating_sub(now.duration_since(oldest));
            Some((Limit::Requests, whole_seconds(wait)))
        } else if load.execution_sum >= model.execution {
            // The window must slide past enough finished requests to bring the sum under the
            // budget.
            let mut sum = load.execution_sum;
            let mut until = now;
            for (t, d) in &load.executions {
                sum = sum.saturating_sub(*d);
                until = *t + model.window;
                if sum < model.execution {
                    break;
                }
            }
            Some((
                Limit::ExecutionTime,
                whole_seconds(until.saturating_duration_since(now)),
            ))
        } else {
            None
        };
        if let Some((limit, retry_after)) = refusal {
            let i = match limit {
                Limit::Requests => 0,
                Limit::ExecutionTime => 1,
                Limit::Concurrency => 2,
            };
            self.refused[i].fetch_add(1, Ordering::Relaxed);
            return Some(Err(refusal_error(&model, limit, retry_after)));
        }
        load.in_flight += 1;
        load.arrivals.push_back(now);
        Some(Ok(Ticket {
            model,
            user,
            loads: self.loads.clone(),
            started: now,
            remaining_requests: model.requests.saturating_sub(load.arrivals.len()),
            remaining_execution: model.execution.saturating_sub(load.execution_sum),
        }))
    }
}

impl Ticket {
    /// The model the request was admitted under.
    pub fn model(&self) -> &CostModel {
        &self.model
    }

    /// The documented headers "to track the remaining limit values" (api-limits, "HTTP Response
    /// headers"): `x-ms-ratelimit-burst-remaining-xrm-requests` (requests left in the window)
    /// and `x-ms-ratelimit-time-remaining-xrm-requests` (seconds of execution time left, written
    /// as the service writes it: `1,200.00`).
    pub fn rate_limit_headers(&self) -> [(String, String); 2] {
        let secs = self.remaining_execution.as_secs_f64();
        let whole = secs.trunc() as u128;
        let cents = ((secs - secs.trunc()) * 100.0).round().min(99.0) as u32;
        [
            (
                "x-ms-ratelimit-burst-remaining-xrm-requests".into(),
                self.remaining_requests.to_string(),
            ),
            (
                "x-ms-ratelimit-time-remaining-xrm-requests".into(),
                format!("{}.{cents:02}", grouped(whole)),
            ),
        ]
    }

    /// How much longer the request must take for its server time, given the records it read
    /// or wrote; counts that server time (or the time actually spent, when longer) against the
    /// user's execution budget.
    pub fn settle(&self, records: usize) -> Duration {
        let server_time = self.model.server_time(records);
        let spent = self.started.elapsed();
        if let Ok(mut loads) = self.loads.lock() {
            let load = loads.entry(self.user).or_default();
            let d = server_time.max(spent);
            load.executions
                .push_back((Instant::now() + server_time.saturating_sub(spent), d));
            load.execution_sum += d;
        }
        server_time.saturating_sub(spent)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut loads = self.loads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(load) = loads.get_mut(&self.user) {
            load.in_flight = load.in_flight.saturating_sub(1);
        }
    }
}

/// "1200000" as "1,200,000", as the documented message writes it.
fn grouped(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn window_text(window: Duration) -> String {
    match window.subsec_millis() {
        0 => window.as_secs().to_string(),
        _ => format!("{}", window.as_secs_f64()),
    }
}

/// The documented error of `limit` (api-limits, "Service Protection API Limit Errors
/// returned"), with the budgets in force written where the documentation writes the defaults.
pub fn refusal_error(model: &CostModel, limit: Limit, retry_after: u64) -> DvError {
    let (code, message) = match limit {
        Limit::Requests => (
            REQUESTS_EXCEEDED,
            format!(
                "Number of requests exceeded the limit of {} over time window of {} seconds.",
                model.requests,
                window_text(model.window)
            ),
        ),
        Limit::ExecutionTime => (
            EXECUTION_TIME_EXCEEDED,
            format!(
                "Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
                grouped(model.execution.as_millis()),
                window_text(model.window)
            ),
        ),
        Limit::Concurrency => (
            CONCURRENCY_EXCEEDED,
            format!(
                "Number of concurrent requests exceeded the limit of {}.",
                model.concurrent_requests
            ),
        ),
    };
    DvError::new(429, code, message).with_header("Retry-After", retry_after.to_string())
}

/// How many records a request read or wrote, for its server time: the operations of a `$batch`
/// (each answer part), the rows of a page (`value`), the `Targets` of a bulk message, else 1.
pub fn records(path: &str, request: &[u8], response_type: Option<&str>, response: &[u8]) -> usize {
    #[derive(serde::Deserialize)]
    struct Rows {
        value: Vec<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Targets {
        targets: Vec<serde::de::IgnoredAny>,
    }
    if path.trim_end_matches('/').ends_with("$batch") {
        let parts = response
            .split(|b| *b == b'\n')
            .filter(|line| line.starts_with(b"HTTP/1.1 "))
            .count();
        return parts.max(1);
    }
    if path.ends_with("Multiple")
        && let Ok(t) = serde_json::from_slice::<Targets>(request)
    {
        return t.targets.len().max(1);
    }
    if response_type.is_some_and(|t| t.starts_with("application/json"))
        && response.first() == Some(&b'{')
        && let Ok(rows) = serde_json::from_slice::<Rows>(response)
    {
        return rows.value.len().max(1);
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_budgets_scale_with_the_window() {
        let m = CostModel::default().with_window(Duration::from_secs(3));
        assert_eq!(m.requests, 60);
        assert_eq!(m.execution, Duration::from_secs(12));
        assert_eq!(m.concurrent_requests, 52);
        assert_eq!(
            CostModel::default().with_window(DOCUMENTED_WINDOW),
            CostModel::default()
        );
    }

    #[test]
    fn the_messages_are_the_documented_ones_at_the_defaults() {
        let m = CostModel::default();
        assert_eq!(
            refusal_error(&m, Limit::Requests, 1).message,
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
        );
        assert_eq!(
            refusal_error(&m, Limit::ExecutionTime, 1).message,
            "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time window of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later."
        );
        assert_eq!(
            refusal_error(&m, Limit::Concurrency, 1).message,
            "Number of concurrent requests exceeded the limit of 52."
        );
    }

    #[test]
    fn records_are_counted_from_pages_bulk_targets_and_batch_parts() {
        let page = br#"{"@odata.context":"x","value":[{"a":1},{"a":2},{"a":3}]}"#;
        assert_eq!(records("accounts", b"", Some("application/json"), page), 3);
        let bulk = br#"{"Targets":[{},{}]}"#;
        assert_eq!(
            records(
                "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
                bulk,
                None,
                b""
            ),
            2
        );
        let batch = b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n--b--";
        assert_eq!(records("$batch", b"", None, batch), 2);
        assert_eq!(records("accounts(1)", b"{}", None, b""), 1);
    }

    #[test]
    fn the_model_reads_from_json_and_refuses_bad_fields() {
        let m =
            CostModel::from_json(&json!({"latencyMs": 100, "perRecordMs": 1, "windowSecs": 30}))
                .unwrap();
        assert_eq!(m.latency, Duration::from_millis(100));
        assert_eq!(m.per_record, Duration::from_millis(1));
        assert_eq!(m.requests, 600);
        let e = CostModel::from_json(&json!({"latency": 1})).unwrap_err();
        assert!(e.contains("\"latency\""), "{e}");
        let e = CostModel::from_json(&json!({"dopHint": 0})).unwrap_err();
        assert!(e.contains("dopHint"), "{e}");
    }

    #[test]
    fn concurrency_is_counted_per_user_and_released_when_a_request_ends() {
        let cost = Cost::new(Some(CostModel {
            concurrent_requests: 2,
            ..CostModel::default()
        }));
        let (a, b) = (Guid::from_seed(1, 1), Guid::from_seed(2, 2));
        let t1 = cost.admit(a).unwrap().unwrap();
        let _t2 = cost.admit(a).unwrap().unwrap();
        let refused = cost.admit(a).unwrap().unwrap_err();
        assert_eq!(refused.code, CONCURRENCY_EXCEEDED);
        assert!(cost.admit(b).unwrap().is_ok());
        drop(t1);
        assert!(cost.admit(a).unwrap().is_ok());
        assert_eq!(cost.throttled().concurrency, 1);
    }
}
