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

/// One answer inside a batch response, borrowed from the answer's text: decoding copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResponse<'a> {
    /// Status of the inner response.
    pub status: u16,
    /// Inner header lines, after the status line; read them with [`BatchResponse::header`].
    head: &'a str,
    /// Inner body, without its trailing line breaks.
    pub body: &'a str,
    /// `Content-ID` echoed from a change set request (borrowed like the rest).
    pub content_id: Option<&'a str>,
}

impl<'a> BatchResponse<'a> {
    /// The first value of a header, the name compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        header_in(self.head, name)
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
    /// The answer (or a change set in it) stops before its closing delimiter: it was cut, and
    /// the parts it no longer shows may have been applied.
    #[error("the batch answer is cut: it ends before its closing delimiter")]
    Unterminated,
}

/// Encodes `parts`; returns the body and the `Content-Type` header value. `id` makes the
/// boundaries unique (for example a random hex string).
pub fn encode(parts: &[BatchPart], id: &str) -> (String, String) {
    let mut writer = BatchWriter::new(id);
    for part in parts {
        match part {
            BatchPart::Single(request) => writer.push_request(request),
            BatchPart::ChangeSet(requests) => {
                writer.begin_change_set();
                for request in requests {
                    writer.push_request(request);
                }
                writer.end_change_set();
            }
        }
    }
    writer.finish()
}

/// Writes a batch body part by part, straight into one buffer: what [`encode`] produces,
/// without building a [`BatchRequest`] per request first.
#[derive(Debug)]
pub struct BatchWriter {
    body: String,
    id: String,
    /// Top-level parts written so far (change sets are named by their position).
    parts: usize,
    /// The boundary of the open change set.
    change_set: Option<String>,
}

impl BatchWriter {
    /// A writer whose boundaries carry `id`.
    pub fn new(id: &str) -> BatchWriter {
        BatchWriter::with_capacity(id, 0)
    }

    /// [`BatchWriter::new`] with room for `capacity` bytes of body.
    pub fn with_capacity(id: &str, capacity: usize) -> BatchWriter {
        BatchWriter {
            body: String::with_capacity(capacity),
            id: id.to_string(),
            parts: 0,
            change_set: None,
        }
    }

    /// Opens a change set: the requests up to [`BatchWriter::end_change_set`] apply all or
    /// nothing.
    pub fn begin_change_set(&mut self) {
        self.end_change_set();
        self.open_part();
        let boundary = format!("changeset_{}_{}", self.id, self.parts - 1);
        self.body
            .push_str("Content-Type: multipart/mixed; boundary=");
        self.body.push_str(&boundary);
        self.body.push_str("\r\n\r\n");
        self.change_set = Some(boundary);
    }

    /// Closes the open change set, if any.
    pub fn end_change_set(&mut self) {
        if let Some(boundary) = self.change_set.take() {
            self.body.push_str("--");
            self.body.push_str(&boundary);
            self.body.push_str("--\r\n");
        }
    }

    /// Writes one request: a part of its own, or a member of the open change set. A body
    /// without a `Content-Type` header is sent as `application/json; type=entry`.
    pub fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        content_id: Option<&str>,
    ) {
        self.open_request(method, url, content_id);
        for (name, value) in headers {
            self.header(name, value);
        }
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        self.close_request(body, typed);
    }

    /// Writes `request` as [`BatchWriter::request`] does.
    pub fn push_request(&mut self, request: &BatchRequest) {
        self.open_request(&request.method, &request.url, request.content_id.as_deref());
        for (name, value) in &request.headers {
            self.header(name, value);
        }
        let typed = request
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        self.close_request(request.body.as_deref(), typed);
    }

    /// The body and its `Content-Type` header value.
    pub fn finish(mut self) -> (String, String) {
        self.end_change_set();
        self.body.push_str("--batch_");
        self.body.push_str(&self.id);
        self.body.push_str("--\r\n");
        (
            self.body,
            format!("multipart/mixed; boundary=batch_{}", self.id),
        )
    }

    fn open_part(&mut self) {
        self.body.push_str("--batch_");
        self.body.push_str(&self.id);
        self.body.push_str("\r\n");
        self.parts += 1;
    }

    fn open_request(&mut self, method: &str, url: &str, content_id: Option<&str>) {
        match &self.change_set {
            Some(boundary) => {
                self.body.push_str("--");
                self.body.push_str(boundary);
                self.body.push_str("\r\n");
            }
            None => self.open_part(),
        }
        self.body
            .push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
        if let Some(id) = content_id {
            self.header("Content-ID", id);
        }
        self.body.push_str("\r\n");
        self.body.push_str(method);
        self.body.push(' ');
        self.body.push_str(url);
        self.body.push_str(" HTTP/1.1\r\n");
    }

    fn header(&mut self, name: &str, value: &str) {
        self.body.push_str(name);
        self.body.push_str(": ");
        self.body.push_str(value);
        self.body.push_str("\r\n");
    }

    fn close_request(&mut self, body: Option<&str>, typed: bool) {
        match body {
            Some(content) => {
                if !typed {
                    self.body
                        .push_str("Content-Type: application/json; type=entry\r\n");
                }
                self.body.push_str("\r\n");
                self.body.push_str(content);
                self.body.push_str("\r\n");
            }
            None => self.body.push_str("\r\n"),
        }
    }
}

