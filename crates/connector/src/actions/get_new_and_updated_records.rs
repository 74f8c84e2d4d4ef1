//! Get New and Updated Records: rows of a table modified since a watermark, oldest first, page by
//! page, with the watermark to pass next time. A table whose module is not installed gives no
//! rows and a warning instead of a failure, so an extraction over many tables carries on.
//!
//! The watermark is the newest `modifiedon` returned plus the IDs returned at exactly that
//! instant: the next call asks for `modifiedon ge` it and skips those IDs, so rows that share a
//! timestamp across a page boundary are neither lost nor repeated.
//!
//! That read is [`read_since`], typed, which the polling trigger calls too.

use std::collections::HashSet;

use dataverse::encoding::{Instant, parse_instant};
use dataverse::query::{QueryOptions, prefer_header};
use dataverse::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::actions::{ActionDef, Run};
use crate::client;
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::*;
use crate::log;
use crate::records::{Caller, NextPage, RecordChunks, impersonate};

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

const CREATED_FROM: InputDef = InputDef::new("createdFrom", "Created From", Kind::Text)
    .comments("Watermark mode only: read just the rows created at or after this instant (ISO 8601); with Created Before, one range of a table that several calls read at the same time")
    .example("2024-01-01T00:00:00Z");

const CREATED_BEFORE: InputDef = InputDef::new("createdBefore", "Created Before", Kind::Text)
    .comments("Watermark mode only: read just the rows created before this instant (ISO 8601); without Created From, rows with no createdon are read too, so ranges that meet cover every row once")
    .example("2024-07-01T00:00:00Z");

const DELTA_LINK: InputDef = InputDef::new("deltaLink", "Delta Link", Kind::Text).comments(
    "With change tracking: the deltaLink of a previous output, or its nextLink to go on with a read cut by Rows Per Call; empty for the first, full read",
);

const ROWS_PER_CALL: InputDef = InputDef::new("rowsPerCall", "Rows Per Call", Kind::Number)
    .comments("With change tracking: stop after the page that reaches this many rows and answer nextLink (complete false); pass it as Delta Link to go on. Empty: read to the end in one call. A table read again because its delta link expired is always read to the end, so the rows it no longer has can be told")
    .format(Format::Range(1, 1_000_000));

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
        CREATED_FROM,
        CREATED_BEFORE,
        CHANGE_TRACKING,
        DELTA_LINK,
        ROWS_PER_CALL,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"records":[{"accountid":"00000000-0000-0000-0000-000000000002","modifiedon":"2024-02-01T10:00:00Z"}],"complete":true,"nextWatermark":"{\"modifiedon\":\"2024-02-01T10:00:00Z\",\"ids\":[\"00000000-0000-0000-0000-000000000002\"]}","primaryIdAttribute":"accountid","warning":null}"#,
    ),
    run: Run::Text(run),
    dynamic_inputs: None,
};

/// Where a read starts: the newest `modifiedon` already seen and the IDs seen at that instant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Watermark {
    modifiedon: String,
    ids: Vec<String>,
}

impl Watermark {
    /// The `nextWatermark` text of a previous output, checked.
    pub fn parse(text: &str) -> Result<Watermark> {
        serde_json::from_str::<Watermark>(text)
            .ok()
            .filter(|w| parse_instant(&w.modifiedon).is_ok())
            .ok_or_else(|| {
                invalid_input(
                    &WATERMARK,
                    "is not a watermark; pass the nextWatermark of a previous output as it is",
                )
            })
    }

    /// A first read's start: the anchor date (ISO 8601), or one year back without one.
    pub fn from_anchor(anchor: Option<&str>) -> Result<Watermark> {
        let modifiedon = match anchor {
            Some(date) => {
                parse_instant(date)
                    .map_err(|problem| invalid_input(&ANCHOR_DATE, problem.explain(date)))?
                    .literal
            }
            None => one_year_back(),
        };
        Ok(Watermark {
            modifiedon,
            ids: Vec::new(),
        })
    }

