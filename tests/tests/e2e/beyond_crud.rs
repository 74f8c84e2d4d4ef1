//! Relate Rows, Unrelate Rows, Perform a Bound/Unbound Action, Call a Function, background
//! operations and the data-load switches, through the built component against the emulator,
//! each checked in the emulator's data afterwards; bad input sends nothing.

use std::time::{Duration, Instant};

use dataverse_emulator::{Config, Emulator, Fault};
use dynamics_host::{ConnectorError, ErrorCode};
use e2e_tests::{Answered, connected, emulator, host, json};
use serde_json::{Value, json};

fn run(emulator: &Emulator, action: &str, input: Value) -> Result<Value, ConnectorError> {
    host()
        .invoke(action, &connected(emulator), &input.to_string())
        .answered()
        .map(|output| json(&output))
}

fn row(emulator: &Emulator, table: &str, key: &str, id: &str) -> Value {
    emulator
        .table(table)
        .into_iter()
        .find(|row| row[key] == id)
        .unwrap_or_else(|| panic!("no {table} row {id}"))
}

/// The first row of `table` matching `keep`, by its primary key column.
fn first(emulator: &Emulator, table: &str, key: &str, keep: impl Fn(&Value) -> bool) -> String {
    emulator
        .table(table)
        .into_iter()
        .find(|row| keep(row))
        .and_then(|row| row[key].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no matching {table} row"))
}

/// Requests other than metadata reads: what an action wrote or ran.
fn writes(emulator: &Emulator) -> Vec<String> {
    emulator
        .requests()
        .into_iter()
        .filter(|request| request.method != "GET")
        .map(|request| format!("{} {}", request.method, request.path))
        .collect()
}

#[test]
fn relate_sets_a_lookup_or_adds_to_a_collection_and_unrelate_removes_it() {
    let emulator = emulator();
    let accounts: Vec<String> = emulator
        .table("accounts")
        .iter()
        .take(2)
        .map(|row| row["accountid"].as_str().unwrap().to_string())
        .collect();
    let contact = first(&emulator, "contacts", "contactid", |_| true);

    // Single-valued (many-to-one): the contact's company.
    let output = run(
        &emulator,
        "relate-rows",
        json!({"entityType": "contacts", "entityId": contact, "relationship": "parentcustomerid_account", "relatedEntityId": accounts[0]}),
    )
    .expect("related");
    assert_eq!(output["relatedEntityType"], "accounts");
    assert_eq!(
        row(&emulator, "contacts", "contactid", &contact)["_parentcustomerid_value"],
        accounts[0]
    );

    // Collection-valued (one-to-many) from the account's side moves the contact to account 2.
    run(
        &emulator,
        "relate-rows",
        json!({"entityType": "accounts", "entityId": accounts[1], "relationship": "contact_customer_accounts", "relatedEntityId": contact}),
    )
    .expect("related");
    assert_eq!(
        row(&emulator, "contacts", "contactid", &contact)["_parentcustomerid_value"],
        accounts[1]
    );

    // Clearing the lookup while naming the account it no longer holds changes nothing.
    emulator.clear_requests();
    let output = run(
        &emulator,
        "unrelate-rows",
        json!({"entityType": "contacts", "entityId": contact, "relationship": "parentcustomerid_account", "relatedEntityId": accounts[0]}),
    )
    .expect("nothing to do");
    assert_eq!(output["wasRelated"], false);
    assert!(writes(&emulator).is_empty(), "{:?}", writes(&emulator));
    assert_eq!(
        row(&emulator, "contacts", "contactid", &contact)["_parentcustomerid_value"],
        accounts[1]
    );

    // Removing it from the account's collection clears it.
    run(
        &emulator,
        "unrelate-rows",
        json!({"entityType": "accounts", "entityId": accounts[1], "relationship": "contact_customer_accounts", "relatedEntityId": contact}),
    )
    .expect("unrelated");
    assert_eq!(
        row(&emulator, "contacts", "contactid", &contact)["_parentcustomerid_value"],
        Value::Null
    );
}

/// The write lands and its answer is broken (a 204 has no body to cut, so the emulator's cut
/// fault cannot lose it; a corrupted body can): the retry meets the applied change.
#[test]
fn relate_whose_answer_is_lost_lands_once_and_so_does_unrelate() {
    let emulator = emulator();
    let account = first(&emulator, "accounts", "accountid", |_| true);
    let contact = first(&emulator, "contacts", "contactid", |row| {
        row["_parentcustomerid_value"] != account.as_str()
    });
    let input = json!({"entityType": "accounts", "entityId": account, "relationship": "contact_customer_accounts", "relatedEntityId": contact});
    emulator.faults().inject_on(Fault::MalformedJson, 1, "$ref");
    run(&emulator, "relate-rows", input.clone()).expect("the retry finds it related");
    let refs: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|request| request.path.contains("$ref"))
        .collect();
    assert_eq!(refs.len(), 2, "sent again after the broken answer");
    assert!(refs[0].fault.is_some(), "the first answer was broken");
    assert_eq!(
        row(&emulator, "contacts", "contactid", &contact)["_parentcustomerid_value"],
        account
    );

    emulator.faults().inject_on(Fault::MalformedJson, 1, "$ref");
    run(&emulator, "unrelate-rows", input).expect("the retry finds it unrelated");
    assert_eq!(
        row(&emulator, "contacts", "contactid", &contact)["_parentcustomerid_value"],
        Value::Null
    );
}

