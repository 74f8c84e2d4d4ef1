//! Webhook: receives the requests Dataverse sends for a registered webhook, checks that each
//! carries the webhook's secret, and turns its execution context into one event. It can register
//! itself with the environment (a service endpoint and one step per message) and remove that
//! registration again.

use std::rc::Rc;

use dataverse::webhook::{MAX_BODY_BYTES, read_context, secrets_match};
use serde_json::{Value, json};

use super::{Handlers, TriggerDef};
use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::bindings::exports::dynamics::connector::triggers::{IncomingRequest, WebhookOutcome};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, error, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::CONNECTION;
use crate::metadata::Table;

pub(super) const AUTH_TYPE: InputDef = InputDef::new("authType", "Authentication Type", Kind::Picklist)
    .default("WebhookKey")
    .comments("How Dataverse proves a request is its own: WebhookKey (a code query parameter), HttpHeader (named headers) or HttpQueryString (named query parameters)")
    .choices(&[("Webhook key", "WebhookKey"), ("HTTP headers", "HttpHeader"), ("HTTP query string", "HttpQueryString")]);

pub(super) const WEBHOOK_KEY: InputDef = InputDef::new("webhookKey", "Webhook Key", Kind::Secret)
    .comments("With WebhookKey: the key Dataverse sends as ?code=; generated when the trigger registers itself");

pub(super) const AUTH_VALUES: InputDef =
    InputDef::new("authValues", "Authentication Values", Kind::KeyValueList).comments(
        "With HttpHeader or HttpQueryString: the names and values every request must carry",
    );

pub(super) const TABLE: InputDef = InputDef::new("entityType", "Entity Type", Kind::Text)
    .comments("For self-registration and polling: the table, as its logical name (contact) or entity set name (contacts)")
    .format(Format::Identifier);

const MESSAGES: InputDef = InputDef::new("messages", "Messages", Kind::StringList)
    .default("Create,Update,Delete")
    .comments("For self-registration: the messages that send a webhook");

const FILTERING_ATTRIBUTES: InputDef = InputDef::new(
    "filteringAttributes",
    "Filtering Attributes",
    Kind::StringList,
)
.comments("For self-registration: Update sends a webhook only when one of these columns changes")
.format(Format::Identifiers);

const IMAGES: InputDef = InputDef::new("images", "Images", Kind::Picklist)
    .default("none")
    .comments("For self-registration: send the row as it was before (pre), after (post) or both with each event")
    .choices(&[("None", "none"), ("Before the change", "pre"), ("After the change", "post"), ("Both", "both")]);

const INPUTS: &[InputDef] = &[
    CONNECTION,
    AUTH_TYPE,
    WEBHOOK_KEY,
    AUTH_VALUES,
    TABLE,
    MESSAGES,
    FILTERING_ATTRIBUTES,
    IMAGES,
];

pub const TRIGGER: TriggerDef = TriggerDef {
    key: "webhook",
    label: "Webhook",
    description: "Receive and validate webhook requests from Microsoft Dynamics for webhooks you configure.",
    inputs: INPUTS,
    handlers: Handlers::Webhook {
        receive,
        enable,
        disable,
    },
};

/// Validates one request and reads its event. Refusals are answers with a reason, not errors.
pub(super) fn receive(config: &Input, request: &IncomingRequest) -> Result<WebhookOutcome> {
    let auth_type = config.text(AUTH_TYPE.key).unwrap_or("WebhookKey");
    match auth_type {
        "WebhookKey" if config.text(WEBHOOK_KEY.key).is_none() => {
            return Err(invalid_input(
                &WEBHOOK_KEY,
                "is required with the WebhookKey authentication type",
            ));
        }
        "HttpHeader" | "HttpQueryString" if config.pairs(AUTH_VALUES.key).is_empty() => {
            return Err(invalid_input(
                &AUTH_VALUES,
                format!("needs at least one name and value with {auth_type}"),
            ));
        }
        _ => {}
    }
    if request.method != "POST" {
        return Ok(refuse(405, "webhooks arrive as POST requests"));
    }
    let content_type = header(&request.headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    // application/json exactly, parameters (charset) allowed: not application/jsonx.
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return Ok(refuse(415, "the body must be application/json"));
    }
    if request.body.len() > MAX_BODY_BYTES {
        return Ok(refuse(
            413,
            "the body is larger than the 256 KB Dataverse sends",
        ));
    }
    let authentic = match auth_type {
        "WebhookKey" => query(&request.query, "code").is_some_and(|code| {
            secrets_match(code, config.text(WEBHOOK_KEY.key).unwrap_or_default())
        }),
        "HttpHeader" => config.pairs(AUTH_VALUES.key).iter().all(|(name, value)| {
            header(&request.headers, name).is_some_and(|given| secrets_match(given, value))
        }),
        _ => config.pairs(AUTH_VALUES.key).iter().all(|(name, value)| {
            query(&request.query, name).is_some_and(|given| secrets_match(given, value))
        }),
    };
    if !authentic {
        return Ok(refuse(
            401,
            "the request does not carry this webhook's secret",
        ));
    }
    match read_context(&request.body) {
        Ok(event) => Ok(WebhookOutcome {
            status: 200,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body: json!({"accepted": true, "id": event["id"]})
                .to_string()
                .into_bytes(),
            events: vec![event.to_string()],
        }),
        Err(problem) => Ok(refuse(400, &problem.to_string())),
    }
}

