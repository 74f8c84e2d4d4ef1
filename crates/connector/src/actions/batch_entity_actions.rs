//! Batch Entity Actions: up to 1000 creates, updates and deletes in one `$batch` request, as one
//! change set (all or nothing) or as independent requests, with one result per item in order.

use dataverse::batch::{BatchPart, BatchResponse, BatchWriter, decode, encode};
use dataverse::keys::RecordKey;
use dataverse::retry::RetryPolicy;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::actions::{ActionDef, Context, Run};
use crate::client::{Request, random_hex};
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
    .comments("Apply every action in one change set: if one fails, none is applied. At most 1000 actions; items may then refer to earlier items with {\"ref\": name}.");

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
    ],
    example_output: Some(
        r#"{"results":[{"index":0,"collection":"accounts","action":"create","outcome":"succeeded","status":204,"id":"00000000-0000-0000-0000-000000000002"}],"succeeded":1,"failed":0,"notRun":0,"batches":1}"#,
    ),
    run: Run::Text(run),
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
    // Every batch body is written (and every lookup resolved) before anything is sent.
    let bodies = encode_items(context, &items, all_or_nothing)?;

    let mut output = Output::new(items.len());
    let mut batches = 0;
    if all_or_nothing {
        batches = 1;
        let (body, content_type) = bodies.into_iter().next().unwrap_or_default();
        let answer = send_encoded(context, input, body, content_type, false)?;
        let answers = answer.responses()?;
        let by_id: HashMap<&str, &BatchResponse> = answers
            .iter()
            .filter_map(|answer| answer.content_id.map(|id| (id, answer)))
            .collect();
        let failed = answers
            .iter()
            .find(|answer| !(200..300).contains(&answer.status));
        for (index, item) in items.iter().enumerate() {
            let content_id = (index + 1).to_string();
            let result = match failed {
                Some(failure) if failure.content_id == Some(content_id.as_str()) => {
                    item_failure(index, item, failure)
                }
                Some(_) => ItemResult::new(index, item, "rolled-back"),
                None => match by_id.get(content_id.as_str()) {
                    Some(answer) => item_success(context, index, item, answer)?,
                    None => ItemResult::new(index, item, "not-run"),
                },
            };
            output.push(&result)?;
        }
    } else {
        let mut stopped = false;
        for (chunk, (body, content_type)) in bodies.into_iter().enumerate() {
            let offset = chunk * MAX_ITEMS;
            let size = MAX_ITEMS.min(items.len() - offset);
            let chunk_items = items.iter().enumerate().skip(offset).take(size);
            if stopped {
                for (index, item) in chunk_items {
                    output.push(&ItemResult::new(index, item, "not-run"))?;
                }
                continue;
            }
            batches += 1;
            let answer = send_encoded(context, input, body, content_type, continue_on_error)?;
            let answers = answer.responses()?;
            for (index, item) in chunk_items {
                let result = match answers.get(index - offset) {
                    Some(answer) if (200..300).contains(&answer.status) => {
                        item_success(context, index, item, answer)?
                    }
                    Some(answer) => {
                        stopped |= !continue_on_error;
                        item_failure(index, item, answer)
                    }
                    None => {
                        stopped = true;
                        ItemResult::new(index, item, "not-run")
                    }
                };
                output.push(&result)?;
            }
        }
    }
    Ok(output.finish(batches))
}

/// Writes the `$batch` bodies for `items`: one change set, or one batch of independent
/// requests per [`MAX_ITEMS`] items. Returns each body with its content type.
fn encode_items(
    context: &Context,
    items: &[Item],
    all_or_nothing: bool,
) -> Result<Vec<(String, String)>> {
    let root_path = context.client.api_root_path();
    let mut bodies = Vec::with_capacity(items.len().div_ceil(MAX_ITEMS));
    let mut writer: Option<BatchWriter> = None;
    for (index, item) in items.iter().enumerate() {
        let writer = match &mut writer {
            Some(writer) if all_or_nothing || index % MAX_ITEMS != 0 => writer,
            open => {
                if let Some(full) = open.take() {
                    bodies.push(full.finish());
                }
                // Room for the requests of a typical create, to write without regrowing.
                let room = items.len().saturating_sub(index).min(MAX_ITEMS) * 256;
                let mut fresh = BatchWriter::with_capacity(&random_hex(12), room);
                if all_or_nothing {
                    fresh.begin_change_set();
                }
                open.insert(fresh)
            }
        };
        let resolve = |name: &str| -> Option<(String, String)> {
            items[..index]
                .iter()
                .position(|earlier| earlier.reference == Some(name))
                .map(|position| {
                    (
                        items[position].collection.to_string(),
                        format!("${}", position + 1),
                    )
                })
        };
        let refs: Option<RefResolver> = if all_or_nothing { Some(&resolve) } else { None };
        let body = match item.data {
            None => None,
            Some(data) => Some(json_text(&*bind_lookups(
                context,
                item.collection,
                data,
                &BATCH_ACTIONS,
                &format_args!("item {index}: "),
                refs,
            )?)),
        };
        let mut target = String::with_capacity(root_path.len() + item.collection.len() + 48);
        target.push_str(&root_path);
        target.push('/');
        target.push_str(item.collection);
        if let Some(key) = &item.key {
            target.push_str(&key.segment());
        }
        let mut headers = [("", ""); 3];
        let mut count = 0;
        if item.action == "update" {
            headers[count] = ("If-Match", "*");
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
        let method = match item.action {
            "create" => "POST",
            "delete" => "DELETE",
            _ => "PATCH",
        };
        let content_id = all_or_nothing.then(|| (index + 1).to_string());
        writer.request(
            method,
            &target,
            &headers[..count],
            body.as_deref(),
            content_id.as_deref(),
        );
    }
    if let Some(last) = writer {
        bodies.push(last.finish());
    }
    Ok(bodies)
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
}

impl BatchAnswer {
    /// The inner responses, change set members included, in order, borrowed from the answer.
    pub(crate) fn responses(&self) -> Result<Vec<BatchResponse<'_>>> {
        decode(&self.content_type, &self.text).map_err(|problem| malformed(problem.to_string()))
    }
}

/// Encodes `parts` and sends them as one `$batch`.
pub(crate) fn send_batch(
    context: &Context,
    input: &Input,
    parts: Vec<BatchPart>,
    continue_on_error: bool,
) -> Result<BatchAnswer> {
    let (body, content_type) = encode(&parts, &random_hex(12));
    drop(parts);
    send_encoded(context, input, body, content_type, continue_on_error)
}

/// Sends an encoded `$batch` body.
fn send_encoded(
    context: &Context,
    input: &Input,
    body: String,
    content_type: String,
    continue_on_error: bool,
) -> Result<BatchAnswer> {
    let mut request =
        Request::new("POST", context.client.api_url("$batch")).header("Content-Type", content_type);
    if continue_on_error {
        request = request.header("Prefer", "odata.continue-on-error");
    }
    request.body = body.into_bytes();
    let request = impersonate(request, input)?;
    // 429 and 503 mean nothing in the batch ran, so only they are retried: a batch whose
    // answer was lost may have applied some items.
    let response = context
        .client
        .send(request, RetryPolicy::RECORDS.not_idempotent())?;
    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .to_string();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/mixed")
    {
        response.into_success()?;
        return Err(malformed(format!(
            "the $batch answer is {content_type:?}, not multipart/mixed"
        )));
    }
    let text = String::from_utf8(response.body)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
    Ok(BatchAnswer { content_type, text })
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
