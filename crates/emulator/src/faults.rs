//! Fault injection: the next N matching responses misbehave. Rust tests switch it through
//! [`FaultHandle`]; the emulator binary (`--fault`), `dynamics emulator --fault` and the admin API
//! (`POST /_admin/faults`) take the same rules written as text ([`FaultRule`]'s grammar):
//!
//! ```text
//! KIND[=VALUE][:[SKIP+]TIMES][@PATH]
//! throttle:3@/accounts        the next 3 answers to paths containing /accounts are 429
//! throttle=5:1                the next answer (any path) is 429 with Retry-After: 5
//! cut:1@$batch                the next $batch answer is cut mid-body
//! unavailable:2+1@/accounts   2 answers to /accounts pass, the third is 503
//! delay=1500ms:2@/WhoAmI      the next 2 WhoAmI answers come 1.5 s late
//! ```
//!
//! Kinds: `throttle` (429, VALUE = Retry-After seconds, default 1), `unavailable` (503),
//! `bad-gateway` (502), `delay` (VALUE = `500ms`, `2s`, required), `cut` (headers and half the
//! body, then the connection drops), `malformed` (the normal status and content type with half
//! the body and a broken tail: JSON that does not parse, a `$batch` answer without its closing
//! boundary; a 204 becomes a 200 with broken JSON). TIMES defaults to 1; PATH is matched as a
//! substring of the URL path (not the query).

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

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    fault: Fault,
    /// Matching responses to let through untouched first.
    skip: usize,
    remaining: usize,
    path_contains: Option<String>,
}

/// A fault rule: which fault, for how many matching answers, after sparing how many, on which
/// paths. Parsed from and written as `KIND[=VALUE][:[SKIP+]TIMES][@PATH]` (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub fault: Fault,
    /// Matching answers let through untouched first.
    pub skip: usize,
    /// Matching answers that get the fault (still pending, when listed).
    pub times: usize,
    /// Only answers to paths containing this; None for every path.
    pub path_contains: Option<String>,
}

impl Fault {
    /// The kind's name in rules: `throttle`, `unavailable`, `bad-gateway`, `delay`, `cut`,
    /// `malformed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Throttle { .. } => "throttle",
            Fault::Unavailable => "unavailable",
            Fault::BadGateway => "bad-gateway",
            Fault::Delay(_) => "delay",
            Fault::CutMidBody => "cut",
            Fault::MalformedJson => "malformed",
        }
    }

    /// A fault from its kind and the rule's VALUE (`throttle`'s Retry-After seconds, `delay`'s
    /// duration).
    pub fn from_kind(kind: &str, value: Option<&str>) -> Result<Fault, String> {
        let none = |f: Fault| match value {
            None => Ok(f),
            Some(v) => Err(format!("{kind} takes no value (got {v:?})")),
        };
        match kind {
            "throttle" | "429" => Ok(Fault::Throttle {
                retry_after_secs: match value {
                    None => 1,
                    Some(v) => v.trim_end_matches('s').parse().map_err(|_| {
                        format!("throttle's value is Retry-After in seconds, not {v:?}")
                    })?,
                },
            }),
            "unavailable" | "503" => none(Fault::Unavailable),
            "bad-gateway" | "502" => none(Fault::BadGateway),
            "cut" => none(Fault::CutMidBody),
            "malformed" => none(Fault::MalformedJson),
            "delay" => {
                let v = value.ok_or("delay needs a duration: delay=500ms or delay=2s")?;
                parse_duration(v).map(Fault::Delay)
            }
            other => Err(format!(
                "unknown fault {other:?}: throttle, unavailable, bad-gateway, delay, cut or malformed"
            )),
        }
    }
}

/// `500ms`, `2s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 2s or 5m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        _ => Err(format!(
            "{text:?} is not a duration such as 500ms, 2s or 5m"
        )),
    }
}

impl std::str::FromStr for FaultRule {
    type Err = String;

