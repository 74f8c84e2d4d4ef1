//! `dynamics actions`: lists the actions, key, group and label.

use std::process::ExitCode;

use crate::commands::Global;

#[derive(clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let host = global.host()?;
        for action in &host.definition().actions {
            let group = action.group.as_deref().unwrap_or("-");
            println!("{:<24} {:<5} {}", action.key, group, action.label);
        }
        Ok(ExitCode::SUCCESS)
    }
}
