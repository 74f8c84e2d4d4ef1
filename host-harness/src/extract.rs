//! The extract command: Get New and Updated Records for one or more tables, appended to one
//! NDJSON file per table, resumable from a state file.
//!
//! After each call the state file records, per table, the watermark and the length of the
//! NDJSON file that goes with it. A resumed run first cuts each file back to that length, so rows
//! written after the last saved state (a crash between the two writes) are not written twice.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Connection, Host, describe_error};

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

/// Runs `get-new-and-updated-records` with an input JSON and gives its output JSON; the caller
/// decides how tokens are kept (see [`with_host`]).
pub type Runner<'a> = dyn FnMut(&str) -> anyhow::Result<String> + 'a;

/// A runner over a host and a connection, renewing the token once on `unauthenticated`.
pub fn with_host<'a>(
    host: &'a Host,
    connection: &'a mut Connection,
) -> impl FnMut(&str) -> anyhow::Result<String> + 'a {
    move |input: &str| {
        host.run_action("get-new-and-updated-records", connection, input)?
            .map_err(|failure| anyhow!(describe_error(&failure)))
    }
}

/// Runs the extraction; `progress` gets one line per call.
pub fn run(
    runner: &mut Runner,
    options: &ExtractOptions,
    progress: &mut dyn Write,
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
    for table in &options.tables {
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
            writeln!(
                progress,
                "{table}: {} rows in all, {} this run{}",
                table_state.records,
                written,
                if table_state.complete {
                    ", complete"
                } else {
                    ""
                }
            )?;
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
