//! One check per parser, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the
//! seeded run inside `cargo test` (`tests/fuzz_seeded.rs`).
//!
//! How it is shared: a fuzz target cannot depend on an integration test, and assertions have no
//! place in the library, so this is a plain module file that both sides compile in by path.
//! `tests/fuzz_seeded.rs` declares `mod fuzz_checks;` (a directory with a `mod.rs` under `tests/`
//! is not a test binary of its own), and each fuzz target declares
//! `#[path = "../../crates/dataverse/tests/fuzz_checks/mod.rs"] mod fuzz_checks;`. The module
//! uses only `dataverse` and its own dependencies `serde_json` and `quick-xml`, which the fuzz
//! crate depends on too.
//!
//! A check takes the fuzzer's bytes, calls the parser, and panics (which the fuzzer reports as a
//! crash) when the parser panics or a property below does not hold.

// Each fuzz target calls one check and no seeds.
#![allow(dead_code)]

use std::borrow::Cow;

use dataverse::batch::{self, BatchError, BatchResponse};
use dataverse::encoding::{percent_decode, percent_encode};
use dataverse::error::{self, ErrorKind};
use dataverse::fetchxml::{self, FetchQuery};
use dataverse::keys::{self, KeyError, KeyValue, RecordKey};
use dataverse::{odata, webhook};
use serde_json::{Value, json};

/// A check: panics when the parser does, or when a property does not hold.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: the names of `fuzz/fuzz_targets/*.rs` and of the seed folders.
pub const TARGETS: [(&str, Check); 5] = [
    ("batch_decode", batch_decode),
    ("fetchxml_paging", fetchxml_paging),
    ("odata_keys", odata_keys),
    ("webhook_context", webhook_context),
    ("error_body", error_body),
];

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// A number drawn from the data, so that derived inputs vary with it.
fn number_from(data: &[u8]) -> u32 {
    data.iter().fold(2_166_136_261u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(16_777_619)
    })
}

/// True when `part` is a slice of `whole` (not a copy, not a static).
fn within(whole: &str, part: &str) -> bool {
    let base = whole.as_ptr() as usize;
    let start = part.as_ptr() as usize;
    start >= base && start + part.len() <= base + whole.len()
}

/// `$batch` answers. The first line is the content type, the rest the body.
///
/// - `decode` answers or refuses, and refuses with `NoBoundary` when the content type has none;
/// - what it answers borrows from the body: non-empty bodies, Content-IDs and header values
///   are slices of it, and bodies carry no trailing line breaks;
/// - an answer written from the data (each NUL starts another response, some grouped into
///   change sets) decodes to exactly those responses, in order.
pub fn batch_decode(data: &[u8]) {
    let text = text(data);
    let (content_type, body) = text.split_once('\n').unwrap_or((&text, ""));
    let decoded = batch::decode(content_type, body);
    if batch::boundary_of(content_type).is_none() {
        assert!(
            matches!(&decoded, Err(BatchError::NoBoundary(given)) if given == content_type),
            "{decoded:?}"
        );
    }
    if let Ok(responses) = &decoded {
        for response in responses {
            check_borrowed(body, response);
        }
    }
    batch_round_trip(&text, data.first().is_some_and(|byte| byte & 1 == 0));
}

fn check_borrowed(body: &str, response: &BatchResponse) {
    assert!(
        response.body.is_empty() || within(body, response.body),
        "{response:?}"
    );
    assert!(!response.body.ends_with(['\r', '\n']), "{response:?}");
    if let Some(id) = response.content_id {
        assert!(id.is_empty() || within(body, id), "{response:?}");
    }
    for name in ["content-type", "OData-EntityId", "odata-version", ""] {
        if let Some(value) = response.header(name) {
            assert!(value.is_empty() || within(body, value), "{response:?}");
        }
    }
}

/// One response the round trip writes and expects back.
struct Expected<'a> {
    status: u16,
    body: &'a str,
    content_id: Option<String>,
    entity_id: String,
}

