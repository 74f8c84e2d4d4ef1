//! Unrelate Rows: removes the association between a row and another.
//!
//! Source: <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api#remove-a-reference-to-a-table-row>
//! — from a collection-valued navigation property, `DELETE <row>/<property>(<related id>)/$ref`
//! or `DELETE <row>/<property>/$ref?$id=<related row URL>`; a single-valued one is cleared with
//! `DELETE <row>/<property>/$ref`. Each answers 204.

use dataverse::encoding::percent_encode;
use dataverse::keys::RecordKey;
use dataverse::retry::RetryPolicy;
use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::client::Request;
use crate::context::Context;
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{explain, impersonate};
use crate::relationships::{Pair, RELATIONSHIP, UNRELATED_ID, pair};

pub const ACTION: ActionDef = ActionDef {
    key: "unrelate-rows",
    label: "Unrelate Rows",
    description: "Remove the relationship between a Microsoft Dynamics 365 CRM row and another, or clear a lookup.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        RELATIONSHIP,
        UNRELATED_ID,
        CONNECTION,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"relationship":"contact_customer_accounts","relatedEntityType":"contacts","relatedEntityId":"00000000-0000-0000-0000-000000000003","unrelated":true}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let pair = pair(context, input)?;
    let property = &pair.relationship.navigation_property;
    let mut output = json!({
        "relationship": property,
        "relatedEntityType": pair.related_set,
        "relatedEntityId": pair.related.as_ref().map(|related| related.key.id().map(str::to_string).unwrap_or_else(|| related.key.display())),
        "unrelated": true,
    });
    let url = if pair.relationship.is_single_valued() {
        // A lookup named with its row is cleared only while it points there: a rerun after
        // someone else set it again must not clear their value.
        if pair.related.is_some() && !points_to_related(context, input, &pair)? {
            output["unrelated"] = Value::Bool(false);
            output["wasRelated"] = Value::Bool(false);
            return Ok(output);
        }
        context
            .client
            .api_url(&format!("{}/{property}/$ref", pair.path))
    } else {
        let related = pair.related.as_ref().ok_or_else(|| {
            invalid_input(
                &UNRELATED_ID,
                format!("is required: {property} relates many rows, so name the one to remove"),
            )
        })?;
        match related.key.id() {
            Some(id) => context
                .client
                .api_url(&format!("{}/{property}({id})/$ref", pair.path)),
            // An alternate key goes in the documented $id form, the related row's URL encoded
            // as one query value.
            None => format!(
                "{}?$id={}",
                context
                    .client
                    .api_url(&format!("{}/{property}/$ref", pair.path)),
                percent_encode(&context.client.api_url(&related.path))
            ),
        }
    };
    let request = impersonate(Request::new("DELETE", url), input)?;
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    // After a lost answer, "not found" is the first attempt having removed it.
    if response.status == 404 && response.lost_answers > 0 {
        return Ok(output);
    }
    match response.into_success() {
        Ok(_) => Ok(output),
        Err(failure) if failure.code == ErrorCode::NotFound => {
            Err(explain(context, entity_set, failure))
        }
        Err(failure) => Err(failure),
    }
}

/// Whether the row's lookup currently holds the related row.
fn points_to_related(context: &Context, input: &Input, pair: &Pair) -> Result<bool> {
    let Some(related) = &pair.related else {
        return Ok(true);
    };
    let column = pair
        .relationship
        .lookup_column
        .as_deref()
        .unwrap_or_default();
    let value_property = format!("_{column}_value");
    let current = read(context, input, &pair.path, &value_property)?;
    let Some(current) = current.as_str() else {
        return Ok(false);
    };
    let related_id = match &related.key {
        RecordKey::Id(id) => id.clone(),
        RecordKey::Alternate(_) => {
            let table = context.metadata.table(&context.client, &pair.related_set)?;
            let primary = table.map(|t| t.primary_id.clone()).unwrap_or_default();
            match read(context, input, &related.path, &primary)?.as_str() {
                Some(id) => id.to_string(),
                None => return Ok(false),
            }
        }
    };
    Ok(current.eq_ignore_ascii_case(&related_id))
}

