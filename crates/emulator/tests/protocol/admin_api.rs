//! The admin API (`/_admin/`): fault rules, the service-protection limit, the request log and
//! table snapshots over HTTP, behind the key the emulator prints, for this emulator only.

use crate::support;

use std::io::{Read, Write};
use std::time::Duration;

use dataverse_emulator::{Config, Emulator};
use serde_json::{Value, json};
use support::{Answer, Client, agent, answer};

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

struct Admin {
    agent: ureq::Agent,
    url: String,
    key: String,
}

impl Admin {
    fn new(emu: &Emulator) -> Admin {
        Admin {
            agent: agent(Duration::from_secs(30)),
            url: emu.admin_url(),
            key: emu.admin_key().to_string(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        answer(
            self.agent
                .get(format!("{}{path}", self.url))
                .header("X-Emulator-Admin-Key", &self.key)
                .call(),
        )
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Answer {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "POST" => self.agent.post(url),
            "PUT" => self.agent.put(url),
            _ => panic!("{method}"),
        };
        answer(
            req.header("Authorization", format!("Bearer {}", self.key))
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
        )
    }

    fn delete(&self, path: &str) -> Answer {
        answer(
            self.agent
                .delete(format!("{}{path}", self.url))
                .header("X-Emulator-Admin-Key", &self.key)
                .call(),
        )
    }
}

/// A request written by hand, to send a Host header of our choosing.
fn raw(emu: &Emulator, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", emu.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_admin_api_refuses_requests_without_the_key_from_other_hosts_and_origins() {
    let (emu, c) = start();
    let admin = Admin::new(&emu);
    let a = agent(Duration::from_secs(10));
    // No key, a wrong key, the Web API's token instead of the key.
    let none = answer(a.get(format!("{}/faults", admin.url)).call());
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.json()["error"]["code"], "unauthenticated");
    let wrong = answer(
        a.get(format!("{}/faults", admin.url))
            .header("X-Emulator-Admin-Key", "0".repeat(48))
            .call(),
    );
    assert_eq!(wrong.status, 401);
    let token = answer(
        a.get(format!("{}/requests", admin.url))
            .header("Authorization", format!("Bearer {}", c.token))
            .call(),
    );
    assert_eq!(token.status, 401);
    // Refused requests change nothing.
    let add = answer(
        a.post(format!("{}/faults", admin.url))
            .header("Content-Type", "application/json")
            .send(r#"{"rule":"throttle:1"}"#.as_bytes()),
    );
    assert_eq!(add.status, 401);
    assert!(emu.faults().rules().is_empty());
    // Another Host (DNS rebinding), with the right key.
    let rebound = raw(
        &emu,
        &format!(
            "GET /_admin/faults HTTP/1.1\r\nHost: evil.example:{}\r\nX-Emulator-Admin-Key: {}\r\nConnection: close\r\n\r\n",
            emu.port(),
            admin.key
        ),
    );
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    let ok = raw(
        &emu,
        &format!(
            "GET /_admin/faults HTTP/1.1\r\nHost: localhost:{}\r\nX-Emulator-Admin-Key: {}\r\nConnection: close\r\n\r\n",
            emu.port(),
            admin.key
        ),
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // Another origin, with the key (a page in the browser cannot read the key, but be sure).
    let cross = answer(
        a.post(format!("{}/faults", admin.url))
            .header("X-Emulator-Admin-Key", &admin.key)
            .header("Origin", "https://evil.example")
            .header("Content-Type", "application/json")
            .send(r#"{"rule":"throttle:1"}"#.as_bytes()),
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    // A body that is not JSON (what a cross-site form could send).
    let form = answer(
        a.post(format!("{}/faults", admin.url))
            .header("X-Emulator-Admin-Key", &admin.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send("rule=throttle:1".as_bytes()),
    );
    assert_eq!(form.status, 415, "{}", form.body);
    assert!(emu.faults().rules().is_empty());
    // Admin requests are not logged.
    assert!(
        emu.requests()
            .iter()
            .all(|r| !r.path.starts_with("/_admin"))
    );
}

#[test]
fn a_fault_rule_added_over_http_is_met_by_the_web_api() {
    let (emu, c) = start();
    let admin = Admin::new(&emu);
    let added = admin.send(
        "POST",
        "/faults",
        &json!({"rule": "throttle=7:2@/accounts"}),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    let body = added.json();
    assert_eq!(body["added"]["rule"], "throttle=7:2@/accounts");
    assert_eq!(body["added"]["retryAfterSecs"], 7);
    assert_eq!(body["faults"].as_array().unwrap().len(), 1);
    let parts = admin.send(
        "POST",
        "/faults",
        &json!({"fault": "unavailable", "times": 1, "skip": 1, "path": "/contacts"}),
    );
    assert_eq!(parts.status, 201, "{}", parts.body);
    assert_eq!(parts.json()["added"]["rule"], "unavailable:1+1@/contacts");

    assert_eq!(c.get("WhoAmI", &[]).status, 200, "another path is spared");
    for _ in 0..2 {
        let a = c.get("accounts?$top=1", &[]);
        assert_eq!(a.status, 429, "{}", a.body);
        assert_eq!(a.header("retry-after"), Some("7"));
        assert_eq!(a.error_code(), "0x80072322");
    }
    assert_eq!(c.get("accounts?$top=1", &[]).status, 200);
    assert_eq!(c.get("contacts?$top=1", &[]).status, 200, "spared");
    assert_eq!(c.get("contacts?$top=1", &[]).status, 503);
    let left = admin.get("/faults");
    assert_eq!(left.json()["faults"], json!([]));

    // Bad rules are refused, naming the problem.
    let bad = admin.send("POST", "/faults", &json!({"rule": "explode:1"}));
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown fault")
    );
    // Clearing.
    admin.send("POST", "/faults", &json!({"rule": "cut:3"}));
    let cleared = admin.delete("/faults");
    assert_eq!(cleared.json()["cleared"], 1);
    assert_eq!(c.get("accounts?$top=1", &[]).status, 200);
}

#[test]
fn the_limit_can_be_read_and_set_over_http() {
    let (emu, c) = start();
    let admin = Admin::new(&emu);
    assert_eq!(admin.get("/limits").json(), json!({"rateLimit": null}));
    let set = admin.send("PUT", "/limits", &json!({"rateLimit": "2/60s"}));
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["rateLimit"]["text"], "2/60s");
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    let third = c.get("WhoAmI", &[]);
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(
        third.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 2 over time window of 60 seconds"),
        "{}",
        third.body
    );
    let retry: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let off = admin.send("PUT", "/limits", &json!({"rateLimit": null}));
    assert_eq!(off.json(), json!({"rateLimit": null}));
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    let bad = admin.send("PUT", "/limits", &json!({"rateLimit": "fast"}));
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn the_request_log_shows_statuses_and_faults_without_credentials() {
    let (emu, c) = start();
    let admin = Admin::new(&emu);
    emu.faults().add("throttle=0:1@/WhoAmI".parse().unwrap());
    assert_eq!(c.get("WhoAmI", &[]).status, 429);
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    // A token request: its secret stays out of the log.
    let cred = emu.credentials();
    let token = answer(
        agent(Duration::from_secs(10))
            .post(emu.token_url())
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", cred.client_id.as_str()),
                ("client_secret", cred.client_secret.as_str()),
                ("scope", emu.default_scope().as_str()),
            ]),
    );
    assert_eq!(token.status, 200, "{}", token.body);
    let log = admin.get("/requests");
    assert_eq!(log.status, 200, "{}", log.body);
    let text = log.body.clone();
    assert!(!text.contains(&c.token), "the bearer token is withheld");
    assert!(
        !text.contains(&cred.client_secret),
        "the client secret is withheld"
    );
    let requests = log.json()["requests"].as_array().unwrap().clone();
    let whoami: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/api/data/v9.2/WhoAmI")
        .collect();
    assert_eq!(whoami.len(), 2, "{text}");
    assert_eq!(whoami[0]["status"], 429);
    assert_eq!(whoami[0]["fault"], "throttle");
    assert_eq!(whoami[1]["status"], 200);
    assert_eq!(whoami[1]["fault"], Value::Null);
    assert_eq!(whoami[1]["headers"]["authorization"], "Bearer (withheld)");
    // ?since= lists what came after.
    let last = whoami[1]["seq"].as_u64().unwrap();
    let after = admin.get(&format!("/requests?since={last}")).json();
    assert_eq!(
        after["requests"].as_array().unwrap().len(),
        1,
        "the token request"
    );
    // Clearing.
    assert_eq!(admin.delete("/requests").status, 200);
    assert!(emu.requests().is_empty());
}

#[test]
fn tables_can_be_read_over_http() {
    let (emu, _c) = start();
    let admin = Admin::new(&emu);
    let t = admin.get("/tables/accounts");
    assert_eq!(t.status, 200, "{}", t.body);
    let body = t.json();
    assert_eq!(body["count"], 5);
    assert_eq!(body["value"], json!(emu.table("accounts")));
    assert_eq!(
        admin.get("/tables/account").json()["count"],
        5,
        "by logical name"
    );
    assert_eq!(admin.get("/tables/nope").status, 404);
    assert_eq!(admin.get("/nope").status, 404);
    let wrong_method = admin.send("PUT", "/requests", &json!({}));
    assert_eq!(wrong_method.status, 405);
}

#[test]
fn the_binary_takes_fault_rules_and_a_limit_and_prints_the_admin_key() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataverse-emulator"))
        .args([
            "--port",
            "0",
            "--rows",
            "2",
            "--fault",
            "throttle:2@/accounts",
            "--fault",
            "cut:1@$batch",
            "--rate-limit",
            "100/60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the emulator binary starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line == "ready";
        printed.push(line);
        if done {
            break;
        }
    }
    let value = |label: &str| {
        printed
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {label:?} in {printed:#?}"))
    };
    let url = value("admin api:");
    let key = value("admin key:");
    assert!(printed.contains(&"fault:         throttle=1:2@/accounts".to_string()));
    assert!(printed.contains(&"fault:         cut:1@$batch".to_string()));
    let a = agent(Duration::from_secs(10));
    let get = |path: &str| {
        answer(
            a.get(format!("{}{path}", url.trim_end_matches('/')))
                .header("X-Emulator-Admin-Key", &key)
                .call(),
        )
    };
    let faults = get("/faults").json();
    let rules: Vec<&str> = faults["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["throttle=1:2@/accounts", "cut:1@$batch"]);
    assert_eq!(get("/limits").json()["rateLimit"]["text"], "100/60s");
    let _ = child.kill();
    let _ = child.wait();

    let bad = Command::new(env!("CARGO_BIN_EXE_dataverse-emulator"))
        .args(["--port", "0", "--fault", "explode:1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("unknown fault"), "{stderr}");
}
