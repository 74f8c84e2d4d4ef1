//! A flow armed with a webhook-registering trigger, for the trigger tests: the loopback server
//! that receives the environment's calls, the trigger's config and the state to disable it.

use std::sync::Arc;
use std::time::Duration;

use dataverse_emulator::Emulator;
use dynamics_host::Connection;
use e2e_tests::{host, json};
use host_harness::webhook_server::WebhookServer;
use serde_json::{Value, json};

pub struct Flow {
    pub server: WebhookServer,
    pub config: String,
    pub state: String,
}

/// Enables `trigger` with `settings` and the webhook key `key`, for a server of its own.
pub fn enable(trigger: &str, key: &str, connection: &Connection, settings: Value) -> Flow {
    let mut config = settings;
    config["webhookKey"] = json!(key);
    let config = config.to_string();
    let (handler_trigger, handler_config) = (trigger.to_string(), config.clone());
    let server = WebhookServer::start(
        0,
        &format!("/hooks/{trigger}"),
        Arc::new(move |request| {
            host()
                .handle_webhook(&handler_trigger, &handler_config, request)
                .unwrap()
        }),
    )
    .unwrap();
    let state = host()
        .enable_trigger(trigger, connection, &config, server.url())
        .unwrap();
    Flow {
        server,
        config,
        state,
    }
}

/// Waits for the emulator to have made `deliveries` webhook calls in all, then gives the events
/// the flow's server produced.
pub fn events(emulator: &Emulator, flow: &Flow, deliveries: usize) -> Vec<Value> {
    let made = emulator.wait_for_deliveries(deliveries, Duration::from_secs(10));
    assert!(
        made.len() >= deliveries,
        "expected {deliveries} webhook calls, the emulator made {}",
        made.len()
    );
    let mut out = Vec::new();
    while let Some(event) = flow.server.next_event(Duration::from_millis(300)) {
        out.push(serde_json::from_str(&event).unwrap());
    }
    out
}

/// Runs an action that must succeed and gives its output.
pub fn invoke(connection: &Connection, action: &str, input: Value) -> Value {
    json(
        &host()
            .invoke(action, connection, &input.to_string())
            .unwrap(),
    )
}
