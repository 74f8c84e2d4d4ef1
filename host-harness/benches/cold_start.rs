//! From process start to output, for the CLI calls people make many times a day: `dynamics
//! actions`, and an `invoke` whose input fails validation. The compiled component loaded from
//! the compile cache against compiling it at every start (`--no-compile-cache`), side by side.
//! Prints figures; asserts nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn run(cache: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_dynamics"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::null())
        .output()
        .expect("dynamics runs");
    let elapsed = started.elapsed();
    assert!(
        !output.stdout.is_empty() || !output.stderr.is_empty(),
        "the command printed something"
    );
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("dynamics-cold-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("cache");
    let connection = dir.join("conn.json");
    std::fs::write(
        &connection,
        r#"{"type": "oauth2-client-credentials", "fields": {"webApiUrl": "https://contoso.crm.dynamics.com", "tenantId": "00000000-0000-0000-0000-000000000001", "clientId": "x", "clientSecret": "y"}, "token": {"accessToken": "not-used"}}"#,
    )
    .unwrap();
    let conn = connection.to_str().unwrap();
    let cases: [(&str, Vec<&str>); 2] = [
        ("dynamics actions", vec!["actions"]),
        (
            "invoke failing validation",
            vec!["invoke", "get-entity", "-c", conn, "--input-json", "{}"],
        ),
    ];
    // Fill the cache once.
    run(&cache, &["actions"]);
    println!(
        "{:<28} {:>14} {:>16} {:>8}",
        "command (median of 15)", "cached (ms)", "compiled (ms)", "ratio"
    );
    for (label, args) in &cases {
        let mut cached = Vec::new();
        let mut compiled = Vec::new();
        for _ in 0..RUNS {
            cached.push(run(&cache, args));
            let mut uncached = vec!["--no-compile-cache"];
            uncached.extend_from_slice(args);
            compiled.push(run(&cache, &uncached));
        }
        let (cached, compiled) = (median(cached), median(compiled));
        println!(
            "{:<28} {:>14.1} {:>16.1} {:>7.1}×",
            label,
            cached.as_secs_f64() * 1e3,
            compiled.as_secs_f64() * 1e3,
            compiled.as_secs_f64() / cached.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
