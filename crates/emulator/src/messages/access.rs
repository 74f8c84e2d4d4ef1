//! Shared access: `GrantAccess` stores a grant, `RetrievePrincipalAccess` reports what a user or
//! team may do to a row. The emulator models no security roles: the seeded administrator (System
//! Administrator) has every right to every row, a row's owner every right to it, anyone else
//! the rights granted to them on that row, or none.

use serde_json::{Map, Value};

use super::params::{Params, reference};
use super::{Binding, Call, Output};
use crate::error::DvError;
use crate::guid::Guid;
use crate::schema::TableId;
use crate::store::{Store, Val};
use crate::wire::Req;

/// The `AccessRights` enum members and their values
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/accessrights).
pub const ACCESS_RIGHTS: &[(&str, i64)] = &[
    ("ReadAccess", 1),
    ("WriteAccess", 2),
    ("AppendAccess", 4),
    ("AppendToAccess", 16),
    ("CreateAccess", 32),
    ("DeleteAccess", 65_536),
    ("ShareAccess", 262_144),
    ("AssignAccess", 524_288),
];

const ALL_RIGHTS: i64 = 1 | 2 | 4 | 16 | 32 | 65_536 | 262_144 | 524_288;

/// Parses an `AccessRights` flags value: member names separated by commas ("ReadAccess,
/// WriteAccess"), "None", or the number.
pub fn parse_mask(op: &str, v: &Value) -> Result<i64, DvError> {
    if let Some(n) = v.as_i64()
        && n & !ALL_RIGHTS == 0
    {
        return Ok(n);
    }
    let text = v.as_str().ok_or_else(|| {
        DvError::bad_request(format!(
            "The AccessMask of the operation '{op}' must be AccessRights member names such as \"ReadAccess, WriteAccess\"."
        ))
    })?;
    let mut mask = 0;
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "None" {
            continue;
        }
        let (_, bit) = ACCESS_RIGHTS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            DvError::bad_request(format!(
                "'{name}' in the AccessMask of the operation '{op}' is not a member of Microsoft.Dynamics.CRM.AccessRights."
            ))
        })?;
        mask |= bit;
    }
    Ok(mask)
}

/// Writes a flags value as Dataverse does: the member names joined with ", ", or "None".
pub fn format_mask(mask: i64) -> String {
    let names: Vec<&str> = ACCESS_RIGHTS
        .iter()
        .filter(|(_, bit)| mask & bit != 0)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        "None".into()
    } else {
        names.join(", ")
    }
}

/// The principalobjectaccess row granting `principal` access to `object`, if any.
fn grant_row(store: &Store, poa: TableId, object: Guid, principal: Guid) -> Option<(Guid, i64)> {
    let ent = store.entity(poa);
    let (oc, pc, mc) = (
        ent.attr("objectid")?,
        ent.attr("principalid")?,
        ent.attr("accessrightsmask")?,
    );
    store.rows(poa).iter().find_map(|(id, r)| {
        let hit = matches!(&r.vals[oc], Val::Ref(g, _) if *g == object)
            && matches!(&r.vals[pc], Val::Ref(g, _) if *g == principal);
        let mask = match r.vals[mc] {
            Val::Int(n) => n,
            _ => 0,
        };
        hit.then_some((*id, mask))
    })
}

/// `GrantAccess`: "Grants a security principal (user, team, or organization) access to the
/// specified record." Parameters Target (mscrm.crmbaseentity) and PrincipalAccess
/// (mscrm.PrincipalAccess: Principal, AccessMask), both required; no response
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/grantaccess). Granting
/// again adds the rights to the same grant, so a repeated call changes nothing.
pub fn grant_access(store: &mut Store, req: &Req, params: &Params) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let op = &params.op;
    let (te, target) = params
        .entity_ref(store, "Target")?
        .ok_or_else(|| DvError::internal("Target checked"))?;
    let access = params
        .get("PrincipalAccess")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "The parameter 'PrincipalAccess' of the operation '{op}' must be an object with Principal and AccessMask."
            ))
        })?;
    let principal = access.get("Principal").ok_or_else(|| {
        DvError::bad_request(format!(
            "The parameter 'PrincipalAccess' of the operation '{op}' needs its 'Principal'."
        ))
    })?;
    let (pe, principal) = reference(store, op, "PrincipalAccess.Principal", principal)?;
    let principal_type = store.entity(pe).logical_name.clone();
    if !matches!(principal_type.as_str(), "systemuser" | "team") {
        return Err(DvError::bad_request(format!(
            "The Principal of the operation '{op}' must be a systemuser or a team, not a {principal_type}."
        )));
    }
    let mask = parse_mask(op, access.get("AccessMask").unwrap_or(&Value::Null))?;
    let poa = store.schema.required("principalobjectaccess")?;
    let object_type = store.entity(te).logical_name.clone();
    match grant_row(store, poa, target, principal) {
        Some((row, old)) => {
            let c = store
                .entity(poa)
                .attr("accessrightsmask")
                .ok_or_else(|| DvError::internal("no accessrightsmask"))?;
            if old | mask != old {
                crate::writes::update_columns(
                    store,
                    req,
                    poa,
                    row,
                    vec![(c, Val::Int(old | mask))],
                )?;
            }
        }
        None => {
            let mut body = Map::new();
            body.insert("objecttypecode".into(), Value::String(object_type));
            body.insert("principaltypecode".into(), Value::String(principal_type));
            body.insert("accessrightsmask".into(), Value::from(mask));
            for (column, e, id) in [("objectid", te, target), ("principalid", pe, principal)] {
                let (k, v) = super::bind(store, poa, column, e, id).ok_or_else(|| {
                    DvError::not_implemented(format_args!(
                        "sharing rows of the {} table",
                        store.entity(e).logical_name
                    ))
                })?;
                body.insert(k, v);
            }
            crate::writes::create_from_json(store, req, poa, &body)?;
        }
    }
    Ok(Output::Nothing)
}

/// `RetrievePrincipalAccess`, bound to a systemuser or team: "Retrieves the access rights of the
/// specified security principal (team or user) to the specified record." Parameter Target
/// (mscrm.crmbaseentity), required; returns `RetrievePrincipalAccessResponse { AccessRights }`
/// (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/retrieveprincipalaccess).
pub fn retrieve_principal_access(
    store: &Store,
    call: &Call,
    params: &Params,
) -> Result<Output, DvError> {
    params.check(&super::builtin_params(&params.op))?;
    let Binding::Row(pe, principal) = call.binding else {
        return Err(DvError::internal(
            "RetrievePrincipalAccess without its principal",
        ));
    };
    let (te, target) = params
        .entity_ref(store, "Target")?
        .ok_or_else(|| DvError::internal("Target checked"))?;
    let admin = crate::seed::seeded_id(store.entity(pe), 0);
    let is_admin = store.entity(pe).logical_name == "systemuser" && principal == admin;
    let owns = matches!(super::cell(store, te, &target, "ownerid"), Some(Val::Ref(g, _)) if *g == principal);
    let mask = if is_admin || owns {
        ALL_RIGHTS
    } else {
        store
            .schema
            .entity("principalobjectaccess")
            .and_then(|poa| grant_row(store, poa, target, principal))
            .map_or(0, |(_, m)| m)
    };
    let mut out = Map::new();
    out.insert("AccessRights".into(), Value::String(format_mask(mask)));
    Ok(Output::Properties(out))
}
