//! The QAT stage: the distilled student fine-tuned with its weights
//! fake-quantized to the very blocks the export writes (the recipe's `[qat]`
//! type or mix, planned by the code `decant export` plans with), against the
//! teacher's or the full-precision student's distribution. It writes the
//! full-precision master weights as a Hugging Face directory: exporting them at
//! the QAT type rounds them exactly as training saw them, once.
//!
//! Its directory (`RUN_DIR/qat`) is kept like the distill stage's:
//! `inputs.json`, `checkpoints/`, `metrics.jsonl`, then `student/` and
//! `stage.json` when complete.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use datasets::Part;
use distill::{Divergence, OnlineDistillation};
use export::{Dtype, ExportMetadata, HfOptions, ModelRef};
use quantize::GgmlType;
use quantize::mix::MixOptions;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use train::backend::{BackendFn, BackendKind, dispatch};
use train::import::Weight;
use train::qat::{FakeQuant, FakeQuantPlan, Ste};
use train::trainer::{Topology, Trainer};

use super::distill::{
    DistillReport, divergence, loss_name, name_of, objective_error, train_config, train_data,
};
use super::state::{self, INPUTS_FILE, REPORT_FILE, Started};
use super::{StageError, data, replicas, source};
use crate::model_arg::{self, ModelSource};
use crate::recipe::qat::{Qat, Reference, Ste as RecipeSte};
use crate::recipe::{Recipe, Train};

const STUDENT_DIR: &str = "student";

/// One run of the stage.
pub struct QatStage<'a> {
    pub recipe: &'a Recipe,
    /// The run directory: the stage reads `RUN_DIR/distill` and writes `RUN_DIR/qat`.
    pub run_dir: PathBuf,
    pub resume: bool,
    pub backend: BackendKind,
    pub progress: bool,
    /// Data-parallel replicas on this machine (`[train] devices`). QAT trains
    /// on the leading node alone: its steps are a tenth of distillation's.
    pub devices: usize,
}

/// What the stage did, as `stage.json` and `--json` give it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QatReport {
    /// The full-precision master weights, a Hugging Face directory.
    pub student: PathBuf,
    /// The distilled student it started from.
    pub distilled: PathBuf,
    pub inputs: String,
    /// The type or mix trained against (export with this `--type`).
    #[serde(rename = "type")]
    pub mix: String,
    pub pure: bool,
    pub objective: String,
    /// How many weights were fake-quantized to each type.
    pub fake_quantized: BTreeMap<String, usize>,
    /// 2-D weights the recipe left in full precision during QAT.
    pub full_precision: Vec<String>,
    pub steps: u64,
    pub last_loss: f64,
    pub elapsed_s: f64,
    pub metrics: PathBuf,
    #[serde(default)]
    pub reused: bool,
}

impl QatStage<'_> {
    pub fn run(self) -> Result<QatReport, StageError> {
        let Some(qat) = &self.recipe.qat else {
            return Err(StageError::Unsupported(
                "the recipe has no [qat] section; add one with at least `type`".to_owned(),
            ));
        };
        if qat.reference == Reference::Teacher && self.recipe.teacher.is_none() {
            return Err(StageError::Unsupported(
                "[qat] reference = \"teacher\": the recipe has no [teacher]; use reference = \"student\"".to_owned(),
            ));
        }
        let backend = self.backend;
        dispatch(
            backend,
            Job {
                stage: self,
                qat: qat.clone(),
            },
        )?
    }
}

struct Job<'a> {
    stage: QatStage<'a>,
    qat: Qat,
}

