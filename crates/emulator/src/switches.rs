//! The switches data loads send as request headers on writes ("Compose HTTP requests and handle
//! errors", learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors,
//! "Other headers"; "Bypass custom Dataverse logic", .../bypass-custom-business-logic; "Detect
//! duplicate data using the Web API", .../webapi/manage-duplicate-detection-create-update):
//!
//! - `MSCRM.BypassBusinessLogicExecution: CustomSync | CustomAsync | CustomSync,CustomAsync`
//!   skips the registered synchronous / asynchronous steps (the emulator's custom logic is its
//!   webhook steps, `webhooks.rs`);
//! - `MSCRM.BypassCustomPluginExecution: true` skips the synchronous ones only ("Bypass only
//!   synchronous logic");
//! - `MSCRM.BypassBusinessLogicExecutionStepIds: <id>,<id>` skips those steps (at most three,
//!   the documented default `BypassBusinessLogicExecutionStepIdsLimit`);
//! - `MSCRM.SuppressDuplicateDetection: false` turns duplicate detection on (it is off by
//!   default in the Web API) with the default rules "Accounts with the same Account Name" and
//!   "Contacts with the same e-mail address": a duplicate is refused with `0x80040333`, status
//!   500 as the documentation shows;
//! - `MSCRM.SuppressCallbackRegistrationExpanderJob: true` keeps Power Automate flows (the
//!   callback registrations of flows.rs) from triggering ("Bypass Power Automate flows",
//!   .../bypass-power-automate-flows); the CustomSync/CustomAsync switches leave flows alone
//!   ("excluding Power Automate Flows").
//!
//! A value other than the documented ones is refused (400, naming the header). The bypass
//! headers need `prvBypassCustomBusinessLogic` (`prvBypassCustomPlugins` for the older one),
//! which "by default, only users with the system administrator security role have": the
//! emulator's System Administrators are the seeded administrator and the application user;
//! anyone else is refused with 403.

use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::schema::TableId;
use crate::store::{Store, Val};
use crate::webhooks::Outbound;
use crate::wire::Req;

/// The documented default of `BypassBusinessLogicExecutionStepIdsLimit`.
pub const STEP_IDS_LIMIT: usize = 3;

/// What a write's headers ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Switches {
    pub bypass_sync: bool,
    pub bypass_async: bool,
    pub bypass_steps: Vec<Guid>,
    pub detect_duplicates: bool,
    pub suppress_flows: bool,
}

fn boolean(req: &Req, name: &str) -> Result<Option<bool>, DvError> {
    let Some(v) = req.header(name) else {
        return Ok(None);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(invalid(name, v, "true or false")),
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> DvError {
    DvError::new(
        400,
        error::INVALID_ARGUMENT,
        format!("The value '{value}' of the {name} header is not valid: use {expected}."),
    )
}

/// Whether the calling user holds the bypass privileges: the seeded System Administrators.
fn is_system_administrator(store: &Store, req: &Req) -> bool {
    let Some(users) = store.schema.entity("systemuser") else {
        return false;
    };
    let user = req.caller.user;
    (0..2).any(|i| crate::seed::seeded_id(store.entity(users), i) == user)
}

impl Switches {
    /// Reads and checks the switches of a write.
    pub fn of(store: &Store, req: &Req) -> Result<Switches, DvError> {
        let mut s = Switches::default();
        let mut privileged = Vec::new();
        if boolean(req, "MSCRM.BypassCustomPluginExecution")? == Some(true) {
            s.bypass_sync = true;
            privileged.push("prvBypassCustomPlugins");
        }
        if let Some(v) = req.header("MSCRM.BypassBusinessLogicExecution") {
            for part in v.split(',').map(str::trim) {
                match part {
                    "CustomSync" => s.bypass_sync = true,
                    "CustomAsync" => s.bypass_async = true,
                    _ => {
                        return Err(invalid(
                            "MSCRM.BypassBusinessLogicExecution",
                            v,
                            "CustomSync, CustomAsync or CustomSync,CustomAsync",
                        ));
                    }
                }
            }
            privileged.push("prvBypassCustomBusinessLogic");
        }
        if let Some(v) = req.header("MSCRM.BypassBusinessLogicExecutionStepIds") {
            let name = "MSCRM.BypassBusinessLogicExecutionStepIds";
            for part in v.trim().trim_matches('"').split(',').map(str::trim) {
                let id = Guid::parse(part).ok_or_else(|| {
                    invalid(
                        name,
                        v,
                        "a comma-separated list of plug-in step registration ids",
                    )
                })?;
                s.bypass_steps.push(id);
            }
            if s.bypass_steps.len() > STEP_IDS_LIMIT {
                return Err(DvError::new(
                    400,
                    error::INVALID_ARGUMENT,
                    format!(
                        "The {name} header names {} steps; the limit (BypassBusinessLogicExecutionStepIdsLimit) is {STEP_IDS_LIMIT}.",
                        s.bypass_steps.len()
                    ),
                ));
            }
            privileged.push("prvBypassCustomBusinessLogic");
        }
        s.detect_duplicates = boolean(req, "MSCRM.SuppressDuplicateDetection")? == Some(false);
        s.suppress_flows =
            boolean(req, "MSCRM.SuppressCallbackRegistrationExpanderJob")? == Some(true);
        if let Some(privilege) = privileged.first()
            && !is_system_administrator(store, req)
        {
            return Err(DvError::new(
                403,
                error::PRIVILEGE_DENIED,
                format!(
                    "Principal user (Id={}) is missing {privilege} privilege.",
                    req.caller.user
                ),
            ));
        }
        Ok(s)
    }

    /// The webhook calls the switches leave: synchronous steps unless bypassed with
    /// CustomSync (or BypassCustomPluginExecution), asynchronous ones unless bypassed with
    /// CustomAsync, and none of the steps named by id.
    pub fn filter(&self, calls: Vec<Outbound>) -> Vec<Outbound> {
        calls
            .into_iter()
            .filter(|c| {
                // Flows are not custom logic: only their own switch keeps them from triggering.
                if is_flow(c) {
                    return !self.suppress_flows;
                }
                let bypassed = if c.synchronous {
                    self.bypass_sync
                } else {
                    self.bypass_async
                };
                !bypassed && !self.bypass_steps.contains(&step_of(c))
            })
            .collect()
    }
}

fn is_flow(call: &Outbound) -> bool {
    call.headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(crate::flows::CALLBACK_HEADER))
}

/// The step a webhook call comes from: the `OwningExtension` of its execution context.
fn step_of(call: &Outbound) -> Guid {
    serde_json::from_slice::<serde_json::Value>(&call.body)
        .ok()
        .and_then(|v| v["OwningExtension"]["Id"].as_str().and_then(Guid::parse))
        .unwrap_or_default()
}

/// The webhook calls a write leaves after its switches (the front calls this with the calls
/// the write triggered; headers were checked before the write ran).
pub fn filter_calls(store: &Store, req: &Req, calls: Vec<Outbound>) -> Vec<Outbound> {
    match Switches::of(store, req) {
        Ok(s) => s.filter(calls),
        Err(_) => calls,
    }
}

/// The default duplicate detection rules: the column that must not repeat, per table.
fn rule_column(table: &str) -> Option<&'static str> {
    match table {
        "account" => Some("name"),
        "contact" => Some("emailaddress1"),
        _ => None,
    }
}

