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
    /// Inject a fault from the start: KIND[=VALUE][:[SKIP+]TIMES][@PATH], e.g.
    /// throttle:3@/accounts or cut:1@$batch (repeatable; the admin API changes them later).
    #[arg(long = "fault", value_name = "RULE")]
    pub faults: Vec<dataverse_emulator::FaultRule>,
    /// Dataverse's service-protection limit per caller, e.g. 100/60s (off by default).
    #[arg(long, value_name = "N/WINDOW")]
    pub rate_limit: Option<dataverse_emulator::RateLimit>,
}

impl Args {
    pub fn run(self, _global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            port,
            rows,
            tls,
            faults,
            rate_limit,
        } = self;
        let emulator = dataverse_emulator::Emulator::start(
            dataverse_emulator::Config {
                rows_per_table: rows,
                tls,
                rate_limit,
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
        for rule in emulator.faults().rules() {
            println!("fault:         {rule}");
        }
        println!("Press Ctrl-C to stop.");
        loop {
            std::thread::park();
        }
    }
}
