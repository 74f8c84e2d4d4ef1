//! New and Updated Records: a polling trigger that reports the rows of a table created or modified
//! since the previous poll, one event per row, with an ID that stays the same when the same
//! version of a row is seen again. It reads through Get New and Updated Records' `read_since` and
//! keeps that read's watermark in its state.

use serde_json::{Value, json};

use super::{Handlers, TriggerDef};
use crate::actions::get_new_and_updated_records::{Request, Watermark, read_since};
use crate::bindings::dynamics::connector::types::{Connection, ErrorCode};
use crate::bindings::exports::dynamics::connector::triggers::PollOutcome;
use crate::context::{Context, with_context};
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
    let watermark = state_watermark(state)?;
    with_context(connection, |context| {
        read_events(context, config, watermark.as_deref())
    })
}

/// The watermark text a poll's state holds; None without state (the first poll).
fn state_watermark(state: Option<&str>) -> Result<Option<String>> {
    match state.map(serde_json::from_str::<Value>) {
        Some(Ok(state)) => match state.get("watermark").and_then(Value::as_str) {
            Some(watermark) => Ok(Some(watermark.to_string())),
            None => Err(error(
                ErrorCode::InvalidInput,
                "the poll state has no watermark; start again without state",
            )),
        },
        Some(Err(problem)) => Err(error(
            ErrorCode::InvalidInput,
            format!("the poll state is not JSON: {problem}"),
        )),
        None => Ok(None),
    }
}

/// Reads the rows modified since `watermark` (or since the anchor date on the first poll) and
/// makes one event per row, with the state for the next poll.
fn read_events(context: &Context, config: &Input, watermark: Option<&str>) -> Result<PollOutcome> {
    let table = config.text(TABLE.key).unwrap_or_default();
    let since = match watermark {
        // A blank watermark counts as none, as a blank Watermark input does: the read starts a
        // year back, not at the anchor date, which applies to the first poll only.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::{Script, Signed};

    const ACCOUNTS: &str = r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#;
    const A: &str = r#"{"accountid":"00000000-0000-0000-0000-0000000000a1","name":"A","modifiedon":"2024-02-01T10:00:00Z"}"#;
    const B: &str = r#"{"accountid":"00000000-0000-0000-0000-0000000000a2","name":"B","modifiedon":"2024-02-01T11:00:00Z"}"#;
    const C: &str = r#"{"accountid":"00000000-0000-0000-0000-0000000000a3","name":"C","modifiedon":"2024-02-01T11:00:00Z"}"#;

    fn config() -> Input {
        Input::parse(
            TRIGGER.inputs,
            r#"{"entityType": "accounts", "anchorDate": "2024-01-31"}"#,
        )
        .unwrap()
    }

    fn page(rows: &[&str]) -> String {
        format!(r#"{{"value":[{}]}}"#, rows.join(","))
    }

    fn event_ids(outcome: &PollOutcome) -> Vec<String> {
        outcome
            .events
            .iter()
            .map(|event| {
                let event: Value = serde_json::from_str(event).unwrap();
                event["id"].as_str().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn each_row_is_reported_once_with_an_id_of_table_row_and_version() {
        let signed = Signed::new();
        let first_script = Script::new().json(200, ACCOUNTS).json(200, &page(&[A, B]));
        let first = read_events(&signed.context(&first_script), &config(), None).unwrap();
        assert_eq!(
            event_ids(&first),
            [
                "accounts:00000000-0000-0000-0000-0000000000a1:2024-02-01T10:00:00Z",
                "accounts:00000000-0000-0000-0000-0000000000a2:2024-02-01T11:00:00Z"
            ]
        );
        let sent = first_script.sent();
        assert!(
            sent[1].url.contains("2024-01-31T00:00:00Z"),
            "the first poll starts at the anchor date: {}",
            sent[1].url
        );

        // B is seen again at the same instant as C: only C is new.
        let watermark = state_watermark(Some(&first.state)).unwrap();
        let second_script = Script::new().json(200, ACCOUNTS).json(200, &page(&[B, C]));
        let second = read_events(
            &signed.context(&second_script),
            &config(),
            watermark.as_deref(),
        )
        .unwrap();
        assert_eq!(
            event_ids(&second),
            ["accounts:00000000-0000-0000-0000-0000000000a3:2024-02-01T11:00:00Z"]
        );
        let event: Value = serde_json::from_str(&second.events[0]).unwrap();
        assert_eq!(event["record"]["name"], "C");
        assert_eq!(event["recordId"], "00000000-0000-0000-0000-0000000000a3");
        let state: Value = serde_json::from_str(&second.state).unwrap();
        assert_eq!(state["complete"], true);
    }

    #[test]
    fn a_table_the_environment_lacks_gives_no_events_and_keeps_the_watermark() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, r#"{"value":[]}"#)
            .json(200, r#"{"value":[]}"#);
        let outcome = read_events(&signed.context(&script), &config(), None).unwrap();
        assert!(outcome.events.is_empty());
        let watermark = state_watermark(Some(&outcome.state)).unwrap().unwrap();
        assert!(watermark.contains("2024-01-31T00:00:00Z"), "{watermark}");
    }

    #[test]
    fn a_state_that_is_not_json_or_holds_no_watermark_is_refused() {
        assert_eq!(state_watermark(None).unwrap(), None);
        for state in ["{", r#"{"complete": true}"#, "[]"] {
            let failure = state_watermark(Some(state)).unwrap_err();
            assert_eq!(failure.code, ErrorCode::InvalidInput, "{state}");
        }
        let signed = Signed::new();
        let script = Script::new();
        let failure = read_events(&signed.context(&script), &config(), Some("{}")).unwrap_err();
        assert_eq!(failure.field.as_deref(), Some("watermark"));
        assert!(script.sent().is_empty());
    }
}
