//! What Perform an Unbound Action, Perform a Bound Action and Call a Function share: the
//! environment's actions and functions from its CSDL `$metadata`, their parameters as designer
//! inputs, the checks of the values given before anything is sent, and the request and answer.
//!
//! Sources:
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-actions>
//!   (POST with the parameters as a JSON object; bound actions under the row with the
//!   `Microsoft.Dynamics.CRM.` namespace; entity-typed parameters carry `@odata.type`, required
//!   when the parameter type is `crmbaseentity`; lookups inside as `@odata.bind`)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-functions>
//!   (GET with parameter aliases; entity references as `{"@odata.id": ...}`)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/custom-api> (custom APIs
//!   appear in `$metadata` as actions and functions like the built-in messages)
//! - <https://learn.microsoft.com/power-apps/developer/data-platform/background-operations>
//!   (`Prefer: respond-async` on a custom API: 202 with `Location` and
//!   `x-ms-dyn-backgroundoperationid`)

use dataverse::csdl::{Document, Operation, OperationKind, ValueKind, function_call};
use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::bindings::dynamics::connector::types::{self as wit, Choice, ConnectorError, ErrorCode};
use crate::client::{Request, Response};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_field, invalid_input, malformed, with_hint};
use crate::input::{Input, closest};

/// The parameters as one JSON object, for flows written by hand; the designer's form gives each
/// parameter as its own input instead.
pub const PARAMETERS: InputDef = InputDef::new("parameters", "Parameters", Kind::Code)
    .comments("The parameters as one JSON object, such as {\"Status\": 3}; each parameter may instead be given as its own input (the form the designer shows), but not both ways")
    .example(r#"{"Status": 3, "OpportunityClose": {"subject": "Won", "opportunityid@odata.bind": "/opportunities(00000000-0000-0000-0000-000000000001)"}}"#);

/// The row a bound operation runs on, optional for functions (unbound when absent).
pub const BOUND_ENTITY_TYPE: InputDef = InputDef::new("entityType", "Entity Type", Kind::Text)
    .comments("For a bound function: the entity set of the row it runs on (systemusers); empty for an unbound function")
    .example("systemusers")
    .data_source("entity-types")
    .format(Format::Identifier);

pub const BOUND_ENTITY_ID: InputDef = InputDef::new("entityId", "Entity ID", Kind::Text)
    .comments("For a bound function: the row's GUID or alternate key")
    .example("00000000-0000-0000-0000-000000000002");

/// Which of the three actions is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    UnboundAction,
    BoundAction,
    Function,
}

impl Family {
    fn kind(self) -> OperationKind {
        match self {
            Family::Function => OperationKind::Function,
            _ => OperationKind::Action,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Family::UnboundAction => "unbound action",
            Family::BoundAction => "bound action",
            Family::Function => "function",
        }
    }
}

/// The environment's service document, read once per invocation that needs it.
pub fn document(context: &Context) -> Result<Document> {
    let request = Request::new("GET", context.client.api_url("$metadata"))
        .header("Accept", "application/xml");
    let response = context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()?;
    let text = std::str::from_utf8(&response.body)
        .map_err(|_| malformed("the $metadata document is not UTF-8"))?;
    dataverse::csdl::document(text).map_err(|problem| malformed(problem.to_string()))
}

/// The operation named by `name_input`, of the family's kind; bound when `bound`. A name that
/// exists only in another family says which action to use instead.
pub fn find<'d>(
    document: &'d Document,
    family: Family,
    name_input: &InputDef,
    name: &str,
    bound: bool,
) -> Result<&'d Operation> {
    if let Some(found) = document.find(name, family.kind(), bound) {
        return Ok(found);
    }
    if let Some(other) = document
        .operations
        .iter()
        .find(|operation| operation.name == name)
    {
        let (what, use_instead) = match (other.kind, other.binding.is_some()) {
            (OperationKind::Function, _) => ("a function", "Call a Function"),
            (OperationKind::Action, true) => ("a bound action", "Perform a Bound Action"),
            (OperationKind::Action, false) => ("an unbound action", "Perform an Unbound Action"),
        };
        let problem = if family == Family::Function && other.kind == OperationKind::Function {
            if other.binding.is_some() {
                format!("{name:?} is bound to a row: give Entity Type and Entity ID")
            } else {
                format!("{name:?} is unbound: leave Entity Type and Entity ID empty")
            }
        } else {
            format!("{name:?} is {what}; use {use_instead}")
        };
        return Err(invalid_input(name_input, problem));
    }
    let names: Vec<&str> = document
        .operations
        .iter()
        .filter(|operation| operation.kind == family.kind())
        .map(|operation| operation.name.as_str())
        .collect();
    let suggestion = closest(name, &names)
        .map(|near| format!("; did you mean {near:?}?"))
        .unwrap_or_default();
    Err(invalid_input(
        name_input,
        format!(
            "the environment has no {} named {name:?}{suggestion}",
            family.noun()
        ),
    ))
}

