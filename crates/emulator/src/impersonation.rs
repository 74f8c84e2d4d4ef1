//! Impersonation: the `MSCRMCallerID` and `CallerObjectId` request headers make a request run
//! as another user.
//!
//! What Dataverse documents, and what the emulator does:
//! - `CallerObjectId: <Entra ID object id>` (preferred) names the user by
//!   `systemuser.azureactivedirectoryobjectid`; `MSCRMCallerID: <systemuserid>` (legacy) by
//!   its id. Both run the request as that user: WhoAmI answers that user, and writes name them
//!   in `createdby`/`modifiedby` while `createdonbehalfby`/`modifiedonbehalfby` name the
//!   calling user (learn.microsoft.com/power-apps/developer/data-platform/webapi/
//!   impersonate-another-user-web-api, "How to impersonate a user" and "Determine the actual
//!   user"; .../data-platform/impersonate-another-user).
//! - The calling user needs `prvActOnBehalfOfAnotherUser`, which the Delegate role holds (same
//!   pages). Without it: 403 `CannotActOnBehalfOfAnotherUser` (`0x8004A110`, "User does not
//!   have the privilege to act on behalf another user.": .../data-platform/reference/
//!   web-service-error-codes; 403 for that error name: .../webapi/
//!   compose-http-requests-handle-errors, "HTTP status codes"). The privilege is "act on
//!   behalf of *another* user": a header naming the caller itself changes nothing.
//! - A `systemuserid` no row has: 404 `ObjectDoesNotExist` (`0x80040217`, "systemuser With Id
//!   = … Does Not Exist": web-service-error-codes; 404 for a resource that does not exist:
//!   compose-http-requests-handle-errors).
//! - An object id no user of the environment has: `UserNotMemberOfOrg` (`0x80072560`, "The
//!   user is not a member of the organization.": web-service-error-codes). No page gives its
//!   status; it answers 400, the status of the unmapped codes (reference §6.2).
//! - A disabled user: the message .../data-platform/troubleshoot-plug-in documents for work
//!   done "in the context of a disabled user", with the code web-service-error-codes names for
//!   it, `unManagedidsusernotenabled` (`0x80040225`). No page gives its status; 400, as the
//!   Dataverse ServiceClient reports it ("Operation returned an invalid status code
//!   'BadRequest'", microsoft/PowerPlatform-DataverseServiceClient#71).
//! - A header value that is not a GUID: 400 `InvalidArgument` (`0x80040203`).
//! - Both headers at once: the documentation gives no precedence. Naming the same user they
//!   agree and the request runs as that user; naming different users is not emulated (501).
//!
//! In `$batch` the headers of the batch request apply to every request in it, and a request's
//! own headers win for that request (see `batch.rs`).

use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::schema::TableId;
use crate::store::{Store, Val};

/// `MSCRMCallerID`: the systemuserid of the user to run as.
pub const CALLER_ID: &str = "MSCRMCallerID";
/// `CallerObjectId`: the Entra ID object id of the user to run as.
pub const CALLER_OBJECT_ID: &str = "CallerObjectId";

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether a request names a user to run as.
pub fn requested(headers: &[(String, String)]) -> bool {
    header(headers, CALLER_ID).is_some() || header(headers, CALLER_OBJECT_ID).is_some()
}

fn guid_header(headers: &[(String, String)], name: &str) -> Result<Option<Guid>, DvError> {
    let Some(value) = header(headers, name) else {
        return Ok(None);
    };
    Guid::parse(value).map(Some).ok_or_else(|| {
        DvError::new(
            400,
            error::INVALID_ARGUMENT,
            format!("The value of the {name} header, '{value}', is not a GUID."),
        )
    })
}

/// What impersonation needs to know about the environment.
#[derive(Debug, Clone, Copy)]
pub struct Organization<'a> {
    pub organization_id: Guid,
    /// The users holding `prvActOnBehalfOfAnotherUser`.
    pub delegates: &'a [Guid],
}

