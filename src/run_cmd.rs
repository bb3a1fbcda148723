//! `decant run`: a recipe's stages into one run directory, with its manifest.

use std::path::PathBuf;

use anyhow::{Context, Result};
use decant::recipe;
use decant::stage::pipeline::{Pipeline, StageName};
use train::BackendKind;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The recipe (TOML).
    recipe: PathBuf,
    /// The run directory [default: runs/<recipe name>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue a stopped stage from its newest checkpoint.
    #[arg(long)]
    resume: bool,
    /// The backend to train on [default: the recipe's `train.backend`].
    #[arg(long, value_parser = crate::distill_cmd::parse_backend)]
    backend: Option<BackendKind>,
    /// Stop after this stage.
    #[arg(long, value_enum, value_name = "STAGE")]
    until: Option<StageName>,
    /// Print the manifest as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let checked = recipe::load(&args.recipe)?;
    for warning in &checked.warnings {
        eprintln!("{warning}");
    }
    let recipe = &checked.recipe;
    let run_dir = args.out.unwrap_or_else(|| PathBuf::from("runs").join(&recipe.export.name));
    let manifest = Pipeline {
        recipe,
        recipe_path: &args.recipe,
        run_dir: run_dir.clone(),
        resume: args.resume,
        backend: args.backend.unwrap_or(recipe.train.backend),
        progress: true,
        until: args.until,
    }
    .run()
    .with_context(|| format!("run of {}", args.recipe.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&manifest)?);
        return Ok(());
    }
    for stage in &manifest.stages {
        let state = if stage.reused { "reused" } else { "done" };
        println!("{:<8} {state}", format!("{:?}", stage.stage).to_lowercase());
    }
    for artifact in &manifest.artifacts {
        println!("{:>12} bytes  {}", artifact.size, run_dir.join(&artifact.path).display());
    }
    println!("manifest: {}", run_dir.join(decant::stage::pipeline::MANIFEST_FILE).display());
    Ok(())
}
