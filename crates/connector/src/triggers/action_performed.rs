//! When an action is performed: Power Automate's Dataverse trigger on a custom API or business
//! event (learn.microsoft.com/power-automate/dataverse/action-performed-trigger), here as a
//! webhook step on the custom API's `sdkmessage`.
//!
//! Dataverse lets other code react to a custom API only as its AllowedCustomProcessingStepType
//! allows (learn.microsoft.com/power-apps/developer/data-platform/custom-api-tables: 0 None,
//! 1 Async Only, 2 Sync and Async); the trigger registers an asynchronous post-operation step,
//! which both allow, and refuses an API that allows none before registering anything. A bound
//! custom API's step names the bound table's `sdkmessagefilter`.
//!
//! The registration is named like the row-changed trigger's (a hash of the flow ID and the
//! settings), so enabling again finds and repairs it instead of adding a second.

use serde_json::{Map, Value, json};

use super::row_changed::{FLOW_ID, endpoint_auth, ensure_endpoint, fnv64, rows};
use super::webhook::{
    AUTH_TYPE, AUTH_VALUES, TABLE, WEBHOOK_KEY, async_step, callback_url, create, delete,
    encoded_literal, message_filter, message_id, service_id,
};
use super::{Handlers, TriggerDef};
use crate::bindings::dynamics::connector::types::Choice;
use crate::bindings::exports::dynamics::connector::triggers::{IncomingRequest, WebhookOutcome};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::CONNECTION;

const ACTION: InputDef = InputDef::new("actionName", "Action Name", Kind::Text)
    .required()
    .comments("The custom API (its unique name) whose successful runs start the flow; only custom APIs that allow processing steps can")
    .example("new_CalculateDiscount")
    .data_source(DATA_SOURCE);

/// The data source listing the custom APIs this trigger can register on.
pub const DATA_SOURCE: &str = "actions-with-steps";

const INPUTS: &[InputDef] = &[
    CONNECTION,
    AUTH_TYPE,
    WEBHOOK_KEY,
    AUTH_VALUES,
    ACTION,
    TABLE,
    FLOW_ID,
];

pub const TRIGGER: TriggerDef = TriggerDef {
    key: "action-performed",
    label: "When an Action Is Performed",
    description: "Start a flow when a custom API runs successfully, with its input parameters, its response properties and, for a bound one, its row. Entity Type optionally names the table of a bound custom API.",
    inputs: INPUTS,
    handlers: Handlers::Webhook {
        receive,
        enable,
        disable,
    },
};

/// The action name, checked without asking the environment: a custom API's unique name is a
/// publisher prefix and letters, digits or underscores.
fn action_name(config: &Input) -> Result<&str> {
    let name = config
        .text(ACTION.key)
        .ok_or_else(|| invalid_input(&ACTION, "is required"))?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(invalid_input(
            &ACTION,
            format!("{name:?} is not a message name: use letters, digits and underscores"),
        ));
    }
    Ok(name)
}

/// The registration's name: the flow, the action and the table, hashed.
fn registration_name(config: &Input, action: &str, table: &str) -> String {
    let canonical = [config.text(FLOW_ID.key).unwrap_or_default(), action, table].join("\u{1f}");
    format!(
        "dynamics-connector action-performed {action} {}",
        fnv64(&canonical)
    )
}

/// The custom APIs that allow steps, for the designer's picklist; bound ones are labelled with
/// their table.
pub fn source(context: &Context) -> Result<Vec<Choice>> {
    let apis = rows(
        context,
        "customapis?$select=uniquename,displayname,boundentitylogicalname&$filter=statecode%20eq%200%20and%20allowedcustomprocessingsteptype%20ne%200&$orderby=uniquename",
    )?;
    Ok(apis
        .iter()
        .filter_map(|api| {
            let value = api["uniquename"].as_str()?.to_string();
            let display = api["displayname"].as_str().unwrap_or(&value);
            let label = match api["boundentitylogicalname"].as_str() {
                Some(table) if !table.is_empty() => format!("{display} ({value}, on {table})"),
                _ => format!("{display} ({value})"),
            };
            Some(Choice { label, value })
        })
        .collect())
}