pub(super) fn refuse(status: u16, reason: &str) -> WebhookOutcome {
    WebhookOutcome {
        status,
        headers: vec![("content-type".to_string(), "application/json".to_string())],
        body: json!({"accepted": false, "reason": reason})
            .to_string()
            .into_bytes(),
        events: Vec::new(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn query<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Registers the webhook with Dataverse: a service endpoint for `webhook_url` and one step per
/// message on the table. Registering the same URL and table again replaces the earlier
/// registration instead of adding a second. Returns the state `disable` needs, with the
/// generated webhook key when there was none (the host keeps it with the trigger's config).
fn enable(context: &Context, config: &Input, webhook_url: Option<&str>) -> Result<String> {
    let url = callback_url(webhook_url)?;
    let table = configured_table(context, config)?;
    let messages: Vec<String> = config.list(MESSAGES.key).to_vec();
    for message in &messages {
        if !matches!(message.as_str(), "Create" | "Update" | "Delete") {
            return Err(invalid_input(
                &MESSAGES,
                format!("{message:?} is not one of Create, Update, Delete"),
            ));
        }
    }
    let auth_type = config.text(AUTH_TYPE.key).unwrap_or("WebhookKey");
    let generated_key = match (auth_type, config.text(WEBHOOK_KEY.key)) {
        ("WebhookKey", None) => Some(random_key()?),
        _ => None,
    };
    let (auth_code, auth_value) = match auth_type {
        "WebhookKey" => (
            4,
            generated_key
                .clone()
                .or(config.text(WEBHOOK_KEY.key).map(str::to_string))
                .unwrap_or_default(),
        ),
        "HttpHeader" => (5, settings_xml(config.pairs(AUTH_VALUES.key))),
        _ => (6, settings_xml(config.pairs(AUTH_VALUES.key))),
    };
    let name = format!(
        "dynamics-connector {} {}",
        table.logical_name,
        short_hash(url)
    );
    // A registration with the same name is this trigger's own, from an earlier enable.
    let existing = context.client.get_json(&format!(
        "serviceendpoints?$select=serviceendpointid&$filter=name%20eq%20{}",
        dataverse::encoding::percent_encode_query_value(&dataverse::odata::string_literal(&name))
    ))?;
    for row in existing["value"].as_array().into_iter().flatten() {
        if let Some(id) = row["serviceendpointid"].as_str() {
            remove_endpoint(context, id)?;
        }
    }
    let endpoint = json!({
        "name": name,
        "contract": 8,
        "url": url,
        "authtype": auth_code,
        "authvalue": auth_value,
        "messageformat": 2,
    });
    let endpoint_id = create(context, "serviceendpoints", &endpoint)?;
    let mut step_ids = Vec::new();
    for message in &messages {
        let message_id = message_id(context, message)?;
        let filter_id = message_filter(context, &message_id, &table.logical_name)?;
        let mut step = async_step(
            &format!("{name} {message}"),
            &message_id,
            Some(&filter_id),
            &endpoint_id,
        );
        if message == "Update" && !config.list(FILTERING_ATTRIBUTES.key).is_empty() {
            step["filteringattributes"] = json!(config.list(FILTERING_ATTRIBUTES.key).join(","));
        }
        let step_id = create(context, "sdkmessageprocessingsteps", &step)?;
        // Dataverse has no pre image on Create and no post image on Delete.
        let wanted = config.text(IMAGES.key).unwrap_or("none");
        let pre = matches!(wanted, "pre" | "both") && message != "Create";
        let post = matches!(wanted, "post" | "both") && message != "Delete";
        for (wanted, alias, kind) in [(pre, "PreImage", 0), (post, "PostImage", 1)] {
            if wanted {
                let image = json!({
                    "name": alias,
                    "entityalias": alias,
                    "imagetype": kind,
                    "messagepropertyname": if message == "Create" { "Id" } else { "Target" },
                    "sdkmessageprocessingstepid@odata.bind": format!("/sdkmessageprocessingsteps({step_id})"),
                });
                create(context, "sdkmessageprocessingstepimages", &image)?;
            }
        }
        step_ids.push(step_id);
    }
    Ok(json!({"serviceEndpointId": endpoint_id, "stepIds": step_ids, "webhookKey": generated_key, "url": url}).to_string())
}

/// Removes what `enable` registered; parts already gone are fine.
/// The URL the host gives for Dataverse to call: absolute http(s), or the host's mistake.
pub(super) fn callback_url(webhook_url: Option<&str>) -> Result<&str> {
    webhook_url
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .ok_or_else(|| {
            error(
                ErrorCode::InvalidInput,
                "the host must give the absolute URL Dataverse should call",
            )
        })
}

/// The table a trigger's config names (`TABLE`), as the environment's metadata describes it.
pub(super) fn configured_table(context: &Context, config: &Input) -> Result<Rc<Table>> {
    let table_name = config
        .text(TABLE.key)
        .ok_or_else(|| invalid_input(&TABLE, "is required to register the trigger"))?;
    context
        .metadata
        .table(&context.client, table_name)?
        .ok_or_else(|| {
            invalid_input(
                &TABLE,
                format!("{table_name:?} is not a table of this environment"),
            )
        })
}

pub(super) fn disable(context: &Context, state: &str) -> Result<()> {
    let state: Value = serde_json::from_str(state).map_err(|problem| {
        error(
            ErrorCode::InvalidInput,
            format!("the trigger state is not JSON: {problem}"),
        )
    })?;
    let endpoint = state["serviceEndpointId"]
        .as_str()
        .filter(|id| dataverse::guid::is_guid(id))
        .ok_or_else(|| {
            error(
                ErrorCode::InvalidInput,
                "the trigger state has no serviceEndpointId; was the trigger enabled?",
            )
        })?;
    for step in state["stepIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if dataverse::guid::is_guid(step) {
            delete(context, &format!("sdkmessageprocessingsteps({step})"))?;
        }
    }
    delete(context, &format!("serviceendpoints({endpoint})"))
}

fn remove_endpoint(context: &Context, endpoint: &str) -> Result<()> {
    let steps = context.client.get_json(&format!(
        "sdkmessageprocessingsteps?$select=sdkmessageprocessingstepid&$filter=_eventhandler_value%20eq%20{endpoint}"
    ))?;
    for step in steps["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["sdkmessageprocessingstepid"].as_str())
    {
        delete(context, &format!("sdkmessageprocessingsteps({step})"))?;
    }
    delete(context, &format!("serviceendpoints({endpoint})"))
}

/// The body of an asynchronous post-operation step (stage 40, mode 1) of `message_id`, for the
/// rows of `filter_id`'s table when given, that posts to the service endpoint: the shape every
/// webhook trigger registers. Filtering attributes and impersonation are theirs to add.
pub(super) fn async_step(
    name: &str,
    message_id: &str,
    filter_id: Option<&str>,
    endpoint_id: &str,
) -> Value {
    let mut step = json!({
        "name": name,
        "mode": 1,
        "stage": 40,
        "rank": 1,
        "supporteddeployment": 0,
        "asyncautodelete": false,
        "sdkmessageid@odata.bind": format!("/sdkmessages({message_id})"),
        "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint_id})"),
    });
    if let Some(filter_id) = filter_id {
        step["sdkmessagefilterid@odata.bind"] = json!(format!("/sdkmessagefilters({filter_id})"));
    }
    step
}

/// The ID of the SDK message `name` (Create, Update, a custom API's unique name).
pub(super) fn message_id(context: &Context, name: &str) -> Result<String> {
    first_id(
        context,
        &format!(
            "sdkmessages?$select=sdkmessageid&$filter=name%20eq%20{}",
            encoded_literal(name)
        ),
        "sdkmessageid",
    )
}

/// The ID of the filter that limits `message_id` to the table `logical_name`.
pub(super) fn message_filter(
    context: &Context,
    message_id: &str,
    logical_name: &str,
) -> Result<String> {
    first_id(
        context,
        &format!(
            "sdkmessagefilters?$select=sdkmessagefilterid&$filter=_sdkmessageid_value%20eq%20{message_id}%20and%20primaryobjecttypecode%20eq%20{}",
            encoded_literal(logical_name)
        ),
        "sdkmessagefilterid",
    )
}

/// `text` as an OData string literal, encoded for a query string.
pub(super) fn encoded_literal(text: &str) -> String {
    dataverse::encoding::percent_encode_query_value(&dataverse::odata::string_literal(text))
}

pub(super) fn create(context: &Context, entity_set: &str, body: &Value) -> Result<String> {
    let mut request = crate::client::Request::new("POST", context.client.api_url(entity_set))
        .header("Content-Type", "application/json");
    request.body = body.to_string().into_bytes();
    let response = context
        .client
        .send(
            request,
            dataverse::retry::RetryPolicy::RECORDS.not_idempotent(),
        )?
        .into_success()?;
    response
        .header("odata-entityid")
        .and_then(dataverse::keys::id_from_entity_url)
        .ok_or_else(|| {
            crate::error::malformed(format!(
                "creating a row of {entity_set} answered without its ID"
            ))
        })
}

pub(super) fn delete(context: &Context, path: &str) -> Result<()> {
    let request = crate::client::Request::new("DELETE", context.client.api_url(path));
    let response = context
        .client
        .send(request, dataverse::retry::RetryPolicy::RECORDS)?;
    if response.status == 404 {
        return Ok(());
    }
    response.into_success().map(|_| ())
}

fn first_id(context: &Context, path: &str, column: &str) -> Result<String> {
    let answer = context.client.get_json(path)?;
    let id = answer["value"][0][column].as_str().ok_or_else(|| {
        error(
            ErrorCode::NotFound,
            format!("the environment has no row for {path}"),
        )
    })?;
    service_id(id, column)
}

/// An ID the service answered, checked before it goes into a URL or an `@odata.bind` path:
/// anything but a GUID is a malformed answer, never spliced.
pub(super) fn service_id(id: &str, column: &str) -> Result<String> {
    dataverse::guid::parse(id).ok_or_else(|| {
        malformed(format!(
            "the service answered {column} {id:?}, which is not an ID"
        ))
    })
}

/// `<settings><setting name=".." value=".."/></settings>`, values escaped for XML.
pub(super) fn settings_xml(pairs: &[(String, String)]) -> String {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let settings: String = pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "<setting name=\"{}\" value=\"{}\" />",
                escape(name),
                escape(value)
            )
        })
        .collect();
    format!("<settings>{settings}</settings>")
}