    /// The text a caller passes back as Watermark (and a poll keeps in its state).
    pub fn to_text(&self) -> String {
        // Two strings and a list of strings always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One read of a table's rows modified since a watermark, oldest first.
pub struct Request<'a> {
    /// The table, as its entity set name (accounts) or logical name (account).
    pub entity_set: &'a str,
    /// The columns to read, empty for all; the watermark's own columns are added.
    pub fields: &'a [String],
    pub since: Watermark,
    /// Rows per page (at most 5000).
    pub page_size: u32,
    /// Stop after the page that reaches this many rows.
    pub max_records: usize,
    pub caller: Caller<'a>,
}

/// What a read found, besides the rows handed to the page callback.
pub struct Changes {
    /// False when `max_records` stopped the read before the last page.
    pub complete: bool,
    /// Where the next read starts.
    pub next_watermark: Watermark,
    /// The table's primary ID column; None when the environment has no such table.
    pub primary_id: Option<String>,
    /// Why nothing was read, when the table does not exist.
    pub warning: Option<String>,
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
    let since = match input.text(WATERMARK.key) {
        Some(text) => Watermark::parse(text)?,
        None => Watermark::from_anchor(input.text(ANCHOR_DATE.key))?,
    };
    let created = CreatedRange::of(input)?;
    if input.flag(CHANGE_TRACKING.key) {
        if !created.is_whole() {
            // learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems:
            // $filter is refused with Prefer: odata.track-changes, so a change read is whole.
            let field = if created.from.is_some() {
                &CREATED_FROM
            } else {
                &CREATED_BEFORE
            };
            return Err(invalid_input(
                field,
                "cannot be used with change tracking: a change-tracking read takes no filter and is read whole",
            ));
        }
        return changes(context, input, entity_set);
    }
    let request = Request {
        entity_set,
        fields: input.list(FIELD_NAMES.key),
        since,
        page_size: input.number(PAGE_SIZE.key).unwrap_or(5000.0) as u32,
        max_records: input.number(MAX_RECORDS.key).unwrap_or(5000.0) as usize,
        caller: Caller::of(input),
    };
    let mut chunks = RecordChunks::paged(request.max_records > request.page_size as usize);
    let changes = read_range_since(context, &request, &created, &mut |rows| {
        chunks.push_page(rows);
        Ok(())
    })?;
    let primary_id = match &changes.primary_id {
        Some(column) => format!(",\"primaryIdAttribute\":{}", Value::String(column.clone())),
        None => String::new(),
    };
    let warning = match changes.warning {
        Some(warning) => Value::String(warning).to_string(),
        None => "null".to_string(),
    };
    Ok(chunks.finish(&format!(
        ",\"complete\":{},\"nextWatermark\":{}{primary_id},\"warning\":{warning}",
        changes.complete,
        Value::String(changes.next_watermark.to_text()),
    )))
}

/// Reads the rows of `request.entity_set` modified since `request.since`, page by page, and hands
/// each page's new rows to `on_rows` as they arrive, so the caller chooses how to hold them (the
/// action copies their JSON text, the polling trigger makes events). A table the environment does
/// not have reads nothing and says so in a warning instead of failing.
pub fn read_since(
    context: &Context,
    request: &Request,
    on_rows: &mut dyn FnMut(&[&RawValue]) -> Result<()>,
) -> Result<Changes> {
    read_range_since(context, request, &CreatedRange::default(), on_rows)
}

/// A range of `createdon`: from (inclusive) and before (exclusive), each open when None. A range
/// open below holds the rows without a `createdon` too, so ranges that meet (one's `before` the
/// next one's `from`) hold every row exactly once.
#[derive(Debug, Clone, Default, PartialEq)]
struct CreatedRange {
    from: Option<String>,
    before: Option<String>,
}

impl CreatedRange {
    /// The Created From and Created Before inputs, checked: each an instant, and a range that
    /// holds something (an empty one is a caller's mistake, not a read of nothing).
    fn of(input: &Input) -> Result<CreatedRange> {
        let instant = |def: &InputDef| -> Result<Option<Instant>> {
            match input.text(def.key) {
                None => Ok(None),
                Some(text) => parse_instant(text)
                    .map(Some)
                    .map_err(|problem| invalid_input(def, problem.explain(text))),
            }
        };
        let (from, before) = (instant(&CREATED_FROM)?, instant(&CREATED_BEFORE)?);
        if let (Some(from), Some(before)) = (&from, &before)
            && !from.is_before(before)
        {
            return Err(invalid_input(
                &CREATED_BEFORE,
                format!(
                    "{:?} is not after Created From ({:?}): the range would hold no row",
                    before.literal, from.literal
                ),
            ));
        }
        Ok(CreatedRange {
            from: from.map(|i| i.literal),
            before: before.map(|i| i.literal),
        })
    }

