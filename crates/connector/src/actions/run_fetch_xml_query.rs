//! Run Fetch XML Query: one page, or every page up to a cap, of a FetchXML query. The XML is
//! checked before sending; paging rewrites the `fetch` element with the paging cookie the
//! service returned, falling back to page numbers where it returns none; a query too long for
//! a URL goes inside a `$batch` request.

use dataverse::batch::{BatchPart, BatchRequest, decode, encode};
use dataverse::encoding::percent_encode;
use dataverse::fetchxml::{FetchQuery, cookie_page, paging_cookie, with_paging};
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
use crate::records::{RecordChunks, explain};

const XML_QUERY: InputDef = InputDef::new("xmlQuery", "XML Query", Kind::Multiline)
    .required()
    .comments("An XML query string to use as a Fetch query in Microsoft Dynamics 365")
    .example(
        "<fetch top=\"10\"><entity name=\"account\"><attribute name=\"name\" /></entity></fetch>",
    );

const INCLUDE_ANNOTATIONS: InputDef =
    InputDef::new("includeAnnotations", "Include Annotations", Kind::Text)
        .comments("Specifies annotations to include with the result")
        .example("OData.Community.Display.V1.FormattedValue");

const PAGE_NUMBER: InputDef = InputDef::new("pageNumber", "Page Number", Kind::Number)
    .comments("The page number to request")
    .format(Format::Range(1, 1_000_000));

const IMPERSONATE_USER_ID: InputDef =
    InputDef::new("impersonateUserId", "Impersonate User Id", Kind::Text)
        .comments("Specifies the GUID of a user to impersonate when executing the query")
        .format(Format::Guid);

const FETCH_ALL: InputDef = InputDef::new("fetchAll", "Fetch All Pages", Kind::Boolean)
    .default("false")
    .comments("Follow the paging cookie (or page numbers where there is none) until every record is read or Max Records is reached");

const MAX_RECORDS: InputDef = InputDef::new("maxRecords", "Max Records", Kind::Number)
    .default("100000")
    .comments("With Fetch All Pages: stop after the page that reaches this many records; Next Page Id and Next Page Number continue from there")
    .format(Format::Range(1, 10_000_000));

/// Longest GET URL sent as it is; longer FetchXML goes inside `$batch` (up to 64 KB there).
const MAX_URL: usize = 16 * 1024;

pub const ACTION: ActionDef = ActionDef {
    key: "run-fetch-xml-query",
    label: "Run Fetch XML Query",
    description: "Execute a fetch XML query against your Microsoft Dynamics 365 CRM instance.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        XML_QUERY,
        INCLUDE_ANNOTATIONS,
        PAGE_NUMBER,
        NEXT_PAGE_ID,
        IMPERSONATE_USER_ID,
        CONNECTION,
        FETCH_ALL,
        MAX_RECORDS,
    ],
    example_output: Some(
        r#"{"records":[{"name":"Contoso"}],"moreRecords":true,"nextPageId":"<cookie page=\"1\">...</cookie>","nextPageNumber":2,"pages":1,"truncated":false}"#,
    ),
    run: Run::Text(run),
    dynamic_inputs: None,
};

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie")]
    cookie: Option<String>,
    #[serde(rename = "@Microsoft.Dynamics.CRM.morerecords")]
    more: Option<bool>,
}

