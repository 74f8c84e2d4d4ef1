//! What the metadata writes share: labels, schema names with the publisher prefix, the solution
//! header, and creates that stay exactly-once.
//!
//! A definition is named by its schema name, and the service refuses a second definition of the
//! same name. So a create is sent again after a lost answer (or rerun by the user), and when it is
//! refused, the definition is read back by name: if it is there and is the one asked for (the same
//! tables, columns or options), the create already happened and its MetadataId is answered with
//! `alreadyCreated`; if it differs, the refusal stands. ("Create and update table definitions using
//! the Web API", learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-definitions-using-web-api:
//! a create answers 204 with the new definition's URL in `OData-EntityId`; the `MSCRM.SolutionUniqueName`
//! header adds it to a solution.)

use dataverse::retry::RetryPolicy;
use serde_json::{Map, Value, json};

use crate::bindings::dynamics::connector::types::ConnectorError;
use crate::client::Request;
use crate::context::Context;
use crate::definition::InputDef;
use crate::error::{Result, invalid_input, with_hint};
use crate::input::Input;
use crate::inputs::{LANGUAGE_CODE, PUBLISHER_PREFIX, SOLUTION_UNIQUE_NAME};

/// A `Label` with one `LocalizedLabel` ("Label ComplexType": only `LocalizedLabels` is set on
/// writes).
pub fn label(text: &str, language: u32) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [{
            "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
            "Label": text,
            "LanguageCode": language,
        }],
    })
}

/// The Language Code input.
pub fn language(input: &Input) -> u32 {
    input.number(LANGUAGE_CODE.key).unwrap_or(1033.0) as u32
}

/// Checks a schema name: an identifier with a customization prefix before an underscore (2 to 8
/// letters and digits, starting with a letter, not `mscrm`), and the Publisher Prefix when given.
pub fn schema_name<'a>(input: &Input, definition: &InputDef, name: &'a str) -> Result<&'a str> {
    let name = name.trim();
    let prefix = name.split_once('_').map(|(prefix, _)| prefix);
    let good_prefix = prefix.is_some_and(is_prefix);
    if !dataverse::odata::is_identifier(name) || !good_prefix || name.ends_with('_') {
        return Err(invalid_input(
            definition,
            format!(
                "{name:?} needs the publisher's customization prefix and an underscore before the name, such as new_BankAccount"
            ),
        ));
    }
    if let Some(expected) = input.text(PUBLISHER_PREFIX.key) {
        let expected = expected.trim();
        if !is_prefix(expected) {
            return Err(invalid_input(
                &PUBLISHER_PREFIX,
                format!(
                    "{expected:?} is not a prefix: 2 to 8 letters and digits, starting with a letter, not mscrm"
                ),
            ));
        }
        if !prefix.is_some_and(|prefix| prefix.eq_ignore_ascii_case(expected)) {
            return Err(invalid_input(
                definition,
                format!("{name:?} does not start with the publisher prefix {expected}_"),
            ));
        }
    }
    Ok(name)
}

/// A customization prefix: 2 to 8 ASCII letters and digits, starting with a letter, and not
/// `mscrm` (reserved).
fn is_prefix(prefix: &str) -> bool {
    (2..=8).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_alphabetic())
        && prefix.chars().all(|c| c.is_ascii_alphanumeric())
        && !prefix.to_ascii_lowercase().starts_with("mscrm")
}

/// One metadata create.
pub struct Create<'a> {
    /// Where to POST, under the Web API root (`EntityDefinitions`, `RelationshipDefinitions`, ...).
    pub collection: String,
    pub body: Map<String, Value>,
    /// Where the definition is read back by name after a refusal.
    pub read_back: String,
    /// Picks the definition out of what `read_back` answers, for definitions read from a
    /// collection (keys have no documented alternate key: "Reference Dataverse schema definitions
    /// by name or MetadataId" names one for tables, columns, relationships and global choices
    /// only); None takes the answer as it is.
    pub pick: Option<&'a dyn Fn(Value) -> Option<Value>>,
    /// True when a definition read back is the one this create asked for.
    pub same: &'a dyn Fn(&Value) -> bool,
    /// Names the definition in messages: `table "new_bankaccount"`.
    pub what: String,
}

/// Sends the create (with the Solution header when given) and answers its MetadataId; a refusal
/// whose definition exists as asked is answered as already created.
pub fn create(context: &Context, input: &Input, create: Create) -> Result<Value> {
    let mut request = Request::new("POST", context.client.api_url(&create.collection))
        .header("Content-Type", "application/json");
    if let Some(solution) = input.text(SOLUTION_UNIQUE_NAME.key) {
        request = request.header("MSCRM.SolutionUniqueName", solution);
    }
    request.body = Value::Object(create.body).to_string().into_bytes();
    // Repeating the POST after a lost answer cannot make a second definition: the service refuses
    // the name, and the refusal is resolved below by reading the definition back.
    let response = context.client.send(request, RetryPolicy::RECORDS)?;
    if response.is_success() {
        let id = response
            .header("odata-entityid")
            .and_then(dataverse::keys::id_from_entity_url);
        return Ok(json!({"metadataId": id, "alreadyCreated": false}));
    }
    let refused = response.status;
    let failure = response.into_success().unwrap_err();
    if !(400..500).contains(&refused) || matches!(refused, 401 | 403 | 429) {
        return Err(failure);
    }
    let existing = read_back(context, &create.read_back)?;
    let existing = match create.pick {
        Some(pick) => existing.and_then(pick),
        None => existing,
    };
    match existing {
        Some(existing) if (create.same)(&existing) => Ok(json!({
            "metadataId": existing.get("MetadataId"),
            "alreadyCreated": true,
        })),
        Some(_) => Err(differs(failure, &create.what)),
        None => Err(failure),
    }
}

