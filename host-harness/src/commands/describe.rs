//! `dynamics describe`: an action's inputs, types, defaults and comments.

use std::process::ExitCode;

use anyhow::bail;
use dynamics_host::manifest::input_type_name;

use crate::commands::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The action key, such as query-entities.
    pub action: String,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let Args { action: key } = self;
        let host = global.host()?;
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
}
