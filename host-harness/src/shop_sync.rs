//! nopCommerce's one-way sync into Dataverse (seed 003: "unidirectionally synchronise ...
//! Customers. Products. Orders."), as a flow of the connector's own actions run through the
//! built component: Query Entities, Sync Records, Update Entity, Delete Entity and Perform an
//! Unbound Action.
//!
//! The shop's data comes in nopCommerce's own shapes and field names (`Customer`, `Product`,
//! `Order`, `OrderItem` of Nop.Core.Domain; a fixture stands in for a store:
//! `tests/fixtures/nopcommerce/shop.json`). Where it lands:
//! - customers → contacts, keyed by the shop's customer `Id` in `externaluseridentifier`
//!   (the contact's alternate key);
//! - products → products keyed by `Sku` (`productnumber`): a grouped product (ProductTypeId 10)
//!   becomes a product family (`productstructure` 2) and its associated products
//!   (`ParentGroupedProductId`) its children (`parentproductid`), as Dataverse's product
//!   families model them ("Create a product family", learn.microsoft.com/dynamics365/sales/create-product-family);
//!   each sellable product gets a price list item in the shop's price list, in the
//!   organization's "Primary Unit" of its "Default Unit" group;
//! - orders → sales orders with their lines, in the shop's price list and currency, for the
//!   customer's contact; their status moves the order's state.
//!
//! Every write is keyed (alternate keys, or row IDs derived from the shop's IDs) and compared
//! before it is made (Sync Records leaves unchanged rows alone), so a rerun writes nothing. A
//! status change reads the order's state in Dataverse first and acts only when it differs, so a
//! Fulfill or Cancel happens once however often the sync runs or wherever a run was cut.

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use dynamics_host::{CallError, Connection, Host, describe_error};

/// A nopCommerce store's export: what the plugin reads from the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Shop {
    /// The store's primary currency (the plugin's "Currency code" setting), which must exist in
    /// Dataverse ("Ensure that Business Central and Dataverse currencies match").
    pub currency_code: String,
    pub customers: Vec<Customer>,
    pub products: Vec<Product>,
    pub orders: Vec<Order>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Customer {
    pub id: u32,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub phone: String,
}

