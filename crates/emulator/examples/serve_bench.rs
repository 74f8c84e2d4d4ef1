//! Serving 100,000 accounts in pages of 5000 to a plain HTTP client: records/s and MB/s.
//!
//! `cargo run --release -p dataverse-emulator --example serve_bench [ROWS]`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dataverse_emulator::{Config, Emulator};

fn main() -> anyhow::Result<()> {
    let rows: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("ROWS must be a number")?,
        None => 100_000,
    };
    let seed_start = Instant::now();
    let emu = Emulator::start(
        Config {
            rows_per_table: 10,
            table_rows: vec![("account".into(), rows)],
            record_requests: false,
            ..Config::default()
        },
        0,
    )?;
    println!("seeded {rows} accounts in {:.2?}", seed_start.elapsed());
    let token = emu.issue_token_for_tests();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let api = emu.web_api_url();
    for (round, parse) in [(1, false), (2, false), (3, true)] {
        let mut url = format!("{api}/accounts");
        let (mut records, mut bytes, mut pages) = (0usize, 0usize, 0usize);
        let t0 = Instant::now();
        loop {
            let mut resp = agent
                .get(&url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", "application/json")
                .header("Prefer", "odata.maxpagesize=5000")
                .call()
                .with_context(|| format!("GET {url}"))?;
            let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec()?;
            bytes += body.len();
            pages += 1;
            let next = if parse {
                let page: serde_json::Value = serde_json::from_slice(&body)?;
                records += page["value"].as_array().map(Vec::len).unwrap_or(0);
                page["@odata.nextLink"].as_str().map(str::to_string)
            } else {
                // Without a JSON parse: every row carries exactly one etag, and the nextLink
                // is the last property of the page.
                let text = std::str::from_utf8(&body)?;
                records += text.matches("\"@odata.etag\"").count();
                text.rfind("\"@odata.nextLink\":\"").map(|i| {
                    let rest = &text[i + "\"@odata.nextLink\":\"".len()..];
                    rest[..rest.find('"').unwrap_or(rest.len())].to_string()
                })
            };
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        if records != rows {
            bail!("read {records} records, expected {rows}");
        }
        println!(
            "round {round}: {records} records in {pages} pages, {:.1} MB, {secs:.2} s: {:.0} records/s, {:.1} MB/s ({})",
            bytes as f64 / 1e6,
            records as f64 / secs,
            bytes as f64 / 1e6 / secs,
            if parse {
                "client parses every page into serde_json::Value"
            } else {
                "client reads bytes only"
            }
        );
    }
    emu.stop();
    Ok(())
}
