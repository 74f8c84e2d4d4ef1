//! Get New and Updated Records: rows of a table modified since a watermark, oldest first, page by
//! page, with the watermark to pass next time. A table whose module is not installed gives no
//! rows and a warning instead of a failure, so an extraction over many tables carries on.
//!
//! The watermark is the newest `modifiedon` returned plus the IDs returned at exactly that
//! instant: the next call asks for `modifiedon ge` it and skips those IDs, so rows that share a
//! timestamp across a page boundary are neither lost nor repeated.

use std::collections::HashSet;

use dataverse::query::{QueryOptions, prefer_header};
use dataverse::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::*;
use crate::log;
use crate::records::{RecordChunks, impersonate};

const ANCHOR_DATE: InputDef = InputDef::new("anchorDate", "Anchor Date", Kind::Text)
    .comments("Read rows modified at or after this instant (ISO 8601, such as 2024-01-31T00:00:00Z) when there is no watermark; defaults to one year back")
    .example("2024-01-31T00:00:00Z");

const WATERMARK: InputDef = InputDef::new("watermark", "Watermark", Kind::Text)
    .comments("The nextWatermark of a previous output: continue from there");

const PAGE_SIZE: InputDef = InputDef::new("recordsPerPage", "Records Per Page", Kind::Number)
    .default("5000")
    .comments("Rows per request (at most 5000)")
    .format(Format::Range(1, 5000));

const MAX_RECORDS: InputDef = InputDef::new("maxRecords", "Max Records", Kind::Number)
    .default("5000")
    .comments("Stop after the page that reaches this many rows; call again with nextWatermark for the rest")
    .format(Format::Range(1, 1_000_000));

const CHANGE_TRACKING: InputDef = InputDef::new("useChangeTracking", "Use Change Tracking", Kind::Boolean)
    .default("false")
    .comments("Use Dataverse change tracking (the table must have it enabled): reports deleted rows too, and starts over with a full read when the delta link has expired");

const DELTA_LINK: InputDef = InputDef::new("deltaLink", "Delta Link", Kind::Text).comments(
    "With change tracking: the deltaLink of a previous output; empty for the first, full read",
);

