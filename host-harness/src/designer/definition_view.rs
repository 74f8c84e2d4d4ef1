//! The component's definitions as the page reads them.

use serde_json::{Value, json};

use dynamics_host::manifest::input_type_name;
use dynamics_host::{ComponentDefinition, InputDefinition, TriggerKind};

/// Input definitions as the page reads them (also the answer of `/api/input-definitions`).
pub fn inputs_json(inputs: &[InputDefinition]) -> Value {
    inputs
        .iter()
        .map(|input| {
            json!({
                "key": input.key,
                "label": input.label,
                "type": input_type_name(input.input_type),
                "required": input.required,
                "default": input.default,
                "comments": input.comments,
                "example": input.example,
                "choices": input.choices.iter().map(|c| json!({"label": c.label, "value": c.value})).collect::<Vec<_>>(),
                "dataSource": input.data_source,
            })
        })
        .collect()
}

/// The component's definitions as the page reads them.
pub fn definition_json(definition: &ComponentDefinition) -> Value {
    use dynamics_host::ConnectionKind;
    let inputs = |inputs: &[InputDefinition]| inputs_json(inputs);
    json!({
        "key": definition.key,
        "name": definition.name,
        "version": definition.version,
        "description": definition.description,
        "icon": definition.icon,
        "connections": definition.connections.iter().map(|c| json!({
            "key": c.key, "label": c.label, "description": c.description,
            "kind": match c.kind {
                ConnectionKind::Oauth2AuthorizationCode => "oauth2-authorization-code",
                ConnectionKind::Oauth2ClientCredentials => "oauth2-client-credentials",
                ConnectionKind::Oauth2Password => "oauth2-password",
            },
            "inputs": inputs(&c.inputs),
        })).collect::<Vec<_>>(),
        "actions": definition.actions.iter().map(|a| json!({
            "key": a.key, "label": a.label, "description": a.description, "group": a.group,
            "inputs": inputs(&a.inputs),
            "dynamicInputs": a.dynamic_inputs,
            "exampleOutput": a.example_output.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()),
        })).collect::<Vec<_>>(),
        "triggers": definition.triggers.iter().map(|t| json!({
            "key": t.key, "label": t.label, "description": t.description,
            "kind": match t.kind {
                TriggerKind::Webhook => "webhook",
                TriggerKind::Polling => "polling",
            },
            "inputs": inputs(&t.inputs),
        })).collect::<Vec<_>>(),
        "dataSources": definition.data_sources.iter().map(|d| json!({
            "key": d.key, "label": d.label, "description": d.description, "inputs": inputs(&d.inputs),
        })).collect::<Vec<_>>(),
    })
}
