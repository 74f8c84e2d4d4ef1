//! nopCommerce's one-way sync (seed 003, issue 16 item 2) driven through the built component:
//! customers become contacts, products (simple and grouped) products with their price list
//! items, orders sales orders with their lines, and the order-status lifecycle moves the
//! Dataverse order once. Every check reads the emulator's tables.

use dataverse_emulator::{Emulator, Fault};
use dynamics_host::Connection;
use e2e_tests::{connected, emulator, host};
use host_harness::shop_sync::{self, Report, Shop, order_line_id, price_list_id, sales_order_id};
use serde_json::Value;

fn fixture() -> Shop {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/nopcommerce/shop.json"
    ))
    .expect("the fixture is readable");
    Shop::from_json(&text).expect("the fixture is a valid export")
}

fn run(connection: &mut Connection, shop: &Shop) -> Report {
    shop_sync::sync(host(), connection, shop).expect("the sync runs")
}

fn rows_where(emulator: &Emulator, set: &str, column: &str, value: &str) -> Vec<Value> {
    emulator
        .table(set)
        .into_iter()
        .filter(|row| row[column].as_str() == Some(value))
        .collect()
}

fn one(emulator: &Emulator, set: &str, column: &str, value: &str) -> Value {
    let rows = rows_where(emulator, set, column, value);
    assert_eq!(rows.len(), 1, "{set} where {column} = {value}: {rows:?}");
    rows.into_iter().next().unwrap()
}

fn order_state(emulator: &Emulator, order: u32) -> (i64, i64) {
    let row = one(
        emulator,
        "salesorders",
        "salesorderid",
        &sales_order_id(order),
    );
    (
        row["statecode"].as_i64().unwrap(),
        row["statuscode"].as_i64().unwrap(),
    )
}

fn closes_of(emulator: &Emulator, order: u32) -> usize {
    rows_where(
        emulator,
        "ordercloses",
        "_salesorderid_value",
        &sales_order_id(order),
    )
    .len()
}

fn status(shop: &mut Shop, order: u32, order_status: u32, payment_status: u32) {
    let o = shop.orders.iter_mut().find(|o| o.id == order).unwrap();
    o.order_status_id = order_status;
    o.payment_status_id = payment_status;
}

#[test]
fn customers_products_and_orders_land_with_price_list_unit_and_currency() {
    let emulator = emulator();
    let mut connection = connected(&emulator);
    let shop = fixture();
    let report = run(&mut connection, &shop);
    assert!(report.failures.is_empty(), "{report:?}");

    // Customers -> contacts, keyed by the shop's customer Id.
    let steve = one(&emulator, "contacts", "externaluseridentifier", "2");
    assert_eq!(steve["firstname"], "Steve");
    assert_eq!(steve["lastname"], "Gates");
    assert_eq!(steve["emailaddress1"], "steve_gates@nopCommerce.com");

    // The price list in the store's currency.
    let usd = one(&emulator, "transactioncurrencies", "isocurrencycode", "USD");
    let price_list = one(
        &emulator,
        "pricelevels",
        "pricelevelid",
        &price_list_id("USD"),
    );
    assert_eq!(
        price_list["_transactioncurrencyid_value"],
        usd["transactioncurrencyid"]
    );
    let unit = one(&emulator, "uoms", "name", "Primary Unit");

    // A grouped product is a family; its associated products are its children.
    let family = one(&emulator, "products", "productnumber", "N5500DS_0");
    assert_eq!(family["productstructure"], 2);
    let red = one(&emulator, "products", "productnumber", "N5500DS_R");
    assert_eq!(red["productstructure"], 1);
    assert_eq!(red["_parentproductid_value"], family["productid"]);
    assert_eq!(red["_defaultuomid_value"], unit["uomid"]);
    assert_eq!(red["_pricelevelid_value"], price_list["pricelevelid"]);
    assert_eq!(red["price"], 630.0);
    let mac = one(&emulator, "products", "productnumber", "AP_MBP_13");
    assert!(mac["_parentproductid_value"].is_null());

    // Each sellable product has its price list item; the family has none.
    let items = rows_where(
        &emulator,
        "productpricelevels",
        "_pricelevelid_value",
        &price_list_id("USD"),
    );
    assert_eq!(items.len(), 4, "{items:?}");
    let red_item = items
        .iter()
        .find(|i| i["_productid_value"] == red["productid"])
        .expect("the red camera is priced");
    assert_eq!(red_item["amount"], 630.0);
    assert_eq!(red_item["_uomid_value"], unit["uomid"]);
    assert_eq!(red_item["pricingmethodcode"], 1);

    // Orders -> sales orders for the customer's contact, with their lines.
    let order = one(&emulator, "salesorders", "salesorderid", &sales_order_id(1));
    let john = one(&emulator, "contacts", "externaluseridentifier", "1");
    assert_eq!(order["_customerid_value"], john["contactid"]);
    assert_eq!(order["_pricelevelid_value"], price_list["pricelevelid"]);
    assert_eq!(
        order["_transactioncurrencyid_value"],
        usd["transactioncurrencyid"]
    );
    assert_eq!(order_state(&emulator, 1), (0, 1), "placed: Active/New");
    let lines = rows_where(
        &emulator,
        "salesorderdetails",
        "_salesorderid_value",
        &sales_order_id(1),
    );
    assert_eq!(lines.len(), 2);
    let second = one(
        &emulator,
        "salesorderdetails",
        "salesorderdetailid",
        &order_line_id(2),
    );
    let black = one(&emulator, "products", "productnumber", "N5500DS_B");
    assert_eq!(second["_productid_value"], black["productid"]);
    assert_eq!(second["_uomid_value"], unit["uomid"]);
    assert_eq!(second["quantity"], 2.0);
    assert_eq!(second["priceperunit"], 670.0);
}

