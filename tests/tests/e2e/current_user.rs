use e2e_tests::{client_credentials, emulator, host, json};

#[test]
fn get_current_user_asks_whoami_then_reads_the_systemuser_row_with_the_bearer_token() {
    let emulator = emulator();
    let credentials = emulator.credentials();
    let mut connection = client_credentials(&emulator);

    let output = host()
        .run_action("get-current-user", &mut connection, "{}")
        .unwrap();

    let output = json(&output);
    assert_eq!(output["userId"], credentials.application_user_id.as_str());
    assert_eq!(
        output["businessUnitId"],
        credentials.business_unit_id.as_str()
    );
    assert_eq!(
        output["organizationId"],
        credentials.organization_id.as_str()
    );
    assert_eq!(
        output["user"]["systemuserid"],
        credentials.application_user_id.as_str()
    );
    assert!(
        output["user"]["fullname"]
            .as_str()
            .is_some_and(|name| !name.is_empty())
    );
    assert!(output["user"].get("@odata.context").is_none());

    let token = connection.token.expect("a token was acquired").access_token;
    let requests = emulator.requests();
    let paths: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let token_path = emulator
        .token_url()
        .trim_start_matches(&emulator.base_url())
        .to_string();
    assert_eq!(
        paths,
        vec![
            ("POST", token_path.as_str()),
            ("GET", "/api/data/v9.2/WhoAmI"),
            (
                "GET",
                &*format!(
                    "/api/data/v9.2/systemusers({})",
                    credentials.application_user_id
                )
            ),
        ]
    );
    let token_request = &requests[0];
    assert_eq!(
        token_request.header("authorization"),
        None,
        "the token endpoint never gets a bearer token"
    );
    let form = String::from_utf8(token_request.body.clone()).unwrap();
    assert!(form.contains("grant_type=client_credentials"));
    assert!(form.contains(&format!(
        "scope={}",
        percent(&format!("{}/.default", emulator.base_url()))
    )));
    for request in &requests[1..] {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(request.header("odata-version"), Some("4.0"));
        assert_eq!(request.header("odata-maxversion"), Some("4.0"));
        assert_eq!(request.header("accept"), Some("application/json"));
    }
}

#[test]
fn a_rejected_token_is_renewed_once_and_the_action_succeeds() {
    let emulator = emulator();
    let mut connection = e2e_tests::connected(&emulator);
    emulator.expire_tokens();

    let output = host()
        .run_action("get-current-user", &mut connection, "{}")
        .unwrap();

    assert_eq!(
        json(&output)["userId"],
        emulator.credentials().application_user_id.as_str()
    );
    let requests = emulator.requests();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        vec!["GET", "POST", "GET", "GET"],
        "whoami (401), token, whoami, systemuser"
    );
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
