//! A wasmtime host for components of the `connector` world, usable by any embedder: it needs
//! no emulator, no async runtime and no HTTP server.
//!
//! It compiles a component once into an `InstancePre` ([`Host`], with [`compile_cache`] keeping
//! the compiled artifact between processes), then runs every call in a fresh `Store` with a
//! memory cap, an epoch-based time limit and WASI locked down (no environment, files or
//! sockets). The only way out is the `http` import implemented in [`outbound`], which sends a
//! request only to an origin the connection declares *and* the host's [`egress`] policy allows,
//! checking the resolved address at connect time, and only when the connection's [`governor`]
//! budget allows it (service-protection limits, `Retry-After`, the service's parallelism hint;
//! `http.send-all` runs a component's independent requests side by side within it, and
//! `http.start` lets one travel while the component works). [`tokens`]
//! keeps connections' tokens fresh; [`manifest`] renders `component.yaml` from the component's
//! definitions.
//!
//! Dependency direction: this crate knows wasmtime, the world's WIT and the host's policy. The
//! CLI (`host-harness`, binary `dynamics`) and the end-to-end tests build on it; it depends on
//! neither, nor on the emulator.

pub mod compile_cache;
pub mod connection_file;
pub mod egress;
pub mod error;
pub mod governor;
pub mod host;
pub mod logging;
pub mod manifest;
pub mod outbound;
pub mod tokens;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "connector",
        with: {
            "dynamics:connector/http.pending": crate::host::PendingRequest,
        },
    });
}

pub use bindings::dynamics::connector::types::{
    ActionDefinition, Choice, ComponentDefinition, Connection, ConnectionDefinition,
    ConnectionKind, ConnectorError, ErrorCode, InputDefinition, InputType, Token, TriggerKind,
};
pub use bindings::exports::dynamics::connector::triggers::{
    IncomingRequest, PollOutcome, WebhookOutcome,
};
pub use error::{CallError, CallResult};
pub use host::{Host, HostConfig, HostError, Limits, NetworkPolicy};
pub use logging::{Level, LogLine, LogSink, MemoryLog, StderrLog};
pub use tokens::{TokenManager, TokenStore};

/// The Dynamics 365 component (built by `test-artifacts`), embedded in every binary that links
/// this crate; [`Host::builtin`] loads it.
pub static DYNAMICS_COMPONENT: &[u8] = test_artifacts::DYNAMICS_CONNECTOR;

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition-failed",
            ErrorCode::Throttled => "throttled",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Upstream => "upstream",
            ErrorCode::MalformedResponse => "malformed-response",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Internal => "internal",
        };
        f.write_str(name)
    }
}

/// A connector error as a person reads it: code and message, the service's status and code,
/// then the hint on its own line.
pub fn describe_error(error: &ConnectorError) -> String {
    let mut text = format!("{}: {}", error.code, error.message);
    if let Some(status) = error.http_status {
        text.push_str(&format!(" (HTTP {status}"));
        if let Some(code) = &error.service_code {
            text.push_str(&format!(", {code}"));
        }
        text.push(')');
    }
    if let Some(field) = &error.field {
        text.push_str(&format!("\nfield: {field}"));
    }
    if let Some(hint) = &error.hint {
        text.push_str(&format!("\nhint: {hint}"));
    }
    text
}
