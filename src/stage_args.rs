//! The options every recipe-stage command (`run`, `distill`, `qat`) takes.

use std::path::PathBuf;

use decant::recipe::Recipe;
use train::BackendKind;

#[derive(clap::Args)]
pub struct StageArgs {
    /// The recipe (TOML).
    pub recipe: PathBuf,
    /// The run directory [default: runs/<recipe name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue a stopped stage from its newest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// The backend to train on [default: the recipe's `train.backend`].
    #[arg(long, value_parser = parse_backend)]
    pub backend: Option<BackendKind>,
    /// Print one JSON object describing what was written.
    #[arg(long)]
    pub json: bool,
}

impl StageArgs {
    pub fn run_dir(&self, recipe: &Recipe) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&recipe.export.name))
    }

    /// `RUN_DIR/.lock`: one decant at a time works in a run directory.
    pub fn lock(&self, recipe: &Recipe) -> anyhow::Result<decant::lock::Lock> {
        Ok(decant::lock::Lock::take(&self.run_dir(recipe).join(".lock"), "this run directory")?)
    }

    pub fn backend(&self, recipe: &Recipe) -> BackendKind {
        self.backend.unwrap_or(recipe.train.backend)
    }

    /// The checked recipe, its warnings printed on stderr.
    pub fn load(&self) -> anyhow::Result<decant::recipe::Checked> {
        let checked = decant::recipe::load(&self.recipe)?;
        for warning in &checked.warnings {
            eprintln!("{warning}");
        }
        Ok(checked)
    }
}

fn parse_backend(name: &str) -> Result<BackendKind, String> {
    name.parse().map_err(|e: train::BackendError| e.to_string())
}
