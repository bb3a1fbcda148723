//! The distill stage: the student made from the teacher, trained against the
//! teacher's distribution (or on the labels alone without `[distill]`) through
//! the training core, and written out as a Hugging Face directory.
//!
//! Its directory holds `checkpoints/` and `metrics.jsonl` while it runs,
//! `inputs.json` (what the stage was started with, so that a resume with other
//! inputs is refused), and, when complete, `student/` and last `stage.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use datasets::logit_cache::TeacherCache;
use datasets::{Documents, LoaderConfig, Order, Part, Shard};
use distill::{
    CachedDistillation, Divergence, HiddenAlignment, HiddenLoss, OnPolicyConfig,
    OnPolicyDistillation, OnlineDistillation,
};
use export::{DatasetRef, Dtype, ExportMetadata, HfOptions, ModelRef};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use train::Transformer;
use train::backend::{BackendFn, BackendKind, dispatch};
use train::optim::{AdamWConfig, ScheduleKind};
use train::trainer::{CrossEntropy, Precision, Topology, TrainConfig, TrainData, Trainer};

use super::state::{self, INPUTS_FILE, REPORT_FILE, Started, sha256_of};
use super::student::{self, Lineage, WidthLineage};
use super::{StageError, data, replicas, source};
use crate::model_arg::{self, ModelSource};
use crate::recipe::distill::{Distill, Hidden, HiddenLoss as HiddenLossKind, Loss, TeacherMode};
use crate::recipe::train::{Dtype as TrainDtype, Optimizer, Schedule};
use crate::recipe::{Recipe, Train};

const STUDENT_DIR: &str = "student";

/// One run of the stage.
pub struct DistillStage<'a> {
    pub recipe: &'a Recipe,
    /// The stage's own directory (`RUN_DIR/distill`).
    pub dir: PathBuf,
    /// Continue from the newest checkpoint instead of refusing a started stage.
    pub resume: bool,
    pub backend: BackendKind,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The data-parallel replicas: `[train] devices` per node, and the nodes.
    pub topology: Topology,
}

/// What the stage did, as `stage.json` and `--json` give it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DistillReport {
    /// The trained student, a Hugging Face directory.
    pub student: PathBuf,
    pub teacher: Option<PathBuf>,
    /// The hash of everything the stage read: recipe sections, teacher
    /// weights, tokenized data.
    pub inputs: String,
    pub objective: String,
    pub student_layers: Option<Vec<usize>>,
    pub layer_influence: Option<Vec<f64>>,
    /// What width pruning kept of the teacher; `None` for any other init.
    #[serde(default)]
    pub width: Option<WidthLineage>,
    pub parameters: u64,
    pub examples: u64,
    pub steps: u64,
    pub last_loss: f64,
    pub elapsed_s: f64,
    pub metrics: PathBuf,
    /// Data-parallel replicas the student was trained on.
    #[serde(default = "one")]
    pub replicas: u64,
    /// sha256 of the trained weights (f32, in name order), the same on every
    /// replica of a data-parallel run.
    #[serde(default)]
    pub weights_sha256: String,
    /// This call found the stage complete and did nothing.
    #[serde(default)]
    pub reused: bool,
}

fn one() -> u64 {
    1
}

/// A replica's objective that cannot be made, as the training core reports it.
pub(super) fn objective_error(error: impl std::fmt::Display) -> train::TrainError {
    train::TrainError::Objective(error.to_string())
}

impl DistillStage<'_> {
    pub fn run(self) -> Result<DistillReport, StageError> {
        check_supported(self.recipe)?;
        let backend = self.backend;
        dispatch(backend, Job { stage: self })?
    }
}

struct Job<'a> {
    stage: DistillStage<'a>,
}

