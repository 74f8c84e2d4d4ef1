//! Throughput at Dataverse's cost (issue 17 item 5): the emulator's cost model on (100 ms per
//! request, 1 ms per record read or written, the service-protection limits per user, a
//! `x-ms-dop-hint`), figures side by side in one run, asserted never:
//!
//! - creates by the component (Batch Entity Actions, one call with every record);
//! - creates by dynamics-web-api `executeBatch` as its README shows it (batches of 1000, one
//!   after another: `tests/conformance/bench/batch_create.js`);
//! - creates by dynamics-web-api with batches in parallel, `Promise.all` over groups of
//!   `BENCH_GROUP` batches (`tests/conformance/bench/batch_create_parallel.js`);
//! - extraction of 5 tables by `dynamics extract` to SQLite, tables in parallel against one
//!   after another;
//! - extraction of one table by watermark (`--mode watermark`), its first read whole
//!   (`--partitions 1`) against split into 8 ranges of `createdon` read at once
//!   (`--partitions 8`);
//! - for each, the records found in the emulator afterwards (failed = asked − found) and the 429s
//!   the emulator answered (each one met and retried by the client, or a failure).
//!
//! Sizes and the model come from the environment: `BENCH_CREATES` (10000), `BENCH_ROWS` (rows per
//! extracted table, 10000), `BENCH_LATENCY_MS` (100), `BENCH_PER_RECORD_MS` (1), `BENCH_GROUP`
//! (10), `BENCH_DOP_HINT` (the emulator's default when unset), `BENCH_PARALLEL` (extraction's
//! parallel tables, 5), `BENCH_MEMORY_MIB` (the extracting CLI's guest memory limit, its default
//! when unset), `BENCH_ONLY` (comma-separated: component, node-seq, node-par, extract,
//! extract-partitions).
//! `tests/conformance/bench/throughput.sh` runs it; `--full` there is 100,000 of each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dataverse_emulator::{Config, CostModel, Emulator};
use dynamics_host::Limits;
use serde_json::json;

#[path = "support/loopback.rs"]
mod support;

const TABLES: [&str; 5] = [
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "salesorders",
];

fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
        Err(_) => default,
    }
}

struct Settings {
    creates: usize,
    rows: usize,
    group: usize,
    parallel: usize,
    model: CostModel,
    only: Option<Vec<String>>,
}

impl Settings {
    fn from_env() -> Settings {
        let mut model = CostModel {
            latency: Duration::from_secs_f64(env_number("BENCH_LATENCY_MS", 100.0) / 1e3),
            per_record: Duration::from_secs_f64(env_number("BENCH_PER_RECORD_MS", 1.0) / 1e3),
            ..CostModel::default()
        };
        if let Ok(hint) = std::env::var("BENCH_DOP_HINT") {
            model.dop_hint = hint.trim().parse().expect("BENCH_DOP_HINT is a number");
        }
        Settings {
            creates: env_number("BENCH_CREATES", 10_000.0) as usize,
            rows: env_number("BENCH_ROWS", 10_000.0) as usize,
            group: env_number("BENCH_GROUP", 10.0) as usize,
            parallel: env_number("BENCH_PARALLEL", 5.0) as usize,
            model,
            only: std::env::var("BENCH_ONLY")
                .ok()
                .map(|s| s.split(',').map(|p| p.trim().to_string()).collect()),
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|parts| parts.iter().any(|p| p == part))
    }

    fn emulator(&self, table_rows: Vec<(String, usize)>) -> Emulator {
        Emulator::start(
            Config {
                rows_per_table: 10,
                table_rows,
                record_requests: false,
                cost_model: Some(self.model),
                ..Config::default()
            },
            0,
        )
        .expect("the emulator starts")
    }
}

/// One row of the table printed at the end.
struct Figure {
    what: String,
    records: usize,
    failed: usize,
    elapsed: Duration,
    throttled: u64,
}

impl Figure {
    fn print(&self) {
        println!(
            "{:<46} {:>8} records {:>6} failed {:>9.1} s {:>9.0} records/s {:>5} 429s",
            self.what,
            self.records,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.records as f64 / self.elapsed.as_secs_f64(),
            self.throttled
        );
    }
}

