//! Batch Entity Actions: Perform multiple create/update/delete actions on Microsoft Dynamics 365 CRM entity records.

use crate::actions::ActionDef;
use crate::definition::{InputDef, Kind};
use crate::inputs::*;

const BATCH_ACTIONS: InputDef = InputDef::new("batchActions", "Batch Actions", Kind::Code)
    .required()
    .comments("A list of up to 1000 create, update or delete actions to perform. Each action must have a 'collection' and an 'action' (create, update or delete). Create or update actions must also have 'data' and can include a boolean 'returnRepresentation' which determines if the full record should be returned after being created or updated. Update or delete actions must also have an entity key.")
    .default(
        r#"[
  {
    "collection": "msevtmgt_events",
    "action": "create",
    "returnRepresentation": true,
    "data": {
      "msevtmgt_name": "Test Event 1",
      "msevtmgt_eventtype": "100000002"
    }
  },
  {
    "collection": "msevtmgt_events",
    "action": "update",
    "key": "00000000-0000-0000-0000-000000000002",
    "returnRepresentation": true,
    "data": {
      "msevtmgt_name": "Test Event 2",
      "msevtmgt_eventtype": "100000002"
    }
  },
  {
    "collection": "msevtmgt_events",
    "action": "delete",
    "key": "00000000-0000-0000-0000-000000000002"
  }
]"#,
    );

pub const ACTION: ActionDef = ActionDef {
    key: "batch-entity-actions",
    label: "Batch Entity Actions",
    description: "Perform multiple create/update/delete actions on Microsoft Dynamics 365 CRM entity records.",
    group: Some("CRM"),
    inputs: &[CONNECTION, BATCH_ACTIONS],
    example_output: None,
    run: None,
};
