//! Dataverse messages over HTTP: built-in actions and functions, custom APIs, background
//! operations and SetState through PATCH, each checked in the emulator's data.

use std::time::{Duration, Instant};

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::support;
use support::{Answer, Client};

fn start_with(config: Config) -> (Emulator, Client) {
    let emu = Emulator::start(config, 0).expect("emulator starts");
    let c = Client::new(&emu, Duration::from_secs(30));
    (emu, c)
}

fn start() -> (Emulator, Client) {
    start_with(Config {
        rows_per_table: 5,
        ..Config::default()
    })
}

fn post(c: &Client, path: &str, body: Value) -> Answer {
    c.request("POST", path, "application/json", &body.to_string(), &[])
}

fn patch(c: &Client, path: &str, body: Value) -> Answer {
    c.request("PATCH", path, "application/json", &body.to_string(), &[])
}

/// The id of the first row a query returns.
fn first_id(c: &Client, set: &str, key: &str, filter: &str) -> String {
    let a = c.get(&format!("{set}?$select={key}&$filter={filter}&$top=1"), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["value"][0][key].as_str().unwrap().to_string()
}

fn row(emu: &Emulator, table: &str, key: &str, id: &str) -> Value {
    emu.table(table)
        .into_iter()
        .find(|r| r[key] == id)
        .unwrap_or_else(|| panic!("no {table} {id}"))
}

fn created(a: &Answer) -> String {
    let h = a.header("OData-EntityId").expect("OData-EntityId");
    h.rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string()
}

#[test]
fn functions_take_aliases_and_report_the_environment() {
    let (emu, c) = start();
    let v = c.get("RetrieveVersion()", &[]);
    assert_eq!(v.status, 200, "{}", v.body);
    assert!(
        v.json()["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.RetrieveVersionResponse")
    );
    assert!(v.json()["Version"].as_str().unwrap().starts_with("9.2."));

    let n = c.get(
        "RetrieveTotalRecordCount(EntityNames=@p1)?@p1=%5B%22account%22,%22lead%22%5D",
        &[],
    );
    assert_eq!(n.status, 200, "{}", n.body);
    let counts = &n.json()["EntityRecordCountCollection"];
    assert_eq!(counts["Keys"], json!(["account", "lead"]));
    assert_eq!(counts["Count"], 2);
    assert_eq!(counts["Values"][0], emu.table("account").len());
    assert_eq!(counts["Values"][1], emu.table("lead").len());

    let unknown = c.get(
        "RetrieveTotalRecordCount(EntityNames=@p1)?@p1=%5B%22acount%22%5D",
        &[],
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.contains("'acount'"));
}

#[test]
fn wrong_methods_names_and_parameters_are_refused_naming_what_is_wrong() {
    let (emu, c) = start();
    let get_action = c.get("WinOpportunity", &[]);
    assert_eq!(get_action.status, 405, "{}", get_action.body);
    let post_function = post(&c, "RetrieveVersion", json!({}));
    assert_eq!(post_function.status, 405, "{}", post_function.body);
    let unknown = post(&c, "new_NoSuchApi", json!({}));
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.contains("new_NoSuchApi"));
    let not_bound_here = post(&c, "QualifyLead", json!({}));
    assert_eq!(not_bound_here.status, 404, "{}", not_bound_here.body);

    let opp = first_id(&c, "opportunities", "opportunityid", "statecode%20eq%200");
    let close =
        json!({"subject": "x", "opportunityid@odata.bind": format!("/opportunities({opp})")});
    let missing = post(&c, "WinOpportunity", json!({"OpportunityClose": close}));
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (400, "0x80040203"),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("'Status'"));
    let mistyped = post(
        &c,
        "WinOpportunity",
        json!({"OpportunityClose": close, "Status": "won"}),
    );
    assert_eq!(
        (mistyped.status, mistyped.error_code().as_str()),
        (400, "0x80048d19"),
        "{}",
        mistyped.body
    );
    assert!(mistyped.body.contains("'Status'") && mistyped.body.contains("Edm.Int32"));
    let extra = post(
        &c,
        "WinOpportunity",
        json!({"OpportunityClose": close, "Status": 3, "Bogus": 1}),
    );
    assert_eq!(extra.status, 400);
    assert!(extra.body.contains("The parameter 'Bogus' in the request payload is not a valid parameter for the operation 'WinOpportunity'."));
    // Nothing was closed by the refused calls.
    assert_eq!(
        row(&emu, "opportunity", "opportunityid", &opp)["statecode"],
        0
    );
    assert!(emu.table("opportunityclose").is_empty());
}

