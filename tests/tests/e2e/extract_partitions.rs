//! Extraction into SQLite with a table's first read split into ranges of `createdon`, read at
//! the same time: every row once, a stopped run going on where each range stopped, a change made
//! after the split read arriving on the next run, and a change-tracked table read whole.
//!
//! The split read also lands in PostgreSQL when `DATABASE_URL` names a server (run under
//! `tests/postgres.sh`); without one that test prints that it is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use dataverse_emulator::{Config, Emulator};
use e2e_tests::extract_target::Target;
use e2e_tests::{connected, host, json};
use host_harness::extract::PageReport;
use host_harness::extract::database::{
    self, ActionRunner, DatabaseOptions, DatabaseSummary, Deletes, ReadMode, TableProgress,
};
use serde_json::json;

const ROWS: usize = 3000;

fn emulator_with_accounts() -> Emulator {
    Emulator::start(
        Config {
            rows_per_table: 5,
            table_rows: vec![("accounts".to_string(), ROWS)],
            ..Config::default()
        },
        0,
    )
    .expect("the emulator starts")
}

/// Notices kept; of the page lines, each table's last "rows in all".
#[derive(Default)]
struct Notices(Mutex<Vec<String>>, Mutex<BTreeMap<String, u64>>);

impl TableProgress for Notices {
    fn started(&self, _table: &str, _rows: u64) {}
    fn page(&self, report: &PageReport) {
        self.1
            .lock()
            .unwrap()
            .insert(report.table.to_string(), report.rows_in_all);
    }
    fn notice(&self, table: &str, text: &str) {
        self.0.lock().unwrap().push(format!("{table}: {text}"));
    }
}

/// The `--since` of most runs: older than every seeded row.
const SINCE: &str = "2000-01-01T00:00:00Z";

/// One extraction run as the CLI makes it: a runner per worker over the built component.
fn extract(
    emulator: &Emulator,
    path: &Target,
    tables: &[&str],
    partitions: usize,
    mode: ReadMode,
    max_calls: Option<usize>,
) -> (DatabaseSummary, Vec<String>) {
    let (summary, notices) = try_extract(
        emulator,
        path,
        tables,
        (partitions, mode, max_calls),
        Some(SINCE),
        |_, _| false,
    );
    (summary.expect("the extraction runs"), notices)
}

/// [`extract`] with its `--since` given, and a runner that panics when `panics(action, input)`.
fn try_extract(
    emulator: &Emulator,
    path: &Target,
    tables: &[&str],
    (partitions, mode, max_calls): (usize, ReadMode, Option<usize>),
    since: Option<&str>,
    panics: fn(&str, &str) -> bool,
) -> (anyhow::Result<DatabaseSummary>, Vec<String>) {
    let options = DatabaseOptions {
        tables: tables.iter().map(|t| t.to_string()).collect(),
        page_size: 250,
        anchor_date: since.map(str::to_string),
        deletes: Deletes::Delete,
        parallel: 2,
        partitions,
        mode,
        max_calls,
    };
    let runners: Vec<Box<ActionRunner>> = (0..options.parallel.max(partitions))
        .map(|_| {
            let mut connection = connected(emulator);
            Box::new(move |action: &str, input: &str| -> anyhow::Result<String> {
                if panics(action, input) {
                    panic!("a worker panics as the test asks, on {action} {input}");
                }
                Ok(host().run_action(action, &mut connection, input)?)
            }) as Box<ActionRunner>
        })
        .collect();
    let open = || path.open();
    let notices = Notices::default();
    let summary = database::run(runners, &open, &options, &notices);
    // "Rows in all" is a running sum of what each page added and deleted, kept by the ranges
    // of a split table together: after the run it must be what each table holds.
    let mut db = path.open().unwrap();
    for (table, rows) in notices.1.into_inner().unwrap() {
        assert_eq!(
            db.count(&table).unwrap(),
            rows,
            "{table}'s last progress report"
        );
    }
    (summary, notices.0.into_inner().unwrap())
}

fn emulator_ids(emulator: &Emulator) -> BTreeSet<String> {
    emulator
        .table("accounts")
        .iter()
        .map(|row| row["accountid"].as_str().unwrap().to_ascii_lowercase())
        .collect()
}

