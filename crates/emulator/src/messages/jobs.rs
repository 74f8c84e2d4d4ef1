//! Messages that start system jobs (`asyncoperation` rows): running an on-demand workflow and
//! a bulk delete. The emulator runs both at once inside the request and records the job as
//! completed, so a reader of the job sees its outcome.

use serde_json::{Map, Value};

use super::params::Params;
use super::{Binding, Call, Output, bind, cell};
use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::schema::TableId;
use crate::store::{Store, Val};
use crate::wire::Req;

/// asyncoperation.operationtype values (reference/entities/asyncoperation).
const WORKFLOW: i64 = 10;
const BULK_DELETE: i64 = 13;

/// Creates a completed (Succeeded) system job.
fn completed_job(
    store: &mut Store,
    req: &Req,
    name: &str,
    operation: i64,
    message: &str,
    links: &[(&str, TableId, Guid)],
) -> Result<Guid, DvError> {
    let jobs = store.schema.required("asyncoperation")?;
    let now = crate::datetime::format_iso((store.clock)());
    let mut body = Map::new();
    body.insert("name".into(), Value::String(name.into()));
    body.insert("operationtype".into(), Value::from(operation));
    body.insert("message".into(), Value::String(message.into()));
    body.insert("startedon".into(), Value::String(now.clone()));
    body.insert("completedon".into(), Value::String(now));
    body.insert("statecode".into(), Value::from(3));
    body.insert("statuscode".into(), Value::from(30));
    for (column, e, id) in links {
        if let Some((k, v)) = bind(store, jobs, column, *e, *id) {
            body.insert(k, v);
        }
    }
    crate::writes::create_from_json(store, req, jobs, &body)
}

/// `ExecuteWorkflow`, bound to a workflow: "Executes a workflow." Parameters EntityId
/// (Edm.Guid, "The ID of the record on which the workflow executes"), required, and
/// InputArguments, optional; returns `ExecuteWorkflowResponse { Id }`, "the ID of the
/// asynchronous operation (system job) that was created"
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/executeworkflow).
/// The workflow must be an activated on-demand process; the emulator's processes have no
/// steps, so the job succeeds as soon as it runs.
pub fn execute_workflow(
    store: &mut Store,
    req: &Req,
    call: &Call,
    params: &Params,
) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let Binding::Row(workflows, workflow) = call.binding else {
        return Err(DvError::internal("ExecuteWorkflow without its workflow"));
    };
    let activated = matches!(
        cell(store, workflows, &workflow, "statecode"),
        Some(Val::Int(1))
    );
    if !activated {
        return Err(DvError::new(
            400,
            error::INVALID_STATE,
            format!(
                "The workflow with Id {workflow} is not activated: only an activated process can be executed."
            ),
        ));
    }
    let table = match cell(store, workflows, &workflow, "primaryentity") {
        Some(Val::Str(s)) => s.to_string(),
        _ => String::new(),
    };
    let e = store.schema.entity(&table).ok_or_else(|| {
        DvError::not_implemented(format_args!("workflows on the '{table}' table"))
    })?;
    let id = params
        .guid("EntityId")
        .ok_or_else(|| DvError::internal("EntityId checked"))?;
    if store.get(e, &id).is_none() {
        return Err(DvError::not_found(&table, &id));
    }
    let name = match cell(store, workflows, &workflow, "name") {
        Some(Val::Str(s)) => s.to_string(),
        _ => "Workflow".into(),
    };
    let job = completed_job(
        store,
        req,
        &name,
        WORKFLOW,
        "The workflow ran on the record.",
        &[
            ("workflowactivationid", workflows, workflow),
            ("regardingobjectid", e, id),
        ],
    )?;
    let mut out = Map::new();
    out.insert("Id".into(), Value::String(job.to_string()));
    Ok(Output::Properties(out))
}

/// `BulkDelete`: "Submits a bulk delete job that deletes selected records in bulk. This job
/// runs asynchronously in the background without blocking other activities." Parameters
/// QuerySet (Collection(mscrm.QueryExpression)), JobName, SendEmailNotification, ToRecipients,
/// CCRecipients, RecurrencePattern, StartDateTime required; SourceImportId, RunNow optional;
/// returns `BulkDeleteResponse { JobId }`
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/bulkdelete; "Delete
/// data in bulk", .../delete-data-bulk). The emulator runs a job due now at once; a recurring
/// job or one scheduled for later answers 501.
pub fn bulk_delete(store: &mut Store, req: &Req, params: &Params) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    if params
        .str("RecurrencePattern")
        .is_some_and(|r| !r.trim().is_empty())
    {
        return Err(DvError::not_implemented(
            "recurring bulk delete jobs (a RecurrencePattern other than \"\")",
        ));
    }
    let start = params
        .str("StartDateTime")
        .and_then(crate::datetime::parse_iso)
        .unwrap_or(0);
    if start > (store.clock)() + 60 {
        return Err(DvError::not_implemented(
            "bulk delete jobs scheduled for later (a StartDateTime in the future)",
        ));
    }
    let queries = params
        .get("QuerySet")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if queries.is_empty() {
        return Err(DvError::bad_request(
            "The parameter 'QuerySet' of the operation 'BulkDelete' must hold at least one QueryExpression.",
        ));
    }
    // Every query is read before anything is deleted, so a bad one deletes nothing.
    let mut doomed = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let (e, ids) = select(store, q, i)?;
        doomed.extend(ids.into_iter().map(|id| (e, id)));
    }
    for (e, id) in &doomed {
        store.remove(*e, *id)?;
    }
    let name = params.str("JobName").unwrap_or("Bulk Delete").to_string();
    let job = completed_job(
        store,
        req,
        &name,
        BULK_DELETE,
        &format!("{} records deleted.", doomed.len()),
        &[],
    )?;
    let mut out = Map::new();
    out.insert("JobId".into(), Value::String(job.to_string()));
    Ok(Output::Properties(out))
}

