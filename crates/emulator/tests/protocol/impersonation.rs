//! Impersonation over HTTP: `MSCRMCallerID` and `CallerObjectId` run a request as another
//! user (learn.microsoft.com/power-apps/developer/data-platform/webapi/
//! impersonate-another-user-web-api), on single requests and inside `$batch`.

use std::time::Duration;

use dataverse_emulator::{Config, Emulator, SeededUsers};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

fn start() -> (Emulator, Client, SeededUsers) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let client = Client::new(&emu, Duration::from_secs(30));
    let users = emu.seeded_users();
    (emu, client, users)
}

fn create(c: &Client, body: Value, headers: &[(&str, &str)]) -> Answer {
    c.request(
        "POST",
        "accounts",
        "application/json",
        &body.to_string(),
        headers,
    )
}

fn created_id(a: &Answer) -> String {
    assert_eq!(a.status, 204, "{}", a.body);
    let h = a.header("OData-EntityId").expect("OData-EntityId");
    h.rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string()
}

fn row(emu: &Emulator, set: &str, key: &str, id: &str) -> Value {
    emu.table(set)
        .into_iter()
        .find(|r| r[key] == id)
        .expect("the row is stored")
}

#[test]
fn the_seeded_users_have_the_roles_the_tests_rely_on() {
    let (_emu, _c, u) = start();
    assert!(u.admin.can_impersonate && u.application_user.can_impersonate);
    assert!(!u.sales_user.can_impersonate && !u.restricted_application_user.can_impersonate);
    assert!(u.disabled_user.disabled && !u.sales_user.disabled);
    assert_ne!(u.sales_user.business_unit_id, u.admin.business_unit_id);
    assert_eq!(u.sales_user.full_name, "Riley Sales");
    let object_ids = [
        &u.admin.object_id,
        &u.application_user.object_id,
        &u.sales_user.object_id,
        &u.disabled_user.object_id,
    ];
    assert!(object_ids.iter().all(|o| o.len() == 36));
}

#[test]
fn a_create_by_callerobjectid_names_the_impersonated_user_and_the_actual_caller() {
    let (emu, c, u) = start();
    let id = created_id(&create(
        &c,
        json!({"name": "Created using impersonation"}),
        &[("CallerObjectId", &u.sales_user.object_id)],
    ));
    let back = c
        .get(
            &format!("accounts({id})?$select=name&$expand=createdby($select=fullname,azureactivedirectoryobjectid),createdonbehalfby($select=fullname,azureactivedirectoryobjectid)"),
            &[],
        )
        .json();
    assert_eq!(back["createdby"]["fullname"], "Riley Sales");
    assert_eq!(
        back["createdby"]["azureactivedirectoryobjectid"],
        u.sales_user.object_id.as_str()
    );
    assert_eq!(
        back["createdonbehalfby"]["systemuserid"],
        u.application_user.system_user_id.as_str()
    );
    let stored = row(&emu, "accounts", "accountid", &id);
    assert_eq!(
        stored["_createdby_value"],
        u.sales_user.system_user_id.as_str()
    );
    assert_eq!(
        stored["_modifiedby_value"],
        u.sales_user.system_user_id.as_str()
    );
    assert_eq!(
        stored["_ownerid_value"],
        u.sales_user.system_user_id.as_str()
    );
    assert_eq!(
        stored["_createdonbehalfby_value"],
        u.application_user.system_user_id.as_str()
    );
    assert_eq!(
        stored["_modifiedonbehalfby_value"],
        u.application_user.system_user_id.as_str()
    );
}

