//! `/data/$metadata`: the CSDL of the served entities ("Open Data Protocol (OData)",
//! learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata, "Metadata
//! annotations": `/data/$metadata` describes the entities, and "EnumType is supported").

use super::NAMESPACE;
use super::entities::{ENTITIES, Kind};

pub fn document() -> String {
    let mut enums: Vec<&str> = Vec::new();
    let mut types = String::new();
    let mut sets = String::new();
    for e in ENTITIES {
        types.push_str(&format!("<EntityType Name=\"{}\"><Key>", e.type_name));
        for k in e.keys {
            types.push_str(&format!("<PropertyRef Name=\"{k}\"/>"));
        }
        types.push_str("</Key>");
        for (name, kind) in e.fields {
            if let Kind::Enum(n) = kind
                && !enums.contains(n)
            {
                enums.push(n);
            }
            let nullable = if e.keys.contains(name) {
                " Nullable=\"false\""
            } else {
                ""
            };
            types.push_str(&format!(
                "<Property Name=\"{name}\" Type=\"{}\"{nullable}/>",
                kind.edm()
            ));
        }
        types.push_str("</EntityType>");
        sets.push_str(&format!(
            "<EntitySet Name=\"{}\" EntityType=\"{NAMESPACE}.{}\"/>",
            e.set, e.type_name
        ));
    }
    for n in enums {
        let members: &[&str] = match n {
            "EcoResProductType" => &["Item", "Service"],
            "SalesStatus" => &["None", "Backorder", "Delivered", "Invoiced", "Canceled"],
            _ => &[],
        };
        types.push_str(&format!("<EnumType Name=\"{n}\">"));
        for (i, m) in members.iter().enumerate() {
            types.push_str(&format!("<Member Name=\"{m}\" Value=\"{i}\"/>"));
        }
        types.push_str("</EnumType>");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices><Schema Namespace=\"{NAMESPACE}\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">{types}<EntityContainer Name=\"Resources\">{sets}</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )
}
