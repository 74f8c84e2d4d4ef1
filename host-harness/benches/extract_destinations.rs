//! Records per second landing 100,000 rows of one table into NDJSON, SQLite and PostgreSQL,
//! side by side in one run, through the component against the emulator. Prints figures;
//! asserts nothing.
//!
//! `cargo bench -p host-harness --bench extract_destinations`; the PostgreSQL row needs
//! `DATABASE_URL` (`tests/postgres.sh cargo bench -p host-harness --bench extract_destinations`).
//! Files go to the temporary directory (`TMPDIR`; `/dev/shm` keeps the disk out of the figures).

use std::time::{Duration, Instant};

use dataverse_emulator::{Config, Emulator};
use dynamics_host::{Host, Limits};
use host_harness::extract::database::{self, Database, DatabaseOptions, Deletes, TableProgress};
use host_harness::extract::{ExtractOptions, PageReport, run, with_host};

#[path = "support/loopback.rs"]
mod support;

const ROWS: usize = 100_000;
const TABLE: &str = "accounts";

struct Quiet;

impl TableProgress for Quiet {
    fn started(&self, _: &str, _: u64) {}
    fn page(&self, _: &PageReport) {}
    fn notice(&self, table: &str, text: &str) {
        eprintln!("notice: {table}: {text}");
    }
}

fn line(name: &str, rows: u64, elapsed: Duration) {
    println!(
        "{name:<12} {rows:>8} rows  {:>9.1} ms  {:>9.0} records/s",
        elapsed.as_secs_f64() * 1e3,
        rows as f64 / elapsed.as_secs_f64()
    );
}

fn into_database(host: &Host, emulator: &Emulator, open: &database::Opener) -> (u64, Duration) {
    let token = emulator.issue_token_for_tests();
    let mut connection = support::connection(emulator, &token);
    let runner = Box::new(move |action: &str, input: &str| -> anyhow::Result<String> {
        Ok(host.run_action(action, &mut connection, input)?)
    }) as Box<database::ActionRunner>;
    let options = DatabaseOptions {
        tables: vec![TABLE.to_string()],
        page_size: 5000,
        anchor_date: Some("2000-01-01".to_string()),
        deletes: Deletes::Delete,
        parallel: 1,
        partitions: 1,
        mode: database::ReadMode::Auto,
        max_calls: None,
    };
    let started = Instant::now();
    let summary = database::run(vec![runner], open, &options, &Quiet).expect("extraction runs");
    (summary.landed[TABLE], started.elapsed())
}

fn main() {
    // Change tracking reads a table's first, full delta in one call: its output holds every
    // row, so the call gets room for 100,000.
    let host = support::host(Limits {
        time: Duration::from_secs(600),
        memory_bytes: 1024 * 1024 * 1024,
        ..Limits::default()
    });
    let emulator = Emulator::start(
        Config {
            rows_per_table: 5,
            table_rows: vec![(TABLE.to_string(), ROWS)],
            record_requests: false,
            ..Config::default()
        },
        0,
    )
    .expect("emulator");
    let dir = std::env::temp_dir().join(format!("extract-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    println!("extract {ROWS} rows of {TABLE}, one run each, through the component:");

    // NDJSON: the watermark read, 5000 rows a call.
    let token = emulator.issue_token_for_tests();
    let mut connection = support::connection(&emulator, &token);
    let options = ExtractOptions {
        tables: vec![TABLE.to_string()],
        out_dir: dir.join("ndjson"),
        state_file: dir.join("ndjson/state.json"),
        page_size: 5000,
        anchor_date: Some("2000-01-01".to_string()),
        max_calls: None,
    };
    let started = Instant::now();
    let summary = run(
        &mut with_host(&host, &mut connection),
        &options,
        &mut std::io::sink(),
    )
    .expect("extraction runs");
    line("NDJSON", summary.written[TABLE], started.elapsed());
    // Each destination's files go before the next is written: 100,000 rows take room.
    let _ = std::fs::remove_dir_all(dir.join("ndjson"));

    let path = dir.join("bench.db");
    let (rows, elapsed) = into_database(&host, &emulator, &|| {
        Ok(Box::new(host_harness::extract::sqlite::Sqlite::open(&path)?) as Box<dyn Database>)
    });
    line("SQLite", rows, elapsed);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
            let schema = format!("bench_{}", std::process::id());
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .expect("schema");
            let separator = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{separator}options=-csearch_path%3D{schema}");
            let (rows, elapsed) = into_database(&host, &emulator, &|| {
                Ok(
                    Box::new(host_harness::extract::postgres::Postgres::connect(&url)?)
                        as Box<dyn Database>,
                )
            });
            line("PostgreSQL", rows, elapsed);
            let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
        Err(_) => {
            println!("PostgreSQL   skipped: DATABASE_URL is not set (run under tests/postgres.sh)")
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
