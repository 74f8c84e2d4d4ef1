//! `dynamics demo`: the tour against the embedded emulator, optionally followed by the flow designer.

use std::process::ExitCode;

use crate::commands::Global;
use crate::commands::designer::{DesignerRun, designer_file, serve_designer};
use crate::commands::token_store;

#[derive(clap::Args)]
pub struct Args {
    /// Rows seeded per table.
    #[arg(long, default_value_t = 25)]
    pub rows: usize,
    /// After the tour, serve the flow designer against the same emulator (until Ctrl-C).
    #[arg(long)]
    pub designer: bool,
    /// The designer's port on 127.0.0.1 (with --designer); 0 picks a free one.
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            rows,
            designer,
            port,
        } = self;
        if !designer {
            host_harness::demo::run(rows, &mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        let emulator = host_harness::demo::start_emulator(rows)?;
        host_harness::demo::tour(&emulator, rows, &mut std::io::stdout())?;
        let store = token_store(global.token_store.as_deref())?;
        let file = designer_file(&store, None);
        println!();
        serve_designer(
            global.host_config()?.0,
            global.component.as_deref(),
            DesignerRun {
                store,
                connections_file: file,
                port,
                emulator: Some(emulator),
                connect: true,
                public_webhook_url: None,
            },
        )
    }
}
