//! Shared set-up for the end-to-end tests: an emulator, a host that may reach it, and
//! connections to it.

use std::sync::{Arc, OnceLock};

use dataverse_emulator::{Config, Emulator};
use dynamics_host::{
    CallError, CallResult, Connection, ConnectorError, Host, HostConfig, Level, MemoryLog,
    NetworkPolicy, StderrLog, Token,
};

/// An emulator with a small deterministic data set.
pub fn emulator() -> Emulator {
    Emulator::start(
        Config {
            rows_per_table: 20,
            ..Config::default()
        },
        0,
    )
    .expect("the emulator starts")
}

/// How the tests' hosts run: loopback allowed (the emulator), errors logged.
pub fn loopback_config() -> HostConfig {
    HostConfig {
        network: NetworkPolicy {
            allow_private: true,
            extra_hosts: Vec::new(),
            ..NetworkPolicy::default()
        },
        log: Arc::new(StderrLog {
            min_level: Level::Error,
        }),
        ..HostConfig::default()
    }
}

/// A host that may reach loopback, shared by the tests of one binary (compiling is the slow part).
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::builtin(loopback_config()).expect("the built-in component loads"))
}

/// A host of its own whose log lines can be read.
pub fn host_with_memory_log() -> (Host, MemoryLog) {
    let log = MemoryLog::default();
    let host = Host::builtin(HostConfig {
        network: NetworkPolicy {
            allow_private: true,
            extra_hosts: Vec::new(),
            ..NetworkPolicy::default()
        },
        log: Arc::new(log.clone()),
        ..HostConfig::default()
    })
    .expect("the built-in component loads");
    (host, log)
}

/// A client-credentials connection to the emulator, without a token yet.
pub fn client_credentials(emulator: &Emulator) -> Connection {
    let credentials = emulator.credentials();
    Connection {
        definition: "oauth2-client-credentials".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            ("tokenUrl".to_string(), emulator.token_url()),
            ("clientId".to_string(), credentials.client_id),
            ("clientSecret".to_string(), credentials.client_secret),
        ],
        token: None,
    }
}

/// The same connection with a token the emulator issued directly (no token request recorded).
pub fn connected(emulator: &Emulator) -> Connection {
    let mut connection = client_credentials(emulator);
    connection.token = Some(Token {
        access_token: emulator.issue_token_for_tests(),
        token_type: "Bearer".to_string(),
        refresh_token: None,
        expires_in_secs: Some(3599),
        scope: None,
    });
    connection
}

/// Parses an action's JSON output.
pub fn json(output: &str) -> serde_json::Value {
    serde_json::from_str(output).expect("action output is JSON")
}

/// A host whose retry waits are cut to a few milliseconds, for tests of retry bounds.
pub fn impatient_host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        Host::builtin(HostConfig {
            limits: dynamics_host::Limits {
                max_retry_wait: std::time::Duration::from_millis(5),
                ..dynamics_host::Limits::default()
            },
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
        .expect("the built-in component loads")
    })
}

/// The component's answer to a call, output or refusal, for tests about what the component
/// answers: a host error (a limit, a trap) is not one, so it fails the test.
pub trait Answered<T> {
    fn answered(self) -> Result<T, ConnectorError>;
}

impl<T> Answered<T> for CallResult<T> {
    #[track_caller]
    fn answered(self) -> Result<T, ConnectorError> {
        match self {
            Ok(value) => Ok(value),
            Err(CallError::Connector(failure)) => Err(failure),
            Err(CallError::Host(problem)) => panic!("the host failed the call: {problem}"),
        }
    }
}

/// A client-credentials connection to the emulator's Finance and Operations environment (its
/// OData root `<fno url>/data`), without a token yet: the scope it asks is the F&O environment's.
pub fn fno_client_credentials(emulator: &Emulator) -> Connection {
    let mut connection = client_credentials(emulator);
    let root = format!("{}/data", emulator.fno_url().expect("F&O is served"));
    connection.fields[0] = ("webApiUrl".to_string(), root);
    connection
}

/// The same F&O connection with a token whose audience is the F&O environment.
pub fn fno_connected(emulator: &Emulator) -> Connection {
    let mut connection = fno_client_credentials(emulator);
    connection.token = Some(Token {
        access_token: emulator.issue_fno_token_for_tests(),
        token_type: "Bearer".to_string(),
        refresh_token: None,
        expires_in_secs: Some(3599),
        scope: None,
    });
    connection
}

/// The database an extraction test lands rows in.
pub mod extract_target;

/// Batch Entity Actions items creating `n` accounts named `<prefix> <i>` with account number
/// `<prefix>-<i>`, for counting what landed with [`accounts_numbered`].
pub fn account_creates(prefix: &str, n: usize) -> serde_json::Value {
    serde_json::Value::Array(
        (0..n)
            .map(|i| {
                serde_json::json!({"collection": "accounts", "action": "create",
                       "data": {"name": format!("{prefix} {i}"), "accountnumber": format!("{prefix}-{i}")}})
            })
            .collect(),
    )
}

/// The accounts whose number starts with `<prefix>-`: (rows, distinct numbers). Equal figures
/// mean no number landed twice.
pub fn accounts_numbered(emulator: &dataverse_emulator::Emulator, prefix: &str) -> (usize, usize) {
    let numbers: Vec<String> = emulator
        .table("accounts")
        .iter()
        .filter_map(|row| row["accountnumber"].as_str().map(str::to_string))
        .filter(|number| number.starts_with(&format!("{prefix}-")))
        .collect();
    let distinct = numbers
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    (numbers.len(), distinct)
}
