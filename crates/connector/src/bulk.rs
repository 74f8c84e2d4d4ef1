//! Bulk operation messages for the write actions that handle many records (Batch Entity Actions,
//! Sync Records): which path a call takes, whether a table has the messages, and one bulk
//! request sent and its answer read.
//!
//! "Use bulk operation messages" (learn.microsoft.com/power-apps/developer/data-platform/bulk-operations):
//! `CreateMultiple`, `UpdateMultiple` and `UpsertMultiple` write many records of one table in
//! one request, faster than the same writes in a `$batch`. "Not all standard tables support
//! these messages", so the service is asked once per table and call, with the documented
//! `sdkmessagefilters` query, and `$batch` stays the path for the others. A standard table's
//! bulk request is one transaction: "Any error ... causes the entire operation to roll back";
//! the doc suggests exactly what the callers do on such an error: "use ... Web API `$batch` to
//! allow the set of operations to fall back if the bulk operation fails". Elastic tables "may
//! partially succeed"; the failed records are listed in the error details
//! ([`dataverse::bulk::failed_records`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use dataverse::bulk::{self, FailedRecord};
use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::bindings::dynamics::connector::types::{ConnectorError, ErrorCode};
use crate::client::{Request, Response};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::records::impersonate;

/// Which requests write the records.
pub const WRITE_PATH: InputDef = InputDef::new("writePath", "Write Path", Kind::Picklist)
    .default("auto")
    .choices(&[
        ("Bulk messages where the table has them, else $batch", "auto"),
        ("Bulk messages without asking the service first", "bulk"),
        ("$batch only", "batch"),
    ])
    .comments("auto asks Dataverse once per table whether it has CreateMultiple, UpdateMultiple and UpsertMultiple and uses them where it does; bulk uses them without asking (for users who may not read sdkmessagefilters); batch never uses them. A bulk request that fails on a standard table changes nothing and its records are sent again through $batch, so each gets its own result. Batch Entity Actions keeps $batch for All or Nothing (one change set across tables) and with Continue On Error off (stops at the first failure in input order), for deletes, updates by alternate key and items that return their record");

/// The three choices of [`WRITE_PATH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    Auto,
    Bulk,
    Batch,
}

impl WritePath {
    pub fn of(input: &Input) -> WritePath {
        match input.text(WRITE_PATH.key) {
            Some("bulk") => WritePath::Bulk,
            Some("batch") => WritePath::Batch,
            _ => WritePath::Auto,
        }
    }
}

/// Largest bulk request body: far below the 116.85 MB Dataverse allows when plug-ins run ("Message
/// size limits" in bulk-operations), so a request stays quick to send and to retry and the
/// component's memory stays small.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Records per request on an elastic table: "We recommend sending 100 records at a time"
/// ("Number of records with elastic tables").
pub const ELASTIC_CHUNK: usize = 100;

/// Records per request on a standard table when the caller does not say: "1,000 records per
/// request is a reasonable place to start" ("Number of records with standard tables").
pub const STANDARD_CHUNK: usize = 1000;

/// What a call needs to know about one table to write it with bulk messages.
#[derive(Debug)]
pub struct BulkTable {
    pub logical_name: String,
    pub entity_set: String,
    pub primary_id: String,
    /// An elastic table: bulk requests may succeed partially.
    pub elastic: bool,
    /// The bulk messages the table has (of those asked about).
    pub messages: Vec<&'static str>,
}

impl BulkTable {
    pub fn has(&self, message: &str) -> bool {
        self.messages.contains(&message)
    }

    /// Records per request: the caller's number, at most [`ELASTIC_CHUNK`] on elastic tables.
    pub fn chunk(&self, asked: usize) -> usize {
        let asked = asked.max(1);
        if self.elastic {
            asked.min(ELASTIC_CHUNK)
        } else {
            asked
        }
    }
}

/// The tables one call has asked about: each is asked once.
#[derive(Default)]
pub struct Tables {
    known: RefCell<HashMap<String, Option<Rc<BulkTable>>>>,
}

