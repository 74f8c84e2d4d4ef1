//! `$batch`, FetchXML and change tracking over HTTP, as a client sees them.

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

/// Calls this file's tests share (a trait, not an inherent impl: other files of the binary
/// name theirs the same).
trait Calls {
    fn post(&self, path: &str, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Answer;
    fn delete(&self, path: &str) -> Answer;
    fn batch(&self, body: &str, headers: &[(&str, &str)]) -> Answer;
}

impl Calls for Client {
    fn post(&self, path: &str, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        self.request("POST", path, content_type, body, headers)
    }

    fn delete(&self, path: &str) -> Answer {
        self.delete_with(path, &[])
    }

    fn batch(&self, body: &str, headers: &[(&str, &str)]) -> Answer {
        self.post("$batch", "multipart/mixed;boundary=batch_t", body, headers)
    }
}

fn start_with(config: Config) -> (Emulator, Client) {
    let emu = Emulator::start(config, 0).expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(120));
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
fn a_malformed_fault_on_a_batch_keeps_its_multipart_type_and_loses_its_closing_boundary() {
    let (emu, c) = start(5);
    let body = batch_body(&[part("GET", "tasks?$select=subject", None, &[], "")]);
    emu.faults()
        .add("malformed:1@$batch".parse().expect("a fault rule"));
    let a = c.batch(&body, &[]);
    assert_eq!(a.status, 200);
    let ct = a.header("content-type").unwrap_or_default();
    let boundary = ct
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("content type {ct}"));
    assert!(
        a.body.starts_with(&format!("--{boundary}\r\n")),
        "{}",
        a.body
    );
    assert!(!a.body.contains(&format!("--{boundary}--")), "{}", a.body);
    // The next answer is whole again.
    let whole = c.batch(&body, &[]);
    assert!(whole.body.ends_with("--\r\n"), "{}", whole.body);
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

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const PAGING: &str = "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\"";

fn fetch(c: &Client, set: &str, xml: &str, prefer: Option<&str>) -> Answer {
    let path = format!("{set}?fetchXml={}", enc(xml));
    match prefer {
        Some(p) => c.get(&path, &[("Prefer", p)]),
        None => c.get(&path, &[]),
    }
}

fn values(a: &Answer) -> Vec<Value> {
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["value"].as_array().cloned().unwrap_or_default()
}

/// Decodes a `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` into the inner cookie, XML-escaped
/// for the `paging-cookie` attribute, as the documented client algorithm does.
fn next_cookie(outer: &str) -> String {
    let start = outer
        .find("pagingcookie=\"")
        .expect("pagingcookie attribute")
        + 14;
    let end = outer[start..].find('"').unwrap() + start;
    let once = percent_encoding::percent_decode_str(&outer[start..end])
        .decode_utf8()
        .unwrap()
        .to_string();
    let twice = percent_encoding::percent_decode_str(&once)
        .decode_utf8()
        .unwrap()
        .to_string();
    twice
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Follows paging cookies to the end; returns every row and the number of pages.
fn fetch_all(c: &Client, set: &str, head: &str, body: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut page = 1;
    let mut cookie: Option<String> = None;
    loop {
        let attrs = match &cookie {
            Some(k) => format!("{head} page='{page}' paging-cookie='{k}'"),
            None => format!("{head} page='{page}'"),
        };
        let a = fetch(
            c,
            set,
            &format!("<fetch {attrs}>{body}</fetch>"),
            Some(PAGING),
        );
        let j = a.json();
        rows.extend(values(&a));
        match j["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"].as_str() {
            Some(k) => {
                assert_eq!(j["@Microsoft.Dynamics.CRM.morerecords"], true);
                cookie = Some(next_cookie(k));
                page += 1;
            }
            None => {
                assert!(
                    j.get("@Microsoft.Dynamics.CRM.morerecords").is_none(),
                    "no morerecords on the last page"
                );
                return (rows, page);
            }
        }
    }
}

#[test]
fn fetchxml_selects_filters_and_orders_like_the_reference() {
    let (emu, c) = start(40);
    let xml = "<fetch mapping='logical'><entity name='account'><attribute name='name'/><attribute name='revenue'/>\
        <filter type='and'><condition attribute='revenue' operator='gt' value='0'/>\
        <filter type='or'><condition attribute='name' operator='like' value='%a%'/><condition attribute='name' operator='begins-with' value='Z'/></filter></filter>\
        <order attribute='name' descending='true'/></entity></fetch>";
    let rows = values(&fetch(&c, "accounts", xml, None));
    let expected: Vec<Value> = emu
        .table("accounts")
        .into_iter()
        .filter(|r| r["revenue"].as_f64().is_some_and(|v| v > 0.0))
        .filter(|r| {
            let n = r["name"].as_str().unwrap_or("").to_lowercase();
            n.contains('a') || n.starts_with('z')
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(rows.len(), expected.len());
    let names: Vec<String> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(names, sorted, "descending by name");
    for r in &rows {
        assert!(
            r["accountid"].is_string(),
            "the primary key is always returned"
        );
        assert!(r["@odata.etag"].as_str().unwrap().starts_with("W/\""));
        assert!(
            r.get("telephone1").is_none(),
            "unselected columns are absent"
        );
        assert!(
            r.as_object().unwrap().values().all(|v| !v.is_null()),
            "nulls are omitted"
        );
    }
}

#[test]
fn fetchxml_in_between_null_and_not_in_conditions() {
    let (emu, c) = start(40);
    let table = emu.table("accounts");
    let a0 = table[0]["accountid"].as_str().unwrap().to_string();
    let a1 = table[1]["accountid"].as_str().unwrap().to_string();
    let xml = format!(
        "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='accountid' operator='in'><value>{{{}}}</value><value>{a1}</value></condition></filter></entity></fetch>",
        a0.to_uppercase()
    );
    let rows = values(&fetch(&c, "accounts", &xml, None));
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["accountid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a0.as_str(), a1.as_str()]);
    let xml = format!(
        "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='accountid' operator='not-in'><value>{a0}</value></condition></filter></entity></fetch>"
    );
    assert_eq!(
        values(&fetch(&c, "accounts", &xml, None)).len(),
        table.len() - 1
    );
    let xml = "<fetch><entity name='account'><attribute name='numberofemployees'/><filter><condition attribute='numberofemployees' operator='between'><value>10</value><value>500</value></condition></filter></entity></fetch>";
    let rows = values(&fetch(&c, "accounts", xml, None));
    let expected = table
        .iter()
        .filter(|r| {
            r["numberofemployees"]
                .as_i64()
                .is_some_and(|n| (10..=500).contains(&n))
        })
        .count();
    assert_eq!(rows.len(), expected);
    let xml = "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='telephone1' operator='null'/></filter></entity></fetch>";
    let nulls = table.iter().filter(|r| r["telephone1"].is_null()).count();
    assert_eq!(values(&fetch(&c, "accounts", xml, None)).len(), nulls);
    let xml = "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='telephone1' operator='not-null'/></filter></entity></fetch>";
    assert_eq!(
        values(&fetch(&c, "accounts", xml, None)).len(),
        table.len() - nulls
    );
}

#[test]
fn fetchxml_link_entities_return_aliased_columns_inner_and_outer() {
    let (emu, c) = start(30);
    let contacts = emu.table("contacts");
    let accounts = emu.table("accounts");
    let xml = "<fetch><entity name='contact'><attribute name='fullname'/><attribute name='parentcustomerid' alias='parent'/>\
        <link-entity name='account' from='accountid' to='parentcustomerid' alias='acc' link-type='inner'><attribute name='name'/></link-entity></entity></fetch>";
    let rows = values(&fetch(
        &c,
        "contacts",
        xml,
        Some("odata.include-annotations=\"*\""),
    ));
    let with_account = contacts
        .iter()
        .filter(|r| {
            r["_parentcustomerid_value"]
                .as_str()
                .is_some_and(|p| accounts.iter().any(|a| a["accountid"] == p))
        })
        .count();
    assert!(with_account > 0);
    assert_eq!(rows.len(), with_account);
    for r in &rows {
        let parent = r["parent"].as_str().expect("aliased lookup is a raw GUID");
        let acc = accounts.iter().find(|a| a["accountid"] == parent).unwrap();
        assert_eq!(r["acc.name"], acc["name"]);
        assert_eq!(
            r["acc.name@OData.Community.Display.V1.AttributeName"],
            "name"
        );
        assert_eq!(
            r["parent@Microsoft.Dynamics.CRM.lookuplogicalname"],
            "account"
        );
    }
    let outer = xml.replace("'inner'", "'outer'");
    assert_eq!(
        values(&fetch(&c, "contacts", &outer, None)).len(),
        contacts.len()
    );
}

#[test]
fn fetchxml_aggregates_count_sum_avg_min_max_with_groupby() {
    let (emu, c) = start(60);
    let table = emu.table("accounts");
    let xml = "<fetch aggregate='true'><entity name='account'><attribute name='statecode' groupby='true' alias='state'/>\
        <attribute name='accountid' aggregate='count' alias='n'/><attribute name='revenue' aggregate='sum' alias='total'/>\
        <attribute name='numberofemployees' aggregate='max' alias='most'/><attribute name='numberofemployees' aggregate='min' alias='least'/>\
        <attribute name='numberofemployees' aggregate='avg' alias='mean'/><attribute name='telephone1' aggregate='countcolumn' alias='phones'/></entity></fetch>";
    let rows = values(&fetch(&c, "accounts", xml, None));
    let mut states: Vec<i64> = table
        .iter()
        .map(|r| r["statecode"].as_i64().unwrap())
        .collect();
    states.sort();
    states.dedup();
    assert_eq!(rows.len(), states.len());
    for (row, state) in rows.iter().zip(&states) {
        let group: Vec<&Value> = table.iter().filter(|r| r["statecode"] == *state).collect();
        assert_eq!(row["state"], *state);
        assert_eq!(row["n"], group.len());
        let sum: f64 = group.iter().filter_map(|r| r["revenue"].as_f64()).sum();
        assert!((row["total"].as_f64().unwrap() - sum).abs() < 0.01, "{row}");
        let emps: Vec<i64> = group
            .iter()
            .filter_map(|r| r["numberofemployees"].as_i64())
            .collect();
        assert_eq!(row["most"], *emps.iter().max().unwrap());
        assert_eq!(row["least"], *emps.iter().min().unwrap());
        let mean = emps.iter().sum::<i64>() as f64 / emps.len() as f64;
        assert!((row["mean"].as_f64().unwrap() - mean).abs() < 1e-6);
        assert_eq!(
            row["phones"],
            group.iter().filter(|r| !r["telephone1"].is_null()).count()
        );
    }
    let bad = "<fetch aggregate='true'><entity name='account'><attribute name='revenue' aggregate='sum'/></entity></fetch>";
    assert_eq!(fetch(&c, "accounts", bad, None).status, 400);
}

#[test]
fn fetchxml_errors_are_dataverse_errors_with_400() {
    let (_emu, c) = start(5);
    for xml in [
        "<fetch><entity name='account'><attribute name='name'></entity></fetch>",
        "<fetch><entity name='account'/><entity name='contact'/></fetch>",
        "<fetch><entity name='contact'><attribute name='fullname'/></entity></fetch>",
        "<fetch><entity name='account'><attribute name='bogus'/></entity></fetch>",
        "<fetch><entity name='account'><filter><condition attribute='name' operator='frob' value='x'/></filter></entity></fetch>",
        "<fetch><entity name='account'><filter><condition attribute='revenue' operator='eq' value='abc'/></filter></entity></fetch>",
        "<fetch top='5' count='5'><entity name='account'/></fetch>",
        "not xml at all",
    ] {
        let a = fetch(&c, "accounts", xml, None);
        assert_eq!(a.status, 400, "{xml}: {}", a.body);
        assert!(
            a.json()["error"]["code"]
                .as_str()
                .unwrap()
                .starts_with("0x"),
            "{}",
            a.body
        );
        assert!(!a.json()["error"]["message"].as_str().unwrap().is_empty());
    }
    let a = fetch(
        &c,
        "accounts",
        "<fetch><entity name='account'><attribute name='bogus'/></entity></fetch>",
        None,
    );
    assert_eq!(a.json()["error"]["code"], "0x80041103");
}

#[test]
fn fetchxml_cookie_paging_returns_every_row_once_over_12000_rows() {
    let (_emu, c) = start_with(Config {
        rows_per_table: 5,
        table_rows: vec![("contact".into(), 12_345)],
        ..Config::default()
    });
    let (rows, pages) = fetch_all(
        &c,
        "contacts",
        "count='5000'",
        "<entity name='contact'><attribute name='fullname'/></entity>",
    );
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 12_345);
    let ids: std::collections::HashSet<&str> = rows
        .iter()
        .map(|r| r["contactid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 12_345, "every row exactly once");
    // Ordered by a column: the cookie names the order column and the key, and still resumes.
    let (rows, _) = fetch_all(
        &c,
        "contacts",
        "count='4000'",
        "<entity name='contact'><attribute name='fullname'/><order attribute='fullname'/></entity>",
    );
    assert_eq!(rows.len(), 12_345);
    let ids: std::collections::HashSet<&str> = rows
        .iter()
        .map(|r| r["contactid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 12_345);
    let names: Vec<String> = rows
        .iter()
        .map(|r| r["fullname"].as_str().unwrap_or("").to_lowercase())
        .collect();
    assert!(
        names.windows(2).all(|w| w[0] <= w[1]),
        "order survives paging"
    );
}

#[test]
fn fetchxml_cookie_has_the_documented_format_and_the_last_page_has_none() {
    let (_emu, c) = start(7);
    let a = fetch(
        &c,
        "contacts",
        "<fetch count='3' page='1'><entity name='contact'><attribute name='fullname'/><order attribute='fullname' descending='true'/></entity></fetch>",
        Some(PAGING),
    );
    let j = a.json();
    let cookie = j["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
        .as_str()
        .expect("cookie");
    assert!(cookie.starts_with("<cookie pagenumber=\"2\" pagingcookie=\"%253ccookie%2520page%253d%25221%2522%253e%253cfullname%2520last%253d%2522"), "{cookie}");
    assert!(cookie.ends_with("\" istracking=\"False\" />"), "{cookie}");
    let inner = next_cookie(cookie)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let last = j["value"][2]["contactid"].as_str().unwrap().to_uppercase();
    assert!(
        inner.contains(&format!("<contactid last=\"{{{last}}}\" first=\"{{")),
        "{inner}"
    );
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    let pos = |k: &str| keys.iter().position(|x| *x == k).unwrap();
    assert!(pos("@Microsoft.Dynamics.CRM.fetchxmlpagingcookie") < pos("value"));
    assert!(pos("@Microsoft.Dynamics.CRM.morerecords") < pos("value"));
    // Without the Prefer annotations there is neither cookie nor morerecords.
    let plain = fetch(
        &c,
        "contacts",
        "<fetch count='3' page='1'><entity name='contact'/></fetch>",
        None,
    )
    .json();
    assert!(
        plain
            .get("@Microsoft.Dynamics.CRM.fetchxmlpagingcookie")
            .is_none()
    );
    assert!(plain.get("@Microsoft.Dynamics.CRM.morerecords").is_none());
    // Simple paging by page number without a cookie.
    let all = values(&fetch(
        &c,
        "contacts",
        "<fetch><entity name='contact'/></fetch>",
        None,
    ));
    let p3 = values(&fetch(
        &c,
        "contacts",
        "<fetch count='3' page='3'><entity name='contact'/></fetch>",
        Some(PAGING),
    ));
    assert_eq!(p3.len(), 1);
    assert_eq!(p3[0]["contactid"], all[6]["contactid"]);
    let last = fetch(
        &c,
        "contacts",
        "<fetch count='3' page='3'><entity name='contact'/></fetch>",
        Some(PAGING),
    )
    .json();
    assert!(
        last.get("@Microsoft.Dynamics.CRM.fetchxmlpagingcookie")
            .is_none()
    );
    assert!(last.get("@Microsoft.Dynamics.CRM.morerecords").is_none());
    let top = values(&fetch(
        &c,
        "contacts",
        "<fetch top='2'><entity name='contact'/></fetch>",
        None,
    ));
    assert_eq!(top.len(), 2);
}

#[test]
fn fetchxml_runs_inside_a_batch_get() {
    let (emu, c) = start(4);
    let xml = "<fetch><entity name='account'><attribute name='name'/></entity></fetch>";
    let body = batch_body(&[part(
        "GET",
        &format!("/api/data/v9.2/accounts?fetchXml={}", enc(xml)),
        None,
        &[],
        "",
    )]);
    let a = c.batch(&body, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(inner_statuses(&a.body), vec![200]);
    let name = emu.table("accounts")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        a.body.contains(&serde_json::to_string(&name).unwrap()),
        "{}",
        a.body
    );
}

#[test]
fn fetchxml_fetch_all_of_100000_rows_benchmark() {
    let (_emu, c) = start_with(Config {
        rows_per_table: 2,
        table_rows: vec![("account".into(), 100_000)],
        record_requests: false,
        ..Config::default()
    });
    let t = std::time::Instant::now();
    let (rows, pages) = fetch_all(
        &c,
        "accounts",
        "count='5000'",
        "<entity name='account'><attribute name='name'/><attribute name='revenue'/></entity>",
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(rows.len(), 100_000);
    assert_eq!(pages, 20);
    println!(
        "fetchxml fetch-all: {} rows in {secs:.2}s = {:.0} records/s",
        rows.len(),
        rows.len() as f64 / secs
    );
}

#[test]
fn track_changes_delta_link_reports_new_changed_and_deleted_rows() {
    let (emu, c) = start(6);
    let first = c.get(
        "tasks?$select=subject",
        &[("Prefer", "odata.track-changes")],
    );
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first
            .header("Preference-Applied")
            .unwrap_or("")
            .contains("odata.track-changes")
    );
    let j = first.json();
    let link = j["@odata.deltaLink"]
        .as_str()
        .expect("delta link")
        .to_string();
    assert!(link.contains("$select=subject&$deltatoken="), "{link}");
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    assert!(
        keys.iter().position(|k| *k == "@odata.deltaLink")
            < keys.iter().position(|k| *k == "value")
    );
    let tasks = emu.table("tasks");
    let changed = tasks[0]["activityid"].as_str().unwrap().to_string();
    let gone = tasks[1]["activityid"].as_str().unwrap().to_string();
    let a = c.post(
        "tasks",
        "application/json",
        r#"{"subject":"new since"}"#,
        &[],
    );
    assert_eq!(a.status, 204);
    let req = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let r = req
        .patch(format!("{}/tasks({changed})", c.api))
        .header("Authorization", format!("Bearer {}", c.token))
        .header("Content-Type", "application/json")
        .send(r#"{"subject":"changed since"}"#.as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(c.delete(&format!("tasks({gone})")).status, 204);
    let delta = c.get(&link, &[]);
    assert_eq!(delta.status, 200, "{}", delta.body);
    let d = delta.json();
    assert!(
        d["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/$metadata#tasks(subject)/$delta")
    );
    assert!(d["@odata.deltaLink"].as_str().unwrap() != link);
    let value = d["value"].as_array().unwrap();
    assert_eq!(value.len(), 3, "{value:?}");
    assert_eq!(value[0]["subject"], "new since");
    assert_eq!(value[1]["subject"], "changed since");
    assert_eq!(value[1]["activityid"], changed.as_str());
    assert!(
        value[2]["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/$metadata#tasks/$deletedEntity")
    );
    assert_eq!(value[2]["id"], gone.as_str());
    assert_eq!(value[2]["reason"], "deleted");
    // Nothing changed since: an empty value and a fresh link.
    let again = c.get(d["@odata.deltaLink"].as_str().unwrap(), &[]).json();
    assert_eq!(again["value"].as_array().unwrap().len(), 0);
}

#[test]
fn expired_delta_tokens_answer_the_full_sync_error() {
    let (emu, c) = start(3);
    let link = c
        .get(
            "accounts?$select=name",
            &[("Prefer", "odata.track-changes")],
        )
        .json()["@odata.deltaLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(c.get(&link, &[]).status, 200);
    emu.expire_delta_tokens();
    let a = c.get(&link, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "0x80044352");
    let fresh = c
        .get(
            "accounts?$select=name",
            &[("Prefer", "odata.track-changes")],
        )
        .json()["@odata.deltaLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.get(&fresh, &[]).status,
        200,
        "a new token works after the expiry"
    );
    let f = c.get(
        "accounts?$filter=name%20ne%20null",
        &[("Prefer", "odata.track-changes")],
    );
    assert_eq!(f.status, 400);
    assert!(
        f.body.contains(
            "The \\\"$filter\\\" query parameter isn't supported when Change Tracking is enabled."
        ),
        "{}",
        f.body
    );
}