#[test]
fn relate_refuses_bad_keys_and_unknown_relationships_without_writing() {
    let emulator = emulator();
    let contact = first(&emulator, "contacts", "contactid", |_| true);
    emulator.clear_requests();
    let refused = run(
        &emulator,
        "relate-rows",
        json!({"entityType": "contacts", "entityId": contact, "relationship": "parentcustomerid_account", "relatedEntityId": "name eq 'x'"}),
    )
    .expect_err("not a key");
    assert_eq!(refused.code, ErrorCode::InvalidInput);
    assert_eq!(refused.field.as_deref(), Some("relatedEntityId"));
    assert!(emulator.requests().is_empty(), "nothing sent for a bad key");

    let refused = run(
        &emulator,
        "relate-rows",
        json!({"entityType": "contacts", "entityId": contact, "relationship": "parentcustomerid_acount", "relatedEntityId": contact}),
    )
    .expect_err("no such relationship");
    assert_eq!(refused.field.as_deref(), Some("relationship"));
    assert!(
        refused.message.contains("parentcustomerid_account"),
        "{}",
        refused.message
    );
    assert!(writes(&emulator).is_empty(), "{:?}", writes(&emulator));
}

#[test]
fn the_relationships_data_source_lists_the_navigation_properties_of_a_table() {
    let emulator = emulator();
    let choices = host()
        .choices(
            "relationships",
            &connected(&emulator),
            &json!({"entityType": "contacts"}).to_string(),
        )
        .answered()
        .expect("choices");
    let values: Vec<&str> = choices.iter().map(|choice| choice.value.as_str()).collect();
    assert!(values.contains(&"parentcustomerid_account"), "{values:?}");
    let label = &choices
        .iter()
        .find(|choice| choice.value == "parentcustomerid_account")
        .unwrap()
        .label;
    assert!(
        label.contains("contact_customer_accounts") && label.contains("many-to-one"),
        "{label}"
    );
}

#[test]
fn qualify_lead_as_a_bound_action_creates_the_rows_and_qualifies_the_lead() {
    let emulator = emulator();
    let lead = first(&emulator, "leads", "leadid", |row| row["statecode"] == 0);
    let accounts_before = emulator.table("accounts").len();
    let output = run(
        &emulator,
        "perform-bound-action",
        json!({"entityType": "leads", "entityId": lead, "actionName": "QualifyLead",
               "CreateAccount": "true", "CreateContact": true, "CreateOpportunity": true, "Status": "3"}),
    )
    .expect("qualified");
    let created = output["value"].as_array().expect("the created rows");
    assert_eq!(created.len(), 3, "{output}");
    let account = created[0]["accountid"].as_str().unwrap();
    let lead_row = row(&emulator, "leads", "leadid", &lead);
    assert_eq!(
        (
            lead_row["statecode"].clone(),
            lead_row["statuscode"].clone()
        ),
        (json!(1), json!(3))
    );
    assert_eq!(emulator.table("accounts").len(), accounts_before + 1);
    assert_eq!(
        row(&emulator, "accounts", "accountid", account)["name"],
        lead_row["companyname"]
    );
    let opportunity = created[2]["opportunityid"].as_str().unwrap();
    assert_eq!(
        row(&emulator, "opportunities", "opportunityid", opportunity)["_customerid_value"],
        account
    );
}

