//! `dynamics extract --to sqlite:… | postgres://…` as a person runs it, against the emulator:
//! typed columns, upserts, deletes applied or flagged, columns added when a table grows, a run
//! killed and run again landing every row once, tables of modules not installed as notices.
//!
//! SQLite always runs. PostgreSQL runs against the server `DATABASE_URL` names (start one with
//! `tests/postgres.sh cargo test -p host-harness --test extract_database`); without it those
//! tests print that they are skipped.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dataverse_emulator::{Config, Emulator};
use host_harness::extract::database::Database;
use serde_json::{Value, json};

/// The same `Target` as the end-to-end tests', from one file.
#[path = "../../tests/src/extract_target.rs"]
#[allow(dead_code)]
mod extract_target;
use extract_target::Target;

fn emulator(rows: usize) -> Emulator {
    Emulator::start(
        Config {
            rows_per_table: rows,
            ..Config::default()
        },
        0,
    )
    .unwrap()
}

fn connection_file(emulator: &Emulator, name: &str) -> PathBuf {
    let credentials = emulator.credentials();
    // Tests run at once: each emulator gets its own file, whatever the test's name.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "dynamics-extract-db-{name}-{}-{}.json",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let json = json!({
        "type": "oauth2-client-credentials",
        "fields": {
            "webApiUrl": emulator.base_url(),
            "tokenUrl": emulator.token_url(),
            "clientId": credentials.client_id,
            "clientSecret": credentials.client_secret,
        }
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn extract_command(connection: &PathBuf, target: &Target, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dynamics"));
    command
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join(format!("dynamics-extract-db-state-{}", std::process::id())),
        )
        .args(["--allow-private", "extract", "-c"])
        .arg(connection)
        .args(["--to", &target.arg()])
        .args(extra);
    command
}

