//! Extraction into a database (SQLite or PostgreSQL): typed tables keyed on the row ID, rows
//! upserted, deletes applied, and each call's rows committed in one transaction with the
//! table's extraction state (`_dynamics_extract_state`), so a run killed at any point and run
//! again lands every row exactly once. The next page is read while a writer thread commits
//! the last one, pages landing in the order they were read.
//!
//! A table whose definition has `ChangeTrackingEnabled` is read through Get New and Updated
//! Records' change-tracking mode, which reports deleted rows (learn.microsoft.com/power-apps/
//! developer/data-platform/use-change-tracking-synchronize-data-external-systems); the delta
//! link is the state. Other tables are read by watermark (`modifiedon`), page by page, and
//! deletes cannot be seen there, which a notice says. [`ReadMode::Watermark`] reads tracked
//! tables that way too.
//!
//! With `partitions` above 1, a table's first watermark read is split into ranges of
//! `createdon` read at the same time (see [`super::partitions`]): each range's progress is a
//! state row of its own (`<table>#<n>`), committed with its rows, so a run stopped midway goes on
//! with each range where it stopped; the table's own row holds the plan until every range is
//! complete, then the instant the next read starts from.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::partitions::{Plan, Range};
use split::{Split, drop_range_states};

/// A table's first read split into ranges of `createdon`: the plan and the reading of a range.
#[path = "split.rs"]
mod split;
use super::schema::{Cell, Column, Kind, TableSchema, check_identifier};
use super::{PageReport, Summary};

/// The state table: one row per extracted table, written in the transaction of its rows.
pub const STATE_TABLE: &str = "_dynamics_extract_state";

/// What happens to a row Dataverse reports deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletes {
    /// The row is deleted from the database.
    Delete,
    /// The row stays, with `_deleted` true and `_deleted_at` the time it was seen deleted.
    Flag,
}

impl std::str::FromStr for Deletes {
    type Err = String;
    fn from_str(text: &str) -> Result<Deletes, String> {
        match text {
            "delete" => Ok(Deletes::Delete),
            "flag" => Ok(Deletes::Flag),
            other => Err(format!("{other:?} is not delete or flag")),
        }
    }
}

/// How a table with change tracking is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Through change tracking where the table has it (deleted rows seen), else by watermark.
    Auto,
    /// By watermark (`modifiedon`) always: a first read can be split into ranges, but rows
    /// deleted in Dataverse are not seen.
    Watermark,
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(text: &str) -> Result<ReadMode, String> {
        match text {
            "auto" => Ok(ReadMode::Auto),
            "watermark" => Ok(ReadMode::Watermark),
            other => Err(format!("{other:?} is not auto or watermark")),
        }
    }
}

/// The SQL spelling of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The column type of a kind. SQLite keeps money and decimals as TEXT: its NUMERIC
    /// affinity would turn them into 8-byte floats and lose digits, while the text is the exact
    /// number Dataverse sent (`CAST(x AS REAL)` or `sum()` still read it as a number).
    pub fn column_type(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (Dialect::Sqlite, Kind::Integer | Kind::BigInt | Kind::Boolean) => "INTEGER",
            (Dialect::Sqlite, Kind::Float) => "REAL",
            (Dialect::Sqlite, _) => "TEXT",
            (Dialect::Postgres, Kind::Text) => "TEXT",
            (Dialect::Postgres, Kind::Uuid) => "UUID",
            (Dialect::Postgres, Kind::Integer) => "INTEGER",
            (Dialect::Postgres, Kind::BigInt) => "BIGINT",
            (Dialect::Postgres, Kind::Numeric) => "NUMERIC",
            (Dialect::Postgres, Kind::Float) => "DOUBLE PRECISION",
            (Dialect::Postgres, Kind::Boolean) => "BOOLEAN",
            (Dialect::Postgres, Kind::Timestamp) => "TIMESTAMPTZ",
            (Dialect::Postgres, Kind::Date) => "DATE",
        }
    }

    /// The `n`th parameter (from 1) as a value of `kind`: PostgreSQL gets every value as text
    /// and casts it, so one binding type serves every column.
    pub fn parameter(self, n: usize, kind: Kind) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres if kind == Kind::Text => format!("${n}::text"),
            Dialect::Postgres => format!("${n}::text::{}", self.column_type(kind)),
        }
    }

    fn now(self) -> &'static str {
        match self {
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ','now')",
            Dialect::Postgres => "now()",
        }
    }

    fn flag_columns(self) -> [(&'static str, &'static str); 2] {
        match self {
            Dialect::Sqlite => [
                ("_deleted", "INTEGER NOT NULL DEFAULT 0"),
                ("_deleted_at", "TEXT"),
            ],
            Dialect::Postgres => [
                ("_deleted", "BOOLEAN NOT NULL DEFAULT false"),
                ("_deleted_at", "TIMESTAMPTZ"),
            ],
        }
    }
}

/// A table's extraction state as committed with its rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SavedState {
    /// `change-tracking` (cursor: the delta link) or `watermark` (cursor: the next watermark).
    pub mode: String,
    pub cursor: Option<String>,
    pub complete: bool,
}

/// One call's worth of changes to a table, applied in one transaction.
pub struct Landing<'a> {
    pub table: &'a str,
    /// The state row the landing's state is saved under: the table, or one of its ranges.
    pub state_key: &'a str,
    pub primary_id: &'a str,
    pub columns: &'a [Column],
    pub rows: Vec<(String, Vec<Cell>)>,
    pub deleted: Vec<String>,
    pub deletes: Deletes,
    pub state: SavedState,
}

