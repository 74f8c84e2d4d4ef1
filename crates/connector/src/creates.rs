//! Exactly-once creates: the connector names every row it creates, so repeating a create (a retry
//! after a lost answer, or the user's rerun) meets the row it made instead of making another.
//!
//! Dataverse lets a client choose the primary key of a new row, and `PATCH set(id)` with
//! `If-None-Match: *` creates that row or, when it exists, answers 412 and changes nothing
//! ("Prevent update in upsert", learn.microsoft.com/power-apps/developer/data-platform/webapi/perform-conditional-operations-using-web-api).
//! The IDs are derived from a run key (the caller's `idempotencyKey`, or a fresh random one), the
//! item's position and a fingerprint of the write itself (the record's data; for an all-or-nothing
//! batch, the whole change set), so the same input with the same key names the same rows, and the
//! same key reused for different data names different ones (it can never report another write's
//! row as "already created"). A 412 is then checked by reading the row: if it exists, the create
//! was ours and is reported as already made; if not, the 412 is the service's own (a duplicate
//! alternate key) and is reported as is. A primary ID the caller gives is theirs: a 412 on it is
//! reported as already made only when the stored row holds exactly the data sent.
//!
//! Finance & Operations has no such upsert, so creates there stay plain POSTs.

use dataverse::environment::Service;
use dataverse::guid;
use serde_json::{Map, Value};

use crate::client::{Request, random_hex};
use crate::context::Context;
use crate::definition::{InputDef, Kind};
use crate::error::Result;
use crate::input::Input;

pub const IDEMPOTENCY_KEY: InputDef = InputDef::new("idempotencyKey", "Idempotency Key", Kind::Text)
    .comments("Optional text naming this write, such as the flow run and step. New records get IDs derived from it, so running the same input with the same key again finds the records it made instead of making them twice. Left empty, each run gets a fresh key; an error whose outcome is unknown tells the key to rerun with.");

/// The key that names one run's creates.
pub struct RunKey {
    pub key: String,
}

impl RunKey {
    pub fn of(input: &Input) -> RunKey {
        match input.text(IDEMPOTENCY_KEY.key) {
            Some(key) if !key.trim().is_empty() => RunKey {
                key: key.to_string(),
            },
            _ => RunKey {
                key: random_hex(16),
            },
        }
    }

    /// The ID of the `index`th new row of `entity_set` in this run, for the write `fingerprint`
    /// names ([`fingerprint`]).
    pub fn row_id(&self, entity_set: &str, index: usize, fingerprint: &str) -> String {
        guid::derive(&[
            "dynamics-connector/create/v2",
            &self.key,
            &entity_set.to_ascii_lowercase(),
            &index.to_string(),
            fingerprint,
        ])
    }

    /// The sentence that tells how to finish a run whose outcome is unknown.
    pub fn resume_hint(&self) -> String {
        format!(
            "run the same input again with idempotencyKey {:?}: records already created are reported as such and never made twice",
            self.key
        )
    }
}

/// What names one write in a row ID: the kind of write and its data as canonical JSON (object
/// keys in order), hashed so that long bodies make short fingerprints.
pub fn fingerprint(kind: &str, data: &impl serde::Serialize) -> String {
    // A map or value of text keys always serializes.
    guid::derive(&[kind, &serde_json::to_string(data).unwrap_or_default()])
}

/// How a new row gets its ID.
pub struct NewRow {
    pub id: String,
    /// The column of the body that held the caller's own primary ID, to take out of the body
    /// (the URL carries it). A 412 then means their ID is taken, unless this call's own earlier
    /// attempt took it.
    pub given_in: Option<String>,
}

/// True when creates of this connection are written as `PATCH set(id)` + `If-None-Match: *`.
pub fn named_creates(context: &Context) -> bool {
    context.client.settings.environment.service == Service::Dataverse
}

/// Picks the ID of a new row: the primary ID the caller put in `body`, else the run's derived ID.
/// The table's metadata is read only when the body has a GUID-valued column that could be the
/// primary ID.
pub fn new_row(
    context: &Context,
    entity_set: &str,
    body: &Map<String, Value>,
    run: &RunKey,
    index: usize,
    fingerprint: &str,
) -> Result<NewRow> {
    let candidate = body
        .iter()
        .any(|(key, value)| key.ends_with("id") && value.as_str().is_some_and(guid::is_guid));
    if candidate
        && let Some(table) = context.metadata.table(&context.client, entity_set)?
        && let Some(id) = body
            .get(&table.primary_id)
            .and_then(Value::as_str)
            .and_then(guid::parse)
    {
        return Ok(NewRow {
            id,
            given_in: Some(table.primary_id.clone()),
        });
    }
    Ok(NewRow {
        id: run.row_id(entity_set, index, fingerprint),
        given_in: None,
    })
}

/// The create request for a named row: `PATCH set(id)` with `If-None-Match: *`.
pub fn request(context: &Context, entity_set: &str, id: &str) -> Request {
    Request::new(
        "PATCH",
        context.client.api_url(&format!("{entity_set}({id})")),
    )
    .header("If-None-Match", "*")
}