#[test]
fn win_and_lose_opportunity_close_them_with_their_activity() {
    let emulator = emulator();
    let open: Vec<String> = emulator
        .table("opportunities")
        .iter()
        .filter(|row| row["statecode"] == 0)
        .take(2)
        .map(|row| row["opportunityid"].as_str().unwrap().to_string())
        .collect();
    let close = |id: &str, subject: &str| json!({"subject": subject, "opportunityid@odata.bind": format!("/opportunities({id})")});
    run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "WinOpportunity", "OpportunityClose": close(&open[0], "Won"), "Status": 3}),
    )
    .expect("won");
    let won = row(&emulator, "opportunities", "opportunityid", &open[0]);
    assert_eq!(
        (won["statecode"].clone(), won["statuscode"].clone()),
        (json!(1), json!(3))
    );
    // The close activity as code text, the way a designer's code input sends it.
    run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "LoseOpportunity", "parameters": json!({"OpportunityClose": close(&open[1], "Lost"), "Status": 5}).to_string()}),
    )
    .expect("lost");
    let lost = row(&emulator, "opportunities", "opportunityid", &open[1]);
    assert_eq!(
        (lost["statecode"].clone(), lost["statuscode"].clone()),
        (json!(2), json!(5))
    );
    let mut subjects: Vec<String> = emulator
        .table("opportunityclose")
        .iter()
        .map(|row| row["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["Lost", "Won"]);
}

#[test]
fn functions_answer_with_their_documented_shapes() {
    let emulator = emulator();
    let version = run(
        &emulator,
        "call-function",
        json!({"functionName": "RetrieveVersion"}),
    )
    .expect("version");
    assert!(
        version["Version"].as_str().unwrap().starts_with("9.2."),
        "{version}"
    );

    let counts = run(
        &emulator,
        "call-function",
        json!({"functionName": "RetrieveTotalRecordCount", "EntityNames": ["account", "lead"]}),
    )
    .expect("counts");
    let counts = &counts["EntityRecordCountCollection"];
    assert_eq!(counts["Keys"], json!(["account", "lead"]));
    assert_eq!(counts["Values"][0], emulator.table("accounts").len());
}

#[test]
fn granted_access_is_what_retrieve_principal_access_then_reports() {
    let emulator = emulator();
    let account = first(&emulator, "accounts", "accountid", |_| true);
    let sales = emulator.seeded_users().sales_user.system_user_id;
    let ask = || {
        run(
            &emulator,
            "call-function",
            json!({"functionName": "RetrievePrincipalAccess", "entityType": "systemusers", "entityId": sales,
                   "Target": {"@odata.id": format!("accounts({account})")}}),
        )
        .expect("access")["AccessRights"]
            .clone()
    };
    assert_eq!(ask(), "None");
    run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "GrantAccess",
               "Target": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": account},
               "PrincipalAccess": {"Principal": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": sales}, "AccessMask": "ReadAccess"}}),
    )
    .expect("granted");
    assert_eq!(ask(), "ReadAccess");
    assert_eq!(emulator.table("principalobjectaccess").len(), 1);
}

#[test]
fn execute_workflow_records_its_system_job() {
    let emulator = emulator();
    let workflow = first(&emulator, "workflows", "workflowid", |row| {
        row["ondemand"] == true
    });
    let account = first(&emulator, "accounts", "accountid", |_| true);
    let output = run(
        &emulator,
        "perform-bound-action",
        json!({"entityType": "workflows", "entityId": workflow, "actionName": "ExecuteWorkflow", "EntityId": account}),
    )
    .expect("ran");
    let job = output["Id"].as_str().expect("the job id");
    assert_eq!(
        row(&emulator, "asyncoperations", "asyncoperationid", job)["_regardingobjectid_value"],
        account
    );
}

#[test]
fn a_custom_api_gets_a_form_from_metadata_and_bad_parameters_send_nothing() {
    let emulator = emulator();
    let inputs = host()
        .input_definitions(
            "perform-unbound-action",
            &connected(&emulator),
            &json!({"actionName": "new_CalculateDiscount"}).to_string(),
        )
        .answered()
        .expect("inputs");
    let amount = inputs
        .iter()
        .find(|input| input.key == "Amount")
        .expect("Amount");
    assert!(amount.required);
    let tier = inputs
        .iter()
        .find(|input| input.key == "CustomerTier")
        .expect("CustomerTier");
    assert!(!tier.required);

    emulator.clear_requests();
    for (input, field) in [
        (
            json!({"actionName": "new_CalculateDiscount", "Amout": 50, "Percentage": 10}),
            "Amout",
        ),
        (
            json!({"actionName": "new_CalculateDiscount", "Percentage": 10}),
            "Amount",
        ),
        (
            json!({"actionName": "new_CalculateDiscount", "Amount": "fifty", "Percentage": 10}),
            "Amount",
        ),
        (
            json!({"actionName": "new_CalculateDiscount", "Amount": 50, "Percentage": 10, "parameters": {"Amount": 50}}),
            "Amount",
        ),
    ] {
        let refused = run(&emulator, "perform-unbound-action", input).expect_err("bad parameters");
        assert_eq!(refused.code, ErrorCode::InvalidInput, "{}", refused.message);
        assert_eq!(refused.field.as_deref(), Some(field), "{}", refused.message);
    }
    assert!(writes(&emulator).is_empty(), "{:?}", writes(&emulator));

    let output = run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "new_CalculateDiscount", "Amount": "50", "Percentage": 10}),
    )
    .expect("calculated");
    assert_eq!(output["FinalAmount"], 45.0, "{output}");
}

