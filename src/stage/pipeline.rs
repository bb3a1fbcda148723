//! `decant run`: the recipe's stages in order — distill, QAT when the recipe
//! has `[qat]`, export — each keyed by the hash of its inputs, so that a rerun
//! skips what is complete and `--resume` continues a stopped stage; then
//! the eval stage with `[eval]`; `manifest.json`, every artifact with its
//! sha256, size, parents and metrics; then, with `[publish]`, the exported
//! files to the registry.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use train::BackendKind;
use train::trainer::Topology;

use super::distill::{DistillReport, DistillStage};
use super::eval::{self, EvalReport};
use super::qat::QatStage;
use super::state::{self, sha256_of};
use super::{StageError, export};
use crate::publish::{Published, Release};
use crate::recipe::Recipe;

pub const MANIFEST_FILE: &str = "manifest.json";
/// The recipe the run ran, copied byte for byte (its sha256 is the manifest's).
pub const RECIPE_FILE: &str = "recipe.toml";

/// The stages `decant run` runs, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    Distill,
    Qat,
    Export,
    Eval,
    Publish,
}

pub struct Pipeline<'a> {
    pub recipe: &'a Recipe,
    /// The recipe file, hashed into the manifest.
    pub recipe_path: &'a Path,
    pub run_dir: PathBuf,
    pub resume: bool,
    pub backend: BackendKind,
    pub progress: bool,
    /// The last stage to run; `None` runs every stage the recipe has.
    pub until: Option<StageName>,
    /// The data-parallel replicas of the distill stage.
    pub topology: Topology,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageRun {
    pub stage: StageName,
    pub inputs: String,
    /// Found complete with the same inputs; nothing was done.
    pub reused: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    /// Relative to the run directory.
    pub path: PathBuf,
    pub kind: &'static str,
    pub stage: StageName,
    /// sha256 of the file, or of a directory's files in name order.
    pub sha256: String,
    pub size: u64,
    /// The artifacts (or, outside the run, the files) it was made from.
    pub parents: Vec<PathBuf>,
    pub metrics: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// The model's name (`[export] name`).
    pub name: String,
    pub decant_version: &'static str,
    pub recipe: PathBuf,
    pub recipe_sha256: String,
    pub stages: Vec<StageRun>,
    pub artifacts: Vec<Artifact>,
}

/// What `decant run` did.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub manifest: Manifest,
    /// Every evaluated model's scores, the teacher's first.
    pub eval: Option<EvalReport>,
    /// `RUN_DIR/report.md`.
    pub report: PathBuf,
    pub published: Option<Published>,
}