/// The `$filter`s of the Get New and Updated Records reads of accounts, decoded.
fn account_filters(emulator: &Emulator) -> Vec<String> {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/accounts?"))
        .filter_map(|r| {
            let query = r.path.split_once('?')?.1;
            let filter = query.split('&').find_map(|p| p.strip_prefix("$filter="))?;
            Some(filter.replace("%20", " "))
        })
        .collect()
}

#[test]
fn a_table_split_into_four_createdon_ranges_lands_every_row_once_even_when_stopped_and_rerun() {
    split_read_lands_every_row_once(Target::sqlite("four"));
}

#[test]
fn postgres_a_table_split_into_four_createdon_ranges_lands_every_row_once() {
    if let Some(target) = Target::postgres("partitions") {
        split_read_lands_every_row_once(target);
    }
}

fn split_read_lands_every_row_once(path: Target) {
    let emulator = emulator_with_accounts();

    // A run stopped after three calls: not every range can be complete.
    let (first, notices) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        Some(3),
    );
    assert!(!first.complete, "three calls cannot read {ROWS} rows");
    let stopped_at = first.landed["accounts"];
    assert!(
        stopped_at > 0 && stopped_at < ROWS as u64,
        "the stopped run landed some rows: {stopped_at}"
    );
    assert!(
        notices
            .iter()
            .any(|n| n.contains("first read in 4 ranges of createdon")),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| n.contains("--mode watermark")),
        "a tracked table read by watermark says deletes are not seen: {notices:?}"
    );
    let mut db = path.open().unwrap();
    let saved = db.state("accounts").unwrap().unwrap();
    assert_eq!(
        saved.mode, "partitioned",
        "the plan is kept until the ranges finish"
    );

    // A row created in between: newer than any range bound, it belongs to the last range.
    let created = json(
        &host()
            .invoke(
                "create-entity",
                &connected(&emulator),
                &json!({"entityType": "accounts", "fieldValues": {"name": "Created Between Runs"}, "returnRepresentation": true}).to_string(),
            )
            .unwrap(),
    );
    let created_id = created["accountid"]
        .as_str()
        .or_else(|| created["id"].as_str())
        .map(str::to_ascii_lowercase);

    let (second, resumed) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        None,
    );
    assert!(second.complete);
    assert!(
        resumed
            .iter()
            .any(|n| n.contains("going on with the first read in 4 ranges")),
        "{resumed:?}"
    );
    let expected = emulator_ids(&emulator);
    assert_eq!(expected.len(), ROWS + 1);
    let landed: BTreeSet<String> = db
        .ids("accounts", "accountid")
        .unwrap()
        .into_iter()
        .map(|id| id.to_ascii_lowercase())
        .collect();
    assert_eq!(landed, expected, "every row of the emulator, nothing else");
    assert_eq!(db.count("accounts").unwrap(), (ROWS + 1) as u64);
    if let Some(id) = created_id {
        assert!(landed.contains(&id), "the row created between runs landed");
    }
    assert_eq!(
        first.landed["accounts"] + second.landed["accounts"],
        (ROWS + 1) as u64,
        "each row was read once across the stopped run and the rerun"
    );

    // The reads were ranged on createdon: the first open below (with rows without createdon),
    // the last open above, two closed between, and the edges found by $top=1 queries.
    let filters = account_filters(&emulator);
    let open_below = filters
        .iter()
        .filter(|f| f.contains("(createdon lt ") && f.contains(" or createdon eq null)"))
        .count();
    let closed = filters
        .iter()
        .filter(|f| f.contains("createdon ge ") && f.contains(" and createdon lt "))
        .map(|f| {
            f.split(" and createdon ge ")
                .nth(1)
                .unwrap_or_default()
                .to_string()
        })
        .collect::<BTreeSet<_>>();
    let open_above = filters
        .iter()
        .filter(|f| f.contains("createdon ge ") && !f.contains("createdon lt "))
        .filter(|f| !f.contains("ne null"))
        .count();
    assert!(
        open_below > 0 && open_above > 0,
        "ranges open at both ends: {filters:?}"
    );
    assert_eq!(closed.len(), 2, "two closed ranges between: {filters:?}");
    let requests = emulator.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path.contains("$orderby=createdon%20asc&$top=1")),
        "the oldest createdon was asked for"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path.contains("$orderby=createdon%20desc&$top=1")),
        "the newest createdon was asked for"
    );

    // Done: the table's state says where the next read starts; the ranges' states are gone.
    let saved = db.state("accounts").unwrap().unwrap();
    assert_eq!(saved.mode, "watermark-since");
    assert!(saved.complete);
    for index in 0..4 {
        assert_eq!(db.state(&format!("accounts#{index}")).unwrap(), None);
    }

    // A row updated after the split read arrives on the next run, which reads by watermark
    // from that instant, unsplit.
    let touched = expected.iter().next().unwrap().clone();
    host()
        .invoke(
            "update-entity",
            &connected(&emulator),
            &json!({"entityType": "accounts", "entityId": touched, "fieldValues": {"name": "Touched After The Split Read"}}).to_string(),
        )
        .unwrap();
    emulator.clear_requests();
    let (third, _) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        None,
    );
    assert!(third.complete);
    let name = path.column_text(&format!(
        "SELECT name FROM accounts WHERE lower(CAST(accountid AS TEXT)) = '{touched}'"
    ));
    assert_eq!(name, [Some("Touched After The Split Read".to_string())]);
    let filters = account_filters(&emulator);
    assert!(
        !filters.is_empty() && filters.iter().all(|f| !f.contains("createdon")),
        "the next read is one watermark read: {filters:?}"
    );
    assert_eq!(db.state("accounts").unwrap().unwrap().mode, "watermark");
    assert_eq!(db.count("accounts").unwrap(), (ROWS + 1) as u64);
    path.remove();
}

