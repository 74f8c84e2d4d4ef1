//! Steps registered on custom APIs: every custom API has its `sdkmessage`
//! (learn.microsoft.com/power-apps/developer/data-platform/custom-api-tables, CustomAPI
//! SdkMessageId), its AllowedCustomProcessingStepType decides which steps may be registered
//! (custom-api, "Select a Custom Processing Step Type"), and a successful run sends the
//! registered webhooks a RemoteExecutionContext naming the custom API, its parameters and its
//! response properties.

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 2,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(30));
    (emu, c)
}

fn post(c: &Client, path: &str, body: Value) -> Answer {
    c.request("POST", path, "application/json", &body.to_string(), &[])
}

fn id_in(a: &Answer) -> String {
    assert!(a.status < 300, "{} {}", a.status, a.body);
    let h = a.header("OData-EntityId").expect("OData-EntityId header");
    h.rsplit('(')
        .next()
        .unwrap_or("")
        .trim_end_matches(')')
        .to_string()
}

/// The custom API's row: its message id and its step type.
fn api(c: &Client, name: &str) -> Value {
    let a = c.get(
        &format!(
            "customapis?$filter=uniquename eq '{name}'&$select=uniquename,_sdkmessageid_value,allowedcustomprocessingsteptype"
        ),
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["value"][0].clone()
}

fn endpoint(c: &Client) -> String {
    id_in(&post(
        c,
        "serviceendpoints",
        json!({"name": "actions", "url": "http://127.0.0.1:9/hook", "contract": 8, "authtype": 4, "authvalue": "k", "messageformat": 2}),
    ))
}

/// A step on the custom API's message (with the bound table's filter when given).
fn step(c: &Client, name: &str, table: Option<&str>, mode: i64) -> Answer {
    let ep = endpoint(c);
    let msg = api(c, name)["_sdkmessageid_value"]
        .as_str()
        .expect("the custom API names its message")
        .to_string();
    let mut body = json!({
        "name": format!("{name} webhook"), "stage": 40, "mode": mode, "rank": 1,
        "supporteddeployment": 0,
        "sdkmessageid@odata.bind": format!("/sdkmessages({msg})"),
        "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({ep})"),
    });
    if let Some(table) = table {
        let filters = c.get(
            &format!(
                "sdkmessagefilters?$filter=primaryobjecttypecode eq '{table}' and _sdkmessageid_value eq {msg}"
            ),
            &[],
        );
        let filter = filters.json()["value"][0]["sdkmessagefilterid"]
            .as_str()
            .unwrap_or_else(|| panic!("no filter of {name} on {table}: {}", filters.body))
            .to_string();
        body["sdkmessagefilterid@odata.bind"] = json!(format!("/sdkmessagefilters({filter})"));
    }
    post(c, "sdkmessageprocessingsteps", body)
}

fn pairs(v: &Value) -> serde_json::Map<String, Value> {
    v.as_array()
        .expect("a key/value list")
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap_or("").to_string(),
                p["value"].clone(),
            )
        })
        .collect()
}

#[test]
fn every_custom_api_has_its_message_and_the_seeded_ones_one_step_type_each() {
    let (_emu, c) = start();
    for (name, steps) in [
        ("new_CalculateDiscount", 2),
        ("new_ScoreAccount", 1),
        ("new_GetGreeting", 0),
    ] {
        let row = api(&c, name);
        assert_eq!(row["allowedcustomprocessingsteptype"], steps, "{name}");
        let msg = row["_sdkmessageid_value"].as_str().expect("a message");
        let m = c.get(&format!("sdkmessages({msg})?$select=name"), &[]);
        assert_eq!(m.json()["name"], name);
    }
    // One created through the Web API gets its message too.
    id_in(&post(
        &c,
        "customapis",
        json!({"uniquename": "new_Ping", "name": "new_Ping", "displayname": "Ping",
               "bindingtype": 0, "isfunction": false, "allowedcustomprocessingsteptype": 1}),
    ));
    let msg = api(&c, "new_Ping")["_sdkmessageid_value"]
        .as_str()
        .expect("the created custom API names its message")
        .to_string();
    assert_eq!(
        c.get(&format!("sdkmessages({msg})?$select=name"), &[])
            .json()["name"],
        "new_Ping"
    );
    // and a step may be registered on it.
    let s = step(&c, "new_Ping", None, 1);
    assert_eq!(s.status, 204, "{}", s.body);
}

