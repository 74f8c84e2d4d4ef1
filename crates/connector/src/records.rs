//! What the record actions share: addressing, impersonation, request bodies with lookups, the
//! metadata-aware error hints, and IDs from answers.

use std::borrow::Cow;
use std::fmt;

use dataverse::keys::{RecordKey, id_from_entity_url};
use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value};

use crate::bindings::dynamics::connector::types::{ConnectorError, ErrorCode};
use crate::client::{Request, Response};
use crate::context::Context;
use crate::definition::InputDef;
use crate::error::{ConnectorErrorExt, Result, error, invalid_input, with_hint};
use crate::input::{Input, closest};
use crate::inputs::{
    DYNAMIC_VALUES, ENTITY_ID, FIELD_VALUES, IMPERSONATE_OBJECT_ID, IMPERSONATE_USER_ID,
    RETURN_REPRESENTATION,
};

/// `set(key)` for the record named by the Entity ID input.
pub fn record_path(entity_set: &str, input: &Input) -> Result<(String, RecordKey)> {
    let given = input.text(ENTITY_ID.key).unwrap_or_default();
    let key = RecordKey::parse(given)
        .map_err(|problem| invalid_input(&ENTITY_ID, problem.to_string()))?;
    Ok((format!("{entity_set}{}", key.segment()), key))
}

/// Adds the impersonation header the inputs ask for.
pub fn impersonate(request: Request, input: &Input) -> Result<Request> {
    Caller::of(input).apply(request)
}

/// Whom requests run as: the impersonation inputs as given, checked when a request is built (so
/// a conflict is reported where the request would have been sent). The default is the
/// connection's own identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    user_id: Option<&'a str>,
    object_id: Option<&'a str>,
}

