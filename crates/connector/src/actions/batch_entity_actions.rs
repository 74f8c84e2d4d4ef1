//! Batch Entity Actions: up to 1000 creates, updates and deletes in one `$batch` request, as one
//! change set (all or nothing) or as independent requests, with one result per item in order.

use dataverse::batch::{BatchPart, BatchResponse, BatchWriter, decode, encode};
use dataverse::bulk::{CREATE_MULTIPLE, UPDATE_MULTIPLE};
use dataverse::keys::RecordKey;
use dataverse::retry::RetryPolicy;
use std::collections::HashMap;
use std::rc::Rc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types::{ConnectorError, ErrorCode};
use crate::bulk::{self, BulkTable, WRITE_PATH, WritePath};
use crate::client::{Request, random_hex};
use crate::context::Context;
use crate::creates::{self, IDEMPOTENCY_KEY, NewRow, RunKey};
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{RefResolver, bind_lookups, impersonate, json_text};
use crate::switches::{BYPASS_CUSTOM_LOGIC, DETECT_DUPLICATES, SUPPRESS_FLOW_TRIGGERS};

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

const ALL_OR_NOTHING: InputDef = InputDef::new("allOrNothing", "All or Nothing", Kind::Boolean)
    .default("false")
    .comments("Apply every action in one change set: if one fails, none is applied. At most 1000 actions (more are refused); items may then refer to earlier items with {\"ref\": name}. Without it, more than 1000 actions are sent as several batches of 1000, one after another.");

const CONTINUE_ON_ERROR: InputDef = InputDef::new("continueOnError", "Continue On Error", Kind::Boolean)
    .default("true")
    .comments("Without All or Nothing: go on with the next actions after one fails, instead of stopping there");

const BULK_BATCH_SIZE: InputDef = InputDef::new("bulkBatchSize", "Batch Size", Kind::Number)
    .comments("Records per request: per bulk request (CreateMultiple, UpdateMultiple) on a standard table, and per $batch request when Continue On Error is on; Microsoft suggests 1000 to start and fewer when requests time out or plug-ins run. Left empty, the connector spreads the records over as many requests as the service's x-ms-dop-hint runs at once, 100 to 1000 each. Elastic tables take at most 100 per bulk request, as Microsoft recommends. With Continue On Error off, $batch requests carry 1000 (they go one at a time)")
    .format(Format::Range(1, 1000));

const MAX_ITEMS: usize = 1000;

pub const ACTION: ActionDef = ActionDef {
    key: "batch-entity-actions",
    label: "Batch Entity Actions",
    description: "Perform multiple create/update/delete actions on Microsoft Dynamics 365 CRM entity records.",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        BATCH_ACTIONS,
        ALL_OR_NOTHING,
        CONTINUE_ON_ERROR,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
        IDEMPOTENCY_KEY,
        WRITE_PATH,
        BULK_BATCH_SIZE,
        BYPASS_CUSTOM_LOGIC,
        SUPPRESS_FLOW_TRIGGERS,
        DETECT_DUPLICATES,
    ],
    example_output: Some(
        r#"{"succeeded":1,"failed":0,"rolledBack":0,"notRun":0,"batches":0,"bulkRequests":1,"path":"bulk","results":[{"index":0,"collection":"accounts","action":"create","outcome":"succeeded","status":200,"id":"00000000-0000-0000-0000-000000000002","via":"bulk"}]}"#,
    ),
    run: Run::Text(run),
    dynamic_inputs: None,
};

/// One checked item of the input list, borrowing from the input.
struct Item<'a> {
    collection: &'a str,
    action: &'static str,
    key: Option<RecordKey>,
    /// The fields of a create or update; None for a delete.
    data: Option<&'a Map<String, Value>>,
    return_representation: bool,
    reference: Option<&'a str>,
}

