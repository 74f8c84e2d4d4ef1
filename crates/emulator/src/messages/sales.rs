//! The sales messages: qualifying a lead, closing an opportunity as won or lost, fulfilling or
//! canceling an order. Each checks its row is open, creates what its page says it creates, and
//! moves the row to the state its page names with the status reason given (which must belong to
//! that state: `set_state::state_of`).

use serde_json::{Map, Value};

use super::params::Params;
use super::set_state::state_of;
use super::{Binding, Call, Output, bind, cell};
use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::schema::TableId;
use crate::store::{Store, Val};
use crate::wire::Req;

/// Which way a close goes: Won / Fulfilled, or Lost / Canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    Won,
    Lost,
}

fn text(v: Option<&Val>) -> Option<String> {
    match v {
        Some(Val::Str(s)) if !s.is_empty() => Some(s.to_string()),
        _ => None,
    }
}

fn state(store: &Store, e: TableId, id: &Guid) -> i64 {
    match cell(store, e, id, "statecode") {
        Some(Val::Int(n)) => *n,
        _ => 0,
    }
}

/// The status reason given must belong to the state the message moves the row to.
fn check_status(
    store: &Store,
    e: TableId,
    id: Guid,
    target_state: i64,
    status: i64,
) -> Result<(), DvError> {
    let ent = store.entity(e);
    if state_of(ent, status) == Some(target_state) {
        return Ok(());
    }
    let label = ent
        .attr("statecode")
        .and_then(|c| ent.attributes[c].kind.options())
        .and_then(|o| o.iter().find(|(v, _)| *v == target_state))
        .map(|(_, l)| l.replace(' ', ""))
        .unwrap_or_default();
    Err(DvError::new(
        400,
        error::INVALID_STATE_CODE_STATUS_CODE,
        format!(
            "{status} is not a valid status code for state code {}State.{label} on {} with Id {id}.",
            ent.schema_name, ent.logical_name
        ),
    ))
}

fn set_state(
    store: &mut Store,
    req: &Req,
    e: TableId,
    id: Guid,
    st: i64,
    status: i64,
    more: Vec<(usize, Val)>,
) -> Result<(), DvError> {
    let ent = store.entity(e);
    let (Some(sc), Some(stc)) = (ent.attr("statuscode"), ent.attr("statecode")) else {
        return Err(DvError::internal("a sales table without statecode"));
    };
    let mut cols = vec![(stc, Val::Int(st)), (sc, Val::Int(status))];
    cols.extend(more);
    crate::writes::update_columns(store, req, e, id, cols)
}

fn reference(e: TableId, store: &Store, id: Guid) -> Value {
    let ent = store.entity(e);
    serde_json::json!({
        "@odata.type": format!("#{}{}", super::NAMESPACE, ent.logical_name),
        ent.primary_id_name(): id.to_string(),
    })
}

