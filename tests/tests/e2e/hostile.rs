//! Hostile keys through every action that addresses a record by key: each either reaches exactly
//! the row it names (every other row of the table unchanged, checked in the emulator's data) or
//! is refused naming the input, with no request sent.

use dataverse_emulator::Emulator;
use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

/// Key values that change a URL's meaning when written raw: each sits beside a decoy row that a
/// wrongly encoded URL would reach instead (`100%41` decodes to `100A`, `a?b` stops at `a`...).
const REACHABLE: &[(&str, &str)] = &[
    ("100%41", "100A"),
    ("O'Brien", "O"),
    ("a?b=1", "a"),
    ("a#b", "a"),
    ("a/b", "b"),
    ("Fourth Coffee", "Fourth"),
    ("Zoë Ångström", "Zo"),
    ("a%2Fb", "a/b"),
    ("x') or (1 eq 1", "x"),
    ("+plus&amp=1", " plus"),
];

/// Key values no row can hold: refused before any request, naming the input.
fn refused() -> Vec<String> {
    vec![
        "a\r\nIf-None-Match: *".to_string(),
        "line\nbreak".to_string(),
        "nul\u{0}".to_string(),
        "x".repeat(10_000),
    ]
}

fn invoke(emulator: &Emulator, action: &str, input: Value) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

/// `accountnumber='…'` with quotes doubled, as users write an alternate key.
fn key_text(value: &str) -> String {
    format!("accountnumber='{}'", value.replace('\'', "''"))
}

/// A fresh emulator holding a row for each hostile value and each decoy, with its accountid.
fn seeded() -> Emulator {
    let emulator = emulator();
    let mut values: Vec<&str> = Vec::new();
    for (value, decoy) in REACHABLE {
        values.push(value);
        values.push(decoy);
    }
    values.sort();
    values.dedup();
    for value in values {
        invoke(
            &emulator,
            "create-entity",
            json!({"entityType": "accounts", "fieldValues": {"name": "seed", "accountnumber": value}}),
        )
        .unwrap();
    }
    emulator
}

fn rows(emulator: &Emulator) -> Vec<Value> {
    let mut rows = emulator.table("accounts");
    rows.sort_by(|a, b| a["accountid"].as_str().cmp(&b["accountid"].as_str()));
    rows
}

/// Every row but the one whose accountnumber is `value` is exactly as before; that one differs
/// as `check` says (`None`: deleted).
fn only_changed(before: &[Value], after: &[Value], value: &str, check: impl Fn(Option<&Value>)) {
    let target = |row: &&Value| row["accountnumber"] == value;
    let others_before: Vec<&Value> = before.iter().filter(|row| !target(row)).collect();
    let others_after: Vec<&Value> = after.iter().filter(|row| !target(row)).collect();
    assert_eq!(
        others_before, others_after,
        "{value:?}: only the named row may change"
    );
    let matching: Vec<&Value> = after.iter().filter(target).collect();
    assert!(matching.len() <= 1, "{value:?}: one row per key");
    check(matching.first().copied());
}

#[derive(Default)]
struct Tally {
    tried: usize,
    reached: usize,
    refused: usize,
}