impl<'a> Caller<'a> {
    /// The caller named by the Impersonate User Id and Impersonate Entra Object Id inputs.
    pub fn of(input: &'a Input) -> Caller<'a> {
        Caller {
            user_id: input.text(IMPERSONATE_USER_ID.key),
            object_id: input.text(IMPERSONATE_OBJECT_ID.key),
        }
    }

    /// Adds the impersonation header; both inputs at once are refused.
    pub fn apply(self, request: Request) -> Result<Request> {
        match (self.user_id, self.object_id) {
            (Some(_), Some(_)) => Err(invalid_input(
                &IMPERSONATE_OBJECT_ID,
                "give either Impersonate User Id or Impersonate Entra Object Id, not both",
            )),
            (Some(user), None) => Ok(request.header("MSCRMCallerID", user)),
            (None, Some(object)) => Ok(request.header("CallerObjectId", object)),
            (None, None) => Ok(request),
        }
    }
}

/// Field Value and Dynamic Values merged into one body, with lookup values turned into
/// `navigation@odata.bind` using the table's metadata.
pub fn record_body(
    context: &Context,
    entity_set: &str,
    input: &Input,
) -> Result<Map<String, Value>> {
    let empty = Map::new();
    let fields = match input.json(FIELD_VALUES.key) {
        Some(Value::Object(fields)) => fields,
        _ => &empty,
    };
    let dynamic = match input.json(DYNAMIC_VALUES.key) {
        None => &empty,
        Some(Value::Object(dynamic)) => dynamic,
        Some(other) => {
            return Err(invalid_input(
                &DYNAMIC_VALUES,
                format!("must be a JSON object of fields and values, got {other}"),
            ));
        }
    };
    if let Some(key) = dynamic.keys().find(|key| fields.contains_key(*key)) {
        return Err(invalid_input(
            &DYNAMIC_VALUES,
            format!("{key:?} is also in Field Value; give each field once"),
        ));
    }
    // Each part is bound on its own so that a bad lookup names the input it came from.
    let mut body =
        bind_lookups(context, entity_set, fields, &FIELD_VALUES, &"", None)?.into_owned();
    body.extend(
        bind_lookups(context, entity_set, dynamic, &DYNAMIC_VALUES, &"", None)?.into_owned(),
    );
    Ok(body)
}

/// True when every plain column of `body` already has its value in `row`. Lookups (bindings,
/// or lookup objects not yet bound) are not compared: they name records, which the row holds
/// as IDs.
pub fn matches_row(row: &Value, body: &Map<String, Value>) -> bool {
    body.iter()
        .filter(|(column, value)| !column.contains('@') && !value.is_object())
        .all(|(column, value)| match (row.get(column), value) {
            (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(stored), value) => stored == value,
            (None, Value::Null) => true,
            (None, _) => false,
        })
}

/// Resolves `{"ref": name}` lookups to an earlier batch item: its entity set and `$n` reference.
pub type RefResolver<'a> = &'a dyn Fn(&str) -> Option<(String, String)>;

/// Checks the column names of a record body and turns its lookup values into
/// `navigation@odata.bind`. Errors name `field`, and `item` (such as `item 3: `, written only
/// when there is an error) when given. A body without lookups comes back as it is, uncopied.
pub fn bind_lookups<'b>(
    context: &Context,
    entity_set: &str,
    body: &'b Map<String, Value>,
    field: &'static InputDef,
    item: &dyn fmt::Display,
    refs: Option<RefResolver>,
) -> Result<Cow<'b, Map<String, Value>>> {
    for key in body.keys() {
        let name = key.split('@').next().unwrap_or(key);
        if !dataverse::odata::is_identifier(name) {
            return Err(invalid_input(
                field,
                format!("{item}{key:?} is not a column name"),
            ));
        }
    }
    let lookup_keys: Vec<String> = body
        .iter()
        .filter(|(_, value)| lookup_target(value).is_some())
        .map(|(key, _)| key.clone())
        .collect();
    if lookup_keys.is_empty() {
        return Ok(Cow::Borrowed(body));
    }
    let mut body = body.clone();
    // Every lookup's shape is checked before any metadata is read: bad input makes no request.
    let mut bindings = Vec::with_capacity(lookup_keys.len());
    for key in lookup_keys {
        let Some(value) = body.remove(&key) else {
            continue;
        };
        let Some(target) = lookup_target(&value) else {
            continue;
        };
        let problem =
            |text: String| invalid_input(field, format!("{item}the lookup {key:?} {text}"));
        let (target_name, bound) = match target {
            LookupTarget::Ref(name) => {
                let resolve = refs.ok_or_else(|| {
                    problem(
                        "refers to another batch item, which only Batch Entity Actions can do"
                            .to_string(),
                    )
                })?;
                let (collection, reference) = resolve(name)
                    .ok_or_else(|| problem(format!("refers to {name:?}, which no earlier item in the same change set names as its \"ref\"")))?;
                (collection, Binding::Reference(reference))
            }
            LookupTarget::Record(table_name, record) => {
                let record = match record {
                    LookupRecord::Id(id) => match dataverse::guid::parse(id) {
                        Some(id) => RecordKey::Id(id),
                        None => {
                            return Err(problem(
                                "has an id that is not a GUID; use \"key\" for alternate keys"
                                    .to_string(),
                            ));
                        }
                    },
                    LookupRecord::Key(Value::Object(object)) => RecordKey::from_object(object)
                        .map_err(|reason| problem(format!("has a bad key: {reason}")))?,
                    LookupRecord::Key(Value::String(text)) => RecordKey::parse(text)
                        .map_err(|reason| problem(format!("has a bad key: {reason}")))?,
                    LookupRecord::Key(_) => {
                        return Err(problem(
                            "needs an \"id\" GUID or a \"key\" (text or object)".to_string(),
                        ));
                    }
                };
                if !dataverse::odata::is_identifier(table_name) {
                    return Err(problem(format!(
                        "names table {table_name:?}, which is not a table name"
                    )));
                }
                (table_name.to_string(), Binding::Record(record))
            }
        };
        bindings.push((key, target_name, bound));
    }
    let table = context
        .metadata
        .table(&context.client, entity_set)?
        .ok_or_else(|| unknown_set_error(context, entity_set))?;
    let lookups = context
        .metadata
        .lookups(&context.client, &table.logical_name)?;
    for (key, target_name, bound) in bindings {
        let problem =
            |text: String| invalid_input(field, format!("{item}the lookup {key:?} {text}"));
        let target = context
            .metadata
            .table(&context.client, &target_name)?
            .ok_or_else(|| {
                problem(format!(
                    "names table {target_name:?}, which this environment does not have"
                ))
            })?;
        let column = key.to_ascii_lowercase();
        let navigation = lookups
            .iter()
            .find(|lookup| lookup.column == column && lookup.target == target.logical_name)
            .or_else(|| {
                lookups
                    .iter()
                    .find(|lookup| lookup.navigation_property.eq_ignore_ascii_case(&key))
            })
            .map(|lookup| lookup.navigation_property.clone())
            .ok_or_else(|| {
                let columns: Vec<&str> = lookups
                    .iter()
                    .filter(|l| l.target == target.logical_name)
                    .map(|l| l.column.as_str())
                    .collect();
                let those = if columns.is_empty() {
                    String::new()
                } else {
                    format!(" (those are: {})", columns.join(", "))
                };
                invalid_input(
                    field,
                    format!(
                        "{item}{key:?} is not a lookup column of {} that can point to {}{those}",
                        table.logical_name, target.logical_name
                    ),
                )
            })?;
        let value = match bound {
            Binding::Record(record) => format!("/{}{}", target.entity_set, record.segment()),
            Binding::Reference(reference) => reference,
        };
        body.insert(format!("{navigation}@odata.bind"), Value::String(value));
    }
    Ok(Cow::Owned(body))
}

