//! `$batch` bodies: requests (with change sets) encoded as `multipart/mixed`, and the answers
//! decoded back into one response per request, in order.

/// One request inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    /// Upper-case method.
    pub method: String,
    /// Absolute URL, or a path such as `/api/data/v9.2/accounts`, or `$1` (a change set reference).
    pub url: String,
    /// Headers of this request.
    pub headers: Vec<(String, String)>,
    /// JSON body, when the request has one.
    pub body: Option<String>,
    /// `Content-ID`, inside change sets.
    pub content_id: Option<String>,
}

/// A top-level part of a batch: one request, or a change set applied all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchPart {
    /// An independent request.
    Single(BatchRequest),
    /// Requests applied all or nothing.
    ChangeSet(Vec<BatchRequest>),
}

/// One answer inside a batch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResponse {
    /// Status of the inner response.
    pub status: u16,
    /// Inner headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Inner body.
    pub body: String,
    /// `Content-ID` echoed from a change set request.
    pub content_id: Option<String>,
}

impl BatchResponse {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a batch answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The answer's content type names no boundary.
    #[error("the batch answer has no multipart boundary in its content type {0:?}")]
    NoBoundary(String),
    /// An inner part lacks its status line.
    #[error("a part of the batch answer has no HTTP status line")]
    NoStatus,
}

/// Encodes `parts`; returns the body and the `Content-Type` header value. `id` makes the
/// boundaries unique (for example a random hex string).
pub fn encode(parts: &[BatchPart], id: &str) -> (String, String) {
    let boundary = format!("batch_{id}");
    let mut body = String::new();
    for (index, part) in parts.iter().enumerate() {
        body.push_str(&format!("--{boundary}\r\n"));
        match part {
            BatchPart::Single(request) => write_request(&mut body, request),
            BatchPart::ChangeSet(requests) => {
                let changeset = format!("changeset_{id}_{index}");
                body.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
                ));
                for request in requests {
                    body.push_str(&format!("--{changeset}\r\n"));
                    write_request(&mut body, request);
                }
                body.push_str(&format!("--{changeset}--\r\n"));
            }
        }
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (body, format!("multipart/mixed; boundary={boundary}"))
}

fn write_request(body: &mut String, request: &BatchRequest) {
    body.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = &request.content_id {
        body.push_str(&format!("Content-ID: {id}\r\n"));
    }
    body.push_str(&format!(
        "\r\n{} {} HTTP/1.1\r\n",
        request.method, request.url
    ));
    for (name, value) in &request.headers {
        body.push_str(&format!("{name}: {value}\r\n"));
    }
    match &request.body {
        Some(content) => {
            if !request
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            {
                body.push_str("Content-Type: application/json; type=entry\r\n");
            }
            body.push_str("\r\n");
            body.push_str(content);
            body.push_str("\r\n");
        }
        None => body.push_str("\r\n"),
    }
}

/// Decodes a batch answer into its inner responses, change set members included, in order.
pub fn decode(content_type: &str, body: &str) -> Result<Vec<BatchResponse>, BatchError> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| BatchError::NoBoundary(content_type.to_string()))?;
    let mut responses = Vec::new();
    for part in split_parts(body, &boundary) {
        let (part_headers, content) = split_head(part);
        let part_type = header_in(&part_headers, "content-type").unwrap_or_default();
        if part_type
            .to_ascii_lowercase()
            .starts_with("multipart/mixed")
        {
            responses.extend(decode(&part_type, content)?);
            continue;
        }
        let content_id = header_in(&part_headers, "content-id");
        let (status_and_headers, inner_body) = split_head_raw(content);
        let mut lines = status_and_headers.lines();
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or(BatchError::NoStatus)?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        responses.push(BatchResponse {
            status,
            headers,
            body: inner_body.trim_end_matches(['\r', '\n']).to_string(),
            content_id,
        });
    }
    Ok(responses)
}

