//! Sync Records: created, updated, unchanged, and a second run of the same input is a no-op.

use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
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
        .answered()
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

fn sync_products(emulator: &dataverse_emulator::Emulator, records: Value, match_on: &str) -> Value {
    let input = json!({"entityType": "products", "records": records, "matchOn": match_on});
    json(
        &host()
            .invoke("sync-records", &connected(emulator), &input.to_string())
            .unwrap(),
    )
}

#[test]
fn matching_on_the_primary_id_updates_that_row() {
    let emulator = emulator();
    let row = emulator.table("products")[0].clone();
    let id = row["productid"].as_str().unwrap().to_string();
    let output = sync_products(
        &emulator,
        json!([{"productid": id.to_uppercase(), "name": "Renamed by ID"}]),
        "productid",
    );
    assert_eq!(output["updated"], 1, "{output}");
    assert_eq!(output["created"], 0, "{output}");
    let stored = emulator.table("products");
    let renamed: Vec<&Value> = stored
        .iter()
        .filter(|r| r["name"] == "Renamed by ID")
        .collect();
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0]["productid"], id.as_str());
}

#[test]
fn a_guid_shaped_value_in_an_alternate_key_column_is_not_taken_for_the_primary_id() {
    let emulator = emulator();
    let sku = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    let first = sync_products(
        &emulator,
        json!([{"productnumber": sku, "name": "GUID-numbered"}]),
        "productnumber",
    );
    assert_eq!(first["created"], 1, "{first}");
    let second = sync_products(
        &emulator,
        json!([{"productnumber": sku, "name": "GUID-numbered, renamed"}]),
        "productnumber",
    );
    assert_eq!(second["updated"], 1, "{second}");
    let stored = emulator.table("products");
    let matching: Vec<&Value> = stored
        .iter()
        .filter(|r| r["productnumber"] == sku)
        .collect();
    assert_eq!(matching.len(), 1, "one row carries the number");
    assert_eq!(matching[0]["name"], "GUID-numbered, renamed");
    assert!(
        stored.iter().all(|r| r["productid"] != sku),
        "no row was made with the number as its ID"
    );
}
