//! Query Entities: one page, or every page up to a cap, of a table's records.
//!
//! Pages are spliced as raw JSON: records are copied from each page's `value` array into the
//! output without being parsed into trees, so reading many pages costs little more than the
//! bytes themselves and guest memory holds one page plus the output.

use dataverse::query::{QueryOptions, prefer_header};
use dataverse::retry::RetryPolicy;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::*;
use crate::records::{NextPage, RecordChunks, explain, impersonate};

const ORDER_BY: InputDef = InputDef::new("orderBy", "Order By Field Name", Kind::StringList)
    .comments("The names of the fields to order by")
    .example("name desc");

const RECORDS_PER_PAGE: InputDef =
    InputDef::new("recordsPerPage", "Records Per Page", Kind::Number)
        .default("100")
        .comments("The number of record to retrieve per page")
        .format(Format::Range(1, 5000));

const QUERY_NEXT_PAGE_ID: InputDef = InputDef::new("nextPageId", "Next Page Id", Kind::Text).comments(
    "The id or cookie to use for retrieving the next page of results when paginating through a large result set",
);

const FETCH_ALL: InputDef = InputDef::new("fetchAll", "Fetch All Pages", Kind::Boolean)
    .default("false")
    .comments("Follow the next page links until every record is read or Max Records is reached");

const MAX_RECORDS: InputDef = InputDef::new("maxRecords", "Max Records", Kind::Number)
    .default("100000")
    .comments("With Fetch All Pages: stop after the page that reaches this many records (no record is skipped; Next Page Id continues from there)")
    .format(Format::Range(1, 10_000_000));

const INCLUDE_COUNT: InputDef = InputDef::new("includeCount", "Include Count", Kind::Boolean)
    .default("false")
    .comments(
        "Also return the total number of matching records ($count; Dataverse counts up to 5000)",
    );

pub const ACTION: ActionDef = ActionDef {
    key: "query-entities",
    label: "Query Entities",
    description: "Query for Microsoft Dynamics 365 CRM entity records that satisfy the filter expression.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        FIELD_NAMES,
        FILTER,
        ORDER_BY,
        EXPAND,
        RECORDS_PER_PAGE,
        QUERY_NEXT_PAGE_ID,
        CONNECTION,
        FETCH_ALL,
        MAX_RECORDS,
        INCLUDE_COUNT,
        INCLUDE_FORMATTED_VALUES,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"records":[{"accountid":"00000000-0000-0000-0000-000000000002","name":"Contoso"}],"count":null,"nextPageId":"https://contoso.crm.dynamics.com/api/data/v9.2/accounts?$select=name&$skiptoken=...","pages":1,"truncated":false}"#,
    ),
    run: Run::Text(run),
    dynamic_inputs: None,
};

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.count")]
    count: Option<u64>,
}

