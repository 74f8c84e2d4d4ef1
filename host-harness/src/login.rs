//! Signing in with the authorization-code flow from a command line (RFC 8252, native apps):
//! a one-shot listener on a loopback redirect URI, `http://127.0.0.1:<port>/callback`.
//!
//! The component builds the authorization URL (state and PKCE S256); the verifier and state
//! stay here. The user opens the URL, signs in, and the browser is redirected to the listener
//! with `code` and `state`. A redirect whose `state` differs is refused; the code is exchanged
//! through the component and the tokens go to the token store.

use std::net::TcpListener;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Response, StatusCode, header};
use tokio::sync::oneshot;

use crate::http::{Limits, LoopbackServer};

use dynamics_host::tokens::TokenManager;
use dynamics_host::{CallError, Connection, ConnectorError, HostError, describe_error};

/// The redirect path the listener answers.
pub const CALLBACK_PATH: &str = "/callback";

/// How the listener waits.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Port on 127.0.0.1; 0 picks a free one (Entra accepts any port on a loopback redirect
    /// URI registered as `http://127.0.0.1/callback` or `http://localhost`).
    pub port: u16,
    /// How long to wait for the browser's redirect.
    pub timeout: Duration,
}

impl Default for LoginOptions {
    fn default() -> LoginOptions {
        LoginOptions {
            port: 0,
            timeout: Duration::from_secs(300),
        }
    }
}

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub redirect_uri: String,
    /// When the access token expires, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// A refresh token was granted (`offline_access`), so the sign-in lasts.
    pub refreshable: bool,
}

/// Why a sign-in did not complete.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The component refused (bad connection fields, or the code exchange failed).
    #[error("{}", describe_error(.0))]
    Connector(ConnectorError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// The redirect never came, carried an error, or carried the wrong state.
    #[error("{0}")]
    Failed(String),
}

impl From<CallError> for LoginError {
    fn from(error: CallError) -> LoginError {
        match error {
            CallError::Connector(failure) => LoginError::Connector(failure),
            CallError::Host(problem) => LoginError::Host(problem),
        }
    }
}

/// The redirect the listener is waiting for, once bound.
pub struct PendingLogin {
    listener: TcpListener,
    /// `http://127.0.0.1:<port>/callback`
    pub redirect_uri: String,
    /// The URL the user opens.
    pub authorization_url: String,
    state: String,
    code_verifier: String,
}

