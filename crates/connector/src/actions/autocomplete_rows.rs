//! Autocomplete Rows: Dataverse search's completion of a partly typed term
//! (`POST searchautocomplete`, "Dataverse Search autocomplete",
//! learn.microsoft.com/power-apps/developer/data-platform/search/autocomplete): one text, with the
//! completed part between `{crmhit}` marks, and the same text without them.

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::search;

pub const ACTION: ActionDef = ActionDef {
    key: "autocomplete-rows",
    label: "Autocomplete Rows",
    description: "Complete a partly typed search term from Microsoft Dynamics 365 CRM records (Dataverse search).",
    group: Some("CRM"),
    inputs: &[
        SEARCH_TEXT,
        SEARCH_TABLES,
        SEARCH_ENTITIES,
        SEARCH_FILTER,
        SEARCH_FUZZY,
        CONNECTION,
    ],
    example_output: Some(r#"{"text":"{crmhit}contoso{/crmhit}","completion":"contoso"}"#),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    // "Search term must be at least one character long and has a 100 character limit."
    let text = search::search_text(input, 1)?;
    let entities = search::entities(context, input)?;
    let mut body = Map::new();
    body.insert("search".into(), json!(text));
    body.insert("fuzzy".into(), json!(input.flag(SEARCH_FUZZY.key)));
    if let Some(entities) = entities {
        body.insert("entities".into(), json!(entities));
    }
    if let Some(filter) = input.text(SEARCH_FILTER.key) {
        body.insert("filter".into(), json!(filter));
    }
    let response = search::send(context, "searchautocomplete", body)?;
    let marked = response.get("Value").and_then(Value::as_str);
    Ok(json!({
        "text": marked,
        "completion": marked.map(|text| text.replace("{crmhit}", "").replace("{/crmhit}", "")),
    }))
}
