//! The Web API's wire types, shared by the dispatcher and every handler: the request as the
//! handlers see it ([`Req`]), the answer ([`Resp`]), the settings that come from the
//! configuration ([`Limits`]), who the request runs as ([`Caller`]) and the `Prefer` header
//! ([`Prefer`]). A leaf: it imports no handler and no router.

use crate::guid::Guid;

/// Settings of the Web API that come from [`crate::Config`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_page_size: usize,
    pub count_limit: usize,
    pub alt_key_entity_id_as_guid: bool,
}

/// A request, reduced to what the Web API needs.
pub struct Req<'a> {
    pub method: &'a str,
    /// The path below the version segment, raw (still percent-encoded).
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// `http://host:port/api/data/v9.2`, from the request's own scheme and Host.
    pub api: String,
    /// The user the request runs as (under `MSCRMCallerID` / `CallerObjectId`, the
    /// impersonated user: see `impersonation.rs`) and their business unit.
    pub caller: Caller,
    /// The user the bearer token names, when the request runs as another user; it fills
    /// `createdonbehalfby` / `modifiedonbehalfby`.
    pub impersonator: Option<Guid>,
    /// The users who may impersonate others (requests inside a `$batch` may name a user).
    pub delegates: &'a [Guid],
    pub organization_id: Guid,
    pub limits: Limits,
}

impl Req<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The user the bearer token names.
    pub fn calling_user(&self) -> Guid {
        self.impersonator.unwrap_or(self.caller.user)
    }

    pub fn prefer(&self) -> Prefer {
        Prefer::parse(
            self.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("prefer"))
                .map(|(_, v)| v.as_str()),
        )
    }
}

#[cfg(test)]
impl<'a> Req<'a> {
    /// A request to `http://127.0.0.1/api/data/v9.2/{path}`, for handler tests without HTTP.
    pub fn test(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Req<'a> {
        Req {
            method,
            path,
            query,
            headers,
            body,
            api: "http://127.0.0.1/api/data/v9.2".into(),
            caller: Caller {
                user: Guid::from_seed(1, 1),
                business_unit: Guid::from_seed(2, 2),
            },
            impersonator: None,
            delegates: &[],
            organization_id: Guid::from_seed(3, 3),
            limits: Limits {
                max_page_size: 5000,
                count_limit: 5000,
                alt_key_entity_id_as_guid: false,
            },
        }
    }
}

/// A response.
#[derive(Debug, Default)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub content_type: Option<&'static str>,
}

pub const JSON: &str = "application/json; odata.metadata=minimal";

impl Resp {
    pub fn json(status: u16, body: Vec<u8>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body,
            content_type: Some(JSON),
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            ..Default::default()
        }
    }

    pub fn text(body: String) -> Resp {
        Resp {
            status: 200,
            headers: Vec::new(),
            body: body.into_bytes(),
            content_type: Some("text/plain"),
        }
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// The user a request runs as and their business unit; `$filter` substitutes them for the
/// `EqualUserId`/`EqualBusinessId` query functions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    pub user: Guid,
    pub business_unit: Guid,
}

/// What the `Prefer` header(s) asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefer {
    pub return_representation: bool,
    pub max_page_size: Option<usize>,
    /// The raw `odata.include-annotations` list (unquoted).
    pub include_annotations: Option<String>,
    pub track_changes: bool,
    pub continue_on_error: bool,
}

impl Prefer {
    /// Parses every `Prefer` header value (comma-separated preferences, RFC 7240).
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Prefer {
        let mut p = Prefer::default();
        for v in values {
            for item in split_quoted_commas(v) {
                let item = item.trim();
                let (k, val) = match item.split_once('=') {
                    Some((k, v)) => (k.trim(), v.trim().trim_matches('"')),
                    None => (item, ""),
                };
                match k.to_ascii_lowercase().as_str() {
                    "return" if val == "representation" => p.return_representation = true,
                    "odata.maxpagesize" => p.max_page_size = val.parse().ok(),
                    "odata.include-annotations" => p.include_annotations = Some(val.to_string()),
                    "odata.track-changes" => p.track_changes = true,
                    "odata.continue-on-error" => p.continue_on_error = true,
                    _ => {}
                }
            }
        }
        p
    }

    /// Whether an annotation term was requested (`*`, exact, or `Prefix.*`).
    pub fn wants(&self, term: &str) -> bool {
        let Some(list) = &self.include_annotations else {
            return false;
        };
        list.split(',').map(str::trim).any(|pat| {
            pat == "*"
                || pat == term
                || pat
                    .strip_suffix('*')
                    .is_some_and(|prefix| term.starts_with(prefix))
        })
    }
}

fn split_quoted_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(headers: &[(String, String)]) -> Req<'_> {
        Req::test("GET", "accounts", "", headers, b"")
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn headers_are_found_whatever_their_case() {
        let headers = pairs(&[("If-None-Match", "W/\"7\""), ("accept", "application/json")]);
        let req = get(&headers);
        assert_eq!(req.header("if-none-match"), Some("W/\"7\""));
        assert_eq!(req.header("ACCEPT"), Some("application/json"));
        assert_eq!(req.header("if-match"), None);
    }

    #[test]
    fn every_prefer_header_of_a_request_counts() {
        let headers = pairs(&[
            ("Prefer", "odata.maxpagesize=3"),
            ("prefer", "return=representation"),
        ]);
        let prefer = get(&headers).prefer();
        assert_eq!(prefer.max_page_size, Some(3));
        assert!(prefer.return_representation);
        assert_eq!(get(&[]).prefer(), Prefer::default());
    }

    #[test]
    fn the_calling_user_is_the_impersonator_when_there_is_one() {
        let mut req = get(&[]);
        assert_eq!(req.calling_user(), req.caller.user);
        let impersonator = Guid::from_seed(9, 9);
        req.impersonator = Some(impersonator);
        assert_eq!(req.calling_user(), impersonator);
    }

    #[test]
    fn responses_carry_their_content_type_and_headers() {
        let json = Resp::json(201, b"{}".to_vec()).header("ETag", "W/\"1\"");
        assert_eq!((json.status, json.content_type), (201, Some(JSON)));
        assert_eq!(json.headers, pairs(&[("ETag", "W/\"1\"")]));
        let text = Resp::text("12".into());
        assert_eq!((text.status, text.content_type), (200, Some("text/plain")));
        assert_eq!(text.body, b"12");
        let empty = Resp::empty(204);
        assert_eq!((empty.status, empty.content_type), (204, None));
        assert!(empty.body.is_empty());
    }

    #[test]
    fn prefer_header_lists_are_split_outside_quotes() {
        let p = Prefer::parse(
            ["odata.include-annotations=\"OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.*\",odata.maxpagesize=10", "return=representation"].into_iter(),
        );
        assert_eq!(p.max_page_size, Some(10));
        assert!(p.return_representation);
        assert!(p.wants("OData.Community.Display.V1.FormattedValue"));
        assert!(p.wants("Microsoft.Dynamics.CRM.lookuplogicalname"));
        assert!(!p.wants("Microsoft.PowerApps.CDS.HelpLink"));
    }
}
