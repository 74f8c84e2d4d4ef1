//! What the emulator's HTTP tests share: a client with a token, and answers read whole.

use std::time::Duration;

use dataverse_emulator::Emulator;
use serde_json::Value;

/// One answer: status, headers and the body as text.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// An agent that returns error statuses as answers rather than errors.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Reads a response whole (bodies up to 512 MiB: the bulk tests read 100,000 rows).
pub fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("transport error");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// A client of one emulator's Web API with a token it issued.
pub struct Client {
    pub agent: ureq::Agent,
    pub api: String,
    pub token: String,
}

impl Client {
    pub fn new(emu: &Emulator, timeout: Duration) -> Client {
        Client {
            agent: agent(timeout),
            api: emu.web_api_url(),
            token: emu.issue_token_for_tests(),
        }
    }

    /// A path under the Web API root (spaces encoded), or an absolute URL as given.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/{}", self.api, path.replace(' ', "%20"))
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.call())
    }

    /// POST, PATCH or PUT `body` as `content_type`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = self.url(path);
        let req = match method {
            "POST" => self.agent.post(url),
            "PATCH" => self.agent.patch(url),
            "PUT" => self.agent.put(url),
            _ => panic!("unsupported method {method}"),
        };
        let mut req = req
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", content_type);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.send(body.as_bytes()))
    }

    pub fn delete_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .agent
            .delete(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.call())
    }
}
