//! Relate Rows: associates a row with another through one of its table's relationships.
//!
//! Source: <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api>
//! — a collection-valued navigation property (one-to-many, many-to-many) takes
//! `POST <row>/<property>/$ref` with `{"@odata.id": "<related row URL>"}`; a single-valued one
//! (many-to-one) takes `PUT <row>/<property>/$ref` with the same body. Both answer 204.

use dataverse::retry::RetryPolicy;
use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::error::{Result, invalid_input, with_hint};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{explain, impersonate};
use crate::relationships::{Cardinality, RELATED_ID, RELATIONSHIP, pair};

pub const ACTION: ActionDef = ActionDef {
    key: "relate-rows",
    label: "Relate Rows",
    description: "Relate a Microsoft Dynamics 365 CRM row to another through one of its table's relationships (one-to-many, many-to-one or many-to-many).",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        RELATIONSHIP,
        RELATED_ID,
        CONNECTION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"relationship":"contact_customer_accounts","relatedEntityType":"contacts","relatedEntityId":"00000000-0000-0000-0000-000000000003","related":true}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

/// Dataverse's "Cannot insert duplicate key" (DuplicateRecord): the many-to-many pair is
/// already related.
const DUPLICATE_KEY: &str = "0x80040237";

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let pair = pair(context, input)?;
    let related = pair
        .related
        .as_ref()
        .ok_or_else(|| invalid_input(&RELATED_ID, "is required"))?;
    let property = &pair.relationship.navigation_property;
    let method = if pair.relationship.is_single_valued() {
        "PUT"
    } else {
        "POST"
    };
    let mut request = Request::new(
        method,
        context
            .client
            .api_url(&format!("{}/{property}/$ref", pair.path)),
    )
    .header("Content-Type", "application/json");
    request.body = json!({ "@odata.id": context.client.api_url(&related.path) })
        .to_string()
        .into_bytes();
    let request = impersonate(request, input)?;
    // Setting a lookup (PUT, or POST on a one-to-many, which sets the related row's lookup) lands
    // the same however often it is sent. A many-to-many POST sent twice is refused as a duplicate
    // key; after a lost answer that refusal means the first attempt landed.
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    let output = json!({
        "relationship": property,
        "relatedEntityType": pair.related_set,
        "relatedEntityId": related.key.id().map(str::to_string).unwrap_or_else(|| related.key.display()),
        "related": true,
    });
    let landed_before = response.lost_answers > 0;
    match response.into_success() {
        Ok(_) => Ok(output),
        Err(failure)
            if failure.service_code.as_deref() == Some(DUPLICATE_KEY)
                && pair.relationship.kind == Cardinality::ManyToMany =>
        {
            if landed_before {
                let mut output = output;
                output["alreadyRelated"] = Value::Bool(true);
                Ok(output)
            } else {
                Err(with_hint(
                    failure,
                    format!("the rows are already related through {property}; nothing was changed"),
                ))
            }
        }
        Err(failure) => Err(explain(context, entity_set, failure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::dynamics::connector::http::HttpError;
    use crate::bindings::dynamics::connector::types::ErrorCode;
    use crate::test_host::{ORIGIN, Script, Signed, header};

    const CONTACT: &str = "00000000-0000-0000-0000-00000000c001";
    const ACCOUNT: &str = "00000000-0000-0000-0000-00000000a001";

    fn tables(script: Script) -> Script {
        script.json(
            200,
            r#"{"value":[{"LogicalName":"contact","EntitySetName":"contacts","PrimaryIdAttribute":"contactid"}]}"#,
        )
    }

    /// The three relationship reads of `contact`: a one-to-many, a lookup and a many-to-many.
    fn relationships(script: Script) -> Script {
        script
            .json(200, r#"{"value":[{"SchemaName":"contact_tasks","ReferencingEntity":"task","ReferencedEntityNavigationPropertyName":"Contact_Tasks"}]}"#)
            .json(200, r#"{"value":[{"SchemaName":"contact_customer_accounts","ReferencedEntity":"account","ReferencingEntityNavigationPropertyName":"parentcustomerid_account","ReferencingAttribute":"parentcustomerid"}]}"#)
            .json(200, r#"{"value":[{"SchemaName":"contactleads_association","Entity1LogicalName":"contact","Entity2LogicalName":"lead","Entity1NavigationPropertyName":"contactleads_association","Entity2NavigationPropertyName":"contactleads_association"}]}"#)
    }

    fn related_table(script: Script, logical: &str, set: &str) -> Script {
        script.json(
            200,
            &format!(r#"{{"value":[{{"LogicalName":"{logical}","EntitySetName":"{set}","PrimaryIdAttribute":"{logical}id"}}]}}"#),
        )
    }

    fn input(relationship: &str, related: &str) -> Input {
        Input::parse(
            ACTION.inputs,
            &json!({"entityType": "contacts", "entityId": CONTACT, "relationship": relationship, "relatedEntityId": related}).to_string(),
        )
        .expect("valid input")
    }

    #[test]
    fn a_lookup_is_set_with_put_on_the_single_valued_property() {
        let script = related_table(relationships(tables(Script::new())), "account", "accounts")
            .answer(204, "text/plain", "");
        let signed = Signed::new();
        let output = run(
            &signed.context(&script),
            &input("parentcustomerid_account", ACCOUNT),
        )
        .expect("related");
        assert_eq!(output["relatedEntityType"], "accounts");
        let sent = script.sent();
        let last = sent.last().unwrap();
        assert_eq!(last.method, "PUT");
        assert_eq!(
            last.url,
            format!("{ORIGIN}/api/data/v9.2/contacts({CONTACT})/parentcustomerid_account/$ref")
        );
        let body: Value = serde_json::from_slice(&last.body).unwrap();
        assert_eq!(
            body,
            json!({"@odata.id": format!("{ORIGIN}/api/data/v9.2/accounts({ACCOUNT})")})
        );
        assert_eq!(
            header(&last.headers, "content-type"),
            Some("application/json")
        );
    }

    #[test]
    fn a_collection_is_added_to_with_post_and_a_hostile_alternate_key_is_encoded() {
        let script = related_table(relationships(tables(Script::new())), "task", "tasks").answer(
            204,
            "text/plain",
            "",
        );
        let signed = Signed::new();
        run(
            &signed.context(&script),
            &input("Contact_Tasks", "subject='a''b)/c?d'"),
        )
        .expect("related");
        let last = script.sent().pop().unwrap();
        assert_eq!(last.method, "POST");
        assert!(
            last.url
                .ends_with("/contacts(00000000-0000-0000-0000-00000000c001)/Contact_Tasks/$ref")
        );
        let body: Value = serde_json::from_slice(&last.body).unwrap();
        assert_eq!(
            body["@odata.id"],
            format!("{ORIGIN}/api/data/v9.2/tasks(subject='a''b%29%2Fc%3Fd')")
        );
    }

    #[test]
    fn a_duplicate_after_a_lost_answer_is_the_first_attempt_landing() {
        let duplicate =
            r#"{"error":{"code":"0x80040237","message":"Cannot insert duplicate key."}}"#;
        let script = related_table(relationships(tables(Script::new())), "lead", "leads")
            .fail(HttpError::ConnectionFailed("reset".into()))
            .json(412, duplicate);
        let signed = Signed::new();
        let output = run(
            &signed.context(&script),
            &input("contactleads_association", ACCOUNT),
        )
        .expect("already related by the lost attempt");
        assert_eq!(output["alreadyRelated"], true);

        // The same refusal on a first attempt is the caller's pair already related: an error.
        let script = related_table(relationships(tables(Script::new())), "lead", "leads")
            .json(412, duplicate);
        let refused = run(
            &signed.context(&script),
            &input("contactleads_association", ACCOUNT),
        )
        .expect_err("already related before this run");
        assert!(refused.hint.unwrap().contains("already related"));
    }

    #[test]
    fn bad_keys_and_unknown_relationships_are_refused() {
        let signed = Signed::new();
        let script = Script::new();
        let refused = run(
            &signed.context(&script),
            &input("Contact_Tasks", "not a key"),
        )
        .expect_err("bad key");
        assert_eq!(refused.field.as_deref(), Some("relatedEntityId"));
        assert!(script.sent().is_empty(), "no request for a bad key");

        let script = relationships(tables(Script::new()));
        let refused = run(&signed.context(&script), &input("contact_task", ACCOUNT))
            .expect_err("no such relationship");
        assert_eq!(refused.code, ErrorCode::InvalidInput);
        assert_eq!(refused.field.as_deref(), Some("relationship"));
        assert!(
            refused.message.contains("did you mean \"Contact_Tasks\""),
            "{}",
            refused.message
        );
    }
}