pub(super) fn random_key() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|problem| {
        error(
            ErrorCode::Internal,
            format!("no randomness available: {problem}"),
        )
    })?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// A short, stable fingerprint of a URL, to name this trigger's registration.
fn short_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ID the service answers goes into the next lookup's `$filter` and into the step's
    /// `@odata.bind` paths: one that is not a GUID is refused, and nothing more is sent.
    #[test]
    fn an_answered_id_that_is_not_a_guid_never_reaches_a_url() {
        use crate::test_host::{Script, Signed};
        let signed = Signed::new();
        let script = Script::new().json(200, r#"{"value":[{"sdkmessageid":"x) or true or (x"}]}"#);
        let context = signed.context(&script);
        let failure = message_id(&context, "Create").unwrap_err();
        assert_eq!(failure.code, ErrorCode::MalformedResponse, "{failure:?}");
        assert!(failure.message.contains("not an ID"), "{failure:?}");
        assert_eq!(script.sent().len(), 1);

        let script = Script::new().json(
            200,
            r#"{"value":[{"sdkmessageid":"{00000000-0000-0000-0000-0000000000AB}"}]}"#,
        );
        let context = signed.context(&script);
        assert_eq!(
            message_id(&context, "Create").unwrap(),
            "00000000-0000-0000-0000-0000000000ab"
        );
    }

    const CONTEXT: &str = r#"{"MessageName":"Create","PrimaryEntityName":"account","PrimaryEntityId":"00000000-0000-0000-0000-0000000000a1","OperationId":"00000000-0000-0000-0000-0000000000f1","Depth":1}"#;

    fn config(json: &str) -> Input {
        Input::parse(INPUTS, json).unwrap()
    }

    fn post(query: &[(&str, &str)], headers: &[(&str, &str)], body: &str) -> IncomingRequest {
        let pairs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect()
        };
        IncomingRequest {
            method: "POST".to_string(),
            path: "/webhooks/dynamics".to_string(),
            query: pairs(query),
            headers: pairs(headers),
            body: body.as_bytes().to_vec(),
        }
    }

    const JSON: (&str, &str) = ("Content-Type", "application/json; charset=utf-8");

    #[test]
    fn a_request_with_the_webhook_key_becomes_one_event() {
        let outcome = receive(
            &config(r#"{"webhookKey": "s3cret"}"#),
            &post(&[("code", "s3cret")], &[JSON], CONTEXT),
        )
        .unwrap();
        assert_eq!(outcome.status, 200);
        assert_eq!(outcome.events.len(), 1);
        let event: Value = serde_json::from_str(&outcome.events[0]).unwrap();
        assert_eq!(event["message"], "Create");
        assert_eq!(event["recordId"], "00000000-0000-0000-0000-0000000000a1");
    }

    #[test]
    fn requests_that_are_not_the_webhooks_own_are_refused_with_a_reason_and_no_event() {
        let key = config(r#"{"webhookKey": "s3cret"}"#);
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let mut get = post(&[("code", "s3cret")], &[JSON], CONTEXT);
        get.method = "GET".to_string();
        let cases = [
            (get, 405),
            (
                post(
                    &[("code", "s3cret")],
                    &[("Content-Type", "application/jsonx")],
                    CONTEXT,
                ),
                415,
            ),
            (post(&[("code", "s3cret")], &[JSON], &big), 413),
            (post(&[("code", "wrong")], &[JSON], CONTEXT), 401),
            (post(&[], &[JSON], CONTEXT), 401),
            (post(&[("code", "s3cret")], &[JSON], "{}"), 400),
        ];
        for (request, status) in cases {
            let outcome = receive(&key, &request).unwrap();
            assert_eq!(outcome.status, status);
            assert!(outcome.events.is_empty(), "{status}");
            let body: Value = serde_json::from_slice(&outcome.body).unwrap();
            assert_eq!(body["accepted"], false, "{status}");
        }
    }

    #[test]
    fn header_authentication_needs_every_named_header() {
        let headers =
            config(r#"{"authType": "HttpHeader", "authValues": {"X-One": "1", "X-Two": "2"}}"#);
        let both = post(&[], &[JSON, ("x-one", "1"), ("X-TWO", "2")], CONTEXT);
        assert_eq!(receive(&headers, &both).unwrap().status, 200);
        let one = post(&[], &[JSON, ("X-One", "1")], CONTEXT);
        assert_eq!(receive(&headers, &one).unwrap().status, 401);
    }

    #[test]
    fn a_config_without_its_secret_is_invalid_input() {
        let request = post(&[], &[JSON], CONTEXT);
        let failure = receive(&config("{}"), &request).unwrap_err();
        assert_eq!(failure.field.as_deref(), Some("webhookKey"));
        let failure = receive(&config(r#"{"authType": "HttpQueryString"}"#), &request).unwrap_err();
        assert_eq!(failure.field.as_deref(), Some("authValues"));
    }

    #[test]
    fn registration_settings_are_escaped_for_xml_and_named_by_a_stable_hash() {
        let pairs = [("X-Key".to_string(), "a\"<b>&c".to_string())];
        assert_eq!(
            settings_xml(&pairs),
            r#"<settings><setting name="X-Key" value="a&quot;&lt;b&gt;&amp;c" /></settings>"#
        );
        let url = "https://example.com/webhooks/dynamics";
        assert_eq!(short_hash(url), short_hash(url));
        assert_eq!(short_hash(url).len(), 8);
        assert_ne!(short_hash(url), short_hash("https://example.com/other"));
    }
}