/// The statements a landing runs, in the database's dialect.
pub struct Statements {
    /// Parameters: the ID, then one per column.
    pub upsert: String,
    /// Parameter: the ID.
    pub delete: String,
    /// Parameters: table name, mode, resume_from, complete (as text `true`/`false` in PostgreSQL,
    /// an integer in SQLite).
    pub state: String,
}

/// A name as an SQL identifier. Every name passed `check_identifier` (letters, digits,
/// underscores), so the doubling of quotes only matters to other callers of the public API.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Landing<'_> {
    /// The columns an upsert writes (the key, the table's columns, and the deletion flags when
    /// deletes are flagged) and its `ON CONFLICT` action.
    fn upsert_target(&self) -> (Vec<String>, String) {
        let key = quote(self.primary_id);
        let mut names = vec![key];
        let mut updates = Vec::new();
        for column in self.columns {
            let name = quote(&column.name);
            updates.push(format!("{name} = excluded.{name}"));
            names.push(name);
        }
        if self.deletes == Deletes::Flag {
            // A row seen again (restored from the recycle bin, or its ID reused) is live again.
            names.push(quote("_deleted"));
            names.push(quote("_deleted_at"));
            updates.push("\"_deleted\" = excluded.\"_deleted\"".into());
            updates.push("\"_deleted_at\" = NULL".into());
        }
        let conflict = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        (names, conflict)
    }

    /// A temporary table of text columns the rows are copied into before one upsert moves
    /// them ([`Landing::upsert_staged`]): `_ordinal` (the order rows came in), `id`, then
    /// `c1`… for the columns in order. PostgreSQL only; dropped at commit.
    pub fn stage_ddl(&self, stage: &str) -> String {
        let columns: String = (1..=self.columns.len())
            .map(|n| format!(", c{n} TEXT"))
            .collect();
        format!("CREATE TEMP TABLE {stage} (_ordinal BIGSERIAL, id TEXT{columns}) ON COMMIT DROP")
    }

    /// The `COPY` that fills the stage, in PostgreSQL's text format.
    pub fn stage_copy(&self, stage: &str) -> String {
        let columns: String = (1..=self.columns.len())
            .map(|n| format!(", c{n}"))
            .collect();
        format!("COPY {stage} (id{columns}) FROM STDIN")
    }

    /// The upsert of every staged row, each ID's last row only (a page that names a row twice
    /// lands its later version, as row-by-row upserts would), cast as the parameters of
    /// [`Landing::upsert`] are.
    pub fn upsert_staged(&self, stage: &str) -> String {
        let dialect = Dialect::Postgres;
        let (names, conflict) = self.upsert_target();
        let mut values = vec![format!("id::{}", dialect.column_type(Kind::Uuid))];
        for (index, column) in self.columns.iter().enumerate() {
            values.push(match column.kind {
                Kind::Text => format!("c{}", index + 1),
                kind => format!("c{}::{}", index + 1, dialect.column_type(kind)),
            });
        }
        if self.deletes == Deletes::Flag {
            values.push("false".into());
            values.push("NULL".into());
        }
        format!(
            "INSERT INTO {} ({}) SELECT DISTINCT ON (id::uuid) {} FROM {stage} ORDER BY id::uuid, _ordinal DESC ON CONFLICT ({}) {conflict}",
            quote(self.table),
            names.join(", "),
            values.join(", "),
            quote(self.primary_id),
        )
    }

    /// The upsert of `rows` rows in one statement: parameters are each row's ID then its
    /// columns, row after row.
    pub fn upsert(&self, dialect: Dialect, rows: usize) -> String {
        let table = quote(self.table);
        let key = quote(self.primary_id);
        let (names, conflict) = self.upsert_target();
        let flag = self.deletes == Deletes::Flag;
        let width = self.columns.len() + 1;
        let tuples: Vec<String> = (0..rows)
            .map(|row| {
                let base = row * width;
                let mut values = vec![dialect.parameter(base + 1, Kind::Uuid)];
                for (index, column) in self.columns.iter().enumerate() {
                    values.push(dialect.parameter(base + index + 2, column.kind));
                }
                if flag {
                    values.push(
                        if dialect == Dialect::Sqlite {
                            "0"
                        } else {
                            "false"
                        }
                        .into(),
                    );
                    values.push("NULL".into());
                }
                format!("({})", values.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {table} ({}) VALUES {} ON CONFLICT ({key}) {conflict}",
            names.join(", "),
            tuples.join(", ")
        )
    }

    pub fn statements(&self, dialect: Dialect) -> Statements {
        let table = quote(self.table);
        let key = quote(self.primary_id);
        let upsert = self.upsert(dialect, 1);
        let id = dialect.parameter(1, Kind::Uuid);
        let delete = match self.deletes {
            Deletes::Delete => format!("DELETE FROM {table} WHERE {key} = {id}"),
            Deletes::Flag => format!(
                "UPDATE {table} SET \"_deleted\" = {}, \"_deleted_at\" = {} WHERE {key} = {id} AND NOT \"_deleted\"",
                if dialect == Dialect::Sqlite {
                    "1"
                } else {
                    "true"
                },
                dialect.now()
            ),
        };
        let complete = match dialect {
            Dialect::Sqlite => "?4".to_string(),
            Dialect::Postgres => "$4::text::boolean".to_string(),
        };
        let state = format!(
            "INSERT INTO {STATE_TABLE} (table_name, mode, resume_from, complete, updated_at) VALUES ({}, {}, {}, {complete}, {}) \
             ON CONFLICT (table_name) DO UPDATE SET mode = excluded.mode, resume_from = excluded.resume_from, complete = excluded.complete, updated_at = excluded.updated_at",
            dialect.parameter(1, Kind::Text),
            dialect.parameter(2, Kind::Text),
            dialect.parameter(3, Kind::Text),
            dialect.now(),
        );
        Statements {
            upsert,
            delete,
            state,
        }
    }
}

/// The DDL of the state table.
pub fn state_table_ddl(dialect: Dialect) -> String {
    let boolean = if dialect == Dialect::Sqlite {
        "INTEGER"
    } else {
        "BOOLEAN"
    };
    let time = if dialect == Dialect::Sqlite {
        "TEXT"
    } else {
        "TIMESTAMPTZ"
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (table_name TEXT PRIMARY KEY, mode TEXT NOT NULL, \
         resume_from TEXT, complete {boolean} NOT NULL, updated_at {time} NOT NULL)"
    )
}

/// A database the rows land in; one per worker thread.
pub trait Database: Send {
    fn dialect(&self) -> Dialect;
    /// Runs statements without parameters (DDL).
    fn execute(&mut self, sql: &str) -> anyhow::Result<()>;
    /// The table's column names; empty when there is no such table.
    fn columns(&mut self, table: &str) -> anyhow::Result<Vec<String>>;
    /// The saved state of a table, if a run committed one.
    fn state(&mut self, table: &str) -> anyhow::Result<Option<SavedState>>;
    /// The IDs the table holds (for the sweep after a full re-read).
    fn ids(&mut self, table: &str, primary_id: &str) -> anyhow::Result<Vec<String>>;
    fn count(&mut self, table: &str) -> anyhow::Result<u64>;
    /// Upserts the rows, applies the deletes and saves the state in one transaction; says how
    /// many rows the table gained and lost by it.
    fn apply(&mut self, landing: &Landing) -> anyhow::Result<Applied>;
}

/// The message a panicking thread left (`panic!` with text or a format), empty otherwise.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// What one [`Database::apply`] did to the table's row count, so the progress line "N rows in
/// all" is kept as a running sum: a `count(*)` after every page scanned every row landed so far,
/// a cost that grew with the table (hundreds of milliseconds a page at millions of rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows of the page whose ID the table did not hold before.
    pub added: u64,
    /// Rows deleted (a flagged row stays in the table and is not counted here).
    pub removed: u64,
}