pub const ACTION: ActionDef = ActionDef {
    key: "get-new-and-updated-records",
    label: "Get New and Updated Records",
    description: "Rows of a table created or modified since a watermark, oldest first, with the watermark for the next call.",
    group: Some("CRM"),
    inputs: &[
        CONNECTION,
        ENTITY_TYPE,
        FIELD_NAMES,
        ANCHOR_DATE,
        WATERMARK,
        PAGE_SIZE,
        MAX_RECORDS,
        CHANGE_TRACKING,
        DELTA_LINK,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"records":[{"accountid":"00000000-0000-0000-0000-000000000002","modifiedon":"2024-02-01T10:00:00Z"}],"complete":true,"nextWatermark":"{\"modifiedon\":\"2024-02-01T10:00:00Z\",\"ids\":[\"00000000-0000-0000-0000-000000000002\"]}","primaryIdAttribute":"accountid","warning":null}"#,
    ),
    run: Run::Text(run),
};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Watermark {
    modifiedon: String,
    ids: Vec<String>,
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

fn run(context: &Context, input: &Input) -> Result<String> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let watermark = match input.text(WATERMARK.key) {
        Some(text) => serde_json::from_str::<Watermark>(text)
            .ok()
            .filter(|w| is_instant(&w.modifiedon))
            .ok_or_else(|| {
                invalid_input(
                    &WATERMARK,
                    "is not a watermark; pass the nextWatermark of a previous output as it is",
                )
            })?,
        None => {
            let anchor = match input.text(ANCHOR_DATE.key) {
                Some(date) => normalize_instant(date).ok_or_else(|| {
                    invalid_input(&ANCHOR_DATE, format!("{date:?} is not an ISO 8601 date, such as 2024-01-31 or 2024-01-31T00:00:00Z"))
                })?,
                None => one_year_back(),
            };
            Watermark {
                modifiedon: anchor,
                ids: Vec::new(),
            }
        }
    };
    if input.flag(CHANGE_TRACKING.key) {
        return changes(context, input, entity_set);
    }
    let Some(table) = context.metadata.table(&context.client, entity_set)? else {
        let warning = format!(
            "table {entity_set:?} does not exist in this environment (is its module installed?); no rows read"
        );
        log::warn(&warning);
        let next = serde_json::to_string(&watermark).unwrap_or_default();
        return Ok(format!(
            "{{\"records\":[],\"complete\":true,\"nextWatermark\":{},\"warning\":{}}}",
            Value::String(next),
            Value::String(warning)
        ));
    };
    let mut select = input.list(FIELD_NAMES.key).to_vec();
    if !select.is_empty() {
        for needed in ["modifiedon", table.primary_id.as_str()] {
            if !select.iter().any(|column| column == needed) {
                select.push(needed.to_string());
            }
        }
    }
    let options = QueryOptions {
        select,
        filter: Some(format!("modifiedon ge {}", watermark.modifiedon)),
        order_by: vec![
            "modifiedon asc".to_string(),
            format!("{} asc", table.primary_id),
        ],
        ..QueryOptions::default()
    };
    let page_size = input.number(PAGE_SIZE.key).unwrap_or(5000.0) as u32;
    let max_records = input.number(MAX_RECORDS.key).unwrap_or(5000.0) as usize;
    let prefer = prefer_header(Some(page_size), false);
    let skip: HashSet<&str> = watermark.ids.iter().map(String::as_str).collect();

    let mut url = format!(
        "{}{}",
        context.client.api_url(entity_set),
        options.to_query_string()
    );
    let mut chunks = RecordChunks::default();
    let mut newest = watermark.clone();
    let complete = loop {
        let mut request = Request::new("GET", url);
        if let Some(prefer) = &prefer {
            request = request.header("Prefer", prefer.clone());
        }
        let request = impersonate(request, input)?;
        let response = context
            .client
            .send(request, RetryPolicy::RECORDS)?
            .into_success()?;
        let page: Page = serde_json::from_slice(&response.body).map_err(|problem| {
            malformed(format!(
                "a page of {entity_set} is not a record list: {problem}"
            ))
        })?;
        let mut kept = Vec::with_capacity(page.value.len());
        for record in &page.value {
            let fields: Stamp = serde_json::from_str(record.get()).map_err(|problem| {
                malformed(format!("a row of {entity_set} cannot be read: {problem}"))
            })?;
            let id = fields.id(&table.primary_id).unwrap_or_default();
            let modified = fields.modifiedon();
            if modified.as_deref() == Some(watermark.modifiedon.as_str())
                && skip.contains(id.as_str())
            {
                continue;
            }
            if let Some(modified) = modified {
                if modified != newest.modifiedon {
                    newest = Watermark {
                        modifiedon: modified,
                        ids: Vec::new(),
                    };
                }
                newest.ids.push(id);
            }
            kept.push(*record);
        }
        chunks.push_page(&kept);
        match page.next_link {
            Some(next) if chunks.len() < max_records => url = next,
            Some(_) => break false,
            None => break true,
        }
    };
    let next = serde_json::to_string(&newest).unwrap_or_default();
    Ok(chunks.finish(&format!(
        ",\"complete\":{complete},\"nextWatermark\":{},\"primaryIdAttribute\":{},\"warning\":null",
        Value::String(next),
        Value::String(table.primary_id.clone())
    )))
}

/// The two columns the watermark needs, read from a row without building its values.
#[derive(Deserialize)]
struct Stamp<'a>(#[serde(borrow)] std::collections::BTreeMap<&'a str, &'a RawValue>);

impl Stamp<'_> {
    fn text(&self, column: &str) -> Option<String> {
        let raw = self.0.get(column)?.get();
        serde_json::from_str::<String>(raw).ok()
    }

    fn modifiedon(&self) -> Option<String> {
        self.text("modifiedon")
    }

    fn id(&self, primary_id: &str) -> Option<String> {
        self.text(primary_id).map(|id| id.to_ascii_lowercase())
    }
}

fn is_instant(text: &str) -> bool {
    normalize_instant(text).is_some()
}

