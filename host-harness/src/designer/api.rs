//! The JSON API under `/api/`: the route table, and how errors are answered.

use super::*;

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

pub(super) fn decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

pub(super) fn parse_output(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

impl Shared {
    pub(super) fn api(self: &Arc<Self>, request: &IncomingRequest) -> Answer {
        let body: Value = if request.body.is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice(&request.body) {
                Ok(body) => body,
                Err(problem) => {
                    return fail(
                        400,
                        "invalid-input",
                        format!("the request body is not JSON: {problem}"),
                        None,
                    );
                }
            }
        };
        let path = request.path.trim_start_matches("/api/");
        let segments: Vec<&str> = path.split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["definition"]) => (200, definition_json(self.host.definition())),
            ("GET", ["presets"]) => (200, json!(self.presets)),
            ("GET", ["connections"]) => (200, self.list_connections()),
            ("POST", ["connections"]) => {
                let name = body["name"].as_str().unwrap_or_default().trim().to_string();
                let kind = body["type"].as_str().unwrap_or_default().to_string();
                let fields = match text_fields(&body["fields"]) {
                    Ok(fields) => fields,
                    Err(answer) => return answer,
                };
                match self.save_connection(&name, &kind, fields) {
                    Ok(()) => (200, self.list_connections()),
                    Err(answer) => answer,
                }
            }
            ("DELETE", ["connections", name]) => self.delete_connection(&decode(name)),
            ("POST", ["connections", name, "test"]) => self.test_connection(&decode(name)),
            ("POST", ["connections", name, "sign-in"]) => self.begin_sign_in(&decode(name)),
            ("POST", ["run"]) => {
                let (Some(connection), Some(action)) =
                    (body["connection"].as_str(), body["action"].as_str())
                else {
                    return fail(
                        400,
                        "invalid-input",
                        "connection and action are required",
                        None,
                    );
                };
                let input = body.get("input").cloned().unwrap_or_else(|| json!({}));
                match self.run_action(connection, action, &input) {
                    Ok(output) => (200, json!({ "output": output })),
                    Err(error) => (status_of(&error), json!({ "error": error })),
                }
            }
            ("POST", ["choices"]) => self.choices(&body),
            ("POST", ["flows", "run"]) => self.run_flow(&body),
            ("GET", ["trigger"]) => (200, self.trigger_status()),
            ("POST", ["trigger", "start"]) => {
                // One start or stop at a time: a second start never overwrites a registration
                // or poller the first one made.
                let _arming = self.arming.lock().unwrap_or_else(|p| p.into_inner());
                self.start_trigger(&body)
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
