//! Finance and Operations: what the component does differently when a connection's service is
//! F&O's OData root (`<environment>/data`).
//!
//! Sources (learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata, "Open
//! Data Protocol (OData)"): entities are addressed by every field of their key
//! (`CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`), names are case-sensitive; reads
//! see the user's default company unless `?cross-company=true`; `$metadata` describes the
//! entities; `$batch` takes change sets that apply all or nothing. F&O has no `WhoAmI`, no
//! FetchXML, no `EntityDefinitions`, no change tracking through OData and no upsert by
//! `If-None-Match`: the actions that rely on them are refused here with the reason, before any
//! request. Keyed requests carry `cross-company=true`, since the key's `dataAreaId` names the
//! company; reads of a set without it see the default company, as F&O documents.

use dataverse::encoding::percent_encode_query_value;
use dataverse::environment::Service;
use dataverse::keys::RecordKey;
use dataverse::odata::is_identifier;
use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::bindings::dynamics::connector::types::{ConnectorError, ErrorCode};
use crate::client::{Request, Response};
use crate::context::Context;
use crate::error::{Result, error, invalid_field, invalid_input};
use crate::input::Input;
use crate::inputs::{
    ENTITY_ID, ENTITY_TYPE, ETAG, EXPAND, FIELD_NAMES, FIELD_VALUES, FILTER, IMPERSONATE_OBJECT_ID,
    IMPERSONATE_USER_ID,
};

/// True when the connection's service is Finance & Operations.
pub fn is_fno(context: &Context) -> bool {
    context.client.settings.environment.service == Service::FinanceOperations
}

/// The actions with no F&O counterpart, and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "get-current-user",
        "F&O OData has no WhoAmI function (the connection test reads the service document instead)",
    ),
    (
        "run-fetch-xml-query",
        "FetchXML is Dataverse's query language; F&O OData takes $filter (use Query Entities)",
    ),
    (
        "upsert-entity",
        "F&O OData has no upsert: a PATCH to a missing key answers 404 and If-None-Match is not honoured (use Get Entity, then Create Entity or Update Entity)",
    ),
    (
        "sync-records",
        "it writes through Dataverse's UpsertMultiple and alternate keys, which F&O does not have",
    ),
    (
        "get-entity-metadata",
        "EntityDefinitions is Dataverse's metadata API; F&O describes its entities in $metadata (use List Entity Types)",
    ),
    (
        "get-entities-metadata",
        "EntityDefinitions is Dataverse's metadata API; F&O describes its entities in $metadata (use List Entity Types)",
    ),
    (
        "list-attributes",
        "EntityDefinitions is Dataverse's metadata API; List Entity Types lists each F&O entity's fields from $metadata",
    ),
    (
        "query-attributes",
        "EntityDefinitions is Dataverse's metadata API; List Entity Types lists each F&O entity's fields from $metadata",
    ),
    (
        "get-attribute",
        "EntityDefinitions is Dataverse's metadata API; List Entity Types lists each F&O entity's fields from $metadata",
    ),
    (
        "create-attribute",
        "F&O entities are changed in Visual Studio and deployed, not through OData",
    ),
    (
        "update-attribute",
        "F&O entities are changed in Visual Studio and deployed, not through OData",
    ),
    (
        "delete-column",
        "F&O entities are changed in Visual Studio and deployed, not through OData",
    ),
    (
        "create-table",
        "F&O entities are changed in Visual Studio and deployed, not through OData",
    ),
    (
        "create-alternate-key",
        "F&O has no alternate keys as Dataverse has them: an entity has one key, dataAreaId first",
    ),
    (
        "create-one-to-many-relationship",
        "F&O entities are changed in Visual Studio and deployed, not through OData",
    ),
    (
        "create-many-to-many-relationship",
        "F&O entities are changed in Visual Studio and deployed, not through OData",
    ),
    (
        "create-global-choice",
        "F&O enums are defined in Visual Studio, not through OData",
    ),
    ("search-rows", "Dataverse search is not part of F&O OData"),
    ("suggest-rows", "Dataverse search is not part of F&O OData"),
    (
        "autocomplete-rows",
        "Dataverse search is not part of F&O OData",
    ),
    (
        "relate-rows",
        "F&O OData does not associate records through $ref; set the foreign key fields with Update Entity",
    ),
    (
        "unrelate-rows",
        "F&O OData does not associate records through $ref; set the foreign key fields with Update Entity",
    ),
    (
        "upload-file",
        "file columns are Dataverse's; F&O attachments go through document management entities",
    ),
    (
        "download-file",
        "file columns are Dataverse's; F&O attachments go through document management entities",
    ),
    ("attach-note", "notes (annotations) are Dataverse's"),
    (
        "download-note-attachment",
        "notes (annotations) are Dataverse's",
    ),
    (
        "get-background-operation",
        "background operations are Dataverse's",
    ),
    (
        "cancel-background-operation",
        "background operations are Dataverse's",
    ),
    (
        "perform-bound-action",
        "the action runs Dataverse messages (Microsoft.Dynamics.CRM); F&O entity actions are not supported by this connector yet",
    ),
    (
        "perform-unbound-action",
        "the action runs Dataverse messages; F&O OData actions are not supported by this connector yet",
    ),
    (
        "call-function",
        "the action calls Dataverse functions; F&O has none of them",
    ),
];