/// Registers (or finds and repairs) the endpoint and its one step.
fn enable(context: &Context, config: &Input, webhook_url: Option<&str>) -> Result<String> {
    let action = action_name(config)?;
    let url = callback_url(webhook_url)?;
    let found = rows(
        context,
        &format!(
            "customapis?$select=customapiid,uniquename,bindingtype,boundentitylogicalname,allowedcustomprocessingsteptype,_sdkmessageid_value&$filter=uniquename%20eq%20{}",
            encoded_literal(action)
        ),
    )?;
    let api = found.first().ok_or_else(|| {
        invalid_input(
            &ACTION,
            format!("{action:?} is not a custom API of this environment"),
        )
    })?;
    if api["allowedcustomprocessingsteptype"].as_i64().unwrap_or(0) == 0 {
        return Err(invalid_input(
            &ACTION,
            format!(
                "{action:?} allows no processing steps (its AllowedCustomProcessingStepType is None), so Dataverse cannot report its runs"
            ),
        ));
    }
    let bound = api["boundentitylogicalname"]
        .as_str()
        .filter(|table| !table.is_empty() && api["bindingtype"].as_i64().unwrap_or(0) != 0);
    let table = match (bound, config.text(TABLE.key)) {
        (None, Some(given)) => {
            return Err(invalid_input(
                &TABLE,
                format!(
                    "{action:?} is not bound to a table; leave Entity Type empty, not {given:?}"
                ),
            ));
        }
        (None, None) => None,
        (Some(bound), None) => Some(bound.to_string()),
        (Some(bound), Some(given)) => {
            let logical = context
                .metadata
                .table(&context.client, given)?
                .map(|table| table.logical_name.clone())
                .unwrap_or_else(|| given.to_string());
            if !logical.eq_ignore_ascii_case(bound) {
                return Err(invalid_input(
                    &TABLE,
                    format!("{action:?} is bound to {bound}, not {given:?}"),
                ));
            }
            Some(bound.to_string())
        }
    };
    let message_id = match api["_sdkmessageid_value"].as_str() {
        Some(id) => service_id(id, "_sdkmessageid_value")?,
        None => message_id(context, action)?,
    };
    let (auth_code, auth_value, generated_key) = endpoint_auth(config)?;
    let name = registration_name(config, action, table.as_deref().unwrap_or_default());
    let endpoint_id = ensure_endpoint(
        context,
        &name,
        &json!({
            "name": name,
            "contract": 8,
            "url": url,
            "authtype": auth_code,
            "authvalue": auth_value,
            "messageformat": 2,
        }),
    )?;
    let existing = rows(
        context,
        &format!(
            "sdkmessageprocessingsteps?$select=sdkmessageprocessingstepid,name&$filter=_eventhandler_value%20eq%20{endpoint_id}"
        ),
    )?;
    let step_name = format!("{name} {action}");
    let reused = existing
        .iter()
        .find(|row| row["name"] == step_name.as_str())
        .and_then(|row| row["sdkmessageprocessingstepid"].as_str())
        .map(str::to_string);
    let step_id = match reused {
        Some(id) => id,
        None => {
            let filter = table
                .as_deref()
                .map(|table| message_filter(context, &message_id, table))
                .transpose()?;
            let step = async_step(&step_name, &message_id, filter.as_deref(), &endpoint_id);
            create(context, "sdkmessageprocessingsteps", &step)?
        }
    };
    // Steps of this endpoint the settings no longer ask for.
    for row in &existing {
        if let Some(id) = row["sdkmessageprocessingstepid"].as_str()
            && id != step_id
        {
            delete(context, &format!("sdkmessageprocessingsteps({id})"))?;
        }
    }
    Ok(json!({
        "serviceEndpointId": endpoint_id,
        "stepIds": [step_id],
        "webhookKey": generated_key,
        "url": url,
        "name": name,
    })
    .to_string())
}

fn disable(context: &Context, state: &str) -> Result<()> {
    super::webhook::disable(context, state)
}