fn run(context: &Context, input: &Input) -> Result<String> {
    let all_or_nothing = input.flag(ALL_OR_NOTHING.key);
    let continue_on_error = input.flag(CONTINUE_ON_ERROR.key);
    let path = WritePath::of(input);
    // A bulk request is one transaction per table and chunk only, and writes its records all at
    // once: it can neither make several tables one change set nor stop at the first failure in
    // input order. Asked for anyway, that is said before anything is sent.
    if path == WritePath::Bulk && all_or_nothing {
        return Err(invalid_input(
            &WRITE_PATH,
            "bulk cannot run with All or Nothing: a bulk request is all or nothing for one table and at most one request, while All or Nothing makes every action one $batch change set; choose auto or batch",
        ));
    }
    if path == WritePath::Bulk && !continue_on_error {
        return Err(invalid_input(
            &WRITE_PATH,
            "bulk cannot run with Continue On Error off: a bulk request writes many actions at once, so it cannot stop at the first failed action in input order; choose auto or batch",
        ));
    }
    // The size asked for, or None: the connector then spreads each group's records over the
    // service's `x-ms-dop-hint` (Dataverse sends it with every answer, so it is known from the
    // answers before the chunks are cut, such as the bulk messages query's), or sends the
    // largest requests when no answer brought one.
    let asked_chunk = match input.number(BULK_BATCH_SIZE.key) {
        Some(_) => Some(bulk::chunk_size(
            input,
            &BULK_BATCH_SIZE,
            bulk::STANDARD_CHUNK,
        )?),
        None => None,
    };
    let items = parse_items(input.json(BATCH_ACTIONS.key), all_or_nothing)?;
    let run_key = RunKey::of(input);
    let named = creates::named_creates(context);
    // Each create's row ID, chosen before anything is sent: the same input and key name the
    // same rows, so a resend or a rerun cannot make a second one. A change set is one write:
    // its creates are named by all of it, so a 412 proves this very change set was applied. An
    // independent item is named by its own data, so a rerun with some items fixed still meets
    // the rows the others made. The bulk path sends these same IDs as the records' primary
    // keys, so a rerun may take either path and still meet the rows of the first.
    let change_set = all_or_nothing.then(|| {
        creates::fingerprint(
            "batch/all-or-nothing",
            input.json(BATCH_ACTIONS.key).unwrap_or(&Value::Null),
        )
    });
    let rows = items
        .iter()
        .enumerate()
        .map(|(index, item)| match (item.action, item.data) {
            ("create", Some(data)) if named => {
                let write = match &change_set {
                    Some(whole) => whole.clone(),
                    None => creates::fingerprint("batch/independent", data),
                };
                creates::new_row(context, item.collection, data, &run_key, index, &write).map(Some)
            }
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = Plan {
        context,
        items: &items,
        rows: &rows,
        all_or_nothing,
        switches: crate::switches::headers(input),
    };

    let mut output = Output::new(items.len());
    if all_or_nothing {
        let indices: Vec<usize> = (0..items.len()).collect();
        let (body, content_type) = plan.encode(&indices)?;
        let answer = send_or_explain(
            context,
            input,
            body,
            content_type,
            false,
            named,
            &run_key,
            &[],
            &indices,
        )?;
        let answers = answer.responses()?;
        let by_id: HashMap<&str, &BatchResponse> = answers
            .iter()
            .filter_map(|answer| answer.content_id.map(|id| (id, answer)))
            .collect();
        let failed = answers
            .iter()
            .find(|answer| !(200..300).contains(&answer.status));
        let earlier = match failed {
            Some(failure) if failure.status == 412 => plan.committed_earlier(input)?,
            _ => None,
        };
        for (index, item) in items.iter().enumerate() {
            let content_id = (index + 1).to_string();
            let result = match (&earlier, failed) {
                // The change set was applied by an earlier attempt or run: all of it, as change
                // sets are atomic; its creates met their own rows.
                (Some(records), _) => {
                    already_applied(index, item, rows[index].as_ref(), records.get(&index))
                }
                (None, Some(failure)) if failure.content_id == Some(content_id.as_str()) => {
                    item_failure(index, item, failure)
                }
                (None, Some(_)) => ItemResult::new(index, item, "rolled-back"),
                (None, None) => match by_id.get(content_id.as_str()) {
                    Some(answer) => item_success(context, index, item, answer)?,
                    None => ItemResult::new(index, item, "not-run"),
                },
            };
            output.push(&result)?;
        }
        return Ok(output.finish(1, 0));
    }

    // Bulk messages only where they cannot change what the run means: creates (named rows, so
    // exactly once) and updates by ID, without a representation to return (CreateMultiple
    // answers IDs only), going on after failures (a bulk request writes its records at once).
    let tables = bulk::Tables::default();
    let use_bulk = named && continue_on_error && path != WritePath::Batch;
    let steps = plan.steps(&tables, path, use_bulk)?;
    // The service's hint decides how many requests the `$batch` chunks are spread over. A run
    // whose answers have not brought it yet (no bulk messages question, no lookup) asks
    // WhoAmI, the cheapest request there is, instead of sending its first chunks four at a
    // time at 1,000 records each. Its failure only leaves the chunks at 1,000.
    let batched: usize = steps
        .iter()
        .flatten()
        .map(|group| match group {
            Group::Batch(indices) => indices.len(),
            Group::Bulk(..) => 0,
        })
        .sum();
    if continue_on_error
        && asked_chunk.is_none()
        && batched >= 2 * bulk::MIN_SPREAD_CHUNK
        && context.client.hinted_parallelism().is_none()
    {
        // Only the answer's headers matter; its body is not read.
        let _ = context.client.send(
            crate::client::Request::new("GET", context.client.api_url("WhoAmI")),
            RetryPolicy::RECORDS,
        );
    }
    // Every request body is written (and every lookup resolved) before anything is sent.
    let mut chunks: Vec<Chunk> = Vec::new();
    // The step of each chunk: chunks of one step may be sent together (below).
    let mut step_of: Vec<usize> = Vec::new();
    for (step_number, step) in steps.into_iter().enumerate() {
        for group in step {
            match group {
                Group::Bulk(table, message, indices) => {
                    let targets = indices
                        .iter()
                        .map(|&index| plan.target(&table, message, index))
                        .collect::<Result<Vec<String>>>()?;
                    let positions: Vec<usize> = (0..indices.len()).collect();
                    let largest = table.chunk(bulk::STANDARD_CHUNK);
                    let chunk = asked_chunk.unwrap_or_else(|| {
                        context
                            .client
                            .hinted_parallelism()
                            .map_or(largest, |hint| bulk::spread(indices.len(), hint, largest))
                    });
                    for part in bulk::split(&positions, table.chunk(chunk), |position| {
                        targets[position].len()
                    })
                    .into_iter()
                    {
                        let body = dataverse::bulk::body_of(
                            part.iter().map(|&position| targets[position].as_str()),
                        );
                        chunks.push(Chunk::Bulk {
                            table: table.clone(),
                            message,
                            indices: part.iter().map(|&position| indices[position]).collect(),
                            body,
                        });
                    }
                }
                Group::Batch(indices) => {
                    // Only independent requests run side by side: with Continue On Error off
                    // they go one at a time, so the largest requests are the fewest.
                    let size = match (asked_chunk, context.client.hinted_parallelism()) {
                        _ if !continue_on_error => MAX_ITEMS,
                        (Some(asked), _) => asked.min(MAX_ITEMS),
                        (None, Some(hint)) => bulk::spread(indices.len(), hint, MAX_ITEMS),
                        (None, None) => MAX_ITEMS,
                    };
                    for part in indices.chunks(size) {
                        chunks.push(Chunk::Batch {
                            body: plan.encode(part)?,
                            indices: part.to_vec(),
                        });
                    }
                }
            }
        }
        step_of.resize(chunks.len(), step_number);
    }
    drop(tables);

    let mut progress = Progress {
        results: (0..items.len()).map(|_| None).collect(),
        batches: 0,
        bulk_requests: 0,
        done: Vec::new(),
        stopped: false,
    };
    let sender = Sender {
        plan: &plan,
        input,
        continue_on_error,
        named,
        run_key: &run_key,
    };
    // With Continue On Error every chunk is sent whatever the others answer, so the chunks of
    // one step that share no record go to the host together, as many at once as the service's
    // `x-ms-dop-hint` says (Send parallel requests,
    // https://learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests),
    // and are then read in input order by the same code as one at a time. A record's writes
    // in different steps, or in two chunks of one step, keep their order.
    let mut chunks = chunks.into_iter().zip(step_of).peekable();
    while let Some((chunk, step)) = chunks.next() {
        let mut group = vec![chunk];
        if continue_on_error {
            let mut records = plan.records_of(group[0].indices());
            while let Some((next, _)) = chunks.next_if(|(next, next_step)| {
                *next_step == step && plan.records_of(next.indices()).is_disjoint(&records)
            }) {
                records.extend(plan.records_of(next.indices()));
                group.push(next);
            }
        }
        let together = group.len() > 1 && !progress.stopped;
        if together {
            let requests = group
                .iter()
                .map(|chunk| sender.request(chunk))
                .collect::<Result<Vec<_>>>()?;
            context.client.send_ahead(requests);
        }
        let mut stopped = progress.stopped;
        for chunk in group {
            // Sent together, each chunk's answer is read even if another's stopped the run.
            if together {
                progress.stopped = false;
            }
            match chunk {
                Chunk::Bulk {
                    table,
                    message,
                    indices,
                    body,
                } => sender.bulk(&table, message, indices, body, &mut progress)?,
                Chunk::Batch { indices, body } => {
                    sender.batch(indices, Some(body), &mut progress)?
                }
            }
            stopped |= progress.stopped;
        }
        progress.stopped = stopped;
    }
    for (index, result) in progress.results.into_iter().enumerate() {
        let result = result.unwrap_or_else(|| ItemResult::new(index, &items[index], "not-run"));
        output.push(&result)?;
    }
    Ok(output.finish(progress.batches, progress.bulk_requests))
}

/// The items of one step, written by one kind of request.
enum Group {
    /// Items written by `message` on the table, in input order.
    Bulk(Rc<BulkTable>, &'static str, Vec<usize>),
    /// Items written through `$batch`, in input order.
    Batch(Vec<usize>),
}

/// One request body, written before anything is sent.
enum Chunk {
    Bulk {
        table: Rc<BulkTable>,
        message: &'static str,
        indices: Vec<usize>,
        body: String,
    },
    Batch {
        indices: Vec<usize>,
        body: (String, String),
    },
}

impl Chunk {
    fn indices(&self) -> &[usize] {
        match self {
            Chunk::Bulk { indices, .. } | Chunk::Batch { indices, .. } => indices,
        }
    }
}

/// What the sent requests have answered so far.
struct Progress<'a> {
    results: Vec<Option<ItemResult<'a>>>,
    batches: usize,
    bulk_requests: usize,
    /// Items whose answers arrived, in the order sent (for the message of an unknown outcome).
    done: Vec<usize>,
    /// Continue On Error is off and an item failed: nothing more is sent.
    stopped: bool,
}

/// Sends the chunks of an independent run.
struct Sender<'s, 'p, 'a> {
    plan: &'s Plan<'p, 'a>,
    input: &'s Input,
    continue_on_error: bool,
    named: bool,
    run_key: &'s RunKey,
}

impl<'a> Sender<'_, '_, 'a> {
    /// The request `chunk` is first sent as, and its retry policy: the same as
    /// [`Sender::bulk`] and [`Sender::batch`] send, so an answer sent ahead is theirs.
    fn request(&self, chunk: &Chunk) -> Result<(Request, RetryPolicy)> {
        match chunk {
            Chunk::Bulk {
                table,
                message,
                body,
                ..
            } => Ok((
                bulk::request(self.plan.context, self.input, table, message, body.clone())?,
                RetryPolicy::RECORDS,
            )),
            Chunk::Batch {
                body: (encoded, content_type),
                ..
            } => batch_request(
                self.plan.context,
                self.input,
                encoded.clone(),
                content_type.clone(),
                self.continue_on_error,
                self.named,
            ),
        }
    }

    /// One bulk request, and what its answer means for each of its items.
    fn bulk(
        &self,
        table: &BulkTable,
        message: &'static str,
        indices: Vec<usize>,
        body: String,
        progress: &mut Progress<'a>,
    ) -> Result<()> {
        let plan = self.plan;
        let items = plan.items;
        progress.bulk_requests += 1;
        let answer = match bulk::send(plan.context, self.input, table, message, body) {
            Ok(answer) => answer,
            Err(failure) => return Err(self.unknown_outcome(failure, progress, &indices)),
        };
        match answer {
            bulk::Answer::Written { status, body } => {
                // The service's IDs when it lists one per record; they are the ones sent.
                let ids = dataverse::bulk::created_ids(&body)
                    .ok()
                    .filter(|ids| ids.len() == indices.len());
                for (position, &index) in indices.iter().enumerate() {
                    let item = &items[index];
                    let id = match (&ids, &plan.rows[index]) {
                        (Some(ids), _) => Some(ids[position].clone()),
                        (None, Some(row)) => Some(row.id.clone()),
                        (None, None) => item
                            .key
                            .as_ref()
                            .and_then(RecordKey::id)
                            .map(str::to_string),
                    };
                    progress.results[index] = Some(ItemResult {
                        status: Some(status),
                        id,
                        via: Some("bulk"),
                        ..ItemResult::new(index, item, "succeeded")
                    });
                }
                progress.done.extend_from_slice(&indices);
                Ok(())
            }
            bulk::Answer::Refused {
                error,
                failed: Some(failed),
            } if table.elastic && !failed.is_empty() => {
                // An elastic table wrote every record but the ones listed.
                let mut own_candidates = Vec::new();
                for (position, &index) in indices.iter().enumerate() {
                    let item = &items[index];
                    let failure = failed.iter().find(|f| f.request_index == position);
                    let result = match failure {
                        None => ItemResult {
                            status: Some(if message == dataverse::bulk::CREATE_MULTIPLE {
                                200
                            } else {
                                204
                            }),
                            id: plan.rows[index]
                                .as_ref()
                                .map(|row| row.id.clone())
                                .or_else(|| {
                                    item.key
                                        .as_ref()
                                        .and_then(RecordKey::id)
                                        .map(str::to_string)
                                }),
                            via: Some("bulk"),
                            ..ItemResult::new(index, item, "succeeded")
                        },
                        Some(failure) => {
                            // A create whose own ID exists may be this run's from an attempt
                            // whose answer was lost: read back below.
                            if plan.rows[index]
                                .as_ref()
                                .is_some_and(|row| row.given_in.is_none())
                            {
                                own_candidates.push(index);
                            }
                            ItemResult {
                                status: Some(failure.status_code),
                                error: Some(ItemError {
                                    code: error.service_code.clone(),
                                    message: if failed.len() == 1 {
                                        error.message.clone()
                                    } else {
                                        format!(
                                            "this record failed with status {} ({} records of the bulk request failed; the first said: {})",
                                            failure.status_code,
                                            failed.len(),
                                            error.message
                                        )
                                    },
                                    hint: error.hint.clone(),
                                }),
                                via: Some("bulk"),
                                ..ItemResult::new(index, item, "failed")
                            }
                        }
                    };
                    progress.results[index] = Some(result);
                }
                let found = plan.read_created(self.input, &own_candidates)?;
                for index in own_candidates {
                    if let Some(record) = found.get(&index).filter(|r| plan.is_own(index, r)) {
                        progress.results[index] = Some(ItemResult {
                            via: Some("bulk"),
                            ..already_applied(
                                index,
                                &items[index],
                                plan.rows[index].as_ref(),
                                Some(record),
                            )
                        });
                    }
                }
                progress.done.extend_from_slice(&indices);
                Ok(())
            }
            bulk::Answer::Refused { error, .. }
                if table.elastic && message == dataverse::bulk::CREATE_MULTIPLE =>
            {
                // An elastic table without the list of failed records: some may be written. A
                // create is not sent again (an upsert by ID outside the record's partition
                // could make a second record); each is read back in its partition instead:
                // found, it is this run's; not found, it failed with the request's error.
                let found = plan.read_created(self.input, &indices)?;
                for &index in &indices {
                    let item = &items[index];
                    let result = match found.get(&index).filter(|r| plan.is_own(index, r)) {
                        // Written, by this request or an earlier attempt: nothing tells which.
                        Some(_) => ItemResult {
                            id: plan.rows[index].as_ref().map(|row| row.id.clone()),
                            via: Some("bulk"),
                            ..ItemResult::new(index, item, "succeeded")
                        },
                        None => ItemResult {
                            status: error.http_status,
                            error: Some(ItemError {
                                code: error.service_code.clone(),
                                message: error.message.clone(),
                                hint: error.hint.clone(),
                            }),
                            via: Some("bulk"),
                            ..ItemResult::new(index, item, "failed")
                        },
                    };
                    progress.results[index] = Some(result);
                }
                progress.done.extend_from_slice(&indices);
                Ok(())
            }
            bulk::Answer::Refused { error, .. } => {
                // A standard table rolled the whole request back ("On Error behavior with
                // standard tables"), so nothing of it was written by this attempt. Its items go
                // through `$batch`, each with its own result; the creates keep their IDs and
                // If-None-Match, so one whose row an earlier, lost attempt made meets that row
                // and is reported as already created instead of being made twice. An elastic
                // table's updates without a list of failures are sent again the same way: with
                // If-Match: * they never create.
                crate::log::info(format!(
                    "{} of {} items on {} was refused ({}); sending them through $batch",
                    message,
                    indices.len(),
                    table.entity_set,
                    error.message
                ));
                self.batch(indices, None, progress)
            }
        }
    }

    /// A failure whose outcome is unknown (no usable answer after the retries) says which items
    /// are certainly answered, which are unknown, and how to finish; others stay as they are.
    fn unknown_outcome(
        &self,
        mut failure: ConnectorError,
        progress: &Progress,
        pending: &[usize],
    ) -> ConnectorError {
        if failure.http_status.is_some() && failure.code != ErrorCode::MalformedResponse {
            return failure;
        }
        let certain = if progress.done.is_empty() {
            String::new()
        } else {
            format!("items {} were answered before; ", ranges(&progress.done))
        };
        failure.message = format!(
            "{certain}items {} may or may not have been applied: {}",
            ranges(pending),
            failure.message
        );
        failure.hint = Some(self.run_key.resume_hint());
        failure
    }

    /// Sends `group` through `$batch` (its body already written, or written now), resending
    /// what Dataverse did not run after a failure that turned out to be a create of our own.
    fn batch(
        &self,
        group: Vec<usize>,
        first_body: Option<(String, String)>,
        progress: &mut Progress<'a>,
    ) -> Result<()> {
        let plan = self.plan;
        let items = plan.items;
        let context = plan.context;
        let continue_on_error = self.continue_on_error;
        let mut pending = group;
        let mut body = first_body;
        while !pending.is_empty() && !progress.stopped {
            let (encoded, content_type) = match body.take() {
                Some(encoded) => encoded,
                None => plan.encode(&pending)?,
            };
            progress.batches += 1;
            let answer = send_or_explain(
                context,
                self.input,
                encoded,
                content_type,
                continue_on_error,
                self.named,
                self.run_key,
                &progress.done,
                &pending,
            )?;
            let lost = answer.lost_answers > 0;
            let answers = answer.responses()?;
            // Creates that met an existing row with their own ID: read back below.
            let mut met: Vec<usize> = Vec::new();
            let mut stop_at: Option<usize> = None;
            for (position, &index) in pending.iter().enumerate() {
                let item = &items[index];
                let Some(answer) = answers.get(position) else {
                    break;
                };
                let result = if (200..300).contains(&answer.status) {
                    item_success(context, index, item, answer)?
                } else if answer.status == 412 && plan.rows[index].is_some() {
                    met.push(index);
                    ItemResult {
                        status: Some(412),
                        ..ItemResult::new(index, item, "failed")
                    }
                } else if answer.status == 404 && item.action == "delete" && lost {
                    // An earlier attempt, whose answer was lost, may have deleted it, or it may
                    // never have existed: nothing tells which, so it is not called a success.
                    let mut result = item_failure(index, item, answer);
                    if let Some(error) = &mut result.error {
                        error.hint = Some("an earlier attempt of this batch lost its answer: it may have deleted this record, or the record never existed; check the table".to_string());
                    }
                    result
                } else {
                    item_failure(index, item, answer)
                };
                if result.outcome == "failed" && !continue_on_error {
                    stop_at = Some(position);
                }
                progress.results[index] = Some(result);
            }
            let found = plan.read_created(self.input, &met)?;
            for index in met {
                let item = &items[index];
                progress.results[index] = Some(
                    match found
                        .get(&index)
                        .filter(|record| plan.is_own(index, record))
                    {
                        Some(record) => {
                            already_applied(index, item, plan.rows[index].as_ref(), Some(record))
                        }
                        None => {
                            let position = pending.iter().position(|&p| p == index).unwrap_or(0);
                            let answer = answers.get(position);
                            match answer {
                                Some(answer) => item_failure(index, item, answer),
                                None => ItemResult::new(index, item, "failed"),
                            }
                        }
                    },
                );
            }
            let answered = answers.len().min(pending.len());
            progress.done.extend_from_slice(&pending[..answered]);
            match stop_at {
                // Dataverse stopped at a create that turned out to be ours: it was not a
                // failure, so the rest of the group is sent again.
                Some(position)
                    if progress.results[pending[position]]
                        .as_ref()
                        .is_some_and(|result| result.outcome == "succeeded") =>
                {
                    pending.drain(..=position);
                }
                Some(_) => {
                    progress.stopped = true;
                    pending.clear();
                }
                None if answered < pending.len() => {
                    // Fewer answers than requests without a failure: the rest did not run.
                    progress.stopped = true;
                    pending.clear();
                }
                None => pending.clear(),
            }
        }
        Ok(())
    }
}

/// Item numbers as ranges: `0–499`, `0–3, 7, 9–12`.
fn ranges(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut start = None;
    let mut last = 0;
    for index in sorted {
        match start {
            Some(_) if index == last + 1 => {}
            Some(first) => {
                parts.push(range(first, last));
                start = Some(index);
            }
            None => start = Some(index),
        }
        last = index;
    }
    if let Some(first) = start {
        parts.push(range(first, last));
    }
    parts.join(", ")
}

fn range(first: usize, last: usize) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}–{last}")
    }
}

