//! `dynamics manifest`: prints component.yaml from the component's definitions, or checks a file.

use std::process::ExitCode;

use std::path::PathBuf;

use crate::commands::Global;
use anyhow::Context as _;
use dynamics_host::manifest::render;

#[derive(clap::Args)]
pub struct Args {
    /// Compare with this file instead of printing; fails when they differ.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args { check } = self;
        let host = global.host()?;
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
