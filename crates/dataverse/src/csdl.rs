//! The actions and functions a Dataverse environment declares in its CSDL service document
//! (`GET [Organization URI]/api/data/v9.2/$metadata`), and how to write a function's parameters
//! into its URL.
//!
//! Sources:
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/web-api-service-documents>
//!   (`Action` and `Function` elements: `Name`, `IsBound`; `Parameter` with `Name`, `Type`,
//!   `Nullable`; `ReturnType`; a bound operation's first parameter is its binding parameter)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-functions>
//!   (parameters as parameter aliases: `Fn(Param=@p1)?@p1=<value>`; strings in single quotes;
//!   entity references as `{'@odata.id':'accounts(<id>)'}`)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-actions>
//!   (actions are POSTed with their parameters as a JSON object; bound ones under the entity
//!   with the `Microsoft.Dynamics.CRM.` namespace)

use std::collections::BTreeSet;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::Value;

use crate::encoding::percent_encode;

/// Whether an operation changes data (POSTed) or only reads (GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// An `Action`: POST, may change data.
    Action,
    /// A `Function`: GET, no side effects.
    Function,
}

/// One parameter of an action or function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The parameter name, as the request names it (`Target`, `Status`).
    pub name: String,
    /// The CSDL type: `Edm.String`, `mscrm.crmbaseentity`, `Collection(Edm.Guid)`.
    pub type_name: String,
    /// `Nullable` as declared; CSDL's default is true.
    pub nullable: bool,
}

impl Parameter {
    /// False when the operation cannot be called without it.
    pub fn required(&self) -> bool {
        !self.nullable
    }
}

/// One `Action` or `Function` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The operation name (`WinOpportunity`, `RetrieveVersion`).
    pub name: String,
    /// Action or function.
    pub kind: OperationKind,
    /// For a bound operation, the type of its binding parameter (`mscrm.account`,
    /// `Collection(mscrm.account)`); None when unbound.
    pub binding: Option<String>,
    /// The parameters a caller gives, the binding parameter left out.
    pub parameters: Vec<Parameter>,
    /// `ReturnType`'s `Type`, when the operation answers with a value.
    pub return_type: Option<String>,
}

impl Operation {
    /// The table logical name a bound operation applies to (`account` for `mscrm.account`);
    /// None for unbound operations and those bound to a collection or a base type.
    pub fn bound_table(&self) -> Option<&str> {
        let binding = self.binding.as_deref()?;
        binding
            .strip_prefix("mscrm.")
            .or_else(|| binding.strip_prefix("Microsoft.Dynamics.CRM."))
            .filter(|name| !name.contains(['(', ')']) && *name != "crmbaseentity")
    }

    /// The parameter with this name, any case.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters
            .iter()
            .find(|parameter| parameter.name.eq_ignore_ascii_case(name))
    }
}

/// Why a service document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsdlError {
    /// Not well-formed XML.
    #[error("the $metadata document is not well-formed XML: {0}")]
    Malformed(String),
    /// An `Action`, `Function` or `Parameter` without a required attribute.
    #[error("the $metadata document has a <{element}> without {attribute}")]
    Missing {
        /// The element.
        element: &'static str,
        /// The attribute it lacks.
        attribute: &'static str,
    },
}

/// What a service document declares that a caller of its operations needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// Every `Action` and `Function`, in document order.
    pub operations: Vec<Operation>,
    /// The names of `EntityType` elements (table logical names, `crmbaseentity`).
    pub entity_types: BTreeSet<String>,
    /// The names of `EnumType` elements (`EntityFilters`, `AccessRights`).
    pub enum_types: BTreeSet<String>,
}

/// What kind of value a parameter type takes, as a form and a request body see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    /// `Edm.String`, and dates and other primitives written as text.
    Text,
    /// `Edm.Int16`/`Int32`/`Int64`/`Byte`: a whole number.
    Integer,
    /// `Edm.Decimal`/`Double`/`Single`: a number.
    Number,
    /// `Edm.Boolean`.
    Boolean,
    /// `Edm.Guid`.
    Guid,
    /// An enumeration: its member names as text (`Entity,Attributes`).
    Enum,
    /// A row of this table (`crmbaseentity` for any table): a JSON object.
    Entity(String),
    /// A complex type or a collection: JSON.
    Json,
}

