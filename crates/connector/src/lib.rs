//! The Microsoft Dynamics 365 / Dataverse connector, as a component of the `connector` world.
//!
//! Definitions live next to their handlers (`actions/*`, `triggers/*`); Dataverse knowledge that
//! needs no I/O lives in the `dataverse` crate; every request leaves through the host's `http`
//! import (behind `client::Transport`, so native unit tests can script the answers).

mod actions;
mod attributes;
mod auth;
mod background;
mod bulk;
mod client;
mod connection;
mod context;
mod creates;
mod data_sources;
mod definition;
mod entity_metadata;
mod error;
mod files;
mod fno;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod input;
mod inputs;
mod log;
mod metadata;
mod metadata_writes;
mod operations;
mod records;
mod relationships;
mod search;
mod switches;
#[cfg(test)]
mod test_host;
mod triggers;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "connector",
    });
}

use bindings::dynamics::connector::types::{
    Choice, ComponentDefinition, Connection, ConnectorError, InputDefinition, Token,
};
use bindings::exports::dynamics::connector::{
    actions as actions_export, component, connections, triggers as triggers_export,
};

use crate::connection::Settings;

/// The icon: a rounded square with a stylised "D", drawn for this project.
const ICON: &str = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnIHZpZXdCb3g9JzAgMCA2NCA2NCc+PHJlY3Qgd2lkdGg9JzY0JyBoZWlnaHQ9JzY0JyByeD0nMTInIGZpbGw9JyMwMDJDNTEnLz48cGF0aCBkPSdNMTggMTRoMTRhMTggMTggMCAwIDEgMCAzNkgxOHonIGZpbGw9JyMwMDc4RDQnLz48L3N2Zz4=";

struct Connector;

impl component::Guest for Connector {
    fn definition() -> ComponentDefinition {
        ComponentDefinition {
            key: "ms-dynamics".to_string(),
            name: "Microsoft Dynamics 365".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Query, create, update or delete Microsoft Dynamics 365 API records"
                .to_string(),
            category: "Application Connectors".to_string(),
            icon: ICON.to_string(),
            connections: connection::definitions(),
            actions: actions::definitions(),
            triggers: triggers::definitions(),
            data_sources: data_sources::definitions(),
        }
    }
}

impl connections::Guest for Connector {
    fn endpoints(connection: Connection) -> Result<Vec<String>, ConnectorError> {
        Ok(Settings::from_connection(&connection)?.endpoints())
    }

    fn begin_authorization(
        connection: Connection,
        redirect_uri: String,
    ) -> Result<connections::AuthorizationRequest, ConnectorError> {
        auth::begin(&Settings::from_connection(&connection)?, &redirect_uri)
    }

    fn exchange_code(
        connection: Connection,
        redirect_uri: String,
        code: String,
        code_verifier: String,
    ) -> Result<Token, ConnectorError> {
        auth::exchange(
            &Settings::from_connection(&connection)?,
            &redirect_uri,
            &code,
            &code_verifier,
        )
    }

    fn refresh(connection: Connection, refresh_token: String) -> Result<Token, ConnectorError> {
        auth::refresh(&Settings::from_connection(&connection)?, &refresh_token)
    }

    fn acquire_token(connection: Connection) -> Result<Token, ConnectorError> {
        auth::acquire(&Settings::from_connection(&connection)?)
    }

    fn test(connection: Connection) -> Result<String, ConnectorError> {
        connection::test(&connection)
    }
}

impl actions_export::Guest for Connector {
    fn invoke(
        key: String,
        connection: Connection,
        input: String,
    ) -> Result<String, ConnectorError> {
        actions::invoke(&key, &connection, &input)
    }

    fn choices(
        key: String,
        connection: Connection,
        input: String,
    ) -> Result<Vec<Choice>, ConnectorError> {
        context::with_context(&connection, |context| {
            data_sources::choices(context, &key, &input)
        })
    }

    fn input_definitions(
        key: String,
        connection: Connection,
        input: String,
    ) -> Result<Vec<InputDefinition>, ConnectorError> {
        actions::input_definitions(&key, &connection, &input)
    }
}

impl triggers_export::Guest for Connector {
    fn handle_webhook(
        key: String,
        _connection: Option<Connection>,
        config: String,
        request: triggers_export::IncomingRequest,
    ) -> Result<triggers_export::WebhookOutcome, ConnectorError> {
        triggers::handle_webhook(&key, &config, &request)
    }

    fn enable(
        key: String,
        connection: Connection,
        config: String,
        webhook_url: Option<String>,
    ) -> Result<String, ConnectorError> {
        context::with_context(&connection, |context| {
            triggers::enable(context, &key, &config, webhook_url.as_deref())
        })
    }

    fn disable(
        key: String,
        connection: Connection,
        _config: String,
        state: String,
    ) -> Result<(), ConnectorError> {
        context::with_context(&connection, |context| {
            triggers::disable(context, &key, &state)
        })
    }

    fn poll(
        key: String,
        connection: Connection,
        config: String,
        state: Option<String>,
    ) -> Result<triggers_export::PollOutcome, ConnectorError> {
        triggers::poll(&key, &connection, &config, state.as_deref())
    }
}

bindings::export!(Connector with_types_in bindings);
