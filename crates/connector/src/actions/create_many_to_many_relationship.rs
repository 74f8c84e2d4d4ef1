//! Create Many-to-Many Relationship: a relationship whose pairs live in an intersect table
//! ("Create and update table relationships using the Web API",
//! learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-relationships-using-web-api,
//! "Create a many-to-many relationship"): `POST RelationshipDefinitions` with a
//! `ManyToManyRelationshipMetadata` (`Entity1LogicalName`, `Entity2LogicalName`,
//! `IntersectEntityName`), answered 204 with `OData-EntityId`.

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::metadata_writes::{self, Create, same_text, schema_name};

pub const ACTION: ActionDef = ActionDef {
    key: "create-many-to-many-relationship",
    label: "Create Many-to-Many Relationship",
    description: "Create a many-to-many relationship between two Microsoft Dynamics 365 CRM tables.",
    group: Some("CRM"),
    inputs: &[
        SCHEMA_NAME,
        TABLE_1,
        TABLE_2,
        INTERSECT_NAME,
        PUBLISHER_PREFIX,
        SOLUTION_UNIQUE_NAME,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"metadataId":"420245fa-c77c-e511-80d2-00155d2a68d2","schemaName":"new_accounts_campaigns","intersectEntityName":"new_accounts_campaigns","alreadyCreated":false}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let schema = schema_name(
        input,
        &SCHEMA_NAME,
        input.text(SCHEMA_NAME.key).unwrap_or_default(),
    )?;
    let first = input
        .text(TABLE_1.key)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let second = input
        .text(TABLE_2.key)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let intersect = input
        .text(INTERSECT_NAME.key)
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| schema.to_ascii_lowercase());
    for (definition, table) in [(&TABLE_1, &first), (&TABLE_2, &second)] {
        if context.metadata.table(&context.client, table)?.is_none() {
            return Err(invalid_input(
                definition,
                format!("table {table:?} not found"),
            ));
        }
    }
    let mut body = Map::new();
    body.insert(
        "@odata.type".into(),
        json!("Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata"),
    );
    body.insert("SchemaName".into(), json!(schema));
    body.insert("Entity1LogicalName".into(), json!(first));
    body.insert("Entity2LogicalName".into(), json!(second));
    body.insert("IntersectEntityName".into(), json!(intersect));
    let same = |found: &Value| {
        same_text(found, "Entity1LogicalName", &first)
            && same_text(found, "Entity2LogicalName", &second)
    };
    let mut answer = metadata_writes::create(
        context,
        input,
        Create {
            collection: "RelationshipDefinitions".into(),
            body,
            read_back: format!("RelationshipDefinitions(SchemaName='{schema}')"),
            pick: None,
            same: &same,
            what: format!("relationship {schema:?}"),
        },
    )?;
    answer["schemaName"] = json!(schema);
    answer["intersectEntityName"] = json!(intersect);
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::{Script, Signed};

    fn table(logical: &str, set: &str) -> String {
        format!(
            r#"{{"value":[{{"LogicalName":"{logical}","EntitySetName":"{set}","PrimaryIdAttribute":"{logical}id"}}]}}"#
        )
    }

    #[test]
    fn the_documented_body_names_both_tables_and_the_intersect_table() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, r#"{"value":[]}"#)
            .json(200, &table("account", "accounts"))
            .json(200, r#"{"value":[]}"#)
            .json(200, &table("campaign", "campaigns"))
            .answer_with(
                204,
                &[(
                    "OData-EntityId",
                    "https://contoso.crm.dynamics.com/api/data/v9.2/RelationshipDefinitions(420245fa-c77c-e511-80d2-00155d2a68d2)",
                )],
                "",
            );
        let context = signed.context(&script);
        let input = Input::parse(
            ACTION.inputs,
            r#"{"schemaName": "new_accounts_campaigns", "table1": "account", "table2": "Campaign"}"#,
        )
        .unwrap();
        let answer = run(&context, &input).unwrap();
        assert_eq!(answer["metadataId"], "420245fa-c77c-e511-80d2-00155d2a68d2");
        assert_eq!(answer["intersectEntityName"], "new_accounts_campaigns");
        let sent = script.sent();
        let post = sent.last().unwrap();
        assert!(post.url.ends_with("/RelationshipDefinitions"));
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(
            body,
            json!({
                "@odata.type": "Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
                "SchemaName": "new_accounts_campaigns",
                "Entity1LogicalName": "account",
                "Entity2LogicalName": "campaign",
                "IntersectEntityName": "new_accounts_campaigns",
            })
        );
    }
}