impl Tables {
    /// The table of `entity_set` with the bulk messages it has among `messages` (none on the
    /// batch path); `None` when the environment has no such table.
    pub fn get(
        &self,
        context: &Context,
        entity_set: &str,
        path: WritePath,
        messages: &[&'static str],
    ) -> Result<Option<Rc<BulkTable>>> {
        let name = entity_set.to_ascii_lowercase();
        if let Some(known) = self.known.borrow().get(&name) {
            return Ok(known.clone());
        }
        let found = match context.metadata.table(&context.client, entity_set)? {
            None => None,
            Some(table) => {
                let messages = match path {
                    WritePath::Batch => Vec::new(),
                    WritePath::Bulk => messages.to_vec(),
                    WritePath::Auto => available(context, &table.logical_name, messages)?,
                };
                let elastic = !messages.is_empty() && is_elastic(context, &table.logical_name)?;
                Some(Rc::new(BulkTable {
                    logical_name: table.logical_name.clone(),
                    entity_set: table.entity_set.clone(),
                    primary_id: table.primary_id.clone(),
                    elastic,
                    messages,
                }))
            }
        };
        self.known.borrow_mut().insert(name, found.clone());
        Ok(found)
    }
}

/// Asks which of `messages` the table has. A refusal to answer (a user without read access to
/// `sdkmessagefilter`, an environment without the messages) is a no: `$batch` always works.
fn available(
    context: &Context,
    logical_name: &str,
    messages: &[&'static str],
) -> Result<Vec<&'static str>> {
    match context
        .client
        .get_json(&bulk::availability_query(logical_name, messages))
    {
        Ok(answer) => Ok(bulk::available_messages(&answer, messages)),
        Err(failure) if failure.code == ErrorCode::Unauthenticated => Err(failure),
        Err(failure) => {
            crate::log::info(format!(
                "cannot tell whether {logical_name} has bulk messages ({}); writing it through $batch",
                failure.message
            ));
            Ok(Vec::new())
        }
    }
}

/// Whether the table is elastic: its `TableType` ("Elastic tables",
/// learn.microsoft.com/power-apps/developer/data-platform/elastic-tables).
fn is_elastic(context: &Context, logical_name: &str) -> Result<bool> {
    let answer = context.client.get_json(&format!(
        "EntityDefinitions(LogicalName={})?$select=TableType",
        dataverse::odata::string_literal(logical_name)
    ))?;
    Ok(answer
        .get("TableType")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("Elastic")))
}

/// How one bulk request ended.
pub enum Answer {
    /// 2xx: every record was written; the answer's JSON (null for 204).
    Written { status: u16, body: Value },
    /// The service refused the request. On a standard table nothing was written; on an elastic
    /// one, the records not listed in `failed` were.
    Refused {
        error: ConnectorError,
        failed: Option<Vec<FailedRecord>>,
    },
}

/// Sends `message` with `body` (a `{"Targets": [...]}`) for `table`, with the caller's
/// impersonation and data-load switches.
///
/// A lost, cut or corrupted answer is retried: sending the same request again cannot write
/// anything twice. Creates name their records (client-assigned IDs), so a repeat of an applied
/// `CreateMultiple` fails on the first existing ID and, on a standard table, rolls back whole;
/// on an elastic table only the records that were not written yet are written. Updates and
/// upserts write the same values again. Throttling and outages (429, 503, 502, 504) are retried
/// as for every record request; when they last, or when the service does not accept the
/// caller, the call fails with that error. Any other refusal is the records' own: [`Answer::Refused`].
pub fn send(
    context: &Context,
    input: &Input,
    table: &BulkTable,
    message: &str,
    body: String,
) -> Result<Answer> {
    let request = request(context, input, table, message, body)?;
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    read(response)
}

/// The request [`send`] sends (retried with `RetryPolicy::RECORDS`), for sending it ahead.
pub fn request(
    context: &Context,
    input: &Input,
    table: &BulkTable,
    message: &str,
    body: String,
) -> Result<Request> {
    let mut request = Request::new(
        "POST",
        context
            .client
            .api_url(&bulk::message_path(&table.entity_set, message)),
    )
    .header("Content-Type", "application/json; charset=utf-8")
    .header("Prefer", bulk::PREFER_ERROR_DETAILS);
    request.body = body.into_bytes();
    Ok(crate::switches::apply(impersonate(request, input)?, input))
}

