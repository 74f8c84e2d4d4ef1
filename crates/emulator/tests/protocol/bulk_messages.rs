//! The bulk operation messages over HTTP (learn.microsoft.com/power-apps/developer/data-platform/bulk-operations):
//! CreateMultiple, UpdateMultiple, UpsertMultiple and DeleteMultiple, their availability per
//! table, all-or-nothing on standard tables and partial success on the elastic table.

use std::time::Duration;

use dataverse_emulator::{ChangeKind, Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

const ANNOTATIONS: (&str, &str) = ("Prefer", "odata.include-annotations=\"*\"");

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(60));
    (emu, c)
}

fn post(c: &Client, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    c.request("POST", path, "application/json", &body.to_string(), headers)
}

fn account(name: &str) -> Value {
    json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "name": name})
}

fn names(emu: &Emulator, set: &str) -> Vec<String> {
    let mut n: Vec<String> = emu
        .table(set)
        .iter()
        .filter_map(|r| r["name"].as_str().or(r["new_name"].as_str()))
        .map(str::to_string)
        .collect();
    n.sort();
    n
}

/// The per-record statuses of a bulk error (`Plugin.BulkApiErrorDetails`).
fn details(a: &Answer) -> Vec<Value> {
    let text =
        a.json()["error"]["@Microsoft.PowerApps.CDS.ErrorDetails.Plugin.BulkApiErrorDetails"]
            .as_str()
            .unwrap_or_else(|| panic!("no BulkApiErrorDetails in {}", a.body))
            .to_string();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn create_multiple_answers_the_ids_in_input_order_as_one_request() {
    let (emu, c) = start();
    let chosen = "6f1c2e4a-0b3d-4c5e-8f9a-1b2c3d4e5f60";
    let mut second = account("Bulk Two");
    second["accountid"] = json!(chosen);
    emu.clear_requests();
    let before = emu.changes_since(0).len();
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [account("Bulk One"), second, account("Bulk Three")]}),
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    );
    let ids: Vec<&str> = body["Ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], chosen, "a client-assigned id is kept");
    let rows = emu.table("accounts");
    for (id, name) in ids.iter().zip(["Bulk One", "Bulk Two", "Bulk Three"]) {
        let row = rows.iter().find(|r| r["accountid"] == *id).unwrap();
        assert_eq!(row["name"], name);
    }
    assert_eq!(emu.requests().len(), 1, "one request in the log");
    let changes = emu.changes_since(0);
    let created: Vec<&str> = changes[before..]
        .iter()
        .filter(|c| c.kind == ChangeKind::Create && c.entity_set == "accounts")
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(created, ids, "every create is in the change log, in order");
}

#[test]
fn a_failing_record_of_a_standard_table_rolls_the_whole_request_back() {
    let (emu, c) = start();
    let existing = emu.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let before = names(&emu, "accounts");
    let mut clash = account("Clash");
    clash["accountid"] = json!(existing);
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [account("Kept?"), clash, account("Never")]}),
        &[ANNOTATIONS],
    );
    assert_eq!(a.status, 412, "{}", a.body);
    assert_eq!(a.error_code(), "0x80040237");
    assert_eq!(
        details(&a),
        vec![json!({"RequestIndex": 1, "Id": existing, "StatusCode": 412})]
    );
    assert_eq!(names(&emu, "accounts"), before, "nothing was stored");
}

#[test]
fn update_multiple_updates_existing_rows_and_refuses_a_missing_one_whole() {
    let (emu, c) = start();
    let rows = emu.table("accounts");
    let (a_id, b_id) = (
        rows[0]["accountid"].as_str().unwrap().to_string(),
        rows[1]["accountid"].as_str().unwrap().to_string(),
    );
    let target = |id: &str, name: &str| json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": id, "name": name});
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        &json!({"Targets": [target(&a_id, "Renamed A"), target(&b_id, "Renamed B")]}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let count = emu.table("accounts").len();
    let name_of = |id: &str| {
        emu.table("accounts")
            .into_iter()
            .find(|r| r["accountid"] == id)
            .unwrap()["name"]
            .clone()
    };
    assert_eq!(name_of(&a_id), "Renamed A");
    assert_eq!(name_of(&b_id), "Renamed B");

    let missing = "00000000-0000-0000-0000-00000000beef";
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        &json!({"Targets": [target(&a_id, "Again A"), target(missing, "Nobody")]}),
        &[],
    );
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(name_of(&a_id), "Renamed A", "the first update was undone");
    assert_eq!(emu.table("accounts").len(), count, "no row was created");
}

