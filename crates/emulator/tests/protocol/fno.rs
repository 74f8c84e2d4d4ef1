//! The Finance and Operations OData service (`src/fno/`) over HTTP: company scoping, keys,
//! paging, queries, writes, `$batch`, `$metadata`, the token audience and the error shape.

use crate::support;

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};
use support::{Answer, agent, answer};

struct Fno {
    emu: Emulator,
    token: String,
    agent: ureq::Agent,
}

impl Fno {
    fn start() -> Fno {
        let emu = Emulator::start(
            Config {
                rows_per_table: 5,
                ..Config::default()
            },
            0,
        )
        .unwrap();
        let token = emu.issue_fno_token_for_tests();
        Fno {
            emu,
            token,
            agent: agent(Duration::from_secs(30)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/data/{path}", self.emu.fno_url().unwrap())
    }

    fn send(&self, method: &str, path: &str, body: Option<(&str, &str)>) -> Answer {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token));
        let req = match body {
            Some((ct, _)) => req.header("Content-Type", ct),
            None => req,
        };
        let req = req
            .body(body.map(|(_, b)| b.to_string()).unwrap_or_default())
            .unwrap();
        answer(self.agent.run(req))
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None)
    }

    fn write(&self, method: &str, path: &str, body: Value) -> Answer {
        self.send(method, path, Some(("application/json", &body.to_string())))
    }
}

