//! Suggest Rows: Dataverse search's suggestions for a partly typed text (`POST searchsuggest`,
//! "Dataverse Search suggest", learn.microsoft.com/power-apps/developer/data-platform/search/suggest):
//! each suggestion is the matched text with `{crmhit}` marks and the row it came from.

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::search;

pub const ACTION: ActionDef = ActionDef {
    key: "suggest-rows",
    label: "Suggest Rows",
    description: "Suggest Microsoft Dynamics 365 CRM records whose primary name matches a partly typed text (Dataverse search).",
    group: Some("CRM"),
    inputs: &[
        SEARCH_TEXT,
        SEARCH_TABLES,
        SEARCH_ENTITIES,
        SEARCH_FILTER,
        SEARCH_ORDER_BY,
        SUGGEST_TOP,
        SEARCH_FUZZY,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"suggestions":[{"text":"{crmhit}cont{/crmhit}oso","entityName":"account","id":"00000000-0000-0000-0000-000000000002","document":{"name":"Contoso"}}]}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    // "Search term must be at least three characters long and has a 100 character limit."
    let text = search::search_text(input, 3)?;
    let top = input.number(SUGGEST_TOP.key).unwrap_or(5.0) as u64;
    let entities = search::entities(context, input)?;
    let mut body = Map::new();
    body.insert("search".into(), json!(text));
    body.insert("top".into(), json!(top));
    body.insert("fuzzy".into(), json!(input.flag(SEARCH_FUZZY.key)));
    if let Some(entities) = entities {
        body.insert("entities".into(), json!(entities));
    }
    if let Some(filter) = input.text(SEARCH_FILTER.key) {
        body.insert("filter".into(), json!(filter));
    }
    let order = input.list(SEARCH_ORDER_BY.key);
    if !order.is_empty() {
        body.insert("orderby".into(), json!(json!(order).to_string()));
    }
    let response = search::send(context, "searchsuggest", body)?;
    let suggestions: Vec<Value> = response
        .get("Value")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    let document = row.get("Document").cloned().unwrap_or_else(|| json!({}));
                    json!({
                        "text": row.get("Text"),
                        "entityName": document.get("@search.entityname"),
                        "id": document.get("@search.objectid"),
                        "document": document,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({"suggestions": suggestions}))
}
