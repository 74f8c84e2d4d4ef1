//! `dynamics emulator`: serves the Dataverse emulator on loopback until Ctrl-C.

use std::process::ExitCode;

use crate::commands::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Rows seeded per table.
    #[arg(long, default_value_t = 100)]
    pub rows: usize,
    /// Serve HTTPS with a certificate the emulator generates; its CA certificate's path is
    /// printed (give it to `--ca-file`, NODE_EXTRA_CA_CERTS or SSL_CERT_FILE).
    #[arg(long)]
    pub tls: bool,
    /// Inject a fault from the start: `KIND[=VALUE][:[SKIP+]TIMES][@PATH]`, e.g.
    /// `throttle:3@/accounts` or `cut:1@$batch` (repeatable; the admin API changes them later).
    #[arg(long = "fault", value_name = "RULE")]
    pub faults: Vec<dataverse_emulator::FaultRule>,
    /// Dataverse's service-protection limit per caller, e.g. 100/60s (off by default).
    #[arg(long, value_name = "N/WINDOW")]
    pub rate_limit: Option<dataverse_emulator::RateLimit>,
    /// Cost what Dataverse costs (implied by any flag below): per-user limits of 6000
    /// requests and 1,200 s of server time per 5 minutes and 52 concurrent requests, answered
    /// 429 with Retry-After as documented, and `x-ms-dop-hint` on every answer.
    #[arg(long)]
    pub cost_model: bool,
    /// Server time of every request, in milliseconds (with the cost model).
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<f64>,
    /// Server time per record read or written, in milliseconds (with the cost model).
    #[arg(long, value_name = "MS")]
    pub per_record_ms: Option<f64>,
    /// Concurrent requests per user before the next is refused (default 52).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrent_requests: Option<u32>,
    /// The `x-ms-dop-hint` answered (default 48).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub dop_hint: Option<u32>,
    /// The limits' sliding window in seconds (default 300); the request and server-time
    /// budgets shrink or grow in proportion.
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..))]
    pub window_secs: Option<u32>,
}

/// Milliseconds as a duration, refusing what is not a finite number of at least 0.
fn millis(flag: &str, ms: f64) -> anyhow::Result<std::time::Duration> {
    anyhow::ensure!(
        ms.is_finite() && ms >= 0.0,
        "{flag} must be a number of milliseconds of at least 0, not {ms}"
    );
    Ok(std::time::Duration::from_secs_f64(ms / 1000.0))
}

impl Args {
    pub fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            port,
            rows,
            tls,
            faults,
            rate_limit,
            cost_model,
            latency_ms,
            per_record_ms,
            concurrent_requests,
            dop_hint,
            window_secs,
        } = self;
        let on = cost_model
            || latency_ms.is_some()
            || per_record_ms.is_some()
            || concurrent_requests.is_some()
            || dop_hint.is_some()
            || window_secs.is_some();
        let cost_model = match on {
            false => None,
            true => {
                let mut m = dataverse_emulator::CostModel::default();
                if let Some(w) = window_secs {
                    m = m.with_window(std::time::Duration::from_secs(u64::from(w)));
                }
                if let Some(ms) = latency_ms {
                    m.latency = millis("--latency-ms", ms)?;
                }
                if let Some(ms) = per_record_ms {
                    m.per_record = millis("--per-record-ms", ms)?;
                }
                if let Some(n) = concurrent_requests {
                    m.concurrent_requests = n as usize;
                }
                if let Some(n) = dop_hint {
                    m.dop_hint = n as usize;
                }
                Some(m)
            }
        };
        let emulator = dataverse_emulator::Emulator::start(
            dataverse_emulator::Config {
                rows_per_table: rows,
                tls,
                rate_limit,
                cost_model,
                ..Default::default()
            },
            port,
        )?;
        for rule in faults {
            emulator.faults().add(rule);
        }
        let credentials = emulator.credentials();
        println!("Dataverse emulator serving {}", emulator.web_api_url());
        println!("token URL:     {}", emulator.token_url());
        println!("client ID:     {}", credentials.client_id);
        println!(
            "client secret: {} (an emulator-only value)",
            credentials.client_secret
        );
        println!("authorize URL: {}", emulator.authorize_url());
        println!(
            "public client ID (auth code, password): {}",
            credentials.public_client_id
        );
        println!(
            "user:          {} / {} (emulator-only values)",
            credentials.username, credentials.password
        );
        println!(
            "authority:     {}/{}",
            emulator.base_url(),
            credentials.tenant_id
        );
        println!("openid config: {}", emulator.openid_configuration_url());
        if let Some(ca) = emulator.ca_certificate_path() {
            println!("CA certificate: {} (trust it with --ca-file)", ca.display());
        }
        // Rehearsing faults: the admin API (see the README).
        println!("admin API:     {}/", emulator.admin_url());
        println!("admin key:     {}", emulator.admin_key());
        if let Some(limit) = rate_limit {
            println!("rate limit:    {limit} per caller");
        }
        if let Some(m) = cost_model {
            println!("cost model:    {}", m.to_json());
        }
        for rule in emulator.faults().rules() {
            println!("fault:         {rule}");
        }
        println!("Press Ctrl-C to stop.");
        loop {
            std::thread::park();
        }
    }
}
