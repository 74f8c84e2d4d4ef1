//! The subcommands of `dynamics`, one file each, and what they share: the global options, the
//! host they load and the way a connector error becomes exit code 2.

pub mod actions;
pub mod demo;
pub mod describe;
pub mod designer;
pub mod emulator;
pub mod extract;
pub mod invoke;
pub mod login;
pub mod logout;
pub mod manifest;
pub mod mcp;
pub mod poll;
pub mod serve_webhooks;
pub mod status;
pub mod test_connection;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use dynamics_host::{
    CallError, CallResult, ConnectorError, Host, HostConfig, Level, Limits, NetworkPolicy,
    TokenStore, describe_error,
};

use crate::progress;

/// The options every command takes.
#[derive(clap::Args)]
pub struct Global {
    /// Load this component instead of the built-in Dynamics 365 one.
    #[arg(long, global = true, value_name = "PATH")]
    pub component: Option<PathBuf>,
    /// Let the component reach loopback and private addresses (local emulators).
    #[arg(long, global = true)]
    pub allow_private: bool,
    /// Add a host or *.suffix pattern to the hosts any connection may name (repeatable); the
    /// connection must still name it.
    #[arg(long = "allow-host", global = true, value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Trust only this CA certificate (PEM) for HTTPS, instead of the public roots: a lab, or
    /// the emulator served with --tls.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Compile the component at start instead of loading it from the compile cache
    /// ($XDG_CACHE_HOME/dynamics-connector).
    #[arg(long, global = true)]
    pub no_compile_cache: bool,
    /// Time limit of one call, in seconds (1 to 86400).
    #[arg(long, global = true, default_value_t = 120, value_parser = time_limit)]
    pub time_limit_secs: u64,
    /// Memory limit of one call, in MiB (1 to 4096).
    #[arg(long, global = true, default_value_t = 64, value_parser = memory_limit)]
    pub memory_limit_mib: usize,
    /// Lowest log level written to stderr: trace, debug, info, warn, error.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// The token store file [default: $XDG_STATE_HOME/dynamics-connector/tokens.json, or
    /// ~/.local/state/dynamics-connector/tokens.json].
    #[arg(long, global = true, value_name = "PATH")]
    pub token_store: Option<PathBuf>,
}

impl Global {
    /// The host's configuration from the options, and the activity display its log feeds.
    pub fn host_config(&self) -> anyhow::Result<(HostConfig, Arc<progress::Activity>)> {
        let Some(min_level) = Level::parse(&self.log_level) else {
            bail!(
                "--log-level must be one of trace, debug, info, warn, error; got {:?}",
                self.log_level
            );
        };
        let activity = progress::Activity::new(min_level);
        let config = HostConfig {
            limits: Limits {
                memory_bytes: self.memory_limit_mib << 20,
                time: Duration::from_secs(self.time_limit_secs),
                ..Limits::default()
            },
            network: NetworkPolicy {
                allow_private: self.allow_private,
                extra_hosts: self.allow_hosts.clone(),
                root_certificates: match &self.ca_file {
                    Some(path) => vec![
                        std::fs::read(path)
                            .with_context(|| format!("reading --ca-file {}", path.display()))?,
                    ],
                    None => Vec::new(),
                },
                ..NetworkPolicy::default()
            },
            // Writes the log as StderrLog does, counting the requests for the progress display.
            log: activity.clone(),
            compile_cache: if self.no_compile_cache {
                None
            } else {
                dynamics_host::compile_cache::default_dir()
            },
        };
        Ok((config, activity))
    }

    /// The component (`--component`, or the embedded one) loaded with these options.
    pub fn host(&self) -> anyhow::Result<Host> {
        Ok(self.host_and_activity()?.0)
    }

    /// [`Global::host`], with the activity display for commands that show progress.
    pub fn host_and_activity(&self) -> anyhow::Result<(Host, Arc<progress::Activity>)> {
        let (config, activity) = self.host_config()?;
        let host = match &self.component {
            Some(path) => Host::from_file(path, config)?,
            None => Host::builtin(config)?,
        };
        // Dataverse's limits are per user across every process: with DYNAMICS_GOVERNOR_REDIS_URL
        // set, CLI processes (extract workers, several flows) share one budget per connection.
        let governor = dynamics_host::governor::Governor::from_env(
            dynamics_host::governor::Budget::default(),
        )?;
        Ok((host.with_governor(governor), activity))
    }
}

/// An error the component answered (an action, a trigger, a sign-in), as opposed to a host
/// failure; `main` exits with 2 for it.
#[derive(Debug)]
pub struct ActionFailed(pub ConnectorError);

impl std::fmt::Display for ActionFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe_error(&self.0))
    }
}

impl std::error::Error for ActionFailed {}

/// A call's error as the CLI reports it: the component's as [`ActionFailed`] (exit code 2),
/// the host's as it is (exit code 1).
pub fn failed(error: CallError) -> anyhow::Error {
    match error {
        CallError::Connector(failure) => ActionFailed(failure).into(),
        CallError::Host(problem) => problem.into(),
    }
}

/// Limits of 0 would stop every call at once; more than a day or 4 GiB (all a 32-bit component
/// can address) is a typo, and would overflow the deadline or the byte count.
pub fn time_limit(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(secs @ 1..=86_400) => Ok(secs),
        _ => Err("give a whole number of seconds from 1 to 86400".to_string()),
    }
}

pub fn memory_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(mib @ 1..=4096) => Ok(mib),
        _ => Err("give a whole number of MiB from 1 to 4096".to_string()),
    }
}

/// The text of a file a person wrote, without the UTF-8 byte order mark some Windows editors
/// put first (JSON parsers take it for a stray character).
pub fn without_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

pub fn token_store(path: Option<&std::path::Path>) -> anyhow::Result<TokenStore> {
    Ok(TokenStore::open(match path {
        Some(path) => path.to_path_buf(),
        None => TokenStore::default_path()?,
    }))
}

/// Prints an action's JSON output, or its error with the hint (exit code 2); a host error is
/// returned (exit code 1).
pub fn print_result(result: CallResult<String>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(output) => {
            let pretty = serde_json::from_str::<serde_json::Value>(&output)
                .and_then(|value| serde_json::to_string_pretty(&value))
                .unwrap_or(output);
            println!("{pretty}");
            Ok(ExitCode::SUCCESS)
        }
        Err(CallError::Connector(failure)) => {
            eprintln!("{}", describe_error(&failure));
            Ok(ExitCode::from(2))
        }
        Err(CallError::Host(problem)) => Err(problem.into()),
    }
}