impl BackendFn for Job<'_> {
    type Output = Result<QatReport, StageError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let Job { stage, qat } = self;
        let started_at = Instant::now();
        let recipe = stage.recipe;
        let distill_dir = stage.run_dir.join("distill");
        let dir = stage.run_dir.join("qat");
        let distilled = distilled_student(&distill_dir)?;
        let inputs = inputs_hash(&distilled.inputs, &qat, &recipe.train);
        if let Some(report) = state::completed(&dir, &inputs, "qat", |r: &QatReport| &r.inputs)? {
            return Ok(QatReport {
                reused: true,
                ..report
            });
        }
        let started = state::check_started(&dir, &inputs, stage.resume, "qat")?;

        let student_source = ModelSource::HfDir(distilled.student.clone());
        let teacher_source = recipe
            .teacher
            .as_ref()
            .map(|t| model_arg::resolve(&t.model.argument()))
            .transpose()?;
        let vocab_source = teacher_source
            .clone()
            .unwrap_or_else(|| student_source.clone());
        let tokenizer = source::tokenizer(&vocab_source)?;
        let template = source::chat_template(&vocab_source)?;
        let prepared = data::prepare(&recipe.data, Part::Train, &tokenizer, template.as_ref())?;
        let documents = Arc::new(prepared.documents);

        let reference_source = match qat.reference {
            Reference::Teacher => teacher_source.clone().expect("checked in run"),
            Reference::Student => student_source.clone(),
        };
        let reference = train::load_model::<B::InnerBackend>(reference_source.path(), &device)?;
        let config = qat_train_config(&qat, &recipe.train)?;
        let train_data = train_data(recipe, &documents);
        let trainer = match started {
            Started::Resume {
                checkpoint: true, ..
            } => Trainer::<B>::resume(config.clone(), train_data.clone(), &dir, &device)?,
            _ => {
                let student = train::load_model::<B>(student_source.path(), &device)?;
                state::write_json(&dir.join(INPUTS_FILE), &json!({ "inputs": inputs }))?;
                Trainer::start(config.clone(), student, train_data.clone(), &dir)?
            }
        };

        let model_config = trainer.model().config.clone();
        let (plan, full_precision) = fake_quant_plan(&qat, &model_config)?;
        let (loss, temperature, alpha) = match &recipe.distill {
            Some(d) => (divergence(d.loss), d.temperature, d.alpha),
            None => (Divergence::ForwardKl, 1.0, 0.0),
        };
        let objective_name = format!(
            "{} (alpha {alpha}) against the {}, weights fake-quantized to {}",
            recipe
                .distill
                .as_ref()
                .map_or_else(|| "forward_kl".to_owned(), |d| loss_name(d.loss)),
            match qat.reference {
                Reference::Teacher => "teacher",
                Reference::Student => "full-precision student",
            },
            qat.mix
        );
        let topology = Topology {
            devices: stage.devices,
            nodes: None,
        };
        let objectives = replicas::objectives(&topology, || {
            let (reference, plan) = (reference.clone(), plan.clone());
            Box::new(move |device: &B::Device| {
                let online = OnlineDistillation::<B>::new(
                    reference.to_device(device),
                    loss,
                    temperature,
                    alpha,
                )
                .map_err(objective_error)?;
                Ok(FakeQuant::new(online, plan))
            })
        });
        let training = replicas::Training {
            topology: &topology,
            config: &config,
            data: train_data,
            dir: &dir,
            stage: "qat",
            progress: stage.progress,
            prepare: None,
        };
        let (trainer, summary) = training.run(Some(trainer), objectives)?;

        let model = trainer.model().valid();
        let vocab = source::vocabulary(&vocab_source, model.config.vocab_size)?;
        let metadata = ExportMetadata {
            name: recipe.export.name.clone(),
            base_models: teacher_source
                .iter()
                .map(|s| ModelRef {
                    name: name_of(s),
                    ..ModelRef::default()
                })
                .collect(),
            ..ExportMetadata::default()
        };
        let student_dir = dir.join(STUDENT_DIR);
        state::clear_dir(&student_dir)?;
        let options = HfOptions {
            dtype: Dtype::F32,
            max_shard_bytes: export::hf::DEFAULT_MAX_SHARD_BYTES,
        };
        export::export_hf_dir(
            &model,
            vocab.as_ref(),
            &metadata,
            options,
            &student_dir,
            |_| {},
        )?;
        let mut fake_quantized = BTreeMap::new();
        for (_, ty) in &plan.tensors {
            *fake_quantized.entry(ty.name().to_owned()).or_insert(0) += 1;
        }
        let report = QatReport {
            student: student_dir,
            distilled: distilled.student,
            inputs,
            mix: qat.mix.name().to_owned(),
            pure: qat.pure,
            objective: objective_name,
            fake_quantized,
            full_precision,
            steps: summary.steps,
            last_loss: summary.last_loss,
            elapsed_s: started_at.elapsed().as_secs_f64(),
            metrics: dir.join("metrics.jsonl"),
            reused: false,
        };
        state::write_json(&dir.join(REPORT_FILE), &report)?;
        Ok(report)
    }
}

