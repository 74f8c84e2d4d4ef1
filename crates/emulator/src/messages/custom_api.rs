//! Custom APIs: messages defined by rows of the `customapi`, `customapirequestparameter` and
//! `customapiresponseproperty` tables ("Create and use custom APIs",
//! learn.microsoft.com/power-apps/developer/data-platform/custom-api; the tables' columns:
//! .../custom-api-tables). Dataverse runs a custom API's plug-in; the emulator runs the seeded
//! ones with a fixed, documented behaviour (below) and answers 501 for any other, naming it.
//! The same rows describe the messages in `$metadata` (csdl.rs), so a client that lists actions
//! from either source sees the same ones.

use serde_json::{Map, Value};

use super::params::{Param, Params, Ty};
use super::{Binding, Call, Output};
use crate::error::DvError;
use crate::guid::Guid;
use crate::store::{Store, Val};

/// A custom API read from its rows.
#[derive(Debug, Clone)]
pub struct Api {
    pub id: Guid,
    pub unique_name: String,
    pub display_name: String,
    pub description: String,
    /// 0 Global, 1 Entity, 2 EntityCollection.
    pub binding_type: i64,
    pub bound_entity: String,
    pub is_function: bool,
    pub parameters: Vec<Param>,
    /// Response properties: name and type.
    pub responses: Vec<(String, Ty)>,
}

impl Api {
    /// Whether a call bound this way reaches this API.
    pub fn binds(&self, binding: Binding, table: Option<&str>) -> bool {
        match (self.binding_type, binding) {
            (0, Binding::Unbound) => true,
            (1, Binding::Row(..)) | (2, Binding::Collection(_)) => {
                table == Some(self.bound_entity.as_str())
            }
            _ => false,
        }
    }
}

fn s(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        _ => String::new(),
    }
}

fn int(v: &Val) -> i64 {
    match v {
        Val::Int(n) => *n,
        _ => 0,
    }
}

/// The parameter type a `Type` choice stands for (custom-api-tables, "Type").
fn ty(code: i64, entity: &str) -> Ty {
    let entity = if entity.is_empty() {
        "crmbaseentity".to_string()
    } else {
        entity.to_string()
    };
    match code {
        0 => Ty::Bool,
        1 => Ty::DateTime,
        2 => Ty::Decimal,
        3 => Ty::Entity(entity),
        4 => Ty::ComplexCollection("crmbaseentity"),
        5 => Ty::EntityRef(entity),
        6 => Ty::Float,
        7 | 9 => Ty::Int,
        8 => Ty::Money,
        11 => Ty::StringArray,
        12 => Ty::Guid,
        _ => Ty::Str,
    }
}

/// Every active custom API, in unique-name order.
pub fn all(store: &Store) -> Vec<Api> {
    let s_ = &store.schema;
    let (Some(apis), Some(reqs), Some(resps)) = (
        s_.entity("customapi"),
        s_.entity("customapirequestparameter"),
        s_.entity("customapiresponseproperty"),
    ) else {
        return Vec::new();
    };
    let col = |e, name: &str| store.entity(e).attr(name);
    let get = |e, vals: &[Val], name: &str| -> Val {
        col(e, name).map(|c| vals[c].clone()).unwrap_or(Val::Null)
    };
    let mut out = Vec::new();
    for (id, row) in store.rows(apis) {
        let v = &row.vals;
        if int(&get(apis, v, "statecode")) != 0 {
            continue;
        }
        let of_api =
            |e, vals: &[Val]| matches!(get(e, vals, "customapiid"), Val::Ref(g, _) if g == *id);
        let mut parameters: Vec<Param> = store
            .rows(reqs)
            .values()
            .filter(|r| of_api(reqs, &r.vals) && int(&get(reqs, &r.vals, "statecode")) == 0)
            .map(|r| Param {
                name: s(&get(reqs, &r.vals, "uniquename")),
                ty: ty(
                    int(&get(reqs, &r.vals, "type")),
                    &s(&get(reqs, &r.vals, "logicalentityname")),
                ),
                optional: get(reqs, &r.vals, "isoptional") == Val::Bool(true),
            })
            .collect();
        parameters.sort_by(|a, b| a.name.cmp(&b.name));
        let mut responses: Vec<(String, Ty)> = store
            .rows(resps)
            .values()
            .filter(|r| of_api(resps, &r.vals) && int(&get(resps, &r.vals, "statecode")) == 0)
            .map(|r| {
                (
                    s(&get(resps, &r.vals, "uniquename")),
                    ty(
                        int(&get(resps, &r.vals, "type")),
                        &s(&get(resps, &r.vals, "logicalentityname")),
                    ),
                )
            })
            .collect();
        responses.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(Api {
            id: *id,
            unique_name: s(&get(apis, v, "uniquename")),
            display_name: s(&get(apis, v, "displayname")),
            description: s(&get(apis, v, "description")),
            binding_type: int(&get(apis, v, "bindingtype")),
            bound_entity: s(&get(apis, v, "boundentitylogicalname")),
            is_function: get(apis, v, "isfunction") == Val::Bool(true),
            parameters,
            responses,
        });
    }
    out.sort_by(|a, b| a.unique_name.cmp(&b.unique_name));
    out
}

