//! The emulator over HTTP, as a client sees it.

use std::time::Duration;

use dataverse_emulator::{Config, Emulator, Fault, RateLimit};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client, answer};

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(30))
}

/// Calls this file's tests share (a trait, not an inherent impl: other files of the binary
/// name theirs the same).
trait Calls {
    fn send(&self, method: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> Answer;
    fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Answer;
}

impl Calls for Client {
    fn send(&self, method: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
        self.request(method, path, "application/json", &body.to_string(), headers)
    }

    fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.delete_with(path, headers)
    }
}

fn start(rows: usize) -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: rows,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(30));
    (emu, c)
}

fn id_from_entity_id(a: &Answer) -> String {
    let h = a.header("OData-EntityId").expect("OData-EntityId header");
    h.rsplit('(')
        .next()
        .unwrap_or("")
        .trim_end_matches(')')
        .to_string()
}

#[test]
fn token_from_the_token_endpoint_opens_the_web_api_and_expires() {
    let (emu, c) = start(5);
    let creds = emu.credentials();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        creds.client_id,
        creds.client_secret,
        form_enc(&emu.default_scope())
    );
    let t = answer(
        agent()
            .post(emu.token_url())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form.as_bytes()),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    let token = t.json()["access_token"].as_str().unwrap().to_string();
    let who = answer(
        agent()
            .get(format!("{}/WhoAmI()", emu.web_api_url()))
            .header("Authorization", format!("Bearer {token}"))
            .call(),
    );
    assert_eq!(who.status, 200);
    assert_eq!(who.json()["UserId"], creds.application_user_id);

    let anonymous = answer(agent().get(format!("{}/WhoAmI", emu.web_api_url())).call());
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("WWW-Authenticate")
            .unwrap()
            .starts_with("Bearer authorization_uri=")
    );
    assert!(anonymous.json()["error"]["code"].is_string());

    emu.expire_tokens();
    let expired = answer(
        agent()
            .get(format!("{}/WhoAmI", emu.web_api_url()))
            .header("Authorization", format!("Bearer {token}"))
            .call(),
    );
    assert_eq!(expired.status, 401);
    drop(c);
}