#[test]
fn a_change_tracked_table_asked_for_ranges_in_auto_mode_is_read_whole_with_a_notice() {
    let emulator = Emulator::start(
        Config {
            rows_per_table: 40,
            ..Config::default()
        },
        0,
    )
    .unwrap();
    let path = Target::sqlite("tracked");
    let (summary, notices) = extract(&emulator, &path, &["contacts"], 4, ReadMode::Auto, None);
    assert!(summary.complete);
    assert!(
        notices.iter().any(|n| n.contains("cannot be split")
            && n.contains(
                "learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems"
            )),
        "{notices:?}"
    );
    let db_rows = path.open().unwrap().count("contacts").unwrap();
    assert_eq!(db_rows, emulator.table("contacts").len() as u64);
    let ranged = emulator
        .requests()
        .iter()
        .any(|r| r.path.contains("/contacts?") && r.path.contains("createdon"));
    assert!(!ranged, "no range was asked for");
    let tracked = emulator.requests().iter().any(|r| {
        r.header("prefer")
            .is_some_and(|p| p.contains("odata.track-changes"))
    });
    assert!(tracked, "the table was read through change tracking");
    path.remove();
}

#[test]
fn a_new_split_never_resumes_the_ranges_of_an_earlier_one_read_since_in_another_mode() {
    let emulator = emulator_with_accounts();
    let path = Target::sqlite("stale");
    // A split read stopped midway leaves range states behind...
    let (stopped, _) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        Some(2),
    );
    assert!(!stopped.complete);
    // ...then the table is read through change tracking instead...
    let (tracked, _) = extract(&emulator, &path, &["accounts"], 1, ReadMode::Auto, None);
    assert!(tracked.complete);
    let mut db = path.open().unwrap();
    assert_eq!(
        db.state("accounts").unwrap().unwrap().mode,
        "change-tracking"
    );
    // ...and split again by watermark: each range starts from its beginning.
    let (split, _) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        None,
    );
    assert!(split.complete);
    assert_eq!(
        split.landed["accounts"], ROWS as u64,
        "every row read again, none skipped by a stale range state"
    );
    assert_eq!(db.count("accounts").unwrap(), ROWS as u64);
    path.remove();
}

