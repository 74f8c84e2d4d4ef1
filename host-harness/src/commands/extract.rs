//! `dynamics extract`: new and updated rows of tables into SQLite, PostgreSQL or NDJSON files,
//! resumable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use dynamics_host::{CallError, ErrorCode, TokenManager, connection_file};
use host_harness::extract::database::{self, Deletes, ReadMode, TableProgress};
use host_harness::extract::destination::Destination;
use host_harness::extract::{DEFAULT_TABLES, PageReport};

use crate::commands::Global;
use crate::commands::{failed, token_store};
use crate::progress;

/// Throttled calls a table thread makes again before it gives up.
const THROTTLED_CALLS: u32 = 20;

#[derive(clap::Args)]
#[command(after_help = "DESTINATIONS (--to):
  sqlite:PATH        one SQLite file (the default: sqlite:extract.db)
  postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?options]
                     PostgreSQL (also postgresql://). The client speaks plain TCP or a Unix
                     socket (?host=/run/postgresql): give sslmode=disable, or leave sslmode out
                     (prefer falls back to plain). A server that requires TLS: reach it through
                     a local tunnel (ssh -L, or a TLS proxy) and name the tunnel's port. Tables
                     land in the search_path's first schema: add
                     ?options=-csearch_path%3Ddynamics365 to choose one.
                     Prefer PGPASSWORD-free URLs in shared shells: the password is never printed.
  ndjson:DIR         one NDJSON file per table, with DIR/state.json (as --out DIR)

In a database each table gets typed columns from its Dataverse definition (money and decimal
exact, date and time, date only, lookups with <column>_table, choices with <column>_label),
the row ID as primary key and upserts; deleted rows are applied from change tracking; the
state (_dynamics_extract_state) is committed with the rows it covers, so a run stopped at any
point and run again lands every row exactly once.

RANGES (--partitions N, databases): a table's first read by modifiedon is split into N ranges of
createdon (equal slices of time between its oldest and newest row; the first range open below
and holding rows without createdon, the last open above), read at the same time by up to
max(--parallel, N) workers. Each range's progress is committed with its rows, so a stopped run
goes on where each range stopped. Afterwards the table's next read starts from its newest
modifiedon at the start, less 5 minutes, so rows changed during the load are read again. A table
with change tracking is read whole in auto mode: a change-tracking read takes no filter and gives
its delta link only at the end (use --mode watermark to split it; deleted rows are then not
seen).")]
pub struct Args {
    /// The connection file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
    /// A table (entity set name) to extract; repeatable, or comma-separated. Default: the
    /// Sling stream list (accounts, contacts, leads, opportunities, activities, …).
    #[arg(
        long = "table",
        visible_alias = "tables",
        value_delimiter = ',',
        value_name = "ENTITY_SET"
    )]
    pub tables: Vec<String>,
    /// Where the rows land: sqlite:PATH, postgres://… or ndjson:DIR (see below).
    // Parsed in `run`, not by clap: clap's refusal repeats the value, and a URL may hold a
    // password.
    #[arg(long, value_name = "DESTINATION", conflicts_with = "out")]
    pub to: Option<String>,
    /// Directory for NDJSON files, one per table (the same as --to ndjson:DIR).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// NDJSON only: the state file that makes a run resumable; defaults to OUT/state.json.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Rows per request and per call.
    #[arg(long, default_value_t = 5000)]
    pub page_size: u32,
    /// Read rows modified at or after this instant on a table's first run (default: a year
    /// back); tables with change tracking are read whole the first time.
    #[arg(long)]
    pub since: Option<String>,
    /// Databases: what a row deleted in Dataverse becomes: delete, or flag (`_deleted` true
    /// and `_deleted_at`).
    #[arg(long, default_value = "delete", value_name = "delete|flag")]
    pub deletes: Deletes,
    /// Databases: tables read at the same time (1 to 16), each with its own component call.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub parallel: u16,
    /// Databases: ranges of createdon a table's first read by modifiedon is split into, read
    /// at the same time (1 to 32; 1 reads it whole). See RANGES below.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub partitions: u16,
    /// Databases: how tables with change tracking are read: auto (through change tracking,
    /// deleted rows seen) or watermark (by modifiedon like the others: can be split, deleted
    /// rows not seen). NDJSON always reads by modifiedon.
    #[arg(long, default_value = "auto", value_name = "auto|watermark")]
    pub mode: ReadMode,
    /// Stop after this many calls of the action in all (to rehearse an interrupted run).
    #[arg(long, hide = true)]
    pub max_calls: Option<usize>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let destination = match (&self.to, &self.out) {
            (Some(to), _) => to.parse::<Destination>().unwrap_or_else(|problem| {
                clap::Error::raw(
                    clap::error::ErrorKind::InvalidValue,
                    format!("invalid value for '--to <DESTINATION>': {problem}\n"),
                )
                .exit()
            }),
            (None, Some(out)) => Destination::Ndjson(out.clone()),
            (None, None) => Destination::Sqlite(PathBuf::from("extract.db")),
        };
        let tables: Vec<String> = if self.tables.is_empty() {
            DEFAULT_TABLES.iter().map(|t| t.to_string()).collect()
        } else {
            // A table named twice is read once, and "table N of M" counts it once.
            let mut named = std::collections::HashSet::new();
            self.tables
                .iter()
                .filter(|t| named.insert(*t))
                .cloned()
                .collect()
        };
        if self.state.is_some() && !matches!(destination, Destination::Ndjson(_)) {
            bail!("--state is for NDJSON; a database keeps its state in _dynamics_extract_state");
        }
        if self.partitions > 1 && matches!(destination, Destination::Ndjson(_)) {
            bail!(
                "--partitions is for databases: an NDJSON file is appended by one reader in order; use --to sqlite:PATH or postgres://…"
            );
        }
        match destination {
            Destination::Ndjson(dir) => self.ndjson(global, tables, dir),
            Destination::Sqlite(path) => self.database(global, tables, &move || {
                Ok(
                    Box::new(host_harness::extract::sqlite::Sqlite::open(&path)?)
                        as Box<dyn database::Database>,
                )
            }),
            Destination::Postgres(url) => self.database(global, tables, &move || {
                Ok(
                    Box::new(host_harness::extract::postgres::Postgres::connect(&url)?)
                        as Box<dyn database::Database>,
                )
            }),
        }
    }

    fn ndjson(
        self,
        global: &Global,
        tables: Vec<String>,
        out: PathBuf,
    ) -> anyhow::Result<ExitCode> {
        let (host, activity) = global.host_and_activity()?;
        let named = connection_file::load_named(&self.connection)?;
        let mut connection = named.connection;
        let store = token_store(global.token_store.as_deref())?;
        let manager = TokenManager::new(&host, &store);
        let options = host_harness::extract::ExtractOptions {
            tables,
            state_file: self.state.unwrap_or_else(|| out.join("state.json")),
            out_dir: out,
            page_size: self.page_size,
            anchor_date: self.since,
            max_calls: self.max_calls,
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

    fn database(
        self,
        global: &Global,
        tables: Vec<String>,
        open: &database::Opener,
    ) -> anyhow::Result<ExitCode> {
        let (host, _activity) = global.host_and_activity()?;
        let named = connection_file::load_named(&self.connection)?;
        let store = token_store(global.token_store.as_deref())?;
        let options = database::DatabaseOptions {
            tables,
            page_size: self.page_size,
            anchor_date: self.since,
            deletes: self.deletes,
            parallel: usize::from(self.parallel),
            partitions: usize::from(self.partitions),
            mode: self.mode,
            max_calls: self.max_calls,
        };
        // One runner per worker: its own copy of the connection, the one host and token store
        // (the token the first call gets is stored and reused by the others).
        let (host, store, key) = (&host, &store, named.key.as_str());
        // Ranges of a split table are read by workers of their own, as many as ranges.
        let workers = options.parallel.max(options.partitions).max(1);
        let runners: Vec<Box<database::ActionRunner>> = (0..workers)
            .map(|_| {
                let mut connection = named.connection.clone();
                Box::new(move |action: &str, input: &str| -> anyhow::Result<String> {
                    let manager = TokenManager::new(host, store);
                    let mut waits = 0;
                    loop {
                        match manager.run_action(key, &mut connection, action, input) {
                            // Every call here reads, so a throttled one is simply made again
                            // after the service's Retry-After: several table threads share
                            // one service-protection budget, and the component's own retries
                            // may not outlast it.
                            Err(CallError::Connector(failure))
                                if failure.code == ErrorCode::Throttled
                                    && waits < THROTTLED_CALLS =>
                            {
                                waits += 1;
                                let wait =
                                    failure.retry_after_ms.unwrap_or(1000).clamp(100, 300_000);
                                std::thread::sleep(Duration::from_millis(wait));
                            }
                            outcome => return outcome.map_err(failed),
                        }
                    }
                }) as Box<database::ActionRunner>
            })
            .collect();
        let summary = match progress::Mode::detect() {
            progress::Mode::Bars => {
                let bars = Bars::new();
                let summary = database::run(runners, open, &options, &bars);
                bars.finish();
                summary
            }
            progress::Mode::Lines => database::run(
                runners,
                open,
                &options,
                &database::Lines(Mutex::new(std::io::stderr())),
            ),
        }?;
        for (table, rows) in &summary.landed {
            let deleted = summary.deleted.get(table).copied().unwrap_or(0);
            println!("{table}: {rows} rows landed, {deleted} deleted");
        }
        if !summary.complete {
            println!("stopped before the end; run again to continue");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A bar per table, several at once: rows landed this run, pages and rows in the table.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<Vec<(String, ProgressBar)>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(Vec::new()),
        }
    }

    fn bar(&self, table: &str) -> Option<ProgressBar> {
        let bars = self.bars.lock().ok()?;
        bars.iter()
            .find(|(t, _)| t == table)
            .map(|(_, b)| b.clone())
    }

    fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for (_, bar) in bars.iter().filter(|(_, b)| !b.is_finished()) {
                bar.abandon();
            }
        }
    }
}

