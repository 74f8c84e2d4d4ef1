//! `dataverse-emulator --port P --rows N`: serve the emulator until interrupted.
//!
//! `--delta-token-lifetime-secs S` sets how long a change-tracking delta token stays valid
//! (`Config::delta_token_lifetime`; default 604800, Dataverse's 7 days): following an older
//! `@odata.deltaLink` answers 400 ExpiredVersionStamp (0x80044352), so a client's full resync
//! can be rehearsed in seconds. See the `delta` module for the change-tracking behaviour.
//!
//! Rehearsing faults: `--fault RULE` (repeatable) injects faults from the start, written
//! `KIND[=VALUE][:[SKIP+]TIMES][@PATH]` — `throttle:3@/accounts` (the next three answers to
//! /accounts are 429 with Retry-After: 1), `cut:1@$batch` (the next $batch answer is cut
//! mid-body), `unavailable:2+1@/accounts`, `delay=2s:1@/WhoAmI`; kinds are throttle, unavailable,
//! bad-gateway, delay, cut and malformed (the `faults` module). `--rate-limit N/WINDOW`
//! (`100/60s`) turns on Dataverse's service-protection limit per caller: the request past it
//! answers 429 with Retry-After. Both can be changed while running through the admin API
//! (`/_admin/faults`, `/_admin/limits`, `/_admin/requests`, `/_admin/tables/{name}`; the key
//! printed at start goes in `X-Emulator-Admin-Key` or `Authorization: Bearer`).

use anyhow::{Context, bail};
use dataverse_emulator::{Config, Emulator, FaultRule};

fn main() -> anyhow::Result<()> {
    let mut port: u16 = 0;
    let mut config = Config::default();
    let mut faults: Vec<FaultRule> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port must be a number")?
            }
            "--rows" => {
                config.rows_per_table = args
                    .next()
                    .context("--rows needs a value")?
                    .parse()
                    .context("--rows must be a number")?
            }
            "--no-auth" => config.require_auth = false,
            "--table-rows" => {
                let v = args.next().context("--table-rows needs TABLE=N")?;
                let (t, n) = v.split_once('=').context("--table-rows needs TABLE=N")?;
                config.table_rows.push((
                    t.to_string(),
                    n.parse().context("--table-rows count must be a number")?,
                ));
            }
            "--no-record" => config.record_requests = false,
            "--tls" => config.tls = true,
            "--ca-file" => {
                config.ca_certificate_file =
                    Some(args.next().context("--ca-file needs a path")?.into())
            }
            "--delta-token-lifetime-secs" => {
                config.delta_token_lifetime = std::time::Duration::from_secs(
                    args.next()
                        .context("--delta-token-lifetime-secs needs a value")?
                        .parse()
                        .context("--delta-token-lifetime-secs must be a number")?,
                )
            }
            "--fault" => {
                let rule = args
                    .next()
                    .context("--fault needs a rule such as throttle:3@/accounts")?;
                faults.push(
                    rule.parse()
                        .map_err(|e| anyhow::anyhow!("--fault {rule:?}: {e}"))?,
                );
            }
            "--rate-limit" => {
                let limit = args
                    .next()
                    .context("--rate-limit needs N/WINDOW such as 100/60s")?;
                config.rate_limit = Some(
                    limit
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--rate-limit: {e}"))?,
                );
            }
            "-h" | "--help" => {
                println!(
                    "usage: dataverse-emulator [--port P] [--rows N] [--table-rows TABLE=N]... [--no-auth] [--no-record] [--tls [--ca-file PATH]] [--delta-token-lifetime-secs S] [--fault KIND[=VALUE][:[SKIP+]TIMES][@PATH]]... [--rate-limit N/WINDOW]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let rate_limit = config.rate_limit;
    let emu = Emulator::start(config, port)?;
    for rule in faults {
        emu.faults().add(rule);
    }
    let c = emu.credentials();
    println!("base url:      {}", emu.base_url());
    println!("web api url:   {}", emu.web_api_url());
    println!("token url:     {}", emu.token_url());
    println!("authorize url: {}", emu.authorize_url());
    println!("scope:         {}", emu.default_scope());
    println!("openid config: {}", emu.openid_configuration_url());
    if let Some(ca) = emu.ca_certificate_path() {
        // Clients trust the emulator by trusting this CA (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE).
        println!("ca certificate: {}", ca.display());
    }
    println!("tenant id:     {}", c.tenant_id);
    println!("client id:     {}", c.client_id);
    println!("client secret: {}", c.client_secret);
    println!("public client: {}", c.public_client_id);
    println!("username:      {}", c.username);
    println!("password:      {}", c.password);
    println!("admin api:     {}/", emu.admin_url());
    println!("admin key:     {}", emu.admin_key());
    if let Some(limit) = rate_limit {
        println!("rate limit:    {limit} per caller");
    }
    for rule in emu.faults().rules() {
        println!("fault:         {rule}");
    }
    println!("ready");
    // Serve until SIGINT or SIGTERM, then stop cleanly (which removes a generated CA file).
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    waiter.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await
    })?;
    emu.stop();
    Ok(())
}
