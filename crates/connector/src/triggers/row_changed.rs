//! When a row is added, modified or deleted: the settings of Power Automate's Dataverse trigger
//! (learn.microsoft.com/power-automate/dataverse/create-update-delete-trigger) on a webhook
//! registration. A trigger of its own rather than more inputs on `webhook`: its registration is
//! named for the flow, it always registers the images its conditions read, and it drops events
//! the conditions refuse, none of which the plain webhook's users asked for.
//!
//! Where each setting is applied:
//! - Change type: one step per message (Create, Update, Delete).
//! - Select columns: `filteringattributes` on the Update step; Dataverse only calls when one of
//!   them is in the update.
//! - Filter rows: evaluated here on the step's post image (the pre image for a delete), which is
//!   registered with the columns the filter reads. Power Automate evaluates it in the service;
//!   a webhook step has no condition, so the component does.
//! - Scope: Power Automate applies the flow owner's privilege depth. Here the registering user
//!   (WhoAmI at enable), or their business unit (with its descendants for parent-child), travel
//!   in the registered URL's `scopeIds` query parameter (sent back by Dataverse with the
//!   webhook's secret), and an event passes when the image's `ownerid` (user scope) or
//!   `owningbusinessunit` (business-unit scopes) is among them.
//! - Run as: the flow owner is the step's `impersonatinguserid` (the context's UserId); the
//!   modifying user is the context's InitiatingUserId; the row owner is the image's `ownerid`.
//!   The event carries it as `runAsUserId`, for the host to pass as `impersonateUserId`.
//! - Only when a selected column's value changed: a pre and a post image of the selected columns;
//!   Power Automate fires even when an update writes the same value, this mode does not.
//!
//! Registration cannot duplicate itself: the endpoint and steps are named by a hash of the
//! flow ID and the settings (never the environment), and enabling again finds them by name and
//! repairs them instead of adding more.

use serde_json::{Map, Value, json};

