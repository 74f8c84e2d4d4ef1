//! `dynamics login`: signs an auth-code connection in through a browser and stores its tokens.

use std::process::ExitCode;

use std::path::PathBuf;
use std::time::Duration;

use dynamics_host::tokens::format_utc;
use dynamics_host::{TokenManager, connection_file, describe_error};
use host_harness::login::{LoginError, LoginOptions};

use crate::commands::Global;
use crate::commands::token_store;

#[derive(clap::Args)]
pub struct Args {
    /// The connection file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
    /// Port of the loopback redirect URI http://127.0.0.1:PORT/callback; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How long to wait for the browser's redirect, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            connection,
            port,
            timeout_secs,
        } = self;
        let host = global.host()?;
        let named = connection_file::load_named(&connection)?;
        let store = token_store(global.token_store.as_deref())?;
        let manager = TokenManager::new(&host, &store);
        let options = LoginOptions {
            port,
            timeout: Duration::from_secs(timeout_secs),
        };
        let outcome = host_harness::login::login(
            &manager,
            &named.key,
            &named.connection,
            &options,
            |pending| {
                println!("Open this URL in a browser to sign in:");
                println!();
                println!("{}", pending.authorization_url);
                println!();
                println!(
                    "Waiting up to {timeout_secs} s for the redirect to {} ...",
                    pending.redirect_uri
                );
            },
        );
        match outcome {
            Ok(outcome) => {
                let expiry = outcome
                    .expires_at
                    .map(format_utc)
                    .unwrap_or_else(|| "an unknown time".to_string());
                println!(
                    "Signed in. Tokens for {} stored in {}.",
                    named.key,
                    store.path().display()
                );
                println!("The access token expires at {expiry}.");
                if !outcome.refreshable {
                    println!(
                        "No refresh token was granted: add offline_access to the scopes to stay signed in."
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(LoginError::Connector(failure)) => {
                eprintln!("{}", describe_error(&failure));
                Ok(ExitCode::from(2))
            }
            Err(LoginError::Failed(reason)) => {
                eprintln!("sign-in failed: {reason}");
                Ok(ExitCode::from(2))
            }
            Err(LoginError::Host(problem)) => Err(problem.into()),
        }
    }
}
