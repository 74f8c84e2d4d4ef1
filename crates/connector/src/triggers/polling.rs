//! New and Updated Records: a polling trigger that reports the rows of a table created or modified
//! since the previous poll, one event per row, with an ID that stays the same when the same
//! version of a row is seen again. It reads through Get New and Updated Records' `read_since` and
//! keeps that read's watermark in its state.

use serde_json::{Value, json};

use super::{Handlers, TriggerDef};
use crate::actions::get_new_and_updated_records::{Request, Watermark, read_since};
use crate::bindings::dynamics::connector::types::{Connection, ErrorCode};
use crate::bindings::exports::dynamics::connector::triggers::PollOutcome;
use crate::context::with_context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, error};
use crate::input::Input;
use crate::inputs::CONNECTION;
use crate::records::Caller;

/// Rows per page and per poll; the state's watermark picks up the rest at the next poll.
const ROWS_PER_POLL: usize = 5000;

const TABLE: InputDef = InputDef::new("entityType", "Entity Type", Kind::Text)
    .required()
    .comments("The table to watch, as its entity set name (accounts)")
    .format(Format::Identifier);

const FIELDS: InputDef = InputDef::new("fieldNames", "Field Name", Kind::StringList)
    .comments("The columns each event carries; empty for all")
    .format(Format::Identifiers);

const SINCE: InputDef = InputDef::new("anchorDate", "Anchor Date", Kind::Text)
    .comments("The first poll reports rows modified at or after this instant (ISO 8601); defaults to one year back");

pub const TRIGGER: TriggerDef = TriggerDef {
    key: "new-and-updated-records",
    label: "New and Updated Records",
    description: "Polls a table for rows created or modified since the previous poll; each event carries a stable ID.",
    inputs: &[CONNECTION, TABLE, FIELDS, SINCE],
    handlers: Handlers::Polling { poll },
};

/// One poll: the rows modified since the state's watermark, as events with stable IDs. The state
/// is checked before the connection is read.
fn poll(connection: &Connection, config: &Input, state: Option<&str>) -> Result<PollOutcome> {
    let table = config.text(TABLE.key).unwrap_or_default();
    let watermark = match state.map(serde_json::from_str::<Value>) {
        Some(Ok(state)) => match state.get("watermark").and_then(Value::as_str) {
            Some(watermark) => Some(watermark.to_string()),
            None => {
                return Err(error(
                    ErrorCode::InvalidInput,
                    "the poll state has no watermark; start again without state",
                ));
            }
        },
        Some(Err(problem)) => {
            return Err(error(
                ErrorCode::InvalidInput,
                format!("the poll state is not JSON: {problem}"),
            ));
        }
        None => None,
    };
    with_context(connection, |context| {
        let since = match watermark.as_deref() {
            // A blank watermark counts as none, as a blank Watermark input does: the read starts
            // a year back, not at the anchor date, which applies to the first poll only.
            Some(text) if text.trim().is_empty() => Watermark::from_anchor(None)?,
            Some(text) => Watermark::parse(text)?,
            None => Watermark::from_anchor(config.text(SINCE.key))?,
        };
        let request = Request {
            entity_set: table,
            fields: config.list(FIELDS.key),
            since,
            page_size: ROWS_PER_POLL as u32,
            max_records: ROWS_PER_POLL,
            caller: Caller::default(),
        };
        let mut records = Vec::new();
        let changes = read_since(context, &request, &mut |rows| {
            for row in rows {
                let record: Value = serde_json::from_str(row.get())
                    .map_err(|problem| error(ErrorCode::Internal, problem.to_string()))?;
                records.push(record);
            }
            Ok(())
        })?;
        let primary_id = changes.primary_id.as_deref();
        let events = records
            .iter()
            .map(|record| {
                let record_id = primary_id.and_then(|column| record[column].as_str()).unwrap_or_default();
                let modified = record["modifiedon"].as_str().unwrap_or_default();
                json!({"id": format!("{table}:{record_id}:{modified}"), "table": table, "recordId": record_id, "modifiedOn": modified, "record": record}).to_string()
            })
            .collect();
        let state =
            json!({"watermark": changes.next_watermark.to_text(), "complete": changes.complete})
                .to_string();
        Ok(PollOutcome { events, state })
    })
}