#[test]
fn qualify_lead_creates_the_records_and_qualifies_the_lead_once() {
    let (emu, c) = start();
    let lead = first_id(&c, "leads", "leadid", "statecode%20eq%200");
    let path = format!("leads({lead})/Microsoft.Dynamics.CRM.QualifyLead");
    let body = json!({"CreateAccount": true, "CreateContact": true, "CreateOpportunity": true, "Status": 3});
    let accounts_before = emu.table("account").len();

    let wrong_status = post(
        &c,
        &path,
        json!({"CreateAccount": true, "CreateContact": false, "CreateOpportunity": false, "Status": 4}),
    );
    assert_eq!(
        (wrong_status.status, wrong_status.error_code().as_str()),
        (400, "0x80048408"),
        "{}",
        wrong_status.body
    );
    assert_eq!(
        emu.table("account").len(),
        accounts_before,
        "a refused call creates nothing"
    );

    let a = post(&c, &path, body.clone());
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#Collection(Microsoft.Dynamics.CRM.crmbaseentity)")
    );
    let items = v["value"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["@odata.type"], "#Microsoft.Dynamics.CRM.account");
    let account = items[0]["accountid"].as_str().unwrap();
    let contact = items[1]["contactid"].as_str().unwrap();
    let opportunity = items[2]["opportunityid"].as_str().unwrap();
    let l = row(&emu, "lead", "leadid", &lead);
    assert_eq!(
        (l["statecode"].clone(), l["statuscode"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(
        row(&emu, "account", "accountid", account)["name"],
        l["companyname"]
    );
    assert_eq!(
        row(&emu, "contact", "contactid", contact)["_parentcustomerid_value"],
        account
    );
    let o = row(&emu, "opportunity", "opportunityid", opportunity);
    assert_eq!(o["name"], l["subject"]);
    assert_eq!(o["_customerid_value"], account);

    let again = post(&c, &path, body);
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (400, "0x80040519"),
        "{}",
        again.body
    );
    assert!(again.body.contains("The lead is already closed."));
    assert_eq!(
        emu.table("account").len(),
        accounts_before + 1,
        "a second call creates no second account"
    );
}

#[test]
fn opportunities_are_won_and_lost_with_their_close_activity() {
    let (emu, c) = start();
    let open: Vec<String> = c
        .get(
            "opportunities?$select=opportunityid&$filter=statecode%20eq%200&$top=2",
            &[],
        )
        .json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["opportunityid"].as_str().unwrap().to_string())
        .collect();
    let close = |id: &str, subject: &str| json!({"subject": subject, "actualrevenue": 1200, "opportunityid@odata.bind": format!("/opportunities({id})")});
    let won = post(
        &c,
        "WinOpportunity",
        json!({"OpportunityClose": close(&open[0], "Won the deal"), "Status": 3}),
    );
    assert_eq!(won.status, 204, "{}", won.body);
    let o = row(&emu, "opportunity", "opportunityid", &open[0]);
    assert_eq!(
        (o["statecode"].clone(), o["statuscode"].clone()),
        (json!(1), json!(3))
    );
    let closes = emu.table("opportunityclose");
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0]["subject"], "Won the deal");
    assert_eq!(closes[0]["_opportunityid_value"], open[0]);

    let lost_as_won = post(
        &c,
        "LoseOpportunity",
        json!({"OpportunityClose": close(&open[1], "Lost"), "Status": 3}),
    );
    assert_eq!(lost_as_won.status, 400, "{}", lost_as_won.body);
    let lost = post(
        &c,
        "LoseOpportunity",
        json!({"OpportunityClose": close(&open[1], "Lost"), "Status": 5}),
    );
    assert_eq!(lost.status, 204, "{}", lost.body);
    let o = row(&emu, "opportunity", "opportunityid", &open[1]);
    assert_eq!(
        (o["statecode"].clone(), o["statuscode"].clone()),
        (json!(2), json!(5))
    );
    let twice = post(
        &c,
        "WinOpportunity",
        json!({"OpportunityClose": close(&open[0], "Again"), "Status": 3}),
    );
    assert_eq!(
        (twice.status, twice.error_code().as_str()),
        (400, "0x80040233")
    );
    assert_eq!(emu.table("opportunityclose").len(), 2);
}

