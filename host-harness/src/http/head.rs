//! The request head, screened before hyper parses it, so that every refusal a client can cause
//! with its head alone says why in its body (hyper answers its own parse errors with an empty
//! 400): lines of at most 8 KiB, at most 100 headers, and one unambiguous body length — no
//! `Transfer-Encoding`, `Content-Length`s that are numbers and agree. A body whose end two
//! readers could see in different places could let a proxy in front take the rest for a second
//! request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

use super::Limits;

/// Longest request or header line accepted.
const MAX_LINE: usize = 8 << 10;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;
/// How long a refused client gets to stop sending before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and thrown away while lingering.
const MAX_DRAIN: usize = 1 << 20;

/// The connection with its head read and accepted, to be parsed again by hyper; `None` when it
/// was refused (and answered) or closed.
pub(super) async fn screen(mut stream: TcpStream, limits: &Limits) -> Option<Replayed> {
    let mut read = Vec::new();
    let verdict =
        match super::within(limits.head_time, read_head(&mut stream, &mut read, limits)).await {
            None => Err("the request took too long to arrive".to_string()),
            Some(Err(_)) => return None,
            Some(Ok(())) => judge(&read),
        };
    match verdict {
        Ok(()) => Some(Replayed {
            read,
            at: 0,
            stream,
        }),
        Err(reason) => {
            refuse(stream, &reason).await;
            None
        }
    }
}

/// Reads until the blank line that ends the head, or past the largest head accepted.
async fn read_head(stream: &mut TcpStream, read: &mut Vec<u8>, limits: &Limits) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    while end_of_head(read).is_none() && read.len() <= limits.max_head {
        let count = stream.read(&mut chunk).await?;
        if count == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        read.extend_from_slice(&chunk[..count]);
    }
    Ok(())
}

fn end_of_head(read: &[u8]) -> Option<usize> {
    read.windows(4).position(|window| window == b"\r\n\r\n")
}

/// Whether the head may go on to hyper, or why not.
fn judge(read: &[u8]) -> Result<(), String> {
    let head = match end_of_head(read) {
        Some(end) => &read[..end],
        None => read,
    };
    let mut lines = head.split(|&byte| byte == b'\n');
    let mut length = None;
    let mut count = 0;
    if lines.next().is_some_and(|line| line.len() > MAX_LINE) {
        return Err(too_long());
    }
    for line in lines {
        if line.len() > MAX_LINE {
            return Err(too_long());
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(format!("the request has more than {MAX_HEADERS} headers"));
        }
        let line = String::from_utf8_lossy(line);
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked bodies are not supported; send a Content-Length".to_string());
        }
        if name.eq_ignore_ascii_case("content-length") {
            for value in value.split(',').map(str::trim) {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("the Content-Length {value:?} is not a number"));
                }
                let value: u64 = value
                    .parse()
                    .map_err(|_| format!("the Content-Length {value:?} is not a number"))?;
                if length.is_some_and(|known| known != value) {
                    return Err("the request has conflicting Content-Length headers".to_string());
                }
                length = Some(value);
            }
        }
    }
    if end_of_head(read).is_none() {
        return Err("the request head is too large".to_string());
    }
    Ok(())
}

fn too_long() -> String {
    "a request line or header is longer than 8 KiB".to_string()
}

/// Answers 400 with the reason and closes. Closing a socket with unread bytes makes the kernel
/// send a reset, which can destroy the answer before the client reads it; so the unread rest is
/// read and dropped first, for a short time and up to a cap.
async fn refuse(mut stream: TcpStream, reason: &str) {
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}",
        reason.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut drained = 0;
    let mut chunk = [0u8; 16 << 10];
    let _ = super::within(LINGER, async {
        while drained < MAX_DRAIN {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(count) => drained += count,
            }
        }
    })
    .await;
}

/// A connection whose first bytes were already read: they are read again first.
pub(super) struct Replayed {
    read: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl AsyncRead for Replayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.read.len() {
            let count = (self.read.len() - self.at).min(buffer.remaining());
            let at = self.at;
            buffer.put_slice(&self.read[at..at + count]);
            self.at += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &[&str]) -> Vec<u8> {
        format!("POST / HTTP/1.1\r\n{}\r\n\r\n", lines.join("\r\n")).into_bytes()
    }

    #[test]
    fn one_length_said_once_or_twice_alike_passes() {
        assert_eq!(judge(&head(&["Content-Length: 25"])), Ok(()));
        assert_eq!(
            judge(&head(&["Content-Length: 25", "content-length: 25, 25"])),
            Ok(())
        );
        assert_eq!(judge(&head(&["Host: x"])), Ok(()));
    }

    #[test]
    fn ambiguous_framing_is_refused_saying_why() {
        let refused = [
            (
                vec!["Content-Length: 2", "Content-Length: 25"],
                "conflicting",
            ),
            (vec!["Content-Length: 2, 25"], "conflicting"),
            (vec!["Content-Length: +25"], "is not a number"),
            (vec!["Content-Length: ten"], "is not a number"),
            (vec!["Transfer-Encoding: chunked"], "chunked bodies"),
        ];
        for (lines, reason) in refused {
            let verdict = judge(&head(&lines)).unwrap_err();
            assert!(verdict.contains(reason), "{lines:?}: {verdict}");
        }
    }

    #[test]
    fn long_lines_and_many_headers_are_refused() {
        let long = format!("X-Long: {}", "x".repeat(MAX_LINE));
        assert!(judge(&head(&[&long])).unwrap_err().contains("8 KiB"));
        let many: Vec<String> = (0..=MAX_HEADERS).map(|n| format!("X-{n}: y")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(judge(&head(&many)).unwrap_err().contains("more than 100"));
    }
}
