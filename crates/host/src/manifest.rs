//! `component.yaml`: the manifest a host reads, generated from the component's definitions.

use serde::Serialize;

use crate::bindings::dynamics::connector::types::{ConnectionKind, TriggerKind};
use crate::{ComponentDefinition, InputDefinition, InputType};

#[derive(Serialize)]
struct Manifest<'a> {
    key: &'a str,
    name: &'a str,
    version: &'a str,
    description: &'a str,
    category: &'a str,
    icon: &'a str,
    /// The host's egress policy for this component: the only hosts a connection may name
    /// (with loopback and private addresses refused unless the operator allows them).
    #[serde(rename = "allowedOutboundHosts")]
    allowed_outbound_hosts: &'static [&'static str],
    connections: Vec<Entry<'a>>,
    actions: Vec<Entry<'a>>,
    triggers: Vec<Entry<'a>>,
    #[serde(rename = "dataSources")]
    data_sources: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    key: &'a str,
    label: &'a str,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    inputs: Vec<Input<'a>>,
}

#[derive(Serialize)]
struct Input<'a> {
    key: &'a str,
    label: &'a str,
    #[serde(rename = "type")]
    input_type: &'static str,
    required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comments: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    example: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    choices: Vec<&'a str>,
    #[serde(rename = "dataSource", skip_serializing_if = "Option::is_none")]
    data_source: Option<&'a str>,
}

/// The input type's name as the manifest and the CLI write it.
pub fn input_type_name(input_type: InputType) -> &'static str {
    match input_type {
        InputType::Text => "text",
        InputType::Multiline => "multiline",
        InputType::Secret => "secret",
        InputType::Boolean => "boolean",
        InputType::Number => "number",
        InputType::Code => "code",
        InputType::Picklist => "picklist",
        InputType::StringList => "string-list",
        InputType::KeyValueList => "key-value-list",
        InputType::Connection => "connection",
        InputType::File => "file",
    }
}

fn inputs(inputs: &[InputDefinition]) -> Vec<Input<'_>> {
    inputs
        .iter()
        .map(|input| Input {
            key: &input.key,
            label: &input.label,
            input_type: input_type_name(input.input_type),
            required: input.required,
            default: input.default.as_deref(),
            comments: input.comments.as_deref(),
            example: input.example.as_deref(),
            choices: input
                .choices
                .iter()
                .map(|choice| choice.value.as_str())
                .collect(),
            data_source: input.data_source.as_deref(),
        })
        .collect()
}

/// Renders the manifest as YAML.
pub fn render(definition: &ComponentDefinition) -> anyhow::Result<String> {
    let manifest = Manifest {
        key: &definition.key,
        name: &definition.name,
        version: &definition.version,
        description: &definition.description,
        category: &definition.category,
        icon: &definition.icon,
        allowed_outbound_hosts: crate::egress::DEFAULT_HOST_PATTERNS,
        connections: definition
            .connections
            .iter()
            .map(|c| Entry {
                key: &c.key,
                label: &c.label,
                description: &c.description,
                kind: Some(connection_kind_name(c.kind).to_string()),
                group: None,
                inputs: inputs(&c.inputs),
            })
            .collect(),
        actions: definition
            .actions
            .iter()
            .map(|a| Entry {
                key: &a.key,
                label: &a.label,
                description: &a.description,
                kind: None,
                group: a.group.as_deref(),
                inputs: inputs(&a.inputs),
            })
            .collect(),
        triggers: definition
            .triggers
            .iter()
            .map(|t| Entry {
                key: &t.key,
                label: &t.label,
                description: &t.description,
                kind: Some(trigger_kind_name(t.kind).to_string()),
                group: None,
                inputs: inputs(&t.inputs),
            })
            .collect(),
        data_sources: definition
            .data_sources
            .iter()
            .map(|d| Entry {
                key: &d.key,
                label: &d.label,
                description: &d.description,
                kind: None,
                group: None,
                inputs: inputs(&d.inputs),
            })
            .collect(),
    };
    let yaml = yaml_serde::to_string(&manifest)?;
    Ok(format!(
        "# Generated by `dynamics manifest` from the component's exported definitions and the host's egress policy. Do not edit.\n{yaml}"
    ))
}

fn connection_kind_name(kind: ConnectionKind) -> &'static str {
    match kind {
        ConnectionKind::Oauth2AuthorizationCode => "oauth2-authorization-code",
        ConnectionKind::Oauth2ClientCredentials => "oauth2-client-credentials",
        ConnectionKind::Oauth2Password => "oauth2-password",
    }
}

fn trigger_kind_name(kind: TriggerKind) -> &'static str {
    match kind {
        TriggerKind::Webhook => "webhook",
        TriggerKind::Polling => "polling",
    }
}