impl BackendFn for Job<'_> {
    type Output = Result<DistillReport, StageError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let Job { stage } = self;
        let started_at = Instant::now();
        let recipe = stage.recipe;
        let teacher_source = recipe
            .teacher
            .as_ref()
            .map(|t| model_arg::resolve(&t.model.argument()))
            .transpose()?;
        let vocab_source = match (&teacher_source, &recipe.student.init) {
            (Some(teacher), _) => teacher.clone(),
            (None, crate::recipe::student::StudentInit::Model { model }) => {
                model_arg::resolve(&model.argument())?
            }
            (None, _) => unreachable!("check_supported requires a teacher to prune"),
        };
        let tokenizer = source::tokenizer(&vocab_source)?;
        let template = source::chat_template(&vocab_source)?;
        let prepared = data::prepare(&recipe.data, Part::Train, &tokenizer, template.as_ref())?;
        let documents = Arc::new(prepared.documents);
        let teacher_sha256 = teacher_source
            .as_ref()
            .map(|t| sha256_of(t.path()))
            .transpose()?;
        let inputs = inputs_hash(recipe, teacher_sha256.as_deref(), documents.fingerprint());

        if let Some(report) =
            state::completed(&stage.dir, &inputs, "distill", |r: &DistillReport| {
                &r.inputs
            })?
        {
            return Ok(DistillReport {
                reused: true,
                ..report
            });
        }
        let inputs_path = stage.dir.join(INPUTS_FILE);
        let topology = &stage.topology;
        let leads = topology.is_leader();
        let started = if leads {
            Some(state::check_started(
                &stage.dir,
                &inputs,
                stage.resume,
                "distill",
            )?)
        } else {
            None
        };

        let teacher = teacher_source
            .as_ref()
            .map(|s| train::load_model::<B::InnerBackend>(s.path(), &device))
            .transpose()?;
        let config = train_config(&recipe.train)?;
        let train_data = train_data(recipe, &documents);
        let (leader, lineage) = match started {
            None => (None, None),
            Some(Started::Resume {
                inputs: saved,
                checkpoint: true,
            }) => {
                let lineage: Lineage =
                    serde_json::from_value(saved["lineage"].clone()).map_err(|e| {
                        StageError::RunDir {
                            path: inputs_path.clone(),
                            message: e.to_string(),
                        }
                    })?;
                let trainer =
                    Trainer::<B>::resume(config.clone(), train_data.clone(), &stage.dir, &device)?;
                (Some(trainer), Some(lineage))
            }
            Some(_) => {
                let (student, lineage) = student::init::<B::InnerBackend, B>(
                    &recipe.student.init,
                    teacher.as_ref(),
                    &documents,
                    recipe.train.seed,
                    &device,
                )?;
                if let Some(teacher_source) = &teacher_source
                    && !recipe.student.init.prunes_teacher()
                {
                    let student_source = student_source(recipe)?;
                    let teacher_vocab =
                        teacher.as_ref().map_or(usize::MAX, |t| t.config.vocab_size);
                    let student_vocab = student.config.vocab_size;
                    source::same_tokenizer(
                        (teacher_source, teacher_vocab),
                        (&student_source, student_vocab),
                        student_vocab.min(teacher_vocab),
                    )?;
                }
                let student = match (&recipe.distill, &teacher) {
                    (
                        Some(Distill {
                            hidden: Some(_), ..
                        }),
                        Some(teacher),
                    ) => with_projection(student, teacher.config.hidden_size, &lineage),
                    _ => student,
                };
                state::write_json(
                    &inputs_path,
                    &json!({ "inputs": inputs, "lineage": lineage }),
                )?;
                let trainer =
                    Trainer::start(config.clone(), student, train_data.clone(), &stage.dir)?;
                (Some(trainer), Some(lineage))
            }
        };

        let objective_name;
        let mut training = replicas::Training {
            topology,
            config: &config,
            data: train_data,
            dir: &stage.dir,
            stage: "distill",
            progress: stage.progress,
            prepare: None,
        };
        let (trainer, summary) = match (&recipe.distill, teacher) {
            (Some(distill), Some(teacher)) if distill.teacher == TeacherMode::Cached => {
                let k = distill
                    .top_k
                    .expect("a checked recipe has top_k with a cached teacher")
                    as usize;
                let cache_dir = stage
                    .dir
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("teacher-cache");
                let spec = super::teacher_cache::spec(
                    k,
                    distill.tail_samples as usize,
                    teacher_sha256.clone().expect("a teacher was hashed"),
                    super::teacher_cache::tokenizer_sha256(&tokenizer, teacher.config.vocab_size),
                );
                match &topology.nodes {
                    // Each node caches its part; the leader merges them once all have joined.
                    Some(nodes) => {
                        super::teacher_cache::ensure_part(
                            &teacher,
                            &documents,
                            &spec,
                            &cache_dir,
                            nodes.rank,
                            nodes.world,
                            stage.progress,
                        )?;
                        let (cache_dir, documents) = (cache_dir.clone(), Arc::clone(&documents));
                        training.prepare = Some(Box::new(move || {
                            super::teacher_cache::merge(&cache_dir, &spec, &documents)
                                .map(|_| ())
                                .map_err(objective_error)
                        }));
                    }
                    None if leads => {
                        super::teacher_cache::ensure(
                            &teacher,
                            &documents,
                            spec,
                            &cache_dir,
                            stage.progress,
                        )?;
                    }
                    None => {}
                }
                drop(teacher);
                objective_name = format!(
                    "{} (alpha {}, cached top-{k})",
                    loss_name(distill.loss),
                    distill.alpha
                );
                let (divergence, alpha) = (divergence(distill.loss), distill.alpha);
                let objectives = replicas::objectives(topology, || {
                    let (cache_dir, documents) = (cache_dir.clone(), Arc::clone(&documents));
                    Box::new(move |_: &B::Device| {
                        let cache = TeacherCache::open(&cache_dir).map_err(objective_error)?;
                        CachedDistillation::new(cache, documents, divergence, alpha)
                            .map_err(objective_error)
                    })
                });
                training.run(leader, objectives)?
            }
            (Some(distill), Some(teacher)) => {
                let on_policy_name = distill
                    .on_policy
                    .map(|o| format!(", on-policy lambda {}", o.lambda))
                    .unwrap_or_default();
                objective_name = format!(
                    "{} (alpha {}{on_policy_name})",
                    loss_name(distill.loss),
                    distill.alpha
                );
                let (divergence, temperature, alpha) =
                    (divergence(distill.loss), distill.temperature, distill.alpha);
                let stage_dir = &stage.dir;
                let online = |teacher: Transformer<B::InnerBackend>, device: &B::Device| {
                    let online = OnlineDistillation::<B>::new(
                        teacher.to_device(device),
                        divergence,
                        temperature,
                        alpha,
                    )
                    .map_err(objective_error)?;
                    match distill.hidden {
                        Some(hidden) => Ok(online
                            .with_hidden(alignment(hidden, stage_dir).map_err(objective_error)?)),
                        None => Ok(online),
                    }
                };
                match &distill.on_policy {
                    Some(on_policy) => {
                        let vocab = teacher.config.vocab_size as u32;
                        let on_policy = OnPolicyConfig {
                            lambda: on_policy.lambda,
                            max_new_tokens: on_policy.max_new_tokens as usize,
                            temperature: on_policy.temperature as f32,
                            end_of_generation: (0..vocab)
                                .filter(|&id| tokenizer.is_eog(id))
                                .collect(),
                        };
                        let objectives = replicas::objectives(topology, || {
                            let (teacher, on_policy) = (teacher.clone(), on_policy.clone());
                            Box::new(move |device: &B::Device| {
                                OnPolicyDistillation::new(online(teacher, device)?, on_policy)
                                    .map_err(objective_error)
                            })
                        });
                        training.run(leader, objectives)?
                    }
                    None => {
                        let objectives = replicas::objectives(topology, || {
                            let teacher = teacher.clone();
                            Box::new(move |device: &B::Device| online(teacher, device))
                        });
                        training.run(leader, objectives)?
                    }
                }
            }
            _ => {
                objective_name = "cross_entropy".to_owned();
                let objectives =
                    replicas::objectives(topology, || Box::new(|_: &B::Device| Ok(CrossEntropy)));
                training.run(leader, objectives)?
            }
        };

        let mut model = trainer.model().valid();
        // The alignment's projection is training state, not part of the student.
        model.hidden_projection = None;
        let weights_sha256 = replicas::weights_sha256(&model);
        let student_dir = stage.dir.join(STUDENT_DIR);
        // Another rank's replica writes nothing: the leader writes the stage.
        if leads {
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
                datasets: prepared
                    .files
                    .iter()
                    .map(|f| DatasetRef {
                        name: f.display().to_string(),
                        repo_url: None,
                    })
                    .collect(),
                ..ExportMetadata::default()
            };
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
        }
        let (student_layers, layer_influence, width) = lineage.map_or((None, None, None), |l| {
            (l.layers, l.importance.map(|i| i.influence), l.width)
        });
        let report = DistillReport {
            student: student_dir,
            teacher: teacher_source.map(|s| s.path().to_owned()),
            inputs,
            objective: objective_name,
            student_layers,
            layer_influence,
            width,
            parameters: burn::module::Module::num_params(&model) as u64,
            examples: prepared.stats.kept as u64,
            steps: summary.steps,
            last_loss: summary.last_loss,
            elapsed_s: started_at.elapsed().as_secs_f64(),
            metrics: stage.dir.join("metrics.jsonl"),
            replicas: topology.peers() as u64,
            weights_sha256,
            reused: false,
        };
        if leads {
            state::write_json(&stage.dir.join(REPORT_FILE), &report)?;
        }
        Ok(report)
    }
}