#[test]
fn hostile_keys_reach_exactly_their_row_or_are_refused_with_no_request() {
    let emulator = seeded();
    let mut tally = Tally::default();
    for (round, (value, _)) in REACHABLE.iter().enumerate() {
        let text_key = key_text(value);
        let object_key = json!({"accountnumber": value}).to_string();
        for (form, entity_id) in [("text", &text_key), ("object", &object_key)] {
            let label = format!("{value:?} as {form}");
            // Get Entity
            let got = invoke(
                &emulator,
                "get-entity",
                json!({"entityType": "accounts", "entityId": entity_id}),
            )
            .unwrap_or_else(|e| panic!("get {label}: {e:?}"));
            assert_eq!(got["accountnumber"], *value, "get {label}");
            tally.tried += 1;
            tally.reached += 1;

            // Update Entity
            let before = rows(&emulator);
            let name = format!("update {round} {form}");
            invoke(
                &emulator,
                "update-entity",
                json!({"entityType": "accounts", "entityId": entity_id, "fieldValues": {"name": name}}),
            )
            .unwrap_or_else(|e| panic!("update {label}: {e:?}"));
            only_changed(&before, &rows(&emulator), value, |row| {
                assert_eq!(
                    row.expect("still there")["name"],
                    name.as_str(),
                    "update {label}"
                )
            });
            tally.tried += 1;
            tally.reached += 1;

            // Upsert Entity (the row exists: an update)
            let before = rows(&emulator);
            let name = format!("upsert {round} {form}");
            invoke(
                &emulator,
                "upsert-entity",
                json!({"entityType": "accounts", "entityId": entity_id, "fieldValues": {"name": name}}),
            )
            .unwrap_or_else(|e| panic!("upsert {label}: {e:?}"));
            only_changed(&before, &rows(&emulator), value, |row| {
                assert_eq!(
                    row.expect("still there")["name"],
                    name.as_str(),
                    "upsert {label}"
                )
            });
            tally.tried += 1;
            tally.reached += 1;

            // Batch Entity Actions (an update by key)
            let before = rows(&emulator);
            let name = format!("batch {round} {form}");
            let key: Value = if form == "text" {
                Value::String(text_key.clone())
            } else {
                json!({"accountnumber": value})
            };
            let output = invoke(
                &emulator,
                "batch-entity-actions",
                json!({"batchActions": [{"collection": "accounts", "action": "update", "key": key, "data": {"name": name}}]}),
            )
            .unwrap_or_else(|e| panic!("batch {label}: {e:?}"));
            assert_eq!(output["succeeded"], 1, "batch {label}: {output}");
            only_changed(&before, &rows(&emulator), value, |row| {
                assert_eq!(
                    row.expect("still there")["name"],
                    name.as_str(),
                    "batch {label}"
                )
            });
            tally.tried += 1;
            tally.reached += 1;
        }

        // Sync Records matched on the key column
        let before = rows(&emulator);
        let name = format!("sync {round}");
        let output = invoke(
            &emulator,
            "sync-records",
            json!({"entityType": "accounts", "records": [{"accountnumber": value, "name": name}], "matchOn": "accountnumber"}),
        )
        .unwrap_or_else(|e| panic!("sync {value:?}: {e:?}"));
        assert_eq!(output["updated"], 1, "sync {value:?}: {output}");
        let target_id = before
            .iter()
            .find(|row| row["accountnumber"] == *value)
            .map(|row| row["accountid"].clone())
            .unwrap();
        assert_eq!(
            output["results"][0]["id"], target_id,
            "sync {value:?} reports its own row"
        );
        only_changed(&before, &rows(&emulator), value, |row| {
            assert_eq!(
                row.expect("still there")["name"],
                name.as_str(),
                "sync {value:?}"
            )
        });
        tally.tried += 1;
        tally.reached += 1;

        // Delete Entity, last: the row goes, nothing else does
        let before = rows(&emulator);
        invoke(
            &emulator,
            "delete-entity",
            json!({"entityType": "accounts", "entityId": text_key}),
        )
        .unwrap_or_else(|e| panic!("delete {value:?}: {e:?}"));
        only_changed(&before, &rows(&emulator), value, |row| {
            assert!(row.is_none(), "delete {value:?} removed its row")
        });
        tally.tried += 1;
        tally.reached += 1;
    }

    for value in refused() {
        let label: String = value.chars().take(24).collect();
        let text_key = key_text(&value);
        let object_key = json!({"accountnumber": value});
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "get-entity",
                json!({"entityType": "accounts", "entityId": text_key}),
                "entityId",
            ),
            (
                "get-entity",
                json!({"entityType": "accounts", "entityId": object_key.to_string()}),
                "entityId",
            ),
            (
                "update-entity",
                json!({"entityType": "accounts", "entityId": text_key, "fieldValues": {"name": "x"}}),
                "entityId",
            ),
            (
                "upsert-entity",
                json!({"entityType": "accounts", "entityId": text_key, "fieldValues": {"name": "x"}}),
                "entityId",
            ),
            (
                "delete-entity",
                json!({"entityType": "accounts", "entityId": text_key}),
                "entityId",
            ),
            (
                "batch-entity-actions",
                json!({"batchActions": [{"collection": "accounts", "action": "update", "key": object_key, "data": {"name": "x"}}]}),
                "batchActions",
            ),
            (
                "batch-entity-actions",
                json!({"batchActions": [{"collection": "accounts", "action": "delete", "key": text_key}]}),
                "batchActions",
            ),
            (
                "sync-records",
                json!({"entityType": "accounts", "records": [{"accountnumber": value, "name": "x"}], "matchOn": "accountnumber"}),
                "records",
            ),
        ];
        for (action, input, field) in cases {
            emulator.clear_requests();
            let before = rows(&emulator);
            let failure = invoke(&emulator, action, input)
                .expect_err(&format!("{action} with {label:?} must be refused"));
            assert_eq!(
                failure.code,
                ErrorCode::InvalidInput,
                "{action} {label:?}: {failure:?}"
            );
            assert_eq!(
                failure.field.as_deref(),
                Some(field),
                "{action} {label:?}: {failure:?}"
            );
            assert!(
                failure.message.len() < 400,
                "{action}: the message does not echo the whole value"
            );
            assert!(
                emulator.requests().is_empty(),
                "{action} {label:?}: no request sent"
            );
            assert_eq!(before, rows(&emulator));
            tally.tried += 1;
            tally.refused += 1;
        }
    }
    eprintln!(
        "hostile keys: {} tried, {} reached exactly their row, {} refused before any request",
        tally.tried, tally.reached, tally.refused
    );
    assert_eq!(tally.tried, tally.reached + tally.refused);
}

