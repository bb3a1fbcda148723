//! `decant recipe`: recipes on their own, before anything runs.

use std::path::PathBuf;

use anyhow::{Result, bail};
use decant::recipe::{self, Diagnostic, RecipeError, Severity};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum RecipeCommand {
    /// Check a recipe's schema and values, reporting every error as file:line:col.
    Check(CheckArgs),
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The recipe (TOML); relative paths in it are read from its directory.
    recipe: PathBuf,
    /// Print one JSON object: the resolved configuration, or the errors.
    #[arg(long)]
    json: bool,
}

pub fn run(command: RecipeCommand) -> Result<()> {
    match command {
        RecipeCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> Result<()> {
    let path = args.recipe.display().to_string();
    match recipe::load(&args.recipe) {
        Ok(checked) => {
            report(&checked.warnings);
            if args.json {
                let output = json!({
                    "recipe": path,
                    "valid": true,
                    "warnings": checked.warnings,
                    "config": checked.recipe,
                });
                println!("{output}");
            } else {
                println!("{path}: ok");
                print!("{}", recipe::render_text(&checked.recipe));
            }
            Ok(())
        }
        Err(RecipeError::Invalid { diagnostics }) => {
            report(&diagnostics);
            if args.json {
                let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) = diagnostics
                    .iter()
                    .partition(|d| d.severity == Severity::Error);
                let output = json!({
                    "recipe": path,
                    "valid": false,
                    "errors": errors,
                    "warnings": warnings,
                });
                println!("{output}");
            }
            let count = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            let plural = if count == 1 { "" } else { "s" };
            bail!("{path}: {count} error{plural} in the recipe")
        }
        Err(err) => Err(err.into()),
    }
}

fn report(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
}
