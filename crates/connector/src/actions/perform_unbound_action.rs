//! Perform an Unbound Action: a Dataverse message or custom API not bound to a row (WinOpportunity,
//! LoseOpportunity, FulfillSalesOrder, GrantAccess, a custom API), optionally in the background.
//!
//! Sources: <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-actions>
//! (`POST [Organization URI]/api/data/v9.2/<Name>` with the parameters as a JSON object) and
//! <https://learn.microsoft.com/power-apps/developer/data-platform/background-operations>
//! (`Prefer: respond-async`, custom APIs only; 202 with `Location` and
//! `x-ms-dyn-backgroundoperationid`).

use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types as wit;
use crate::client::Request;
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::operations::{self, Family, PARAMETERS};
use crate::records::impersonate;
use crate::switches::{self, BYPASS_CUSTOM_LOGIC, SUPPRESS_FLOW_TRIGGERS};

pub const ACTION_NAME: InputDef = InputDef::new("actionName", "Action Name", Kind::Text)
    .required()
    .comments("The unbound action or custom API to run, by its name in the environment's $metadata (WinOpportunity, GrantAccess); its parameters become inputs")
    .example("WinOpportunity")
    .data_source("unbound-actions")
    .format(Format::Identifier);

const RUN_IN_BACKGROUND: InputDef =
    InputDef::new("runInBackground", "Run in the Background", Kind::Boolean)
        .default("false")
        .comments("Custom APIs only: queue the action and answer at once with its backgroundOperationId and location (sent as Prefer: respond-async); follow it with Get Background Operation");

