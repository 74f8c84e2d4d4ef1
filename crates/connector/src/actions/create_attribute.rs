//! Create Attribute: Create a CRM Attribute on an Entity

use crate::actions::ActionDef;
#[allow(unused_imports)]
use crate::definition::{Format, InputDef, Kind};
#[allow(unused_imports)]
use crate::inputs::*;

const ATTRIBUTE_BODY: InputDef = InputDef::new("attributeBody", "Attribute Body", Kind::Code)
    .required()
    .comments("Attribute body payload to send")
    .default(
        r#"{
  "AttributeType": "Money",
  "AttributeTypeName": {
    "Value": "MoneyType"
  },
  "Description": {
    "@odata.type": "Microsoft.Dynamics.CRM.Label",
    "LocalizedLabels": [
      {
        "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
        "Label": "Enter the balance amount",
        "LanguageCode": 1033
      }
    ]
  },
  "DisplayName": {
    "@odata.type": "Microsoft.Dynamics.CRM.Label",
    "LocalizedLabels": [
      {
        "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
        "Label": "Balance",
        "LanguageCode": 1033
      }
    ]
  },
  "RequiredLevel": {
    "Value": "None",
    "CanBeChanged": true,
    "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"
  },
  "SchemaName": "new_Balance",
  "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
  "PrecisionSource": 2
}"#,
    );

pub const ACTION: ActionDef = ActionDef {
    key: "create-attribute",
    label: "Create Attribute",
    description: "Create a CRM Attribute on an Entity",
    group: Some("CRM"),
    inputs: &[CONNECTION, METADATA_ENTITY_ID, ATTRIBUTE_BODY],
    example_output: None,
    run: None,
};
