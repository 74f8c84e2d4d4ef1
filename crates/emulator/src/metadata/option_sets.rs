//! Global choices (`GlobalOptionSetDefinitions`): creating one and reading them back.
//!
//! "Create and update choices (option sets) using the Web API"
//! (learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-optionsets):
//! `POST GlobalOptionSetDefinitions` with an `OptionSetMetadata` (`Name`, `DisplayName`,
//! `Description`, `IsGlobal: true`, `OptionSetType: "Picklist"`, `Options` with `Value` and
//! `Label`) answers 204 with `OData-EntityId: [api]/GlobalOptionSetDefinitions(<MetadataId>)`.
//! A choice column then uses it through
//! `"GlobalOptionSet@odata.bind": "/GlobalOptionSetDefinitions(<MetadataId>)"` (`write`).
//! Reads: the collection, one by `MetadataId` or by `Name='x'` ("Query table definitions using
//! the Web API", "Retrieve global choices"). An option without a `Value` gets the next value
//! from the publisher's option value prefix (10000 for the emulator's `new` publisher:
//! 100000000, 100000001, ...).
//!
//! Only choices (`OptionSetType` Picklist) are created; the other option set types the API
//! names (Boolean, State, Status) belong to columns and answer 501.

use serde_json::{Map, Value, json};

use super::define_table::check_schema_name;
use super::json::labels_json;
use super::write::{body_labels, body_object, user_text};
use crate::error::DvError;
use crate::odata::filter::Lit;
use crate::odata::path::{self, Key, Segment};
use crate::schema::{GlobalOptionSet, meta_guid};
use crate::store::Store;
use crate::wire::{Req, Resp};

/// The first value of an option given without one: the `new` publisher's prefix, 10000.
const FIRST_VALUE: i64 = 100_000_000;

/// `POST GlobalOptionSetDefinitions`.
pub fn create(store: &mut Store, req: &Req) -> Result<Resp, DvError> {
    let body = body_object(req.body)?;
    let name = body
        .get("Name")
        .and_then(Value::as_str)
        .ok_or_else(|| DvError::bad_request("The choice definition must have a Name."))?;
    check_schema_name(name, "a global choice")?;
    if body.get("IsGlobal").and_then(Value::as_bool) == Some(false) {
        return Err(DvError::bad_request(
            "A choice created under GlobalOptionSetDefinitions must have IsGlobal true.",
        ));
    }
    match body.get("OptionSetType").and_then(Value::as_str) {
        None | Some("Picklist") => {}
        Some(other) => {
            return Err(DvError::not_implemented(format_args!(
                "global option sets of type '{other}' (choices, type Picklist, can be created)"
            )));
        }
    }
    if store
        .schema
        .additions
        .global_option_sets
        .iter()
        .any(|s| s.name.eq_ignore_ascii_case(name))
    {
        return Err(DvError::new(
            412,
            crate::error::DUPLICATE_RECORD,
            format!("A global choice named '{name}' already exists."),
        ));
    }
    let items = match body.get("Options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(DvError::bad_request("'Options' must be a list of options.")),
    };
    let options = numbered_options(&items)?;
    let set = GlobalOptionSet {
        name: name.to_string(),
        display_labels: body_labels(body.get("DisplayName"), "DisplayName")?,
        description_labels: body_labels(body.get("Description"), "Description")?,
        options,
        metadata_id: meta_guid("globaloptionset", &name.to_lowercase()),
    };
    let id = set.metadata_id;
    store.add_global_option_set(set);
    Ok(Resp::empty(204).header(
        "OData-EntityId",
        format!("{}/GlobalOptionSetDefinitions({id})", req.api),
    ))
}

/// The global choice a `GlobalOptionSet@odata.bind` value names
/// (`/GlobalOptionSetDefinitions(<id>)`, `GlobalOptionSetDefinitions(Name='x')`, or a URL).
pub fn resolve_bind<'s>(store: &'s Store, bind: &Value) -> Result<&'s GlobalOptionSet, DvError> {
    let text = bind.as_str().ok_or_else(|| {
        DvError::bad_request("GlobalOptionSet@odata.bind must be a reference string.")
    })?;
    let tail = text
        .rsplit_once("GlobalOptionSetDefinitions")
        .map(|(_, t)| t)
        .ok_or_else(|| {
            DvError::bad_request(format!(
                "GlobalOptionSet@odata.bind '{text}' does not name a global choice."
            ))
        })?;
    let segs = path::segments(&format!("GlobalOptionSetDefinitions{tail}"))?;
    find(store, &segs[0])
}