#[test]
fn a_table_named_twice_is_read_once() {
    let emulator = emulator_with_accounts();
    let once = Target::sqlite("named-once");
    extract(
        &emulator,
        &once,
        &["accounts"],
        1,
        ReadMode::Watermark,
        None,
    );
    let reads_of_one = account_filters(&emulator);
    once.remove();
    emulator.clear_requests();
    let path = Target::sqlite("named-twice");
    let (summary, _) = extract(
        &emulator,
        &path,
        &["accounts", "accounts"],
        1,
        ReadMode::Watermark,
        None,
    );
    assert!(summary.complete);
    assert_eq!(
        summary.landed["accounts"], ROWS as u64,
        "each row landed once"
    );
    // One read of accounts: the requests of a run that names it once.
    assert_eq!(account_filters(&emulator), reads_of_one);
    assert_eq!(path.open().unwrap().count("accounts").unwrap(), ROWS as u64);
    path.remove();
}

/// The rows landed in `path`'s accounts: (rows, distinct lower-case IDs).
fn landed_accounts(path: &Target) -> (u64, BTreeSet<String>) {
    let mut db = path.open().unwrap();
    let ids = db
        .ids("accounts", "accountid")
        .unwrap()
        .into_iter()
        .map(|id| id.to_ascii_lowercase())
        .collect();
    (db.count("accounts").unwrap(), ids)
}

#[test]
fn a_stopped_split_read_rerun_with_another_since_or_none_still_lands_every_row_once() {
    rerun_with_another_since_lands_every_row_once(|name| Some(Target::sqlite(name)));
}

#[test]
fn postgres_a_stopped_split_read_rerun_with_another_since_or_none_still_lands_every_row_once() {
    rerun_with_another_since_lands_every_row_once(Target::postgres);
}

fn rerun_with_another_since_lands_every_row_once(target: fn(&str) -> Option<Target>) {
    // Without a --since the action reads one year back, and a date alone is a later start
    // than the first run's: either way a range first read by the rerun must not start later.
    for (name, rerun_since) in [("nosince", None), ("latersince", Some("2026-06-01"))] {
        let emulator = emulator_with_accounts();
        let Some(path) = target(name) else {
            return;
        };
        let (first, _) = try_extract(
            &emulator,
            &path,
            &["accounts"],
            (4, ReadMode::Watermark, Some(3)),
            Some(SINCE),
            |_, _| false,
        );
        assert!(
            !first.unwrap().complete,
            "{name}: three calls cannot read {ROWS} rows"
        );
        let saved = path.open().unwrap().state("accounts").unwrap().unwrap();
        assert_eq!(saved.mode, "partitioned", "{name}");

        emulator.clear_requests();
        for run in ["rerun", "next run"] {
            let (summary, notices) = try_extract(
                &emulator,
                &path,
                &["accounts"],
                (4, ReadMode::Watermark, None),
                rerun_since,
                |_, _| false,
            );
            assert!(summary.unwrap().complete, "{name} {run}: {notices:?}");
        }
        let expected = emulator_ids(&emulator);
        assert_eq!(expected.len(), emulator.table("accounts").len());
        let (rows, ids) = landed_accounts(&path);
        let missing = expected.difference(&ids).count();
        let extra = ids.difference(&expected).count();
        assert_eq!(
            (missing, extra),
            (0, 0),
            "{name}: every row of the emulator, nothing else"
        );
        assert_eq!(rows, expected.len() as u64, "{name}: each row once");

        // Every range read by the rerun started from the plan's start, the first run's --since.
        let ranged: Vec<String> = account_filters(&emulator)
            .into_iter()
            .filter(|f| f.contains("createdon ge ") || f.contains("createdon lt "))
            .filter(|f| !f.contains("ne null"))
            .collect();
        assert!(
            ranged
                .iter()
                .any(|f| f.starts_with(&format!("modifiedon ge {SINCE} and "))),
            "{name}: the range the first run never read starts at the plan's start: {ranged:?}"
        );
        if let Some(later) = rerun_since {
            assert!(
                !ranged
                    .iter()
                    .any(|f| f.contains(&format!("modifiedon ge {later}"))),
                "{name}: no range starts at the rerun's --since: {ranged:?}"
            );
        }
        path.remove();
    }
}