/// Checks the request as the webhook trigger does, then gives each event of this action its
/// parameters, response properties and bound row as plain JSON.
fn receive(config: &Input, request: &IncomingRequest) -> Result<WebhookOutcome> {
    let action = action_name(config)?;
    let mut outcome = super::webhook::receive(config, request)?;
    if outcome.status != 200 {
        return Ok(outcome);
    }
    let mut kept = Vec::new();
    for text in &outcome.events {
        let event: Value = serde_json::from_str(text)
            .map_err(|problem| malformed(format!("the webhook event is not JSON: {problem}")))?;
        if event["message"] != action {
            continue;
        }
        kept.push(action_event(&event).to_string());
    }
    if kept.is_empty() {
        outcome.body =
            json!({"accepted": true, "events": 0, "skipped": "not this trigger's action"})
                .to_string()
                .into_bytes();
    }
    outcome.events = kept;
    Ok(outcome)
}

/// The event a flow reads: the message, its inputs (without the bound row's `Target`), its
/// outputs, the bound row, and who ran it.
fn action_event(event: &Value) -> Value {
    let context = &event["context"];
    let mut inputs = parameters(&context["InputParameters"]);
    let target = inputs.remove("Target");
    let bound = match event["table"].as_str() {
        Some(table) if table != "none" => json!({
            "table": table,
            "id": event["recordId"],
        }),
        _ => target.unwrap_or(Value::Null),
    };
    json!({
        "id": event["id"],
        "message": event["message"],
        "inputParameters": inputs,
        "outputParameters": parameters(&context["OutputParameters"]),
        "boundRow": bound,
        "userId": event["userId"],
        "initiatingUserId": event["initiatingUserId"],
        "businessUnitId": event["businessUnitId"],
        "organizationId": event["organizationId"],
        "correlationId": event["correlationId"],
        "operationId": event["operationId"],
        "operationCreatedOn": event["operationCreatedOn"],
    })
}

/// A `key`/`value` list as an object; an entity reference becomes `{id, logicalName, name}`.
fn parameters(list: &Value) -> Map<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let value = &entry["value"];
            let is_reference = value["__type"]
                .as_str()
                .is_some_and(|kind| kind.starts_with("EntityReference"));
            let plain = if is_reference {
                json!({"id": value["Id"], "logicalName": value["LogicalName"], "name": value["Name"]})
            } else {
                value.clone()
            };
            Some((entry["key"].as_str()?.to_string(), plain))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Input {
        Input::parse(INPUTS, json).unwrap()
    }

    #[test]
    fn the_action_name_is_required_and_must_be_a_message_name() {
        let missing = Input::parse(INPUTS, "{}").err().unwrap();
        assert_eq!(missing.field.as_deref(), Some("actionName"));
        let odd = action_name(&config(r#"{"actionName": "new_X?$top=1"}"#)).unwrap_err();
        assert_eq!(odd.field.as_deref(), Some("actionName"));
        assert!(
            odd.message.contains("not a message name"),
            "{}",
            odd.message
        );
    }

    #[test]
    fn the_registration_name_depends_on_the_flow_action_and_table_only() {
        let a = config(r#"{"actionName": "new_A", "flowId": "f1", "webhookKey": "k1"}"#);
        let b = config(r#"{"actionName": "new_A", "flowId": "f1", "webhookKey": "k2"}"#);
        let c = config(r#"{"actionName": "new_A", "flowId": "f2"}"#);
        assert_eq!(
            registration_name(&a, "new_A", ""),
            registration_name(&b, "new_A", "")
        );
        assert_ne!(
            registration_name(&a, "new_A", ""),
            registration_name(&c, "new_A", "")
        );
        assert_ne!(
            registration_name(&a, "new_A", ""),
            registration_name(&a, "new_A", "account")
        );
    }

    #[test]
    fn an_event_carries_plain_parameters_and_the_bound_row() {
        let event = json!({
            "id": "op:new_S:a1:1", "message": "new_S", "table": "account", "recordId": "a1",
            "userId": "u", "initiatingUserId": "u",
            "context": {
                "InputParameters": [
                    {"key": "Target", "value": {"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": "a1", "LogicalName": "account", "Name": null}},
                    {"key": "Weight", "value": 2}
                ],
                "OutputParameters": [{"key": "Score", "value": 16}]
            }
        });
        let out = action_event(&event);
        assert_eq!(out["inputParameters"], json!({"Weight": 2}));
        assert_eq!(out["outputParameters"], json!({"Score": 16}));
        assert_eq!(out["boundRow"], json!({"table": "account", "id": "a1"}));
    }
}