pub const ACTION: ActionDef = ActionDef {
    key: "perform-unbound-action",
    label: "Perform an Unbound Action",
    description: "Run a Microsoft Dynamics 365 CRM action or custom API that is not bound to a row, with its parameters.",
    group: Some("CRM"),
    inputs: &[
        ACTION_NAME,
        PARAMETERS,
        CONNECTION,
        RUN_IN_BACKGROUND,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
    ],
    example_output: Some(r#"{"OpportunityCloseId":"00000000-0000-0000-0000-000000000002"}"#),
    run: Run::Value(run),
    dynamic_inputs: Some(dynamic_inputs),
};

fn dynamic_inputs(context: &Context, input: &Input) -> Result<Vec<wit::InputDefinition>> {
    let Some(name) = input.text(ACTION_NAME.key) else {
        return Ok(Vec::new());
    };
    let document = operations::document(context)?;
    let operation = operations::find(&document, Family::UnboundAction, &ACTION_NAME, name, false)?;
    Ok(operations::parameter_inputs(&document, operation))
}

fn run(context: &Context, input: &Input) -> Result<Value> {
    let name = input.text(ACTION_NAME.key).unwrap_or_default();
    // Impersonation conflicts are input errors: found before anything is sent.
    impersonate(Request::new("POST", String::new()), input)?;
    let document = operations::document(context)?;
    let operation = operations::find(&document, Family::UnboundAction, &ACTION_NAME, name, false)?;
    let arguments = operations::arguments(&document, operation, input)?;
    let background = input.flag(RUN_IN_BACKGROUND.key);
    if background && !is_custom_api(context, &operation.name)? {
        return Err(invalid_input(
            &RUN_IN_BACKGROUND,
            format!(
                "only custom APIs run in the background, and {} is not one",
                operation.name
            ),
        ));
    }
    let mut request = Request::new(
        "POST",
        context
            .client
            .api_url(&operations::action_path(operation, None)),
    )
    .header("Content-Type", "application/json");
    if background {
        request = request.header("Prefer", "respond-async");
    }
    request.body = Value::Object(arguments).to_string().into_bytes();
    let request = switches::apply(impersonate(request, input)?, input);
    let response = context
        .client
        .send(request, RetryPolicy::RECORDS.not_idempotent())
        .and_then(|response| response.into_success())
        .map_err(|failure| operations::lost_action(operation, failure))?;
    // A 2xx whose body cannot be read is an action that ran with its answer lost.
    operations::output(&response).map_err(|failure| operations::lost_action(operation, failure))
}

/// Whether `name` is a custom API (a row of the customapi table), the only messages that run in
/// the background.
fn is_custom_api(context: &Context, name: &str) -> Result<bool> {
    let filter = dataverse::encoding::percent_encode(&format!(
        "uniquename eq {}",
        dataverse::odata::string_literal(name)
    ));
    let answer = context
        .client
        .get_json(&format!("customapis?$select=uniquename&$filter={filter}"))?;
    Ok(answer
        .get("value")
        .and_then(Value::as_array)
        .is_some_and(|rows| !rows.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::dynamics::connector::http::HttpError;
    use crate::test_host::{ORIGIN, Script, Signed, header};
    use serde_json::json;

    const METADATA: &str = r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices><Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityType Name="opportunityclose"/>
<Action Name="WinOpportunity"><Parameter Name="OpportunityClose" Type="mscrm.opportunityclose" Nullable="false"/><Parameter Name="Status" Type="Edm.Int32" Nullable="false"/></Action>
<Action Name="sample_Export"><Parameter Name="FetchXml" Type="Edm.String" Nullable="false"/><ReturnType Type="mscrm.sample_ExportResponse"/></Action>
</Schema></edmx:DataServices></edmx:Edmx>"#;

    fn input(json: Value) -> Input {
        Input::parse_open(ACTION.inputs, &json.to_string()).expect("valid input")
    }

    fn win() -> Value {
        json!({"actionName": "WinOpportunity", "Status": 3, "OpportunityClose": {"subject": "Won", "opportunityid@odata.bind": "/opportunities(00000000-0000-0000-0000-000000000001)"}, "bypassCustomLogic": "sync"})
    }

    #[test]
    fn the_action_is_posted_with_its_checked_parameters_and_switches() {
        let script = Script::new()
            .answer(200, "application/xml", METADATA)
            .answer(204, "text/plain", "");
        let signed = Signed::new();
        let output = run(&signed.context(&script), &input(win())).expect("ran");
        assert_eq!(output, json!({}));
        let sent = script.sent();
        assert_eq!(sent[0].url, format!("{ORIGIN}/api/data/v9.2/$metadata"));
        assert_eq!(header(&sent[0].headers, "accept"), Some("application/xml"));
        assert_eq!(sent[1].method, "POST");
        assert_eq!(
            sent[1].url,
            format!("{ORIGIN}/api/data/v9.2/WinOpportunity")
        );
        assert_eq!(
            header(&sent[1].headers, "MSCRM.BypassBusinessLogicExecution"),
            Some("CustomSync")
        );
        let body: Value = serde_json::from_slice(&sent[1].body).unwrap();
        assert_eq!(body["Status"], 3);
        assert_eq!(
            body["OpportunityClose"]["@odata.type"],
            "Microsoft.Dynamics.CRM.opportunityclose"
        );
    }

    #[test]
    fn a_lost_answer_is_not_repeated_and_says_the_action_may_have_run() {
        let script = Script::new()
            .answer(200, "application/xml", METADATA)
            .fail(HttpError::ConnectionFailed("reset".into()));
        let signed = Signed::new();
        let failure = run(&signed.context(&script), &input(win())).expect_err("lost");
        assert_eq!(script.sent().len(), 2, "the action was sent once");
        assert!(
            failure
                .message
                .contains("WinOpportunity may or may not have run"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn a_custom_api_runs_in_the_background_and_answers_its_operation() {
        let id = "00000000-0000-0000-0000-0000000000b0";
        let location = format!("{ORIGIN}/api/backgroundoperation/{id}");
        let script = Script::new()
            .answer(200, "application/xml", METADATA)
            .json(200, r#"{"value":[{"uniquename":"sample_Export"}]}"#)
            .answer_with(
                202,
                &[
                    ("Location", location.as_str()),
                    ("x-ms-dyn-backgroundoperationid", id),
                ],
                "",
            );
        let signed = Signed::new();
        let output = run(
            &signed.context(&script),
            &input(json!({"actionName": "sample_Export", "FetchXml": "<fetch/>", "runInBackground": true})),
        )
        .expect("queued");
        assert_eq!(output["backgroundOperationId"], id);
        assert_eq!(output["location"], location);
        let sent = script.sent();
        assert_eq!(header(&sent[2].headers, "prefer"), Some("respond-async"));

        // A message that is not a custom API is refused before it is sent.
        let script = Script::new()
            .answer(200, "application/xml", METADATA)
            .json(200, r#"{"value":[]}"#);
        let mut background = win();
        background["runInBackground"] = json!(true);
        let refused = run(&signed.context(&script), &input(background)).expect_err("not custom");
        assert_eq!(refused.field.as_deref(), Some("runInBackground"));
        assert!(script.sent().iter().all(|request| request.method == "GET"));
    }
}
