//! Column creation and updates through the metadata API, metadata queries, and webhooks
//! registered through the plug-in registration tables, as a client sees them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

/// Calls this file's tests share (a trait, not an inherent impl: other files of the binary
/// name theirs the same).
trait Calls {
    fn send(&self, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer;
    fn post(&self, path: &str, body: Value) -> Answer;
    fn delete(&self, path: &str) -> Answer;
}

impl Calls for Client {
    fn send(&self, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        self.request(method, path, "application/json", body, headers)
    }

    fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, &body.to_string(), &[])
    }

    fn delete(&self, path: &str) -> Answer {
        self.delete_with(path, &[])
    }
}

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(30));
    (emu, c)
}

fn id_in(a: &Answer) -> String {
    let h = a.header("OData-EntityId").expect("OData-EntityId header");
    h.rsplit('(')
        .next()
        .unwrap_or("")
        .trim_end_matches(')')
        .to_string()
}

fn label(text: &str, lang: i64) -> Value {
    json!({"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": lang})
}

fn money_column() -> Value {
    json!({
        "AttributeType": "Money",
        "AttributeTypeName": {"Value": "MoneyType"},
        "Description": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [label("Enter the balance amount", 1033)]},
        "DisplayName": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [label("Balance", 1033)]},
        "RequiredLevel": {"Value": "None", "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
        "SchemaName": "new_Balance",
        "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
        "PrecisionSource": 2
    })
}

