//! `dynamics serve-webhooks`: the webhook trigger on a loopback port, optionally registered with the environment.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use dynamics_host::{CallError, Host, connection_file, describe_error};

use crate::commands::Global;
use crate::commands::{ActionFailed, failed};

#[derive(clap::Args)]
pub struct Args {
    /// The connection file (needed for --register).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: Option<PathBuf>,
    /// The trigger's config JSON (authType, webhookKey or authValues, entityType, messages).
    #[arg(long, value_name = "JSON")]
    pub config: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Register the webhook with the environment (self-registration) while serving.
    #[arg(long, requires = "connection")]
    pub register: bool,
    /// The public URL Dataverse should call, when it differs from the local one (a tunnel).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    pub seconds: Option<u64>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            connection,
            config,
            port,
            register,
            public_url,
            seconds,
        } = self;
        let host = global.host()?;
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
                    Ok(outcome) => outcome,
                    Err(CallError::Connector(failure)) => dynamics_host::WebhookOutcome {
                        status: 500,
                        headers: Vec::new(),
                        body: describe_error(&failure).into_bytes(),
                        events: Vec::new(),
                    },
                    Err(CallError::Host(problem)) => dynamics_host::WebhookOutcome {
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
            host.ensure_token(&mut connection).map_err(failed)?;
            let url = public_url
                .clone()
                .unwrap_or_else(|| server.url().to_string());
            let state = host
                .enable_trigger("webhook", &connection, &config, &url)
                .map_err(failed)?;
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
            host.disable_trigger("webhook", &connection, &config, &state)
                .map_err(failed)?;
            eprintln!("unregistered");
        }
        Ok(ExitCode::SUCCESS)
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
    // The component's refusal names the option; a host error is reported as it is.
    let refused = |error: CallError| match error {
        CallError::Connector(failure) => {
            anyhow::Error::new(ActionFailed(failure)).context("--config")
        }
        CallError::Host(problem) => problem.into(),
    };
    match probe(config) {
        Ok(_) => Ok(config.to_string()),
        Err(CallError::Connector(failure))
            if register && failure.field.as_deref() == Some("webhookKey") =>
        {
            let mut value: serde_json::Value = serde_json::from_str(config)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("webhookKey".to_string(), "stand-in".into());
            }
            probe(&value.to_string()).map_err(refused)?;
            Ok(config.to_string())
        }
        Err(error) => Err(refused(error)),
    }
}
