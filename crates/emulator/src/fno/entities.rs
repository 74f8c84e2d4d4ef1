//! The data entities served and their seed rows.
//!
//! Names follow the public entities of finance and operations apps ("Data entities overview",
//! learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/data-entities): an
//! entity's public collection name is plural (`CustomersV3` for the `CustomerV3` entity), and a
//! company-specific entity carries `dataAreaId` as the first field of its key ("Open Data
//! Protocol (OData)", learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata:
//! "all fields in the entity key must be provided").

use serde_json::{Map, Value, json};

/// The EDM type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Decimal,
    Int,
    DateTime,
    /// An enum of `Microsoft.Dynamics.DataEntities` (the doc's "Using Enums"), by its type name.
    Enum(&'static str),
}

impl Kind {
    pub fn edm(self) -> String {
        match self {
            Kind::Str => "Edm.String".into(),
            Kind::Decimal => "Edm.Decimal".into(),
            Kind::Int => "Edm.Int64".into(),
            Kind::DateTime => "Edm.DateTimeOffset".into(),
            Kind::Enum(name) => format!("{}.{name}", super::NAMESPACE),
        }
    }
}

/// One public data entity.
pub struct Entity {
    /// The entity set (public collection name), as in the URL.
    pub set: &'static str,
    /// The entity type name, as in `$metadata`.
    pub type_name: &'static str,
    /// The key fields, `dataAreaId` first.
    pub keys: &'static [&'static str],
    pub fields: &'static [(&'static str, Kind)],
    /// A key field a create may leave empty: the number sequence fills it with this prefix.
    pub numbered: Option<(&'static str, &'static str)>,
}

impl Entity {
    pub fn kind(&self, field: &str) -> Option<Kind> {
        self.fields
            .iter()
            .find(|(n, _)| *n == field)
            .map(|(_, k)| *k)
    }

    /// True when the entity has `ModifiedDateTime` (a watermark for incremental reads).
    pub fn has_modified(&self) -> bool {
        self.kind(MODIFIED).is_some()
    }
}

/// The system field written on each create and update, where the entity exposes it.
pub const MODIFIED: &str = "ModifiedDateTime";

pub const ENTITIES: &[Entity] = &[
    Entity {
        set: "CustomersV3",
        type_name: "CustomerV3",
        keys: &["dataAreaId", "CustomerAccount"],
        fields: &[
            ("dataAreaId", Kind::Str),
            ("CustomerAccount", Kind::Str),
            ("OrganizationName", Kind::Str),
            ("CustomerGroupId", Kind::Str),
            ("SalesCurrencyCode", Kind::Str),
            ("AddressCountryRegionId", Kind::Str),
            ("CreditLimit", Kind::Decimal),
            ("PrimaryContactEmail", Kind::Str),
            ("ModifiedDateTime", Kind::DateTime),
        ],
        numbered: Some(("CustomerAccount", "CUST-")),
    },
    Entity {
        set: "VendorsV2",
        type_name: "VendorV2",
        keys: &["dataAreaId", "VendorAccountNumber"],
        fields: &[
            ("dataAreaId", Kind::Str),
            ("VendorAccountNumber", Kind::Str),
            ("VendorOrganizationName", Kind::Str),
            ("VendorGroupId", Kind::Str),
            ("CurrencyCode", Kind::Str),
            ("AddressCountryRegionId", Kind::Str),
        ],
        numbered: Some(("VendorAccountNumber", "VEND-")),
    },
    Entity {
        set: "ReleasedProductsV2",
        type_name: "ReleasedProductV2",
        keys: &["dataAreaId", "ItemNumber"],
        fields: &[
            ("dataAreaId", Kind::Str),
            ("ItemNumber", Kind::Str),
            ("ProductName", Kind::Str),
            ("SearchName", Kind::Str),
            ("ProductType", Kind::Enum("EcoResProductType")),
            ("SalesPrice", Kind::Decimal),
            ("SalesUnitSymbol", Kind::Str),
        ],
        numbered: None,
    },
    Entity {
        set: "SalesOrderHeadersV2",
        type_name: "SalesOrderHeaderV2",
        keys: &["dataAreaId", "SalesOrderNumber"],
        fields: &[
            ("dataAreaId", Kind::Str),
            ("SalesOrderNumber", Kind::Str),
            ("OrderingCustomerAccountNumber", Kind::Str),
            ("InvoiceCustomerAccountNumber", Kind::Str),
            ("CurrencyCode", Kind::Str),
            ("SalesOrderStatus", Kind::Enum("SalesStatus")),
            ("RequestedShippingDate", Kind::DateTime),
            ("ModifiedDateTime", Kind::DateTime),
        ],
        numbered: Some(("SalesOrderNumber", "SO-")),
    },
    Entity {
        set: "SalesOrderLinesV2",
        type_name: "SalesOrderLineV2",
        keys: &["dataAreaId", "SalesOrderNumber", "LineNumber"],
        fields: &[
            ("dataAreaId", Kind::Str),
            ("SalesOrderNumber", Kind::Str),
            ("LineNumber", Kind::Int),
            ("ItemNumber", Kind::Str),
            ("OrderedSalesQuantity", Kind::Decimal),
            ("SalesPrice", Kind::Decimal),
            ("LineAmount", Kind::Decimal),
            ("SalesUnitSymbol", Kind::Str),
        ],
        numbered: None,
    },
];

