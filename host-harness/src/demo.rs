//! The main job: a tour of the connector against the embedded Dataverse emulator.
//!
//! Everything runs through the built component in the harness, exactly as a workflow host would
//! run it: the emulator stands in for Dataverse and Entra ID on a loopback port.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use dynamics_host::{
    CallError, CallResult, Connection, ConnectorError, Host, HostConfig, Level, NetworkPolicy,
    StderrLog, describe_error,
};

/// Starts an emulator with `rows` rows per table and runs the tour, writing to `out`.
pub fn run(rows: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    tour(&start_emulator(rows)?, rows, out)
}

/// The demo's emulator: `rows` rows per table on a free loopback port.
pub fn start_emulator(rows: usize) -> anyhow::Result<Emulator> {
    Emulator::start(
        Config {
            rows_per_table: rows,
            ..Config::default()
        },
        0,
    )
}

/// Runs the tour against `emulator` (seeded with `rows` rows per table), writing to `out`.
pub fn tour(emulator: &Emulator, rows: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    tour_with(emulator, rows, None, out)
}

/// The tour with the shop sync run on `shop_export` (a nopCommerce export as JSON) instead of
/// the built-in fixture; the export is checked before the tour sends anything.
pub fn tour_with(
    emulator: &Emulator,
    rows: usize,
    shop_export: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let shop =
        crate::shop_sync::Shop::from_json(shop_export.unwrap_or(crate::shop_sync::DEMO_SHOP))?;
    let host = Host::builtin(HostConfig {
        network: NetworkPolicy {
            allow_private: true,
            extra_hosts: Vec::new(),
            ..NetworkPolicy::default()
        },
        log: Arc::new(StderrLog {
            min_level: Level::Warn,
        }),
        compile_cache: dynamics_host::compile_cache::default_dir(),
        ..HostConfig::default()
    })?;
    let credentials = emulator.credentials();
    let mut connection = Connection {
        definition: "oauth2-client-credentials".to_string(),
        fields: vec![
            ("webApiUrl".to_string(), emulator.base_url()),
            ("tokenUrl".to_string(), emulator.token_url()),
            ("clientId".to_string(), credentials.client_id.clone()),
            (
                "clientSecret".to_string(),
                credentials.client_secret.clone(),
            ),
        ],
        token: None,
    };
    let mut tour = Tour {
        host: &host,
        connection: &mut connection,
        out,
        step: 0,
    };
    writeln!(
        tour.out,
        "Dataverse emulator: {} ({} rows per table)",
        emulator.web_api_url(),
        rows
    )?;
    writeln!(
        tour.out,
        "Component: {} {}",
        host.definition().name,
        host.definition().version
    )?;

    tour.heading("Sign in with the client-credentials connection")?;
    // A component's error reads as `describe_error` shows it; a host's as its own message.
    host.ensure_token(tour.connection)?;
    let lifetime = tour
        .connection
        .token
        .as_ref()
        .and_then(|t| t.expires_in_secs)
        .unwrap_or_default();
    tour.say(&format!(
        "token acquired from {} (valid {lifetime} s; never printed)",
        emulator.token_url()
    ))?;

    tour.heading("Who am I (get-current-user)")?;
    let me = tour.action("get-current-user", json!({}))?;
    tour.say(&format!(
        "{} ({})",
        me["user"]["fullname"].as_str().unwrap_or("?"),
        me["userId"].as_str().unwrap_or("?")
    ))?;
    tour.say(&format!(
        "business unit {}",
        me["businessUnitId"].as_str().unwrap_or("?")
    ))?;

    tour.heading("Query accounts with a filter, three per page (query-entities)")?;
    let query = json!({
        "entityType": "accounts",
        "fieldNames": ["name", "accountnumber"],
        "filterExpression": "contains(name,'a')",
        "orderBy": ["name"],
        "recordsPerPage": 3,
    });
    let first = tour.action("query-entities", query.clone())?;
    tour.list_names(&first["records"])?;
    if let Some(cursor) = first["nextPageId"].as_str() {
        tour.say("next page, by the nextPageId cursor:")?;
        let mut next = query.clone();
        next["nextPageId"] = json!(cursor);
        let second = tour.action("query-entities", next)?;
        tour.list_names(&second["records"])?;
    }
    let mut all = query;
    all["fetchAll"] = json!(true);
    all["recordsPerPage"] = json!(5);
    let every = tour.action("query-entities", all)?;
    tour.say(&format!(
        "fetch all pages: {} matching accounts in {} pages",
        every["records"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default(),
        every["pages"]
    ))?;

    tour.heading("Create an account, then a contact bound to it by lookup (create-entity)")?;
    let created = tour.action(
        "create-entity",
        json!({
            "entityType": "accounts",
            "fieldValues": {"name": "Tour Company", "accountnumber": "TOUR-1"},
            "dynamicValues": {"creditlimit": 5000},
            "returnRepresentation": true,
        }),
    )?;
    let id = created["id"]
        .as_str()
        .context("the created account has an id")?
        .to_string();
    tour.say(&format!(
        "account {id}, credit limit {}",
        created["record"]["creditlimit"]
    ))?;
    let contact = tour.action(
        "create-entity",
        json!({
            "entityType": "contacts",
            "fieldValues": {"firstname": "Siobhán", "lastname": "O'Brien"},
            "dynamicValues": {"parentcustomerid": {"table": "accounts", "key": {"accountnumber": "TOUR-1"}}},
        }),
    )?;
    tour.say(&format!(
        "contact {} bound to the account through parentcustomerid",
        contact["id"].as_str().unwrap_or("?")
    ))?;

    tour.heading("Get the account back by its alternate key (get-entity)")?;
    let got = tour.action(
        "get-entity",
        json!({"entityType": "accounts", "entityId": "accountnumber='TOUR-1'", "fieldNames": ["name", "creditlimit"]}),
    )?;
    tour.say(&format!(
        "{} with credit limit {} (etag {})",
        got["name"], got["creditlimit"], got["@odata.etag"]
    ))?;

    tour.heading("Update it (update-entity: If-Match, so it never creates)")?;
    tour.action(
        "update-entity",
        json!({"entityType": "accounts", "entityId": id, "fieldValues": {"creditlimit": 7500}}),
    )?;
    let stale_input = json!({"entityType": "accounts", "entityId": id, "fieldValues": {"creditlimit": 1}, "etag": got["@odata.etag"]});
    match tour
        .host
        .invoke("update-entity", tour.connection, &stale_input.to_string())
    {
        Ok(_) => tour.say("unexpectedly accepted a stale ETag")?,
        Err(CallError::Host(problem)) => return Err(problem.into()),
        Err(CallError::Connector(failure)) => tour.say(&format!(
            "again with the old ETag: {}",
            indent(&describe_error(&failure))
        ))?,
    }

    tour.heading("Upsert by alternate key accountnumber='TOUR-2' (upsert-entity)")?;
    for name in ["Tour Upsert", "Tour Upsert, renamed"] {
        let upserted = tour.action(
            "upsert-entity",
            json!({"entityType": "accounts", "entityId": "accountnumber='TOUR-2'", "fieldValues": {"name": name}}),
        )?;
        tour.say(&format!("{name:?} -> {}", upserted["id"]))?;
    }
    let create_only = json!({"entityType": "accounts", "entityId": "accountnumber='TOUR-2'", "fieldValues": {"name": "X"}, "upsertMode": "createOnly"});
    if let Some(failure) = answered(tour.host.invoke(
        "upsert-entity",
        tour.connection,
        &create_only.to_string(),
    ))? {
        tour.say(&format!(
            "create only, again: {}",
            indent(&describe_error(&failure))
        ))?;
    }

    tour.heading("Delete the first account, then try to read it (delete-entity)")?;
    tour.action(
        "delete-entity",
        json!({"entityType": "accounts", "entityId": id}),
    )?;
    tour.say("deleted")?;
    let read_again = json!({"entityType": "accounts", "entityId": id}).to_string();
    match host.invoke("get-entity", tour.connection, &read_again) {
        Ok(_) => tour.say("unexpectedly still there")?,
        Err(CallError::Host(problem)) => return Err(problem.into()),
        Err(CallError::Connector(failure)) => tour.say(&format!(
            "as expected: {}",
            indent(&describe_error(&failure))
        ))?,
    }

    tour.heading(
        "nopCommerce's one-way sync: customers, products and orders with their lifecycle (shop_sync)",
    )?;
    crate::shop_sync::show(tour.host, tour.connection, shop, tour.out)?;

    tour.heading("A mistyped table name (query-entities)")?;
    if let Some(failure) = answered(host.invoke(
        "query-entities",
        tour.connection,
        r#"{"entityType": "acounts"}"#,
    ))? {
        tour.say(&indent(&describe_error(&failure)))?;
    }

    writeln!(
        tour.out,
        "\nDone: {} requests served by the emulator.",
        emulator.requests().len()
    )?;
    Ok(())
}

/// The component's error from a call the tour expects to be refused; a host error ends the tour.
fn answered<T>(result: CallResult<T>) -> anyhow::Result<Option<ConnectorError>> {
    match result {
        Ok(_) => Ok(None),
        Err(CallError::Connector(failure)) => Ok(Some(failure)),
        Err(CallError::Host(problem)) => Err(problem.into()),
    }
}

struct Tour<'a> {
    host: &'a Host,
    connection: &'a mut Connection,
    out: &'a mut dyn Write,
    step: usize,
}

impl Tour<'_> {
    fn heading(&mut self, title: &str) -> anyhow::Result<()> {
        self.step += 1;
        writeln!(self.out, "\n{}. {title}", self.step)?;
        Ok(())
    }

    fn say(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.out, "   {line}")?;
        Ok(())
    }

    fn action(&mut self, key: &str, input: Value) -> anyhow::Result<Value> {
        let output = match self
            .host
            .run_action(key, self.connection, &input.to_string())
        {
            Ok(output) => output,
            Err(CallError::Connector(failure)) => {
                bail!("{key} failed: {}", describe_error(&failure))
            }
            Err(CallError::Host(problem)) => return Err(problem.into()),
        };
        Ok(serde_json::from_str(&output)?)
    }

    fn list_names(&mut self, records: &Value) -> anyhow::Result<()> {
        for row in records.as_array().into_iter().flatten() {
            let line = format!(
                "{} [{}]",
                row["name"].as_str().unwrap_or("?"),
                row["accountnumber"].as_str().unwrap_or("-")
            );
            self.say(&line)?;
        }
        Ok(())
    }
}

/// Continues a multi-line error under the tour's indentation.
fn indent(text: &str) -> String {
    text.replace('\n', "\n     ")
}