#[test]
fn upsert_multiple_creates_and_updates_by_alternate_key_and_answers_204() {
    let (emu, c) = start();
    let project = |code: &str, name: &str| {
        json!({
            "@odata.type": "Microsoft.Dynamics.CRM.new_project",
            "@odata.id": format!("new_projects(new_code='{code}')"),
            "new_name": name,
        })
    };
    let by_key_columns = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.new_project",
        "new_code": "BULK-3",
        "new_name": "Third",
    });
    let a = post(
        &c,
        "new_projects/Microsoft.Dynamics.CRM.UpsertMultiple",
        &json!({"Targets": [project("BULK-1", "First"), project("BULK-2", "Second"), by_key_columns]}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(a.body.is_empty(), "UpsertMultipleResponse is not returned");
    let count = emu.table("new_projects").len();
    let a = post(
        &c,
        "new_projects/Microsoft.Dynamics.CRM.UpsertMultiple",
        &json!({"Targets": [project("BULK-1", "First, again"), project("BULK-4", "Fourth")]}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let rows = emu.table("new_projects");
    assert_eq!(rows.len(), count + 1, "one created, one updated");
    let by_code = |code: &str| {
        rows.iter()
            .filter(|r| r["new_code"] == code)
            .map(|r| r["new_name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(by_code("BULK-1"), ["First, again"]);
    assert_eq!(by_code("BULK-3"), ["Third"]);
    assert_eq!(by_code("BULK-4"), ["Fourth"]);
}

#[test]
fn targets_are_checked_before_anything_is_written() {
    let (emu, c) = start();
    let before = names(&emu, "accounts");
    let path = "accounts/Microsoft.Dynamics.CRM.CreateMultiple";
    let untyped = post(
        &c,
        path,
        &json!({"Targets": [account("A"), {"name": "B"}]}),
        &[],
    );
    assert_eq!(untyped.status, 400);
    assert!(untyped.body.contains("Targets[1]"), "{}", untyped.body);
    assert!(untyped.body.contains("@odata.type"), "{}", untyped.body);
    let contact = json!({"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "X"});
    let wrong = post(&c, path, &json!({"Targets": [account("A"), contact]}), &[]);
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.body.contains("Microsoft.Dynamics.CRM.contact"),
        "{}",
        wrong.body
    );
    let id = "6f1c2e4a-0b3d-4c5e-8f9a-1b2c3d4e5f61";
    let (mut x, mut y) = (account("X"), account("Y"));
    x["accountid"] = json!(id);
    y["accountid"] = json!(id);
    let twice = post(&c, path, &json!({"Targets": [x, y]}), &[]);
    assert_eq!(twice.status, 400);
    assert!(
        twice.body.contains("Targets[0] and Targets[1]"),
        "{}",
        twice.body
    );
    let none = post(&c, path, &json!({"Records": []}), &[]);
    assert_eq!(none.status, 400);
    assert!(none.body.contains("'Targets'"), "{}", none.body);
    let unidentified = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        &json!({"Targets": [account("Who?")]}),
        &[],
    );
    assert_eq!(unidentified.status, 400);
    assert!(
        unidentified.body.contains("accountid"),
        "{}",
        unidentified.body
    );
    assert_eq!(names(&emu, "accounts"), before);
}

#[test]
fn availability_is_what_the_sdkmessagefilters_query_answers() {
    let (emu, c) = start();
    let query = |message: &str, table: &str| {
        let a = c.get(
            &format!(
                "sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq @message and primaryobjecttypecode eq @table&@message='{message}'&@table='{table}'"
            ),
            &[],
        );
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()["value"].as_array().unwrap().len()
    };
    assert_eq!(query("CreateMultiple", "account"), 1);
    assert_eq!(query("UpsertMultiple", "new_project"), 1);
    assert_eq!(query("CreateMultiple", "annotation"), 0);
    assert_eq!(query("DeleteMultiple", "account"), 0);
    assert_eq!(query("DeleteMultiple", "new_sensorreading"), 1);

    let note = json!({"@odata.type": "Microsoft.Dynamics.CRM.annotation", "subject": "S"});
    let before = emu.table("annotations").len();
    let a = post(
        &c,
        "annotations/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [note]}),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.error_code(), "0x80040800");
    assert!(
        a.body
            .contains("The 'CreateMultiple' method does not support entities of type 'annotation'"),
        "{}",
        a.body
    );
    assert_eq!(emu.table("annotations").len(), before);

    let id = emu.table("accounts")[0]["accountid"].clone();
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.DeleteMultiple",
        &json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": id}]}),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("'DeleteMultiple'"), "{}", a.body);
    assert!(emu.table("accounts").iter().any(|r| r["accountid"] == id));
}

fn reading(partition: &str, name: &str) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.new_sensorreading",
        "new_name": name,
        "new_deviceid": partition,
        "new_value": 40,
        "partitionid": partition,
    })
}

#[test]
fn the_elastic_table_succeeds_partially_and_lists_the_records_that_failed() {
    let (emu, c) = start();
    let definition = c.get(
        "EntityDefinitions(LogicalName='new_sensorreading')?$select=TableType",
        &[],
    );
    assert_eq!(
        definition.json()["TableType"],
        "Elastic",
        "{}",
        definition.body
    );
    let existing = emu.table("new_sensorreadings")[0]["new_sensorreadingid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut clash = reading("device-2", "Clash");
    clash["new_sensorreadingid"] = json!(existing);
    let a = post(
        &c,
        "new_sensorreadings/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [reading("device-1", "R1"), clash, reading("device-1", "R3")]}),
        &[ANNOTATIONS],
    );
    assert_eq!(a.status, 412, "{}", a.body);
    assert_eq!(
        details(&a),
        vec![json!({"RequestIndex": 1, "Id": existing, "StatusCode": 412})]
    );
    let rows = emu.table("new_sensorreadings");
    let stored: Vec<&Value> = rows
        .iter()
        .filter(|r| r["new_name"] == "R1" || r["new_name"] == "R3")
        .collect();
    assert_eq!(stored.len(), 2, "the other records were written");
    assert!(stored.iter().all(|r| r["partitionid"] == "device-1"));

    // Read and delete by the KeyForNoSqlEntityWithPKPartitionId key.
    let id = stored[0]["new_sensorreadingid"]
        .as_str()
        .unwrap()
        .to_string();
    let one = c.get(
        &format!("new_sensorreadings(new_sensorreadingid={id},partitionid='device-1')"),
        &[],
    );
    assert_eq!(one.status, 200, "{}", one.body);
    let target = |id: &str| {
        json!({
            "@odata.type": "Microsoft.Dynamics.CRM.new_sensorreading",
            "new_sensorreadingid": id,
            "partitionid": "device-1",
        })
    };
    let other = stored[1]["new_sensorreadingid"]
        .as_str()
        .unwrap()
        .to_string();
    let a = post(
        &c,
        "new_sensorreadings/Microsoft.Dynamics.CRM.DeleteMultiple",
        &json!({"Targets": [target(&id), target(&other)]}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let left = emu.table("new_sensorreadings");
    assert!(
        !left.iter().any(|r| r["new_sensorreadingid"] == id.as_str()
            || r["new_sensorreadingid"] == other.as_str())
    );
}

#[test]
fn a_reading_created_without_a_partition_takes_its_id_as_partition() {
    let (emu, c) = start();
    let mut r = reading("x", "No partition");
    r.as_object_mut().unwrap().remove("partitionid");
    let a = post(
        &c,
        "new_sensorreadings/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [r]}),
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.json()["Ids"][0].as_str().unwrap().to_string();
    let row = emu
        .table("new_sensorreadings")
        .into_iter()
        .find(|r| r["new_sensorreadingid"] == id.as_str())
        .unwrap();
    assert_eq!(row["partitionid"], id.as_str());
}

#[test]
fn bulk_writes_run_as_the_impersonated_user() {
    let (emu, c) = start();
    let users = emu.seeded_users();
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [account("On behalf")]}),
        &[("MSCRMCallerID", &users.sales_user.system_user_id)],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.json()["Ids"][0].as_str().unwrap().to_string();
    let row = emu
        .table("accounts")
        .into_iter()
        .find(|r| r["accountid"] == id.as_str())
        .unwrap();
    assert_eq!(
        row["_createdby_value"],
        users.sales_user.system_user_id.as_str()
    );
    assert_eq!(
        row["_createdonbehalfby_value"],
        users.application_user.system_user_id.as_str()
    );
}

#[test]
fn a_partition_names_the_rows_of_an_elastic_table_it_holds_and_no_others() {
    let (emu, c) = start();
    let a = post(
        &c,
        "new_sensorreadings/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [reading("north", "N1"), reading("north", "N2"), reading("south", "S1")]}),
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let ids: Vec<String> = a.json()["Ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let north = c.get(
        "new_sensorreadings?partitionId='north'&$select=new_name&$orderby=new_name",
        &[],
    );
    let names: Vec<String> = north.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["new_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["N1", "N2"]);
    let wrong = c.get(
        &format!("new_sensorreadings({})?partitionId=south", ids[0]),
        &[],
    );
    assert_eq!(wrong.status, 404, "{}", wrong.body);
    let wrong_key = c.get(
        &format!(
            "new_sensorreadings(new_sensorreadingid={},partitionid='south')",
            ids[0]
        ),
        &[],
    );
    assert_eq!(wrong_key.status, 404, "{}", wrong_key.body);

    // DeleteMultiple with the wrong partition for one record deletes the others only.
    let target = |id: &str, partition: &str| {
        json!({
            "@odata.type": "Microsoft.Dynamics.CRM.new_sensorreading",
            "new_sensorreadingid": id,
            "partitionid": partition,
        })
    };
    let a = post(
        &c,
        "new_sensorreadings/Microsoft.Dynamics.CRM.DeleteMultiple",
        &json!({"Targets": [target(&ids[0], "south"), target(&ids[2], "south")]}),
        &[ANNOTATIONS],
    );
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(
        details(&a),
        vec![json!({"RequestIndex": 0, "Id": ids[0], "StatusCode": 404})]
    );
    let left: Vec<String> = emu
        .table("new_sensorreadings")
        .iter()
        .filter_map(|r| r["new_sensorreadingid"].as_str().map(str::to_string))
        .collect();
    assert!(left.contains(&ids[0]), "the misnamed row stays");
    assert!(!left.contains(&ids[2]), "the other row is deleted");
}

#[test]
fn upsert_multiple_replaces_an_elastic_row_it_finds() {
    let (emu, c) = start();
    let mut first = reading("east", "Full");
    first["new_sensortype"] = json!("Humidity");
    let a = post(
        &c,
        "new_sensorreadings/Microsoft.Dynamics.CRM.CreateMultiple",
        &json!({"Targets": [first]}),
        &[],
    );
    let id = a.json()["Ids"][0].as_str().unwrap().to_string();
    let replacement = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.new_sensorreading",
        "new_sensorreadingid": id,
        "partitionid": "east",
        "new_name": "Replaced",
    });
    let a = post(
        &c,
        "new_sensorreadings/Microsoft.Dynamics.CRM.UpsertMultiple",
        &json!({"Targets": [replacement]}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let row = emu
        .table("new_sensorreadings")
        .into_iter()
        .find(|r| r["new_sensorreadingid"] == id.as_str())
        .unwrap();
    assert_eq!(row["new_name"], "Replaced");
    assert_eq!(
        row["new_sensortype"],
        Value::Null,
        "the whole row was replaced"
    );
    assert_eq!(row["new_value"], Value::Null);
    assert_eq!(row["partitionid"], "east");
}

/// A key value holding `%` reaches its own row, whether named in `@odata.id` (decoded once, as
/// any URL) or by key columns (the raw value): `100%41` is not `100A`.
#[test]
fn upsert_multiple_keys_holding_percent_signs_name_exactly_their_row() {
    let (emu, c) = start();
    for number in ["100%41", "100A"] {
        let a = post(
            &c,
            "accounts",
            &json!({"name": format!("Decoy {number}"), "accountnumber": number}),
            &[],
        );
        assert_eq!(a.status, 204, "{}", a.body);
    }
    let by_reference = json!({"@odata.type": "Microsoft.Dynamics.CRM.account",
        "@odata.id": "accounts(accountnumber='100%2541')", "name": "By reference"});
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        &json!({"Targets": [by_reference]}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let name_of = |number: &str| {
        emu.table("accounts")
            .into_iter()
            .find(|r| r["accountnumber"] == number)
            .map(|r| r["name"].clone())
    };
    assert_eq!(name_of("100%41"), Some(json!("By reference")));
    assert_eq!(
        name_of("100A"),
        Some(json!("Decoy 100A")),
        "the decoy is untouched"
    );
    let by_columns = json!({"@odata.type": "Microsoft.Dynamics.CRM.account",
        "accountnumber": "100%41", "name": "By columns"});
    let a = post(
        &c,
        "accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        &json!({"Targets": [by_columns]}),
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(name_of("100%41"), Some(json!("By columns")));
    assert_eq!(name_of("100A"), Some(json!("Decoy 100A")));
}
