//! Batch Entity Actions: up to 1000 creates, updates and deletes in one `$batch` request, as one
//! change set (all or nothing) or as independent requests, with one result per item in order.

use dataverse::batch::{BatchPart, BatchRequest, BatchResponse, decode, encode};
use dataverse::keys::{RecordKey, id_from_entity_url};
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
use crate::records::{RefResolver, bind_lookups, impersonate};

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

/// One checked item of the input list.
struct Item {
    collection: String,
    action: &'static str,
    key: Option<RecordKey>,
    data: Map<String, Value>,
    return_representation: bool,
    reference: Option<String>,
}

fn run(context: &Context, input: &Input) -> Result<String> {
    let all_or_nothing = input.flag(ALL_OR_NOTHING.key);
    let continue_on_error = input.flag(CONTINUE_ON_ERROR.key);
    let items = parse_items(input.json(BATCH_ACTIONS.key), all_or_nothing)?;
    let root_path = context.client.api_root_path();
    // Requests are built (and lookups resolved) before anything is sent.
    let mut requests = Vec::with_capacity(items.len());
    let mut items = items;
    let bodies: Vec<Map<String, Value>> = items
        .iter_mut()
        .map(|item| std::mem::take(&mut item.data))
        .collect();
    for ((index, item), data) in items.iter().enumerate().zip(bodies) {
        let resolve = |name: &str| -> Option<(String, String)> {
            items[..index]
                .iter()
                .position(|earlier| earlier.reference.as_deref() == Some(name))
                .map(|position| {
                    (
                        items[position].collection.clone(),
                        format!("${}", position + 1),
                    )
                })
        };
        let refs: Option<RefResolver> = if all_or_nothing { Some(&resolve) } else { None };
        let prefix = format!("item {index}: ");
        let body = match item.action {
            "delete" => None,
            _ => Some(bind_lookups(
                context,
                &item.collection,
                data,
                &BATCH_ACTIONS,
                &prefix,
                refs,
            )?),
        };
        let target = match &item.key {
            Some(key) => format!("{root_path}/{}{}", item.collection, key.segment()),
            None => format!("{root_path}/{}", item.collection),
        };
        let mut headers = Vec::new();
        if item.action == "update" {
            headers.push(("If-Match".to_string(), "*".to_string()));
        }
        if item.return_representation {
            headers.push(("Prefer".to_string(), "return=representation".to_string()));
        }
        if body.is_some() {
            headers.push((
                "Content-Type".to_string(),
                "application/json; type=entry".to_string(),
            ));
        }
        requests.push(BatchRequest {
            method: match item.action {
                "create" => "POST",
                "delete" => "DELETE",
                _ => "PATCH",
            }
            .to_string(),
            url: target,
            headers,
            body: body.map(|body| Value::Object(body).to_string()),
            content_id: all_or_nothing.then(|| (index + 1).to_string()),
        });
    }

    let mut results: Vec<ItemResult> = Vec::with_capacity(items.len());
    let mut batches = 0;
    if all_or_nothing {
        batches = 1;
        let answers = send_batch(context, input, vec![BatchPart::ChangeSet(requests)], false)?;
        let by_id: HashMap<&str, &BatchResponse> = answers
            .iter()
            .filter_map(|answer| answer.content_id.as_deref().map(|id| (id, answer)))
            .collect();
        let failed = answers
            .iter()
            .find(|answer| !(200..300).contains(&answer.status));
        for (index, item) in items.iter().enumerate() {
            let content_id = (index + 1).to_string();
            let result = match failed {
                Some(failure) if failure.content_id.as_deref() == Some(content_id.as_str()) => {
                    item_failure(index, item, failure)
                }
                Some(_) => ItemResult::new(index, item, "rolled-back"),
                None => match by_id.get(content_id.as_str()) {
                    Some(answer) => item_success(context, index, item, answer)?,
                    None => ItemResult::new(index, item, "not-run"),
                },
            };
            results.push(result);
        }
    } else {
        let mut stopped = false;
        let mut remaining = requests.into_iter();
        let mut offset = 0;
        loop {
            let chunk: Vec<BatchPart> = remaining
                .by_ref()
                .take(MAX_ITEMS)
                .map(BatchPart::Single)
                .collect();
            if chunk.is_empty() {
                break;
            }
            let size = chunk.len();
            if stopped {
                for (index, item) in items.iter().enumerate().skip(offset).take(size) {
                    results.push(ItemResult::new(index, item, "not-run"));
                }
                offset += size;
                continue;
            }
            batches += 1;
            let answers = send_batch(context, input, chunk, continue_on_error)?;
            for (index, item) in items.iter().enumerate().skip(offset).take(size) {
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
                results.push(result);
            }
            offset += size;
        }
    }
    let count = |name: &str| {
        results
            .iter()
            .filter(|result| result.outcome == name)
            .count()
    };
    let summary = Summary {
        succeeded: count("succeeded"),
        failed: count("failed"),
        rolled_back: count("rolled-back"),
        not_run: count("not-run"),
        batches,
        results: &results,
    };
    serde_json::to_string(&summary).map_err(|problem| {
        crate::error::error(
            crate::bindings::dynamics::connector::types::ErrorCode::Internal,
            problem.to_string(),
        )
    })
}

