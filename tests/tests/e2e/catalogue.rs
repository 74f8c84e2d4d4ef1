//! The component's definitions match the product brief, and component.yaml matches the component.

use std::path::Path;

use dynamics_host::InputDefinition;
use e2e_tests::host;

/// One input row of the brief: label, comments, default (HTML turned back into text).
struct Row {
    label: String,
    comments: String,
    default: String,
}

/// A `###` section of the brief with its table rows.
struct Section {
    heading: String,
    rows: Vec<Row>,
}

fn brief() -> Vec<Section> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed-001-catalogue.md"),
    )
    .unwrap();
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            sections.push(Section {
                heading: heading.trim().to_string(),
                rows: Vec::new(),
            });
        } else if line.starts_with('|') && !line.starts_with("| -") && !line.starts_with("| Input")
        {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_string())
                .collect();
            let Some(section) = sections.last_mut() else {
                continue;
            };
            let cell = |index: usize| cells.get(index).cloned().unwrap_or_default();
            section.rows.push(Row {
                label: cell(0),
                comments: cell(1),
                default: html_to_text(&cell(2)),
            });
        }
    }
    sections
}

fn html_to_text(cell: &str) -> String {
    cell.replace("<code>", "")
        .replace("</code>", "")
        .replace("<br />", "\n")
}

fn same_default(brief: &str, ours: Option<&str>) -> bool {
    match (brief.trim(), ours) {
        ("", None) => true,
        (brief, Some(ours)) => match (
            serde_json::from_str::<serde_json::Value>(brief),
            serde_json::from_str::<serde_json::Value>(ours),
        ) {
            (Ok(a), Ok(b)) if brief.starts_with(['{', '[']) => a == b,
            _ => brief == ours,
        },
        _ => false,
    }
}

fn check_inputs(what: &str, rows: &[Row], inputs: &[InputDefinition]) -> Vec<String> {
    let mut problems = Vec::new();
    for row in rows {
        let Some(input) = inputs.iter().find(|input| input.label == row.label) else {
            problems.push(format!("{what}: no input labelled {:?}", row.label));
            continue;
        };
        let comments = input.comments.as_deref().unwrap_or_default();
        if comments != row.comments {
            problems.push(format!(
                "{what} / {}: comments {comments:?}, brief says {:?}",
                row.label, row.comments
            ));
        }
        if !same_default(&row.default, input.default.as_deref()) {
            problems.push(format!(
                "{what} / {}: default {:?}, brief says {:?}",
                row.label, input.default, row.default
            ));
        }
    }
    problems
}

#[test]
fn every_action_and_input_of_the_brief_is_exported_with_its_label_comments_and_default() {
    let definition = host().definition();
    let mut problems = Vec::new();
    let mut actions_seen = 0;
    for section in brief() {
        let (group, label) = match section.heading.strip_prefix("[CRM] ") {
            Some(label) => (Some("CRM"), label.to_string()),
            None => (None, section.heading.clone()),
        };
        let is_action =
            group.is_some() || ["List Entity Types", "Raw Request"].contains(&label.as_str());
        if !is_action {
            continue;
        }
        actions_seen += 1;
        let Some(action) = definition
            .actions
            .iter()
            .find(|a| a.label == label && a.group.as_deref() == group)
        else {
            problems.push(format!("no action {:?}", section.heading));
            continue;
        };
        problems.extend(check_inputs(
            &section.heading,
            &section.rows,
            &action.inputs,
        ));
        let key_is_kebab = action
            .key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
        assert!(key_is_kebab, "{} is not kebab-case", action.key);
    }
    assert_eq!(actions_seen, 20, "the brief lists 20 actions");
    assert!(
        definition.actions.len() >= 20,
        "the brief's 20 actions and any beyond them"
    );
    assert!(
        problems.is_empty(),
        "mismatches with the brief:\n{}",
        problems.join("\n")
    );
}

#[test]
fn both_connections_of_the_brief_are_exported_with_their_inputs_and_the_password_grant_too() {
    let definition = host().definition();
    let sections = brief();
    let mut problems = Vec::new();
    for heading in [
        "MS Dynamics OAuth 2.0 Auth Code",
        "MS Dynamics OAuth 2.0 Client Credentials",
    ] {
        let section = sections.iter().find(|s| s.heading == heading).unwrap();
        let connection = definition.connections.iter().find(|c| c.label == heading);
        match connection {
            Some(connection) => {
                problems.extend(check_inputs(heading, &section.rows, &connection.inputs))
            }
            None => problems.push(format!("no connection {heading:?}")),
        }
    }
    assert!(
        problems.is_empty(),
        "mismatches with the brief:\n{}",
        problems.join("\n")
    );
    assert!(
        definition
            .connections
            .iter()
            .any(|c| c.key == "oauth2-password")
    );
    assert!(
        definition
            .triggers
            .iter()
            .any(|t| t.key == "webhook" && t.label == "Webhook")
    );
}

#[test]
fn the_checked_in_component_yaml_is_what_the_component_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../component.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap();
    let generated = dynamics_host::manifest::render(host().definition()).unwrap();
    assert!(
        checked_in == generated,
        "component.yaml is stale; regenerate it with `cargo run -p host-harness -- manifest > component.yaml`"
    );
}
