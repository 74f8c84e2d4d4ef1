//! Raw Request: any method and path on the environment, with the connection's token.
//!
//! The URL is a path on the environment (or a path relative to the Web API root); an absolute URL
//! is accepted only when it names the environment itself, so the token never leaves it.

use dataverse::encoding::{base64_decode, base64_encode, percent_encode};
use dataverse::environment::{Environment, origin_of};
use dataverse::multipart::{FormPart, encode_form};
use dataverse::retry::{RetryOn, RetryPolicy};
use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::client::{Request, api_url, random_hex};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, error, invalid_input};
use crate::input::Input;
use crate::inputs::CONNECTION;
use crate::log;

const URL: InputDef = InputDef::new("url", "URL", Kind::Text)
    .required()
    .comments("Input the path only (/api/data/v9.2/accounts?$select=name), The base URL is already included (https://my-org.api.crm.dynamics.com). For example, to connect to https://my-org.api.crm.dynamics.com/api/data/v9.2/accounts?$select=name, only /api/data/v9.2/accounts?$select=name is entered in this field.")
    .example("/api/data/v9.2/accounts?$select=name");

const METHOD: InputDef = InputDef::new("method", "Method", Kind::Picklist)
    .required()
    .comments("The HTTP method to use.")
    .choices(&[
        ("GET", "GET"),
        ("POST", "POST"),
        ("PATCH", "PATCH"),
        ("PUT", "PUT"),
        ("DELETE", "DELETE"),
        ("HEAD", "HEAD"),
    ]);

const DATA: InputDef =
    InputDef::new("data", "Data", Kind::Code).comments("The HTTP body payload to send to the URL.");

const FORM_DATA: InputDef = InputDef::new("formData", "Form Data", Kind::KeyValueList)
    .comments("The Form Data to be sent as a multipart form upload.");

