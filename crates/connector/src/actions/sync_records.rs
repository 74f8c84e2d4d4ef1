//! Sync Records: one-way sync of source records into a table, matched by an alternate key (or
//! the primary ID), in batches. Each record comes back as created, updated, unchanged or
//! failed; records whose mapped values already match are not written, so running the same
//! input twice changes nothing the second time.

use dataverse::batch::{BatchPart, BatchRequest};
use dataverse::bulk::UPSERT_MULTIPLE;
use dataverse::keys::{KeyValue, RecordKey};
use dataverse::odata::string_literal;
use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::actions::batch_entity_actions::send_batch;
use crate::actions::{ActionDef, Run};
use crate::bulk::{self, BulkTable, WRITE_PATH, WritePath};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{bind_lookups, explain, json_text, unknown_set_error};
use crate::switches::{BYPASS_CUSTOM_LOGIC, DETECT_DUPLICATES, SUPPRESS_FLOW_TRIGGERS};

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
    .comments("How many records are read and written per round trip: per $batch, or per UpsertMultiple request where the table has it (at most 100 on elastic tables, as Microsoft recommends)")
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
        WRITE_PATH,
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
        DETECT_DUPLICATES,
    ],
    example_output: Some(
        r#"{"created":1,"updated":0,"unchanged":0,"failed":0,"batches":0,"bulkRequests":1,"path":"bulk","results":[{"index":0,"key":"productnumber='P-1'","outcome":"created","id":"00000000-0000-0000-0000-000000000002","via":"bulk"}]}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

/// A write of a chunk, before it is sent.
struct Pending {
    position: usize,
    key_text: String,
    outcome: &'static str,
    /// The row's ID, when it exists.
    id: Option<Value>,
    body: Map<String, Value>,
}

/// How a write ended.
enum Written {
    /// Written by a bulk request.
    Bulk,
    /// Written through `$batch`; the ID its answer names.
    Batch(Option<String>),
    /// Refused with this status and error.
    Failed(u16, Value),
    /// The batch stopped before it.
    NotRun,
}

/// A record as a target of `UpsertMultiple`: its data, `@odata.type`, and its key — the primary
/// ID in the body, or an alternate key as the relative URL `@odata.id` ("The `@odata.id`
/// annotation identifies the record with a relative URL", the UpsertMultiple reference,
/// learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/upsertmultiple).
fn upsert_target(
    table: &BulkTable,
    entity_set: &str,
    key: &RecordKey,
    body: &Map<String, Value>,
) -> String {
    let mut target = body.clone();
    match key {
        RecordKey::Id(id) => {
            target.insert(table.primary_id.clone(), Value::String(id.clone()));
        }
        RecordKey::Alternate(_) => {
            target.insert(
                "@odata.id".to_string(),
                Value::String(format!("{entity_set}{}", key.segment())),
            );
        }
    }
    target.insert(
        "@odata.type".to_string(),
        Value::String(dataverse::bulk::target_type(&table.logical_name)),
    );
    json_text(&target)
}

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
    let path = WritePath::of(input);
    // Upserts by key write the same values however often they are sent, so the bulk path
    // needs no names of its own: a lost answer is simply sent again.
    let bulk_table = match path {
        WritePath::Batch => None,
        _ => bulk::Tables::default()
            .get(context, entity_set, path, &[UPSERT_MULTIPLE])?
            .filter(|table| table.has(UPSERT_MULTIPLE)),
    };
    let switches = crate::switches::headers(input);
    let mut batches = 0usize;
    let mut bulk_requests = 0usize;

    let mut results: Vec<Value> = Vec::with_capacity(targets.len());
    for (chunk_index, chunk) in targets.chunks(batch_size).enumerate() {
        let offset = chunk_index * batch_size;
        let existing = read_existing(context, entity_set, &table.primary_id, &match_on, chunk)?;
        let mut pending: Vec<Pending> = Vec::new();
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
            let outcome = if current.is_some() {
                "updated"
            } else {
                "created"
            };
            let id = current.and_then(|row| row.get(&table.primary_id).cloned());
            pending.push(Pending {
                position,
                key_text,
                outcome,
                id,
                body: body.into_owned(),
            });
        }
        // What each pending write ended with, by its place in `pending`.
        let mut written: Vec<Option<Written>> = (0..pending.len()).map(|_| None).collect();
        if let Some(bulk_table) = &bulk_table {
            let targets: Vec<String> = pending
                .iter()
                .map(|write| {
                    upsert_target(
                        bulk_table,
                        entity_set,
                        &chunk[write.position].key,
                        &write.body,
                    )
                })
                .collect();
            let places: Vec<usize> = (0..pending.len()).collect();
            let parts: Vec<(Vec<usize>, String)> =
                bulk::split(&places, bulk_table.chunk(batch_size), |place| {
                    targets[place].len()
                })
                .into_iter()
                .map(|part| {
                    let body =
                        dataverse::bulk::body_of(part.iter().map(|&place| targets[place].as_str()));
                    (part, body)
                })
                .collect();
            // Parts that name no record twice are independent upserts: sent together, up to
            // the service's `x-ms-dop-hint` at once (Send parallel requests,
            // https://learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests),
            // then read one by one as below.
            let keys: std::collections::HashSet<String> = pending
                .iter()
                .map(|write| chunk[write.position].key.segment())
                .collect();
            if parts.len() > 1 && keys.len() == pending.len() {
                let requests = parts
                    .iter()
                    .map(|(_, body)| {
                        bulk::request(context, input, bulk_table, UPSERT_MULTIPLE, body.clone())
                            .map(|request| (request, RetryPolicy::RECORDS))
                    })
                    .collect::<Result<Vec<_>>>()?;
                context.client.send_ahead(requests);
            }
            for (part, body) in parts {
                bulk_requests += 1;
                match bulk::send(context, input, bulk_table, UPSERT_MULTIPLE, body)? {
                    bulk::Answer::Written { .. } => {
                        for &place in &part {
                            written[place] = Some(Written::Bulk);
                        }
                    }
                    bulk::Answer::Refused {
                        error,
                        failed: Some(failed),
                    } if bulk_table.elastic && !failed.is_empty() => {
                        // An elastic table wrote every record but the ones listed.
                        for (slot, &place) in part.iter().enumerate() {
                            written[place] = Some(
                                match failed.iter().find(|f| f.request_index == slot) {
                                    None => Written::Bulk,
                                    Some(failure) => Written::Failed(
                                        failure.status_code,
                                        json!({"code": error.service_code, "message": if failed.len() == 1 {
                                        error.message.clone()
                                    } else {
                                        format!("this record failed with status {} ({} records of the bulk request failed; the first said: {})", failure.status_code, failed.len(), error.message)
                                    }, "hint": error.hint}),
                                    ),
                                },
                            );
                        }
                    }
                    bulk::Answer::Refused { error, .. } => {
                        // A standard table rolled the request back: its records go through
                        // $batch below, each with its own result.
                        crate::log::info(format!(
                            "UpsertMultiple of {} records on {entity_set} was refused ({}); sending them through $batch",
                            part.len(),
                            error.message
                        ));
                    }
                }
            }
        }
        let fallback: Vec<usize> = (0..pending.len())
            .filter(|&place| written[place].is_none())
            .collect();
        if !fallback.is_empty() {
            let writes: Vec<BatchPart> = fallback
                .iter()
                .map(|&place| {
                    let write = &pending[place];
                    let mut headers = vec![(
                        "Content-Type".to_string(),
                        "application/json; type=entry".to_string(),
                    )];
                    // The switches go in each part: each is the write they change.
                    headers.extend(
                        switches
                            .iter()
                            .map(|(name, value)| (name.to_string(), value.to_string())),
                    );
                    BatchPart::Single(BatchRequest {
                        method: "PATCH".to_string(),
                        url: format!(
                            "{root_path}/{entity_set}{}",
                            chunk[write.position].key.segment()
                        ),
                        headers,
                        body: Some(json_text(&write.body)),
                        content_id: None,
                    })
                })
                .collect();
            batches += 1;
            // Upserts by key: sending them twice changes nothing more than once.
            let answer = send_batch(context, input, writes, true, true)?;
            let answers = answer.responses()?;
            for (slot, &place) in fallback.iter().enumerate() {
                written[place] = Some(match answers.get(slot) {
                    Some(answer) if (200..300).contains(&answer.status) => Written::Batch(
                        answer
                            .header("odata-entityid")
                            .and_then(dataverse::keys::id_from_entity_url)
                            .filter(|id| dataverse::guid::is_guid(id)),
                    ),
                    Some(answer) => {
                        let service = dataverse::error::read_error(
                            answer.status,
                            answer.body.as_bytes(),
                            None,
                        );
                        Written::Failed(
                            answer.status,
                            json!({"code": service.code, "message": service.message, "hint": service.hint}),
                        )
                    }
                    None => Written::NotRun,
                });
            }
        }
        // A bulk upsert answers no IDs: the rows it created are read back by key, in one query.
        let created_by_bulk: Vec<&Target> = pending
            .iter()
            .zip(&written)
            .filter(|(write, done)| {
                write.outcome == "created" && matches!(done, Some(Written::Bulk))
            })
            .map(|(write, _)| &chunk[write.position])
            .collect();
        let created_rows = if created_by_bulk.is_empty() {
            Vec::new()
        } else {
            let owned: Vec<Target> = created_by_bulk
                .iter()
                .map(|target| Target {
                    key: target.key.clone(),
                    body: Map::new(),
                })
                .collect();
            read_existing(context, entity_set, &table.primary_id, &match_on, &owned)?
        };
        for (write, done) in pending.into_iter().zip(written) {
            let index = offset + write.position;
            let key_text = write.key_text;
            let outcome = write.outcome;
            chunk_results[write.position] = Some(match done {
                Some(Written::Bulk) => {
                    let id = write
                        .id
                        .or_else(|| {
                            created_rows
                                .iter()
                                .find(|row| same_key(row, &match_on, &chunk[write.position].key))
                                .and_then(|row| row.get(&table.primary_id).cloned())
                        })
                        .unwrap_or(Value::Null);
                    json!({"index": index, "key": key_text, "outcome": outcome, "id": id, "via": "bulk"})
                }
                Some(Written::Batch(entity_id)) => {
                    let id = entity_id
                        .map(Value::String)
                        .or(write.id)
                        .unwrap_or(Value::Null);
                    json!({"index": index, "key": key_text, "outcome": outcome, "id": id})
                }
                Some(Written::Failed(status, error)) => {
                    json!({"index": index, "key": key_text, "outcome": "failed", "status": status, "error": error})
                }
                Some(Written::NotRun) | None => {
                    json!({"index": index, "key": key_text, "outcome": "failed",
                    "error": {"message": "the batch stopped before this record"}})
                }
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
        "batches": batches,
        "bulkRequests": bulk_requests,
        "path": match (bulk_requests, batches) {
            (0, _) => "batch",
            (_, 0) => "bulk",
            _ => "bulk+batch",
        },
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_host::{Script, Signed, header};

    const ACCOUNTS: &str = r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#;
    const HAS_UPSERT: &str = r#"{"value":[{"sdkmessagefilterid":"00000000-0000-0000-0000-0000000000f3","sdkmessageid":{"name":"UpsertMultiple"}}]}"#;
    const OLD: &str = "00000000-0000-0000-0000-0000000000b1";
    const NEW: &str = "00000000-0000-0000-0000-0000000000b2";

    fn sync(script: &Script, input: Value) -> Value {
        let signed = Signed::new();
        let context = signed.context(script);
        let input = Input::parse(ACTION.inputs, &input.to_string()).unwrap();
        run(&context, &input).unwrap()
    }

    fn input() -> Value {
        json!({"entityType": "accounts", "matchOn": "accountnumber", "bypassCustomLogic": "sync",
        "records": [
            {"accountnumber": "A-1", "name": "same"},
            {"accountnumber": "A-2", "name": "changed"},
            {"accountnumber": "A-3", "name": "new"},
        ]})
    }

    fn existing() -> String {
        json!({"value": [
            {"accountid": "00000000-0000-0000-0000-0000000000b0", "accountnumber": "A-1", "name": "same"},
            {"accountid": OLD, "accountnumber": "A-2", "name": "before"},
        ]})
        .to_string()
    }

    #[test]
    fn changed_and_new_records_go_in_one_upsert_multiple_addressed_by_their_alternate_keys() {
        let script = Script::new()
            .json(200, ACCOUNTS)
            .json(200, HAS_UPSERT)
            .json(200, r#"{"TableType":"Standard"}"#)
            .json(200, &existing())
            .answer_with(204, &[], "")
            .json(
                200,
                &json!({"value": [{"accountid": NEW, "accountnumber": "A-3"}]}).to_string(),
            );
        let output = sync(&script, input());
        let outcomes: Vec<&str> = output["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["unchanged", "updated", "created"]);
        assert_eq!(output["results"][1]["id"], OLD);
        assert_eq!(output["results"][2]["id"], NEW, "read back by key");
        assert_eq!(output["results"][2]["via"], "bulk");
        assert_eq!(output["path"], "bulk");
        let sent = script.sent();
        assert_eq!(sent.len(), 6);
        let upsert = &sent[4];
        assert!(
            upsert
                .url
                .ends_with("/accounts/Microsoft.Dynamics.CRM.UpsertMultiple")
        );
        assert_eq!(
            header(&upsert.headers, "MSCRM.BypassBusinessLogicExecution"),
            Some("CustomSync")
        );
        let body: Value = serde_json::from_slice(&upsert.body).unwrap();
        assert_eq!(
            body,
            json!({"Targets": [
                {"accountnumber": "A-2", "name": "changed", "@odata.id": "accounts(accountnumber='A-2')", "@odata.type": "Microsoft.Dynamics.CRM.account"},
                {"accountnumber": "A-3", "name": "new", "@odata.id": "accounts(accountnumber='A-3')", "@odata.type": "Microsoft.Dynamics.CRM.account"},
            ]})
        );
    }

    #[test]
    fn a_refused_upsert_multiple_falls_back_to_batch_upserts_with_the_switches_in_each_part() {
        let batch = "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80040203\",\"message\":\"bad name\"}}\r\n--batchresponse_1--\r\n";
        let script = Script::new()
            .json(200, ACCOUNTS)
            .json(200, HAS_UPSERT)
            .json(200, r#"{"TableType":"Standard"}"#)
            .json(200, &existing())
            .json(
                400,
                r#"{"error":{"code":"0x80040203","message":"bad name"}}"#,
            )
            .answer(200, "multipart/mixed; boundary=batchresponse_1", batch);
        let output = sync(&script, input());
        assert_eq!(output["results"][1]["outcome"], "updated");
        assert_eq!(output["results"][2]["outcome"], "failed");
        assert_eq!(output["results"][2]["error"]["code"], "0x80040203");
        assert_eq!(output["path"], "bulk+batch");
        let sent = script.sent();
        let parts = String::from_utf8(sent[5].body.clone()).unwrap();
        assert!(parts.contains("PATCH /api/data/v9.2/accounts(accountnumber='A-3') HTTP/1.1"));
        assert_eq!(
            parts
                .matches("MSCRM.BypassBusinessLogicExecution: CustomSync")
                .count(),
            2
        );
        assert_eq!(
            header(&sent[5].headers, "MSCRM.BypassBusinessLogicExecution"),
            None
        );
    }

    #[test]
    fn the_batch_path_asks_nothing_about_bulk_messages() {
        let batch = "--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--batchresponse_1--\r\n";
        let script = Script::new()
            .json(200, ACCOUNTS)
            .json(200, &existing())
            .answer(200, "multipart/mixed; boundary=batchresponse_1", batch);
        let mut given = input();
        given["writePath"] = json!("batch");
        let output = sync(&script, given);
        assert_eq!(output["path"], "batch");
        assert_eq!(output["created"], 1);
        assert_eq!(script.sent().len(), 3);
    }
}
