//! The trigger catalogue and the dispatch to handlers. Like the actions, each trigger is one
//! module holding its definition next to its handlers (`triggers/webhook.rs`,
//! `triggers/polling.rs`); the definitions flow designers see are generated from the catalogue.

mod action_performed;
mod polling;
mod row_changed;
mod row_filter;
mod webhook;

use crate::bindings::dynamics::connector::types::{
    self as wit, Connection, ConnectorError, ErrorCode, TriggerKind,
};
use crate::bindings::exports::dynamics::connector::triggers::{
    IncomingRequest, PollOutcome, WebhookOutcome,
};
use crate::context::Context;
use crate::definition::{InputDef, inputs_to_wit};
use crate::error::{Result, error};
use crate::input::Input;

/// How a trigger fires, with the handlers that kind needs. The kind flow designers see is derived
/// from this, so a definition cannot claim a kind its handlers do not serve.
#[derive(Clone, Copy)]
pub enum Handlers {
    /// Dataverse calls the host, which hands each request to `receive` with the checked config.
    /// `enable` registers the webhook with the environment for the host's URL and answers the
    /// state `disable` needs to remove that registration.
    Webhook {
        receive: fn(&Input, &IncomingRequest) -> Result<WebhookOutcome>,
        enable: fn(&Context, &Input, Option<&str>) -> Result<String>,
        disable: fn(&Context, &str) -> Result<()>,
    },
    /// The host calls `poll` on its schedule with the state the previous poll answered. It gets
    /// the connection rather than a context, so its state is checked before the connection.
    Polling {
        poll: fn(&Connection, &Input, Option<&str>) -> Result<PollOutcome>,
    },
}

/// One trigger: its definition next to its handlers.
pub struct TriggerDef {
    pub key: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub inputs: &'static [InputDef],
    pub handlers: Handlers,
}

impl TriggerDef {
    pub fn kind(&self) -> TriggerKind {
        match self.handlers {
            Handlers::Webhook { .. } => TriggerKind::Webhook,
            Handlers::Polling { .. } => TriggerKind::Polling,
        }
    }
}

pub const CATALOGUE: &[TriggerDef] = &[
    webhook::TRIGGER,
    polling::TRIGGER,
    row_changed::TRIGGER,
    action_performed::TRIGGER,
];

pub use action_performed::{DATA_SOURCE as ACTIONS_WITH_STEPS, source as actions_with_steps};

pub fn definitions() -> Vec<wit::TriggerDefinition> {
    CATALOGUE
        .iter()
        .map(|trigger| wit::TriggerDefinition {
            key: trigger.key.to_string(),
            label: trigger.label.to_string(),
            description: trigger.description.to_string(),
            kind: trigger.kind(),
            inputs: inputs_to_wit(trigger.inputs),
        })
        .collect()
}

/// Checks one incoming request of a webhook trigger against its config and reads its event.
pub fn handle_webhook(
    key: &str,
    config: &str,
    request: &IncomingRequest,
) -> Result<WebhookOutcome> {
    match find(key) {
        Some((trigger, Handlers::Webhook { receive, .. })) => {
            receive(&Input::parse(trigger.inputs, config)?, request)
        }
        _ => Err(unknown(key)),
    }
}

/// Registers a webhook trigger with the environment; answers the state `disable` needs.
pub fn enable(
    context: &Context,
    key: &str,
    config: &str,
    webhook_url: Option<&str>,
) -> Result<String> {
    match find(key) {
        Some((trigger, Handlers::Webhook { enable, .. })) => {
            enable(context, &Input::parse(trigger.inputs, config)?, webhook_url)
        }
        _ => Err(unknown(key)),
    }
}

/// Removes what `enable` registered.
pub fn disable(context: &Context, key: &str, state: &str) -> Result<()> {
    match find(key) {
        Some((_, Handlers::Webhook { disable, .. })) => disable(context, state),
        _ => Err(unknown(key)),
    }
}

/// One poll of a polling trigger.
pub fn poll(
    key: &str,
    connection: &Connection,
    config: &str,
    state: Option<&str>,
) -> Result<PollOutcome> {
    match find(key) {
        Some((trigger, Handlers::Polling { poll })) => {
            poll(connection, &Input::parse(trigger.inputs, config)?, state)
        }
        _ => Err(unknown(key)),
    }
}

fn find(key: &str) -> Option<(&'static TriggerDef, Handlers)> {
    CATALOGUE
        .iter()
        .find(|trigger| trigger.key == key)
        .map(|trigger| (trigger, trigger.handlers))
}

/// Also the answer when the key names a trigger of the other kind.
fn unknown(key: &str) -> ConnectorError {
    let keys: Vec<&str> = CATALOGUE.iter().map(|trigger| trigger.key).collect();
    let listed = match keys.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    error(
        ErrorCode::InvalidInput,
        format!("unknown trigger {key:?}; the triggers are {listed}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_come_from_the_catalogue_with_the_kind_their_handlers_serve() {
        let definitions = definitions();
        let keys: Vec<(&str, TriggerKind)> = definitions
            .iter()
            .map(|definition| (definition.key.as_str(), definition.kind))
            .collect();
        assert!(matches!(
            keys.as_slice(),
            [
                ("webhook", TriggerKind::Webhook),
                ("new-and-updated-records", TriggerKind::Polling),
                ("row-changed", TriggerKind::Webhook),
                ("action-performed", TriggerKind::Webhook)
            ]
        ));
    }

    #[test]
    fn a_key_of_no_trigger_or_of_a_trigger_of_the_other_kind_is_unknown() {
        let request = IncomingRequest {
            method: "POST".to_string(),
            path: "/".to_string(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        for key in ["webhooks", "new-and-updated-records"] {
            let failure = handle_webhook(key, "{}", &request).unwrap_err();
            assert_eq!(failure.code, ErrorCode::InvalidInput);
            assert_eq!(
                failure.message,
                format!(
                    "unknown trigger {key:?}; the triggers are webhook, new-and-updated-records, row-changed and action-performed"
                )
            );
        }
    }
}
