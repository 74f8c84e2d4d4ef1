//! Get Current User: WhoAmI, then the caller's systemuser row.

use serde_json::{Value, json};

use crate::actions::{ActionDef, Run};
use crate::context::Context;
use crate::error::{Result, malformed};
use crate::input::Input;
use crate::inputs::CONNECTION;

pub const ACTION: ActionDef = ActionDef {
    key: "get-current-user",
    label: "Get Current User",
    description: "Get information about the currently logged in CRM user",
    group: Some("CRM"),
    inputs: &[CONNECTION],
    example_output: Some(
        r#"{"userId":"22cc22cc-dd33-ee44-ff55-66aa66aa66aa","businessUnitId":"11bb11bb-cc22-dd33-ee44-55ff55ff55ff","organizationId":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee","user":{"systemuserid":"22cc22cc-dd33-ee44-ff55-66aa66aa66aa","fullname":"Avery Howard","domainname":"avery@contoso.onmicrosoft.com"}}"#,
    ),
    run: Run::Value(run),
    dynamic_inputs: None,
};

fn run(context: &Context, _input: &Input) -> Result<Value> {
    let who = context.client.get_json("WhoAmI")?;
    let id = |name: &str| -> Result<String> {
        who.get(name)
            .and_then(Value::as_str)
            .and_then(dataverse::guid::parse)
            .ok_or_else(|| malformed(format!("WhoAmI answered without a {name} GUID")))
    };
    let user_id = id("UserId")?;
    let mut user = context
        .client
        .get_json(&format!("systemusers({user_id})"))?;
    if let Some(record) = user.as_object_mut() {
        record.remove("@odata.context");
    }
    Ok(json!({
        "userId": user_id,
        "businessUnitId": id("BusinessUnitId")?,
        "organizationId": id("OrganizationId")?,
        "user": user,
    }))
}
