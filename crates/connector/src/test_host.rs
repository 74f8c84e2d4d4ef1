//! A stand-in for the host in native unit tests: a client-credentials connection to an example
//! environment with a token, and a transport that answers from a script and keeps what was sent.

use std::cell::RefCell;
use std::collections::VecDeque;

use crate::bindings::dynamics::connector::http::{HttpError, Request, Response};
use crate::bindings::dynamics::connector::types::{Connection, Token};
use crate::client::{Client, Transport};
use crate::connection::Settings;
use crate::context::Context;
use crate::metadata::MetadataCache;

/// The environment every test talks to.
pub const ORIGIN: &str = "https://contoso.crm.dynamics.com";

/// The connection's access token.
pub const ACCESS_TOKEN: &str = "test-access-token";

/// A signed-in connection to [`ORIGIN`].
pub fn connection() -> Connection {
    let fields = [
        ("webApiUrl", ORIGIN),
        ("tenantId", "contoso.onmicrosoft.com"),
        ("clientId", "00000000-0000-0000-0000-0000000000c1"),
        ("clientSecret", "test-client-secret"),
    ];
    Connection {
        definition: "oauth2-client-credentials".to_string(),
        fields: fields
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        token: Some(Token {
            access_token: ACCESS_TOKEN.to_string(),
            token_type: "Bearer".to_string(),
            refresh_token: None,
            expires_in_secs: Some(3600),
            scope: None,
        }),
    }
}

/// The settings and token a [`Context`] borrows.
pub struct Signed {
    pub settings: Settings,
    pub token: Token,
}

impl Signed {
    pub fn new() -> Signed {
        let connection = connection();
        Signed {
            settings: Settings::from_connection(&connection).expect("the test connection is valid"),
            token: connection.token.expect("the test connection has a token"),
        }
    }

    /// A context whose requests go to `transport`.
    pub fn context<'a>(&'a self, transport: &'a dyn Transport) -> Context<'a> {
        Context {
            client: Client::with_transport(&self.settings, Some(&self.token), transport),
            metadata: MetadataCache::default(),
        }
    }
}

/// A transport that answers requests in order from a script and records them. A request past
/// the script fails the test, so a script with no answers proves that nothing was sent.
#[derive(Default)]
pub struct Script {
    answers: RefCell<VecDeque<Result<Response, HttpError>>>,
    sent: RefCell<Vec<Request>>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Answers the next request with `status`, the content type and the body.
    pub fn answer(self, status: u16, content_type: &str, body: &str) -> Script {
        self.answer_with(status, &[("Content-Type", content_type)], body)
    }

    /// Answers the next request with `status`, these headers and the body.
    pub fn answer_with(self, status: u16, headers: &[(&str, &str)], body: &str) -> Script {
        self.answer_bytes(status, headers, body.as_bytes())
    }

    /// Answers the next request with `status`, these headers and a body of any bytes.
    pub fn answer_bytes(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Script {
        self.answers.borrow_mut().push_back(Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: body.to_vec(),
        }));
        self
    }

    /// Answers the next request with a JSON body.
    pub fn json(self, status: u16, body: &str) -> Script {
        self.answer(status, "application/json; odata.metadata=minimal", body)
    }

    /// Fails the next request as the host would.
    pub fn fail(self, failure: HttpError) -> Script {
        self.answers.borrow_mut().push_back(Err(failure));
        self
    }

    /// The requests sent so far.
    pub fn sent(&self) -> Vec<Request> {
        self.sent.borrow().clone()
    }
}

impl Transport for Script {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        self.sent.borrow_mut().push(request.clone());
        self.answers
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("no scripted answer for {} {}", request.method, request.url))
    }

    fn wait(&self, _ms: u32) -> bool {
        true
    }
}

/// The value of `name` among `headers`, any case.
pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}