impl TableProgress for Bars {
    fn started(&self, table: &str, rows: u64) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} {prefix:.bold} {human_pos} rows, {per_sec} · {elapsed} · {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓"),
        );
        bar.set_prefix(table.to_string());
        bar.set_message(format!("{rows} rows in the table"));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            bars.push((table.to_string(), bar));
        }
    }

    fn page(&self, report: &PageReport) {
        let Some(bar) = self.bar(report.table) else {
            return;
        };
        bar.set_position(report.rows_this_run);
        bar.set_message(format!(
            "{} page{}, {} rows in the table{}",
            report.pages_this_run,
            if report.pages_this_run == 1 { "" } else { "s" },
            report.rows_in_all,
            if report.complete { ", complete" } else { "" }
        ));
        if report.complete {
            bar.finish();
        }
    }

    fn notice(&self, table: &str, text: &str) {
        let _ = self.multi.println(format!("notice: {table}: {text}"));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        global: Global,
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["extract", "-c", "connection.json"].iter().chain(extra))
    }

    #[test]
    fn partitions_outside_one_to_thirty_two_are_refused_naming_the_flag() {
        for bad in ["0", "33", "many"] {
            let error = parse(&["--partitions", bad]).err().expect(bad).to_string();
            assert!(error.contains("--partitions"), "{bad}: {error}");
        }
        let cli = parse(&["--partitions", "32", "--mode", "watermark"]).unwrap();
        assert_eq!(cli.args.partitions, 32);
        assert_eq!(cli.args.mode, ReadMode::Watermark);
        let defaults = parse(&[]).unwrap();
        assert_eq!(
            (defaults.args.partitions, defaults.args.mode),
            (1, ReadMode::Auto)
        );
        let error = parse(&["--mode", "delta"]).err().unwrap().to_string();
        assert!(
            error.contains("--mode") && error.contains("auto or watermark"),
            "{error}"
        );
    }

    #[test]
    fn partitions_into_ndjson_are_refused_before_anything_is_read() {
        let cli = parse(&["--to", "ndjson:/nonexistent/out", "--partitions", "4"]).unwrap();
        let error = cli.args.run(&cli.global).unwrap_err().to_string();
        assert!(error.contains("--partitions is for databases"), "{error}");
    }
}
