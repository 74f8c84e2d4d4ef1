//! `$metadata`: the CSDL (EDMX) document describing the tables, built from the schema.

use std::fmt::Write;

use crate::schema::AttrKind;
use crate::store::Store;
use crate::wire::{Req, Resp};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Builds the CSDL document.
pub fn document(store: &Store, req: &Req) -> Resp {
    let s = &store.schema;
    // `$metadata?annotations=true` marks the entity sets of tables with change tracking
    // (learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems).
    let annotations = crate::odata::query::parse_pairs(req.query)
        .iter()
        .any(|(k, v)| k == "annotations" && v.eq_ignore_ascii_case("true"));
    let mut x = String::with_capacity(64 * 1024);
    x.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    x.push_str(
        r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">"#,
    );
    x.push_str(r#"<edmx:DataServices><Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">"#);
    x.push_str(r#"<EntityType Name="crmbaseentity" Abstract="true"/>"#);
    x.push_str(r#"<EntityType Name="expando" BaseType="mscrm.crmbaseentity" OpenType="true"/>"#);
    for (ei, e) in s.tables() {
        let _ = write!(
            x,
            r#"<EntityType Name="{}" BaseType="mscrm.crmbaseentity"><Key><PropertyRef Name="{}"/></Key>"#,
            e.logical_name,
            e.primary_id_name()
        );
        for a in &e.attributes {
            let extra = match a.kind {
                AttrKind::String { .. } | AttrKind::Memo { .. } => r#" Unicode="false""#,
                AttrKind::Decimal { .. } | AttrKind::Money => r#" Scale="Variable""#,
                _ => "",
            };
            let _ = write!(
                x,
                r#"<Property Name="{}" Type="{}"{extra}>"#,
                a.wire_name(),
                a.kind.edm_type()
            );
            if !a.description.is_empty() {
                let _ = write!(
                    x,
                    r#"<Annotation Term="Org.OData.Core.V1.Description" String="{}"/>"#,
                    esc(&a.description)
                );
            }
            if !a.writable || a.kind.is_lookup() {
                x.push_str(r#"<Annotation Term="Org.OData.Core.V1.Computed" Bool="true"/><Annotation Term="Org.OData.Core.V1.Permissions"><EnumMember>Org.OData.Core.V1.PermissionType/Read</EnumMember></Annotation>"#);
            }
            x.push_str("</Property>");
        }
        for r in s
            .relationships
            .iter()
            .filter(|r| r.referencing_entity == ei)
        {
            let target = s.table(r.referenced_entity);
            let _ = write!(
                x,
                r#"<NavigationProperty Name="{}" Type="mscrm.{}" Nullable="false" Partner="{}"><ReferentialConstraint Property="{}" ReferencedProperty="{}"/></NavigationProperty>"#,
                r.referencing_nav,
                target.logical_name,
                r.referenced_nav,
                e.attributes[r.referencing_attribute].wire_name(),
                target.primary_id_name()
            );
        }
        for r in s.relationships.iter().filter(|r| r.referenced_entity == ei) {
            let _ = write!(
                x,
                r#"<NavigationProperty Name="{}" Type="Collection(mscrm.{})" Partner="{}"/>"#,
                r.referenced_nav,
                s.table(r.referencing_entity).logical_name,
                r.referencing_nav
            );
        }
        if !e.description.is_empty() {
            let _ = write!(
                x,
                r#"<Annotation Term="Org.OData.Core.V1.Description" String="{}"/>"#,
                esc(&e.description)
            );
        }
        if !e.alternate_keys.is_empty() {
            x.push_str(r#"<Annotation Term="OData.Community.Keys.V1.AlternateKeys"><Collection>"#);
            for k in &e.alternate_keys {
                x.push_str(r#"<Record Type="OData.Community.Keys.V1.AlternateKey"><PropertyValue Property="Key"><Collection>"#);
                for a in &k.attributes {
                    let _ = write!(
                        x,
                        r#"<Record Type="OData.Community.Keys.V1.PropertyRef"><PropertyValue Property="Alias" String="{a}"/><PropertyValue Property="Name" PropertyPath="{a}"/></Record>"#
                    );
                }
                x.push_str("</Collection></PropertyValue></Record>");
            }
            x.push_str("</Collection></Annotation>");
        }
        x.push_str("</EntityType>");
    }
    x.push_str(r#"<ComplexType Name="WhoAmIResponse"><Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false"/><Property Name="UserId" Type="Edm.Guid" Nullable="false"/><Property Name="OrganizationId" Type="Edm.Guid" Nullable="false"/></ComplexType>"#);
    x.push_str(r#"<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/></Function>"#);
    x.push_str(r#"<EntityContainer Name="System">"#);
    for (ei, e) in s.tables() {
        let _ = write!(
            x,
            r#"<EntitySet Name="{}" EntityType="Microsoft.Dynamics.CRM.{}">"#,
            e.entity_set_name, e.logical_name
        );
        for r in s
            .relationships
            .iter()
            .filter(|r| r.referencing_entity == ei)
        {
            let _ = write!(
                x,
                r#"<NavigationPropertyBinding Path="{}" Target="{}"/>"#,
                r.referencing_nav,
                s.table(r.referenced_entity).entity_set_name
            );
        }
        for r in s.relationships.iter().filter(|r| r.referenced_entity == ei) {
            let _ = write!(
                x,
                r#"<NavigationPropertyBinding Path="{}" Target="{}"/>"#,
                r.referenced_nav,
                s.table(r.referencing_entity).entity_set_name
            );
        }
        if annotations && e.change_tracking {
            x.push_str(r#"<Annotation Term="Org.OData.Capabilities.V1.ChangeTracking"><Record><PropertyValue Property="Supported" Bool="true"/></Record></Annotation>"#);
        }
        x.push_str("</EntitySet>");
    }
    x.push_str(r#"<FunctionImport Name="WhoAmI" Function="Microsoft.Dynamics.CRM.WhoAmI" IncludeInServiceDocument="false"/>"#);
    x.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    Resp {
        status: 200,
        headers: Vec::new(),
        body: x.into_bytes(),
        content_type: Some("application/xml"),
    }
}
