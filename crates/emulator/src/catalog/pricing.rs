//! The product catalog tables a sales order line needs besides `product`: unit groups and units,
//! price lists and price list items. "A unit is a measurement that specifies in what quantity a
//! product will be sold. A unit group contains one to many types of unit of measurement, as
//! calculated from a base unit. A product is tied to a unit group in which it is sold." and
//! "Price lists contain one to many individual product prices" (Product catalog entities,
//! learn.microsoft.com/dynamics365/sales/developer/product-catalog-entities). Each table's
//! columns are the documented ones a sync writes
//! (learn.microsoft.com/dynamics365/sales/developer/entities/`<name>`).

use crate::schema::{Entity, EntityBuilder as B, Ownership::*, RelDecl};

fn rel(
    schema_name: &str,
    referencing: &str,
    attribute: &str,
    referenced: &str,
    nav: &str,
) -> RelDecl {
    RelDecl {
        schema_name: schema_name.into(),
        referencing: referencing.into(),
        attribute: attribute.into(),
        referenced: referenced.into(),
        referencing_nav: nav.into(),
        referenced_nav: schema_name.into(),
    }
}

/// The tables.
pub fn entities() -> Vec<Entity> {
    // entities/uomschedule: "Grouping of units." BaseUOMName: "Name of the base unit".
    // Every organization ships the "Default Unit" group with the base unit "Primary Unit"
    // (seed.rs seeds both). Creating a group makes its base unit in Dataverse, which the
    // emulator does not do: use the seeded group.
    let uomschedule = B::new(
        "uomschedule",
        "UoMSchedule",
        "uomschedules",
        "Unit Group",
        "Unit Groups",
        1056,
        OrganizationOwned,
        "Grouping of units.",
    )
    .id("uomscheduleid", "Unit Schedule")
    .name("name", "Name", 200)
    .string("baseuomname", "Base Unit Name", 100)
    .memo("description", "Description")
    .state_status(
        &[(0, "Active"), (1, "Inactive")],
        &[(1, "Active"), (2, "Inactive")],
    )
    .audit()
    .build();

    // entities/uom: "Unit of measure." UoMScheduleId: "Choose the ID of the unit group that the
    // unit is associated with"; BaseUoM: "Choose the base or primary unit on which the unit is
    // based"; Quantity: "Unit quantity for the product"; IsScheduleBaseUoM: "Indicates whether
    // the unit is the base unit for the associated unit group".
    let uom = B::new(
        "uom",
        "UoM",
        "uoms",
        "Unit",
        "Units",
        1055,
        OrganizationOwned,
        "Unit of measure.",
    )
    .id("uomid", "Unit")
    .name("name", "Name", 100)
    .lookup("uomscheduleid", "Unit Schedule", &["uomschedule"])
    .lookup("baseuom", "Base Unit", &["uom"])
    .decimal("quantity", "Quantity", 10)
    .boolean("isschedulebaseuom", "Is Schedule Base Unit", "Yes", "No")
    .audit()
    .build();

    // entities/pricelevel: "Entity that defines pricing levels." TransactionCurrencyId:
    // "Unique identifier of the currency associated with the price level." Status: Active (0)
    // Active (100001); Inactive (1) Inactive (100002).
    let pricelevel = B::new(
        "pricelevel",
        "PriceLevel",
        "pricelevels",
        "Price List",
        "Price Lists",
        1022,
        OrganizationOwned,
        "Entity that defines pricing levels.",
    )
    .id("pricelevelid", "Price List")
    .name("name", "Name", 100)
    .memo("description", "Description")
    .datetime("begindate", "Start Date", true)
    .datetime("enddate", "End Date", true)
    .lookup(
        "transactioncurrencyid",
        "Currency",
        &["transactioncurrency"],
    )
    .state_status(
        &[(0, "Active"), (1, "Inactive")],
        &[(100001, "Active"), (100002, "Inactive")],
    )
    .audit()
    .build();

    // entities/productpricelevel: "Information about how to price a product in the specified
    // price level, including pricing method, rounding option, and discount type based on a
    // specified product unit." PrimaryNameAttribute productidname. PricingMethodCode: Currency
    // Amount (1), Percent of List (2), Percent Markup - Current Cost (3), Percent Margin -
    // Current Cost (4), Percent Markup - Standard Cost (5), Percent Margin - Standard Cost (6).
    let productpricelevel = B::new(
        "productpricelevel",
        "ProductPriceLevel",
        "productpricelevels",
        "Price List Item",
        "Price List Items",
        1026,
        OrganizationOwned,
        "Information about how to price a product in the specified price level, including pricing method, rounding option, and discount type based on a specified product unit.",
    )
    .id("productpricelevelid", "Product Price List")
    .name("productidname", "Product Name", 100)
    .lookup("pricelevelid", "Price List", &["pricelevel"])
    .lookup("productid", "Product", &["product"])
    .lookup("uomid", "Unit", &["uom"])
    .lookup("uomscheduleid", "Unit Schedule ID", &["uomschedule"])
    .money("amount", "Amount")
    .picklist(
        "pricingmethodcode",
        "Pricing Method",
        &[
            (1, "Currency Amount"),
            (2, "Percent of List"),
            (3, "Percent Markup - Current Cost"),
            (4, "Percent Margin - Current Cost"),
            (5, "Percent Markup - Standard Cost"),
            (6, "Percent Margin - Standard Cost"),
        ],
    )
    .lookup(
        "transactioncurrencyid",
        "Currency",
        &["transactioncurrency"],
    )
    .audit()
    .build();

    vec![uomschedule, uom, pricelevel, productpricelevel]
}

