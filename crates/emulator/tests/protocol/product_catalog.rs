//! The product catalog tables a sales order line needs (catalog/pricing.rs): the seeded
//! "Default Unit" group and its "Primary Unit", price lists and their items, product families,
//! and the contact's external-user key, each checked over HTTP and in the emulator's data.

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

fn send(c: &Client, method: &str, path: &str, body: Value) -> Answer {
    c.request(method, path, "application/json", &body.to_string(), &[])
}

fn created(a: &Answer) -> String {
    assert!(
        a.status == 204 || a.status == 201,
        "{} {}",
        a.status,
        a.body
    );
    let h = a.header("OData-EntityId").expect("OData-EntityId");
    h.rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string()
}

fn one(emu: &Emulator, table: &str, key: &str, id: &str) -> Value {
    let rows: Vec<Value> = emu
        .table(table)
        .into_iter()
        .filter(|r| r[key] == id)
        .collect();
    assert_eq!(rows.len(), 1, "{table} {key}={id}: {rows:?}");
    rows.into_iter().next().unwrap()
}

#[test]
fn every_organization_has_the_default_unit_group_with_its_primary_unit() {
    let (emu, c) = start();
    let groups = c.get("uomschedules?$filter=name eq 'Default Unit'", &[]);
    assert_eq!(groups.status, 200, "{}", groups.body);
    let group = groups.json()["value"][0].clone();
    assert_eq!(group["baseuomname"], "Primary Unit");
    let units = c.get(
        "uoms?$filter=name eq 'Primary Unit' and isschedulebaseuom eq true",
        &[],
    );
    assert_eq!(units.status, 200, "{}", units.body);
    let unit = units.json()["value"][0].clone();
    assert_eq!(unit["_uomscheduleid_value"], group["uomscheduleid"]);
    assert_eq!(unit["quantity"], 1.0);
    assert_eq!(emu.table("uoms").len(), 1);
    assert!(
        emu.table("pricelevels").is_empty(),
        "price lists are the organization's own"
    );
}

#[test]
fn a_price_list_item_prices_a_family_member_in_a_unit_and_an_order_line_uses_them() {
    let (emu, c) = start();
    let unit = emu.table("uoms")[0]["uomid"].as_str().unwrap().to_string();
    let group = emu.table("uomschedules")[0]["uomscheduleid"]
        .as_str()
        .unwrap()
        .to_string();
    let usd = emu
        .table("transactioncurrencies")
        .into_iter()
        .find(|r| r["isocurrencycode"] == "USD")
        .unwrap()["transactioncurrencyid"]
        .as_str()
        .unwrap()
        .to_string();
    let list = created(&send(
        &c,
        "POST",
        "pricelevels",
        json!({"name": "Retail", "transactioncurrencyid@odata.bind": format!("/transactioncurrencies({usd})")}),
    ));
    let family = created(&send(
        &c,
        "POST",
        "products",
        json!({"name": "Cameras", "productnumber": "FAM-1", "productstructure": 2}),
    ));
    let camera = created(&send(
        &c,
        "POST",
        "products",
        json!({
            "name": "Camera, red", "productnumber": "CAM-R", "productstructure": 1, "price": 630,
            "parentproductid@odata.bind": format!("/products({family})"),
            "defaultuomscheduleid@odata.bind": format!("/uomschedules({group})"),
            "defaultuomid@odata.bind": format!("/uoms({unit})"),
            "pricelevelid@odata.bind": format!("/pricelevels({list})"),
        }),
    ));
    let item = created(&send(
        &c,
        "POST",
        "productpricelevels",
        json!({
            "pricelevelid@odata.bind": format!("/pricelevels({list})"),
            "productid@odata.bind": format!("/products({camera})"),
            "uomid@odata.bind": format!("/uoms({unit})"),
            "pricingmethodcode": 1, "amount": 630,
        }),
    ));
    let item = one(&emu, "productpricelevels", "productpricelevelid", &item);
    assert_eq!(item["_productid_value"], camera.as_str());
    assert_eq!(item["_pricelevelid_value"], list.as_str());
    assert_eq!(item["amount"], 630.0);
    let child = one(&emu, "products", "productid", &camera);
    assert_eq!(child["_parentproductid_value"], family.as_str());
    assert_eq!(child["_defaultuomid_value"], unit.as_str());

    let contact = created(&send(&c, "POST", "contacts", json!({"lastname": "Gates"})));
    let order = created(&send(
        &c,
        "POST",
        "salesorders",
        json!({
            "name": "Web order",
            "customerid_contact@odata.bind": format!("/contacts({contact})"),
            "pricelevelid@odata.bind": format!("/pricelevels({list})"),
        }),
    ));
    let line = created(&send(
        &c,
        "POST",
        "salesorderdetails",
        json!({
            "salesorderid@odata.bind": format!("/salesorders({order})"),
            "productid@odata.bind": format!("/products({camera})"),
            "uomid@odata.bind": format!("/uoms({unit})"),
            "quantity": 2, "priceperunit": 630, "ispriceoverridden": true,
        }),
    ));
    assert_eq!(
        one(&emu, "salesorders", "salesorderid", &order)["_pricelevelid_value"],
        list.as_str()
    );
    let line = one(&emu, "salesorderdetails", "salesorderdetailid", &line);
    assert_eq!(line["_uomid_value"], unit.as_str());
    assert_eq!(line["ispriceoverridden"], true);
}

#[test]
fn a_contact_upserted_by_its_external_user_identifier_is_one_row() {
    let (emu, c) = start();
    let path = "contacts(externaluseridentifier='42')";
    let first = send(&c, "PATCH", path, json!({"lastname": "Holmes"}));
    assert!(first.status < 300, "{}", first.body);
    let second = send(
        &c,
        "PATCH",
        path,
        json!({"lastname": "Holmes", "firstname": "Arthur"}),
    );
    assert!(second.status < 300, "{}", second.body);
    let row = one(&emu, "contacts", "externaluseridentifier", "42");
    assert_eq!(row["firstname"], "Arthur");
}