/// The weights to fake-quantize, each to its export type, and the 2-D weights
/// `[qat]` leaves in full precision (`include_embeddings`, `include_output`).
pub fn fake_quant_plan(
    qat: &Qat,
    config: &train::ModelConfig,
) -> Result<(FakeQuantPlan, Vec<String>), StageError> {
    let options = MixOptions {
        pure: qat.pure,
        ..MixOptions::new(qat.mix)
    };
    let mut tensors = Vec::new();
    let mut full_precision = Vec::new();
    for (weight, ty) in export::planned_types(config, &options)? {
        if ty == GgmlType::F32 {
            continue;
        }
        // Tied embeddings are the output head too; `include_embeddings` decides.
        let included = match weight {
            Weight::TokenEmbedding => qat.include_embeddings,
            Weight::Output => qat.include_output,
            _ => true,
        };
        if included {
            tensors.push((weight, ty));
        } else {
            full_precision.push(weight.hf_name());
        }
    }
    let ste = match qat.ste {
        RecipeSte::Identity => Ste::Identity,
        RecipeSte::Clipped => Ste::Clipped,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok((
        FakeQuantPlan {
            tensors,
            ste,
            threads,
        },
        full_precision,
    ))
}

/// `[train]` with QAT's steps and learning rate; warm-up shrinks in proportion.
/// QAT always trains in f32, whatever `[train] dtype` gave distillation: its
/// forward rounds the f32 master weights exactly as export will, and bf16
/// working copies would round them a second time.
fn qat_train_config(qat: &Qat, train: &Train) -> Result<train::trainer::TrainConfig, StageError> {
    let scaled = Train {
        dtype: crate::recipe::train::Dtype::F32,
        steps: qat.steps,
        lr: qat.lr,
        min_lr: train.min_lr * qat.lr / train.lr,
        warmup_steps: train.warmup_steps * qat.steps / train.steps.max(1),
        checkpoint_every: train.checkpoint_every.min(qat.steps),
        ..train.clone()
    };
    train_config(&scaled)
}

fn distilled_student(distill_dir: &std::path::Path) -> Result<DistillReport, StageError> {
    let path = distill_dir.join(REPORT_FILE);
    if !path.is_file() {
        return Err(StageError::RunDir {
            path: distill_dir.to_owned(),
            message: "holds no completed distill stage; QAT starts from the distilled student, \
                      run `decant distill` with the same recipe and --out first"
                .to_owned(),
        });
    }
    state::read_json(&path)
}

/// sha256 over the distill stage's inputs, `[qat]` and `[train]`.
fn inputs_hash(distill_inputs: &str, qat: &Qat, train: &Train) -> String {
    let mut train = serde_json::to_value(train).expect("serializable");
    train.as_object_mut().expect("a table").remove("backend");
    let sections = json!({ "distill": distill_inputs, "qat": qat, "train": train });
    format!("{:x}", Sha256::digest(sections.to_string().as_bytes()))
}
