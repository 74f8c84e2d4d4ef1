//! The JSON API under `/api/`: the route table, and how errors are answered.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use dynamics_host::{ConnectorError, HostError, IncomingRequest};

use super::Shared;
use super::connections::text_fields;
use super::definition_view::definition_json;

pub(super) type Answer = (u16, Value);

pub(super) fn fail(
    status: u16,
    code: &str,
    message: impl Into<String>,
    field: Option<&str>,
) -> Answer {
    let mut error = json!({"code": code, "message": message.into()});
    if let Some(field) = field {
        error["field"] = json!(field);
    }
    (status, json!({ "error": error }))
}

/// A connector error as the page shows it (the component never puts secrets in one).
pub(super) fn connector_error(error: &ConnectorError) -> Value {
    let mut value = json!({"code": error.code.to_string(), "message": error.message});
    let fields = [
        ("httpStatus", error.http_status.map(|s| json!(s))),
        ("serviceCode", error.service_code.as_ref().map(|s| json!(s))),
        ("retryAfterMs", error.retry_after_ms.map(|s| json!(s))),
        ("hint", error.hint.as_ref().map(|s| json!(s))),
        ("field", error.field.as_ref().map(|s| json!(s))),
    ];
    for (key, field) in fields {
        if let Some(field) = field {
            value[key] = field;
        }
    }
    value
}

pub(super) fn host_error(error: &HostError) -> Value {
    json!({"code": "host", "message": error.to_string()})
}

pub(super) fn status_of(error: &Value) -> u16 {
    match error["code"].as_str() {
        Some("invalid-input") => 400,
        Some("host") => 500,
        _ => 502,
    }
}

pub(super) fn parse_output(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// `POST /api/connections`: a connection to add or replace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SaveConnection {
    #[serde(default)]
    pub(super) name: String,
    /// The connection type key.
    #[serde(rename = "type", default)]
    pub(super) kind: String,
    /// Text values by input key; checked field by field, so a bad one is named.
    #[serde(default)]
    pub(super) fields: Value,
}

/// `POST /api/run`: one action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunAction {
    pub(super) connection: Option<String>,
    pub(super) action: Option<String>,
    #[serde(default = "empty_object")]
    pub(super) input: Value,
}

/// `POST /api/choices`: a data source's choices.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ChoicesRequest {
    pub(super) connection: Option<String>,
    pub(super) data_source: Option<String>,
    /// The inputs the data source depends on.
    #[serde(default = "empty_object")]
    pub(super) input: Value,
}

/// `POST /api/input-definitions`: an action's inputs once some are chosen (actions with dynamic
/// inputs add the parameters of the Dataverse action picked).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InputDefinitionsRequest {
    pub(super) connection: Option<String>,
    pub(super) action: Option<String>,
    /// The inputs chosen so far.
    #[serde(default = "empty_object")]
    pub(super) input: Value,
}

/// `POST /api/flows/run`: a flow, run once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunFlow {
    /// A [`Flow`], read where its errors can name their field.
    #[serde(default)]
    pub(super) flow: Value,
    /// Overrides the flow's own connection.
    pub(super) connection: Option<String>,
    /// The event `{{trigger.…}}` references read.
    pub(super) trigger: Option<Value>,
}

/// `POST /api/trigger/start`: arm a trigger with a flow.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StartTrigger {
    /// A [`Flow`], read where its errors can name their field.
    #[serde(default)]
    pub(super) flow: Value,
    /// The trigger key; `webhook` when absent.
    pub(super) trigger: Option<String>,
    pub(super) connection: Option<String>,
    /// The trigger's config, a JSON object.
    pub(super) config: Option<Value>,
    /// Seconds between polls (polling triggers), 1 to 86400; 60 when absent.
    pub(super) interval_seconds: Option<Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// The request body as `T` (no body reads as `{}`).
fn parse<T: serde::de::DeserializeOwned>(request: &IncomingRequest) -> Result<T, Answer> {
    let body: &[u8] = if request.body.is_empty() {
        b"{}"
    } else {
        &request.body
    };
    serde_json::from_slice(body).map_err(|problem| {
        fail(
            400,
            "invalid-input",
            format!("the request body is not what this API takes: {problem}"),
            None,
        )
    })
}

