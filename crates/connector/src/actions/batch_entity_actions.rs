//! Batch Entity Actions: up to 1000 creates, updates and deletes in one `$batch` request, as one
//! change set (all or nothing) or as independent requests, with one result per item in order.

use dataverse::batch::{BatchPart, BatchResponse, BatchWriter, decode, encode};
use dataverse::keys::RecordKey;
use dataverse::retry::RetryPolicy;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::client::{Request, random_hex};
use crate::context::Context;
use crate::creates::{self, IDEMPOTENCY_KEY, NewRow, RunKey};
use crate::definition::{InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{RefResolver, bind_lookups, impersonate, json_text};

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
    ],
    example_output: Some(
        r#"{"results":[{"index":0,"collection":"accounts","action":"create","outcome":"succeeded","status":204,"id":"00000000-0000-0000-0000-000000000002"}],"succeeded":1,"failed":0,"notRun":0,"batches":1}"#,
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
    let items = parse_items(input.json(BATCH_ACTIONS.key), all_or_nothing)?;
    let run_key = RunKey::of(input);
    let named = creates::named_creates(context);
    // Each create's row ID, chosen before anything is sent: the same input and key name the
    // same rows, so a resend or a rerun cannot make a second one. A change set is one write:
    // its creates are named by all of it, so a 412 proves this very change set was applied. An
    // independent item is named by its own data, so a rerun with some items fixed still meets
    // the rows the others made.
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
    };
    // Every batch body is written (and every lookup resolved) before anything is sent.
    let indices: Vec<usize> = (0..items.len()).collect();
    let groups: Vec<&[usize]> = if all_or_nothing {
        vec![&indices[..]]
    } else {
        indices.chunks(MAX_ITEMS).collect()
    };
    let mut bodies = Vec::with_capacity(groups.len());
    for group in &groups {
        bodies.push(plan.encode(group)?);
    }

    let mut output = Output::new(items.len());
    let mut batches = 0;
    let mut results: Vec<Option<ItemResult>> = (0..items.len()).map(|_| None).collect();
    if all_or_nothing {
        batches = 1;
        let (body, content_type) = bodies.into_iter().next().unwrap_or_default();
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
        return Ok(output.finish(batches));
    }

    let mut stopped = false;
    let mut done: Vec<usize> = Vec::new();
    for (group, first_body) in groups.iter().zip(bodies) {
        let mut pending: Vec<usize> = group.to_vec();
        let mut body = Some(first_body);
        while !pending.is_empty() && !stopped {
            let (encoded, content_type) = match body.take() {
                Some(encoded) => encoded,
                None => plan.encode(&pending)?,
            };
            batches += 1;
            let answer = send_or_explain(
                context,
                input,
                encoded,
                content_type,
                continue_on_error,
                named,
                &run_key,
                &done,
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
                } else if answer.status == 412 && rows[index].is_some() {
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
                results[index] = Some(result);
            }
            let found = plan.read_created(input, &met)?;
            for index in met {
                let item = &items[index];
                results[index] = Some(
                    match found
                        .get(&index)
                        .filter(|record| plan.is_own(index, record))
                    {
                        Some(record) => {
                            already_applied(index, item, rows[index].as_ref(), Some(record))
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
            done.extend_from_slice(&pending[..answered]);
            match stop_at {
                // Dataverse stopped at a create that turned out to be ours: it was not a
                // failure, so the rest of the group is sent again.
                Some(position)
                    if results[pending[position]]
                        .as_ref()
                        .is_some_and(|result| result.outcome == "succeeded") =>
                {
                    pending.drain(..=position);
                }
                Some(_) => {
                    stopped = true;
                    pending.clear();
                }
                None if answered < pending.len() => {
                    // Fewer answers than requests without a failure: the rest did not run.
                    stopped = true;
                    pending.clear();
                }
                None => pending.clear(),
            }
        }
    }
    for (index, result) in results.into_iter().enumerate() {
        let result = result.unwrap_or_else(|| ItemResult::new(index, &items[index], "not-run"));
        output.push(&result)?;
    }
    Ok(output.finish(batches))
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
}

impl Plan<'_, '_> {
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
            // At most four headers: written in place, no allocation per item.
            let mut headers = [("", ""); 4];
            let mut count = 0;
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
                    Some(BatchPart::Single(dataverse::batch::BatchRequest {
                        method: "GET".to_string(),
                        url: format!("{root_path}/{}({})", self.items[index].collection, row.id),
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
            let first = pending.first().copied().unwrap_or(0);
            let last = pending.last().copied().unwrap_or(0);
            let certain = match (done.first(), done.last()) {
                (Some(a), Some(b)) => format!("items {a}–{b} were answered before; "),
                _ => String::new(),
            };
            failure.message = format!(
                "{certain}items {first}–{last} may or may not have been applied: {}",
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

    fn finish(self, batches: usize) -> String {
        let mut output = String::with_capacity(self.results.len() + 128);
        for (name, count) in [
            ("{\"succeeded\":", self.succeeded),
            (",\"failed\":", self.failed),
            (",\"rolledBack\":", self.rolled_back),
            (",\"notRun\":", self.not_run),
            (",\"batches\":", batches),
        ] {
            output.push_str(name);
            push_number(&mut output, count);
        }
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
            json!({"idempotencyKey": "flow-42", "batchActions": [
                {"collection": "accounts", "action": "create", "data": {"name": "A"}},
            ]}),
        );
        assert_eq!(outcomes(&output), ["succeeded"]);
        assert_eq!(output["results"][0]["id"], id.as_str());
        let sent = String::from_utf8(script.sent()[0].body.clone()).unwrap();
        assert!(
            sent.contains(&format!("PATCH /api/data/v9.2/accounts({id}) HTTP/1.1")),
            "{sent}"
        );
        assert!(sent.contains("If-None-Match: *"), "{sent}");
    }
}
