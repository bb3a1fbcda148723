//! `[train]`: optimizer, schedule, batch, checkpoints and where it runs.

use serde::{Serialize, Serializer};
use train::backend::{BackendError, BackendKind};
use train::trainer::NonFinitePolicy;

use super::reader::{Table, above_zero, count, non_negative, number_in, one_of, positive, string};

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// AdamW with decoupled weight decay, none on norms and biases.
    Adamw {
        betas: [f64; 2],
        eps: f64,
        weight_decay: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    F32,
    Bf16,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Train {
    pub optimizer: Optimizer,
    pub lr: f64,
    pub schedule: Schedule,
    /// The learning rate the linear and cosine schedules decay to.
    pub min_lr: f64,
    pub warmup_steps: u64,
    /// Optimizer steps.
    pub steps: u64,
    /// Sequences per optimizer step on all devices together, before accumulation.
    pub batch_size: u64,
    pub grad_accum: u64,
    /// Global gradient-norm clip; `None` does not clip (`clip_norm = 0`).
    pub clip_norm: Option<f64>,
    pub seed: u64,
    pub checkpoint_every: u64,
    pub keep_checkpoints: u64,
    #[serde(serialize_with = "by_name")]
    pub backend: BackendKind,
    pub devices: u64,
    /// Glob patterns over parameter names (`token_embd.*`, `blk.0.*`) not trained.
    pub freeze: Vec<String>,
    pub dtype: Dtype,
    /// `"stop"` (the default) or `"skip"` a step whose loss or gradient is NaN/Inf.
    pub on_non_finite: NonFinitePolicy,
}

fn by_name<S: Serializer>(kind: &BackendKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.name())
}

pub fn read(mut table: Table<'_, '_>) -> Option<Train> {
    let optimizer = match table.table("optimizer") {
        Some(optimizer) => read_optimizer(optimizer),
        None => (!table.has("optimizer")).then_some(Optimizer::Adamw {
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.01,
        }),
    };
    let lr = table.required("lr", above_zero);
    let schedule = table
        .optional("schedule", one_of(&["constant", "linear", "cosine"]))
        .map(|name| match name {
            "constant" => Schedule::Constant,
            "linear" => Schedule::Linear,
            _ => Schedule::Cosine,
        })
        .unwrap_or(Schedule::Cosine);
    let min_lr = table.optional("min_lr", non_negative).unwrap_or(0.0);
    let warmup_steps = table.optional("warmup_steps", count).unwrap_or(0);
    let steps = table.required("steps", positive);
    let batch_size = table.optional("batch_size", positive).unwrap_or(8);
    let grad_accum = table.optional("grad_accum", positive).unwrap_or(1);
    let clip_norm = table.optional("clip_norm", non_negative).unwrap_or(1.0);
    let seed = table.optional("seed", count).unwrap_or(0);
    let checkpoint_every = table.optional("checkpoint_every", positive).unwrap_or(500);
    let keep_checkpoints = table.optional("keep_checkpoints", positive).unwrap_or(3);
    let backend = read_backend(&mut table);
    let devices = table.optional("devices", positive).unwrap_or(1);
    let freeze = table
        .list("freeze", pattern, |patterns| {
            Ok(patterns.into_iter().map(|p| p.into_inner()).collect())
        })
        .unwrap_or_default();
    let dtype = table
        .optional("dtype", one_of(&["f32", "bf16"]))
        .map(|name| {
            if name == "f32" {
                Dtype::F32
            } else {
                Dtype::Bf16
            }
        })
        .unwrap_or(Dtype::F32);
    let on_non_finite = table
        .optional("on_non_finite", one_of(&["stop", "skip"]))
        .map(|name| {
            if name == "skip" {
                NonFinitePolicy::Skip
            } else {
                NonFinitePolicy::Stop
            }
        })
        .unwrap_or_default();

    let out = table.collector();
    if let (Some(lr), true) = (lr, min_lr > 0.0)
        && min_lr >= lr
    {
        out.error(
            out.span_of(&format!("{}.min_lr", table.path())),
            format!(
                "`{}.min_lr`: {min_lr} is not below `lr` = {lr}",
                table.path()
            ),
        );
    }
    if let Some(steps) = steps {
        if warmup_steps > steps {
            out.error(
                out.span_of(&format!("{}.warmup_steps", table.path())),
                format!(
                    "`{}.warmup_steps`: {warmup_steps} warmup steps are more than the {steps} steps \
                     of the run",
                    table.path()
                ),
            );
        }
        if checkpoint_every > steps && table.has("checkpoint_every") {
            out.warn(
                out.span_of(&format!("{}.checkpoint_every", table.path())),
                format!(
                    "`{}.checkpoint_every`: {checkpoint_every} is more than the {steps} steps; only \
                     the final checkpoint is written",
                    table.path()
                ),
            );
        }
    }
    if batch_size % devices != 0 {
        out.error(
            out.span_of(&format!("{}.batch_size", table.path())),
            format!(
                "`{}.batch_size`: {batch_size} sequences cannot be split evenly over {devices} devices",
                table.path()
            ),
        );
    }
    table.finish();
    Some(Train {
        optimizer: optimizer?,
        lr: lr?,
        schedule,
        min_lr,
        warmup_steps,
        steps: steps?,
        batch_size,
        grad_accum,
        clip_norm: (clip_norm > 0.0).then_some(clip_norm),
        seed,
        checkpoint_every,
        keep_checkpoints,
        backend: backend?,
        devices,
        freeze,
        dtype,
        on_non_finite,
    })
}