fn wait_for_status(emulator: &Emulator, id: &str, status: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = run(
            emulator,
            "get-background-operation",
            json!({"backgroundOperationId": id}),
        )
        .expect("read");
        if output["status"] == status || Instant::now() > deadline {
            return output;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_custom_api_runs_in_the_background_and_its_result_is_read() {
    let emulator = emulator();
    let queued = run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "new_CalculateDiscount", "Amount": 50, "Percentage": 10, "runInBackground": true}),
    )
    .expect("queued");
    let id = queued["backgroundOperationId"]
        .as_str()
        .expect("the operation id");
    assert!(
        queued["location"].as_str().unwrap().ends_with(id),
        "{queued}"
    );
    let done = wait_for_status(&emulator, id, 30);
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(done["output"]["DiscountAmount"], 5.0, "{done}");
    assert_eq!(
        row(
            &emulator,
            "backgroundoperations",
            "backgroundoperationid",
            id
        )["name"],
        "new_CalculateDiscount"
    );

    // Built-in messages are not custom APIs: refused before anything runs.
    let refused = run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "WinOpportunity", "OpportunityClose": {"subject": "x"}, "Status": 3, "runInBackground": true}),
    )
    .expect_err("not a custom API");
    assert_eq!(refused.field.as_deref(), Some("runInBackground"));
}

#[test]
fn a_waiting_background_operation_is_canceled() {
    let emulator = Emulator::start(
        Config {
            rows_per_table: 5,
            background_operation_delay: Duration::from_secs(3600),
            ..Config::default()
        },
        0,
    )
    .expect("the emulator starts");
    let queued = run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "new_CalculateDiscount", "Amount": 50, "Percentage": 10, "runInBackground": true}),
    )
    .expect("queued");
    let location = queued["location"].as_str().unwrap();
    // The location URL is accepted as well as the ID.
    let output = run(
        &emulator,
        "cancel-background-operation",
        json!({"backgroundOperationId": location}),
    )
    .expect("canceling");
    assert_eq!(output["canceling"], true);
    let id = queued["backgroundOperationId"].as_str().unwrap();
    let status = row(
        &emulator,
        "backgroundoperations",
        "backgroundoperationid",
        id,
    )["backgroundoperationstatuscode"]
        .as_i64();
    assert!(matches!(status, Some(22 | 32)), "{status:?}");
}

#[test]
fn set_state_goes_through_update_entity_and_a_wrong_pair_changes_nothing() {
    let emulator = emulator();
    let account = first(&emulator, "accounts", "accountid", |row| {
        row["statecode"] == 0
    });
    let refused = run(
        &emulator,
        "update-entity",
        json!({"entityType": "accounts", "entityId": account, "fieldValues": {"statecode": 0, "statuscode": 2}}),
    )
    .expect_err("Inactive is not a status of Active");
    assert_eq!(refused.service_code.as_deref(), Some("0x80048408"));
    assert_eq!(
        row(&emulator, "accounts", "accountid", &account)["statuscode"],
        1
    );
    run(
        &emulator,
        "update-entity",
        json!({"entityType": "accounts", "entityId": account, "fieldValues": {"statecode": 1, "statuscode": 2}}),
    )
    .expect("deactivated");
    let updated = row(&emulator, "accounts", "accountid", &account);
    assert_eq!(
        (updated["statecode"].clone(), updated["statuscode"].clone()),
        (json!(1), json!(2))
    );
}