/// The `boundary` parameter of a multipart content type, unquoted.
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|parameter| {
        let (name, value) = parameter.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

fn split_parts<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut pieces = body.split(delimiter.as_str());
    pieces.next(); // the preamble
    for piece in pieces {
        if piece.starts_with("--") {
            break;
        }
        parts.push(piece.trim_start_matches(['\r', '\n']));
    }
    parts
}

/// Part headers (lower-case names) and the rest.
fn split_head(part: &str) -> (Vec<(String, String)>, &str) {
    let (head, rest) = split_head_raw(part);
    let headers = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (headers, rest)
}

fn split_head_raw(text: &str) -> (&str, &str) {
    // One pass for the first blank line, CRLF or LF.
    let bytes = text.as_bytes();
    for (index, _) in text.match_indices('\n') {
        let rest = &bytes[index + 1..];
        let skip = if rest.starts_with(b"\r\n") {
            3
        } else if rest.starts_with(b"\n") {
            2
        } else {
            continue;
        };
        let head_end = if index > 0 && bytes[index - 1] == b'\r' {
            index - 1
        } else {
            index
        };
        return (&text[..head_end], &text[index + skip..]);
    }
    (text, "")
}

fn header_in(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: &str,
        url: &str,
        body: Option<&str>,
        content_id: Option<&str>,
    ) -> BatchRequest {
        BatchRequest {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: body.map(str::to_string),
            content_id: content_id.map(str::to_string),
        }
    }

    #[test]
    fn change_sets_and_single_requests_are_framed_with_their_boundaries() {
        let parts = [
            BatchPart::ChangeSet(vec![request(
                "POST",
                "/api/data/v9.2/accounts",
                Some("{\"name\":\"A\"}"),
                Some("1"),
            )]),
            BatchPart::Single(request("DELETE", "/api/data/v9.2/accounts(1)", None, None)),
        ];
        let (body, content_type) = encode(&parts, "x1");
        assert_eq!(content_type, "multipart/mixed; boundary=batch_x1");
        let expected = "--batch_x1\r\nContent-Type: multipart/mixed; boundary=changeset_x1_0\r\n\r\n--changeset_x1_0\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPOST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{\"name\":\"A\"}\r\n--changeset_x1_0--\r\n--batch_x1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nDELETE /api/data/v9.2/accounts(1) HTTP/1.1\r\n\r\n--batch_x1--\r\n";
        assert_eq!(body, expected);
    }

    #[test]
    fn answers_with_change_sets_decode_in_order_with_content_ids() {
        let body = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nOData-EntityId: https://x/api/data/v9.2/tasks(e73ffc82-e292-ed11-aad1-000d3a9933c9)\r\n\r\n\r\n--changesetresponse_2--\r\n--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n{\"error\":{\"code\":\"0x80044331\",\"message\":\"too long\"}}\r\n--batchresponse_1--\r\n";
        let responses = decode("multipart/mixed; boundary=batchresponse_1", body).unwrap();
        assert_eq!(responses.len(), 2);
        assert_eq!(responses[0].status, 204);
        assert_eq!(responses[0].content_id.as_deref(), Some("1"));
        assert!(
            responses[0]
                .header("odata-entityid")
                .unwrap()
                .ends_with("(e73ffc82-e292-ed11-aad1-000d3a9933c9)")
        );
        assert_eq!(responses[1].status, 400);
        assert_eq!(
            responses[1].body,
            "{\"error\":{\"code\":\"0x80044331\",\"message\":\"too long\"}}"
        );
    }

    #[test]
    fn quoted_boundaries_and_missing_ones() {
        assert_eq!(
            boundary_of("multipart/mixed; boundary=\"batch_a\"").as_deref(),
            Some("batch_a")
        );
        assert!(matches!(
            decode("application/json", ""),
            Err(BatchError::NoBoundary(_))
        ));
    }
}
