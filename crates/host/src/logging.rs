//! The `log` import: levels, sinks, and redaction of secrets before anything is written.

use std::sync::{Arc, Mutex};

/// Log levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ]
        .into_iter()
        .find(|level| level.name().eq_ignore_ascii_case(text))
    }
}

/// One redacted line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    /// `component` for lines the guest wrote, `host` for the harness's own.
    pub source: &'static str,
    pub message: String,
}

/// Where log lines go. Lines arrive already redacted.
pub trait LogSink: Send + Sync {
    fn write(&self, line: LogLine);
}

/// Writes lines at or above a level to stderr.
pub struct StderrLog {
    pub min_level: Level,
}

impl LogSink for StderrLog {
    fn write(&self, line: LogLine) {
        if line.level >= self.min_level {
            eprintln!("[{} {}] {}", line.level.name(), line.source, line.message);
        }
    }
}

/// Keeps every line in memory, for tests to read.
#[derive(Default, Clone)]
pub struct MemoryLog {
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl MemoryLog {
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default()
    }
}

impl LogSink for MemoryLog {
    fn write(&self, line: LogLine) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }
}

const REDACTED: &str = "[REDACTED]";

/// Replaces every known secret, and anything after `Bearer ` or `Basic `, with a marker.
pub fn redact(message: &str, secrets: &[String]) -> String {
    let mut text = message.to_string();
    for secret in secrets.iter().filter(|secret| secret.len() >= 4) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
        let mut search_from = 0;
        while let Some(found) = text[search_from..].find(scheme) {
            let start = search_from + found + scheme.len();
            let end = text[start..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '\'')
                .map(|offset| start + offset)
                .unwrap_or(text.len());
            if end > start && &text[start..end] != REDACTED {
                text.replace_range(start..end, REDACTED);
            }
            search_from = start + REDACTED.len().min(text.len() - start);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_and_bearer_values_are_redacted() {
        let secrets = vec!["s3cr3t-value".to_string()];
        let line = redact(
            "secret s3cr3t-value and Authorization: Bearer eyJabc.def, done",
            &secrets,
        );
        assert_eq!(
            line,
            "secret [REDACTED] and Authorization: Bearer [REDACTED], done"
        );
        assert_eq!(redact("Bearer", &[]), "Bearer");
        assert_eq!(redact("a Basic dXNlcjpwYXNz", &[]), "a Basic [REDACTED]");
    }
}
