//! Parameters of a message call: the JSON body of an action, or the parameters of a function
//! written in its segment (`Name(P1=@p1,P2='x')`) with aliases in the query (`?@p1=["account"]`)
//! ("Use Web API functions", learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-functions,
//! "Passing parameters to a function"; "Use Web API actions", .../webapi/use-web-api-actions).
//! Each message declares its parameters ([`Param`]); [`Params::check`] refuses what the
//! declaration does not allow before the message touches any row.

use serde_json::{Map, Value};

use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::odata::query::{parse_pairs, split_top};
use crate::schema::TableId;
use crate::store::Store;

/// The type of a parameter, as the CSDL names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Bool,
    Int,
    Decimal,
    Float,
    Money,
    Str,
    Guid,
    DateTime,
    StringArray,
    GuidArray,
    /// An entity reference (`{"@odata.id": "accounts(<id>)"}` or `@odata.type` + key); the
    /// table, or `crmbaseentity` for any.
    EntityRef(String),
    /// An entity (a row's columns) of the named table, or `crmbaseentity`.
    Entity(String),
    /// A complex type or enum given as a JSON value the message reads itself.
    Complex(&'static str),
    /// A collection of complex values (`QuerySet`).
    ComplexCollection(&'static str),
}

impl Ty {
    /// The CSDL type name (`Edm.Int32`, `mscrm.account`).
    pub fn edm(&self) -> String {
        match self {
            Ty::Bool => "Edm.Boolean".into(),
            Ty::Int => "Edm.Int32".into(),
            Ty::Decimal | Ty::Money => "Edm.Decimal".into(),
            Ty::Float => "Edm.Double".into(),
            Ty::Str => "Edm.String".into(),
            Ty::Guid => "Edm.Guid".into(),
            Ty::DateTime => "Edm.DateTimeOffset".into(),
            Ty::StringArray => "Collection(Edm.String)".into(),
            Ty::GuidArray => "Collection(Edm.Guid)".into(),
            Ty::EntityRef(t) | Ty::Entity(t) => format!("mscrm.{t}"),
            Ty::Complex(t) => format!("mscrm.{t}"),
            Ty::ComplexCollection(t) => format!("Collection(mscrm.{t})"),
        }
    }

    fn accepts(&self, v: &Value) -> bool {
        match self {
            Ty::Bool => v.is_boolean(),
            Ty::Int => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            Ty::Decimal | Ty::Money | Ty::Float => {
                v.is_number() || v.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok())
            }
            Ty::Str => v.is_string(),
            Ty::Guid => v.as_str().and_then(Guid::parse).is_some(),
            Ty::DateTime => v.as_str().and_then(crate::datetime::parse_iso).is_some(),
            Ty::StringArray => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Ty::GuidArray => v
                .as_array()
                .is_some_and(|a| a.iter().all(|g| g.as_str().and_then(Guid::parse).is_some())),
            Ty::EntityRef(_) | Ty::Entity(_) | Ty::Complex(_) => v.is_object() || v.is_string(),
            Ty::ComplexCollection(_) => v.is_array(),
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: Ty,
    pub optional: bool,
}

/// A required parameter.
pub fn required(name: &str, ty: Ty) -> Param {
    Param {
        name: name.into(),
        ty,
        optional: false,
    }
}

/// An optional parameter.
pub fn optional(name: &str, ty: Ty) -> Param {
    Param {
        name: name.into(),
        ty,
        optional: true,
    }
}

/// The parameters a call was given.
#[derive(Debug, Clone)]
pub struct Params {
    pub op: String,
    pub values: Map<String, Value>,
}

impl Params {
    /// An action's parameters: its JSON body (an empty body is no parameters).
    pub fn from_body(op: &str, body: &[u8]) -> Result<Params, DvError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params {
                op: op.into(),
                values: Map::new(),
            });
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(values)) => Ok(Params {
                op: op.into(),
                values,
            }),
            Ok(_) => Err(DvError::bad_request(format!(
                "The body of the {op} action must be a JSON object of its parameters."
            ))),
            Err(e) => Err(DvError::bad_request(format!(
                "The body of the {op} action is not valid JSON: {e}."
            ))),
        }
    }

    /// A function's parameters: `P=literal` or `P=@alias` pairs in its segment, aliases
    /// resolved from the query.
    pub fn from_function(op: &str, args: Option<&str>, query: &str) -> Result<Params, DvError> {
        let aliases = parse_pairs(query);
        let mut values = Map::new();
        for pair in split_top(args.unwrap_or(""), ',') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let Some((name, raw)) = pair.split_once('=') else {
                return Err(DvError::bad_request(format!(
                    "The parameter '{pair}' of the function {op} must be written Name=value."
                )));
            };
            let (name, raw) = (name.trim(), raw.trim());
            let text = match raw.strip_prefix('@') {
                Some(alias) => aliases
                    .iter()
                    .find(|(k, _)| k.strip_prefix('@') == Some(alias))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        DvError::bad_request(format!(
                            "The parameter alias '@{alias}' of the parameter '{name}' is not given in the query."
                        ))
                    })?,
                None => raw.to_string(),
            };
            values.insert(name.to_string(), literal(&text).ok_or_else(|| {
                DvError::bad_request(format!(
                    "The value '{text}' of the parameter '{name}' of the function {op} is not a valid literal."
                ))
            })?);
        }
        Ok(Params {
            op: op.into(),
            values,
        })
    }

    /// Refuses a parameter the message does not have, a required one missing and a value of
    /// the wrong type, naming the parameter.
    pub fn check(&self, spec: &[Param]) -> Result<(), DvError> {
        for (name, v) in &self.values {
            if name.starts_with('@') {
                continue;
            }
            let Some(p) = spec.iter().find(|p| p.name == *name) else {
                // The OData payload error Dataverse answers for a parameter the operation does
                // not declare.
                return Err(DvError::new(
                    400,
                    error::PAYLOAD_ERROR,
                    format!(
                        "The parameter '{name}' in the request payload is not a valid parameter for the operation '{}'.",
                        self.op
                    ),
                ));
            };
            if !v.is_null() && !p.ty.accepts(v) {
                return Err(DvError::new(
                    400,
                    error::PAYLOAD_ERROR,
                    format!(
                        "Cannot convert the literal '{v}' to the expected type '{}' of the parameter '{name}' of the operation '{}'.",
                        p.ty.edm(),
                        self.op
                    ),
                ));
            }
        }
        for p in spec.iter().filter(|p| !p.optional) {
            if self.values.get(&p.name).is_none_or(Value::is_null) {
                return Err(DvError::new(
                    400,
                    error::INVALID_ARGUMENT,
                    format!(
                        "Required field '{}' is missing: the operation '{}' needs it ({}).",
                        p.name,
                        self.op,
                        p.ty.edm()
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|v| !v.is_null())
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_i64)
    }

    pub fn num(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| match v {
            Value::String(s) => s.trim().parse().ok(),
            v => v.as_f64(),
        })
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    pub fn guid(&self, name: &str) -> Option<Guid> {
        self.str(name).and_then(Guid::parse)
    }

    /// An entity reference parameter, resolved to an existing row (404 when it does not
    /// exist).
    pub fn entity_ref(
        &self,
        store: &Store,
        name: &str,
    ) -> Result<Option<(TableId, Guid)>, DvError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => reference(store, &self.op, name, v).map(Some),
        }
    }
}