/// The refusal of an action with no F&O counterpart, before any request.
pub fn refusal(context: &Context, action: &str, label: &str) -> Option<ConnectorError> {
    if !is_fno(context) {
        return None;
    }
    let (_, reason) = REFUSED.iter().find(|(key, _)| *key == action)?;
    Some(error(
        ErrorCode::InvalidInput,
        format!("{label} does not work against Finance & Operations: {reason}"),
    ))
}

/// Runs the actions F&O serves differently; None for the rest (and for Dataverse).
pub fn run(context: &Context, action: &str, input: &Input) -> Option<Result<String>> {
    if !is_fno(context) {
        return None;
    }
    // F&O OData has no caller impersonation header: a request would run as the connection.
    for input_def in [&IMPERSONATE_USER_ID, &IMPERSONATE_OBJECT_ID] {
        if input
            .text(input_def.key)
            .is_some_and(|v| !v.trim().is_empty())
        {
            return Some(Err(invalid_input(
                input_def,
                "Finance & Operations OData has no impersonation (MSCRMCallerID, CallerObjectId are Dataverse's); leave it empty",
            )));
        }
    }
    if let Some(refusal) = dataverse_only(input) {
        return Some(Err(refusal));
    }
    let answer = match action {
        "query-entities" => query_entities(context, input),
        "get-entity" => get_entity(context, input),
        "update-entity" => update_entity(context, input),
        "delete-entity" => delete_entity(context, input),
        "create-entity" => create_entity(context, input),
        "list-entities" => list_entities(context, false),
        "list-entity-types" => list_entities(context, true),
        "get-new-and-updated-records" => new_and_updated(context, input),
        "batch-entity-actions" => batch(context, input),
        _ => return None,
    };
    Some(answer.map(|value| value.to_string()))
}

/// An input set to something only Dataverse does, refused naming it rather than ignored.
fn dataverse_only(input: &Input) -> Option<ConnectorError> {
    let set = |key: &str, default: &str| {
        input
            .text(key)
            .is_some_and(|v| !v.trim().is_empty() && !v.eq_ignore_ascii_case(default))
            || (default == "false" && input.flag(key))
    };
    let refused: &[(&str, &str, &str, &str)] = &[
        (
            "includeFormattedValues",
            "Include Formatted Values",
            "false",
            "F&O OData has no formatted-value annotations",
        ),
        (
            "bypassCustomLogic",
            "Bypass Custom Logic",
            "none",
            "bypassing plug-ins is a Dataverse header; F&O has none",
        ),
        (
            "suppressFlowTriggers",
            "Suppress Flow Triggers",
            "false",
            "flow trigger suppression is a Dataverse header; F&O has none",
        ),
        (
            "detectDuplicates",
            "Detect Duplicates",
            "false",
            "duplicate detection rules are Dataverse's",
        ),
        (
            "idempotencyKey",
            "Idempotency Key",
            "",
            "F&O has no create-if-absent to name records by it: a create is made once because it is never sent again after a lost answer, and a key given in the data is refused when it exists",
        ),
        (
            "writePath",
            "Write Path",
            "auto",
            "F&O has no bulk messages (CreateMultiple, UpdateMultiple): writes go through $batch",
        ),
    ];
    refused
        .iter()
        .find(|(key, _, default, _)| set(key, default))
        .map(|(key, label, _, reason)| {
            invalid_field(
                key,
                Some(label),
                format!("does not apply to Finance & Operations: {reason}; leave it unset"),
            )
        })
}

/// Sends, and turns a refusal into an error whose message carries F&O's `innererror` reason
/// (F&O answers write failures with "An error has occurred." and the reason inside).
fn send(context: &Context, request: Request) -> Result<Response> {
    send_with(context, request, RetryPolicy::RECORDS)
}

fn send_with(context: &Context, request: Request, policy: RetryPolicy) -> Result<Response> {
    let response = context.client.send(request, policy)?;
    if response.is_success() {
        return Ok(response);
    }
    let inner = inner_message(&response.body);
    match response.into_success() {
        Ok(ok) => Ok(ok),
        Err(mut failure) => {
            if let Some(inner) = inner
                && !failure.message.contains(&inner)
            {
                failure.message = format!("{}: {inner}", failure.message);
            }
            Err(failure)
        }
    }
}

