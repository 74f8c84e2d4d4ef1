//! Signing in with the authorization-code flow from a command line (RFC 8252, native apps):
//! a one-shot listener on a loopback redirect URI, `http://127.0.0.1:<port>/callback`.
//!
//! The component builds the authorization URL (state and PKCE S256); the verifier and state
//! stay here. The user opens the URL, signs in, and the browser is redirected to the listener
//! with `code` and `state`. A redirect whose `state` differs is refused; the code is exchanged
//! through the component and the tokens go to the token store.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use dynamics_host::tokens::TokenManager;
use dynamics_host::{Connection, ConnectorError, HostError, describe_error};

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
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port)).map_err(|problem| {
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
        .begin_authorization(connection, &redirect_uri)?
        .map_err(LoginError::Connector)?;
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
        let deadline = Instant::now() + timeout;
        self.listener.set_nonblocking(true).map_err(|problem| {
            LoginError::Failed(format!("configuring the listener: {problem}"))
        })?;
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(problem) if problem.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(LoginError::Failed(format!(
                            "no sign-in arrived at {} within {} s; run login again",
                            self.redirect_uri,
                            timeout.as_secs()
                        )));
                    }
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(problem) => {
                    return Err(LoginError::Failed(format!(
                        "waiting for the redirect: {problem}"
                    )));
                }
            };
            if let Some(outcome) = self.answer(stream, manager, key, connection)? {
                return Ok(outcome);
            }
        }
    }

    /// Handles one request to the listener: `None` when it was not the redirect (a favicon).
    fn answer(
        &self,
        mut stream: TcpStream,
        manager: &TokenManager<'_>,
        key: &str,
        connection: &Connection,
    ) -> Result<Option<LoginOutcome>, LoginError> {
        let Some(target) = read_request_target(&mut stream) else {
            respond(
                &mut stream,
                400,
                "Bad request",
                "The request could not be read.",
            );
            return Ok(None);
        };
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        if path != CALLBACK_PATH {
            respond(
                &mut stream,
                404,
                "Not found",
                "This address only takes the sign-in redirect.",
            );
            return Ok(None);
        }
        let params = parse_query(query);
        let param = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        if param("state") != Some(self.state.as_str()) {
            respond(
                &mut stream,
                400,
                "Sign-in refused",
                "The redirect did not carry the state this sign-in started with, so it was refused. Start the sign-in again.",
            );
            return Err(LoginError::Failed(
                "the redirect carried a different state than the sign-in started with (a stale or forged redirect); nothing was stored, run login again".to_string(),
            ));
        }
        if let Some(error) = param("error") {
            let description = param("error_description").unwrap_or_default();
            let first_line = description.lines().next().unwrap_or_default();
            respond(
                &mut stream,
                400,
                "Sign-in failed",
                &format!("{error}: {first_line}"),
            );
            return Err(LoginError::Failed(format!(
                "the identity provider refused the sign-in: {error}: {first_line}"
            )));
        }
        let Some(code) = param("code").filter(|code| !code.is_empty()) else {
            respond(
                &mut stream,
                400,
                "Sign-in failed",
                "The redirect carried no code.",
            );
            return Err(LoginError::Failed(
                "the redirect carried neither a code nor an error".to_string(),
            ));
        };
        let exchanged = manager.host().exchange_code(
            connection,
            &self.redirect_uri,
            code,
            &self.code_verifier,
        )?;
        let token = match exchanged {
            Ok(token) => token,
            Err(failure) => {
                respond(&mut stream, 400, "Sign-in failed", &failure.message);
                return Err(LoginError::Connector(failure));
            }
        };
        if let Err(problem) = manager.remember(key, connection, &token) {
            respond(
                &mut stream,
                500,
                "Sign-in not saved",
                "Signed in, but the token could not be stored; see the terminal.",
            );
            return Err(LoginError::Failed(format!("{problem:#}")));
        }
        respond(
            &mut stream,
            200,
            "Signed in",
            "You are signed in. You can close this window and return to the terminal.",
        );
        let stored = manager
            .stored(key, connection)
            .map_err(|problem| LoginError::Failed(format!("{problem:#}")))?;
        Ok(Some(LoginOutcome {
            redirect_uri: self.redirect_uri.clone(),
            expires_at: stored.as_ref().and_then(|stored| stored.expires_at),
            refreshable: token.refresh_token.is_some(),
        }))
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

/// The request target of a GET, read from the request head (at most 16 KiB).
fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 2048];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
        if head.len() > 16 * 1024 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next()?.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => Some(target.to_string()),
        _ => None,
    }
}

fn respond(stream: &mut TcpStream, status: u16, title: &str, text: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>",
        escape_html(text)
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_and_plus_decoded() {
        assert_eq!(
            parse_query("code=a%2Bb%2F&state=x+y&error_description=AADSTS65001%3A+no"),
            vec![
                ("code".to_string(), "a+b/".to_string()),
                ("state".to_string(), "x y".to_string()),
                (
                    "error_description".to_string(),
                    "AADSTS65001: no".to_string()
                ),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn html_in_messages_is_escaped() {
        assert_eq!(escape_html("<b>&\"</b>"), "&lt;b&gt;&amp;&quot;&lt;/b&gt;");
    }
}