/// Reads an entity reference: `{"@odata.id": "accounts(<id>)"}`, `"accounts(<id>)"`, or
/// `{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "<id>"}`.
pub fn reference(
    store: &Store,
    op: &str,
    name: &str,
    v: &Value,
) -> Result<(TableId, Guid), DvError> {
    let bad = || {
        DvError::bad_request(format!(
            "The parameter '{name}' of the operation '{op}' must be an entity reference: {{\"@odata.id\":\"accounts(<id>)\"}} or {{\"@odata.type\":\"Microsoft.Dynamics.CRM.account\",\"accountid\":\"<id>\"}}."
        ))
    };
    let id_text = match v {
        Value::String(s) => Some(s.as_str()),
        Value::Object(o) => o.get("@odata.id").and_then(Value::as_str),
        _ => return Err(bad()),
    };
    if let Some(text) = id_text {
        return crate::writes::resolve_reference(store, text);
    }
    let o = v.as_object().ok_or_else(bad)?;
    let ty = o
        .get("@odata.type")
        .and_then(Value::as_str)
        .ok_or_else(bad)?;
    let logical = ty
        .trim_start_matches('#')
        .trim_start_matches(super::NAMESPACE);
    let e = store.schema.entity(logical).ok_or_else(|| {
        DvError::bad_request(format!(
            "The type '{ty}' of the parameter '{name}' of the operation '{op}' is not a table of this environment."
        ))
    })?;
    let key = store.entity(e).primary_id_name().to_string();
    let id = o
        .get(&key)
        .and_then(Value::as_str)
        .and_then(Guid::parse)
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "The parameter '{name}' of the operation '{op}' names a {logical} without its key '{key}'."
            ))
        })?;
    if store.get(e, &id).is_none() {
        return Err(DvError::not_found(logical, &id));
    }
    Ok((e, id))
}