const FILE_DATA: InputDef = InputDef::new("fileData", "File Data", Kind::KeyValueList)
    .comments("File Data to be sent as a multipart form upload.")
    .example(r#"{"file": "data:text/plain;base64,aGVsbG8="}"#);

const FILE_NAMES: InputDef = InputDef::new(
    "fileDataFileNames",
    "File Data File Names",
    Kind::KeyValueList,
)
.comments("File names to apply to the file data inputs. Keys must match the file data keys above.");

const QUERY_PARAMS: InputDef = InputDef::new("queryParams", "Query Parameter", Kind::KeyValueList).comments(
    "A list of query parameters to send with the request. This is the portion at the end of the URL similar to ?key1=value1&key2=value2.",
);

const HEADERS: InputDef = InputDef::new("headers", "Header", Kind::KeyValueList)
    .comments("A list of headers to send with the request.");

const RESPONSE_TYPE: InputDef = InputDef::new("responseType", "Response Type", Kind::Picklist)
    .default("json")
    .comments(
        "The type of data you expect in the response. You can request json, text, or binary data.",
    )
    .choices(&[("json", "json"), ("text", "text"), ("binary", "binary")]);

const TIMEOUT: InputDef = InputDef::new("timeout", "Timeout", Kind::Number)
    .comments("The maximum time that a client will await a response to its request")
    .example("30000")
    .format(Format::Range(1, 3_600_000));

const DEBUG: InputDef = InputDef::new("debugRequest", "Debug Request", Kind::Boolean)
    .default("false")
    .comments("Enabling this flag will log out the current request.");

const RETRY_DELAY: InputDef = InputDef::new("retryDelayMS", "Retry Delay (ms)", Kind::Number)
    .default("0")
    .comments("The delay in milliseconds between retries. This is used when 'Use Exponential Backoff' is disabled.")
    .format(Format::Range(0, 60_000));

const RETRY_ALL: InputDef = InputDef::new("retryAllErrors", "Retry On All Errors", Kind::Boolean)
    .default("false")
    .comments("If true, retries on all erroneous responses regardless of type. This is helpful when retrying after HTTP 429 or other 3xx or 4xx errors. Otherwise, only retries on HTTP 5xx and network errors.");

const MAX_RETRIES: InputDef = InputDef::new("maxRetries", "Max Retry Count", Kind::Number)
    .default("0")
    .comments("The maximum number of retries to attempt. Specify 0 for no retries.")
    .format(Format::Range(0, 10));

const BACKOFF: InputDef = InputDef::new("useExponentialBackoff", "Use Exponential Backoff", Kind::Boolean)
    .default("false")
    .comments("Specifies whether to use a pre-defined exponential backoff strategy for retries. When enabled, 'Retry Delay (ms)' is ignored.");

const INPUTS: &[InputDef] = &[
    CONNECTION,
    URL,
    METHOD,
    DATA,
    FORM_DATA,
    FILE_DATA,
    FILE_NAMES,
    QUERY_PARAMS,
    HEADERS,
    RESPONSE_TYPE,
    TIMEOUT,
    DEBUG,
    RETRY_DELAY,
    RETRY_ALL,
    MAX_RETRIES,
    BACKOFF,
];

const EXAMPLE: &str = r#"{"status":200,"headers":{"content-type":"application/json; odata.metadata=minimal"},"data":{"value":[{"name":"Contoso"}]}}"#;

pub const CRM_ACTION: ActionDef = ActionDef {
    key: "raw-request-crm",
    label: "Raw Request",
    description: "Send raw HTTP request to Microsoft Dynamics 365 CRM",
    group: Some("CRM"),
    inputs: INPUTS,
    example_output: Some(EXAMPLE),
    run: Run::Value(run),
    dynamic_inputs: None,
};

pub const ACTION: ActionDef = ActionDef {
    key: "raw-request",
    label: "Raw Request",
    description: "Send raw HTTP request to Microsoft Dynamics 365",
    group: None,
    inputs: INPUTS,
    example_output: Some(EXAMPLE),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let url = target_url(
        &context.client.settings.environment,
        input.text(URL.key).unwrap_or_default(),
        input.pairs(QUERY_PARAMS.key),
    )?;
    let method = input.text(METHOD.key).unwrap_or("GET").to_string();
    let mut request = Request::new(&method, url);
    for (name, value) in input.pairs(HEADERS.key) {
        if name.trim().is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_control() || b == b':' || b == b' ')
        {
            return Err(invalid_input(
                &HEADERS,
                format!("{name:?} is not a valid header name"),
            ));
        }
        if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("host") {
            return Err(invalid_input(
                &HEADERS,
                format!("the {name} header is set by the connection and cannot be overridden"),
            ));
        }
        // The host frames the message; a second, different length would make the request
        // unreadable (or smuggle a second one).
        if [
            "content-length",
            "transfer-encoding",
            "connection",
            "te",
            "upgrade",
        ]
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
        {
            return Err(invalid_input(
                &HEADERS,
                format!("the {name} header is set by the host from the body and cannot be given"),
            ));
        }
        request = request.header(name, value.clone());
    }
    let (body, content_type) = body(input)?;
    if let Some(content_type) = content_type {
        request
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        request = request.header("Content-Type", content_type);
    }
    request.body = body;
    request.timeout_ms = input.number(TIMEOUT.key).map(|ms| ms as u32);
    let policy = RetryPolicy {
        max_retries: input.number(MAX_RETRIES.key).unwrap_or(0.0) as u32,
        delay_ms: input.number(RETRY_DELAY.key).unwrap_or(0.0) as u64,
        exponential: input.flag(BACKOFF.key),
        retry_on: if input.flag(RETRY_ALL.key) {
            RetryOn::AllErrors
        } else {
            RetryOn::ServerErrors
        },
        ..RetryPolicy::NONE
    };
    if input.flag(DEBUG.key) {
        let names: Vec<&str> = request
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        log::info(format!(
            "raw request: {} {} headers [{}] body {} bytes",
            request.method,
            request.url,
            names.join(", "),
            request.body.len()
        ));
    }
    let response = context.client.send(request, policy)?.into_success()?;
    let data = match input.text(RESPONSE_TYPE.key).unwrap_or("json") {
        "text" => Value::String(String::from_utf8_lossy(&response.body).into_owned()),
        "binary" => Value::String(base64_encode(&response.body)),
        _ => response.json()?,
    };
    let headers: Map<String, Value> = response
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), Value::String(value.clone())))
        .collect();
    Ok(json!({ "status": response.status, "headers": headers, "data": data }))
}

