//! `dynamics`: run the Dynamics 365 connector component from the command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use dynamics_host::manifest::{input_type_name, render};
use dynamics_host::tokens::{format_utc, unix_now};
use dynamics_host::{
    Host, HostConfig, Level, Limits, NetworkPolicy, TokenManager, TokenStore, connection_file,
    describe_error,
};
use host_harness::login::{LoginError, LoginOptions};

mod progress;

#[derive(Parser)]
#[command(
    name = "dynamics",
    version,
    about = "Run the Microsoft Dynamics 365 connector component"
)]
struct Cli {
    /// Load this component instead of the built-in Dynamics 365 one.
    #[arg(long, global = true, value_name = "PATH")]
    component: Option<PathBuf>,
    /// Let the component reach loopback and private addresses (local emulators).
    #[arg(long, global = true)]
    allow_private: bool,
    /// Add a host or *.suffix pattern to the hosts any connection may name (repeatable); the
    /// connection must still name it.
    #[arg(long = "allow-host", global = true, value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Trust only this CA certificate (PEM) for HTTPS, instead of the public roots: a lab, or
    /// the emulator served with --tls.
    #[arg(long, global = true, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Compile the component at start instead of loading it from the compile cache
    /// ($XDG_CACHE_HOME/dynamics-connector).
    #[arg(long, global = true)]
    no_compile_cache: bool,
    /// Time limit of one call, in seconds (1 to 86400).
    #[arg(long, global = true, default_value_t = 120, value_parser = time_limit)]
    time_limit_secs: u64,
    /// Memory limit of one call, in MiB (1 to 4096).
    #[arg(long, global = true, default_value_t = 64, value_parser = memory_limit)]
    memory_limit_mib: usize,
    /// Lowest log level written to stderr: trace, debug, info, warn, error.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    /// The token store file [default: $XDG_STATE_HOME/dynamics-connector/tokens.json, or
    /// ~/.local/state/dynamics-connector/tokens.json].
    #[arg(long, global = true, value_name = "PATH")]
    token_store: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the component's actions.
    Actions,
    /// Show one action's inputs: keys, types, defaults and comments.
    Describe {
        /// The action key, such as query-entities.
        action: String,
    },
    /// Run an action and print its JSON output.
    Invoke {
        /// The action key, such as get-current-user.
        action: String,
        /// The connection file (JSON: type, fields, optional token).
        #[arg(long, short = 'c', value_name = "FILE")]
        connection: PathBuf,
        /// The input JSON object: a file, or - for stdin. Omitted means {}.
        #[arg(long, short = 'i', value_name = "FILE")]
        input: Option<PathBuf>,
        /// The input JSON object given inline.
        #[arg(long, conflicts_with = "input", value_name = "JSON")]
        input_json: Option<String>,
    },
    /// Sign in an auth-code connection in a browser and store its tokens.
    Login {
        /// The connection file.
        #[arg(long, short = 'c', value_name = "FILE")]
        connection: PathBuf,
        /// Port of the loopback redirect URI http://127.0.0.1:PORT/callback; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// How long to wait for the browser's redirect, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Show which connections hold tokens and when they expire (never the tokens).
    Status,
    /// Forget a connection's stored tokens.
    Logout {
        /// The connection file.
        #[arg(long, short = 'c', value_name = "FILE")]
        connection: PathBuf,
    },
    /// Test a connection: sign in if needed, WhoAmI, user and business unit names.
    TestConnection {
        /// The connection file.
        #[arg(long, short = 'c', value_name = "FILE")]
        connection: PathBuf,
    },
    /// Serve the webhook trigger on a loopback port, printing each event. With --register the
    /// trigger registers itself with the environment first, and unregisters when --seconds runs
    /// out.
    ServeWebhooks {
        /// The connection file (needed for --register).
        #[arg(long, short = 'c', value_name = "FILE")]
        connection: Option<PathBuf>,
        /// The trigger's config JSON (authType, webhookKey or authValues, entityType, messages).
        #[arg(long, value_name = "JSON")]
        config: String,
        /// Port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Register the webhook with the environment (self-registration) while serving.
        #[arg(long, requires = "connection")]
        register: bool,
        /// The public URL Dataverse should call, when it differs from the local one (a tunnel).
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// Stop after this many seconds (default: run until killed).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Poll the New and Updated Records trigger every interval, printing each event.
    Poll {
        /// The connection file.
        #[arg(long, short = 'c', value_name = "FILE")]
        connection: PathBuf,
        /// The trigger's config JSON (entityType, fieldNames, anchorDate).
        #[arg(long, value_name = "JSON")]
        config: String,
        /// Seconds between polls.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        /// Stop after this many polls (default: run until killed).
        #[arg(long)]
        polls: Option<u64>,
        /// Where the poll state is kept between runs.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Extract new and updated rows of tables to NDJSON files, resumable from a state file.
    Extract {
        /// The connection file.
        #[arg(long, short = 'c', value_name = "FILE")]
        connection: PathBuf,
        /// A table (entity set name) to extract; repeatable.
        #[arg(long = "table", required = true, value_name = "ENTITY_SET")]
        tables: Vec<String>,
        /// Directory for the NDJSON files, one per table.
        #[arg(long, default_value = "extract")]
        out: PathBuf,
        /// The state file that makes a run resumable; defaults to OUT/state.json.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Rows per request and per call.
        #[arg(long, default_value_t = 5000)]
        page_size: u32,
        /// Read rows modified at or after this instant on a table's first run (default: a year back).
        #[arg(long)]
        since: Option<String>,
    },
    /// Start the embedded Dataverse emulator and run a tour of the connector against it.
    Demo {
        /// Rows seeded per table.
        #[arg(long, default_value_t = 25)]
        rows: usize,
        /// After the tour, serve the flow designer against the same emulator (until Ctrl-C).
        #[arg(long)]
        designer: bool,
        /// The designer's port on 127.0.0.1 (with --designer); 0 picks a free one.
        #[arg(long, default_value_t = 8765)]
        port: u16,
    },
    /// Serve the flow designer in the browser on a loopback port (until Ctrl-C). It starts the
    /// embedded Dataverse emulator too, unless --no-emulator.
    Designer {
        /// Port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// Do not start the embedded emulator (real environments only).
        #[arg(long)]
        no_emulator: bool,
        /// Rows seeded per table of the embedded emulator.
        #[arg(long, default_value_t = 100)]
        rows: usize,
        /// The file the designer keeps its connections in (secrets included, mode 0600)
        /// [default: designer-connections.json beside the token store].
        #[arg(long, value_name = "FILE")]
        connections: Option<PathBuf>,
        /// The URL the environment should post webhooks to, when it reaches the designer through
        /// a tunnel (forwarding to http://127.0.0.1:PORT/webhooks/dynamics).
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
    },
    /// Serve the Dataverse emulator on loopback until stopped (Ctrl-C).
    Emulator {
        /// Port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Rows seeded per table.
        #[arg(long, default_value_t = 100)]
        rows: usize,
        /// Serve HTTPS with a certificate the emulator generates; its CA certificate's path is
        /// printed (give it to `--ca-file`, NODE_EXTRA_CA_CERTS or SSL_CERT_FILE).
        #[arg(long)]
        tls: bool,
        /// Inject a fault from the start: KIND[=VALUE][:[SKIP+]TIMES][@PATH], e.g.
        /// throttle:3@/accounts or cut:1@$batch (repeatable; the admin API changes them later).
        #[arg(long = "fault", value_name = "RULE")]
        faults: Vec<dataverse_emulator::FaultRule>,
        /// Dataverse's service-protection limit per caller, e.g. 100/60s (off by default).
        #[arg(long, value_name = "N/WINDOW")]
        rate_limit: Option<dataverse_emulator::RateLimit>,
    },
    /// Print the component.yaml manifest generated from the component's definitions.
    Manifest {
        /// Compare with this file instead of printing; fails when they differ.
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        // The README's promise: the connector's refusal or failure exits with 2, the host's own
        // (limits, files, ports) with 1.
        Err(problem) if problem.downcast_ref::<ActionFailed>().is_some() => {
            eprintln!("{problem:#}");
            ExitCode::from(2)
        }
        Err(problem) => {
            eprintln!("error: {problem:#}");
            ExitCode::from(1)
        }
    }
}

/// An error the component answered (an action, a trigger, a sign-in), as opposed to a host
/// failure; `main` exits with 2 for it.
#[derive(Debug)]
struct ActionFailed(dynamics_host::ConnectorError);

impl std::fmt::Display for ActionFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe_error(&self.0))
    }
}