fn differs(failure: ConnectorError, what: &str) -> ConnectorError {
    with_hint(
        failure,
        format!(
            "{what} already exists with other settings; pick another schema name or change the existing one"
        ),
    )
}

/// GET a definition by name: None when it does not exist.
pub fn read_back(context: &Context, path: &str) -> Result<Option<Value>> {
    let response = context.client.send(
        Request::new("GET", context.client.api_url(path)),
        RetryPolicy::RECORDS,
    )?;
    if response.status == 404 {
        return Ok(None);
    }
    Ok(Some(response.into_success()?.json()?))
}

/// A text property of a definition, compared without case.
pub fn same_text(definition: &Value, property: &str, expected: &str) -> bool {
    definition
        .get(property)
        .and_then(Value::as_str)
        .is_some_and(|value| value.eq_ignore_ascii_case(expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::SCHEMA_NAME;
    use crate::test_host::{Script, Signed, header};

    fn check(json: &str, name: &str) -> Result<String> {
        let input = Input::parse(&[SCHEMA_NAME, PUBLISHER_PREFIX], json).unwrap();
        schema_name(&input, &SCHEMA_NAME, name).map(str::to_string)
    }

    #[test]
    fn a_schema_name_needs_a_prefix_and_the_publishers_when_given() {
        assert!(check(r#"{"schemaName": "x"}"#, "new_BankAccount").is_ok());
        for bad in [
            "BankAccount",
            "n_Bank",
            "new_",
            "1ab_Bank",
            "mscrm_Bank",
            "new Bank",
        ] {
            assert!(check(r#"{"schemaName": "x"}"#, bad).is_err(), "{bad}");
        }
        let other = check(
            r#"{"schemaName": "x", "publisherPrefix": "cr1"}"#,
            "new_Bank",
        );
        assert!(other.unwrap_err().message.contains("publisher prefix cr1_"));
        assert!(
            check(
                r#"{"schemaName": "x", "publisherPrefix": "CR1"}"#,
                "cr1_Bank"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_create_answers_the_metadata_id_and_sends_the_solution() {
        let signed = Signed::new();
        let script = Script::new().answer_with(
            204,
            &[(
                "OData-EntityId",
                "https://contoso.crm.dynamics.com/api/data/v9.2/EntityDefinitions(417129e1-207c-e511-80d2-00155d2a68d2)",
            )],
            "",
        );
        let context = signed.context(&script);
        let input = Input::parse(
            &[SOLUTION_UNIQUE_NAME],
            r#"{"solutionUniqueName": "examplesolution"}"#,
        )
        .unwrap();
        let same = |_: &Value| true;
        let answer = create(
            &context,
            &input,
            Create {
                collection: "EntityDefinitions".into(),
                body: Map::new(),
                read_back: "EntityDefinitions(LogicalName='new_bankaccount')".into(),
                pick: None,
                same: &same,
                what: "table".into(),
            },
        )
        .unwrap();
        assert_eq!(answer["metadataId"], "417129e1-207c-e511-80d2-00155d2a68d2");
        assert_eq!(answer["alreadyCreated"], false);
        assert_eq!(
            header(&script.sent()[0].headers, "MSCRM.SolutionUniqueName"),
            Some("examplesolution")
        );
    }

    #[test]
    fn a_refused_create_whose_definition_exists_as_asked_is_already_created_and_else_stays_refused()
    {
        let signed = Signed::new();
        let refusal = r#"{"error":{"code":"0x80044363","message":"An entity with the specified name already exists"}}"#;
        let script = Script::new()
            .json(400, refusal)
            .json(200, r#"{"MetadataId":"417129e1-207c-e511-80d2-00155d2a68d2","SchemaName":"new_BankAccount"}"#)
            .json(400, refusal)
            .json(200, r#"{"MetadataId":"417129e1-207c-e511-80d2-00155d2a68d2","SchemaName":"new_Other"}"#);
        let context = signed.context(&script);
        let input = Input::default();
        let same = |found: &Value| same_text(found, "SchemaName", "new_BankAccount");
        let make = || Create {
            collection: "EntityDefinitions".into(),
            body: Map::new(),
            read_back: "EntityDefinitions(LogicalName='new_bankaccount')".into(),
            pick: None,
            same: &same,
            what: "table \"new_bankaccount\"".into(),
        };
        let answer = create(&context, &input, make()).unwrap();
        assert_eq!(answer["alreadyCreated"], true);
        assert_eq!(answer["metadataId"], "417129e1-207c-e511-80d2-00155d2a68d2");
        let failure = create(&context, &input, make()).unwrap_err();
        assert!(failure.message.contains("already exists"));
        assert!(failure.hint.unwrap().contains("other settings"));
    }
}
