//! `$metadata`: the CSDL (EDMX) document describing the tables, built from the schema.

use std::fmt::Write;

use crate::messages::{Kind, Signature};
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
    let messages = crate::messages::signatures(store);
    write_messages(&mut x, &messages);
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
    for m in messages.iter().filter(|m| m.bound.is_empty()) {
        let _ = match m.kind {
            Kind::Action => write!(
                x,
                r#"<ActionImport Name="{0}" Action="Microsoft.Dynamics.CRM.{0}"/>"#,
                m.name
            ),
            Kind::Function => write!(
                x,
                r#"<FunctionImport Name="{0}" Function="Microsoft.Dynamics.CRM.{0}" IncludeInServiceDocument="false"/>"#,
                m.name
            ),
        };
    }
    x.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    Resp {
        status: 200,
        headers: Vec::new(),
        body: x.into_bytes(),
        content_type: Some("application/xml"),
    }
}

/// The complex and enum types the built-in messages' parameters and responses use, as the Web
/// API reference declares them (webapi/reference/entityrecordcountcollection,
/// .../principalaccess, .../accessrights, .../queryexpression, .../inputargumentcollection).
const MESSAGE_TYPES: &str = concat!(
    r#"<ComplexType Name="EntityRecordCountCollection"><Property Name="Count" Type="Edm.Int32" Nullable="false"/><Property Name="IsReadOnly" Type="Edm.Boolean" Nullable="false"/><Property Name="Keys" Type="Collection(Edm.String)"/><Property Name="Values" Type="Collection(Edm.Int64)"/></ComplexType>"#,
    r#"<EnumType Name="AccessRights" IsFlags="true"><Member Name="None" Value="0"/><Member Name="ReadAccess" Value="1"/><Member Name="WriteAccess" Value="2"/><Member Name="AppendAccess" Value="4"/><Member Name="AppendToAccess" Value="16"/><Member Name="CreateAccess" Value="32"/><Member Name="DeleteAccess" Value="65536"/><Member Name="ShareAccess" Value="262144"/><Member Name="AssignAccess" Value="524288"/></EnumType>"#,
    r#"<ComplexType Name="PrincipalAccess"><Property Name="AccessMask" Type="mscrm.AccessRights" Nullable="false"/><NavigationProperty Name="Principal" Type="mscrm.crmbaseentity"/></ComplexType>"#,
    r#"<ComplexType Name="QueryExpression" OpenType="true"><Property Name="EntityName" Type="Edm.String"/></ComplexType>"#,
    r#"<ComplexType Name="InputArgumentCollection" OpenType="true"/>"#,
);

/// `<Action>` and `<Function>` elements for the messages the emulator runs, with their
/// `<Parameter>`s (Name, Type, Nullable: optional ones are nullable), a first `entity` (or
/// `entityset`) parameter for a bound one, and `<ReturnType>`; a `{Name}Response` complex type
/// per message with response properties ("Web API Action / Function Reference",
/// learn.microsoft.com/power-apps/developer/data-platform/webapi/web-api-service-documents,
/// "CSDL $metadata document": Actions, Functions, ComplexTypes).
fn write_messages(x: &mut String, messages: &[Signature]) {
    x.push_str(MESSAGE_TYPES);
    for m in messages {
        if !m.response.is_empty() {
            let _ = write!(x, r#"<ComplexType Name="{}Response">"#, m.name);
            for (name, ty) in &m.response {
                let _ = write!(x, r#"<Property Name="{}" Type="{}"/>"#, esc(name), ty.edm());
            }
            x.push_str("</ComplexType>");
        }
        let element = match m.kind {
            Kind::Action => "Action",
            Kind::Function => "Function",
        };
        let bindings: Vec<Option<&str>> = if m.bound.is_empty() {
            vec![None]
        } else {
            m.bound.iter().map(|t| Some(t.as_str())).collect()
        };
        for bound in bindings {
            let _ = write!(
                x,
                r#"<{element} Name="{}" IsBound="{}">"#,
                esc(&m.name),
                bound.is_some()
            );
            if let Some(table) = bound {
                let (name, ty) = if m.collection {
                    ("entityset", format!("Collection(mscrm.{table})"))
                } else {
                    ("entity", format!("mscrm.{table}"))
                };
                let _ = write!(
                    x,
                    r#"<Parameter Name="{name}" Type="{ty}" Nullable="false"/>"#
                );
            }
            for p in &m.params {
                let _ = write!(
                    x,
                    r#"<Parameter Name="{}" Type="{}" Nullable="{}"/>"#,
                    esc(&p.name),
                    p.ty.edm(),
                    p.optional
                );
            }
            if let Some(ty) = m.returns {
                let _ = write!(x, r#"<ReturnType Type="{ty}" Nullable="false"/>"#);
            } else if !m.response.is_empty() {
                let _ = write!(
                    x,
                    r#"<ReturnType Type="mscrm.{}Response" Nullable="false"/>"#,
                    m.name
                );
            }
            if !m.description.is_empty() {
                let _ = write!(
                    x,
                    r#"<Annotation Term="Org.OData.Core.V1.Description" String="{}"/>"#,
                    esc(&m.description)
                );
            }
            let _ = write!(x, "</{element}>");
        }
    }
}