/// Rows of `accounts` whose name starts with `prefix`: what a run really created.
fn created_in(emulator: &Emulator, prefix: &str) -> usize {
    emulator
        .table("accounts")
        .iter()
        .filter(|row| row["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .count()
}

fn component_creates(settings: &Settings, host: &dynamics_host::Host) -> Figure {
    let emulator = settings.emulator(Vec::new());
    let token = emulator.issue_token_for_tests();
    let connection = support::connection(&emulator, &token);
    let actions: Vec<_> = (0..settings.creates)
        .map(|i| json!({"collection": "accounts", "action": "create", "data": {"name": format!("Component {i}"), "accountnumber": format!("COMP-{i}")}}))
        .collect();
    let input = json!({"batchActions": actions}).to_string();
    let started = Instant::now();
    let outcome = host.invoke("batch-entity-actions", &connection, &input);
    let elapsed = started.elapsed();
    if let Err(e) = &outcome {
        println!("component creates failed: {e}");
    }
    let found = created_in(&emulator, "Component ");
    Figure {
        what: "creates: component (Batch Entity Actions)".into(),
        records: found,
        failed: settings.creates - found.min(settings.creates),
        elapsed,
        throttled: emulator.throttled().total(),
    }
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

/// dynamics-web-api creating `settings.creates` accounts with `script`; the time is Node's own
/// (its start-up not counted).
fn node_creates(settings: &Settings, what: &str, script: &str, prefix: &str) -> Option<Figure> {
    let emulator = settings.emulator(Vec::new());
    let output = Command::new("node")
        .arg(script)
        .current_dir(conformance_dir())
        .env("EMULATOR_URL", emulator.base_url())
        .env("EMULATOR_TOKEN", emulator.issue_token_for_tests())
        .env("COUNT", settings.creates.to_string())
        .env("BATCH_SIZE", "1000")
        .env("GROUP", settings.group.to_string())
        .env("PREFIX", prefix.trim_end())
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!("{what} failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            println!("{what} did not start: {e}");
            return None;
        }
    };
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let ms = line["ms"].as_f64().unwrap_or(f64::NAN);
    // batch_create.js names its records "Node Batch {i}".
    let found = created_in(&emulator, prefix);
    Some(Figure {
        what: what.into(),
        records: found,
        failed: settings.creates - found.min(settings.creates),
        elapsed: Duration::from_secs_f64(ms / 1e3),
        throttled: emulator.throttled().total(),
    })
}

/// `dynamics extract` of the five tables to a new SQLite file, `parallel` tables at a time.
fn extraction(settings: &Settings, parallel: usize) -> Option<Figure> {
    let emulator = settings.emulator(
        TABLES
            .iter()
            .map(|t| (t.to_string(), settings.rows))
            .collect(),
    );
    let what = format!("extraction: 5 tables, {parallel} at a time (CLI)");
    let parallel = parallel.to_string();
    extract_cli(
        &emulator,
        &what,
        &TABLES,
        &["--parallel", &parallel],
        settings.rows * TABLES.len(),
    )
}

/// `dynamics extract` of one table of `BENCH_ROWS` rows by watermark, its first read split
/// into `partitions` ranges of createdon.
fn partitioned_extraction(settings: &Settings, partitions: usize) -> Option<Figure> {
    let emulator = settings.emulator(vec![(TABLES[0].to_string(), settings.rows)]);
    let what = format!("extraction: 1 table, --partitions {partitions} (CLI)");
    let partitions = partitions.to_string();
    extract_cli(
        &emulator,
        &what,
        &TABLES[..1],
        &["--mode", "watermark", "--partitions", &partitions],
        settings.rows,
    )
}

/// Runs `dynamics extract` of `tables` into a new SQLite file with `extra` arguments; the
/// figure counts the rows found in the file against `expected`.
fn extract_cli(
    emulator: &Emulator,
    what: &str,
    tables: &[&str],
    extra: &[&str],
    expected: usize,
) -> Option<Figure> {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "throughput-bench-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let credentials = emulator.credentials();
    let connection = json!({
        "type": "oauth2-client-credentials",
        "fields": {
            "webApiUrl": emulator.base_url(),
            "tokenUrl": emulator.token_url(),
            "clientId": credentials.client_id,
            "clientSecret": credentials.client_secret,
        },
        "token": {"accessToken": emulator.issue_token_for_tests()},
    });
    let connection_file = dir.join("connection.json");
    std::fs::write(&connection_file, connection.to_string()).ok()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_dynamics"));
    // The CLI's guest memory limit (64 MiB by default) unless BENCH_MEMORY_MIB raises it.
    if let Ok(mib) = std::env::var("BENCH_MEMORY_MIB") {
        command.arg("--memory-limit-mib").arg(mib.trim());
    }
    let started = Instant::now();
    let output = command
        .arg("extract")
        .arg("--allow-private")
        .arg("--time-limit-secs")
        .arg("3600")
        .arg("--token-store")
        .arg(dir.join("tokens.json"))
        .arg("-c")
        .arg(&connection_file)
        .arg("--tables")
        .arg(tables.join(","))
        .arg("--to")
        .arg(format!("sqlite:{}", dir.join("extract.db").display()))
        .arg("--since")
        .arg("2000-01-01T00:00:00Z")
        .args(extra)
        .output();
    let elapsed = started.elapsed();
    match output {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            println!("{what} failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            println!("{what} did not start: {e}");
            return None;
        }
    }
    let written = rows_in_sqlite(&dir.join("extract.db"), tables).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    Some(Figure {
        what: what.to_string(),
        records: written,
        failed: expected - written.min(expected),
        elapsed,
        throttled: emulator.throttled().total(),
    })
}

/// Rows landed in `tables` of an extraction's SQLite file.
fn rows_in_sqlite(path: &Path, tables: &[&str]) -> Option<usize> {
    let db = rusqlite::Connection::open(path).ok()?;
    let mut total = 0usize;
    for table in tables {
        let n: i64 = db
            .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .ok()?;
        total += n as usize;
    }
    Some(total)
}

fn main() {
    let settings = Settings::from_env();
    let m = settings.model;
    println!(
        "cost model: {} ms per request, {} ms per record, dop hint {}, {} concurrent, {} requests and {} s of execution per {} s, per user",
        m.latency.as_secs_f64() * 1e3,
        m.per_record.as_secs_f64() * 1e3,
        m.dop_hint,
        m.concurrent_requests,
        m.requests,
        m.execution.as_secs(),
        m.window.as_secs()
    );
    let mut figures = Vec::new();
    let with_node = conformance_dir()
        .join("node_modules/dynamics-web-api")
        .exists();
    if !with_node {
        println!("dynamics-web-api skipped: run `npm ci` in tests/conformance");
    }
    if settings.runs("component") {
        let host = support::host(Limits {
            time: Duration::from_secs(3600),
            memory_bytes: 1024 * 1024 * 1024,
            ..Limits::default()
        });
        figures.push(component_creates(&settings, &host));
        figures.last().map(Figure::print);
    }
    let mut node_seq = None;
    let mut node_par = None;
    if with_node && settings.runs("node-seq") {
        node_seq = node_creates(
            &settings,
            "creates: dynamics-web-api, 1000-batches in turn",
            "bench/batch_create.js",
            "Node Batch ",
        );
        if let Some(f) = &node_seq {
            f.print();
        }
    }
    if with_node && settings.runs("node-par") {
        node_par = node_creates(
            &settings,
            &format!(
                "creates: dynamics-web-api, Promise.all of {}",
                settings.group
            ),
            "bench/batch_create_parallel.js",
            "Node Parallel ",
        );
        if let Some(f) = &node_par {
            f.print();
        }
    }
    let mut extract_par = None;
    let mut extract_seq = None;
    if settings.runs("extract") {
        extract_par = extraction(&settings, settings.parallel);
        if let Some(f) = &extract_par {
            f.print();
        }
        extract_seq = extraction(&settings, 1);
        if let Some(f) = &extract_seq {
            f.print();
        }
    }
    let mut split_one = None;
    let mut split_eight = None;
    if settings.runs("extract-partitions") {
        split_one = partitioned_extraction(&settings, 1);
        if let Some(f) = &split_one {
            f.print();
        }
        split_eight = partitioned_extraction(&settings, 8);
        if let Some(f) = &split_eight {
            f.print();
        }
    }

    println!();
    println!("side by side:");
    for f in figures
        .iter()
        .chain(&node_seq)
        .chain(&node_par)
        .chain(&extract_par)
        .chain(&extract_seq)
        .chain(&split_one)
        .chain(&split_eight)
    {
        f.print();
    }
    let component = figures.first();
    if let (Some(c), Some(n)) = (component, &node_seq) {
        println!(
            "component vs dynamics-web-api in turn:     {:.2}x faster  (target >= 5x)",
            n.elapsed.as_secs_f64() / c.elapsed.as_secs_f64()
        );
    }
    if let (Some(c), Some(n)) = (component, &node_par) {
        println!(
            "component vs dynamics-web-api Promise.all: {:.2}x faster  (target >= 1.5x)",
            n.elapsed.as_secs_f64() / c.elapsed.as_secs_f64()
        );
    }
    if let Some(c) = component {
        println!(
            "component: {} failed records (target 0), {:.2} 429s per 10,000 records (target <= 1)",
            c.failed,
            c.throttled as f64 * 10_000.0 / settings.creates.max(1) as f64
        );
    }
    if let (Some(p), Some(s)) = (&extract_par, &extract_seq) {
        println!(
            "extraction in parallel vs one table after another: {:.2}x faster",
            s.elapsed.as_secs_f64() / p.elapsed.as_secs_f64()
        );
    }
    if let (Some(one), Some(eight)) = (&split_one, &split_eight) {
        println!(
            "one table in 8 ranges vs whole: {:.2}x faster (429s: {} in ranges, {} whole)",
            one.elapsed.as_secs_f64() / eight.elapsed.as_secs_f64(),
            eight.throttled,
            one.throttled
        );
    }
}
