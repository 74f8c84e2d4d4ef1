//! Data-load switches: the optional parameters a write sends as `MSCRM.*` request headers to
//! skip custom logic, Power Automate triggers, or to turn duplicate detection on.
//!
//! Sources:
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/bypass-custom-business-logic>
//!   (`MSCRM.BypassBusinessLogicExecution: CustomSync|CustomAsync|CustomSync,CustomAsync`; needs
//!   the `prvBypassCustomBusinessLogic` privilege, system administrators have it)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/bypass-power-automate-flows>
//!   (`MSCRM.SuppressCallbackRegistrationExpanderJob: true`; no privilege needed)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/manage-duplicate-detection-create-update>
//!   (the Web API suppresses duplicate detection unless `MSCRM.SuppressDuplicateDetection: false`)
//!
//! Each action lists the switches that make sense for it in its inputs; `apply` adds the headers
//! for whichever of them the input holds, so one function serves all of them.

use crate::client::Request;
use crate::definition::{InputDef, Kind};
use crate::input::Input;

/// Which custom logic to skip, as the doc's values of `BypassBusinessLogicExecution`.
pub const BYPASS_CUSTOM_LOGIC: InputDef =
    InputDef::new("bypassCustomLogic", "Bypass Custom Logic", Kind::Picklist)
        .default("none")
        .choices(&[
            ("Run all custom logic", "none"),
            ("Skip synchronous plug-ins and workflows", "sync"),
            ("Skip asynchronous plug-ins and workflows", "async"),
            ("Skip synchronous and asynchronous custom logic", "all"),
        ])
        .comments("Skip custom plug-ins and workflows (sent as MSCRM.BypassBusinessLogicExecution); Power Automate flows are not custom logic here, see Suppress Flow Triggers. The connection's user needs the prvBypassCustomBusinessLogic privilege");

/// Power Automate flows triggered by the change are not started.
pub const SUPPRESS_FLOW_TRIGGERS: InputDef =
    InputDef::new("suppressFlowTriggers", "Suppress Flow Triggers", Kind::Boolean)
        .default("false")
        .comments("Do not start the Power Automate flows this change would trigger (sent as MSCRM.SuppressCallbackRegistrationExpanderJob); flow owners are not told");

/// Duplicate detection rules are applied; a duplicate is refused instead of written.
pub const DETECT_DUPLICATES: InputDef =
    InputDef::new("detectDuplicates", "Detect Duplicates", Kind::Boolean)
        .default("false")
        .comments("Refuse the write when an active duplicate detection rule finds a duplicate (sent as MSCRM.SuppressDuplicateDetection: false); the Web API skips duplicate detection unless asked");

/// The header value of each `BYPASS_CUSTOM_LOGIC` choice; `none` sends no header.
fn bypass_value(choice: &str) -> Option<&'static str> {
    match choice {
        "sync" => Some("CustomSync"),
        "async" => Some("CustomAsync"),
        "all" => Some("CustomSync,CustomAsync"),
        _ => None,
    }
}

/// The headers the switches in `input` ask for, for requests built by hand (batch items).
pub fn headers(input: &Input) -> Vec<(&'static str, &'static str)> {
    let mut headers = Vec::new();
    if let Some(value) = input.text(BYPASS_CUSTOM_LOGIC.key).and_then(bypass_value) {
        headers.push(("MSCRM.BypassBusinessLogicExecution", value));
    }
    if input.flag(SUPPRESS_FLOW_TRIGGERS.key) {
        headers.push(("MSCRM.SuppressCallbackRegistrationExpanderJob", "true"));
    }
    if input.flag(DETECT_DUPLICATES.key) {
        headers.push(("MSCRM.SuppressDuplicateDetection", "false"));
    }
    headers
}

/// `request` with the headers of the switches in `input`; switches an action does not list are
/// never in its input, so they add nothing.
pub fn apply(request: Request, input: &Input) -> Request {
    headers(input)
        .into_iter()
        .fold(request, |request, (name, value)| {
            request.header(name, value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCHES: [InputDef; 3] = [
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
        DETECT_DUPLICATES,
    ];

    fn sent(json: &str) -> Vec<(String, String)> {
        let input = Input::parse(&SWITCHES, json).expect("valid input");
        let request = Request::new("POST", "https://contoso.crm.dynamics.com/".to_string());
        apply(request, &input).headers
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn no_switch_sends_no_header() {
        assert!(sent("{}").is_empty());
        assert!(sent(r#"{"bypassCustomLogic": "none", "suppressFlowTriggers": false}"#).is_empty());
    }

    #[test]
    fn each_bypass_choice_sends_the_documented_value() {
        for (choice, value) in [
            ("sync", "CustomSync"),
            ("async", "CustomAsync"),
            ("all", "CustomSync,CustomAsync"),
        ] {
            let json = format!(r#"{{"bypassCustomLogic": "{choice}"}}"#);
            assert_eq!(
                sent(&json),
                vec![pair("MSCRM.BypassBusinessLogicExecution", value)]
            );
        }
    }

    #[test]
    fn flows_and_duplicate_detection_send_their_headers() {
        assert_eq!(
            sent(r#"{"suppressFlowTriggers": true, "detectDuplicates": "true"}"#),
            vec![
                pair("MSCRM.SuppressCallbackRegistrationExpanderJob", "true"),
                pair("MSCRM.SuppressDuplicateDetection", "false"),
            ]
        );
    }

    #[test]
    fn an_unknown_bypass_choice_is_refused_naming_the_input() {
        let refused = Input::parse(&SWITCHES, r#"{"bypassCustomLogic": "plugins"}"#)
            .expect_err("not a choice");
        assert!(
            refused.message.contains("bypassCustomLogic"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn a_duplicate_detection_refusal_is_a_conflict_that_says_why() {
        use crate::bindings::dynamics::connector::types::ErrorCode;
        let body = br#"{"error":{"code":"0x80040333","message":"A record was not created or updated because a duplicate of the current record already exists."}}"#;
        // The doc shows 500; newer builds answer 412: both read the same.
        for status in [500, 412] {
            let response = crate::client::Response {
                status,
                headers: Vec::new(),
                body: body.to_vec(),
                attempts: 1,
                lost_answers: 0,
            };
            let refused = response.into_success().expect_err("refused");
            assert_eq!(refused.code, ErrorCode::Conflict);
            assert_eq!(refused.service_code.as_deref(), Some("0x80040333"));
            assert!(refused.hint.unwrap().contains("duplicate detection rule"));
        }
    }
}
