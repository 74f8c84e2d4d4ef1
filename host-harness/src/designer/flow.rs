//! Flows: steps that run actions in order, where a step's input may refer to the trigger's event
//! or to an earlier step's output.
//!
//! A reference is `{{name.path}}`: `name` is `trigger` or an earlier step's name, and `path`
//! walks the JSON value with `.field` and `[index]`, as in `{{account.id}}` or
//! `{{query.records[0].name}}`. A string that is exactly one reference takes the referenced value
//! with its JSON type (an object stays an object); a reference inside longer text is replaced by
//! the value's text.
//!
//! ```json
//! {
//!   "name": "account with a contact",
//!   "steps": [
//!     {"name": "account", "action": "create-entity",
//!      "input": {"entityType": "accounts", "fieldValues": {"name": "Fabrikam"}}},
//!     {"name": "contact", "action": "create-entity",
//!      "input": {"entityType": "contacts", "dynamicValues": {"lastname": "Ito",
//!        "parentcustomerid_account": {"table": "accounts", "id": "{{account.id}}"}}}}
//!   ]
//! }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A flow as the designer saves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    #[serde(default)]
    pub name: String,
    /// The name of the designer connection the steps run with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The trigger that starts the flow, as the designer configured it (kept for saving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Value>,
    pub steps: Vec<Step>,
}

/// One step: an action and its input, which may hold references.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub action: String,
    #[serde(default = "empty_object")]
    pub input: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// The outcome of one step.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub name: String,
    pub action: String,
    /// `succeeded`, `failed` or `skipped` (an earlier step failed).
    pub status: &'static str,
    /// The input after references were resolved (absent when resolving failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    pub millis: u64,
}

/// Why a flow cannot run at all (checked before any step runs).
pub fn check(flow: &Flow, action_keys: &[&str]) -> Result<(), String> {
    if flow.steps.is_empty() {
        return Err("steps: the flow has no steps; add at least one".to_string());
    }
    let mut seen: Vec<&str> = Vec::new();
    for (index, step) in flow.steps.iter().enumerate() {
        let at = format!("steps[{index}]");
        if !is_name(&step.name) {
            return Err(format!(
                "{at}.name: {:?} is not a step name; use letters, digits and _ (starting with a letter)",
                step.name
            ));
        }
        if step.name == "trigger" {
            return Err(format!(
                "{at}.name: \"trigger\" names the trigger's event; choose another step name"
            ));
        }
        if seen.contains(&step.name.as_str()) {
            return Err(format!(
                "{at}.name: another step is already called {:?}",
                step.name
            ));
        }
        if !action_keys.contains(&step.action.as_str()) {
            return Err(format!(
                "{at}.action: the component has no action {:?}",
                step.action
            ));
        }
        if !step.input.is_object() {
            return Err(format!("{at}.input: must be a JSON object"));
        }
        seen.push(&step.name);
    }
    Ok(())
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Resolves every reference in `value` against `scope` (the trigger's event and the outputs of
/// the steps run so far). The error names the reference and what was wrong.
pub fn resolve(value: &Value, scope: &Map<String, Value>) -> Result<Value, String> {
    match value {
        Value::String(text) => resolve_text(text, scope),
        Value::Array(items) => items.iter().map(|item| resolve(item, scope)).collect(),
        Value::Object(fields) => {
            let mut resolved = Map::with_capacity(fields.len());
            for (key, field) in fields {
                let value = resolve(field, scope).map_err(|problem| format!("{key}: {problem}"))?;
                resolved.insert(key.clone(), value);
            }
            Ok(Value::Object(resolved))
        }
        other => Ok(other.clone()),
    }
}

fn resolve_text(text: &str, scope: &Map<String, Value>) -> Result<Value, String> {
    let trimmed = text.trim();
    if let Some(inner) = whole_reference(trimmed) {
        return lookup(inner, scope).cloned();
    }
    if !text.contains("{{") {
        return Ok(Value::String(text.to_string()));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("{:?} opens a reference with {{{{ but never closes it", text))?;
        let value = lookup(after[..end].trim(), scope)?;
        match value {
            Value::String(s) => out.push_str(s),
            Value::Null => {}
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// `{{ x }}` as a whole string, returning `x`.
fn whole_reference(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

fn lookup<'a>(reference: &str, scope: &'a Map<String, Value>) -> Result<&'a Value, String> {
    let segments = split_path(reference)?;
    let (first, path) = segments
        .split_first()
        .ok_or_else(|| "an empty reference {{}}".to_string())?;
    let Segment::Field(name) = first else {
        return Err(format!(
            "{{{{{reference}}}}} must start with a step name or trigger"
        ));
    };
    let mut current = scope.get(*name).ok_or_else(|| {
        let known: Vec<&str> = scope.keys().map(String::as_str).collect();
        if known.is_empty() {
            format!("{{{{{reference}}}}} refers to {name:?}, but nothing runs before this step")
        } else {
            format!(
                "{{{{{reference}}}}} refers to {name:?}, which is not the trigger or an earlier step; known: {}",
                known.join(", ")
            )
        }
    })?;
    let mut walked = name.to_string();
    for segment in path {
        let next = match (segment, current) {
            (Segment::Field(field), Value::Object(fields)) => fields.get(*field),
            (Segment::Index(index), Value::Array(items)) => items.get(*index),
            _ => None,
        };
        current = next.ok_or_else(|| {
            let what = match segment {
                Segment::Field(field) => format!("no field {field:?}"),
                Segment::Index(index) => format!("no item [{index}]"),
            };
            format!(
                "{{{{{reference}}}}}: {walked} has {what} (it is {})",
                describe(current)
            )
        })?;
        match segment {
            Segment::Field(field) => {
                walked.push('.');
                walked.push_str(field);
            }
            Segment::Index(index) => walked.push_str(&format!("[{index}]")),
        }
    }
    Ok(current)
}

fn describe(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let keys: Vec<&str> = fields.keys().take(8).map(String::as_str).collect();
            format!("an object with {}", keys.join(", "))
        }
        Value::Array(items) => format!("a list of {} items", items.len()),
        Value::String(_) => "text".to_string(),
        Value::Number(_) => "a number".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Null => "null".to_string(),
    }
}

enum Segment<'a> {
    Field(&'a str),
    Index(usize),
}

fn split_path(reference: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut segments = Vec::new();
    for part in reference.split('.') {
        let (field, mut rest) = match part.find('[') {
            Some(open) => (&part[..open], &part[open..]),
            None => (part, ""),
        };
        if field.is_empty() && (segments.is_empty() || rest.is_empty()) {
            return Err(format!("{{{{{reference}}}}} has an empty name in its path"));
        }
        if !field.is_empty() {
            segments.push(Segment::Field(field));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("{{{{{reference}}}}} has a [ without ]"))?;
            let index = rest[1..close].parse().map_err(|_| {
                format!(
                    "{{{{{reference}}}}}: [{}] is not a list index",
                    &rest[1..close]
                )
            })?;
            segments.push(Segment::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!(
                    "{{{{{reference}}}}}: write .field between a ] and the next name"
                ));
            }
        }
    }
    Ok(segments)
}