/// Reads the row a create named, after a 412: `Some(record)` when it exists.
pub fn existing(
    context: &Context,
    input: &Input,
    entity_set: &str,
    id: &str,
) -> Result<Option<Value>> {
    let request = Request::new(
        "GET",
        context.client.api_url(&format!("{entity_set}({id})")),
    );
    let request = crate::records::impersonate(request, input)?;
    let response = context
        .client
        .send(request, dataverse::retry::RetryPolicy::RECORDS)?;
    if response.status == 404 {
        return Ok(None);
    }
    let mut record = response.into_success()?.json()?;
    if let Some(object) = record.as_object_mut() {
        object.remove("@odata.context");
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(key: &str) -> RunKey {
        RunKey {
            key: key.to_string(),
        }
    }

    #[test]
    fn a_row_id_depends_on_the_key_the_table_the_position_and_the_write() {
        let key = run("flow-42/step-3");
        let write = fingerprint("create-entity", &serde_json::json!({"name": "A"}));
        assert_eq!(
            key.row_id("accounts", 0, &write),
            key.row_id("accounts", 0, &write)
        );
        assert_eq!(
            key.row_id("accounts", 7, &write),
            run("flow-42/step-3").row_id("Accounts", 7, &write)
        );
        let other_data = fingerprint("create-entity", &serde_json::json!({"name": "B"}));
        let other_kind = fingerprint("batch/independent", &serde_json::json!({"name": "A"}));
        let others = [
            key.row_id("accounts", 1, &write),
            key.row_id("contacts", 0, &write),
            run("flow-42/step-4").row_id("accounts", 0, &write),
            // The same key reused for different data, or by another kind of write, names
            // another row: it can never be taken for the row of the first write.
            key.row_id("accounts", 0, &other_data),
            key.row_id("accounts", 0, &other_kind),
        ];
        for other in others {
            assert_ne!(key.row_id("accounts", 0, &write), other);
        }
        assert!(guid::is_guid(&key.row_id("accounts", 0, &write)));
        // Canonical JSON: the order the caller wrote the fields in does not matter.
        let reordered: Value = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
        let ordered: Value = serde_json::from_str(r#"{"a": 2, "b": 1}"#).unwrap();
        assert_eq!(fingerprint("k", &reordered), fingerprint("k", &ordered));
    }

    /// A rerun after an upgrade must name the rows the earlier version made, so the derivation
    /// may never change: these IDs are fixed (computed apart from this code, as SHA-256 of the
    /// length-prefixed parts "dynamics-connector/create/v2", key, table, index and the write's
    /// fingerprint, itself such a GUID of "create-entity" and the data's JSON, made version 8
    /// UUIDs).
    #[test]
    fn row_ids_are_the_same_in_every_version() {
        let key = run("flow-42/step-3");
        let write = fingerprint("create-entity", &serde_json::json!({"name": "A"}));
        assert_eq!(write, "2077ab8c-040c-8a63-8d20-0f12991b3528");
        assert_eq!(
            key.row_id("accounts", 0, &write),
            "38a535cd-5d51-84b6-b047-6419aa99808e"
        );
        assert_eq!(
            key.row_id("accounts", 999, &write),
            "0d07c1c3-8777-84b1-83ea-8bf5f98d3c69"
        );
    }

    #[test]
    fn the_run_key_is_the_idempotency_key_or_a_fresh_random_one() {
        let given = Input::parse(
            &[IDEMPOTENCY_KEY],
            r#"{"idempotencyKey": "flow-42/step-3"}"#,
        );
        assert_eq!(RunKey::of(&given.unwrap()).key, "flow-42/step-3");
        let none = Input::parse(&[IDEMPOTENCY_KEY], "{}").unwrap();
        let (first, second) = (RunKey::of(&none).key, RunKey::of(&none).key);
        assert_eq!(first.len(), 32);
        assert_ne!(first, second);
    }

    #[test]
    fn the_resume_hint_names_the_key_to_rerun_with() {
        assert!(
            run("flow-42/step-3")
                .resume_hint()
                .starts_with("run the same input again with idempotencyKey \"flow-42/step-3\"")
        );
    }

    #[test]
    fn a_new_row_takes_the_primary_id_the_body_gives_and_else_the_derived_one() {
        use crate::test_host::{Script, Signed};
        let signed = Signed::new();
        let script = Script::new().json(
            200,
            r#"{"value":[{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}]}"#,
        );
        let context = signed.context(&script);
        let key = run("flow-42/step-3");
        let given = "00000000-0000-0000-0000-0000000000a1";
        let body = serde_json::json!({"accountid": given, "name": "A"});
        let row = new_row(
            &context,
            "accounts",
            body.as_object().unwrap(),
            &key,
            0,
            "w",
        )
        .unwrap();
        assert_eq!(row.id, given);
        assert_eq!(row.given_in.as_deref(), Some("accountid"));

        // No GUID-valued column that could be the primary ID: no metadata is read.
        let body = serde_json::json!({"name": "A", "parentaccountid": "not a guid"});
        let row = new_row(
            &context,
            "accounts",
            body.as_object().unwrap(),
            &key,
            4,
            "w",
        )
        .unwrap();
        assert_eq!(row.id, key.row_id("accounts", 4, "w"));
        assert_eq!(row.given_in, None);
        assert_eq!(script.sent().len(), 1);
    }
}