#[test]
fn switches_travel_as_headers_and_duplicate_detection_refuses_clearly() {
    let emulator = emulator();
    let name = emulator.table("accounts")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let before = emulator.table("accounts").len();
    emulator.clear_requests();
    let refused = run(
        &emulator,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": name}, "detectDuplicates": true}),
    )
    .expect_err("a duplicate");
    assert_eq!(refused.code, ErrorCode::Conflict, "{}", refused.message);
    assert!(
        refused
            .hint
            .unwrap_or_default()
            .contains("duplicate detection")
    );
    assert_eq!(emulator.table("accounts").len(), before, "nothing written");
    let sent = emulator.requests();
    assert!(
        sent.iter().all(|request| request.method == "GET"
            || request.header("mscrm.suppressduplicatedetection") == Some("false")),
        "every write asked for duplicate detection"
    );

    emulator.clear_requests();
    run(
        &emulator,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "Loaded quietly"},
               "bypassCustomLogic": "all", "suppressFlowTriggers": true}),
    )
    .expect("created");
    let write = emulator
        .requests()
        .into_iter()
        .find(|request| request.method != "GET")
        .expect("the create");
    assert_eq!(
        write.header("mscrm.bypassbusinesslogicexecution"),
        Some("CustomSync,CustomAsync")
    );
    assert_eq!(
        write.header("mscrm.suppresscallbackregistrationexpanderjob"),
        Some("true")
    );
    assert!(
        emulator
            .table("accounts")
            .iter()
            .any(|row| row["name"] == "Loaded quietly")
    );
}

#[test]
fn a_bypassed_load_sends_no_webhook_for_its_rows() {
    let emulator = emulator();
    let endpoint = run(
        &emulator,
        "create-entity",
        json!({"entityType": "serviceendpoints", "fieldValues": {"name": "hook", "url": "http://127.0.0.1:9/none", "contract": 8, "authtype": 5, "authvalue": "k", "messageformat": 2}}),
    )
    .expect("endpoint")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let message = first(&emulator, "sdkmessages", "sdkmessageid", |row| {
        row["name"] == "Create"
    });
    let filter = first(
        &emulator,
        "sdkmessagefilters",
        "sdkmessagefilterid",
        |row| {
            row["primaryobjecttypecode"] == "account"
                && row["_sdkmessageid_value"] == message.as_str()
        },
    );
    run(
        &emulator,
        "create-entity",
        json!({"entityType": "sdkmessageprocessingsteps", "fieldValues": {
            "name": "Create of account", "stage": 40, "mode": 1, "rank": 1, "supporteddeployment": 0,
            "sdkmessageid@odata.bind": format!("/sdkmessages({message})"),
            "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter})"),
            "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint})")}}),
    )
    .expect("step");
    emulator.clear_webhook_deliveries();
    run(
        &emulator,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "Bypassed load"}, "bypassCustomLogic": "async"}),
    )
    .expect("created");
    run(
        &emulator,
        "create-entity",
        json!({"entityType": "accounts", "fieldValues": {"name": "Ordinary write"}}),
    )
    .expect("created");
    let delivered = emulator.wait_for_deliveries(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let bodies: Vec<String> = emulator
        .webhook_deliveries()
        .iter()
        .map(|delivery| String::from_utf8_lossy(&delivery.body).to_string())
        .collect();
    assert_eq!(delivered.len(), 1, "{bodies:?}");
    assert!(
        bodies.iter().all(|body| !body.contains("Bypassed load")),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|body| body.contains("Ordinary write")),
        "{bodies:?}"
    );
}