/// Their relationships, and those of the columns `product`, `salesorder` and
/// `salesorderdetail` hold on them (entities/product: DefaultUoMScheduleId, DefaultUoMId,
/// PriceLevelId, ParentProductId; entities/salesorder: PriceLevelId; entities/salesorderdetail:
/// UoMId).
pub fn relationships() -> Vec<RelDecl> {
    vec![
        rel(
            "unit_of_measure_schedule_conversions",
            "uom",
            "uomscheduleid",
            "uomschedule",
            "uomscheduleid",
        ),
        rel(
            "unit_of_measurement_base_unit",
            "uom",
            "baseuom",
            "uom",
            "baseuom",
        ),
        rel(
            "transactioncurrency_pricelevel",
            "pricelevel",
            "transactioncurrencyid",
            "transactioncurrency",
            "transactioncurrencyid",
        ),
        rel(
            "price_level_product_price_levels",
            "productpricelevel",
            "pricelevelid",
            "pricelevel",
            "pricelevelid",
        ),
        rel(
            "product_price_levels",
            "productpricelevel",
            "productid",
            "product",
            "productid",
        ),
        rel(
            "unit_of_measurement_product_price_levels",
            "productpricelevel",
            "uomid",
            "uom",
            "uomid",
        ),
        rel(
            "unit_of_measure_schedule_product_price_level",
            "productpricelevel",
            "uomscheduleid",
            "uomschedule",
            "uomscheduleid",
        ),
        rel(
            "transactioncurrency_productpricelevel",
            "productpricelevel",
            "transactioncurrencyid",
            "transactioncurrency",
            "transactioncurrencyid",
        ),
        rel(
            "unit_of_measurement_schedule_products",
            "product",
            "defaultuomscheduleid",
            "uomschedule",
            "defaultuomscheduleid",
        ),
        rel(
            "unit_of_measurement_products",
            "product",
            "defaultuomid",
            "uom",
            "defaultuomid",
        ),
        rel(
            "price_level_products",
            "product",
            "pricelevelid",
            "pricelevel",
            "pricelevelid",
        ),
        rel(
            "product_parent_product",
            "product",
            "parentproductid",
            "product",
            "parentproductid",
        ),
        rel(
            "price_level_orders",
            "salesorder",
            "pricelevelid",
            "pricelevel",
            "pricelevelid",
        ),
        rel(
            "unit_of_measurement_salesorderdetail",
            "salesorderdetail",
            "uomid",
            "uom",
            "uomid",
        ),
    ]
}
