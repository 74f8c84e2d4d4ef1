//! Fault injection, switched on per test: the next N matching responses misbehave.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One kind of misbehaviour.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with `Retry-After` (seconds) and the service-protection error body.
    Throttle { retry_after_secs: u64 },
    /// 503 Service Unavailable.
    Unavailable,
    /// 502 Bad Gateway (as a front door would send it: not Dataverse JSON).
    BadGateway,
    /// Wait, then answer normally.
    Delay(Duration),
    /// Send the headers and part of the body, then drop the connection.
    CutMidBody,
    /// Answer with the normal status and a body that is not valid JSON.
    MalformedJson,
}

#[derive(Debug, Clone)]
struct Rule {
    fault: Fault,
    /// Matching responses to let through untouched first.
    skip: usize,
    remaining: usize,
    path_contains: Option<String>,
}

/// A handle to switch faults on and off while the emulator runs.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl FaultHandle {
    /// The next `times` responses (to any path) get `fault`.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.push(fault, times, None);
    }

    /// The next `times` responses to paths containing `path_contains` get `fault`.
    pub fn inject_on(&self, fault: Fault, times: usize, path_contains: &str) {
        self.push(fault, times, Some(path_contains.to_string()));
    }

    /// Lets `skip` responses to paths containing `path_contains` through, then gives the next
    /// `times` of them `fault` (a later page of a read, the second batch of a run).
    pub fn inject_after(&self, skip: usize, fault: Fault, times: usize, path_contains: &str) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(Rule {
                fault,
                skip,
                remaining: times,
                path_contains: Some(path_contains.to_string()),
            });
        }
    }

    fn push(&self, fault: Fault, times: usize, path_contains: Option<String>) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(Rule {
                fault,
                skip: 0,
                remaining: times,
                path_contains,
            });
        }
    }

    /// Next `times` responses are 429 with `Retry-After: retry_after_secs`.
    pub fn throttle(&self, times: usize, retry_after_secs: u64) {
        self.inject(Fault::Throttle { retry_after_secs }, times);
    }

    /// Next `times` responses are 503.
    pub fn unavailable(&self, times: usize) {
        self.inject(Fault::Unavailable, times);
    }

    /// Next `times` responses are 502.
    pub fn bad_gateway(&self, times: usize) {
        self.inject(Fault::BadGateway, times);
    }

    /// Next `times` responses are delayed.
    pub fn delay(&self, times: usize, delay: Duration) {
        self.inject(Fault::Delay(delay), times);
    }

    /// Next `times` responses are cut mid-body.
    pub fn cut_mid_body(&self, times: usize) {
        self.inject(Fault::CutMidBody, times);
    }

    /// Next `times` responses carry malformed JSON.
    pub fn malformed_json(&self, times: usize) {
        self.inject(Fault::MalformedJson, times);
    }

    /// Removes every pending fault.
    pub fn clear(&self) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.clear();
        }
    }

    /// How many injected responses are still pending.
    pub fn pending(&self) -> usize {
        self.rules
            .lock()
            .map(|r| r.iter().map(|x| x.remaining).sum())
            .unwrap_or(0)
    }

    /// Takes the fault for a request to `path`, if any (first matching rule wins).
    pub(crate) fn take(&self, path: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().ok()?;
        let i = rules.iter().position(|r| {
            r.remaining > 0 && r.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        if rules[i].skip > 0 {
            rules[i].skip -= 1;
            return None;
        }
        rules[i].remaining -= 1;
        let fault = rules[i].fault.clone();
        if rules[i].remaining == 0 {
            rules.remove(i);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_to_matching_paths_the_given_number_of_times() {
        let f = FaultHandle::default();
        f.inject_on(Fault::Unavailable, 2, "/accounts");
        assert_eq!(f.take("/api/data/v9.2/contacts"), None);
        assert_eq!(f.take("/api/data/v9.2/accounts"), Some(Fault::Unavailable));
        assert_eq!(f.take("/api/data/v9.2/accounts"), Some(Fault::Unavailable));
        assert_eq!(f.take("/api/data/v9.2/accounts"), None);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn a_fault_can_spare_the_first_matching_responses() {
        let f = FaultHandle::default();
        f.inject_after(1, Fault::Unavailable, 1, "/accounts");
        assert_eq!(f.take("/api/data/v9.2/accounts"), None);
        assert_eq!(f.take("/api/data/v9.2/accounts"), Some(Fault::Unavailable));
        assert_eq!(f.take("/api/data/v9.2/accounts"), None);
    }
}