#[test]
fn orders_are_fulfilled_and_canceled() {
    let (emu, c) = start();
    let orders: Vec<String> = c
        .get(
            "salesorders?$select=salesorderid&$filter=statecode%20eq%200&$top=2",
            &[],
        )
        .json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["salesorderid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orders.len(), 2, "two open orders are seeded");
    let close = |id: &str| json!({"subject": "closed", "salesorderid@odata.bind": format!("/salesorders({id})")});
    let done = post(
        &c,
        "FulfillSalesOrder",
        json!({"OrderClose": close(&orders[0]), "Status": 100001}),
    );
    assert_eq!(done.status, 204, "{}", done.body);
    let o = row(&emu, "salesorder", "salesorderid", &orders[0]);
    assert_eq!(
        (o["statecode"].clone(), o["statuscode"].clone()),
        (json!(3), json!(100001))
    );
    assert!(o["datefulfilled"].is_string());
    let canceled = post(
        &c,
        "CancelSalesOrder",
        json!({"OrderClose": close(&orders[1]), "Status": 4}),
    );
    assert_eq!(canceled.status, 204, "{}", canceled.body);
    let o = row(&emu, "salesorder", "salesorderid", &orders[1]);
    assert_eq!(
        (o["statecode"].clone(), o["statuscode"].clone()),
        (json!(2), json!(4))
    );
    assert_eq!(emu.table("orderclose").len(), 2);
}

#[test]
fn patching_state_and_status_checks_the_pair() {
    let (emu, c) = start();
    let account = first_id(&c, "accounts", "accountid", "statecode%20eq%200");
    let bad = patch(
        &c,
        &format!("accounts({account})"),
        json!({"statecode": 0, "statuscode": 2}),
    );
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (400, "0x80048408"),
        "{}",
        bad.body
    );
    assert!(
        bad.body
            .contains("2 is not a valid status code for state code AccountState.Active")
    );
    assert_eq!(row(&emu, "account", "accountid", &account)["statuscode"], 1);
    let ok = patch(
        &c,
        &format!("accounts({account})"),
        json!({"statecode": 1, "statuscode": 2}),
    );
    assert_eq!(ok.status, 204, "{}", ok.body);
    assert_eq!(row(&emu, "account", "accountid", &account)["statecode"], 1);
    let lead = first_id(&c, "leads", "leadid", "statecode%20eq%200");
    let disqualified = patch(
        &c,
        &format!("leads({lead})"),
        json!({"statecode": 2, "statuscode": 6}),
    );
    assert_eq!(disqualified.status, 204, "{}", disqualified.body);
    let status_only = patch(&c, &format!("leads({lead})"), json!({"statuscode": 1}));
    assert_eq!(
        status_only.status, 400,
        "New belongs to Open, the lead is Disqualified"
    );
}

