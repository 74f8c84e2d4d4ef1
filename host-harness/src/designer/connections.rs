//! The designer's connections: kept in a 0600 file (they hold secrets, which never go back to

//! the page), listed, saved, deleted and tested.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use dynamics_host::tokens::{TokenManager, format_utc, unix_now};
use dynamics_host::{CallError, Connection, InputType};

use super::Shared;
use super::api::{Answer, connector_error, fail, host_error, parse_output, status_of};

/// A connection as the designer keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Saved {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) fields: BTreeMap<String, String>,
}

pub(super) fn token_key(name: &str) -> String {
    format!("designer/{name}")
}

pub(super) fn text_fields(value: &Value) -> Result<BTreeMap<String, String>, Answer> {
    let Value::Object(fields) = value else {
        return Err(fail(
            400,
            "invalid-input",
            "fields: must be a JSON object",
            Some("fields"),
        ));
    };
    fields
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            Value::Null => Ok((key.clone(), String::new())),
            Value::Bool(_) | Value::Number(_) => Ok((key.clone(), value.to_string())),
            _ => Err(fail(
                400,
                "invalid-input",
                format!("{key}: a connection field is text"),
                Some(key),
            )),
        })
        .collect()
}

pub(super) fn load_connections(path: &Path) -> anyhow::Result<BTreeMap<String, Saved>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("reading the designer's connections in {}", path.display())),
        Err(problem) if problem.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(problem) => Err(problem).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the connections (secrets included) to a 0600 file, through a temporary file so a
