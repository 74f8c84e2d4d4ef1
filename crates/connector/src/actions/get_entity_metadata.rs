//! Get Entity Metadata: Get definition of Microsoft Dynamics 365 CRM entity.

use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::entity_metadata::{entity_path, get, rows};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;

const USE_LOGICAL_NAME: InputDef = InputDef::new(
    "useLogicalNameForLookup",
    "Use Logical Name for Lookup",
    Kind::Boolean,
)
.default("true");

pub const ACTION: ActionDef = ActionDef {
    key: "get-entity-metadata",
    label: "Get Entity Metadata",
    description: "Get definition of Microsoft Dynamics 365 CRM entity.",
    group: Some("CRM"),
    inputs: &[CONNECTION, ENTITY_TYPE, USE_LOGICAL_NAME],
    example_output: Some(
        r#"{"LogicalName":"account","EntitySetName":"accounts","SchemaName":"Account","PrimaryIdAttribute":"accountid","Attributes":[{"LogicalName":"name","AttributeType":"String"}]}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

/// The table's definition with its columns. Entity Type is a logical name when Use Logical Name
/// for Lookup is on, an entity set name otherwise.
fn run(context: &Context, input: &Input) -> Result<Value> {
    let name = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let path = if input.flag(USE_LOGICAL_NAME.key) {
        entity_path(&ENTITY_TYPE, name)?
    } else {
        let answer = get(
            context,
            &format!("EntityDefinitions?$select=LogicalName&$filter=EntitySetName%20eq%20'{name}'"),
        )?;
        let logical = rows(&answer)?
            .first()
            .and_then(|row| row["LogicalName"].as_str().map(str::to_string))
            .ok_or_else(|| {
                invalid_input(
                    &ENTITY_TYPE,
                    format!("no table has the entity set name {name:?}"),
                )
            })?;
        entity_path(&ENTITY_TYPE, &logical)?
    };
    get(context, &format!("{path}?$expand=Attributes"))
}
