//! The MCP server's input, read in front of rmcp's stdio transport.
//!
//! rmcp bounds a message (one line) to 16 MiB and drops a longer one unread, as the other MCP
//! SDKs do, so a client that sent one waits for an answer that never comes. This reader keeps
//! the bound and gives the client its answer: a line over [`LIMIT`] is skipped as it arrives
//! (never held whole), and in its place rmcp gets a small request of our own, [`OVERSIZED`],
//! with the same `id`, which the server answers with an error naming the limit. A line whose id
//! cannot be read from its first [`LIMIT`] bytes (a notification, or an id after a huge
//! `params`) has nobody to answer and is dropped, as before.

use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader, DuplexStream,
};

/// The longest message read, newline excluded (rmcp's default, which counts the newline).
pub const LIMIT: usize = 16 * 1024 * 1024;

/// The method of the request that stands for a message over [`LIMIT`].
pub const OVERSIZED: &str = "dynamics/message-over-limit";

/// What rmcp reads: `input` with every line over `limit` replaced as the module says.
pub fn front(input: impl AsyncRead + Unpin + Send + 'static, limit: usize) -> DuplexStream {
    let (reader, mut writer) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        // An error here (stdin failed, or rmcp stopped reading) ends the input; rmcp then
        // ends the session as it would at the end of stdin.
        let _ = pump(input, &mut writer, limit).await;
        let _ = writer.shutdown().await;
    });
    reader
}

async fn pump(
    input: impl AsyncRead + Unpin,
    out: &mut (impl AsyncWrite + Unpin),
    limit: usize,
) -> std::io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    // Of a line past the limit: its id (read before its bytes were let go) and its length.
    let mut skipping: Option<(Option<Value>, usize)> = None;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            // The end of the input: a last line without its newline goes on as it is (rmcp
            // knows it is incomplete); one being skipped has no end to answer at.
            if skipping.is_none() {
                out.write_all(&line).await?;
            }
            return Ok(());
        }
        let (take, ends) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        let content = take - usize::from(ends);
        match &mut skipping {
            None if line.len() + content > limit => {
                // The line's first `limit` bytes are all it keeps, to read its id from.
                let kept = limit - line.len();
                line.extend_from_slice(&chunk[..kept]);
                skipping = Some((id_of(&line), limit + content - kept));
                line = Vec::new();
            }
            None => {
                line.extend_from_slice(&chunk[..take]);
                if ends {
                    out.write_all(&line).await?;
                    line.clear();
                }
            }
            Some((_, length)) => *length += content,
        }
        input.consume(take);
        // The end of a skipped line: its stand-in, when it had an id to answer.
        if ends && let Some((Some(id), length)) = skipping.take() {
            let stand_in = json!({
                "jsonrpc": "2.0",
                "id": id,
                "method": OVERSIZED,
                "params": {"bytes": length, "limit": limit},
            });
            out.write_all(format!("{stand_in}\n").as_bytes()).await?;
        }
    }
}

/// The `id` of the JSON-RPC request that `start` begins, when its top-level object names it in
/// those bytes: a string or a number, as JSON-RPC 2.0 allows (a null id has nobody to answer).
fn id_of(start: &[u8]) -> Option<Value> {
    let mut at = skip_space(start, 0);
    if start.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_space(start, at);
        let (key, after) = value_at::<String>(start, at)?;
        at = skip_space(start, after);
        if start.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(start, at + 1);
        if key == "id" {
            let (id, after) = value_at::<Value>(start, at)?;
            // A number cut off by the limit (`"id":12` of `"id":12345`) would name another
            // request: the id counts only when what follows it shows it whole.
            let whole = matches!(start.get(skip_space(start, after)), Some(b',' | b'}'));
            return (whole && (id.is_string() || id.is_number())).then_some(id);
        }
        // A response of the client's (`result` or `error`) is not a request to answer.
        if key == "result" || key == "error" {
            return None;
        }
        // Any other member is stepped over without being kept.
        let (_, after) = value_at::<IgnoredAny>(start, at)?;
        at = skip_space(start, after);
        match start.get(at) {
            Some(b',') => at += 1,
            _ => return None,
        }
    }
}

/// The JSON value at `at` and the offset just past it.
fn value_at<T: serde::de::DeserializeOwned>(bytes: &[u8], at: usize) -> Option<(T, usize)> {
    let mut values = serde_json::Deserializer::from_slice(bytes.get(at..)?).into_iter::<T>();
    let value = values.next()?.ok()?;
    Some((value, at + values.byte_offset()))
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| b" \t\r\n".contains(b)) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// Input that arrives a few bytes at a time, so lines straddle reads.
    struct Trickle(&'static [u8]);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.0.len().min(3).min(buf.remaining());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Poll::Ready(Ok(()))
        }
    }

    async fn through(input: &'static [u8], limit: usize) -> String {
        let mut out = Vec::new();
        pump(Trickle(input), &mut out, limit).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_id_is_read_from_the_top_level_object_only() {
        let cases: [(&str, Option<Value>); 11] = [
            (r#"{"method":"x","id":12"#, None),
            (r#"{"method":"x","id":12 }"#, Some(json!(12))),
            (r#"{"result":{},"id":5,"#, None),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"#,
                Some(json!(7)),
            ),
            (r#" { "id" : "a\"b" , "#, Some(json!("a\"b"))),
            (
                r#"{"method":"x","params":{"id":1,"a":[1,{"id":2}]},"id":3,"#,
                Some(json!(3)),
            ),
            (r#"{"\u0069d":4,"#, Some(json!(4))),
            (r#"{"method":"x","params":{"id":1,"a":[1,2"#, None),
            (r#"{"id":null,"method":"x""#, None),
            (r#"{"id":{"a":1},"#, None),
            (r#"[{"id":1}"#, None),
        ];
        for (start, id) in cases {
            assert_eq!(id_of(start.as_bytes()), id, "{start}");
        }
    }

    #[tokio::test]
    async fn a_line_over_the_limit_becomes_a_stand_in_with_its_id_and_others_pass_unchanged() {
        let out = through(
            b"{\"id\":1,\"method\":\"ping\"}\n\
              {\"jsonrpc\":\"2.0\",\"id\":\"big\",\"method\":\"tools/call\",\"params\":{\"x\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}\n\
              {\"method\":\"notifications/x\",\"params\":{\"x\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}\n\
              {\"id\":2,\"method\":\"ping\"}\n\
              {\"id\":3,\"method\":\"ping\"}\n",
            64,
        )
        .await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(lines[0], r#"{"id":1,"method":"ping"}"#);
        let stand_in: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(stand_in["id"], "big");
        assert_eq!(stand_in["method"], OVERSIZED);
        assert_eq!(
            stand_in["params"]["bytes"], 102,
            "the whole line, newline excluded"
        );
        assert_eq!(stand_in["params"]["limit"], 64);
        // The notification has nobody to answer: it is gone.
        assert_eq!(lines[2], r#"{"id":2,"method":"ping"}"#);
        assert_eq!(lines[3], r#"{"id":3,"method":"ping"}"#);
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_passes_and_a_last_line_without_newline_is_kept() {
        assert_eq!(through(b"0123456789\n", 10).await, "0123456789\n");
        assert_eq!(through(b"01234567890\n", 10).await, "");
        assert_eq!(
            through(b"{\"id\":5}\n{\"id\":6", 64).await,
            "{\"id\":5}\n{\"id\":6"
        );
        // A line cut off while it is being skipped has no end to answer at.
        assert_eq!(through(b"{\"id\":5,\"x\":\"xxxxxxxxxxxx", 10).await, "");
    }
}
