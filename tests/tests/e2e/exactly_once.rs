//! Every write lands once: the emulator applies a write and then cuts or corrupts its answer, and
//! the call (which sends it again) and a rerun leave exactly the rows asked for. Then seeded
//! storms of mixed faults over batch creates, Sync Records, fetch-all and extraction: no row
//! lost, none duplicated, in every run.

use std::collections::{BTreeSet, HashMap};
use std::fs;

use dataverse_emulator::{Emulator, Fault};
use dynamics_host::{ConnectorError, ErrorCode, Host};
use e2e_tests::{
    Answered, account_creates, client_credentials, connected, emulator, host, impatient_host, json,
};
use host_harness::extract::{ExtractOptions, run, with_host};
use serde_json::{Value, json};

fn invoke_on(
    host: &Host,
    emulator: &Emulator,
    action: &str,
    input: &Value,
) -> Result<Value, ConnectorError> {
    host.invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

/// How many accounts carry an account number starting with `prefix`, and how many distinct.
fn count(emulator: &Emulator, prefix: &str) -> (usize, usize) {
    let numbers: Vec<String> = emulator
        .table("accounts")
        .iter()
        .filter_map(|row| row["accountnumber"].as_str().map(str::to_string))
        .filter(|number| number.starts_with(prefix))
        .collect();
    let distinct = numbers.iter().collect::<BTreeSet<_>>().len();
    (numbers.len(), distinct)
}

fn batch_input(prefix: &str, n: usize, all_or_nothing: bool, key: Option<&str>) -> Value {
    // The `$batch` path, which these faults target; bulk_messages.rs runs them on CreateMultiple.
    // One request of up to 1,000 (the service's hint would spread them over several).
    let mut input = json!({"batchActions": account_creates(prefix, n), "allOrNothing": all_or_nothing, "writePath": "batch", "bulkBatchSize": 1000});
    if let Some(key) = key {
        input["idempotencyKey"] = json!(key);
    }
    input
}

#[test]
fn a_batch_of_500_creates_whose_answer_is_cut_or_corrupted_makes_500_rows_through_call_and_rerun() {
    for (all_or_nothing, fault) in [
        (false, Fault::CutMidBody),
        (true, Fault::CutMidBody),
        (false, Fault::MalformedJson),
        (true, Fault::MalformedJson),
    ] {
        let emulator = emulator();
        let prefix = format!("B{}{:?}", u8::from(all_or_nothing), fault);
        let input = batch_input(&prefix, 500, all_or_nothing, Some("run-42/step-7"));
        emulator.faults().inject_on(fault.clone(), 1, "$batch");
        let first = invoke_on(host(), &emulator, "batch-entity-actions", &input)
            .unwrap_or_else(|e| panic!("{prefix}: {e:?}"));
        assert_eq!(first["succeeded"], 500, "{prefix}: {}", first["failed"]);
        assert_eq!(
            count(&emulator, &prefix),
            (500, 500),
            "{prefix}: after the call"
        );
        let already = first["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["alreadyCreated"] == true)
            .count();
        assert_eq!(
            already, 500,
            "{prefix}: the resend met the rows the lost attempt made"
        );

        // The rerun of the same input and key: every create meets its row.
        let rerun = invoke_on(host(), &emulator, "batch-entity-actions", &input).unwrap();
        assert_eq!(rerun["succeeded"], 500, "{prefix}");
        assert_eq!(
            count(&emulator, &prefix),
            (500, 500),
            "{prefix}: after the rerun"
        );
        // Same IDs reported both times, and they are the rows' IDs.
        let ids = |output: &Value| -> Vec<String> {
            output["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&first), ids(&rerun));
        let stored: BTreeSet<String> = emulator
            .table("accounts")
            .iter()
            .filter(|row| {
                row["accountnumber"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&prefix)
            })
            .map(|row| row["accountid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(stored, ids(&first).into_iter().collect::<BTreeSet<_>>());
    }
}

#[test]
fn when_every_answer_is_lost_the_error_names_the_unknown_items_and_the_key_that_finishes_the_run() {
    let emulator = emulator();
    emulator
        .faults()
        .inject_on(Fault::CutMidBody, 100, "$batch");
    let input = batch_input("LOST", 500, false, None);
    let failure = invoke_on(impatient_host(), &emulator, "batch-entity-actions", &input)
        .expect_err("no answer ever arrives");
    assert!(
        failure
            .message
            .contains("items 0–499 may or may not have been applied"),
        "{}",
        failure.message
    );
    let hint = failure.hint.clone().unwrap_or_default();
    assert!(!hint.contains("then retry"), "{hint}");
    let key = hint
        .split("idempotencyKey \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the hint names the key: {hint}"))
        .to_string();
    emulator.faults().clear();
    assert_eq!(
        count(&emulator, "LOST").0,
        500,
        "the lost attempts applied the batch once"
    );

    let mut rerun = input.clone();
    rerun["idempotencyKey"] = json!(key);
    let output = invoke_on(host(), &emulator, "batch-entity-actions", &rerun).unwrap();
    assert_eq!(output["succeeded"], 500);
    assert_eq!(count(&emulator, "LOST"), (500, 500));
}

#[test]
fn a_single_create_whose_answer_is_cut_or_corrupted_makes_one_row_through_call_and_rerun() {
    for fault in [Fault::CutMidBody, Fault::MalformedJson] {
        let emulator = emulator();
        let number = format!("ONE-{fault:?}");
        let input = json!({"entityType": "accounts", "idempotencyKey": "k1",
                           "fieldValues": {"name": "one", "accountnumber": number},
                           "returnRepresentation": true});
        emulator.faults().inject_on(fault.clone(), 1, "/accounts");
        let first = invoke_on(host(), &emulator, "create-entity", &input)
            .unwrap_or_else(|e| panic!("{fault:?}: {e:?}"));
        let rerun = invoke_on(host(), &emulator, "create-entity", &input).unwrap();
        assert_eq!(first["id"], rerun["id"]);
        assert_eq!(rerun["alreadyCreated"], true);
        assert_eq!(count(&emulator, &number), (1, 1), "{fault:?}");
    }
}

#[test]
fn a_single_create_whose_answers_are_all_lost_says_how_to_finish_without_a_second_row() {
    let emulator = emulator();
    emulator
        .faults()
        .inject_on(Fault::CutMidBody, 100, "/accounts");
    let input = json!({"entityType": "accounts", "fieldValues": {"name": "lost", "accountnumber": "LOST-1"}, "returnRepresentation": true});
    let failure = invoke_on(impatient_host(), &emulator, "create-entity", &input).unwrap_err();
    assert!(
        failure.message.contains("may or may not have been applied"),
        "{}",
        failure.message
    );
    let hint = failure.hint.unwrap_or_default();
    let key = hint
        .split("idempotencyKey \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{hint}"))
        .to_string();
    emulator.faults().clear();
    let mut rerun = input.clone();
    rerun["idempotencyKey"] = json!(key);
    let output = invoke_on(host(), &emulator, "create-entity", &rerun).unwrap();
    assert_eq!(output["alreadyCreated"], true);
    assert_eq!(count(&emulator, "LOST-1"), (1, 1));
}

#[test]
fn a_create_that_meets_a_duplicate_alternate_key_is_still_refused() {
    // The 412 is the service's own (the alternate key A-1 exists), not a row this run made: it
    // stays an error, and nothing is reported as created or written.
    let emulator = emulator();
    let input =
        json!({"entityType": "accounts", "fieldValues": {"name": "dup", "accountnumber": "A-1"}});
    let before = emulator.table("accounts");
    let failure = invoke_on(host(), &emulator, "create-entity", &input).unwrap_err();
    assert_eq!(failure.http_status, Some(412), "{failure:?}");
    assert_eq!(
        failure.service_code.as_deref(),
        Some("0x80040237"),
        "{failure:?}"
    );
    assert_eq!(emulator.table("accounts"), before, "nothing written");
}

#[test]
fn sync_records_whose_batch_answer_is_cut_or_corrupted_leaves_one_row_per_key() {
    for fault in [Fault::CutMidBody, Fault::MalformedJson] {
        let emulator = emulator();
        let prefix = format!("S{fault:?}");
        let records: Vec<Value> = (0..500)
            .map(|i| json!({"accountnumber": format!("{prefix}-{i}"), "name": format!("s {i}")}))
            .collect();
        let input = json!({"entityType": "accounts", "records": records, "matchOn": "accountnumber", "batchSize": 250});
        emulator.faults().inject_on(fault.clone(), 1, "$batch");
        let first = invoke_on(host(), &emulator, "sync-records", &input)
            .unwrap_or_else(|e| panic!("{fault:?}: {e:?}"));
        assert_eq!(first["created"], 500, "{fault:?}: {}", first["failed"]);
        let rerun = invoke_on(host(), &emulator, "sync-records", &input).unwrap();
        assert_eq!(rerun["unchanged"], 500);
        assert_eq!(count(&emulator, &prefix), (500, 500), "{fault:?}");
    }
}

/// A small deterministic generator, so a failing storm can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Queues a random schedule of faults: throttling, outages, answers cut after the request was
/// applied, and 2xx answers with malformed bodies.
fn storm(emulator: &Emulator, rng: &mut Rng, path: &str) {
    for _ in 0..rng.below(4) + 1 {
        let fault = match rng.below(4) {
            0 => Fault::Throttle {
                retry_after_secs: 0,
            },
            1 => Fault::Unavailable,
            2 => Fault::CutMidBody,
            _ => Fault::MalformedJson,
        };
        emulator
            .faults()
            .inject_on(fault, rng.below(2) as usize + 1, path);
    }
}

/// Calls that failed during the storms and were run again.
static RERUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `action` until it succeeds (a user rerunning a failed step with the same input), at
/// most 10 times.
fn until_done(emulator: &Emulator, action: &str, input: &Value, seed: u64) -> Value {
    for _ in 0..10 {
        match invoke_on(impatient_host(), emulator, action, input) {
            Ok(output) => return output,
            Err(failure) => {
                assert!(
                    !matches!(failure.code, ErrorCode::InvalidInput | ErrorCode::Internal),
                    "seed {seed}: {action}: {failure:?}"
                );
                RERUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    panic!("seed {seed}: {action} never finished");
}

#[test]
fn seeded_fault_storms_lose_and_duplicate_no_row() {
    let mut totals: HashMap<&str, usize> = HashMap::new();
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let emulator = emulator();

        // Batch creates, independent or all-or-nothing, rerun with the same key until done.
        let prefix = format!("STORM{seed}");
        let all_or_nothing = rng.below(2) == 0;
        let input = batch_input(&prefix, 300, all_or_nothing, Some(&format!("storm-{seed}")));
        storm(&emulator, &mut rng, "$batch");
        let output = until_done(&emulator, "batch-entity-actions", &input, seed);
        emulator.faults().clear();
        assert_eq!(
            output["succeeded"], 300,
            "seed {seed}: {}",
            output["failed"]
        );
        assert_eq!(
            count(&emulator, &prefix),
            (300, 300),
            "seed {seed}: batch creates"
        );
        *totals.entry("batch rows").or_default() += 300;

        // Sync Records of 200 keys, half of them new.
        let sync_prefix = format!("SYNC{seed}");
        let records: Vec<Value> = (0..200)
            .map(|i| {
                let number = if i % 2 == 0 {
                    format!("{prefix}-{i}")
                } else {
                    format!("{sync_prefix}-{i}")
                };
                json!({"accountnumber": number, "name": format!("synced {i}")})
            })
            .collect();
        let sync = json!({"entityType": "accounts", "records": records, "matchOn": "accountnumber", "batchSize": 64});
        storm(&emulator, &mut rng, "/api/data");
        until_done(&emulator, "sync-records", &sync, seed);
        emulator.faults().clear();
        assert_eq!(
            count(&emulator, &prefix),
            (300, 300),
            "seed {seed}: sync reused the keys"
        );
        assert_eq!(
            count(&emulator, &sync_prefix),
            (100, 100),
            "seed {seed}: sync creates"
        );
        let synced = emulator
            .table("accounts")
            .iter()
            .filter(|row| {
                row["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("synced "))
            })
            .count();
        assert_eq!(synced, 200, "seed {seed}: every synced row written");
        *totals.entry("sync rows").or_default() += 200;

        // Fetch-all of every account through a storm: each row exactly once.
        storm(&emulator, &mut rng, "/accounts");
        let query = json!({"entityType": "accounts", "fetchAll": true, "recordsPerPage": 37, "fieldNames": ["accountid"]});
        let fetched = until_done(&emulator, "query-entities", &query, seed);
        emulator.faults().clear();
        let ids: Vec<&str> = fetched["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["accountid"].as_str().unwrap())
            .collect();
        let table = emulator.table("accounts");
        assert_eq!(ids.len(), table.len(), "seed {seed}: fetch-all count");
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            ids.len(),
            "seed {seed}: no duplicate"
        );
        *totals.entry("fetched rows").or_default() += ids.len();

        // Extraction through a storm, resumed until complete: each row exactly once in the file.
        let dir = std::env::temp_dir().join(format!("storm-extract-{}-{seed}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let options = ExtractOptions {
            tables: vec!["accounts".to_string()],
            out_dir: dir.clone(),
            state_file: dir.join("state.json"),
            page_size: 50,
            anchor_date: Some("2000-01-01".to_string()),
            max_calls: None,
        };
        storm(&emulator, &mut rng, "/accounts");
        let mut connection = client_credentials(&emulator);
        let mut complete = false;
        for _ in 0..10 {
            let mut progress = Vec::new();
            if let Ok(summary) = run(
                &mut with_host(impatient_host(), &mut connection),
                &options,
                &mut progress,
            ) && summary.complete
            {
                complete = true;
                break;
            }
        }
        emulator.faults().clear();
        assert!(complete, "seed {seed}: extraction finished");
        let lines = fs::read_to_string(dir.join("accounts.ndjson")).unwrap();
        let extracted: Vec<String> = lines
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["accountid"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let distinct: BTreeSet<&String> = extracted.iter().collect();
        assert_eq!(
            distinct.len(),
            extracted.len(),
            "seed {seed}: extraction duplicated a row"
        );
        assert_eq!(
            extracted.len(),
            table.len(),
            "seed {seed}: extraction lost a row"
        );
        *totals.entry("extracted rows").or_default() += extracted.len();
        let _ = fs::remove_dir_all(&dir);
    }
    eprintln!(
        "storms: 12 seeds, {} failed calls run again, rows checked {totals:?}; 0 lost, 0 duplicated",
        RERUNS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn a_key_reused_for_other_data_or_another_kind_of_batch_never_reports_another_writes_row() {
    let emulator = emulator();
    // The same key, other data: a second record, not "already created" with the first one's ID.
    let first = invoke_on(
        host(),
        &emulator,
        "create-entity",
        &json!({"entityType": "accounts", "idempotencyKey": "k1", "fieldValues": {"name": "K1", "accountnumber": "REUSE-1"}}),
    )
    .unwrap();
    let second = invoke_on(
        host(),
        &emulator,
        "create-entity",
        &json!({"entityType": "accounts", "idempotencyKey": "k1", "fieldValues": {"name": "DIFFERENT", "accountnumber": "REUSE-2"}}),
    )
    .unwrap();
    assert!(second.get("alreadyCreated").is_none(), "{second}");
    assert_ne!(first["id"], second["id"]);
    assert_eq!(count(&emulator, "REUSE-"), (2, 2));
    let stored = emulator.table("accounts");
    let k1 = stored
        .iter()
        .find(|row| row["accountid"] == first["id"])
        .unwrap();
    assert_eq!(k1["name"], "K1", "the first record is untouched");

    // An independent batch, then an all-or-nothing one with the same key and items: the change
    // set is a write of its own, so its update of a missing record fails honestly instead of
    // being reported as applied earlier.
    let items = json!([
        {"collection": "accounts", "action": "create", "data": {"name": "aon mix"}},
        {"collection": "accounts", "action": "update", "key": "99999999-2222-3333-4444-555555555555", "data": {"name": "never"}},
    ]);
    let independent = invoke_on(
        host(),
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": items, "idempotencyKey": "mix1"}),
    )
    .unwrap();
    assert_eq!(
        (
            independent["succeeded"].as_u64(),
            independent["failed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let atomic = invoke_on(
        host(),
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": items, "idempotencyKey": "mix1", "allOrNothing": true}),
    )
    .unwrap();
    assert_eq!(atomic["succeeded"], 0, "{atomic}");
    assert_eq!(atomic["results"][0]["outcome"], "rolled-back", "{atomic}");
    assert_eq!(atomic["results"][1]["outcome"], "failed", "{atomic}");
    assert!(!atomic.to_string().contains("appliedEarlier"), "{atomic}");
    let made = emulator
        .table("accounts")
        .iter()
        .filter(|row| row["name"] == "aon mix")
        .count();
    assert_eq!(made, 1, "the rolled-back change set made nothing");
}

#[test]
fn a_create_with_its_own_primary_id_whose_answer_is_lost_meets_its_row_and_a_taken_id_is_refused() {
    let emulator = emulator();
    let id = "11111111-2222-3333-4444-555555555556";
    emulator
        .faults()
        .inject_on(Fault::CutMidBody, 1, "/accounts(");
    let output = invoke_on(
        host(),
        &emulator,
        "create-entity",
        &json!({"entityType": "accounts", "returnRepresentation": true, "fieldValues": {"name": "own id", "accountid": id}}),
    )
    .unwrap();
    assert_eq!(output["id"], id);
    assert_eq!(output["alreadyCreated"], true, "{output}");
    let rows: Vec<_> = emulator
        .table("accounts")
        .into_iter()
        .filter(|row| row["accountid"] == id)
        .collect();
    assert_eq!(rows.len(), 1);

    // The same ID with other data: someone else's row, so the service's 412 stands.
    let taken = invoke_on(
        host(),
        &emulator,
        "create-entity",
        &json!({"entityType": "accounts", "fieldValues": {"name": "someone else", "accountid": id}}),
    )
    .unwrap_err();
    assert_eq!(taken.http_status, Some(412), "{taken:?}");
    let stored = emulator.table("accounts");
    let row = stored.iter().find(|row| row["accountid"] == id).unwrap();
    assert_eq!(row["name"], "own id");

    // In a batch whose answer is cut: the resend meets the row and reports it made.
    emulator.faults().inject_on(Fault::CutMidBody, 1, "$batch");
    let other = "11111111-2222-3333-4444-555555555557";
    let output = invoke_on(
        host(),
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": [{"collection": "accounts", "action": "create", "data": {"name": "batch own id", "accountid": other}}], "writePath": "batch"}),
    )
    .unwrap();
    assert_eq!(output["succeeded"], 1, "{output}");
    assert_eq!(output["results"][0]["alreadyCreated"], true, "{output}");
}

#[test]
fn a_delete_that_finds_nothing_after_a_lost_answer_is_not_called_a_success() {
    let emulator = emulator();
    emulator.faults().inject_on(Fault::CutMidBody, 1, "$batch");
    let output = invoke_on(
        host(),
        &emulator,
        "batch-entity-actions",
        &json!({"batchActions": [
            {"collection": "accounts", "action": "create", "data": {"name": "pad"}},
            {"collection": "accounts", "action": "delete", "key": "deadbeef-0000-4000-8000-000000000000"},
        ]}),
    )
    .unwrap();
    assert_eq!(output["results"][0]["outcome"], "succeeded");
    assert_eq!(output["results"][1]["outcome"], "failed", "{output}");
    assert!(
        output["results"][1]["error"]["hint"]
            .as_str()
            .is_some_and(|hint| hint.contains("may have deleted")),
        "{output}"
    );
}