/// An item an earlier attempt or run applied: a create reports its row (read back), others
/// report success.
fn already_applied<'a>(
    index: usize,
    item: &Item<'a>,
    row: Option<&NewRow>,
    record: Option<&Value>,
) -> ItemResult<'a> {
    let record = record.filter(|_| item.return_representation).cloned();
    ItemResult {
        id: row.map(|row| row.id.clone()).or_else(|| {
            item.key
                .as_ref()
                .and_then(RecordKey::id)
                .map(str::to_string)
        }),
        record,
        already: Some(if item.action == "create" {
            "alreadyCreated"
        } else {
            "appliedEarlier"
        }),
        ..ItemResult::new(index, item, "succeeded")
    }
}

/// What the batch writes, shared by the first send and any resend of a part of it.
struct Plan<'p, 'a> {
    context: &'p Context<'p>,
    items: &'p [Item<'a>],
    rows: &'p [Option<NewRow>],
    all_or_nothing: bool,
    /// The data-load switches' headers, sent with each write. In a `$batch` they go in every
    /// part, beside the write they change: they are optional parameters "to modify the behavior
    /// of individual requests" ("Use optional parameters",
    /// learn.microsoft.com/power-apps/developer/data-platform/optional-parameters), and a
    /// batch part is such a request. A bulk request carries them itself.
    switches: Vec<(&'static str, &'static str)>,
}

