//! The human summary `decant recipe check` prints: what each stage will do.

use std::fmt::Write;

use super::Recipe;
use super::data::DataFiles;
use super::distill::{HiddenLoss, Loss, TeacherMode};
use super::export::Format;
use super::paths::ModelRef;
use super::publish::Registry;
use super::qat::Reference;
use super::student::StudentInit;
use super::train::{Dtype, Optimizer, Schedule};

pub fn render_text(recipe: &Recipe) -> String {
    let mut out = String::new();
    let mut line = |stage: &str, text: String| {
        let _ = writeln!(out, "{stage:<9} {text}");
    };
    if let Some(teacher) = &recipe.teacher {
        line("teacher", model(&teacher.model));
    }
    line("student", student(&recipe.student.init));
    let data = &recipe.data;
    let eval = match (&data.eval, data.held_out) {
        (Some(eval), _) => format!("eval {}", files(eval)),
        (None, Some(fraction)) => format!("{:.1}% held out", fraction * 100.0),
        (None, None) => "no eval split".to_owned(),
    };
    line(
        "data",
        format!(
            "train {}, {eval}; {} records, max length {} (truncation {}), packing {}",
            files(&data.train),
            data.format,
            data.max_length,
            data.truncation,
            on_off(data.packing)
        ),
    );
    if let Some(distill) = &recipe.distill {
        let teacher = match (distill.teacher, distill.top_k) {
            (TeacherMode::Cached, Some(k)) if distill.tail_samples > 0 => {
                format!(
                    "cached teacher, top-{k} and {} tail samples per unit of rest mass",
                    distill.tail_samples
                )
            }
            (TeacherMode::Cached, Some(k)) => format!("cached teacher, top-{k}"),
            (_, Some(k)) => format!("online teacher, top-{k}"),
            (_, None) => "online teacher, full vocabulary".to_owned(),
        };
        let mut text = format!(
            "{}, T={}, CE weight {}, {teacher}",
            loss(distill.loss),
            distill.temperature,
            distill.alpha
        );
        if let Some(hidden) = &distill.hidden {
            let loss = match hidden.loss {
                HiddenLoss::Mse => "MSE",
                HiddenLoss::Cosine => "cosine",
            };
            let _ = write!(text, ", hidden-state {loss} x{}", hidden.weight);
        }
        if let Some(on_policy) = &distill.on_policy {
            let _ = write!(text, ", on-policy lambda {}", on_policy.lambda);
        }
        line("distill", text);
    }
    let train = &recipe.train;
    let Optimizer::Adamw {
        betas,
        eps,
        weight_decay,
    } = train.optimizer;
    let schedule = match train.schedule {
        Schedule::Constant => "constant",
        Schedule::Linear => "linear",
        Schedule::Cosine => "cosine",
    };
    line(
        "train",
        format!(
            "{} steps, AdamW (betas {}/{}, eps {eps:e}, decay {weight_decay}), lr {:e} {schedule} \
             after {} warmup steps, batch {} x {} accumulated, clip {}, seed {}, {} x{} {}, \
             checkpoint every {} (keep {})",
            train.steps,
            betas[0],
            betas[1],
            train.lr,
            train.warmup_steps,
            train.batch_size,
            train.grad_accum,
            train
                .clip_norm
                .map_or_else(|| "off".to_owned(), |c| c.to_string()),
            train.seed,
            train.backend,
            train.devices,
            match (train.dtype, recipe.qat.is_some()) {
                (Dtype::F32, _) => "f32",
                (Dtype::Bf16, false) => "bf16",
                (Dtype::Bf16, true) => "bf16 (QAT in f32)",
            },
            train.checkpoint_every,
            train.keep_checkpoints
        ),
    );
    if !train.freeze.is_empty() {
        line("", format!("frozen: {}", train.freeze.join(", ")));
    }
    if let Some(qat) = &recipe.qat {
        line(
            "qat",
            format!(
                "{}{}, {} steps, lr {:e}, distilled from the {}",
                qat.mix,
                if qat.pure { " (pure)" } else { "" },
                qat.steps,
                qat.lr,
                match qat.reference {
                    Reference::Teacher => "teacher",
                    Reference::Student => "full-precision student",
                }
            ),
        );
    }
    let export = &recipe.export;
    let formats: Vec<String> = export
        .formats
        .iter()
        .map(|format| match format {
            Format::Gguf => {
                let types: Vec<&str> = export.types.iter().map(|t| t.name()).collect();
                format!(
                    "gguf ({}{})",
                    types.join(", "),
                    if export.pure { ", pure" } else { "" }
                )
            }
            Format::Safetensors => "safetensors".to_owned(),
        })
        .collect();
    line(
        "export",
        format!("{} as '{}'", formats.join(" + "), export.name),
    );
    if let Some(eval) = &recipe.eval {
        let metrics: Vec<&str> = eval.metrics.iter().map(|m| m.name()).collect();
        let mut text = metrics.join(", ");
        if let Some(data) = &eval.data {
            let _ = write!(text, " on {}", files(data));
        }
        if let Some(cascade) = &eval.cascade {
            let _ = write!(text, "; cascade at {} accuracy", cascade.target_accuracy);
        }
        line("eval", text);
    }
    if let Some(publish) = &recipe.publish {
        let registry = match &publish.registry {
            Registry::File { dir } => format!("file registry {}", dir.display()),
            Registry::Mlflow { url } => format!("MLflow at {url}"),
            Registry::Oci {
                registry,
                repository,
                tag,
            } => format!("OCI {registry}/{repository}:{tag}"),
            Registry::HuggingFace { repo } => format!("Hugging Face hf://{repo}"),
        };
        line("publish", format!("'{}' to {registry}", publish.model_name));
    }
    out
}

fn model(model: &ModelRef) -> String {
    match model {
        ModelRef::Hub { .. } => format!("{} (from the Hugging Face cache)", model.argument()),
        ModelRef::Path { .. } => model.argument(),
    }
}

fn student(init: &StudentInit) -> String {
    match init {
        StudentInit::Layers { layers } => {
            let layers: Vec<String> = layers.iter().map(u64::to_string).collect();
            format!(
                "teacher layers {} ({} kept)",
                layers.join(","),
                layers.len()
            )
        }
        StudentInit::Depth {
            keep,
            calibration_samples,
        } => format!(
            "the teacher's {keep} most important layers ({calibration_samples} calibration examples)"
        ),
        StudentInit::Width {
            ffn,
            heads,
            hidden,
            calibration_samples,
        } => {
            let widths: Vec<String> = [("ffn", ffn), ("heads", heads), ("hidden", hidden)]
                .into_iter()
                .filter_map(|(name, width)| width.map(|w| format!("{name} {w}")))
                .collect();
            format!(
                "the teacher pruned to {} ({calibration_samples} calibration examples)",
                widths.join(", ")
            )
        }
        StudentInit::Model { model: m } => format!("starts from {}", model(m)),
    }
}

fn files(files: &DataFiles) -> String {
    let count = files.files.len();
    format!(
        "{} ({count} file{})",
        files.patterns.join(", "),
        if count == 1 { "" } else { "s" }
    )
}

fn loss(loss: Loss) -> String {
    match loss {
        Loss::ForwardKl => "forward KL".to_owned(),
        Loss::ReverseKl => "reverse KL".to_owned(),
        Loss::Jsd { beta } => format!("generalized JSD (beta {beta})"),
        Loss::SkewKl { alpha } => format!("skew KL (alpha {alpha})"),
        Loss::Tv => "total variation".to_owned(),
    }
}

fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}
