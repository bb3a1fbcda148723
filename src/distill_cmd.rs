//! `decant distill`: the distill stage of a recipe alone.

use std::path::PathBuf;

use anyhow::{Context, Result};
use decant::recipe;
use decant::stage::distill::DistillStage;
use train::BackendKind;

#[derive(clap::Args)]
pub struct DistillArgs {
    /// The recipe (TOML).
    recipe: PathBuf,
    /// The run directory; the stage writes RUN_DIR/distill [default: runs/<recipe name>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue a stopped stage from its newest checkpoint.
    #[arg(long)]
    resume: bool,
    /// The backend to train on [default: the recipe's `train.backend`].
    #[arg(long, value_parser = parse_backend)]
    backend: Option<BackendKind>,
    /// Print one JSON object describing what was written.
    #[arg(long)]
    json: bool,
}

pub fn parse_backend(name: &str) -> Result<BackendKind, String> {
    name.parse().map_err(|e: train::BackendError| e.to_string())
}

pub fn run(args: DistillArgs) -> Result<()> {
    let checked = recipe::load(&args.recipe)?;
    for warning in &checked.warnings {
        eprintln!("{warning}");
    }
    let recipe = &checked.recipe;
    let run_dir = args.out.unwrap_or_else(|| PathBuf::from("runs").join(&recipe.export.name));
    let stage = DistillStage {
        recipe,
        dir: run_dir.join("distill"),
        resume: args.resume,
        backend: args.backend.unwrap_or(recipe.train.backend),
        progress: true,
    };
    let report = stage
        .run()
        .with_context(|| format!("distill stage of {}", args.recipe.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.reused {
        println!("distill stage already complete: {}", report.student.display());
    } else {
        println!(
            "distilled {} steps (last loss {:.4}) into {} ({} parameters)",
            report.steps,
            report.last_loss,
            report.student.display(),
            report.parameters
        );
    }
    Ok(())
}