#[test]
fn control_characters_in_headers_and_one_line_inputs_are_refused_naming_the_field() {
    let emulator = emulator();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "update-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='A-1'", "fieldValues": {"name": "x"}, "etag": "W/\"1\"\r\nIf-None-Match: *"}),
            "etag",
        ),
        (
            "delete-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='A-1'", "etag": "*\nX: y"}),
            "etag",
        ),
        // A list holding * would match any version: no concurrency check at all.
        (
            "update-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='A-1'", "fieldValues": {"name": "x"}, "etag": "W/\"1\", *"}),
            "etag",
        ),
        (
            "raw-request",
            json!({"url": "/api/data/v9.2/accounts", "method": "GET", "headers": {"X-Test": "a\r\nIf-None-Match: *"}}),
            "headers",
        ),
        (
            "raw-request",
            json!({"url": "/api/data/v9.2/accounts", "method": "GET", "headers": {"Content-Length": "5"}}),
            "headers",
        ),
        (
            "query-entities",
            json!({"entityType": "accounts", "filterExpression": "name eq 'a'\r\nX: y"}),
            "filterExpression",
        ),
        (
            "get-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='A-1'", "fieldNames": ["na\r\nme"]}),
            "fieldNames",
        ),
    ];
    for (action, input, field) in cases {
        emulator.clear_requests();
        let failure = invoke(&emulator, action, input.clone())
            .expect_err(&format!("{action} {input} must be refused"));
        assert_eq!(
            failure.code,
            ErrorCode::InvalidInput,
            "{action}: {failure:?}"
        );
        assert_eq!(
            failure.field.as_deref(),
            Some(field),
            "{action}: {failure:?}"
        );
        assert!(emulator.requests().is_empty(), "{action}: nothing sent");
    }
    assert_eq!(
        emulator
            .table("accounts")
            .iter()
            .filter(|row| row["accountnumber"] == "A-1")
            .count(),
        1
    );
}
