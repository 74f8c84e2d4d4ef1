//! Accounts in this process's memory: the default, right when one host process acts for a user.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Budget, Counters};

/// How soon to ask again when the account is at its parallelism: a running request usually
/// ends within milliseconds on loopback and hundreds of them against the service.
pub(super) const BUSY_WAIT: Duration = Duration::from_millis(2);

#[derive(Default)]
pub struct MemoryCounters {
    accounts: Mutex<HashMap<String, Account>>,
}

#[derive(Default)]
struct Account {
    running: u32,
    hint: Option<u32>,
    paused_until: Option<Instant>,
    /// When each request in the window started.
    starts: VecDeque<Instant>,
    /// When each request in the window ended, and how long it ran.
    executions: VecDeque<(Instant, Duration)>,
    executed: Duration,
}

impl Account {
    fn forget_before(&mut self, horizon: Instant) {
        while self.starts.front().is_some_and(|start| *start < horizon) {
            self.starts.pop_front();
        }
        while let Some((ended, spent)) = self.executions.front().copied() {
            if ended >= horizon {
                break;
            }
            self.executed = self.executed.saturating_sub(spent);
            self.executions.pop_front();
        }
    }
}

impl Counters for MemoryCounters {
    fn try_start(
        &self,
        account: &str,
        _lease: &str,
        budget: &Budget,
    ) -> anyhow::Result<Option<Duration>> {
        let now = Instant::now();
        let window = budget.counted_window();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let account = accounts.entry(account.to_string()).or_default();
        if let Some(until) = account.paused_until {
            if until > now {
                return Ok(Some(until - now));
            }
            account.paused_until = None;
        }
        let parallelism = account
            .hint
            .unwrap_or(budget.initial_parallelism)
            .min(budget.concurrent)
            .max(1);
        if account.running >= parallelism {
            return Ok(Some(BUSY_WAIT));
        }
        if let Some(horizon) = now.checked_sub(window) {
            account.forget_before(horizon);
        }
        if account.starts.len() as u64 >= budget.requests
            && let Some(oldest) = account.starts.front()
        {
            return Ok(Some(
                (*oldest + window)
                    .saturating_duration_since(now)
                    .max(BUSY_WAIT),
            ));
        }
        if account.executed >= budget.execution
            && let Some((oldest, _)) = account.executions.front()
        {
            return Ok(Some(
                (*oldest + window)
                    .saturating_duration_since(now)
                    .max(BUSY_WAIT),
            ));
        }
        account.running += 1;
        account.starts.push_back(now);
        Ok(None)
    }

    fn finish(
        &self,
        account: &str,
        _lease: &str,
        execution: Duration,
        _budget: &Budget,
    ) -> anyhow::Result<()> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let account = accounts.entry(account.to_string()).or_default();
        account.running = account.running.saturating_sub(1);
        account.executions.push_back((Instant::now(), execution));
        account.executed += execution;
        Ok(())
    }

    fn pause(&self, account: &str, pause: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + pause;
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let account = accounts.entry(account.to_string()).or_default();
        if account.paused_until.is_none_or(|current| current < until) {
            account.paused_until = Some(until);
        }
        Ok(())
    }

    fn set_hint(&self, account: &str, hint: u32, budget: &Budget) -> anyhow::Result<()> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.entry(account.to_string()).or_default().hint =
            Some(hint.clamp(1, budget.concurrent.max(1)));
        Ok(())
    }
}