/// A literal of a function parameter as JSON: `'text'`, numbers, `true`/`false`/`null`,
/// GUIDs, JSON arrays and objects (single quotes allowed, as the documentation writes them:
/// `{'@odata.id':'accounts(<id>)'}`), and enum members `Microsoft.Dynamics.CRM.T'Member'`.
fn literal(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(Value::String(inner.replace("''", "'")));
    }
    if t.starts_with('[') || t.starts_with('{') {
        if let Ok(v) = serde_json::from_str(t) {
            return Some(v);
        }
        return serde_json::from_str(&single_to_double_quotes(t)).ok();
    }
    if let Some(rest) = t.strip_prefix(super::NAMESPACE)
        && let Some(q) = rest.find('\'')
        && rest.ends_with('\'')
    {
        return Some(Value::String(rest[q + 1..rest.len() - 1].to_string()));
    }
    match t {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Some(g) = Guid::parse(t) {
        return Some(Value::String(g.to_string()));
    }
    if let Ok(n) = t.parse::<i64>() {
        return Some(Value::from(n));
    }
    t.parse::<f64>().ok().map(Value::from)
}

/// `{'a':'it''s'}` → `{"a":"it's"}`: JSON written with OData's single-quoted strings.
fn single_to_double_quotes(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            '\'' => {
                quoted = !quoted;
                out.push('"');
            }
            '"' if quoted => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_parameters_come_from_aliases_and_inline_literals() {
        let p = Params::from_function(
            "RetrieveTotalRecordCount",
            Some("EntityNames=@p1,Other='x''y',N=5"),
            "@p1=%5B%22account%22%5D",
        )
        .unwrap();
        assert_eq!(p.values["EntityNames"], serde_json::json!(["account"]));
        assert_eq!(p.values["Other"], "x'y");
        assert_eq!(p.values["N"], 5);
        let single = Params::from_function(
            "RetrievePrincipalAccess",
            Some("Target=@tid"),
            "@tid={'@odata.id':'accounts(00000000-0000-0000-0000-000000000001)'}",
        )
        .unwrap();
        assert_eq!(
            single.values["Target"]["@odata.id"],
            "accounts(00000000-0000-0000-0000-000000000001)"
        );
        let missing = Params::from_function("F", Some("A=@nope"), "").unwrap_err();
        assert!(missing.message.contains("'@nope'"), "{}", missing.message);
    }

    #[test]
    fn checks_name_the_parameter_that_is_wrong() {
        let spec = [required("Status", Ty::Int), optional("Note", Ty::Str)];
        let given = |body: &str| Params::from_body("WinOpportunity", body.as_bytes()).unwrap();
        assert!(given(r#"{"Status":3}"#).check(&spec).is_ok());
        let missing = given(r#"{"Note":"x"}"#).check(&spec).unwrap_err();
        assert_eq!(
            (missing.status, missing.code.as_str()),
            (400, error::INVALID_ARGUMENT)
        );
        assert!(missing.message.contains("'Status'"));
        let typed = given(r#"{"Status":"won"}"#).check(&spec).unwrap_err();
        assert_eq!(typed.code, error::PAYLOAD_ERROR);
        assert!(typed.message.contains("'Status'") && typed.message.contains("Edm.Int32"));
        let unknown = given(r#"{"Status":3,"Bogus":1}"#).check(&spec).unwrap_err();
        assert_eq!(
            unknown.message,
            "The parameter 'Bogus' in the request payload is not a valid parameter for the operation 'WinOpportunity'."
        );
    }
}
