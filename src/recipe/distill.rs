//! `[distill]`: the loss against the teacher and where its logits come from.

use serde::Serialize;

use datasets::logit_cache::codec::MAX_TAIL;

use super::reader::{Table, Value, above_zero, count, number_in, one_of, positive};

/// The divergence between teacher and student distributions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Loss {
    /// KL(teacher ‖ student): mode-covering, the classic (Hinton) choice.
    ForwardKl,
    /// KL(student ‖ teacher): mode-seeking (MiniLLM).
    ReverseKl,
    /// Generalized Jensen–Shannon (GKD): `beta` interpolates the mixture
    /// between the two distributions.
    Jsd { beta: f64 },
    /// Skew KL (DistiLLM): KL(teacher ‖ alpha·teacher + (1−alpha)·student).
    SkewKl { alpha: f64 },
    /// Total variation distance.
    Tv,
}

/// Where teacher logits come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TeacherMode {
    /// The teacher runs forward in the same process, on every batch.
    Online,
    /// Top-k log-probabilities written once by the teacher-cache stage.
    Cached,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenLoss {
    Mse,
    Cosine,
}

/// Hidden-state alignment, with a learned projection where widths differ.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Hidden {
    pub loss: HiddenLoss,
    pub weight: f64,
}

/// On-policy distillation (GKD's λ): that fraction of batches are student
/// generations scored by the teacher.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OnPolicy {
    pub lambda: f64,
    pub max_new_tokens: u64,
    pub temperature: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Distill {
    pub loss: Loss,
    /// Softmax temperature of both distributions; gradients are scaled by T².
    pub temperature: f64,
    /// Weight of cross-entropy on the labels: loss = alpha·CE + (1−alpha)·KD.
    pub alpha: f64,
    /// Keep only the teacher's top-k tokens per position (required when cached).
    pub top_k: Option<u64>,
    /// Ids the cache draws from the teacher's distribution outside the top-k,
    /// per unit of the mass there (a position gets round(N × rest)), to teach
    /// forward KL the tail's shape (0: the rest is one bucket).
    pub tail_samples: u64,
    pub teacher: TeacherMode,
    pub hidden: Option<Hidden>,
    pub on_policy: Option<OnPolicy>,
}

const LOSSES: [&str; 5] = ["forward_kl", "reverse_kl", "jsd", "skew_kl", "tv"];

pub fn read(mut table: Table<'_, '_>) -> Option<Distill> {
    let loss = match table.table("loss") {
        Some(loss) => read_loss(loss),
        None => (!table.has("loss")).then_some(Loss::ForwardKl),
    };
    let temperature = table.optional("temperature", above_zero).unwrap_or(1.0);
    let alpha = table.optional("alpha", number_in(0.0, 1.0)).unwrap_or(0.5);
    let top_k = table.optional("top_k", positive);
    let tail_samples = table.optional("tail_samples", tail_per_mass).unwrap_or(0);
    let teacher = table
        .optional("teacher", one_of(&["online", "cached"]))
        .map(|mode| match mode {
            "online" => TeacherMode::Online,
            _ => TeacherMode::Cached,
        })
        .unwrap_or(TeacherMode::Online);
    let hidden = table.table("hidden").and_then(read_hidden);
    let on_policy = table.table("on_policy").and_then(read_on_policy);
    if teacher == TeacherMode::Cached && top_k.is_none() && !table.has("top_k") {
        conflict(
            &table,
            "teacher",
            "a cached teacher stores only its top-k tokens per position; set `top_k` (64 keeps \
             the cache under 100 bytes per token)",
        );
    }
    if teacher == TeacherMode::Online && table.has("tail_samples") {
        conflict(
            &table,
            "tail_samples",
            "the online teacher gives its whole distribution; tail samples apply to \
             `teacher = \"cached\"`",
        );
    }
    if teacher == TeacherMode::Cached
        && tail_samples > 0
        && loss.as_ref().is_some_and(|l| *l != Loss::ForwardKl)
    {
        conflict(
            &table,
            "tail_samples",
            "tail samples teach forward KL only; the other losses compare the top-k and rest \
             buckets, so set `loss = { kind = \"forward_kl\" }` or leave tail_samples out",
        );
    }
    if teacher == TeacherMode::Cached && temperature != 1.0 {
        conflict(
            &table,
            "temperature",
            "a cached teacher stores its distribution at temperature 1; set temperature = 1 or \
             use `teacher = \"online\"`",
        );
    }
    if teacher == TeacherMode::Cached && table.has("hidden") {
        conflict(
            &table,
            "hidden",
            "hidden-state alignment compares the teacher's hidden states, which a cache of its \
             logits does not hold; use `teacher = \"online\"`",
        );
    }
    if teacher == TeacherMode::Cached && table.has("on_policy") {
        conflict(
            &table,
            "on_policy",
            "on-policy batches are student generations the teacher must score as they are made; \
             use `teacher = \"online\"`",
        );
    }
    table.finish();
    Some(Distill {
        loss: loss?,
        temperature,
        alpha,
        top_k,
        tail_samples,
        teacher,
        hidden,
        on_policy,
    })
}

/// Reports `key` of the `[distill]` table as conflicting with a cached or
/// online teacher: at the key, named as a section (`[distill.hidden]`) when it
/// is one, as a key (`` `distill.top_k` ``) otherwise.
fn tail_per_mass(value: &Value<'_>) -> Result<u64, String> {
    let tail = count(value)?;
    if tail > MAX_TAIL as u64 {
        return Err(format!(
            "expected at most {MAX_TAIL} tail samples per unit of rest mass, found {tail}"
        ));
    }
    Ok(tail)
}

fn conflict(table: &Table<'_, '_>, key: &str, message: &str) {
    let path = format!("{}.{key}", table.path());
    let collector = table.collector();
    let label = if matches!(key, "hidden" | "on_policy") {
        format!("[{path}]")
    } else {
        format!("`{path}`")
    };
    collector.error(collector.span_of(&path), format!("{label}: {message}"));
}

fn read_loss(mut table: Table<'_, '_>) -> Option<Loss> {
    let loss = match table.kind(&LOSSES) {
        Some("forward_kl") => Some(Loss::ForwardKl),
        Some("reverse_kl") => Some(Loss::ReverseKl),
        Some("jsd") => Some(Loss::Jsd {
            beta: table.optional("beta", number_in(0.0, 1.0)).unwrap_or(0.5),
        }),
        Some("skew_kl") => Some(Loss::SkewKl {
            alpha: table.optional("alpha", number_in(0.0, 1.0)).unwrap_or(0.1),
        }),
        Some(_) => Some(Loss::Tv),
        None => None,
    };
    table.finish();
    loss
}

fn read_hidden(mut table: Table<'_, '_>) -> Option<Hidden> {
    let loss = table.kind(&["mse", "cosine"]).map(|kind| match kind {
        "mse" => HiddenLoss::Mse,
        _ => HiddenLoss::Cosine,
    });
    let weight = table.optional("weight", above_zero).unwrap_or(1.0);
    table.finish();
    Some(Hidden {
        loss: loss?,
        weight,
    })
}

fn read_on_policy(mut table: Table<'_, '_>) -> Option<OnPolicy> {
    let lambda = table.required("lambda", number_in(0.0, 1.0));
    let max_new_tokens = table.optional("max_new_tokens", positive).unwrap_or(256);
    let temperature = table.optional("temperature", above_zero).unwrap_or(1.0);
    table.finish();
    Some(OnPolicy {
        lambda: lambda?,
        max_new_tokens,
        temperature,
    })
}