/// `QualifyLead`, bound to a lead: "Qualifies a lead and creates account, contact, and
/// opportunity records that are linked to the originating lead record." Parameters
/// CreateAccount, CreateContact, CreateOpportunity (Edm.Boolean), Status (Edm.Int32) required;
/// OpportunityCurrencyId, OpportunityCustomerId, SourceCampaignId, ProcessInstanceId,
/// SuppressDuplicateDetection optional. Returns `Collection(mscrm.crmbaseentity)`: the created
/// records (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/qualifylead).
/// The lead becomes Qualified (statecode 1) with the status reason given.
pub fn qualify_lead(
    store: &mut Store,
    req: &Req,
    call: &Call,
    params: &Params,
) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let Binding::Row(leads, lead) = call.binding else {
        return Err(DvError::internal("QualifyLead without its lead"));
    };
    let status = params.int("Status").unwrap_or(0);
    if state(store, leads, &lead) != 0 {
        return Err(DvError::new(
            400,
            error::LEAD_ALREADY_CLOSED,
            "The lead is already closed.",
        ));
    }
    check_status(store, leads, lead, 1, status)?;
    let currency = params.entity_ref(store, "OpportunityCurrencyId")?;
    let customer = params.entity_ref(store, "OpportunityCustomerId")?;
    if let Some((e, _)) = customer
        && !matches!(store.entity(e).logical_name.as_str(), "account" | "contact")
    {
        return Err(DvError::bad_request(
            "The parameter 'OpportunityCustomerId' of the operation 'QualifyLead' must reference an account or a contact.",
        ));
    }
    let get = |c: &str| text(cell(store, leads, &lead, c));
    let (company, first, last, email, topic) = (
        get("companyname"),
        get("firstname"),
        get("lastname"),
        get("emailaddress1"),
        get("subject"),
    );
    let amount = match cell(store, leads, &lead, "estimatedamount") {
        Some(Val::Num(n)) => Some(*n),
        _ => None,
    };
    let mut created = Vec::new();
    let schema = store.schema.clone();
    let accounts = schema.required("account")?;
    let contacts = schema.required("contact")?;
    let opportunities = schema.required("opportunity")?;
    let mut account = None;
    if params.bool("CreateAccount") == Some(true) {
        let mut body = Map::new();
        let name = company.clone().or_else(|| topic.clone()).ok_or_else(|| {
            DvError::bad_request(format!(
                "The lead with Id {lead} has no company name to name the account CreateAccount asks for."
            ))
        })?;
        body.insert("name".into(), Value::String(name));
        if let Some(e) = &email {
            body.insert("emailaddress1".into(), Value::String(e.clone()));
        }
        let id = crate::writes::create_from_json(store, req, accounts, &body)?;
        account = Some(id);
        created.push(reference(accounts, store, id));
    }
    let mut contact = None;
    if params.bool("CreateContact") == Some(true) {
        let mut body = Map::new();
        if let Some(f) = &first {
            body.insert("firstname".into(), Value::String(f.clone()));
        }
        body.insert(
            "lastname".into(),
            Value::String(last.clone().unwrap_or_else(|| "(no last name)".into())),
        );
        if let Some(e) = &email {
            body.insert("emailaddress1".into(), Value::String(e.clone()));
        }
        if let Some(a) = account
            && let Some((k, v)) = bind(store, contacts, "parentcustomerid", accounts, a)
        {
            body.insert(k, v);
        }
        let id = crate::writes::create_from_json(store, req, contacts, &body)?;
        contact = Some(id);
        created.push(reference(contacts, store, id));
    }
    if params.bool("CreateOpportunity") == Some(true) {
        let mut body = Map::new();
        body.insert(
            "name".into(),
            Value::String(topic.clone().unwrap_or_else(|| "Opportunity".into())),
        );
        if let Some(n) = amount {
            body.insert("estimatedvalue".into(), Value::from(n));
        }
        let customer = customer
            .or(account.map(|a| (accounts, a)))
            .or(contact.map(|c| (contacts, c)));
        if let Some((e, id)) = customer
            && let Some((k, v)) = bind(store, opportunities, "customerid", e, id)
        {
            body.insert(k, v);
        }
        if let Some(a) = account
            && let Some((k, v)) = bind(store, opportunities, "parentaccountid", accounts, a)
        {
            body.insert(k, v);
        }
        if let Some(c) = contact
            && let Some((k, v)) = bind(store, opportunities, "parentcontactid", contacts, c)
        {
            body.insert(k, v);
        }
        if let Some((e, id)) = currency
            && let Some((k, v)) = bind(store, opportunities, "transactioncurrencyid", e, id)
        {
            body.insert(k, v);
        }
        let id = crate::writes::create_from_json(store, req, opportunities, &body)?;
        created.push(reference(opportunities, store, id));
    }
    let mut more = Vec::new();
    if let (Some(a), Some(c)) = (account, store.entity(leads).attr("parentaccountid")) {
        more.push((c, Val::Ref(a, accounts)));
    }
    set_state(store, req, leads, lead, 1, status, more)?;
    Ok(Output::Collection("crmbaseentity", created))
}

