//! The main job: a tour of the connector against the embedded Dataverse emulator.
//!
//! Everything runs through the built component in the harness, exactly as a workflow host would
//! run it: the emulator stands in for Dataverse and Entra ID on a loopback port.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};

use crate::{Connection, Host, HostConfig, Level, NetworkPolicy, StderrLog, describe_error};

/// Starts an emulator with `rows` rows per table and runs the tour, writing to `out`.
pub fn run(rows: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    let emulator = Emulator::start(
        Config {
            rows_per_table: rows,
            ..Config::default()
        },
        0,
    )?;
    let host = Host::builtin(HostConfig {
        network: NetworkPolicy {
            allow_private: true,
            extra_hosts: Vec::new(),
        },
        log: Arc::new(StderrLog {
            min_level: Level::Warn,
        }),
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
    host.ensure_token(tour.connection)?
        .map_err(|e| anyhow!(describe_error(&e)))?;
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

    tour.heading("Query accounts with a filter, three per page (raw-request)")?;
    let first = tour.raw(json!({
        "url": "accounts",
        "method": "GET",
        "queryParams": {"$select": "name,accountnumber", "$filter": "contains(name,'a')", "$orderby": "name"},
        "headers": {"Prefer": "odata.maxpagesize=3"},
    }))?;
    tour.list_names(&first["data"])?;
    let next = first["data"]["@odata.nextLink"]
        .as_str()
        .map(str::to_string);
    match next {
        Some(link) => {
            tour.say("next page:")?;
            let second = tour.raw(
                json!({"url": link, "method": "GET", "headers": {"Prefer": "odata.maxpagesize=3"}}),
            )?;
            tour.list_names(&second["data"])?;
        }
        None => tour.say("no second page")?,
    }

    tour.heading("Create an account (raw-request POST, return=representation)")?;
    let created = tour.raw(json!({
        "url": "accounts",
        "method": "POST",
        "data": {"name": "Tour Company", "accountnumber": "TOUR-1", "creditlimit": 5000},
        "headers": {"Prefer": "return=representation"},
    }))?;
    let id = created["data"]["accountid"]
        .as_str()
        .context("the created account has an accountid")?
        .to_string();
    tour.say(&format!("HTTP {} accountid {id}", created["status"]))?;

    tour.heading("Get it back")?;
    let got = tour.raw(json!({"url": format!("accounts({id})"), "method": "GET", "queryParams": {"$select": "name,creditlimit"}}))?;
    tour.say(&format!(
        "{} with credit limit {}",
        got["data"]["name"], got["data"]["creditlimit"]
    ))?;

    tour.heading("Update it (PATCH with If-Match: * so it never creates)")?;
    let updated = tour.raw(json!({
        "url": format!("accounts({id})"),
        "method": "PATCH",
        "data": {"creditlimit": 7500},
        "headers": {"If-Match": "*"},
    }))?;
    tour.say(&format!("HTTP {}", updated["status"]))?;

    tour.heading("Upsert by alternate key accountnumber='TOUR-2' (creates, then updates)")?;
    for name in ["Tour Upsert", "Tour Upsert, renamed"] {
        let upserted = tour.raw(json!({
            "url": "accounts(accountnumber='TOUR-2')",
            "method": "PATCH",
            "data": {"name": name},
        }))?;
        tour.say(&format!(
            "HTTP {} -> {}",
            upserted["status"],
            upserted["headers"]["odata-entityid"].as_str().unwrap_or("")
        ))?;
    }

    tour.heading("Delete the first one, then try to read it")?;
    let deleted = tour.raw(json!({"url": format!("accounts({id})"), "method": "DELETE"}))?;
    tour.say(&format!("HTTP {}", deleted["status"]))?;
    match host.invoke(
        "raw-request",
        tour.connection,
        &json!({"url": format!("accounts({id})"), "method": "GET"}).to_string(),
    )? {
        Ok(_) => tour.say("unexpectedly still there")?,
        Err(failure) => tour.say(&format!(
            "as expected: {}",
            describe_error(&failure).replace('\n', "\n     ")
        ))?,
    }

    writeln!(
        tour.out,
        "\nDone: {} requests served by the emulator.",
        emulator.requests().len()
    )?;
    Ok(())
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
        let output = self
            .host
            .run_action(key, self.connection, &input.to_string())?
            .map_err(|failure| anyhow!("{key} failed: {}", describe_error(&failure)))?;
        Ok(serde_json::from_str(&output)?)
    }

    fn raw(&mut self, input: Value) -> anyhow::Result<Value> {
        self.action("raw-request", input)
    }

    fn list_names(&mut self, page: &Value) -> anyhow::Result<()> {
        for row in page["value"].as_array().into_iter().flatten() {
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
