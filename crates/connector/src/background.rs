//! What Get Background Operation and Cancel Background Operation share: the operation's ID
//! input and the row of the `backgroundoperations` table.
//!
//! Source: <https://learn.microsoft.com/power-apps/developer/data-platform/background-operations#background-operations-table>
//! — `backgroundoperationstatecode` 0 Ready, 2 Locked, 3 Completed; `backgroundoperationstatuscode`
//! 0 Waiting For Resources, 20 In Progress, 22 Canceling, 30 Succeeded, 31 Failed, 32 Canceled;
//! `outputparameters` a JSON array of `Key`/`Value`; `errorcode`, `errormessage` on failure.

use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::client::Request;
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::records::impersonate;

/// The operation, by the ID or the status monitor URL Perform an Unbound Action answered.
pub const BACKGROUND_OPERATION_ID: InputDef =
    InputDef::new("backgroundOperationId", "Background Operation ID", Kind::Text)
        .required()
        .comments("The backgroundOperationId Perform an Unbound Action answered when run in the background, or its location URL")
        .example("00000000-0000-0000-0000-000000000002");

/// The columns the doc says to read when polling.
pub const COLUMNS: &str = "name,backgroundoperationstatecode,backgroundoperationstatuscode,outputparameters,errorcode,errormessage";

/// Status reason of an operation being canceled, and of one canceled.
pub const CANCELING: i64 = 22;
pub const CANCELED: i64 = 32;

/// The operation's GUID from the input: a GUID, or the status monitor URL
/// (`[Organization URI]/api/backgroundoperation/<id>`) ending in one.
pub fn operation_id(input: &Input) -> Result<String> {
    let given = input
        .text(BACKGROUND_OPERATION_ID.key)
        .unwrap_or_default()
        .trim();
    let last = given
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(given);
    let candidate = if given.contains("/backgroundoperation/") {
        last
    } else {
        given
    };
    dataverse::guid::parse(candidate).ok_or_else(|| {
        invalid_input(
            &BACKGROUND_OPERATION_ID,
            format!("{given:?} is neither a GUID nor a background operation location URL"),
        )
    })
}

/// The operation's row, read from the table with formatted values.
pub fn read(context: &Context, input: &Input, id: &str) -> Result<Value> {
    let request = Request::new(
        "GET",
        context
            .client
            .api_url(&format!("backgroundoperations({id})?$select={COLUMNS}")),
    )
    .header(
        "Prefer",
        "odata.include-annotations=\"OData.Community.Display.V1.FormattedValue\"",
    );
    let request = impersonate(request, input)?;
    context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()?
        .json()
}

/// A row as the actions answer it: state and status with their labels, whether it is done,
/// the output parameters as an object, and the error when it failed.
pub fn summary(id: &str, row: &Value) -> Result<Value> {
    let number = |name: &str| row.get(name).and_then(Value::as_i64);
    let state = number("backgroundoperationstatecode")
        .ok_or_else(|| malformed("the background operation has no backgroundoperationstatecode"))?;
    let status = number("backgroundoperationstatuscode");
    let label = |name: &str, fallback: Option<&'static str>| {
        row.get(format!("{name}@OData.Community.Display.V1.FormattedValue"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(fallback.map(str::to_string))
    };
    let output = match row.get("outputparameters") {
        Some(Value::String(text)) if !text.trim().is_empty() => output_parameters(text)?,
        _ => Value::Null,
    };
    let error = match (
        number("errorcode"),
        row.get("errormessage").and_then(Value::as_str),
    ) {
        (None, None) => Value::Null,
        (code, message) => json!({ "code": code, "message": message }),
    };
    Ok(json!({
        "backgroundOperationId": id,
        "name": row.get("name").cloned().unwrap_or(Value::Null),
        "state": state,
        "stateLabel": label("backgroundoperationstatecode", state_label(state)),
        "status": status,
        "statusLabel": label("backgroundoperationstatuscode", status.and_then(status_label)),
        "done": state == 3,
        "succeeded": status == Some(30),
        "output": output,
        "error": error,
    }))
}

fn state_label(state: i64) -> Option<&'static str> {
    match state {
        0 => Some("Ready"),
        2 => Some("Locked"),
        3 => Some("Completed"),
        _ => None,
    }
}

fn status_label(status: i64) -> Option<&'static str> {
    match status {
        0 => Some("Waiting For Resources"),
        20 => Some("In Progress"),
        CANCELING => Some("Canceling"),
        30 => Some("Succeeded"),
        31 => Some("Failed"),
        CANCELED => Some("Canceled"),
        _ => None,
    }
}

/// `[{"Key":"AnnotationId","Value":"…"}]` as `{"AnnotationId":"…"}`.
fn output_parameters(text: &str) -> Result<Value> {
    let pairs: Vec<Value> = serde_json::from_str(text).map_err(|problem| {
        malformed(format!(
            "the background operation's outputparameters are not a JSON list: {problem}"
        ))
    })?;
    let mut output = Map::new();
    for pair in pairs {
        if let Some(key) = pair.get("Key").and_then(Value::as_str) {
            output.insert(
                key.to_string(),
                pair.get("Value").cloned().unwrap_or(Value::Null),
            );
        }
    }
    Ok(Value::Object(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_comes_as_a_guid_or_in_the_location_url() {
        let id = "00000000-0000-0000-0000-0000000000b0";
        for given in [
            id.to_string(),
            format!("https://contoso.crm.dynamics.com/api/backgroundoperation/{id}"),
        ] {
            let input = Input::parse(
                &[BACKGROUND_OPERATION_ID],
                &json!({ "backgroundOperationId": given }).to_string(),
            )
            .unwrap();
            assert_eq!(operation_id(&input).unwrap(), id);
        }
        let input = Input::parse(
            &[BACKGROUND_OPERATION_ID],
            r#"{"backgroundOperationId": "accounts(1)"}"#,
        )
        .unwrap();
        let refused = operation_id(&input).unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("backgroundOperationId"));
    }

    #[test]
    fn a_completed_row_gives_its_output_and_a_failed_one_its_error() {
        let done = json!({
            "name": "sample_Export",
            "backgroundoperationstatecode": 3,
            "backgroundoperationstatuscode": 30,
            "outputparameters": "[{\"Key\":\"AnnotationId\",\"Value\":\"bb26025c-cbe6-ed11-a7c6-000d3a9933c9\"}]",
            "errorcode": null,
            "errormessage": null
        });
        let summary = summary("x", &done).unwrap();
        assert_eq!(summary["done"], true);
        assert_eq!(summary["succeeded"], true);
        assert_eq!(summary["statusLabel"], "Succeeded");
        assert_eq!(
            summary["output"],
            json!({"AnnotationId": "bb26025c-cbe6-ed11-a7c6-000d3a9933c9"})
        );
        assert_eq!(summary["error"], Value::Null);

        let failed = json!({
            "backgroundoperationstatecode": 3,
            "backgroundoperationstatuscode": 31,
            "errorcode": -2147187707i64,
            "errormessage": "Access is denied."
        });
        let summary = self::summary("x", &failed).unwrap();
        assert_eq!(summary["succeeded"], false);
        assert_eq!(
            summary["error"],
            json!({"code": -2147187707i64, "message": "Access is denied."})
        );
    }
}