#[test]
fn a_rerun_writes_nothing_and_a_changed_row_is_updated() {
    let emulator = emulator();
    let mut connection = connected(&emulator);
    let mut shop = fixture();
    run(&mut connection, &shop);
    let changes = emulator.changes_since(0).len();

    let again = run(&mut connection, &shop);
    assert_eq!(again.writes, 0, "{again:?}");
    assert!(again.transitions.is_empty(), "{again:?}");
    assert_eq!(
        emulator.changes_since(0).len(),
        changes,
        "a rerun adds no change-log entries"
    );

    shop.customers[1].email = "steve@example.com".to_string();
    shop.products[1].price = 1750.0;
    let changed = run(&mut connection, &shop);
    assert!(changed.failures.is_empty(), "{changed:?}");
    assert_eq!(
        one(&emulator, "contacts", "externaluseridentifier", "2")["emailaddress1"],
        "steve@example.com"
    );
    let mac = one(&emulator, "products", "productnumber", "AP_MBP_13");
    assert_eq!(mac["price"], 1750.0);
    assert_eq!(
        rows_where(
            &emulator,
            "productpricelevels",
            "_productid_value",
            mac["productid"].as_str().unwrap()
        )[0]["amount"],
        1750.0
    );
    // The contact, the product and its price list item: three writes, nothing else.
    assert_eq!(changed.writes, 3, "{changed:?}");
    assert_eq!(
        emulator
            .table("contacts")
            .iter()
            .filter(|c| c["externaluseridentifier"] == "2")
            .count(),
        1
    );
}

#[test]
fn the_order_lifecycle_moves_each_order_once() {
    let emulator = emulator();
    let mut connection = connected(&emulator);
    let mut shop = fixture();
    run(&mut connection, &shop);
    assert_eq!(order_state(&emulator, 1), (0, 1));

    // Paid and processing: still open, status reason Pending.
    status(&mut shop, 1, 20, 30);
    // Cancelled.
    status(&mut shop, 2, 40, 10);
    // Completed.
    status(&mut shop, 3, 30, 30);
    let report = run(&mut connection, &shop);
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.transitions.len(), 3, "{report:?}");
    assert_eq!(
        order_state(&emulator, 1),
        (0, 2),
        "processing: Active/Pending"
    );
    assert_eq!(
        order_state(&emulator, 2),
        (2, 4),
        "cancelled: Canceled/No Money"
    );
    assert_eq!(
        order_state(&emulator, 3),
        (3, 100_001),
        "completed: Fulfilled/Complete"
    );
    assert_eq!((closes_of(&emulator, 2), closes_of(&emulator, 3)), (1, 1));

    // A rerun after the status change moves nothing again.
    let changes = emulator.changes_since(0).len();
    let again = run(&mut connection, &shop);
    assert_eq!(again.writes, 0, "{again:?}");
    assert_eq!(emulator.changes_since(0).len(), changes);
    assert_eq!((closes_of(&emulator, 2), closes_of(&emulator, 3)), (1, 1));

    // Complete the processing order; then the shop deletes the paid order and the cancelled
    // unpaid one: the paid order stays, the unpaid one goes.
    status(&mut shop, 1, 30, 30);
    run(&mut connection, &shop);
    assert_eq!(order_state(&emulator, 1), (3, 100_001));
    for o in &mut shop.orders {
        if o.id == 1 || o.id == 2 {
            o.deleted = true;
        }
    }
    let report = run(&mut connection, &shop);
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(
        order_state(&emulator, 1),
        (3, 100_001),
        "a paid order is never deleted"
    );
    assert!(rows_where(&emulator, "salesorders", "salesorderid", &sales_order_id(2)).is_empty());
    assert!(
        report.notes.iter().any(|n| n.contains("paid")),
        "{report:?}"
    );
}

