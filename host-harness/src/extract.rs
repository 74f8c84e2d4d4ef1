//! The extract command: Get New and Updated Records for one or more tables, appended to one
//! NDJSON file per table, resumable from a state file; or landed in a database (see
//! [`database`]).
//!
//! After each call the state file records, per table, the watermark and the length of the
//! NDJSON file that goes with it. A resumed run first cuts each file back to that length, so rows
//! written after the last saved state (a crash between the two writes) are not written twice.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use dynamics_host::{Connection, Host};

pub mod database;
pub mod destination;
pub mod partitions;
pub mod postgres;
pub mod schema;
pub mod sqlite;

/// The seed's stream list (Sling's Dynamics 365 endpoints): what `dynamics extract` reads when
/// no table is named. Tables of modules an environment lacks land 0 rows with a notice.
pub const DEFAULT_TABLES: &[&str] = &[
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "quotes",
    "salesorders",
    "invoices",
    "products",
    "incidents",
    "activitypointers",
    "emails",
    "tasks",
    "phonecalls",
    "appointments",
    "campaigns",
    "systemusers",
    "teams",
    "businessunits",
    "transactioncurrencies",
    "annotations",
];

/// What to extract and where.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub tables: Vec<String>,
    pub out_dir: PathBuf,
    pub state_file: PathBuf,
    /// Rows per request and per call (at most 5000).
    pub page_size: u32,
    /// Read rows modified at or after this instant when a table has no watermark yet.
    pub anchor_date: Option<String>,
    /// Stop after this many calls in all (tests use it to interrupt a run).
    pub max_calls: Option<usize>,
}

/// What one call of the action answers, records kept as raw JSON text.
#[derive(Deserialize)]
struct Output<'a> {
    #[serde(borrow)]
    records: Vec<&'a serde_json::value::RawValue>,
    #[serde(rename = "nextWatermark")]
    next_watermark: Option<String>,
    complete: bool,
    warning: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct TableState {
    watermark: Option<String>,
    records: u64,
    bytes: u64,
    complete: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    tables: BTreeMap<String, TableState>,
}

/// Rows written per table in this run, and whether every table is complete.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub written: BTreeMap<String, u64>,
    pub complete: bool,
    pub warnings: Vec<String>,
}

/// What the extraction reports after each call: rows of the table written so far and in this
/// run, and the calls (pages) this run made for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageReport<'a> {
    pub table: &'a str,
    /// The table's place in the run (from 1) and the number of tables.
    pub table_number: usize,
    pub tables: usize,
    /// Rows in the table's NDJSON file, from this run and earlier ones.
    pub rows_in_all: u64,
    pub rows_this_run: u64,
    pub rows_this_page: u64,
    pub pages_this_run: u64,
    /// The table is read to the end: the next report, if any, is of the next table.
    pub complete: bool,
}

/// Where the extraction reports its progress: the CLI draws bars on a terminal, [`Lines`]
/// writes a line per call.
pub trait Progress {
    /// A table is about to be read; `rows_in_all` are the rows earlier runs wrote.
    fn table_started(&mut self, table: &str, table_number: usize, tables: usize, rows_in_all: u64) {
        let _ = (table, table_number, tables, rows_in_all);
    }
    /// A call's rows are written and the state is saved.
    fn page(&mut self, report: &PageReport) -> anyhow::Result<()>;
}

/// One plain line per call, `accounts: 40 rows in all, 20 this run[, complete]`: the stable
/// output scripts read.
pub struct Lines<W: Write>(pub W);

impl<W: Write> Progress for Lines<W> {
    fn page(&mut self, report: &PageReport) -> anyhow::Result<()> {
        writeln!(
            self.0,
            "{}: {} rows in all, {} this run{}",
            report.table,
            report.rows_in_all,
            report.rows_this_run,
            if report.complete { ", complete" } else { "" }
        )?;
        Ok(())
    }
}

/// Runs `get-new-and-updated-records` with an input JSON and gives its output JSON; the caller
/// decides how tokens are kept (see [`with_host`]).
pub type Runner<'a> = dyn FnMut(&str) -> anyhow::Result<String> + 'a;

/// A runner over a host and a connection, renewing the token once on `unauthenticated`.
pub fn with_host<'a>(
    host: &'a Host,
    connection: &'a mut Connection,
) -> impl FnMut(&str) -> anyhow::Result<String> + 'a {
    move |input: &str| {
        // A component's error reads as `describe_error` shows it; a host's as its own message.
        Ok(host.run_action("get-new-and-updated-records", connection, input)?)
    }
}

/// Runs the extraction; `progress` gets one line per call (see [`Lines`]).
pub fn run(
    runner: &mut Runner,
    options: &ExtractOptions,
    progress: &mut dyn Write,
) -> anyhow::Result<Summary> {
    run_with(runner, options, &mut Lines(progress))
}