impl Plan<'_, '_> {
    /// The bulk message that may write the item at `index`, if any.
    fn bulk_message(&self, index: usize) -> Option<&'static str> {
        let item = &self.items[index];
        if item.return_representation || item.data.is_none() {
            return None;
        }
        match (item.action, &item.key) {
            ("create", _) if self.rows[index].is_some() => Some(CREATE_MULTIPLE),
            ("update", Some(RecordKey::Id(_))) => Some(UPDATE_MULTIPLE),
            _ => None,
        }
    }

    /// The records the items at `indices` write or bind lookups to.
    fn records_of(&self, indices: &[usize]) -> std::collections::HashSet<String> {
        indices
            .iter()
            .flat_map(|&index| {
                self.identity(index)
                    .into_iter()
                    .chain(self.lookup_identities(index))
            })
            .collect()
    }

    /// What names the record the item at `index` writes, when anything does.
    fn identity(&self, index: usize) -> Option<String> {
        let item = &self.items[index];
        let collection = item.collection.to_ascii_lowercase();
        match (&self.rows[index], &item.key) {
            (Some(row), _) => Some(format!("{collection}({})", row.id.to_ascii_lowercase())),
            (None, Some(RecordKey::Id(id))) => {
                Some(format!("{collection}({})", id.to_ascii_lowercase()))
            }
            (None, Some(key)) => Some(format!("{collection}{}", key.segment())),
            (None, None) => None,
        }
    }

    /// The records the item at `index` binds lookups to by ID (`{"table": ..., "id": ...}`).
    fn lookup_identities(&self, index: usize) -> Vec<String> {
        let Some(data) = self.items[index].data else {
            return Vec::new();
        };
        data.values()
            .filter_map(|value| {
                let table = value.get("table")?.as_str()?;
                let id = value.get("id")?.as_str()?;
                Some(format!(
                    "{}({})",
                    table.to_ascii_lowercase(),
                    id.to_ascii_lowercase()
                ))
            })
            .collect()
    }

    /// The independent run as steps, each a list of groups sent in the order they first
    /// appear: bulk groups of one table and message, and one `$batch` group. Within a `$batch`
    /// the items run in input order; across groups they do not, so an item that touches (or
    /// binds a lookup to) a record an earlier item of the step touched, where either is written
    /// by a bulk request, starts a new step. Two writes of one record so keep their order, and a
    /// bulk request never names a record twice.
    fn steps(
        &self,
        tables: &bulk::Tables,
        path: WritePath,
        use_bulk: bool,
    ) -> Result<Vec<Vec<Group>>> {
        if !use_bulk {
            return Ok(vec![vec![Group::Batch((0..self.items.len()).collect())]]);
        }
        let mut steps: Vec<Vec<Group>> = Vec::new();
        // The records the current step touches, and whether a bulk request writes them.
        let mut touched: HashMap<String, bool> = HashMap::new();
        for (index, item) in self.items.iter().enumerate() {
            let bulk = match self.bulk_message(index) {
                Some(message) => tables
                    .get(
                        self.context,
                        item.collection,
                        path,
                        &[CREATE_MULTIPLE, UPDATE_MULTIPLE],
                    )?
                    .filter(|table| table.has(message))
                    .map(|table| (table, message)),
                None => None,
            };
            let identity = self.identity(index);
            let conflict = identity
                .iter()
                .chain(self.lookup_identities(index).iter())
                .any(|id| {
                    touched
                        .get(id)
                        .is_some_and(|by_bulk| *by_bulk || bulk.is_some())
                });
            if conflict || steps.is_empty() {
                steps.push(Vec::new());
                touched.clear();
            }
            if let Some(id) = identity {
                let by_bulk = touched.entry(id).or_insert(false);
                *by_bulk |= bulk.is_some();
            }
            let Some(step) = steps.last_mut() else {
                continue;
            };
            match bulk {
                Some((table, message)) => {
                    let group = step.iter_mut().find_map(|group| match group {
                        Group::Bulk(t, m, indices) if Rc::ptr_eq(t, &table) && *m == message => {
                            Some(indices)
                        }
                        _ => None,
                    });
                    match group {
                        Some(indices) => indices.push(index),
                        None => step.push(Group::Bulk(table, message, vec![index])),
                    }
                }
                None => {
                    let group = step.iter_mut().find_map(|group| match group {
                        Group::Batch(indices) => Some(indices),
                        _ => None,
                    });
                    match group {
                        Some(indices) => indices.push(index),
                        None => step.push(Group::Batch(vec![index])),
                    }
                }
            }
        }
        Ok(steps)
    }

    /// The item at `index` as a target of a bulk message on `table`: its data with lookups
    /// bound, its primary key (the create's named row, or the update's key) and `@odata.type`.
    fn target(&self, table: &BulkTable, _message: &str, index: usize) -> Result<String> {
        let item = &self.items[index];
        let empty = Map::new();
        let data = item.data.unwrap_or(&empty);
        let bound = bind_lookups(
            self.context,
            item.collection,
            data,
            &BATCH_ACTIONS,
            &format_args!("item {index}: "),
            None,
        )?;
        let mut target = bound.into_owned();
        let id = match &self.rows[index] {
            Some(row) => {
                if let Some(column) = &row.given_in {
                    target.remove(column);
                }
                Some(row.id.clone())
            }
            None => item
                .key
                .as_ref()
                .and_then(RecordKey::id)
                .map(str::to_string),
        };
        if let Some(id) = id {
            target.insert(table.primary_id.clone(), Value::String(id));
        }
        target.insert(
            "@odata.type".to_string(),
            Value::String(dataverse::bulk::target_type(&table.logical_name)),
        );
        Ok(json_text(&target))
    }

    /// The `$batch` body for the items at `indices`: one change set, or independent requests.
    fn encode(&self, indices: &[usize]) -> Result<(String, String)> {
        let context = self.context;
        let items = self.items;
        let root_path = context.client.api_root_path();
        // Room for the requests of a typical create, to write without regrowing.
        let mut writer = BatchWriter::with_capacity(&random_hex(12), indices.len() * 256);
        if self.all_or_nothing {
            writer.begin_change_set();
        }
        for &index in indices {
            let item = &items[index];
            let row = self.rows[index].as_ref();
            let resolve = |name: &str| -> Option<(String, String)> {
                items[..index]
                    .iter()
                    .position(|earlier| earlier.reference == Some(name))
                    .map(|position| {
                        let collection = items[position].collection.to_string();
                        // A named row is bound by its ID; a plain POST by its Content-ID.
                        let reference = match &self.rows[position] {
                            Some(row) => format!("/{collection}({})", row.id),
                            None => format!("${}", position + 1),
                        };
                        (collection, reference)
                    })
            };
            let refs: Option<RefResolver> = if self.all_or_nothing {
                Some(&resolve)
            } else {
                None
            };
            let body = match item.data {
                None => None,
                Some(data) => {
                    let bound = bind_lookups(
                        context,
                        item.collection,
                        data,
                        &BATCH_ACTIONS,
                        &format_args!("item {index}: "),
                        refs,
                    )?;
                    match row.and_then(|row| row.given_in.as_deref()) {
                        // The caller's own primary ID travels in the URL.
                        Some(column) => {
                            let mut owned = bound.into_owned();
                            owned.remove(column);
                            Some(json_text(&owned))
                        }
                        None => Some(json_text(&bound)),
                    }
                }
            };
            let mut target = String::with_capacity(root_path.len() + item.collection.len() + 48);
            target.push_str(&root_path);
            target.push('/');
            target.push_str(item.collection);
            if let Some(row) = row {
                target.push('(');
                target.push_str(&row.id);
                target.push(')');
            } else if let Some(key) = &item.key {
                target.push_str(&key.segment());
            }
            // At most four headers and the three switches: written in place, no allocation per
            // item.
            let mut headers = [("", ""); 8];
            let mut count = 0;
            for &switch in self.switches.iter().take(4) {
                headers[count] = switch;
                count += 1;
            }
            if item.action == "update" {
                headers[count] = ("If-Match", "*");
                count += 1;
            }
            if row.is_some() {
                headers[count] = ("If-None-Match", "*");
                count += 1;
            }
            if item.return_representation {
                headers[count] = ("Prefer", "return=representation");
                count += 1;
            }
            if body.is_some() {
                headers[count] = ("Content-Type", "application/json; type=entry");
                count += 1;
            }
            let method = match (item.action, row) {
                ("create", None) => "POST",
                ("delete", _) => "DELETE",
                _ => "PATCH",
            };
            let content_id = self.all_or_nothing.then(|| (index + 1).to_string());
            writer.request(
                method,
                &target,
                &headers[..count],
                body.as_deref(),
                content_id.as_deref(),
            );
        }
        Ok(writer.finish())
    }

    /// Reads back the rows of the creates at `indices` (one `$batch` of GETs): the index and
    /// record of each that exists.
    fn read_created(&self, input: &Input, indices: &[usize]) -> Result<HashMap<usize, Value>> {
        let mut found = HashMap::new();
        if indices.is_empty() {
            return Ok(found);
        }
        let root_path = self.context.client.api_root_path();
        for group in indices.chunks(MAX_ITEMS) {
            let parts: Vec<BatchPart> = group
                .iter()
                .filter_map(|&index| {
                    let row = self.rows[index].as_ref()?;
                    // A row of an elastic table created in a partition is read in it
                    // ("Perform a data operation with specified partition", optional-parameters).
                    let partition = self.items[index]
                        .data
                        .and_then(|data| data.get("partitionid"))
                        .and_then(Value::as_str)
                        .map(|partition| {
                            format!(
                                "?partitionId={}",
                                dataverse::encoding::percent_encode_query_value(partition)
                            )
                        })
                        .unwrap_or_default();
                    Some(BatchPart::Single(dataverse::batch::BatchRequest {
                        method: "GET".to_string(),
                        url: format!(
                            "{root_path}/{}({}){partition}",
                            self.items[index].collection, row.id
                        ),
                        headers: Vec::new(),
                        body: None,
                        content_id: None,
                    }))
                })
                .collect();
            let answer = send_batch(self.context, input, parts, true, true)?;
            for (position, answer) in answer.responses()?.iter().enumerate() {
                if answer.status == 200
                    && let Some(&index) = group.get(position)
                {
                    let mut record: Value =
                        serde_json::from_str(answer.body).unwrap_or(Value::Null);
                    if let Some(object) = record.as_object_mut() {
                        object.remove("@odata.context");
                    }
                    found.insert(index, record);
                }
            }
        }
        Ok(found)
    }

    /// After a change set failed with 412: `Some(records)` when every create in it finds its
    /// own row, which proves an earlier attempt or run applied the whole change set.
    fn committed_earlier(&self, input: &Input) -> Result<Option<HashMap<usize, Value>>> {
        let creates: Vec<usize> = (0..self.items.len())
            .filter(|&index| self.rows[index].is_some())
            .collect();
        // Only rows named by this change set prove it ran: caller-given IDs alone do not.
        if !creates.iter().any(|&index| {
            self.rows[index]
                .as_ref()
                .is_some_and(|row| row.given_in.is_none())
        }) {
            return Ok(None);
        }
        let found = self.read_created(input, &creates)?;
        let all_own = creates.iter().all(|&index| {
            found
                .get(&index)
                .is_some_and(|record| self.is_own(index, record))
        });
        Ok(all_own.then_some(found))
    }

    /// Whether the existing row `record` met by the create at `index` is that create's own: a
    /// row named by the run key and this write always is; a row with the caller's own ID only
    /// when it holds exactly the data the item sends.
    fn is_own(&self, index: usize, record: &Value) -> bool {
        match &self.rows[index] {
            Some(row) if row.given_in.is_none() => true,
            Some(row) => self.items[index].data.is_some_and(|data| {
                let mut sent = data.clone();
                if let Some(column) = &row.given_in {
                    sent.remove(column);
                }
                crate::records::matches_row(record, &sent)
            }),
            None => false,
        }
    }
}

