//! The cost model (`cost.rs`): latency and per-record server time, `x-ms-dop-hint`, and the three
//! service-protection limits per user with their documented errors and Retry-After
//! (learn.microsoft.com/power-apps/developer/data-platform/api-limits and
//! send-parallel-requests).

use crate::support;

use std::time::{Duration, Instant};

use dataverse_emulator::{Config, CostModel, Emulator};
use serde_json::json;
use support::{Answer, Client};

fn start(model: CostModel) -> (Emulator, Client) {
    let emu = Emulator::start(
        Config {
            rows_per_table: 20,
            cost_model: Some(model),
            ..Config::default()
        },
        0,
    )
    .expect("the emulator starts");
    let c = Client::new(&emu, Duration::from_secs(30));
    (emu, c)
}

/// A client acting as another seeded user (the sales user), with its own limits.
fn other_user(emu: &Emulator) -> Client {
    let id = emu.seeded_users().sales_user.system_user_id;
    Client {
        agent: support::agent(Duration::from_secs(30)),
        api: emu.web_api_url(),
        token: emu.issue_token_for(&id),
    }
}

fn timed(f: impl FnOnce() -> Answer) -> (Answer, Duration) {
    let t = Instant::now();
    let a = f();
    (a, t.elapsed())
}

fn retry_after(a: &Answer) -> u64 {
    a.header("Retry-After")
        .expect("a 429 carries Retry-After")
        .parse()
        .expect("Retry-After is a whole number of seconds")
}

#[test]
fn every_request_takes_its_latency_and_each_record_read_or_written_its_server_time() {
    let (_emu, c) = start(CostModel {
        latency: Duration::from_millis(150),
        per_record: Duration::from_millis(20),
        ..CostModel::default()
    });
    let (who, t) = timed(|| c.get("WhoAmI", &[]));
    assert_eq!(who.status, 200);
    assert!(t >= Duration::from_millis(150), "WhoAmI took {t:?}");
    // 20 rows: 150 ms + 20 × 20 ms.
    let (page, t) = timed(|| c.get("accounts?$select=name", &[]));
    assert_eq!(page.json()["value"].as_array().map(Vec::len), Some(20));
    assert!(t >= Duration::from_millis(550), "a 20-row page took {t:?}");
    // Ten creates in one CreateMultiple: 150 ms + 10 × 20 ms.
    let targets: Vec<_> = (0..10)
        .map(|i| json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "name": format!("Cost {i}")}))
        .collect();
    let (bulk, t) = timed(|| {
        c.request(
            "POST",
            "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
            "application/json",
            &json!({"Targets": targets}).to_string(),
            &[],
        )
    });
    assert_eq!(bulk.status, 200, "{}", bulk.body);
    assert!(
        t >= Duration::from_millis(350),
        "CreateMultiple of 10 took {t:?}"
    );
}

#[test]
fn the_wait_holds_no_other_request() {
    let (_emu, c) = start(CostModel {
        latency: Duration::from_millis(600),
        ..CostModel::default()
    });
    let c = std::sync::Arc::new(c);
    let t = Instant::now();
    let runs: Vec<_> = (0..12)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.get("WhoAmI", &[]).status)
        })
        .collect();
    let statuses: Vec<u16> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(statuses, vec![200; 12]);
    // One after another they would take 7.2 s.
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "12 concurrent requests took {:?}",
        t.elapsed()
    );
}

#[test]
fn answers_carry_the_models_dop_hint_and_without_it_the_configured_one() {
    let (emu, c) = start(CostModel {
        dop_hint: 5,
        ..CostModel::default()
    });
    assert_eq!(c.get("WhoAmI", &[]).header("x-ms-dop-hint"), Some("5"));
    assert_eq!(
        c.get("accounts?$top=1", &[]).header("x-ms-dop-hint"),
        Some("5")
    );
    emu.set_cost_model(None);
    // Dataverse answers a hint whatever the load; the emulator's default is 4.
    assert_eq!(c.get("WhoAmI", &[]).header("x-ms-dop-hint"), Some("4"));
    assert_eq!(
        c.get("accounts?$top=1", &[]).header("x-ms-dop-hint"),
        Some("4")
    );
}

#[test]
fn the_rate_limit_headers_count_down_the_models_budgets() {
    let (_emu, c) = start(CostModel {
        latency: Duration::from_millis(250),
        ..CostModel::default()
    });
    let first = c.get("WhoAmI", &[]);
    assert_eq!(
        first.header("x-ms-ratelimit-burst-remaining-xrm-requests"),
        Some("5999")
    );
    assert_eq!(
        first.header("x-ms-ratelimit-time-remaining-xrm-requests"),
        Some("1,200.00")
    );
    let second = c.get("WhoAmI", &[]);
    assert_eq!(
        second.header("x-ms-ratelimit-burst-remaining-xrm-requests"),
        Some("5998")
    );
    let left = second
        .header("x-ms-ratelimit-time-remaining-xrm-requests")
        .unwrap();
    assert!(left.starts_with("1,199.7"), "{left}");
}