#[test]
fn granted_access_is_what_retrieve_principal_access_reports() {
    let (emu, c) = start();
    let sales = emu.seeded_users().sales_user.system_user_id;
    let a = post(&c, "accounts", json!({"name": "Shared account"}));
    let account = created(&a);
    let ask = |who: &str| {
        let r = c.get(
            &format!("systemusers({who})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@t)?@t=%7B'@odata.id':'accounts({account})'%7D"),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["AccessRights"].as_str().unwrap().to_string()
    };
    assert_eq!(ask(&sales), "None");
    let admin = emu.seeded_users().admin.system_user_id;
    assert!(
        ask(&admin).contains("DeleteAccess"),
        "the administrator has every right"
    );
    let grant = json!({
        "Target": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": account},
        "PrincipalAccess": {
            "Principal": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": sales},
            "AccessMask": "ReadAccess, WriteAccess",
        },
    });
    assert_eq!(post(&c, "GrantAccess", grant.clone()).status, 204);
    assert_eq!(post(&c, "GrantAccess", grant).status, 204);
    assert_eq!(ask(&sales), "ReadAccess, WriteAccess");
    let grants = emu.table("principalobjectaccess");
    assert_eq!(grants.len(), 1, "a repeated grant is the same grant");
    assert_eq!(grants[0]["accessrightsmask"], 3);
    let bad = post(
        &c,
        "GrantAccess",
        json!({
            "Target": {"@odata.id": format!("accounts({account})")},
            "PrincipalAccess": {"Principal": {"@odata.id": format!("systemusers({sales})")}, "AccessMask": "ReadAccess, FlyAccess"},
        }),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("'FlyAccess'"), "{}", bad.body);
}

#[test]
fn execute_workflow_and_bulk_delete_record_their_system_jobs() {
    let (emu, c) = start();
    let wf = c
        .get(
            "workflows?$select=workflowid&$filter=ondemand%20eq%20true",
            &[],
        )
        .json()["value"][0]["workflowid"]
        .as_str()
        .unwrap()
        .to_string();
    let account = first_id(&c, "accounts", "accountid", "statecode%20eq%200");
    let run = post(
        &c,
        &format!("workflows({wf})/Microsoft.Dynamics.CRM.ExecuteWorkflow"),
        json!({"EntityId": account}),
    );
    assert_eq!(run.status, 200, "{}", run.body);
    let job = run.json()["Id"].as_str().unwrap().to_string();
    let j = row(&emu, "asyncoperation", "asyncoperationid", &job);
    assert_eq!(
        (
            j["operationtype"].clone(),
            j["statecode"].clone(),
            j["statuscode"].clone()
        ),
        (json!(10), json!(3), json!(30))
    );
    assert_eq!(j["_regardingobjectid_value"], account);

    for name in ["Bulk A", "Bulk B", "Keep C"] {
        assert_eq!(post(&c, "accounts", json!({"name": name})).status, 204);
    }
    let before = emu.table("account").len();
    let delete = post(
        &c,
        "BulkDelete",
        json!({
            "QuerySet": [{"EntityName": "account", "Criteria": {"FilterOperator": "And", "Conditions": [
                {"AttributeName": "name", "Operator": "BeginsWith", "Values": [{"Value": "Bulk ", "Type": "System.String"}]}
            ]}}],
            "JobName": "Remove bulk accounts",
            "SendEmailNotification": false,
            "ToRecipients": [],
            "CCRecipients": [],
            "RecurrencePattern": "",
            "StartDateTime": "2020-01-01T00:00:00Z",
        }),
    );
    assert_eq!(delete.status, 200, "{}", delete.body);
    let job = delete.json()["JobId"].as_str().unwrap().to_string();
    assert_eq!(emu.table("account").len(), before - 2);
    assert!(emu.table("account").iter().any(|r| r["name"] == "Keep C"));
    let j = row(&emu, "asyncoperation", "asyncoperationid", &job);
    assert_eq!(
        (
            j["operationtype"].clone(),
            j["name"].clone(),
            j["statuscode"].clone()
        ),
        (json!(13), json!("Remove bulk accounts"), json!(30))
    );
}

#[test]
fn custom_apis_run_and_agree_with_metadata_and_their_tables() {
    let (emu, c) = start();
    let d = post(
        &c,
        "new_CalculateDiscount",
        json!({"Amount": 200.0, "Percentage": 15}),
    );
    assert_eq!(d.status, 200, "{}", d.body);
    assert!(
        d.json()["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#Microsoft.Dynamics.CRM.new_CalculateDiscountResponse")
    );
    assert_eq!(
        (
            d.json()["DiscountAmount"].as_f64(),
            d.json()["FinalAmount"].as_f64()
        ),
        (Some(30.0), Some(170.0))
    );
    let bad = post(
        &c,
        "new_CalculateDiscount",
        json!({"Amount": 200.0, "Percentage": 150}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("'Percentage'"));
    let missing = post(&c, "new_CalculateDiscount", json!({"Percentage": 5}));
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("'Amount'"));

    let g = c.get("new_GetGreeting(Name=@n)?@n='Ada'", &[]);
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["Greeting"], "Hello, Ada!");

    let a = post(&c, "accounts", json!({"name": "Fabrikam"}));
    let account = created(&a);
    let s = post(
        &c,
        &format!("accounts({account})/Microsoft.Dynamics.CRM.new_ScoreAccount"),
        json!({"Weight": 2}),
    );
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.json()["Score"], 16);
    let unbound = post(&c, "new_ScoreAccount", json!({}));
    assert_eq!(unbound.status, 404);

    let csdl = c.get("$metadata", &[]).body;
    assert!(csdl.contains(r#"<Action Name="new_CalculateDiscount" IsBound="false"><Parameter Name="Amount" Type="Edm.Decimal" Nullable="false"/><Parameter Name="CustomerTier" Type="Edm.String" Nullable="true"/><Parameter Name="Percentage" Type="Edm.Int32" Nullable="false"/><ReturnType Type="mscrm.new_CalculateDiscountResponse" Nullable="false"/>"#), "CSDL lacks the custom API action");
    assert!(csdl.contains(r#"<Action Name="new_ScoreAccount" IsBound="true"><Parameter Name="entity" Type="mscrm.account" Nullable="false"/>"#));
    assert!(csdl.contains(r#"<Function Name="new_GetGreeting" IsBound="false">"#));
    assert!(csdl.contains(r#"<ActionImport Name="new_CalculateDiscount" Action="Microsoft.Dynamics.CRM.new_CalculateDiscount"/>"#));
    assert!(csdl.contains(r#"<Action Name="QualifyLead" IsBound="true"><Parameter Name="entity" Type="mscrm.lead" Nullable="false"/>"#));
    assert!(csdl.contains(r#"<Function Name="RetrieveTotalRecordCount" IsBound="false"><Parameter Name="EntityNames" Type="Collection(Edm.String)" Nullable="false"/>"#));

    // The tables say the same: every custom API in $metadata has its rows.
    let apis = c.get("customapis?$select=uniquename,bindingtype,isfunction&$expand=CustomAPIRequestParameters($select=uniquename,type,isoptional)", &[]);
    assert_eq!(apis.status, 200, "{}", apis.body);
    let list = apis.json()["value"].as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    for api in &list {
        let name = api["uniquename"].as_str().unwrap();
        let element = if api["isfunction"] == true {
            "Function"
        } else {
            "Action"
        };
        assert!(
            csdl.contains(&format!(r#"<{element} Name="{name}""#)),
            "{name} is not in $metadata"
        );
        for p in api["CustomAPIRequestParameters"].as_array().unwrap() {
            assert!(csdl.contains(&format!(
                r#"<Parameter Name="{}""#,
                p["uniquename"].as_str().unwrap()
            )));
        }
    }
    assert_eq!(emu.table("customapirequestparameter").len(), 5);
}

fn wait_for(emu: &Emulator, id: &str, status: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = row(emu, "backgroundoperation", "backgroundoperationid", id);
        if r["backgroundoperationstatuscode"] == status || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn monitor(c: &Client, location: &str, method: &str) -> Answer {
    let req = match method {
        "GET" => c.agent.get(location),
        _ => c.agent.delete(location),
    };
    support::answer(
        req.header("Authorization", format!("Bearer {}", c.token))
            .call(),
    )
}

#[test]
fn a_custom_api_runs_in_the_background_when_asked() {
    let (emu, c) = start();
    let a = c.request(
        "POST",
        "new_CalculateDiscount",
        "application/json",
        &json!({"Amount": 50, "Percentage": 10}).to_string(),
        &[("Prefer", "respond-async")],
    );
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a
        .header("x-ms-dyn-backgroundoperationid")
        .unwrap()
        .to_string();
    let location = a.header("Location").unwrap().to_string();
    assert!(
        location.ends_with(&format!("/api/backgroundoperation/{id}")),
        "{location}"
    );
    assert_eq!(a.header("Preference-Applied"), Some("respond-async"));
    let done = wait_for(&emu, &id, 30);
    assert_eq!(done["backgroundoperationstatecode"], 3);
    assert_eq!(done["name"], "new_CalculateDiscount");
    let out: Value = serde_json::from_str(done["outputparameters"].as_str().unwrap()).unwrap();
    assert!(
        out.as_array()
            .unwrap()
            .contains(&json!({"Key": "DiscountAmount", "Value": 5.0})),
        "{out}"
    );
    let status = monitor(&c, &location, "GET");
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()["backgroundOperationStatusCode"], 30);
    assert_eq!(status.json()["FinalAmount"], 45.0);
    let too_late = monitor(&c, &location, "DELETE");
    assert_eq!(too_late.status, 400);
    assert!(too_late.body.contains("terminal state"));
    let unauthenticated = support::answer(c.agent.get(&location).call());
    assert_eq!(unauthenticated.status, 401);
    let callback = c.request(
        "POST",
        "new_CalculateDiscount",
        "application/json",
        &json!({"Amount": 50, "Percentage": 10}).to_string(),
        &[(
            "Prefer",
            "respond-async, odata.callback; url=\"http://127.0.0.1:9/cb\"",
        )],
    );
    assert_eq!(callback.status, 501, "{}", callback.body);
    assert_eq!(emu.table("backgroundoperation").len(), 1, "nothing queued");
}

#[test]
fn a_waiting_background_operation_can_be_canceled_both_ways() {
    let (emu, c) = start_with(Config {
        rows_per_table: 5,
        background_operation_delay: Duration::from_secs(3600),
        ..Config::default()
    });
    let submit = || {
        let a = c.request(
            "POST",
            "new_CalculateDiscount",
            "application/json",
            &json!({"Amount": 50, "Percentage": 10}).to_string(),
            &[("Prefer", "respond-async")],
        );
        assert_eq!(a.status, 202, "{}", a.body);
        (
            a.header("x-ms-dyn-backgroundoperationid")
                .unwrap()
                .to_string(),
            a.header("Location").unwrap().to_string(),
        )
    };
    let (first, location) = submit();
    std::thread::sleep(Duration::from_millis(100));
    let waiting = row(&emu, "backgroundoperation", "backgroundoperationid", &first);
    assert_eq!(
        (
            waiting["backgroundoperationstatecode"].clone(),
            waiting["backgroundoperationstatuscode"].clone()
        ),
        (json!(0), json!(0))
    );
    let canceled = monitor(&c, &location, "DELETE");
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(
        canceled.json(),
        json!({"backgroundOperationStateCode": 2, "backgroundOperationStatusCode": 22})
    );
    let r = wait_for(&emu, &first, 32);
    assert_eq!(r["backgroundoperationstatecode"], 3);
    assert!(
        r["outputparameters"].is_null(),
        "a canceled operation does not run"
    );

    let (second, _) = submit();
    let by_patch = c.request(
        "PATCH",
        &format!("backgroundoperations({second})"),
        "application/json",
        &json!({"backgroundoperationstatecode": 2, "backgroundoperationstatuscode": 22})
            .to_string(),
        &[("If-Match", "*")],
    );
    assert_eq!(by_patch.status, 204, "{}", by_patch.body);
    assert_eq!(
        wait_for(&emu, &second, 32)["backgroundoperationstatuscode"],
        32
    );
    let after = c.request(
        "PATCH",
        &format!("backgroundoperations({second})"),
        "application/json",
        &json!({"backgroundoperationstatecode": 2, "backgroundoperationstatuscode": 22})
            .to_string(),
        &[],
    );
    assert_eq!(after.status, 400);
    assert!(
        after.body.contains(
            "Canceling background operation is not allowed after it is in terminal state."
        )
    );
}

/// Registers a webhook step for `message` of `table` (mode 0 synchronous, 1 asynchronous) on an
/// endpoint nobody listens on; returns the step id.
fn register_step(c: &Client, table: &str, mode: i64) -> String {
    let ep = post(
        c,
        "serviceendpoints",
        json!({"name": "hook", "url": "http://127.0.0.1:9/none", "contract": 8, "authtype": 5, "authvalue": "k", "messageformat": 2}),
    );
    assert_eq!(ep.status, 204, "{}", ep.body);
    let ep = created(&ep);
    let msg = first_id(c, "sdkmessages", "sdkmessageid", "name%20eq%20'Create'");
    let filter = first_id(
        c,
        "sdkmessagefilters",
        "sdkmessagefilterid",
        &format!("primaryobjecttypecode%20eq%20'{table}'%20and%20_sdkmessageid_value%20eq%20{msg}"),
    );
    let st = post(
        c,
        "sdkmessageprocessingsteps",
        json!({
            "name": format!("Create of {table}"), "stage": 40, "mode": mode, "rank": 1, "supporteddeployment": 0,
            "sdkmessageid@odata.bind": format!("/sdkmessages({msg})"),
            "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter})"),
            "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({ep})"),
        }),
    );
    assert_eq!(st.status, 204, "{}", st.body);
    created(&st)
}

fn create_with(c: &Client, set: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
    c.request("POST", set, "application/json", &body.to_string(), headers)
}

#[test]
fn bypass_headers_skip_the_custom_logic_they_name() {
    let (emu, c) = start();
    // Asynchronous custom logic on accounts: a queued webhook call per create.
    register_step(&c, "account", 1);
    let a = create_with(
        &c,
        "accounts",
        json!({"name": "Async bypassed"}),
        &[("MSCRM.BypassBusinessLogicExecution", "CustomAsync")],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let a = create_with(
        &c,
        "accounts",
        json!({"name": "Sync only bypassed"}),
        &[("MSCRM.BypassCustomPluginExecution", "true")],
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let a = create_with(&c, "accounts", json!({"name": "Not bypassed"}), &[]);
    assert_eq!(a.status, 204, "{}", a.body);
    let delivered = emu.wait_for_deliveries(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let names: Vec<String> = emu
        .webhook_deliveries()
        .iter()
        .map(|d| d.json()["InputParameters"][0]["value"]["Attributes"].to_string())
        .collect();
    assert_eq!(delivered.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("Async bypassed")),
        "{names:?}"
    );

    // Synchronous custom logic on contacts that fails: the write fails with it unless bypassed.
    let step = register_step(&c, "contact", 0);
    let plain = create_with(&c, "contacts", json!({"lastname": "Plain"}), &[]);
    assert_eq!(plain.status, 400, "{}", plain.body);
    for header in [
        ("MSCRM.BypassCustomPluginExecution", "true"),
        (
            "MSCRM.BypassBusinessLogicExecution",
            "CustomSync,CustomAsync",
        ),
        ("MSCRM.BypassBusinessLogicExecutionStepIds", step.as_str()),
    ] {
        let a = create_with(&c, "contacts", json!({"lastname": header.0}), &[header]);
        assert_eq!(a.status, 204, "{header:?}: {}", a.body);
        assert!(
            emu.table("contact")
                .iter()
                .any(|r| r["lastname"] == header.0)
        );
    }
    let other_step = create_with(
        &c,
        "contacts",
        json!({"lastname": "Other step"}),
        &[(
            "MSCRM.BypassBusinessLogicExecutionStepIds",
            "00000000-0000-0000-0000-000000000001",
        )],
    );
    assert_eq!(
        other_step.status, 400,
        "bypassing another step leaves this one: {}",
        other_step.body
    );
}

#[test]
fn switch_values_and_privileges_are_checked_before_the_write() {
    let (emu, c) = start();
    let before = emu.table("account").len();
    for (name, value) in [
        ("MSCRM.BypassBusinessLogicExecution", "CustomEverything"),
        ("MSCRM.BypassCustomPluginExecution", "yes"),
        ("MSCRM.SuppressDuplicateDetection", "maybe"),
        ("MSCRM.SuppressCallbackRegistrationExpanderJob", "1"),
        ("MSCRM.BypassBusinessLogicExecutionStepIds", "not-a-guid"),
    ] {
        let a = create_with(&c, "accounts", json!({"name": "x"}), &[(name, value)]);
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (400, "0x80040203"),
            "{name}: {}",
            a.body
        );
        assert!(a.body.contains(name), "{}", a.body);
    }
    let four = "00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002,00000000-0000-0000-0000-000000000003,00000000-0000-0000-0000-000000000004";
    let a = create_with(
        &c,
        "accounts",
        json!({"name": "x"}),
        &[("MSCRM.BypassBusinessLogicExecutionStepIds", four)],
    );
    assert_eq!(a.status, 400);
    let ok = create_with(
        &c,
        "accounts",
        json!({"name": "flows off"}),
        &[("MSCRM.SuppressCallbackRegistrationExpanderJob", "true")],
    );
    assert_eq!(ok.status, 204, "{}", ok.body);

    let sales = emu.seeded_users().sales_user.system_user_id;
    let token = emu.issue_token_for(&sales);
    let denied = support::answer(
        c.agent
            .post(c.url("accounts"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .header("MSCRM.BypassBusinessLogicExecution", "CustomSync")
            .send(json!({"name": "not allowed"}).to_string().as_bytes()),
    );
    assert_eq!(
        (denied.status, denied.error_code().as_str()),
        (403, "0x80040220"),
        "{}",
        denied.body
    );
    assert!(denied.body.contains("prvBypassCustomBusinessLogic"));
    assert_eq!(emu.table("account").len(), before + 1);
}

#[test]
fn duplicate_detection_is_off_by_default_and_on_with_its_header() {
    let (emu, c) = start();
    let name = emu.table("account")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let on = [("MSCRM.SuppressDuplicateDetection", "false")];
    let before = emu.table("account").len();
    let dup = create_with(&c, "accounts", json!({"name": name.to_uppercase()}), &on);
    assert_eq!(
        (dup.status, dup.error_code().as_str()),
        (500, "0x80040333"),
        "{}",
        dup.body
    );
    assert_eq!(emu.table("account").len(), before);
    let default = create_with(&c, "accounts", json!({"name": name}), &[]);
    assert_eq!(
        default.status, 204,
        "detection is off by default: {}",
        default.body
    );
    let fresh = create_with(&c, "accounts", json!({"name": "A name nobody has"}), &on);
    assert_eq!(fresh.status, 204, "{}", fresh.body);

    let a = create_with(
        &c,
        "contacts",
        json!({"lastname": "One", "emailaddress1": "same@example.com"}),
        &on,
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let b = create_with(
        &c,
        "contacts",
        json!({"lastname": "Two", "emailaddress1": "other@example.com"}),
        &on,
    );
    let b = created(&b);
    let update = c.request(
        "PATCH",
        &format!("contacts({b})"),
        "application/json",
        &json!({"emailaddress1": "Same@example.com"}).to_string(),
        &[
            ("MSCRM.SuppressDuplicateDetection", "false"),
            ("If-Match", "*"),
        ],
    );
    assert_eq!(update.status, 500, "{}", update.body);
    assert_eq!(
        row(&emu, "contact", "contactid", &b)["emailaddress1"],
        "other@example.com"
    );
}

#[test]
fn flows_trigger_on_their_changes_unless_the_write_suppresses_them() {
    let (emu, c) = start();
    let reg = post(
        &c,
        "callbackregistrations",
        json!({"name": "When an account is added", "entityname": "account", "message": 1, "scope": 4, "url": "http://127.0.0.1:9/flow"}),
    );
    assert_eq!(reg.status, 204, "{}", reg.body);
    let reg = created(&reg);
    for (name, headers) in [
        (
            "Suppressed",
            vec![("MSCRM.SuppressCallbackRegistrationExpanderJob", "true")],
        ),
        (
            "Custom logic bypassed",
            vec![(
                "MSCRM.BypassBusinessLogicExecution",
                "CustomSync,CustomAsync",
            )],
        ),
        ("Plain", vec![]),
    ] {
        let a = create_with(&c, "accounts", json!({"name": name}), &headers);
        assert_eq!(a.status, 204, "{name}: {}", a.body);
    }
    // Updates are not what this flow listens to.
    let id = first_id(&c, "accounts", "accountid", "name%20eq%20'Plain'");
    assert_eq!(
        patch(
            &c,
            &format!("accounts({id})"),
            json!({"name": "Plain, renamed"})
        )
        .status,
        204
    );
    assert_eq!(emu.wait_for_deliveries(2, Duration::from_secs(10)).len(), 2);
    std::thread::sleep(Duration::from_millis(300));
    let flows: Vec<Value> = emu.webhook_deliveries().iter().map(|d| d.json()).collect();
    let names: Vec<&Value> = flows.iter().map(|f| &f["row"]["name"]).collect();
    assert_eq!(
        names,
        [&json!("Custom logic bypassed"), &json!("Plain")],
        "{flows:?}"
    );
    assert!(
        flows
            .iter()
            .all(|f| f["callbackregistrationid"] == reg.as_str() && f["message"] == "Create")
    );
}

#[test]
fn a_custom_api_created_through_the_web_api_is_declared_and_answers_501() {
    let (_emu, c) = start();
    let api = post(
        &c,
        "customapis",
        json!({"name": "new_Ping", "uniquename": "new_Ping", "displayname": "Ping", "bindingtype": 0, "isfunction": false}),
    );
    assert_eq!(api.status, 204, "{}", api.body);
    let api = created(&api);
    let p = post(
        &c,
        "customapirequestparameters",
        json!({"name": "new_Ping.Text", "uniquename": "Text", "type": 10, "isoptional": false,
               "CustomAPIId@odata.bind": format!("/customapis({api})")}),
    );
    assert_eq!(p.status, 204, "{}", p.body);
    let csdl = c.get("$metadata", &[]).body;
    assert!(
        csdl.contains(r#"<Action Name="new_Ping" IsBound="false"><Parameter Name="Text" Type="Edm.String" Nullable="false"/></Action>"#),
        "the new API is declared"
    );
    let missing = post(&c, "new_Ping", json!({}));
    assert_eq!(
        missing.status, 400,
        "its parameters are checked: {}",
        missing.body
    );
    let run = post(&c, "new_Ping", json!({"Text": "hello"}));
    assert_eq!(run.status, 501, "{}", run.body);
    assert!(run.body.contains("new_Ping"), "{}", run.body);
}

#[test]
fn a_background_operation_that_fails_reports_its_error() {
    let (emu, c) = start();
    let a = c.request(
        "POST",
        "new_CalculateDiscount",
        "application/json",
        &json!({"Amount": 50, "Percentage": 150}).to_string(),
        &[("Prefer", "respond-async")],
    );
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a
        .header("x-ms-dyn-backgroundoperationid")
        .unwrap()
        .to_string();
    let failed = wait_for(&emu, &id, 31);
    assert_eq!(failed["backgroundoperationstatecode"], 3);
    assert_eq!(
        failed["errorcode"], -2147088248,
        "0x80060888 as Dataverse numbers it"
    );
    assert!(
        failed["errormessage"]
            .as_str()
            .unwrap()
            .contains("'Percentage'")
    );
    assert!(failed["outputparameters"].is_null());
    let status = monitor(&c, a.header("Location").unwrap(), "GET").json();
    assert_eq!(status["backgroundOperationStatusCode"], 31);
    assert_eq!(status["backgroundOperationErrorCode"], -2147088248);
    assert!(status.get("DiscountAmount").is_none());
}