    fn is_whole(&self) -> bool {
        self.from.is_none() && self.before.is_none()
    }

    /// The `$filter` terms of the range, to join with `and`
    /// (learn.microsoft.com/power-apps/developer/data-platform/webapi/query/filter-rows:
    /// comparison and logical operators, parentheses for an `or` within an `and`). A row is
    /// left out when the expression "evaluates to `false` or `null`", so a row without
    /// `createdon` matches no comparison: the range open below asks for it by `eq null`.
    fn filter_terms(&self) -> Vec<String> {
        let mut terms = Vec::new();
        if let Some(from) = &self.from {
            terms.push(format!("createdon ge {from}"));
        }
        match (&self.from, &self.before) {
            (None, Some(before)) => {
                terms.push(format!("(createdon lt {before} or createdon eq null)"))
            }
            (Some(_), Some(before)) => terms.push(format!("createdon lt {before}")),
            (_, None) => {}
        }
        terms
    }
}

/// [`read_since`] of the rows whose `createdon` falls in `created`.
fn read_range_since(
    context: &Context,
    request: &Request,
    created: &CreatedRange,
    on_rows: &mut dyn FnMut(&[&RawValue]) -> Result<()>,
) -> Result<Changes> {
    let entity_set = request.entity_set;
    let watermark = &request.since;
    let Some(table) = context.metadata.table(&context.client, entity_set)? else {
        let warning = format!(
            "table {entity_set:?} does not exist in this environment (is its module installed?); no rows read"
        );
        log::warn(&warning);
        return Ok(Changes {
            complete: true,
            next_watermark: watermark.clone(),
            primary_id: None,
            warning: Some(warning),
        });
    };
    let mut select = request.fields.to_vec();
    if !select.is_empty() {
        for needed in ["modifiedon", table.primary_id.as_str()] {
            if !select.iter().any(|column| column == needed) {
                select.push(needed.to_string());
            }
        }
    }
    let options = QueryOptions {
        select,
        filter: Some(
            std::iter::once(format!("modifiedon ge {}", watermark.modifiedon))
                .chain(created.filter_terms())
                .collect::<Vec<_>>()
                .join(" and "),
        ),
        order_by: vec![
            "modifiedon asc".to_string(),
            format!("{} asc", table.primary_id),
        ],
        ..QueryOptions::default()
    };
    let prefer = prefer_header(Some(request.page_size), false);
    let skip: HashSet<&str> = watermark.ids.iter().map(String::as_str).collect();

    let mut url = format!(
        "{}{}",
        context.client.api_url(entity_set),
        options.to_query_string()
    );
    let mut read = 0usize;
    let mut newest = watermark.clone();
    let page_request = |url: &str| {
        let mut page_request = client::Request::new("GET", url.to_string());
        if let Some(prefer) = &prefer {
            page_request = page_request.header("Prefer", prefer.clone());
        }
        request.caller.apply(page_request)
    };
    // However the read ends, no page asked for ahead stays behind.
    let _ahead = context.client.reading_ahead();
    let complete = loop {
        // The next page travels while this one is read, when its tail names it.
        let mut ahead = NextPage::default();
        let this_page = page_request(&url)?;
        // The page is read as it arrives (the read's refusal is the client's body check, so a
        // cut page is sent for again), and its rows go to `on_rows` then: the body is parsed
        // once. What `on_rows` answers travels out as the read's product.
        let mut take = |body: &[u8]| -> std::result::Result<Result<Option<String>>, String> {
            // Not when this page may reach the cap: a page holds at most the page size asked.
            if read + (request.page_size as usize) < request.max_records {
                ahead.guess(context, entity_set, body, page_request);
            }
            let page: Page = match client::parse_page(body)? {
                Ok(page) => page,
                Err(problem) => {
                    return Ok(Err(malformed(format!(
                        "a page of {entity_set} is not a record list: {problem}"
                    ))));
                }
            };
            Ok(
                keep_new(&page, &table.primary_id, watermark, &skip, &mut newest)
                    .map_err(|problem| {
                        malformed(format!("a row of {entity_set} cannot be read: {problem}"))
                    })
                    .and_then(|kept| {
                        read += kept.len();
                        on_rows(&kept)
                    })
                    .map(|()| page.next_link),
            )
        };
        let (response, taken) =
            context
                .client
                .send_reading(this_page, RetryPolicy::RECORDS, &mut take)?;
        let response = response.into_success()?;
        let next_link = match taken {
            Some(taken) => taken?,
            None => {
                // Not read on arrival (not JSON by its headers): read here, once, to say why.
                take(&response.body).map_err(|problem| {
                    malformed(format!(
                        "a page of {entity_set} is not a record list: {problem}"
                    ))
                })??
            }
        };
        ahead.settle(context, next_link.as_deref());
        match next_link {
            Some(next) if read < request.max_records => url = next,
            Some(_) => break false,
            None => break true,
        }
    };
    Ok(Changes {
        complete,
        next_watermark: newest,
        primary_id: Some(table.primary_id.clone()),
        warning: None,
    })
}

/// The rows of a page that are new since `watermark` (the rows of its instant it already
/// gave, `skip`, are left out), moving `newest` on to the newest row kept.
fn keep_new<'a>(
    page: &Page<'a>,
    primary_id: &str,
    watermark: &Watermark,
    skip: &HashSet<&str>,
    newest: &mut Watermark,
) -> std::result::Result<Vec<&'a RawValue>, serde_json::Error> {
    let mut kept = Vec::with_capacity(page.value.len());
    for record in &page.value {
        let stamp = Stamp::of(record, primary_id)?;
        let id = stamp.id.unwrap_or_default();
        if stamp.modifiedon.as_deref() == Some(watermark.modifiedon.as_str())
            && skip.contains(id.as_str())
        {
            continue;
        }
        if let Some(modified) = stamp.modifiedon {
            if modified != newest.modifiedon {
                *newest = Watermark {
                    modifiedon: modified,
                    ids: Vec::new(),
                };
            }
            newest.ids.push(id);
        }
        kept.push(*record);
    }
    Ok(kept)
}