/// nopCommerce's ProductType: SimpleProduct = 5, GroupedProduct = 10.
pub const SIMPLE_PRODUCT: u32 = 5;
pub const GROUPED_PRODUCT: u32 = 10;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Product {
    pub id: u32,
    pub name: String,
    pub sku: String,
    pub product_type_id: u32,
    /// The grouped product this one belongs to; 0 for none.
    #[serde(default)]
    pub parent_grouped_product_id: u32,
    pub price: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Order {
    pub id: u32,
    pub custom_order_number: String,
    pub customer_id: u32,
    pub order_status_id: u32,
    pub payment_status_id: u32,
    /// nopCommerce deletes orders softly; the sync deletes the sales order unless it was paid.
    #[serde(default)]
    pub deleted: bool,
    pub order_items: Vec<OrderItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OrderItem {
    pub id: u32,
    pub product_id: u32,
    pub quantity: u32,
    pub unit_price_excl_tax: f64,
}

/// nopCommerce's OrderStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Processing,
    Complete,
    Cancelled,
}

impl OrderStatus {
    fn of(id: u32) -> Option<OrderStatus> {
        Some(match id {
            10 => OrderStatus::Pending,
            20 => OrderStatus::Processing,
            30 => OrderStatus::Complete,
            40 => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// The sales order's statecode and statuscode this status maps to (entities/salesorder:
    /// Active (0) with New (1) or Pending (2); Canceled (2) with No Money (4); Fulfilled (3)
    /// with Complete (100001)).
    fn target(self) -> (i64, i64) {
        match self {
            OrderStatus::Pending => (0, 1),
            OrderStatus::Processing => (0, 2),
            OrderStatus::Cancelled => (2, 4),
            OrderStatus::Complete => (3, 100_001),
        }
    }
}

/// nopCommerce's PaymentStatus: Pending 10, Authorized 20, Paid 30, PartiallyRefunded 35,
/// Refunded 40, Voided 50.
fn payment_status_name(id: u32) -> Option<&'static str> {
    Some(match id {
        10 => "Pending",
        20 => "Authorized",
        30 => "Paid",
        35 => "PartiallyRefunded",
        40 => "Refunded",
        50 => "Voided",
        _ => return None,
    })
}

const PAID: u32 = 30;

impl Shop {
    /// Reads an export from JSON, checking it whole before anything is sent.
    pub fn from_json(text: &str) -> anyhow::Result<Shop> {
        let shop: Shop = serde_json::from_str(text).context("the shop export is not valid")?;
        shop.check()?;
        Ok(shop)
    }

    /// Each reference and code in the export names something that exists.
    pub fn check(&self) -> anyhow::Result<()> {
        // It goes into a query filter, so it must be exactly the ISO code's three letters.
        if self.currency_code.len() != 3
            || !self.currency_code.bytes().all(|b| b.is_ascii_alphabetic())
        {
            bail!(
                "CurrencyCode {:?}: expected a three-letter ISO code",
                self.currency_code
            );
        }
        for (i, c) in self.customers.iter().enumerate() {
            if self.customers[..i].iter().any(|o| o.id == c.id) {
                bail!("Customers[{i}].Id {}: appears twice", c.id);
            }
        }
        for (i, p) in self.products.iter().enumerate() {
            if p.sku.trim().is_empty() {
                bail!("Products[{i}].Sku: empty; the SKU keys the product in Dataverse");
            }
            if self.products[..i]
                .iter()
                .any(|o| o.sku == p.sku || o.id == p.id)
            {
                bail!(
                    "Products[{i}]: Id {} or Sku {:?} appears twice",
                    p.id,
                    p.sku
                );
            }
            if p.product_type_id != SIMPLE_PRODUCT && p.product_type_id != GROUPED_PRODUCT {
                bail!(
                    "Products[{i}].ProductTypeId {}: expected 5 (simple) or 10 (grouped)",
                    p.product_type_id
                );
            }
            if p.parent_grouped_product_id != 0 {
                match self.product(p.parent_grouped_product_id) {
                    Some(parent) if parent.product_type_id == GROUPED_PRODUCT => {}
                    _ => bail!(
                        "Products[{i}].ParentGroupedProductId {}: no grouped product with that Id",
                        p.parent_grouped_product_id
                    ),
                }
            }
        }
        for (i, o) in self.orders.iter().enumerate() {
            if self.orders[..i].iter().any(|x| x.id == o.id) {
                bail!("Orders[{i}].Id {}: appears twice", o.id);
            }
            if !self.customers.iter().any(|c| c.id == o.customer_id) {
                bail!(
                    "Orders[{i}].CustomerId {}: no customer with that Id",
                    o.customer_id
                );
            }
            if OrderStatus::of(o.order_status_id).is_none() {
                bail!(
                    "Orders[{i}].OrderStatusId {}: expected 10 (Pending), 20 (Processing), 30 (Complete) or 40 (Cancelled)",
                    o.order_status_id
                );
            }
            if payment_status_name(o.payment_status_id).is_none() {
                bail!(
                    "Orders[{i}].PaymentStatusId {}: expected 10, 20, 30, 35, 40 or 50",
                    o.payment_status_id
                );
            }
            for (j, item) in o.order_items.iter().enumerate() {
                match self.product(item.product_id) {
                    Some(p) if p.product_type_id == SIMPLE_PRODUCT => {}
                    Some(_) => bail!(
                        "Orders[{i}].OrderItems[{j}].ProductId {}: a grouped product is a family and cannot be sold",
                        item.product_id
                    ),
                    None => bail!(
                        "Orders[{i}].OrderItems[{j}].ProductId {}: no product with that Id",
                        item.product_id
                    ),
                }
                if item.quantity == 0 {
                    bail!("Orders[{i}].OrderItems[{j}].Quantity: must be at least 1");
                }
                if self
                    .orders
                    .iter()
                    .flat_map(|x| &x.order_items)
                    .filter(|x| x.id == item.id)
                    .count()
                    > 1
                {
                    bail!("Orders[{i}].OrderItems[{j}].Id {}: appears twice", item.id);
                }
            }
        }
        Ok(())
    }

    fn product(&self, id: u32) -> Option<&Product> {
        self.products.iter().find(|p| p.id == id)
    }
}

/// Row IDs for the rows that have no alternate key, derived from the shop's IDs so a rerun
/// addresses the same rows (Dataverse accepts a caller's primary key on create and upsert).
/// nopCommerce's IDs are 32-bit integers: ten digits at most, in the GUID's last group of 12.
fn derived_id(kind: u16, id: u64) -> String {
    format!("5a1e{kind:04x}-0000-4000-8000-{id:012}")
}

/// The shop's price list, one per currency.
pub fn price_list_id(currency: &str) -> String {
    let code = currency
        .bytes()
        .fold(0u64, |n, b| n * 256 + u64::from(b.to_ascii_uppercase()));
    derived_id(1, code)
}
/// The sales order of a shop order.
pub fn sales_order_id(order: u32) -> String {
    derived_id(2, u64::from(order))
}
/// The sales order line of a shop order item.
pub fn order_line_id(item: u32) -> String {
    derived_id(3, u64::from(item))
}
/// A product's price list item.
pub fn price_list_item_id(product: u32) -> String {
    derived_id(4, u64::from(product))
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// One line per table synced: created / updated / unchanged.
    pub tables: Vec<String>,
    /// Order state moves made: `order 1: Active/New -> FulfillSalesOrder`.
    pub transitions: Vec<String>,
    /// Orders left alone and why.
    pub notes: Vec<String>,
    /// Steps that failed (the rest of the run went on; a rerun finishes them).
    pub failures: Vec<String>,
    /// Rows created, updated or deleted and state moves made.
    pub writes: usize,
}

struct Flow<'a> {
    host: &'a Host,
    connection: &'a mut Connection,
    report: Report,
}

impl Flow<'_> {
    fn run(&mut self, key: &str, input: Value) -> anyhow::Result<Value> {
        match self
            .host
            .run_action(key, self.connection, &input.to_string())
        {
            Ok(output) => Ok(serde_json::from_str(&output)?),
            Err(CallError::Connector(failure)) => {
                bail!("{key} failed: {}", describe_error(&failure))
            }
            Err(CallError::Host(problem)) => Err(problem.into()),
        }
    }

    /// The one row `filter` finds in `set`, or none.
    fn find(&mut self, set: &str, filter: &str, fields: &[&str]) -> anyhow::Result<Option<Value>> {
        let output = self.run(
            "query-entities",
            json!({"entityType": set, "filterExpression": filter, "fieldNames": fields, "recordsPerPage": 2}),
        )?;
        Ok(output["records"]
            .as_array()
            .and_then(|rows| rows.first())
            .cloned())
    }

    fn sync(
        &mut self,
        what: &str,
        set: &str,
        match_on: &str,
        records: Vec<Value>,
    ) -> anyhow::Result<Value> {
        if records.is_empty() {
            return Ok(json!({"results": []}));
        }
        let output = self.run(
            "sync-records",
            json!({"entityType": set, "records": records, "matchOn": match_on}),
        )?;
        let count = |k: &str| output[k].as_u64().unwrap_or_default() as usize;
        self.report.writes += count("created") + count("updated");
        self.report.tables.push(format!(
            "{what}: {} created, {} updated, {} unchanged",
            count("created"),
            count("updated"),
            count("unchanged")
        ));
        if count("failed") > 0 {
            bail!(
                "{what}: {} records failed: {}",
                count("failed"),
                output["results"]
            );
        }
        Ok(output)
    }
}

fn id_of(row: &Value, column: &str) -> anyhow::Result<String> {
    row[column]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("the row has no {column}"))
}

