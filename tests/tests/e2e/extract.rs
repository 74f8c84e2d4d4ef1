//! The harness's extract command: NDJSON per table, interrupted and resumed, every row once.

use std::collections::BTreeSet;
use std::fs;

use e2e_tests::{client_credentials, emulator, host};
use host_harness::extract::{ExtractOptions, run, with_host};

#[test]
fn an_extraction_interrupted_midway_and_resumed_yields_every_row_exactly_once() {
    let emulator = emulator();
    let dir = std::env::temp_dir().join(format!("extract-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let options = ExtractOptions {
        tables: vec![
            "accounts".to_string(),
            "contacts".to_string(),
            "msdyn_workorders".to_string(),
        ],
        out_dir: dir.clone(),
        state_file: dir.join("state.json"),
        page_size: 4,
        anchor_date: Some("2000-01-01".to_string()),
        max_calls: Some(3),
    };
    let mut connection = client_credentials(&emulator);
    let mut progress = Vec::new();
    let first = run(
        &mut with_host(host(), &mut connection),
        &options,
        &mut progress,
    )
    .unwrap();
    assert!(!first.complete, "three calls cannot read every table");

    // A crash after rows were written but before the state was saved leaves extra bytes.
    let accounts_file = dir.join("accounts.ndjson");
    let mut text = fs::read_to_string(&accounts_file).unwrap();
    text.push_str("{\"accountid\":\"written-before-a-crash\"}\n");
    fs::write(&accounts_file, text).unwrap();

    let resumed = ExtractOptions {
        max_calls: None,
        ..options
    };
    let second = run(
        &mut with_host(host(), &mut connection),
        &resumed,
        &mut progress,
    )
    .unwrap();
    assert!(second.complete);
    assert!(
        second
            .warnings
            .iter()
            .any(|w| w.contains("msdyn_workorders")),
        "a missing table warns: {:?}",
        second.warnings
    );

    for (table, id) in [("accounts", "accountid"), ("contacts", "contactid")] {
        let lines = fs::read_to_string(dir.join(format!("{table}.ndjson"))).unwrap();
        let ids: Vec<String> = lines
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()[id]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let expected: BTreeSet<String> = emulator
            .table(table)
            .iter()
            .map(|row| row[id].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), expected.len(), "{table}: no row twice");
        assert_eq!(
            ids.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{table}: every row"
        );
    }
    let progress = String::from_utf8(progress).unwrap();
    assert!(progress.contains("accounts:") && progress.contains("complete"));
    let _ = fs::remove_dir_all(&dir);
}