/// The student with a projection to the teacher's hidden width when its own
/// differs, for hidden-state alignment. A width-pruned student's hidden
/// channel `i` is the teacher's channel `kept[i]`, so its projection starts
/// as that selection; any other starts at random.
fn with_projection<B: AutodiffBackend>(
    student: Transformer<B>,
    teacher_width: usize,
    lineage: &Lineage,
) -> Transformer<B> {
    let width = student.config.hidden_size;
    if width == teacher_width {
        return student;
    }
    let selection = lineage.width.as_ref().map(|pruned| {
        let mut weight = vec![0.0f32; width * teacher_width];
        for (i, &channel) in pruned.hidden.iter().enumerate() {
            weight[i * teacher_width + channel] = 1.0;
        }
        let device = student.embed_tokens.weight.device();
        burn::tensor::Tensor::from_data(
            burn::tensor::TensorData::new(weight, [width, teacher_width]),
            &device,
        )
    });
    student.with_hidden_projection(teacher_width, selection)
}

/// The recipe's hidden-state alignment, with the teacher layers the student's
/// stand for as the stage's `inputs.json` records them (written by the leader
/// before any replica builds its objective).
fn alignment(hidden: Hidden, stage_dir: &Path) -> Result<HiddenAlignment, StageError> {
    let path = stage_dir.join(INPUTS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| StageError::RunDir {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let saved: serde_json::Value = serde_json::from_str(&text).map_err(|e| StageError::RunDir {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let lineage: Lineage =
        serde_json::from_value(saved["lineage"].clone()).map_err(|e| StageError::RunDir {
            path,
            message: e.to_string(),
        })?;
    Ok(HiddenAlignment {
        loss: match hidden.loss {
            HiddenLossKind::Mse => HiddenLoss::Mse,
            HiddenLossKind::Cosine => HiddenLoss::Cosine,
        },
        weight: hidden.weight,
        teacher_layers: lineage.layers,
    })
}

/// Recipe combinations the stage cannot run yet, refused before any work.
fn check_supported(recipe: &Recipe) -> Result<(), StageError> {
    let fail = |m: &str| Err(StageError::Unsupported(m.to_owned()));
    if recipe.teacher.is_none() && recipe.student.init.prunes_teacher() {
        return fail(
            "[student.init]: pruning starts from the teacher's weights; add a [teacher] section",
        );
    }
    if let Some(distill) = &recipe.distill {
        if distill.teacher == TeacherMode::Online && distill.top_k.is_some() {
            return fail(
                "[distill] top_k: the online teacher uses its whole distribution; top_k applies to teacher = \"cached\"",
            );
        }
    }
    if recipe.train.schedule == Schedule::Linear && recipe.train.min_lr > 0.0 {
        return fail(
            "[train] min_lr: the linear schedule decays to 0; set min_lr = 0 or use schedule = \"cosine\"",
        );
    }
    Ok(())
}

pub fn train_config(train: &Train) -> Result<TrainConfig, StageError> {
    let Optimizer::Adamw {
        betas,
        eps,
        weight_decay,
    } = train.optimizer;
    let schedule = match train.schedule {
        Schedule::Constant => ScheduleKind::Constant,
        Schedule::Linear => ScheduleKind::Linear,
        Schedule::Cosine => ScheduleKind::Cosine {
            min_lr_ratio: train.min_lr / train.lr,
        },
    };
    let config = TrainConfig {
        steps: train.steps,
        grad_accum: train.grad_accum,
        lr: train.lr,
        schedule,
        warmup_steps: train.warmup_steps,
        optimizer: AdamWConfig {
            beta1: betas[0],
            beta2: betas[1],
            eps,
            weight_decay,
        },
        clip_norm: train.clip_norm,
        seed: train.seed,
        checkpoint_every: train.checkpoint_every,
        keep_checkpoints: train.keep_checkpoints as usize,
        freeze: train.freeze.clone(),
        on_non_finite: train.on_non_finite,
        precision: match train.dtype {
            TrainDtype::F32 => Precision::F32,
            TrainDtype::Bf16 => Precision::Bf16,
        },
    };
    config.validate()?;
    Ok(config)
}

/// The recipe's training data, in the order its seed gives.
pub(super) fn train_data(recipe: &Recipe, documents: &Arc<Documents>) -> TrainData {
    TrainData {
        documents: Arc::clone(documents),
        loader: LoaderConfig {
            batch_size: recipe.train.batch_size as usize,
            seq_len: recipe.data.max_length as usize,
            packing: recipe.data.packing,
            order: Order {
                shuffle: true,
                seed: recipe.train.seed,
                shard: Shard::SINGLE,
            },
            pad_token: 0,
            epochs: None,
        },
    }
}

pub(super) fn divergence(loss: Loss) -> Divergence {
    match loss {
        Loss::ForwardKl => Divergence::ForwardKl,
        Loss::ReverseKl => Divergence::ReverseKl,
        Loss::Jsd { beta } => Divergence::Jsd { beta },
        Loss::SkewKl { alpha } => Divergence::SkewForwardKl { alpha },
        Loss::Tv => Divergence::TotalVariation,
    }
}

pub(super) fn loss_name(loss: Loss) -> String {
    match loss {
        Loss::ForwardKl => "forward_kl".to_owned(),
        Loss::ReverseKl => "reverse_kl".to_owned(),
        Loss::Jsd { beta } => format!("jsd (beta {beta})"),
        Loss::SkewKl { alpha } => format!("skew_kl (alpha {alpha})"),
        Loss::Tv => "tv".to_owned(),
    }
}

fn student_source(recipe: &Recipe) -> Result<ModelSource, StageError> {
    match &recipe.student.init {
        crate::recipe::student::StudentInit::Model { model } => {
            Ok(model_arg::resolve(&model.argument())?)
        }
        _ => unreachable!("only an existing model is a student source of its own"),
    }
}

pub(super) fn name_of(source: &ModelSource) -> String {
    let path = source.path();
    let stem = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    stem.map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// sha256 over the recipe sections this stage reads, the teacher's bytes and
/// the tokenized data.
fn inputs_hash(recipe: &Recipe, teacher_sha256: Option<&str>, data_fingerprint: u64) -> String {
    let mut train = serde_json::to_value(&recipe.train).expect("serializable");
    train.as_object_mut().expect("a table").remove("backend");
    let sections = json!({
        "teacher": recipe.teacher,
        "student": recipe.student,
        "data": recipe.data,
        "distill": recipe.distill,
        "train": train,
        "data_fingerprint": data_fingerprint,
    });
    let mut hasher = Sha256::new();
    hasher.update(sections.to_string().as_bytes());
    hasher.update(teacher_sha256.unwrap_or_default().as_bytes());
    format!("{:x}", hasher.finalize())
}