impl std::error::Error for ActionFailed {}

/// Limits of 0 would stop every call at once; more than a day or 4 GiB (all a 32-bit component
/// can address) is a typo, and would overflow the deadline or the byte count.
fn time_limit(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(secs @ 1..=86_400) => Ok(secs),
        _ => Err("give a whole number of seconds from 1 to 86400".to_string()),
    }
}

fn memory_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(mib @ 1..=4096) => Ok(mib),
        _ => Err("give a whole number of MiB from 1 to 4096".to_string()),
    }
}

/// The text of a file a person wrote, without the UTF-8 byte order mark some Windows editors
/// put first (JSON parsers take it for a stray character).
fn without_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(min_level) = Level::parse(&cli.log_level) else {
        bail!(
            "--log-level must be one of trace, debug, info, warn, error; got {:?}",
            cli.log_level
        );
    };
    let activity = progress::Activity::new(min_level);
    let config = HostConfig {
        limits: Limits {
            memory_bytes: cli.memory_limit_mib << 20,
            time: Duration::from_secs(cli.time_limit_secs),
            ..Limits::default()
        },
        network: NetworkPolicy {
            allow_private: cli.allow_private,
            extra_hosts: cli.allow_hosts.clone(),
            root_certificates: match &cli.ca_file {
                Some(path) => vec![
                    std::fs::read(path)
                        .with_context(|| format!("reading --ca-file {}", path.display()))?,
                ],
                None => Vec::new(),
            },
            ..NetworkPolicy::default()
        },
        // Writes the log as StderrLog does, counting the requests for the progress display.
        log: activity.clone(),
        compile_cache: if cli.no_compile_cache {
            None
        } else {
            dynamics_host::compile_cache::default_dir()
        },
    };
    match cli.command {
        Command::Demo {
            rows,
            designer: false,
            ..
        } => {
            host_harness::demo::run(rows, &mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Demo {
            rows,
            designer: true,
            port,
        } => {
            let emulator = host_harness::demo::start_emulator(rows)?;
            host_harness::demo::tour(&emulator, rows, &mut std::io::stdout())?;
            let store = token_store(cli.token_store.as_deref())?;
            let file = designer_file(&store, None);
            println!();
            return serve_designer(
                config,
                cli.component.as_deref(),
                DesignerRun {
                    store,
                    connections_file: file,
                    port,
                    emulator: Some(emulator),
                    connect: true,
                    public_webhook_url: None,
                },
            );
        }
        Command::Designer {
            port,
            no_emulator,
            rows,
            connections,
            public_url,
        } => {
            let store = token_store(cli.token_store.as_deref())?;
            let file = designer_file(&store, connections);
            let emulator = match no_emulator {
                true => None,
                false => Some(host_harness::demo::start_emulator(rows)?),
            };
            return serve_designer(
                config,
                cli.component.as_deref(),
                DesignerRun {
                    store,
                    connections_file: file,
                    port,
                    emulator,
                    connect: false,
                    public_webhook_url: public_url,
                },
            );
        }
        Command::Emulator {
            port,
            rows,
            tls,
            faults,
            rate_limit,
        } => {
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
        Command::Status => return status(&token_store(cli.token_store.as_deref())?),
        _ => {}
    }
    let host = match &cli.component {
        Some(path) => Host::from_file(path, config)?,
        None => Host::builtin(config)?,
    };
    match cli.command {
        Command::Actions => {
            for action in &host.definition().actions {
                let group = action.group.as_deref().unwrap_or("-");
                println!("{:<24} {:<5} {}", action.key, group, action.label);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { action } => describe(&host, &action),
        Command::Demo { .. } | Command::Emulator { .. } | Command::Designer { .. } => {
            unreachable!("handled before loading the component")
        }
        Command::ServeWebhooks {
            connection,
            config,
            port,
            register,
            public_url,
            seconds,
        } => {
            let config = checked_webhook_config(&host, &config, register)?;
            let registering = match (register, connection) {
                (true, Some(path)) => Some(connection_file::load_named(&path)?.connection),
                _ => None,
            };
            let host = std::sync::Arc::new(host);
            let handler_host = host.clone();
            let handler_config = std::sync::Arc::new(std::sync::Mutex::new(config.clone()));
            let shared_config = handler_config.clone();
            let server = host_harness::webhook_server::WebhookServer::start(
                port,
                "/webhooks/dynamics",
                std::sync::Arc::new(move |request| {
                    let config = shared_config.lock().map(|c| c.clone()).unwrap_or_default();
                    match handler_host.handle_webhook("webhook", &config, request) {
                        Ok(Ok(outcome)) => outcome,
                        Ok(Err(failure)) => dynamics_host::WebhookOutcome {
                            status: 500,
                            headers: Vec::new(),
                            body: describe_error(&failure).into_bytes(),
                            events: Vec::new(),
                        },
                        Err(problem) => dynamics_host::WebhookOutcome {
                            status: 500,
                            headers: Vec::new(),
                            body: problem.to_string().into_bytes(),
                            events: Vec::new(),
                        },
                    }
                }),
            )?;
            eprintln!("serving webhooks at {}", server.url());
            let mut registration = None;
            if let Some(mut connection) = registering {
                host.ensure_token(&mut connection)?.map_err(ActionFailed)?;
                let url = public_url
                    .clone()
                    .unwrap_or_else(|| server.url().to_string());
                let state = host
                    .enable_trigger("webhook", &connection, &config, &url)?
                    .map_err(ActionFailed)?;
                let parsed: serde_json::Value = serde_json::from_str(&state)?;
                if let Some(key) = parsed["webhookKey"].as_str()
                    && let Ok(mut current) = handler_config.lock()
                {
                    let mut value: serde_json::Value =
                        serde_json::from_str(&current).unwrap_or_default();
                    value["webhookKey"] = serde_json::json!(key);
                    *current = value.to_string();
                }
                eprintln!("registered with the environment for {url}");
                registration = Some((connection, state));
            }
            let deadline = seconds.map(|s| std::time::Instant::now() + Duration::from_secs(s));
            while deadline.is_none_or(|deadline| std::time::Instant::now() < deadline) {
                if let Some(event) = server.next_event(Duration::from_millis(200)) {
                    println!("{event}");
                }
            }
            if let Some((connection, state)) = registration {
                host.disable_trigger("webhook", &connection, &config, &state)?
                    .map_err(ActionFailed)?;
                eprintln!("unregistered");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Poll {
            connection,
            config,
            interval,
            polls,
            state,
        } => {
            let named = connection_file::load_named(&connection)?;
            let mut connection = named.connection;
            let mut current = match &state {
                Some(path) if path.exists() => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading state file {}", path.display()))?,
                ),
                _ => None,
            };
            // A config the component refuses is reported before any sign-in or request.
            host.check_poll(
                "new-and-updated-records",
                &connection,
                &config,
                current.as_deref(),
            )?
            .map_err(ActionFailed)?;
            host.ensure_token(&mut connection)?.map_err(ActionFailed)?;
            let mut done = 0;
            while polls.is_none_or(|limit| done < limit) {
                let outcome = host
                    .poll(
                        "new-and-updated-records",
                        &connection,
                        &config,
                        current.as_deref(),
                    )?
                    .map_err(ActionFailed)?;
                for event in &outcome.events {
                    println!("{event}");
                }
                if let Some(path) = &state {
                    std::fs::write(path, &outcome.state)
                        .with_context(|| format!("writing state file {}", path.display()))?;
                }
                current = Some(outcome.state);
                done += 1;
                if polls.is_none_or(|limit| done < limit) {
                    std::thread::sleep(Duration::from_secs(interval));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract {
            connection,
            tables,
            out,
            state,
            page_size,
            since,
        } => {
            let named = connection_file::load_named(&connection)?;
            let mut connection = named.connection;
            let store = token_store(cli.token_store.as_deref())?;
            let manager = TokenManager::new(&host, &store);
            let options = host_harness::extract::ExtractOptions {
                tables,
                state_file: state.unwrap_or_else(|| out.join("state.json")),
                out_dir: out,
                page_size,
                anchor_date: since,
                max_calls: None,
            };
            let mut runner = |input: &str| -> anyhow::Result<String> {
                manager
                    .run_action(
                        &named.key,
                        &mut connection,
                        "get-new-and-updated-records",
                        input,
                    )?
                    .map_err(|failure| ActionFailed(failure).into())
            };
            // Bars on a terminal; otherwise the plain line per call that scripts read.
            let mut display: Box<dyn host_harness::extract::Progress> =
                match progress::Mode::detect() {
                    progress::Mode::Bars => Box::new(progress::ExtractBars::new(activity.clone())),
                    progress::Mode::Lines => {
                        Box::new(host_harness::extract::Lines(std::io::stderr()))
                    }
                };
            let summary = host_harness::extract::run_with(&mut runner, &options, display.as_mut());
            drop(display);
            let summary = summary?;
            for warning in &summary.warnings {
                eprintln!("warning: {warning}");
            }
            for (table, rows) in &summary.written {
                println!(
                    "{table}: {rows} rows written to {}",
                    options.out_dir.join(format!("{table}.ndjson")).display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke {
            action,
            connection,
            input,
            input_json,
        } => {
            let named = connection_file::load_named(&connection)?;
            let mut connection = named.connection;
            let input = match (input, input_json) {
                (_, Some(json)) => json,
                (Some(path), None) if path.as_os_str() == "-" => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("reading the input from stdin")?;
                    without_bom(text)
                }
                (Some(path), None) => without_bom(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading input file {}", path.display()))?,
                ),
                (None, None) => "{}".to_string(),
            };
            let store = token_store(cli.token_store.as_deref())?;
            let manager = TokenManager::new(&host, &store);
            // Only the calls that can run long show progress: the others answer at once.
            let shown = progress::is_long_call(&action, &input).then(|| {
                progress::CallProgress::start(&activity, progress::Mode::detect(), &action)
            });
            let result = manager.run_action(&named.key, &mut connection, &action, &input);
            if let Some(shown) = shown {
                shown.finish();
            }
            print_result(result?)
        }
        Command::Login {
            connection,
            port,
            timeout_secs,
        } => {
            let named = connection_file::load_named(&connection)?;
            let store = token_store(cli.token_store.as_deref())?;
            let manager = TokenManager::new(&host, &store);
            let options = LoginOptions {
                port,
                timeout: Duration::from_secs(timeout_secs),
            };
            let outcome = host_harness::login::login(
                &manager,
                &named.key,
                &named.connection,
                &options,
                |pending| {
                    println!("Open this URL in a browser to sign in:");
                    println!();
                    println!("{}", pending.authorization_url);
                    println!();
                    println!(
                        "Waiting up to {timeout_secs} s for the redirect to {} ...",
                        pending.redirect_uri
                    );
                },
            );
            match outcome {
                Ok(outcome) => {
                    let expiry = outcome
                        .expires_at
                        .map(format_utc)
                        .unwrap_or_else(|| "an unknown time".to_string());
                    println!(
                        "Signed in. Tokens for {} stored in {}.",
                        named.key,
                        store.path().display()
                    );
                    println!("The access token expires at {expiry}.");
                    if !outcome.refreshable {
                        println!(
                            "No refresh token was granted: add offline_access to the scopes to stay signed in."
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(LoginError::Connector(failure)) => {
                    eprintln!("{}", describe_error(&failure));
                    Ok(ExitCode::from(2))
                }
                Err(LoginError::Failed(reason)) => {
                    eprintln!("sign-in failed: {reason}");
                    Ok(ExitCode::from(2))
                }
                Err(LoginError::Host(problem)) => Err(problem.into()),
            }
        }
        Command::Logout { connection } => {
            let named = connection_file::load_named(&connection)?;
            let store = token_store(cli.token_store.as_deref())?;
            if store.remove(&named.key)? {
                println!("Forgot the tokens of {}.", named.key);
            } else {
                println!("No tokens were stored for {}.", named.key);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::TestConnection { connection } => {
            let named = connection_file::load_named(&connection)?;
            let mut connection = named.connection;
            let store = token_store(cli.token_store.as_deref())?;
            let manager = TokenManager::new(&host, &store);
            let result = manager.test_connection(&named.key, &mut connection)?;
            print_result(result)
        }
        Command::Status => unreachable!("handled before loading the component"),
        Command::Manifest { check } => {
            let manifest = render(host.definition())?;
            match check {
                None => {
                    print!("{manifest}");
                    Ok(ExitCode::SUCCESS)
                }
                Some(path) => {
                    let existing = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    if existing == manifest {
                        println!("{} matches the component", path.display());
                        Ok(ExitCode::SUCCESS)
                    } else {
                        eprintln!(
                            "{} differs from the component's definitions; regenerate it with `dynamics manifest > {}`",
                            path.display(),
                            path.display()
                        );
                        Ok(ExitCode::from(1))
                    }
                }
            }
        }
    }
}

fn designer_file(store: &TokenStore, chosen: Option<PathBuf>) -> PathBuf {
    chosen.unwrap_or_else(|| {
        store
            .path()
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("designer-connections.json")
    })
}

/// What `designer` and `demo --designer` serve.
struct DesignerRun {
    store: TokenStore,
    connections_file: PathBuf,
    port: u16,
    emulator: Option<dataverse_emulator::Emulator>,
    /// Add a ready connection to the emulator called "emulator".
    connect: bool,
    public_webhook_url: Option<String>,
}

/// Serves the flow designer until the process is stopped; with an emulator, its values pre-fill
/// connection forms (and with `connect`, a ready connection to it is called "emulator").
fn serve_designer(
    mut config: HostConfig,
    component: Option<&std::path::Path>,
    run: DesignerRun,
) -> anyhow::Result<ExitCode> {
    use host_harness::designer::{Designer, DesignerOptions, Preset};
    let DesignerRun {
        store,
        connections_file,
        port,
        emulator,
        connect,
        public_webhook_url,
    } = run;
    let mut presets = Vec::new();
    if let Some(emulator) = &emulator {
        // The emulator lives on loopback.
        config.network.allow_private = true;
        let credentials = emulator.credentials();
        presets.push(Preset {
            label: "Embedded emulator (client credentials)".to_string(),
            kind: "oauth2-client-credentials".to_string(),
            fields: [
                ("webApiUrl", emulator.base_url()),
                ("tokenUrl", emulator.token_url()),
                ("clientId", credentials.client_id.clone()),
                ("clientSecret", credentials.client_secret.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        });
        presets.push(Preset {
            label: "Embedded emulator (sign in with auth code)".to_string(),
            kind: "oauth2-auth-code".to_string(),
            fields: [
                ("webApiUrl", emulator.base_url()),
                ("clientId", credentials.public_client_id.clone()),
                ("authorizeUrl", emulator.authorize_url()),
                ("tokenUrl", emulator.token_url()),
                (
                    "scopes",
                    format!("{} offline_access", emulator.default_scope()),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        });
    }
    if let Some(dir) = connections_file.parent() {
        // The default folder is the designer's own, so it is made private even when it exists;
        // a folder the user chose (even `.`) is only created private, never changed.
        let own = TokenStore::default_path()
            .ok()
            .is_some_and(|default| default.parent() == Some(dir));
        dynamics_host::tokens::ensure_private_dir(dir, own)?;
    }
    let host = Arc::new(match component {
        Some(path) => Host::from_file(path, config)?,
        None => Host::builtin(config)?,
    });
    let designer = Designer::start(
        host,
        DesignerOptions {
            port,
            token_store: store,
            connections_file: connections_file.clone(),
            presets: presets.clone(),
            public_webhook_url,
        },
    )?;
    if connect && let Some(preset) = presets.first() {
        designer
            .add_connection("emulator", &preset.kind, preset.fields.clone())
            .map_err(|problem| anyhow::anyhow!(problem))?;
    }
    if let Some(emulator) = &emulator {
        println!("Dataverse emulator serving {}", emulator.web_api_url());
    }
    println!("connections kept in {}", connections_file.display());
    println!("designer: {}", designer.open_url());
    println!("Open the designer URL in a browser; press Ctrl-C to stop.");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    // Ctrl-C (or a TERM) unregisters a listening webhook trigger before leaving, so the
    // environment is not left calling a designer that is gone.
    // A second Ctrl-C leaves at once, even while unregistering hangs.
    let (stop, stopped) = std::sync::mpsc::channel();
    let signals = std::sync::atomic::AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            eprintln!("stopped without unregistering");
            std::process::exit(130);
        }
        let _ = stop.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let _ = stopped.recv();
    match designer.shutdown() {
        Ok(()) => {
            eprintln!("designer stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            eprintln!("designer stopped, but {problem}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The webhook trigger's config, checked by the component before anything is served. The
/// trigger has no unauthenticated mode: it refuses a config without the secret its
/// authentication type needs, so serving one would answer every delivery 500. With --register a
/// missing webhook key is one the registration generates, so only the rest is checked here.
fn checked_webhook_config(host: &Host, config: &str, register: bool) -> anyhow::Result<String> {
    // A request the trigger refuses (405) once it has accepted the config.
    let probe = |config: &str| {
        host.handle_webhook(
            "webhook",
            config,
            dynamics_host::IncomingRequest {
                method: "GET".to_string(),
                path: "/".to_string(),
                query: Vec::new(),
                headers: Vec::new(),
                body: Vec::new(),
            },
        )
    };
    let refused = |failure| anyhow::Error::new(ActionFailed(failure)).context("--config");
    match probe(config)? {
        Ok(_) => Ok(config.to_string()),
        Err(failure) if register && failure.field.as_deref() == Some("webhookKey") => {
            let mut value: serde_json::Value = serde_json::from_str(config)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("webhookKey".to_string(), "stand-in".into());
            }
            probe(&value.to_string())?.map_err(refused)?;
            Ok(config.to_string())
        }
        Err(failure) => Err(refused(failure)),
    }
}

fn token_store(path: Option<&std::path::Path>) -> anyhow::Result<TokenStore> {
    Ok(TokenStore::open(match path {
        Some(path) => path.to_path_buf(),
        None => TokenStore::default_path()?,
    }))
}

/// Prints an action's JSON output, or its error with the hint (exit code 2).
fn print_result(result: Result<String, dynamics_host::ConnectorError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(output) => {
            let pretty = serde_json::from_str::<serde_json::Value>(&output)
                .and_then(|value| serde_json::to_string_pretty(&value))
                .unwrap_or(output);
            println!("{pretty}");
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!("{}", describe_error(&failure));
            Ok(ExitCode::from(2))
        }
    }
}

/// Lists the stored connections: type, environment, state and expiry. Never a token.
fn status(store: &TokenStore) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    let entries = store.status(now)?;
    println!("token store: {}", store.path().display());
    if entries.is_empty() {
        println!("no connection holds tokens");
        return Ok(ExitCode::SUCCESS);
    }
    for entry in entries {
        // Client-credentials and password connections get a new token without a user.
        let renewable = entry.refreshable || entry.connection_type != "oauth2-auth-code";
        let state = match (entry.valid, renewable) {
            (true, true) => "valid, renews by itself",
            (true, false) => "valid, sign in again when it expires",
            (false, true) => "expired, renews on next use",
            (false, false) => "expired, run login again",
        };
        let expiry = match entry.expires_at {
            Some(at) if at > now => {
                format!("expires {} (in {} min)", format_utc(at), (at - now) / 60)
            }
            Some(at) => format!("expired {}", format_utc(at)),
            None => "expiry unknown".to_string(),
        };
        println!("{}", entry.key);
        println!("  type:        {}", entry.connection_type);
        if let Some(environment) = &entry.environment {
            println!("  environment: {environment}");
        }
        println!("  state:       {state}; {expiry}");
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(host: &Host, key: &str) -> anyhow::Result<ExitCode> {
    let Some(action) = host
        .definition()
        .actions
        .iter()
        .find(|action| action.key == key)
    else {
        let keys: Vec<&str> = host
            .definition()
            .actions
            .iter()
            .map(|action| action.key.as_str())
            .collect();
        bail!(
            "unknown action {key:?}; the actions are: {}",
            keys.join(", ")
        );
    };
    println!("{} ({})", action.label, action.key);
    println!("{}", action.description);
    println!();
    for input in &action.inputs {
        let required = if input.required {
            "required"
        } else {
            "optional"
        };
        println!(
            "  {:<28} {:<15} {}  {}",
            input.key,
            input_type_name(input.input_type),
            required,
            input.label
        );
        if let Some(default) = &input.default {
            let one_line: String = default.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("  {:<28} default: {}", "", one_line);
        }
        if !input.choices.is_empty() {
            let values: Vec<&str> = input
                .choices
                .iter()
                .map(|choice| choice.value.as_str())
                .collect();
            println!("  {:<28} one of: {}", "", values.join(", "));
        }
        if let Some(comments) = &input.comments {
            println!("  {:<28} {}", "", comments);
        }
    }
    Ok(ExitCode::SUCCESS)
}