#[test]
fn a_fulfil_whose_answer_is_lost_is_not_sent_again_on_rerun() {
    let emulator = emulator();
    let mut connection = connected(&emulator);
    let mut shop = fixture();
    run(&mut connection, &shop);
    status(&mut shop, 3, 30, 30);

    // The order is fulfilled in Dataverse, but its answer never arrives.
    emulator
        .faults()
        .inject_on(Fault::CutMidBody, 1, "FulfillSalesOrder");
    let cut = shop_sync::sync(host(), &mut connection, &shop);
    if let Ok(report) = &cut {
        assert!(
            !report.failures.is_empty() || report.transitions.len() == 1,
            "{report:?}"
        );
    }
    assert!(
        emulator
            .requests()
            .iter()
            .any(|r| r.path.contains("FulfillSalesOrder") && r.fault.is_some()),
        "the Fulfill answer was cut"
    );
    assert_eq!(order_state(&emulator, 3), (3, 100_001));
    assert_eq!(closes_of(&emulator, 3), 1);

    // The rerun reads the order's state and leaves it be.
    let rerun = run(&mut connection, &shop);
    assert!(rerun.failures.is_empty(), "{rerun:?}");
    assert!(rerun.transitions.is_empty(), "{rerun:?}");
    assert_eq!(rerun.writes, 0, "{rerun:?}");
    assert_eq!(closes_of(&emulator, 3), 1, "fulfilled exactly once");
    let fulfils = emulator
        .requests()
        .iter()
        .filter(|r| r.path.contains("FulfillSalesOrder"))
        .count();
    assert_eq!(fulfils, 1, "one FulfillSalesOrder request in all");
}

#[test]
fn a_bad_export_is_refused_naming_the_field_before_any_request() {
    let emulator = emulator();
    let mut connection = connected(&emulator);
    let mut shop = fixture();
    shop.orders[0].customer_id = 99;
    let before = emulator.requests().len();
    let error = shop_sync::sync(host(), &mut connection, &shop).unwrap_err();
    assert!(
        error.to_string().contains("Orders[0].CustomerId 99"),
        "{error}"
    );
    let mut shop = fixture();
    shop.orders[1].order_status_id = 25;
    let error = shop_sync::sync(host(), &mut connection, &shop).unwrap_err();
    assert!(
        error.to_string().contains("Orders[1].OrderStatusId 25"),
        "{error}"
    );
    let mut shop = fixture();
    shop.currency_code = "U'S".to_string();
    let error = shop_sync::sync(host(), &mut connection, &shop).unwrap_err();
    assert!(error.to_string().contains("CurrencyCode"), "{error}");
    let mut shop = fixture();
    shop.products[4].parent_grouped_product_id = 1;
    let error = shop_sync::sync(host(), &mut connection, &shop).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Products[4].ParentGroupedProductId 1"),
        "{error}"
    );
    assert_eq!(emulator.requests().len(), before, "no request was made");
}

#[test]
fn the_demo_shows_the_sync_on_the_seeds_field_names_and_the_order_transitions() {
    let emulator = emulator();
    let mut connection = connected(&emulator);
    let mut out = Vec::new();
    shop_sync::show(host(), &mut connection, fixture(), &mut out).expect("the demo's sync runs");
    let text = String::from_utf8(out).unwrap();
    for expected in [
        "Customer.Id -> contact.externaluseridentifier",
        "Customers -> contacts: 3 created",
        "second run, same export: 0 writes",
        "by FulfillSalesOrder",
        "by CancelSalesOrder",
        "Active/New -> Active/Pending",
        "again, nothing changed: 0 writes",
        "deleted in the shop but paid, so kept",
        "order 2: deleted (not paid)",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // What it printed is what the emulator holds.
    assert_eq!(
        order_state(&emulator, 1),
        (0, 2),
        "paid and processing, kept"
    );
    assert_eq!(order_state(&emulator, 3), (3, 100_001));
    assert!(rows_where(&emulator, "salesorders", "salesorderid", &sales_order_id(2)).is_empty());
    assert_eq!(
        rows_where(&emulator, "contacts", "externaluseridentifier", "3").len(),
        1
    );
}

#[test]
fn the_demo_refuses_a_bad_shop_export_before_it_sends_anything() {
    let emulator = emulator();
    let before = emulator.requests().len();
    let export =
        r#"{"CurrencyCode": "USD", "Customers": [], "Products": [], "Orders": [], "Colour": 1}"#;
    let error = host_harness::demo::tour_with(&emulator, 20, Some(export), &mut Vec::new())
        .expect_err("an unknown field is refused");
    assert!(format!("{error:#}").contains("Colour"), "{error:#}");
    assert_eq!(emulator.requests().len(), before, "no request was made");
}