/// Sends one batch; when its outcome stays unknown (no usable answer after the retries), the
/// error says which items are certainly applied, which are unknown, and how to finish.
#[allow(clippy::too_many_arguments)]
fn send_or_explain(
    context: &Context,
    input: &Input,
    body: String,
    content_type: String,
    continue_on_error: bool,
    repeatable: bool,
    run_key: &RunKey,
    done: &[usize],
    pending: &[usize],
) -> Result<BatchAnswer> {
    match send_encoded(
        context,
        input,
        body,
        content_type,
        continue_on_error,
        repeatable,
    ) {
        Ok(answer) => Ok(answer),
        Err(mut failure)
            if failure.http_status.is_none() || failure.code == ErrorCode::MalformedResponse =>
        {
            // Items as ranges: the bulk path can leave a $batch of items that are not
            // neighbours in the input.
            let certain = if done.is_empty() {
                String::new()
            } else {
                format!("items {} were answered before; ", ranges(done))
            };
            failure.message = format!(
                "{certain}items {} may or may not have been applied: {}",
                ranges(pending),
                failure.message
            );
            failure.hint = Some(if repeatable {
                run_key.resume_hint()
            } else {
                "read the records back before running the batch again: its creates have no IDs of their own here".to_string()
            });
            Err(failure)
        }
        Err(failure) => Err(failure),
    }
}

/// The output JSON, written as the results come: the results first, the counts put in front
/// at the end. Written by hand, as serde would write it, because a batch has many items.
struct Output {
    results: String,
    items: usize,
    succeeded: usize,
    failed: usize,
    rolled_back: usize,
    not_run: usize,
}

impl Output {
    fn new(items: usize) -> Output {
        Output {
            results: String::with_capacity(items * 140),
            items: 0,
            succeeded: 0,
            failed: 0,
            rolled_back: 0,
            not_run: 0,
        }
    }

    fn push(&mut self, result: &ItemResult) -> Result<()> {
        match result.outcome {
            "succeeded" => self.succeeded += 1,
            "failed" => self.failed += 1,
            "rolled-back" => self.rolled_back += 1,
            _ => self.not_run += 1,
        }
        let out = &mut self.results;
        if self.items > 0 {
            out.push(',');
        }
        self.items += 1;
        out.push_str("{\"index\":");
        push_number(out, result.index);
        out.push_str(",\"collection\":");
        push_text(out, result.collection)?;
        out.push_str(",\"action\":");
        push_text(out, result.action)?;
        out.push_str(",\"outcome\":");
        push_text(out, result.outcome)?;
        if let Some(status) = result.status {
            out.push_str(",\"status\":");
            push_number(out, usize::from(status));
        }
        if let Some(id) = &result.id {
            out.push_str(",\"id\":");
            push_text(out, id)?;
        }
        if let Some(via) = result.via {
            out.push_str(",\"via\":\"");
            out.push_str(via);
            out.push('"');
        }
        if let Some(flag) = result.already {
            out.push_str(",\"");
            out.push_str(flag);
            out.push_str("\":true");
        }
        if let Some(record) = &result.record {
            out.push_str(",\"record\":");
            out.push_str(&to_json(record)?);
        }
        if let Some(error) = &result.error {
            out.push_str(",\"error\":");
            out.push_str(&to_json(error)?);
        }
        out.push('}');
        Ok(())
    }

    /// The output, with the number of `$batch` and bulk requests sent and the path taken:
    /// `batch`, `bulk`, or `bulk+batch` when some items went each way.
    fn finish(self, batches: usize, bulk_requests: usize) -> String {
        let mut output = String::with_capacity(self.results.len() + 160);
        for (name, count) in [
            ("{\"succeeded\":", self.succeeded),
            (",\"failed\":", self.failed),
            (",\"rolledBack\":", self.rolled_back),
            (",\"notRun\":", self.not_run),
            (",\"batches\":", batches),
            (",\"bulkRequests\":", bulk_requests),
        ] {
            output.push_str(name);
            push_number(&mut output, count);
        }
        output.push_str(match (bulk_requests, batches) {
            (0, _) => ",\"path\":\"batch\"",
            (_, 0) => ",\"path\":\"bulk\"",
            _ => ",\"path\":\"bulk+batch\"",
        });
        output.push_str(",\"results\":[");
        output.push_str(&self.results);
        output.push_str("]}");
        output
    }
}

fn push_number(out: &mut String, mut number: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    for digit in &digits[start..] {
        out.push(char::from(*digit));
    }
}

/// A JSON string: as it is when nothing in it needs escaping, else escaped by serde_json.
fn push_text(out: &mut String, text: &str) -> Result<()> {
    if text
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        out.push_str(&to_json(text)?);
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
    Ok(())
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|problem| {
        crate::error::error(
            crate::bindings::dynamics::connector::types::ErrorCode::Internal,
            problem.to_string(),
        )
    })
}

/// What happened to one item; written by [`Output::push`], absent fields left out.
struct ItemResult<'a> {
    index: usize,
    collection: &'a str,
    action: &'a str,
    outcome: &'static str,
    status: Option<u16>,
    id: Option<String>,
    record: Option<Value>,
    error: Option<ItemError>,
    /// `alreadyCreated`, `alreadyDeleted` or `appliedEarlier`: the item was applied by an
    /// earlier attempt or run, written as that flag set to true.
    already: Option<&'static str>,
    /// `bulk` for an item a bulk message wrote (written as `via`); items sent through `$batch`
    /// have none, as before bulk messages.
    via: Option<&'static str>,
}

#[derive(Serialize)]
struct ItemError {
    code: Option<String>,
    message: String,
    hint: Option<String>,
}

impl<'a> ItemResult<'a> {
    fn new(index: usize, item: &Item<'a>, outcome: &'static str) -> ItemResult<'a> {
        ItemResult {
            index,
            collection: item.collection,
            action: item.action,
            outcome,
            status: None,
            id: None,
            record: None,
            error: None,
            already: None,
            via: None,
        }
    }
}

fn parse_items(value: Option<&Value>, all_or_nothing: bool) -> Result<Vec<Item<'_>>> {
    let Some(Value::Array(entries)) = value else {
        return Err(invalid_input(
            &BATCH_ACTIONS,
            "must be a JSON list of actions",
        ));
    };
    if entries.is_empty() {
        return Err(invalid_input(
            &BATCH_ACTIONS,
            "is empty; give at least one action",
        ));
    }
    if all_or_nothing && entries.len() > MAX_ITEMS {
        return Err(invalid_input(
            &BATCH_ACTIONS,
            format!(
                "has {} actions; All or Nothing runs one change set, which Dataverse limits to {MAX_ITEMS}",
                entries.len()
            ),
        ));
    }
    let mut items = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let bad =
            |problem: String| invalid_input(&BATCH_ACTIONS, format!("item {index}: {problem}"));
        let Value::Object(object) = entry else {
            return Err(bad(
                "must be an object with collection, action and data or key".to_string(),
            ));
        };
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "collection" | "action" | "key" | "data" | "returnRepresentation" | "ref"
            ) {
                return Err(bad(format!(
                    "has an unknown field {key:?} (fields: collection, action, key, data, returnRepresentation, ref)"
                )));
            }
        }
        let collection = object
            .get("collection")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !dataverse::odata::is_identifier(collection) {
            return Err(bad(format!(
                "collection {collection:?} is not an entity set name"
            )));
        }
        let action = match object.get("action").and_then(Value::as_str) {
            Some("create") => "create",
            Some("update") => "update",
            Some("delete") => "delete",
            other => {
                return Err(bad(format!(
                    "action must be create, update or delete, got {other:?}"
                )));
            }
        };
        let key = match object.get("key") {
            None | Some(Value::Null) if action == "create" => None,
            None | Some(Value::Null) => {
                return Err(bad(format!(
                    "a {action} needs a key (a GUID or an alternate key)"
                )));
            }
            Some(_) if action == "create" => {
                return Err(bad(
                    "a create takes no key; put the ID in data if you set it".to_string(),
                ));
            }
            Some(Value::String(text)) => {
                Some(RecordKey::parse(text).map_err(|problem| bad(format!("key: {problem}")))?)
            }
            Some(Value::Object(object)) => Some(
                RecordKey::from_object(object).map_err(|problem| bad(format!("key: {problem}")))?,
            ),
            Some(_) => {
                return Err(bad(
                    "key must be text or an object of key columns".to_string()
                ));
            }
        };
        let data = match (object.get("data"), action) {
            (None | Some(Value::Null), "delete") => None,
            (Some(_), "delete") => return Err(bad("a delete takes no data".to_string())),
            (Some(Value::Object(data)), _) => Some(data),
            _ => {
                return Err(bad(format!(
                    "a {action} needs data, a JSON object of fields and values"
                )));
            }
        };
        let return_representation = match object.get("returnRepresentation") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err(bad("returnRepresentation must be true or false".to_string())),
        };
        let reference = match object.get("ref") {
            None => None,
            Some(Value::String(name)) if !all_or_nothing => {
                return Err(bad(format!(
                    "ref {name:?} needs All or Nothing: Dataverse resolves references only inside one change set"
                )));
            }
            Some(Value::String(name))
                if items
                    .iter()
                    .any(|item: &Item| item.reference == Some(name.as_str())) =>
            {
                return Err(bad(format!("ref {name:?} is used by an earlier item")));
            }
            Some(Value::String(name)) => Some(name.as_str()),
            Some(_) => return Err(bad("ref must be text".to_string())),
        };
        items.push(Item {
            collection,
            action,
            key,
            data,
            return_representation,
            reference,
        });
    }
    Ok(items)
}