impl Shared {
    pub(super) fn api(self: &Arc<Self>, request: &IncomingRequest) -> Answer {
        let path = request.path.trim_start_matches("/api/");
        let segments: Vec<&str> = path.split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["definition"]) => (200, definition_json(self.host.definition())),
            ("GET", ["presets"]) => (200, json!(self.presets)),
            ("GET", ["connections"]) => (200, self.list_connections()),
            ("POST", ["connections"]) => {
                let body: SaveConnection = match parse(request) {
                    Ok(body) => body,
                    Err(answer) => return answer,
                };
                let fields = match text_fields(&body.fields) {
                    Ok(fields) => fields,
                    Err(answer) => return answer,
                };
                match self.save_connection(body.name.trim(), &body.kind, fields) {
                    Ok(()) => (200, self.list_connections()),
                    Err(answer) => answer,
                }
            }
            ("DELETE", ["connections", name]) => {
                self.delete_connection(&crate::http::decode_segment(name))
            }
            ("POST", ["connections", name, "test"]) => {
                self.test_connection(&crate::http::decode_segment(name))
            }
            ("POST", ["connections", name, "sign-in"]) => {
                self.begin_sign_in(&crate::http::decode_segment(name))
            }
            ("POST", ["run"]) => {
                let body: RunAction = match parse(request) {
                    Ok(body) => body,
                    Err(answer) => return answer,
                };
                let (Some(connection), Some(action)) = (body.connection, body.action) else {
                    return fail(
                        400,
                        "invalid-input",
                        "connection and action are required",
                        None,
                    );
                };
                match self.run_action(&connection, &action, &body.input) {
                    Ok(output) => (200, json!({ "output": output })),
                    Err(error) => (status_of(&error), json!({ "error": error })),
                }
            }
            ("POST", ["choices"]) => match parse(request) {
                Ok(body) => self.choices(body),
                Err(answer) => answer,
            },
            ("POST", ["input-definitions"]) => match parse(request) {
                Ok(body) => self.input_definitions(body),
                Err(answer) => answer,
            },
            ("POST", ["flows", "run"]) => match parse(request) {
                Ok(body) => self.run_flow(body),
                Err(answer) => answer,
            },
            ("GET", ["trigger"]) => (200, self.trigger_status()),
            ("POST", ["trigger", "start"]) => {
                // One start or stop at a time: a second start never overwrites a registration
                // or poller the first one made.
                let body = match parse(request) {
                    Ok(body) => body,
                    Err(answer) => return answer,
                };
                let _arming = self.arming.lock().unwrap_or_else(|p| p.into_inner());
                self.start_trigger(body)
            }
            ("POST", ["trigger", "stop"]) => {
                let _arming = self.arming.lock().unwrap_or_else(|p| p.into_inner());
                match self.disarm() {
                    Ok(stopped) => (200, json!({"stopped": stopped})),
                    Err(problem) => fail(502, "upstream", problem, None),
                }
            }
            ("GET", ["events"]) => {
                let after = request
                    .query
                    .iter()
                    .find(|(key, _)| key == "after")
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0u64);
                (200, self.events_after(after))
            }
            _ => fail(
                404,
                "not-found",
                format!("no API {} /api/{path}", request.method),
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> IncomingRequest {
        IncomingRequest {
            method: "POST".to_string(),
            path: "/api/run".to_string(),
            query: Vec::new(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn an_action_without_input_runs_with_an_empty_object() {
        let body: RunAction = parse(&request(r#"{"connection": "emu", "action": "a"}"#)).unwrap();
        assert_eq!(body.input, json!({}));
        assert_eq!(body.connection.as_deref(), Some("emu"));
    }

    #[test]
    fn no_body_reads_as_an_empty_object() {
        let body: StartTrigger = parse(&request("")).unwrap();
        assert!(body.trigger.is_none() && body.interval_seconds.is_none());
        assert_eq!(body.flow, Value::Null);
    }

    #[test]
    fn unknown_or_mistyped_members_are_refused_naming_them() {
        let (status, answer) =
            parse::<RunFlow>(&request(r#"{"flow": {}, "conection": "emu"}"#)).unwrap_err();
        assert_eq!(status, 400);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("conection"), "{message}");
        let (status, _) = parse::<ChoicesRequest>(&request(r#"{"dataSource": 5}"#)).unwrap_err();
        assert_eq!(status, 400);
        let (status, _) = parse::<SaveConnection>(&request("not json")).unwrap_err();
        assert_eq!(status, 400);
    }
}
