//! `POST /data/$batch`: OData v4 multipart batches whose change sets run as one unit ("Open Data
//! Protocol (OData)", learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata,
//! "Batch requests" and "Run multiple requests in a single transaction": "either all the
//! requests are run successfully or, if any request fails, none of the requests are run
//! successfully"). The multipart reading is the emulator's own (`crate::batch::parse`); the
//! answers are the OData v4 batch response: a failed change set answers with its one error.

use super::{FnoError, Service, handle};
use crate::batch::{Item, Op, parse};

type Parts = (u16, Vec<(String, String)>, Vec<u8>);

/// The path below `/data/` and the query of a request line (absolute, `/data/...` or relative).
fn target(url: &str) -> Result<(String, String), FnoError> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]).to_string(),
        None => url.to_string(),
    };
    let path = path
        .strip_prefix("/data/")
        .or_else(|| path.strip_prefix("data/"))
        .unwrap_or(&path)
        .to_string();
    if path.starts_with('$') && !path.starts_with("$metadata") {
        return Err(FnoError::not_emulated(
            "Content-ID references ($n) inside a change set",
        ));
    }
    let (p, q) = path.split_once('?').unwrap_or((&path, ""));
    Ok((p.to_string(), q.to_string()))
}

fn run(svc: &mut Service, op: &Op, root: &str) -> Parts {
    let (path, query) = match target(&op.url) {
        Ok(t) => t,
        Err(e) => return e.parts(),
    };
    let if_match = op
        .headers
        .iter()
        .find(|(k, _)| k == "if-match")
        .map(|(_, v)| v.as_str());
    match handle(svc, &op.method, &path, &query, &op.body, if_match, root) {
        Ok(p) => p,
        Err(e) => e.parts(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        501 => "Not Implemented",
        _ => "Error",
    }
}

fn http_part(out: &mut String, content_id: Option<&str>, parts: &Parts) {
    out.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!("\r\nHTTP/1.1 {} {}\r\n", parts.0, reason(parts.0)));
    for (k, v) in &parts.1 {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&String::from_utf8_lossy(&parts.2));
    out.push_str("\r\n");
}

pub fn handle_batch(
    svc: &mut Service,
    body: &[u8],
    content_type: &str,
    root: &str,
) -> Result<Parts, FnoError> {
    let items = parse(body, content_type).map_err(|e| FnoError {
        status: 400,
        message: e.message,
        inner: None,
    })?;
    let boundary = "batchresponse_fno";
    let mut out = String::new();
    for (n, item) in items.iter().enumerate() {
        out.push_str(&format!("--{boundary}\r\n"));
        match item {
            Item::Single(op) => {
                let parts = run(svc, op, root);
                http_part(&mut out, op.content_id.as_deref(), &parts);
            }
            Item::ChangeSet(ops) => {
                let before = svc.rows.clone();
                let numbers = svc.next_number;
                let mut answers = Vec::new();
                let mut failed = None;
                for op in ops {
                    let parts = run(svc, op, root);
                    if parts.0 >= 400 {
                        failed = Some((op.content_id.clone(), parts));
                        break;
                    }
                    answers.push((op.content_id.clone(), parts));
                }
                match failed {
                    Some((id, parts)) => {
                        // All or nothing: the change set's earlier writes are undone.
                        svc.rows = before;
                        svc.next_number = numbers;
                        http_part(&mut out, id.as_deref(), &parts);
                    }
                    None => {
                        let cs = format!("changesetresponse_fno_{n}");
                        out.push_str(&format!(
                            "Content-Type: multipart/mixed; boundary={cs}\r\n\r\n"
                        ));
                        for (id, parts) in &answers {
                            out.push_str(&format!("--{cs}\r\n"));
                            http_part(&mut out, id.as_deref(), parts);
                        }
                        out.push_str(&format!("--{cs}--\r\n"));
                    }
                }
            }
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Ok((
        200,
        vec![
            (
                "Content-Type".into(),
                format!("multipart/mixed; boundary={boundary}"),
            ),
            ("OData-Version".into(), "4.0".into()),
        ],
        out.into_bytes(),
    ))
}