/// The user a request made by `calling_user` runs as: `Ok(None)` when it runs as the caller
/// (no impersonation header, or headers naming the caller), otherwise the impersonated user,
/// or the documented refusal.
pub fn resolve(
    store: &Store,
    org: &Organization,
    calling_user: Guid,
    headers: &[(String, String)],
) -> Result<Option<Guid>, DvError> {
    let by_id = guid_header(headers, CALLER_ID)?;
    let by_object = guid_header(headers, CALLER_OBJECT_ID)?;
    if by_id.is_none() && by_object.is_none() {
        return Ok(None);
    }
    let su = store
        .schema
        .entity("systemuser")
        .ok_or_else(|| DvError::internal("no systemuser table"))?;
    let object_user = by_object.map(|oid| user_by_object_id(store, su, oid));
    let names_caller = by_id.is_none_or(|id| id == calling_user)
        && object_user.is_none_or(|u| u == Some(calling_user));
    if names_caller {
        return Ok(None);
    }
    if !org.delegates.contains(&calling_user) {
        return Err(DvError::new(
            403,
            error::CANNOT_ACT_ON_BEHALF_OF_ANOTHER_USER,
            "User does not have the privilege to act on behalf another user.",
        ));
    }
    let by_object = match object_user {
        None => None,
        Some(Some(user)) => Some(user),
        Some(None) => {
            return Err(DvError::new(
                400,
                error::USER_NOT_MEMBER_OF_ORG,
                "The user is not a member of the organization.",
            ));
        }
    };
    let target = match (by_id, by_object) {
        (Some(a), Some(b)) if a != b => {
            return Err(DvError::new(
                501,
                error::ODATA_ERROR,
                "Impersonation with MSCRMCallerID and CallerObjectId naming different users is not implemented by the emulator: the documentation gives neither header precedence.",
            ));
        }
        (Some(user), _) | (None, Some(user)) => user,
        (None, None) => return Ok(None),
    };
    let row = store
        .get(su, &target)
        .ok_or_else(|| DvError::not_found("systemuser", &target))?;
    let disabled = store
        .entity(su)
        .attr("isdisabled")
        .is_some_and(|c| row.vals[c] == Val::Bool(true));
    if disabled {
        return Err(DvError::new(
            400,
            error::USER_NOT_ENABLED,
            format!(
                "The user with SystemUserId={target} in OrganizationContext={} is disabled. Disabled users cannot access the system. Consider enabling this user. Also, users are disabled if they don't have a license assigned to them.",
                org.organization_id
            ),
        ));
    }
    Ok(Some(target))
}

/// A user's business unit (what WhoAmI answers for them).
pub fn business_unit_of(store: &Store, user: Guid) -> Option<Guid> {
    let su = store.schema.entity("systemuser")?;
    let col = store.entity(su).attr("businessunitid")?;
    match &store.get(su, &user)?.vals[col] {
        Val::Ref(g, _) => Some(*g),
        _ => None,
    }
}

