//! `dynamics designer`: serves the flow designer (with an embedded emulator unless --no-emulator).

use std::process::ExitCode;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use dynamics_host::{Host, HostConfig, TokenStore};

use crate::commands::Global;
use crate::commands::token_store;

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Do not start the embedded emulator (real environments only).
    #[arg(long)]
    pub no_emulator: bool,
    /// Rows seeded per table of the embedded emulator.
    #[arg(long, default_value_t = 100)]
    pub rows: usize,
    /// The file the designer keeps its connections in (secrets included, mode 0600)
    /// [default: designer-connections.json beside the token store].
    #[arg(long, value_name = "FILE")]
    pub connections: Option<PathBuf>,
    /// The URL the environment should post webhooks to, when it reaches the designer through
    /// a tunnel (forwarding to http://127.0.0.1:PORT/webhooks/dynamics).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            port,
            no_emulator,
            rows,
            connections,
            public_url,
        } = self;
        let store = token_store(global.token_store.as_deref())?;
        let file = designer_file(&store, connections);
        let emulator = match no_emulator {
            true => None,
            false => Some(host_harness::demo::start_emulator(rows)?),
        };
        serve_designer(
            global.host_config()?.0,
            global.component.as_deref(),
            DesignerRun {
                store,
                connections_file: file,
                port,
                emulator,
                connect: false,
                public_webhook_url: public_url,
            },
        )
    }
}

pub fn designer_file(store: &TokenStore, chosen: Option<PathBuf>) -> PathBuf {
    chosen.unwrap_or_else(|| {
        store
            .path()
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("designer-connections.json")
    })
}

/// What `designer` and `demo --designer` serve.
pub struct DesignerRun {
    pub store: TokenStore,
    pub connections_file: PathBuf,
    pub port: u16,
    pub emulator: Option<dataverse_emulator::Emulator>,
    /// Add a ready connection to the emulator called "emulator".
    pub connect: bool,
    pub public_webhook_url: Option<String>,
}

/// Serves the flow designer until the process is stopped; with an emulator, its values pre-fill
/// connection forms (and with `connect`, a ready connection to it is called "emulator").
pub fn serve_designer(
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
