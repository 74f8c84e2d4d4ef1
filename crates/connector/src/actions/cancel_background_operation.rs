//! Cancel Background Operation: stops an action queued in the background before it starts.
//!
//! Source: <https://learn.microsoft.com/power-apps/developer/data-platform/background-operations#cancel-a-background-operation-by-updating-backgroundoperations>
//! (`PATCH [Organization URI]/api/data/v9.2/backgroundoperations(<id>)` with `If-Match: *` and
//! `{"backgroundoperationstatecode": 2, "backgroundoperationstatuscode": 22}`, 204; an operation
//! already completed answers "Canceling background operation is not allowed after it is in
//! terminal state."; one already started runs to its end).

use dataverse::retry::RetryPolicy;
use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::background::{self, BACKGROUND_OPERATION_ID, CANCELED, CANCELING};
use crate::client::Request;
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::records::impersonate;

pub const ACTION: ActionDef = ActionDef {
    key: "cancel-background-operation",
    label: "Cancel Background Operation",
    description: "Cancel a Microsoft Dynamics 365 CRM background operation that has not started yet.",
    group: Some("CRM"),
    inputs: &[
        BACKGROUND_OPERATION_ID,
        CONNECTION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"backgroundOperationId":"00000000-0000-0000-0000-000000000002","canceling":true}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let id = background::operation_id(input)?;
    let mut request = Request::new(
        "PATCH",
        context
            .client
            .api_url(&format!("backgroundoperations({id})")),
    )
    .header("If-Match", "*")
    .header("Content-Type", "application/json");
    request.body = json!({
        "backgroundoperationstatecode": 2,
        "backgroundoperationstatuscode": CANCELING,
    })
    .to_string()
    .into_bytes();
    let request = impersonate(request, input)?;
    // Asking twice to cancel sets the same values: safe to repeat.
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    let lost_before = response.lost_answers > 0;
    let output = json!({ "backgroundOperationId": id, "canceling": true });
    match response.into_success() {
        Ok(_) => Ok(output),
        // After a lost answer the first attempt may have canceled it, and the operation then
        // reached its terminal Canceled state, which refuses another cancel: read what it is.
        Err(failure) if lost_before => {
            let row = background::read(context, input, &id)?;
            let status = row
                .get("backgroundoperationstatuscode")
                .and_then(Value::as_i64);
            if matches!(status, Some(CANCELING | CANCELED)) {
                Ok(output)
            } else {
                Err(failure)
            }
        }
        Err(failure) => Err(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::dynamics::connector::http::HttpError;
    use crate::test_host::{ORIGIN, Script, Signed, header};

    const ID: &str = "00000000-0000-0000-0000-0000000000b0";

    fn input() -> Input {
        Input::parse(
            ACTION.inputs,
            &json!({ "backgroundOperationId": ID }).to_string(),
        )
        .unwrap()
    }

    #[test]
    fn cancel_sets_the_documented_state_and_status() {
        let script = Script::new().answer(204, "text/plain", "");
        let signed = Signed::new();
        let output = run(&signed.context(&script), &input()).expect("canceling");
        assert_eq!(output["canceling"], true);
        let sent = script.sent().pop().unwrap();
        assert_eq!(sent.method, "PATCH");
        assert_eq!(
            sent.url,
            format!("{ORIGIN}/api/data/v9.2/backgroundoperations({ID})")
        );
        assert_eq!(header(&sent.headers, "if-match"), Some("*"));
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            body,
            json!({"backgroundoperationstatecode": 2, "backgroundoperationstatuscode": 22})
        );
    }

    #[test]
    fn a_terminal_refusal_after_a_lost_answer_is_checked_against_the_row() {
        let terminal = r#"{"error":{"code":"0x80040265","message":"Canceling background operation is not allowed after it is in terminal state."}}"#;
        let script = Script::new()
            .fail(HttpError::ConnectionFailed("reset".into()))
            .json(400, terminal)
            .json(
                200,
                r#"{"backgroundoperationstatecode":3,"backgroundoperationstatuscode":32}"#,
            );
        let signed = Signed::new();
        run(&signed.context(&script), &input()).expect("canceled by the lost attempt");

        let script = Script::new().json(400, terminal);
        let refused = run(&signed.context(&script), &input()).expect_err("already done");
        assert!(refused.message.contains("terminal state"));
    }
}
