//! File columns ("Use file column data",
//! learn.microsoft.com/power-apps/developer/data-platform/file-column-data) and Dataverse search
//! ("Search for Dataverse records", learn.microsoft.com/power-apps/developer/data-platform/search/overview)
//! over HTTP, checked in the emulator's data.

use crate::support;

use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};
use support::{Answer, Client};

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 5,
            ..Config::default()
        },
        0,
    )
    .expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(60));
    (emu, c)
}

/// The id of the first seeded project.
fn project(emu: &Emulator) -> String {
    emu.table("new_projects")[0]["new_projectid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A binary answer: status, headers, bytes.
struct Bytes {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Bytes {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_bytes(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Bytes {
    let mut r = r.expect("transport error");
    Bytes {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: r
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default(),
    }
}

fn patch_bytes(c: &Client, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Bytes {
    let mut req = c
        .agent
        .patch(c.url(url))
        .header("Authorization", format!("Bearer {}", c.token));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    read_bytes(req.send(body))
}

fn get_bytes(c: &Client, url: &str, headers: &[(&str, &str)]) -> Bytes {
    let mut req = c
        .agent
        .get(c.url(url))
        .header("Authorization", format!("Bearer {}", c.token));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    read_bytes(req.call())
}

fn post(c: &Client, path: &str, body: &Value) -> Answer {
    c.request("POST", path, "application/json", &body.to_string(), &[])
}

/// Bytes that differ from one position to the next, so a misplaced chunk shows.
fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_file_uploaded_in_one_request_is_stored_with_its_name_and_read_back() {
    let (emu, c) = start();
    let id = project(&emu);
    let data = sample(10_000);
    let up = patch_bytes(
        &c,
        &format!("new_projects({id})/new_contract"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("x-ms-file-name", "contract.pdf"),
        ],
        &data,
    );
    assert_eq!(up.status, 204, "{}", String::from_utf8_lossy(&up.body));
    let stored = emu.file("new_projects", &id, "new_contract").unwrap();
    assert_eq!(stored.name, "contract.pdf");
    assert_eq!(stored.mime_type, "application/pdf");
    assert_eq!(stored.bytes, data);

    // The row holds the file id and the name ("Behavior when retrieving").
    let row = c.get(
        &format!("new_projects({id})?$select=new_contract,new_contract_name"),
        &[],
    );
    let row = row.json();
    assert_eq!(row["new_contract_name"], "contract.pdf");
    assert!(row["new_contract"].as_str().is_some_and(|s| s.len() == 36));

    let down = get_bytes(&c, &format!("new_projects({id})/new_contract/$value"), &[]);
    assert_eq!(down.status, 200);
    assert_eq!(down.body, data);
    assert_eq!(down.header("x-ms-file-name"), Some("contract.pdf"));
    assert_eq!(down.header("x-ms-file-size"), Some("10000"));
    assert_eq!(down.header("mimetype"), Some("application/pdf"));
}

#[test]
fn a_file_uploaded_in_chunks_is_whole_after_the_last_chunk_and_a_repeated_chunk_changes_nothing() {
    let (emu, c) = start();
    let id = project(&emu);
    let data = sample(9 * 1024 * 1024 + 17);
    let first = patch_bytes(
        &c,
        &format!("new_projects({id})/new_contract?x-ms-file-name=big.bin"),
        &[("x-ms-transfer-mode", "chunked")],
        b"",
    );
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ms-chunk-size"), Some("4194304"));
    assert_eq!(first.header("Accept-Ranges"), Some("bytes"));
    let location = first.header("Location").unwrap().to_string();
    assert!(location.contains("sessiontoken="), "{location}");

    let chunk = 4 * 1024 * 1024;
    let total = data.len();
    let mut statuses = Vec::new();
    for start in (0..total).step_by(chunk) {
        let end = (start + chunk).min(total) - 1;
        let range = format!("bytes {start}-{end}/{total}");
        let r = patch_bytes(
            &c,
            &location,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
                ("x-ms-file-name", "big.bin"),
            ],
            &data[start..=end],
        );
        statuses.push(r.status);
    }
    assert_eq!(statuses, [206, 206, 204]);
    let stored = emu.file("new_project", &id, "new_contract").unwrap();
    assert_eq!(stored.name, "big.bin");
    assert_eq!(stored.bytes.len(), total);
    assert!(stored.bytes == data);
    let versions = emu.changes_since(0).len();

    // The last chunk again (a retry): answered as before, nothing written.
    let start = 8 * 1024 * 1024;
    let range = format!("bytes {start}-{}/{total}", total - 1);
    let again = patch_bytes(
        &c,
        &location,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &range),
        ],
        &data[start..],
    );
    assert_eq!(again.status, 204);
    assert_eq!(emu.changes_since(0).len(), versions);

    // Downloaded by range: 206 with the slice and the headers.
    let part = get_bytes(
        &c,
        &format!("new_projects({id})/new_contract/$value"),
        &[("Range", "bytes=4194304-8388607")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[4_194_304..8_388_608]);
    assert_eq!(part.header("x-ms-chunk-size"), Some("4194304"));
    assert_eq!(part.header("x-ms-file-size"), Some(&*total.to_string()));
}

#[test]
fn a_file_over_the_columns_maximum_size_is_refused_with_the_documented_error() {
    let (emu, c) = start();
    let id = project(&emu);
    let too_big = vec![0u8; 32_768 * 1024 + 1];
    let r = patch_bytes(
        &c,
        &format!("new_projects({id})/new_contract"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("x-ms-file-name", "huge.bin"),
        ],
        &too_big,
    );
    assert_eq!(r.status, 400);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "0x80044a02");
    assert_eq!(body["error"]["message"], "Attachment file size is too big.");
    assert!(emu.file("new_projects", &id, "new_contract").is_none());

    // The chunked way checks the size the first chunk announces.
    let first = patch_bytes(
        &c,
        &format!("new_projects({id})/new_contract"),
        &[
            ("x-ms-transfer-mode", "chunked"),
            ("x-ms-file-name", "huge.bin"),
        ],
        b"",
    );
    let location = first.header("Location").unwrap().to_string();
    let r = patch_bytes(
        &c,
        &location,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &format!("bytes 0-9/{}", too_big.len())),
        ],
        &too_big[..10],
    );
    assert_eq!(r.status, 400);
}

#[test]
fn an_upload_without_a_file_name_or_with_a_bad_range_is_refused_naming_what_is_wrong() {
    let (emu, c) = start();
    let id = project(&emu);
    let r = patch_bytes(
        &c,
        &format!("new_projects({id})/new_contract"),
        &[("Content-Type", "application/octet-stream")],
        b"abc",
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("x-ms-file-name"));

    let first = patch_bytes(
        &c,
        &format!("new_projects({id})/new_contract"),
        &[
            ("x-ms-transfer-mode", "chunked"),
            ("x-ms-file-name", "a.txt"),
        ],
        b"",
    );
    let location = first.header("Location").unwrap().to_string();
    let r = patch_bytes(
        &c,
        &location,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", "bytes 0-9"),
        ],
        b"0123456789",
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("Content-Range"));
    assert!(emu.file("new_projects", &id, "new_contract").is_none());
}