fn inner_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value["error"]["innererror"]["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

fn entity_set(input: &Input) -> Result<&str> {
    let set = input.text(ENTITY_TYPE.key).unwrap_or_default().trim();
    if !is_identifier(set) {
        return Err(invalid_input(
            &ENTITY_TYPE,
            format!("{set:?} is not an F&O entity set name (such as CustomersV3)"),
        ));
    }
    Ok(set)
}

/// The key names as the user wrote them: F&O names are case-sensitive, while the shared key
/// reader lower-cases them for Dataverse's logical names.
fn names_as_given(given: &str) -> Vec<String> {
    let given = given.trim();
    if given.starts_with('{') {
        return match serde_json::from_str::<Value>(given) {
            Ok(Value::Object(object)) => object.keys().cloned().collect(),
            _ => Vec::new(),
        };
    }
    let mut names = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (index, c) in given.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => start = index + 1,
            '=' if !quoted => names.push(given[start..index].trim().to_string()),
            _ => {}
        }
    }
    names
}

/// The key segment `(dataAreaId='usmf',CustomerAccount='US-001')` of a key as given, checked by
/// the shared key reader (control characters, lengths, quoting) and written with its names' case.
fn key_segment(given: &str, field: &str) -> Result<String> {
    let key = RecordKey::parse(given)
        .map_err(|problem| invalid_field(field, Some(ENTITY_ID.label), problem.to_string()))?;
    if key.id().is_some() {
        return Err(invalid_field(
            field,
            Some(ENTITY_ID.label),
            format!(
                "{given:?} is a GUID; an F&O record is named by every field of its key, such as dataAreaId='usmf',CustomerAccount='US-001'"
            ),
        ));
    }
    let names = names_as_given(given);
    let segment = key.segment();
    let inner = segment
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_default();
    // Values are percent-encoded in a segment, so ',' and '=' only separate pairs.
    let pairs: Vec<String> = inner
        .split(',')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(name))
                .cloned()
                .unwrap_or_else(|| name.to_string());
            format!("{name}={value}")
        })
        .collect();
    Ok(format!("({})", pairs.join(",")))
}

fn record_url(context: &Context, input: &Input) -> Result<(String, String)> {
    let set = entity_set(input)?;
    let given = input.text(ENTITY_ID.key).unwrap_or_default();
    let segment = key_segment(given, ENTITY_ID.key)?;
    let url = format!(
        "{}?cross-company=true",
        context.client.api_url(&format!("{set}{segment}"))
    );
    Ok((url, given.trim().to_string()))
}

fn without_context(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("@odata.context");
    }
    value
}

fn get_entity(context: &Context, input: &Input) -> Result<Value> {
    let (mut url, _) = record_url(context, input)?;
    let select = input.list(FIELD_NAMES.key);
    if !select.is_empty() {
        url.push_str(&format!(
            "&$select={}",
            percent_encode_query_value(&select.join(","))
        ));
    }
    let response = send(context, Request::new("GET", url))?;
    Ok(without_context(response.json()?))
}

