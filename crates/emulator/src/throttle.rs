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