impl Document {
    /// The kind of value `type_name` takes.
    pub fn kind_of(&self, type_name: &str) -> ValueKind {
        let local = type_name
            .strip_prefix("mscrm.")
            .or_else(|| type_name.strip_prefix("Microsoft.Dynamics.CRM."));
        match (type_name, local) {
            (
                "Edm.String" | "Edm.DateTimeOffset" | "Edm.Date" | "Edm.TimeOfDay" | "Edm.Duration"
                | "Edm.Binary",
                _,
            ) => ValueKind::Text,
            ("Edm.Int16" | "Edm.Int32" | "Edm.Int64" | "Edm.Byte" | "Edm.SByte", _) => {
                ValueKind::Integer
            }
            ("Edm.Decimal" | "Edm.Double" | "Edm.Single", _) => ValueKind::Number,
            ("Edm.Boolean", _) => ValueKind::Boolean,
            ("Edm.Guid", _) => ValueKind::Guid,
            (_, Some(local)) if self.enum_types.contains(local) => ValueKind::Enum,
            (_, Some(local)) if self.entity_types.contains(local) => {
                ValueKind::Entity(local.to_string())
            }
            _ => ValueKind::Json,
        }
    }

    /// The OData literal of `value` for a parameter of `type_name`: an enumeration as
    /// `Microsoft.Dynamics.CRM.EntityFilters'Entity'`, other types as [`literal`] writes them.
    pub fn literal(&self, type_name: &str, value: &Value) -> String {
        match (self.kind_of(type_name), value) {
            (ValueKind::Enum, Value::String(members)) => {
                let local = type_name.rsplit('.').next().unwrap_or(type_name);
                format!(
                    "Microsoft.Dynamics.CRM.{local}{}",
                    crate::odata::string_literal(members)
                )
            }
            _ => literal(type_name, value),
        }
    }

    /// The operation with this name and kind; `bound` picks bound or unbound ones.
    pub fn find(&self, name: &str, kind: OperationKind, bound: bool) -> Option<&Operation> {
        self.operations.iter().find(|operation| {
            operation.name == name && operation.kind == kind && operation.binding.is_some() == bound
        })
    }
}

/// Every `Action` and `Function` declared in `xml`, in document order.
pub fn operations(xml: &str) -> Result<Vec<Operation>, CsdlError> {
    Ok(document(xml)?.operations)
}