fn read(response: Response) -> Result<Answer> {
    if response.is_success() {
        let status = response.status;
        let body = response.json()?;
        return Ok(Answer::Written { status, body });
    }
    let failed = bulk::failed_records(&response.body);
    let status = response.status;
    let error = match response.into_success() {
        Err(error) => error,
        Ok(_) => return Err(crate::error::malformed("a failed answer read as a success")),
    };
    // These say nothing about the records: the same requests through $batch would meet them too.
    if matches!(status, 401 | 403 | 429 | 502 | 503 | 504) {
        return Err(error);
    }
    Ok(Answer::Refused { error, failed })
}

/// The number of records per bulk request an input asks for, checked.
pub fn chunk_size(input: &Input, field: &InputDef, default: usize) -> Result<usize> {
    match input.number(field.key) {
        None => Ok(default),
        Some(number) if (1.0..=1000.0).contains(&number) && number.fract() == 0.0 => {
            Ok(number as usize)
        }
        Some(number) => Err(invalid_input(
            field,
            format!("must be a whole number from 1 to 1000, got {number}"),
        )),
    }
}

/// The fewest records a request carries when the connector chooses the size: each request
/// costs its round trip (about 100 ms on Dataverse) and one of the 6,000 a user may send per
/// 5 minutes (service protection API limits,
/// learn.microsoft.com/power-apps/developer/data-platform/api-limits), so smaller requests
/// cost more than the parallelism they add.
pub const MIN_SPREAD_CHUNK: usize = 100;

/// Records per request for `records` records when the caller chose no size: enough requests
/// to keep `parallelism` of them busy at once ("Send parallel requests",
/// learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests), each from
/// [`MIN_SPREAD_CHUNK`] to `largest`. 10,000 creates with a hint of 48 go as 48 requests of
/// 209 that finish together, instead of 10 of 1,000 of which each takes five times longer.
pub fn spread(records: usize, parallelism: usize, largest: usize) -> usize {
    let largest = largest.max(1);
    records
        .div_ceil(parallelism.max(1))
        .clamp(MIN_SPREAD_CHUNK.min(largest), largest)
}