    fn from_str(spec: &str) -> Result<FaultRule, String> {
        let spec = spec.trim();
        let (head, path) = match spec.split_once('@') {
            Some((h, p)) if !p.is_empty() => (h, Some(p.to_string())),
            Some(_) => return Err(format!("{spec:?}: nothing after '@'")),
            None => (spec, None),
        };
        let (fault_part, count) = match head.split_once(':') {
            Some((f, c)) => (f, Some(c)),
            None => (head, None),
        };
        let (kind, value) = match fault_part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (fault_part, None),
        };
        let fault = Fault::from_kind(kind.trim(), value.map(str::trim))?;
        let number = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("{spec:?}: {t:?} is not a count"))
        };
        let (skip, times) = match count {
            None => (0, 1),
            Some(c) => match c.split_once('+') {
                Some((skip, times)) => (number(skip)?, number(times)?),
                None => (0, number(c)?),
            },
        };
        if times == 0 {
            return Err(format!("{spec:?}: a rule needs at least one time"));
        }
        Ok(FaultRule {
            fault,
            skip,
            times,
            path_contains: path,
        })
    }
}

impl std::fmt::Display for FaultRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.fault.kind())?;
        match &self.fault {
            Fault::Throttle { retry_after_secs } => write!(f, "={retry_after_secs}")?,
            Fault::Delay(d) => write!(f, "={}ms", d.as_millis())?,
            _ => {}
        }
        match self.skip {
            0 => write!(f, ":{}", self.times)?,
            skip => write!(f, ":{skip}+{}", self.times)?,
        }
        if let Some(p) = &self.path_contains {
            write!(f, "@{p}")?;
        }
        Ok(())
    }
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

    /// Adds a rule (after the pending ones: the first matching rule wins).
    pub fn add(&self, rule: FaultRule) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(Rule {
                fault: rule.fault,
                skip: rule.skip,
                remaining: rule.times,
                path_contains: rule.path_contains,
            });
        }
    }

    /// The pending rules, in the order they apply.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules
            .lock()
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| FaultRule {
                        fault: r.fault.clone(),
                        skip: r.skip,
                        times: r.remaining,
                        path_contains: r.path_contains.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
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
    fn rules_parse_from_text_and_write_back() {
        let r: FaultRule = "throttle:3@/accounts".parse().unwrap();
        assert_eq!(
            r,
            FaultRule {
                fault: Fault::Throttle {
                    retry_after_secs: 1
                },
                skip: 0,
                times: 3,
                path_contains: Some("/accounts".into()),
            }
        );
        assert_eq!(r.to_string(), "throttle=1:3@/accounts");
        let r: FaultRule = "cut:1@$batch".parse().unwrap();
        assert_eq!(r.fault, Fault::CutMidBody);
        assert_eq!(r.path_contains.as_deref(), Some("$batch"));
        let r: FaultRule = "unavailable:2+1@/accounts".parse().unwrap();
        assert_eq!((r.skip, r.times), (2, 1));
        assert_eq!(r.to_string(), "unavailable:2+1@/accounts");
        let r: FaultRule = "delay=1500ms:2@/WhoAmI".parse().unwrap();
        assert_eq!(r.fault, Fault::Delay(Duration::from_millis(1500)));
        let r: FaultRule = "throttle=5".parse().unwrap();
        assert_eq!(
            (r.fault, r.times, r.path_contains),
            (
                Fault::Throttle {
                    retry_after_secs: 5
                },
                1,
                None
            )
        );
        for bad in [
            "nope:1",
            "delay:1",
            "cut=3",
            "throttle:x",
            "throttle:0",
            "cut:1@",
        ] {
            assert!(bad.parse::<FaultRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn added_rules_are_listed_with_what_remains() {
        let f = FaultHandle::default();
        f.add("unavailable:2@/accounts".parse().unwrap());
        assert_eq!(f.take("/api/data/v9.2/accounts"), Some(Fault::Unavailable));
        assert_eq!(f.rules()[0].times, 1);
        f.clear();
        assert!(f.rules().is_empty());
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
