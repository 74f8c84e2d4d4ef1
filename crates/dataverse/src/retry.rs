//! When to try a request again, and how long to wait first.

/// What the previous attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// No response: connection failure, cut or timeout.
    NoResponse,
}

/// Which failed responses are worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// 429, 502, 503 and 504: the failures Dataverse documents as transient.
    Transient,
    /// Every 5xx (the Raw Request default of the product brief).
    ServerErrors,
    /// Every status from 300 up.
    AllErrors,
}

/// A retry policy: how many retries, which failures, and the delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 means one attempt only.
    pub max_retries: u32,
    /// Fixed delay between attempts, used when `exponential` is false.
    pub delay_ms: u64,
    /// Doubling delays from `base_ms` (with jitter) instead of the fixed delay.
    pub exponential: bool,
    /// First delay of the exponential schedule.
    pub base_ms: u64,
    /// Longest single delay.
    pub max_delay_ms: u64,
    /// Longest total wait across all retries of one request.
    pub max_total_wait_ms: u64,
    /// Which statuses are retried.
    pub retry_on: RetryOn,
    /// Whether repeating the request cannot apply it twice. When false, only answers that
    /// prove the request was not applied (429, 503) are retried, and lost responses are not.
    pub idempotent: bool,
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        delay_ms: 0,
        exponential: false,
        base_ms: 500,
        max_delay_ms: 60_000,
        max_total_wait_ms: 120_000,
        retry_on: RetryOn::ServerErrors,
        idempotent: true,
    };

    /// The policy every record action uses: five retries of transient failures, exponential
    /// from one second, `Retry-After` honoured.
    pub const RECORDS: RetryPolicy = RetryPolicy {
        max_retries: 5,
        exponential: true,
        base_ms: 1_000,
        retry_on: RetryOn::Transient,
        ..RetryPolicy::NONE
    };

    /// The same policy for a request that may not be repeated blindly.
    pub fn not_idempotent(self) -> RetryPolicy {
        RetryPolicy {
            idempotent: false,
            ..self
        }
    }

    /// True when `outcome` of attempt number `attempt` (1-based) deserves another attempt.
    pub fn should_retry(&self, attempt: u32, outcome: Outcome) -> bool {
        if attempt > self.max_retries {
            return false;
        }
        let status = match outcome {
            Outcome::NoResponse => return self.idempotent,
            Outcome::Status(status) if (200..300).contains(&status) => return false,
            Outcome::Status(status) => status,
        };
        if !self.idempotent {
            return status == 429 || status == 503;
        }
        match self.retry_on {
            RetryOn::Transient => matches!(status, 429 | 502 | 503 | 504),
            RetryOn::ServerErrors => status >= 500,
            RetryOn::AllErrors => status >= 300,
        }
    }

    /// Delay before attempt `attempt + 1`. A server's `Retry-After` wins when it is longer.
    /// `jitter` is a number in 0..1 that spreads clients apart (use 0.5 for none).
    pub fn delay_ms(&self, attempt: u32, retry_after_ms: Option<u64>, jitter: f64) -> u64 {
        let planned = if self.exponential {
            let factor = 1u64 << attempt.saturating_sub(1).min(20);
            let ceiling = self.base_ms.saturating_mul(factor).min(self.max_delay_ms);
            // "Equal jitter": half fixed, half random, so the delay never collapses to zero.
            let half = ceiling / 2;
            half + (half as f64 * jitter.clamp(0.0, 1.0)) as u64
        } else {
            self.delay_ms.min(self.max_delay_ms)
        };
        planned.max(retry_after_ms.unwrap_or(0).min(self.max_delay_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            ..RetryPolicy::NONE
        }
    }

    #[test]
    fn retries_server_errors_and_lost_responses_until_the_bound() {
        let policy = policy(2);
        assert!(policy.should_retry(1, Outcome::Status(500)));
        assert!(policy.should_retry(2, Outcome::Status(503)));
        assert!(!policy.should_retry(3, Outcome::Status(503)));
        assert!(policy.should_retry(1, Outcome::NoResponse));
        assert!(!policy.should_retry(1, Outcome::Status(404)));
        assert!(!policy.should_retry(1, Outcome::Status(204)));
        assert!(
            !policy.should_retry(1, Outcome::Status(429)),
            "the brief's default retries 5xx only"
        );
    }

    #[test]
    fn retry_on_all_errors_includes_client_errors() {
        let policy = RetryPolicy {
            retry_on: RetryOn::AllErrors,
            ..policy(1)
        };
        assert!(policy.should_retry(1, Outcome::Status(400)));
        assert!(policy.should_retry(1, Outcome::Status(429)));
        assert!(!policy.should_retry(1, Outcome::Status(200)));
    }

    #[test]
    fn record_policy_retries_transient_failures_only() {
        let policy = RetryPolicy::RECORDS;
        for status in [429, 502, 503, 504] {
            assert!(policy.should_retry(1, Outcome::Status(status)), "{status}");
        }
        assert!(!policy.should_retry(1, Outcome::Status(500)));
        assert!(!policy.should_retry(6, Outcome::Status(429)));
    }

    #[test]
    fn a_request_that_may_not_repeat_is_retried_only_when_it_was_not_applied() {
        let policy = RetryPolicy::RECORDS.not_idempotent();
        assert!(policy.should_retry(1, Outcome::Status(429)));
        assert!(policy.should_retry(1, Outcome::Status(503)));
        assert!(!policy.should_retry(1, Outcome::Status(502)));
        assert!(!policy.should_retry(1, Outcome::Status(504)));
        assert!(!policy.should_retry(1, Outcome::NoResponse));
    }

    #[test]
    fn exponential_delays_double_and_respect_retry_after_and_the_cap() {
        let policy = RetryPolicy {
            exponential: true,
            base_ms: 100,
            max_delay_ms: 1000,
            ..policy(10)
        };
        assert_eq!(policy.delay_ms(1, None, 1.0), 100);
        assert_eq!(policy.delay_ms(2, None, 1.0), 200);
        assert_eq!(policy.delay_ms(3, None, 0.0), 200);
        assert_eq!(policy.delay_ms(9, None, 1.0), 1000);
        assert_eq!(policy.delay_ms(1, Some(700), 1.0), 700);
        assert_eq!(policy.delay_ms(1, Some(70_000), 1.0), 1000);
        let fixed = RetryPolicy {
            delay_ms: 250,
            exponential: false,
            ..policy
        };
        assert_eq!(fixed.delay_ms(4, None, 0.3), 250);
    }
}
