//! The governor: one budget per connection, shared by every call and every request on it, so
//! that many calls at once slow down instead of meeting Dataverse's service protection.
//!
//! Dataverse limits each user, over a 5-minute sliding window, to 6,000 requests and 20 minutes
//! of combined execution time, and to 52 concurrent requests; a request past a limit is answered
//! 429 with `Retry-After` (Service protection API limits,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/api-limits#service-protection-api-limits>).
//! Microsoft's advice is to send parallel requests up to the `x-ms-dop-hint` the service returns
//! (Send parallel requests,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests#optimum-degree-of-parallelism-dop>)
//! and, after a 429, to pause for the `Retry-After` duration before sending more
//! (<https://learn.microsoft.com/power-apps/developer/data-platform/api-limits#how-to-re-try>).
//!
//! So before each request the governor waits until the connection's account allows it: not
//! paused by a `Retry-After`, fewer requests running than the hint (or a conservative
//! [`Budget::initial_parallelism`] until a response brings one), and room left in both windows.
//! The account lives behind [`Counters`]: in this process's memory ([`MemoryCounters`], the
//! default), or in Redis ([`RedisCounters`]) when several host processes act for one user.
//!
//! The account's key is the connection's identity (its kind, its URLs, client and user IDs),
//! hashed: never a secret, and no user name in a shared store.

mod memory;
mod redis;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use memory::MemoryCounters;
pub use redis::RedisCounters;

/// What one user may spend, and how carefully.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// The sliding window. Documented: 300 s.
    pub window: Duration,
    /// Requests in the window. Documented: 6,000.
    pub requests: u64,
    /// Combined execution time in the window. Documented: 1,200 s. The governor counts the
    /// wall time it saw, which is at least the server's time.
    pub execution: Duration,
    /// Concurrent requests. Documented: 52.
    pub concurrent: u32,
    /// Requests at once until a response brings `x-ms-dop-hint`.
    pub initial_parallelism: u32,
    /// How much longer than `window` the governor remembers a request: the service counts it
    /// from when it arrives, a little after the governor let it go, so its window ends later.
    pub margin: Duration,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            window: Duration::from_secs(300),
            requests: 6000,
            execution: Duration::from_secs(1200),
            concurrent: 52,
            initial_parallelism: 4,
            margin: Duration::from_secs(5),
        }
    }
}

impl Budget {
    /// The documented budget scaled to another window (tests play a 5-minute window in
    /// seconds), as the emulator's cost model scales it.
    pub fn with_window(window: Duration) -> Budget {
        let ratio = window.as_secs_f64() / 300.0;
        Budget {
            window,
            requests: ((6000.0 * ratio).round() as u64).max(1),
            execution: Duration::from_millis(((1_200_000.0 * ratio).round() as u64).max(1)),
            margin: window / 20 + Duration::from_millis(50),
            ..Budget::default()
        }
    }

    /// The window as the governor counts it.
    pub fn counted_window(&self) -> Duration {
        self.window + self.margin
    }
}

/// Where the accounts are kept. Every method is one atomic step on one account.
pub trait Counters: Send + Sync {
    /// Starts a request on `account` under `lease` (unique) if the budget allows it now;
    /// otherwise how long to wait before asking again.
    fn try_start(
        &self,
        account: &str,
        lease: &str,
        budget: &Budget,
    ) -> anyhow::Result<Option<Duration>>;
    /// The request of `lease` ended after `execution`.
    fn finish(
        &self,
        account: &str,
        lease: &str,
        execution: Duration,
        budget: &Budget,
    ) -> anyhow::Result<()>;
    /// No request starts on `account` for `pause` (a `Retry-After`).
    fn pause(&self, account: &str, pause: Duration) -> anyhow::Result<()>;
    /// The service's recommended degree of parallelism for `account`.
    fn set_hint(&self, account: &str, hint: u32, budget: &Budget) -> anyhow::Result<()>;
}

/// The host's governor: a budget and where its accounts are kept.
#[derive(Clone)]
pub struct Governor {
    budget: Budget,
    counters: Arc<dyn Counters>,
    /// Used for a request when the shared store fails, so the host keeps working (alone).
    fallback: Arc<MemoryCounters>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Default for Governor {
    fn default() -> Governor {
        Governor::in_memory(Budget::default())
    }
}

/// The answer to one request, as far as the governor cares.
pub struct Seen<'a> {
    pub status: Option<u16>,
    pub headers: &'a [(String, String)],
}

impl Governor {
    pub fn new(budget: Budget, counters: Arc<dyn Counters>) -> Governor {
        Governor {
            budget,
            counters,
            fallback: Arc::new(MemoryCounters::default()),
        }
    }