fn accounts(a: &Answer) -> Vec<String> {
    a.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["CustomerAccount"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn reads_see_the_default_company_unless_cross_company() {
    let f = Fno::start();
    let own = f.get("CustomersV3");
    assert_eq!(own.status, 200, "{}", own.body);
    let rows = own.json()["value"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["dataAreaId"] == "usmf"));
    assert!(rows[0]["@odata.etag"].as_str().unwrap().starts_with("W/"));
    let all = f.get("CustomersV3?cross-company=true&$count=true");
    assert_eq!(all.json()["@odata.count"], 15);
    let usrt = f.get("CustomersV3?$filter=dataAreaId%20eq%20'usrt'&cross-company=true");
    assert_eq!(
        accounts(&usrt),
        ["US-001", "US-002", "US-003", "US-004", "US-005"]
    );
    // A key outside the default company is found only across companies.
    let key = "CustomersV3(dataAreaId='demf',CustomerAccount='DE-002')";
    assert_eq!(f.get(key).status, 404);
    let found = f.get(&format!("{key}?cross-company=true"));
    assert_eq!(found.json()["OrganizationName"], "Customer 2 of demf");
    // Every key field must be given.
    let partial = f.get("CustomersV3(CustomerAccount='US-001')");
    assert_eq!(partial.status, 400);
    assert!(
        partial.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dataAreaId")
    );
}

#[test]
fn paging_follows_the_next_link_with_skip() {
    let f = Fno::start();
    f.emu.set_fno_page_size(2);
    let mut url = "CustomersV3?cross-company=true&$select=CustomerAccount,dataAreaId".to_string();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = f.get(&url);
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(accounts(&page));
        match page.json()["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("$skip="), "{next}");
                url = next.split("/data/").nth(1).unwrap().to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 15);
    // $top is honoured across pages, and a page never carries unselected fields.
    let top = f.get("CustomersV3?$top=3");
    assert_eq!(accounts(&top).len(), 2);
    let next = top.json()["@odata.nextLink"].as_str().unwrap().to_string();
    let rest = f.get(next.split("/data/").nth(1).unwrap());
    assert_eq!(accounts(&rest).len(), 1);
    assert!(rest.json()["@odata.nextLink"].is_null());
}

#[test]
fn filters_order_and_select_as_documented() {
    let f = Fno::start();
    let q = f.get("CustomersV3?$filter=OrganizationName%20eq%20'*3*'%20or%20CreditLimit%20ge%205000&$orderby=CustomerAccount%20desc&$select=CustomerAccount");
    assert_eq!(accounts(&q), ["US-005", "US-003"]);
    assert_eq!(q.json()["value"][0].as_object().unwrap().len(), 2); // + @odata.etag
    let in_op = f.get("CustomersV3?$filter=CustomerAccount%20in%20('US-001')");
    assert_eq!(in_op.status, 400);
    assert_eq!(f.get("CustomersV3?$expand=Anything").status, 501);
    let unknown = f.get("CustomersV3?$select=Nope");
    assert!(
        unknown.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Nope'")
    );
    assert_eq!(f.get("CustomersV3/$count").body, "5");
    assert_eq!(f.get("Nothing").status, 404);
}

#[test]
fn writes_are_company_scoped_and_refuse_duplicates() {
    let f = Fno::start();
    let made = f.write(
        "POST",
        "CustomersV3",
        json!({"CustomerAccount": "US-100", "OrganizationName": "Fabrikam", "CustomerGroupId": "10"}),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.json()["dataAreaId"], "usmf");
    assert!(
        made.header("OData-EntityId")
            .unwrap()
            .ends_with("CustomersV3(dataAreaId='usmf',CustomerAccount='US-100')")
    );
    let again = f.write("POST", "CustomersV3", json!({"CustomerAccount": "US-100"}));
    assert_eq!(again.status, 400);
    let error = &again.json()["error"];
    assert_eq!(error["code"], "");
    assert!(
        error["innererror"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    // A number sequence fills an omitted account.
    let numbered = f.write(
        "POST",
        "CustomersV3",
        json!({"OrganizationName": "Numbered", "dataAreaId": "USRT"}),
    );
    assert_eq!(numbered.json()["dataAreaId"], "usrt");
    assert!(
        numbered.json()["CustomerAccount"]
            .as_str()
            .unwrap()
            .starts_with("CUST-")
    );
    let key = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-100')";
    let patched = f.write("PATCH", key, json!({"CreditLimit": 2500}));
    assert_eq!(patched.status, 204, "{}", patched.body);
    let row = f
        .emu
        .fno_table("CustomersV3")
        .into_iter()
        .find(|r| r["CustomerAccount"] == "US-100")
        .unwrap();
    assert_eq!(row["CreditLimit"], 2500.0);
    assert_eq!(
        f.write("PATCH", key, json!({"CustomerAccount": "US-101"}))
            .status,
        400
    );
    assert_eq!(f.write("PATCH", key, json!({"Nope": 1})).status, 400);
    assert_eq!(f.send("DELETE", key, None).status, 204);
    assert_eq!(f.send("DELETE", key, None).status, 404);
    // A line needs its order.
    let orphan = f.write(
        "POST",
        "SalesOrderLinesV2",
        json!({"SalesOrderNumber": "NONE", "LineNumber": 1}),
    );
    assert_eq!(orphan.status, 400);
}

#[test]
fn a_failed_change_set_writes_nothing() {
    let f = Fno::start();
    let body = |second: &str| {
        format!(
            "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n\
--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
POST CustomersV3 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"CustomerAccount\":\"B-1\"}}\r\n\
--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
POST CustomersV3 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"CustomerAccount\":\"{second}\"}}\r\n\
--changeset_1--\r\n\
--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
GET CustomersV3/$count HTTP/1.1\r\n\r\n\r\n--batch_1--\r\n"
        )
    };
    let ct = "multipart/mixed; boundary=batch_1";
    let failed = f.send("POST", "$batch", Some((ct, &body("US-001"))));
    assert_eq!(failed.status, 200, "{}", failed.body);
    assert!(failed.body.contains("HTTP/1.1 400"), "{}", failed.body);
    assert!(!failed.body.contains("HTTP/1.1 201"), "{}", failed.body);
    assert!(
        f.emu
            .fno_table("CustomersV3")
            .iter()
            .all(|r| r["CustomerAccount"] != "B-1")
    );
    let ok = f.send("POST", "$batch", Some((ct, &body("B-2"))));
    assert_eq!(ok.body.matches("HTTP/1.1 201").count(), 2, "{}", ok.body);
    assert!(ok.body.contains("\r\n\r\n7\r\n"), "{}", ok.body);
    let rows = f.emu.fno_table("CustomersV3");
    assert!(rows.iter().any(|r| r["CustomerAccount"] == "B-1"));
    assert!(rows.iter().any(|r| r["CustomerAccount"] == "B-2"));
}

#[test]
fn metadata_and_service_document_list_the_entities() {
    let f = Fno::start();
    let csdl = f.get("$metadata");
    assert_eq!(csdl.status, 200);
    assert!(csdl.body.contains("<EntityType Name=\"CustomerV3\"><Key><PropertyRef Name=\"dataAreaId\"/><PropertyRef Name=\"CustomerAccount\"/></Key>"));
    assert!(csdl.body.contains("<EntitySet Name=\"SalesOrderLinesV2\" EntityType=\"Microsoft.Dynamics.DataEntities.SalesOrderLineV2\"/>"));
    let root = f.get("");
    let names: Vec<String> = root.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"SalesOrderHeadersV2".to_string()),
        "{names:?}"
    );
    assert_eq!(names.len(), 5);
}

#[test]
fn a_dataverse_token_is_refused_and_the_token_service_issues_for_fno() {
    let f = Fno::start();
    let dataverse = Fno {
        token: f.emu.issue_token_for_tests(),
        emu: Emulator::start(Config::default(), 0).unwrap(),
        agent: agent(Duration::from_secs(30)),
    };
    // The other emulator's URL is not used: only its token's audience matters here.
    let refused = answer(
        f.agent.run(
            ureq::http::Request::builder()
                .uri(f.url("CustomersV3"))
                .header("Authorization", format!("Bearer {}", dataverse.token))
                .body(String::new())
                .unwrap(),
        ),
    );
    assert_eq!(refused.status, 401);
    let creds = f.emu.credentials();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}/.default",
        creds.client_id,
        creds.client_secret,
        f.emu.fno_url().unwrap()
    );
    let token = answer(
        f.agent.run(
            ureq::http::Request::builder()
                .method("POST")
                .uri(f.emu.token_url())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form)
                .unwrap(),
        ),
    );
    assert_eq!(token.status, 200, "{}", token.body);
    let access = token.json()["access_token"].as_str().unwrap().to_string();
    let ok = answer(
        f.agent.run(
            ureq::http::Request::builder()
                .uri(f.url("CustomersV3?$top=1"))
                .header("Authorization", format!("Bearer {access}"))
                .body(String::new())
                .unwrap(),
        ),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn the_request_limit_answers_429_with_retry_after() {
    let f = Fno::start();
    f.emu.set_rate_limit(Some(dataverse_emulator::RateLimit {
        requests: 2,
        window: Duration::from_secs(60),
    }));
    assert_eq!(f.get("CustomersV3?$top=1").status, 200);
    assert_eq!(f.get("CustomersV3?$top=1").status, 200);
    let throttled = f.get("CustomersV3?$top=1");
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("Retry-After").is_some());
    assert_eq!(throttled.json()["error"]["code"], "");
}