/// One column of one row (`null` when the row has no value).
fn read(context: &Context, input: &Input, path: &str, column: &str) -> Result<Value> {
    let request = Request::new(
        "GET",
        context.client.api_url(&format!("{path}?$select={column}")),
    );
    let request = impersonate(request, input)?;
    let record = context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()?
        .json()?;
    Ok(record.get(column).cloned().unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::dynamics::connector::http::HttpError;
    use crate::test_host::{ORIGIN, Script, Signed};

    const CONTACT: &str = "00000000-0000-0000-0000-00000000c001";
    const ACCOUNT: &str = "00000000-0000-0000-0000-00000000a001";

    fn metadata(related_logical: &str, related_set: &str) -> Script {
        Script::new()
            .json(200, r#"{"value":[{"LogicalName":"contact","EntitySetName":"contacts","PrimaryIdAttribute":"contactid"}]}"#)
            .json(200, r#"{"value":[{"SchemaName":"contact_tasks","ReferencingEntity":"task","ReferencedEntityNavigationPropertyName":"Contact_Tasks"}]}"#)
            .json(200, r#"{"value":[{"SchemaName":"contact_customer_accounts","ReferencedEntity":"account","ReferencingEntityNavigationPropertyName":"parentcustomerid_account","ReferencingAttribute":"parentcustomerid"}]}"#)
            .json(200, r#"{"value":[]}"#)
            .json(200, &format!(r#"{{"value":[{{"LogicalName":"{related_logical}","EntitySetName":"{related_set}","PrimaryIdAttribute":"{related_logical}id"}}]}}"#))
    }

    fn input(json: Value) -> Input {
        let mut object = json!({"entityType": "contacts", "entityId": CONTACT});
        object
            .as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        Input::parse(ACTION.inputs, &object.to_string()).expect("valid input")
    }

    #[test]
    fn a_collection_member_is_removed_by_id_or_by_an_encoded_id_url() {
        let signed = Signed::new();
        let script = metadata("task", "tasks").answer(204, "text/plain", "");
        run(
            &signed.context(&script),
            &input(json!({"relationship": "Contact_Tasks", "relatedEntityId": ACCOUNT})),
        )
        .expect("removed");
        let last = script.sent().pop().unwrap();
        assert_eq!(last.method, "DELETE");
        assert_eq!(
            last.url,
            format!("{ORIGIN}/api/data/v9.2/contacts({CONTACT})/Contact_Tasks({ACCOUNT})/$ref")
        );

        let script = metadata("task", "tasks").answer(204, "text/plain", "");
        run(
            &signed.context(&script),
            &input(json!({"relationship": "Contact_Tasks", "relatedEntityId": "subject='x&y'"})),
        )
        .expect("removed");
        let last = script.sent().pop().unwrap();
        assert_eq!(
            last.url,
            format!(
                "{ORIGIN}/api/data/v9.2/contacts({CONTACT})/Contact_Tasks/$ref?$id=https%3A%2F%2Fcontoso.crm.dynamics.com%2Fapi%2Fdata%2Fv9.2%2Ftasks%28subject%3D%27x%2526y%27%29"
            )
        );
    }

    #[test]
    fn a_collection_member_must_be_named() {
        let signed = Signed::new();
        let script = metadata("task", "tasks");
        let refused = run(
            &signed.context(&script),
            &input(json!({"relationship": "Contact_Tasks"})),
        )
        .expect_err("which task?");
        assert_eq!(refused.field.as_deref(), Some("relatedEntityId"));
        assert!(
            script.sent().iter().all(|request| request.method == "GET"),
            "nothing removed"
        );
    }

    #[test]
    fn a_lookup_is_cleared_only_while_it_points_to_the_named_row() {
        let signed = Signed::new();
        let other = "00000000-0000-0000-0000-00000000a002";
        let script = metadata("account", "accounts")
            .json(200, &format!(r#"{{"_parentcustomerid_value":"{other}"}}"#));
        let output = run(
            &signed.context(&script),
            &input(json!({"relationship": "parentcustomerid_account", "relatedEntityId": ACCOUNT})),
        )
        .expect("nothing to do");
        assert_eq!(output["wasRelated"], false);
        assert!(script.sent().iter().all(|request| request.method == "GET"));

        let script = metadata("account", "accounts")
            .json(
                200,
                &format!(r#"{{"_parentcustomerid_value":"{ACCOUNT}"}}"#),
            )
            .answer(204, "text/plain", "");
        run(
            &signed.context(&script),
            &input(json!({"relationship": "parentcustomerid_account", "relatedEntityId": ACCOUNT})),
        )
        .expect("cleared");
        let last = script.sent().pop().unwrap();
        assert_eq!(last.method, "DELETE");
        assert_eq!(
            last.url,
            format!("{ORIGIN}/api/data/v9.2/contacts({CONTACT})/parentcustomerid_account/$ref")
        );
    }

    #[test]
    fn not_found_after_a_lost_answer_is_success_and_before_it_an_error() {
        let signed = Signed::new();
        let gone = r#"{"error":{"code":"0x80040217","message":"task With Id = x Does Not Exist"}}"#;
        let script = metadata("task", "tasks")
            .fail(HttpError::Timeout)
            .json(404, gone);
        let output = run(
            &signed.context(&script),
            &input(json!({"relationship": "Contact_Tasks", "relatedEntityId": ACCOUNT})),
        )
        .expect("the lost attempt removed it");
        assert_eq!(output["unrelated"], true);

        let script = metadata("task", "tasks").json(404, gone);
        let refused = run(
            &signed.context(&script),
            &input(json!({"relationship": "Contact_Tasks", "relatedEntityId": ACCOUNT})),
        )
        .expect_err("was never related");
        assert_eq!(refused.code, ErrorCode::NotFound);
    }
}