/// The two columns the watermark needs: a row's `modifiedon` and primary ID (lower case), each
/// when it is a string; the row's other columns are skipped, not kept.
#[derive(Debug, Default, PartialEq)]
struct Stamp {
    modifiedon: Option<String>,
    id: Option<String>,
}

impl Stamp {
    fn of(record: &RawValue, primary_id: &str) -> std::result::Result<Stamp, serde_json::Error> {
        use serde::de::DeserializeSeed as _;
        let mut reader = serde_json::Deserializer::from_str(record.get());
        StampSeed(primary_id).deserialize(&mut reader)
    }
}

struct StampSeed<'p>(&'p str);

impl<'de> serde::de::DeserializeSeed<'de> for StampSeed<'_> {
    type Value = Stamp;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Stamp, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StampSeed<'_> {
    type Value = Stamp;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a row")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(
        self,
        mut map: M,
    ) -> std::result::Result<Stamp, M::Error> {
        // A column named twice counts by its last value, as the map this replaced kept it.
        let mut stamp = Stamp::default();
        while let Some(wanted) = map.next_key_seed(StampKey(self.0))? {
            match wanted {
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Some(is_id) => {
                    let value = map.next_value::<Value>()?;
                    let text = value.as_str().map(|text| match is_id {
                        true => text.to_ascii_lowercase(),
                        false => text.to_string(),
                    });
                    match is_id {
                        true => stamp.id = text,
                        false => stamp.modifiedon = text,
                    }
                }
            }
        }
        Ok(stamp)
    }
}