/// Query Entities against F&O: `$top`/`$skip` pages (Next Page Id is the next page's URL, F&O's
/// own `@odata.nextLink` when it pages the answer itself). A filter that names `dataAreaId`
/// reads across companies, as F&O documents for filtering by a company other than the default.
fn query_entities(context: &Context, input: &Input) -> Result<Value> {
    let set = entity_set(input)?;
    let per_page = input.number("recordsPerPage").unwrap_or(100.0).max(1.0) as usize;
    let fetch_all = input.flag("fetchAll");
    let max = input.number("maxRecords").unwrap_or(100_000.0).max(1.0) as usize;
    let mut url = match input.text("nextPageId") {
        Some(cursor) => {
            // A next link of another entity would answer with records Entity Type does not name.
            let collection = format!("{}?", context.client.api_url(set));
            if !context.client.settings.environment.owns_url(cursor)
                || !cursor.starts_with(&collection)
            {
                return Err(invalid_field(
                    "nextPageId",
                    Some("Next Page Id"),
                    format!(
                        "is not a next page link of {set} on this connection's environment; pass the nextPageId of a previous output as it is"
                    ),
                ));
            }
            cursor.to_string()
        }
        None => {
            let mut query = vec![format!("$top={per_page}"), "$skip=0".to_string()];
            let select = input.list(FIELD_NAMES.key);
            if !select.is_empty() {
                query.push(format!(
                    "$select={}",
                    percent_encode_query_value(&select.join(","))
                ));
            }
            if let Some(filter) = input.text(FILTER.key).filter(|f| !f.trim().is_empty()) {
                if filter.contains("dataAreaId") {
                    query.push("cross-company=true".into());
                }
                query.push(format!("$filter={}", percent_encode_query_value(filter)));
            }
            let order = input.list("orderBy");
            if !order.is_empty() {
                query.push(format!(
                    "$orderby={}",
                    percent_encode_query_value(&order.join(","))
                ));
            }
            let expand = input.list(EXPAND.key);
            if !expand.is_empty() {
                query.push(format!(
                    "$expand={}",
                    percent_encode_query_value(&expand.join(","))
                ));
            }
            if input.flag("includeCount") {
                query.push("$count=true".into());
            }
            context
                .client
                .api_url(&format!("{set}?{}", query.join("&")))
        }
    };
    let mut records = Vec::new();
    let mut count = Value::Null;
    let mut pages = 0;
    let next = loop {
        let page = send(context, Request::new("GET", url.clone()))?.json()?;
        pages += 1;
        if count.is_null() {
            count = page["@odata.count"].clone();
        }
        let rows = page["value"].as_array().cloned().unwrap_or_default();
        let full = rows.len() >= per_page;
        records.extend(rows);
        let next = match page["@odata.nextLink"].as_str() {
            Some(link) => Some(link.to_string()),
            None if full => Some(advance_skip(&url, per_page)),
            None => None,
        };
        match next {
            Some(link) if fetch_all && records.len() < max => url = link,
            other => break other,
        }
    };
    Ok(json!({
        "records": records,
        "count": count,
        "nextPageId": next,
        "pages": pages,
        "truncated": fetch_all && next.is_some(),
    }))
}

/// The URL of the page after `url`'s: `$skip` moved on by a page, `$top` kept.
fn advance_skip(url: &str, per_page: usize) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut skip = 0;
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| match p.strip_prefix("$skip=") {
            Some(n) => {
                skip = n.parse().unwrap_or(0);
                false
            }
            None => true,
        })
        .map(str::to_string)
        .collect();
    parts.push(format!("$skip={}", skip + per_page));
    format!("{base}?{}", parts.join("&"))
}

/// Field Value and Dynamic Values merged (Dynamic Values win), as for Dataverse.
fn fields(input: &Input) -> Result<Map<String, Value>> {
    let mut fields = match input.json(FIELD_VALUES.key) {
        Some(Value::Object(fields)) => fields.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(invalid_input(
                &FIELD_VALUES,
                "must be an object of fields and values",
            ));
        }
    };
    match input.json("dynamicValues") {
        Some(Value::Object(dynamic)) => fields.extend(dynamic.clone()),
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(invalid_field(
                "dynamicValues",
                Some("Dynamic Values"),
                "must be an object of fields and values",
            ));
        }
    }
    if fields.is_empty() {
        return Err(invalid_input(
            &FIELD_VALUES,
            "give the entity's fields and values as an object, such as {\"OrganizationName\":\"Contoso\"}",
        ));
    }
    Ok(fields)
}

fn json_request(method: &str, url: String, body: &Map<String, Value>) -> Request {
    let mut request = Request::new(method, url).header("Content-Type", "application/json");
    request.body = Value::Object(body.clone()).to_string().into_bytes();
    request
}

fn update_entity(context: &Context, input: &Input) -> Result<Value> {
    let (url, id) = record_url(context, input)?;
    let body = fields(input)?;
    let request =
        json_request("PATCH", url, &body).header("If-Match", input.text(ETAG.key).unwrap_or("*"));
    send(context, request)?;
    // F&O answers a PATCH with 204: the record as stored is read back when asked for.
    if input.flag("returnRepresentation") {
        let (url, _) = record_url(context, input)?;
        let record = send(context, Request::new("GET", url))?.json()?;
        return Ok(json!({ "id": id, "record": without_context(record) }));
    }
    Ok(json!({ "id": id }))
}

fn delete_entity(context: &Context, input: &Input) -> Result<Value> {
    let (url, id) = record_url(context, input)?;
    let mut request = Request::new("DELETE", url);
    if let Some(etag) = input.text(ETAG.key) {
        request = request.header("If-Match", etag);
    }
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    // A retried delete whose first attempt landed finds nothing the second time: that is success.
    if response.status == 404 && response.attempts > 1 && input.text(ETAG.key).is_none() {
        return Ok(json!({ "id": id, "deleted": true }));
    }
    if !response.is_success() {
        let inner = inner_message(&response.body);
        let mut failure = response
            .into_success()
            .err()
            .unwrap_or_else(|| error(ErrorCode::Upstream, "the delete failed"));
        if let Some(inner) = inner {
            failure.message = format!("{}: {inner}", failure.message);
        }
        return Err(failure);
    }
    Ok(json!({ "id": id, "deleted": true }))
}