/// Decodes a batch answer into its inner responses, change set members included, in order.
/// The responses borrow from `body`, which is read once, a line at a time.
pub fn decode<'a>(content_type: &str, body: &'a str) -> Result<Vec<BatchResponse<'a>>, BatchError> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| BatchError::NoBoundary(content_type.to_string()))?;
    let mut responses = Vec::new();
    let mut lines = Lines { text: body, at: 0 };
    decode_parts(&mut lines, &boundary, None, &mut responses)?;
    Ok(responses)
}

/// A read position in a text, moved a line at a time.
struct Lines<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its line break (LF or CRLF), and where it starts.
    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.at >= self.text.len() {
            return None;
        }
        let start = self.at;
        let rest = &self.text[start..];
        let line = match rest.find('\n') {
            Some(end) => {
                self.at = start + end + 1;
                &rest[..end]
            }
            None => {
                self.at = self.text.len();
                rest
            }
        };
        Some((start, line.strip_suffix('\r').unwrap_or(line)))
    }
}

/// What a delimiter line does.
enum Mark {
    /// `--boundary`: a part follows.
    Open,
    /// `--boundary--`: the parts are over.
    Close,
    /// A delimiter of the enclosing multipart: this one ended without its closing delimiter.
    Outer,
}

fn mark(line: &str, delimiter: &str, outer: Option<&str>) -> Option<Mark> {
    if !line.starts_with("--") {
        return None;
    }
    if let Some(rest) = line.strip_prefix(delimiter) {
        return Some(if rest.starts_with("--") {
            Mark::Close
        } else {
            Mark::Open
        });
    }
    outer
        .filter(|outer| line.starts_with(outer))
        .map(|_| Mark::Outer)
}

/// Reads the parts of one multipart body (after its preamble) into `responses`, recursing
/// into change sets. Stops after the closing delimiter, or before a delimiter of `outer`.
fn decode_parts<'a>(
    lines: &mut Lines<'a>,
    boundary: &str,
    outer: Option<&str>,
    responses: &mut Vec<BatchResponse<'a>>,
) -> Result<(), BatchError> {
    let delimiter = format!("--{boundary}");
    let text = lines.text;
    // The preamble.
    loop {
        let Some((_, line)) = lines.next() else {
            return Err(BatchError::Unterminated);
        };
        match mark(line, &delimiter, outer) {
            Some(Mark::Open) => break,
            Some(Mark::Close) => return Ok(()),
            Some(Mark::Outer) => return Err(BatchError::Unterminated),
            None => {}
        }
    }
    loop {
        // Part headers, after any blank lines; a part that ends here has no content.
        let mut part_type = None;
        let mut content_id = None;
        let mut any_header = false;
        let mut ended = None;
        while let Some((start, line)) = lines.next() {
            if let Some(found) = mark(line, &delimiter, outer) {
                ended = Some((start, found));
                break;
            }
            if line.is_empty() {
                if any_header {
                    break;
                }
                continue;
            }
            any_header = true;
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim();
                if part_type.is_none() && name.eq_ignore_ascii_case("content-type") {
                    part_type = Some(value.trim());
                } else if content_id.is_none() && name.eq_ignore_ascii_case("content-id") {
                    content_id = Some(value.trim());
                }
            }
        }
        let part_type = part_type.unwrap_or_default();
        // Only a top-level part can be a change set: change sets do not nest, and reading
        // nested ones would recurse as deep as the answer nests them (until the stack overflows).
        if outer.is_none() && starts_with_ignore_case(part_type, "multipart/mixed") {
            let inner = boundary_of(part_type)
                .ok_or_else(|| BatchError::NoBoundary(part_type.to_string()))?;
            if ended.is_none() {
                decode_parts(lines, &inner, Some(&delimiter), responses)?;
                // Whatever follows the change set's closing delimiter, up to the next part.
                ended = skip_to_delimiter(lines, &delimiter, outer);
            }
        } else {
            if ended.is_some() {
                return Err(BatchError::NoStatus);
            }
            let status = match lines.next() {
                Some((start, line)) => match mark(line, &delimiter, outer) {
                    Some(found) => {
                        ended = Some((start, found));
                        None
                    }
                    None => status_of(line),
                },
                None => None,
            };
            let status = status.ok_or(BatchError::NoStatus)?;
            // Inner headers up to a blank line, then the body up to the next delimiter.
            let head_start = lines.at;
            let mut body_start = None;
            let mut head_end = None;
            let mut end = text.len();
            while let Some((start, line)) = lines.next() {
                if let Some(found) = mark(line, &delimiter, outer) {
                    ended = Some((start, found));
                    end = start;
                    break;
                }
                if line.is_empty() && body_start.is_none() {
                    head_end = Some(start);
                    body_start = Some(lines.at);
                }
            }
            responses.push(BatchResponse {
                status,
                head: &text[head_start..head_end.unwrap_or(end)],
                body: body_start
                    .map_or("", |start| text[start..end].trim_end_matches(['\r', '\n'])),
                content_id,
            });
        }
        // Only a closing delimiter ends the parts: the end of the text, or the enclosing
        // multipart's delimiter inside a change set, means the answer was cut there.
        match ended {
            Some((_, Mark::Open)) => {}
            Some((_, Mark::Close)) => return Ok(()),
            Some((_, Mark::Outer)) | None => return Err(BatchError::Unterminated),
        }
    }
}