fn find<'s>(store: &'s Store, seg: &Segment) -> Result<&'s GlobalOptionSet, DvError> {
    let raw = seg.key.as_deref().unwrap_or("");
    let sets = &store.schema.additions.global_option_sets;
    let found = match path::parse_key(raw)? {
        Key::Id(g) => sets.iter().find(|s| s.metadata_id == g),
        Key::Named(pairs) => match pairs.as_slice() {
            [(k, Lit::Str(v))] if k == "Name" => sets.iter().find(|s| s.name == *v),
            _ => None,
        },
        Key::Single(Lit::Str(v)) => sets.iter().find(|s| s.name == v),
        Key::Single(_) => None,
    };
    found.ok_or_else(|| {
        DvError::new(
            404,
            crate::error::OBJECT_DOES_NOT_EXIST,
            format!("Could not find optionset with key '{raw}'."),
        )
    })
}

/// The `OptionSetMetadata` of a global choice.
pub fn json(set: &GlobalOptionSet) -> Map<String, Value> {
    let seed = format!("globaloptionset/{}", set.name);
    let options: Vec<Value> = set
        .options
        .iter()
        .map(|(v, l)| {
            json!({
                "Value": v,
                "Label": labels_json(&[(1033, l.clone())], &format!("{seed}/{v}"), false),
                "Description": labels_json(&[], &format!("{seed}/{v}/d"), false),
                "Color": null,
                "IsManaged": false,
                "ExternalValue": null,
                "ParentValues": [],
                "Tag": null,
                "IsHidden": false,
                "MetadataId": null,
                "HasChanged": null,
            })
        })
        .collect();
    match json!({
        "@odata.type": "#Microsoft.Dynamics.CRM.OptionSetMetadata",
        "MetadataId": set.metadata_id.to_string(),
        "Name": set.name,
        "IsGlobal": true,
        "IsCustomOptionSet": true,
        "IsManaged": false,
        "OptionSetType": "Picklist",
        "DisplayName": labels_json(&set.display_labels, &format!("{seed}/name"), false),
        "Description": labels_json(&set.description_labels, &format!("{seed}/description"), false),
        "Options": options,
        "IntroducedVersion": "1.0.0.0",
        "HasChanged": null,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The options of a choice definition as (value, label), in the order given. An option sent
/// without a `Value` gets the first value from the publisher's prefix that no option of the
/// list uses, so given and assigned values never collide.
pub fn numbered_options(items: &[Value]) -> Result<Vec<(i64, String)>, DvError> {
    let mut given: Vec<Option<i64>> = Vec::with_capacity(items.len());
    for (i, o) in items.iter().enumerate() {
        given.push(match o.get("Value") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                DvError::bad_request(format!("Options[{i}].Value must be an integer."))
            })?),
        });
    }
    let mut used: Vec<i64> = Vec::new();
    for value in given.iter().flatten() {
        if used.contains(value) {
            return Err(DvError::bad_request(format!(
                "The option value {value} is used more than once."
            )));
        }
        used.push(*value);
    }
    let mut next = FIRST_VALUE;
    let mut options = Vec::with_capacity(items.len());
    for (o, value) in items.iter().zip(given) {
        let value = match value {
            Some(v) => v,
            None => {
                while used.contains(&next) {
                    next += 1;
                }
                used.push(next);
                next
            }
        };
        let labels = body_labels(o.get("Label"), "Label")?;
        let text = user_text(&labels);
        options.push((
            value,
            if text.is_empty() {
                value.to_string()
            } else {
                text
            },
        ));
    }
    Ok(options)
}

/// `GET GlobalOptionSetDefinitions` and `GET GlobalOptionSetDefinitions(...)`.
pub fn read(store: &Store, req: &Req, segs: &[Segment]) -> Result<Resp, DvError> {
    if let Some(s) = segs.get(1) {
        return Err(DvError::segment_not_found(&s.name));
    }
    let api = &req.api;
    let body = match &segs[0].key {
        None => {
            let items: Vec<Value> = store
                .schema
                .additions
                .global_option_sets
                .iter()
                .map(|s| Value::Object(json(s)))
                .collect();
            json!({
                "@odata.context": format!("{api}/$metadata#GlobalOptionSetDefinitions"),
                "value": items,
            })
        }
        Some(_) => {
            let mut m = json(find(store, &segs[0])?);
            m.insert(
                "@odata.context".into(),
                Value::String(format!(
                    "{api}/$metadata#GlobalOptionSetDefinitions/$entity"
                )),
            );
            Value::Object(m)
        }
    };
    Ok(Resp::json(200, body.to_string().into_bytes()))
}
