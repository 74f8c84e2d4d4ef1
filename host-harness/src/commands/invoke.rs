//! `dynamics invoke`: runs an action and prints its JSON output.

use std::process::ExitCode;

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use dynamics_host::{TokenManager, connection_file};

use crate::commands::Global;
use crate::commands::{print_result, token_store, without_bom};
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// The action key, such as get-current-user.
    pub action: String,
    /// The connection file (JSON: type, fields, optional token).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
    /// The input JSON object: a file, or - for stdin. Omitted means {}.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The input JSON object given inline.
    #[arg(long, conflicts_with = "input", value_name = "JSON")]
    pub input_json: Option<String>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            action,
            connection,
            input,
            input_json,
        } = self;
        let (host, activity) = global.host_and_activity()?;
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
        let store = token_store(global.token_store.as_deref())?;
        let manager = TokenManager::new(&host, &store);
        // Only the calls that can run long show progress: the others answer at once.
        let shown = progress::is_long_call(&action, &input)
            .then(|| progress::CallProgress::start(&activity, progress::Mode::detect(), &action));
        let result = manager.run_action(&named.key, &mut connection, &action, &input);
        if let Some(shown) = shown {
            shown.finish();
        }
        print_result(result)
    }
}