#[test]
fn the_operation_data_sources_list_actions_and_functions_from_metadata() {
    let emulator = emulator();
    let values = |source: &str, input: Value| -> Vec<String> {
        host()
            .choices(source, &connected(&emulator), &input.to_string())
            .answered()
            .expect("choices")
            .into_iter()
            .map(|choice| choice.value)
            .collect()
    };
    let unbound = values("unbound-actions", json!({}));
    assert!(
        unbound.contains(&"WinOpportunity".to_string()),
        "{unbound:?}"
    );
    assert!(unbound.contains(&"new_CalculateDiscount".to_string()));
    assert!(!unbound.contains(&"QualifyLead".to_string()), "bound");
    let on_leads = values("bound-actions", json!({"entityType": "leads"}));
    assert!(
        on_leads.contains(&"QualifyLead".to_string()),
        "{on_leads:?}"
    );
    assert!(
        !on_leads.contains(&"new_ScoreAccount".to_string()),
        "bound to accounts"
    );
    let functions = values("functions", json!({}));
    assert!(
        functions.contains(&"RetrieveVersion".to_string()),
        "{functions:?}"
    );
    assert!(!functions.contains(&"WinOpportunity".to_string()));
}

#[test]
fn a_function_whose_answer_is_broken_is_asked_again() {
    let emulator = emulator();
    emulator
        .faults()
        .inject_on(Fault::CutMidBody, 1, "RetrieveVersion");
    let version = run(
        &emulator,
        "call-function",
        json!({"functionName": "RetrieveVersion"}),
    )
    .expect("the second answer");
    assert!(version["Version"].is_string(), "{version}");
    let calls = emulator
        .requests()
        .into_iter()
        .filter(|request| request.path.contains("RetrieveVersion"))
        .count();
    assert_eq!(calls, 2);
}

#[test]
fn an_action_whose_answer_is_lost_is_not_sent_again_and_says_it_may_have_run() {
    let emulator = emulator();
    let lead = first(&emulator, "leads", "leadid", |row| row["statecode"] == 0);
    let accounts_before = emulator.table("accounts").len();
    emulator
        .faults()
        .inject_on(Fault::CutMidBody, 1, "QualifyLead");
    let failure = run(
        &emulator,
        "perform-bound-action",
        json!({"entityType": "leads", "entityId": lead, "actionName": "QualifyLead",
               "CreateAccount": true, "CreateContact": false, "CreateOpportunity": false, "Status": 3}),
    )
    .expect_err("the answer was lost");
    assert!(
        failure
            .message
            .contains("QualifyLead may or may not have run"),
        "{}",
        failure.message
    );
    let posts = emulator
        .requests()
        .into_iter()
        .filter(|request| request.path.contains("QualifyLead"))
        .count();
    assert_eq!(posts, 1, "not sent again");
    assert_eq!(row(&emulator, "leads", "leadid", &lead)["statecode"], 1);
    assert_eq!(emulator.table("accounts").len(), accounts_before + 1);
}

#[test]
fn a_hostile_function_parameter_reaches_the_function_as_it_was_given() {
    let emulator = emulator();
    let name = "O'Brien & Co)/?#=@p2,%27";
    let output = run(
        &emulator,
        "call-function",
        json!({"functionName": "new_GetGreeting", "Name": name}),
    )
    .expect("greeted");
    assert_eq!(output["Greeting"], format!("Hello, {name}!"));
}

#[test]
fn sales_orders_are_fulfilled_and_canceled_with_their_close_activity() {
    let emulator = emulator();
    let open: Vec<String> = emulator
        .table("salesorders")
        .iter()
        .filter(|row| row["statecode"] == 0)
        .take(2)
        .map(|row| row["salesorderid"].as_str().unwrap().to_string())
        .collect();
    let close = |id: &str| json!({"subject": "closed", "salesorderid@odata.bind": format!("/salesorders({id})")});
    run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "FulfillSalesOrder", "OrderClose": close(&open[0]), "Status": 100001}),
    )
    .expect("fulfilled");
    let fulfilled = row(&emulator, "salesorders", "salesorderid", &open[0]);
    assert_eq!(
        (
            fulfilled["statecode"].clone(),
            fulfilled["statuscode"].clone()
        ),
        (json!(3), json!(100001))
    );
    run(
        &emulator,
        "perform-unbound-action",
        json!({"actionName": "CancelSalesOrder", "OrderClose": close(&open[1]), "Status": 4}),
    )
    .expect("canceled");
    let canceled = row(&emulator, "salesorders", "salesorderid", &open[1]);
    assert_eq!(canceled["statecode"], 2);
    assert_eq!(emulator.table("orderclose").len(), 2);
}
