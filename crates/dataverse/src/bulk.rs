//! The bulk operation messages `CreateMultiple`, `UpdateMultiple` and `UpsertMultiple`: where
//! they are sent, how to ask whether a table has them, how their bodies are written and how
//! their answers and per-record errors are read. No I/O.
//!
//! Facts from "Use bulk operation messages"
//! (learn.microsoft.com/power-apps/developer/data-platform/bulk-operations) and the action
//! references (.../webapi/reference/createmultiple, updatemultiple, upsertmultiple):
//!
//! - `POST [api]/<entity set>/Microsoft.Dynamics.CRM.CreateMultiple` with `{"Targets": [...]}`;
//!   "You must set the `@odata.type` property for each item in the `Targets` parameter".
//! - `CreateMultiple` answers 200 with `{"Ids": [...]}`; `UpdateMultiple` and `UpsertMultiple`
//!   answer 204 No Content.
//! - An `UpsertMultiple` target names its record by alternate key with `@odata.id`, a relative
//!   URL such as `sample_examples(sample_keyattribute='0000001')`.
//! - Availability: "Not all standard tables support these messages"; the documented question is
//!   `GET sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq @message and
//!   primaryobjecttypecode eq @table`, which answers a row when the table has the message.
//! - On error, elastic tables may succeed partially; with `Prefer:
//!   odata.include-annotations=Microsoft.PowerApps.CDS.ErrorDetails.*` the error carries the
//!   SDK's `Plugin.BulkApiErrorDetails` (a JSON list of `RequestIndex`, `Id`, `StatusCode`) as
//!   the annotation `@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails`.

use serde_json::{Map, Value};

use crate::encoding::percent_encode_query_value;
use crate::odata::string_literal;

/// The bulk message that creates records.
pub const CREATE_MULTIPLE: &str = "CreateMultiple";
/// The bulk message that updates existing records.
pub const UPDATE_MULTIPLE: &str = "UpdateMultiple";
/// The bulk message that creates or updates records.
pub const UPSERT_MULTIPLE: &str = "UpsertMultiple";

/// The `Prefer` value that asks for each failed record's status in a bulk error.
pub const PREFER_ERROR_DETAILS: &str =
    "odata.include-annotations=Microsoft.PowerApps.CDS.ErrorDetails.*";

/// The annotation of an error that lists the failed records of a bulk message.
const ERROR_DETAILS: &str = "@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails";

/// The path, relative to the Web API root, of `message` bound to `entity_set`.
pub fn message_path(entity_set: &str, message: &str) -> String {
    format!("{entity_set}/Microsoft.Dynamics.CRM.{message}")
}

/// The `@odata.type` every target of a message bound to the table `logical_name` carries.
pub fn target_type(logical_name: &str) -> String {
    format!("Microsoft.Dynamics.CRM.{logical_name}")
}

/// The query, relative to the Web API root, that asks which of `messages` the table
/// `logical_name` has: the documented `sdkmessagefilters` question, asked for several messages
/// at once (one request per table), with the message's name expanded so the answer says which.
pub fn availability_query(logical_name: &str, messages: &[&str]) -> String {
    let names: Vec<String> = messages
        .iter()
        .map(|message| format!("sdkmessageid/name eq {}", string_literal(message)))
        .collect();
    let filter = format!(
        "primaryobjecttypecode eq {} and ({})",
        string_literal(logical_name),
        names.join(" or ")
    );
    format!(
        "sdkmessagefilters?$select=sdkmessagefilterid&$expand=sdkmessageid($select=name)&$filter={}",
        percent_encode_query_value(&filter)
    )
}

/// The message names an answer to [`availability_query`] holds, among `asked` (so that an
/// answer naming something else is not taken for a yes).
pub fn available_messages<'m>(answer: &Value, asked: &[&'m str]) -> Vec<&'m str> {
    let rows = answer
        .get("value")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    asked
        .iter()
        .copied()
        .filter(|message| {
            rows.iter().any(|row| {
                row.get("sdkmessageid")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.eq_ignore_ascii_case(message))
            })
        })
        .collect()
}

/// A bulk request body, `{"Targets": [...]}`, from targets that already carry their
/// `@odata.type`.
pub fn body(targets: &[Map<String, Value>]) -> String {
    let mut text = String::with_capacity(targets.len() * 128 + 16);
    text.push_str("{\"Targets\":[");
    for (index, target) in targets.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        // A map of JSON values always serializes.
        text.push_str(&serde_json::to_string(target).unwrap_or_default());
    }
    text.push_str("]}");
    text
}

/// A bulk request body, `{"Targets": [...]}`, from targets already written as JSON objects
/// (each carrying its `@odata.type`).
pub fn body_of<'t>(targets: impl Iterator<Item = &'t str>) -> String {
    let mut text = String::from("{\"Targets\":[");
    for (index, target) in targets.enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(target);
    }
    text.push_str("]}");
    text
}

/// Reads the `Ids` of a `CreateMultiple` answer, in the order of the targets.
pub fn created_ids(answer: &Value) -> Result<Vec<String>, String> {
    let Some(Value::Array(ids)) = answer.get("Ids") else {
        return Err("the CreateMultiple answer has no Ids list".to_string());
    };
    ids.iter()
        .map(|id| {
            id.as_str().and_then(crate::guid::parse).ok_or_else(|| {
                format!("the CreateMultiple answer holds an ID that is not a GUID: {id}")
            })
        })
        .collect()
}

/// One failed record of a bulk message, from its error details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    /// The record's position among the request's targets.
    pub request_index: usize,
    /// The record's ID, when the service names it.
    pub id: Option<String>,
    /// The status the record's own write ended with.
    pub status_code: u16,
}

