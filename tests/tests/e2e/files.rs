//! Upload File or Image, Download File or Image, Attach a Note and Download Note Attachment
//! through the component, checked against the bytes the emulator stored.

use dataverse::encoding::{base64_decode, base64_encode};
use dataverse_emulator::{Emulator, Fault};
use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

/// The emulator's sample table with a file column (`new_contract`, at most 32 MB).
const SET: &str = "new_projects";
const COLUMN: &str = "new_contract";

fn run(emulator: &Emulator, action: &str, input: Value) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

fn project(emulator: &Emulator) -> String {
    emulator.table(SET)[0]["new_projectid"]
        .as_str()
        .expect("a seeded project")
        .to_string()
}

/// Bytes that are not all the same, so a chunk out of place would show.
fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn upload(emulator: &Emulator, id: &str, name: &str, content: &[u8]) -> Value {
    run(
        emulator,
        "upload-file",
        json!({
            "entityType": SET, "entityId": id, "column": COLUMN,
            "fileName": name, "fileContent": base64_encode(content),
        }),
    )
    .unwrap_or_else(|failure| panic!("upload: {failure:?}"))
}

#[test]
fn a_small_file_is_stored_in_one_request_and_downloads_back_identical() {
    let emulator = emulator();
    let id = project(&emulator);
    let content = bytes(10_000);
    let uploaded = upload(&emulator, &id, "contract.pdf", &content);
    assert_eq!(uploaded["chunks"], 1);
    assert_eq!(uploaded["size"], 10_000);
    assert_eq!(uploaded["kind"], "file");

    let stored = emulator.file(SET, &id, COLUMN).expect("the file is stored");
    assert_eq!(stored.name, "contract.pdf");
    assert_eq!(stored.bytes, content);
    let patches: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|request| request.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "one PATCH carries the whole file");

    let downloaded = run(
        &emulator,
        "download-file",
        json!({"entityType": SET, "entityId": id, "column": COLUMN}),
    )
    .unwrap();
    assert_eq!(downloaded["fileName"], "contract.pdf");
    assert_eq!(downloaded["size"], 10_000);
    assert_eq!(
        base64_decode(downloaded["content"].as_str().unwrap()).unwrap(),
        content
    );

    // A byte range: 100 bytes from byte 5,000.
    let part = run(
        &emulator,
        "download-file",
        json!({"entityType": SET, "entityId": id, "column": COLUMN, "offset": 5000, "length": 100}),
    )
    .unwrap();
    assert_eq!(part["offset"], 5000);
    assert_eq!(part["length"], 100);
    assert_eq!(
        base64_decode(part["content"].as_str().unwrap()).unwrap(),
        &content[5000..5100]
    );
}

#[test]
fn a_file_over_4_mb_goes_in_4_mb_chunks_and_downloads_back_identical_in_ranges() {
    let emulator = emulator();
    let id = project(&emulator);
    let content = bytes(4 * 1024 * 1024 + 123_456);
    emulator.clear_requests();
    let uploaded = upload(&emulator, &id, "big.bin", &content);
    assert_eq!(uploaded["chunks"], 2);
    let stored = emulator.file(SET, &id, COLUMN).expect("the file is stored");
    assert_eq!(stored.bytes.len(), content.len());
    assert!(
        stored.bytes == content,
        "the stored bytes are the uploaded ones"
    );
    let ranges: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter_map(|request| {
            request
                .headers
                .iter()
                .find(|(name, _)| name == "content-range")
                .map(|(_, value)| value.clone())
        })
        .collect();
    assert_eq!(
        ranges,
        [
            format!("bytes 0-4194303/{}", content.len()),
            format!("bytes 4194304-{}/{}", content.len() - 1, content.len()),
        ]
    );

    emulator.clear_requests();
    let downloaded = run(
        &emulator,
        "download-file",
        json!({"entityType": SET, "entityId": id, "column": COLUMN}),
    )
    .unwrap();
    assert_eq!(downloaded["size"], content.len());
    assert!(base64_decode(downloaded["content"].as_str().unwrap()).unwrap() == content);
    let gets = emulator
        .requests()
        .into_iter()
        .filter(|request| request.path.ends_with("/$value"))
        .count();
    assert_eq!(gets, 2, "two 4 MB ranges");
}