fn batch_round_trip(text: &str, crlf: bool) {
    let newline = if crlf { "\r\n" } else { "\n" };
    // Boundaries that occur nowhere in the data, neither a prefix of the other (RFC 2046 asks
    // the writer for both): no body line can then be taken for a delimiter.
    let mut suffix = 0u32;
    let (outer, inner) = loop {
        let outer = format!("batchresponse_{suffix}");
        let inner = format!("changesetresponse_{suffix}");
        if !text.contains(&outer) && !text.contains(&inner) {
            break (outer, inner);
        }
        suffix += 1;
    };
    let mut answer = String::new();
    let mut expected: Vec<Expected> = Vec::new();
    let mut open_change_set = false;
    for (index, body) in text.split('\0').enumerate() {
        // Bodies whose length is a multiple of three go into change sets.
        let in_change_set = body.len().is_multiple_of(3);
        if open_change_set && !in_change_set {
            answer.push_str(&format!("--{inner}--{newline}"));
            open_change_set = false;
        }
        if in_change_set && !open_change_set {
            answer.push_str(&format!(
                "--{outer}{newline}Content-Type: multipart/mixed; boundary={inner}{newline}{newline}"
            ));
            open_change_set = true;
        }
        let delimiter = if open_change_set { &inner } else { &outer };
        answer.push_str(&format!(
            "--{delimiter}{newline}Content-Type: application/http{newline}Content-Transfer-Encoding: binary{newline}"
        ));
        let content_id = open_change_set.then(|| (index + 1).to_string());
        if let Some(id) = &content_id {
            answer.push_str(&format!("Content-ID: {id}{newline}"));
        }
        // HTTP status codes are three digits (RFC 9110 15); others are refused as cut lines.
        let status = (100 + number_from(body.as_bytes()) % 500) as u16;
        let entity_id = format!("https://x/api/data/v9.2/accounts({index})");
        answer.push_str(&format!(
            "{newline}HTTP/1.1 {status} Reason{newline}OData-EntityId: {entity_id}{newline}{newline}{body}{newline}"
        ));
        expected.push(Expected {
            status,
            body: body.trim_end_matches(['\r', '\n']),
            content_id,
            entity_id,
        });
    }
    if open_change_set {
        answer.push_str(&format!("--{inner}--{newline}"));
    }
    answer.push_str(&format!("--{outer}--{newline}"));
    let content_type = format!("multipart/mixed; boundary={outer}");
    let responses = batch::decode(&content_type, &answer)
        .unwrap_or_else(|problem| panic!("{problem}: {answer:?}"));
    assert_eq!(responses.len(), expected.len(), "{answer:?}");
    for (response, expected) in responses.iter().zip(&expected) {
        check_borrowed(&answer, response);
        assert_eq!(response.status, expected.status, "{answer:?}");
        assert_eq!(response.body, expected.body, "{answer:?}");
        assert_eq!(
            response.content_id,
            expected.content_id.as_deref(),
            "{answer:?}"
        );
        assert_eq!(
            response.header("odata-entityid"),
            Some(expected.entity_id.as_str()),
            "{answer:?}"
        );
    }
}

/// FetchXML queries, paging cookie annotations and cookies.
///
/// - `paging_cookie` and `cookie_page` take anything;
/// - any cookie, double URL-encoded into an annotation as Dataverse sends it, is read back
///   whole; the `page` of any cookie is read back;
/// - a query that `FetchQuery::parse` accepts is paged by `with_paging`, and the paged query
///   reads back with the new page and count, everything else the same, and the cookie intact in
///   its attribute (read the way an XML parser reads attributes, normalised).
pub fn fetchxml_paging(data: &[u8]) {
    let text = text(data);
    if let Some(cookie) = fetchxml::paging_cookie(&text) {
        let _ = fetchxml::cookie_page(&cookie);
    }
    let _ = fetchxml::cookie_page(&text);

    let annotation = format!(
        "<cookie pagenumber=\"2\" pagingcookie=\"{}\" istracking=\"False\" />",
        percent_encode(&percent_encode(&text))
    );
    assert_eq!(
        fetchxml::paging_cookie(&annotation).as_deref(),
        Some(&*text),
        "{annotation}"
    );
    let page = number_from(data);
    assert_eq!(
        fetchxml::cookie_page(&format!("<cookie page=\"{page}\">{text}")),
        Some(page)
    );

    let Ok(query) = FetchQuery::parse(&text) else {
        return;
    };
    assert!(odata::is_identifier(&query.entity), "{query:?}");
    assert_eq!(query.entity, query.entity.to_ascii_lowercase());
    let count = (!page.is_multiple_of(3)).then_some(page / 7);
    // The cookie: the query's own text, which is full of markup and quotes.
    let cookie = page.is_multiple_of(2).then_some(&*text);
    let paged = fetchxml::with_paging(&text, page, count, cookie)
        .unwrap_or_else(|problem| panic!("{problem}: {text:?}"));
    let again = FetchQuery::parse(&paged).unwrap_or_else(|problem| panic!("{problem}: {paged:?}"));
    assert_eq!(
        again,
        FetchQuery {
            page: Some(page),
            count: count.or(query.count),
            ..query
        },
        "{paged:?}"
    );
    let written = root_attribute(&paged, "paging-cookie");
    match cookie {
        // Tabs and line breaks too: they are written as references, which normalising keeps.
        Some(cookie) if cookie.chars().all(is_xml_char) => {
            assert_eq!(written.as_deref(), Some(cookie), "{paged:?}")
        }
        Some(_) => {}
        None => assert_eq!(written, None, "{paged:?}"),
    }
}