/// What a create whose answer was lost tells: F&O has no create-if-absent, so it is not sent again.
const LOST_CREATE: &str = "the answer to the create was lost, so the record may exist: F&O OData has no create-if-absent, so the create is not sent again; read the record by its key (Get Entity or Query Entities) before creating it again";

/// A plain POST, never repeated after a lost answer: F&O has no create-if-absent (no upsert,
/// no `If-None-Match`), and an entity that numbers its records would make a second one. A
/// retry happens only after 429 or 503, which F&O answers before applying anything; a second
/// create of a key that exists is F&O's "already exists" refusal, never a second record.
fn create_entity(context: &Context, input: &Input) -> Result<Value> {
    let set = entity_set(input)?;
    let body = fields(input)?;
    let request = json_request("POST", context.client.api_url(set), &body);
    let response = send_with(context, request, RetryPolicy::RECORDS.not_idempotent())
        .map_err(|failure| lost(failure, LOST_CREATE))?;
    let record = without_context(
        response
            .json()
            .map_err(|failure| lost(failure, LOST_CREATE))?,
    );
    let id = response
        .header("OData-EntityId")
        .and_then(|url| {
            url.rsplit_once('(')
                .map(|(_, key)| key.trim_end_matches(')').to_string())
        })
        .unwrap_or_default();
    Ok(json!({ "id": id, "record": record }))
}

/// A failure with no answer from F&O (lost, cut, timed out or unreadable) gets `hint`.
fn lost(failure: ConnectorError, hint: &str) -> ConnectorError {
    let answered = failure.http_status.is_some_and(|status| status >= 400);
    if answered {
        return failure;
    }
    crate::error::with_hint(failure, hint)
}