/// The systemuser whose `azureactivedirectoryobjectid` is `oid`.
fn user_by_object_id(store: &Store, su: TableId, oid: Guid) -> Option<Guid> {
    let col = store.entity(su).attr("azureactivedirectoryobjectid")?;
    store
        .rows(su)
        .iter()
        .find_map(|(id, row)| match &row.vals[col] {
            Val::Str(s) if Guid::parse(s) == Some(oid) => Some(*id),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::seed::{self, Identities};

    fn seeded() -> (Store, Identities) {
        let mut store = Store::new(Arc::new(crate::catalog::schema()));
        let ids = seed::seed(&mut store, 5, &[], "client");
        (store, ids)
    }

    fn org(ids: &Identities) -> Organization<'_> {
        Organization {
            organization_id: ids.organization_id,
            delegates: &ids.delegates,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect()
    }

    fn object_id(store: &Store, user: Guid) -> String {
        let su = store.schema.entity("systemuser").unwrap();
        let col = store
            .entity(su)
            .attr("azureactivedirectoryobjectid")
            .unwrap();
        match &store.get(su, &user).unwrap().vals[col] {
            Val::Str(s) => s.to_string(),
            other => panic!("no object id: {other:?}"),
        }
    }

    #[test]
    fn without_headers_the_request_runs_as_the_caller() {
        let (store, ids) = seeded();
        let got = resolve(&store, &org(&ids), ids.application_user, &[]).unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn a_delegate_runs_as_the_user_named_by_id_or_by_object_id() {
        let (store, ids) = seeded();
        let by_id = headers(&[(CALLER_ID, &ids.sales_user.to_string())]);
        assert_eq!(
            resolve(&store, &org(&ids), ids.application_user, &by_id).unwrap(),
            Some(ids.sales_user)
        );
        let oid = object_id(&store, ids.sales_user).to_uppercase();
        let by_object = headers(&[(CALLER_OBJECT_ID, &oid)]);
        assert_eq!(
            resolve(&store, &org(&ids), ids.admin_user, &by_object).unwrap(),
            Some(ids.sales_user)
        );
    }

    #[test]
    fn a_caller_without_the_privilege_is_refused_with_403() {
        let (store, ids) = seeded();
        let h = headers(&[(CALLER_ID, &ids.admin_user.to_string())]);
        for caller in [ids.sales_user, ids.restricted_application_user] {
            let err = resolve(&store, &org(&ids), caller, &h).unwrap_err();
            assert_eq!(err.status, 403);
            assert_eq!(err.code, "0x8004A110");
            assert_eq!(
                err.message,
                "User does not have the privilege to act on behalf another user."
            );
        }
        // Naming oneself is not acting on behalf of another user.
        let me = headers(&[(CALLER_ID, &ids.sales_user.to_string())]);
        assert_eq!(
            resolve(&store, &org(&ids), ids.sales_user, &me).unwrap(),
            None
        );
    }

    #[test]
    fn unknown_users_are_refused_by_id_and_by_object_id() {
        let (store, ids) = seeded();
        let nobody = Guid::from_seed(1, 2);
        let err = resolve(
            &store,
            &org(&ids),
            ids.application_user,
            &headers(&[(CALLER_ID, &nobody.to_string())]),
        )
        .unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (404, "0x80040217"));
        assert_eq!(
            err.message,
            format!("systemuser With Id = {nobody} Does Not Exist")
        );
        let err = resolve(
            &store,
            &org(&ids),
            ids.application_user,
            &headers(&[(CALLER_OBJECT_ID, &nobody.to_string())]),
        )
        .unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "0x80072560"));
        assert_eq!(err.message, "The user is not a member of the organization.");
    }

    #[test]
    fn a_disabled_user_is_refused() {
        let (store, ids) = seeded();
        let err = resolve(
            &store,
            &org(&ids),
            ids.application_user,
            &headers(&[(CALLER_ID, &ids.disabled_user.to_string())]),
        )
        .unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "0x80040225"));
        assert!(
            err.message.starts_with(&format!(
                "The user with SystemUserId={} in OrganizationContext={} is disabled.",
                ids.disabled_user, ids.organization_id
            )),
            "{}",
            err.message
        );
    }

    #[test]
    fn header_values_that_are_not_guids_are_invalid_arguments() {
        let (store, ids) = seeded();
        for name in [CALLER_ID, CALLER_OBJECT_ID] {
            let err = resolve(
                &store,
                &org(&ids),
                ids.application_user,
                &headers(&[(name, "not-a-guid")]),
            )
            .unwrap_err();
            assert_eq!((err.status, err.code.as_str()), (400, "0x80040203"));
            assert!(err.message.contains(name), "{}", err.message);
        }
    }

    #[test]
    fn both_headers_agreeing_run_as_that_user_and_disagreeing_are_not_emulated() {
        let (store, ids) = seeded();
        let oid = object_id(&store, ids.sales_user);
        let same = headers(&[
            (CALLER_ID, &ids.sales_user.to_string()),
            (CALLER_OBJECT_ID, &oid),
        ]);
        assert_eq!(
            resolve(&store, &org(&ids), ids.application_user, &same).unwrap(),
            Some(ids.sales_user)
        );
        let different = headers(&[
            (CALLER_ID, &ids.mfa_user.to_string()),
            (CALLER_OBJECT_ID, &oid),
        ]);
        let err = resolve(&store, &org(&ids), ids.application_user, &different).unwrap_err();
        assert_eq!(err.status, 501);
        assert!(err.message.contains("MSCRMCallerID"), "{}", err.message);
    }
}
