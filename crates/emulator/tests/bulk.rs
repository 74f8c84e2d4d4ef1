//! `$batch`, FetchXML and change tracking over HTTP, as a client sees them.

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    agent: ureq::Agent,
    api: String,
    token: String,
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("transport error");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

impl Client {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/{}", self.api, path)
        };
        let mut req = self
            .agent
            .get(url)
            .header("Authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.call())
    }

    fn post(&self, path: &str, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .agent
            .post(format!("{}/{}", self.api, path))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", content_type);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.send(body.as_bytes()))
    }

    fn delete(&self, path: &str) -> Answer {
        answer(
            self.agent
                .delete(format!("{}/{}", self.api, path))
                .header("Authorization", format!("Bearer {}", self.token))
                .call(),
        )
    }

    fn batch(&self, body: &str, headers: &[(&str, &str)]) -> Answer {
        self.post("$batch", "multipart/mixed;boundary=batch_t", body, headers)
    }
}

fn start_with(config: Config) -> (Emulator, Client) {
    let emu = Emulator::start(config, 0).expect("emulator starts");
    let c = Client {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into(),
        api: emu.web_api_url(),
        token: emu.issue_token_for_tests(),
    };
    (emu, c)
}

fn start(rows: usize) -> (Emulator, Client) {
    start_with(Config {
        rows_per_table: rows,
        ..Config::default()
    })
}

/// One `application/http` part.
fn part(method: &str, url: &str, content_id: Option<&str>, headers: &[&str], body: &str) -> String {
    let mut s =
        String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(c) = content_id {
        s.push_str(&format!("Content-ID: {c}\r\n"));
    }
    s.push_str(&format!("\r\n{method} {url} HTTP/1.1\r\n"));
    if !body.is_empty() {
        s.push_str("Content-Type: application/json; type=entry\r\n");
    }
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.push_str("\r\n");
    s
}

fn batch_body(items: &[String]) -> String {
    let mut s = String::new();
    for i in items {
        s.push_str("--batch_t\r\n");
        s.push_str(i);
    }
    s.push_str("--batch_t--\r\n");
    s
}

fn changeset(name: &str, parts: &[String]) -> String {
    let mut s = format!("Content-Type: multipart/mixed; boundary=\"{name}\"\r\n\r\n");
    for p in parts {
        s.push_str(&format!("--{name}\r\n"));
        s.push_str(p);
    }
    s.push_str(&format!("--{name}--\r\n\r\n"));
    s
}

/// Status codes of the inner responses, in order (change set parts included).
fn inner_statuses(body: &str) -> Vec<u16> {
    body.lines()
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .filter_map(|l| l.get(..3)?.parse().ok())
        .collect()
}

