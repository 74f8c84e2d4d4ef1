//! Auth-code sign-in from the page: the designer is its own loopback redirect; pending sign-ins

//! wait for it by OAuth `state` with their PKCE verifier.

use std::time::{Duration, Instant};

use serde_json::json;

use dynamics_host::tokens::TokenManager;
use dynamics_host::{CallError, IncomingRequest};

use super::api::{Answer, connector_error, host_error, status_of};
use super::{CALLBACK_PATH, Shared};

/// How long a started sign-in waits for its redirect.
pub(super) const SIGN_IN_TIME: Duration = Duration::from_secs(600);

impl Shared {
    pub(super) fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.origin)
    }

    pub(super) fn begin_sign_in(&self, name: &str) -> Answer {
        let (_, connection) = match self.connection(name) {
            Ok(found) => found,
            Err(error) => return (400, json!({ "error": error })),
        };
        match self
            .host
            .begin_authorization(&connection, &self.redirect_uri())
        {
            Ok(request) => {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                // Sign-ins never finished are forgotten after a while.
                pending.retain(|_, (_, _, started)| started.elapsed() < SIGN_IN_TIME);
                pending.insert(
                    request.state,
                    (name.to_string(), request.code_verifier, Instant::now()),
                );
                (200, json!({ "url": request.url }))
            }
            Err(CallError::Connector(error)) => {
                let error = connector_error(&error);
                (status_of(&error), json!({ "error": error }))
            }
            Err(CallError::Host(error)) => (500, json!({ "error": host_error(&error) })),
        }
    }

    /// The identity provider's redirect: exchange the code, keep the tokens, and send the page
    /// back to the connections with the outcome in the fragment.
    pub(super) fn callback(&self, request: &IncomingRequest) -> String {
        let query = |name: &str| {
            request
                .query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let back = |outcome: &str, message: &str| {
            format!(
                "/#connections/{outcome}/{}",
                crate::http::encode_component(message)
            )
        };
        let pending = query("state").and_then(|state| {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(state)
                .filter(|(_, _, started)| started.elapsed() < SIGN_IN_TIME)
        });
        let Some((name, verifier, _)) = pending else {
            return back(
                "sign-in-failed",
                "the sign-in answer did not match a sign-in started here",
            );
        };
        if let Some(error) = query("error") {
            let description = query("error_description").unwrap_or_default();
            return back("sign-in-failed", &format!("{name}: {error}: {description}"));
        }
        let Some(code) = query("code") else {
            return back(
                "sign-in-failed",
                &format!("{name}: the answer carried no code"),
            );
        };
        let (key, connection) = match self.connection(&name) {
            Ok(found) => found,
            Err(error) => return back("sign-in-failed", error["message"].as_str().unwrap_or("")),
        };
        match self
            .host
            .exchange_code(&connection, &self.redirect_uri(), code, &verifier)
        {
            Ok(token) => {
                let manager = TokenManager::new(&self.host, &self.store);
                match manager.remember(&key, &connection, &token) {
                    Ok(()) => back("signed-in", &name),
                    Err(problem) => back("sign-in-failed", &format!("{name}: {problem:#}")),
                }
            }
            Err(CallError::Connector(error)) => back(
                "sign-in-failed",
                &format!("{name}: {}", dynamics_host::describe_error(&error)),
            ),
            Err(CallError::Host(error)) => back("sign-in-failed", &format!("{name}: {error}")),
        }
    }
}
