//! `dynamics test-connection`: signs in if needed and runs the component's connection test.

use std::process::ExitCode;

use std::path::PathBuf;

use dynamics_host::{TokenManager, connection_file};

use crate::commands::Global;
use crate::commands::{print_result, token_store};

#[derive(clap::Args)]
pub struct Args {
    /// The connection file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args { connection } = self;
        let host = global.host()?;
        let named = connection_file::load_named(&connection)?;
        let mut connection = named.connection;
        let store = token_store(global.token_store.as_deref())?;
        let manager = TokenManager::new(&host, &store);
        let result = manager.test_connection(&named.key, &mut connection);
        print_result(result)
    }
}
