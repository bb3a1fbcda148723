//! `decant distill`: the distill stage of a recipe alone.

use anyhow::{Context, Result};
use decant::stage::distill::DistillStage;

use crate::stage_args::StageArgs;

/// The stage writes RUN_DIR/distill.
#[derive(clap::Args)]
pub struct DistillArgs {
    #[command(flatten)]
    stage: StageArgs,
}

pub fn run(args: DistillArgs) -> Result<()> {
    let args = args.stage;
    let checked = args.load()?;
    let recipe = &checked.recipe;
    let _lock = args.lock(recipe)?;
    let stage = DistillStage {
        recipe,
        dir: args.run_dir(recipe).join("distill"),
        resume: args.resume,
        backend: args.backend(recipe),
        progress: true,
        topology: args.topology(recipe)?,
    };
    let report = stage
        .run()
        .with_context(|| format!("distill stage of {}", args.recipe.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if !args.topology(recipe)?.is_leader() {
        println!(
            "trained {} steps as one of {} replicas (weights sha256 {}); rank 0 writes the stage",
            report.steps, report.replicas, report.weights_sha256
        );
    } else if report.reused {
        println!(
            "distill stage already complete: {}",
            report.student.display()
        );
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