/// One entity of `$metadata`: its set, type, key and fields (name, EDM type).
struct EntityInfo {
    set: String,
    type_name: String,
    keys: Vec<String>,
    fields: Vec<(String, String)>,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

/// An entity type of `$metadata`: its name, key and fields.
type EntityType = (String, Vec<String>, Vec<(String, String)>);

/// Reads the entity sets and their types from the CSDL document (`/data/$metadata`).
fn entities(context: &Context) -> Result<Vec<EntityInfo>> {
    let response = send(
        context,
        Request::new("GET", context.client.api_url("$metadata"))
            .header("Accept", "application/xml"),
    )?;
    let text = String::from_utf8_lossy(&response.body).into_owned();
    let mut types: Vec<EntityType> = Vec::new();
    for chunk in text.split("<EntityType ").skip(1) {
        let head = chunk.split('>').next().unwrap_or_default();
        let Some(name) = attribute(&format!(" {head}"), "Name") else {
            continue;
        };
        let body = chunk.split("</EntityType>").next().unwrap_or_default();
        let keys = body
            .split("<PropertyRef ")
            .skip(1)
            .filter_map(|p| attribute(&format!(" {p}"), "Name"))
            .collect();
        let fields = body
            .split("<Property ")
            .skip(1)
            .filter_map(|p| {
                let tag = format!(" {}", p.split('>').next().unwrap_or_default());
                Some((attribute(&tag, "Name")?, attribute(&tag, "Type")?))
            })
            .collect();
        types.push((name, keys, fields));
    }
    let mut out = Vec::new();
    for chunk in text.split("<EntitySet ").skip(1) {
        let tag = format!(" {}", chunk.split('>').next().unwrap_or_default());
        let (Some(set), Some(kind)) = (attribute(&tag, "Name"), attribute(&tag, "EntityType"))
        else {
            continue;
        };
        let type_name = kind.rsplit('.').next().unwrap_or_default().to_string();
        let (keys, fields) = types
            .iter()
            .find(|(n, _, _)| *n == type_name)
            .map(|(_, k, f)| (k.clone(), f.clone()))
            .unwrap_or_default();
        out.push(EntityInfo {
            set,
            type_name,
            keys,
            fields,
        });
    }
    out.sort_by(|a, b| a.set.cmp(&b.set));
    Ok(out)
}

fn list_entities(context: &Context, types: bool) -> Result<Value> {
    let entities = entities(context)?;
    let rows: Vec<Value> = entities
        .iter()
        .map(|e| {
            let mut row = json!({
                "logicalName": e.type_name,
                "entitySetName": e.set,
                "displayName": e.type_name,
                "isCustomEntity": false,
                "keys": e.keys,
            });
            if types {
                row["schemaName"] = e.type_name.clone().into();
                row["fields"] = e
                    .fields
                    .iter()
                    .map(|(n, t)| json!({"name": n, "type": t}))
                    .collect();
            }
            row
        })
        .collect();
    Ok(match types {
        true => json!({"entityTypes": rows, "nextLink": null}),
        false => json!({"count": rows.len(), "entities": rows}),
    })
}

const MODIFIED: &str = "ModifiedDateTime";

fn key_of(keys: &[String], record: &Value) -> String {
    keys.iter()
        .map(|k| match &record[k] {
            Value::String(s) => format!("{k}='{}'", s.replace('\'', "''")),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// New and updated records by the `ModifiedDateTime` watermark: F&O OData has no change
/// tracking, so an entity without that field cannot be read incrementally and is refused.
fn new_and_updated(context: &Context, input: &Input) -> Result<Value> {
    if input.flag("useChangeTracking") || input.text("deltaLink").is_some() {
        return Err(invalid_field(
            "useChangeTracking",
            Some("Use Change Tracking"),
            "Finance & Operations OData has no change tracking (no delta links); leave it off to read by the ModifiedDateTime watermark",
        ));
    }
    let set = entity_set(input)?;
    let entities = entities(context)?;
    let Some(entity) = entities.iter().find(|e| e.set == set) else {
        return Err(invalid_input(
            &ENTITY_TYPE,
            format!("{set} is not an entity set of this F&O environment's $metadata"),
        ));
    };
    if !entity.fields.iter().any(|(n, _)| n == MODIFIED) {
        return Err(invalid_input(
            &ENTITY_TYPE,
            format!(
                "the F&O entity {set} has no {MODIFIED} field, so it has no watermark to read new and updated records by (and F&O OData has no change tracking)"
            ),
        ));
    }
    let (since, mut seen): (Option<String>, Vec<String>) = match input.text("watermark") {
        Some(text) if !text.trim().is_empty() => {
            let value: Value = serde_json::from_str(text).map_err(|_| {
                invalid_field(
                    "watermark",
                    Some("Watermark"),
                    "is not a watermark this action wrote",
                )
            })?;
            let since = value[MODIFIED].as_str().map(str::to_string);
            let keys = value["keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if since.is_none() {
                return Err(invalid_field(
                    "watermark",
                    Some("Watermark"),
                    "is not a watermark this action wrote",
                ));
            }
            (since, keys)
        }
        _ => (input.text("anchorDate").map(str::to_string), Vec::new()),
    };
    if let Some(since) = &since
        && !since
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+'))
    {
        return Err(invalid_field(
            "anchorDate",
            Some("Anchor Date"),
            format!("{since:?} is not an ISO 8601 date and time"),
        ));
    }
    let max = input.number("maxRecords").unwrap_or(5000.0).max(1.0) as usize;
    let mut query = format!("{set}?cross-company=true&$orderby={MODIFIED}%20asc");
    if let Some(since) = &since {
        query.push_str(&format!(
            "&$filter={MODIFIED}%20ge%20{}",
            percent_encode_query_value(since)
        ));
    }
    let mut url = context.client.api_url(&query);
    let mut records = Vec::new();
    let mut complete = true;
    loop {
        let page = send(context, Request::new("GET", url.clone()))?.json()?;
        for record in page["value"].as_array().cloned().unwrap_or_default() {
            let stamp = record[MODIFIED].as_str().unwrap_or_default();
            if since.as_deref() == Some(stamp) && seen.contains(&key_of(&entity.keys, &record)) {
                continue;
            }
            if records.len() == max {
                complete = false;
                break;
            }
            records.push(record);
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) if complete => {
                if !context.client.settings.environment.owns_url(next) {
                    return Err(error(
                        ErrorCode::MalformedResponse,
                        "the next link is not on this environment",
                    ));
                }
                url = next.to_string();
            }
            _ => break,
        }
    }
    let last = records
        .last()
        .and_then(|r| r[MODIFIED].as_str())
        .map(str::to_string)
        .or(since.clone());
    if last != since {
        seen.clear();
    }
    for record in &records {
        if record[MODIFIED].as_str() == last.as_deref() {
            seen.push(key_of(&entity.keys, record));
        }
    }
    let watermark = last.map(|stamp| json!({ MODIFIED: stamp, "keys": seen }).to_string());
    Ok(json!({
        "records": records,
        "complete": complete,
        "nextWatermark": watermark,
        "keyFields": entity.keys,
        "warning": null,
    }))
}

const LOST_BATCH: &str = "the answer to the $batch was lost, so its writes may have been applied: F&O OData has no create-if-absent, so the batch is not sent again; read the records before sending it again";

/// Batch Entity Actions against F&O: one `$batch`, each write in a change set of its own, or all
/// in one change set with allOrNothing (F&O applies a change set all or nothing).
fn batch(context: &Context, input: &Input) -> Result<Value> {
    let actions = match input.json("batchActions") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(a)) => a,
            _ => {
                return Err(invalid_field(
                    "batchActions",
                    Some("Batch Actions"),
                    "must be a JSON list of actions",
                ));
            }
        },
        _ => {
            return Err(invalid_field(
                "batchActions",
                Some("Batch Actions"),
                "must be a JSON list of actions",
            ));
        }
    };
    if actions.is_empty() || actions.len() > 1000 {
        return Err(invalid_field(
            "batchActions",
            Some("Batch Actions"),
            "must hold 1 to 1000 actions",
        ));
    }
    let all = input.flag("allOrNothing");
    if !all && input.text("continueOnError").is_some() && !input.flag("continueOnError") {
        return Err(invalid_field(
            "continueOnError",
            Some("Continue On Error"),
            "against Finance & Operations each write is its own change set and F&O runs them all; use All or Nothing to stop every write when one fails",
        ));
    }
    let root = context.client.api_root_path();
    let mut ops = Vec::new();
    for (index, action) in actions.iter().enumerate() {
        let field = format!("batchActions[{index}]");
        let set = action["collection"].as_str().unwrap_or_default();
        if !is_identifier(set) {
            return Err(invalid_field(
                &field,
                None,
                format!("collection {set:?} is not an F&O entity set name"),
            ));
        }
        let kind = action["action"].as_str().unwrap_or_default();
        let key = || -> Result<String> {
            let given = match &action["key"] {
                Value::String(s) => s.clone(),
                Value::Object(o) => Value::Object(o.clone()).to_string(),
                _ => {
                    return Err(invalid_field(
                        &field,
                        None,
                        "update and delete need a key, such as dataAreaId='usmf',CustomerAccount='US-001'",
                    ));
                }
            };
            key_segment(&given, &field)
        };
        let data = || -> Result<String> {
            match &action["data"] {
                Value::Object(o) if !o.is_empty() => Ok(Value::Object(o.clone()).to_string()),
                _ => Err(invalid_field(
                    &field,
                    None,
                    "create and update need data: an object of fields",
                )),
            }
        };
        let (method, url, body) = match kind {
            "create" => ("POST", format!("{root}/{set}"), data()?),
            "update" => (
                "PATCH",
                format!("{root}/{set}{}?cross-company=true", key()?),
                data()?,
            ),
            "delete" => (
                "DELETE",
                format!("{root}/{set}{}?cross-company=true", key()?),
                String::new(),
            ),
            other => {
                return Err(invalid_field(
                    &field,
                    None,
                    format!("action {other:?} is not create, update or delete"),
                ));
            }
        };
        ops.push((set.to_string(), kind.to_string(), method, url, body));
    }
    let boundary = format!("batch_{}", crate::client::random_hex(8));
    let mut text = String::new();
    let part = |text: &mut String,
                n: usize,
                (_, _, method, url, body): &(String, String, &str, String, String)| {
        text.push_str(&format!(
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n{method} {url} HTTP/1.1\r\n",
            n + 1
        ));
        if method == &"PATCH" {
            text.push_str("If-Match: *\r\n");
        }
        if !body.is_empty() {
            text.push_str("Content-Type: application/json\r\n");
        }
        text.push_str(&format!("\r\n{body}\r\n"));
    };
    if all {
        let cs = format!("changeset_{}", crate::client::random_hex(8));
        text.push_str(&format!(
            "--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"
        ));
        for (n, op) in ops.iter().enumerate() {
            text.push_str(&format!("--{cs}\r\n"));
            part(&mut text, n, op);
        }
        text.push_str(&format!("--{cs}--\r\n"));
    } else {
        for (n, op) in ops.iter().enumerate() {
            let cs = format!("changeset_{n}_{}", crate::client::random_hex(4));
            text.push_str(&format!(
                "--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n--{cs}\r\n"
            ));
            part(&mut text, n, op);
            text.push_str(&format!("--{cs}--\r\n"));
        }
    }
    text.push_str(&format!("--{boundary}--\r\n"));
    let mut request = Request::new("POST", context.client.api_url("$batch")).header(
        "Content-Type",
        format!("multipart/mixed; boundary={boundary}"),
    );
    request.body = text.into_bytes();
    // Like a create, a batch is not sent again after a lost answer (its creates are POSTs).
    let response = send_with(context, request, RetryPolicy::RECORDS.not_idempotent())
        .map_err(|failure| lost(failure, LOST_BATCH))?;
    let answers = read_batch_answers(&String::from_utf8_lossy(&response.body));
    let mut results = Vec::new();
    let (mut succeeded, mut failed, mut rolled_back) = (0, 0, 0);
    for (index, (set, kind, ..)) in ops.iter().enumerate() {
        let answer = answers.iter().find(|a| a.content_id == Some(index + 1));
        let mut row = json!({"index": index, "collection": set, "action": kind});
        match answer {
            Some(a) if a.status < 300 => {
                succeeded += 1;
                row["outcome"] = "succeeded".into();
                row["status"] = a.status.into();
                if let Some(id) = &a.entity_id {
                    row["id"] = id.clone().into();
                }
            }
            Some(a) => {
                failed += 1;
                row["outcome"] = "failed".into();
                row["status"] = a.status.into();
                row["error"] = a.error.clone().into();
            }
            None => {
                rolled_back += 1;
                row["outcome"] = "rolledBack".into();
            }
        }
        results.push(row);
    }
    Ok(json!({
        "succeeded": succeeded,
        "failed": failed,
        "rolledBack": rolled_back,
        "notRun": 0,
        "batches": 1,
        "path": "batch",
        "results": results,
    }))
}

