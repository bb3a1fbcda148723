//! `decant qat`: the QAT stage of a recipe alone, on a completed distill stage.

use std::path::PathBuf;

use anyhow::{Context, Result};
use decant::recipe;
use decant::stage::qat::QatStage;
use train::BackendKind;

#[derive(clap::Args)]
pub struct QatArgs {
    /// The recipe (TOML), with a [qat] section.
    recipe: PathBuf,
    /// The run directory: reads RUN_DIR/distill, writes RUN_DIR/qat [default: runs/<recipe name>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue a stopped stage from its newest checkpoint.
    #[arg(long)]
    resume: bool,
    /// The backend to train on [default: the recipe's `train.backend`].
    #[arg(long, value_parser = crate::distill_cmd::parse_backend)]
    backend: Option<BackendKind>,
    /// Print one JSON object describing what was written.
    #[arg(long)]
    json: bool,
}

pub fn run(args: QatArgs) -> Result<()> {
    let checked = recipe::load(&args.recipe)?;
    for warning in &checked.warnings {
        eprintln!("{warning}");
    }
    let recipe = &checked.recipe;
    let stage = QatStage {
        recipe,
        run_dir: args.out.unwrap_or_else(|| PathBuf::from("runs").join(&recipe.export.name)),
        resume: args.resume,
        backend: args.backend.unwrap_or(recipe.train.backend),
        progress: true,
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
