//! `dynamics logout`: forgets a connection's stored tokens.

use std::process::ExitCode;

use std::path::PathBuf;

use dynamics_host::connection_file;

use crate::commands::Global;
use crate::commands::token_store;

#[derive(clap::Args)]
pub struct Args {
    /// The connection file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args { connection } = self;
        let named = connection_file::load_named(&connection)?;
        let store = token_store(global.token_store.as_deref())?;
        if store.remove(&named.key)? {
            println!("Forgot the tokens of {}.", named.key);
        } else {
            println!("No tokens were stored for {}.", named.key);
        }
        Ok(ExitCode::SUCCESS)
    }
}