/// The close activity of a close message: the entity parameter, which must point at an open
/// row of `parent` through `column` (`opportunityid@odata.bind`, `salesorderid@odata.bind`).
fn close_activity(
    store: &Store,
    params: &Params,
    parameter: &str,
    close_table: &str,
    column: &str,
    parent: TableId,
) -> Result<(TableId, Map<String, Value>, Guid), DvError> {
    let op = &params.op;
    let mut body = params
        .get(parameter)
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "The parameter '{parameter}' of the operation '{op}' must be a {close_table} object."
            ))
        })?;
    if let Some(ty) = body.remove("@odata.type").as_ref().and_then(Value::as_str)
        && ty
            .trim_start_matches('#')
            .trim_start_matches(super::NAMESPACE)
            != close_table
    {
        return Err(DvError::bad_request(format!(
            "The parameter '{parameter}' of the operation '{op}' must be of type {}{close_table}, not {ty}.",
            super::NAMESPACE
        )));
    }
    let closes = store.schema.required(close_table)?;
    let nav = store
        .schema
        .relationships
        .iter()
        .find(|r| {
            r.referencing_entity == closes
                && store.entity(closes).attributes[r.referencing_attribute].logical_name == column
        })
        .map(|r| r.referencing_nav.clone())
        .unwrap_or_else(|| column.to_string());
    let target = body
        .get(&format!("{nav}@odata.bind"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "The parameter '{parameter}' of the operation '{op}' must name its {} with '{nav}@odata.bind'.",
                store.entity(parent).logical_name
            ))
        })?
        .to_string();
    let (e, id) = crate::writes::resolve_reference(store, &target)?;
    if e != parent {
        return Err(DvError::bad_request(format!(
            "'{nav}@odata.bind' of the parameter '{parameter}' must reference a {}.",
            store.entity(parent).logical_name
        )));
    }
    if state(store, parent, &id) != 0 {
        return Err(DvError::new(
            400,
            error::INVALID_STATE,
            format!(
                "The {} with Id {id} is already closed: {op} acts on open records only.",
                store.entity(parent).logical_name
            ),
        ));
    }
    // The close activity is created completed.
    body.insert("statecode".into(), Value::from(1));
    body.insert("statuscode".into(), Value::from(2));
    Ok((closes, body, id))
}

/// `WinOpportunity` / `LoseOpportunity`: "Sets the state of an opportunity to Won" / "to Lost".
/// Parameters: OpportunityClose (mscrm.opportunityclose, "The opportunity close activity
/// associated with the opportunity") and Status (Edm.Int32), both required; no response
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/winopportunity and
/// .../loseopportunity). The opportunityclose row is created and the opportunity moves to
/// Won (1) or Lost (2).
pub fn close_opportunity(
    store: &mut Store,
    req: &Req,
    params: &Params,
    how: Close,
) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let opportunities = store.schema.required("opportunity")?;
    let (closes, body, id) = close_activity(
        store,
        params,
        "OpportunityClose",
        "opportunityclose",
        "opportunityid",
        opportunities,
    )?;
    let target = if how == Close::Won { 1 } else { 2 };
    let status = params.int("Status").unwrap_or(0);
    check_status(store, opportunities, id, target, status)?;
    crate::writes::create_from_json(store, req, closes, &body)?;
    set_state(store, req, opportunities, id, target, status, Vec::new())?;
    Ok(Output::Nothing)
}

/// `FulfillSalesOrder` / `CancelSalesOrder`: "Fulfills a sales order" / "Cancels a sales
/// order". Parameters: OrderClose (mscrm.orderclose) and Status (Edm.Int32), both required; no
/// response (.../webapi/reference/fulfillsalesorder and .../cancelsalesorder). The orderclose
/// row is created and the order moves to Fulfilled (3, with datefulfilled) or Canceled (2).
pub fn close_order(
    store: &mut Store,
    req: &Req,
    params: &Params,
    how: Close,
) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let orders = store.schema.required("salesorder")?;
    let (closes, body, id) = close_activity(
        store,
        params,
        "OrderClose",
        "orderclose",
        "salesorderid",
        orders,
    )?;
    let target = if how == Close::Won { 3 } else { 2 };
    let status = params.int("Status").unwrap_or(0);
    check_status(store, orders, id, target, status)?;
    crate::writes::create_from_json(store, req, closes, &body)?;
    let mut more = Vec::new();
    if how == Close::Won
        && let Some(c) = store.entity(orders).attr("datefulfilled")
    {
        more.push((c, Val::Date((store.clock)())));
    }
    set_state(store, req, orders, id, target, status, more)?;
    Ok(Output::Nothing)
}
