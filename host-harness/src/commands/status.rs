//! `dynamics status`: the connections that hold tokens, their state and expiry (never a token).

use std::process::ExitCode;

use dynamics_host::tokens::{format_utc, unix_now};

use crate::commands::{Global, token_store};

#[derive(clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let store = token_store(global.token_store.as_deref())?;
        let now = unix_now();
        let entries = store.status(now)?;
        println!("token store: {}", store.path().display());
        if entries.is_empty() {
            println!("no connection holds tokens");
            return Ok(ExitCode::SUCCESS);
        }
        for entry in entries {
            // Client-credentials and password connections get a new token without a user.
            let renewable = entry.refreshable || entry.connection_type != "oauth2-auth-code";
            let state = match (entry.valid, renewable) {
                (true, true) => "valid, renews by itself",
                (true, false) => "valid, sign in again when it expires",
                (false, true) => "expired, renews on next use",
                (false, false) => "expired, run login again",
            };
            let expiry = match entry.expires_at {
                Some(at) if at > now => {
                    format!("expires {} (in {} min)", format_utc(at), (at - now) / 60)
                }
                Some(at) => format!("expired {}", format_utc(at)),
                None => "expiry unknown".to_string(),
            };
            println!("{}", entry.key);
            println!("  type:        {}", entry.connection_type);
            if let Some(environment) = &entry.environment {
                println!("  environment: {environment}");
            }
            println!("  state:       {state}; {expiry}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
