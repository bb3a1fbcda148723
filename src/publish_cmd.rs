//! `decant publish`: a completed run's exported files to a model registry.

use std::path::PathBuf;

use anyhow::{Context, Result};
use decant::publish::{Published, Release, publish};
use decant::recipe::publish::parse_registry;

#[derive(clap::Args)]
pub struct PublishArgs {
    /// A run directory `decant run` completed (it reads RUN_DIR/manifest.json).
    run_dir: PathBuf,
    /// file:///DIR (a versioned registry directory), mlflow+http://HOST:PORT
    /// (an MLflow tracking server serving artifacts) or oci://HOST:PORT/REPO:TAG
    /// (Ollama images); hf:// is recognised but not available yet.
    #[arg(long, value_name = "URI")]
    registry: String,
    /// The registered model's name [default: the recipe's export name].
    #[arg(long)]
    name: Option<String>,
    /// Print one JSON object describing the registered version.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PublishArgs) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let registry =
        parse_registry(&cwd, &args.registry).map_err(|e| anyhow::anyhow!("--registry {e}"))?;
    let release = Release::of_run(&args.run_dir, args.name.as_deref())?;
    let published = publish(&release, &registry)
        .with_context(|| format!("cannot publish {}", args.run_dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&published)?);
    } else {
        print(&published);
    }
    Ok(())
}

pub fn print(published: &Published) {
    let state = if published.reused {
        "already published as"
    } else {
        "published"
    };
    println!(
        "{state} {} version {} in {}: {}",
        published.name, published.version, published.registry, published.location
    );
}