/// Splits `indices` into requests of at most `chunk` records and [`MAX_BODY_BYTES`], given
/// each record's size in bytes.
pub fn split(indices: &[usize], chunk: usize, size: impl Fn(usize) -> usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &index in indices {
        let record = size(index) + 1;
        match groups.last_mut() {
            Some(group) if group.len() < chunk && bytes + record <= MAX_BODY_BYTES => {
                group.push(index);
                bytes += record;
            }
            _ => {
                groups.push(vec![index]);
                bytes = record;
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_size_spreads_records_over_the_parallelism_within_its_bounds() {
        assert_eq!(spread(10_000, 48, 1000), 209);
        assert_eq!(spread(100_000, 48, 1000), 1000);
        assert_eq!(spread(500, 48, 1000), 100);
        assert_eq!(spread(10_000, 48, 100), 100);
        assert_eq!(spread(3, 4, 1000), 100);
        assert_eq!(spread(10, 0, 0), 1);
    }
    use crate::test_host::{Script, Signed, header};

    const TABLE: &str = r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#;

    #[test]
    fn the_service_is_asked_once_per_table_and_a_refusal_to_answer_means_batch() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, TABLE)
            .json(
                200,
                r#"{"value":[{"sdkmessagefilterid":"00000000-0000-0000-0000-000000000001","sdkmessageid":{"name":"CreateMultiple"}}]}"#,
            )
            .json(200, r#"{"TableType":"Standard"}"#);
        let context = signed.context(&script);
        let tables = Tables::default();
        let messages = [bulk::CREATE_MULTIPLE, bulk::UPDATE_MULTIPLE];
        let table = tables
            .get(&context, "accounts", WritePath::Auto, &messages)
            .unwrap()
            .unwrap();
        assert!(table.has(bulk::CREATE_MULTIPLE));
        assert!(!table.has(bulk::UPDATE_MULTIPLE));
        assert!(!table.elastic);
        // Asked again: no request.
        tables
            .get(&context, "Accounts", WritePath::Auto, &messages)
            .unwrap();
        let sent = script.sent();
        assert_eq!(sent.len(), 3);
        assert!(
            sent[1].url.contains("/sdkmessagefilters?"),
            "{}",
            sent[1].url
        );
        assert!(
            sent[2]
                .url
                .ends_with("EntityDefinitions(LogicalName='account')?$select=TableType")
        );

        let script = Script::new().json(200, TABLE).json(
            403,
            r#"{"error":{"code":"0x80040220","message":"no read access to sdkmessagefilter"}}"#,
        );
        let context = signed.context(&script);
        let table = Tables::default()
            .get(&context, "accounts", WritePath::Auto, &messages)
            .unwrap()
            .unwrap();
        assert!(table.messages.is_empty());
        assert_eq!(script.sent().len(), 2);
    }

    #[test]
    fn forced_bulk_does_not_ask_and_batch_asks_nothing_but_the_table() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, TABLE)
            .json(200, r#"{"TableType":"Elastic"}"#);
        let context = signed.context(&script);
        let table = Tables::default()
            .get(
                &context,
                "accounts",
                WritePath::Bulk,
                &[bulk::CREATE_MULTIPLE],
            )
            .unwrap()
            .unwrap();
        assert!(table.has(bulk::CREATE_MULTIPLE) && table.elastic);
        assert_eq!(table.chunk(1000), ELASTIC_CHUNK);

        let script = Script::new().json(200, TABLE);
        let context = signed.context(&script);
        let table = Tables::default()
            .get(
                &context,
                "accounts",
                WritePath::Batch,
                &[bulk::CREATE_MULTIPLE],
            )
            .unwrap()
            .unwrap();
        assert!(table.messages.is_empty());
        assert_eq!(script.sent().len(), 1);
    }

    fn standard() -> BulkTable {
        BulkTable {
            logical_name: "account".into(),
            entity_set: "accounts".into(),
            primary_id: "accountid".into(),
            elastic: false,
            messages: vec![bulk::CREATE_MULTIPLE],
        }
    }

    #[test]
    fn a_bulk_request_asks_for_error_details_and_a_refusal_keeps_the_failed_records() {
        let signed = Signed::new();
        let refused = r#"{"error":{"code":"0x80040237","message":"duplicate","@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails":"[{\"RequestIndex\":1,\"Id\":\"\",\"StatusCode\":412}]"}}"#;
        let script = Script::new().json(412, refused);
        let context = signed.context(&script);
        let answer = send(
            &context,
            &Input::default(),
            &standard(),
            bulk::CREATE_MULTIPLE,
            r#"{"Targets":[]}"#.into(),
        )
        .unwrap();
        let Answer::Refused { error, failed } = answer else {
            panic!("refused");
        };
        assert_eq!(error.service_code.as_deref(), Some("0x80040237"));
        assert_eq!(failed.unwrap()[0].request_index, 1);
        let sent = &script.sent()[0];
        assert_eq!(
            sent.url,
            "https://contoso.crm.dynamics.com/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.CreateMultiple"
        );
        assert_eq!(
            header(&sent.headers, "prefer"),
            Some(bulk::PREFER_ERROR_DETAILS)
        );
    }

    #[test]
    fn a_lasting_throttle_or_a_forbidden_caller_fails_the_call_instead_of_falling_back() {
        let signed = Signed::new();
        let script = Script::new().json(
            403,
            r#"{"error":{"code":"0x80040220","message":"no privilege"}}"#,
        );
        let context = signed.context(&script);
        let failure = send(
            &context,
            &Input::default(),
            &standard(),
            bulk::CREATE_MULTIPLE,
            "{}".into(),
        )
        .err()
        .expect("an error");
        assert_eq!(failure.http_status, Some(403));
    }

    #[test]
    fn requests_are_split_by_count_and_by_bytes() {
        let indices: Vec<usize> = (0..25).collect();
        let groups = split(&indices, 10, |_| 10);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let groups = split(&indices, 1000, |_| MAX_BODY_BYTES / 4);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>().len(), 9);
        assert!(groups.iter().all(|group| group.len() <= 3));
    }
}