#[test]
fn a_file_is_deleted_by_delete_on_the_column_and_by_the_delete_file_message() {
    let (emu, c) = start();
    let id = project(&emu);
    let put = |name: &str| {
        let r = patch_bytes(
            &c,
            &format!("new_projects({id})/new_contract"),
            &[
                ("Content-Type", "application/octet-stream"),
                ("x-ms-file-name", name),
            ],
            b"hello",
        );
        assert_eq!(r.status, 204);
    };
    put("a.txt");
    let r = c.delete_with(&format!("new_projects({id})/new_contract"), &[]);
    assert_eq!(r.status, 204);
    assert!(emu.file("new_projects", &id, "new_contract").is_none());
    let row = c.get(
        &format!("new_projects({id})?$select=new_contract_name"),
        &[],
    );
    assert_eq!(row.json()["new_contract_name"], Value::Null);
    let gone = get_bytes(&c, &format!("new_projects({id})/new_contract/$value"), &[]);
    assert_eq!(gone.status, 404);

    put("b.txt");
    let file_id = c
        .get(&format!("new_projects({id})?$select=new_contract"), &[])
        .json()["new_contract"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(&c, "DeleteFile", &json!({"FileId": file_id}));
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(emu.file("new_projects", &id, "new_contract").is_none());
}

#[test]
fn the_block_messages_upload_and_download_a_file() {
    let (emu, c) = start();
    let id = project(&emu);
    let target = json!({"new_projectid": id, "@odata.type": "Microsoft.Dynamics.CRM.new_project"});
    let init = post(
        &c,
        "InitializeFileBlocksUpload",
        &json!({"Target": target, "FileName": "notes.txt", "FileAttributeName": "new_contract"}),
    );
    assert_eq!(init.status, 200, "{}", init.body);
    let token = init.json()["FileContinuationToken"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let blocks = [b"first block ".as_slice(), b"second block".as_slice()];
    let ids: Vec<String> = (0..2)
        .map(|i| b64.encode(format!("block-{i:04}")))
        .collect();
    // Sent out of order: the BlockList decides the order.
    for i in [1, 0] {
        let r = post(
            &c,
            "UploadBlock",
            &json!({"BlockId": ids[i], "BlockData": b64.encode(blocks[i]), "FileContinuationToken": token}),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let commit = json!({"FileName": "notes.txt", "MimeType": "text/plain", "BlockList": ids, "FileContinuationToken": token});
    let done = post(&c, "CommitFileBlocksUpload", &commit);
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    assert_eq!(done["FileSizeInBytes"], 24);
    let stored = emu.file("new_projects", &id, "new_contract").unwrap();
    assert_eq!(stored.bytes, b"first block second block");
    assert_eq!(stored.mime_type, "text/plain");
    // Committing again stores nothing twice and answers the same file.
    let again = post(&c, "CommitFileBlocksUpload", &commit).json();
    assert_eq!(again["FileId"], done["FileId"]);

    let init = post(
        &c,
        "InitializeFileBlocksDownload",
        &json!({"Target": target, "FileAttributeName": "new_contract"}),
    );
    assert_eq!(init.status, 200, "{}", init.body);
    let init = init.json();
    assert_eq!(init["FileSizeInBytes"], 24);
    assert_eq!(init["FileName"], "notes.txt");
    assert_eq!(init["IsChunkingSupported"], true);
    let block = post(
        &c,
        "DownloadBlock",
        &json!({"Offset": 6, "BlockLength": 5, "FileContinuationToken": init["FileContinuationToken"]}),
    );
    assert_eq!(block.status, 200, "{}", block.body);
    assert_eq!(
        b64.decode(block.json()["Data"].as_str().unwrap()).unwrap(),
        b"block"
    );
}

#[test]
fn file_columns_are_described_in_metadata_and_cannot_be_set_in_an_update() {
    let (emu, c) = start();
    let meta = c.get(
        "EntityDefinitions(LogicalName='new_project')/Attributes(LogicalName='new_contract')/Microsoft.Dynamics.CRM.FileAttributeMetadata?$select=MaxSizeInKB",
        &[],
    );
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_eq!(meta.json()["MaxSizeInKB"], 32_768);
    let image = c.get(
        "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='entityimage')/Microsoft.Dynamics.CRM.ImageAttributeMetadata",
        &[],
    );
    assert_eq!(image.status, 200, "{}", image.body);
    assert_eq!(image.json()["CanStoreFullImage"], false);

    let id = project(&emu);
    let r = c.request(
        "PATCH",
        &format!("new_projects({id})"),
        "application/json",
        r#"{"new_contract":"00000000-0000-0000-0000-000000000001"}"#,
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("new_contract"), "{}", r.body);
}

/// The JSON text of a search operation's `response` property.
fn response(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", a.body);
    let outer = a.json();
    serde_json::from_str(outer["response"].as_str().expect("response is a string"))
        .expect("response holds JSON")
}

#[test]
fn a_search_query_finds_rows_by_word_with_highlights_scores_and_the_count() {
    let (emu, c) = start();
    let account = emu.table("accounts")[0].clone();
    let name = account["name"].as_str().unwrap().to_string();
    let word = name.split_whitespace().next().unwrap().to_string();
    let entities = json!([{"name": "account", "selectColumns": ["name", "createdon"], "searchColumns": ["name"]}]);
    let r = post(
        &c,
        "searchquery",
        &json!({"search": word, "count": true, "entities": entities.to_string()}),
    );
    let body = response(&r);
    assert_eq!(body["Error"], Value::Null);
    let value = body["Value"].as_array().unwrap();
    assert!(!value.is_empty());
    assert_eq!(body["Count"], value.len());
    let first = value
        .iter()
        .find(|v| v["Id"] == account["accountid"])
        .expect("the account is found");
    assert_eq!(first["EntityName"], "account");
    assert_eq!(first["Attributes"]["@search.objecttypecode"], 1);
    assert_eq!(first["Attributes"]["name"], name.as_str());
    assert!(first["Attributes"]["createdon@OData.Community.Display.V1.FormattedValue"].is_string());
    let highlight = first["Highlights"]["name"][0].as_str().unwrap();
    assert!(
        highlight.contains(&format!("{{crmhit}}{word}{{/crmhit}}")),
        "{highlight}"
    );
    assert!(first["Score"].as_f64().unwrap() > 0.0);
    // Every result holds the word in its name.
    for v in value {
        let n = v["Attributes"]["name"].as_str().unwrap().to_lowercase();
        assert!(n.contains(&word.to_lowercase()), "{n}");
    }
}

#[test]
fn search_pages_with_top_and_skip_filters_and_counts_facets() {
    let (emu, c) = start();
    // Every seeded account and contact has an email at example.com.
    let entities_email = json!([
        {"name": "account", "searchColumns": ["emailaddress1"]},
        {"name": "contact", "searchColumns": ["emailaddress1"], "selectColumns": ["fullname"]}
    ]);
    let base = json!({"search": "example", "count": true, "entities": entities_email.to_string()});
    let whole = response(&post(&c, "searchquery", &base));
    let total = whole["Count"].as_u64().unwrap();
    assert_eq!(
        total as usize,
        emu.table("accounts").len() + emu.table("contacts").len()
    );

    let mut paged = base.clone();
    paged["top"] = json!(3);
    paged["skip"] = json!(2);
    let page = response(&post(&c, "searchquery", &paged));
    assert_eq!(page["Value"].as_array().unwrap().len(), 3);
    assert_eq!(page["Count"], total);
    assert_eq!(page["Value"][0], whole["Value"][2]);

    let mut faceted = base.clone();
    faceted["facets"] = json!(json!(["entityname,count:10"]).to_string());
    let facets = response(&post(&c, "searchquery", &faceted))["Facets"]["entityname"].clone();
    let counts: Vec<(String, u64)> = facets
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["value"].as_str().unwrap().to_string(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(counts.contains(&("account".into(), emu.table("accounts").len() as u64)));
    assert!(counts.contains(&("contact".into(), emu.table("contacts").len() as u64)));

    let mut filtered = base.clone();
    filtered["filter"] = json!("statecode eq 0");
    let active = response(&post(&c, "searchquery", &filtered));
    let expected = emu
        .table("accounts")
        .iter()
        .chain(emu.table("contacts").iter())
        .filter(|r| r["statecode"] == 0)
        .count();
    assert_eq!(active["Count"], expected);
}

#[test]
fn search_refuses_bad_parameters_by_name_and_what_it_does_not_emulate_with_501() {
    let (_emu, c) = start();
    let missing = post(&c, "searchquery", &json!({"count": true}));
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("'search'"), "{}", missing.body);
    let long = post(&c, "searchquery", &json!({"search": "x".repeat(101)}));
    assert_eq!(long.status, 400);
    let top = post(&c, "searchquery", &json!({"search": "abc", "top": 101}));
    assert_eq!(top.status, 400);
    assert!(top.body.contains("'top'"), "{}", top.body);
    let table = post(
        &c,
        "searchquery",
        &json!({"search": "abc", "entities": "[{\"name\":\"nosuchtable\"}]"}),
    );
    assert_eq!(table.status, 400);
    assert!(table.body.contains("nosuchtable"), "{}", table.body);
    let lucene = post(
        &c,
        "searchquery",
        &json!({"search": "abc~", "options": "{'querytype': 'lucene'}"}),
    );
    assert_eq!(lucene.status, 501);
    let fuzzy = post(
        &c,
        "searchsuggest",
        &json!({"search": "abc", "fuzzy": true}),
    );
    assert_eq!(fuzzy.status, 501);
    let range = post(
        &c,
        "searchquery",
        &json!({"search": "abc", "facets": "[\"createdon,interval:day\"]"}),
    );
    assert_eq!(range.status, 501);
}

#[test]
fn suggest_and_autocomplete_complete_what_is_typed() {
    let (emu, c) = start();
    // A last name of letters only, so what is typed is one word.
    let last = emu
        .table("contacts")
        .iter()
        .filter_map(|c| c["lastname"].as_str().map(str::to_string))
        .find(|l| l.chars().all(char::is_alphabetic))
        .unwrap();
    let typed: String = last.chars().take(3).collect();
    let entities =
        json!([{"name": "contact", "searchColumns": ["lastname"], "selectColumns": ["fullname"]}]);
    let s = response(&post(
        &c,
        "searchsuggest",
        &json!({"search": typed, "top": 3, "entities": entities.to_string()}),
    ));
    let value = s["Value"].as_array().unwrap();
    assert!(!value.is_empty() && value.len() <= 3);
    for v in value {
        assert!(v["Text"].as_str().unwrap().starts_with("{crmhit}"), "{v}");
        assert_eq!(v["Document"]["@search.entityname"], "contact");
        assert_eq!(v["Document"]["@search.objecttypecode"], 2);
        assert!(v["Document"]["@search.objectid"].is_string());
    }
    let a = response(&post(
        &c,
        "searchautocomplete",
        &json!({"search": typed, "entities": entities.to_string()}),
    ));
    let completion = a["Value"].as_str().unwrap();
    assert!(completion.starts_with("{crmhit}"), "{completion}");
    assert!(
        completion.contains(&typed.to_lowercase()),
        "{completion} for {typed}"
    );
}

#[test]
fn search_status_and_statistics_describe_the_index_and_the_2_0_endpoint_answers_as_the_web_api() {
    let (_emu, c) = start();
    let status = response(&c.get("searchstatus", &[]));
    assert_eq!(status["value"]["status"], "provisioned");
    let tables: Vec<&str> = status["value"]["entitystatusresults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entitylogicalname"].as_str().unwrap())
        .collect();
    assert!(tables.contains(&"account") && tables.contains(&"contact"));
    let stats = response(&c.get("searchstatistics", &[]));
    assert!(stats["value"]["documentcount"].as_u64().unwrap() > 0);

    let base = c.api.replace("/api/data/v9.2", "");
    let v2 = c.request(
        "POST",
        &format!("{base}/api/search/v2.0/query"),
        "application/json",
        &json!({"search": "example", "count": true}).to_string(),
        &[],
    );
    let web_api = post(
        &c,
        "searchquery",
        &json!({"search": "example", "count": true}),
    );
    assert_eq!(response(&v2)["Count"], response(&web_api)["Count"]);
    let legacy = c.request(
        "POST",
        &format!("{base}/api/search/v1.0/query"),
        "application/json",
        &json!({"search": "example"}).to_string(),
        &[],
    );
    assert_eq!(legacy.status, 501);
}

#[test]
fn a_read_of_the_file_property_answers_the_content_as_base64_by_range() {
    let (emu, c) = start();
    let id = project(&emu);
    let data = sample(5000);
    let up = patch_bytes(
        &c,
        &format!("new_projects({id})/new_contract"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("x-ms-file-name", "five.bin"),
        ],
        &data,
    );
    assert_eq!(up.status, 204);
    // As DynamicsWebApi's downloadFile asks for it.
    let part = c.get(
        &format!("new_projects({id})/new_contract?size=full"),
        &[("Range", "bytes=1000-2999")],
    );
    assert_eq!(part.status, 206, "{}", part.body);
    assert_eq!(part.header("x-ms-file-size"), Some("5000"));
    assert_eq!(part.header("x-ms-file-name"), Some("five.bin"));
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(part.json()["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, &data[1000..3000]);
}

#[test]
fn a_note_with_a_document_gets_its_size_and_is_refused_over_the_upload_limit() {
    let (emu, c) = start();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let file = sample(3000);
    let r = c.request(
        "POST",
        "annotations",
        "application/json",
        &json!({
            "subject": "Signed contract",
            "filename": "contract.pdf",
            "mimetype": "application/pdf",
            "documentbody": b64.encode(&file),
        })
        .to_string(),
        &[("Prefer", "return=representation")],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["annotationid"].as_str().unwrap().to_string();
    let note = emu
        .table("annotations")
        .into_iter()
        .find(|n| n["annotationid"] == id.as_str())
        .unwrap();
    assert_eq!(note["filesize"], 3000);
    assert_eq!(note["isdocument"], true);
    assert_eq!(
        b64.decode(note["documentbody"].as_str().unwrap()).unwrap(),
        file
    );

    // Over Organization.MaxUploadFileSize (5 MB of base64): the documented error, no note.
    let before = emu.table("annotations").len();
    let too_big = "A".repeat(5_242_880 + 4);
    let r = c.request(
        "POST",
        "annotations",
        "application/json",
        &json!({"subject": "Too big", "filename": "big.bin", "documentbody": too_big}).to_string(),
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "0x80044a02");
    assert_eq!(emu.table("annotations").len(), before);

    let r = c.request(
        "POST",
        "annotations",
        "application/json",
        &json!({"subject": "Not base64", "documentbody": "not base64!"}).to_string(),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("documentbody"), "{}", r.body);
}

/// The start of a PNG of the given size: what the emulator reads of an image.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
    b
}

#[test]
fn an_image_uploaded_to_an_image_column_is_its_thumbnail_with_its_id_timestamp_and_url() {
    let (emu, c) = start();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let contact = emu.table("contacts")[0]["contactid"]
        .as_str()
        .unwrap()
        .to_string();
    let face = png(100, 100);
    let up = patch_bytes(
        &c,
        &format!("contacts({contact})/entityimage"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("x-ms-file-name", "face.png"),
        ],
        &face,
    );
    assert_eq!(up.status, 204, "{}", String::from_utf8_lossy(&up.body));
    let row = emu
        .table("contacts")
        .into_iter()
        .find(|r| r["contactid"] == contact.as_str())
        .unwrap();
    assert_eq!(
        b64.decode(row["entityimage"].as_str().unwrap()).unwrap(),
        face
    );
    let image_id = row["entityimageid"].as_str().unwrap().to_string();
    let ts = row["entityimage_timestamp"].as_i64().unwrap();
    assert_eq!(
        row["entityimage_url"],
        format!(
            "/Image/download.aspx?Entity=contact&Attribute=entityimage&Id={image_id}&Timestamp={ts}"
        )
        .as_str()
    );

    let thumb = get_bytes(&c, &format!("contacts({contact})/entityimage/$value"), &[]);
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.body, face);
    assert_eq!(thumb.header("mimetype"), Some("image/png"));
    assert_eq!(thumb.header("x-ms-file-name"), Some("face.png"));
    // entityimage keeps no full-size image: "the response will return 204 No Content".
    let full = get_bytes(
        &c,
        &format!("contacts({contact})/entityimage/$value?size=full"),
        &[],
    );
    assert_eq!(full.status, 204);

    // Set as base64 in an update, with new companions.
    let smaller = png(48, 48);
    let r = c.request(
        "PATCH",
        &format!("contacts({contact})"),
        "application/json",
        &json!({"entityimage": b64.encode(&smaller)}).to_string(),
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let row = c
        .get(
            &format!("contacts({contact})?$select=entityimage,entityimageid"),
            &[],
        )
        .json();
    assert_eq!(row["entityimage"], b64.encode(&smaller).as_str());
    assert_ne!(row["entityimageid"], image_id.as_str());

    let r = c.delete_with(&format!("contacts({contact})/entityimage"), &[]);
    assert_eq!(r.status, 204);
    let row = c
        .get(
            &format!("contacts({contact})?$select=entityimage,entityimageid,entityimage_url"),
            &[],
        )
        .json();
    assert_eq!(row["entityimage"], Value::Null);
    assert_eq!(row["entityimageid"], Value::Null);
    assert_eq!(row["entityimage_url"], Value::Null);
}

#[test]
fn images_that_are_not_images_or_need_resizing_are_refused() {
    let (emu, c) = start();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let account = emu.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let pdf = c.request(
        "PATCH",
        &format!("accounts({account})"),
        "application/json",
        &json!({"entityimage": b64.encode(b"%PDF-1.7 not an image")}).to_string(),
        &[],
    );
    assert_eq!(pdf.status, 400);
    assert_eq!(pdf.error_code(), "0x80072553");
    // A 300x428 image would be cropped and resized: the emulator does not, and says so.
    let big = patch_bytes(
        &c,
        &format!("accounts({account})/entityimage"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("x-ms-file-name", "big.png"),
        ],
        &png(300, 428),
    );
    assert_eq!(big.status, 501);
    let row = emu
        .table("accounts")
        .into_iter()
        .find(|r| r["accountid"] == account.as_str())
        .unwrap();
    assert_eq!(row["entityimage"], Value::Null);
}

#[test]
fn a_top_level_filter_applies_to_the_tables_that_have_its_columns() {
    let (emu, c) = start();
    let billable: Vec<Value> = emu
        .table("new_projects")
        .into_iter()
        .filter(|p| p["new_billable"] == true)
        .collect();
    let word = billable[0]["new_name"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // Only projects have new_billable: the other searched tables have nothing to find.
    let r = response(&post(
        &c,
        "searchquery",
        &json!({"search": word, "count": true, "filter": "new_billable eq true"}),
    ));
    let value = r["Value"].as_array().unwrap();
    assert!(!value.is_empty());
    let ids: Vec<&Value> = billable.iter().map(|p| &p["new_projectid"]).collect();
    for v in value {
        assert_eq!(v["EntityName"], "new_project", "{v}");
        assert!(ids.contains(&&v["Id"]), "{v}");
    }
    let bad = post(
        &c,
        "searchquery",
        &json!({"search": "example", "filter": "statecode eqq 0"}),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}