/// A record body as JSON text.
pub fn json_text(body: &Map<String, Value>) -> String {
    // A map with text keys always serializes.
    serde_json::to_string(body).unwrap_or_default()
}

enum Binding {
    Record(RecordKey),
    Reference(String),
}

enum LookupRecord<'a> {
    Id(&'a str),
    Key(&'a Value),
}

enum LookupTarget<'a> {
    Record(&'a str, LookupRecord<'a>),
    Ref(&'a str),
}

/// `{"table": "...", "id": "..."}`, `{"table": "...", "key": ...}` or `{"ref": "..."}`, and
/// nothing else: other objects are left as they are.
fn lookup_target(value: &Value) -> Option<LookupTarget<'_>> {
    let object = value.as_object()?;
    if object.len() == 1
        && let Some(name) = object.get("ref").and_then(Value::as_str)
    {
        return Some(LookupTarget::Ref(name));
    }
    let table = object.get("table")?.as_str()?;
    let only_known = object
        .keys()
        .all(|key| matches!(key.as_str(), "table" | "id" | "key"));
    let record = match (object.get("id").and_then(Value::as_str), object.get("key")) {
        (Some(id), _) => LookupRecord::Id(id),
        (None, Some(key)) => LookupRecord::Key(key),
        (None, None) => return None,
    };
    only_known.then_some(LookupTarget::Record(table, record))
}

