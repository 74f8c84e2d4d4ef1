//! The event log the page long-polls: received events with their flow runs, and a revision

//! that grows with every change.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use dynamics_host::tokens::{format_utc, unix_now};

use super::Shared;

/// Received events with their flow runs: the latest [`MAX_EVENTS`], numbered from 1.
#[derive(Default)]
pub(super) struct EventLog {
    /// Grows with every change, for long polls.
    pub(super) revision: u64,
    /// How many events were dropped: the first kept is number `first + 1`.
    pub(super) first: usize,
    pub(super) items: std::collections::VecDeque<Value>,
}

/// Events kept (the page shows the latest 100).
pub(super) const MAX_EVENTS: usize = 500;

/// How long `GET /api/events` waits for a new event before answering with none.
pub(super) const EVENT_WAIT: Duration = Duration::from_secs(10);

impl Shared {
    pub(super) fn push_event(&self, mut record: Value) -> usize {
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if log.items.len() == MAX_EVENTS {
            log.items.pop_front();
            log.first += 1;
        }
        let id = log.first + log.items.len() + 1;
        record["id"] = json!(id);
        record["receivedAt"] = json!(format_utc(unix_now()));
        log.items.push_back(record);
        log.revision += 1;
        self.events_changed.notify_all();
        id
    }

    pub(super) fn update_event(&self, id: usize, mut record: Value) {
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let index = id.checked_sub(log.first + 1);
        if let Some(slot) = index.and_then(|index| log.items.get_mut(index)) {
            record["id"] = json!(id);
            record["receivedAt"] = slot["receivedAt"].clone();
            *slot = record;
        }
        log.revision += 1;
        self.events_changed.notify_all();
    }

    /// The events (the latest 100) once the revision is above `after`, waiting a while for a
    /// change.
    pub(super) fn events_after(&self, after: u64) -> Value {
        let deadline = Instant::now() + EVENT_WAIT;
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        while log.revision <= after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            log = self
                .events_changed
                .wait_timeout(log, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let skip = log.items.len().saturating_sub(100);
        let latest: Vec<&Value> = log.items.iter().skip(skip).collect();
        json!({"events": latest, "revision": log.revision})
    }
}