impl Applied {
    /// `rows` after this page.
    pub fn onto(self, rows: u64) -> u64 {
        debug_assert!(
            rows + self.added >= self.removed,
            "{self:?} onto {rows} rows"
        );
        (rows + self.added).saturating_sub(self.removed)
    }
}

/// The distinct IDs of a page, in the form they are stored and compared in.
pub(super) fn distinct_ids<'l>(landing: &'l Landing<'_>) -> Vec<&'l str> {
    let mut seen = HashSet::new();
    landing
        .rows
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| seen.insert(*id))
        .collect()
}

/// Makes the table, or adds the columns it lacks (the table's schema grew in Dataverse or a
/// row brought a column the definition did not list).
fn ensure(
    db: &mut dyn Database,
    schema: &TableSchema,
    deletes: Deletes,
    known: &mut HashSet<String>,
) -> anyhow::Result<Vec<String>> {
    let dialect = db.dialect();
    if known.is_empty() {
        known.extend(db.columns(&schema.table)?);
    }
    let mut wanted: Vec<(String, String)> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), dialect.column_type(c.kind).to_string()))
        .collect();
    if deletes == Deletes::Flag {
        wanted.extend(
            dialect
                .flag_columns()
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string())),
        );
    }
    let table = quote(&schema.table);
    let mut added = Vec::new();
    if known.is_empty() {
        let mut definitions = vec![format!(
            "{} {} PRIMARY KEY",
            quote(&schema.primary_id),
            dialect.column_type(Kind::Uuid)
        )];
        definitions.extend(wanted.iter().map(|(n, t)| format!("{} {t}", quote(n))));
        db.execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} ({})",
            definitions.join(", ")
        ))
        .with_context(|| format!("creating table {}", schema.table))?;
        known.insert(schema.primary_id.clone());
        known.extend(wanted.into_iter().map(|(n, _)| n));
        return Ok(added);
    }
    for (name, kind) in wanted {
        if !known.contains(&name) {
            let altered = db.execute(&format!(
                "ALTER TABLE {table} ADD COLUMN {} {kind}",
                quote(&name)
            ));
            // Workers reading ranges of one table may add the same column at once: the one
            // that loses finds it there.
            if let Err(error) = altered
                && !db.columns(&schema.table)?.contains(&name)
            {
                return Err(error)
                    .with_context(|| format!("adding column {name} to {}", schema.table));
            }
            known.insert(name.clone());
            added.push(name);
        }
    }
    Ok(added)
}

/// Calls an action of the component with an input JSON and gives its output JSON.
pub type ActionRunner<'a> = dyn FnMut(&str, &str) -> anyhow::Result<String> + Send + 'a;

/// Opens a connection to the database; each worker thread opens its own.
pub type Opener<'a> = dyn Fn() -> anyhow::Result<Box<dyn Database>> + Sync + 'a;