/// The failed records a bulk error lists (`None` when it lists none: the details were not
/// asked for, or the service gave none). The annotation may sit in the `error` object or at
/// the top, and hold the list itself or the list as JSON text, as the SDK's detail does.
pub fn failed_records(error_body: &[u8]) -> Option<Vec<FailedRecord>> {
    let body: Value = serde_json::from_slice(error_body).ok()?;
    let details = body
        .get("error")
        .and_then(|error| error.get(ERROR_DETAILS))
        .or_else(|| body.get(ERROR_DETAILS))?;
    let list: Value = match details {
        Value::String(text) => serde_json::from_str(text).ok()?,
        other => other.clone(),
    };
    let Value::Array(entries) = list else {
        return None;
    };
    let field = |entry: &Value, name: &str| -> Option<Value> {
        let object = entry.as_object()?;
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    entries
        .iter()
        .map(|entry| {
            let request_index = usize::try_from(field(entry, "RequestIndex")?.as_u64()?).ok()?;
            let status_code = u16::try_from(field(entry, "StatusCode")?.as_u64()?).ok()?;
            let id = field(entry, "Id").and_then(|id| id.as_str().and_then(crate::guid::parse));
            Some(FailedRecord {
                request_index,
                id,
                status_code,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_is_bound_to_the_entity_set_and_its_targets_name_the_table() {
        assert_eq!(
            message_path("accounts", CREATE_MULTIPLE),
            "accounts/Microsoft.Dynamics.CRM.CreateMultiple"
        );
        assert_eq!(target_type("account"), "Microsoft.Dynamics.CRM.account");
        let mut target = Map::new();
        target.insert("@odata.type".into(), json!(target_type("account")));
        target.insert("name".into(), json!("A \"quoted\" name"));
        let written: Value = serde_json::from_str(&body(&[target.clone(), target])).unwrap();
        assert_eq!(written["Targets"].as_array().unwrap().len(), 2);
        let text = serde_json::to_string(&written["Targets"][0]).unwrap();
        assert_eq!(
            body_of([text.as_str(), text.as_str()].into_iter()),
            body(&[
                written["Targets"][0].as_object().unwrap().clone(),
                written["Targets"][1].as_object().unwrap().clone()
            ])
        );
        assert_eq!(written["Targets"][1]["name"], "A \"quoted\" name");
    }

    #[test]
    fn the_availability_question_is_one_query_per_table_and_its_answer_names_the_messages() {
        let query = availability_query("account", &[CREATE_MULTIPLE, UPDATE_MULTIPLE]);
        assert!(query.starts_with(
            "sdkmessagefilters?$select=sdkmessagefilterid&$expand=sdkmessageid($select=name)&$filter="
        ));
        let filter = query.split("$filter=").nth(1).unwrap();
        let decoded = filter.replace("%20", " ").replace("%27", "'");
        assert!(
            decoded.contains("primaryobjecttypecode eq 'account'"),
            "{decoded}"
        );
        assert!(
            decoded.contains("sdkmessageid/name eq 'UpdateMultiple'"),
            "{decoded}"
        );
        // A quote in a name is doubled, not a way out of the literal.
        assert!(availability_query("a'b", &[CREATE_MULTIPLE]).contains("a''b"));

        let answer = json!({"value": [
            {"sdkmessagefilterid": "00000000-0000-0000-0000-000000000001", "sdkmessageid": {"name": "CreateMultiple"}},
            {"sdkmessagefilterid": "00000000-0000-0000-0000-000000000002", "sdkmessageid": {"name": "Retrieve"}},
        ]});
        assert_eq!(
            available_messages(&answer, &[CREATE_MULTIPLE, UPDATE_MULTIPLE]),
            [CREATE_MULTIPLE]
        );
        assert!(available_messages(&json!({"value": []}), &[CREATE_MULTIPLE]).is_empty());
    }

    #[test]
    fn created_ids_are_read_in_order_and_a_bad_answer_is_named() {
        let ids = created_ids(&json!({"Ids": [
            "8F4C3F92-312B-EE11-BDF4-000D3A993550", "904c3f92-312b-ee11-bdf4-000d3a993550"
        ]}))
        .unwrap();
        assert_eq!(
            ids,
            [
                "8f4c3f92-312b-ee11-bdf4-000d3a993550",
                "904c3f92-312b-ee11-bdf4-000d3a993550"
            ]
        );
        assert!(created_ids(&json!({})).unwrap_err().contains("no Ids"));
        assert!(
            created_ids(&json!({"Ids": [1]}))
                .unwrap_err()
                .contains("not a GUID")
        );
    }

    #[test]
    fn failed_records_are_read_from_the_error_details_as_text_or_list() {
        let as_text = json!({"error": {"code": "0x80040237", "message": "dup",
            "@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails":
                "[{\"RequestIndex\":1,\"Id\":\"904c3f92-312b-ee11-bdf4-000d3a993550\",\"StatusCode\":412}]"}});
        assert_eq!(
            failed_records(as_text.to_string().as_bytes()),
            Some(vec![FailedRecord {
                request_index: 1,
                id: Some("904c3f92-312b-ee11-bdf4-000d3a993550".to_string()),
                status_code: 412
            }])
        );
        let as_list = json!({"error": {"code": "x", "message": "m",
            "@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails":
                [{"requestIndex": 0, "id": "", "statusCode": 400}]}});
        assert_eq!(
            failed_records(as_list.to_string().as_bytes()),
            Some(vec![FailedRecord {
                request_index: 0,
                id: None,
                status_code: 400
            }])
        );
        assert_eq!(
            failed_records(br#"{"error":{"code":"x","message":"m"}}"#),
            None
        );
        assert_eq!(failed_records(b"not json"), None);
    }
}