#[test]
fn an_unbound_custom_api_sends_its_parameters_and_response_properties() {
    let (emu, c) = start();
    let caller = c.get("WhoAmI", &[]).json()["UserId"].clone();
    let s = step(&c, "new_CalculateDiscount", None, 1);
    assert_eq!(s.status, 204, "{}", s.body);
    let run = post(
        &c,
        "new_CalculateDiscount",
        json!({"Amount": 200, "Percentage": 10}),
    );
    assert_eq!(run.status, 200, "{}", run.body);
    let sent = emu.wait_for_deliveries(1, Duration::from_secs(10));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("x-ms-dynamics-request-name"),
        Some("new_CalculateDiscount")
    );
    let ctx = sent[0].json();
    assert_eq!(ctx["MessageName"], "new_CalculateDiscount");
    assert_eq!(ctx["PrimaryEntityName"], "none");
    assert_eq!(ctx["Stage"], 40);
    assert_eq!(ctx["Mode"], 1);
    assert_eq!(ctx["UserId"], caller);
    let inputs = pairs(&ctx["InputParameters"]);
    assert_eq!(inputs["Amount"], 200);
    assert_eq!(inputs["Percentage"], 10);
    let outputs = pairs(&ctx["OutputParameters"]);
    assert_eq!(outputs["DiscountAmount"], 20.0);
    assert_eq!(outputs["FinalAmount"], 180.0);
}

#[test]
fn a_bound_custom_api_sends_its_row_as_target_and_primary_entity() {
    let (emu, c) = start();
    let account = id_in(&post(&c, "accounts", json!({"name": "Fabrikam"})));
    let s = step(&c, "new_ScoreAccount", Some("account"), 1);
    assert_eq!(s.status, 204, "{}", s.body);
    let run = post(
        &c,
        &format!("accounts({account})/Microsoft.Dynamics.CRM.new_ScoreAccount"),
        json!({"Weight": 2}),
    );
    assert_eq!(run.status, 200, "{}", run.body);
    let sent = emu.wait_for_deliveries(1, Duration::from_secs(10));
    assert_eq!(sent.len(), 1);
    let ctx = sent[0].json();
    assert_eq!(ctx["MessageName"], "new_ScoreAccount");
    assert_eq!(ctx["PrimaryEntityName"], "account");
    assert_eq!(ctx["PrimaryEntityId"], account.as_str());
    let inputs = pairs(&ctx["InputParameters"]);
    assert_eq!(inputs["Target"]["Id"], account.as_str());
    assert_eq!(inputs["Target"]["LogicalName"], "account");
    assert_eq!(inputs["Weight"], 2);
    assert_eq!(pairs(&ctx["OutputParameters"])["Score"], 16);
}

#[test]
fn a_failed_run_sends_nothing() {
    let (emu, c) = start();
    assert_eq!(step(&c, "new_CalculateDiscount", None, 1).status, 204);
    let bad = post(
        &c,
        "new_CalculateDiscount",
        json!({"Amount": 100, "Percentage": 150}),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    // A later good run is the only one delivered: deliveries keep their order.
    let good = post(
        &c,
        "new_CalculateDiscount",
        json!({"Amount": 100, "Percentage": 5}),
    );
    assert_eq!(good.status, 200, "{}", good.body);
    let sent = emu.wait_for_deliveries(2, Duration::from_secs(3));
    assert_eq!(sent.len(), 1);
    assert_eq!(pairs(&sent[0].json()["InputParameters"])["Percentage"], 5);
}

#[test]
fn steps_the_custom_api_does_not_allow_are_refused() {
    let (_emu, c) = start();
    let none = step(&c, "new_GetGreeting", None, 1);
    assert_eq!(none.status, 400, "{}", none.body);
    assert!(none.body.contains("new_GetGreeting"), "{}", none.body);
    assert!(none.body.contains("AllowedCustomProcessingStepType"));
    let sync = step(&c, "new_ScoreAccount", Some("account"), 0);
    assert_eq!(sync.status, 400, "{}", sync.body);
    assert!(sync.body.contains("asynchronous"), "{}", sync.body);
    let steps = c.get("sdkmessageprocessingsteps?$select=name", &[]).json();
    assert_eq!(steps["value"].as_array().map(Vec::len), Some(0));
}