use super::row_filter::{self, Condition};
use super::webhook::{
    AUTH_TYPE, AUTH_VALUES, TABLE, WEBHOOK_KEY, async_step, callback_url, configured_table, create,
    delete, encoded_literal, message_filter, message_id, random_key, refuse, settings_xml,
};
use super::{Handlers, TriggerDef};
use crate::bindings::exports::dynamics::connector::triggers::{IncomingRequest, WebhookOutcome};
use crate::context::Context;
use crate::definition::{Format, InputDef, Kind};
use crate::error::{Result, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::CONNECTION;

const CHANGE_TYPE: InputDef = InputDef::new("changeType", "Change Type", Kind::Picklist)
    .required()
    .comments("Which changes start the flow, as Power Automate's trigger offers them")
    .choices(&[
        ("Added", "added"),
        ("Modified", "modified"),
        ("Deleted", "deleted"),
        ("Added or Modified", "added-or-modified"),
        ("Added or Deleted", "added-or-deleted"),
        ("Modified or Deleted", "modified-or-deleted"),
        ("Added or Modified or Deleted", "added-modified-or-deleted"),
    ]);

const SCOPE: InputDef = InputDef::new("scope", "Scope", Kind::Picklist)
    .default("organization")
    .comments("Whose rows start the flow: the registering user's, their business unit's, their business unit's and its children's, or every row")
    .choices(&[
        ("User", "user"),
        ("Business Unit", "business-unit"),
        ("Parent: Child business units", "parent-child-business-units"),
        ("Organization", "organization"),
    ]);

const SELECT_COLUMNS: InputDef = InputDef::new("selectColumns", "Select Columns", Kind::StringList)
    .comments(
        "A modification starts the flow only when it writes one of these columns (logical names)",
    )
    .format(Format::Identifiers);

const FILTER_ROWS: InputDef = InputDef::new("filterRows", "Filter Rows", Kind::Text)
    .comments("An OData condition the row must satisfy after the change (before it, for a deletion), e.g. statecode eq 0 and revenue gt 1000; evaluated by the connector on the row image Dataverse sends")
    .example("statecode eq 0");

const RUN_AS: InputDef = InputDef::new("runAs", "Run As", Kind::Picklist)
    .default("modifying-user")
    .comments("The user the flow's actions act as, given in each event as runAsUserId")
    .choices(&[
        ("Flow owner", "flow-owner"),
        ("Modifying user", "modifying-user"),
        ("Row owner", "row-owner"),
    ]);

const ONLY_WHEN_CHANGED: InputDef = InputDef::new(
    "onlyWhenChanged",
    "Only When a Selected Column Changed",
    Kind::Boolean,
)
.default("false")
.comments("Start the flow for a modification only when a selected column's value differs from before (Power Automate also starts it when an update writes the same value)");

pub(super) const FLOW_ID: InputDef = InputDef::new("flowId", "Flow Id", Kind::Text)
    .comments("The flow's own ID in the host: with the settings it names the registration, so enabling again reuses it and two flows keep their own");

const INPUTS: &[InputDef] = &[
    CONNECTION,
    AUTH_TYPE,
    WEBHOOK_KEY,
    AUTH_VALUES,
    TABLE,
    CHANGE_TYPE,
    SCOPE,
    SELECT_COLUMNS,
    FILTER_ROWS,
    RUN_AS,
    ONLY_WHEN_CHANGED,
    FLOW_ID,
];

pub const TRIGGER: TriggerDef = TriggerDef {
    key: "row-changed",
    label: "When a Row Is Added, Modified or Deleted",
    description: "Start a flow when a row of a table is added, modified or deleted, with Power Automate's change type, scope, select columns, filter rows and run-as settings.",
    inputs: INPUTS,
    handlers: Handlers::Webhook {
        receive,
        enable,
        disable,
    },
};

/// The settings, checked.
struct Settings {
    messages: Vec<&'static str>,
    scope: &'static str,
    select: Vec<String>,
    filter: Option<Condition>,
    run_as: &'static str,
    only_when_changed: bool,
}

fn settings(config: &Input) -> Result<Settings> {
    let messages = match config.text(CHANGE_TYPE.key) {
        Some("added") => vec!["Create"],
        Some("modified") => vec!["Update"],
        Some("deleted") => vec!["Delete"],
        Some("added-or-modified") => vec!["Create", "Update"],
        Some("added-or-deleted") => vec!["Create", "Delete"],
        Some("modified-or-deleted") => vec!["Update", "Delete"],
        Some("added-modified-or-deleted") => vec!["Create", "Update", "Delete"],
        _ => return Err(invalid_input(&CHANGE_TYPE, "is required")),
    };
    let scope = match config.text(SCOPE.key).unwrap_or("organization") {
        "user" => "user",
        "business-unit" => "business-unit",
        "parent-child-business-units" => "parent-child-business-units",
        _ => "organization",
    };
    let run_as = match config.text(RUN_AS.key).unwrap_or("modifying-user") {
        "flow-owner" => "flow-owner",
        "row-owner" => "row-owner",
        _ => "modifying-user",
    };
    let filter = config
        .text(FILTER_ROWS.key)
        .map(|text| row_filter::parse(text).map_err(|problem| invalid_input(&FILTER_ROWS, problem)))
        .transpose()?;
    let select: Vec<String> = config
        .list(SELECT_COLUMNS.key)
        .iter()
        .map(|column| column.to_lowercase())
        .collect();
    let only_when_changed = config.flag(ONLY_WHEN_CHANGED.key);
    if only_when_changed && select.is_empty() {
        return Err(invalid_input(
            &SELECT_COLUMNS,
            "is required with Only When a Selected Column Changed: name the columns whose values must change",
        ));
    }
    if only_when_changed && !messages.contains(&"Update") {
        return Err(invalid_input(
            &ONLY_WHEN_CHANGED,
            "applies to modifications; choose a change type with Modified",
        ));
    }
    Ok(Settings {
        messages,
        scope,
        select,
        filter,
        run_as,
        only_when_changed,
    })
}

impl Settings {
    /// The columns an image of `message` must hold for the conditions; empty: no image.
    fn image_columns(&self, message: &str, pre: bool) -> Vec<String> {
        let mut columns = Vec::new();
        if pre && message != "Delete" {
            // Before a modification: only the value-changed rule reads it.
            if message == "Update" && self.only_when_changed {
                columns.extend(self.select.iter().cloned());
            }
            return columns;
        }
        if let Some(filter) = &self.filter {
            row_filter::columns(filter, &mut columns);
        }
        let mut add = |column: &str| {
            if !columns.iter().any(|c| c == column) {
                columns.push(column.to_string());
            }
        };
        match self.scope {
            "user" => add("ownerid"),
            "organization" => {}
            _ => add("owningbusinessunit"),
        }
        if self.run_as == "row-owner" {
            add("ownerid");
        }
        if message == "Update" && self.only_when_changed {
            for column in &self.select {
                add(column);
            }
        }
        columns
    }
}

/// Checks the request as the webhook trigger does, then keeps the events the settings accept.
fn receive(config: &Input, request: &IncomingRequest) -> Result<WebhookOutcome> {
    let settings = settings(config)?;
    let mut outcome = super::webhook::receive(config, request)?;
    if outcome.status != 200 {
        return Ok(outcome);
    }
    let scope_ids: Vec<String> = query(&request.query, "scopeIds")
        .map(|ids| ids.split(',').map(str::to_lowercase).collect())
        .unwrap_or_default();
    if settings.scope != "organization" && scope_ids.is_empty() {
        return Ok(refuse(
            400,
            "the request's URL lacks the registration's scope; enable the trigger again",
        ));
    }
    let mut kept = Vec::new();
    let mut reasons = Vec::new();
    for text in &outcome.events {
        let mut event: Value = serde_json::from_str(text)
            .map_err(|problem| malformed(format!("the webhook event is not JSON: {problem}")))?;
        match accept(&settings, &scope_ids, &event) {
            Ok(run_as) => {
                event["runAsUserId"] = run_as;
                event["row"] = Value::Object(row_image(&event).clone());
                kept.push(event.to_string());
            }
            Err(reason) => reasons.push(reason),
        }
    }
    if kept.is_empty() {
        outcome.body = json!({"accepted": true, "events": 0, "skipped": reasons})
            .to_string()
            .into_bytes();
    }
    outcome.events = kept;
    Ok(outcome)
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// The row the conditions read: the post image, or the pre image of a deletion.
fn row_image(event: &Value) -> &Map<String, Value> {
    let (images, alias) = if event["message"] == "Delete" {
        (&event["preImages"], "PreImage")
    } else {
        (&event["postImages"], "PostImage")
    };
    images[alias].as_object().unwrap_or(&EMPTY)
}

fn lookup_id(row: &Map<String, Value>, column: &str) -> Option<String> {
    row.get(column)?["id"].as_str().map(str::to_lowercase)
}

/// The user to run as when the event passes, or why it does not.
fn accept(
    settings: &Settings,
    scope_ids: &[String],
    event: &Value,
) -> std::result::Result<Value, String> {
    let message = event["message"].as_str().unwrap_or_default();
    if !settings.messages.contains(&message) {
        return Err(format!("{message} is not a change type of this trigger"));
    }
    let row = row_image(event);
    // A table without the columns (organization-owned) has no narrower scope than the
    // organization.
    let columns: &[&str] = match settings.scope {
        "user" => &["ownerid"],
        "organization" => &[],
        _ => &["owningbusinessunit"],
    };
    if columns.iter().any(|column| row.contains_key(*column)) {
        let inside = columns
            .iter()
            .any(|column| lookup_id(row, column).is_some_and(|id| scope_ids.contains(&id)));
        if !inside {
            return Err("the row's owner is outside the trigger's scope".to_string());
        }
    }
    if let Some(filter) = &settings.filter
        && !row_filter::matches(filter, row)
    {
        return Err("the row does not satisfy Filter Rows".to_string());
    }
    if message == "Update" && settings.only_when_changed {
        let before = event["preImages"]["PreImage"].as_object().unwrap_or(&EMPTY);
        let after = event["postImages"]["PostImage"]
            .as_object()
            .unwrap_or(&EMPTY);
        let changed = settings
            .select
            .iter()
            .any(|column| before.get(column) != after.get(column));
        if !changed {
            return Err("no selected column's value changed".to_string());
        }
    }
    Ok(match settings.run_as {
        "flow-owner" => event["userId"].clone(),
        "row-owner" => lookup_id(row, "ownerid").map_or(Value::Null, Value::String),
        _ => event["initiatingUserId"].clone(),
    })
}

fn query<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The registration's name: the flow and its settings, hashed; no environment, URL or secret.
fn registration_name(config: &Input, table: &str) -> String {
    let list = |key: &str| config.list(key).join(",").to_lowercase();
    let canonical = [
        config.text(FLOW_ID.key).unwrap_or_default().to_string(),
        table.to_string(),
        config.text(CHANGE_TYPE.key).unwrap_or_default().to_string(),
        config.text(SCOPE.key).unwrap_or_default().to_string(),
        list(SELECT_COLUMNS.key),
        config.text(FILTER_ROWS.key).unwrap_or_default().to_string(),
        config.text(RUN_AS.key).unwrap_or_default().to_string(),
        config.flag(ONLY_WHEN_CHANGED.key).to_string(),
    ]
    .join("\u{1f}");
    format!(
        "dynamics-connector row-changed {table} {}",
        fnv64(&canonical)
    )
}

pub(super) fn fnv64(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The IDs a row's owner (user scope) or owning business unit must be among, from the
/// registering user. Kept short: they travel in the endpoint's URL, which Dataverse limits to
/// 2000 characters.
fn scope_ids(context: &Context, scope: &str, who: &Value) -> Result<Vec<String>> {
    let text = |name: &str| {
        who[name]
            .as_str()
            .map(str::to_lowercase)
            .ok_or_else(|| malformed(format!("WhoAmI answered without {name}")))
    };
    let pairs = |path: &str, id: &str, parent: &str| -> Result<Vec<(String, String)>> {
        Ok(rows(context, path)?
            .iter()
            .filter_map(|row| {
                Some((
                    row[id].as_str()?.to_lowercase(),
                    row[parent].as_str().unwrap_or_default().to_lowercase(),
                ))
            })
            .collect())
    };
    let mut units = match scope {
        "user" => return Ok(vec![text("UserId")?]),
        "business-unit" | "parent-child-business-units" => vec![text("BusinessUnitId")?],
        _ => return Ok(Vec::new()),
    };
    if scope == "parent-child-business-units" {
        let tree = pairs(
            "businessunits?$select=businessunitid,_parentbusinessunitid_value",
            "businessunitid",
            "_parentbusinessunitid_value",
        )?;
        let mut at = 0;
        while at < units.len() {
            let parent = units[at].clone();
            for (unit, of) in &tree {
                if *of == parent && !units.contains(unit) {
                    units.push(unit.clone());
                }
            }
            at += 1;
        }
    }
    Ok(units)
}

fn patch(context: &Context, path: &str, body: &Value) -> Result<()> {
    let mut request = crate::client::Request::new("PATCH", context.client.api_url(path))
        .header("Content-Type", "application/json")
        .header("If-Match", "*");
    request.body = body.to_string().into_bytes();
    context
        .client
        .send(request, dataverse::retry::RetryPolicy::RECORDS)?
        .into_success()
        .map(|_| ())
}

pub(super) fn rows(context: &Context, path: &str) -> Result<Vec<Value>> {
    Ok(context.client.get_json(path)?["value"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Registers (or finds and repairs) the endpoint and its steps and images.
fn enable(context: &Context, config: &Input, webhook_url: Option<&str>) -> Result<String> {
    let settings = settings(config)?;
    let url = callback_url(webhook_url)?;
    let table = configured_table(context, config)?;
    let who = context.client.get_json("WhoAmI")?;
    let owner = who["UserId"]
        .as_str()
        .filter(|id| dataverse::guid::is_guid(id))
        .ok_or_else(|| malformed("WhoAmI answered without UserId"))?
        .to_string();
    let ids = scope_ids(context, settings.scope, &who)?;
    let mut registered_url = url.to_string();
    if !ids.is_empty() {
        registered_url.push(if url.contains('?') { '&' } else { '?' });
        registered_url.push_str("scopeIds=");
        registered_url.push_str(&ids.join(","));
    }
    // serviceendpoint.url holds at most 2000 characters.
    if registered_url.len() > 2000 {
        return Err(invalid_input(
            &SCOPE,
            format!(
                "covers {} business units, too many to register in the webhook's URL; choose Business Unit or Organization",
                ids.len()
            ),
        ));
    }
    let (auth_code, auth_value, generated_key) = endpoint_auth(config)?;
    let name = registration_name(config, &table.logical_name);
    let endpoint_body = json!({
        "name": name,
        "contract": 8,
        "url": registered_url,
        "authtype": auth_code,
        "authvalue": auth_value,
        "messageformat": 2,
    });

    let endpoint_id = ensure_endpoint(context, &name, &endpoint_body)?;

    let existing = rows(
        context,
        &format!(
            "sdkmessageprocessingsteps?$select=sdkmessageprocessingstepid,name&$filter=_eventhandler_value%20eq%20{endpoint_id}"
        ),
    )?;
    let mut step_ids = Vec::new();
    for message in &settings.messages {
        let step_name = format!("{name} {message}");
        let reused = existing
            .iter()
            .find(|row| row["name"] == step_name.as_str())
            .and_then(|row| row["sdkmessageprocessingstepid"].as_str())
            .map(str::to_string);
        let step_id = match reused {
            Some(id) => id,
            None => create_step(
                context,
                &settings,
                &table.logical_name,
                message,
                &step_name,
                &endpoint_id,
                &owner,
            )?,
        };
        repair_images(context, &settings, message, &step_id)?;
        step_ids.push(step_id);
    }
    // Steps of this endpoint the settings no longer ask for.
    for row in &existing {
        if let Some(id) = row["sdkmessageprocessingstepid"].as_str()
            && !step_ids.iter().any(|kept| kept == id)
        {
            delete(context, &format!("sdkmessageprocessingsteps({id})"))?;
        }
    }
    Ok(json!({
        "serviceEndpointId": endpoint_id,
        "stepIds": step_ids,
        "webhookKey": generated_key,
        "url": url,
        "name": name,
    })
    .to_string())
}

/// The endpoint's `authtype` and `authvalue` from the trigger's authentication inputs, and the
/// webhook key generated when WebhookKey has none (the host keeps it with the config).
pub(super) fn endpoint_auth(config: &Input) -> Result<(i64, String, Option<String>)> {
    let auth_type = config.text(AUTH_TYPE.key).unwrap_or("WebhookKey");
    let generated_key = match (auth_type, config.text(WEBHOOK_KEY.key)) {
        ("WebhookKey", None) => Some(random_key()?),
        _ => None,
    };
    let (auth_code, auth_value) = match auth_type {
        "WebhookKey" => (
            4,
            generated_key
                .clone()
                .or(config.text(WEBHOOK_KEY.key).map(str::to_string))
                .unwrap_or_default(),
        ),
        "HttpHeader" => (5, settings_xml(config.pairs(AUTH_VALUES.key))),
        _ => (6, settings_xml(config.pairs(AUTH_VALUES.key))),
    };
    Ok((auth_code, auth_value, generated_key))
}

/// The service endpoint named `name`, created or repaired to `endpoint_body`, with any other
/// of the same name removed (with its steps). Enabling again (after a crash, or in a copy of
/// the environment) finds its own endpoint by name and repairs it; a second one of the same
/// name is an earlier crash's leftover. Shared by the triggers that register themselves.
pub(super) fn ensure_endpoint(
    context: &Context,
    name: &str,
    endpoint_body: &Value,
) -> Result<String> {
    let found = rows(
        context,
        &format!(
            "serviceendpoints?$select=serviceendpointid&$filter=name%20eq%20{}",
            encoded_literal(name)
        ),
    )?;
    let mut found_ids = found
        .iter()
        .filter_map(|row| row["serviceendpointid"].as_str().map(str::to_string));
    let endpoint_id = match found_ids.next() {
        Some(id) => {
            patch(context, &format!("serviceendpoints({id})"), endpoint_body)?;
            id
        }
        None => create(context, "serviceendpoints", endpoint_body)?,
    };
    for extra in found_ids {
        for step in rows(
            context,
            &format!(
                "sdkmessageprocessingsteps?$select=sdkmessageprocessingstepid&$filter=_eventhandler_value%20eq%20{extra}"
            ),
        )? {
            if let Some(step) = step["sdkmessageprocessingstepid"].as_str() {
                delete(context, &format!("sdkmessageprocessingsteps({step})"))?;
            }
        }
        delete(context, &format!("serviceendpoints({extra})"))?;
    }
    Ok(endpoint_id)
}

/// Removes the steps' images, then what the webhook trigger removes (the steps and endpoint).
/// Dataverse deletes a step's images with it; removing them first leaves none behind where a
/// service does not.
fn disable(context: &Context, state: &str) -> Result<()> {
    let parsed: Value = serde_json::from_str(state).unwrap_or(Value::Null);
    for step in parsed["stepIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|id| dataverse::guid::is_guid(id))
    {
        for image in rows(
            context,
            &format!(
                "sdkmessageprocessingstepimages?$select=sdkmessageprocessingstepimageid&$filter=_sdkmessageprocessingstepid_value%20eq%20{step}"
            ),
        )? {
            if let Some(id) = image["sdkmessageprocessingstepimageid"].as_str() {
                delete(context, &format!("sdkmessageprocessingstepimages({id})"))?;
            }
        }
    }
    super::webhook::disable(context, state)
}

fn create_step(
    context: &Context,
    settings: &Settings,
    table: &str,
    message: &str,
    step_name: &str,
    endpoint_id: &str,
    owner: &str,
) -> Result<String> {
    let message_id = message_id(context, message)?;
    let filter_id = message_filter(context, &message_id, table)?;
    let mut step = async_step(step_name, &message_id, Some(&filter_id), endpoint_id);
    if message == "Update" && !settings.select.is_empty() {
        step["filteringattributes"] = json!(settings.select.join(","));
    }
    if settings.run_as == "flow-owner" {
        step["impersonatinguserid@odata.bind"] = json!(format!("/systemusers({owner})"));
    }
    create(context, "sdkmessageprocessingsteps", &step)
}

/// Makes the step's images exactly the ones the settings need (a crash may have left some out).
fn repair_images(
    context: &Context,
    settings: &Settings,
    message: &str,
    step_id: &str,
) -> Result<()> {
    // Dataverse has no pre image on Create and no post image on Delete.
    let wanted: Vec<(&str, i64, Vec<String>)> = [
        ("PreImage", 0, settings.image_columns(message, true)),
        ("PostImage", 1, settings.image_columns(message, false)),
    ]
    .into_iter()
    .filter(|(alias, _, columns)| {
        let impossible = matches!(
            (message, *alias),
            ("Create", "PreImage") | ("Delete", "PostImage")
        );
        !columns.is_empty() && !impossible
    })
    .collect();
    let existing = rows(
        context,
        &format!(
            "sdkmessageprocessingstepimages?$select=sdkmessageprocessingstepimageid,entityalias,imagetype,attributes&$filter=_sdkmessageprocessingstepid_value%20eq%20{step_id}"
        ),
    )?;
    let same = existing.len() == wanted.len()
        && wanted.iter().all(|(alias, kind, columns)| {
            existing.iter().any(|row| {
                row["entityalias"] == *alias
                    && row["imagetype"] == *kind
                    && row["attributes"] == columns.join(",").as_str()
            })
        });
    if same {
        return Ok(());
    }
    for row in &existing {
        if let Some(id) = row["sdkmessageprocessingstepimageid"].as_str() {
            delete(context, &format!("sdkmessageprocessingstepimages({id})"))?;
        }
    }
    for (alias, kind, columns) in wanted {
        let image = json!({
            "name": alias,
            "entityalias": alias,
            "imagetype": kind,
            "attributes": columns.join(","),
            "messagepropertyname": if message == "Create" { "Id" } else { "Target" },
            "sdkmessageprocessingstepid@odata.bind": format!("/sdkmessageprocessingsteps({step_id})"),
        });
        create(context, "sdkmessageprocessingstepimages", &image)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Input {
        Input::parse(INPUTS, json).unwrap()
    }

    fn event(message: &str, pre: Value, post: Value) -> Value {
        json!({"message": message, "userId": "u-flow", "initiatingUserId": "u-mod",
               "preImages": {"PreImage": pre}, "postImages": {"PostImage": post}})
    }

    #[test]
    fn the_value_changed_rule_needs_a_differing_selected_column() {
        let settings = settings(&config(
            r#"{"changeType": "modified", "selectColumns": ["name"], "onlyWhenChanged": true}"#,
        ))
        .unwrap();
        let same = event("Update", json!({"name": "A"}), json!({"name": "A"}));
        assert!(accept(&settings, &[], &same).is_err());
        let changed = event("Update", json!({"name": "A"}), json!({"name": "B"}));
        assert_eq!(accept(&settings, &[], &changed).unwrap(), "u-mod");
    }

    #[test]
    fn scope_compares_the_owning_business_unit_and_run_as_picks_the_user() {
        let settings = settings(&config(
            r#"{"changeType": "added", "scope": "business-unit", "runAs": "row-owner"}"#,
        ))
        .unwrap();
        let row = |bu: &str| {
            event(
                "Create",
                Value::Null,
                json!({"owningbusinessunit": {"id": bu}, "ownerid": {"id": "OWNER"}}),
            )
        };
        let ids = vec!["bu1".to_string()];
        assert_eq!(accept(&settings, &ids, &row("BU1")).unwrap(), "owner");
        assert!(accept(&settings, &ids, &row("bu2")).is_err());
        assert_eq!(
            settings.image_columns("Create", false),
            vec!["owningbusinessunit".to_string(), "ownerid".to_string()],
            "the owning unit for the scope, the owner to run as"
        );
    }

    #[test]
    fn settings_refuse_what_cannot_work_naming_the_input() {
        for (json, field) in [
            (
                r#"{"changeType": "modified", "onlyWhenChanged": true}"#,
                "selectColumns",
            ),
            (
                r#"{"changeType": "added", "selectColumns": ["name"], "onlyWhenChanged": true}"#,
                "onlyWhenChanged",
            ),
            (
                r#"{"changeType": "added", "filterRows": "name eq"}"#,
                "filterRows",
            ),
        ] {
            let failure = settings(&config(json)).err().unwrap();
            assert_eq!(failure.field.as_deref(), Some(field), "{json}");
        }
    }

    #[test]
    fn the_registration_name_depends_on_the_flow_and_settings_only() {
        let a = config(r#"{"changeType": "added", "flowId": "flow1", "webhookKey": "k1"}"#);
        let b = config(r#"{"changeType": "added", "flowId": "flow1", "webhookKey": "k2"}"#);
        let c = config(r#"{"changeType": "added", "flowId": "flow2"}"#);
        assert_eq!(
            registration_name(&a, "account"),
            registration_name(&b, "account")
        );
        assert_ne!(
            registration_name(&a, "account"),
            registration_name(&c, "account")
        );
    }
}