fn state_name(state: i64, status: i64) -> String {
    let s = match state {
        0 => "Active",
        1 => "Submitted",
        2 => "Canceled",
        3 => "Fulfilled",
        4 => "Invoiced",
        _ => "?",
    };
    let r = match status {
        1 => "New",
        2 => "Pending",
        3 => "In Progress",
        4 => "No Money",
        100_001 => "Complete",
        100_002 => "Partial",
        100_003 => "Invoiced",
        _ => "?",
    };
    format!("{s}/{r}")
}

/// Syncs `shop` into the connection's environment; see the module docs.
pub fn sync(host: &Host, connection: &mut Connection, shop: &Shop) -> anyhow::Result<Report> {
    shop.check()?;
    let mut flow = Flow {
        host,
        connection,
        report: Report::default(),
    };
    let code = shop.currency_code.to_ascii_uppercase();
    let currency = flow
        .find(
            "transactioncurrencies",
            &format!("isocurrencycode eq '{code}'"),
            &["transactioncurrencyid"],
        )?
        .with_context(|| {
            format!("CurrencyCode {code}: no such currency in Dataverse; add it there first (the store's and Dataverse's currencies must match)")
        })?;
    let currency = id_of(&currency, "transactioncurrencyid")?;
    // Every organization has the "Default Unit" group with its base unit "Primary Unit"; the
    // shop sells single items, so that is the unit of every line.
    let group = flow
        .find("uomschedules", "name eq 'Default Unit'", &["uomscheduleid"])?
        .context("Dataverse has no \"Default Unit\" unit group")?;
    let group = id_of(&group, "uomscheduleid")?;
    let unit = flow
        .find(
            "uoms",
            "name eq 'Primary Unit' and isschedulebaseuom eq true",
            &["uomid"],
        )?
        .context("Dataverse has no \"Primary Unit\" unit")?;
    let unit = id_of(&unit, "uomid")?;
    let currency_ref = json!({"table": "transactioncurrencies", "id": currency});
    let group_ref = json!({"table": "uomschedules", "id": group});
    let unit_ref = json!({"table": "uoms", "id": unit});
    let price_list = price_list_id(&code);
    let price_list_ref = json!({"table": "pricelevels", "id": price_list});

    flow.sync(
        "price list -> pricelevels",
        "pricelevels",
        "pricelevelid",
        vec![json!({
            "pricelevelid": price_list,
            "name": format!("nopCommerce ({code})"),
            "transactioncurrencyid": currency_ref,
        })],
    )?;

    let contacts = shop
        .customers
        .iter()
        .map(|c| {
            json!({
                "externaluseridentifier": c.id.to_string(),
                "firstname": c.first_name,
                "lastname": c.last_name,
                "emailaddress1": c.email,
                "telephone1": c.phone,
            })
        })
        .collect();
    flow.sync(
        "Customers -> contacts",
        "contacts",
        "externaluseridentifier",
        contacts,
    )?;

    let product_key = |p: &Product| json!({"table": "products", "key": {"productnumber": p.sku}});
    let families = shop
        .products
        .iter()
        .filter(|p| p.product_type_id == GROUPED_PRODUCT)
        .map(|p| json!({"productnumber": p.sku, "name": p.name, "productstructure": 2}))
        .collect();
    flow.sync(
        "grouped Products -> product families",
        "products",
        "productnumber",
        families,
    )?;
    let sellable: Vec<&Product> = shop
        .products
        .iter()
        .filter(|p| p.product_type_id == SIMPLE_PRODUCT)
        .collect();
    let products = sellable
        .iter()
        .map(|p| {
            let mut row = json!({
                "productnumber": p.sku,
                "name": p.name,
                "productstructure": 1,
                "price": p.price,
                "quantitydecimal": 0,
                "defaultuomscheduleid": group_ref,
                "defaultuomid": unit_ref,
                "pricelevelid": price_list_ref,
                "transactioncurrencyid": currency_ref,
            });
            // A lookup is set by binding it; a product outside any family leaves it unset (a
            // null under the lookup's name is not a property of the table).
            if let Some(parent) = shop.product(p.parent_grouped_product_id) {
                row["parentproductid"] = product_key(parent);
            }
            row
        })
        .collect();
    flow.sync(
        "Products -> products",
        "products",
        "productnumber",
        products,
    )?;
    let items = sellable
        .iter()
        .map(|p| {
            json!({
                "productpricelevelid": price_list_item_id(p.id),
                "pricelevelid": price_list_ref,
                "productid": product_key(p),
                "uomid": unit_ref,
                "uomscheduleid": group_ref,
                "pricingmethodcode": 1,
                "amount": p.price,
                "transactioncurrencyid": currency_ref,
            })
        })
        .collect();
    flow.sync(
        "Product prices -> productpricelevels",
        "productpricelevels",
        "productpricelevelid",
        items,
    )?;

    // Orders: the state each has in Dataverse now decides what may be written.
    let mut current: Vec<Option<(i64, i64)>> = Vec::new();
    for order in &shop.orders {
        let row = flow.find(
            "salesorders",
            &format!("salesorderid eq {}", sales_order_id(order.id)),
            &["statecode", "statuscode"],
        )?;
        current.push(row.map(|r| {
            (
                r["statecode"].as_i64().unwrap_or_default(),
                r["statuscode"].as_i64().unwrap_or_default(),
            )
        }));
    }
    let mut headers = Vec::new();
    let mut lines = Vec::new();
    for (order, now) in shop.orders.iter().zip(&current) {
        let id = sales_order_id(order.id);
        if order.deleted {
            continue;
        }
        // A closed order is read-only in Dataverse; only an open (or new) one takes writes.
        if let Some((state, status)) = now
            && *state != 0
        {
            let target = OrderStatus::of(order.order_status_id)
                .unwrap_or(OrderStatus::Pending)
                .target();
            if target.0 != *state {
                flow.report.notes.push(format!(
                    "order {}: {} in Dataverse, {:?} in the shop; a closed order is not reopened",
                    order.custom_order_number,
                    state_name(*state, *status),
                    OrderStatus::of(order.order_status_id)
                ));
            }
            continue;
        }
        headers.push(json!({
            "salesorderid": id,
            "name": format!("nopCommerce order {}", order.custom_order_number),
            "ordernumber": format!("NOP-{}", order.custom_order_number),
            "customerid": {"table": "contacts", "key": {"externaluseridentifier": order.customer_id.to_string()}},
            "pricelevelid": price_list_ref,
            "transactioncurrencyid": currency_ref,
        }));
        for (n, item) in order.order_items.iter().enumerate() {
            let product = shop
                .product(item.product_id)
                .context("checked: the product exists")?;
            lines.push(json!({
                "salesorderdetailid": order_line_id(item.id),
                "salesorderid": {"table": "salesorders", "id": id},
                "productid": product_key(product),
                "uomid": unit_ref,
                "quantity": item.quantity,
                "priceperunit": item.unit_price_excl_tax,
                "ispriceoverridden": true,
                "lineitemnumber": n + 1,
                "transactioncurrencyid": currency_ref,
            }));
        }
    }
    flow.sync(
        "Orders -> salesorders",
        "salesorders",
        "salesorderid",
        headers,
    )?;
    flow.sync(
        "OrderItems -> salesorderdetails",
        "salesorderdetails",
        "salesorderdetailid",
        lines,
    )?;

    for (order, now) in shop.orders.iter().zip(current) {
        let id = sales_order_id(order.id);
        let number = &order.custom_order_number;
        if order.deleted {
            match now {
                None => {}
                // "paid orders cannot be deleted from the Dynamics 365 system" (seed 003).
                Some(_) if order.payment_status_id == PAID => flow.report.notes.push(format!(
                    "order {number}: deleted in the shop but paid, so kept in Dataverse"
                )),
                Some(_) => match flow.run(
                    "delete-entity",
                    json!({"entityType": "salesorders", "entityId": id}),
                ) {
                    Ok(_) => {
                        flow.report.writes += 1;
                        flow.report
                            .transitions
                            .push(format!("order {number}: deleted (not paid)"));
                    }
                    Err(e) => flow.report.failures.push(format!("order {number}: {e}")),
                },
            }
            continue;
        }
        let status = OrderStatus::of(order.order_status_id).unwrap_or(OrderStatus::Pending);
        // A new order starts Active/New (the emulator's and Dataverse's default status).
        let (state, reason) = now.unwrap_or((0, 1));
        let target = status.target();
        if (state, reason) == target || state != 0 {
            continue;
        }
        let from = state_name(state, reason);
        let outcome = match status {
            OrderStatus::Complete | OrderStatus::Cancelled => {
                let message = if status == OrderStatus::Complete {
                    "FulfillSalesOrder"
                } else {
                    "CancelSalesOrder"
                };
                flow.run(
                    "perform-unbound-action",
                    json!({
                        "actionName": message,
                        "OrderClose": {
                            "subject": format!("nopCommerce order {number}: {status:?}"),
                            "salesorderid@odata.bind": format!("/salesorders({id})"),
                        },
                        "Status": target.1,
                    }),
                )
                .map(|_| message.to_string())
            }
            OrderStatus::Pending | OrderStatus::Processing => flow
                .run(
                    "update-entity",
                    json!({"entityType": "salesorders", "entityId": id,
                           "fieldValues": {"statecode": target.0, "statuscode": target.1}}),
                )
                .map(|_| "statecode/statuscode".to_string()),
        };
        match outcome {
            Ok(how) => {
                flow.report.writes += 1;
                flow.report.transitions.push(format!(
                    "order {number} ({status:?}, payment {}): {from} -> {} by {how}",
                    payment_status_name(order.payment_status_id).unwrap_or("?"),
                    state_name(target.0, target.1)
                ));
            }
            Err(e) => flow.report.failures.push(format!("order {number}: {e}")),
        }
    }
    Ok(flow.report)
}