/// Reads a service document.
pub fn document(xml: &str) -> Result<Document, CsdlError> {
    let mut reader = Reader::from_str(xml);
    let mut document = Document::default();
    let mut found = Vec::new();
    let mut current: Option<(Operation, bool)> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|problem| CsdlError::Malformed(problem.to_string()))?;
        let (element, closes) = match &event {
            Event::Start(element) => (element, false),
            Event::Empty(element) => (element, true),
            Event::End(end) => {
                let name = end.local_name();
                if matches!(name.as_ref(), "Action" | "Function")
                    && let Some((operation, _)) = current.take()
                {
                    found.push(operation);
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match element.local_name().as_ref() {
            name @ ("Action" | "Function") => {
                let kind = if name == "Action" {
                    OperationKind::Action
                } else {
                    OperationKind::Function
                };
                let element_name = if kind == OperationKind::Action {
                    "Action"
                } else {
                    "Function"
                };
                let operation = Operation {
                    name: required(element, element_name, "Name")?,
                    kind,
                    binding: None,
                    parameters: Vec::new(),
                    return_type: None,
                };
                let bound = attribute(element, "IsBound")?.as_deref() == Some("true");
                if closes {
                    found.push(operation);
                } else {
                    current = Some((operation, bound));
                }
            }
            "Parameter" => {
                if let Some((operation, bound)) = current.as_mut() {
                    let parameter = Parameter {
                        name: required(element, "Parameter", "Name")?,
                        type_name: required(element, "Parameter", "Type")?,
                        nullable: attribute(element, "Nullable")?.as_deref() != Some("false"),
                    };
                    if *bound && operation.binding.is_none() {
                        operation.binding = Some(parameter.type_name);
                    } else {
                        operation.parameters.push(parameter);
                    }
                }
            }
            "ReturnType" => {
                if let Some((operation, _)) = current.as_mut() {
                    operation.return_type = Some(required(element, "ReturnType", "Type")?);
                }
            }
            "EntityType" => {
                document
                    .entity_types
                    .insert(required(element, "EntityType", "Name")?);
            }
            "EnumType" => {
                document
                    .enum_types
                    .insert(required(element, "EnumType", "Name")?);
            }
            _ => {}
        }
    }
    document.operations = found;
    Ok(document)
}

fn required(
    element: &BytesStart,
    element_name: &'static str,
    name: &'static str,
) -> Result<String, CsdlError> {
    attribute(element, name)?.ok_or(CsdlError::Missing {
        element: element_name,
        attribute: name,
    })
}

fn attribute(element: &BytesStart, name: &str) -> Result<Option<String>, CsdlError> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|problem| CsdlError::Malformed(problem.to_string()))?;
        if attribute.key.local_name().as_ref() == name {
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|problem| CsdlError::Malformed(problem.to_string()))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// A function call's path segment and query: `Name(A=@p1,B=@p2)?@p1=…&@p2=…`, each literal
/// (see [`Document::literal`]) percent-encoded, so no value can change the URL's meaning.
/// `arguments` are (parameter name, literal) in the order to write them.
pub fn function_call(name: &str, arguments: &[(&str, String)]) -> String {
    let mut path = format!("{name}(");
    let mut query = String::new();
    for (index, (parameter, literal)) in arguments.iter().enumerate() {
        let alias = format!("@p{}", index + 1);
        if index > 0 {
            path.push(',');
            query.push('&');
        }
        path.push_str(parameter);
        path.push('=');
        path.push_str(&alias);
        query.push_str(&alias);
        query.push('=');
        query.push_str(&percent_encode(literal));
    }
    path.push(')');
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The OData literal of `value` for a parameter of `type_name`: strings and dates quoted (a
/// quote doubled), GUIDs, numbers and booleans bare, objects and lists as JSON.
pub fn literal(type_name: &str, value: &Value) -> String {
    match value {
        Value::String(text) => match type_name {
            "Edm.Guid" | "Edm.Int16" | "Edm.Int32" | "Edm.Int64" | "Edm.Decimal" | "Edm.Double"
            | "Edm.Single" | "Edm.Byte" | "Edm.Boolean" | "Edm.DateTimeOffset" | "Edm.Date" => {
                text.clone()
            }
            _ => crate::odata::string_literal(text),
        },
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="account"><Key><PropertyRef Name="accountid" /></Key></EntityType>
      <Function Name="RetrieveVersion">
        <ReturnType Type="mscrm.RetrieveVersionResponse" Nullable="false" />
      </Function>
      <Action Name="WinOpportunity">
        <Parameter Name="OpportunityClose" Type="mscrm.opportunityclose" Nullable="false" />
        <Parameter Name="Status" Type="Edm.Int32" Nullable="false" />
      </Action>
      <Action Name="GrantAccess" IsBound="true">
        <Parameter Name="entity" Type="mscrm.crmbaseentity" Nullable="false" />
        <Parameter Name="PrincipalAccess" Type="mscrm.PrincipalAccess" Nullable="false" />
      </Action>
      <Function Name="RetrievePrincipalAccess" IsBound="true">
        <Parameter Name="entity" Type="mscrm.systemuser" Nullable="false" />
        <Parameter Name="Target" Type="mscrm.crmbaseentity" Nullable="false" />
        <ReturnType Type="mscrm.RetrievePrincipalAccessResponse" Nullable="false" />
      </Function>
      <Action Name="new_Empty" />
      <Action Name="QualifyLead" IsBound="true">
        <Parameter Name="entity" Type="mscrm.lead" Nullable="false" />
        <Parameter Name="CreateAccount" Type="Edm.Boolean" Nullable="false" />
        <Parameter Name="SourceCampaignId" Type="mscrm.campaign" />
        <ReturnType Type="Collection(mscrm.crmbaseentity)" />
      </Action>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"#;

    #[test]
    fn actions_and_functions_are_read_with_their_parameters_and_binding() {
        let operations = operations(DOCUMENT).expect("well-formed");
        let names: Vec<&str> = operations.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "RetrieveVersion",
                "WinOpportunity",
                "GrantAccess",
                "RetrievePrincipalAccess",
                "new_Empty",
                "QualifyLead"
            ]
        );
        let version = &operations[0];
        assert_eq!(version.kind, OperationKind::Function);
        assert_eq!(version.binding, None);
        assert_eq!(
            version.return_type.as_deref(),
            Some("mscrm.RetrieveVersionResponse")
        );
        let win = &operations[1];
        assert_eq!(win.kind, OperationKind::Action);
        assert_eq!(win.parameters.len(), 2);
        assert!(win.parameter("status").expect("any case").required());
        let qualify = &operations[5];
        assert_eq!(qualify.binding.as_deref(), Some("mscrm.lead"));
        assert_eq!(qualify.bound_table(), Some("lead"));
        let names: Vec<&str> = qualify.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["CreateAccount", "SourceCampaignId"]);
        assert!(!qualify.parameter("SourceCampaignId").unwrap().required());
        assert_eq!(operations[2].bound_table(), None, "bound to any table");
        assert!(operations[4].parameters.is_empty());
    }

    #[test]
    fn parameter_types_are_classified_by_the_document() {
        let xml = DOCUMENT.replace(
            "<EntityType Name=\"account\">",
            "<EnumType Name=\"EntityFilters\" IsFlags=\"true\"><Member Name=\"Entity\" Value=\"1\" /></EnumType><EntityType Name=\"crmbaseentity\" Abstract=\"true\" /><EntityType Name=\"account\">",
        );
        let document = document(&xml).expect("well-formed");
        assert_eq!(document.kind_of("Edm.Int32"), ValueKind::Integer);
        assert_eq!(document.kind_of("Edm.Guid"), ValueKind::Guid);
        assert_eq!(document.kind_of("mscrm.EntityFilters"), ValueKind::Enum);
        assert_eq!(
            document.kind_of("mscrm.account"),
            ValueKind::Entity("account".into())
        );
        assert_eq!(
            document.kind_of("mscrm.crmbaseentity"),
            ValueKind::Entity("crmbaseentity".into())
        );
        assert_eq!(document.kind_of("mscrm.PrincipalAccess"), ValueKind::Json);
        assert_eq!(document.kind_of("Collection(Edm.String)"), ValueKind::Json);
        assert!(
            document
                .find("QualifyLead", OperationKind::Action, true)
                .is_some()
        );
        assert!(
            document
                .find("QualifyLead", OperationKind::Action, false)
                .is_none()
        );
    }

    #[test]
    fn a_broken_document_is_an_error_not_an_empty_list() {
        assert!(matches!(
            operations("<Schema><Action Name='A'></Function>"),
            Err(CsdlError::Malformed(_))
        ));
        assert_eq!(
            operations("<Schema><Action IsBound='true'/></Schema>"),
            Err(CsdlError::Missing {
                element: "Action",
                attribute: "Name"
            })
        );
    }

    #[test]
    fn function_parameters_are_aliases_with_encoded_literals() {
        let hostile = Value::String("O'Brien & Co)/x?y=#".into());
        let reference =
            serde_json::json!({"@odata.id": "accounts(00000000-0000-0000-0000-000000000001)"});
        let call = function_call(
            "Fn",
            &[
                ("Name", literal("Edm.String", &hostile)),
                ("Target", literal("mscrm.crmbaseentity", &reference)),
            ],
        );
        assert_eq!(
            call,
            "Fn(Name=@p1,Target=@p2)?@p1=%27O%27%27Brien%20%26%20Co%29%2Fx%3Fy%3D%23%27&@p2=%7B%22%40odata.id%22%3A%22accounts%2800000000-0000-0000-0000-000000000001%29%22%7D"
        );
        assert_eq!(function_call("RetrieveVersion", &[]), "RetrieveVersion()");
    }

    #[test]
    fn literals_follow_the_parameter_type() {
        let guid = "00000000-0000-0000-0000-000000000001";
        assert_eq!(literal("Edm.Guid", &Value::String(guid.into())), guid);
        assert_eq!(literal("Edm.Int32", &serde_json::json!(5)), "5");
        assert_eq!(literal("Edm.Boolean", &serde_json::json!(true)), "true");
        assert_eq!(literal("Edm.String", &serde_json::json!("a")), "'a'");
        assert_eq!(literal("Edm.String", &Value::Null), "null");
    }
}