#[test]
fn a_worker_that_panics_mid_read_ends_the_run_with_an_error_instead_of_hanging_it() {
    let (done, finished) = std::sync::mpsc::channel();
    // A thread of its own, not scoped: a run that hangs fails the test instead of hanging it.
    std::thread::spawn(move || {
        let emulator = emulator_with_accounts();
        let path = Target::sqlite("panic");
        // The first range (open below: Created Before alone) panics; the other three are read
        // and their workers then wait for it.
        let (outcome, _) = try_extract(
            &emulator,
            &path,
            &["accounts"],
            (4, ReadMode::Watermark, None),
            Some(SINCE),
            |action, input| {
                action == "get-new-and-updated-records"
                    && input.contains("createdBefore")
                    && !input.contains("createdFrom")
            },
        );
        let _ = done.send((outcome.map(|summary| summary.complete), emulator, path));
    });
    let (outcome, emulator, path) = finished
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("the run ends");
    let error = format!("{:#}", outcome.expect_err("the run fails"));
    assert!(error.contains("panicked"), "{error}");
    // The ranges that were read are kept with their states: a rerun goes on and lands all.
    let (rerun, _) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        None,
    );
    assert!(rerun.complete);
    let (rows, ids) = landed_accounts(&path);
    assert!(
        ids == emulator_ids(&emulator),
        "every row of the emulator, nothing else"
    );
    assert_eq!(rows, ROWS as u64);
    path.remove();
}

#[test]
fn a_malformed_since_is_refused_naming_the_flag_before_any_request() {
    let emulator = emulator_with_accounts();
    let path = Target::sqlite("badsince");
    for bad in [
        "2024-01-01T::::::::",
        "2024-99-99",
        "2024-01-01T00:00:00ZZZZ",
    ] {
        let (summary, _) = try_extract(
            &emulator,
            &path,
            &["accounts"],
            (4, ReadMode::Watermark, None),
            Some(bad),
            |_, _| false,
        );
        let error = format!("{:#}", summary.expect_err(bad));
        assert!(error.contains("--since") && error.contains(bad), "{error}");
    }
    let data_requests = emulator
        .requests()
        .iter()
        .filter(|r| r.path.contains("/api/data/"))
        .count();
    assert_eq!(data_requests, 0, "nothing was asked of Dataverse");
    path.remove();
}

#[test]
fn a_corrupt_saved_plan_starts_the_first_read_over_with_a_notice_and_lands_every_row_once() {
    let emulator = emulator_with_accounts();
    let path = Target::sqlite("corrupt");
    let (stopped, _) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        Some(2),
    );
    assert!(!stopped.complete);
    let mut db = path.open().unwrap();
    db.execute(&format!(
        "UPDATE {} SET resume_from = '{{\"since\":' WHERE table_name = 'accounts'",
        database::STATE_TABLE
    ))
    .unwrap();
    let (rerun, notices) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        None,
    );
    assert!(rerun.complete);
    assert!(
        notices
            .iter()
            .any(|n| n.contains("saved plan of the split first read cannot be read")),
        "{notices:?}"
    );
    assert_eq!(
        rerun.landed["accounts"], ROWS as u64,
        "every row read again: no range went on from a state of the lost plan"
    );
    let (rows, ids) = landed_accounts(&path);
    assert!(
        ids == emulator_ids(&emulator),
        "every row of the emulator, nothing else"
    );
    assert_eq!(rows, ROWS as u64);
    path.remove();
}

#[test]
fn an_empty_table_asked_for_ranges_is_read_whole_with_a_notice_saying_it_has_no_rows() {
    let emulator = Emulator::start(
        Config {
            rows_per_table: 5,
            table_rows: vec![("accounts".to_string(), 0)],
            ..Config::default()
        },
        0,
    )
    .unwrap();
    assert!(emulator.table("accounts").is_empty(), "the table is empty");
    let path = Target::sqlite("empty");
    let (summary, notices) = extract(
        &emulator,
        &path,
        &["accounts"],
        4,
        ReadMode::Watermark,
        None,
    );
    assert!(summary.complete);
    assert!(
        notices
            .iter()
            .any(|n| n.contains("no row has both a createdon and a modifiedon")),
        "{notices:?}"
    );
    assert!(!notices.iter().any(|n| n.contains("too few distinct")));
    assert_eq!(path.open().unwrap().count("accounts").unwrap(), 0);
    path.remove();
}