#[test]
fn an_upload_whose_answer_is_lost_is_sent_again_and_leaves_one_file() {
    let emulator = emulator();
    let id = project(&emulator);
    let content = bytes(2_000);
    emulator
        .faults()
        // A 204 has no body to cut, so the answer is lost as a broken JSON body after the
        // upload was applied.
        .inject_on(Fault::MalformedJson, 1, &format!("/{COLUMN}"));
    let uploaded = upload(&emulator, &id, "retry.txt", &content);
    assert_eq!(uploaded["size"], 2_000);
    let stored = emulator.file(SET, &id, COLUMN).expect("the file is stored");
    assert_eq!(stored.bytes, content);
    assert_eq!(stored.name, "retry.txt");
    let patches = emulator
        .requests()
        .into_iter()
        .filter(|request| request.method == "PATCH")
        .count();
    assert_eq!(
        patches,
        2,
        "the lost attempt and its retry: {:?}",
        emulator
            .requests()
            .iter()
            .map(|r| (r.method.clone(), r.path.clone(), r.status, r.fault.clone()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn bad_file_input_is_refused_by_field_before_any_request() {
    let emulator = emulator();
    let id = project(&emulator);
    let base = json!({
        "entityType": SET, "entityId": id, "column": COLUMN,
        "fileName": "a.txt", "fileContent": "aGVsbG8=",
    });
    let cases = [
        ("fileContent", json!("not base64!")),
        ("fileContent", json!("")),
        ("fileName", json!("../etc/passwd")),
        ("fileName", json!("")),
        ("column", json!("new contract")),
        ("entityId", json!("not-a-key")),
    ];
    for (field, value) in cases {
        emulator.clear_requests();
        let mut input = base.clone();
        input[field] = value.clone();
        let failure = run(&emulator, "upload-file", input).unwrap_err();
        assert_eq!(failure.code, ErrorCode::InvalidInput, "{field} = {value}");
        assert_eq!(failure.field.as_deref(), Some(field), "{field} = {value}");
        assert!(
            emulator.requests().is_empty(),
            "{field} = {value}: nothing is sent"
        );
    }
    let failure = run(
        &emulator,
        "download-file",
        json!({"entityType": SET, "entityId": id, "column": COLUMN, "length": 0}),
    )
    .unwrap_err();
    assert_eq!(failure.field.as_deref(), Some("length"));
}

#[test]
fn a_file_bigger_than_the_column_takes_is_refused_before_any_byte_is_sent() {
    let emulator = emulator();
    // accounts.entityimage keeps at most 10,240 KB.
    let account = emulator.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    emulator.clear_requests();
    let failure = run(
        &emulator,
        "upload-file",
        json!({
            "entityType": "accounts", "entityId": account, "column": "entityimage",
            "fileName": "huge.png", "fileContent": base64_encode(&vec![0u8; 10_240 * 1024 + 1]),
        }),
    )
    .unwrap_err();
    assert_eq!(failure.code, ErrorCode::InvalidInput);
    assert_eq!(failure.field.as_deref(), Some("fileContent"));
    assert!(
        failure.message.contains("at most 10485760 bytes"),
        "{}",
        failure.message
    );
    assert!(
        emulator
            .requests()
            .iter()
            .all(|request| request.method == "GET"),
        "only the column's definition was read"
    );

    // An image column stores only the documented image types.
    emulator.clear_requests();
    let failure = run(
        &emulator,
        "upload-file",
        json!({
            "entityType": "accounts", "entityId": account, "column": "entityimage",
            "fileName": "logo.svg", "fileContent": "PHN2Zy8+",
        }),
    )
    .unwrap_err();
    assert_eq!(
        failure.field.as_deref(),
        Some("fileName"),
        "{}",
        failure.message
    );
    assert!(
        emulator
            .requests()
            .iter()
            .all(|request| request.method == "GET")
    );

    // A column that is not a file or image column is named as such.
    let failure = run(
        &emulator,
        "upload-file",
        json!({
            "entityType": "accounts", "entityId": account, "column": "name",
            "fileName": "a.txt", "fileContent": "aGVsbG8=",
        }),
    )
    .unwrap_err();
    assert_eq!(failure.field.as_deref(), Some("column"));
    assert!(
        failure.message.contains("not a file or image column"),
        "{}",
        failure.message
    );
}

#[test]
fn a_note_with_a_file_is_attached_once_even_when_its_answer_is_lost() {
    let emulator = emulator();
    let account = emulator.table("accounts")[0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let notes_before = emulator.table("annotations").len();
    let content = b"signed contract".to_vec();
    let input = json!({
        "entityType": "accounts", "entityId": account,
        "fileName": "contract.txt", "fileContent": base64_encode(&content),
        "subject": "Contract", "noteText": "Signed on Friday",
        "idempotencyKey": "flow-7/attach",
    });
    emulator
        .faults()
        .inject_on(Fault::MalformedJson, 1, "/annotations");
    let attached = run(&emulator, "attach-note", input.clone()).unwrap();
    let note_id = attached["id"].as_str().unwrap().to_string();
    // The first attempt was applied and its answer lost; the retry met the note it made.
    assert_eq!(attached["alreadyCreated"], true, "{attached}");
    // A rerun with the same key finds the note instead of making another.
    let again = run(&emulator, "attach-note", input).unwrap();
    assert_eq!(again["id"], note_id.as_str());
    assert_eq!(again["alreadyCreated"], true);

    let notes = emulator.table("annotations");
    assert_eq!(notes.len(), notes_before + 1, "one note");
    let note = notes
        .iter()
        .find(|row| row["annotationid"] == note_id.as_str())
        .expect("the note is stored");
    assert_eq!(note["filename"], "contract.txt");
    assert_eq!(note["mimetype"], "text/plain");
    assert_eq!(note["subject"], "Contract");
    assert_eq!(note["_objectid_value"], account.as_str());
    assert_eq!(
        base64_decode(note["documentbody"].as_str().unwrap()).unwrap(),
        content
    );

    let downloaded = run(
        &emulator,
        "download-note-attachment",
        json!({"noteId": note_id}),
    )
    .unwrap();
    assert_eq!(downloaded["fileName"], "contract.txt");
    assert_eq!(downloaded["mimeType"], "text/plain");
    assert_eq!(
        base64_decode(downloaded["content"].as_str().unwrap()).unwrap(),
        content
    );
}

#[test]
fn the_file_columns_data_source_lists_only_file_and_image_columns() {
    let emulator = emulator();
    let choices = host()
        .choices(
            "file-columns",
            &connected(&emulator),
            &json!({"entityType": SET}).to_string(),
        )
        .answered()
        .unwrap();
    let values: Vec<&str> = choices.iter().map(|choice| choice.value.as_str()).collect();
    assert_eq!(values, [COLUMN]);
    let accounts = host()
        .choices(
            "file-columns",
            &connected(&emulator),
            &json!({"entityType": "account"}).to_string(),
        )
        .answered()
        .unwrap();
    assert!(accounts.iter().any(|choice| choice.value == "entityimage"));
    assert!(accounts.iter().all(|choice| choice.value != "name"));
}

#[test]
fn a_file_name_outside_ascii_travels_in_the_query_and_is_stored_as_given() {
    let emulator = emulator();
    let id = project(&emulator);
    emulator.clear_requests();
    let uploaded = upload(&emulator, &id, "Vertrag für Müller.pdf", b"pdf bytes");
    assert_eq!(uploaded["chunks"], 1);
    let stored = emulator.file(SET, &id, COLUMN).expect("the file is stored");
    assert_eq!(stored.name, "Vertrag für Müller.pdf");
    assert_eq!(stored.bytes, b"pdf bytes");
    let patches: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|request| request.method == "PATCH")
        .collect();
    // The chunked upload, whose first request names the file in the query, not in a header.
    assert_eq!(patches.len(), 2);
    assert!(
        patches[0].path.contains("x-ms-file-name="),
        "{}",
        patches[0].path
    );
    assert!(patches.iter().all(|request| {
        request
            .headers
            .iter()
            .all(|(name, _)| name != "x-ms-file-name")
    }));
}

#[test]
fn a_range_past_the_end_of_the_file_is_refused_naming_the_offset() {
    let emulator = emulator();
    let id = project(&emulator);
    upload(&emulator, &id, "short.txt", b"0123456789");
    let failure = run(
        &emulator,
        "download-file",
        json!({"entityType": SET, "entityId": id, "column": COLUMN, "offset": 50}),
    )
    .unwrap_err();
    assert_eq!(
        failure.field.as_deref(),
        Some("offset"),
        "{}",
        failure.message
    );
    // The last bytes, asked for with more length than is left, are what is left.
    let tail = run(
        &emulator,
        "download-file",
        json!({"entityType": SET, "entityId": id, "column": COLUMN, "offset": 7, "length": 100}),
    )
    .unwrap();
    assert_eq!(
        base64_decode(tail["content"].as_str().unwrap()).unwrap(),
        b"789"
    );
    assert_eq!(tail["size"], 10);
}

/// A PNG header of `size`×`size` pixels (the emulator reads the header, as a thumbnail maker
/// would, and keeps a square of at most 144×144 as its own thumbnail).
fn png(size: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend(size.to_be_bytes());
    bytes.extend(size.to_be_bytes());
    bytes.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

#[test]
fn an_image_column_without_full_size_images_downloads_its_thumbnail_and_says_so() {
    let emulator = emulator();
    let contact = emulator.table("contacts")[0]["contactid"]
        .as_str()
        .unwrap()
        .to_string();
    let image = png(100);
    let uploaded = run(
        &emulator,
        "upload-file",
        json!({
            "entityType": "contacts", "entityId": contact, "column": "entityimage",
            "fileName": "face.png", "fileContent": base64_encode(&image),
        }),
    )
    .unwrap_or_else(|failure| panic!("upload: {failure:?}"));
    assert_eq!(uploaded["kind"], "image");
    // Full size is the default choice, but contact.entityimage keeps no full-size image
    // (CanStoreFullImage false): the thumbnail is the image, and the output says so.
    let downloaded = run(
        &emulator,
        "download-file",
        json!({"entityType": "contacts", "entityId": contact, "column": "entityimage"}),
    )
    .unwrap_or_else(|failure| panic!("download: {failure:?}"));
    assert_eq!(downloaded["imageSize"], "thumbnail");
    assert_eq!(
        base64_decode(downloaded["content"].as_str().unwrap()).unwrap(),
        image
    );
}