fn run(context: &Context, input: &Input) -> Result<String> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let xml = input.text(XML_QUERY.key).unwrap_or_default();
    // A document type declaration can define entities (billion laughs, external files) that a
    // server's XML reader might expand; FetchXML never needs one.
    if xml.to_ascii_uppercase().contains("<!DOCTYPE")
        || xml.to_ascii_uppercase().contains("<!ENTITY")
    {
        return Err(invalid_input(
            &XML_QUERY,
            "contains a document type declaration (<!DOCTYPE or <!ENTITY); FetchXML takes none",
        ));
    }
    let query =
        FetchQuery::parse(xml).map_err(|problem| invalid_input(&XML_QUERY, problem.to_string()))?;
    let fetch_all = input.flag(FETCH_ALL.key);
    let max_records = input.number(MAX_RECORDS.key).unwrap_or(100_000.0) as usize;
    let mut cookie = input.text(NEXT_PAGE_ID.key).map(str::to_string);
    if let Some(given) = &cookie
        && !given.trim_start().starts_with("<cookie")
    {
        return Err(invalid_input(
            &NEXT_PAGE_ID,
            "is not a paging cookie; pass the nextPageId of a previous output as it is",
        ));
    }
    let mut page = match (
        input.number(PAGE_NUMBER.key),
        cookie.as_deref().and_then(cookie_page),
    ) {
        (Some(number), _) => number as u32,
        (None, Some(previous)) => previous + 1,
        (None, None) => query.page.unwrap_or(1),
    };
    // Aggregates and top-N queries are one answer; they pass through as written.
    let pages_allowed = !query.aggregate && query.top.is_none();
    let count = match (query.count, fetch_all) {
        (None, true) => Some(5000),
        (count, _) => count,
    };
    let mut annotations = String::from(
        "Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords",
    );
    if let Some(extra) = input.text(INCLUDE_ANNOTATIONS.key) {
        annotations = if extra.trim() == "*" {
            "*".to_string()
        } else {
            format!("{annotations},{}", extra.trim())
        };
    }
    let prefer = format!("odata.include-annotations=\"{annotations}\"");

    let mut chunks = RecordChunks::paged(fetch_all);
    let mut pages = 0u32;
    let (more, next_cookie) = loop {
        let paged = if pages_allowed
            && (pages > 0
                || cookie.is_some()
                || input.number(PAGE_NUMBER.key).is_some()
                || count != query.count)
        {
            with_paging(xml, page, count, cookie.as_deref())
                .map_err(|problem| invalid_input(&XML_QUERY, problem.to_string()))?
        } else {
            xml.to_string()
        };
        // The page's records go into the output as it is read; its paging annotations come back.
        let (more, cookie_text) =
            fetch_page(context, input, entity_set, &paged, &prefer, &mut |body| {
                Ok(crate::client::parse_page::<Page>(body)?.map(|parsed| {
                    chunks.push_page(&parsed.value);
                    (parsed.more, parsed.cookie)
                }))
            })?;
        pages += 1;
        let more = more.unwrap_or(false) && pages_allowed;
        let next_cookie = cookie_text.as_deref().and_then(paging_cookie);
        if !(fetch_all && more && chunks.len() < max_records) {
            break (more, next_cookie);
        }
        page += 1;
        // Without a cookie (some sorts on link-entity columns), page numbers carry on.
        cookie = next_cookie;
    };
    let truncated = fetch_all && more;
    let next_page_id = if more {
        serde_json::to_string(&next_cookie).unwrap_or_else(|_| "null".to_string())
    } else {
        "null".to_string()
    };
    let next_page_number = if more {
        (page + 1).to_string()
    } else {
        "null".to_string()
    };
    Ok(chunks.finish(&format!(
        ",\"moreRecords\":{more},\"nextPageId\":{next_page_id},\"nextPageNumber\":{next_page_number},\"pages\":{pages},\"truncated\":{truncated}"
    )))
}

/// What a page's reader answers: `@Microsoft.Dynamics.CRM.morerecords` and the paging cookie.
type PageInfo = (Option<bool>, Option<String>);

/// Fetches one page, by GET or inside `$batch` when the URL would be too long, and hands its JSON
/// to `read`. A GET's page is read as it arrives (the read's refusal is the client's body check,
/// so a cut page is sent for again): parsed once.
fn fetch_page(
    context: &Context,
    input: &Input,
    entity_set: &str,
    xml: &str,
    prefer: &str,
    read: &mut dyn FnMut(&[u8]) -> crate::client::PageRead<PageInfo>,
) -> Result<PageInfo> {
    let not_a_page = |problem: String| {
        malformed(format!(
            "the FetchXML answer is not a record list: {problem}"
        ))
    };
    let relative = format!("{entity_set}?fetchXml={}", percent_encode(xml));
    let url = context.client.api_url(&relative);
    let impersonation: Vec<(String, String)> = input
        .text(IMPERSONATE_USER_ID.key)
        .map(|user| vec![("MSCRMCallerID".to_string(), user.to_string())])
        .unwrap_or_default();
    if url.len() <= MAX_URL {
        let mut request = Request::new("GET", url).header("Prefer", prefer);
        request.headers.extend(impersonation);
        let (response, info) =
            context
                .client
                .send_reading(request, RetryPolicy::RECORDS, |body| read(body))?;
        let response = response
            .into_success()
            .map_err(|failure| explain(context, entity_set, failure))?;
        let info = match info {
            Some(info) => info,
            None => read(&response.body).and_then(|info| info),
        };
        return info.map_err(not_a_page);
    }
    let path = format!("{}/{relative}", context.client.api_root_path());
    let mut headers = vec![("Prefer".to_string(), prefer.to_string())];
    headers.extend(impersonation);
    let part = BatchPart::Single(BatchRequest {
        method: "GET".to_string(),
        url: path,
        headers,
        body: None,
        content_id: None,
    });
    let (body, content_type) = encode(&[part], "fetchxml");
    let mut request =
        Request::new("POST", context.client.api_url("$batch")).header("Content-Type", content_type);
    request.body = body.into_bytes();
    // A read inside $batch repeats safely, so an answer that is cut, not UTF-8 or not a batch
    // answer is sent for again as a cut GET page is; the part's page is read once, when whole.
    let (response, product) =
        context
            .client
            .send_reading_when(request, RetryPolicy::RECORDS, |response| {
                if !(200..300).contains(&response.status) {
                    return None;
                }
                Some(read_batch_page(response, &mut *read))
            })?;
    response
        .into_success()
        .map_err(|failure| explain(context, entity_set, failure))?;
    match product {
        Some(BatchPage::Read(info)) => info.map_err(not_a_page),
        Some(BatchPage::Failed(service)) => Err(explain(
            context,
            entity_set,
            crate::error::from_service(service),
        )),
        // A refused answer that was not sent again: a read inside $batch is sent again, so
        // this is an answer sent ahead (which this query never is) or a policy that changed.
        None => Err(malformed("the $batch answer was cut or malformed")),
    }
}