    /// Accounts in this process's memory.
    pub fn in_memory(budget: Budget) -> Governor {
        Governor::new(budget, Arc::new(MemoryCounters::default()))
    }

    /// The environment variable that names a Redis for [`Governor::from_env`].
    pub const REDIS_URL_VAR: &'static str = "DYNAMICS_GOVERNOR_REDIS_URL";

    /// Accounts in the Redis that `DYNAMICS_GOVERNOR_REDIS_URL` names (`redis://host:port/db`),
    /// for host processes that share users; in memory when it is unset. A set but unreachable
    /// Redis is an error, so a misconfigured fleet does not run with a budget per process.
    pub fn from_env(budget: Budget) -> anyhow::Result<Governor> {
        match std::env::var(Self::REDIS_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Ok(Governor::new(
                budget,
                Arc::new(
                    RedisCounters::connect(url.trim())
                        .map_err(|problem| anyhow::anyhow!("{}: {problem}", Self::REDIS_URL_VAR))?,
                ),
            )),
            _ => Ok(Governor::in_memory(budget)),
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// How many requests of `account` may run together now: the hint once known.
    pub fn parallelism(&self) -> u32 {
        self.budget.concurrent.max(1)
    }

    /// Waits until `account` may send one more request, at most until `deadline`. None when the
    /// deadline came first (the request is then not sent).
    pub fn admit(&self, account: &str, deadline: Instant) -> Option<Permit<'_>> {
        let mut shared = true;
        let lease = new_lease();
        loop {
            let answer = if shared {
                self.counters.try_start(account, &lease, &self.budget)
            } else {
                self.fallback.try_start(account, &lease, &self.budget)
            };
            let wait = match answer {
                Ok(None) => {
                    return Some(Permit {
                        governor: self,
                        account: account.to_string(),
                        lease,
                        shared,
                        started: Instant::now(),
                    });
                }
                Ok(Some(wait)) => wait,
                Err(_) => {
                    // The shared store is unreachable: this process keeps its own account
                    // rather than failing every call.
                    shared = false;
                    continue;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if wait >= left {
                return None;
            }
            thread::sleep(wait);
        }
    }
}

/// One admitted request; [`Permit::finish`] returns its slot.
pub struct Permit<'a> {
    governor: &'a Governor,
    account: String,
    lease: String,
    shared: bool,
    started: Instant,
}

impl Permit<'_> {
    /// The request ended; `seen` is its answer (None when none came). A 429's `Retry-After`
    /// pauses the whole account; an `x-ms-dop-hint` becomes its parallelism.
    pub fn finish(self, seen: Option<Seen<'_>>) {
        let counters: &dyn Counters = if self.shared {
            self.governor.counters.as_ref()
        } else {
            self.governor.fallback.as_ref()
        };
        let budget = &self.governor.budget;
        let _ = counters.finish(&self.account, &self.lease, self.started.elapsed(), budget);
        let Some(seen) = seen else {
            return;
        };
        if let Some(hint) = header(seen.headers, "x-ms-dop-hint").and_then(|v| v.parse().ok()) {
            let _ = counters.set_hint(&self.account, hint, budget);
        }
        if seen.status == Some(429) {
            // "Retry-After with number of seconds"; a missing or unreadable one waits a second.
            let seconds = header(seen.headers, "retry-after")
                .and_then(|value| value.trim().parse::<f64>().ok())
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                .unwrap_or(1.0)
                .min(300.0);
            let _ = counters.pause(&self.account, Duration::from_secs_f64(seconds));
        }
    }
}

/// A name for one request that no other process picks: the process, the time and a count.
fn new_lease() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// The account of a connection: its kind and the fields that name the environment and the
/// user (URLs, client, tenant and user IDs), hashed. Secret fields never take part.
pub fn account_of(definition: &str, fields: &[(String, String)], secret_keys: &[&str]) -> String {
    let mut named: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(key, _)| !secret_keys.contains(&key.as_str()))
        .filter(|(key, _)| {
            let key = key.to_ascii_lowercase();
            key.ends_with("url")
                || key.ends_with("uri")
                || key == "clientid"
                || key == "tenantid"
                || key == "username"
        })
        .map(|(key, value)| (key.as_str(), value.trim()))
        .collect();
    named.sort();
    let mut hash = Sha256::new();
    hash.update(definition.as_bytes());
    for (key, value) in named {
        hash.update([0]);
        hash.update(key.as_bytes());
        hash.update([0]);
        hash.update(value.to_ascii_lowercase().as_bytes());
    }
    hash.finalize()
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_account_is_the_environment_and_user_and_never_the_secret() {
        let one = account_of(
            "oauth2-client-credentials",
            &fields(&[
                ("webApiUrl", "https://contoso.crm.dynamics.com"),
                ("clientId", "app"),
                ("clientSecret", "s3cret"),
            ]),
            &["clientSecret"],
        );
        let rotated = account_of(
            "oauth2-client-credentials",
            &fields(&[
                ("webApiUrl", "https://contoso.crm.dynamics.com"),
                ("clientId", "app"),
                ("clientSecret", "rotated"),
            ]),
            &["clientSecret"],
        );
        let other_user = account_of(
            "oauth2-client-credentials",
            &fields(&[
                ("webApiUrl", "https://contoso.crm.dynamics.com"),
                ("clientId", "other-app"),
                ("clientSecret", "s3cret"),
            ]),
            &["clientSecret"],
        );
        assert_eq!(one, rotated);
        assert_ne!(one, other_user);
        assert!(!one.contains("s3cret") && !one.contains("contoso"));
    }