/// The absolute URL on the environment for the URL input, with the query parameters appended.
/// An absolute URL anywhere else is refused here, before any request: the request carries the
/// connection's token, which must not leave the environment.
fn target_url(
    environment: &Environment,
    given: &str,
    params: &[(String, String)],
) -> Result<String> {
    let given = given.trim();
    // Absolute only when the part before the query names a scheme: a relative path whose query
    // holds a URL (`?redirect=https://...`) stays relative.
    let before_query = given.split(['?', '#']).next().unwrap_or(given);
    let mut url = if before_query.contains("://") || given.starts_with("//") {
        let origin = origin_of(given).unwrap_or_else(|| given.to_string());
        if !environment.is_own_origin(&origin) {
            return Err(crate::error::ConnectorErrorExt::with_field(
                error(
                    ErrorCode::Forbidden,
                    format!(
                        "input \"url\" (URL): {origin:?} is not this connection's environment ({}); enter a path such as /api/data/v9.2/accounts",
                        environment.origin
                    ),
                ),
                URL.key,
            ));
        }
        let after_scheme = given
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(given);
        let path = after_scheme
            .find('/')
            .map(|index| &after_scheme[index..])
            .unwrap_or("/");
        format!("{}{path}", environment.origin)
    } else if given.starts_with('/') {
        format!("{}{given}", environment.origin)
    } else {
        api_url(environment, given)
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid_input(
            &URL,
            "must not contain spaces or control characters; encode them as %20",
        ));
    }
    if !params.is_empty() {
        let query: Vec<String> = params
            .iter()
            .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
            .collect();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query.join("&"));
    }
    Ok(url)
}

/// The body and its content type: JSON or text from Data, or a multipart form.
fn body(input: &Input) -> Result<(Vec<u8>, Option<String>)> {
    let form = input.pairs(FORM_DATA.key);
    let files = input.pairs(FILE_DATA.key);
    let names = input.pairs(FILE_NAMES.key);
    let data = input.json(DATA.key);
    if form.is_empty() && files.is_empty() {
        if let Some((key, _)) = names.first() {
            return Err(invalid_input(
                &FILE_NAMES,
                format!("{key:?} names no file: File Data is empty"),
            ));
        }
        return Ok(match data {
            None => (Vec::new(), None),
            Some(Value::String(text)) => (
                text.clone().into_bytes(),
                Some("text/plain; charset=utf-8".to_string()),
            ),
            Some(value) => (
                value.to_string().into_bytes(),
                Some("application/json".to_string()),
            ),
        });
    }
    if data.is_some() {
        return Err(invalid_input(
            &DATA,
            "cannot be sent together with Form Data or File Data; use one or the other",
        ));
    }
    for (key, _) in names {
        if !files.iter().any(|(file_key, _)| file_key == key) {
            return Err(invalid_input(
                &FILE_NAMES,
                format!("{key:?} does not match any File Data key"),
            ));
        }
    }
    let mut parts: Vec<FormPart> = form
        .iter()
        .map(|(name, value)| FormPart {
            name: name.clone(),
            file_name: None,
            content_type: None,
            data: value.clone().into_bytes(),
        })
        .collect();
    for (name, value) in files {
        let (content_type, data) = decode_file(name, value)?;
        let file_name = names
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, file)| file.clone())
            .unwrap_or_else(|| name.clone());
        parts.push(FormPart {
            name: name.clone(),
            file_name: Some(file_name),
            content_type,
            data,
        });
    }
    let boundary = unique_boundary(&parts, format!("----dynamics-connector-{}", random_hex(12)));
    let (body, content_type) = encode_form(&parts, &boundary);
    Ok((body, Some(content_type)))
}

/// A file value: a `data:` URL (base64 or plain) or plain text.
fn decode_file(name: &str, value: &str) -> Result<(Option<String>, Vec<u8>)> {
    let Some(rest) = value.strip_prefix("data:") else {
        return Ok((None, value.as_bytes().to_vec()));
    };
    let Some((meta, payload)) = rest.split_once(',') else {
        return Err(invalid_input(
            &FILE_DATA,
            format!("the data URL of {name:?} has no comma before its content"),
        ));
    };
    let (media_type, is_base64) = match meta.strip_suffix(";base64") {
        Some(media_type) => (media_type, true),
        None => (meta, false),
    };
    let data = if is_base64 {
        base64_decode(payload).ok_or_else(|| {
            invalid_input(
                &FILE_DATA,
                format!("the data URL of {name:?} is not valid base64"),
            )
        })?
    } else {
        dataverse::encoding::percent_decode(payload, false).into_bytes()
    };
    let content_type = (!media_type.is_empty()).then(|| media_type.to_string());
    Ok((content_type, data))
}