/// What the one part of a FetchXML `$batch` answer held.
enum BatchPage {
    /// A page, read (or a page of another shape: the inner error).
    Read(std::result::Result<PageInfo, String>),
    /// The service's error for the query.
    Failed(dataverse::error::ServiceError),
}

/// Reads a `$batch` answer holding one FetchXML page. Its refusal (not UTF-8, not a batch
/// answer, a cut part) means the answer did not arrive whole; an error status in the part is
/// the service's answer, not a refusal.
fn read_batch_page(
    response: &crate::bindings::dynamics::connector::http::Response,
    read: &mut dyn FnMut(&[u8]) -> crate::client::PageRead<PageInfo>,
) -> std::result::Result<BatchPage, String> {
    let content_type = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    let text = std::str::from_utf8(&response.body)
        .map_err(|_| "the $batch answer is not UTF-8".to_string())?;
    let answer = decode(content_type, text)
        .map_err(|problem| problem.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "the $batch answer holds no response".to_string())?;
    if !(200..300).contains(&answer.status) {
        return Ok(BatchPage::Failed(dataverse::error::read_error(
            answer.status,
            answer.body.as_bytes(),
            answer.header("retry-after"),
        )));
    }
    Ok(BatchPage::Read(read(answer.body.as_bytes())?))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::test_host::{Script, Signed};

    const MULTIPART: &str = "multipart/mixed; boundary=batchresponse_1";

    /// A `$batch` answer whose one part is `status` with `body`.
    fn batch_answer(status: &str, body: &[u8]) -> Vec<u8> {
        let mut answer = format!(
            "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 {status}\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n"
        )
        .into_bytes();
        answer.extend_from_slice(body);
        answer.extend_from_slice(b"\r\n--batchresponse_1--\r\n");
        answer
    }

    /// A query too long for a URL, so it goes inside `$batch`.
    fn long_query() -> Value {
        let conditions: String = (0..400)
            .map(|i| format!("<condition attribute='name' operator='ne' value='n-{i:04}'/>"))
            .collect();
        let xml = format!(
            "<fetch><entity name='account'><attribute name='name'/><filter>{conditions}</filter></entity></fetch>"
        );
        json!({"entityType": "accounts", "xmlQuery": xml})
    }

    fn query(script: &Script, input: Value) -> Result<Value> {
        let signed = Signed::new();
        let context = signed.context(script);
        let input = Input::parse(ACTION.inputs, &input.to_string()).unwrap();
        run(&context, &input).map(|output| serde_json::from_str(&output).unwrap())
    }

    fn multipart(script: Script, body: &[u8]) -> Script {
        script.answer_bytes(200, &[("Content-Type", MULTIPART)], body)
    }

    /// A `$batch` answer whose page is cut inside its multipart body, or whose bytes are not
    /// UTF-8, did not arrive whole: the batch is sent again, and the page is read once, as it
    /// is (never with replacement characters).
    #[test]
    fn a_cut_or_garbled_batch_page_is_sent_for_again_and_read_once_whole() {
        let page = r#"{"value":[{"name":"Zoë"}]}"#.as_bytes();
        let cut = &page[..page.len() - 6];
        let mut garbled = page.to_vec();
        let at = garbled.iter().position(|&b| b == 0xc3).unwrap();
        garbled[at] = 0xff;
        for broken in [
            batch_answer("200 OK", cut),
            batch_answer("200 OK", &garbled),
        ] {
            let script = multipart(
                multipart(Script::new(), &broken),
                &batch_answer("200 OK", page),
            );
            let output = query(&script, long_query()).unwrap();
            assert_eq!(output["records"], json!([{"name": "Zoë"}]));
            let sent = script.sent();
            assert_eq!(sent.len(), 2);
            assert!(sent.iter().all(|request| request.url.ends_with("$batch")));
        }
    }

    /// The service's error inside the batch is its answer: reported, not sent again.
    #[test]
    fn an_error_inside_the_batch_is_the_services_answer_and_is_not_sent_again() {
        let script = multipart(
            Script::new(),
            &batch_answer(
                "400 Bad Request",
                br#"{"error":{"code":"0x80041103","message":"'account' entity doesn't contain attribute with Name = 'nope'."}}"#,
            ),
        );
        let failure = query(&script, long_query()).unwrap_err();
        assert!(failure.message.contains("nope"), "{failure:?}");
        assert_eq!(script.sent().len(), 1);
    }
}