/// The status of an HTTP status line: `HTTP/1.1 204 No Content` → 204; anything that is not a
/// status line with a three-digit code (a line cut after `HTTP/1.1 20`) is None.
fn status_of(line: &str) -> Option<u16> {
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse::<u16>()
        .ok()
        .filter(|code| (100..600).contains(code))
}

/// Skips lines up to the next delimiter line of this multipart (or of the enclosing one).
fn skip_to_delimiter(
    lines: &mut Lines,
    delimiter: &str,
    outer: Option<&str>,
) -> Option<(usize, Mark)> {
    while let Some((start, line)) = lines.next() {
        if let Some(found) = mark(line, delimiter, outer) {
            return Some((start, found));
        }
    }
    None
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
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

/// `name: value` lines of a header block, trimmed; lines without a colon are skipped.
fn header_lines(head: &str) -> impl Iterator<Item = (&str, &str)> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
}

fn header_in<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    header_lines(head)
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
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
        assert_eq!(responses[0].content_id, Some("1"));
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

    #[test]
    fn answers_with_bare_line_feeds_and_a_preamble_decode() {
        let body = "preamble\n--b\nContent-Type: multipart/mixed; boundary=cs\n\n--cs\nContent-Type: application/http\nContent-ID: 1\n\nHTTP/1.1 201 Created\nOData-EntityId: x(1)\n\n{\"a\":1,\n\"b\":2}\n--cs--\n--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n--b--\n";
        let responses = decode("multipart/mixed; boundary=b", body).unwrap();
        assert_eq!(responses.len(), 2);
        assert_eq!(responses[0].status, 201);
        assert_eq!(responses[0].content_id, Some("1"));
        assert_eq!(responses[0].header("OData-EntityID"), Some("x(1)"));
        assert_eq!(responses[0].body, "{\"a\":1,\n\"b\":2}");
        assert_eq!(responses[1].status, 204);
        assert_eq!(responses[1].body, "");
        assert!(matches!(
            decode(
                "multipart/mixed; boundary=b",
                "--b\r\nContent-Type: application/http\r\n\r\n\r\n--b--"
            ),
            Err(BatchError::NoStatus)
        ));
    }

    #[test]
    fn an_answer_cut_before_its_closing_delimiter_is_an_error_not_fewer_parts() {
        // Parts the cut answer no longer shows may have been applied: reading it as a shorter
        // answer would report them as not run.
        let whole = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--b--\r\n";
        assert_eq!(
            decode("multipart/mixed; boundary=b", whole).unwrap().len(),
            2
        );
        for cut in [whole.len() - 8, whole.len() / 2, 50, 10, 0] {
            assert!(
                decode("multipart/mixed; boundary=b", &whole[..cut]).is_err(),
                "cut at {cut}: {:?}",
                &whole[..cut]
            );
        }
        // A change set that stops before its own closing delimiter.
        let change_set = "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--b--\r\n";
        assert_eq!(
            decode("multipart/mixed; boundary=b", change_set),
            Err(BatchError::Unterminated)
        );
        // A status line cut inside its code.
        assert_eq!(
            decode(
                "multipart/mixed; boundary=b",
                "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 20\r\n\r\n--b--\r\n"
            ),
            Err(BatchError::NoStatus)
        );
    }

    #[test]
    fn change_sets_inside_change_sets_are_refused_however_deep() {
        // Nested 100,000 deep this overflowed the stack (found while fuzzing): each level was
        // read by a call of its own.
        let mut body = String::new();
        for level in 0..100_000 {
            body.push_str(&format!(
                "--b{level}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n",
                level + 1
            ));
        }
        assert_eq!(
            decode("multipart/mixed; boundary=b0", &body),
            Err(BatchError::NoStatus)
        );
        let nested = "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n--inner--\r\n--cs--\r\n--b--\r\n";
        assert_eq!(
            decode("multipart/mixed; boundary=b", nested),
            Err(BatchError::NoStatus)
        );
    }
}
