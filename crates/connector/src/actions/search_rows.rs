//! Search Rows: Dataverse search's relevance query across tables (`POST searchquery`, "Dataverse
//! Search query", learn.microsoft.com/power-apps/developer/data-platform/search/query), with
//! facets and paging by skip.
//!
//! Query, suggest and autocomplete are separate actions: each answers a different shape (ranked
//! rows with facets and a total; suggested texts with their rows; one completed text), and a flow
//! builder maps an action's output once, so one action with a mode would give one step three
//! outputs to tell apart.

use serde_json::{Map, Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::search;

pub const ACTION: ActionDef = ActionDef {
    key: "search-rows",
    label: "Search Rows",
    description: "Search Microsoft Dynamics 365 CRM records across tables by relevance (Dataverse search), with facets and paging.",
    group: Some("CRM"),
    inputs: &[
        SEARCH_TEXT,
        SEARCH_TABLES,
        SEARCH_ENTITIES,
        SEARCH_FILTER,
        SEARCH_FACETS,
        SEARCH_ORDER_BY,
        SEARCH_TOP,
        SEARCH_SKIP,
        SEARCH_MODE,
        SEARCH_QUERY_TYPE,
        CONNECTION,
    ],
    example_output: Some(
        r#"{"results":[{"entityName":"account","id":"00000000-0000-0000-0000-000000000002","score":4.95,"objectTypeCode":1,"highlights":{"name":["{crmhit}Contoso{/crmhit} Ltd"]},"attributes":{"name":"Contoso Ltd"}}],"facets":{},"totalCount":1,"nextSkip":null}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let text = search::search_text(input, 1)?;
    let top = input.number(SEARCH_TOP.key).unwrap_or(50.0) as u64;
    let skip = input.number(SEARCH_SKIP.key).unwrap_or(0.0) as u64;
    let entities = search::entities(context, input)?;
    let mut body = Map::new();
    body.insert("search".into(), json!(text));
    body.insert("count".into(), json!(true));
    body.insert("top".into(), json!(top));
    body.insert("skip".into(), json!(skip));
    if let Some(entities) = entities {
        body.insert("entities".into(), json!(entities));
    }
    if let Some(filter) = input.text(SEARCH_FILTER.key) {
        body.insert("filter".into(), json!(filter));
    }
    // List parameters are JSON text of a list of strings ("facets parameter", "orderby parameter").
    for (key, name) in [
        (SEARCH_FACETS.key, "facets"),
        (SEARCH_ORDER_BY.key, "orderby"),
    ] {
        let list = input.list(key);
        if !list.is_empty() {
            body.insert(name.into(), json!(json!(list).to_string()));
        }
    }
    // "options": a serialized dictionary, such as {'querytype': 'lucene', 'searchmode': 'all'};
    // only what differs from the service's defaults is sent.
    let mut options = Map::new();
    if input.text(SEARCH_QUERY_TYPE.key) == Some("lucene") {
        options.insert("querytype".into(), json!("lucene"));
    }
    if input.text(SEARCH_MODE.key) == Some("all") {
        options.insert("searchmode".into(), json!("all"));
    }
    if !options.is_empty() {
        body.insert("options".into(), json!(Value::Object(options).to_string()));
    }
    let response = search::send(context, "searchquery", body)?;
    let results = search::results(&response);
    // Count is -1 when not asked for ("count parameter").
    let total = response
        .get("Count")
        .and_then(Value::as_i64)
        .and_then(|count| u64::try_from(count).ok());
    let next = search::next_skip(skip, results.len(), top, total);
    Ok(json!({
        "results": results,
        "facets": response.get("Facets").cloned().unwrap_or_else(|| json!({})),
        "totalCount": total,
        "nextSkip": next,
    }))
}