/// The active custom API with this unique name (case-sensitive, as message names are).
pub fn find(store: &Store, name: &str) -> Option<Api> {
    let apis = store.schema.entity("customapi")?;
    let col = store.entity(apis).attr("uniquename")?;
    // Cheap test first: most paths name no custom API.
    if !store
        .rows(apis)
        .values()
        .any(|r| matches!(&r.vals[col], Val::Str(s) if &**s == name))
    {
        return None;
    }
    all(store).into_iter().find(|a| a.unique_name == name)
}

/// Runs a custom API: checks its parameters against its request parameter rows, then runs its
/// behaviour. Only the seeded APIs have one in the emulator:
///
/// - `new_CalculateDiscount` (unbound action): Amount (Decimal) × Percentage (Integer, 0–100)
///   / 100 is `DiscountAmount`; `FinalAmount` is Amount − DiscountAmount; CustomerTier
///   (String, optional) "Gold" adds 5 percentage points (capped at 100).
/// - `new_ScoreAccount` (action bound to account): `Score` (Integer) is the number of characters
///   of the account's name times Weight (Integer, optional, default 1), plus 10 per contact
///   whose parent is the account.
/// - `new_GetGreeting` (unbound function): `Greeting` (String) is "Hello, {Name}!".
pub fn run(store: &Store, call: &Call, params: &Params) -> Result<Output, DvError> {
    let api = find(store, &call.name).ok_or_else(|| DvError::segment_not_found(&call.name))?;
    params.check(&api.parameters)?;
    let mut out = Map::new();
    match api.unique_name.as_str() {
        "new_CalculateDiscount" => {
            let amount = params.num("Amount").unwrap_or(0.0);
            let percentage = params.int("Percentage").unwrap_or(0);
            if !(0..=100).contains(&percentage) {
                return Err(DvError::bad_request(format!(
                    "The parameter 'Percentage' of the operation 'new_CalculateDiscount' must be between 0 and 100, not {percentage}."
                )));
            }
            let bonus = if params.str("CustomerTier") == Some("Gold") {
                5
            } else {
                0
            };
            let rate = (percentage + bonus).min(100) as f64 / 100.0;
            let discount = (amount * rate * 100.0).round() / 100.0;
            out.insert("DiscountAmount".into(), Value::from(discount));
            out.insert(
                "FinalAmount".into(),
                Value::from(((amount - discount) * 100.0).round() / 100.0),
            );
        }
        "new_ScoreAccount" => {
            let Binding::Row(accounts, account) = call.binding else {
                return Err(DvError::internal("new_ScoreAccount without its account"));
            };
            let weight = params.int("Weight").unwrap_or(1);
            let name_len = match super::cell(store, accounts, &account, "name") {
                Some(Val::Str(s)) => s.chars().count() as i64,
                _ => 0,
            };
            let contacts = store
                .schema
                .entity("contact")
                .and_then(|c| Some((c, store.entity(c).attr("parentcustomerid")?)))
                .map_or(0, |(c, col)| {
                    store
                        .rows(c)
                        .values()
                        .filter(|r| matches!(&r.vals[col], Val::Ref(g, _) if *g == account))
                        .count() as i64
                });
            out.insert(
                "Score".into(),
                Value::from(name_len * weight + 10 * contacts),
            );
        }
        "new_GetGreeting" => {
            let name = params.str("Name").unwrap_or("");
            out.insert("Greeting".into(), Value::String(format!("Hello, {name}!")));
        }
        other => {
            return Err(DvError::not_implemented(format_args!(
                "the logic of the custom API {other} (its plug-in)"
            )));
        }
    }
    Ok(if api.responses.is_empty() {
        Output::Nothing
    } else {
        Output::Properties(out)
    })
}