fn names(list: &Value) -> Vec<String> {
    list["value"]
        .as_array()
        .expect("value array")
        .iter()
        .map(|x| x["LogicalName"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn first_account(c: &Client) -> String {
    c.get("accounts?$select=accountid&$top=1", &[]).json()["value"][0]["accountid"]
        .as_str()
        .expect("an account")
        .to_string()
}

#[test]
fn created_money_column_shows_in_metadata_and_csdl_and_holds_values() {
    let (_emu, c) = start();
    let r = c.post(
        "EntityDefinitions(LogicalName='account')/Attributes",
        money_column(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let entity_id = r
        .header("OData-EntityId")
        .expect("OData-EntityId")
        .to_string();
    assert!(
        entity_id.contains("/EntityDefinitions(LogicalName='account')/Attributes("),
        "{entity_id}"
    );
    let metadata_id = id_in(&r);

    let a = c
        .get(
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_balance')",
            &[],
        )
        .json();
    assert_eq!(a["MetadataId"], json!(metadata_id));
    assert_eq!(a["SchemaName"], "new_Balance");
    assert_eq!(a["AttributeType"], "Money");
    assert_eq!(
        a["@odata.type"],
        "#Microsoft.Dynamics.CRM.MoneyAttributeMetadata"
    );
    assert_eq!(a["IsCustomAttribute"], true);
    assert_eq!(a["PrecisionSource"], 2);
    assert_eq!(a["DisplayName"]["UserLocalizedLabel"]["Label"], "Balance");
    assert_eq!(
        a["Description"]["LocalizedLabels"][0]["Label"],
        "Enter the balance amount"
    );
    let by_id = c.get(
        &format!(
            "EntityDefinitions(LogicalName='account')/Attributes({metadata_id})?$select=LogicalName"
        ),
        &[],
    );
    assert_eq!(by_id.json()["LogicalName"], "new_balance");

    let csdl = c.get("$metadata", &[]).body;
    assert!(csdl.contains(r#"<Property Name="new_balance" Type="Edm.Decimal""#));

    let id = first_account(&c);
    let w = c.send(
        "PATCH",
        &format!("accounts({id})"),
        r#"{"new_balance": 12.5}"#,
        &[],
    );
    assert_eq!(w.status, 204, "{}", w.body);
    let row = c
        .get(&format!("accounts({id})?$select=new_balance,name"), &[])
        .json();
    assert_eq!(row["new_balance"], json!(12.5));
    let filtered = c
        .get("accounts?$select=accountid&$filter=new_balance gt 10", &[])
        .json();
    assert_eq!(filtered["value"].as_array().map(Vec::len), Some(1));

    let again = c.post(
        "EntityDefinitions(LogicalName='account')/Attributes",
        money_column(),
    );
    assert_eq!(again.status, 412);
    assert_eq!(again.error_code(), "0x80040237");
}

#[test]
fn columns_of_each_type_are_created_with_their_settings() {
    let (_emu, c) = start();
    let bodies = [
        json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "new_Code", "MaxLength": 12, "FormatName": {"Value": "Text"}, "DisplayName": {"LocalizedLabels": [label("Code", 1033)]}}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata", "SchemaName": "new_Notes", "MaxLength": 5000}),
        json!({"AttributeType": "Integer", "SchemaName": "new_Rank", "MinValue": 1, "MaxValue": 10}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata", "SchemaName": "new_Ratio", "MaxValue": 100.0, "MinValue": 0.0, "Precision": 1}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata", "SchemaName": "new_Vip", "DefaultValue": false,
               "OptionSet": {"TrueOption": {"Value": 1, "Label": {"LocalizedLabels": [label("Very", 1033)]}}, "FalseOption": {"Value": 0, "Label": {"LocalizedLabels": [label("Not", 1033)]}}, "OptionSetType": "Boolean"}}),
        json!({"AttributeTypeName": {"Value": "DateTimeType"}, "SchemaName": "new_Since", "Format": "DateOnly"}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", "SchemaName": "new_Tier",
               "OptionSet": {"@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata", "IsGlobal": false, "OptionSetType": "Picklist",
                             "Options": [{"Value": null, "Label": {"LocalizedLabels": [label("Gold", 1033)]}}, {"Value": 7, "Label": {"LocalizedLabels": [label("Silver", 1033)]}}]}}),
    ];
    for b in bodies {
        let r = c.post(
            "EntityDefinitions(LogicalName='contact')/Attributes",
            b.clone(),
        );
        assert_eq!(r.status, 204, "{b}: {}", r.body);
    }
    let strings = c
        .get("EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength&$filter=IsCustomAttribute eq true", &[])
        .json();
    assert_eq!(strings["value"][0]["LogicalName"], "new_code");
    assert_eq!(strings["value"][0]["MaxLength"], 12);
    let tier = c
        .get("EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='new_tier')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet", &[])
        .json();
    let options: Vec<i64> = tier["OptionSet"]["Options"]
        .as_array()
        .expect("options")
        .iter()
        .filter_map(|o| o["Value"].as_i64())
        .collect();
    assert_eq!(options, vec![100_000_000, 7]);
    assert_eq!(
        tier["OptionSet"]["Options"][0]["Label"]["UserLocalizedLabel"]["Label"],
        "Gold"
    );

    let id = c.get("contacts?$select=contactid&$top=1", &[]).json()["value"][0]["contactid"]
        .as_str()
        .expect("a contact")
        .to_string();
    let w = c.send(
        "PATCH",
        &format!("contacts({id})"),
        r#"{"new_code":"C-1","new_notes":"long text","new_rank":3,"new_ratio":0.5,"new_vip":true,"new_since":"2024-03-01","new_tier":7}"#,
        &[("Prefer", "return=representation")],
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let row = w.json();
    assert_eq!(row["new_code"], "C-1");
    assert_eq!(row["new_rank"], 3);
    assert_eq!(row["new_vip"], true);
    assert_eq!(row["new_since"], "2024-03-01");
    assert_eq!(row["new_tier"], 7);
    let out_of_range = c.send(
        "PATCH",
        &format!("contacts({id})"),
        r#"{"new_rank":11}"#,
        &[],
    );
    assert_eq!(out_of_range.status, 400);
    let bad_option = c.send(
        "PATCH",
        &format!("contacts({id})"),
        r#"{"new_tier":8}"#,
        &[],
    );
    assert_eq!(bad_option.status, 400);
    let too_long = c.send(
        "PATCH",
        &format!("contacts({id})"),
        r#"{"new_code":"0123456789abc"}"#,
        &[],
    );
    assert_eq!(too_long.status, 400);
}

#[test]
fn merge_labels_keeps_other_languages_and_plain_put_replaces_them() {
    let (_emu, c) = start();
    let mut body = money_column();
    body["DisplayName"]["LocalizedLabels"] = json!([label("Balance", 1033), label("Saldo", 1031)]);
    assert_eq!(
        c.post("EntityDefinitions(LogicalName='account')/Attributes", body)
            .status,
        204
    );
    let path = "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_balance')";
    let mut def = c.get(path, &[]).json();
    def.as_object_mut().map(|m| m.remove("@odata.context"));
    def["DisplayName"] = json!({"LocalizedLabels": [label("Account Balance", 1033)]});
    def["RequiredLevel"] = json!({"Value": "ApplicationRequired", "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"});
    let put = c.send(
        "PUT",
        path,
        &def.to_string(),
        &[("MSCRM.MergeLabels", "true")],
    );
    assert_eq!(put.status, 204, "{}", put.body);
    assert!(
        put.header("OData-EntityId")
            .is_some_and(|h| h.ends_with(path))
    );
    let after = c.get(path, &[]).json();
    let labels: Vec<(i64, String)> = after["DisplayName"]["LocalizedLabels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|l| {
            (
                l["LanguageCode"].as_i64().unwrap_or(0),
                l["Label"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        vec![
            (1033, "Account Balance".to_string()),
            (1031, "Saldo".to_string())
        ]
    );
    assert_eq!(
        after["DisplayName"]["UserLocalizedLabel"]["Label"],
        "Account Balance"
    );
    assert_eq!(after["RequiredLevel"]["Value"], "ApplicationRequired");

    def["DisplayName"] = json!({"LocalizedLabels": [label("Balance Due", 1033)]});
    let replace = c.send("PUT", path, &def.to_string(), &[]);
    assert_eq!(replace.status, 204, "{}", replace.body);
    let after = c.get(path, &[]).json();
    assert_eq!(
        after["DisplayName"]["LocalizedLabels"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        after["DisplayName"]["LocalizedLabels"][0]["Label"],
        "Balance Due"
    );

    def["@odata.type"] = json!("Microsoft.Dynamics.CRM.StringAttributeMetadata");
    let retype = c.send("PUT", path, &def.to_string(), &[]);
    assert_eq!(retype.status, 400);
}

#[test]
fn bad_column_definitions_get_errors() {
    let (_emu, c) = start();
    let path = "EntityDefinitions(LogicalName='account')/Attributes";
    let no_schema = c.post(
        path,
        json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata"}),
    );
    assert_eq!(no_schema.status, 400);
    let no_prefix = c.post(path, json!({"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "Balance"}));
    assert_eq!(no_prefix.status, 400);
    let unknown_type = c.post(path, json!({"@odata.type": "Microsoft.Dynamics.CRM.ImageAttributeMetadata", "SchemaName": "new_Pic"}));
    assert_eq!(unknown_type.status, 400);
    let clash = c.post(
        path,
        json!({"AttributeType": "String", "SchemaName": "Name"}),
    );
    assert_eq!(clash.status, 400);
    let not_json = c.send("POST", path, "{nope", &[]);
    assert_eq!(not_json.status, 400);
    let no_table = c.post(
        "EntityDefinitions(LogicalName='nosuchtable')/Attributes",
        money_column(),
    );
    assert_eq!(no_table.status, 404);
    let missing = c.send(
        "PUT",
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_none')",
        "{}",
        &[],
    );
    assert_eq!(missing.status, 404);
    let whole_table = c.send(
        "PATCH",
        "EntityDefinitions(LogicalName='account')",
        "{}",
        &[],
    );
    assert_eq!(whole_table.status, 405);
}

#[test]
fn metadata_filters_keys_casts_and_expands_answer_as_documented() {
    let (_emu, c) = start();
    let custom = c.get("EntityDefinitions?$select=LogicalName,EntitySetName,IsCustomEntity&$filter=IsCustomEntity eq true", &[]).json();
    assert_eq!(
        names(&custom),
        vec!["new_project".to_string(), "new_sensorreading".to_string()]
    );
    let one = c
        .get(
            "EntityDefinitions?$select=LogicalName,MetadataId&$filter=LogicalName eq 'account'",
            &[],
        )
        .json();
    assert_eq!(names(&one), vec!["account".to_string()]);
    let mid = one["value"][0]["MetadataId"]
        .as_str()
        .expect("MetadataId")
        .to_string();
    let by_id = c
        .get(
            &format!("EntityDefinitions({mid})?$select=LogicalName,DisplayName"),
            &[],
        )
        .json();
    assert_eq!(by_id["LogicalName"], "account");
    assert_eq!(
        by_id["DisplayName"]["UserLocalizedLabel"]["Label"],
        "Account"
    );
    assert_eq!(
        by_id["DisplayName"]["LocalizedLabels"][0]["LanguageCode"],
        1033
    );

    let expanded = c
        .get("EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Attributes($select=LogicalName;$filter=AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist')", &[])
        .json();
    let picklists: Vec<&str> = expanded["Attributes"]
        .as_array()
        .expect("Attributes")
        .iter()
        .filter_map(|a| a["LogicalName"].as_str())
        .collect();
    assert!(picklists.contains(&"industrycode"));
    assert!(!picklists.contains(&"name"));

    let by_type_name = c
        .get("EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName&$filter=AttributeTypeName/Value eq 'StringType'", &[])
        .json();
    let strings = names(&by_type_name);
    assert!(strings.contains(&"telephone1".to_string()));
    assert!(
        by_type_name["value"]
            .as_array()
            .expect("value")
            .iter()
            .all(|a| a["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata")
    );
    let cast = c
        .get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength", &[])
        .json();
    assert_eq!(names(&cast), strings);
    let required = c
        .get("EntityDefinitions(LogicalName='account')/Attributes?$select=SchemaName&$filter=RequiredLevel/Value eq Microsoft.Dynamics.CRM.AttributeRequiredLevel'ApplicationRequired'", &[])
        .json();
    assert_eq!(required["value"].as_array().map(Vec::len), Some(1));
}

#[test]
fn entity_definitions_come_in_one_response_whatever_the_page_size() {
    let (_emu, c) = start();
    let all = c.get("EntityDefinitions?$select=LogicalName", &[]).json();
    let paged = c
        .get(
            "EntityDefinitions?$select=LogicalName",
            &[("Prefer", "odata.maxpagesize=2")],
        )
        .json();
    assert!(names(&all).len() > 2);
    assert_eq!(names(&paged), names(&all));
    assert!(paged.get("@odata.nextLink").is_none());
}

// ---- webhooks --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    target: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP endpoint that records every request and answers with `status`.
struct Listener {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Listener {
    fn start(status: u16) -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", l.local_addr().expect("addr"));
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = Vec::new();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        headers.push((k.to_string(), v.trim().to_string()));
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                sink.lock().expect("lock").push(Received {
                    target,
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Listener { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

fn lookup_id(c: &Client, set: &str, filter: &str, key: &str) -> String {
    let r = c.get(&format!("{set}?$filter={filter}"), &[]).json();
    r["value"][0][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {set} row for {filter}: {r}"))
        .to_string()
}

/// Registers an endpoint and a step for `message` on `table`; returns (endpoint id, step id).
#[allow(clippy::too_many_arguments)]
fn register(
    c: &Client,
    url: &str,
    authtype: i64,
    authvalue: &str,
    message: &str,
    table: &str,
    mode: i64,
    filtering: Option<&str>,
) -> (String, String) {
    let ep = c.post(
        "serviceendpoints",
        json!({"name": "test hook", "url": url, "contract": 8, "authtype": authtype, "authvalue": authvalue, "messageformat": 2}),
    );
    assert_eq!(ep.status, 204, "{}", ep.body);
    let ep_id = id_in(&ep);
    let msg = lookup_id(
        c,
        "sdkmessages",
        &format!("name eq '{message}'"),
        "sdkmessageid",
    );
    let filter = lookup_id(
        c,
        "sdkmessagefilters",
        &format!("primaryobjecttypecode eq '{table}' and _sdkmessageid_value eq {msg}"),
        "sdkmessagefilterid",
    );
    let mut step = json!({
        "name": format!("{message} of {table}"),
        "stage": 40,
        "mode": mode,
        "rank": 1,
        "supporteddeployment": 0,
        "sdkmessageid@odata.bind": format!("/sdkmessages({msg})"),
        "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter})"),
        "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({ep_id})"),
    });
    if let Some(f) = filtering {
        step["filteringattributes"] = json!(f);
    }
    let st = c.post("sdkmessageprocessingsteps", step);
    assert_eq!(st.status, 204, "{}", st.body);
    (ep_id, id_in(&st))
}

fn attribute<'a>(entity: &'a Value, key: &str) -> Option<&'a Value> {
    entity["Attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

#[test]
fn registration_rows_are_created_read_and_deleted_through_the_web_api() {
    let (_emu, c) = start();
    let (ep, step) = register(
        &c,
        "http://127.0.0.1:9/none",
        5,
        "<settings><setting name=\"k\" value=\"v\"/></settings>",
        "Update",
        "contact",
        1,
        Some("firstname,lastname"),
    );
    let image = c.post(
        "sdkmessageprocessingstepimages",
        json!({"name": "pre", "entityalias": "PreImage", "imagetype": 0, "messagepropertyname": "Target", "attributes": "firstname",
               "sdkmessageprocessingstepid@odata.bind": format!("/sdkmessageprocessingsteps({step})")}),
    );
    assert_eq!(image.status, 204, "{}", image.body);
    let row = c
        .get(&format!("sdkmessageprocessingsteps({step})?$select=name,mode,stage,filteringattributes,_eventhandler_value,_sdkmessageid_value,statecode"), &[])
        .json();
    assert_eq!(row["_eventhandler_value"], json!(ep));
    assert_eq!(row["stage"], 40);
    assert_eq!(row["statecode"], 0);
    assert_eq!(row["filteringattributes"], "firstname,lastname");
    let webhooks = c
        .get(
            "serviceendpoints?$filter=contract eq 8&$select=serviceendpointid,name,authtype,url",
            &[],
        )
        .json();
    assert_eq!(webhooks["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        c.delete(&format!("sdkmessageprocessingsteps({step})"))
            .status,
        204
    );
    assert_eq!(c.delete(&format!("serviceendpoints({ep})")).status, 204);
    assert_eq!(
        c.get(&format!("sdkmessageprocessingsteps({step})"), &[])
            .status,
        404
    );
}

#[test]
fn http_header_webhook_gets_create_update_and_delete_contexts_with_images() {
    let (emu, c) = start();
    let hook = Listener::start(200);
    let secret = "<settings><setting name=\"x-dv-webhook-secret\" value=\"s3cret\"/></settings>";
    for message in ["Create", "Update", "Delete"] {
        let (_, step) = register(&c, &hook.url, 5, secret, message, "account", 1, None);
        if message != "Create" {
            let image = c.post(
                "sdkmessageprocessingstepimages",
                json!({"name": "img", "entityalias": "Before", "imagetype": 0, "messagepropertyname": "Target", "attributes": "name,revenue",
                       "sdkmessageprocessingstepid@odata.bind": format!("/sdkmessageprocessingsteps({step})")}),
            );
            assert_eq!(image.status, 204, "{}", image.body);
        }
    }
    let contact = c.get("contacts?$select=contactid&$top=1", &[]).json()["value"][0]["contactid"]
        .as_str()
        .expect("contact")
        .to_string();
    let created = c.post(
        "accounts",
        json!({"name": "Hooked Ltd", "revenue": 1000.5, "industrycode": 1, "primarycontactid@odata.bind": format!("/contacts({contact})")}),
    );
    assert_eq!(created.status, 204, "{}", created.body);
    let id = id_in(&created);
    let upd = c.send(
        "PATCH",
        &format!("accounts({id})"),
        r#"{"name":"Hooked plc"}"#,
        &[],
    );
    assert_eq!(upd.status, 204);
    assert_eq!(c.delete(&format!("accounts({id})")).status, 204);

    let deliveries = emu.wait_for_deliveries(3, Duration::from_secs(10));
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == 200 && d.attempts == 1)
    );
    let got = hook.received();
    assert_eq!(got.len(), 3);
    let messages: Vec<&str> = got
        .iter()
        .filter_map(|r| r.header("x-ms-dynamics-request-name"))
        .collect();
    assert_eq!(messages, vec!["Create", "Update", "Delete"]);
    for r in &got {
        assert_eq!(r.header("x-dv-webhook-secret"), Some("s3cret"));
        assert_eq!(r.header("x-ms-dynamics-entity-name"), Some("account"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.header("x-ms-correlation-request-id")
                .is_some_and(|v| v.len() == 36)
        );
        assert!(r.header("x-request-id").is_some());
        assert!(r.header("x-ms-dynamics-organization").is_some());
        assert!(r.header("x-ms-dynamics-msg-size-exceeded").is_none());
        assert_eq!(r.target, "/hook");
        assert_eq!(r.body["PrimaryEntityName"], "account");
        assert_eq!(r.body["PrimaryEntityId"], json!(id));
        assert_eq!(r.body["Stage"], 40);
        assert_eq!(r.body["Mode"], 1);
        assert_eq!(r.body["Depth"], 1);
        assert_eq!(
            r.body["OrganizationId"],
            json!(emu.credentials().organization_id)
        );
        assert_eq!(
            r.body["UserId"],
            json!(emu.credentials().application_user_id)
        );
        assert_eq!(
            r.body["CorrelationId"],
            json!(r.header("x-ms-correlation-request-id"))
        );
        assert_eq!(
            r.body["OwningExtension"]["LogicalName"],
            "sdkmessageprocessingstep"
        );
    }
    let create = &got[0].body;
    assert_eq!(create["MessageName"], "Create");
    assert_eq!(create["OutputParameters"][0]["value"], json!(id));
    let target = &create["InputParameters"][0]["value"];
    assert_eq!(create["InputParameters"][0]["key"], "Target");
    assert_eq!(
        target["__type"],
        "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"
    );
    assert_eq!(target["LogicalName"], "account");
    assert_eq!(attribute(target, "name"), Some(&json!("Hooked Ltd")));
    assert_eq!(attribute(target, "accountid"), Some(&json!(id)));
    assert_eq!(
        attribute(target, "revenue"),
        Some(
            &json!({"__type": "Money:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 1000.5})
        )
    );
    assert_eq!(
        attribute(target, "industrycode"),
        Some(
            &json!({"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 1})
        )
    );
    let contact_ref = attribute(target, "primarycontactid").expect("lookup");
    assert_eq!(
        contact_ref["__type"],
        "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"
    );
    assert_eq!(contact_ref["Id"], json!(contact));
    assert_eq!(contact_ref["LogicalName"], "contact");
    assert!(
        attribute(target, "createdon")
            .and_then(Value::as_str)
            .is_some_and(|d| d.starts_with("/Date("))
    );

    let update = &got[1].body;
    let target = &update["InputParameters"][0]["value"];
    assert_eq!(attribute(target, "name"), Some(&json!("Hooked plc")));
    assert!(attribute(target, "revenue").is_none());
    assert_eq!(update["PreEntityImages"][0]["key"], "Before");
    let pre = &update["PreEntityImages"][0]["value"];
    assert_eq!(attribute(pre, "name"), Some(&json!("Hooked Ltd")));

    let delete = &got[2].body;
    let target = &delete["InputParameters"][0]["value"];
    assert_eq!(
        target["__type"],
        "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"
    );
    assert_eq!(target["Id"], json!(id));
    assert_eq!(
        attribute(&delete["PreEntityImages"][0]["value"], "name"),
        Some(&json!("Hooked plc"))
    );
}

#[test]
fn webhook_key_and_query_string_auth_travel_in_the_query() {
    let (emu, c) = start();
    let keyed = Listener::start(200);
    let query = Listener::start(200);
    register(&c, &keyed.url, 4, "k/e y", "Create", "contact", 1, None);
    register(
        &c,
        &query.url,
        6,
        "<settings><setting name=\"a\" value=\"1\"/><setting name=\"b\" value=\"x y\"/></settings>",
        "Create",
        "contact",
        1,
        None,
    );
    assert_eq!(
        c.post("contacts", json!({"firstname": "Ada", "lastname": "Hook"}))
            .status,
        204
    );
    assert_eq!(emu.wait_for_deliveries(2, Duration::from_secs(10)).len(), 2);
    assert_eq!(keyed.received()[0].target, "/hook?code=k%2Fe+y");
    assert_eq!(query.received()[0].target, "/hook?a=1&b=x+y");
    assert!(keyed.received()[0].header("code").is_none());
}

#[test]
fn filtering_attributes_limit_which_updates_are_sent() {
    let (emu, c) = start();
    let hook = Listener::start(200);
    register(
        &c,
        &hook.url,
        5,
        "<settings/>",
        "Update",
        "account",
        1,
        Some("telephone1"),
    );
    let id = first_account(&c);
    assert_eq!(
        c.send(
            "PATCH",
            &format!("accounts({id})"),
            r#"{"name":"Renamed"}"#,
            &[]
        )
        .status,
        204
    );
    assert_eq!(
        c.send(
            "PATCH",
            &format!("accounts({id})"),
            r#"{"telephone1":"555-0100"}"#,
            &[]
        )
        .status,
        204
    );
    let d = emu.wait_for_deliveries(1, Duration::from_secs(10));
    assert_eq!(d.len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    let got = hook.received();
    assert_eq!(got.len(), 1);
    let target = &got[0].body["InputParameters"][0]["value"];
    assert_eq!(attribute(target, "telephone1"), Some(&json!("555-0100")));
}

#[test]
fn no_webhook_after_the_step_is_deleted() {
    let (emu, c) = start();
    let hook = Listener::start(200);
    let (_, step) = register(
        &c,
        &hook.url,
        5,
        "<settings/>",
        "Create",
        "account",
        1,
        None,
    );
    assert_eq!(c.post("accounts", json!({"name": "First"})).status, 204);
    assert_eq!(emu.wait_for_deliveries(1, Duration::from_secs(10)).len(), 1);
    assert_eq!(
        c.delete(&format!("sdkmessageprocessingsteps({step})"))
            .status,
        204
    );
    assert_eq!(c.post("accounts", json!({"name": "Second"})).status, 204);
    // A later event on another table proves the queue moved past the second account.
    register(
        &c,
        &hook.url,
        5,
        "<settings/>",
        "Create",
        "contact",
        1,
        None,
    );
    assert_eq!(
        c.post("contacts", json!({"lastname": "Sentinel"})).status,
        204
    );
    assert_eq!(emu.wait_for_deliveries(2, Duration::from_secs(10)).len(), 2);
    let tables: Vec<String> = hook
        .received()
        .iter()
        .map(|r| {
            r.body["PrimaryEntityName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(tables, vec!["account", "contact"]);
}

#[test]
fn failing_synchronous_webhook_fails_the_write_and_keeps_no_row() {
    let (emu, c) = start();
    let hook = Listener::start(500);
    register(
        &c,
        &hook.url,
        5,
        "<settings/>",
        "Create",
        "account",
        0,
        None,
    );
    let r = c.post("accounts", json!({"name": "Never Stored"}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_code(), "0x80040265");
    let left = c.get("accounts?$filter=name eq 'Never Stored'", &[]).json();
    assert_eq!(left["value"].as_array().map(Vec::len), Some(0));
    let d = emu.webhook_deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, 500);
    assert_eq!(hook.received()[0].body["Mode"], 0);
}

#[test]
fn unavailable_endpoint_gets_exactly_one_retry() {
    let (emu, c) = start();
    let hook = Listener::start(503);
    register(
        &c,
        &hook.url,
        5,
        "<settings/>",
        "Create",
        "account",
        1,
        None,
    );
    assert_eq!(c.post("accounts", json!({"name": "Retry"})).status, 204);
    let d = emu.wait_for_deliveries(1, Duration::from_secs(10));
    assert_eq!(d[0].status, 503);
    assert_eq!(d[0].attempts, 2);
    assert_eq!(hook.received().len(), 2);
}
