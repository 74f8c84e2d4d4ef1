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
    /// A nopCommerce export (JSON with Customers, Products, Orders on nopCommerce's field names,
    /// as tests/fixtures/nopcommerce/shop.json) for the shop sync step, instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub shop: Option<std::path::PathBuf>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args {
            rows,
            designer,
            port,
            shop,
        } = self;
        let shop =
            match shop {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("--shop {}: cannot read it: {e}", path.display())
                })?),
                None => None,
            };
        if !designer {
            let emulator = host_harness::demo::start_emulator(rows)?;
            host_harness::demo::tour_with(
                &emulator,
                rows,
                shop.as_deref(),
                &mut std::io::stdout(),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        let emulator = host_harness::demo::start_emulator(rows)?;
        host_harness::demo::tour_with(&emulator, rows, shop.as_deref(), &mut std::io::stdout())?;
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
