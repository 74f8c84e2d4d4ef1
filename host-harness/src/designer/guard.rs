//! The guard in front of the designer's API: only this server's own names in `Host`, the
//! designer's random key (cookie or `x-designer-key`), this server's own `Origin` when one is
//! sent, and JSON bodies for anything that changes state, so neither another local user, nor a

//! request through a tunnel, nor another web page open in the same browser can drive it.

use dynamics_host::IncomingRequest;

use super::Shared;
use super::api::{Answer, fail};

/// The cookie that carries the designer's key.
pub(super) const KEY_COOKIE: &str = "dynamics_designer_key";

impl Shared {
    pub(super) fn header<'a>(request: &'a IncomingRequest, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Only our own names: a page elsewhere that rebinds its DNS name to 127.0.0.1 is refused.
    pub(super) fn host_header_ok(&self, request: &IncomingRequest) -> bool {
        let port = self.port;
        Self::header(request, "host").is_some_and(|host| {
            host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
        })
    }

    /// Changes need a JSON body (a cross-site form cannot send one without asking first) and, when
    /// the browser says where the request comes from, our own origin.
    pub(super) fn api_request_ok(&self, request: &IncomingRequest) -> Result<(), Answer> {
        let cookie_key = Self::header(request, "cookie").and_then(|cookies| {
            cookies.split(';').find_map(|cookie| {
                cookie
                    .trim()
                    .strip_prefix(KEY_COOKIE)
                    .and_then(|rest| rest.strip_prefix('='))
            })
        });
        let key = cookie_key.or_else(|| Self::header(request, "x-designer-key"));
        if !key.is_some_and(|key| crate::http::same_secret(key, &self.key)) {
            return Err(fail(
                401,
                "unauthenticated",
                "this page does not carry the designer's key; open the link `dynamics designer` printed",
                None,
            ));
        }
        if let Some(origin) = Self::header(request, "origin")
            && origin != self.origin
            && origin != format!("http://localhost:{}", self.port)
        {
            return Err(fail(
                403,
                "forbidden",
                "requests from other origins are refused",
                None,
            ));
        }
        if request.method != "GET" {
            let json = Self::header(request, "content-type")
                .is_some_and(|kind| kind.starts_with("application/json"));
            if !json {
                return Err(fail(
                    415,
                    "invalid-input",
                    "send the request body as application/json",
                    None,
                ));
            }
        }
        Ok(())
    }
}
