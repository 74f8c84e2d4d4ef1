//! `dynamics poll`: runs the New and Updated Records polling trigger and prints each event.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context as _;
use dynamics_host::connection_file;

use crate::commands::Global;
use crate::commands::failed;

#[derive(clap::Args)]
pub struct Args {
    /// The connection file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
    /// The trigger's config JSON (entityType, fieldNames, anchorDate).
    #[arg(long, value_name = "JSON")]
    pub config: String,
    /// Seconds between polls.
    #[arg(long, default_value_t = 60)]
    pub interval: u64,
    /// Stop after this many polls (default: run until killed).
    #[arg(long)]
    pub polls: Option<u64>,
    /// Where the poll state is kept between runs.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            connection,
            config,
            interval,
            polls,
            state,
        } = self;
        let host = global.host()?;
        let named = connection_file::load_named(&connection)?;
        let mut connection = named.connection;
        let mut current = match &state {
            Some(path) if path.exists() => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading state file {}", path.display()))?,
            ),
            _ => None,
        };
        // A config the component refuses is reported before any sign-in or request.
        host.check_poll(
            "new-and-updated-records",
            &connection,
            &config,
            current.as_deref(),
        )
        .map_err(failed)?;
        host.ensure_token(&mut connection).map_err(failed)?;
        let mut done = 0;
        while polls.is_none_or(|limit| done < limit) {
            let outcome = host
                .poll(
                    "new-and-updated-records",
                    &connection,
                    &config,
                    current.as_deref(),
                )
                .map_err(failed)?;
            for event in &outcome.events {
                println!("{event}");
            }
            if let Some(path) = &state {
                std::fs::write(path, &outcome.state)
                    .with_context(|| format!("writing state file {}", path.display()))?;
            }
            current = Some(outcome.state);
            done += 1;
            if polls.is_none_or(|limit| done < limit) {
                std::thread::sleep(Duration::from_secs(interval));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