/// The designer inputs of an operation's parameters: one per parameter, keyed by its name.
pub fn parameter_inputs(document: &Document, operation: &Operation) -> Vec<wit::InputDefinition> {
    operation
        .parameters
        .iter()
        .map(|parameter| {
            let kind = document.kind_of(&parameter.type_name);
            let (input_type, example) = match &kind {
                ValueKind::Text | ValueKind::Enum => (wit::InputType::Text, None),
                ValueKind::Guid => (
                    wit::InputType::Text,
                    Some("00000000-0000-0000-0000-000000000001".to_string()),
                ),
                ValueKind::Integer | ValueKind::Number => (wit::InputType::Number, None),
                ValueKind::Boolean => (wit::InputType::Boolean, None),
                ValueKind::Entity(table) if table == "crmbaseentity" => (
                    wit::InputType::Code,
                    Some(r#"{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "00000000-0000-0000-0000-000000000001"}"#.to_string()),
                ),
                ValueKind::Entity(table) => (
                    wit::InputType::Code,
                    Some(format!(r#"{{"@odata.type": "Microsoft.Dynamics.CRM.{table}"}}"#)),
                ),
                ValueKind::Json => (wit::InputType::Code, None),
            };
            let required = if parameter.required() {
                "required"
            } else {
                "optional"
            };
            let what = match kind {
                ValueKind::Entity(_) => ", a row as JSON (lookups as name@odata.bind)",
                ValueKind::Json => ", as JSON",
                ValueKind::Guid => ", a GUID",
                _ => "",
            };
            wit::InputDefinition {
                key: parameter.name.clone(),
                label: parameter.name.clone(),
                input_type,
                required: parameter.required(),
                default: None,
                comments: Some(format!(
                    "{} parameter of {} ({}){what}",
                    parameter.type_name, operation.name, required
                )),
                example,
                choices: Vec::new(),
                data_source: None,
            }
        })
        .collect()
}

/// The parameter values given, as the request takes them: from the `parameters` object and
/// the top-level keys outside the action's own inputs, each checked against the operation's
/// parameters. Nothing is sent for bad values.
pub fn arguments(
    document: &Document,
    operation: &Operation,
    input: &Input,
) -> Result<Map<String, Value>> {
    let given = given_parameters(input)?;
    let mut arguments = Map::new();
    for (key, value) in given {
        let Some(parameter) = operation
            .parameters
            .iter()
            .find(|parameter| parameter.name == key)
        else {
            let names: Vec<&str> = operation
                .parameters
                .iter()
                .map(|parameter| parameter.name.as_str())
                .collect();
            let suggestion = closest(&key, &names)
                .map(|near| format!("; did you mean {near:?}?"))
                .unwrap_or_default();
            let known = if names.is_empty() {
                "it takes none".to_string()
            } else {
                format!("its parameters: {}", names.join(", "))
            };
            return Err(invalid_field(
                &key,
                None,
                format!(
                    "{} has no parameter {key:?}{suggestion} ({known})",
                    operation.name
                ),
            ));
        };
        let value = checked(document, &parameter.name, &parameter.type_name, value)?;
        arguments.insert(parameter.name.clone(), value);
    }
    for parameter in &operation.parameters {
        if parameter.required() && !arguments.contains_key(&parameter.name) {
            return Err(invalid_field(
                &parameter.name,
                None,
                format!(
                    "is required by {} ({})",
                    operation.name, parameter.type_name
                ),
            ));
        }
    }
    Ok(arguments)
}

/// The `parameters` object merged with the top-level parameter keys; a key given both ways is
/// refused rather than one silently winning.
fn given_parameters(input: &Input) -> Result<Vec<(String, Value)>> {
    let mut given: Vec<(String, Value)> = Vec::new();
    match input.json(PARAMETERS.key) {
        None | Some(Value::Null) => {}
        Some(Value::Object(object)) => given.extend(
            object
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        ),
        Some(other) => {
            return Err(invalid_input(
                &PARAMETERS,
                format!(
                    "must be a JSON object of parameter names and values, got {}",
                    json_type(other)
                ),
            ));
        }
    }
    for (key, value) in input.extra() {
        if given.iter().any(|(known, _)| known == key) {
            return Err(invalid_field(
                key,
                None,
                format!(
                    "is given both on its own and inside \"{}\"; give it once",
                    PARAMETERS.key
                ),
            ));
        }
        given.push((key.clone(), value.clone()));
    }
    Ok(given)
}

/// A value checked against its parameter type and written as the request takes it; designers
/// send numbers and booleans as text, which is accepted, and JSON as text, which is parsed.
fn checked(document: &Document, name: &str, type_name: &str, value: Value) -> Result<Value> {
    let wrong = |expected: &str, value: &Value| {
        invalid_field(
            name,
            None,
            format!("must be {expected} ({type_name}), got {}", json_type(value)),
        )
    };
    match document.kind_of(type_name) {
        ValueKind::Text | ValueKind::Enum => match value {
            Value::String(_) => Ok(value),
            Value::Number(number) => Ok(Value::String(number.to_string())),
            other => Err(wrong("text", &other)),
        },
        ValueKind::Guid => match &value {
            Value::String(text) => {
                dataverse::guid::parse(text)
                    .map(Value::String)
                    .ok_or_else(|| {
                        invalid_field(name, None, format!("{text:?} is not a GUID ({type_name})"))
                    })
            }
            other => Err(wrong("a GUID", other)),
        },
        ValueKind::Boolean => match &value {
            Value::Bool(_) => Ok(value),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            other => Err(wrong("true or false", other)),
        },
        kind @ (ValueKind::Integer | ValueKind::Number) => {
            let number = match &value {
                Value::Number(number) => number.clone(),
                Value::String(text) => serde_json::from_str::<serde_json::Number>(text.trim())
                    .map_err(|_| wrong("a number", &value))?,
                other => return Err(wrong("a number", other)),
            };
            if kind == ValueKind::Integer && !(number.is_i64() || number.is_u64()) {
                return Err(invalid_field(
                    name,
                    None,
                    format!("must be a whole number ({type_name}), got {number}"),
                ));
            }
            Ok(Value::Number(number))
        }
        ValueKind::Entity(table) => {
            let mut object = match json_value(value) {
                Value::Object(object) => object,
                other => return Err(wrong("a JSON object (a row)", &other)),
            };
            match object.get("@odata.type") {
                Some(Value::String(_)) => {}
                Some(other) => {
                    return Err(invalid_field(
                        name,
                        None,
                        format!(
                            "@odata.type must be text such as \"Microsoft.Dynamics.CRM.account\", got {}",
                            json_type(other)
                        ),
                    ));
                }
                // A reference ({"@odata.id": ...}) names its table in the URL.
                None if object.contains_key("@odata.id") => {}
                None if table == "crmbaseentity" => {
                    return Err(invalid_field(
                        name,
                        None,
                        format!(
                            "takes a row of any table ({type_name}), so it needs \"@odata.type\" naming the table, such as \"Microsoft.Dynamics.CRM.account\""
                        ),
                    ));
                }
                None => {
                    object.insert(
                        "@odata.type".to_string(),
                        Value::String(format!("Microsoft.Dynamics.CRM.{table}")),
                    );
                }
            }
            Ok(Value::Object(object))
        }
        ValueKind::Json => Ok(json_value(value)),
    }
}

/// JSON given as text (a code input typed into a form) is read as JSON.
fn json_value(value: Value) -> Value {
    match &value {
        Value::String(text) => serde_json::from_str(text).unwrap_or(value),
        _ => value,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `[row path/]Microsoft.Dynamics.CRM.Name` for a POST, or the unbound `Name`.
pub fn action_path(operation: &Operation, row_path: Option<&str>) -> String {
    match row_path {
        Some(row) => format!("{row}/Microsoft.Dynamics.CRM.{}", operation.name),
        None => operation.name.clone(),
    }
}

/// `[row path/]Microsoft.Dynamics.CRM.Name(P=@p1)?@p1=…`, the parameters in declaration order.
pub fn function_path(
    document: &Document,
    operation: &Operation,
    arguments: &Map<String, Value>,
    row_path: Option<&str>,
) -> String {
    let literals: Vec<(&str, String)> = operation
        .parameters
        .iter()
        .filter_map(|parameter| {
            arguments.get(&parameter.name).map(|value| {
                (
                    parameter.name.as_str(),
                    document.literal(&parameter.type_name, value),
                )
            })
        })
        .collect();
    let call = function_call(&operation.name, &literals);
    match row_path {
        Some(row) => format!("{row}/Microsoft.Dynamics.CRM.{call}"),
        None => call,
    }
}

/// The answer as the action's output: the JSON body without its context URL, `{}` for 204, the
/// operation's ID and status monitor URL for a 202 (run in the background).
pub fn output(response: &Response) -> Result<Value> {
    if response.status == 202 {
        let mut output = match response.json()? {
            Value::Object(object) => object,
            _ => Map::new(),
        };
        if let Some(id) = response.header("x-ms-dyn-backgroundoperationid") {
            output.insert(
                "backgroundOperationId".into(),
                Value::String(id.to_string()),
            );
        }
        if let Some(location) = response.header("location") {
            output.insert("location".into(), Value::String(location.to_string()));
        }
        if !output.contains_key("backgroundOperationId") {
            return Err(malformed(
                "the service accepted the request to run in the background (202) without naming the background operation (x-ms-dyn-backgroundoperationid)",
            ));
        }
        return Ok(Value::Object(output));
    }
    match response.json()? {
        Value::Null => Ok(json!({})),
        Value::Object(mut object) => {
            object.remove("@odata.context");
            Ok(Value::Object(object))
        }
        other => Ok(json!({ "value": other })),
    }
}

/// An action whose answer was lost may have run: it is not sent again, and the error says so.
pub fn lost_action(operation: &Operation, mut failure: ConnectorError) -> ConnectorError {
    let lost = failure.http_status.is_none()
        && matches!(
            failure.code,
            ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::MalformedResponse
        );
    if lost {
        failure.message = format!(
            "the action {} may or may not have run: {}",
            operation.name, failure.message
        );
        failure = with_hint(
            failure,
            format!(
                "it was not sent again, as running {} twice could apply it twice; check the rows it changes (for example the status of its target) before running it again",
                operation.name
            ),
        );
    }
    failure
}

/// A data source of the family: `table` (entity set or logical name) narrows bound operations.
pub fn source(context: &Context, family: Family, table: Option<&str>) -> Result<Vec<Choice>> {
    let logical = match table {
        Some(name) => Some(
            context
                .metadata
                .table(&context.client, name)?
                .map(|table| table.logical_name.clone())
                .unwrap_or_else(|| name.to_ascii_lowercase()),
        ),
        None => None,
    };
    Ok(choices(&document(context)?, family, logical.as_deref()))
}

/// The data source choices for a family: the operation names, bound ones with their table;
/// `table` (a logical name) keeps those bound to it or to any table.
pub fn choices(document: &Document, family: Family, table: Option<&str>) -> Vec<Choice> {
    document
        .operations
        .iter()
        .filter(|operation| operation.kind == family.kind())
        .filter(|operation| match family {
            Family::UnboundAction => operation.binding.is_none(),
            Family::BoundAction | Family::Function => match (table, &operation.binding) {
                (None, _) => family == Family::Function || operation.binding.is_some(),
                (Some(_), None) => family == Family::Function,
                (Some(table), Some(binding)) => {
                    operation.bound_table() == Some(table) || binding == "mscrm.crmbaseentity"
                }
            },
        })
        .map(|operation| Choice {
            label: match operation.bound_table() {
                Some(table) => format!("{} (on {table})", operation.name),
                None if operation.binding.is_some() => format!("{} (on any table)", operation.name),
                None => operation.name.clone(),
            },
            value: operation.name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityType Name="crmbaseentity" Abstract="true"/>
<EntityType Name="opportunityclose"/>
<EnumType Name="EntityFilters" IsFlags="true"><Member Name="Entity" Value="1"/></EnumType>
<Action Name="WinOpportunity">
  <Parameter Name="OpportunityClose" Type="mscrm.opportunityclose" Nullable="false"/>
  <Parameter Name="Status" Type="Edm.Int32" Nullable="false"/>
</Action>
<Action Name="GrantAccess">
  <Parameter Name="Target" Type="mscrm.crmbaseentity" Nullable="false"/>
  <Parameter Name="PrincipalAccess" Type="mscrm.PrincipalAccess" Nullable="false"/>
</Action>
<Function Name="RetrieveTotalRecordCount">
  <Parameter Name="EntityNames" Type="Collection(Edm.String)" Nullable="false"/>
  <ReturnType Type="mscrm.RetrieveTotalRecordCountResponse" Nullable="false"/>
</Function>
<Function Name="Lookup">
  <Parameter Name="Id" Type="Edm.Guid" Nullable="false"/>
  <Parameter Name="Filters" Type="mscrm.EntityFilters"/>
  <Parameter Name="Flag" Type="Edm.Boolean"/>
</Function>
</Schema></edmx:DataServices></edmx:Edmx>"#;

    fn document() -> Document {
        dataverse::csdl::document(DOCUMENT).unwrap()
    }

    fn input(json: Value) -> Input {
        Input::parse_open(&[PARAMETERS], &json.to_string()).expect("valid input")
    }

    fn win() -> Operation {
        document()
            .find("WinOpportunity", OperationKind::Action, false)
            .unwrap()
            .clone()
    }

    #[test]
    fn parameters_become_typed_inputs_required_when_not_nullable() {
        let document = document();
        let inputs = parameter_inputs(&document, &win());
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[0].key, "OpportunityClose");
        assert!(matches!(inputs[0].input_type, wit::InputType::Code));
        assert!(inputs[0].required);
        assert!(matches!(inputs[1].input_type, wit::InputType::Number));
        let lookup = document
            .find("Lookup", OperationKind::Function, false)
            .unwrap();
        let inputs = parameter_inputs(&document, lookup);
        assert!(matches!(inputs[2].input_type, wit::InputType::Boolean));
        assert!(!inputs[2].required);
    }

    #[test]
    fn given_values_are_checked_and_entity_types_named() {
        let document = document();
        let arguments = arguments(
            &document,
            &win(),
            &input(json!({"Status": "3", "OpportunityClose": "{\"subject\": \"Won\"}"})),
        )
        .expect("valid");
        assert_eq!(arguments["Status"], json!(3));
        assert_eq!(
            arguments["OpportunityClose"],
            json!({"subject": "Won", "@odata.type": "Microsoft.Dynamics.CRM.opportunityclose"})
        );
    }

    #[test]
    fn unknown_missing_and_mistyped_parameters_are_refused_by_name() {
        let document = document();
        let refused = arguments(&document, &win(), &input(json!({"Stat": 3}))).unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("Stat"));
        assert!(
            refused.message.contains("did you mean \"Status\""),
            "{}",
            refused.message
        );

        let refused = arguments(&document, &win(), &input(json!({"Status": 3}))).unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("OpportunityClose"));
        assert!(refused.message.contains("required"));

        let refused = arguments(
            &document,
            &win(),
            &input(json!({"Status": 3.5, "OpportunityClose": {}})),
        )
        .unwrap_err();
        assert!(
            refused.message.contains("whole number"),
            "{}",
            refused.message
        );

        let grant = document
            .find("GrantAccess", OperationKind::Action, false)
            .unwrap();
        let refused = arguments(
            &document,
            grant,
            &input(json!({"Target": {"accountid": "x"}, "PrincipalAccess": {}})),
        )
        .unwrap_err();
        assert!(
            refused.message.contains("@odata.type"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn parameters_given_both_ways_or_not_as_an_object_are_refused() {
        let document = document();
        let refused = arguments(
            &document,
            &win(),
            &input(json!({"parameters": {"Status": 3}, "Status": 3})),
        )
        .unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("Status"));
        assert!(refused.message.contains("both"));
        let refused =
            arguments(&document, &win(), &input(json!({"parameters": "[1]"}))).unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("parameters"));
    }

    #[test]
    fn a_function_url_takes_aliases_in_declaration_order() {
        let document = document();
        let lookup = document
            .find("Lookup", OperationKind::Function, false)
            .unwrap();
        let arguments = arguments(
            &document,
            lookup,
            &input(json!({"Flag": "true", "Filters": "Entity", "Id": "{00000000-0000-0000-0000-0000000000AB}"})),
        )
        .unwrap();
        assert_eq!(
            function_path(&document, lookup, &arguments, Some("accounts(1)")),
            "accounts(1)/Microsoft.Dynamics.CRM.Lookup(Id=@p1,Filters=@p2,Flag=@p3)?@p1=00000000-0000-0000-0000-0000000000ab&@p2=Microsoft.Dynamics.CRM.EntityFilters%27Entity%27&@p3=true"
        );
        let refused =
            self::arguments(&document, lookup, &input(json!({"Id": "not-a-guid"}))).unwrap_err();
        assert!(refused.message.contains("not a GUID"));
    }

    #[test]
    fn a_name_from_another_family_says_which_action_to_use() {
        let document = document();
        let name = InputDef::new("actionName", "Action Name", Kind::Text);
        let refused = find(&document, Family::UnboundAction, &name, "Lookup", false).unwrap_err();
        assert!(
            refused.message.contains("Call a Function"),
            "{}",
            refused.message
        );
        let refused = find(
            &document,
            Family::UnboundAction,
            &name,
            "WinOportunity",
            false,
        )
        .unwrap_err();
        assert!(refused.message.contains("did you mean \"WinOpportunity\""));
    }
}
