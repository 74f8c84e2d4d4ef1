//! Change tracking past the first sync, over HTTP: paged deltas, rows created and deleted
//! between syncs, expired tokens, `$count` of changes, tables without change tracking
//! (learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems).

use std::collections::HashSet;
use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

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

/// Calls this file's tests share (a trait, not an inherent impl: other files of the binary
/// name theirs the same).
trait Calls {
    fn create(&self, set: &str, body: Value) -> String;
    fn update(&self, path: &str, body: Value);
    fn remove(&self, path: &str);
    fn pages(&self, first: &str, headers: &[(&str, &str)]) -> Vec<Value>;
}

impl Calls for Client {
    fn create(&self, set: &str, body: Value) -> String {
        let a = self.request("POST", set, "application/json", &body.to_string(), &[]);
        assert_eq!(a.status, 204, "{}", a.body);
        let id = a.header("OData-EntityId").expect("OData-EntityId");
        id[id.rfind('(').unwrap() + 1..id.len() - 1].to_string()
    }

    fn update(&self, path: &str, body: Value) {
        let a = self.request("PATCH", path, "application/json", &body.to_string(), &[]);
        assert_eq!(a.status, 204, "{}", a.body);
    }

    fn remove(&self, path: &str) {
        let a = self.delete_with(path, &[]);
        assert_eq!(a.status, 204, "{}", a.body);
    }

    /// Follows nextLinks (sending `headers` on the first request only) and returns every page.
    fn pages(&self, first: &str, headers: &[(&str, &str)]) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut a = self.get(first, headers);
        loop {
            assert_eq!(a.status, 200, "{}", a.body);
            let page = a.json();
            let next = page["@odata.nextLink"].as_str().map(str::to_string);
            pages.push(page);
            match next {
                Some(next) => a = self.get(&next, &[]),
                None => return pages,
            }
        }
    }
}

fn delta_link(page: &Value) -> String {
    page["@odata.deltaLink"]
        .as_str()
        .unwrap_or_else(|| panic!("no delta link: {page}"))
        .to_string()
}

/// Checks the documented layout of a paged tracked read: a nextLink on every page but the last,
/// the deltaLink on the last only.
fn assert_paged(pages: &[Value]) {
    let (last, rest) = pages.split_last().expect("at least one page");
    for p in rest {
        assert!(p["@odata.nextLink"].is_string(), "{p}");
        assert!(
            p.get("@odata.deltaLink").is_none(),
            "deltaLink before the last page"
        );
    }
    assert!(last.get("@odata.nextLink").is_none());
    assert!(last["@odata.deltaLink"].is_string());
}

fn values(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .collect()
}

