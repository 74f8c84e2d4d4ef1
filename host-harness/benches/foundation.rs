//! Foundation figures: component size, compile time, and the cost of one call that fails
//! validation (a fresh store, instantiation, the endpoints query and the invoke, no HTTP).
//! Prints figures next to their targets; asserts nothing.

use std::time::{Duration, Instant};

use dynamics_host::{Connection, DYNAMICS_COMPONENT, Host, HostConfig};

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let size = DYNAMICS_COMPONENT.len();
    println!(
        "component size            {size:>10} bytes   target <= {} bytes   ratio {:.2}",
        1 << 20,
        size as f64 / f64::from(1 << 20)
    );

    let engine =
        wasmtime::Engine::new(wasmtime::Config::new().epoch_interruption(true)).expect("engine");
    let mut compiles: Vec<Duration> = (0..3)
        .map(|_| {
            let started = Instant::now();
            wasmtime::component::Component::new(&engine, DYNAMICS_COMPONENT).expect("compiles");
            started.elapsed()
        })
        .collect();
    println!(
        "compile (Cranelift)       {:>10.1} ms     median of 3",
        median(&mut compiles).as_secs_f64() * 1e3
    );

    let started = Instant::now();
    let host = Host::builtin(HostConfig::default()).expect("loads");
    println!(
        "load (compile+link+defs)  {:>10.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let connection = Connection {
        definition: "oauth2-client-credentials".to_string(),
        fields: vec![
            (
                "webApiUrl".to_string(),
                "https://contoso.crm.dynamics.com".to_string(),
            ),
            (
                "tokenUrl".to_string(),
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
                    .to_string(),
            ),
            (
                "clientId".to_string(),
                "00000000-0000-0000-0000-000000000001".to_string(),
            ),
            ("clientSecret".to_string(), "not-a-real-secret".to_string()),
        ],
        token: None,
    };
    // A malformed GUID: refused by validation, before any request.
    let input =
        r#"{"entityType": "accounts", "xmlQuery": "<fetch/>", "impersonateUserId": "nope"}"#;
    for _ in 0..200 {
        let _ = host.invoke("run-fetch-xml-query", &connection, input);
    }
    let mut samples: Vec<Duration> = (0..5000)
        .map(|_| {
            let started = Instant::now();
            let outcome = host.invoke("run-fetch-xml-query", &connection, input);
            let elapsed = started.elapsed();
            // The component's refusal, not a trap.
            assert!(
                outcome.is_err_and(|error| error.is_connector()),
                "validation must fail"
            );
            elapsed
        })
        .collect();
    let median = median(&mut samples);
    println!(
        "instantiate + invoke      {:>10.1} us     target <= 100 us   ratio {:.2}   p90 {:.1} us   p99 {:.1} us   (5000 calls)",
        median.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6 / 100.0,
        percentile(&samples, 0.90).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    );
}