/// A `$batch` answer as received; [`BatchAnswer::responses`] reads the inner responses.
pub(crate) struct BatchAnswer {
    content_type: String,
    text: String,
    /// Attempts that ended without a usable answer before this one: when above 0, an earlier
    /// attempt may have applied some items (see [`crate::client::Response::lost_answers`]).
    pub(crate) lost_answers: u32,
}

impl BatchAnswer {
    /// The inner responses, change set members included, in order, borrowed from the answer.
    pub(crate) fn responses(&self) -> Result<Vec<BatchResponse<'_>>> {
        decode(&self.content_type, &self.text).map_err(|problem| malformed(problem.to_string()))
    }
}

/// Encodes `parts` and sends them as one `$batch`. `repeatable`: sending the batch twice
/// changes nothing more than sending it once (reads, upserts by key, named creates).
pub(crate) fn send_batch(
    context: &Context,
    input: &Input,
    parts: Vec<BatchPart>,
    continue_on_error: bool,
    repeatable: bool,
) -> Result<BatchAnswer> {
    let (body, content_type) = encode(&parts, &random_hex(12));
    drop(parts);
    send_encoded(
        context,
        input,
        body,
        content_type,
        continue_on_error,
        repeatable,
    )
}

/// The request that sends an encoded `$batch` body, and how it may be retried.
fn batch_request(
    context: &Context,
    input: &Input,
    body: String,
    content_type: String,
    continue_on_error: bool,
    repeatable: bool,
) -> Result<(Request, RetryPolicy)> {
    let mut request =
        Request::new("POST", context.client.api_url("$batch")).header("Content-Type", content_type);
    if continue_on_error {
        request = request.header("Prefer", "odata.continue-on-error");
    }
    request.body = body.into_bytes();
    let request = impersonate(request, input)?;
    let policy = if repeatable {
        RetryPolicy::RECORDS
    } else {
        RetryPolicy::RECORDS.not_idempotent()
    };
    Ok((request, policy))
}

/// Sends an encoded `$batch` body. A repeatable batch is sent again when its answer is lost,
/// cut or unreadable; any other batch only when the answer proves nothing ran (429, 503).
fn send_encoded(
    context: &Context,
    input: &Input,
    body: String,
    content_type: String,
    continue_on_error: bool,
    repeatable: bool,
) -> Result<BatchAnswer> {
    let (request, policy) = batch_request(
        context,
        input,
        body,
        content_type,
        continue_on_error,
        repeatable,
    )?;
    let mut unreadable = 0u32;
    loop {
        let response = context.client.send(request.clone(), policy)?;
        let lost_answers = response.lost_answers + unreadable;
        let content_type = response
            .header("content-type")
            .unwrap_or_default()
            .to_string();
        let problem = if !content_type
            .to_ascii_lowercase()
            .starts_with("multipart/mixed")
        {
            response.clone().into_success()?;
            format!("the $batch answer is {content_type:?}, not multipart/mixed")
        } else {
            match std::str::from_utf8(&response.body) {
                Ok(text) => match decode(&content_type, text) {
                    Ok(_) => {
                        let text = String::from_utf8(response.body).unwrap_or_default();
                        return Ok(BatchAnswer {
                            content_type,
                            text,
                            lost_answers,
                        });
                    }
                    Err(problem) => format!("the $batch answer is unreadable: {problem}"),
                },
                Err(_) => "the $batch answer is not UTF-8 text".to_string(),
            }
        };
        // A 2xx answer that cannot be read may hide applied items, like a lost one.
        if repeatable && unreadable < policy.max_retries {
            unreadable += 1;
            crate::log::info(format!("{problem}; sending the batch again"));
            continue;
        }
        return Err(malformed(problem));
    }
}

fn item_success<'a>(
    context: &Context,
    index: usize,
    item: &Item<'a>,
    answer: &BatchResponse,
) -> Result<ItemResult<'a>> {
    let record = if answer.body.trim().is_empty() {
        None
    } else {
        let mut record: Value = serde_json::from_str(answer.body).map_err(|problem| {
            malformed(format!("item {index}: the answer is not JSON: {problem}"))
        })?;
        if let Some(object) = record.as_object_mut() {
            object.remove("@odata.context");
        }
        Some(record)
    };
    let entity_id = answer.header("odata-entityid");
    let id = match (entity_id, item.key.as_ref().and_then(RecordKey::id)) {
        // No header: an item addressed by ID names its record itself.
        (None, Some(id)) => Some(id.to_string()),
        _ => crate::records::written_id(context, item.collection, entity_id, record.as_ref())?,
    };
    Ok(ItemResult {
        status: Some(answer.status),
        id,
        record,
        ..ItemResult::new(index, item, "succeeded")
    })
}

