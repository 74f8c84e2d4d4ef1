//! Bulk figures, side by side in one run: 10,000 creates through Batch Entity Actions against
//! `dynamics-web-api`'s `executeBatch` (1000 per batch for both); a FetchXML fetch-all of
//! 100,000 rows; and an extraction of 100,000 rows to NDJSON with the harness's peak memory.
//! Prints figures and ratios; asserts nothing.
//!
//! `cargo bench -p host-harness --bench bulk` (the Node row needs `npm ci` in tests/conformance).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dataverse_emulator::{Config, Emulator};
use dynamics_host::Limits;
use host_harness::extract::{ExtractOptions, run, with_host};

#[path = "support/loopback.rs"]
mod support;
use serde_json::json;

const CREATES: usize = 10_000;
const ROWS: usize = 100_000;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Rounds of 10,000 creates per side.
const ROUNDS: usize = 5;

fn small_emulator() -> Emulator {
    Emulator::start(
        Config {
            rows_per_table: 10,
            record_requests: false,
            ..Config::default()
        },
        0,
    )
    .expect("emulator")
}

/// 10,000 creates through Batch Entity Actions, 1000 per call, on a fresh emulator.
fn component_creates(host: &dynamics_host::Host) -> (usize, Duration) {
    let emulator = small_emulator();
    let token = emulator.issue_token_for_tests();
    let connection = support::connection(&emulator, &token);
    let started = Instant::now();
    let mut created = 0;
    for offset in (0..CREATES).step_by(1000) {
        let actions: Vec<_> = (offset..offset + 1000)
            .map(|i| json!({"collection": "accounts", "action": "create", "data": {"name": format!("Batch {i}"), "accountnumber": format!("BATCH-{i}")}}))
            .collect();
        let output = host
            .invoke(
                "batch-entity-actions",
                &connection,
                &json!({"batchActions": actions}).to_string(),
            )
            .expect("the batch runs");
        let output: serde_json::Value = serde_json::from_str(&output).expect("json");
        created += output["succeeded"].as_u64().unwrap_or_default() as usize;
    }
    (created, started.elapsed())
}

/// 10,000 creates with dynamics-web-api's executeBatch, 1000 per batch, on a fresh emulator;
/// the time is measured inside Node (its start-up is not counted).
fn node_creates(dir: &Path) -> Result<(u64, f64), String> {
    let emulator = small_emulator();
    let output = Command::new("node")
        .arg("bench/batch_create.js")
        .current_dir(dir)
        .env("EMULATOR_URL", emulator.base_url())
        .env("EMULATOR_TOKEN", emulator.issue_token_for_tests())
        .env("COUNT", CREATES.to_string())
        .output()
        .map_err(|problem| problem.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let line: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|problem| problem.to_string())?;
    Ok((
        line["records"].as_u64().unwrap_or_default(),
        line["ms"].as_f64().unwrap_or(f64::NAN),
    ))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let host = support::host(Limits {
        time: Duration::from_secs(600),
        ..Limits::default()
    });

    // 10,000 creates: the component and dynamics-web-api, each round on fresh emulators, the
    // two sides alternating so that whatever else the machine does falls on both; the ratio is
    // of the medians.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance");
    let with_node = dir.join("node_modules/dynamics-web-api").exists();
    if !with_node {
        println!("dynamics-web-api skipped: run `npm ci` in tests/conformance");
    }
    let (mut component_ms, mut node_ms) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (created, elapsed) = component_creates(&host);
        let ms = elapsed.as_secs_f64() * 1e3;
        component_ms.push(ms);
        print!("round {round}: component {created} records {ms:>7.1} ms");
        if with_node {
            match node_creates(&dir) {
                Ok((records, ms)) => {
                    node_ms.push(ms);
                    print!(", dynamics-web-api {records} records {ms:>7.1} ms");
                }
                Err(problem) => print!(", dynamics-web-api failed: {problem}"),
            }
        }
        println!();
    }
    let component = median(&mut component_ms);
    println!(
        "batch creates, component        {CREATES:>7} records  {component:>8.1} ms  {:>8.0} records/s  (median of {ROUNDS})",
        CREATES as f64 / (component / 1e3)
    );
    if !node_ms.is_empty() {
        let rounds = node_ms.len();
        let node = median(&mut node_ms);
        println!(
            "batch creates, dynamics-web-api {CREATES:>7} records  {node:>8.1} ms  {:>8.0} records/s  (median of {rounds})",
            CREATES as f64 / (node / 1e3)
        );
        println!(
            "ratio dynamics-web-api time / component time: {:.2}x   (target >= 1.5x)",
            node / component
        );
    }

    // 100,000 rows by FetchXML and by extraction.
    let big = Emulator::start(
        Config {
            rows_per_table: 10,
            table_rows: vec![("account".to_string(), ROWS)],
            record_requests: false,
            ..Config::default()
        },
        0,
    )
    .expect("emulator");
    let token = big.issue_token_for_tests();
    let mut connection = support::connection(&big, &token);
    let xml = "<fetch count='5000'><entity name='account'><attribute name='accountid'/><attribute name='name'/><attribute name='accountnumber'/><attribute name='revenue'/></entity></fetch>";
    let started = Instant::now();
    let output = host
        .invoke("run-fetch-xml-query", &connection, &json!({"entityType": "accounts", "xmlQuery": xml, "fetchAll": true, "maxRecords": 1_000_000}).to_string())
        .expect("the query runs");
    let elapsed = started.elapsed();
    let records = serde_json::from_str::<serde_json::Value>(&output).expect("json")["records"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    println!(
        "fetchxml fetch-all             {records:>7} records  {:>8.1} ms  {:>8.0} records/s",
        elapsed.as_secs_f64() * 1e3,
        records as f64 / elapsed.as_secs_f64()
    );

    let out = std::env::temp_dir().join(format!("bulk-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let options = ExtractOptions {
        tables: vec!["accounts".to_string()],
        out_dir: out.clone(),
        state_file: out.join("state.json"),
        page_size: 5000,
        anchor_date: Some("2000-01-01".to_string()),
        max_calls: None,
    };
    let before = peak_rss_kib();
    let started = Instant::now();
    let summary = run(
        &mut with_host(&host, &mut connection),
        &options,
        &mut std::io::sink(),
    )
    .expect("extraction runs");
    let elapsed = started.elapsed();
    let rows = summary.written.values().sum::<u64>();
    println!(
        "extraction to NDJSON           {rows:>7} records  {:>8.1} ms  {:>8.0} records/s",
        elapsed.as_secs_f64() * 1e3,
        rows as f64 / elapsed.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        println!(
            "harness peak RSS: {} MiB before the extraction (emulator with {ROWS} rows in process), {} MiB after (growth {} MiB)",
            before / 1024,
            after / 1024,
            after.saturating_sub(before) / 1024
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