#[test]
fn the_request_count_limit_answers_the_documented_429_until_the_window_slides() {
    let (emu, c) = start(CostModel {
        requests: 3,
        window: Duration::from_secs(2),
        ..CostModel::default()
    });
    for _ in 0..3 {
        assert_eq!(c.get("WhoAmI", &[]).status, 200);
    }
    let refused = c.get("WhoAmI", &[]);
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (429, "0x80072322")
    );
    assert_eq!(
        refused.json()["error"]["message"],
        "Number of requests exceeded the limit of 3 over time window of 2 seconds."
    );
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    // Another user has a window of its own.
    assert_eq!(other_user(&emu).get("WhoAmI", &[]).status, 200);
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert_eq!(emu.throttled().requests, 1);
}

#[test]
fn the_documented_request_limit_is_scaled_by_the_window() {
    // 6000 per 300 s is 20 per second of window.
    let m = CostModel::default().with_window(Duration::from_secs(1));
    assert_eq!((m.requests, m.execution), (20, Duration::from_secs(4)));
    let (_emu, c) = start(m);
    let statuses: Vec<u16> = (0..21).map(|_| c.get("WhoAmI", &[]).status).collect();
    assert_eq!(statuses[..20], [200; 20]);
    assert_eq!(statuses[20], 429);
}

#[test]
fn the_execution_time_limit_answers_the_documented_429_with_retry_after() {
    let (emu, c) = start(CostModel {
        latency: Duration::from_millis(300),
        execution: Duration::from_millis(500),
        window: Duration::from_secs(3),
        ..CostModel::default()
    });
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    let refused = c.get("WhoAmI", &[]);
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (429, "0x80072321")
    );
    assert_eq!(
        refused.json()["error"]["message"],
        "Combined execution time of incoming requests exceeded limit of 500 milliseconds over time window of 3 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later."
    );
    let wait = retry_after(&refused);
    assert!((1..=3).contains(&wait), "Retry-After {wait}");
    assert_eq!(other_user(&emu).get("WhoAmI", &[]).status, 200);
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert_eq!(emu.throttled().execution_time, 1);
}

#[test]
fn concurrent_requests_are_counted_per_user_and_the_one_past_the_limit_is_refused_at_once() {
    let (emu, c) = start(CostModel {
        latency: Duration::from_millis(1500),
        concurrent_requests: 2,
        ..CostModel::default()
    });
    let c = std::sync::Arc::new(c);
    let running: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.get("WhoAmI", &[]).status)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let (refused, t) = timed(|| c.get("WhoAmI", &[]));
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (429, "0x80072326")
    );
    assert_eq!(
        refused.json()["error"]["message"],
        "Number of concurrent requests exceeded the limit of 2."
    );
    assert_eq!(retry_after(&refused), 1);
    assert!(t < Duration::from_millis(1000), "the refusal took {t:?}");
    // Another user's requests are counted apart.
    assert_eq!(other_user(&emu).get("WhoAmI", &[]).status, 200);
    let statuses: Vec<u16> = running.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(statuses, vec![200, 200]);
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert_eq!(emu.throttled().concurrency, 1);
}

#[test]
fn the_admin_api_sets_the_model_and_counts_what_it_refused() {
    let emu = Emulator::start(
        Config {
            rows_per_table: 3,
            ..Config::default()
        },
        0,
    )
    .unwrap();
    let agent = support::agent(Duration::from_secs(10));
    let admin = |method: &str, body: Option<serde_json::Value>| {
        let url = format!("{}/cost", emu.admin_url());
        let r = match method {
            "PUT" => agent
                .put(&url)
                .header("X-Emulator-Admin-Key", emu.admin_key())
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_default().to_string().as_bytes()),
            _ => agent
                .get(&url)
                .header("X-Emulator-Admin-Key", emu.admin_key())
                .call(),
        };
        support::answer(r)
    };
    assert_eq!(
        admin("GET", None).json()["costModel"],
        serde_json::Value::Null
    );
    let set = admin(
        "PUT",
        Some(
            json!({"costModel": {"latencyMs": 100, "perRecordMs": 1, "windowSecs": 30, "concurrentRequests": 4}}),
        ),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let m = emu.cost_model().expect("the model is on");
    assert_eq!(m.latency, Duration::from_millis(100));
    assert_eq!(m.per_record, Duration::from_millis(1));
    assert_eq!((m.requests, m.concurrent_requests), (600, 4));
    assert_eq!(set.json()["costModel"]["executionMs"], 120_000);

    let bad = admin("PUT", Some(json!({"costModel": {"latencyMS": 100}})));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("latencyMS"), "{}", bad.body);
    let bad = admin("PUT", Some(json!({"costModel": {"perRecordMs": -1}})));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("perRecordMs"), "{}", bad.body);
    assert_eq!(
        emu.cost_model(),
        Some(m),
        "a refused change changes nothing"
    );

    emu.set_cost_model(Some(CostModel { requests: 1, ..m }));
    let c = Client::new(&emu, Duration::from_secs(10));
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
    assert_eq!(c.get("WhoAmI", &[]).status, 429);
    assert_eq!(admin("GET", None).json()["throttled"]["requests"], 1);
    assert_eq!(admin("PUT", Some(json!({"costModel": null}))).status, 200);
    assert_eq!(emu.cost_model(), None);
    assert_eq!(c.get("WhoAmI", &[]).status, 200);
}