/// Records a successful run for the steps registered on the custom API's message
/// (webhooks.rs). Nothing is recorded while no step is registered: nobody would read it.
pub fn ran(store: &mut Store, call: &Call, params: &Params, out: &Output) {
    if !store.captures_events() {
        return;
    }
    let outputs = match out {
        Output::Properties(p) => p.clone(),
        _ => Map::new(),
    };
    let bound = match call.binding {
        Binding::Row(table, id) => Some((table, id)),
        _ => None,
    };
    store.message_events.push(crate::store::MessageEvent {
        name: call.name.clone(),
        bound,
        inputs: params.values.clone(),
        outputs,
    });
}

/// The seeded custom APIs: (unique name, display name, description, binding type, bound table,
/// is function, request parameters (name, type code, optional), response properties (name,
/// type code), AllowedCustomProcessingStepType). One of each step type: Sync and Async, Async
/// Only and None.
type Definition = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static str,
    bool,
    &'static [(&'static str, i64, bool)],
    &'static [(&'static str, i64)],
    i64,
);

const SEEDED: &[Definition] = &[
    (
        "new_CalculateDiscount",
        "Calculate Discount",
        "Calculates the discount and the final amount for an amount and a discount percentage.",
        0,
        "",
        false,
        &[
            ("Amount", 2, false),
            ("CustomerTier", 10, true),
            ("Percentage", 7, false),
        ],
        &[("DiscountAmount", 2), ("FinalAmount", 2)],
        2,
    ),
    (
        "new_ScoreAccount",
        "Score Account",
        "Scores an account from its name and its contacts.",
        1,
        "account",
        false,
        &[("Weight", 7, true)],
        &[("Score", 7)],
        1,
    ),
    (
        "new_GetGreeting",
        "Get Greeting",
        "Returns a greeting for a name.",
        0,
        "",
        true,
        &[("Name", 10, false)],
        &[("Greeting", 10)],
        0,
    ),
];

