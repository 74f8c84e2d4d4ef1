//! Arming a trigger with a flow: a webhook registered with the environment (its deliveries

//! arrive at [`super::WEBHOOK_PATH`]) or a poller thread; and stopping it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use dynamics_host::{CallError, IncomingRequest, TriggerKind, WebhookOutcome};

use super::Shared;
use super::api::{Answer, StartTrigger, connector_error, fail, host_error, status_of};
use super::flow::{self, Flow};

/// The trigger that runs a flow when its events arrive.
pub(super) struct Armed {
    pub(super) trigger: String,
    pub(super) connection: String,
    /// The trigger's config, with the webhook key the registration generated.
    pub(super) config: String,
    pub(super) listening: Listening,
    pub(super) flow: Flow,
}

/// How an armed trigger receives its events.
pub(super) enum Listening {
    /// Registered with the environment; what `triggers.enable` returned, for `triggers.disable`.
    Webhook { registration: String },
    /// A thread polls every `every` until `stop` is set.
    Polling {
        every: Duration,
        stop: Arc<AtomicBool>,
    },
}

/// Polling intervals the designer accepts, in seconds.
pub(super) const POLL_SECONDS: std::ops::RangeInclusive<u64> = 1..=86_400;

impl Shared {
    pub(super) fn start_trigger(self: &Arc<Self>, body: StartTrigger) -> Answer {
        let flow = match self.parse_flow(body.flow) {
            Ok(flow) => flow,
            Err(answer) => return answer,
        };
        let trigger = body.trigger.unwrap_or_else(|| "webhook".to_string());
        let Some(kind) = self
            .host
            .definition()
            .triggers
            .iter()
            .find(|definition| definition.key == trigger)
            .map(|definition| definition.kind)
        else {
            return fail(
                400,
                "invalid-input",
                format!("trigger: the component has no trigger {trigger:?}"),
                Some("trigger"),
            );
        };
        let Some(name) = body.connection.as_deref() else {
            return fail(
                400,
                "invalid-input",
                "connection: choose a connection for the trigger",
                Some("connection"),
            );
        };
        let mut config = match body.config {
            Some(Value::Object(config)) => config,
            None => Map::new(),
            Some(_) => {
                return fail(
                    400,
                    "invalid-input",
                    "config: must be a JSON object",
                    Some("config"),
                );
            }
        };
        let every = match &body.interval_seconds {
            None => 60,
            Some(value) => match value.as_u64().filter(|secs| POLL_SECONDS.contains(secs)) {
                Some(secs) => secs,
                None => {
                    return fail(
                        400,
                        "invalid-input",
                        format!("intervalSeconds: poll every 1 to 86400 seconds; got {value}"),
                        Some("intervalSeconds"),
                    );
                }
            },
        };
        if let Err(problem) = self.disarm() {
            return fail(502, "upstream", problem, None);
        }
        let connection = match self.prepared(name) {
            Ok((_, connection)) => connection,
            Err(error) => return (status_of(&error), json!({ "error": error })),
        };
        let listening = match kind {
            TriggerKind::Webhook => {
                let config_text = Value::Object(config.clone()).to_string();
                let registration = match self.host.enable_trigger(
                    &trigger,
                    &connection,
                    &config_text,
                    &self.webhook_url,
                ) {
                    Ok(registration) => registration,
                    Err(CallError::Connector(error)) => {
                        let error = connector_error(&error);
                        return (status_of(&error), json!({ "error": error }));
                    }
                    Err(CallError::Host(error)) => {
                        return (500, json!({ "error": host_error(&error) }));
                    }
                };
                if let Some(webhook_key) = serde_json::from_str::<Value>(&registration)
                    .ok()
                    .and_then(|state| state["webhookKey"].as_str().map(str::to_string))
                {
                    config.insert("webhookKey".to_string(), json!(webhook_key));
                }
                Listening::Webhook { registration }
            }
            TriggerKind::Polling => {
                let stop = Arc::new(AtomicBool::new(false));
                let every = Duration::from_secs(every);
                self.spawn_poller(
                    trigger.clone(),
                    name.to_string(),
                    Value::Object(config.clone()).to_string(),
                    flow.clone(),
                    every,
                    stop.clone(),
                );
                Listening::Polling { every, stop }
            }
        };
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Armed {
            trigger,
            connection: name.to_string(),
            config: Value::Object(config).to_string(),
            listening,
            flow,
        });
        (200, self.trigger_status())
    }

    /// Polls `trigger` now and then every `every` until `stop`; each event runs `flow`. A poll
    /// that fails is shown as an event of its own, and the next poll tries again.
    pub(super) fn spawn_poller(
        self: &Arc<Self>,
        trigger: String,
        connection: String,
        config: String,
        flow: Flow,
        every: Duration,
        stop: Arc<AtomicBool>,
    ) {
        let shared = self.clone();
        thread::spawn(move || {
            let mut state: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                let outcome = shared.prepared(&connection).and_then(|(_, prepared)| {
                    match shared
                        .host
                        .poll(&trigger, &prepared, &config, state.as_deref())
                    {
                        Ok(outcome) => Ok(outcome),
                        Err(CallError::Connector(error)) => Err(connector_error(&error)),
                        Err(CallError::Host(error)) => Err(host_error(&error)),
                    }
                });
                match outcome {
                    Ok(outcome) => {
                        state = Some(outcome.state);
                        for event in &outcome.events {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let event =
                                serde_json::from_str(event).unwrap_or_else(|_| json!(event));
                            let id =
                                shared.push_event(json!({"event": &event, "status": "running"}));
                            shared.run_for_event(id, &connection, &flow, event);
                        }
                    }
                    Err(error) => {
                        shared.push_event(json!({"status": "failed", "error": error, "event": {"message": "poll"}}));
                    }
                }
                let until = Instant::now() + every;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                }
            }
        });
    }

    /// Runs `flow` for event record `id` and records the step results.
    pub(super) fn run_for_event(&self, id: usize, connection: &str, flow: &Flow, event: Value) {
        let steps = flow::run(flow, Some(&event), |action, input| {
            self.run_action(connection, action, input)
        });
        let failed = steps.iter().any(|step| step.status == "failed");
        self.update_event(
            id,
            json!({
                "event": event,
                "status": if failed { "failed" } else { "succeeded" },
                "steps": steps,
            }),
        );
    }

    pub(super) fn trigger_status(&self) -> Value {
        let armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        match armed.as_ref() {
            Some(armed) => {
                let mut status = json!({
                    "armed": true,
                    "trigger": armed.trigger,
                    "connection": armed.connection,
                    "flow": armed.flow.name,
                });
                match &armed.listening {
                    Listening::Webhook { .. } => status["webhookUrl"] = json!(self.webhook_url),
                    Listening::Polling { every, .. } => {
                        status["intervalSeconds"] = json!(every.as_secs())
                    }
                }
                status
            }
            None => json!({"armed": false}),
        }
    }

    /// Unregisters (or stops polling) the armed trigger, if any; true when there was one.
    pub(super) fn disarm(&self) -> Result<bool, String> {
        let Some(armed) = self.armed.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(false);
        };
        let Listening::Webhook { registration } = &armed.listening else {
            if let Listening::Polling { stop, .. } = &armed.listening {
                stop.store(true, Ordering::Relaxed);
            }
            return Ok(true);
        };
        let unregistered = self
            .prepared(&armed.connection)
            .and_then(|(_, connection)| {
                match self.host.disable_trigger(
                    &armed.trigger,
                    &connection,
                    &armed.config,
                    registration,
                ) {
                    Ok(()) => Ok(()),
                    Err(CallError::Connector(error)) => Err(connector_error(&error)),
                    Err(CallError::Host(error)) => Err(host_error(&error)),
                }
            });
        unregistered.map(|()| true).map_err(|error| {
            // The registration also holds the webhook key: name only the endpoint.
            let endpoint = serde_json::from_str::<Value>(registration)
                .ok()
                .and_then(|state| state["serviceEndpointId"].as_str().map(str::to_string))
                .unwrap_or_else(|| "(unknown)".to_string());
            format!(
                "the webhook registration could not be removed ({}); delete service endpoint {endpoint} and its steps by hand",
                error["message"].as_str().unwrap_or("unknown error"),
            )
        })
    }

    /// A webhook request: the trigger checks and reads it; each event runs the armed flow on a
    /// thread of its own, after the answer (Dataverse waits for synchronous steps).
    pub(super) fn webhook(self: &Arc<Self>, request: IncomingRequest) -> WebhookOutcome {
        let armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let listening = armed
            .as_ref()
            .filter(|active| matches!(active.listening, Listening::Webhook { .. }));
        let Some(active) = listening else {
            return WebhookOutcome {
                status: 404,
                headers: Vec::new(),
                body: b"no webhook trigger is listening".to_vec(),
                events: Vec::new(),
            };
        };
        let (trigger, config) = (active.trigger.clone(), active.config.clone());
        let (connection, flow) = (active.connection.clone(), active.flow.clone());
        drop(armed);
        let outcome = match self.host.handle_webhook(&trigger, &config, request) {
            Ok(outcome) => outcome,
            Err(CallError::Connector(error)) => WebhookOutcome {
                status: 500,
                headers: Vec::new(),
                body: dynamics_host::describe_error(&error).into_bytes(),
                events: Vec::new(),
            },
            Err(CallError::Host(error)) => WebhookOutcome {
                status: 500,
                headers: Vec::new(),
                body: error.to_string().into_bytes(),
                events: Vec::new(),
            },
        };
        for event in &outcome.events {
            let event: Value = serde_json::from_str(event).unwrap_or_else(|_| json!(event));
            let id = self.push_event(json!({"event": &event, "status": "running"}));
            let (shared, connection, flow) = (self.clone(), connection.clone(), flow.clone());
            thread::spawn(move || shared.run_for_event(id, &connection, &flow, event));
        }
        outcome
    }
}