/// What to extract into a database, and how.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub tables: Vec<String>,
    /// Rows per request, and per call in watermark mode (at most 5000).
    pub page_size: u32,
    /// Watermark mode's first read starts here (the action's default: a year back).
    pub anchor_date: Option<String>,
    pub deletes: Deletes,
    /// Tables read at the same time, each by its own thread and component call.
    pub parallel: usize,
    /// Ranges a table's first watermark read is split into (1: not split; at most
    /// [`super::partitions::MAX_PARTITIONS`]); the ranges are read by the same workers.
    pub partitions: usize,
    /// Whether tracked tables are read through change tracking.
    pub mode: ReadMode,
    /// Stop after this many calls of Get New and Updated Records in all (tests interrupt a
    /// run with it).
    pub max_calls: Option<usize>,
}

/// Where the extraction reports, from several threads at once.
pub trait TableProgress: Sync {
    /// A table is about to be read; `rows` are the rows it holds already.
    fn started(&self, table: &str, rows: u64);
    /// A call's rows are committed.
    fn page(&self, report: &PageReport);
    /// Something the user should know that is not a failure (no such table, no deletes).
    fn notice(&self, table: &str, text: &str);
}

/// The plain line per call that scripts read, as the NDJSON extraction writes them, and the
/// notices as `notice: ` lines.
pub struct Lines<W: std::io::Write + Send>(pub Mutex<W>);

impl<W: std::io::Write + Send> TableProgress for Lines<W> {
    fn started(&self, _table: &str, _rows: u64) {}
    fn page(&self, report: &PageReport) {
        if let Ok(mut out) = self.0.lock() {
            let _ = writeln!(
                out,
                "{}: {} rows in all, {} this run{}",
                report.table,
                report.rows_in_all,
                report.rows_this_run,
                if report.complete { ", complete" } else { "" }
            );
        }
    }
    fn notice(&self, table: &str, text: &str) {
        if let Ok(mut out) = self.0.lock() {
            let _ = writeln!(out, "notice: {table}: {text}");
        }
    }
}

/// Rows landed and deleted per table, notices, and whether every table is complete.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatabaseSummary {
    pub landed: BTreeMap<String, u64>,
    pub deleted: BTreeMap<String, u64>,
    pub notices: Vec<String>,
    pub complete: bool,
}

impl DatabaseSummary {
    /// The NDJSON summary's shape, for callers that print either.
    pub fn as_summary(&self) -> Summary {
        Summary {
            written: self.landed.clone(),
            complete: self.complete,
            warnings: self.notices.clone(),
        }
    }
}

/// Runs the extraction: `runners` are one action runner per worker (their number caps the
/// parallelism), `open` opens the database for each.
pub fn run<'a>(
    mut runners: Vec<Box<ActionRunner<'a>>>,
    open: &Opener,
    options: &DatabaseOptions,
    progress: &dyn TableProgress,
) -> anyhow::Result<DatabaseSummary> {
    for table in &options.tables {
        check_identifier(table).map_err(|_| anyhow!("{table:?} is not an entity set name"))?;
    }
    if runners.is_empty() {
        bail!("no runner to call the component with");
    }
    // Checked before any call: a range plan fixes its start from it.
    if let Some(since) = &options.anchor_date {
        dataverse::encoding::parse_instant(since)
            .map_err(|problem| anyhow!("--since {}", problem.explain(since)))?;
    }
    // The state table is made once, before threads race to make it.
    let mut db = open()?;
    db.execute(&state_table_ddl(db.dialect()))
        .context("creating the state table")?;
    drop(db);

    let mut summary = DatabaseSummary {
        complete: true,
        ..DatabaseSummary::default()
    };
    // Tables this environment does not have (a module not installed) land nothing.
    let installed = entity_sets(runners[0].as_mut())?;
    let mut queue = VecDeque::new();
    // A table named twice is read once: two readers of one table would race on its state row.
    let mut named = HashSet::new();
    for table in options.tables.iter().filter(|t| named.insert(t.as_str())) {
        if installed.contains(table.as_str()) {
            queue.push_back(Task::Table(table.clone()));
        } else {
            let text = "no such table in this environment (is its module installed?); 0 rows";
            progress.notice(table, text);
            summary.notices.push(format!("{table}: {text}"));
            summary.landed.insert(table.clone(), 0);
        }
    }
    // Ranges of a split table are read by as many workers as there are ranges, when the caller
    // gave that many runners; otherwise a worker per table.
    let wanted = if options.partitions > 1 {
        options.parallel.max(options.partitions)
    } else {
        options.parallel.min(queue.len().max(1))
    };
    runners.truncate(wanted.clamp(1, runners.len()));
    let queue = Mutex::new(queue);
    // Tasks being worked on: a table being planned may still add its ranges to the queue, so a
    // worker that finds the queue empty waits while any is.
    let busy = AtomicUsize::new(0);
    let calls = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for mut runner in runners {
            let (queue, busy, calls, stop, results) = (&queue, &busy, &calls, &stop, &results);
            workers.push(scope.spawn(move || {
                let mut db = match open() {
                    Ok(db) => db,
                    Err(error) => {
                        stop.store(true, Ordering::SeqCst);
                        results.lock().unwrap().push(Err(error));
                        return;
                    }
                };
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let task = {
                        let mut queue = queue.lock().unwrap();
                        queue.pop_front().map(|task| (task, Busy::new(busy, stop)))
                    };
                    let Some((task, _busy)) = task else {
                        if busy.load(Ordering::SeqCst) == 0 {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let mut worker = Worker {
                        runner: runner.as_mut(),
                        db: db.as_mut(),
                        options,
                        progress,
                        calls,
                    };
                    let (table, outcome) = match task {
                        Task::Table(table) => {
                            let outcome = match worker.land(&table) {
                                Ok(Landed::Whole(outcome)) => Ok(outcome),
                                Ok(Landed::Split(split, mut outcome)) => {
                                    // The ranges' outcomes say whether the table is complete.
                                    outcome.complete = true;
                                    let mut queue = queue.lock().unwrap();
                                    // At the front: the split table's ranges start now, on
                                    // every worker free.
                                    for index in (0..split.ranges.len()).rev() {
                                        queue.push_front(Task::Range(split.clone(), index));
                                    }
                                    Ok(outcome)
                                }
                                Err(error) => Err(error),
                            };
                            (table, outcome)
                        }
                        Task::Range(split, index) => {
                            let outcome = worker.land_range(&split, index).with_context(|| {
                                format!("range {} of {}", index + 1, split.ranges.len())
                            });
                            (split.table.clone(), outcome)
                        }
                    };
                    let outcome = outcome.with_context(|| format!("extracting {table}"));
                    if outcome.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    results.lock().unwrap().push(outcome.map(|o| (table, o)));
                }
            }));
        }
        // Joined here so that a worker's panic becomes the run's error instead of a panic.
        for worker in workers {
            if let Err(panic) = worker.join() {
                let text = panic_text(panic.as_ref());
                let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
                results.push(Err(anyhow!("an extraction worker panicked: {text}")));
            }
        }
    });
    let mut failure = None;
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    for result in results {
        match result {
            Ok((table, outcome)) => {
                *summary.landed.entry(table.clone()).or_default() += outcome.landed;
                *summary.deleted.entry(table.clone()).or_default() += outcome.deleted;
                summary
                    .notices
                    .extend(outcome.notices.into_iter().map(|n| format!("{table}: {n}")));
                summary.complete &= outcome.complete;
            }
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    if !queue.into_inner().unwrap_or_default().is_empty() {
        summary.complete = false;
    }
    Ok(summary)
}

/// A task being worked on, counted in `busy` until dropped: a worker that finds the queue empty
/// waits while any is (it may still queue a split's ranges), so the count must fall even when
/// the task's worker panics, which then stops the run.
struct Busy<'b> {
    busy: &'b AtomicUsize,
    stop: &'b AtomicBool,
}

