//! Sync Records: created, updated, unchanged, and a second run of the same input is a no-op.

use e2e_tests::{connected, emulator, host, json};
use host_harness::{ConnectorError, ErrorCode};
use serde_json::{Value, json};

fn sync(emulator: &dataverse_emulator::Emulator, records: Value) -> Result<Value, ConnectorError> {
    let input = json!({
        "entityType": "products",
        "records": records,
        "fieldMapping": {"sku": "productnumber", "title": "name", "price": "price"},
        "matchOn": "productnumber",
        "batchSize": 2,
    });
    host()
        .invoke("sync-records", &connected(emulator), &input.to_string())
        .unwrap()
        .map(|output| json(&output))
}

fn shop() -> Value {
    json!([
        {"sku": "SHOP-1", "title": "Kettle", "price": 25.5, "colour": "red"},
        {"sku": "SHOP-2", "title": "Toaster", "price": 40},
        {"sku": "SHOP-3", "title": "Mug", "price": 6},
    ])
}

#[test]
fn a_first_sync_creates_and_a_second_run_of_the_same_input_changes_nothing() {
    let emulator = emulator();
    let first = sync(&emulator, shop()).unwrap();
    assert_eq!(
        (
            first["created"].as_u64(),
            first["updated"].as_u64(),
            first["unchanged"].as_u64()
        ),
        (Some(3), Some(0), Some(0))
    );
    let stored = emulator.table("products");
    let kettle = stored
        .iter()
        .find(|row| row["productnumber"] == "SHOP-1")
        .expect("synced");
    assert_eq!(kettle["name"], "Kettle");
    assert_eq!(kettle["price"].as_f64(), Some(25.5));
    assert!(
        kettle.get("colour").is_none_or(Value::is_null),
        "unmapped fields are not synced"
    );

    emulator.clear_requests();
    let second = sync(&emulator, shop()).unwrap();
    assert_eq!(second["unchanged"], 3);
    assert_eq!(second["created"], 0);
    assert_eq!(second["updated"], 0);
    assert!(
        emulator.requests().iter().all(|r| r.method == "GET"),
        "a no-op run writes nothing"
    );
    let outcomes: Vec<&str> = second["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["unchanged", "unchanged", "unchanged"]);
}

#[test]
fn only_changed_records_are_written() {
    let emulator = emulator();
    sync(&emulator, shop()).unwrap();
    let mut changed = shop();
    changed[1]["price"] = json!(42);
    changed
        .as_array_mut()
        .unwrap()
        .push(json!({"sku": "SHOP-4", "title": "Teapot", "price": 19}));
    let output = sync(&emulator, changed).unwrap();
    assert_eq!(output["updated"], 1);
    assert_eq!(output["created"], 1);
    assert_eq!(output["unchanged"], 2);
    assert_eq!(output["results"][1]["outcome"], "updated");
    let toaster = emulator
        .table("products")
        .into_iter()
        .find(|row| row["productnumber"] == "SHOP-2")
        .unwrap();
    assert_eq!(toaster["price"].as_f64(), Some(42.0));
}

#[test]
fn a_record_without_its_key_or_a_repeated_key_is_refused_before_any_request() {
    let emulator = emulator();
    let missing = sync(
        &emulator,
        json!([{"sku": "SHOP-1", "title": "A"}, {"title": "No key"}]),
    )
    .unwrap_err();
    assert_eq!(missing.code, ErrorCode::InvalidInput);
    assert_eq!(missing.field.as_deref(), Some("records"));
    assert!(
        missing
            .message
            .contains("record 1 has no text or number for the match column \"productnumber\""),
        "{}",
        missing.message
    );
    let repeated = sync(&emulator, json!([{"sku": "SHOP-1"}, {"sku": "SHOP-1"}])).unwrap_err();
    assert!(
        repeated.message.contains("record 1 repeats the key"),
        "{}",
        repeated.message
    );
    assert!(emulator.requests().is_empty());
}