/// Seeds the custom APIs above into their tables.
pub fn seed(store: &mut Store) {
    let s_ = store.schema.clone();
    let (Some(apis), Some(reqs), Some(resps)) = (
        s_.entity("customapi"),
        s_.entity("customapirequestparameter"),
        s_.entity("customapiresponseproperty"),
    ) else {
        return;
    };
    let now = (store.clock)();
    let set = |store: &Store, e, vals: &mut Vec<Val>, col: &str, v: Val| {
        if let Some(c) = store.entity(e).attr(col) {
            vals[c] = v;
        }
    };
    for (i, (name, display, description, binding, bound, function, requests, responses, steps)) in
        SEEDED.iter().enumerate()
    {
        let api = Guid::from_seed(0xc0571, i as u64);
        let mut vals = store.blank_row(apis);
        for (col, v) in [
            ("customapiid", Val::Guid(api)),
            ("name", Val::str(name)),
            ("uniquename", Val::str(name)),
            ("displayname", Val::str(display)),
            ("description", Val::str(description)),
            ("bindingtype", Val::Int(*binding)),
            (
                "boundentitylogicalname",
                if bound.is_empty() {
                    Val::Null
                } else {
                    Val::str(bound)
                },
            ),
            ("isfunction", Val::Bool(*function)),
            ("isprivate", Val::Bool(false)),
            ("allowedcustomprocessingsteptype", Val::Int(*steps)),
            ("workflowsdkstepenabled", Val::Bool(false)),
            ("statecode", Val::Int(0)),
            ("statuscode", Val::Int(1)),
            ("createdon", Val::Date(now)),
            ("modifiedon", Val::Date(now)),
        ] {
            set(store, apis, &mut vals, col, v);
        }
        crate::webhooks::add_custom_api_message(store, apis, &mut vals);
        let _ = store.insert(apis, vals, false);
        for (j, (pname, code, optional)) in requests.iter().enumerate() {
            let mut vals = store.blank_row(reqs);
            for (col, v) in [
                (
                    "customapirequestparameterid",
                    Val::Guid(Guid::from_seed(0xc0572 + i as u64, j as u64)),
                ),
                ("name", Val::str(&format!("{name}.{pname}"))),
                ("uniquename", Val::str(pname)),
                ("displayname", Val::str(pname)),
                ("type", Val::Int(*code)),
                ("isoptional", Val::Bool(*optional)),
                ("customapiid", Val::Ref(api, apis)),
                ("statecode", Val::Int(0)),
                ("statuscode", Val::Int(1)),
                ("createdon", Val::Date(now)),
                ("modifiedon", Val::Date(now)),
            ] {
                set(store, reqs, &mut vals, col, v);
            }
            let _ = store.insert(reqs, vals, false);
        }
        for (j, (pname, code)) in responses.iter().enumerate() {
            let mut vals = store.blank_row(resps);
            for (col, v) in [
                (
                    "customapiresponsepropertyid",
                    Val::Guid(Guid::from_seed(0xc0573 + i as u64, j as u64)),
                ),
                ("name", Val::str(&format!("{name}.{pname}"))),
                ("uniquename", Val::str(pname)),
                ("displayname", Val::str(pname)),
                ("type", Val::Int(*code)),
                ("customapiid", Val::Ref(api, apis)),
                ("statecode", Val::Int(0)),
                ("statuscode", Val::Int(1)),
                ("createdon", Val::Date(now)),
                ("modifiedon", Val::Date(now)),
            ] {
                set(store, resps, &mut vals, col, v);
            }
            let _ = store.insert(resps, vals, false);
        }
    }
    seed_workflow(store);
}

/// An activated on-demand workflow on accounts, for `ExecuteWorkflow`: the emulator's processes
/// have no steps.
fn seed_workflow(store: &mut Store) {
    let Some(wf) = store.schema.entity("workflow") else {
        return;
    };
    let now = (store.clock)();
    let mut vals = store.blank_row(wf);
    let ent = store.entity(wf).clone();
    for (col, v) in [
        ("workflowid", Val::Guid(WORKFLOW_ID)),
        ("name", Val::str("Emulator: on-demand account process")),
        ("category", Val::Int(0)),
        ("type", Val::Int(1)),
        ("primaryentity", Val::str("account")),
        ("ondemand", Val::Bool(true)),
        (
            "description",
            Val::str("An on-demand process with no steps: a run succeeds at once."),
        ),
        ("statecode", Val::Int(1)),
        ("statuscode", Val::Int(2)),
        ("createdon", Val::Date(now)),
        ("modifiedon", Val::Date(now)),
    ] {
        if let Some(c) = ent.attr(col) {
            vals[c] = v;
        }
    }
    let _ = store.insert(wf, vals, false);
}

/// The id of the seeded on-demand workflow.
pub const WORKFLOW_ID: Guid = Guid(0x7a6c1e00_0000_4000_8000_00000000f10e_u128.to_be_bytes());