/// Characters XML 1.0 can carry at all (as text or as a character reference).
fn is_xml_char(character: char) -> bool {
    matches!(character, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The value of the root element's attribute `name`, normalised as XML 1.0 asks of a reader.
fn root_attribute(xml: &str, name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().expect("the paged query is well-formed") {
            Event::Start(element) | Event::Empty(element) => {
                return element
                    .attributes()
                    .map(|attribute| attribute.expect("well-formed attributes"))
                    .find(|attribute| attribute.key.as_ref() == name)
                    .map(|attribute| {
                        attribute
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .expect("a readable attribute value")
                            .into_owned()
                    });
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Record keys, OData string literals and identifiers, entity URLs.
///
/// - `RecordKey::parse` answers or refuses; a JSON object reads as `from_object` reads it;
/// - a key's segment `(..)` holds only URL-safe characters and decodes to its display form,
///   which reads back as the same key (see [`round_trip`]); that holds too for a key holding the
///   data as a text value, so no value breaks out of its quotes or its segment;
/// - `string_literal` quotes and doubles quotes, nothing else; identifiers are short ASCII;
/// - `id_from_entity_url` answers or refuses, and finds the GUID of an entity URL.
pub fn odata_keys(data: &[u8]) {
    let text = text(data);
    let parsed = RecordKey::parse(&text);
    if let Ok(key) = &parsed {
        round_trip(key);
        if let RecordKey::Id(id) = key {
            let url = format!("https://x/api/data/v9.2/accounts{}", key.segment());
            assert_eq!(keys::id_from_entity_url(&url).as_deref(), Some(id.as_str()));
        }
    }
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&text) {
        assert_eq!(parsed, RecordKey::from_object(&object), "{text:?}");
    }
    let digits: String = data
        .iter()
        .filter(|byte| byte.is_ascii_digit())
        .map(|byte| char::from(*byte))
        .collect();
    let mut parts = vec![("name".to_string(), KeyValue::Text(text.to_string()))];
    if !digits.is_empty() {
        parts.push(("n".to_string(), KeyValue::Number(format!("-{digits}"))));
    }
    round_trip(&RecordKey::Alternate(parts));

    let literal = odata::string_literal(&text);
    let quoted = literal
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("a quoted literal");
    assert_eq!(quoted.replace("''", "'"), text);
    assert_eq!(quoted.matches('\'').count(), 2 * text.matches('\'').count());
    if odata::is_identifier(&text) {
        assert!(text.len() <= 128 && text.is_ascii(), "{text:?}");
    }
    let _ = keys::id_from_entity_url(&text);
}

/// A key's segment is URL-safe (`+` only from a JSON number's exponent, `1e+300`) and decodes to `display()`, and `parse(display()) == key`;
/// a key `parse` would refuse (a control character, an overlong value) is refused for that
/// reason. The one exception: JSON numbers with an exponent such as `1e300` are written as
/// they are (`n=1e300`) but read back as text (`n='1e300'`).
fn round_trip(key: &RecordKey) {
    let segment = key.segment();
    let inner = segment
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{segment:?} is not a key segment"));
    assert!(
        inner
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~'=,%+".contains(&byte)),
        "{segment:?} is not URL-safe"
    );
    let display = key.display();
    assert_eq!(percent_decode(inner, false), display, "{segment:?}");
    let RecordKey::Alternate(parts) = key else {
        assert_eq!(RecordKey::parse(&display).as_ref(), Ok(key));
        return;
    };
    let exponent =
        |value: &KeyValue| matches!(value, KeyValue::Number(number) if number.contains(['e', 'E']));
    if parts.iter().any(|(_, value)| exponent(value)) {
        return;
    }
    let refused = parts.iter().find_map(|(column, value)| match value {
        KeyValue::Text(text) if text.chars().any(char::is_control) => {
            Some(KeyError::Control(column.clone()))
        }
        KeyValue::Text(text) if text.chars().count() > keys::MAX_KEY_VALUE_CHARS => {
            Some(KeyError::TooLong(column.clone(), text.chars().count()))
        }
        _ => None,
    });
    match refused {
        None => assert_eq!(RecordKey::parse(&display).as_ref(), Ok(key), "{display:?}"),
        Some(reason) => assert_eq!(RecordKey::parse(&display), Err(reason), "{display:?}"),
    }
}

/// Webhook bodies (RemoteExecutionContext).
///
/// - `read_context` refuses what is not JSON as `Json`, JSON without the three string fields
///   as `Missing`, and reads everything else into an event that carries those fields, the
///   context itself, and objects of attributes and images;
/// - `secrets_match` is equality.
pub fn webhook_context(data: &[u8]) {
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let fields = parsed.as_ref().and_then(|context| {
        let field = |name: &str| context.get(name).and_then(Value::as_str);
        Some((
            field("MessageName")?,
            field("PrimaryEntityName")?,
            field("PrimaryEntityId")?,
        ))
    });
    match (webhook::read_context(data), fields) {
        (Ok(event), Some((message, table, record))) => {
            assert_eq!(event["message"], message);
            assert_eq!(event["table"], table);
            assert_eq!(event["recordId"], record);
            assert_eq!(Some(&event["context"]), parsed.as_ref());
            for name in ["attributes", "preImages", "postImages"] {
                assert!(event[name].is_object(), "{name}: {}", event[name]);
            }
            let id = event["id"].as_str().expect("a text id");
            assert!(id.contains(&format!(":{message}:{record}:")), "{id}");
            assert!(event["mode"].is_string());
        }
        (Err(webhook::ContextError::Json(_)), _) => assert!(parsed.is_none()),
        (Err(webhook::ContextError::Missing(_)), None) => assert!(parsed.is_some()),
        (answer, fields) => panic!("{answer:?} for a body with {fields:?}"),
    }
    let (given, expected) = data.split_at(data.len() / 2);
    let (given, expected) = (text(given), text(expected));
    assert_eq!(webhook::secrets_match(&given, &expected), given == expected);
    assert!(webhook::secrets_match(&given, &given));
}

/// Error answers. Two bytes of status (little-endian), a `Retry-After` line, then the body.
///
/// - `read_error` always answers, with the status, a message, the kind its status implies,
///   the code and message the body carries, and `Retry-After` as `parse_retry_after` reads it;
/// - any text as a JSON error's code and message comes back as they are.
pub fn error_body(data: &[u8]) {
    let status = u16::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    ]);
    let rest = data.get(2..).unwrap_or_default();
    let (retry_after, body) = match rest.iter().position(|byte| *byte == b'\n') {
        Some(end) => (Some(text(&rest[..end])), &rest[end + 1..]),
        None => (None, rest),
    };
    let answer = error::read_error(status, body, retry_after.as_deref());
    assert_eq!(answer.status, status);
    assert!(!answer.message.is_empty());
    assert_ne!(answer.code.as_deref(), Some(""));
    assert_eq!(
        answer.retry_after_ms,
        retry_after.as_deref().and_then(error::parse_retry_after)
    );
    let kind = match status {
        401 => Some(ErrorKind::Unauthenticated),
        403 => Some(ErrorKind::Forbidden),
        404 => Some(ErrorKind::NotFound),
        409 => Some(ErrorKind::Conflict),
        412 => None,
        429 => Some(ErrorKind::Throttled),
        408 | 504 => Some(ErrorKind::Timeout),
        502 | 503 => Some(ErrorKind::Unavailable),
        400..=499 => Some(ErrorKind::BadRequest),
        _ => Some(ErrorKind::Upstream),
    };
    if let Some(kind) = kind {
        assert_eq!(answer.kind, kind);
    }
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body)
        && let Some(message) = object
            .get("error")
            .and_then(|error| error.get("message"))
            .and_then(Value::as_str)
            .filter(|message| !message.is_empty())
    {
        assert_eq!(answer.message, message);
    }

    let text = text(body);
    let json = json!({"error": {"code": &*text, "message": &*text}});
    let answer = error::read_error(status, json.to_string().as_bytes(), None);
    if text.is_empty() {
        assert_eq!(answer.code, None);
        assert!(!answer.message.is_empty());
    } else {
        assert_eq!(answer.code.as_deref(), Some(&*text));
        assert_eq!(answer.message, text);
    }
}