/// Binds the loopback listener and asks the component for the authorization URL.
pub fn begin(
    manager: &TokenManager<'_>,
    connection: &Connection,
    options: &LoginOptions,
) -> Result<PendingLogin, LoginError> {
    let listener = crate::http::bind(options.port).map_err(|problem| {
        LoginError::Failed(format!(
            "could not listen on 127.0.0.1:{}: {problem}",
            options.port
        ))
    })?;
    let port = listener
        .local_addr()
        .map_err(|problem| LoginError::Failed(format!("reading the listener's port: {problem}")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
    let request = manager
        .host()
        .begin_authorization(connection, &redirect_uri)?;
    Ok(PendingLogin {
        listener,
        redirect_uri,
        authorization_url: request.url,
        state: request.state,
        code_verifier: request.code_verifier,
    })
}

impl PendingLogin {
    /// Waits for the browser's redirect, exchanges the code and stores the tokens under `key`.
    pub fn finish(
        self,
        manager: &TokenManager<'_>,
        key: &str,
        connection: &Connection,
        timeout: Duration,
    ) -> Result<LoginOutcome, LoginError> {
        let (sender, redirects) = channel();
        let router = Router::new().fallback(redirected).with_state(sender);
        let server = LoopbackServer::start(self.listener, Limits::default(), router)
            .map_err(|problem| LoginError::Failed(format!("serving the redirect: {problem}")))?;
        let PendingLogin {
            redirect_uri,
            state,
            code_verifier,
            ..
        } = self;
        let waiting = Waiting {
            redirect_uri,
            state,
            code_verifier,
        };
        let Ok(redirect) = redirects.recv_timeout(timeout) else {
            return Err(LoginError::Failed(format!(
                "no sign-in arrived at {} within {} s; run login again",
                waiting.redirect_uri,
                timeout.as_secs()
            )));
        };
        let (page, outcome) = waiting.answer(&redirect.query, manager, key, connection);
        let _ = redirect.reply.send(page);
        // Another hit on the callback (a reload) is answered "over" at once, so stopping the
        // server does not wait out its grace for it.
        drop(redirects);
        drop(server);
        outcome
    }
}

/// The redirect's query, and where its page goes.
struct Redirect {
    query: Vec<(String, String)>,
    reply: oneshot::Sender<Page>,
}

/// An HTML page for the browser: status, title, text.
struct Page(u16, &'static str, String);

/// A started sign-in once its listener serves.
struct Waiting {
    redirect_uri: String,
    state: String,
    code_verifier: String,
}

/// Hands the redirect to the waiting sign-in and shows the page it answers with; anything else
/// (a favicon) is answered here.
async fn redirected(State(redirects): State<Sender<Redirect>>, request: Request) -> Response<Body> {
    if request.method() != Method::GET {
        return page(Page(
            400,
            "Bad request",
            "The request could not be read.".to_string(),
        ));
    }
    if request.uri().path() != CALLBACK_PATH {
        return page(Page(
            404,
            "Not found",
            "This address only takes the sign-in redirect.".to_string(),
        ));
    }
    let (reply, replied) = oneshot::channel();
    let query = crate::http::query_pairs(request.uri().query());
    if redirects.send(Redirect { query, reply }).is_err() {
        return page(Page(
            410,
            "Sign-in over",
            "This sign-in is over; start it again.".to_string(),
        ));
    }
    page(replied.await.unwrap_or(Page(
        500,
        "Sign-in failed",
        "The sign-in stopped; see the terminal.".to_string(),
    )))
}

impl Waiting {
    /// Checks the redirect, exchanges the code and stores the tokens: the page the browser
    /// shows, and the outcome.
    fn answer(
        &self,
        params: &[(String, String)],
        manager: &TokenManager<'_>,
        key: &str,
        connection: &Connection,
    ) -> (Page, Result<LoginOutcome, LoginError>) {
        let fail = |status, title, text: String, error| (Page(status, title, text), Err(error));
        let param = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        if param("state") != Some(self.state.as_str()) {
            return fail(
                400,
                "Sign-in refused",
                "The redirect did not carry the state this sign-in started with, so it was refused. Start the sign-in again.".to_string(),
                LoginError::Failed(
                    "the redirect carried a different state than the sign-in started with (a stale or forged redirect); nothing was stored, run login again".to_string(),
                ),
            );
        }
        if let Some(error) = param("error") {
            let description = param("error_description").unwrap_or_default();
            let first_line = description.lines().next().unwrap_or_default();
            return fail(
                400,
                "Sign-in failed",
                format!("{error}: {first_line}"),
                LoginError::Failed(format!(
                    "the identity provider refused the sign-in: {error}: {first_line}"
                )),
            );
        }
        let Some(code) = param("code").filter(|code| !code.is_empty()) else {
            return fail(
                400,
                "Sign-in failed",
                "The redirect carried no code.".to_string(),
                LoginError::Failed("the redirect carried neither a code nor an error".to_string()),
            );
        };
        let token = match manager.host().exchange_code(
            connection,
            &self.redirect_uri,
            code,
            &self.code_verifier,
        ) {
            Ok(token) => token,
            Err(CallError::Host(problem)) => {
                return fail(
                    500,
                    "Sign-in failed",
                    "The code could not be exchanged; see the terminal.".to_string(),
                    LoginError::Host(problem),
                );
            }
            Err(CallError::Connector(failure)) => {
                let text = failure.message.clone();
                return fail(400, "Sign-in failed", text, LoginError::Connector(failure));
            }
        };
        if let Err(problem) = manager.remember(key, connection, &token) {
            return fail(
                500,
                "Sign-in not saved",
                "Signed in, but the token could not be stored; see the terminal.".to_string(),
                LoginError::Failed(format!("{problem:#}")),
            );
        }
        let signed_in = Page(
            200,
            "Signed in",
            "You are signed in. You can close this window and return to the terminal.".to_string(),
        );
        let stored = match manager.stored(key, connection) {
            Ok(stored) => stored,
            Err(problem) => return (signed_in, Err(LoginError::Failed(format!("{problem:#}")))),
        };
        let outcome = LoginOutcome {
            redirect_uri: self.redirect_uri.clone(),
            expires_at: stored.as_ref().and_then(|stored| stored.expires_at),
            refreshable: token.refresh_token.is_some(),
        };
        (signed_in, Ok(outcome))
    }
}

/// The whole flow: bind, show the URL (`show` prints it), wait, exchange, store.
pub fn login(
    manager: &TokenManager<'_>,
    key: &str,
    connection: &Connection,
    options: &LoginOptions,
    show: impl FnOnce(&PendingLogin),
) -> Result<LoginOutcome, LoginError> {
    let pending = begin(manager, connection, options)?;
    show(&pending);
    pending.finish(manager, key, connection, options.timeout)
}

fn page(Page(status, title, text): Page) -> Response<Body> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>",
        escape_html(&text)
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_in_messages_is_escaped() {
        assert_eq!(escape_html("<b>&\"</b>"), "&lt;b&gt;&amp;&quot;&lt;/b&gt;");
    }
}
