//! Service protection limits: a sliding window of request times per caller.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::guid::Guid;

/// A request-count limit per caller over a sliding window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub requests: usize,
    pub window: Duration,
}

impl Default for RateLimit {
    /// Dataverse's documented default: 6000 requests per 300 seconds.
    fn default() -> Self {
        RateLimit {
            requests: 6000,
            window: Duration::from_secs(300),
        }
    }
}

/// `100/60s`: 100 requests per 60 seconds (the window as `500ms`, `60s`, `5m`, `1h` or plain
/// seconds), as `--rate-limit` and the admin API take it.
impl std::str::FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<RateLimit, String> {
        let (n, window) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a limit such as 100/60s"))?;
        let requests: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {n:?} is not a number of requests"))?;
        let window = crate::faults::parse_duration(window)?;
        if requests == 0 || window.is_zero() {
            return Err(format!(
                "{text:?}: a limit needs requests and a window above 0"
            ));
        }
        Ok(RateLimit { requests, window })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.window.subsec_millis() {
            0 => write!(f, "{}/{}s", self.requests, self.window.as_secs()),
            _ => write!(f, "{}/{}ms", self.requests, self.window.as_millis()),
        }
    }
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Allowed; this many requests remain in the window.
    Allowed { remaining: usize },
    /// Refused; retry after this many seconds.
    Throttled { retry_after: u64 },
}

/// Per-caller windows.
#[derive(Debug, Default)]
pub struct Throttle {
    windows: HashMap<Guid, VecDeque<Instant>>,
}

impl Throttle {
    /// Counts a request by `caller` at `now` against `limit`.
    pub fn check(&mut self, caller: Guid, limit: RateLimit, now: Instant) -> Verdict {
        let w = self.windows.entry(caller).or_default();
        while w
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.window)
        {
            w.pop_front();
        }
        if w.len() >= limit.requests {
            let oldest = w.front().copied().unwrap_or(now);
            let wait = limit.window.saturating_sub(now.duration_since(oldest));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Verdict::Throttled {
                retry_after: secs.max(1),
            };
        }
        w.push_back(now);
        Verdict::Allowed {
            remaining: limit.requests - w.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_text() {
        let l: RateLimit = "100/60s".parse().unwrap();
        assert_eq!(l.requests, 100);
        assert_eq!(l.window, Duration::from_secs(60));
        assert_eq!(l.to_string(), "100/60s");
        assert_eq!(
            "10/5m".parse::<RateLimit>().unwrap().window,
            Duration::from_secs(300)
        );
        assert_eq!(
            "3/90".parse::<RateLimit>().unwrap().window,
            Duration::from_secs(90)
        );
        for bad in ["100", "x/60s", "0/60s", "10/0s", "10/60y"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_beyond_the_limit_are_throttled_until_the_window_slides() {
        let mut t = Throttle::default();
        let limit = RateLimit {
            requests: 2,
            window: Duration::from_secs(10),
        };
        let me = Guid::from_seed(1, 1);
        let t0 = Instant::now();
        assert_eq!(t.check(me, limit, t0), Verdict::Allowed { remaining: 1 });
        assert_eq!(t.check(me, limit, t0), Verdict::Allowed { remaining: 0 });
        assert_eq!(
            t.check(me, limit, t0 + Duration::from_secs(4)),
            Verdict::Throttled { retry_after: 6 }
        );
        // Another caller has its own window.
        assert!(matches!(
            t.check(Guid::from_seed(2, 2), limit, t0),
            Verdict::Allowed { .. }
        ));
        assert!(matches!(
            t.check(me, limit, t0 + Duration::from_secs(10)),
            Verdict::Allowed { .. }
        ));
    }
}
