//! Create Global Choice: a global option set that choice columns of any table can share ("Create
//! and update choices (option sets) using the Web API",
//! learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-optionsets, "Create a
//! global option set"): `POST GlobalOptionSetDefinitions` with an `OptionSetMetadata` (`Name`,
//! `DisplayName`, `OptionSetType` Picklist, `Options` of `Value` and `Label`), answered 204 with
//! `OData-EntityId`. An option without a value is sent with a null `Value`, which the page
//! recommends so the service assigns one with the publisher's option value prefix.

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::{Result, invalid_input};
use crate::input::Input;
use crate::inputs::*;
use crate::metadata_writes::{self, Create, label, language, schema_name};

pub const ACTION: ActionDef = ActionDef {
    key: "create-global-choice",
    label: "Create Global Choice",
    description: "Create a global choice (option set) in Microsoft Dynamics 365 CRM that choice columns can use.",
    group: Some("CRM"),
    inputs: &[
        SCHEMA_NAME,
        DISPLAY_NAME,
        DESCRIPTION,
        CHOICE_OPTIONS,
        LANGUAGE_CODE,
        PUBLISHER_PREFIX,
        SOLUTION_UNIQUE_NAME,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"metadataId":"1d733907-4d05-ee11-8f6e-000d3a993550","name":"new_colors","alreadyCreated":false}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let name = schema_name(
        input,
        &SCHEMA_NAME,
        input.text(SCHEMA_NAME.key).unwrap_or_default(),
    )?
    .to_ascii_lowercase();
    let lcid = language(input);
    let pairs = input.pairs(CHOICE_OPTIONS.key);
    if pairs.is_empty() {
        return Err(invalid_input(&CHOICE_OPTIONS, "needs at least one option"));
    }
    let mut options = Vec::with_capacity(pairs.len());
    let mut labels: Vec<String> = Vec::with_capacity(pairs.len());
    let mut values: Vec<i64> = Vec::new();
    for (text, value) in pairs {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid_input(
                &CHOICE_OPTIONS,
                "has an option without a label",
            ));
        }
        if labels.iter().any(|seen| seen.eq_ignore_ascii_case(text)) {
            return Err(invalid_input(
                &CHOICE_OPTIONS,
                format!("has the label {text:?} twice"),
            ));
        }
        labels.push(text.to_string());
        let value = match value.trim() {
            "" => Value::Null,
            given => match given.parse::<i32>() {
                Ok(number) if !values.contains(&i64::from(number)) => {
                    values.push(i64::from(number));
                    json!(number)
                }
                Ok(_) => {
                    return Err(invalid_input(
                        &CHOICE_OPTIONS,
                        format!("has the value {given} twice"),
                    ));
                }
                Err(_) => {
                    return Err(invalid_input(
                        &CHOICE_OPTIONS,
                        format!("the value of {text:?} must be a whole number, got {given:?}"),
                    ));
                }
            },
        };
        options.push(json!({"Value": value, "Label": label(text, lcid)}));
    }
    let mut body = Map::new();
    body.insert(
        "@odata.type".into(),
        json!("Microsoft.Dynamics.CRM.OptionSetMetadata"),
    );
    body.insert("Name".into(), json!(name));
    body.insert(
        "DisplayName".into(),
        label(input.text(DISPLAY_NAME.key).unwrap_or_default(), lcid),
    );
    if let Some(description) = input.text(DESCRIPTION.key) {
        body.insert("Description".into(), label(description, lcid));
    }
    body.insert("OptionSetType".into(), json!("Picklist"));
    body.insert("IsGlobal".into(), json!(true));
    body.insert("Options".into(), Value::Array(options));
    // The same choice: the same option labels (values the service assigned cannot be compared).
    let same = |found: &Value| {
        let mut found: Vec<String> = found
            .get("Options")
            .and_then(Value::as_array)
            .map(|options| {
                options
                    .iter()
                    .filter_map(|option| crate::entity_metadata::label(option.get("Label")?))
                    .map(|text| text.to_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        let mut wanted: Vec<String> = labels.iter().map(|text| text.to_lowercase()).collect();
        found.sort();
        wanted.sort();
        found == wanted
    };
    let mut answer = metadata_writes::create(
        context,
        input,
        Create {
            collection: "GlobalOptionSetDefinitions".into(),
            body,
            read_back: format!("GlobalOptionSetDefinitions(Name='{name}')"),
            pick: None,
            same: &same,
            what: format!("choice {name:?}"),
        },
    )?;
    answer["name"] = json!(name);
    Ok(answer)
}