/// A database that fails the `fail_at`th page it is asked to land (from 1), once.
struct FailsOnce {
    inner: Box<dyn database::Database>,
    applies: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Rows of the pages it landed.
    landed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    fail_at: usize,
}

impl database::Database for FailsOnce {
    fn dialect(&self) -> database::Dialect {
        self.inner.dialect()
    }
    fn execute(&mut self, sql: &str) -> anyhow::Result<()> {
        self.inner.execute(sql)
    }
    fn columns(&mut self, table: &str) -> anyhow::Result<Vec<String>> {
        self.inner.columns(table)
    }
    fn state(&mut self, table: &str) -> anyhow::Result<Option<database::SavedState>> {
        self.inner.state(table)
    }
    fn ids(&mut self, table: &str, primary_id: &str) -> anyhow::Result<Vec<String>> {
        self.inner.ids(table, primary_id)
    }
    fn count(&mut self, table: &str) -> anyhow::Result<u64> {
        self.inner.count(table)
    }
    fn apply(&mut self, landing: &database::Landing) -> anyhow::Result<database::Applied> {
        let n = self
            .applies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n == self.fail_at {
            anyhow::bail!("the database refuses page {n}, as the test asks");
        }
        let applied = self.inner.apply(landing)?;
        self.landed
            .fetch_add(landing.rows.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(applied)
    }
}

/// Pages are read while earlier ones land. When the database fails a page, the run stops
/// with that error, the pages before it are committed with the cursor after them, the page
/// read meanwhile is not landed, and a rerun lands every row exactly once.
#[test]
fn a_page_the_database_refuses_stops_the_run_and_a_rerun_lands_every_row_once() {
    let emulator = emulator_with_accounts();
    let target = Target::sqlite("refused_page");
    let applies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let landed_rows = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let options = DatabaseOptions {
        tables: vec!["accounts".to_string()],
        page_size: 250,
        anchor_date: Some(SINCE.to_string()),
        deletes: Deletes::Delete,
        parallel: 1,
        partitions: 1,
        mode: ReadMode::Watermark,
        max_calls: None,
    };
    let runner = || {
        let mut connection = connected(&emulator);
        vec![
            Box::new(move |action: &str, input: &str| -> anyhow::Result<String> {
                Ok(host().run_action(action, &mut connection, input)?)
            }) as Box<ActionRunner>,
        ]
    };
    let failing = || -> anyhow::Result<Box<dyn database::Database>> {
        Ok(Box::new(FailsOnce {
            inner: target.open()?,
            applies: applies.clone(),
            landed: landed_rows.clone(),
            fail_at: 3,
        }))
    };
    let Err(failure) = database::run(runner(), &failing, &options, &Notices::default()) else {
        panic!("the run stops at the refused page");
    };
    assert!(
        format!("{failure:#}").contains("refuses page 3"),
        "{failure:#}"
    );
    let landed: Vec<Option<String>> =
        target.column_text("SELECT CAST(accountid AS TEXT) FROM accounts");
    let before = landed_rows.load(std::sync::atomic::Ordering::SeqCst);
    assert!(before > 0);
    assert_eq!(
        landed.len(),
        before,
        "the two pages before it, and only them"
    );
    assert_eq!(
        applies.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "no page after it"
    );
    let cursor = target
        .one("SELECT resume_from FROM _dynamics_extract_state WHERE table_name = 'accounts'")
        .expect("the state of the second page");
    assert!(!cursor.is_empty());

    let open = || target.open();
    let summary = database::run(runner(), &open, &options, &Notices::default()).expect("the rerun");
    // The rerun went on from the committed cursor, not from the start.
    assert!(summary.landed["accounts"] as usize >= ROWS - before);
    assert!((summary.landed["accounts"] as usize) < ROWS, "it resumed");
    let ids: Vec<String> = target
        .column_text("SELECT CAST(accountid AS TEXT) FROM accounts")
        .into_iter()
        .map(|id| id.unwrap().to_ascii_lowercase())
        .collect();
    assert_eq!(ids.len(), ROWS, "every row once");
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        emulator_ids(&emulator)
    );
}
