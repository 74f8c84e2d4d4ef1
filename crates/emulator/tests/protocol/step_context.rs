//! What a webhook step's registration changes in the RemoteExecutionContext it sends: the
//! step's "Run in User's Context" (`impersonatinguserid`, learn.microsoft.com/power-apps/
//! developer/data-platform/impersonate-a-user) and images naming the owning business unit.

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 5,
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
    assert!(a.status < 300, "{}", a.body);
    let h = a.header("OData-EntityId").expect("OData-EntityId header");
    h.rsplit('(')
        .next()
        .unwrap_or("")
        .trim_end_matches(')')
        .to_string()
}

fn first(c: &Client, path: &str, key: &str) -> String {
    c.get(path, &[]).json()["value"][0][key]
        .as_str()
        .unwrap_or_else(|| panic!("no row for {path}"))
        .to_string()
}

/// An asynchronous step on Create of account calling an unreachable endpoint: the emulator
/// still records the context it tried to send.
fn register(c: &Client, extra: Value) -> String {
    let ep = id_in(&post(
        c,
        "serviceendpoints",
        json!({"name": "ctx", "url": "http://127.0.0.1:9/hook", "contract": 8, "authtype": 4, "authvalue": "k", "messageformat": 2}),
    ));
    let msg = first(c, "sdkmessages?$filter=name eq 'Create'", "sdkmessageid");
    let filter = first(
        c,
        &format!(
            "sdkmessagefilters?$filter=primaryobjecttypecode eq 'account' and _sdkmessageid_value eq {msg}"
        ),
        "sdkmessagefilterid",
    );
    let mut step = json!({
        "name": "Create of account", "stage": 40, "mode": 1, "rank": 1, "supporteddeployment": 0,
        "sdkmessageid@odata.bind": format!("/sdkmessages({msg})"),
        "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter})"),
        "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({ep})"),
    });
    if let (Value::Object(step), Value::Object(extra)) = (&mut step, extra) {
        step.extend(extra);
    }
    id_in(&post(c, "sdkmessageprocessingsteps", step))
}

fn context_of_one_create(emu: &Emulator, c: &Client) -> Value {
    id_in(&post(c, "accounts", json!({"name": "Context"})));
    let sent = emu.wait_for_deliveries(1, Duration::from_secs(10));
    assert_eq!(sent.len(), 1);
    sent[0].json()
}

#[test]
fn a_step_without_impersonation_runs_as_the_calling_user() {
    let (emu, c) = start();
    let caller = c.get("WhoAmI", &[]).json()["UserId"].clone();
    register(&c, json!({}));
    let context = context_of_one_create(&emu, &c);
    assert_eq!(context["UserId"], caller);
    assert_eq!(context["InitiatingUserId"], caller);
}

#[test]
fn a_step_run_in_another_users_context_sends_that_user_as_user_id_and_the_caller_as_initiating() {
    let (emu, c) = start();
    let caller = c.get("WhoAmI", &[]).json()["UserId"].clone();
    let admin = emu.seeded_users().admin.system_user_id;
    assert_ne!(caller, admin.as_str());
    let step = register(
        &c,
        json!({"impersonatinguserid@odata.bind": format!("/systemusers({admin})")}),
    );
    let stored = c
        .get(
            &format!("sdkmessageprocessingsteps({step})?$select=_impersonatinguserid_value"),
            &[],
        )
        .json();
    assert_eq!(stored["_impersonatinguserid_value"], admin.as_str());
    let context = context_of_one_create(&emu, &c);
    assert_eq!(context["UserId"], admin.as_str());
    assert_eq!(context["InitiatingUserId"], caller);
}

#[test]
fn an_image_naming_the_owning_business_unit_gets_the_owners_unit() {
    let (emu, c) = start();
    let who = c.get("WhoAmI", &[]).json();
    let step = register(&c, json!({}));
    id_in(&post(
        &c,
        "sdkmessageprocessingstepimages",
        json!({"name": "PostImage", "entityalias": "PostImage", "imagetype": 1, "messagepropertyname": "Id",
               "attributes": "name,owningbusinessunit",
               "sdkmessageprocessingstepid@odata.bind": format!("/sdkmessageprocessingsteps({step})")}),
    ));
    let context = context_of_one_create(&emu, &c);
    let image = &context["PostEntityImages"][0];
    assert_eq!(image["key"], "PostImage");
    let attributes = image["value"]["Attributes"].as_array().unwrap();
    let unit = attributes
        .iter()
        .find(|kv| kv["key"] == "owningbusinessunit")
        .map(|kv| &kv["value"])
        .expect("the owning business unit is in the image");
    assert_eq!(unit["Id"], who["BusinessUnitId"]);
    assert_eq!(unit["LogicalName"], "businessunit");
    assert!(attributes.iter().any(|kv| kv["key"] == "name"));
}