/// Runs the extraction, reporting each table and each call to `progress`.
pub fn run_with(
    runner: &mut Runner,
    options: &ExtractOptions,
    progress: &mut dyn Progress,
) -> anyhow::Result<Summary> {
    fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    let mut state: State = match fs::read_to_string(&options.state_file) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("reading state file {}", options.state_file.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("reading state file {}", options.state_file.display()));
        }
    };
    let mut summary = Summary {
        written: BTreeMap::new(),
        complete: true,
        warnings: Vec::new(),
    };
    let mut calls = 0usize;
    for (index, table) in options.tables.iter().enumerate() {
        if !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || table.is_empty()
        {
            bail!("{table:?} is not an entity set name");
        }
        let path = options.out_dir.join(format!("{table}.ndjson"));
        let mut table_state = state.tables.get(table).cloned().unwrap_or_default();
        cut_back(&path, table_state.bytes)?;
        table_state.complete = false;
        let written = summary.written.entry(table.clone()).or_default();
        let mut pages = 0u64;
        progress.table_started(table, index + 1, options.tables.len(), table_state.records);
        loop {
            if options.max_calls.is_some_and(|max| calls >= max) {
                summary.complete = false;
                return Ok(summary);
            }
            calls += 1;
            let mut input = json!({"entityType": table, "recordsPerPage": options.page_size, "maxRecords": options.page_size});
            match (&table_state.watermark, &options.anchor_date) {
                (Some(watermark), _) => input["watermark"] = json!(watermark),
                (None, Some(anchor)) => input["anchorDate"] = json!(anchor),
                (None, None) => {}
            }
            let output =
                runner(&input.to_string()).with_context(|| format!("extracting {table}"))?;
            let output: Output = serde_json::from_str(&output)
                .context("the action's output is not the expected JSON")?;
            if let Some(warning) = output.warning {
                summary.warnings.push(warning);
            }
            // Records are copied as the service wrote them; only one that spans lines is
            // re-encoded, so each stays on its own NDJSON line.
            let mut lines =
                String::with_capacity(output.records.iter().map(|r| r.get().len() + 1).sum());
            for record in &output.records {
                let text = record.get();
                if text.contains('\n') {
                    let value: Value = serde_json::from_str(text)?;
                    lines.push_str(&value.to_string());
                } else {
                    lines.push_str(text);
                }
                lines.push('\n');
            }
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            file.write_all(lines.as_bytes())?;
            file.sync_data()?;
            table_state.bytes += lines.len() as u64;
            table_state.records += output.records.len() as u64;
            *written += output.records.len() as u64;
            table_state.watermark = output.next_watermark;
            table_state.complete = output.complete;
            state.tables.insert(table.clone(), table_state.clone());
            save(&options.state_file, &state)?;
            pages += 1;
            progress.page(&PageReport {
                table,
                table_number: index + 1,
                tables: options.tables.len(),
                rows_in_all: table_state.records,
                rows_this_run: *written,
                rows_this_page: output.records.len() as u64,
                pages_this_run: pages,
                complete: table_state.complete,
            })?;
            if table_state.complete {
                break;
            }
        }
    }
    Ok(summary)
}

/// Cuts an NDJSON file back to the length the saved state knows.
fn cut_back(path: &Path, bytes: u64) -> anyhow::Result<()> {
    match fs::metadata(path) {
        Ok(metadata) if metadata.len() > bytes => {
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(bytes)?;
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn save(path: &Path, state: &State) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports as the extraction makes them.
    #[derive(Default)]
    struct Recorded(Vec<String>);

    impl Progress for Recorded {
        fn table_started(&mut self, table: &str, number: usize, tables: usize, rows: u64) {
            self.0
                .push(format!("start {table} {number}/{tables} {rows}"));
        }
        fn page(&mut self, r: &PageReport) -> anyhow::Result<()> {
            self.0.push(format!(
                "page {} {}/{} all={} run={} page={} pages={} complete={}",
                r.table,
                r.table_number,
                r.tables,
                r.rows_in_all,
                r.rows_this_run,
                r.rows_this_page,
                r.pages_this_run,
                r.complete
            ));
            Ok(())
        }
    }

    /// A stand-in for the action: two rows per call, `rows` rows per table.
    fn fake(rows: usize) -> impl FnMut(&str) -> anyhow::Result<String> {
        move |input: &str| {
            let input: Value = serde_json::from_str(input)?;
            let from: usize = input["watermark"]
                .as_str()
                .map_or(0, |w| w.parse().unwrap());
            let to = (from + 2).min(rows);
            let records: Vec<Value> = (from..to).map(|i| json!({"id": i})).collect();
            Ok(json!({"records": records, "nextWatermark": to.to_string(), "complete": to == rows, "warning": null}).to_string())
        }
    }

    fn options(name: &str) -> ExtractOptions {
        let dir = std::env::temp_dir().join(format!("extract-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        ExtractOptions {
            tables: vec!["accounts".to_string(), "contacts".to_string()],
            state_file: dir.join("state.json"),
            out_dir: dir,
            page_size: 2,
            anchor_date: None,
            max_calls: None,
        }
    }

    #[test]
    fn progress_hears_of_each_table_and_each_page_with_rows_and_pages() {
        let options = options("reports");
        let mut recorded = Recorded::default();
        run_with(&mut fake(3), &options, &mut recorded).unwrap();
        assert_eq!(
            recorded.0,
            [
                "start accounts 1/2 0",
                "page accounts 1/2 all=2 run=2 page=2 pages=1 complete=false",
                "page accounts 1/2 all=3 run=3 page=1 pages=2 complete=true",
                "start contacts 2/2 0",
                "page contacts 2/2 all=2 run=2 page=2 pages=1 complete=false",
                "page contacts 2/2 all=3 run=3 page=1 pages=2 complete=true",
            ]
        );
        let _ = fs::remove_dir_all(&options.out_dir);
    }

    #[test]
    fn the_plain_lines_stay_as_scripts_read_them() {
        let options = options("lines");
        let mut lines = Vec::new();
        run(&mut fake(3), &options, &mut lines).unwrap();
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            "accounts: 2 rows in all, 2 this run\n\
             accounts: 3 rows in all, 3 this run, complete\n\
             contacts: 2 rows in all, 2 this run\n\
             contacts: 3 rows in all, 3 this run, complete\n"
        );
        // A second run starts from the saved state: rows earlier runs wrote are reported.
        let mut recorded = Recorded::default();
        run_with(&mut fake(3), &options, &mut recorded).unwrap();
        assert_eq!(recorded.0[0], "start accounts 1/2 3");
        let _ = fs::remove_dir_all(&options.out_dir);
    }
}