fn item_failure<'a>(index: usize, item: &Item<'a>, answer: &BatchResponse) -> ItemResult<'a> {
    let service = dataverse::error::read_error(
        answer.status,
        answer.body.as_bytes(),
        answer.header("retry-after"),
    );
    ItemResult {
        status: Some(answer.status),
        error: Some(ItemError {
            code: service.code,
            message: service.message,
            hint: service.hint,
        }),
        ..ItemResult::new(index, item, "failed")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::bindings::dynamics::connector::http::HttpError;
    use crate::test_host::{ORIGIN, Script, Signed, header};

    const FIRST: &str = "00000000-0000-0000-0000-0000000000a1";
    const SECOND: &str = "00000000-0000-0000-0000-0000000000a2";
    const THIRD: &str = "00000000-0000-0000-0000-0000000000a3";

    const ANSWER_TYPE: &str = "multipart/mixed; boundary=batchresponse_1";

    /// One inner response of a `$batch` answer.
    fn part(content_id: Option<usize>, status: &str, headers: &[&str], body: &str) -> String {
        let id = content_id
            .map(|id| format!("Content-ID: {id}\r\n"))
            .unwrap_or_default();
        let headers: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        format!(
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n{id}\r\nHTTP/1.1 {status}\r\n{headers}\r\n{body}\r\n"
        )
    }

    /// A `$batch` answer of independent responses.
    fn answer(parts: &[String]) -> String {
        let mut text: String = parts
            .iter()
            .map(|part| format!("--batchresponse_1\r\n{part}"))
            .collect();
        text.push_str("--batchresponse_1--\r\n");
        text
    }

    fn entity_id(id: &str) -> String {
        format!("OData-EntityId: {ORIGIN}/api/data/v9.2/accounts({id})")
    }

    const DUPLICATE: &str = r#"{"error":{"code":"0x80040237","message":"A record with matching key values already exists."}}"#;

    fn items(value: Value, all_or_nothing: bool) -> Result<usize> {
        parse_items(Some(&value), all_or_nothing).map(|items| items.len())
    }

    fn refused(value: Value, all_or_nothing: bool) -> String {
        let failure = items(value, all_or_nothing).expect_err("refused");
        assert_eq!(failure.field.as_deref(), Some("batchActions"));
        failure.message
    }

    #[test]
    fn items_are_checked_for_shape_before_anything_is_built() {
        let update = json!({"collection": "accounts", "action": "update", "key": FIRST, "data": {"name": "A"}});
        let cases = [
            (
                json!({"collection": "accounts"}),
                "must be a JSON list of actions",
            ),
            (json!([]), "is empty"),
            (json!([1]), "item 0: must be an object"),
            (
                json!([update, {"collection": "accounts", "action": "create", "data": {}, "id": FIRST}]),
                "item 1: has an unknown field \"id\"",
            ),
            (
                json!([{"collection": "accounts)", "action": "create", "data": {}}]),
                "collection \"accounts)\" is not an entity set name",
            ),
            (
                json!([{"collection": "accounts", "action": "merge", "data": {}}]),
                "action must be create, update or delete",
            ),
            (
                json!([{"collection": "accounts", "action": "update", "data": {}}]),
                "a update needs a key",
            ),
            (
                json!([{"collection": "accounts", "action": "create", "key": FIRST, "data": {}}]),
                "a create takes no key",
            ),
            (
                json!([{"collection": "accounts", "action": "delete", "key": FIRST, "data": {}}]),
                "a delete takes no data",
            ),
            (
                json!([{"collection": "accounts", "action": "update", "key": "accountnumber='A"}]),
                "item 0: key:",
            ),
            (
                json!([{"collection": "accounts", "action": "create", "data": [1]}]),
                "a create needs data",
            ),
            (
                json!([{"collection": "accounts", "action": "create", "data": {}, "returnRepresentation": "yes"}]),
                "returnRepresentation must be true or false",
            ),
            (
                json!([{"collection": "accounts", "action": "create", "data": {}, "ref": "a"}]),
                "needs All or Nothing",
            ),
        ];
        for (value, expected) in cases {
            let message = refused(value.clone(), false);
            assert!(message.contains(expected), "{value}: {message}");
        }
        let twice = json!([
            {"collection": "accounts", "action": "create", "data": {}, "ref": "a"},
            {"collection": "accounts", "action": "create", "data": {}, "ref": "a"},
        ]);
        assert!(refused(twice, true).contains("item 1: ref \"a\" is used by an earlier item"));
    }

    #[test]
    fn all_or_nothing_takes_at_most_one_change_set_of_1000() {
        let create = json!({"collection": "accounts", "action": "create", "data": {"name": "A"}});
        let many = Value::Array(vec![create; MAX_ITEMS + 1]);
        assert_eq!(items(many.clone(), false).unwrap(), MAX_ITEMS + 1);
        assert!(refused(many, true).contains("has 1001 actions"));
    }

    #[test]
    fn keys_come_as_text_or_objects_and_a_delete_needs_no_data() {
        let value = json!([
            {"collection": "accounts", "action": "update", "key": {"accountnumber": "A-1"}, "data": {"name": "A"}},
            {"collection": "accounts", "action": "delete", "key": FIRST},
            {"collection": "accounts", "action": "delete", "key": FIRST, "data": null},
        ]);
        let parsed = parse_items(Some(&value), false).unwrap();
        assert_eq!(
            parsed[0].key.as_ref().map(RecordKey::segment).as_deref(),
            Some("(accountnumber='A-1')")
        );
        assert_eq!(parsed[1].key.as_ref().and_then(RecordKey::id), Some(FIRST));
        assert!(parsed[2].data.is_none());
    }

    fn send(script: &Script, repeatable: bool) -> Result<Vec<(u16, Option<String>)>> {
        let signed = Signed::new();
        let context = signed.context(script);
        let input = Input::default();
        let parts = vec![BatchPart::Single(dataverse::batch::BatchRequest {
            method: "DELETE".to_string(),
            url: format!("/api/data/v9.2/accounts({FIRST})"),
            headers: Vec::new(),
            body: None,
            content_id: None,
        })];
        let answer = send_batch(&context, &input, parts, true, repeatable)?;
        let responses = answer.responses()?;
        Ok(responses
            .iter()
            .map(|response| {
                (
                    response.status,
                    response.header("odata-entityid").map(str::to_string),
                )
            })
            .collect())
    }

    #[test]
    fn a_batch_answer_is_read_into_its_inner_responses_in_order() {
        let body = answer(&[
            part(None, "204 No Content", &[&entity_id(FIRST)], ""),
            part(
                None,
                "404 Not Found",
                &["Content-Type: application/json"],
                r#"{"error":{"code":"0x80040217","message":"gone"}}"#,
            ),
        ]);
        let script = Script::new().answer(200, ANSWER_TYPE, &body);
        let responses = send(&script, false).unwrap();
        assert_eq!(
            responses,
            [
                (
                    204,
                    Some(format!("{ORIGIN}/api/data/v9.2/accounts({FIRST})"))
                ),
                (404, None)
            ]
        );
        let sent = script.sent();
        assert_eq!(sent[0].url, format!("{ORIGIN}/api/data/v9.2/$batch"));
        assert_eq!(
            header(&sent[0].headers, "prefer"),
            Some("odata.continue-on-error")
        );
        assert!(
            header(&sent[0].headers, "content-type")
                .unwrap()
                .starts_with("multipart/mixed; boundary=")
        );
    }

    #[test]
    fn an_error_answer_that_is_not_multipart_is_the_services_error() {
        let script = Script::new().json(400, DUPLICATE);
        let failure = send(&script, false).unwrap_err();
        assert_eq!(failure.http_status, Some(400));
        assert_eq!(failure.service_code.as_deref(), Some("0x80040237"));
    }

    #[test]
    fn a_success_that_is_not_multipart_is_malformed_and_not_sent_again_unless_repeatable() {
        let script = Script::new().json(200, "{}");
        let failure = send(&script, false).unwrap_err();
        assert_eq!(failure.code, ErrorCode::MalformedResponse);
        assert!(
            failure.message.contains("not multipart/mixed"),
            "{}",
            failure.message
        );
        assert_eq!(script.sent().len(), 1);

        let body = answer(&[part(None, "204 No Content", &[], "")]);
        let script = Script::new()
            .answer(
                200,
                ANSWER_TYPE,
                "--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1",
            )
            .answer(200, ANSWER_TYPE, &body);
        assert_eq!(send(&script, true).unwrap(), [(204, None)]);
        assert_eq!(script.sent().len(), 2);
    }

    fn run_batch(script: &Script, input: Value) -> Value {
        let signed = Signed::new();
        let context = signed.context(script);
        let input = Input::parse(ACTION.inputs, &input.to_string()).unwrap();
        serde_json::from_str(&run(&context, &input).unwrap()).unwrap()
    }

    fn outcomes(output: &Value) -> Vec<&str> {
        output["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|result| result["outcome"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_failed_change_set_reports_the_failing_item_and_rolls_back_the_others() {
        let body = answer(&[part(
            Some(2),
            "412 Precondition Failed",
            &["Content-Type: application/json"],
            DUPLICATE,
        )]);
        let script = Script::new().answer(200, ANSWER_TYPE, &body);
        let output = run_batch(
            &script,
            json!({"allOrNothing": true, "batchActions": [
                {"collection": "accounts", "action": "update", "key": FIRST, "data": {"name": "A"}},
                {"collection": "accounts", "action": "update", "key": {"accountnumber": "A-2"}, "data": {"name": "B"}},
                {"collection": "accounts", "action": "delete", "key": THIRD},
            ]}),
        );
        assert_eq!(outcomes(&output), ["rolled-back", "failed", "rolled-back"]);
        assert_eq!(output["results"][1]["status"], 412);
        assert_eq!(output["results"][1]["error"]["code"], "0x80040237");
        assert_eq!(
            (output["failed"].clone(), output["rolledBack"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(script.sent().len(), 1);
    }

    #[test]
    fn without_continue_on_error_the_items_after_a_failure_are_not_run() {
        let body = answer(&[
            part(None, "204 No Content", &[], ""),
            part(
                None,
                "404 Not Found",
                &["Content-Type: application/json"],
                r#"{"error":{"code":"0x80040217","message":"account With Id = a2 Does Not Exist"}}"#,
            ),
        ]);
        let script = Script::new().answer(200, ANSWER_TYPE, &body);
        let output = run_batch(
            &script,
            json!({"continueOnError": false, "batchActions": [
                {"collection": "accounts", "action": "update", "key": FIRST, "data": {"name": "A"}},
                {"collection": "accounts", "action": "update", "key": SECOND, "data": {"name": "B"}},
                {"collection": "accounts", "action": "delete", "key": THIRD},
            ]}),
        );
        assert_eq!(outcomes(&output), ["succeeded", "failed", "not-run"]);
        // An item addressed by ID names its row when the answer has no OData-EntityId.
        assert_eq!(output["results"][0]["id"], FIRST);
        assert_eq!(output["results"][1]["error"]["code"], "0x80040217");
        assert_eq!(header(&script.sent()[0].headers, "prefer"), None);
    }

    #[test]
    fn a_named_create_reports_the_row_the_answer_names() {
        let id = RunKey {
            key: "flow-42".to_string(),
        }
        .row_id(
            "accounts",
            0,
            &creates::fingerprint("batch/independent", &json!({"name": "A"})),
        );
        let body = answer(&[part(None, "204 No Content", &[&entity_id(&id)], "")]);
        let script = Script::new().answer(200, ANSWER_TYPE, &body);
        let output = run_batch(
            &script,
            json!({"idempotencyKey": "flow-42", "writePath": "batch", "batchActions": [
                {"collection": "accounts", "action": "create", "data": {"name": "A"}},
            ]}),
        );
        assert_eq!(outcomes(&output), ["succeeded"]);
        assert_eq!(output["results"][0]["id"], id.as_str());
        assert_eq!(
            (output["path"].as_str(), output["bulkRequests"].as_u64()),
            (Some("batch"), Some(0))
        );
        let sent = String::from_utf8(script.sent()[0].body.clone()).unwrap();
        assert!(
            sent.contains(&format!("PATCH /api/data/v9.2/accounts({id}) HTTP/1.1")),
            "{sent}"
        );
        assert!(sent.contains("If-None-Match: *"), "{sent}");
    }

    const ACCOUNTS: &str = r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#;
    const HAS_BULK: &str = r#"{"value":[{"sdkmessagefilterid":"00000000-0000-0000-0000-0000000000f1","sdkmessageid":{"name":"CreateMultiple"}},{"sdkmessagefilterid":"00000000-0000-0000-0000-0000000000f2","sdkmessageid":{"name":"UpdateMultiple"}}]}"#;

    /// The answers that tell the component `accounts` has the bulk messages, of `table_type`.
    fn bulk_table(script: Script, table_type: &str) -> Script {
        script
            .json(200, ACCOUNTS)
            .json(200, HAS_BULK)
            .json(200, &format!(r#"{{"TableType":"{table_type}"}}"#))
    }

    fn named(index: usize, data: Value) -> String {
        RunKey {
            key: "k1".to_string(),
        }
        .row_id(
            "accounts",
            index,
            &creates::fingerprint("batch/independent", &data),
        )
    }

    fn three_creates() -> Value {
        json!({"idempotencyKey": "k1", "suppressFlowTriggers": true, "batchActions": [
            {"collection": "accounts", "action": "create", "data": {"name": "A"}},
            {"collection": "accounts", "action": "create", "data": {"name": "B"}},
            {"collection": "accounts", "action": "create", "data": {"name": "C"}},
        ]})
    }

    fn ids(output: &Value) -> Vec<&str> {
        output["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|result| result["id"].as_str().unwrap_or(""))
            .collect()
    }

    #[test]
    fn creates_of_a_table_with_bulk_messages_go_in_one_create_multiple_with_their_named_ids() {
        let expected: Vec<String> = ["A", "B", "C"]
            .iter()
            .enumerate()
            .map(|(index, name)| named(index, json!({ "name": name })))
            .collect();
        let created = json!({"Ids": expected}).to_string();
        let script = bulk_table(Script::new(), "Standard").json(200, &created);
        let output = run_batch(&script, three_creates());
        assert_eq!(outcomes(&output), ["succeeded"; 3]);
        assert_eq!(ids(&output), expected);
        assert_eq!(output["path"], "bulk");
        assert_eq!(
            (output["bulkRequests"].as_u64(), output["batches"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(output["results"][2]["via"], "bulk");

        let sent = script.sent();
        assert_eq!(
            sent.len(),
            4,
            "table, availability, table type, one CreateMultiple"
        );
        assert!(sent[1].url.contains("sdkmessagefilters"), "{}", sent[1].url);
        let request = &sent[3];
        assert!(
            request
                .url
                .ends_with("/accounts/Microsoft.Dynamics.CRM.CreateMultiple")
        );
        assert_eq!(
            header(
                &request.headers,
                "MSCRM.SuppressCallbackRegistrationExpanderJob"
            ),
            Some("true")
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let targets = body["Targets"].as_array().unwrap();
        assert_eq!(targets.len(), 3);
        for (target, id) in targets.iter().zip(&expected) {
            assert_eq!(target["@odata.type"], "Microsoft.Dynamics.CRM.account");
            assert_eq!(target["accountid"], id.as_str());
        }
        assert_eq!(targets[1]["name"], "B");
    }

    #[test]
    fn a_refused_bulk_request_on_a_standard_table_falls_back_to_batch_and_meets_the_rows_a_lost_attempt_made()
     {
        // The first CreateMultiple's answer is lost: it was applied. The retry fails on the
        // first existing ID and rolls back whole; the fallback's named creates all meet their
        // rows, read back, and are reported as already created: three rows, never six.
        let expected: Vec<String> = ["A", "B", "C"]
            .iter()
            .enumerate()
            .map(|(index, name)| named(index, json!({ "name": name })))
            .collect();
        let exists = r#"{"error":{"code":"0x80040237","message":"Cannot insert duplicate key."}}"#;
        let precondition = |_: usize| {
            part(
                None,
                "412 Precondition Failed",
                &["Content-Type: application/json"],
                r#"{"error":{"code":"0x80040237","message":"exists"}}"#,
            )
        };
        let found = |id: &String| {
            part(
                None,
                "200 OK",
                &["Content-Type: application/json"],
                &json!({"accountid": id}).to_string(),
            )
        };
        let script = bulk_table(Script::new(), "Standard")
            .fail(HttpError::ConnectionFailed("reset".to_string()))
            .json(400, exists)
            .answer(
                200,
                ANSWER_TYPE,
                &answer(&(0..3).map(precondition).collect::<Vec<_>>()),
            )
            .answer(
                200,
                ANSWER_TYPE,
                &answer(&expected.iter().map(found).collect::<Vec<_>>()),
            );
        let output = run_batch(&script, three_creates());
        assert_eq!(outcomes(&output), ["succeeded"; 3], "{output}");
        assert_eq!(ids(&output), expected);
        assert!(
            output["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["alreadyCreated"] == true)
        );
        assert_eq!(output["path"], "bulk+batch");
        let sent = script.sent();
        let fallback = String::from_utf8(sent[5].body.clone()).unwrap();
        assert!(fallback.contains(&format!(
            "PATCH /api/data/v9.2/accounts({}) HTTP/1.1",
            expected[1]
        )));
        assert!(fallback.contains("If-None-Match: *"));
        // The switch travels in every part of the fallback too.
        assert_eq!(
            fallback
                .matches("MSCRM.SuppressCallbackRegistrationExpanderJob: true")
                .count(),
            3
        );
    }

    #[test]
    fn an_elastic_table_reports_each_failed_record_and_the_written_ones_in_input_order() {
        let details = r#"{"error":{"code":"0x80040237","message":"A record with the same id exists","@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails":"[{\"RequestIndex\":1,\"Id\":\"\",\"StatusCode\":409},{\"RequestIndex\":2,\"Id\":\"\",\"StatusCode\":400}]"}}"#;
        let expected_b = named(1, json!({"name": "B"}));
        // Record 1 exists and is this run's (its ID is named by this write); record 2 does not.
        let read_back = answer(&[
            part(
                None,
                "200 OK",
                &["Content-Type: application/json"],
                &json!({"accountid": expected_b}).to_string(),
            ),
            part(
                None,
                "404 Not Found",
                &["Content-Type: application/json"],
                r#"{"error":{"code":"0x80040217","message":"missing"}}"#,
            ),
        ]);
        let script = bulk_table(Script::new(), "Elastic")
            .json(400, details)
            .answer(200, ANSWER_TYPE, &read_back);
        let output = run_batch(&script, three_creates());
        assert_eq!(
            outcomes(&output),
            ["succeeded", "succeeded", "failed"],
            "{output}"
        );
        assert_eq!(output["results"][1]["alreadyCreated"], true);
        assert_eq!(output["results"][2]["status"], 400);
        assert!(
            output["results"][2]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("status 400"),
            "{output}"
        );
        // No fallback: an elastic table's failures are its records' own.
        assert_eq!(output["batches"], 0);
        assert_eq!(script.sent().len(), 5);
    }

    #[test]
    fn a_table_without_bulk_messages_and_items_bulk_cannot_write_go_through_batch() {
        let no_bulk = Script::new()
            .json(200, ACCOUNTS)
            .json(200, r#"{"value":[]}"#);
        let body = answer(&[
            part(None, "204 No Content", &[], ""),
            part(None, "204 No Content", &[], ""),
        ]);
        let script = no_bulk.answer(200, ANSWER_TYPE, &body);
        let output = run_batch(
            &script,
            json!({"idempotencyKey": "k1", "batchActions": [
                {"collection": "accounts", "action": "create", "data": {"name": "A"}},
                {"collection": "accounts", "action": "delete", "key": FIRST},
            ]}),
        );
        assert_eq!(outcomes(&output), ["succeeded"; 2]);
        assert_eq!(output["path"], "batch");
        assert_eq!(
            script.sent().len(),
            3,
            "no table type asked for a table without bulk"
        );
    }

    #[test]
    fn bulk_is_refused_with_all_or_nothing_or_without_continue_on_error_before_any_request() {
        let signed = Signed::new();
        let script = Script::new();
        let context = signed.context(&script);
        for extra in [
            json!({"allOrNothing": true}),
            json!({"continueOnError": false}),
        ] {
            let mut input = three_creates();
            input["writePath"] = json!("bulk");
            for (key, value) in extra.as_object().unwrap() {
                input[key] = value.clone();
            }
            let input = Input::parse(ACTION.inputs, &input.to_string()).unwrap();
            let failure = run(&context, &input).unwrap_err();
            assert_eq!(
                failure.field.as_deref(),
                Some("writePath"),
                "{}",
                failure.message
            );
        }
        assert!(script.sent().is_empty());
    }

    #[test]
    fn writes_of_one_record_keep_their_order_across_bulk_and_batch() {
        let signed = Signed::new();
        let script = bulk_table(Script::new(), "Standard");
        let context = signed.context(&script);
        let value = json!([
            {"collection": "accounts", "action": "update", "key": FIRST, "data": {"name": "A"}},
            {"collection": "accounts", "action": "create", "data": {"name": "B"}},
            {"collection": "accounts", "action": "delete", "key": FIRST},
            {"collection": "accounts", "action": "update", "key": FIRST, "data": {"name": "C"}},
            {"collection": "accounts", "action": "update", "key": SECOND, "data": {"name": "D"}},
        ]);
        let items = parse_items(Some(&value), false).unwrap();
        let rows: Vec<Option<NewRow>> = (0..items.len())
            .map(|index| {
                (index == 1).then(|| NewRow {
                    id: THIRD.to_string(),
                    given_in: None,
                })
            })
            .collect();
        let plan = Plan {
            context: &context,
            items: &items,
            rows: &rows,
            all_or_nothing: false,
            switches: Vec::new(),
        };
        let steps = plan
            .steps(&bulk::Tables::default(), WritePath::Auto, true)
            .unwrap();
        let shape: Vec<Vec<(String, Vec<usize>)>> = steps
            .iter()
            .map(|step| {
                step.iter()
                    .map(|group| match group {
                        Group::Bulk(_, message, indices) => (message.to_string(), indices.clone()),
                        Group::Batch(indices) => ("$batch".to_string(), indices.clone()),
                    })
                    .collect()
            })
            .collect();
        // The delete of FIRST follows its bulk update in a new step, and the second update of
        // FIRST follows the delete; SECOND joins that step.
        assert_eq!(
            shape,
            [
                vec![
                    ("UpdateMultiple".to_string(), vec![0]),
                    ("CreateMultiple".to_string(), vec![1])
                ],
                vec![("$batch".to_string(), vec![2])],
                vec![("UpdateMultiple".to_string(), vec![3, 4])],
            ]
        );
    }

    #[test]
    fn item_numbers_are_written_as_ranges() {
        assert_eq!(ranges(&(0..500).collect::<Vec<_>>()), "0–499");
        assert_eq!(ranges(&[9, 0, 1, 2, 3, 7, 10, 11, 12]), "0–3, 7, 9–12");
    }

    #[test]
    fn an_elastic_refusal_without_its_list_of_failures_reads_each_create_back_instead_of_resending()
    {
        let expected_a = named(0, json!({"name": "A"}));
        let read_back = answer(&[
            part(
                None,
                "200 OK",
                &["Content-Type: application/json"],
                &json!({"accountid": expected_a}).to_string(),
            ),
            part(
                None,
                "404 Not Found",
                &["Content-Type: application/json"],
                r#"{"error":{"code":"0x80040217","message":"missing"}}"#,
            ),
            part(
                None,
                "404 Not Found",
                &["Content-Type: application/json"],
                r#"{"error":{"code":"0x80040217","message":"missing"}}"#,
            ),
        ]);
        let script = bulk_table(Script::new(), "Elastic")
            .json(
                400,
                r#"{"error":{"code":"0x80040203","message":"bad value"}}"#,
            )
            .answer(200, ANSWER_TYPE, &read_back);
        let output = run_batch(&script, three_creates());
        assert_eq!(
            outcomes(&output),
            ["succeeded", "failed", "failed"],
            "{output}"
        );
        assert_eq!(output["results"][0]["id"], expected_a.as_str());
        assert_eq!(output["results"][1]["error"]["message"], "bad value");
        let sent = script.sent();
        assert_eq!(sent.len(), 5, "no create sent again");
        let reads = String::from_utf8(sent[4].body.clone()).unwrap();
        assert_eq!(reads.matches("GET ").count(), 3, "{reads}");
    }
}