fn is_deleted_entry(v: &Value) -> bool {
    v["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("/$deletedEntity"))
}

fn track(c: &Client, query: &str) -> String {
    let a = c.get(query, &[("Prefer", "odata.track-changes")]);
    assert_eq!(a.status, 200, "{}", a.body);
    delta_link(&a.json())
}

#[test]
fn five_thousand_four_hundred_changes_come_back_in_pages_with_the_delta_link_on_the_last() {
    let (_emu, c) = start(3);
    let link = track(&c, "accounts?$select=name");
    let mut created = HashSet::new();
    for i in 0..5_400 {
        created.insert(c.create("accounts", json!({ "name": format!("Change {i:04}") })));
    }

    // The default page size (5000): two pages, the second without Prefer and still tracking.
    let pages = c.pages(&link, &[]);
    assert_eq!(pages.len(), 2);
    assert_paged(&pages);
    assert_eq!(pages[0]["value"].as_array().unwrap().len(), 5_000);
    assert_eq!(pages[1]["value"].as_array().unwrap().len(), 400);
    for p in &pages {
        assert!(
            p["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("/$metadata#accounts(name)/$delta"),
            "{}",
            p["@odata.context"]
        );
    }
    let next = pages[0]["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$deltatoken="), "{next}");
    assert!(next.contains("istracking=%22True%22"), "{next}");
    let rows = values(&pages);
    let ids: HashSet<String> = rows
        .iter()
        .map(|r| r["accountid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, created, "every change once, no overlap");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "changes come in the order they were made");

    // odata.maxpagesize on a delta read: 2000, 2000, 1400.
    let a = c.get(&link, &[("Prefer", "odata.maxpagesize=2000")]);
    assert_eq!(
        a.header("Preference-Applied"),
        Some("odata.maxpagesize=2000")
    );
    let mut pages = vec![a.json()];
    while let Some(next) = pages.last().unwrap()["@odata.nextLink"].as_str() {
        let a = c.get(next, &[("Prefer", "odata.maxpagesize=2000")]);
        assert_eq!(a.status, 200, "{}", a.body);
        pages.push(a.json());
    }
    assert_paged(&pages);
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["value"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [2_000, 2_000, 1_400]);

    // The last page's delta link starts after every change of the read.
    let after = delta_link(pages.last().unwrap());
    let empty = c.get(&after, &[]).json();
    assert_eq!(empty["value"], json!([]));
}

#[test]
fn the_first_tracked_read_is_paged_and_its_next_link_keeps_tracking_without_the_prefer_header() {
    let (emu, c) = start(25);
    let total = emu.table("accounts").len();
    let first = c.get(
        "accounts?$select=name",
        &[("Prefer", "odata.track-changes,odata.maxpagesize=10")],
    );
    assert_eq!(first.status, 200, "{}", first.body);
    let applied = first.header("Preference-Applied").unwrap_or_default();
    assert!(applied.contains("odata.track-changes"), "{applied}");
    assert!(applied.contains("odata.maxpagesize=10"), "{applied}");
    let page1 = first.json();
    assert_eq!(page1["value"].as_array().unwrap().len(), 10);
    assert!(page1.get("@odata.deltaLink").is_none());
    let next = page1["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(next.contains("istracking=%22True%22"), "{next}");

    // A row changes while the read is paged: the next delta reports it.
    let changed = page1["value"][0]["accountid"].as_str().unwrap().to_string();
    c.update(
        &format!("accounts({changed})"),
        json!({"name": "Renamed mid-read"}),
    );

    let mut pages = vec![page1];
    pages.extend(c.pages(&next, &[]));
    assert_paged(&pages);
    let ids: HashSet<String> = values(&pages)
        .iter()
        .map(|r| r["accountid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), total, "every row once");
    let last = pages.last().unwrap();
    assert!(
        last["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#accounts(name)"),
        "{last}"
    );
    let link = delta_link(last);
    assert!(link.contains("$select=name&$deltatoken="), "{link}");
    assert!(!link.contains("skiptoken"), "{link}");

    let delta = c.get(&link, &[]).json();
    let value = delta["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{delta}");
    assert_eq!(value[0]["accountid"], changed.as_str());
    assert_eq!(value[0]["name"], "Renamed mid-read");
}

#[test]
fn a_row_created_and_deleted_between_two_syncs_is_reported_deleted() {
    let (_emu, c) = start(4);
    let link = track(&c, "contacts?$select=fullname");
    let kept = c.create("contacts", json!({"firstname": "Kept", "lastname": "Row"}));
    let brief = c.create("contacts", json!({"firstname": "Brief", "lastname": "Row"}));
    c.remove(&format!("contacts({brief})"));

    let d = c.get(&link, &[]).json();
    let value = d["value"].as_array().unwrap();
    assert_eq!(value.len(), 2, "{d}");
    assert_eq!(value[0]["contactid"], kept.as_str());
    assert!(!is_deleted_entry(&value[0]));
    assert!(is_deleted_entry(&value[1]), "{d}");
    assert!(
        value[1]["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/$metadata#contacts/$deletedEntity")
    );
    assert_eq!(value[1]["id"], brief.as_str());
    assert_eq!(value[1]["reason"], "deleted");

    // Deleted then created again with the same id: a change, not a deletion.
    let next = delta_link(&d);
    c.remove(&format!("contacts({kept})"));
    let put = c.request(
        "PATCH",
        &format!("contacts({kept})"),
        "application/json",
        &json!({"firstname": "Back", "lastname": "Again"}).to_string(),
        &[],
    );
    assert_eq!(put.status, 204, "{}", put.body);
    let again = c.get(&next, &[]).json();
    let value = again["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{again}");
    assert_eq!(value[0]["contactid"], kept.as_str());
    assert_eq!(value[0]["fullname"], "Back Again");
}

#[test]
fn a_delta_token_older_than_the_configured_lifetime_answers_expired_version_stamp() {
    let (_emu, c) = start_with(Config {
        rows_per_table: 3,
        delta_token_lifetime: Duration::from_secs(1),
        ..Config::default()
    });
    let link = track(&c, "accounts?$select=name");
    assert_eq!(c.get(&link, &[]).status, 200, "valid while young");
    std::thread::sleep(Duration::from_millis(2_200));
    let a: Answer = c.get(&link, &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.error_code(), "0x80044352");
    assert_eq!(
        a.json()["error"]["message"],
        "Version stamp associated with the client has expired. Please perform a full sync."
    );
    let count = link.replacen("accounts?", "accounts/$count?", 1);
    assert_eq!(c.get(&count, &[]).error_code(), "0x80044352");
    // A full sync gives a working token again.
    let fresh = track(&c, "accounts?$select=name");
    assert_eq!(c.get(&fresh, &[]).status, 200);

    // The default window is 7 days: the same wait leaves a token valid.
    let (_emu, c) = start(3);
    let link = track(&c, "accounts?$select=name");
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(c.get(&link, &[]).status, 200);
}

#[test]
fn count_with_a_delta_token_counts_the_changes_not_the_table() {
    let (emu, c) = start(12);
    let total = emu.table("accounts").len();
    let link = track(&c, "accounts?$select=name");
    let rows = emu.table("accounts");
    c.update(
        &format!("accounts({})", rows[0]["accountid"].as_str().unwrap()),
        json!({"name": "One"}),
    );
    c.update(
        &format!("accounts({})", rows[0]["accountid"].as_str().unwrap()),
        json!({"name": "One again"}),
    );
    c.remove(&format!(
        "accounts({})",
        rows[1]["accountid"].as_str().unwrap()
    ));
    c.create("accounts", json!({"name": "New"}));

    // GET accounts/$count?$deltatoken=… (the documented request): 3 rows changed.
    let count = link.replacen("accounts?", "accounts/$count?", 1);
    let a = c.get(&count, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body.trim(), "3");
    assert!(a.header("Content-Type").unwrap().starts_with("text/plain"));
    assert_ne!(total, 3);
    assert_eq!(c.get("accounts/$count", &[]).body.trim(), total.to_string());

    // $count=true on the delta read: the same number, on every page.
    let counted = format!("{link}&$count=true");
    let pages = c.pages(&counted, &[("Prefer", "odata.maxpagesize=2")]);
    assert_eq!(pages.len(), 2);
    for p in &pages {
        assert_eq!(p["@odata.count"], 3, "{p}");
    }
    assert_eq!(values(&pages).len(), 3);
}

#[test]
fn tables_without_change_tracking_refuse_track_changes_and_say_so_in_their_definitions() {
    let (_emu, c) = start(3);
    let a = c.get(
        "annotations?$select=subject",
        &[("Prefer", "odata.track-changes")],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.json()["error"]["message"],
        "Change tracking is not enabled for the entity 'annotation'. Enable change tracking for the entity to use the odata.track-changes preference."
    );
    let plain = c.get("annotations?$select=subject", &[]);
    assert_eq!(plain.status, 200, "an untracked read still works");
    let custom = c.get("new_projects", &[("Prefer", "odata.track-changes")]);
    assert_eq!(custom.status, 400, "{}", custom.body);

    let d = c
        .get(
            "EntityDefinitions(LogicalName='annotation')?$select=LogicalName,ChangeTrackingEnabled,CanChangeTrackingBeEnabled",
            &[],
        )
        .json();
    assert_eq!(d["ChangeTrackingEnabled"], false);
    assert_eq!(
        d["CanChangeTrackingBeEnabled"],
        json!({"Value": true, "CanBeChanged": true, "ManagedPropertyLogicalName": "canchangetrackingbeenabled"})
    );
    assert!(d.get("DisplayName").is_none(), "only what was selected");
    let account = c
        .get(
            "EntityDefinitions(LogicalName='account')?$select=ChangeTrackingEnabled,CanChangeTrackingBeEnabled",
            &[],
        )
        .json();
    assert_eq!(account["ChangeTrackingEnabled"], true);
    assert_eq!(account["CanChangeTrackingBeEnabled"]["Value"], true);

    // The documented queries.
    let names = |q: &str| -> HashSet<String> {
        let a = c.get(q, &[]);
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["SchemaName"].as_str().unwrap().to_string())
            .collect()
    };
    let tracked =
        names("EntityDefinitions?$select=SchemaName&$filter=ChangeTrackingEnabled eq true");
    for t in ["Account", "Contact", "Task"] {
        assert!(tracked.contains(t), "{t} in {tracked:?}");
    }
    assert!(!tracked.contains("Annotation"));
    let ineligible = names(
        "EntityDefinitions?$select=SchemaName,ChangeTrackingEnabled&$filter=ChangeTrackingEnabled eq false and CanChangeTrackingBeEnabled/Value eq false",
    );
    assert!(
        ineligible.contains("SdkMessageProcessingStep"),
        "{ineligible:?}"
    );
    assert!(!ineligible.contains("Annotation"));
    assert!(!ineligible.contains("Account"));
}

#[test]
fn metadata_with_annotations_marks_the_entity_sets_that_have_change_tracking() {
    let (_emu, c) = start(1);
    const MARK: &str = r#"<Annotation Term="Org.OData.Capabilities.V1.ChangeTracking"><Record><PropertyValue Property="Supported" Bool="true"/></Record></Annotation>"#;
    let doc = c.get("$metadata?annotations=true", &[]);
    assert_eq!(doc.status, 200);
    let set = |name: &str| -> String {
        let start = doc
            .body
            .find(&format!("<EntitySet Name=\"{name}\""))
            .unwrap_or_else(|| panic!("no entity set {name}"));
        let end = start + doc.body[start..].find("</EntitySet>").unwrap();
        doc.body[start..end].to_string()
    };
    assert!(set("accounts").contains(MARK));
    assert!(set("contacts").contains(MARK));
    assert!(!set("annotations").contains(MARK));
    assert!(!set("sdkmessageprocessingsteps").contains(MARK));
    let plain = c.get("$metadata", &[]);
    assert!(
        !plain
            .body
            .contains("Org.OData.Capabilities.V1.ChangeTracking")
    );
}