/// With duplicate detection on, refuses a row whose rule column (case-insensitive, trimmed)
/// matches another row's: "A record was not created or updated because a duplicate of the
/// current record already exists."
pub fn check_duplicates(
    store: &Store,
    req: &Req,
    e: TableId,
    id: Option<Guid>,
    vals: &[Val],
) -> Result<(), DvError> {
    let ent = store.entity(e);
    let Some(col) = rule_column(&ent.logical_name).and_then(|c| ent.attr(c)) else {
        return Ok(());
    };
    let norm = |v: &Val| match v {
        Val::Str(s) if !s.trim().is_empty() => Some(s.trim().to_lowercase()),
        _ => None,
    };
    let Some(mine) = norm(&vals[col]) else {
        return Ok(());
    };
    if !Switches::of(store, req)?.detect_duplicates {
        return Ok(());
    }
    let duplicate = store
        .rows(e)
        .iter()
        .any(|(other, r)| Some(*other) != id && norm(&r.vals[col]).as_deref() == Some(&mine));
    if duplicate {
        return Err(DvError::new(
            500,
            error::DUPLICATE_DETECTED,
            "A record was not created or updated because a duplicate of the current record already exists.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn store() -> Store {
        let mut store = Store::new(Arc::new(crate::catalog::schema()));
        crate::seed::seed(&mut store, 1, &[], "client");
        store
    }

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn call(synchronous: bool, step: &str) -> Outbound {
        Outbound {
            url: "http://127.0.0.1:9/".into(),
            headers: Vec::new(),
            body: serde_json::json!({"OwningExtension": {"Id": step}})
                .to_string()
                .into_bytes(),
            synchronous,
        }
    }

    #[test]
    fn each_switch_is_read_from_its_header_whatever_the_case() {
        let store = store();
        let admin =
            crate::seed::seeded_id(store.entity(store.schema.entity("systemuser").unwrap()), 0);
        let h = headers(&[
            ("mscrm.bypassbusinesslogicexecution", "CustomAsync"),
            ("MSCRM.SuppressDuplicateDetection", "FALSE"),
            ("MSCRM.SuppressCallbackRegistrationExpanderJob", "true"),
        ]);
        let mut req = Req::test("POST", "accounts", "", &h, b"{}");
        req.caller.user = admin;
        let s = Switches::of(&store, &req).unwrap();
        assert_eq!(
            s,
            Switches {
                bypass_sync: false,
                bypass_async: true,
                bypass_steps: Vec::new(),
                detect_duplicates: true,
                suppress_flows: true,
            }
        );
    }

    #[test]
    fn the_filter_keeps_what_is_not_bypassed() {
        let step = "00000000-0000-0000-0000-0000000000aa";
        let calls = || vec![call(true, step), call(false, step), call(false, "x")];
        let sync_only = Switches {
            bypass_sync: true,
            ..Switches::default()
        };
        assert_eq!(sync_only.filter(calls()).len(), 2);
        let by_step = Switches {
            bypass_steps: vec![Guid::parse(step).unwrap()],
            ..Switches::default()
        };
        let left = by_step.filter(calls());
        assert_eq!(left.len(), 1);
        assert_eq!(step_of(&left[0]), Guid::default());
        assert_eq!(Switches::default().filter(calls()).len(), 3);
    }

    #[test]
    fn a_user_without_the_privilege_is_refused_naming_it() {
        let store = store();
        let h = headers(&[("MSCRM.BypassCustomPluginExecution", "true")]);
        let mut req = Req::test("POST", "accounts", "", &h, b"{}");
        req.caller.user = Guid::from_seed(77, 77);
        let e = Switches::of(&store, &req).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (403, error::PRIVILEGE_DENIED));
        assert!(e.message.contains("prvBypassCustomPlugins"));
    }
}
