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
//!
//! Costing what Dataverse costs (the `cost` module, `/_admin/cost`): `--latency-ms MS` per
//! request, `--per-record-ms MS` per record read or written, `--concurrent-requests N` (52),
//! `--dop-hint N` (the `x-ms-dop-hint` answered, 48), `--window-secs S` (300; the request and
//! execution-time budgets shrink in proportion) and `--cost-model` (the documented defaults);
//! any of them switches the model on, with the three service-protection errors per user.

use anyhow::{Context, bail};
use dataverse_emulator::{Config, CostModel, Emulator, FaultRule};

fn main() -> anyhow::Result<()> {
    let mut port: u16 = 0;
    let mut config = Config::default();
    let mut faults: Vec<FaultRule> = Vec::new();
    let mut cost: Option<CostModel> = None;
    let mut window: Option<std::time::Duration> = None;
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
            "--cost-model" => {
                cost.get_or_insert_with(CostModel::default);
            }
            "--latency-ms"
            | "--per-record-ms"
            | "--concurrent-requests"
            | "--dop-hint"
            | "--window-secs" => {
                let text = args.next().with_context(|| format!("{a} needs a value"))?;
                let n: f64 = text
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite() && *n >= 0.0)
                    .with_context(|| format!("{a} must be a number of at least 0, not {text:?}"))?;
                let ms = std::time::Duration::from_secs_f64(n / 1000.0);
                let model = cost.get_or_insert_with(CostModel::default);
                match a.as_str() {
                    "--latency-ms" => model.latency = ms,
                    "--per-record-ms" => model.per_record = ms,
                    "--window-secs" if n > 0.0 => {
                        window = Some(std::time::Duration::from_secs_f64(n))
                    }
                    "--concurrent-requests" | "--dop-hint" if n >= 1.0 => {
                        if a == "--dop-hint" {
                            model.dop_hint = n as usize
                        } else {
                            model.concurrent_requests = n as usize
                        }
                    }
                    _ => bail!("{a} must be above 0, not {text:?}"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: dataverse-emulator [--port P] [--rows N] [--table-rows TABLE=N]... [--no-auth] [--no-record] [--tls [--ca-file PATH]] [--delta-token-lifetime-secs S] [--fault KIND[=VALUE][:[SKIP+]TIMES][@PATH]]... [--rate-limit N/WINDOW] [--cost-model] [--latency-ms MS] [--per-record-ms MS] [--concurrent-requests N] [--dop-hint N] [--window-secs S]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    config.cost_model = match (cost, window) {
        (Some(m), Some(w)) => Some(m.with_window(w)),
        (m, _) => m,
    };
    let rate_limit = config.rate_limit;
    let cost_model = config.cost_model;
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
    // Certificate sign-in: the key and certificate registered to the client id, as a PEM file of
    // the owner's only, removed at stop (test material, printed as a path, never as content).
    let client_certificate = client_certificate_file(&emu)?;
    println!("client certificate: {}", client_certificate.display());
    println!("username:      {}", c.username);
    println!("password:      {}", c.password);
    println!("admin api:     {}/", emu.admin_url());
    println!("admin key:     {}", emu.admin_key());
    if let Some(limit) = rate_limit {
        println!("rate limit:    {limit} per caller");
    }
    if let Some(m) = cost_model {
        println!("cost model:    {}", m.to_json());
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
    let _ = std::fs::remove_file(&client_certificate);
    Ok(())
}

/// Writes the private key and certificate registered to the confidential app to a temporary
/// PEM file readable by its owner only.
fn client_certificate_file(emu: &Emulator) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write as _;
    let certificate = emu.certificate();
    let path = std::env::temp_dir().join(format!(
        "dataverse-emulator-{}-client-certificate.pem",
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    write!(
        file,
        "{}{}",
        certificate.private_key_pem, certificate.certificate_pem
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
