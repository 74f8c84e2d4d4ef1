//! Sync Records: one-way sync of source records into a table, matched by an alternate key (or
//! the primary ID), in batches. Each record comes back as created, updated, unchanged or
//! failed; records whose mapped values already match are not written, so running the same
//! input twice changes nothing the second time.

use dataverse::batch::{BatchPart, BatchRequest};
use dataverse::keys::{KeyValue, RecordKey};
use dataverse::odata::string_literal;
use serde_json::{Map, Value, json};

use crate::actions::batch_entity_actions::send_batch;
use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{bind_lookups, explain, json_text, unknown_set_error};

const RECORDS: InputDef = InputDef::new("records", "Records", Kind::Code)
    .required()
    .comments("The source records: a JSON list of objects")
    .example(r#"[{"sku": "P-1", "title": "Widget", "price": 9.5}]"#);

const FIELD_MAPPING: InputDef = InputDef::new("fieldMapping", "Field Mapping", Kind::KeyValueList)
    .comments("Source field to table column; fields not listed are not synced. Empty: every source field is a column of the same name")
    .example(r#"{"sku": "productnumber", "title": "name", "price": "price"}"#);

const MATCH_ON: InputDef = InputDef::new("matchOn", "Match On", Kind::StringList)
    .required()
    .comments("The table column(s) that identify a record: an alternate key (such as accountnumber) or the primary ID column")
    .example("productnumber")
    .format(Format::Identifiers);

const BATCH_SIZE: InputDef = InputDef::new("batchSize", "Batch Size", Kind::Number)
    .default("100")
    .comments("How many records are read and written per round trip")
    .format(Format::Range(1, 1000));

pub const ACTION: ActionDef = ActionDef {
    key: "sync-records",
    label: "Sync Records",
    description: "Create or update records of a table from a list of source records, matched by an alternate key; unchanged records are left alone.",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        ENTITY_TYPE,
        RECORDS,
        FIELD_MAPPING,
        MATCH_ON,
        BATCH_SIZE,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"created":1,"updated":0,"unchanged":0,"failed":0,"results":[{"index":0,"key":"productnumber='P-1'","outcome":"created","id":"00000000-0000-0000-0000-000000000002"}]}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

/// A source record mapped to the table.
struct Target {
    key: RecordKey,
    body: Map<String, Value>,
}

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let match_on: Vec<String> = input
        .list(MATCH_ON.key)
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let batch_size = input.number(BATCH_SIZE.key).unwrap_or(100.0) as usize;
    let mut targets = map_records(input, &match_on)?;
    let table = context
        .metadata
        .table(&context.client, entity_set)?
        .ok_or_else(|| unknown_set_error(context, entity_set))?;
    // Matching on the primary ID column addresses rows by ID, `accounts(<guid>)`; any other
    // column, GUID-valued or not, stays an alternate key.
    if match_on.len() == 1 && match_on[0] == table.primary_id {
        for target in &mut targets {
            if let Some(id) = primary_id_of(&target.key) {
                target.key = RecordKey::Id(id);
            }
        }
    }
    let root_path = context.client.api_root_path();

    let mut results: Vec<Value> = Vec::with_capacity(targets.len());
    for (chunk_index, chunk) in targets.chunks(batch_size).enumerate() {
        let offset = chunk_index * batch_size;
        let existing = read_existing(context, entity_set, &table.primary_id, &match_on, chunk)?;
        let mut writes = Vec::new();
        let mut pending = Vec::new();
        let mut chunk_results: Vec<Option<Value>> = vec![None; chunk.len()];
        for (position, target) in chunk.iter().enumerate() {
            let index = offset + position;
            let key_text = target.key.display();
            let current = existing
                .iter()
                .find(|row| same_key(row, &match_on, &target.key));
            let body = bind_lookups(
                context,
                entity_set,
                &target.body,
                &RECORDS,
                &format_args!("record {index}: "),
                None,
            )?;
            if let Some(row) = current.filter(|row| crate::records::matches_row(row, &body)) {
                let id = row.get(&table.primary_id).cloned().unwrap_or(Value::Null);
                chunk_results[position] = Some(
                    json!({"index": index, "key": key_text, "outcome": "unchanged", "id": id}),
                );
                continue;
            }
            let address = target.key.segment();
            writes.push(BatchPart::Single(BatchRequest {
                method: "PATCH".to_string(),
                url: format!("{root_path}/{entity_set}{address}"),
                headers: vec![(
                    "Content-Type".to_string(),
                    "application/json; type=entry".to_string(),
                )],
                body: Some(json_text(&body)),
                content_id: None,
            }));
            let outcome = if current.is_some() {
                "updated"
            } else {
                "created"
            };
            let id = current.and_then(|row| row.get(&table.primary_id).cloned());
            pending.push((position, key_text, outcome, id));
        }
        let answer = if writes.is_empty() {
            None
        } else {
            // Upserts by key: sending them twice changes nothing more than once.
            Some(send_batch(context, input, writes, true, true)?)
        };
        let answers = match &answer {
            Some(answer) => answer.responses()?,
            None => Vec::new(),
        };
        for (answer_index, (position, key_text, outcome, id)) in pending.into_iter().enumerate() {
            let index = offset + position;
            chunk_results[position] = Some(match answers.get(answer_index) {
                Some(answer) if (200..300).contains(&answer.status) => {
                    let id = answer
                        .header("odata-entityid")
                        .and_then(dataverse::keys::id_from_entity_url)
                        .filter(|id| dataverse::guid::is_guid(id))
                        .map(Value::String)
                        .or(id)
                        .unwrap_or(Value::Null);
                    json!({"index": index, "key": key_text, "outcome": outcome, "id": id})
                }
                Some(answer) => {
                    let service =
                        dataverse::error::read_error(answer.status, answer.body.as_bytes(), None);
                    json!({"index": index, "key": key_text, "outcome": "failed", "status": answer.status,
                        "error": {"code": service.code, "message": service.message, "hint": service.hint}})
                }
                None => json!({"index": index, "key": key_text, "outcome": "failed",
                    "error": {"message": "the batch stopped before this record"}}),
            });
        }
        results.extend(chunk_results.into_iter().flatten());
    }
    let count = |name: &str| {
        results
            .iter()
            .filter(|result| result["outcome"] == name)
            .count()
    };
    Ok(json!({
        "created": count("created"),
        "updated": count("updated"),
        "unchanged": count("unchanged"),
        "failed": count("failed"),
        "results": results,
    }))
}

/// Maps and checks every record before any request.
fn map_records(input: &Input, match_on: &[String]) -> Result<Vec<Target>> {
    let Some(Value::Array(records)) = input.json(RECORDS.key) else {
        return Err(invalid_input(&RECORDS, "must be a JSON list of objects"));
    };
    let mapping = input.pairs(FIELD_MAPPING.key);
    for (_, column) in mapping {
        if !dataverse::odata::is_identifier(column) {
            return Err(invalid_input(
                &FIELD_MAPPING,
                format!("{column:?} is not a column name"),
            ));
        }
    }
    let mut targets = Vec::with_capacity(records.len());
    let mut seen = std::collections::HashSet::new();
    for (index, record) in records.iter().enumerate() {
        let Value::Object(source) = record else {
            return Err(invalid_input(
                &RECORDS,
                format!("record {index} is not an object"),
            ));
        };
        let mut body = Map::new();
        if mapping.is_empty() {
            body = source.clone();
        } else {
            for (from, to) in mapping {
                if let Some(value) = source.get(from) {
                    body.insert(to.to_ascii_lowercase(), value.clone());
                }
            }
        }
        let mut key = Map::new();
        for column in match_on {
            match body.get(column) {
                Some(value @ (Value::String(_) | Value::Number(_))) => {
                    key.insert(column.clone(), value.clone());
                }
                _ => {
                    return Err(invalid_input(
                        &RECORDS,
                        format!(
                            "record {index} has no text or number for the match column {column:?}"
                        ),
                    ));
                }
            }
        }
        let key = RecordKey::from_object(&key)
            .map_err(|problem| invalid_input(&RECORDS, format!("record {index}: {problem}")))?;
        if !seen.insert(key.display()) {
            return Err(invalid_input(
                &RECORDS,
                format!("record {index} repeats the key {}", key.display()),
            ));
        }
        targets.push(Target { key, body });
    }
    Ok(targets)
}

/// The GUID of a one-column key whose value is a GUID.
fn primary_id_of(key: &RecordKey) -> Option<String> {
    match key {
        RecordKey::Alternate(parts) => match parts.as_slice() {
            [(_, KeyValue::Text(text))] => dataverse::guid::parse(text),
            _ => None,
        },
        RecordKey::Id(_) => None,
    }
}

/// The rows that already exist for a chunk's keys, with the mapped columns.
fn read_existing(
    context: &Context,
    entity_set: &str,
    primary_id: &str,
    match_on: &[String],
    chunk: &[Target],
) -> Result<Vec<Value>> {
    let mut columns: Vec<String> = chunk
        .iter()
        .flat_map(|target| target.body.iter())
        // Lookup values name other records; their columns are not selectable by that name.
        .filter(|(column, value)| !column.contains('@') && !value.is_object())
        .map(|(column, _)| column)
        .cloned()
        .collect();
    columns.extend(match_on.iter().cloned());
    columns.push(primary_id.to_string());
    columns.sort();
    columns.dedup();
    let conditions: Vec<String> = chunk
        .iter()
        .map(|target| match &target.key {
            RecordKey::Id(id) => format!("{primary_id} eq {id}"),
            RecordKey::Alternate(parts) => {
                let terms: Vec<String> = parts
                    .iter()
                    .map(|(column, value)| match value {
                        KeyValue::Text(text) => format!("{column} eq {}", string_literal(text)),
                        KeyValue::Number(number) => format!("{column} eq {number}"),
                    })
                    .collect();
                format!("({})", terms.join(" and "))
            }
        })
        .collect();
    let select: Vec<String> = columns
        .into_iter()
        .filter(|c| dataverse::odata::is_identifier(c))
        .collect();
    // Long keys make long filters: the keys are read in as many GETs as keep each URL well
    // inside Dataverse's 32,768 characters.
    const FILTER_BUDGET: usize = 16_000;
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut size = 0;
    for condition in conditions {
        let length = dataverse::encoding::percent_encode_query_value(&condition).len() + 8;
        match groups.last_mut() {
            Some(group) if size + length <= FILTER_BUDGET => group.push(condition),
            _ => {
                groups.push(vec![condition]);
                size = 0;
            }
        }
        size += length;
    }
    let mut rows = Vec::new();
    for group in groups {
        let options = dataverse::query::QueryOptions {
            select: select.clone(),
            filter: Some(group.join(" or ")),
            ..Default::default()
        };
        let answer = context
            .client
            .get_json(&format!("{entity_set}{}", options.to_query_string()))
            .map_err(|failure| explain(context, entity_set, failure))?;
        if let Value::Object(mut fields) = answer
            && let Some(Value::Array(found)) = fields.remove("value")
        {
            rows.extend(found);
        }
    }
    Ok(rows)
}

fn same_key(row: &Value, match_on: &[String], key: &RecordKey) -> bool {
    match key {
        RecordKey::Id(id) => match_on
            .first()
            .and_then(|column| row.get(column))
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(id)),
        RecordKey::Alternate(parts) => {
            parts
                .iter()
                .all(|(column, value)| match (row.get(column), value) {
                    (Some(Value::String(stored)), KeyValue::Text(text)) => stored == text,
                    (Some(Value::Number(stored)), KeyValue::Number(number)) => {
                        stored.as_f64() == number.parse::<f64>().ok()
                    }
                    _ => false,
                })
        }
    }
}