struct BatchAnswer {
    content_id: Option<usize>,
    status: u16,
    entity_id: Option<String>,
    error: String,
}

/// The answers of a `$batch` response: each `application/http` part's Content-ID, status,
/// `OData-EntityId` (the created key) and error reason.
fn read_batch_answers(text: &str) -> Vec<BatchAnswer> {
    let mut out = Vec::new();
    for part in text.split("Content-Type: application/http").skip(1) {
        let mut content_id = None;
        let mut lines = part.lines();
        for line in lines.by_ref() {
            if let Some(id) = line.strip_prefix("Content-ID:") {
                content_id = id.trim().parse().ok();
            }
            if line.starts_with("HTTP/") {
                let status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let rest: Vec<&str> = lines.by_ref().collect();
                let entity_id = rest
                    .iter()
                    .find_map(|l| l.strip_prefix("OData-EntityId:"))
                    .and_then(|url| {
                        url.trim()
                            .rsplit_once('(')
                            .map(|(_, k)| k.trim_end_matches(')').to_string())
                    });
                let body = rest
                    .iter()
                    .find(|l| l.starts_with('{'))
                    .copied()
                    .unwrap_or_default();
                let error = serde_json::from_str::<Value>(body)
                    .ok()
                    .map(|v| {
                        let message = v["error"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        match v["error"]["innererror"]["message"].as_str() {
                            Some(inner) if !inner.is_empty() => format!("{message}: {inner}"),
                            _ => message,
                        }
                    })
                    .unwrap_or_default();
                out.push(BatchAnswer {
                    content_id,
                    status,
                    entity_id,
                    error,
                });
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_keep_their_case_and_values_stay_quoted() {
        assert_eq!(
            key_segment("dataAreaId='usmf', CustomerAccount='US,=1'", "entityId").unwrap(),
            "(dataAreaId='usmf',CustomerAccount='US%2C%3D1')"
        );
        assert_eq!(
            key_segment(
                r#"{"dataAreaId":"usmf","SalesOrderNumber":"SO-1","LineNumber":2}"#,
                "k"
            )
            .unwrap()
            .matches("LineNumber=2")
            .count(),
            1
        );
        let guid = key_segment("00000000-0000-0000-0000-000000000001", "entityId").unwrap_err();
        assert!(
            guid.message.contains("every field of its key"),
            "{}",
            guid.message
        );
        let broken = key_segment("dataAreaId='usmf", "entityId").unwrap_err();
        assert_eq!(broken.field.as_deref(), Some("entityId"));
    }

    #[test]
    fn the_next_page_moves_skip_and_keeps_the_rest() {
        assert_eq!(
            advance_skip("https://x/data/C?$top=5&$skip=10&$filter=a", 5),
            "https://x/data/C?$top=5&$filter=a&$skip=15"
        );
        assert_eq!(
            advance_skip("https://x/data/C", 3),
            "https://x/data/C?$skip=3"
        );
    }

    #[test]
    fn batch_answers_are_read_by_content_id() {
        let text = "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nHTTP/1.1 201 Created\r\nOData-EntityId: https://x/data/C(dataAreaId='usmf',CustomerAccount='A')\r\n\r\n{}\r\n--c--\r\n--b\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"\",\"message\":\"An error has occurred.\",\"innererror\":{\"message\":\"exists\",\"type\":\"t\",\"stacktrace\":\"\"}}}\r\n--b--\r\n";
        let answers = read_batch_answers(text);
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0].content_id, Some(1));
        assert_eq!(
            answers[0].entity_id.as_deref(),
            Some("dataAreaId='usmf',CustomerAccount='A'")
        );
        assert_eq!(answers[1].status, 400);
        assert_eq!(answers[1].error, "An error has occurred.: exists");
    }
}