fn form_enc(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

#[test]
fn whoami_user_is_a_systemuser_with_business_unit() {
    let (emu, c) = start(5);
    let who = c.get("WhoAmI", &[]).json();
    let user = c.get(
        &format!("systemusers({})?$select=fullname,domainname,internalemailaddress,_businessunitid_value", who["UserId"].as_str().unwrap()),
        &[],
    );
    assert_eq!(user.status, 200);
    let u = user.json();
    assert_eq!(u["_businessunitid_value"], who["BusinessUnitId"]);
    assert!(u["fullname"].as_str().unwrap().len() > 1);
    assert!(u["domainname"].as_str().unwrap().contains('@'));
    assert_eq!(
        emu.credentials().application_user_id,
        who["UserId"].as_str().unwrap()
    );
}

#[test]
fn paging_visits_every_row_once_in_primary_key_order() {
    let (emu, c) = start(23);
    let mut ids = Vec::new();
    let mut next = Some("accounts?$select=name".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let a = c.get(&path, &[("Prefer", "odata.maxpagesize=5")]);
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("Preference-Applied"), Some("odata.maxpagesize=5"));
        let j = a.json();
        for r in j["value"].as_array().unwrap() {
            ids.push(r["accountid"].as_str().unwrap().to_string());
        }
        next = j["@odata.nextLink"].as_str().map(|l| {
            assert!(
                l.starts_with(&c.api),
                "nextLink built from the request's host: {l}"
            );
            assert!(l.contains("$skiptoken=%3Ccookie%20pagenumber="), "{l}");
            l[c.api.len() + 1..].to_string()
        });
        pages += 1;
    }
    assert_eq!(pages, 5);
    let stored: Vec<String> = emu
        .table("accounts")
        .iter()
        .map(|r| r["accountid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, stored);
}

#[test]
fn paging_with_orderby_and_filter_keeps_order_and_count() {
    let (_emu, c) = start(40);
    let mut names = Vec::new();
    let mut next = Some("contacts?$select=fullname&$filter=statecode%20eq%200&$orderby=fullname%20desc,contactid&$count=true".to_string());
    let mut count = None;
    while let Some(path) = next {
        let j = c.get(&path, &[("Prefer", "odata.maxpagesize=7")]).json();
        count = count.or(j["@odata.count"].as_u64());
        names.extend(
            j["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["fullname"].as_str().unwrap().to_lowercase()),
        );
        next = j["@odata.nextLink"]
            .as_str()
            .map(|l| l[c.api.len() + 1..].to_string());
    }
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted);
    assert_eq!(count, Some(names.len() as u64));
    let plain = c.get("contacts/$count?$filter=statecode%20eq%200", &[]);
    assert_eq!(plain.body, names.len().to_string());
    assert!(
        plain
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
}

#[test]
fn top_limits_without_a_next_link_and_form_encoded_queries_work() {
    let (_emu, c) = start(20);
    let a = c
        .get(
            "accounts?%24select=name&%24top=3&%24filter=name+ne+null",
            &[],
        )
        .json();
    assert_eq!(a["value"].as_array().unwrap().len(), 3);
    assert!(a.get("@odata.nextLink").is_none());
    assert_eq!(
        a["@odata.context"],
        format!("{}/$metadata#accounts(name)", c.api)
    );
}

#[test]
fn filters_cover_functions_literals_lookups_and_navigation() {
    let (emu, c) = start(30);
    let created = c.send(
        "POST",
        "accounts",
        json!({"name": "O'Brien & Sons", "revenue": 100, "creditonhold": true}),
        &[],
    );
    let id = id_from_entity_id(&created);
    let names = |filter: &str| -> Vec<String> {
        let a = c.get(
            &format!(
                "accounts?$select=name&$filter={}",
                filter.replace(' ', "%20").replace('&', "%26")
            ),
            &[],
        );
        assert_eq!(a.status, 200, "{filter}: {}", a.body);
        a.json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("name eq 'O''Brien & Sons'"), vec!["O'Brien & Sons"]);
    assert_eq!(
        names("contains(name,'brien &') and revenue eq 100"),
        vec!["O'Brien & Sons"]
    );
    assert_eq!(names(&format!("accountid eq {id}")), vec!["O'Brien & Sons"]);
    assert_eq!(
        names(&format!("accountid eq '{id}'")),
        vec!["O'Brien & Sons"]
    );
    assert!(
        names("startswith(name,'o''bri') and creditonhold eq true and not (revenue gt 100)")
            .contains(&"O'Brien & Sons".to_string())
    );
    assert!(names("createdon ge 2020-01-01T00:00:00Z and createdon lt 2999-01-01").len() > 30);
    let all = emu.table("accounts");
    let with_contact: Vec<&Value> = all
        .iter()
        .filter(|r| !r["_primarycontactid_value"].is_null())
        .collect();
    let cid = with_contact[0]["_primarycontactid_value"].as_str().unwrap();
    let by_lookup = names(&format!("_primarycontactid_value eq {cid}"));
    assert!(by_lookup.contains(&with_contact[0]["name"].as_str().unwrap().to_string()));
    let nav = c
        .get(
            "accounts?$select=name&$filter=primarycontactid/fullname%20ne%20null",
            &[],
        )
        .json();
    assert_eq!(nav["value"].as_array().unwrap().len(), with_contact.len());
    let nulls = names("_primarycontactid_value eq null");
    assert_eq!(nulls.len(), all.len() - with_contact.len());
}

#[test]
fn bad_requests_get_dataverse_errors() {
    let (_emu, c) = start(5);
    let cases = [
        ("acounts", 404, "0x80060888"),
        ("accounts?$filter=name%20eqq%20'x'", 400, "0x80060888"),
        ("accounts?$filter=name%20eq%20'O'Bryan'", 400, "0x80060888"),
        ("accounts?$select=bogus", 400, "0x80060888"),
        ("accounts?$filter=name%20eq%201", 400, "0x80060888"),
        ("accounts?$skip=2", 400, "0x80060888"),
        (
            "accounts(00000000-0000-0000-0000-000000000001)",
            404,
            "0x80040217",
        ),
        ("accounts(accountnumber='nope')", 404, "0x80060891"),
        ("accounts(not-a-key)", 400, "0x80060888"),
        ("accounts?$skiptoken=garbage", 400, "0x80060888"),
    ];
    for (path, status, code) in cases {
        let a = c.get(path, &[]);
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (status, code),
            "{path}: {}",
            a.body
        );
    }
    let unterminated = c.get("accounts?$filter=name%20eq%20'O'Bryan'", &[]).json();
    assert!(
        unterminated["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unterminated literal")
    );
    let bad_json = c.send("POST", "accounts", json!("just a string"), &[]);
    assert_eq!(bad_json.status, 400);
    let bogus = c.send("POST", "accounts", json!({"name": "x", "bogus": 1}), &[]);
    assert_eq!(
        bogus.json()["error"]["message"],
        "Could not find a property named 'bogus' on type 'Microsoft.Dynamics.CRM.account'."
    );
    let collection_patch = c.send("PATCH", "accounts", json!({}), &[]);
    assert_eq!(collection_patch.status, 405);
}

#[test]
fn create_update_upsert_delete_follow_the_documented_statuses() {
    let (emu, c) = start(5);
    let created = c.send(
        "POST",
        "accounts",
        json!({"name": "A", "accountnumber": "K-1"}),
        &[],
    );
    assert_eq!(created.status, 204);
    let id = id_from_entity_id(&created);
    let rep = c.send(
        "POST",
        "accounts?$select=name",
        json!({"name": "B"}),
        &[("Prefer", "return=representation")],
    );
    assert_eq!(rep.status, 201);
    assert_eq!(
        rep.header("Preference-Applied"),
        Some("return=representation")
    );
    assert_eq!(rep.json()["name"], "B");
    assert!(rep.header("ETag").unwrap().starts_with("W/\""));

    let dup = c.send(
        "POST",
        "accounts",
        json!({"name": "C", "accountnumber": "K-1"}),
        &[],
    );
    assert_eq!((dup.status, dup.error_code().as_str()), (412, "0x80040237"));
    let dup_id = c.send(
        "POST",
        "accounts",
        json!({"name": "C", "accountid": id}),
        &[],
    );
    assert_eq!(
        (dup_id.status, dup_id.error_code().as_str()),
        (412, "0x80040237")
    );

    let before = c.get(&format!("accounts({id})?$select=name"), &[]).json();
    let etag = before["@odata.etag"].as_str().unwrap().to_string();
    let upd = c.send(
        "PATCH",
        &format!("accounts({id})"),
        json!({"name": "A2"}),
        &[("If-Match", &etag)],
    );
    assert_eq!(upd.status, 204);
    let stale = c.send(
        "PATCH",
        &format!("accounts({id})"),
        json!({"name": "A3"}),
        &[("If-Match", &etag)],
    );
    assert_eq!(
        (stale.status, stale.error_code().as_str()),
        (412, "0x80060882")
    );
    let after = c.get(&format!("accounts({id})?$select=name"), &[]).json();
    assert_eq!(after["name"], "A2");
    assert_ne!(
        after["@odata.etag"], before["@odata.etag"],
        "version increments per write"
    );

    let fresh = "11111111-2222-4333-8444-555555555555";
    let only_update = c.send(
        "PATCH",
        &format!("accounts({fresh})"),
        json!({"name": "U"}),
        &[("If-Match", "*")],
    );
    assert_eq!(
        (only_update.status, only_update.error_code().as_str()),
        (404, "0x80040217")
    );
    let upsert = c.send(
        "PATCH",
        &format!("accounts({fresh})"),
        json!({"name": "U"}),
        &[("Prefer", "return=representation")],
    );
    assert_eq!(upsert.status, 201);
    let upsert2 = c.send(
        "PATCH",
        &format!("accounts({fresh})"),
        json!({"name": "U2"}),
        &[("Prefer", "return=representation")],
    );
    assert_eq!(upsert2.status, 200);
    let only_create = c.send(
        "PATCH",
        &format!("accounts({fresh})"),
        json!({"name": "U3"}),
        &[("If-None-Match", "*")],
    );
    assert_eq!(
        (only_create.status, only_create.error_code().as_str()),
        (412, "0x80040237")
    );

    let by_key = c.send(
        "PATCH",
        "accounts(accountnumber='K-9')",
        json!({"name": "Keyed"}),
        &[],
    );
    assert_eq!(by_key.status, 204);
    assert!(
        by_key
            .header("OData-EntityId")
            .unwrap()
            .ends_with("accounts(accountnumber='K-9')")
    );
    let keyed = c
        .get(
            "accounts(accountnumber='K-9')?$select=name,accountnumber",
            &[],
        )
        .json();
    assert_eq!(
        (keyed["name"].as_str(), keyed["accountnumber"].as_str()),
        (Some("Keyed"), Some("K-9"))
    );

    let stale_delete = c.delete(&format!("accounts({id})"), &[("If-Match", &etag)]);
    assert_eq!(stale_delete.status, 412);
    assert_eq!(c.delete(&format!("accounts({id})"), &[]).status, 204);
    let again = c.delete(&format!("accounts({id})"), &[]);
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (404, "0x80040217")
    );
    assert!(!emu.table("accounts").iter().any(|r| r["accountid"] == id));
    assert!(emu.changes_since(0).len() >= 6);
}

#[test]
fn binds_refs_and_deep_insert_link_rows() {
    let (emu, c) = start(5);
    let contact = id_from_entity_id(&c.send(
        "POST",
        "contacts",
        json!({"firstname": "Ada", "lastname": "Lovelace"}),
        &[],
    ));
    let acc = c.send(
        "POST",
        "accounts",
        json!({"name": "Bound", "primarycontactid@odata.bind": format!("/contacts({contact})")}),
        &[],
    );
    let acc = id_from_entity_id(&acc);
    let got = c
        .get(
            &format!("accounts({acc})?$select=name&$expand=primarycontactid($select=fullname)"),
            &[],
        )
        .json();
    assert_eq!(got["primarycontactid"]["fullname"], "Ada Lovelace");
    assert_eq!(
        got["@odata.context"],
        format!(
            "{}/$metadata#accounts(name,primarycontactid(fullname))/$entity",
            c.api
        )
    );

    let task = id_from_entity_id(&c.send("POST", "tasks", json!({"subject": "T"}), &[]));
    let assoc = c.send(
        "POST",
        &format!("accounts({acc})/Account_Tasks/$ref"),
        json!({"@odata.id": format!("{}/tasks({task})", c.api)}),
        &[],
    );
    assert_eq!(assoc.status, 204);
    let tasks = c
        .get(
            &format!("accounts({acc})/Account_Tasks?$select=subject"),
            &[],
        )
        .json();
    assert_eq!(tasks["value"].as_array().unwrap().len(), 1);
    let dis = c.delete(&format!("accounts({acc})/Account_Tasks({task})/$ref"), &[]);
    assert_eq!(dis.status, 204);
    assert_eq!(
        c.get(&format!("accounts({acc})/Account_Tasks/$count"), &[])
            .body,
        "0"
    );
    let clear = c.delete(&format!("accounts({acc})/primarycontactid/$ref"), &[]);
    assert_eq!(clear.status, 204);
    assert!(
        c.get(
            &format!("accounts({acc})?$select=_primarycontactid_value"),
            &[]
        )
        .json()["_primarycontactid_value"]
            .is_null()
    );

    let deep = c.send(
        "POST",
        "accounts",
        json!({"name": "Deep", "primarycontactid": {"firstname": "Grace", "lastname": "Hopper"},
               "opportunity_customer_accounts": [{"name": "Opp", "Opportunity_Tasks": [{"subject": "Nested"}]}]}),
        &[],
    );
    assert_eq!(deep.status, 204);
    let deep_id = id_from_entity_id(&deep);
    let back = c.get(&format!("accounts({deep_id})?$select=name&$expand=primarycontactid($select=fullname),opportunity_customer_accounts($select=name)"), &[]).json();
    assert_eq!(back["primarycontactid"]["fullname"], "Grace Hopper");
    assert_eq!(back["opportunity_customer_accounts"][0]["name"], "Opp");
    assert!(emu.table("tasks").iter().any(|t| t["subject"] == "Nested"));

    let bad_bind = c.send("POST", "accounts", json!({"name": "x", "primarycontactid@odata.bind": "/contacts(00000000-0000-0000-0000-000000000009)"}), &[]);
    assert_eq!(bad_bind.status, 404);
    assert!(
        !emu.table("accounts").iter().any(|r| r["name"] == "x"),
        "a failed create leaves nothing behind"
    );
}

#[test]
fn annotations_and_conditional_get() {
    let (_emu, c) = start(10);
    let page = c.get(
        "accounts?$select=name,revenue,statecode,_ownerid_value&$top=1",
        &[("Prefer", "odata.include-annotations=\"*\"")],
    );
    let row = &page.json()["value"][0];
    assert_eq!(
        row["statecode@OData.Community.Display.V1.FormattedValue"]
            .as_str()
            .map(|s| s == "Active" || s == "Inactive"),
        Some(true)
    );
    assert_eq!(
        row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
        "systemuser"
    );
    assert_eq!(
        row["_ownerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"],
        "ownerid"
    );
    assert!(
        row["revenue@OData.Community.Display.V1.FormattedValue"]
            .as_str()
            .unwrap()
            .starts_with('$')
    );
    let id = row["accountid"].as_str().unwrap();
    let first = c.get(&format!("accounts({id})?$select=name"), &[]);
    let etag = first.header("ETag").unwrap().to_string();
    let not_modified = c.get(
        &format!("accounts({id})?$select=name"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(not_modified.status, 304);
}

#[test]
fn metadata_endpoints_describe_the_tables() {
    let (_emu, c) = start(3);
    let e = c.get("EntityDefinitions(LogicalName='contact')?$select=LogicalName,EntitySetName,ObjectTypeCode,OwnershipType,PrimaryNameAttribute&$expand=ManyToOneRelationships($select=ReferencingEntityNavigationPropertyName,ReferencedEntity)", &[]).json();
    assert_eq!(e["EntitySetName"], "contacts");
    assert_eq!(e["ObjectTypeCode"], 2);
    assert_eq!(e["OwnershipType"], "UserOwned");
    assert!(
        e["ManyToOneRelationships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ReferencingEntityNavigationPropertyName"] == "parentcustomerid_account")
    );
    let lookup = c
        .get(
            "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='parentcustomerid')",
            &[],
        )
        .json();
    assert_eq!(lookup["Targets"], json!(["account", "contact"]));
    assert_eq!(
        lookup["@odata.type"],
        "#Microsoft.Dynamics.CRM.LookupAttributeMetadata"
    );
    let list = c.get("EntityDefinitions?$select=LogicalName&$filter=OwnershipType%20eq%20Microsoft.Dynamics.CRM.OwnershipTypes'OrganizationOwned'", &[]).json();
    let names: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["LogicalName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "transactioncurrency",
            "product",
            "serviceendpoint",
            "sdkmessage",
            "sdkmessagefilter",
            "sdkmessageprocessingstep",
            "sdkmessageprocessingstepimage",
            "principalobjectaccess",
            "backgroundoperation",
            // The product catalog's unit groups, units, price lists and items (pricing.rs).
            "uomschedule",
            "uom",
            "pricelevel",
            "productpricelevel"
        ]
    );
    let csdl = c.get("$metadata", &[]);
    assert!(csdl.body.contains(r#"<EntityType Name="account" BaseType="mscrm.crmbaseentity"><Key><PropertyRef Name="accountid"/></Key>"#));
    assert!(
        csdl.body
            .contains(r#"<PropertyValue Property="Alias" String="accountnumber"/>"#)
    );
    let service = c.get("", &[]).json();
    assert!(
        service["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "new_projects")
    );
}

#[test]
fn service_protection_limit_answers_429_with_retry_after() {
    let emu = Emulator::start(
        Config {
            rows_per_table: 3,
            rate_limit: Some(RateLimit {
                requests: 3,
                window: Duration::from_secs(60),
            }),
            ..Config::default()
        },
        0,
    )
    .unwrap();
    let c = Client::new(&emu, Duration::from_secs(30));
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let a = c.get("WhoAmI", &[]);
        assert_eq!(a.status, 200);
        remaining.push(
            a.header("x-ms-ratelimit-burst-remaining-xrm-requests")
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, vec!["2", "1", "0"]);
    let limited = c.get("WhoAmI", &[]);
    assert_eq!(
        (limited.status, limited.error_code().as_str()),
        (429, "0x80072322")
    );
    let retry: u64 = limited.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    emu.set_rate_limit(None);
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
}

#[test]
fn injected_faults_hit_matching_requests_then_stop() {
    let (emu, c) = start(5);
    let f = emu.faults();
    f.throttle(1, 7);
    let t = c.get("WhoAmI", &[]);
    assert_eq!((t.status, t.header("Retry-After")), (429, Some("7")));
    f.inject_on(Fault::Unavailable, 1, "/accounts");
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert_eq!(c.get("accounts?$top=1", &[]).status, 503);
    f.bad_gateway(1);
    assert_eq!(c.get("WhoAmI", &[]).status, 502);
    f.malformed_json(1);
    let broken = c.get("WhoAmI", &[]);
    assert_eq!(broken.status, 200);
    assert!(serde_json::from_str::<Value>(&broken.body).is_err());
    f.delay(1, Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    f.cut_mid_body(1);
    let cut = c
        .agent
        .get(c.url("accounts"))
        .header("Authorization", format!("Bearer {}", c.token))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string());
    assert!(cut.is_err(), "a cut body is a transport error, got {cut:?}");
    assert_eq!(f.pending(), 0);
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    let recorded = emu.requests();
    assert!(recorded.iter().all(|r| r.header("authorization").is_some()));
    assert!(
        recorded
            .iter()
            .any(|r| r.path == "/api/data/v9.2/accounts?$top=1")
    );
}

#[test]
fn authorize_redirects_at_once_and_the_code_redeems_with_pkce() {
    let (emu, _c) = start(3);
    let creds = emu.credentials();
    let verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789";
    let no_redirects: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let scope = form_enc(&format!(
        "{}/user_impersonation offline_access",
        emu.base_url()
    ))
    .replace(' ', "%20");
    let url = format!(
        "{}?client_id={}&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&scope={scope}&state=s1&code_challenge={verifier}&code_challenge_method=plain&login_hint={}",
        emu.authorize_url(),
        creds.public_client_id,
        creds.username
    );
    let redirect = answer(no_redirects.get(url).call());
    assert_eq!(redirect.status, 302);
    let location = redirect.header("Location").unwrap().to_string();
    assert!(
        location.starts_with("http://localhost/cb?code=") && location.ends_with("&state=s1"),
        "{location}"
    );
    let code = location["http://localhost/cb?code=".len()..]
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let form = format!(
        "grant_type=authorization_code&client_id={}&code={code}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&code_verifier={verifier}",
        creds.public_client_id
    );
    let t = answer(
        agent()
            .post(emu.token_url())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form.as_bytes()),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    let body = t.json();
    assert!(body["refresh_token"].is_string());
    let who = answer(
        agent()
            .get(format!("{}/WhoAmI", emu.web_api_url()))
            .header(
                "Authorization",
                format!("Bearer {}", body["access_token"].as_str().unwrap()),
            )
            .call(),
    );
    assert_eq!(who.json()["UserId"], creds.user_id);
    let discovery = answer(
        agent()
            .get(format!(
                "{}/{}/v2.0/.well-known/openid-configuration",
                emu.base_url(),
                creds.tenant_id
            ))
            .call(),
    );
    assert_eq!(discovery.json()["token_endpoint"], emu.token_url());
}
