//! The action catalogue, in the order of the product brief, and the dispatch to handlers.

mod attach_note;
mod autocomplete_rows;
pub(crate) mod batch_entity_actions;
mod call_function;
mod cancel_background_operation;
mod create_alternate_key;
mod create_attribute;
mod create_entity;
mod create_global_choice;
mod create_many_to_many_relationship;
mod create_one_to_many_relationship;
mod create_table;
mod delete_column;
mod delete_entity;
mod download_file;
mod download_note_attachment;
mod get_attribute;
mod get_background_operation;
mod get_current_user;
mod get_entities_metadata;
mod get_entity;
mod get_entity_metadata;
pub(crate) mod get_new_and_updated_records;
mod list_attributes;
mod list_entities;
mod list_entity_types;
mod perform_bound_action;
mod perform_unbound_action;
mod query_attributes;
mod query_entities;
mod raw_request;
mod relate_rows;
mod run_fetch_xml_query;
mod search_rows;
mod suggest_rows;
mod sync_records;
mod unrelate_rows;
mod update_attribute;
mod update_entity;
mod upload_file;
mod upsert_entity;

use serde_json::Value;

use crate::bindings::dynamics::connector::types::{self as wit, Connection, ConnectorError};
use crate::context::{Context, with_context};
use crate::definition::{InputDef, inputs_to_wit};
use crate::error::{Result, invalid_field};
use crate::input::{Input, closest};

/// A handler: most build a JSON value; readers of many pages write the JSON text themselves.
#[derive(Clone, Copy)]
pub enum Run {
    Value(fn(&Context, &Input) -> Result<Value>),
    Text(fn(&Context, &Input) -> Result<String>),
}

/// One action: its definition next to its handler.
pub struct ActionDef {
    pub key: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub group: Option<&'static str>,
    pub inputs: &'static [InputDef],
    pub example_output: Option<&'static str>,
    pub run: Run,
    /// For actions whose inputs depend on the environment (the parameters of the Dataverse
    /// action a user picks): the inputs added once `input` (partial) is chosen. `invoke` then
    /// passes keys outside `inputs` to the handler as `Input::extra`, for it to check against
    /// the same definitions; other actions refuse unknown keys.
    pub dynamic_inputs: Option<DynamicInputs>,
}

/// Computes an action's environment-given inputs from the inputs chosen so far.
pub type DynamicInputs = fn(&Context, &Input) -> Result<Vec<wit::InputDefinition>>;

pub const CATALOGUE: &[ActionDef] = &[
    batch_entity_actions::ACTION,
    create_attribute::ACTION,
    create_entity::ACTION,
    delete_entity::ACTION,
    get_attribute::ACTION,
    get_current_user::ACTION,
    get_entities_metadata::ACTION,
    get_entity::ACTION,
    get_entity_metadata::ACTION,
    list_attributes::ACTION,
    list_entities::ACTION,
    query_attributes::ACTION,
    query_entities::ACTION,
    raw_request::CRM_ACTION,
    run_fetch_xml_query::ACTION,
    update_attribute::ACTION,
    update_entity::ACTION,
    upsert_entity::ACTION,
    list_entity_types::ACTION,
    raw_request::ACTION,
    sync_records::ACTION,
    get_new_and_updated_records::ACTION,
    relate_rows::ACTION,
    unrelate_rows::ACTION,
    perform_unbound_action::ACTION,
    perform_bound_action::ACTION,
    call_function::ACTION,
    get_background_operation::ACTION,
    cancel_background_operation::ACTION,
    upload_file::ACTION,
    download_file::ACTION,
    attach_note::ACTION,
    download_note_attachment::ACTION,
    search_rows::ACTION,
    suggest_rows::ACTION,
    autocomplete_rows::ACTION,
    create_table::ACTION,
    create_alternate_key::ACTION,
    create_one_to_many_relationship::ACTION,
    create_many_to_many_relationship::ACTION,
    create_global_choice::ACTION,
    delete_column::ACTION,
];

pub fn definitions() -> Vec<wit::ActionDefinition> {
    CATALOGUE
        .iter()
        .map(|action| wit::ActionDefinition {
            key: action.key.to_string(),
            label: action.label.to_string(),
            description: action.description.to_string(),
            group: action.group.map(str::to_string),
            inputs: inputs_to_wit(action.inputs),
            example_output: action.example_output.map(str::to_string),
            dynamic_inputs: action.dynamic_inputs.is_some(),
        })
        .collect()
}

/// Finds the action, checks the input and the connection, then runs the handler.
pub fn invoke(
    key: &str,
    connection: &Connection,
    input_json: &str,
) -> Result<String, ConnectorError> {
    let action = find(key)?;
    let input = match action.dynamic_inputs {
        Some(_) => Input::parse_open(action.inputs, input_json)?,
        None => Input::parse(action.inputs, input_json)?,
    };
    with_context(connection, |context| {
        // Finance & Operations: the actions it has no counterpart for are refused with the
        // reason, and the ones it serves differently run in fno.rs.
        if let Some(refusal) = crate::fno::refusal(context, action.key, action.label) {
            return Err(refusal);
        }
        if let Some(answer) = crate::fno::run(context, action.key, &input) {
            return answer;
        }
        match action.run {
            Run::Value(run) => Ok(run(context, &input)?.to_string()),
            Run::Text(run) => run(context, &input),
        }
    })
}

/// The inputs of an action given a partial input: its own, then the environment's (see
/// `ActionDef::dynamic_inputs`). A required input not chosen yet is not an error here: a designer
/// asks while the user is still filling the form.
pub fn input_definitions(
    key: &str,
    connection: &Connection,
    input_json: &str,
) -> Result<Vec<wit::InputDefinition>, ConnectorError> {
    let action = find(key)?;
    let mut inputs = inputs_to_wit(action.inputs);
    let Some(dynamic) = action.dynamic_inputs else {
        return Ok(inputs);
    };
    let input = Input::parse_partial(action.inputs, input_json)?;
    let added = with_context(connection, |context| dynamic(context, &input))?;
    inputs.extend(added);
    Ok(inputs)
}

fn find(key: &str) -> Result<&'static ActionDef, ConnectorError> {
    CATALOGUE
        .iter()
        .find(|action| action.key == key)
        .ok_or_else(|| {
            let keys: Vec<&str> = CATALOGUE.iter().map(|action| action.key).collect();
            let suggestion = closest(key, &keys)
                .map(|near| format!("; did you mean {near:?}?"))
                .unwrap_or_default();
            invalid_field(
                "action",
                Some("Action"),
                format!("unknown action {key:?}{suggestion}"),
            )
        })
}
