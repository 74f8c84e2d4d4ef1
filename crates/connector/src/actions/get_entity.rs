//! Get Entity: one record by GUID or alternate key, with select and expand.

use dataverse::query::{QueryOptions, prefer_header};
use dataverse::retry::RetryPolicy;
use serde_json::Value;

use crate::actions::{ActionDef, Run};
use crate::client::Request;
use crate::context::Context;
use crate::error::Result;
use crate::input::Input;
use crate::inputs::*;
use crate::records::{explain, impersonate, record_path, representation};

pub const ACTION: ActionDef = ActionDef {
    key: "get-entity",
    label: "Get Entity",
    description: "Retrieve a single Microsoft Dynamics 365 CRM entity record.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        ENTITY_ID,
        FIELD_NAMES,
        EXPAND,
        CONNECTION,
        INCLUDE_FORMATTED_VALUES,
        IMPERSONATE_USER_ID,
        IMPERSONATE_OBJECT_ID,
    ],
    example_output: Some(
        r#"{"@odata.etag":"W/\"1234\"","accountid":"00000000-0000-0000-0000-000000000002","name":"Contoso"}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, input: &Input) -> Result<Value> {
    let entity_set = input.text(ENTITY_TYPE.key).unwrap_or_default();
    let (path, _) = record_path(entity_set, input)?;
    let options = QueryOptions {
        select: input.list(FIELD_NAMES.key).to_vec(),
        expand: input.list(EXPAND.key).to_vec(),
        ..QueryOptions::default()
    };
    let mut request = Request::new(
        "GET",
        format!(
            "{}{}",
            context.client.api_url(&path),
            options.to_query_string()
        ),
    );
    if let Some(prefer) = prefer_header(None, input.flag(INCLUDE_FORMATTED_VALUES.key)) {
        request = request.header("Prefer", prefer);
    }
    let request = impersonate(request, input)?;
    let response = context
        .client
        .send(request, RetryPolicy::RECORDS)?
        .into_success()
        .map_err(|failure| explain(context, entity_set, failure))?;
    Ok(representation(&response)?.unwrap_or(Value::Null))
}