/// The output: counts, then one result per input item in input order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    succeeded: usize,
    failed: usize,
    rolled_back: usize,
    not_run: usize,
    batches: usize,
    results: &'a [ItemResult<'a>],
}

/// What happened to one item.
#[derive(Serialize)]
struct ItemResult<'a> {
    index: usize,
    collection: &'a str,
    action: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

#[derive(Serialize)]
struct ItemError {
    code: Option<String>,
    message: String,
    hint: Option<String>,
}

impl<'a> ItemResult<'a> {
    fn new(index: usize, item: &'a Item, outcome: &'static str) -> ItemResult<'a> {
        ItemResult {
            index,
            collection: &item.collection,
            action: item.action,
            outcome,
            status: None,
            id: None,
            record: None,
            error: None,
        }
    }
}

fn parse_items(value: Option<&Value>, all_or_nothing: bool) -> Result<Vec<Item>> {
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
            (None | Some(Value::Null), "delete") => Map::new(),
            (Some(_), "delete") => return Err(bad("a delete takes no data".to_string())),
            (Some(Value::Object(data)), _) => data.clone(),
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
                    .any(|item: &Item| item.reference.as_deref() == Some(name)) =>
            {
                return Err(bad(format!("ref {name:?} is used by an earlier item")));
            }
            Some(Value::String(name)) => Some(name.clone()),
            Some(_) => return Err(bad("ref must be text".to_string())),
        };
        items.push(Item {
            collection: collection.to_string(),
            action,
            key,
            data,
            return_representation,
            reference,
        });
    }
    Ok(items)
}

pub(crate) fn send_batch(
    context: &Context,
    input: &Input,
    parts: Vec<BatchPart>,
    continue_on_error: bool,
) -> Result<Vec<BatchResponse>> {
    let id = random_hex(12);
    let (body, content_type) = encode(&parts, &id);
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
    let text = String::from_utf8_lossy(&response.body);
    decode(&content_type, &text).map_err(|problem| malformed(problem.to_string()))
}

fn item_success<'a>(
    context: &Context,
    index: usize,
    item: &'a Item,
    answer: &BatchResponse,
) -> Result<ItemResult<'a>> {
    let record = if answer.body.trim().is_empty() {
        None
    } else {
        let mut record: Value = serde_json::from_str(&answer.body).map_err(|problem| {
            malformed(format!("item {index}: the answer is not JSON: {problem}"))
        })?;
        if let Some(object) = record.as_object_mut() {
            object.remove("@odata.context");
        }
        Some(record)
    };
    let id = match (answer.header("odata-entityid"), &item.key, &record) {
        (Some(url), _, _) => id_from_entity_url(url),
        (None, Some(key), _) if key.id().is_some() => key.id().map(str::to_string),
        (None, _, Some(record)) => {
            match context.metadata.table(&context.client, &item.collection)? {
                Some(table) => record
                    .get(&table.primary_id)
                    .and_then(Value::as_str)
                    .map(str::to_string),
                None => None,
            }
        }
        _ => None,
    };
    Ok(ItemResult {
        status: Some(answer.status),
        id,
        record,
        ..ItemResult::new(index, item, "succeeded")
    })
}

fn item_failure<'a>(index: usize, item: &'a Item, answer: &BatchResponse) -> ItemResult<'a> {
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
