//! SetState through an update: "use PATCH to set `statecode` and `statuscode`"; the SetState
//! message is deprecated in favour of updating the two columns
//! (learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api,
//! and .../org-service/entity-operations-update-delete "Use the Update message to set
//! statecode and statuscode"). Each status reason belongs to one state (`StatusOptionMetadata.State`
//! in each table's reference page, .../reference/entities/`<table>`); a pair that does not agree
//! is refused with `InvalidStateCodeStatusCode`.

use crate::error::{self, DvError};
use crate::guid::Guid;
use crate::schema::{Entity, TableId};
use crate::store::{Store, Val};

/// The state a status reason belongs to, per the table reference pages: lead (Open: New 1,
/// Contacted 2; Qualified: Qualified 3; Disqualified: Lost 4, Cannot Contact 5, No Longer
/// Interested 6, Canceled 7), opportunity (Open: In Progress 1, On Hold 2; Won: Won 3; Lost:
/// Canceled 4, Out-Sold 5), salesorder (Active: New 1, Pending 2; Submitted: In Progress 3;
/// Canceled: No Money 4; Fulfilled: Complete 100001, Partial 100002; Invoiced: Invoiced
/// 100003), task, asyncoperation, backgroundoperation, workflow; other tables pair their
/// choices in the order the catalogue lists them (Active 1 ↔ 0, Inactive 2 ↔ 1).
pub fn state_of(e: &Entity, status: i64) -> Option<i64> {
    let table: &[(i64, i64)] = match e.logical_name.as_str() {
        "lead" => &[(1, 0), (2, 0), (3, 1), (4, 2), (5, 2), (6, 2), (7, 2)],
        "opportunity" => &[(1, 0), (2, 0), (3, 1), (4, 2), (5, 2)],
        "salesorder" => &[
            (1, 0),
            (2, 0),
            (3, 1),
            (4, 2),
            (100001, 3),
            (100002, 3),
            (100003, 4),
        ],
        "task" => &[(2, 0), (3, 0), (4, 0), (7, 0), (5, 1), (6, 2)],
        "asyncoperation" => &[
            (0, 0),
            (10, 1),
            (20, 2),
            (21, 2),
            (22, 2),
            (30, 3),
            (31, 3),
            (32, 3),
        ],
        "backgroundoperation" => &[(0, 0), (20, 2), (22, 2), (30, 3), (31, 3), (32, 3)],
        "workflow" => &[(1, 0), (2, 1), (3, 2)],
        _ => {
            let (st, sc) = columns(e)?;
            let states = e.attributes[st].kind.options()?;
            let statuses = e.attributes[sc].kind.options()?;
            let pos = statuses.iter().position(|(v, _)| *v == status)?;
            return states.get(pos).map(|(v, _)| *v);
        }
    };
    table.iter().find(|(s, _)| *s == status).map(|(_, st)| *st)
}

/// The state and status columns: `statecode`/`statuscode`, or the background operation's own
/// `backgroundoperationstatecode`/`backgroundoperationstatuscode` (background-operations).
pub fn columns(e: &Entity) -> Option<(usize, usize)> {
    match (e.attr("statecode"), e.attr("statuscode")) {
        (Some(st), Some(sc)) => Some((st, sc)),
        _ => Some((
            e.attr("backgroundoperationstatecode")?,
            e.attr("backgroundoperationstatuscode")?,
        )),
    }
}

fn int(v: &Val) -> Option<i64> {
    match v {
        Val::Int(n) => Some(*n),
        _ => None,
    }
}

/// Refuses an update whose state and status reason would not agree, and a change of state of a
/// job that has already completed: "Canceling background operation is not allowed after it is
/// in terminal state." (background-operations, "Cancel background operations"); a completed
/// system job likewise ("The state transition requested is not valid for the current state",
/// asyncoperation).
pub fn check(store: &Store, e: TableId, id: Guid, cols: &[(usize, Val)]) -> Result<(), DvError> {
    let ent = store.entity(e);
    let Some((st, sc)) = columns(ent) else {
        return Ok(());
    };
    let given = |c: usize| cols.iter().find(|(x, _)| *x == c).map(|(_, v)| v);
    if given(st).is_none() && given(sc).is_none() {
        return Ok(());
    }
    let Some(row) = store.get(e, &id) else {
        return Ok(());
    };
    let (cur_state, cur_status) = (int(&row.vals[st]), int(&row.vals[sc]));
    let state = given(st).map_or(cur_state, int);
    let status = given(sc).map_or(cur_status, int);
    if matches!(
        ent.logical_name.as_str(),
        "backgroundoperation" | "asyncoperation"
    ) && cur_state == Some(3)
    {
        let message = if ent.logical_name == "backgroundoperation" {
            "Canceling background operation is not allowed after it is in terminal state."
                .to_string()
        } else {
            format!(
                "The state transition requested is not valid for the current state. Current state: 3, current status: {}, target state: {}",
                cur_status.unwrap_or(0),
                state.unwrap_or(0)
            )
        };
        return Err(DvError::new(400, error::INVALID_STATE, message));
    }
    let (Some(state), Some(status)) = (state, status) else {
        return Ok(());
    };
    if state_of(ent, status) == Some(state) {
        return Ok(());
    }
    let label = ent.attributes[st]
        .kind
        .options()
        .and_then(|o| o.iter().find(|(v, _)| *v == state))
        .map(|(_, l)| l.replace(' ', ""))
        .unwrap_or_else(|| state.to_string());
    Err(DvError::new(
        400,
        error::INVALID_STATE_CODE_STATUS_CODE,
        format!(
            "{status} is not a valid status code for state code {}State.{label} on {} with Id {id}.",
            ent.schema_name, ent.logical_name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reasons_belong_to_their_documented_state() {
        let schema = crate::catalog::schema();
        let of =
            |table: &str, status| state_of(schema.table(schema.entity(table).unwrap()), status);
        assert_eq!(of("lead", 3), Some(1));
        assert_eq!(of("lead", 6), Some(2));
        assert_eq!(of("opportunity", 5), Some(2));
        assert_eq!(of("salesorder", 100002), Some(3));
        assert_eq!(of("account", 2), Some(1));
        assert_eq!(of("backgroundoperation", 22), Some(2));
        assert_eq!(of("account", 9), None);
    }
}
