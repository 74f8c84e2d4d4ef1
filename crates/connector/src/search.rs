//! Dataverse search: the `searchquery`, `searchsuggest` and `searchautocomplete` actions, whose
//! list parameters are JSON text and whose answer is JSON text in `response` ("Dataverse Search
//! query", learn.microsoft.com/power-apps/developer/data-platform/search/query; "suggest":
//! .../search/suggest; "autocomplete": .../search/autocomplete).

use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::client::Request;
use crate::context::Context;
use crate::error::{ConnectorErrorExt, Result, error, invalid_input, malformed};
use crate::input::Input;
use crate::inputs::{SEARCH_ENTITIES, SEARCH_TABLES, SEARCH_TEXT};
use crate::records::unknown_set_error;

/// The longest search text the service takes ("search parameter": "a 100 character limit").
const MAX_SEARCH_CHARS: usize = 100;

/// Checks the search text: `min` to 100 characters (1 for a query, 3 for suggest and
/// autocomplete).
pub fn search_text(input: &Input, min: usize) -> Result<&str> {
    let text = input.text(SEARCH_TEXT.key).unwrap_or_default().trim();
    let count = text.chars().count();
    if count < min || count > MAX_SEARCH_CHARS {
        return Err(invalid_input(
            &SEARCH_TEXT,
            format!("must be {min} to {MAX_SEARCH_CHARS} characters long, got {count}"),
        ));
    }
    Ok(text)
}

/// The `entities` parameter: a JSON list of `SearchEntity` (`name`, `selectColumns`,
/// `searchColumns`, `filter`) as text, from Tables or Search Entities; None for every table.
/// The shapes are checked first, then each table is looked up, so a misspelt table is refused
/// by name instead of searched as nothing.
pub fn entities(context: &Context, input: &Input) -> Result<Option<String>> {
    let tables = input.list(SEARCH_TABLES.key);
    let given = input.json(SEARCH_ENTITIES.key);
    let list: Vec<Map<String, Value>> = match (tables.is_empty(), given) {
        (true, None) => return Ok(None),
        (false, Some(_)) => {
            return Err(invalid_input(
                &SEARCH_ENTITIES,
                "give either Tables or Search Entities, not both",
            ));
        }
        (false, None) => tables
            .iter()
            .map(|name| {
                let mut entity = Map::new();
                entity.insert("name".into(), json!(name.to_ascii_lowercase()));
                entity
            })
            .collect(),
        (true, Some(value)) => search_entities(value)?,
    };
    let mut seen = Vec::new();
    for entity in &list {
        let name = entity["name"].as_str().unwrap_or_default();
        if seen.contains(&name) {
            let input = if tables.is_empty() {
                &SEARCH_ENTITIES
            } else {
                &SEARCH_TABLES
            };
            return Err(invalid_input(input, format!("names {name:?} twice")));
        }
        seen.push(name);
    }
    for name in seen {
        if context.metadata.table(&context.client, name)?.is_none() {
            let field = if tables.is_empty() {
                SEARCH_ENTITIES.key
            } else {
                SEARCH_TABLES.key
            };
            let mut failure = unknown_set_error(context, name).with_field(field);
            failure.message = format!("table {name:?} not found");
            failure.hint = Some("name tables by logical name, such as account or contact".into());
            return Err(failure);
        }
    }
    let list: Vec<Value> = list.into_iter().map(Value::Object).collect();
    Ok(Some(Value::Array(list).to_string()))
}

