//! Search Rows and Suggest Rows through the component against the emulator's Dataverse search,
//! checked against the rows the emulator holds.

use std::collections::BTreeSet;

use dataverse_emulator::Emulator;
use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

fn run(emulator: &Emulator, action: &str, input: Value) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

/// A word of the first account's name, and the ids of the accounts whose name holds it.
fn word_and_accounts(emulator: &Emulator) -> (String, BTreeSet<String>) {
    let accounts = emulator.table("accounts");
    let name = accounts[0]["name"].as_str().unwrap();
    let word = name
        .split(|c: char| !c.is_alphanumeric())
        .find(|word| word.len() >= 3)
        .expect("a word of 3 letters or more")
        .to_lowercase();
    let matching = accounts
        .iter()
        .filter(|row| {
            row["name"].as_str().is_some_and(|name| {
                name.to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|part| part == word)
            })
        })
        .map(|row| row["accountid"].as_str().unwrap().to_string())
        .collect();
    (word, matching)
}

#[test]
fn search_rows_finds_the_rows_whose_name_holds_the_word_with_highlights_and_a_total() {
    let emulator = emulator();
    let (word, expected) = word_and_accounts(&emulator);
    let answer = run(
        &emulator,
        "search-rows",
        json!({"search": word, "tables": ["account"]}),
    )
    .unwrap();
    let results = answer["results"].as_array().unwrap();
    let found: BTreeSet<String> = results
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found, expected);
    assert_eq!(answer["totalCount"], expected.len());
    assert_eq!(answer["nextSkip"], Value::Null);
    for row in results {
        assert_eq!(row["entityName"], "account");
        assert!(row["score"].as_f64().unwrap() > 0.0);
        let marked = row["highlights"]["name"][0].as_str().unwrap();
        assert!(marked.contains("{crmhit}"), "{marked}");
        assert!(row["attributes"]["name"].is_string());
    }
    let sent = emulator
        .requests()
        .into_iter()
        .find(|request| request.path.ends_with("/searchquery"))
        .expect("the query was sent");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["entities"], r#"[{"name":"account"}]"#);
}

#[test]
fn search_rows_pages_by_skip_until_the_total_and_counts_facets() {
    let emulator = emulator();
    let (word, expected) = word_and_accounts(&emulator);
    let mut seen = BTreeSet::new();
    let mut skip = json!(null);
    let mut pages = 0;
    loop {
        let answer = run(
            &emulator,
            "search-rows",
            json!({"search": word, "tables": "account", "top": 1, "skip": skip, "facets": ["entityname"]}),
        )
        .unwrap();
        pages += 1;
        for row in answer["results"].as_array().unwrap() {
            assert!(seen.insert(row["id"].as_str().unwrap().to_string()));
        }
        let facets = answer["facets"]["entityname"].as_array().unwrap();
        assert_eq!(facets[0]["value"], "account");
        assert_eq!(facets[0]["count"], expected.len());
        skip = answer["nextSkip"].clone();
        if skip.is_null() {
            break;
        }
        assert!(pages <= expected.len(), "paging ends");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, expected.len().max(1));
}

#[test]
fn suggest_rows_answers_rows_whose_name_starts_with_the_text() {
    let emulator = emulator();
    let (word, expected) = word_and_accounts(&emulator);
    let answer = run(
        &emulator,
        "suggest-rows",
        json!({"search": &word[..3], "tables": ["account"], "top": 100}),
    )
    .unwrap();
    let suggestions = answer["suggestions"].as_array().unwrap();
    assert!(!suggestions.is_empty());
    let ids: BTreeSet<String> = suggestions
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.is_superset(&expected), "{ids:?} holds {expected:?}");
    for row in suggestions {
        assert_eq!(row["entityName"], "account");
        assert!(row["text"].as_str().unwrap().contains("{crmhit}"));
    }
}

#[test]
fn bad_search_input_is_refused_by_field_before_the_search_is_sent() {
    let emulator = emulator();
    let cases = [
        ("search-rows", json!({"search": "x".repeat(101)}), "search"),
        (
            "search-rows",
            json!({"search": "contoso", "top": 101}),
            "top",
        ),
        ("search-rows", json!({"search": "contoso", "top": 0}), "top"),
        (
            "search-rows",
            json!({"search": "contoso", "skip": -1}),
            "skip",
        ),
        (
            "search-rows",
            json!({"search": "contoso", "tables": "account", "searchEntities": [{"name": "contact"}]}),
            "searchEntities",
        ),
        (
            "search-rows",
            json!({"search": "contoso", "searchEntities": [{"name": "account", "columns": ["name"]}]}),
            "searchEntities",
        ),
        (
            "search-rows",
            json!({"search": "contoso", "tables": "acc ount"}),
            "tables",
        ),
        ("suggest-rows", json!({"search": "co"}), "search"),
    ];
    for (action, input, field) in cases {
        emulator.clear_requests();
        let failure = run(&emulator, action, input.clone()).unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{input}");
        assert_eq!(failure.field.as_deref(), Some(field), "{input}");
        assert!(emulator.requests().is_empty(), "{input}: nothing is sent");
    }
    // A table that does not exist is named, and no search is sent.
    emulator.clear_requests();
    let failure = run(
        &emulator,
        "search-rows",
        json!({"search": "contoso", "tables": "acount"}),
    )
    .unwrap_err();
    assert_eq!(failure.field.as_deref(), Some("tables"));
    assert!(
        failure.message.contains("\"acount\" not found"),
        "{}",
        failure.message
    );
    assert!(
        emulator
            .requests()
            .iter()
            .all(|request| !request.path.contains("search"))
    );
}

#[test]
fn autocomplete_rows_completes_a_partly_typed_word_of_a_row() {
    let emulator = emulator();
    let (word, _) = word_and_accounts(&emulator);
    let answer = run(
        &emulator,
        "autocomplete-rows",
        json!({"search": &word[..2], "tables": ["account"]}),
    )
    .unwrap();
    let marked = answer["text"].as_str().expect("a completion");
    assert!(marked.contains("{crmhit}"), "{marked}");
    let completion = answer["completion"].as_str().unwrap();
    assert!(!completion.contains("{crmhit}"));
    assert!(
        completion.to_lowercase().starts_with(&word[..2]),
        "{completion} completes {}",
        &word[..2]
    );
}