/// The rows a QueryExpression selects: `EntityName` and `Criteria` (`FilterOperator`,
/// `Conditions` of `AttributeName`, `Operator`, `Values`, nested `Filters`; .../webapi/reference/queryexpression,
/// .../conditionexpression, .../filterexpression).
fn select(store: &Store, q: &Value, i: usize) -> Result<(TableId, Vec<Guid>), DvError> {
    let at = format!("QuerySet[{i}]");
    let table = q.get("EntityName").and_then(Value::as_str).ok_or_else(|| {
        DvError::bad_request(format!(
            "{at} of the operation 'BulkDelete' needs its 'EntityName'."
        ))
    })?;
    let e = store.schema.entity(table).ok_or_else(|| {
        DvError::bad_request(format!(
            "{at}.EntityName '{table}' is not a table of this environment."
        ))
    })?;
    let criteria = q.get("Criteria").filter(|c| !c.is_null());
    let mut ids = Vec::new();
    for (id, row) in store.rows(e) {
        let hit = match criteria {
            None => true,
            Some(c) => filter(store, e, &row.vals, c, &format!("{at}.Criteria"))?,
        };
        if hit {
            ids.push(*id);
        }
    }
    Ok((e, ids))
}

fn filter(store: &Store, e: TableId, vals: &[Val], f: &Value, at: &str) -> Result<bool, DvError> {
    let or = match f.get("FilterOperator").and_then(Value::as_str) {
        None | Some("And") => false,
        Some("Or") => true,
        Some(other) => {
            return Err(DvError::bad_request(format!(
                "{at}.FilterOperator '{other}' is not And or Or."
            )));
        }
    };
    let mut results = Vec::new();
    for (i, c) in f
        .get("Conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        results.push(condition(
            store,
            e,
            vals,
            c,
            &format!("{at}.Conditions[{i}]"),
        )?);
    }
    for (i, sub) in f
        .get("Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        results.push(filter(store, e, vals, sub, &format!("{at}.Filters[{i}]"))?);
    }
    Ok(if or {
        results.iter().any(|r| *r)
    } else {
        results.iter().all(|r| *r)
    })
}

fn condition(
    store: &Store,
    e: TableId,
    vals: &[Val],
    c: &Value,
    at: &str,
) -> Result<bool, DvError> {
    let ent = store.entity(e);
    let name = c
        .get("AttributeName")
        .and_then(Value::as_str)
        .ok_or_else(|| DvError::bad_request(format!("{at} needs its 'AttributeName'.")))?;
    let col = ent.attr(name).ok_or_else(|| {
        DvError::new(
            400,
            error::NO_ATTRIBUTE,
            format!(
                "'{}' entity doesn't contain attribute with Name = '{name}' ({at}).",
                ent.logical_name
            ),
        )
    })?;
    let op = c.get("Operator").and_then(Value::as_str).unwrap_or("Equal");
    let values: Vec<String> = c
        .get("Values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            let v = v.get("Value").unwrap_or(v);
            match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        })
        .collect();
    let cell = text(&vals[col]);
    let first = values.first().map(String::as_str).unwrap_or("");
    let num = |s: &str| s.parse::<f64>().ok();
    let same = |a: &str, b: &str| match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    };
    let order = |a: &str, b: &str| match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(a.to_lowercase().cmp(&b.to_lowercase())),
    };
    Ok(match op {
        "Null" => cell.is_none(),
        "NotNull" => cell.is_some(),
        "Equal" => cell.is_some_and(|v| same(&v, first)),
        "NotEqual" => cell.is_none_or(|v| !same(&v, first)),
        "In" => cell.is_some_and(|v| values.iter().any(|x| same(&v, x))),
        "NotIn" => cell.is_none_or(|v| !values.iter().any(|x| same(&v, x))),
        "GreaterThan" => {
            cell.is_some_and(|v| order(&v, first) == Some(std::cmp::Ordering::Greater))
        }
        "LessThan" => cell.is_some_and(|v| order(&v, first) == Some(std::cmp::Ordering::Less)),
        "BeginsWith" => cell.is_some_and(|v| v.to_lowercase().starts_with(&first.to_lowercase())),
        "EndsWith" => cell.is_some_and(|v| v.to_lowercase().ends_with(&first.to_lowercase())),
        "Like" => cell.is_some_and(|v| like(&v.to_lowercase(), &first.to_lowercase())),
        other => {
            return Err(DvError::not_implemented(format_args!(
                "the '{other}' condition operator in BulkDelete queries ({at})"
            )));
        }
    })
}

fn text(v: &Val) -> Option<String> {
    Some(match v {
        Val::Null => return None,
        Val::Str(s) => s.to_string(),
        Val::Int(n) => n.to_string(),
        Val::Num(n) => n.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Date(t) => crate::datetime::format_iso(*t),
        Val::Guid(g) | Val::Ref(g, _) => g.to_string(),
    })
}

/// SQL `LIKE` with `%` (any run) and `_` (one character).
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    fn go(t: &[char], p: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|i| go(&t[i..], &p[1..])),
            Some('_') => !t.is_empty() && go(&t[1..], &p[1..]),
            Some(c) => t.first() == Some(c) && go(&t[1..], &p[1..]),
        }
    }
    go(&t, &p)
}