#[test]
fn without_impersonation_the_onbehalfby_columns_stay_empty_and_an_update_clears_them() {
    let (emu, c, u) = start();
    let plain = created_id(&create(&c, json!({"name": "Plain"}), &[]));
    let stored = row(&emu, "accounts", "accountid", &plain);
    assert_eq!(
        stored["_createdby_value"],
        u.application_user.system_user_id.as_str()
    );
    assert_eq!(stored["_createdonbehalfby_value"], Value::Null);

    let a = c.request(
        "PATCH",
        &format!("accounts({plain})"),
        "application/json",
        r#"{"name":"Updated for someone"}"#,
        &[("MSCRMCallerID", &u.sales_user.system_user_id)],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let stored = row(&emu, "accounts", "accountid", &plain);
    assert_eq!(
        stored["_modifiedby_value"],
        u.sales_user.system_user_id.as_str()
    );
    assert_eq!(
        stored["_modifiedonbehalfby_value"],
        u.application_user.system_user_id.as_str()
    );
    assert_eq!(stored["_createdonbehalfby_value"], Value::Null);

    let a = c.request(
        "PATCH",
        &format!("accounts({plain})"),
        "application/json",
        r#"{"name":"Updated as myself"}"#,
        &[],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let stored = row(&emu, "accounts", "accountid", &plain);
    assert_eq!(
        stored["_modifiedby_value"],
        u.application_user.system_user_id.as_str()
    );
    assert_eq!(stored["_modifiedonbehalfby_value"], Value::Null);
}

#[test]
fn whoami_answers_the_impersonated_user_and_their_business_unit() {
    let (_emu, c, u) = start();
    for header in [
        ("MSCRMCallerID", u.sales_user.system_user_id.as_str()),
        ("CallerObjectId", u.sales_user.object_id.as_str()),
    ] {
        let who = c.get("WhoAmI", &[header]);
        assert_eq!(who.status, 200, "{}", who.body);
        let who = who.json();
        assert_eq!(who["UserId"], u.sales_user.system_user_id.as_str());
        assert_eq!(
            who["BusinessUnitId"],
            u.sales_user.business_unit_id.as_str()
        );
    }
    let me = c.get("WhoAmI", &[]).json();
    assert_eq!(me["UserId"], u.application_user.system_user_id.as_str());
}

#[test]
fn the_refusals_carry_the_documented_codes() {
    let (emu, c, u) = start();
    let nobody = "00000000-0000-4000-8000-00000000abcd";
    let cases: [(&str, &str, u16, &str); 5] = [
        ("MSCRMCallerID", nobody, 404, "0x80040217"),
        ("CallerObjectId", nobody, 400, "0x80072560"),
        (
            "MSCRMCallerID",
            &u.disabled_user.system_user_id,
            400,
            "0x80040225",
        ),
        (
            "CallerObjectId",
            &u.disabled_user.object_id,
            400,
            "0x80040225",
        ),
        ("MSCRMCallerID", "someone", 400, "0x80040203"),
    ];
    let before = emu.table("accounts").len();
    for (name, value, status, code) in cases {
        let who = c.get("WhoAmI", &[(name, value)]);
        assert_eq!((who.status, who.error_code()), (status, code.to_string()));
        let write = create(&c, json!({"name": "never"}), &[(name, value)]);
        assert_eq!(
            (write.status, write.error_code()),
            (status, code.to_string())
        );
    }
    assert_eq!(emu.table("accounts").len(), before, "nothing was written");

    // Callers without prvActOnBehalfOfAnotherUser: an application user and a plain user.
    for caller in [&u.restricted_application_user, &u.sales_user] {
        let restricted = Client {
            token: emu.issue_token_for(&caller.system_user_id),
            ..Client::new(&emu, Duration::from_secs(30))
        };
        let a = restricted.get("WhoAmI", &[("MSCRMCallerID", &u.admin.system_user_id)]);
        assert_eq!(a.status, 403, "{}", a.body);
        assert_eq!(a.error_code(), "0x8004A110");
        assert_eq!(
            a.json()["error"]["message"],
            "User does not have the privilege to act on behalf another user."
        );
        // Without the header the same caller is served as itself.
        let me = restricted.get("WhoAmI", &[]).json();
        assert_eq!(me["UserId"], caller.system_user_id.as_str());
    }
}

#[test]
fn both_headers_run_as_the_user_they_agree_on_and_otherwise_answer_501() {
    let (_emu, c, u) = start();
    let who = c.get(
        "WhoAmI",
        &[
            ("MSCRMCallerID", &u.sales_user.system_user_id),
            ("CallerObjectId", &u.sales_user.object_id),
        ],
    );
    assert_eq!(who.json()["UserId"], u.sales_user.system_user_id.as_str());
    let who = c.get(
        "WhoAmI",
        &[
            ("MSCRMCallerID", &u.admin.system_user_id),
            ("CallerObjectId", &u.sales_user.object_id),
        ],
    );
    assert_eq!(who.status, 501, "{}", who.body);
    assert!(who.body.contains("CallerObjectId"), "{}", who.body);
}

fn batch(c: &Client, body: &str, headers: &[(&str, &str)]) -> Answer {
    c.request(
        "POST",
        "$batch",
        "multipart/mixed; boundary=batch_1",
        body,
        headers,
    )
}

fn part(method_and_url: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut extra = String::new();
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    format!(
        "--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{method_and_url} HTTP/1.1\r\nContent-Type: application/json\r\n{extra}\r\n{body}\r\n"
    )
}

#[test]
fn in_a_batch_the_outer_headers_apply_to_every_request_and_a_part_may_name_its_own_user() {
    let (emu, c, u) = start();
    let body = [
        part("POST accounts", &[], r#"{"name":"Batch outer"}"#),
        part(
            "POST accounts",
            &[("MSCRMCallerID", &u.admin.system_user_id)],
            r#"{"name":"Batch inner"}"#,
        ),
        part("GET WhoAmI", &[], ""),
    ]
    .concat()
        + "--batch_1--\r\n";
    let a = batch(
        &c,
        &body,
        &[("CallerObjectId", u.sales_user.object_id.as_str())],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let by_name = |name: &str| {
        emu.table("accounts")
            .into_iter()
            .find(|r| r["name"] == name)
            .expect("created in the batch")
    };
    let outer = by_name("Batch outer");
    assert_eq!(
        outer["_createdby_value"],
        u.sales_user.system_user_id.as_str()
    );
    assert_eq!(
        outer["_createdonbehalfby_value"],
        u.application_user.system_user_id.as_str()
    );
    let inner = by_name("Batch inner");
    assert_eq!(inner["_createdby_value"], u.admin.system_user_id.as_str());
    assert_eq!(
        inner["_createdonbehalfby_value"],
        u.application_user.system_user_id.as_str()
    );
    assert!(
        a.body
            .contains(&format!("\"UserId\":\"{}\"", u.sales_user.system_user_id)),
        "{}",
        a.body
    );
}

#[test]
fn in_a_batch_a_refused_part_fails_alone_with_continue_on_error() {
    let (emu, c, u) = start();
    let body = [
        part(
            "POST accounts",
            &[("MSCRMCallerID", &u.disabled_user.system_user_id)],
            r#"{"name":"Refused part"}"#,
        ),
        part("POST accounts", &[], r#"{"name":"Accepted part"}"#),
    ]
    .concat()
        + "--batch_1--\r\n";
    let a = batch(&c, &body, &[("Prefer", "odata.continue-on-error")]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("HTTP/1.1 400") && a.body.contains("0x80040225"),
        "{}",
        a.body
    );
    let names: Vec<Value> = emu
        .table("accounts")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert!(names.contains(&json!("Accepted part")));
    assert!(!names.contains(&json!("Refused part")));

    // Refused on the batch request itself: the whole batch is refused.
    let restricted = Client {
        token: emu.issue_token_for(&u.sales_user.system_user_id),
        ..Client::new(&emu, Duration::from_secs(30))
    };
    let a = batch(
        &restricted,
        &body,
        &[("MSCRMCallerID", u.admin.system_user_id.as_str())],
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.error_code(), "0x8004A110");
}