/// `2024-01-31` or `2024-01-31T10:00:00Z` (offsets and fractions kept) checked for shape, so it
/// can go into a filter as a literal; None when it is anything else.
fn normalize_instant(text: &str) -> Option<String> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let date_ok = bytes.len() >= 10
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..7].iter().all(u8::is_ascii_digit)
        && bytes[7] == b'-'
        && bytes[8..10].iter().all(u8::is_ascii_digit);
    if !date_ok {
        return None;
    }
    if bytes.len() == 10 {
        return Some(format!("{text}T00:00:00Z"));
    }
    let rest = &text[10..];
    let time_ok = rest.starts_with('T')
        && rest.len() >= 9
        && rest[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b':' | b'.' | b'Z' | b'+' | b'-'));
    time_ok.then(|| text.to_string())
}

fn one_year_back() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default();
    dataverse::encoding::iso_datetime(now - 365 * 86_400)
}

#[derive(Deserialize)]
struct DeltaPage<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

#[derive(Deserialize)]
struct Deleted {
    #[serde(rename = "@odata.context")]
    context: Option<String>,
    id: Option<String>,
    reason: Option<String>,
}

/// Change-tracking mode: a full read the first time (and after an expired delta link), then only
/// what changed, deleted rows included.
fn changes(context: &Context, input: &Input, entity_set: &str) -> Result<String> {
    let page_size = input.number(PAGE_SIZE.key).unwrap_or(5000.0) as u32;
    let given = input.text(DELTA_LINK.key);
    if let Some(link) = given {
        let own = context.client.settings.environment.owns_url(link);
        if !own || !link.contains("deltatoken") {
            return Err(invalid_input(
                &DELTA_LINK,
                "is not a delta link of this connection's environment; pass the deltaLink of a previous output as it is",
            ));
        }
    }
    let first_url = {
        let options = QueryOptions {
            select: input.list(FIELD_NAMES.key).to_vec(),
            ..QueryOptions::default()
        };
        format!(
            "{}{}",
            context.client.api_url(entity_set),
            options.to_query_string()
        )
    };
    let mut resynced = false;
    let mut url = given
        .map(str::to_string)
        .unwrap_or_else(|| first_url.clone());
    let mut chunks = RecordChunks::default();
    let mut deleted: Vec<String> = Vec::new();
    let delta_link = loop {
        let request = Request::new("GET", url.clone()).header(
            "Prefer",
            format!("odata.track-changes,odata.maxpagesize={page_size}"),
        );
        let request = impersonate(request, input)?;
        let response = context.client.send(request, RetryPolicy::RECORDS)?;
        if response.status == 400
            && given.is_some()
            && !resynced
            && String::from_utf8_lossy(&response.body)
                .to_lowercase()
                .contains("expired")
        {
            log::warn(format!(
                "the delta link of {entity_set} has expired; reading the whole table again"
            ));
            resynced = true;
            chunks = RecordChunks::default();
            deleted.clear();
            url = first_url.clone();
            continue;
        }
        let response = response
            .into_success()
            .map_err(|failure| crate::records::explain(context, entity_set, failure))?;
        let page: DeltaPage = serde_json::from_slice(&response.body).map_err(|problem| {
            malformed(format!(
                "a change page of {entity_set} is not a record list: {problem}"
            ))
        })?;
        let mut rows = Vec::with_capacity(page.value.len());
        for entry in &page.value {
            let marker: Deleted = serde_json::from_str(entry.get()).unwrap_or(Deleted {
                context: None,
                id: None,
                reason: None,
            });
            let is_deleted = marker
                .context
                .as_deref()
                .is_some_and(|c| c.ends_with("$deletedEntity"))
                || marker.reason.as_deref() == Some("deleted");
            match (is_deleted, marker.id) {
                (true, Some(id)) => deleted.push(id),
                _ => rows.push(*entry),
            }
        }
        chunks.push_page(&rows);
        match (page.next_link, page.delta_link) {
            (Some(next), _) => url = next,
            (None, Some(delta)) => break delta,
            (None, None) => {
                return Err(malformed(format!(
                    "the change answer for {entity_set} has neither a next link nor a delta link"
                )));
            }
        }
    };
    let deleted = serde_json::to_string(&deleted).unwrap_or_else(|_| "[]".to_string());
    Ok(chunks.finish(&format!(
        ",\"deleted\":{deleted},\"deltaLink\":{},\"resynced\":{resynced},\"complete\":true,\"warning\":null",
        Value::String(delta_link)
    )))
}