/// crash never leaves half a file.
pub(super) fn save_connections(
    path: &Path,
    connections: &BTreeMap<String, Saved>,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        dynamics_host::tokens::ensure_private_dir(dir, false)?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(connections)?;
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(&temporary)
            .with_context(|| format!("writing {}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

impl Shared {
    pub(super) fn connection(&self, name: &str) -> Result<(String, Connection), Value> {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let saved = connections.get(name).ok_or_else(|| {
            json!({
                "code": "invalid-input",
                "field": "connection",
                "message": format!("there is no connection called {name:?}; create it on the Connections page"),
            })
        })?;
        Ok((
            token_key(name),
            Connection {
                definition: saved.kind.clone(),
                fields: saved.fields.clone().into_iter().collect(),
                token: None,
            },
        ))
    }

    pub(super) fn list_connections(&self) -> Value {
        let statuses = self.store.status(unix_now()).unwrap_or_default();
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let definition = self.host.definition();
        let list: Vec<Value> = connections
            .iter()
            .map(|(name, saved)| {
                let inputs = definition
                    .connections
                    .iter()
                    .find(|c| c.key == saved.kind)
                    .map(|c| c.inputs.as_slice());
                let fields: Map<String, Value> = saved
                    .fields
                    .iter()
                    .map(|(key, value)| {
                        // A type the component no longer defines: every field counts as secret.
                        let secret = inputs.is_none_or(|inputs| {
                            inputs
                                .iter()
                                .any(|i| &i.key == key && i.input_type == InputType::Secret)
                        });
                        let shown = if secret {
                            json!({"set": !value.is_empty()})
                        } else {
                            json!(value)
                        };
                        (key.clone(), shown)
                    })
                    .collect();
                let status = statuses.iter().find(|s| s.key == token_key(name));
                json!({
                    "name": name,
                    "type": saved.kind,
                    "fields": fields,
                    "signedIn": status.is_some_and(|s| s.valid),
                    "refreshable": status.is_some_and(|s| s.refreshable),
                    "expiresAt": status.and_then(|s| s.expires_at).map(format_utc),
                })
            })
            .collect();
        json!(list)
    }

    pub(super) fn save_connection(
        &self,
        name: &str,
        kind: &str,
        mut fields: BTreeMap<String, String>,
    ) -> Result<(), Answer> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
        if !valid_name {
            return Err(fail(
                400,
                "invalid-input",
                "name: give the connection a name of up to 64 letters, digits, spaces, - _ or .",
                Some("name"),
            ));
        }
        let definition = self.host.definition();
        let Some(connection_type) = definition.connections.iter().find(|c| c.key == kind) else {
            let known: Vec<&str> = definition
                .connections
                .iter()
                .map(|c| c.key.as_str())
                .collect();
            return Err(fail(
                400,
                "invalid-input",
                format!(
                    "type: unknown connection type {kind:?}; the types are {}",
                    known.join(", ")
                ),
                Some("type"),
            ));
        };
        for (key, _) in fields.iter() {
            if !connection_type.inputs.iter().any(|input| &input.key == key) {
                return Err(fail(
                    400,
                    "invalid-input",
                    format!("{key}: {} has no field {key:?}", connection_type.label),
                    Some(key),
                ));
            }
        }
        // A secret left empty when editing keeps the value already saved, but only while the
        // other fields stay as they were: a saved secret never follows the connection to
        // another token URL or environment.
        let existing = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .filter(|e| e.kind == kind)
            .cloned();
        if let Some(existing) = existing {
            let is_secret = |key: &str| {
                connection_type
                    .inputs
                    .iter()
                    .any(|i| i.key == key && i.input_type == InputType::Secret)
            };
            let plain = |fields: &BTreeMap<String, String>| -> BTreeMap<String, String> {
                fields
                    .iter()
                    .filter(|(key, value)| !is_secret(key) && !value.trim().is_empty())
                    .map(|(key, value)| (key.clone(), value.trim().to_string()))
                    .collect()
            };
            let unchanged = plain(&existing.fields) == plain(&fields);
            for input in &connection_type.inputs {
                let empty = fields.get(&input.key).is_none_or(|v| v.is_empty());
                let Some(value) = existing.fields.get(&input.key) else {
                    continue;
                };
                if input.input_type != InputType::Secret || !empty {
                    continue;
                }
                if !unchanged {
                    return Err(fail(
                        400,
                        "invalid-input",
                        format!(
                            "{}: type {} again: the other fields changed, and a saved secret stays only with the values it was saved with",
                            input.key, input.label
                        ),
                        Some(&input.key),
                    ));
                }
                fields.insert(input.key.clone(), value.clone());
            }
        }
        fields.retain(|_, value| !value.trim().is_empty());
        for input in &connection_type.inputs {
            if input.required && !fields.contains_key(&input.key) {
                return Err(fail(
                    400,
                    "invalid-input",
                    format!("{}: {} is required", input.key, input.label),
                    Some(&input.key),
                ));
            }
        }
        let connection = Connection {
            definition: kind.to_string(),
            fields: fields.clone().into_iter().collect(),
            token: None,
        };
        match self.host.endpoints(&connection) {
            Ok(_) => {}
            Err(CallError::Connector(error)) => {
                return Err((400, json!({ "error": connector_error(&error) })));
            }
            Err(CallError::Host(error)) => {
                return Err((500, json!({ "error": host_error(&error) })));
            }
        }
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.insert(
            name.to_string(),
            Saved {
                kind: kind.to_string(),
                fields,
            },
        );
        save_connections(&self.connections_file, &connections).map_err(|problem| {
            fail(
                500,
                "host",
                format!("saving the connections: {problem:#}"),
                None,
            )
        })
    }

    pub(super) fn delete_connection(&self, name: &str) -> Answer {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if connections.remove(name).is_none() {
            return fail(
                404,
                "not-found",
                format!("there is no connection called {name:?}"),
                None,
            );
        }
        let saved = save_connections(&self.connections_file, &connections);
        drop(connections);
        let forgotten = self.store.remove(&token_key(name));
        match saved.and(forgotten) {
            Ok(_) => (200, self.list_connections()),
            Err(problem) => fail(500, "host", format!("{problem:#}"), None),
        }
    }

    pub(super) fn test_connection(&self, name: &str) -> Answer {
        let (key, mut connection) = match self.connection(name) {
            Ok(found) => found,
            Err(error) => return (400, json!({ "error": error })),
        };
        let manager = TokenManager::new(&self.host, &self.store);
        match manager.test_connection(&key, &mut connection) {
            Ok(text) => (200, json!({ "output": parse_output(text) })),
            Err(CallError::Connector(error)) => {
                let error = connector_error(&error);
                (status_of(&error), json!({ "error": error }))
            }
            Err(CallError::Host(error)) => (500, json!({ "error": host_error(&error) })),
        }
    }

    /// The named connection with a usable token (stored, renewed or newly acquired).
    pub(super) fn prepared(&self, name: &str) -> Result<(String, Connection), Value> {
        let (key, mut connection) = self.connection(name)?;
        let manager = TokenManager::new(&self.host, &self.store);
        match manager.prepare(&key, &mut connection) {
            Ok(()) => Ok((key, connection)),
            Err(CallError::Connector(error)) => Err(connector_error(&error)),
            Err(CallError::Host(error)) => Err(host_error(&error)),
        }
    }
}
