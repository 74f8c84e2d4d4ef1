//! Impersonation through the component: the Impersonate User Id and Impersonate Entra Object Id
//! inputs make the emulator run the write as that user, which its stored rows show in
//! createdby / createdonbehalfby (learn.microsoft.com/power-apps/developer/data-platform/
//! webapi/impersonate-another-user-web-api).

use dataverse_emulator::{Emulator, SeededUsers};
use dynamics_host::{Connection, ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

fn run(connection: &Connection, action: &str, input: Value) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, connection, &input.to_string())
        .answered()
        .map(|output| json(&output))
}

fn stored_account(emulator: &Emulator, id: &str) -> Value {
    emulator
        .table("accounts")
        .into_iter()
        .find(|row| row["accountid"] == id)
        .expect("the account is stored")
}

fn start() -> (Emulator, Connection, SeededUsers) {
    let emulator = emulator();
    let connection = connected(&emulator);
    let users = emulator.seeded_users();
    (emulator, connection, users)
}

#[test]
fn create_entity_as_another_user_by_id_or_by_entra_object_id() {
    let (emulator, connection, users) = start();
    let by_id = run(
        &connection,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "For Riley by id"}, "impersonateUserId": users.sales_user.system_user_id}),
    )
    .unwrap();
    let by_object = run(
        &connection,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "For Riley by object id"}, "impersonateObjectId": users.sales_user.object_id}),
    )
    .unwrap();
    for output in [by_id, by_object] {
        let row = stored_account(&emulator, output["id"].as_str().expect("an id"));
        assert_eq!(
            row["_createdby_value"],
            users.sales_user.system_user_id.as_str()
        );
        assert_eq!(
            row["_ownerid_value"],
            users.sales_user.system_user_id.as_str()
        );
        assert_eq!(
            row["_createdonbehalfby_value"],
            users.application_user.system_user_id.as_str()
        );
    }
    let headers: Vec<(Option<String>, Option<String>)> = emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            (
                r.header("mscrmcallerid").map(str::to_string),
                r.header("callerobjectid").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        headers,
        vec![
            (Some(users.sales_user.system_user_id.clone()), None),
            (None, Some(users.sales_user.object_id.clone())),
        ]
    );
}

#[test]
fn create_entity_without_impersonation_leaves_createdonbehalfby_empty() {
    let (emulator, connection, users) = start();
    let output = run(
        &connection,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "Mine"}}),
    )
    .unwrap();
    let row = stored_account(&emulator, output["id"].as_str().unwrap());
    assert_eq!(
        row["_createdby_value"],
        users.application_user.system_user_id.as_str()
    );
    assert_eq!(row["_createdonbehalfby_value"], Value::Null);
}

#[test]
fn update_entity_as_another_user_sets_modifiedby_and_modifiedonbehalfby() {
    let (emulator, connection, users) = start();
    let created = run(
        &connection,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "To update"}}),
    )
    .unwrap();
    let id = created["id"].as_str().unwrap();
    run(
        &connection,
        "update-entity",
        json!({"entityType": "accounts", "entityId": id, "fieldValues": {"name": "Updated for the admin"}, "impersonateObjectId": users.admin.object_id}),
    )
    .unwrap();
    let row = stored_account(&emulator, id);
    assert_eq!(row["name"], "Updated for the admin");
    assert_eq!(
        row["_modifiedby_value"],
        users.admin.system_user_id.as_str()
    );
    assert_eq!(
        row["_modifiedonbehalfby_value"],
        users.application_user.system_user_id.as_str()
    );
    assert_eq!(
        row["_createdby_value"],
        users.application_user.system_user_id.as_str()
    );
    assert_eq!(row["_createdonbehalfby_value"], Value::Null);
}

#[test]
fn whoami_under_impersonation_names_the_impersonated_user() {
    // get-current-user has no impersonation inputs; Raw Request sends the header to WhoAmI.
    let (_emulator, connection, users) = start();
    let output = run(
        &connection,
        "raw-request",
        json!({"url": "WhoAmI", "method": "GET", "headers": {"CallerObjectId": users.sales_user.object_id}}),
    )
    .unwrap();
    assert_eq!(output["status"], 200);
    assert_eq!(
        output["data"]["UserId"],
        users.sales_user.system_user_id.as_str()
    );
    assert_eq!(
        output["data"]["BusinessUnitId"],
        users.sales_user.business_unit_id.as_str()
    );
    let current = run(&connection, "get-current-user", json!({})).unwrap();
    assert_eq!(
        current["userId"],
        users.application_user.system_user_id.as_str()
    );
}

#[test]
fn refused_impersonations_fail_with_the_service_code_and_write_nothing() {
    let (emulator, connection, users) = start();
    let before = emulator.table("accounts").len();
    let nobody = "00000000-0000-4000-8000-00000000abcd";
    let cases = [
        (
            "impersonateUserId",
            nobody,
            ErrorCode::NotFound,
            404,
            "0x80040217",
        ),
        (
            "impersonateObjectId",
            nobody,
            ErrorCode::InvalidInput,
            400,
            "0x80072560",
        ),
        (
            "impersonateUserId",
            users.disabled_user.system_user_id.as_str(),
            ErrorCode::InvalidInput,
            400,
            "0x80040225",
        ),
    ];
    for (input, value, code, status, service_code) in cases {
        let failure = run(
            &connection,
            "create-entity",
            json!({"entityType": "accounts", "fieldValues": {"name": "Never"}, input: value}),
        )
        .unwrap_err();
        assert_eq!(
            (
                failure.code,
                failure.http_status,
                failure.service_code.as_deref()
            ),
            (code, Some(status), Some(service_code)),
            "{failure:?}"
        );
    }

    // The salesperson signs in with the password grant and has no delegate privilege.
    let credentials = emulator.credentials();
    let mut sales = Connection {
        definition: "oauth2-password".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            ("tokenUrl".to_string(), emulator.token_url()),
            ("clientId".to_string(), credentials.public_client_id),
            ("username".to_string(), users.sales_user.username.clone()),
            ("password".to_string(), credentials.password),
        ],
        token: None,
    };
    let failure = host()
        .run_action(
            "create-entity",
            &mut sales,
            &json!({"entityType": "accounts", "fieldValues": {"name": "Never"}, "impersonateUserId": users.admin.system_user_id}).to_string(),
        )
        .answered()
        .unwrap_err();
    assert_eq!(
        (
            failure.code,
            failure.http_status,
            failure.service_code.as_deref()
        ),
        (ErrorCode::Forbidden, Some(403), Some("0x8004A110")),
        "{failure:?}"
    );
    // Without impersonation the same connection writes as the salesperson.
    let own = host()
        .run_action(
            "create-entity",
            &mut sales,
            &json!({"entityType": "accounts", "fieldValues": {"name": "Riley's own"}}).to_string(),
        )
        .unwrap();
    let row = stored_account(&emulator, json(&own)["id"].as_str().unwrap());
    assert_eq!(
        row["_createdby_value"],
        users.sales_user.system_user_id.as_str()
    );
    assert_eq!(emulator.table("accounts").len(), before + 1);
}