/// Runs `flow` step by step with `run` (action key, input JSON → output JSON or error JSON);
/// `trigger` is the event that started it, if any. A step that fails stops the flow; the steps
/// after it are reported as skipped.
pub fn run(
    flow: &Flow,
    trigger: Option<&Value>,
    mut run: impl FnMut(&str, &Value) -> Result<Value, Value>,
) -> Vec<StepResult> {
    let mut scope = Map::new();
    if let Some(event) = trigger {
        scope.insert("trigger".to_string(), event.clone());
    }
    let mut results = Vec::with_capacity(flow.steps.len());
    let mut failed = false;
    for step in &flow.steps {
        let started = std::time::Instant::now();
        let mut result = StepResult {
            name: step.name.clone(),
            action: step.action.clone(),
            status: "skipped",
            input: None,
            output: None,
            error: None,
            millis: 0,
        };
        if failed {
            results.push(result);
            continue;
        }
        match resolve(&step.input, &scope) {
            Err(problem) => {
                result.status = "failed";
                result.error = Some(serde_json::json!({
                    "code": "invalid-input",
                    "message": format!("step {:?}: {problem}", step.name),
                }));
                failed = true;
            }
            Ok(input) => {
                match run(&step.action, &input) {
                    Ok(output) => {
                        scope.insert(step.name.clone(), output.clone());
                        result.status = "succeeded";
                        result.output = Some(output);
                    }
                    Err(error) => {
                        result.status = "failed";
                        result.error = Some(error);
                        failed = true;
                    }
                }
                result.input = Some(input);
            }
        }
        result.millis = started.elapsed().as_millis() as u64;
        results.push(result);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Map<String, Value> {
        json!({
            "trigger": {"entity": "account", "record": {"name": "Contoso", "revenue": 5}},
            "account": {"id": "0000-1"},
            "query": {"records": [{"name": "A"}, {"name": "B", "tags": ["x", "y"]}]}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn a_whole_reference_keeps_the_json_type() {
        let scope = scope();
        assert_eq!(
            resolve(&json!("{{trigger.record}}"), &scope).unwrap(),
            json!({"name": "Contoso", "revenue": 5})
        );
        assert_eq!(
            resolve(&json!(" {{ trigger.record.revenue }} "), &scope).unwrap(),
            json!(5)
        );
        assert_eq!(
            resolve(&json!("{{query.records[1].tags[0]}}"), &scope).unwrap(),
            json!("x")
        );
    }

    #[test]
    fn references_inside_text_are_interpolated_everywhere_in_the_input() {
        let input = json!({
            "entityType": "contacts",
            "dynamicValues": {
                "description": "for {{trigger.record.name}} ({{trigger.record.revenue}})",
                "parent": {"table": "accounts", "id": "{{account.id}}"},
                "list": ["{{query.records[0].name}}", 3, true, null]
            }
        });
        assert_eq!(
            resolve(&input, &scope()).unwrap(),
            json!({
                "entityType": "contacts",
                "dynamicValues": {
                    "description": "for Contoso (5)",
                    "parent": {"table": "accounts", "id": "0000-1"},
                    "list": ["A", 3, true, null]
                }
            })
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong_and_where() {
        let scope = scope();
        let problem = resolve(&json!({"data": {"id": "{{acount.id}}"}}), &scope).unwrap_err();
        assert!(
            problem.starts_with("data: id: {{acount.id}} refers to \"acount\""),
            "{problem}"
        );
        assert!(
            problem.contains("known: account, query, trigger"),
            "{problem}"
        );
        let problem = resolve(&json!("{{account.name}}"), &scope).unwrap_err();
        assert!(
            problem.contains("account has no field \"name\""),
            "{problem}"
        );
        assert!(problem.contains("an object with id"), "{problem}");
        let problem = resolve(&json!("{{query.records[5]}}"), &scope).unwrap_err();
        assert!(problem.contains("query.records has no item [5] (it is a list of 2 items)"));
        let problem = resolve(&json!("x {{account.id"), &scope).unwrap_err();
        assert!(problem.contains("never closes"), "{problem}");
        let problem = resolve(&json!("{{query.records[a]}}"), &scope).unwrap_err();
        assert!(problem.contains("[a] is not a list index"), "{problem}");
        let problem = resolve(&json!("{{a}}"), &Map::new()).unwrap_err();
        assert!(
            problem.contains("nothing runs before this step"),
            "{problem}"
        );
    }

    #[test]
    fn check_refuses_unknown_actions_and_bad_or_repeated_names() {
        let flow = |steps: Value| -> Flow {
            serde_json::from_value(json!({"name": "f", "steps": steps})).unwrap()
        };
        let actions = ["create-entity", "get-entity"];
        assert!(
            check(
                &flow(json!([{"name": "a", "action": "create-entity"}])),
                &actions
            )
            .is_ok()
        );
        let cases = [
            (json!([]), "steps: the flow has no steps"),
            (
                json!([{"name": "a", "action": "create-entiti"}]),
                "steps[0].action: the component has no action \"create-entiti\"",
            ),
            (
                json!([{"name": "a", "action": "get-entity"}, {"name": "a", "action": "get-entity"}]),
                "steps[1].name: another step is already called \"a\"",
            ),
            (
                json!([{"name": "1st", "action": "get-entity"}]),
                "steps[0].name: \"1st\" is not a step name",
            ),
            (
                json!([{"name": "trigger", "action": "get-entity"}]),
                "steps[0].name: \"trigger\" names the trigger's event",
            ),
            (
                json!([{"name": "a", "action": "get-entity", "input": []}]),
                "steps[0].input: must be a JSON object",
            ),
        ];
        for (steps, expected) in cases {
            let problem = check(&flow(steps), &actions).unwrap_err();
            assert!(problem.starts_with(expected), "{problem} vs {expected}");
        }
    }

    #[test]
    fn a_failed_step_stops_the_flow_and_later_steps_are_skipped() {
        let flow: Flow = serde_json::from_value(json!({
            "steps": [
                {"name": "one", "action": "a", "input": {"v": "{{trigger.n}}"}},
                {"name": "two", "action": "b", "input": {"v": "{{one.doubled}}"}},
                {"name": "three", "action": "a", "input": {}}
            ]
        }))
        .unwrap();
        let mut calls = Vec::new();
        let results = run(&flow, Some(&json!({"n": 21})), |action, input| {
            calls.push((action.to_string(), input.clone()));
            match action {
                "a" => Ok(json!({"doubled": input["v"].as_i64().unwrap_or(0) * 2})),
                _ => Err(json!({"code": "conflict", "message": "no"})),
            }
        });
        assert_eq!(
            calls,
            vec![
                ("a".to_string(), json!({"v": 21})),
                ("b".to_string(), json!({"v": 42}))
            ]
        );
        let statuses: Vec<&str> = results.iter().map(|r| r.status).collect();
        assert_eq!(statuses, ["succeeded", "failed", "skipped"]);
        assert_eq!(results[0].output, Some(json!({"doubled": 42})));
        assert_eq!(results[1].error.as_ref().unwrap()["code"], "conflict");
    }

    #[test]
    fn an_unresolvable_reference_fails_its_step_without_running_it() {
        let flow: Flow = serde_json::from_value(json!({
            "steps": [{"name": "one", "action": "a", "input": {"v": "{{trigger.n}}"}}]
        }))
        .unwrap();
        let mut ran = false;
        let results = run(&flow, None, |_, _| {
            ran = true;
            Ok(json!({}))
        });
        assert!(!ran);
        assert_eq!(results[0].status, "failed");
        let message = results[0].error.as_ref().unwrap()["message"]
            .as_str()
            .unwrap();
        assert!(
            message.starts_with("step \"one\": v: {{trigger.n}}"),
            "{message}"
        );
    }
}