/// A column name, read without keeping it: `Some(false)` for `modifiedon`, `Some(true)` for the
/// primary ID, `None` for any other.
struct StampKey<'p>(&'p str);

impl<'de> serde::de::DeserializeSeed<'de> for StampKey<'_> {
    type Value = Option<bool>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Option<bool>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StampKey<'_> {
    type Value = Option<bool>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a column name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> std::result::Result<Option<bool>, E> {
        Ok(if key == "modifiedon" {
            Some(false)
        } else if key == self.0 {
            Some(true)
        } else {
            None
        })
    }
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

#[derive(Deserialize, Default)]
struct Deleted {
    #[serde(rename = "@odata.context")]
    context: Option<String>,
    id: Option<String>,
    reason: Option<String>,
}

/// Splits a change page into rows (into `chunks`) and deleted rows' IDs (into `deleted`), and
/// answers its next and delta links. A row is a deletion when its own `@odata.context` names
/// `$deletedEntity` or its `reason` is `deleted` (use-change-tracking-synchronize-data-external-systems).
///
/// A body that is not JSON is refused (sent for again); JSON of another shape is `Ok(Err(why))`
/// ([`client::parse_page`]).
fn split_changes(
    body: &[u8],
    chunks: &mut RecordChunks,
    deleted: &mut Vec<String>,
) -> client::PageRead<Links> {
    let page: DeltaPage = match client::parse_page(body)? {
        Ok(page) => page,
        Err(problem) => return Ok(Err(problem)),
    };
    let mut rows = Vec::with_capacity(page.value.len());
    for entry in &page.value {
        if !may_mark_a_deletion(entry.get()) {
            rows.push(*entry);
            continue;
        }
        let marker: Deleted = serde_json::from_str(entry.get()).unwrap_or_default();
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
    Ok(Ok((page.next_link, page.delta_link)))
}

/// Whether a row's raw JSON can be a deletion: both markers hold the letters `deleted`
/// (`…$deletedEntity`, `"deleted"`), and only a `\u` escape can spell them otherwise. Other rows
/// (nearly all of a page) are not parsed a second time.
fn may_mark_a_deletion(raw: &str) -> bool {
    raw.contains("deleted") || raw.contains("\\u")
}

/// A change page's next and delta links.
type Links = (Option<String>, Option<String>);

/// Change-tracking mode: a full read the first time (and after an expired delta link), then only
/// what changed, deleted rows included.
fn changes(context: &Context, input: &Input, entity_set: &str) -> Result<String> {
    let page_size = input.number(PAGE_SIZE.key).unwrap_or(5000.0) as u32;
    // Whole and in range: the input's declared format is checked when the input is read.
    let budget = input.number(ROWS_PER_CALL.key).map(|rows| rows as usize);
    let given = input.text(DELTA_LINK.key);
    if let Some(link) = given {
        // A delta link, or the next link of a read cut by Rows Per Call (its skiptoken carries
        // the tracking), of this environment and this table.
        let own = context.client.settings.environment.owns_url(link)
            && crate::records::is_link_of(context, entity_set, link);
        if !own || !(link.contains("deltatoken") || link.contains("skiptoken")) {
            return Err(invalid_input(
                &DELTA_LINK,
                "is not a delta link or next link of this table in this connection's environment; pass the deltaLink or nextLink of a previous output as it is",
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
    // A whole read (and a read started over) may take many pages; a read cut at a page's
    // worth of rows takes one.
    let many_pages = budget.is_none_or(|budget| budget > page_size as usize);
    let mut chunks = RecordChunks::paged(many_pages);
    let mut deleted: Vec<String> = Vec::new();
    let page_request = |url: &str| {
        let request = client::Request::new("GET", url.to_string()).header(
            "Prefer",
            format!("odata.track-changes,odata.maxpagesize={page_size}"),
        );
        impersonate(request, input)
    };
    // However the read ends, no page asked for ahead stays behind.
    let _ahead = context.client.reading_ahead();
    // Some(delta link) when the read reached its end, None when Rows Per Call cut it at `url`.
    let delta_link = loop {
        let request = page_request(&url)?;
        // The next page travels while this one is read, when its tail names it; not when
        // Rows Per Call may end the read at this page.
        let mut ahead = NextPage::default();
        let may_go_on = resynced
            || budget
                .is_none_or(|budget| chunks.len() + deleted.len() + (page_size as usize) < budget);
        // The page is read as it arrives (the read's refusal is the client's body check, so a
        // cut page is sent for again): parsed once.
        let (response, read) =
            context
                .client
                .send_reading(request, RetryPolicy::RECORDS, |body| {
                    if may_go_on {
                        ahead.guess(context, entity_set, body, page_request);
                    }
                    split_changes(body, &mut chunks, &mut deleted)
                })?;
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
            chunks = RecordChunks::paged(true);
            deleted.clear();
            url = first_url.clone();
            continue;
        }
        let response = response
            .into_success()
            .map_err(|failure| crate::records::explain(context, entity_set, failure))?;
        let read = match read {
            Some(read) => read,
            None => split_changes(&response.body, &mut chunks, &mut deleted).and_then(|read| read),
        };
        let (next_link, delta_link) = read.map_err(|problem| {
            malformed(format!(
                "a change page of {entity_set} is not a record list: {problem}"
            ))
        })?;
        ahead.settle(context, next_link.as_deref());
        let seen = chunks.len() + deleted.len();
        match (next_link, delta_link) {
            // A read that starts the table over after an expired link goes to its end: the
            // caller tells deleted rows by what the whole read did not bring.
            (Some(next), _) if !resynced && budget.is_some_and(|budget| seen >= budget) => {
                url = next;
                break None;
            }
            (Some(next), _) => url = next,
            (None, Some(delta)) => break Some(delta),
            (None, None) => {
                return Err(malformed(format!(
                    "the change answer for {entity_set} has neither a next link nor a delta link"
                )));
            }
        }
    };
    let deleted = serde_json::to_string(&deleted).unwrap_or_else(|_| "[]".to_string());
    let (delta_link, next_link, complete) = match delta_link {
        Some(delta) => (Value::String(delta), Value::Null, true),
        None => (Value::Null, Value::String(url), false),
    };
    Ok(chunks.finish(&format!(
        ",\"deleted\":{deleted},\"deltaLink\":{delta_link},\"nextLink\":{next_link},\"resynced\":{resynced},\"complete\":{complete},\"warning\":null"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::{ORIGIN, Script, Signed};
    use serde_json::json;

    const ACCOUNTS: &str = r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#;

    #[test]
    fn a_rows_stamp_is_its_modifiedon_and_lower_case_id_whatever_else_it_holds() {
        let stamp = |text: &str| {
            let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
            Stamp::of(&raw, "accountid")
        };
        let full = stamp(
            r#"{"@odata.etag":"W/\"7\"","name":"x","address":{"modifiedon":"nested","accountid":"no"},"modifiedon":"2024-05-01T10:00:00Z","accountid":"AB-CD","list":[1,{"a":[]}]}"#,
        )
        .unwrap();
        assert_eq!(full.modifiedon.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(full.id.as_deref(), Some("ab-cd"));
        // A name spelt with escapes is the same name; a column named twice counts by its last
        // value; a value that is not text is no stamp.
        let escaped =
            stamp(r#"{"modified\u006fn":"2024-01-01T00:00:00Z","accountid":"A","accountid":"B"}"#)
                .unwrap();
        assert_eq!(escaped.modifiedon.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(escaped.id.as_deref(), Some("b"));
        assert_eq!(
            stamp(r#"{"modifiedon":5,"accountid":null}"#).unwrap(),
            Stamp::default()
        );
        assert!(stamp("[1]").is_err());
        assert!(stamp("\"row\"").is_err());
    }

    #[test]
    fn deletions_are_found_however_they_are_spelt_and_rows_that_mention_deleted_stay_rows() {
        let page = br#"{"value":[
            {"@odata.context":"https://x.crm.dynamics.com/api/data/v9.2/$metadata#accounts/$deletedEntity","id":"a1"},
            {"reason":"deleted","id":"a2"},
            {"reason":"\u0064eleted","id":"a3"},
            {"@odata.context":"https://x/api/data/v9.2/$metadata#accounts/$\u0064eletedEntity","id":"a4"},
            {"accountid":"r1","name":"deleted by mistake","reason":"kept"},
            {"accountid":"r2","name":"plain"}
        ],"@odata.deltaLink":"https://x/api/data/v9.2/accounts?$deltatoken=1"}"#;
        let mut chunks = RecordChunks::default();
        let mut deleted = Vec::new();
        let links = split_changes(page, &mut chunks, &mut deleted)
            .unwrap()
            .unwrap();
        assert_eq!(deleted, ["a1", "a2", "a3", "a4"]);
        assert_eq!(chunks.len(), 2);
        assert!(links.1.is_some());
        assert!(!may_mark_a_deletion(r#"{"accountid":"r2","name":"plain"}"#));
    }

    #[test]
    fn anchors_are_iso_dates_or_instants_and_watermarks_only_what_a_read_gave() {
        let day = Watermark::from_anchor(Some("2024-01-31")).unwrap();
        assert_eq!(day.modifiedon, "2024-01-31T00:00:00Z");
        let instant = Watermark::from_anchor(Some(" 2024-01-31T10:00:00.5+01:00 ")).unwrap();
        assert_eq!(instant.modifiedon, "2024-01-31T10:00:00.5+01:00");
        for bad in [
            "31/01/2024",
            "2024-01-31 10:00",
            "2024-01-31T10:00:00Z' or 1 eq 1",
        ] {
            let failure = Watermark::from_anchor(Some(bad)).unwrap_err();
            assert_eq!(failure.field.as_deref(), Some("anchorDate"), "{bad}");
        }
        assert_eq!(Watermark::parse(&day.to_text()).unwrap(), day);
        for bad in ["", "2024-01-31", r#"{"modifiedon":"yesterday","ids":[]}"#] {
            let failure = Watermark::parse(bad).unwrap_err();
            assert_eq!(failure.field.as_deref(), Some("watermark"), "{bad}");
        }
    }

    #[test]
    fn created_ranges_meet_without_overlap_and_the_one_open_below_holds_rows_without_createdon() {
        let first = CreatedRange {
            from: None,
            before: Some("2024-01-01T00:00:00Z".into()),
        };
        let middle = CreatedRange {
            from: Some("2024-01-01T00:00:00Z".into()),
            before: Some("2024-02-01T00:00:00Z".into()),
        };
        let last = CreatedRange {
            from: Some("2024-02-01T00:00:00Z".into()),
            before: None,
        };
        assert_eq!(
            first.filter_terms(),
            ["(createdon lt 2024-01-01T00:00:00Z or createdon eq null)"]
        );
        assert_eq!(
            middle.filter_terms(),
            [
                "createdon ge 2024-01-01T00:00:00Z",
                "createdon lt 2024-02-01T00:00:00Z"
            ]
        );
        assert_eq!(last.filter_terms(), ["createdon ge 2024-02-01T00:00:00Z"]);
        assert!(CreatedRange::default().filter_terms().is_empty());
    }

    #[test]
    fn a_ranged_read_filters_on_createdon_and_a_bad_bound_or_a_ranged_change_read_is_refused() {
        let signed = Signed::new();
        let script = Script::new()
            .json(200, ACCOUNTS)
            .json(200, r#"{"value":[]}"#);
        let context = signed.context(&script);
        let input = Input::parse(
            ACTION.inputs,
            r#"{"entityType":"accounts","createdFrom":"2024-01-01T00:00:00Z","createdBefore":"2024-02-01T00:00:00Z","anchorDate":"2000-01-01"}"#,
        )
        .unwrap();
        let output: Value = serde_json::from_str(&run(&context, &input).unwrap()).unwrap();
        assert_eq!(output["complete"], true);
        let sent = script.sent();
        assert!(
            sent[1].url.contains(
                "$filter=modifiedon%20ge%202000-01-01T00:00:00Z%20and%20createdon%20ge%202024-01-01T00:00:00Z%20and%20createdon%20lt%202024-02-01T00:00:00Z"
            ),
            "{}",
            sent[1].url
        );
        for (text, field) in [
            (
                r#"{"entityType":"accounts","createdFrom":"yesterday"}"#,
                "createdFrom",
            ),
            (
                r#"{"entityType":"accounts","createdBefore":"2024-01-01T00:00:00Z' or 1 eq 1"}"#,
                "createdBefore",
            ),
            (
                r#"{"entityType":"accounts","useChangeTracking":true,"createdBefore":"2024-01-01T00:00:00Z"}"#,
                "createdBefore",
            ),
        ] {
            let script = Script::new();
            let context = signed.context(&script);
            let failure = run(&context, &Input::parse(ACTION.inputs, text).unwrap()).unwrap_err();
            assert_eq!(failure.field.as_deref(), Some(field), "{text}");
            assert!(script.sent().is_empty(), "no request for {text}");
        }
    }

    #[test]
    fn malformed_out_of_range_overlong_or_empty_range_dates_are_refused_naming_the_field_before_any_request()
     {
        let signed = Signed::new();
        let long = format!("2024-01-01T00:00:00Z{}", "0".repeat(100_000));
        let mut cases = Vec::new();
        for field in ["createdFrom", "createdBefore", "anchorDate"] {
            for bad in [
                "2024-01-01T::::::::",
                "2024-01-01T00:00:00-----",
                "2024-01-01T00:00:00ZZZZ",
                "2024-99-99",
                "2023-02-29T00:00:00Z",
                "2024-01-01T24:00:00Z",
                long.as_str(),
            ] {
                cases.push((json!({"entityType": "accounts", field: bad}), field));
            }
        }
        for (from, before) in [
            ("2024-02-01T00:00:00Z", "2024-01-01T00:00:00Z"),
            ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
            ("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z"),
        ] {
            cases.push((
                json!({"entityType": "accounts", "createdFrom": from, "createdBefore": before}),
                "createdBefore",
            ));
        }
        for (input, field) in cases {
            let script = Script::new();
            let context = signed.context(&script);
            let text = input.to_string();
            let failure = run(&context, &Input::parse(ACTION.inputs, &text).unwrap()).unwrap_err();
            let shown = &text[..text.len().min(80)];
            assert_eq!(failure.field.as_deref(), Some(field), "{shown}");
            assert!(
                failure.message.len() < 300,
                "a long value is not repeated: {shown}"
            );
            assert!(script.sent().is_empty(), "no request for {shown}");
        }
    }

    #[test]
    fn a_read_stops_after_the_page_that_reaches_max_records_and_says_it_is_incomplete() {
        let signed = Signed::new();
        let next = format!("{ORIGIN}/api/data/v9.2/accounts?$skiptoken=2");
        let script = Script::new()
            .json(200, ACCOUNTS)
            .json(
                200,
                &format!(
                    r#"{{"value":[{{"accountid":"00000000-0000-0000-0000-0000000000A1","modifiedon":"2024-02-01T10:00:00Z"}},{{"accountid":"00000000-0000-0000-0000-0000000000a2","modifiedon":"2024-02-01T10:00:00Z"}}],"@odata.nextLink":"{next}"}}"#
                ),
            );
        let context = signed.context(&script);
        let fields = ["name".to_string()];
        let request = Request {
            entity_set: "accounts",
            fields: &fields,
            since: Watermark::from_anchor(Some("2024-01-31")).unwrap(),
            page_size: 2,
            max_records: 2,
            caller: Caller::default(),
        };
        let mut rows = 0;
        let changes = read_since(&context, &request, &mut |page| {
            rows += page.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 2);
        assert!(!changes.complete);
        assert_eq!(changes.primary_id.as_deref(), Some("accountid"));
        assert_eq!(
            changes.next_watermark,
            Watermark {
                modifiedon: "2024-02-01T10:00:00Z".to_string(),
                ids: vec![
                    "00000000-0000-0000-0000-0000000000a1".to_string(),
                    "00000000-0000-0000-0000-0000000000a2".to_string()
                ],
            }
        );
        let sent = script.sent();
        assert_eq!(sent.len(), 2, "the next link is not followed");
        assert!(
            sent[1].url.contains("$select=name,modifiedon,accountid"),
            "the watermark's columns are read: {}",
            sent[1].url
        );
    }
}
