//! Triggers: the Dataverse webhook receiver.

use crate::bindings::dynamics::connector::types::{self as wit, TriggerKind};

pub const WEBHOOK: &str = "webhook";

pub fn definitions() -> Vec<wit::TriggerDefinition> {
    vec![wit::TriggerDefinition {
        key: WEBHOOK.to_string(),
        label: "Webhook".to_string(),
        description: "Receive and validate webhook requests from Microsoft Dynamics for webhooks you configure.".to_string(),
        kind: TriggerKind::Webhook,
        inputs: Vec::new(),
    }]
}