fn extract(connection: &PathBuf, target: &Target, extra: &[&str]) -> Output {
    let output = extract_command(connection, target, extra)
        .output()
        .expect("the CLI runs");
    assert!(
        output.status.success(),
        "extract {extra:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| !line.contains(" rows in all, "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The progress line's "N rows in all" is a running sum of what each page added and
    // deleted: after the run it must be what the table holds.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut last = std::collections::BTreeMap::new();
    for line in stderr.lines() {
        if let Some((table, rest)) = line.split_once(": ")
            && let Some((rows, _)) = rest.split_once(" rows in all, ")
        {
            last.insert(table.to_string(), rows.to_string());
        }
    }
    assert!(
        !last.is_empty() || stderr.contains("0 rows"),
        "no progress line to check: {stderr}"
    );
    for (table, rows) in last {
        assert_eq!(
            target.one(&format!("SELECT count(*) FROM \"{table}\"")),
            Some(rows),
            "{table}'s last progress line against its table"
        );
    }
    output
}

/// A Web API call to the emulator as the application user, for changes made "in Dataverse"
/// between runs.
fn web_api(emulator: &Emulator, method: &str, path: &str, body: Option<Value>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/{path}", emulator.web_api_url());
    let token = format!("Bearer {}", emulator.issue_token_for_tests());
    let response = match (method, body) {
        ("DELETE", _) => agent.delete(&url).header("Authorization", &token).call(),
        ("PATCH", Some(body)) => agent
            .patch(&url)
            .header("Authorization", &token)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
        ("POST", Some(body)) => agent
            .post(&url)
            .header("Authorization", &token)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
        other => panic!("no such call {other:?}"),
    };
    response.expect("the emulator answers").status().as_u16()
}

fn ids_in_emulator(emulator: &Emulator, table: &str, key: &str) -> BTreeSet<String> {
    emulator
        .table(table)
        .iter()
        .map(|row| row[key].as_str().unwrap().to_ascii_lowercase())
        .collect()
}

fn ids_in(target: &Target, table: &str, key: &str) -> Vec<String> {
    target
        .query(&format!(
            "SELECT CAST({key} AS TEXT) FROM {table} ORDER BY 1"
        ))
        .into_iter()
        .map(|row| row[0].clone().unwrap().to_ascii_lowercase())
        .collect()
}

// ---- the behaviours, each run on SQLite and on PostgreSQL ----

fn typed_columns_hold_what_dataverse_has(target: Target) {
    let emulator = emulator(6);
    let connection = connection_file(&emulator, "typed");
    extract(
        &connection,
        &target,
        &["--tables", "opportunities,accounts", "--parallel", "2"],
    );

    let types: std::collections::HashMap<String, String> =
        target.column_types("opportunities").into_iter().collect();
    let expected: &[(&str, &str, &str)] = &[
        // column, SQLite, PostgreSQL
        ("opportunityid", "TEXT", "uuid"),
        ("estimatedvalue", "TEXT", "numeric"),
        ("estimatedclosedate", "TEXT", "date"),
        ("modifiedon", "TEXT", "timestamp with time zone"),
        ("closeprobability", "INTEGER", "integer"),
        ("versionnumber", "INTEGER", "bigint"),
        ("parentaccountid", "TEXT", "uuid"),
        ("parentaccountid_table", "TEXT", "text"),
        ("statecode", "INTEGER", "integer"),
        ("statecode_label", "TEXT", "text"),
        ("name", "TEXT", "text"),
    ];
    for (column, sqlite, postgres) in expected {
        let want = if target.is_postgres() {
            postgres
        } else {
            sqlite
        };
        assert_eq!(
            types.get(*column).map(String::as_str),
            Some(*want),
            "{column}"
        );
    }
    let accounts: std::collections::HashMap<String, String> =
        target.column_types("accounts").into_iter().collect();
    let boolean = if target.is_postgres() {
        "boolean"
    } else {
        "INTEGER"
    };
    assert_eq!(
        accounts.get("creditonhold").map(String::as_str),
        Some(boolean)
    );

    // Every row, once, with the values Dataverse holds.
    let rows = emulator.table("opportunities");
    assert_eq!(
        ids_in(&target, "opportunities", "opportunityid"),
        ids_in_emulator(&emulator, "opportunities", "opportunityid")
            .into_iter()
            .collect::<Vec<_>>()
    );
    for row in &rows {
        let id = row["opportunityid"].as_str().unwrap();
        let got = &target.query(&format!(
            "SELECT CAST(estimatedvalue AS TEXT), CAST(estimatedclosedate AS TEXT), \
             CAST(parentaccountid AS TEXT), parentaccountid_table, statecode, statecode_label, \
             CAST(modifiedon AS TEXT) FROM opportunities WHERE CAST(opportunityid AS TEXT) = '{}'",
            id.to_ascii_lowercase()
        ))[0];
        let money = row["estimatedvalue"].to_string();
        assert_eq!(
            got[0]
                .as_deref()
                .map(|v| v.trim_end_matches(".0000").trim_end_matches(".00")),
            Some(money.as_str()),
            "money exact"
        );
        assert_eq!(
            got[1].as_deref(),
            row["estimatedclosedate"].as_str(),
            "date only"
        );
        assert_eq!(
            got[2].as_deref(),
            row["_parentaccountid_value"].as_str(),
            "the lookup's GUID"
        );
        if row["_parentaccountid_value"].is_string() {
            assert_eq!(got[3].as_deref(), Some("account"), "the lookup's table");
        }
        assert_eq!(
            got[4].as_deref(),
            Some(row["statecode"].to_string().as_str())
        );
        let label = match row["statecode"].as_i64() {
            Some(0) => "Open",
            Some(1) => "Won",
            _ => "Lost",
        };
        assert_eq!(got[5].as_deref(), Some(label), "the choice's label");
        let modified = row["modifiedon"].as_str().unwrap();
        let landed = got[6].clone().unwrap();
        if target.is_postgres() {
            assert_eq!(landed.replace(' ', "T").replace("+00", "Z"), modified);
        } else {
            assert_eq!(landed, modified);
        }
    }

    // A second run lands nothing new and duplicates nothing.
    let again = extract(
        &connection,
        &target,
        &["--tables", "opportunities,accounts"],
    );
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("opportunities: 0 rows landed, 0 deleted"),
        "{stdout}"
    );
    assert_eq!(
        target
            .one("SELECT CAST(count(*) AS TEXT) FROM opportunities")
            .as_deref(),
        Some(rows.len().to_string().as_str())
    );
}

