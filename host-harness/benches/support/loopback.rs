//! What the benchmarks share: a host that may reach the emulator, and a connection to it.

use std::sync::Arc;

use dataverse_emulator::Emulator;
use dynamics_host::{Connection, Host, HostConfig, Level, Limits, NetworkPolicy, StderrLog, Token};

/// The `dynamics` binary's allocator (see `src/main.rs`), so the figures of the benchmarks
/// that include this file are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The built-in component with `limits`, allowed to reach loopback, logging errors only.
pub fn host(limits: Limits) -> Host {
    Host::builtin(HostConfig {
        limits,
        network: NetworkPolicy {
            allow_private: true,
            extra_hosts: Vec::new(),
            ..NetworkPolicy::default()
        },
        log: Arc::new(StderrLog {
            min_level: Level::Error,
        }),
        ..HostConfig::default()
    })
    .expect("the component loads")
}

/// A client-credentials connection to `emulator` carrying `token`.
pub fn connection(emulator: &Emulator, token: &str) -> Connection {
    let credentials = emulator.credentials();
    Connection {
        definition: "oauth2-client-credentials".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            ("tokenUrl".to_string(), emulator.token_url()),
            ("clientId".to_string(), credentials.client_id),
            ("clientSecret".to_string(), credentials.client_secret),
        ],
        token: Some(Token {
            access_token: token.to_string(),
            token_type: "Bearer".to_string(),
            refresh_token: None,
            expires_in_secs: None,
            scope: None,
        }),
    }
}