fn count_named(c: &Client, set: &str, field: &str, value: &str) -> usize {
    let a = c.get(
        &format!("{set}?$select={field}&$filter={field}%20eq%20'{value}'"),
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["value"].as_array().map_or(0, Vec::len)
}

#[test]
fn batch_without_change_set_answers_each_part_with_documented_framing() {
    let (_emu, c) = start(5);
    let body = batch_body(&[
        part(
            "POST",
            "/api/data/v9.2/tasks",
            None,
            &[],
            r#"{"subject":"Task 1 in batch"}"#,
        ),
        part(
            "GET",
            "tasks?$select=subject&$filter=subject%20eq%20'Task%201%20in%20batch'",
            None,
            &[],
            "",
        ),
    ]);
    let a = c.batch(&body, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let ct = a.header("content-type").unwrap_or_default();
    let boundary = ct
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("content type {ct}"));
    assert!(boundary.starts_with("batchresponse_"), "{boundary}");
    assert!(a.body.starts_with(&format!("--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nLocation: ")), "{}", a.body);
    assert!(
        a.body.contains("OData-EntityId: http://127.0.0.1:"),
        "{}",
        a.body
    );
    assert!(a.body.contains("HTTP/1.1 200 OK\r\nContent-Type: application/json; odata.metadata=minimal; odata.streaming=true\r\nOData-Version: 4.0\r\n"), "{}", a.body);
    assert!(
        a.body.contains("\"subject\":\"Task 1 in batch\""),
        "{}",
        a.body
    );
    assert!(a.body.ends_with(&format!("--{boundary}--\r\n")));
    assert_eq!(inner_statuses(&a.body), vec![204, 200]);
}

#[test]
fn change_set_with_a_failing_item_rolls_back_and_leaves_no_trace() {
    let (emu, c) = start(5);
    let before_tasks = emu.table("tasks").len();
    let version_log = emu.changes_since(0).len();
    let long = "x".repeat(300);
    let cs = changeset(
        "changeset_a",
        &[
            part(
                "POST",
                "tasks",
                Some("1"),
                &[],
                r#"{"subject":"rolled back 1"}"#,
            ),
            part(
                "POST",
                "tasks",
                Some("2"),
                &[],
                r#"{"subject":"rolled back 2"}"#,
            ),
            part(
                "POST",
                "tasks",
                Some("3"),
                &[],
                &format!(r#"{{"subject":"{long}"}}"#),
            ),
        ],
    );
    let a = c.batch(&batch_body(&[cs]), &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body
            .contains("Content-Type: multipart/mixed; boundary=changesetresponse_"),
        "{}",
        a.body
    );
    assert_eq!(
        inner_statuses(&a.body),
        vec![400],
        "only the failing part is listed"
    );
    assert!(a.body.contains("Content-ID: 3\r\n"), "{}", a.body);
    assert!(a.body.contains("0x80044331"), "{}", a.body);
    assert!(a.body.contains("REQ_ID: "), "{}", a.body);
    assert_eq!(emu.table("tasks").len(), before_tasks);
    assert_eq!(count_named(&c, "tasks", "subject", "rolled%20back%201"), 0);
    assert_eq!(
        emu.changes_since(0).len(),
        version_log,
        "the change log forgets the rolled-back writes"
    );
}

#[test]
fn change_set_that_updates_and_deletes_restores_rows_and_lookups_on_rollback() {
    let (emu, c) = start(5);
    let accounts = emu.table("accounts");
    let acc = accounts[0]["accountid"].as_str().unwrap().to_string();
    let name = accounts[0]["name"].as_str().unwrap().to_string();
    let pointing_before = emu
        .table("contacts")
        .iter()
        .filter(|r| r["_parentcustomerid_value"] == acc.as_str())
        .count();
    let cs = changeset(
        "changeset_b",
        &[
            part(
                "PATCH",
                &format!("accounts({acc})"),
                Some("1"),
                &[],
                r#"{"name":"renamed"}"#,
            ),
            part("DELETE", &format!("accounts({acc})"), Some("2"), &[], ""),
            part(
                "DELETE",
                "accounts(00000000-0000-0000-0000-00000000dead)",
                Some("3"),
                &[],
                "",
            ),
        ],
    );
    let a = c.batch(&batch_body(&[cs]), &[]);
    assert_eq!(a.status, 404, "{}", a.body);
    let back = c.get(&format!("accounts({acc})?$select=name"), &[]);
    assert_eq!(back.status, 200);
    assert_eq!(back.json()["name"], name.as_str());
    let pointing_after = emu
        .table("contacts")
        .iter()
        .filter(|r| r["_parentcustomerid_value"] == acc.as_str())
        .count();
    assert_eq!(pointing_after, pointing_before);
}

#[test]
fn content_id_references_bind_later_items_to_created_rows() {
    let (emu, c) = start(3);
    let cs = changeset(
        "changeset_c",
        &[
            part(
                "POST",
                "http://127.0.0.1:1/api/data/v9.2/contacts",
                Some("1"),
                &[],
                r#"{"firstname":"Ref","lastname":"Target"}"#,
            ),
            part(
                "POST",
                "accounts",
                Some("2"),
                &[],
                r#"{"name":"Ref Co","primarycontactid@odata.bind":"$1"}"#,
            ),
            part(
                "PUT",
                "$1/lastname",
                Some("3"),
                &[],
                r#"{"value":"Renamed"}"#,
            ),
            part(
                "POST",
                "tasks",
                Some("4"),
                &["Prefer: return=representation"],
                r#"{"subject":"rep"}"#,
            ),
        ],
    );
    let a = c.batch(&batch_body(&[cs]), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(inner_statuses(&a.body), vec![204, 204, 204, 201]);
    for id in ["1", "2", "3", "4"] {
        assert!(
            a.body.contains(&format!("Content-ID: {id}\r\n")),
            "{}",
            a.body
        );
    }
    assert!(
        a.body.contains("\"subject\":\"rep\""),
        "representation returned: {}",
        a.body
    );
    let acc = emu
        .table("accounts")
        .into_iter()
        .find(|r| r["name"] == "Ref Co")
        .expect("account created");
    let contact_id = acc["_primarycontactid_value"].as_str().unwrap().to_string();
    let contact = c.get(&format!("contacts({contact_id})?$select=lastname"), &[]);
    assert_eq!(contact.json()["lastname"], "Renamed");
    // A reference to an unknown Content-ID is a 400 with the documented message.
    let bad = batch_body(&[changeset(
        "changeset_d",
        &[part(
            "POST",
            "accounts",
            Some("1"),
            &[],
            r#"{"name":"x","primarycontactid@odata.bind":"$9"}"#,
        )],
    )]);
    let a = c.batch(&bad, &[]);
    assert_eq!(a.status, 400);
    assert!(
        a.body
            .contains("Content-ID Reference: '$9' does not exist in the batch context."),
        "{}",
        a.body
    );
}

#[test]
fn without_continue_on_error_the_batch_stops_at_the_first_failure() {
    let (_emu, c) = start(3);
    let items = [
        part("POST", "tasks", None, &[], r#"{"subject":"coe good 1"}"#),
        part("POST", "tasks", None, &[], r#"{"bogus":1}"#),
        part("POST", "tasks", None, &[], r#"{"subject":"coe good 2"}"#),
    ];
    let a = c.batch(&batch_body(&items), &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(inner_statuses(&a.body), vec![204, 400]);
    assert_eq!(count_named(&c, "tasks", "subject", "coe%20good%201"), 1);
    assert_eq!(count_named(&c, "tasks", "subject", "coe%20good%202"), 0);
}

#[test]
fn continue_on_error_runs_every_part_and_answers_200() {
    let (_emu, c) = start(3);
    let items = [
        part("POST", "tasks", None, &[], r#"{"subject":"cont good 1"}"#),
        part("POST", "tasks", None, &[], r#"{"bogus":1}"#),
        part("POST", "tasks", None, &[], r#"{"subject":"cont good 2"}"#),
    ];
    let a = c.batch(
        &batch_body(&items),
        &[("Prefer", "odata.continue-on-error")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(inner_statuses(&a.body), vec![204, 400, 204]);
    assert_eq!(count_named(&c, "tasks", "subject", "cont%20good%201"), 1);
    assert_eq!(count_named(&c, "tasks", "subject", "cont%20good%202"), 1);
}

#[test]
fn a_thousand_requests_pass_and_one_more_is_refused() {
    let (emu, c) = start(2);
    let before = emu.table("tasks").len();
    let parts: Vec<String> = (0..1000)
        .map(|i| {
            part(
                "POST",
                "tasks",
                Some(&i.to_string()),
                &[],
                &format!(r#"{{"subject":"bulk {i}"}}"#),
            )
        })
        .collect();
    let a = c.batch(&batch_body(&[changeset("changeset_k", &parts)]), &[]);
    assert_eq!(a.status, 200);
    assert_eq!(emu.table("tasks").len(), before + 1000);
    let mut parts = parts;
    parts.push(part(
        "POST",
        "tasks",
        None,
        &[],
        r#"{"subject":"one too many"}"#,
    ));
    let a = c.batch(&batch_body(&parts), &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "0x80060888");
    assert!(a.body.contains("maximum number of '1000'"), "{}", a.body);
    assert_eq!(
        emu.table("tasks").len(),
        before + 1000,
        "nothing of a refused batch runs"
    );
}

#[test]
fn malformed_batches_get_dataverse_errors() {
    let (_emu, c) = start(2);
    let a = c.post("$batch", "application/json", "{}", &[]);
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["code"], "0x80060888");
    let a = c.batch(
        "--batch_t\r\nContent-Type: application/http\r\n\r\nFROB x HTTP/1.1\r\n\r\n--batch_t--\r\n",
        &[],
    );
    assert_eq!(a.status, 400);
    let a = c.batch("--batch_t\r\n", &[]);
    assert_eq!(a.status, 400);
    let _ = json!({});
    let _ = c.delete("tasks(00000000-0000-0000-0000-000000000000)");
}
