use dynamics_host::ErrorCode;
use e2e_tests::{Answered, connected, emulator, host, json};

#[test]
fn raw_request_sends_method_path_query_headers_and_json_body() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let input = serde_json::json!({
        "url": "/api/data/v9.2/accounts",
        "method": "POST",
        "data": {"name": "Raw Request Co", "accountnumber": "RAW-1"},
        "headers": {"Prefer": "return=representation"},
        "queryParams": [{"key": "$select", "value": "name,accountnumber"}],
    });

    let output = host()
        .invoke("raw-request", &connection, &input.to_string())
        .unwrap();

    let output = json(&output);
    assert_eq!(output["status"], 201);
    assert_eq!(output["data"]["name"], "Raw Request Co");
    let requests = emulator.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/api/data/v9.2/accounts?%24select=name%2Caccountnumber"
    );
    assert_eq!(request.header("prefer"), Some("return=representation"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let token = connection.token.unwrap().access_token;
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"name": "Raw Request Co", "accountnumber": "RAW-1"})
    );
    let stored = emulator.table("accounts");
    assert!(
        stored
            .iter()
            .any(|row| row["accountnumber"] == "RAW-1" && row["name"] == "Raw Request Co")
    );
}

#[test]
fn raw_request_paths_without_a_slash_resolve_under_the_web_api_root() {
    let emulator = emulator();
    let input = r#"{"url": "WhoAmI", "method": "GET"}"#;

    let output = host()
        .invoke("raw-request-crm", &connected(&emulator), input)
        .unwrap();

    assert_eq!(
        json(&output)["data"]["UserId"],
        emulator.credentials().application_user_id.as_str()
    );
    assert_eq!(emulator.requests()[0].path, "/api/data/v9.2/WhoAmI");
}

#[test]
fn raw_request_returns_text_and_binary_bodies_as_asked() {
    let emulator = emulator();
    let connection = connected(&emulator);
    let text = host()
        .invoke(
            "raw-request",
            &connection,
            r#"{"url": "/api/data/v9.2/WhoAmI", "method": "GET", "responseType": "text"}"#,
        )
        .unwrap();
    let body = json(&text)["data"].as_str().unwrap().to_string();
    assert!(body.starts_with('{') && body.contains("\"UserId\""));

    let binary = host()
        .invoke(
            "raw-request",
            &connection,
            r#"{"url": "/api/data/v9.2/WhoAmI", "method": "GET", "responseType": "binary"}"#,
        )
        .unwrap();
    let encoded = json(&binary)["data"].as_str().unwrap().to_string();
    assert_eq!(dataverse_base64(&encoded), body.as_bytes());
}

#[test]
fn raw_request_sends_form_and_file_data_as_multipart() {
    let emulator = emulator();
    let input = serde_json::json!({
        "url": "/api/data/v9.2/annotations",
        "method": "POST",
        "formData": {"subject": "Quarterly report"},
        "fileData": {"document": "data:text/plain;base64,aGVsbG8gd29ybGQ="},
        "fileDataFileNames": {"document": "report.txt"},
    });

    // The emulator does not take multipart bodies; what matters is what was sent.
    let _ = host()
        .invoke("raw-request", &connected(&emulator), &input.to_string())
        .answered();

    let request = &emulator.requests()[0];
    let content_type = request.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("a multipart content type");
    let body = String::from_utf8(request.body.clone()).unwrap();
    assert!(
        body.contains(
            "Content-Disposition: form-data; name=\"subject\"\r\n\r\nQuarterly report\r\n"
        )
    );
    assert!(body.contains(
        "Content-Disposition: form-data; name=\"document\"; filename=\"report.txt\"\r\nContent-Type: text/plain\r\n\r\nhello world\r\n"
    ));
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));
}

#[test]
fn raw_request_reports_dataverse_errors_with_status_and_code() {
    let emulator = emulator();
    let input = r#"{"url": "/api/data/v9.2/accounts(00000000-0000-0000-0000-0000000000ff)", "method": "GET"}"#;

    let failure = host()
        .invoke("raw-request", &connected(&emulator), input)
        .answered()
        .unwrap_err();

    assert_eq!(failure.code, ErrorCode::NotFound);
    assert_eq!(failure.http_status, Some(404));
    assert_eq!(failure.service_code.as_deref(), Some("0x80040217"));
    assert!(failure.hint.unwrap().contains("no record has that ID"));
}

#[test]
fn raw_request_retries_server_errors_as_the_retry_inputs_say() {
    let emulator = emulator();
    emulator.faults().unavailable(2);
    let input =
        r#"{"url": "/api/data/v9.2/WhoAmI", "method": "GET", "maxRetries": 2, "retryDelayMS": 10}"#;

    let output = host()
        .invoke("raw-request", &connected(&emulator), input)
        .unwrap();

    assert_eq!(json(&output)["status"], 200);
    assert_eq!(emulator.requests().len(), 3);
}

#[test]
fn raw_request_without_retries_gives_up_at_once_and_says_how_many_attempts() {
    let emulator = emulator();
    emulator.faults().unavailable(3);
    let once = host()
        .invoke(
            "raw-request",
            &connected(&emulator),
            r#"{"url": "WhoAmI", "method": "GET"}"#,
        )
        .answered()
        .unwrap_err();
    assert_eq!(once.code, ErrorCode::Unavailable);
    assert_eq!(emulator.requests().len(), 1);

    let twice = host()
        .invoke(
            "raw-request",
            &connected(&emulator),
            r#"{"url": "WhoAmI", "method": "GET", "maxRetries": 1}"#,
        )
        .answered()
        .unwrap_err();
    assert!(
        twice.message.ends_with("(after 2 attempts)"),
        "{}",
        twice.message
    );
    assert_eq!(emulator.requests().len(), 3);
}

fn dataverse_base64(text: &str) -> Vec<u8> {
    dataverse::encoding::base64_decode(text).expect("valid base64")
}