/// A boundary that occurs in no part.
fn unique_boundary(parts: &[FormPart], mut boundary: String) -> String {
    let occurs = |boundary: &str| {
        parts.iter().any(|part| {
            part.data
                .windows(boundary.len())
                .any(|w| w == boundary.as_bytes())
        })
    };
    while occurs(&boundary) {
        boundary.push('x');
    }
    boundary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_host::ORIGIN;

    fn environment() -> Environment {
        Environment::parse(ORIGIN).unwrap()
    }

    fn target(given: &str) -> Result<String> {
        target_url(&environment(), given, &[])
    }

    #[test]
    fn a_path_is_taken_on_the_environment_and_a_relative_one_under_the_web_api_root() {
        assert_eq!(
            target("/api/data/v9.2/accounts?$select=name").unwrap(),
            format!("{ORIGIN}/api/data/v9.2/accounts?$select=name")
        );
        assert_eq!(
            target("  accounts?$top=1 ").unwrap(),
            format!("{ORIGIN}/api/data/v9.2/accounts?$top=1")
        );
    }

    #[test]
    fn an_absolute_url_of_the_environment_keeps_only_its_path() {
        assert_eq!(
            target(&format!("{ORIGIN}/api/data/v9.2/WhoAmI")).unwrap(),
            format!("{ORIGIN}/api/data/v9.2/WhoAmI")
        );
        assert_eq!(target(ORIGIN).unwrap(), format!("{ORIGIN}/"));
    }

    #[test]
    fn an_absolute_url_anywhere_else_is_forbidden_naming_the_url_input() {
        for elsewhere in [
            "https://evil.example.com/api/data/v9.2/accounts",
            "//evil.example.com/api/data/v9.2/accounts",
            "https://contoso.crm.dynamics.com.evil.example.com/api/data/v9.2/accounts",
            "https://contoso.crm.dynamics.com@evil.example.com/api/data/v9.2/accounts",
            "http://contoso.crm.dynamics.com/api/data/v9.2/accounts",
            "https://contoso.crm.dynamics.com:8443/api/data/v9.2/accounts",
            "https://fabrikam.crm.dynamics.com/api/data/v9.2/accounts",
        ] {
            let failure = target(elsewhere).expect_err(elsewhere);
            assert_eq!(failure.code, ErrorCode::Forbidden, "{elsewhere}");
            assert_eq!(failure.field.as_deref(), Some("url"), "{elsewhere}");
            assert!(
                failure
                    .message
                    .contains("is not this connection's environment"),
                "{elsewhere}: {}",
                failure.message
            );
        }
    }

    #[test]
    fn a_relative_path_whose_query_holds_a_url_stays_on_the_environment() {
        assert_eq!(
            target("/api/data/v9.2/accounts?next=https://evil.example.com/").unwrap(),
            format!("{ORIGIN}/api/data/v9.2/accounts?next=https://evil.example.com/")
        );
        assert_eq!(
            target("accounts?next=https://evil.example.com/").unwrap(),
            format!("{ORIGIN}/api/data/v9.2/accounts?next=https://evil.example.com/")
        );
    }

    #[test]
    fn spaces_and_control_characters_are_refused() {
        for bad in [
            "accounts?$filter=name eq 'A'",
            "/api/data/v9.2/acc\u{7f}ounts",
        ] {
            let failure = target(bad).expect_err(bad);
            assert_eq!(failure.code, ErrorCode::InvalidInput, "{bad}");
            assert_eq!(failure.field.as_deref(), Some("url"), "{bad}");
        }
    }

    #[test]
    fn query_parameters_are_encoded_and_appended_after_any_query_in_the_url() {
        let params = [
            ("$select".to_string(), "name,accountnumber".to_string()),
            ("note".to_string(), "a&b=c d".to_string()),
        ];
        let with_query = target_url(&environment(), "accounts?$top=1", &params).unwrap();
        let without = target_url(&environment(), "accounts", &params).unwrap();
        let root = format!("{ORIGIN}/api/data/v9.2/accounts");
        let (_, appended) = with_query.split_once("$top=1&").unwrap();
        assert_eq!(without, format!("{root}?{appended}"));
        assert!(appended.contains("=a%26b%3Dc%20d"), "{appended}");
        assert!(!appended.contains(' '), "{appended}");
    }
}