/// Reads Search Entities: a list of objects with a `name` and optional `selectColumns`,
/// `searchColumns` (lists of column names) and `filter` (text); keys in any case.
fn search_entities(value: &Value) -> Result<Vec<Map<String, Value>>> {
    let bad = |problem: String| invalid_input(&SEARCH_ENTITIES, problem);
    let Value::Array(items) = value else {
        return Err(bad(
            "must be a JSON list of tables such as [{\"name\": \"account\"}]".into(),
        ));
    };
    if items.is_empty() {
        return Err(bad(
            "is an empty list; leave it empty to search every table".into(),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::Object(object) = item else {
            return Err(bad(format!("entry {index} must be an object with a name")));
        };
        let mut entity = Map::new();
        for (key, value) in object {
            let canonical = match key.to_ascii_lowercase().as_str() {
                "name" => "name",
                "selectcolumns" => "selectColumns",
                "searchcolumns" => "searchColumns",
                "filter" => "filter",
                _ => {
                    return Err(bad(format!(
                        "entry {index} has the unknown key {key:?} (keys: name, selectColumns, searchColumns, filter)"
                    )));
                }
            };
            let fits = match canonical {
                "name" => value.as_str().is_some_and(dataverse::odata::is_identifier),
                "filter" => value.is_string(),
                _ => value.as_array().is_some_and(|columns| {
                    columns
                        .iter()
                        .all(|column| column.as_str().is_some_and(dataverse::odata::is_identifier))
                }),
            };
            if !fits {
                let expected = match canonical {
                    "name" => "a table's logical name",
                    "filter" => "text",
                    _ => "a list of column logical names",
                };
                return Err(bad(format!(
                    "entry {index}: {canonical} must be {expected}"
                )));
            }
            let value = match (canonical, value) {
                ("name", Value::String(name)) => json!(name.to_ascii_lowercase()),
                _ => value.clone(),
            };
            entity.insert(canonical.to_string(), value);
        }
        if !entity.contains_key("name") {
            return Err(bad(format!("entry {index} has no name")));
        }
        out.push(entity);
    }
    Ok(out)
}

/// Sends one search action and reads the JSON text of its `response`; an `Error` inside it is
/// the service's error. A search changes nothing, so it is retried like a read.
pub fn send(context: &Context, action: &str, body: Map<String, Value>) -> Result<Value> {
    let mut request = Request::new("POST", context.client.api_url(action))
        .header("Content-Type", "application/json");
    request.body = Value::Object(body).to_string().into_bytes();
    let answer = context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()?
        .json()?;
    let text = answer
        .get("response")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("the {action} answer has no response text")))?;
    let response: Value = serde_json::from_str(text).map_err(|problem| {
        malformed(format!("the {action} response is not JSON text: {problem}"))
    })?;
    if let Some(failure) = response.get("Error").filter(|error| !error.is_null()) {
        let field = |name: &str| {
            failure
                .get(name)
                .or_else(|| failure.get(name.to_ascii_lowercase()))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut reported = error(
            ErrorCode::Upstream,
            format!("{action} failed: {} {}", field("Code"), field("Message")),
        );
        reported.service_code = Some(field("Code")).filter(|code| !code.is_empty());
        return Err(reported);
    }
    Ok(response)
}

/// The results of a query answer, in the connector's shape.
pub fn results(response: &Value) -> Vec<Value> {
    response
        .get("Value")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    json!({
                        "entityName": row.get("EntityName"),
                        "id": row.get("Id"),
                        "score": row.get("Score"),
                        "objectTypeCode": row.get("ObjectTypeCode"),
                        "highlights": row.get("Highlights").cloned().unwrap_or_else(|| json!({})),
                        "attributes": row.get("Attributes").cloned().unwrap_or_else(|| json!({})),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The skip of the next page: after this page, when the total says there is more, or (without
/// a total) when the page was full.
pub fn next_skip(skip: u64, returned: usize, top: u64, total: Option<u64>) -> Option<u64> {
    let after = skip + returned as u64;
    match total {
        Some(total) => (after < total).then_some(after),
        None => (returned as u64 >= top && returned > 0).then_some(after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::InputDef;
    use crate::test_host::{Script, Signed};

    const INPUTS: &[InputDef] = &[SEARCH_TEXT, SEARCH_TABLES, SEARCH_ENTITIES];

    fn refused(json: &str) -> String {
        let signed = Signed::new();
        let script = Script::new();
        let context = signed.context(&script);
        let input = Input::parse(INPUTS, json).unwrap();
        let failure = search_text(&input, 1)
            .and_then(|_| entities(&context, &input))
            .unwrap_err();
        assert!(script.sent().is_empty(), "nothing is sent for {json}");
        failure.message
    }

    #[test]
    fn search_inputs_of_the_wrong_shape_are_refused_before_any_request() {
        assert!(refused(&format!(r#"{{"search": "{}"}}"#, "a".repeat(101))).contains("1 to 100"));
        assert!(
            refused(
                r#"{"search": "a", "tables": "account", "searchEntities": [{"name": "contact"}]}"#
            )
            .contains("not both")
        );
        assert!(
            refused(r#"{"search": "a", "searchEntities": {"name": "account"}}"#)
                .contains("JSON list")
        );
        assert!(
            refused(
                r#"{"search": "a", "searchEntities": [{"name": "account", "columns": ["name"]}]}"#
            )
            .contains("unknown key \"columns\"")
        );
        assert!(
            refused(r#"{"search": "a", "searchEntities": [{"name": "account", "selectColumns": "name"}]}"#)
                .contains("selectColumns must be a list")
        );
        assert!(refused(r#"{"search": "a", "tables": "account, Account"}"#).contains("twice"));
    }

    #[test]
    fn the_response_text_is_parsed_and_an_error_inside_it_is_the_services() {
        let signed = Signed::new();
        let script = Script::new()
            .json(
                200,
                r#"{"response": "{\"Error\":null,\"Value\":[{\"Id\":\"1\",\"EntityName\":\"account\",\"ObjectTypeCode\":1,\"Attributes\":{\"name\":\"Contoso\"},\"Highlights\":{\"name\":[\"{crmhit}Contoso{/crmhit}\"]},\"Score\":4.9}],\"Facets\":{},\"Count\":1}"}"#,
            )
            .json(
                200,
                r#"{"response": "{\"Error\":{\"code\":\"BadRequest\",\"message\":\"bad filter\"},\"Value\":null}"}"#,
            );
        let context = signed.context(&script);
        let response = send(&context, "searchquery", Map::new()).unwrap();
        let rows = results(&response);
        assert_eq!(rows[0]["entityName"], "account");
        assert_eq!(rows[0]["attributes"]["name"], "Contoso");
        assert_eq!(rows[0]["score"], 4.9);
        let failure = send(&context, "searchquery", Map::new()).unwrap_err();
        assert!(failure.message.contains("bad filter"));
        assert_eq!(failure.service_code.as_deref(), Some("BadRequest"));
    }

    #[test]
    fn the_next_skip_follows_the_total_or_a_full_page() {
        assert_eq!(next_skip(0, 10, 10, Some(25)), Some(10));
        assert_eq!(next_skip(20, 5, 10, Some(25)), None);
        assert_eq!(next_skip(0, 10, 10, None), Some(10));
        assert_eq!(next_skip(0, 3, 10, None), None);
    }
}
