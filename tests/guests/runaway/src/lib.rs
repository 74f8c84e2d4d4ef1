//! A component that misbehaves on purpose, so the harness's limits can be seen to hold:
//! `spin` loops forever, `hoard` allocates until memory runs out, `escape` sends a request to
//! a host no connection names (`escape-ahead` through `start`), `flood` starts requests and drops
//! them, `hold` starts more than the host holds. Everything else mirrors a well-behaved connector minimally.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "connector",
    });
}

use bindings::dynamics::connector::http;
use bindings::dynamics::connector::types::{
    Choice, ComponentDefinition, Connection, ConnectorError, ErrorCode, Token,
};
use bindings::exports::dynamics::connector::{actions, component, connections, triggers};

struct Runaway;

/// A GET of `url` with a timeout.
fn get(url: String, timeout_ms: u32) -> http::Request {
    http::Request {
        method: "GET".to_string(),
        url,
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: Some(timeout_ms),
    }
}

/// What the host answered, as the limit tests read it.
fn outcome(result: Result<http::Response, http::HttpError>) -> String {
    match result {
        Ok(response) => format!("{{\"status\":{}}}", response.status),
        Err(http::HttpError::Denied(reason)) => format!("{{\"denied\":{reason:?}}}"),
        Err(other) => format!("{{\"other\":{:?}}}", format!("{other:?}")),
    }
}

fn refuse() -> ConnectorError {
    ConnectorError {
        code: ErrorCode::Unsupported,
        message: "the runaway component only misbehaves".to_string(),
        http_status: None,
        service_code: None,
        retry_after_ms: None,
        hint: None,
        field: None,
    }
}

impl component::Guest for Runaway {
    fn definition() -> ComponentDefinition {
        ComponentDefinition {
            key: "runaway".to_string(),
            name: "Runaway".to_string(),
            version: "0.0.0".to_string(),
            description: "Misbehaves on purpose.".to_string(),
            category: "Test".to_string(),
            icon: String::new(),
            connections: Vec::new(),
            actions: Vec::new(),
            triggers: Vec::new(),
            data_sources: Vec::new(),
        }
    }
}

impl connections::Guest for Runaway {
    /// Asks for whatever the connection's fields name, as a component that wants out would: the
    /// host's policy, not this answer, decides what is reached.
    fn endpoints(connection: Connection) -> Result<Vec<String>, ConnectorError> {
        let mut endpoints = vec!["http://127.0.0.1:9".to_string()];
        endpoints.extend(
            connection
                .fields
                .into_iter()
                .map(|(_, value)| value)
                .filter(|value| value.contains("://")),
        );
        Ok(endpoints)
    }
    fn begin_authorization(
        _: Connection,
        _: String,
    ) -> Result<connections::AuthorizationRequest, ConnectorError> {
        Err(refuse())
    }
    fn exchange_code(
        _: Connection,
        _: String,
        _: String,
        _: String,
    ) -> Result<Token, ConnectorError> {
        Err(refuse())
    }
    fn refresh(_: Connection, _: String) -> Result<Token, ConnectorError> {
        Err(refuse())
    }
    fn acquire_token(_: Connection) -> Result<Token, ConnectorError> {
        Err(refuse())
    }
    fn test(_: Connection) -> Result<String, ConnectorError> {
        Err(refuse())
    }
}

impl actions::Guest for Runaway {
    fn invoke(
        key: String,
        _connection: Connection,
        input: String,
    ) -> Result<String, ConnectorError> {
        match key.as_str() {
            "spin" => {
                let mut counter: u64 = 0;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            "hoard" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "escape" => Ok(outcome(http::send(&get(input, 1000)))),
            // `escape` through `start` and `finish`: a started request must meet the same
            // policy as a sent one.
            "escape-ahead" => Ok(outcome(http::finish(http::start(&get(input, 1000))))),
            // Starts 40 requests to the URL and drops each at once, as a component trying to
            // pile threads up in the host would.
            "flood" => {
                let request = get(input, 5000);
                for _ in 0..40 {
                    drop(http::start(&request));
                }
                Ok("{}".to_string())
            }
            // Starts 20 requests and holds them all before finishing any: the host holds at
            // most 16 answers for a call.
            "hold" => {
                let request = get(input, 5000);
                let held: Vec<http::Pending> = (0..20).map(|_| http::start(&request)).collect();
                let (mut answered, mut refused, mut reason) = (0, 0, String::new());
                for pending in held {
                    match http::finish(pending) {
                        Ok(_) => answered += 1,
                        Err(http::HttpError::InvalidRequest(why)) => {
                            refused += 1;
                            reason = why;
                        }
                        Err(_) => {}
                    }
                }
                Ok(format!(
                    "{{\"answered\":{answered},\"refused\":{refused},\"reason\":{reason:?}}}"
                ))
            }
            _ => Err(refuse()),
        }
    }
    fn choices(_: String, _: Connection, _: String) -> Result<Vec<Choice>, ConnectorError> {
        Err(refuse())
    }
    fn input_definitions(
        _: String,
        _: Connection,
        _: String,
    ) -> Result<Vec<bindings::dynamics::connector::types::InputDefinition>, ConnectorError> {
        Err(refuse())
    }
}

impl triggers::Guest for Runaway {
    fn handle_webhook(
        _: String,
        _: Option<Connection>,
        _: String,
        _: triggers::IncomingRequest,
    ) -> Result<triggers::WebhookOutcome, ConnectorError> {
        Err(refuse())
    }
    fn enable(
        _: String,
        _: Connection,
        _: String,
        _: Option<String>,
    ) -> Result<String, ConnectorError> {
        Err(refuse())
    }
    fn disable(_: String, _: Connection, _: String, _: String) -> Result<(), ConnectorError> {
        Err(refuse())
    }
    fn poll(
        _: String,
        _: Connection,
        _: String,
        _: Option<String>,
    ) -> Result<triggers::PollOutcome, ConnectorError> {
        Err(refuse())
    }
}

bindings::export!(Runaway with_types_in bindings);