impl<'b> Busy<'b> {
    fn new(busy: &'b AtomicUsize, stop: &'b AtomicBool) -> Busy<'b> {
        busy.fetch_add(1, Ordering::SeqCst);
        Busy { busy, stop }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop.store(true, Ordering::SeqCst);
        }
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A unit of work for a worker: a whole table, or one range of a split table.
enum Task {
    Table(String),
    Range(Arc<Split>, usize),
}

/// What reading a table gave: its outcome, or a split whose ranges are still to read.
enum Landed {
    Whole(Outcome),
    Split(Arc<Split>, Outcome),
}

/// The entity set names of the environment's tables, from one metadata request
/// (`EntityDefinitions?$select=EntitySetName`,
/// learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api).
fn entity_sets(runner: &mut ActionRunner) -> anyhow::Result<HashSet<String>> {
    let answer = raw_get(runner, "EntityDefinitions?$select=EntitySetName")
        .context("listing the environment's tables")?;
    Ok(answer["value"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| row["EntitySetName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// A GET through the Raw Request action, its answer's JSON; anything but 200 is an error.
fn raw_get(runner: &mut ActionRunner, path: &str) -> anyhow::Result<Value> {
    let input = json!({"url": format!("/api/data/v9.2/{path}"), "method": "GET"});
    let output: Value = serde_json::from_str(&runner("raw-request", &input.to_string())?)
        .context("the raw request's output is not JSON")?;
    match output["status"].as_u64() {
        Some(200) => Ok(output["data"].clone()),
        status => bail!(
            "GET {path} answered {}: {}",
            status.map_or("no status".to_string(), |s| s.to_string()),
            output["data"]
        ),
    }
}

#[derive(Default)]
struct Outcome {
    landed: u64,
    deleted: u64,
    notices: Vec<String>,
    complete: bool,
}

struct Worker<'w, 'a> {
    runner: &'w mut ActionRunner<'a>,
    db: &'w mut dyn Database,
    options: &'w DatabaseOptions,
    progress: &'w dyn TableProgress,
    calls: &'w AtomicUsize,
}

/// One page, read and waiting to land ([`Worker::pages`]).
struct PageToLand {
    /// What the call said about the page (a warning, a resync), told when it lands.
    notices: Vec<String>,
    /// The table's schema when the page made it grow: its new columns are added first.
    schema: Option<TableSchema>,
    columns: Vec<Column>,
    rows: Vec<(String, Vec<Cell>)>,
    deleted: Vec<String>,
    /// The whole table was read again after an expired delta link: rows it lacks are deleted.
    resynced: bool,
    /// The read's state after this page (its cursor, and whether the read is complete).
    state: SavedState,
}

/// What one call of Get New and Updated Records answers, both modes.
#[derive(Deserialize)]
struct Output<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
    #[serde(rename = "nextWatermark")]
    next_watermark: Option<String>,
    #[serde(rename = "deltaLink")]
    delta_link: Option<String>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
    #[serde(default)]
    deleted: Vec<String>,
    #[serde(default)]
    resynced: bool,
    complete: bool,
    warning: Option<String>,
}

const CHANGE_TRACKING: &str = "change-tracking";
const WATERMARK: &str = "watermark";
/// The state of a table whose next read starts at an instant (the cursor), given as the
/// action's Anchor Date: what a split read leaves once every range is complete.
const SINCE: &str = "watermark-since";
/// The state of a table being read in ranges: the cursor is the [`Plan`].
const PARTITIONED: &str = "partitioned";

/// The doc page that says why a change-tracking read is never split.
const NOT_SPLIT: &str = "change tracking is on for this table and a change-tracking read cannot be split into ranges (it takes no $filter, and the delta link comes only at the end of the whole read: learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems); read whole (--mode watermark splits it, without deletes)";

/// One read of a table, or of a range of it, page after page.
struct Read<'r> {
    table: &'r str,
    /// The state row its progress is saved under.
    state_key: &'r str,
    mode: &'static str,
    /// Where it goes on: a delta link or a watermark.
    cursor: Option<String>,
    /// Where a first watermark read starts.
    anchor: Option<String>,
    range: Option<&'r Range>,
    /// The table's rows, kept as pages land (shared by the ranges of a split table).
    rows: &'r Mutex<u64>,
    /// The split the read is a range of, for the progress reports.
    split: Option<&'r Split>,
}

impl Worker<'_, '_> {
    fn notice(&self, table: &str, outcome: &mut Outcome, text: &str) {
        self.progress.notice(table, text);
        outcome.notices.push(text.to_string());
    }

    fn land(&mut self, table: &str) -> anyhow::Result<Landed> {
        let mut outcome = Outcome::default();
        // The rows the table holds, the start of the running sum the progress lines report: a
        // table not made yet holds none, and any other error is the run's, not a sum that
        // starts from nothing.
        let rows_at_start = if self.db.columns(table)?.is_empty() {
            0
        } else {
            self.db.count(table)?
        };
        self.progress.started(table, rows_at_start);
        let mut schema = self.schema(table)?;
        let mode = match (schema.change_tracking, self.options.mode) {
            (true, ReadMode::Auto) => {
                if self.options.partitions > 1 {
                    self.notice(table, &mut outcome, NOT_SPLIT);
                }
                CHANGE_TRACKING
            }
            (true, ReadMode::Watermark) => {
                let text = "read by modifiedon as --mode watermark asks, not through its change tracking: new and updated rows land, deleted rows are not seen";
                self.notice(table, &mut outcome, text);
                WATERMARK
            }
            (false, _) => {
                let text = "change tracking is off for this table: new and updated rows land, deleted rows cannot be seen";
                self.notice(table, &mut outcome, text);
                WATERMARK
            }
        };
        let mut known = HashSet::new();
        ensure(self.db, &schema, self.options.deletes, &mut known)?;
        // A cursor of the other mode (the table's tracking was switched) cannot be followed:
        // the read starts over, and the upserts make that harmless.
        let saved = self.db.state(table)?;
        let mut cursor = None;
        let mut anchor = self.options.anchor_date.clone();
        match saved {
            Some(saved) if saved.mode == mode => cursor = saved.cursor,
            Some(saved) if mode == WATERMARK && saved.mode == SINCE && saved.cursor.is_some() => {
                anchor = saved.cursor
            }
            Some(saved) if mode == WATERMARK && saved.mode == PARTITIONED => {
                // A split read stopped midway goes on with the plan it made, whatever
                // --partitions and --since say now: its ranges' states hold where each stopped.
                if let Some(plan) = saved.cursor.as_deref().and_then(Plan::parse) {
                    let text = format!(
                        "going on with the first read in {} ranges of createdon begun earlier (rows modified since {})",
                        plan.bounds.len() + 1,
                        plan.anchor
                    );
                    self.notice(table, &mut outcome, &text);
                    return Ok(Landed::Split(
                        self.split(schema, plan, rows_at_start),
                        outcome,
                    ));
                }
                // Its ranges' states cannot be matched to ranges any more: the first read
                // starts over (the upserts make reading rows again harmless).
                let text = "the saved plan of the split first read cannot be read (made by another version, or changed by hand): the first read starts over";
                self.notice(table, &mut outcome, text);
                drop_range_states(self.db, table)?;
                if let Some(plan) = self.start_split(mode, &schema, &mut outcome)? {
                    return Ok(Landed::Split(
                        self.split(schema, plan, rows_at_start),
                        outcome,
                    ));
                }
            }
            _ => {
                if let Some(plan) = self.start_split(mode, &schema, &mut outcome)? {
                    return Ok(Landed::Split(
                        self.split(schema, plan, rows_at_start),
                        outcome,
                    ));
                }
            }
        }
        let rows = Mutex::new(rows_at_start);
        let read = Read {
            table,
            state_key: table,
            mode,
            cursor,
            anchor,
            range: None,
            split: None,
            rows: &rows,
        };
        outcome.complete = self.pages(read, &mut schema, &mut known, &mut outcome)?;
        Ok(Landed::Whole(outcome))
    }

    /// Calls Get New and Updated Records until the read is complete (true) or the run's calls
    /// are spent (false), landing each call's rows with the read's state.
    ///
    /// Reading and landing overlap: while a writer thread commits page N (its rows, deletes
    /// and state in one transaction), the next call reads page N+1, since a call's cursor comes
    /// from its own output, not from the database. Pages land in the order they were read, one
    /// transaction each, as before, so a run stopped at any point has committed a prefix of the
    /// pages with the cursor that goes on from it. When the writer fails, the page read
    /// meanwhile is dropped unlanded and no call follows.
    fn pages(
        &mut self,
        read: Read,
        schema: &mut TableSchema,
        known: &mut HashSet<String>,
        outcome: &mut Outcome,
    ) -> anyhow::Result<bool> {
        let Read {
            table,
            state_key,
            mode,
            mut cursor,
            anchor,
            range,
            split,
            rows: rows_in_all,
        } = read;
        let Worker {
            runner,
            db,
            options,
            progress,
            calls,
        } = self;
        let (options, progress, calls) = (*options, *progress, *calls);
        let Outcome {
            landed,
            deleted: deleted_count,
            notices,
            ..
        } = outcome;
        let primary_id = schema.primary_id.clone();
        std::thread::scope(|scope| -> anyhow::Result<bool> {
            // A rendezvous: the reader hands a page over only when the writer takes it, so at
            // most two pages are in memory (one landing, one read) and no call is made after
            // the writer has failed.
            let (to_writer, pages_read) = std::sync::mpsc::sync_channel::<PageToLand>(0);
            let writer = scope.spawn(|| -> anyhow::Result<()> {
                let mut pages = 0u64;
                for page in pages_read {
                    // A page's notices are told as it lands, after the pages before it.
                    for text in &page.notices {
                        progress.notice(table, text);
                        notices.push(text.clone());
                    }
                    if let Some(grown) = &page.schema {
                        ensure(&mut **db, grown, options.deletes, known)?;
                    }
                    let mut deleted = page.deleted;
                    if page.resynced {
                        // The delta link expired and the whole table was read again: rows it
                        // no longer has were deleted while the link was stale. Asked here,
                        // after every earlier page has landed.
                        let seen: HashSet<&str> =
                            page.rows.iter().map(|(id, _)| id.as_str()).collect();
                        let gone: Vec<String> = db
                            .ids(table, &primary_id)?
                            .into_iter()
                            .filter(|id| !seen.contains(id.to_ascii_lowercase().as_str()))
                            .collect();
                        deleted.extend(gone);
                    }
                    let complete = page.state.complete;
                    let landing = Landing {
                        table,
                        state_key,
                        primary_id: &primary_id,
                        columns: &page.columns,
                        rows: page.rows,
                        deleted,
                        deletes: options.deletes,
                        state: page.state,
                    };
                    let applied = db.apply(&landing)?;
                    // Ranges of one table land at once: the sum is held until its report is
                    // made, so the last report of the table is its last sum.
                    let mut rows_now = rows_in_all.lock().unwrap_or_else(PoisonError::into_inner);
                    *rows_now = applied.onto(*rows_now);
                    pages += 1;
                    *landed += landing.rows.len() as u64;
                    *deleted_count += landing.deleted.len() as u64;
                    let this_page = landing.rows.len() as u64;
                    // A range reports the table's figures: its bar and lines are the table's.
                    let (rows_this_run, pages_this_run) = match split {
                        Some(split) => (
                            split.landed.fetch_add(this_page, Ordering::SeqCst) + this_page,
                            split.pages.fetch_add(1, Ordering::SeqCst) + 1,
                        ),
                        None => (*landed, pages),
                    };
                    progress.page(&PageReport {
                        table,
                        table_number: 0,
                        tables: options.tables.len(),
                        rows_in_all: *rows_now,
                        rows_this_run,
                        rows_this_page: this_page,
                        pages_this_run,
                        complete: complete && split.is_none(),
                    });
                }
                Ok(())
            });
            let read = (|| -> anyhow::Result<bool> {
                let mut pages = 0u64;
                // A change-tracking read that took several calls, or went on from where a
                // stopped run left it, lands pages of different moments: a row deleted or
                // changed meanwhile is only in the delta after it. One more call, with the
                // delta link the read ended with, lands those before the run says the table
                // is complete.
                let mut catch_up =
                    mode == CHANGE_TRACKING && cursor.as_deref().is_some_and(is_next_link);
                let mut caught_up = false;
                loop {
                    if options
                        .max_calls
                        .is_some_and(|max| calls.fetch_add(1, Ordering::SeqCst) >= max)
                    {
                        return Ok(false);
                    }
                    let mut input =
                        json!({"entityType": table, "recordsPerPage": options.page_size});
                    if mode == CHANGE_TRACKING {
                        input["useChangeTracking"] = json!(true);
                        // One page per call, as in watermark mode: a table's first read is not
                        // one call holding every row (a large table outgrew the call's memory
                        // and time).
                        input["rowsPerCall"] = json!(options.page_size);
                        if let Some(link) = &cursor {
                            input["deltaLink"] = json!(link);
                        }
                    } else {
                        input["maxRecords"] = json!(options.page_size);
                        match (&cursor, &anchor) {
                            (Some(watermark), _) => input["watermark"] = json!(watermark),
                            (None, Some(anchor)) => input["anchorDate"] = json!(anchor),
                            (None, None) => {}
                        }
                        if let Some(range) = range {
                            if let Some(from) = &range.from {
                                input["createdFrom"] = json!(from);
                            }
                            if let Some(before) = &range.before {
                                input["createdBefore"] = json!(before);
                            }
                        }
                    }
                    let text = runner("get-new-and-updated-records", &input.to_string())?;
                    let output: Output = serde_json::from_str(&text)
                        .context("the action's output is not the expected JSON")?;
                    let mut page_notices: Vec<String> = output.warning.iter().cloned().collect();
                    let mut parsed = Vec::with_capacity(output.records.len());
                    for record in &output.records {
                        let row: BTreeMap<&str, &RawValue> = serde_json::from_str(record.get())
                            .with_context(|| format!("a row of {table} is not a JSON object"))?;
                        parsed.push(row);
                    }
                    let mut grew = false;
                    for row in &parsed {
                        grew |= schema.grow_from(row);
                    }
                    let mut rows = Vec::with_capacity(parsed.len());
                    for row in &parsed {
                        rows.push(schema.cells(row)?);
                    }
                    if output.resynced {
                        page_notices.push(
                            "the delta link had expired: the table was read again in full".into(),
                        );
                    }
                    let next = if mode == CHANGE_TRACKING {
                        // A read cut by Rows Per Call goes on from its next link; the state
                        // holds either, committed with the rows it covers.
                        output
                            .delta_link
                            .clone()
                            .or_else(|| output.next_link.clone())
                    } else {
                        output.next_watermark.clone()
                    };
                    let page = PageToLand {
                        notices: page_notices,
                        schema: grew.then(|| schema.clone()),
                        columns: schema.columns.clone(),
                        rows,
                        deleted: output
                            .deleted
                            .iter()
                            .map(|id| id.to_ascii_lowercase())
                            .collect(),
                        resynced: output.resynced,
                        state: SavedState {
                            mode: mode.to_string(),
                            cursor: next.clone(),
                            complete: output.complete,
                        },
                    };
                    if to_writer.send(page).is_err() {
                        // The writer stopped on an error, which the caller reports.
                        return Ok(false);
                    }
                    cursor = next;
                    pages += 1;
                    catch_up |= mode == CHANGE_TRACKING && pages > 1;
                    if output.complete {
                        if catch_up && !caught_up && output.delta_link.is_some() {
                            caught_up = true;
                            continue;
                        }
                        return Ok(true);
                    }
                }
            })();
            drop(to_writer);
            let written = writer.join().unwrap_or_else(|panic| {
                Err(anyhow!(
                    "the thread landing the pages of {table} panicked: {}",
                    panic_text(panic.as_ref())
                ))
            });
            // The writer's error first: it is why the reader stopped, when it did.
            if let Err(failure) = written {
                return Err(match read {
                    Err(reading) => failure.context(format!("(reading failed too: {reading:#})")),
                    Ok(_) => failure,
                });
            }
            read
        })
    }

    /// The table's columns from Get Entity Metadata, with the labels of its choices read from
    /// their option sets (`Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?
    /// $expand=OptionSet`, learn.microsoft.com/power-apps/developer/data-platform/webapi/
    /// query-metadata-web-api#retrieving-attributes) for rows that come without annotations.
    fn schema(&mut self, table: &str) -> anyhow::Result<TableSchema> {
        let input = json!({"entityType": table, "useLogicalNameForLookup": false});
        let definition: Value =
            serde_json::from_str(&(self.runner)("get-entity-metadata", &input.to_string())?)
                .context("the table definition is not JSON")?;
        let logical = definition["LogicalName"]
            .as_str()
            .ok_or_else(|| anyhow!("the definition of {table} has no LogicalName"))?;
        check_identifier(logical)?;
        let mut labels: HashMap<String, BTreeMap<i64, String>> = HashMap::new();
        let choices = definition["Attributes"].as_array().is_some_and(|a| {
            a.iter().any(|attribute| {
                matches!(
                    attribute["AttributeType"].as_str(),
                    Some("Picklist" | "State" | "Status")
                )
            })
        });
        if choices {
            for cast in ["Picklist", "State", "Status"] {
                let answer = raw_get(
                    self.runner,
                    &format!(
                        "EntityDefinitions(LogicalName='{logical}')/Attributes/Microsoft.Dynamics.CRM.{cast}AttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options)"
                    ),
                )?;
                for attribute in answer["value"].as_array().into_iter().flatten() {
                    let Some(name) = attribute["LogicalName"].as_str() else {
                        continue;
                    };
                    let options = attribute["OptionSet"]["Options"].as_array();
                    let entry = labels.entry(name.to_ascii_lowercase()).or_default();
                    for option in options.into_iter().flatten() {
                        let label = option["Label"]["UserLocalizedLabel"]["Label"]
                            .as_str()
                            .or_else(|| option["Label"]["LocalizedLabels"][0]["Label"].as_str());
                        if let (Some(value), Some(label)) = (option["Value"].as_i64(), label) {
                            entry.insert(value, label.to_string());
                        }
                    }
                }
            }
        }
        TableSchema::from_definition(table, &definition, &labels)
    }
}

/// Whether a saved change-tracking cursor is the next link of a read cut by Rows Per Call
/// rather than a delta link (`$deltatoken` among its query options).
fn is_next_link(link: &str) -> bool {
    let query = link.split_once('?').map_or("", |(_, query)| query);
    !query.split('&').any(|option| {
        let name = option.split('=').next().unwrap_or_default();
        name.eq_ignore_ascii_case("$deltatoken") || name.eq_ignore_ascii_case("%24deltatoken")
    })
}

/// A cell as text, for databases that bind every value as text.
pub fn cell_text(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Text(text) | Cell::Number(text) => Some(text.clone()),
        Cell::Int(n) => Some(n.to_string()),
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Float(f) => Some(f.to_string()),
    }
}