fn changes_between_runs_are_applied(target: Target, deletes: &str) {
    let emulator = emulator(5);
    let connection = connection_file(&emulator, &format!("changes-{deletes}"));
    let args = ["--tables", "accounts", "--deletes", deletes];
    extract(&connection, &target, &args);
    let before = ids_in_emulator(&emulator, "accounts", "accountid");
    let mut ids = before.iter();
    let (updated, deleted) = (ids.next().unwrap().clone(), ids.next().unwrap().clone());

    // In Dataverse: a column added to the table, a row updated with it, a row deleted, a row
    // created.
    let column = json!({
        "@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata",
        "SchemaName": "new_Score",
        "DisplayName": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [
            {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": "Score", "LanguageCode": 1033}]},
        "RequiredLevel": {"Value": "None"},
        "Precision": 2, "MinValue": 0, "MaxValue": 1000
    });
    assert_eq!(
        web_api(
            &emulator,
            "POST",
            "EntityDefinitions(LogicalName='account')/Attributes",
            Some(column)
        ),
        204
    );
    let patch = json!({"name": "Renamed between runs", "new_score": 12.25});
    assert_eq!(
        web_api(
            &emulator,
            "PATCH",
            &format!("accounts({updated})"),
            Some(patch)
        ),
        204
    );
    assert_eq!(
        web_api(&emulator, "DELETE", &format!("accounts({deleted})"), None),
        204
    );
    assert_eq!(
        web_api(
            &emulator,
            "POST",
            "accounts",
            Some(json!({"name": "Created between runs"}))
        ),
        204
    );

    let output = extract(&connection, &target, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("accounts: 2 rows landed, 1 deleted"),
        "{stdout}"
    );

    let row = &target.query(&format!(
        "SELECT name, CAST(new_score AS TEXT) FROM accounts WHERE CAST(accountid AS TEXT) = '{updated}'"
    ))[0];
    assert_eq!(row[0].as_deref(), Some("Renamed between runs"));
    assert_eq!(
        row[1].as_deref(),
        Some("12.25"),
        "the new column, typed, with its value"
    );
    assert_eq!(
        target
            .one("SELECT CAST(count(*) AS TEXT) FROM accounts WHERE name = 'Created between runs'")
            .as_deref(),
        Some("1")
    );
    let landed = ids_in(&target, "accounts", "accountid");
    let now: Vec<String> = ids_in_emulator(&emulator, "accounts", "accountid")
        .into_iter()
        .collect();
    match deletes {
        "delete" => assert_eq!(landed, now, "the deleted row is gone, every other row once"),
        _ => {
            let mut with_deleted = now.clone();
            with_deleted.push(deleted.clone());
            with_deleted.sort();
            assert_eq!(landed, with_deleted, "the deleted row stays, flagged");
            let flag = &target.query(&format!(
                "SELECT CAST(_deleted AS TEXT), CAST(_deleted_at AS TEXT) FROM accounts WHERE CAST(accountid AS TEXT) = '{deleted}'"
            ))[0];
            assert!(
                matches!(flag[0].as_deref(), Some("1" | "true")),
                "flagged: {flag:?}"
            );
            assert!(flag[1].is_some(), "with the time it was seen deleted");
            assert_eq!(
                target
                    .one("SELECT CAST(count(*) AS TEXT) FROM accounts WHERE _deleted = false")
                    .as_deref(),
                Some(now.len().to_string().as_str()),
                "the rest are live"
            );
        }
    }
}

fn a_killed_run_rerun_lands_every_row_exactly_once(target: Target) {
    let emulator = emulator(1500);
    let connection = connection_file(&emulator, "killed");
    let tables = "accounts,contacts,leads,opportunities,tasks,annotations";
    let args = [
        "--tables",
        tables,
        "--page-size",
        "50",
        "--since",
        "2000-01-01",
        "--parallel",
        "3",
    ];

    // Stopped after a few calls: some tables landed, some not begun.
    let first = extract(
        &connection,
        &target,
        &[&args[..], &["--max-calls", "4"]].concat(),
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("stopped before the end"));

    // Then a real SIGKILL while tables are being landed: once this run has committed
    // another table, before it has committed them all.
    let complete = |target: &Target| {
        target
            .one(&format!(
                "SELECT CAST(count(*) AS TEXT) FROM _dynamics_extract_state WHERE complete = {}",
                if target.is_postgres() { "true" } else { "1" }
            ))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let before = complete(&target);
    assert!(before < 6, "the interrupted run left tables to do");
    let mut child = extract_command(&connection, &target, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        if complete(&target) > before {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(complete(&target) < 6, "killed before the end");

    // Between runs, a row is deleted in Dataverse.
    let gone = ids_in_emulator(&emulator, "contacts", "contactid")
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(
        web_api(&emulator, "DELETE", &format!("contacts({gone})"), None),
        204
    );

    let rerun = extract(&connection, &target, &args);
    let said = String::from_utf8_lossy(&rerun.stdout).into_owned();
    for (table, key) in [
        ("accounts", "accountid"),
        ("contacts", "contactid"),
        ("leads", "leadid"),
        ("opportunities", "opportunityid"),
        ("tasks", "activityid"),
        ("annotations", "annotationid"),
    ] {
        let landed = ids_in(&target, table, key);
        let distinct: BTreeSet<String> = landed.iter().cloned().collect();
        assert_eq!(distinct.len(), landed.len(), "{table}: no row twice");
        let dataverse = ids_in_emulator(&emulator, table, key);
        let missing: Vec<&String> = dataverse.difference(&distinct).collect();
        let extra: Vec<&String> = distinct.difference(&dataverse).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{table}: every row of Dataverse, once: {} missing {:?}, {} extra {:?}; the rerun said {said}",
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>(),
            extra.len(),
            extra.iter().take(3).collect::<Vec<_>>()
        );
    }
    assert!(
        !ids_in(&target, "contacts", "contactid").contains(&gone),
        "the deleted row is gone"
    );
    // The state says every table is complete.
    assert_eq!(
        target
            .one(&format!(
                "SELECT CAST(count(*) AS TEXT) FROM _dynamics_extract_state WHERE complete = {}",
                if target.is_postgres() { "true" } else { "1" }
            ))
            .as_deref(),
        Some("6")
    );
}

fn modules_not_installed_give_zero_rows_and_a_notice(target: Target) {
    let emulator = emulator(3);
    let connection = connection_file(&emulator, "modules");
    let output = extract(
        &connection,
        &target,
        &["--tables", "accounts,campaigns,incidents"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for table in ["campaigns", "incidents"] {
        assert!(
            stderr.contains(&format!(
                "notice: {table}: no such table in this environment"
            )),
            "{stderr}"
        );
        assert!(
            stdout.contains(&format!("{table}: 0 rows landed")),
            "{stdout}"
        );
        assert!(
            target.column_types(table).is_empty(),
            "no {table} table is made"
        );
    }
    assert!(stdout.contains("accounts: 3 rows landed"), "{stdout}");
}

// ---- SQLite ----

#[test]
fn sqlite_typed_columns_hold_what_dataverse_has() {
    typed_columns_hold_what_dataverse_has(Target::sqlite("typed"));
}

#[test]
fn sqlite_deletes_updates_and_new_columns_between_runs_are_applied() {
    changes_between_runs_are_applied(Target::sqlite("changes-delete"), "delete");
}

#[test]
fn sqlite_deleted_rows_can_be_flagged_instead() {
    changes_between_runs_are_applied(Target::sqlite("changes-flag"), "flag");
}

#[test]
fn sqlite_a_killed_run_rerun_lands_every_row_exactly_once() {
    a_killed_run_rerun_lands_every_row_exactly_once(Target::sqlite("killed"));
}

#[test]
fn sqlite_modules_not_installed_give_zero_rows_and_a_notice() {
    modules_not_installed_give_zero_rows_and_a_notice(Target::sqlite("modules"));
}

// ---- PostgreSQL ----

#[test]
fn postgres_typed_columns_hold_what_dataverse_has() {
    if let Some(target) = Target::postgres("typed") {
        typed_columns_hold_what_dataverse_has(target);
    }
}

#[test]
fn postgres_deletes_updates_and_new_columns_between_runs_are_applied() {
    if let Some(target) = Target::postgres("changes_delete") {
        changes_between_runs_are_applied(target, "delete");
    }
}

#[test]
fn postgres_deleted_rows_can_be_flagged_instead() {
    if let Some(target) = Target::postgres("changes_flag") {
        changes_between_runs_are_applied(target, "flag");
    }
}

#[test]
fn postgres_a_killed_run_rerun_lands_every_row_exactly_once() {
    if let Some(target) = Target::postgres("killed") {
        a_killed_run_rerun_lands_every_row_exactly_once(target);
    }
}

#[test]
fn postgres_modules_not_installed_give_zero_rows_and_a_notice() {
    if let Some(target) = Target::postgres("modules") {
        modules_not_installed_give_zero_rows_and_a_notice(target);
    }
}

/// One page that names a row twice lands the row's later version once; text with the
/// characters PostgreSQL's COPY format reads as structure, decimals, instants and IDs arrive as
/// sent; a page with a value its column cannot take fails whole and the next page on the same
/// connection lands; flagged deletes flag. SQLite's row statements, PostgreSQL's COPY path and
/// its parameter path (for roles without TEMPORARY) must all land the same.
fn pages_land_whole_with_their_last_versions(target: &Target, mut db: Box<dyn Database>) {
    use host_harness::extract::database::{Applied, Deletes, Landing, SavedState, state_table_ddl};
    use host_harness::extract::schema::{Cell, Column, Kind, Source};
    let postgres = target.is_postgres();
    let ty = |pg: &'static str, lite: &'static str| if postgres { pg } else { lite };
    for (table, flags) in [("things", ""), ("flagged", "")] {
        let flags = if table == "flagged" {
            format!(
                ", \"_deleted\" {} NOT NULL DEFAULT {}, \"_deleted_at\" {}",
                ty("BOOLEAN", "INTEGER"),
                ty("false", "0"),
                ty("TIMESTAMPTZ", "TEXT")
            )
        } else {
            flags.to_string()
        };
        db.execute(&format!(
            "CREATE TABLE \"{table}\" (\"thingid\" {} PRIMARY KEY, \"name\" TEXT, \"size\" {}, \"amount\" {}, \"seen\" {}, \"owner\" {}{flags})",
            ty("UUID", "TEXT"),
            ty("INTEGER", "INTEGER"),
            ty("NUMERIC", "TEXT"),
            ty("TIMESTAMPTZ", "TEXT"),
            ty("UUID", "TEXT"),
        ))
        .unwrap();
    }
    db.execute(&state_table_ddl(db.dialect())).unwrap();
    let column = |name: &str, kind| Column {
        name: name.to_string(),
        kind,
        source: Source::Plain(name.to_string()),
    };
    let columns = [
        column("name", Kind::Text),
        column("size", Kind::Integer),
        column("amount", Kind::Numeric),
        column("seen", Kind::Timestamp),
        column("owner", Kind::Uuid),
    ];
    let (one, two) = (
        "00000000-0000-0000-0000-0000000000a1",
        "00000000-0000-0000-0000-0000000000a2",
    );
    let owner = "00000000-0000-0000-0000-0000000000b1";
    let awkward = "tab\there, new\nline, return\r, back\\slash, \\N, \\., é, \"quoted\", ''";
    let row = |id: &str, name: Cell, size: Cell| {
        (
            id.to_string(),
            vec![
                name,
                size,
                Cell::Number("12345678901234.5678".into()),
                Cell::Text("2024-05-01T10:00:00Z".into()),
                Cell::Text(owner.into()),
            ],
        )
    };
    let landing = |table: &'static str, rows, deleted: Vec<String>, deletes| Landing {
        table,
        state_key: table,
        primary_id: "thingid",
        columns: &columns,
        rows,
        deleted,
        deletes,
        state: SavedState {
            mode: "watermark".to_string(),
            cursor: Some(format!("after {table}")),
            complete: false,
        },
    };

    // A value its column cannot take: the page fails whole, nothing of it lands.
    let broken = landing(
        "things",
        vec![
            row(two, Cell::Text("fine".into()), Cell::Int(1)),
            row(
                one,
                Cell::Text("bad".into()),
                Cell::Text("not a number".into()),
            ),
        ],
        Vec::new(),
        Deletes::Delete,
    );
    if postgres {
        assert!(db.apply(&broken).is_err(), "a text in an INTEGER column");
        assert_eq!(
            target.one("SELECT count(*) FROM \"things\""),
            Some("0".into())
        );
    }
    // The next page on the same connection lands, its repeated row as its later version.
    let page = landing(
        "things",
        vec![
            row(one, Cell::Text("first".into()), Cell::Int(1)),
            row(two, Cell::Null, Cell::Null),
            row(one, Cell::Text(awkward.into()), Cell::Int(2)),
        ],
        Vec::new(),
        Deletes::Delete,
    );
    // Two rows are new, the one named twice counted once.
    assert_eq!(
        db.apply(&page).unwrap(),
        Applied {
            added: 2,
            removed: 0
        }
    );
    let text = |column: &str| {
        if postgres {
            format!("CAST(\"{column}\" AS TEXT)")
        } else {
            format!("\"{column}\"")
        }
    };
    let rows = target.query(&format!(
        "SELECT {}, \"name\", {}, {}, {} FROM \"things\" ORDER BY 1",
        text("thingid"),
        text("size"),
        text("amount"),
        text("owner"),
    ));
    assert_eq!(
        rows,
        vec![
            vec![
                Some(one.to_string()),
                Some(awkward.to_string()),
                Some("2".to_string()),
                Some("12345678901234.5678".to_string()),
                Some(owner.to_string()),
            ],
            vec![
                Some(two.to_string()),
                None,
                None,
                Some("12345678901234.5678".to_string()),
                Some(owner.to_string()),
            ],
        ]
    );
    if postgres {
        assert_eq!(
            target.one("SELECT to_char(\"seen\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM \"things\" LIMIT 1"),
            Some("2024-05-01 10:00:00".to_string())
        );
    }
    assert_eq!(
        target.one("SELECT resume_from FROM _dynamics_extract_state WHERE table_name = 'things'"),
        Some("after things".to_string())
    );
    // A row seen again is not new; of two deletes, only the row the table held is counted.
    let applied = db
        .apply(&landing(
            "things",
            vec![row(one, Cell::Text("again".into()), Cell::Int(3))],
            vec![
                two.to_string(),
                "00000000-0000-0000-0000-0000000000a9".to_string(),
            ],
            Deletes::Delete,
        ))
        .unwrap();
    assert_eq!(
        applied,
        Applied {
            added: 0,
            removed: 1
        }
    );
    assert_eq!(
        target.one("SELECT count(*) FROM \"things\""),
        Some(applied.onto(2).to_string())
    );

    // Flagged deletes: a row landed, then flagged by the next page, then seen again is live.
    let flagged = |rows, deleted| landing("flagged", rows, deleted, Deletes::Flag);
    let first = db
        .apply(&flagged(
            vec![
                row(one, Cell::Text("kept".into()), Cell::Int(1)),
                row(two, Cell::Text("goes".into()), Cell::Int(2)),
            ],
            Vec::new(),
        ))
        .unwrap();
    assert_eq!(first.added, 2);
    // A flagged row stays in the table: the count does not fall.
    assert_eq!(
        db.apply(&flagged(Vec::new(), vec![two.to_string()]))
            .unwrap(),
        Applied::default()
    );
    let live = |id: &str| {
        target.one(&format!(
            "SELECT {} FROM \"flagged\" WHERE {} = '{id}'",
            text("_deleted"),
            text("thingid")
        ))
    };
    let (yes, no) = if postgres {
        ("true", "false")
    } else {
        ("1", "0")
    };
    assert_eq!(live(two), Some(yes.to_string()), "flagged");
    assert_eq!(live(one), Some(no.to_string()));
    assert_eq!(
        db.apply(&flagged(
            vec![row(two, Cell::Text("back".into()), Cell::Int(3))],
            Vec::new(),
        ))
        .unwrap(),
        Applied::default(),
        "a flagged row seen again is not new"
    );
    assert_eq!(live(two), Some(no.to_string()), "seen again, live again");
    assert_eq!(
        target.one("SELECT count(*) FROM \"flagged\" WHERE \"_deleted_at\" IS NULL"),
        Some("2".to_string())
    );
}

#[test]
fn sqlite_pages_land_whole_with_their_last_versions() {
    let target = Target::sqlite("whole");
    let db = target.open().unwrap();
    pages_land_whole_with_their_last_versions(&target, db);
}

#[test]
fn postgres_pages_land_whole_with_their_last_versions() {
    if let Some(target) = Target::postgres("whole") {
        let db = target.open().unwrap();
        pages_land_whole_with_their_last_versions(&target, db);
    }
}

#[test]
fn postgres_without_temporary_tables_pages_land_the_same() {
    if let Some(target) = Target::postgres("whole_params") {
        let db = host_harness::extract::postgres::Postgres::connect(&target.arg())
            .unwrap()
            .without_staging();
        pages_land_whole_with_their_last_versions(&target, Box::new(db));
    }
}

// ---- refusals ----

#[test]
fn a_destination_or_deletes_option_it_does_not_know_is_refused_before_any_request() {
    let emulator = emulator(3);
    let connection = connection_file(&emulator, "refused");
    for (option, value, says) in [
        ("--to", "mysql://app:hunter2@db/crm", "is not a destination"),
        ("--deletes", "archive", "is not delete or flag"),
        ("--parallel", "0", "--parallel"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_dynamics"))
            .args(["--allow-private", "extract", "-c"])
            .arg(&connection)
            .args([option, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{option}: {stderr}");
        assert!(!stderr.contains("hunter2"), "no password shown: {stderr}");
    }
    assert!(emulator.requests().is_empty(), "nothing was sent");
}

#[test]
fn tables_in_parallel_under_service_protection_limits_wait_out_429s_and_land_every_row() {
    let emulator = Emulator::start(
        Config {
            rows_per_table: 30,
            // Far below Dataverse's 6000 per 300 s: four table threads run into it.
            rate_limit: Some(dataverse_emulator::RateLimit {
                requests: 8,
                window: Duration::from_secs(2),
            }),
            ..Config::default()
        },
        0,
    )
    .unwrap();
    let connection = connection_file(&emulator, "throttled");
    let target = Target::sqlite("throttled");
    let tables = [
        ("accounts", "accountid"),
        ("contacts", "contactid"),
        ("leads", "leadid"),
        ("opportunities", "opportunityid"),
    ];
    extract(
        &connection,
        &target,
        &[
            "--tables",
            "accounts,contacts,leads,opportunities",
            "--parallel",
            "4",
        ],
    );
    let throttled = emulator
        .requests()
        .iter()
        .filter(|request| request.status == Some(429))
        .count();
    assert!(throttled > 0, "the limit was reached");
    for (table, key) in tables {
        let landed: BTreeSet<String> = ids_in(&target, table, key).into_iter().collect();
        assert_eq!(landed, ids_in_emulator(&emulator, table, key), "{table}");
    }
}