/// The fixture the demo syncs: a small store in nopCommerce's shapes.
pub const DEMO_SHOP: &str = include_str!("../../tests/fixtures/nopcommerce/shop.json");

/// Where each of the shop's fields lands, on the seed's and nopCommerce's own names.
pub const MAPPING: &[(&str, &str)] = &[
    (
        "Customer.Id",
        "contact.externaluseridentifier (alternate key)",
    ),
    (
        "Customer.FirstName / LastName / Email / Phone",
        "contact.firstname / lastname / emailaddress1 / telephone1",
    ),
    ("Product.Sku", "product.productnumber (alternate key)"),
    (
        "Product (ProductTypeId 10, grouped)",
        "product, productstructure = Product Family",
    ),
    (
        "Product.ParentGroupedProductId",
        "product.parentproductid (the family)",
    ),
    (
        "Product.Price",
        "product.price and its productpricelevel.amount (Primary Unit)",
    ),
    (
        "Order.Id / CustomOrderNumber / CustomerId",
        "salesorder.salesorderid (derived) / ordernumber / customerid (the contact)",
    ),
    (
        "OrderItem.ProductId / Quantity / UnitPriceExclTax",
        "salesorderdetail.productid / quantity / priceperunit",
    ),
    (
        "Order.OrderStatusId Pending / Processing",
        "salesorder Active/New / Active/Pending (Update Entity)",
    ),
    (
        "Order.OrderStatusId Cancelled / Complete",
        "CancelSalesOrder / FulfillSalesOrder",
    ),
    (
        "Order.Deleted",
        "the sales order deleted, unless PaymentStatusId is Paid",
    ),
];

