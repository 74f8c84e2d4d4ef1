//! The connection file the CLI reads: which connection type, its field values, optionally a
//! name (the key of its tokens in the token store; the file's path otherwise) and a token.
//!
//! ```json
//! {
//!   "name": "contoso-prod",
//!   "type": "oauth2-client-credentials",
//!   "fields": {
//!     "webApiUrl": "https://contoso.crm.dynamics.com",
//!     "tokenUrl": "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token",
//!     "clientId": "<application id>",
//!     "clientSecret": "<secret value>"
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::{Connection, Token};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, Value>,
    #[serde(default)]
    token: Option<TokenFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenFile {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in_secs: Option<u32>,
    #[serde(default)]
    scope: Option<String>,
}

/// Reads a connection file.
pub fn load(path: &Path) -> anyhow::Result<Connection> {
    Ok(load_named(path)?.connection)
}

/// A connection file with the key its tokens are stored under.
pub struct NamedConnection {
    pub connection: Connection,
    /// The file's `name`, or else its canonical path.
    pub key: String,
}

/// Reads a connection file and works out its token store key.
pub fn load_named(path: &Path) -> anyhow::Result<NamedConnection> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading connection file {}", path.display()))?;
    // Some Windows editors start UTF-8 files with a byte order mark, which is no JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let (connection, name) =
        parse_named(text).with_context(|| format!("in connection file {}", path.display()))?;
    let key = match name {
        Some(name) => name,
        None => std::fs::canonicalize(path)
            .with_context(|| format!("resolving {}", path.display()))?
            .to_string_lossy()
            .into_owned(),
    };
    Ok(NamedConnection { connection, key })
}

/// Parses the JSON of a connection file.
pub fn parse(text: &str) -> anyhow::Result<Connection> {
    Ok(parse_named(text)?.0)
}

/// Parses the JSON of a connection file, with its optional `name`.
fn parse_named(text: &str) -> anyhow::Result<(Connection, Option<String>)> {
    let file: ConnectionFile =
        serde_json::from_str(text).context("the connection file is not valid")?;
    let name = match file.name.map(|name| name.trim().to_string()) {
        Some(name) if name.is_empty() => bail!("\"name\" must not be empty"),
        other => other,
    };
    let mut fields = Vec::with_capacity(file.fields.len());
    for (key, value) in file.fields {
        let text = match value {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => continue,
            _ => bail!("field {key:?} must be text, a number or a boolean"),
        };
        fields.push((key, text));
    }
    let connection = Connection {
        definition: file.kind,
        fields,
        token: file.token.map(|token| Token {
            access_token: token.access_token,
            token_type: token.token_type.unwrap_or_else(|| "Bearer".to_string()),
            refresh_token: token.refresh_token,
            expires_in_secs: token.expires_in_secs,
            scope: token.scope,
        }),
    };
    Ok((connection, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_token_are_read_and_numbers_become_text() {
        let connection = parse(
            r#"{"type":"oauth2-client-credentials","fields":{"webApiUrl":"https://x.crm.dynamics.com","port":5},"token":{"accessToken":"t"}}"#,
        )
        .unwrap();
        assert_eq!(connection.definition, "oauth2-client-credentials");
        assert!(
            connection
                .fields
                .contains(&("port".to_string(), "5".to_string()))
        );
        assert_eq!(connection.token.unwrap().token_type, "Bearer");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse(r#"{"type":"x","feilds":{}}"#).is_err());
    }
}