pub fn by_set(set: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.set == set)
}

/// The companies (legal entities) of the demo data; the first is the user's default company.
pub const COMPANIES: &[&str] = &["usmf", "usrt", "demf"];

fn row(pairs: Value) -> Map<String, Value> {
    match pairs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The seed rows by entity set: `per_company` customers in each company, and a few of the rest.
pub fn seed(per_company: usize, stamp: &str) -> Vec<(&'static str, Vec<Map<String, Value>>)> {
    let mut customers = Vec::new();
    let mut vendors = Vec::new();
    let mut products = Vec::new();
    let mut orders = Vec::new();
    let mut lines = Vec::new();
    for company in COMPANIES {
        let prefix = company[..2].to_ascii_uppercase();
        for i in 1..=per_company {
            customers.push(row(json!({
                "dataAreaId": company,
                "CustomerAccount": format!("{prefix}-{i:03}"),
                "OrganizationName": format!("Customer {i} of {company}"),
                "CustomerGroupId": if i % 2 == 0 { "10" } else { "30" },
                "SalesCurrencyCode": if *company == "demf" { "EUR" } else { "USD" },
                "AddressCountryRegionId": if *company == "demf" { "DEU" } else { "USA" },
                "CreditLimit": (i * 1000) as f64,
                "PrimaryContactEmail": format!("contact{i}@{company}.example.com"),
                "ModifiedDateTime": stamp,
            })));
        }
        for i in 1..=3 {
            vendors.push(row(json!({
                "dataAreaId": company,
                "VendorAccountNumber": format!("{prefix}-V{i:02}"),
                "VendorOrganizationName": format!("Vendor {i} of {company}"),
                "VendorGroupId": "10",
                "CurrencyCode": if *company == "demf" { "EUR" } else { "USD" },
                "AddressCountryRegionId": if *company == "demf" { "DEU" } else { "USA" },
            })));
        }
        for (i, name) in ["Speaker", "Cable", "Amplifier"].iter().enumerate() {
            products.push(row(json!({
                "dataAreaId": company,
                "ItemNumber": format!("D{:04}", i + 1),
                "ProductName": name,
                "SearchName": name.to_ascii_uppercase(),
                "ProductType": "Item",
                "SalesPrice": ((i + 1) * 25) as f64,
                "SalesUnitSymbol": "ea",
            })));
        }
        for i in 1..=2 {
            let number = format!("{prefix}-SO{i:04}");
            orders.push(row(json!({
                "dataAreaId": company,
                "SalesOrderNumber": number,
                "OrderingCustomerAccountNumber": format!("{prefix}-001"),
                "InvoiceCustomerAccountNumber": format!("{prefix}-001"),
                "CurrencyCode": if *company == "demf" { "EUR" } else { "USD" },
                "SalesOrderStatus": "Backorder",
                "RequestedShippingDate": stamp,
                "ModifiedDateTime": stamp,
            })));
            for line in 1..=2 {
                lines.push(row(json!({
                    "dataAreaId": company,
                    "SalesOrderNumber": number,
                    "LineNumber": line,
                    "ItemNumber": format!("D{line:04}"),
                    "OrderedSalesQuantity": 2.0,
                    "SalesPrice": (line * 25) as f64,
                    "LineAmount": (line * 50) as f64,
                    "SalesUnitSymbol": "ea",
                })));
            }
        }
    }
    vec![
        ("CustomersV3", customers),
        ("VendorsV2", vendors),
        ("ReleasedProductsV2", products),
        ("SalesOrderHeadersV2", orders),
        ("SalesOrderLinesV2", lines),
    ]
}