    #[test]
    fn a_429_pauses_the_account_and_a_hint_bounds_it() {
        let governor = Governor::in_memory(Budget::default());
        let deadline = Instant::now() + Duration::from_secs(5);
        let permit = governor.admit("a", deadline).unwrap();
        let headers = vec![
            ("retry-after".to_string(), "1".to_string()),
            ("x-ms-dop-hint".to_string(), "1".to_string()),
        ];
        permit.finish(Some(Seen {
            status: Some(429),
            headers: &headers,
        }));
        let started = Instant::now();
        let permit = governor.admit("a", deadline).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(900));
        // The hint of 1: a second request waits for the first; one too near the deadline is
        // not admitted at all.
        assert!(
            governor
                .admit("a", Instant::now() + Duration::from_millis(100))
                .is_none()
        );
        // Another account is not held up.
        assert!(
            governor
                .admit("b", Instant::now() + Duration::from_millis(100))
                .is_some()
        );
        permit.finish(None);
        assert!(
            governor
                .admit("a", Instant::now() + Duration::from_millis(100))
                .is_some()
        );
    }

    #[test]
    fn two_governors_on_one_redis_share_an_account() {
        let url = std::env::var("DYNAMICS_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string());
        let (Ok(one), Ok(other)) = (RedisCounters::connect(&url), RedisCounters::connect(&url))
        else {
            eprintln!("NOTICE: skipping the Redis governor test: no Redis at {url}");
            return;
        };
        let budget = Budget {
            window: Duration::from_secs(2),
            requests: 3,
            margin: Duration::from_millis(50),
            ..Budget::default()
        };
        let one = Governor::new(budget.clone(), Arc::new(one));
        let other = Governor::new(budget, Arc::new(other));
        let account = format!("unit-{}", new_lease());
        let soon = || Instant::now() + Duration::from_millis(150);
        // A hint of 1 seen by one process holds the other's second request back.
        let first = one.admit(&account, soon()).unwrap();
        let hint = vec![("x-ms-dop-hint".to_string(), "1".to_string())];
        first.finish(Some(Seen {
            status: Some(200),
            headers: &hint,
        }));
        let held = one.admit(&account, soon()).unwrap();
        assert!(other.admit(&account, soon()).is_none());
        held.finish(None);
        other.admit(&account, soon()).unwrap().finish(None);
        // Three requests in the window between them: a fourth waits for it to slide.
        assert!(one.admit(&account, soon()).is_none());
        // A 429 seen by one pauses the other.
        let late = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        one.admit(&account, late).unwrap().finish(Some(Seen {
            status: Some(429),
            headers: &[("retry-after".to_string(), "1".to_string())],
        }));
        assert!(started.elapsed() >= Duration::from_millis(1500));
        let paused_at = Instant::now();
        other.admit(&account, late).unwrap().finish(None);
        assert!(paused_at.elapsed() >= Duration::from_millis(800));
    }

    #[test]
    fn the_request_window_holds_requests_back_until_it_slides() {
        let budget = Budget {
            window: Duration::from_millis(300),
            requests: 3,
            margin: Duration::from_millis(20),
            ..Budget::default()
        };
        let governor = Governor::in_memory(budget);
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        for _ in 0..3 {
            governor.admit("a", deadline).unwrap().finish(None);
        }
        assert!(started.elapsed() < Duration::from_millis(200));
        governor.admit("a", deadline).unwrap().finish(None);
        assert!(started.elapsed() >= Duration::from_millis(320));
    }
}