fn run(context: &Context, input: &Input) -> Result<String> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let page_size = input.number(RECORDS_PER_PAGE.key).unwrap_or(100.0) as u32;
    let fetch_all = input.flag(FETCH_ALL.key);
    let max_records = input.number(MAX_RECORDS.key).unwrap_or(100_000.0) as usize;
    let prefer = prefer_header(Some(page_size), input.flag(INCLUDE_FORMATTED_VALUES.key));

    let mut url = match input.text(QUERY_NEXT_PAGE_ID.key) {
        Some(cursor) => {
            let own = context.client.settings.environment.owns_url(cursor);
            if !own {
                return Err(invalid_input(
                    &QUERY_NEXT_PAGE_ID,
                    "is not a next page link of this connection's environment; pass the nextPageId of a previous output as it is",
                ));
            }
            if !crate::records::is_link_of(context, entity_set, cursor) {
                return Err(invalid_input(
                    &QUERY_NEXT_PAGE_ID,
                    format!(
                        "is a next page link of another table, not of {entity_set:?}; pass the nextPageId of a previous query of the same table"
                    ),
                ));
            }
            cursor.to_string()
        }
        None => {
            let options = QueryOptions {
                select: input.list(FIELD_NAMES.key).to_vec(),
                filter: input.text(FILTER.key).map(str::to_string),
                order_by: input.list(ORDER_BY.key).to_vec(),
                expand: input.list(EXPAND.key).to_vec(),
                count: input.flag(INCLUDE_COUNT.key),
                top: None,
            };
            format!(
                "{}{}",
                context.client.api_url(entity_set),
                options.to_query_string()
            )
        }
    };

    let page_request = |url: &str| {
        let mut request = Request::new("GET", url.to_string());
        if let Some(prefer) = &prefer {
            request = request.header("Prefer", prefer.clone());
        }
        impersonate(request, input)
    };
    // However the read ends, no read started ahead is left behind for a later request.
    let _ahead = context.client.reading_ahead();
    let mut chunks = RecordChunks::paged(fetch_all);
    let mut pages = 0u32;
    let mut count: Option<u64> = None;
    let next_page = loop {
        let request = page_request(&url)?;
        // A page that still fails after the retries: say where to pick the read up again.
        let read_before = chunks.len();
        let resumable =
            |mut failure: crate::bindings::dynamics::connector::types::ConnectorError| {
                if pages > 0 {
                    failure.hint = Some(format!(
                        "{read_before} records in {pages} pages were read before this; to go on page by page, pass nextPageId {url}"
                    ));
                }
                failure
            };
        // The next page is asked for while this one is read, when the page's tail names it
        // plainly; the parse below decides whether that answer is the one to follow.
        let mut ahead = NextPage::default();
        // The page is read as it arrives: its records go straight into the output, and a cut
        // page is sent for again (the read's refusal is the client's body check).
        let mut take = |body: &[u8]| {
            // Not when this page may reach the cap: a page holds at most the page size asked.
            if fetch_all && chunks.len() + (page_size as usize) < max_records {
                ahead.guess(context, entity_set, body, page_request);
            }
            Ok(crate::client::parse_page::<Page>(body)?.map(|page| {
                chunks.push_page(&page.value);
                (page.next_link, page.count)
            }))
        };
        let (response, read) = context
            .client
            .send_reading(request, RetryPolicy::RECORDS, &mut take)
            .map_err(&resumable)?;
        let response = response
            .into_success()
            .map_err(|failure| resumable(explain(context, entity_set, failure)))?;
        // Not read on arrival (not JSON by its headers): read here, once, to say why.
        let read = read.unwrap_or_else(|| take(&response.body).and_then(|read| read));
        let (next_link, page_count) = read.map_err(|problem| {
            resumable(malformed(format!(
                "a page of {entity_set} is not a record list: {problem}"
            )))
        })?;
        pages += 1;
        count = count.or(page_count);
        // The page's body is freed before the next one arrives.
        drop(response);
        ahead.settle(context, next_link.as_deref());
        match next_link {
            Some(next) if fetch_all && chunks.len() < max_records => url = next,
            other => break other,
        }
    };
    let truncated = fetch_all && next_page.is_some();
    let count = count
        .map(|c| c.to_string())
        .unwrap_or_else(|| "null".to_string());
    let next_page = serde_json::to_string(&next_page).unwrap_or_else(|_| "null".to_string());
    Ok(chunks.finish(&format!(
        ",\"count\":{count},\"nextPageId\":{next_page},\"pages\":{pages},\"truncated\":{truncated}"
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::test_host::{ORIGIN, Script, Signed};

    fn query(script: &Script, input: Value) -> Value {
        let signed = Signed::new();
        let context = signed.context(script);
        let input = Input::parse(ACTION.inputs, &input.to_string()).unwrap();
        serde_json::from_str(&run(&context, &input).unwrap()).unwrap()
    }

    /// A broken page whose tail names a page: that page is asked for while the broken one is
    /// read (a read, thrown away), but never followed; the page is read again and the link its
    /// parse names is the one followed.
    #[test]
    fn a_link_guessed_from_a_broken_pages_tail_is_never_followed() {
        let first = format!("{ORIGIN}/api/data/v9.2/accounts?$select=name");
        let second = format!("{ORIGIN}/api/data/v9.2/accounts?$select=name&$skiptoken=2");
        let guessed = format!("{ORIGIN}/api/data/v9.2/accounts?$select=name&$skiptoken=99");
        let script = Script::new()
            // The first answer is not JSON at all (a string where a member should be), but it
            // ends as a page with a next link would.
            .json(
                200,
                &format!(r#"{{"value":[{{"name":"A"}},"@odata.nextLink":"{guessed}"}}"#),
            )
            .json(200, r#"{"value":[{"name":"Not this page's"}]}"#)
            .json(
                200,
                &format!(r#"{{"value":[{{"name":"A"}}],"@odata.nextLink":"{second}"}}"#),
            )
            .json(200, r#"{"value":[{"name":"B"}]}"#);
        let output = query(
            &script,
            json!({"entityType": "accounts", "fieldNames": ["name"], "fetchAll": true, "recordsPerPage": 1}),
        );
        assert_eq!(output["records"], json!([{"name": "A"}, {"name": "B"}]));
        assert_eq!(output["pages"], 2);
        let urls: Vec<String> = script.sent().into_iter().map(|r| r.url).collect();
        assert_eq!(urls, [first.clone(), guessed, first, second]);
    }

    /// A tail naming another table, or another environment, starts nothing: only what could
    /// be passed as this query's nextPageId is asked for ahead.
    #[test]
    fn a_tail_naming_another_table_or_host_starts_nothing() {
        for elsewhere in [
            format!("{ORIGIN}/api/data/v9.2/contacts?$select=fullname"),
            "https://attacker.example/api/data/v9.2/accounts?$skiptoken=2".to_string(),
        ] {
            let script = Script::new()
                .json(
                    200,
                    &format!(r#"{{"value":[{{"name":"A"}},"@odata.nextLink":"{elsewhere}"}}"#),
                )
                .json(200, r#"{"value":[{"name":"A"}]}"#);
            let output = query(
                &script,
                json!({"entityType": "accounts", "fieldNames": ["name"], "fetchAll": true, "recordsPerPage": 1}),
            );
            assert_eq!(output["records"], json!([{"name": "A"}]));
            let urls: Vec<String> = script.sent().into_iter().map(|r| r.url).collect();
            assert!(
                urls.iter()
                    .all(|url| url.contains("/accounts?$select=name")),
                "{urls:?}"
            );
            assert_eq!(urls.len(), 2);
        }
    }

    /// A broken page is sent for again; when its retried answer names the same next page, the
    /// read already started for it is kept, not sent a second time.
    #[test]
    fn a_retried_page_naming_the_same_link_keeps_the_read_started_for_it() {
        let second = format!("{ORIGIN}/api/data/v9.2/accounts?$select=name&$skiptoken=2");
        // Broken in the middle, whole at the end.
        let broken = format!(r#"{{"value":[{{"name":"A"}} x],"@odata.nextLink":"{second}"}}"#);
        let whole = format!(r#"{{"value":[{{"name":"A"}}],"@odata.nextLink":"{second}"}}"#);
        let script = Script::new()
            .json(200, &broken)
            .json(200, r#"{"value":[{"name":"B"}]}"#)
            .json(200, &whole);
        let output = query(
            &script,
            json!({"entityType": "accounts", "fieldNames": ["name"], "fetchAll": true, "recordsPerPage": 1}),
        );
        assert_eq!(output["records"], json!([{"name": "A"}, {"name": "B"}]));
        let urls: Vec<String> = script.sent().into_iter().map(|r| r.url).collect();
        assert_eq!(urls.len(), 3, "{urls:?}");
        assert_eq!(urls[1], second);
    }

    /// The page that reaches the cap starts nothing ahead: a page holds at most the page size
    /// asked, so the read asks for no page it will not follow.
    #[test]
    fn no_page_is_asked_for_ahead_past_the_cap() {
        let page = |name: &str, next: u32| {
            format!(
                r#"{{"value":[{{"name":"{name}"}},{{"name":"{name}2"}}],"@odata.nextLink":"{ORIGIN}/api/data/v9.2/accounts?$skiptoken={next}"}}"#
            )
        };
        let script = Script::new()
            .json(200, &page("A", 2))
            .json(200, &page("B", 3));
        let output = query(
            &script,
            json!({"entityType": "accounts", "fetchAll": true, "recordsPerPage": 2, "maxRecords": 3}),
        );
        assert_eq!(output["records"].as_array().unwrap().len(), 4);
        assert_eq!(output["truncated"], true);
        assert_eq!(script.sent().len(), 2, "the third page was never asked for");
    }
}
