//! Create Attribute: Create a CRM Attribute on an Entity

use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::attributes::write_attribute;
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;

pub const ACTION: ActionDef = ActionDef {
    key: "create-attribute",
    label: "Create Attribute",
    description: "Create a CRM Attribute on an Entity",
    group: Some("CRM"),
    inputs: &[CONNECTION, METADATA_ENTITY_ID, ATTRIBUTE_BODY],
    example_output: Some(
        r#"{"id":"00000000-0000-0000-0000-000000000002","logicalName":"new_balance"}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    write_attribute(context, input, false)
}
