//! `dynamics extract`: new and updated rows of tables to NDJSON files, resumable.

use std::process::ExitCode;

use std::path::PathBuf;

use dynamics_host::{TokenManager, connection_file};

use crate::commands::Global;
use crate::commands::{failed, token_store};
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// The connection file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
    /// A table (entity set name) to extract; repeatable.
    #[arg(long = "table", required = true, value_name = "ENTITY_SET")]
    pub tables: Vec<String>,
    /// Directory for the NDJSON files, one per table.
    #[arg(long, default_value = "extract")]
    pub out: PathBuf,
    /// The state file that makes a run resumable; defaults to OUT/state.json.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Rows per request and per call.
    #[arg(long, default_value_t = 5000)]
    pub page_size: u32,
    /// Read rows modified at or after this instant on a table's first run (default: a year back).
    #[arg(long)]
    pub since: Option<String>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            connection,
            tables,
            out,
            state,
            page_size,
            since,
        } = self;
        let (host, activity) = global.host_and_activity()?;
        let named = connection_file::load_named(&connection)?;
        let mut connection = named.connection;
        let store = token_store(global.token_store.as_deref())?;
        let manager = TokenManager::new(&host, &store);
        let options = host_harness::extract::ExtractOptions {
            tables,
            state_file: state.unwrap_or_else(|| out.join("state.json")),
            out_dir: out,
            page_size,
            anchor_date: since,
            max_calls: None,
        };
        let mut runner = |input: &str| -> anyhow::Result<String> {
            manager
                .run_action(
                    &named.key,
                    &mut connection,
                    "get-new-and-updated-records",
                    input,
                )
                .map_err(failed)
        };
        // Bars on a terminal; otherwise the plain line per call that scripts read.
        let mut display: Box<dyn host_harness::extract::Progress> = match progress::Mode::detect() {
            progress::Mode::Bars => Box::new(progress::ExtractBars::new(activity.clone())),
            progress::Mode::Lines => Box::new(host_harness::extract::Lines(std::io::stderr())),
        };
        let summary = host_harness::extract::run_with(&mut runner, &options, display.as_mut());
        drop(display);
        let summary = summary?;
        for warning in &summary.warnings {
            eprintln!("warning: {warning}");
        }
        for (table, rows) in &summary.written {
            println!(
                "{table}: {rows} rows written to {}",
                options.out_dir.join(format!("{table}.ndjson")).display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
