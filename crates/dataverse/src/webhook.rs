//! Dataverse webhooks: checking an incoming request's secret, and reading the
//! RemoteExecutionContext body into an event a flow can use.
//!
//! The body is a DataContract JSON serialization: attributes as `key`/`value` lists, typed
//! values tagged with `__type`, dates as `/Date(ms)/`. The event turns those into plain JSON.

use serde_json::{Map, Value, json};

use crate::encoding::iso_datetime;

/// Largest body Dataverse sends whole; bigger contexts arrive trimmed.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Compares two secrets in time that depends only on their lengths.
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut difference = a.len() ^ b.len();
    for index in 0..a.len().max(b.len()) {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

/// Why a body is not a RemoteExecutionContext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    Json(String),
    /// JSON without the fields every context has.
    #[error("the body is not a Dataverse RemoteExecutionContext: {0} is missing")]
    Missing(&'static str),
}

/// Reads a RemoteExecutionContext into an event: message, table, record, changed attributes as
/// plain values, images, user, organization, correlation, depth, stage, and the raw context.
pub fn read_context(body: &[u8]) -> Result<Value, ContextError> {
    let context: Value =
        serde_json::from_slice(body).map_err(|problem| ContextError::Json(problem.to_string()))?;
    let text = |name: &'static str| -> Result<&str, ContextError> {
        context
            .get(name)
            .and_then(Value::as_str)
            .ok_or(ContextError::Missing(name))
    };
    let message = text("MessageName")?;
    let table = text("PrimaryEntityName")?;
    let record_id = text("PrimaryEntityId")?;
    let target = parameter(&context["InputParameters"], "Target");
    let attributes = match target {
        Some(entity) if entity.get("Attributes").is_some() => {
            plain_attributes(&entity["Attributes"])
        }
        _ => Map::new(),
    };
    let id = format!(
        "{}:{}:{}:{}",
        context
            .get("OperationId")
            .and_then(Value::as_str)
            .unwrap_or_else(|| context
                .get("CorrelationId")
                .and_then(Value::as_str)
                .unwrap_or("")),
        message,
        record_id,
        context.get("Depth").and_then(Value::as_i64).unwrap_or(0)
    );
    Ok(json!({
        "id": id,
        "message": message,
        "table": table,
        "recordId": record_id,
        "attributes": attributes,
        "preImages": images(&context["PreEntityImages"]),
        "postImages": images(&context["PostEntityImages"]),
        "userId": context.get("UserId"),
        "initiatingUserId": context.get("InitiatingUserId"),
        "businessUnitId": context.get("BusinessUnitId"),
        "organizationId": context.get("OrganizationId"),
        "organizationName": context.get("OrganizationName"),
        "correlationId": context.get("CorrelationId"),
        "operationId": context.get("OperationId"),
        "depth": context.get("Depth"),
        "stage": context.get("Stage"),
        "mode": match context.get("Mode").and_then(Value::as_i64) { Some(0) => "synchronous", Some(1) => "asynchronous", _ => "unknown" },
        "operationCreatedOn": context.get("OperationCreatedOn").and_then(Value::as_str).and_then(date),
        "context": context,
    }))
}

/// The value of a `key`/`value` list entry.
fn parameter<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|entry| entry["key"] == key)
        .map(|entry| &entry["value"])
}

fn plain_attributes(list: &Value) -> Map<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry.get("key")?.as_str()?.to_string(),
                plain(entry.get("value").unwrap_or(&Value::Null)),
            ))
        })
        .collect()
}

fn images(list: &Value) -> Map<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry.get("key")?.as_str()?.to_string(),
                plain_attributes(&entry.get("value")?["Attributes"]).into(),
            ))
        })
        .collect()
}

/// One DataContract value as plain JSON: references become `{id, logicalName, name}`, option
/// sets and money their number, dates ISO 8601; everything else stays as it is.
fn plain(value: &Value) -> Value {
    match value {
        Value::String(text) => date(text)
            .map(Value::String)
            .unwrap_or_else(|| value.clone()),
        Value::Object(object) => {
            let kind = object
                .get("__type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if kind.starts_with("EntityReference")
                || (object.contains_key("LogicalName")
                    && object.contains_key("Id")
                    && !object.contains_key("Attributes"))
            {
                json!({"id": object.get("Id"), "logicalName": object.get("LogicalName"), "name": object.get("Name")})
            } else if kind.starts_with("OptionSetValue") || kind.starts_with("Money") {
                object.get("Value").cloned().unwrap_or(Value::Null)
            } else if let Some(inner) = object.get("Value").filter(|_| object.len() <= 2) {
                plain(inner)
            } else if object.contains_key("Attributes") {
                plain_attributes(&object["Attributes"]).into()
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        other => other.clone(),
    }
}

/// `/Date(1506384247000)/` or `/Date(1506409448000-0700)/` as ISO 8601 UTC.
fn date(text: &str) -> Option<String> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let digits_end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(i, _)| i)
        .unwrap_or(inner.len());
    let millis: i64 = inner[..digits_end].parse().ok()?;
    Some(iso_datetime(millis.div_euclid(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("remote_execution_context.example.json");

    #[test]
    fn the_reference_update_context_becomes_a_plain_event() {
        let event = read_context(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(event["message"], "Update");
        assert_eq!(event["table"], "contact");
        assert_eq!(event["recordId"], "6d81597f-0f9f-e711-8122-000d3aa2331c");
        assert_eq!(event["attributes"]["firstname"], "James");
        assert_eq!(event["attributes"]["modifiedon"], "2017-09-26T00:04:07Z");
        assert_eq!(
            event["attributes"]["modifiedby"],
            json!({"id": "75c2dd85-e89e-e711-8122-000d3aa2331c", "logicalName": "systemuser", "name": null})
        );
        assert_eq!(event["attributes"]["modifiedonbehalfby"], Value::Null);
        assert_eq!(
            event["postImages"]["AsynchronousStepPrimaryName"]["fullname"],
            "James Glynn (sample)"
        );
        assert_eq!(event["preImages"], json!({}));
        assert_eq!(event["stage"], 40);
        assert_eq!(event["depth"], 1);
        assert_eq!(event["mode"], "asynchronous");
        assert_eq!(
            event["correlationId"],
            "b374239d-4233-41a9-8b17-a86cb4f737b5"
        );
        assert_eq!(event["organizationName"], "OrgName");
        assert_eq!(
            event["id"],
            "4af10637-4ea2-e711-8122-000d3aa2331c:Update:6d81597f-0f9f-e711-8122-000d3aa2331c:1"
        );
        assert_eq!(event["context"]["MessageName"], "Update");
    }

    #[test]
    fn option_sets_and_money_become_numbers() {
        assert_eq!(
            plain(
                &json!({"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 3})
            ),
            json!(3)
        );
        assert_eq!(
            plain(
                &json!({"__type": "Money:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 12.5})
            ),
            json!(12.5)
        );
        assert_eq!(date("/Date(0)/").as_deref(), Some("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn bodies_that_are_not_contexts_are_refused() {
        assert!(matches!(read_context(b"{nope"), Err(ContextError::Json(_))));
        assert_eq!(
            read_context(b"{}"),
            Err(ContextError::Missing("MessageName"))
        );
    }

    #[test]
    fn secrets_compare_whole_values() {
        assert!(secrets_match("s3cret", "s3cret"));
        assert!(!secrets_match("s3cre", "s3cret"));
        assert!(!secrets_match("s3cret!", "s3cret"));
        assert!(!secrets_match("", "x"));
    }
}
