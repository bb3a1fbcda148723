//! `decant qat`: the QAT stage of a recipe alone, on a completed distill stage.

use anyhow::{Context, Result};
use decant::stage::qat::QatStage;

use crate::stage_args::StageArgs;

/// Reads RUN_DIR/distill, writes RUN_DIR/qat; the recipe needs a [qat] section.
#[derive(clap::Args)]
pub struct QatArgs {
    #[command(flatten)]
    stage: StageArgs,
}

pub fn run(args: QatArgs) -> Result<()> {
    let args = args.stage;
    let checked = args.load()?;
    let recipe = &checked.recipe;
    if args.world.is_some() {
        anyhow::bail!(
            "--world: the QAT stage trains on one machine; run it without --rank/--world (on rank 0's)"
        );
    }
    let _lock = args.lock(recipe)?;
    let stage = QatStage {
        recipe,
        run_dir: args.run_dir(recipe),
        resume: args.resume,
        backend: args.backend(recipe),
        progress: true,
        devices: args.topology(recipe)?.devices,
    };
    let report = stage
        .run()
        .with_context(|| format!("qat stage of {}", args.recipe.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.reused {
        println!("qat stage already complete: {}", report.student.display());
    } else {
        println!(
            "trained {} QAT steps against {} (last loss {:.4}) into {}; export it with --type {}{}",
            report.steps,
            report.mix,
            report.last_loss,
            report.student.display(),
            report.mix,
            if report.pure { " --pure" } else { "" }
        );
    }
    Ok(())
}
