//! `decant run`: a recipe's stages into one run directory, with its manifest.

use anyhow::{Context, Result};
use decant::stage::pipeline::{Pipeline, StageName};

use crate::stage_args::StageArgs;

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    stage: StageArgs,
    /// Stop after this stage.
    #[arg(long, value_enum, value_name = "STAGE")]
    until: Option<StageName>,
}

pub fn run(args: RunArgs) -> Result<()> {
    let (until, args) = (args.until, args.stage);
    let checked = args.load()?;
    let recipe = &checked.recipe;
    let run_dir = args.run_dir(recipe);
    let pipeline = Pipeline {
        recipe,
        recipe_path: &args.recipe,
        run_dir: run_dir.clone(),
        resume: args.resume,
        backend: args.backend(recipe),
        progress: true,
        until,
        topology: args.topology(recipe)?,
    };
    let _lock = args.lock(recipe)?;
    if !pipeline.topology.is_leader() {
        let report = pipeline
            .follow()
            .with_context(|| format!("run of {}", args.recipe.display()))?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "trained {} steps as one of {} replicas (weights sha256 {}); rank 0 writes the run",
                report.steps, report.replicas, report.weights_sha256
            );
        }
        return Ok(());
    }
    let report = pipeline
        .run()
        .with_context(|| format!("run of {}", args.recipe.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let manifest = &report.manifest;
    if let Some(eval) = &report.eval {
        crate::eval_table::print(eval);
    }
    for stage in &manifest.stages {
        let state = if stage.reused { "reused" } else { "done" };
        println!("{:<8} {state}", format!("{:?}", stage.stage).to_lowercase());
    }
    for artifact in &manifest.artifacts {
        println!(
            "{:>12} bytes  {}",
            artifact.size,
            run_dir.join(&artifact.path).display()
        );
    }
    println!(
        "manifest: {}",
        run_dir
            .join(decant::stage::pipeline::MANIFEST_FILE)
            .display()
    );
    println!("report: {}", report.report.display());
    if let Some(published) = &report.published {
        crate::publish_cmd::print(published);
    }
    Ok(())
}
