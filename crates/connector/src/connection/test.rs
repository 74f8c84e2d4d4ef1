//! The connection test: the one call that tells a user whether a connection works, and when the
//! environment refuses it, what to do about it.

use dataverse::environment::Service;
use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use super::Settings;
use crate::bindings::dynamics::connector::types::{
    Connection, ConnectionKind, ConnectorError, ErrorCode,
};
use crate::client::{Client, Request};
use crate::error::{Result, error, with_hint};

/// The connection test: signs in when it can, asks WhoAmI, and reads the user's and business
/// unit's names. Returns what the connection resolved to (Web API root, scope, cloud) so the
/// user sees how the pasted URL was understood.
pub fn test(connection: &Connection) -> Result<String> {
    let settings = Settings::from_connection(connection)?;
    let can_acquire = settings.kind != ConnectionKind::Oauth2AuthorizationCode;
    let (mut token, mut fresh) = match &connection.token {
        Some(token) => (token.clone(), false),
        None if can_acquire => (crate::auth::acquire(&settings)?, true),
        None => {
            return Err(with_hint(
                error(
                    ErrorCode::Unauthenticated,
                    "the connection is not signed in yet",
                ),
                "sign in first (with the CLI: dynamics login -c <connection file>)",
            ));
        }
    };
    let mut output = Map::new();
    output.insert(
        "connectionType".into(),
        connection.definition.clone().into(),
    );
    output.insert(
        "environment".into(),
        settings.environment.origin.clone().into(),
    );
    output.insert("cloud".into(), settings.environment.cloud.name().into());
    output.insert("service".into(), settings.environment.service.key().into());
    output.insert(
        "webApiRoot".into(),
        settings.environment.web_api_root().into(),
    );
    if settings.environment.service == Service::Dataverse {
        output.insert(
            "apiVersion".into(),
            settings.environment.api_version.clone().into(),
        );
    }
    output.insert("scope".into(), settings.scopes.clone().into());
    output.insert("tokenUrl".into(), settings.token_url.clone().into());

    // F&O OData has no WhoAmI: the test reads the service document (`/data/`), which needs a
    // token for the F&O environment, and says so in its output.
    if settings.environment.service == Service::FinanceOperations {
        let root = format!("{}/", settings.environment.web_api_root());
        loop {
            let client = Client::new(&settings, Some(&token));
            let answer = client
                .send(Request::new("GET", root.clone()), RetryPolicy::RECORDS)?
                .into_success();
            match answer {
                Ok(_) => break,
                // A stored token may simply be stale: get a fresh one once, then judge.
                Err(failure)
                    if !fresh && can_acquire && failure.code == ErrorCode::Unauthenticated =>
                {
                    token = crate::auth::acquire(&settings)?;
                    fresh = true;
                }
                Err(failure) => return Err(explain_refusal(failure, &settings, fresh)),
            }
        }
        output.insert(
            "testedBy".into(),
            "GET /data/ (the service document): Finance & Operations OData has no WhoAmI".into(),
        );
        return Ok(Value::Object(output).to_string());
    }

    let who = loop {
        let client = Client::new(&settings, Some(&token));
        match client.get_json("WhoAmI") {
            Ok(who) => break who,
            // A stored token may simply be stale: get a fresh one once, then judge.
            Err(failure) if !fresh && can_acquire && failure.code == ErrorCode::Unauthenticated => {
                token = crate::auth::acquire(&settings)?;
                fresh = true;
            }
            Err(failure) => return Err(explain_refusal(failure, &settings, fresh)),
        }
    };
    let client = Client::new(&settings, Some(&token));
    let id = |name: &str| {
        who.get(name)
            .and_then(Value::as_str)
            .and_then(dataverse::guid::parse)
    };
    let (Some(user_id), Some(business_unit_id)) = (id("UserId"), id("BusinessUnitId")) else {
        return Err(crate::error::malformed(
            "WhoAmI answered without UserId and BusinessUnitId GUIDs",
        ));
    };
    output.insert("userId".into(), user_id.clone().into());
    output.insert("businessUnitId".into(), business_unit_id.clone().into());
    if let Some(organization_id) = id("OrganizationId") {
        output.insert("organizationId".into(), organization_id.into());
    }
    // Names are a courtesy: a role without read access to them must not fail the test.
    let mut warnings = Vec::new();
    match client.get_json(&format!(
        "systemusers({user_id})?$select=fullname,domainname"
    )) {
        Ok(user) => {
            for (from, to) in [("fullname", "userName"), ("domainname", "domainName")] {
                if let Some(value) = user.get(from).filter(|value| value.is_string()) {
                    output.insert(to.into(), value.clone());
                }
            }
        }
        Err(failure) => warnings.push(format!(
            "could not read the user's name: {}",
            failure.message
        )),
    }
    match client.get_json(&format!("businessunits({business_unit_id})?$select=name")) {
        Ok(unit) => {
            if let Some(name) = unit.get("name").filter(|value| value.is_string()) {
                output.insert("businessUnitName".into(), name.clone());
            }
        }
        Err(failure) => warnings.push(format!(
            "could not read the business unit's name: {}",
            failure.message
        )),
    }
    if !warnings.is_empty() {
        output.insert("warnings".into(), json!(warnings));
    }
    Ok(Value::Object(output).to_string())
}

/// Adds what to do when the environment refuses a token Entra just issued: the identity exists
/// in the tenant but not (or without a role) in the environment.
fn explain_refusal(failure: ConnectorError, settings: &Settings, fresh: bool) -> ConnectorError {
    let refused = matches!(
        failure.code,
        ErrorCode::Unauthenticated | ErrorCode::Forbidden
    );
    if refused && fresh {
        let hint = match settings.kind {
            ConnectionKind::Oauth2ClientCredentials => format!(
                "Entra issued a token but the environment refused it: create an application user for client ID {} in the Power Platform admin center (Environment > Settings > Users + permissions > Application users) and give it a security role",
                settings.client_id
            ),
            _ => "Entra issued a token but the environment refused the user: add the user to the environment (license, security group) and give them a security role".to_string(),
        };
        let message = format!(
            "the environment refused a freshly issued token: {}",
            failure.message
        );
        return ConnectorError {
            message,
            hint: Some(hint),
            ..failure
        };
    }
    if failure.code == ErrorCode::NotFound {
        let hint = format!(
            "{} was not found: check the Web API URL, the API version (v9.2, or v8.2 for older servers) and the Service (Dataverse or Finance & Operations)",
            settings.environment.web_api_root()
        );
        return with_hint(failure, hint);
    }
    if failure.code == ErrorCode::Unauthenticated && failure.hint.is_none() {
        return with_hint(failure, "the token was refused: sign in again");
    }
    failure
}