/// The ID of the record a write touched: from `OData-EntityId`, else from the representation.
pub fn written_id(
    context: &Context,
    entity_set: &str,
    entity_id: Option<&str>,
    record: Option<&Value>,
) -> Result<Option<String>> {
    if let Some(url) = entity_id {
        return Ok(id_from_entity_url(url));
    }
    let Some(record) = record else {
        return Ok(None);
    };
    let Some(table) = context.metadata.table(&context.client, entity_set)? else {
        return Ok(None);
    };
    Ok(record
        .get(&table.primary_id)
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// The representation in a write's answer, without the context annotation.
pub fn representation(response: &Response) -> Result<Option<Value>> {
    if response.body.is_empty() {
        return Ok(None);
    }
    let mut value = response.json()?;
    if let Some(object) = value.as_object_mut() {
        object.remove("@odata.context");
    }
    Ok(Some(value))
}

/// Adds the closest entity set names to a "segment not found" error.
pub fn explain(context: &Context, entity_set: &str, failure: ConnectorError) -> ConnectorError {
    let missing_set = failure.code == ErrorCode::NotFound
        && failure
            .message
            .contains("Resource not found for the segment")
        && failure.message.contains(&format!("'{entity_set}'"));
    if !missing_set {
        return failure;
    }
    unknown_set_error(context, entity_set)
}

pub fn unknown_set_error(context: &Context, entity_set: &str) -> ConnectorError {
    let suggestion = context
        .metadata
        .entity_sets(&context.client)
        .ok()
        .and_then(|sets| {
            let names: Vec<&str> = sets.iter().map(String::as_str).collect();
            closest(entity_set, &names).map(str::to_string)
        });
    let message = match &suggestion {
        Some(near) => format!("entity set {entity_set:?} not found; did you mean {near:?}?"),
        None => format!("entity set {entity_set:?} not found"),
    };
    with_hint(
        error(ErrorCode::NotFound, message),
        "Entity Type takes the entity set name, usually the plural logical name (accounts, contacts, new_projects)",
    )
    .with_field("entityType")
}

/// Sends a create, update or upsert with the record body, and answers with the ID and, when
/// asked, the stored record.
pub fn write(
    context: &Context,
    entity_set: &str,
    request: Request,
    input: &Input,
    policy: RetryPolicy,
) -> Result<Value> {
    let body = record_body(context, entity_set, input)?;
    write_body(context, entity_set, request, input, body, policy)
}

/// [`write`] with the record body already built.
pub fn write_body(
    context: &Context,
    entity_set: &str,
    request: Request,
    input: &Input,
    body: Map<String, Value>,
    policy: RetryPolicy,
) -> Result<Value> {
    let return_representation = input.flag(RETURN_REPRESENTATION.key);
    let mut request = request.header("Content-Type", "application/json");
    if return_representation {
        request = request.header("Prefer", "return=representation");
    }
    request.body = Value::Object(body).to_string().into_bytes();
    let request = impersonate(request, input)?;
    let request = crate::switches::apply(request, input);
    let response = context
        .client
        .send(request, policy)?
        .into_success()
        .map_err(|failure| explain(context, entity_set, failure))?;
    let record = if return_representation {
        representation(&response)?
    } else {
        None
    };
    let id = written_id(
        context,
        entity_set,
        response.header("odata-entityid"),
        record.as_ref(),
    )?;
    let mut output = Map::new();
    output.insert(
        "id".to_string(),
        id.map(Value::String).unwrap_or(Value::Null),
    );
    if let Some(record) = record {
        output.insert("record".to_string(), record);
    }
    Ok(Value::Object(output))
}

/// Records of many pages, copied as raw JSON text into the output as each page arrives. The
/// output grows by exactly each page, in place ([`RecordChunks::grow`]), so a read needs little
/// more memory than its output: one page's body and the room kept for it below the output.
/// Doubling instead held old and new copies of a large output at once (three times its size),
/// one chunk per page joined at the end wrote every record twice into fresh memory, and a plain
/// exact reserve moved (copied) the whole output on almost every page.
pub struct RecordChunks {
    output: String,
    count: usize,
    /// Whether more pages are expected: only then is room kept below the output for them.
    paged: bool,
}

const HEAD: &str = "{\"records\":[";

/// The largest spacer [`RecordChunks::grow`] leaves below the output: every byte of it counts
/// against the call's memory limit.
const MAX_SPACER: usize = 16 << 20;

impl Default for RecordChunks {
    fn default() -> RecordChunks {
        RecordChunks {
            output: String::from(HEAD),
            count: 0,
            paged: false,
        }
    }
}

impl RecordChunks {
    /// For a read that may take many pages: the first page leaves room below the output for
    /// the bodies of the next ones ([`RecordChunks::grow`]). A read of one page would only pay
    /// for that room.
    pub fn paged(paged: bool) -> RecordChunks {
        RecordChunks {
            paged,
            ..RecordChunks::default()
        }
    }

    /// Appends a page's records.
    pub fn push_page(&mut self, records: &[&serde_json::value::RawValue]) {
        let size: usize = records.iter().map(|record| record.get().len() + 1).sum();
        self.grow(size);
        for record in records {
            if self.count > 0 {
                self.output.push(',');
            }
            self.output.push_str(record.get());
            self.count += 1;
        }
    }

    /// Makes room for `additional` bytes without moving the output, as far as the guest's
    /// allocator (wasi-libc's dlmalloc) allows.
    ///
    /// dlmalloc extends a block in place only into free memory that already follows it: when
    /// the heap's free top is shorter than the growth, it allocates a new block and copies,
    /// even though the output is the last block. So:
    /// - in a read of many pages ([`RecordChunks::paged`]), the first page puts a spacer of its
    ///   size (at most 16 MiB) below the output and frees it, leaving room below for the next
    ///   pages' bodies (otherwise a body a byte larger than the last one lands just above the
    ///   output and blocks it);
    /// - later pages first ask for a block of the growth's size: a block that lands right after
    ///   the output extends the free top there, and freeing it lets the output grow into it.
    ///   A block that lands in a hole below is kept while the next is asked for (at most four),
    ///   so a later one comes from the top.
    ///
    /// If none lands there (something else follows the output), the reserve moves the output as
    /// before: slower, never wrong. Natively (tests) the spacer and blocks are just freed.
    fn grow(&mut self, additional: usize) {
        let spare = self.output.capacity() - self.output.len();
        if spare >= additional {
            return;
        }
        if self.count == 0 {
            let spacer: Vec<u8> = if self.paged {
                Vec::with_capacity(additional.min(MAX_SPACER))
            } else {
                Vec::new()
            };
            self.output.reserve_exact(additional);
            // Seen, so the optimizer cannot drop an allocation whose only use is its free.
            std::hint::black_box(spacer.as_ptr());
            drop(spacer);
            return;
        }
        let end = self.output.as_ptr() as usize + self.output.capacity();
        let mut probes: [Option<Vec<u8>>; 4] = [None, None, None, None];
        for slot in &mut probes {
            // A few bytes more than the growth: the allocator's own headers.
            let probe: Vec<u8> = Vec::with_capacity(additional - spare + 64);
            let at = probe.as_ptr() as usize;
            *slot = Some(probe);
            // Right after the output, or above it (something else follows the output, and more
            // blocks would only take more memory): either way, no more.
            if at >= end {
                break;
            }
        }
        drop(probes);
        self.output.reserve_exact(additional);
    }

    /// How many records so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// `{"records":[...]` followed by `fields` (`,"name":value` pairs) and `}`.
    pub fn finish(mut self, fields: &str) -> String {
        self.grow(fields.len() + 2);
        self.output.push(']');
        self.output.push_str(fields);
        self.output.push('}');
        self.output
    }
}

/// Whether `link` (a next or delta link the caller passed back) addresses `entity_set` itself:
/// `<Web API root>/<entity_set>` followed by `?`, `(` or `/`. A link of another table would
/// answer rows the Entity Type does not name.
pub fn is_link_of(context: &Context, entity_set: &str, link: &str) -> bool {
    let collection = format!("{}/{entity_set}", context.client.api_root_path());
    let path = link
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or_default();
    path.get(..collection.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(&collection))
        && matches!(
            path.as_bytes().get(collection.len()),
            Some(b'?' | b'(' | b'/')
        )
}

/// The next page of a read, asked for while the current page is read: the page's tail names
/// its next link before the page is parsed ([`dataverse::query::trailing_next_link`]), and
/// that GET travels while the guest parses. Made afresh for each page.
///
/// Only a link of `entity_set` in this environment is started (what a nextPageId must be),
/// and the started answer is used only when the parsed page names the same link: the client
/// gives it to the next send of exactly that request. Wrap the read in
/// [`crate::client::Client::reading_ahead`] so nothing started stays behind.
#[derive(Default)]
pub struct NextPage {
    started: Option<String>,
}

impl NextPage {
    /// Called with each answer's body before it is parsed (a retried answer included): starts
    /// `request(link)` for the link its tail names, unless it is already under way.
    pub fn guess(
        &mut self,
        context: &Context,
        entity_set: &str,
        body: &[u8],
        request: impl Fn(&str) -> Result<Request>,
    ) {
        let guess = dataverse::query::trailing_next_link(body).filter(|link| {
            context.client.settings.environment.owns_url(link)
                && is_link_of(context, entity_set, link)
        });
        // A retried answer that names the same link keeps the read already started.
        if guess == self.started.as_deref() {
            return;
        }
        context.client.discard_started();
        self.started = guess.map(str::to_string);
        if let Some(link) = &self.started
            && let Ok(request) = request(link)
        {
            context.client.start_reading(request, RetryPolicy::RECORDS);
        }
    }

    /// After the page parsed: the started read goes unless the page names its link.
    pub fn settle(self, context: &Context, next_link: Option<&str>) {
        if self.started.is_none() || self.started.as_deref() != next_link {
            context.client.discard_started();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_host::{Script, Signed};

    const ACCOUNT_ID: &str = "00000000-0000-0000-0000-0000000000a1";

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    fn bind(context: &Context, body: &Map<String, Value>) -> Result<Map<String, Value>> {
        bind_lookups(context, "contacts", body, &FIELD_VALUES, &"", None)
            .map(|bound| bound.into_owned())
    }

    /// The metadata answers for binding a contact's parent customer to an account.
    fn contact_metadata() -> Script {
        Script::new()
            .json(200, r#"{"value":[{"LogicalName":"contact","EntitySetName":"contacts","PrimaryIdAttribute":"contactid"}]}"#)
            .json(200, r#"{"value":[
                {"ReferencingAttribute":"parentcustomerid","ReferencedEntity":"account","ReferencingEntityNavigationPropertyName":"parentcustomerid_account"},
                {"ReferencingAttribute":"parentcustomerid","ReferencedEntity":"contact","ReferencingEntityNavigationPropertyName":"parentcustomerid_contact"}
            ]}"#)
            .json(200, r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#)
    }

    #[test]
    fn only_table_with_id_or_key_and_a_lone_ref_are_lookups() {
        let lookups = [
            json!({"table": "accounts", "id": ACCOUNT_ID}),
            json!({"table": "accounts", "key": "accountnumber='A-1'"}),
            json!({"table": "accounts", "key": {"accountnumber": "A-1"}}),
            json!({"ref": "parent"}),
        ];
        for value in &lookups {
            assert!(lookup_target(value).is_some(), "{value}");
        }
        let values = [
            json!({"table": "accounts"}),
            json!({"table": "accounts", "id": ACCOUNT_ID, "name": "x"}),
            json!({"table": 3, "id": ACCOUNT_ID}),
            json!({"ref": "parent", "table": "accounts"}),
            json!({"ref": 1}),
            json!("accounts"),
            json!([{"table": "accounts", "id": ACCOUNT_ID}]),
        ];
        for value in &values {
            assert!(lookup_target(value).is_none(), "{value}");
        }
    }

    #[test]
    fn a_body_without_lookups_comes_back_as_it_is_without_a_request() {
        let signed = Signed::new();
        let script = Script::new();
        let context = signed.context(&script);
        let body = object(json!({"lastname": "Smith", "address1_composite": {"city": "Oslo"}}));
        let bound = bind_lookups(&context, "contacts", &body, &FIELD_VALUES, &"", None).unwrap();
        assert!(matches!(bound, Cow::Borrowed(_)));
        assert!(script.sent().is_empty());
    }

    #[test]
    fn a_lookup_becomes_the_navigation_property_bound_to_the_row() {
        let signed = Signed::new();
        let script = contact_metadata();
        let context = signed.context(&script);
        let body = object(json!({
            "lastname": "Smith",
            "parentcustomerid": {"table": "accounts", "id": ACCOUNT_ID.to_uppercase()},
        }));
        assert_eq!(
            Value::Object(bind(&context, &body).unwrap()),
            json!({
                "lastname": "Smith",
                "parentcustomerid_account@odata.bind": format!("/accounts({ACCOUNT_ID})"),
            })
        );
        let read: Vec<String> = script
            .sent()
            .into_iter()
            .map(|request| request.url)
            .collect();
        assert!(
            read[0].contains("EntitySetName%20eq%20'contacts'"),
            "{read:?}"
        );
        assert!(
            read[1].contains("EntityDefinitions(LogicalName='contact')/ManyToOneRelationships"),
            "{read:?}"
        );
        assert!(
            read[2].contains("EntitySetName%20eq%20'accounts'"),
            "{read:?}"
        );
        assert_eq!(read.len(), 3);
    }

    #[test]
    fn a_lookup_by_alternate_key_binds_the_key_segment() {
        let signed = Signed::new();
        let script = contact_metadata();
        let context = signed.context(&script);
        let body = object(
            json!({"parentcustomerid": {"table": "account", "key": {"accountnumber": "A-1"}}}),
        );
        assert_eq!(
            bind(&context, &body).unwrap()["parentcustomerid_account@odata.bind"],
            "/accounts(accountnumber='A-1')"
        );
    }

    #[test]
    fn a_column_that_cannot_point_to_the_table_is_refused_naming_the_columns_that_can() {
        let signed = Signed::new();
        let script = contact_metadata();
        let context = signed.context(&script);
        let body = object(json!({"primarycontactid": {"table": "accounts", "id": ACCOUNT_ID}}));
        let failure = bind(&context, &body).unwrap_err();
        assert_eq!(failure.field.as_deref(), Some("fieldValues"));
        assert!(
            failure.message.ends_with(
                "\"primarycontactid\" is not a lookup column of contact that can point to account (those are: parentcustomerid)"
            ),
            "{}",
            failure.message
        );
    }

    #[test]
    fn badly_shaped_lookups_are_refused_before_any_request() {
        let cases = [
            (
                json!({"full name": "x"}),
                "\"full name\" is not a column name",
            ),
            (
                json!({"parentcustomerid": {"table": "accounts", "id": "42"}}),
                "has an id that is not a GUID",
            ),
            (
                json!({"parentcustomerid": {"table": "accounts", "key": "accountnumber='A-1"}}),
                "has a bad key",
            ),
            (
                json!({"parentcustomerid": {"table": "accounts", "key": 7}}),
                "needs an \"id\" GUID or a \"key\"",
            ),
            (
                json!({"parentcustomerid": {"table": "accounts)", "id": ACCOUNT_ID}}),
                "which is not a table name",
            ),
            (
                json!({"parentcustomerid": {"ref": "parent"}}),
                "which only Batch Entity Actions can do",
            ),
        ];
        for (body, expected) in cases {
            let signed = Signed::new();
            let script = Script::new();
            let context = signed.context(&script);
            let failure = bind(&context, &object(body.clone())).unwrap_err();
            assert_eq!(failure.code, ErrorCode::InvalidInput, "{body}");
            assert!(
                failure.message.contains(expected),
                "{body}: {}",
                failure.message
            );
            assert!(script.sent().is_empty(), "{body}");
        }
    }

    #[test]
    fn errors_of_a_batch_item_name_the_item() {
        let signed = Signed::new();
        let script = Script::new();
        let context = signed.context(&script);
        let body = object(json!({"parentcustomerid": {"table": "accounts", "id": "42"}}));
        let failure = bind_lookups(
            &context,
            "contacts",
            &body,
            &FIELD_VALUES,
            &"item 3: ",
            None,
        )
        .unwrap_err();
        assert!(
            failure
                .message
                .contains("item 3: the lookup \"parentcustomerid\""),
            "{}",
            failure.message
        );
    }

    #[test]
    fn the_caller_is_impersonated_by_user_id_or_object_id_never_both() {
        let definitions = [IMPERSONATE_USER_ID, IMPERSONATE_OBJECT_ID];
        let user = "00000000-0000-0000-0000-0000000000b1";
        let request = || Request::new("GET", "https://contoso.crm.dynamics.com/".to_string());

        let by_user = Input::parse(
            &definitions,
            &json!({"impersonateUserId": user}).to_string(),
        );
        let sent = Caller::of(&by_user.unwrap()).apply(request()).unwrap();
        assert_eq!(
            sent.headers,
            [("MSCRMCallerID".to_string(), user.to_string())]
        );

        let by_object = Input::parse(
            &definitions,
            &json!({"impersonateObjectId": user}).to_string(),
        );
        let sent = Caller::of(&by_object.unwrap()).apply(request()).unwrap();
        assert_eq!(
            sent.headers,
            [("CallerObjectId".to_string(), user.to_string())]
        );

        assert!(
            Caller::default()
                .apply(request())
                .unwrap()
                .headers
                .is_empty()
        );

        let both = Input::parse(
            &definitions,
            &json!({"impersonateUserId": user, "impersonateObjectId": user}).to_string(),
        )
        .unwrap();
        let failure = Caller::of(&both).apply(request()).unwrap_err();
        assert_eq!(failure.field.as_deref(), Some("impersonateObjectId"));
    }
}