/// A backend this binary was built without is valid in a recipe (it may be
/// meant for another machine) and worth a warning; `decant run` refuses it.
fn read_backend(table: &mut Table<'_, '_>) -> Option<BackendKind> {
    let Some(value) = table.value("backend") else {
        return Some(BackendKind::Cpu);
    };
    let name = match string(value) {
        Ok(name) => name,
        Err(message) => {
            table.error_at(value.span(), "backend", message);
            return None;
        }
    };
    match name.parse::<BackendKind>() {
        Ok(kind) => Some(kind),
        Err(BackendError::NotCompiledIn(kind)) => {
            table.collector().warn(
                value.span(),
                format!(
                    "`{}.backend`: {}",
                    table.path(),
                    BackendError::NotCompiledIn(kind)
                ),
            );
            Some(kind)
        }
        Err(err) => {
            table.error_at(value.span(), "backend", err);
            None
        }
    }
}

fn read_optimizer(mut table: Table<'_, '_>) -> Option<Optimizer> {
    // The only optimizer so far: `kind` may be left out.
    let kind = table.kind_or(&["adamw"], "adamw");
    let betas = table
        .list("betas", number_in(0.0, 1.0), |betas| match betas[..] {
            [ref b1, ref b2] if *b1.get_ref() < 1.0 && *b2.get_ref() < 1.0 => {
                Ok([*b1.get_ref(), *b2.get_ref()])
            }
            [_, _] => Err("each beta must be below 1".to_owned()),
            _ => Err(format!(
                "expected two betas [beta1, beta2], found {}",
                betas.len()
            )),
        })
        .unwrap_or([0.9, 0.999]);
    let eps = table.optional("eps", above_zero).unwrap_or(1e-8);
    let weight_decay = table.optional("weight_decay", non_negative).unwrap_or(0.01);
    table.finish();
    kind?;
    Some(Optimizer::Adamw {
        betas,
        eps,
        weight_decay,
    })
}

fn pattern(value: &super::reader::Value<'_>) -> Result<String, String> {
    let text = string(value)?;
    glob::Pattern::new(&text)
        .map(|_| text.clone())
        .map_err(|err| format!("'{text}' is not a glob pattern: {err}"))
}