fn print(out: &mut dyn std::io::Write, title: &str, report: &Report) -> anyhow::Result<()> {
    writeln!(out, "   {title}: {} writes", report.writes)?;
    for line in report
        .tables
        .iter()
        .chain(&report.transitions)
        .chain(&report.notes)
        .chain(&report.failures)
    {
        writeln!(out, "     {line}")?;
    }
    Ok(())
}

/// The demo's walk through the sync of `shop` (the fixture, [`DEMO_SHOP`], or an export of the
/// user's): the first run, a rerun, the orders' lifecycle (order 1 paid and processing, 2
/// cancelled, 3 paid and completed, where the export has them), a rerun after it, and orders 1
/// and 2 deleted by the shop.
pub fn show(
    host: &Host,
    connection: &mut Connection,
    mut shop: Shop,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Shop> {
    writeln!(out, "   nopCommerce field -> Dataverse column:")?;
    for (from, to) in MAPPING {
        writeln!(out, "     {from} -> {to}")?;
    }
    print(out, "first run", &sync(host, connection, &shop)?)?;
    print(
        out,
        "second run, same export",
        &sync(host, connection, &shop)?,
    )?;
    let mut set = |order: u32, status: u32, payment: u32| {
        if let Some(o) = shop.orders.iter_mut().find(|o| o.id == order) {
            o.order_status_id = status;
            o.payment_status_id = payment;
        }
    };
    set(1, 20, PAID);
    set(2, 40, 10);
    set(3, 30, PAID);
    writeln!(
        out,
        "   the shop: order 1 paid and Processing, order 2 Cancelled, order 3 paid and Complete"
    )?;
    print(
        out,
        "after the status changes",
        &sync(host, connection, &shop)?,
    )?;
    print(
        out,
        "again, nothing changed",
        &sync(host, connection, &shop)?,
    )?;
    for o in shop.orders.iter_mut().filter(|o| o.id == 1 || o.id == 2) {
        o.deleted = true;
    }
    writeln!(
        out,
        "   the shop deletes order 1 (paid) and order 2 (not paid)"
    )?;
    print(out, "after the deletes", &sync(host, connection, &shop)?)?;
    Ok(shop)
}