impl Pipeline<'_> {
    /// A rank other than 0 of a multi-node run: its replicas of the distill
    /// stage, which is what the nodes train together; rank 0 goes on alone.
    pub fn follow(self) -> Result<DistillReport, StageError> {
        DistillStage {
            recipe: self.recipe,
            dir: self.run_dir.join("distill"),
            resume: self.resume,
            backend: self.backend,
            progress: self.progress,
            topology: self.topology,
        }
        .run()
    }

    pub fn run(self) -> Result<RunReport, StageError> {
        let until = self.until.unwrap_or(StageName::Publish);
        let recipe = self.recipe;
        let run_dir = &self.run_dir;
        let mut stages = Vec::new();
        let mut artifacts = Vec::new();
        let teacher = recipe
            .teacher
            .as_ref()
            .map(|t| crate::model_arg::resolve(&t.model.argument()))
            .transpose()?;

        let distilled = DistillStage {
            recipe,
            dir: run_dir.join("distill"),
            resume: self.resume,
            backend: self.backend,
            progress: self.progress,
            topology: self.topology.clone(),
        }
        .run()?;
        stages.push(StageRun {
            stage: StageName::Distill,
            inputs: distilled.inputs.clone(),
            reused: distilled.reused,
        });
        artifacts.push(artifact(
            run_dir,
            &distilled.student,
            "student",
            StageName::Distill,
            teacher.iter().map(|t| t.path().to_owned()).collect(),
            json!({ "steps": distilled.steps, "last_loss": distilled.last_loss, "parameters": distilled.parameters }),
        )?);
        let (mut student, mut upstream) = (distilled.student.clone(), distilled.inputs.clone());

        if recipe.qat.is_some() && until >= StageName::Qat {
            let qat = QatStage {
                recipe,
                run_dir: run_dir.clone(),
                resume: self.resume,
                backend: self.backend,
                progress: self.progress,
                devices: self.topology.devices,
            }
            .run()?;
            stages.push(StageRun {
                stage: StageName::Qat,
                inputs: qat.inputs.clone(),
                reused: qat.reused,
            });
            artifacts.push(artifact(
                run_dir,
                &qat.student,
                "student",
                StageName::Qat,
                vec![relative(run_dir, &student)],
                json!({ "steps": qat.steps, "last_loss": qat.last_loss, "type": qat.mix, "fake_quantized": qat.fake_quantized }),
            )?);
            (student, upstream) = (qat.student, qat.inputs);
        }

        let mut evaluated = None;
        if until >= StageName::Export {
            let exported = export::run(recipe, run_dir, &student, &upstream)?;
            stages.push(StageRun {
                stage: StageName::Export,
                inputs: exported.inputs.clone(),
                reused: exported.reused,
            });
            if recipe.eval.is_some() && until >= StageName::Eval {
                let report = eval::run(recipe, run_dir, &exported)?;
                stages.push(StageRun {
                    stage: StageName::Eval,
                    inputs: report.inputs.clone(),
                    reused: report.reused,
                });
                evaluated = Some(report);
            }
            // Hashed after eval, which records its cascade in the files.
            for file in &exported.files {
                let scores = evaluated
                    .iter()
                    .flat_map(|r| &r.models)
                    .find(|m| m.model == file.path);
                let mut metrics = json!({ "type": file.ty, "tensors": file.tensors });
                if let Some(scores) = scores {
                    metrics["eval"] = serde_json::to_value(scores).expect("serializable");
                }
                artifacts.push(artifact(
                    run_dir,
                    &file.path,
                    if file.format == "gguf" {
                        "gguf"
                    } else {
                        "safetensors"
                    },
                    StageName::Export,
                    vec![relative(run_dir, &student)],
                    metrics,
                )?);
            }
        }

        let recipe_bytes =
            std::fs::read(self.recipe_path).map_err(|e| StageError::io(self.recipe_path, e))?;
        state::write_bytes(&run_dir.join(RECIPE_FILE), &recipe_bytes)?;
        let manifest = Manifest {
            name: recipe.export.name.clone(),
            decant_version: env!("CARGO_PKG_VERSION"),
            recipe: self.recipe_path.to_owned(),
            recipe_sha256: format!("{:x}", Sha256::digest(&recipe_bytes)),
            stages,
            artifacts,
        };
        state::write_json(&run_dir.join(MANIFEST_FILE), &manifest)?;
        let report = crate::report::write(run_dir, &manifest, evaluated.as_ref())?;
        let published = match &recipe.publish {
            Some(publish) if until >= StageName::Publish => {
                let release = Release::of_run(run_dir, Some(&publish.model_name))?;
                Some(crate::publish::publish(&release, &publish.registry)?)
            }
            _ => None,
        };
        Ok(RunReport {
            manifest,
            eval: evaluated,
            report,
            published,
        })
    }
}

fn artifact(
    run_dir: &Path,
    path: &Path,
    kind: &'static str,
    stage: StageName,
    parents: Vec<PathBuf>,
    metrics: Value,
) -> Result<Artifact, StageError> {
    Ok(Artifact {
        path: relative(run_dir, path),
        kind,
        stage,
        sha256: sha256_of(path)?,
        size: size_of(path)?,
        parents,
        metrics,
    })
}

fn relative(run_dir: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(run_dir)
        .map_or_else(|_| path.to_owned(), Path::to_owned)
}

/// Bytes of a file, or of a directory's files.
fn size_of(path: &Path) -> Result<u64, StageError> {
    let meta = std::fs::metadata(path).map_err(|e| StageError::io(path, e))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(|e| StageError::io(path, e))? {
        total += size_of(&entry.map_err(|e| StageError::io(path, e))?.path())?;
    }
    Ok(total)
}
