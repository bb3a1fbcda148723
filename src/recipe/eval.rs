//! `[eval]`: what is measured on the student, on which data.

use std::path::Path;

use serde::Serialize;

use super::data::{DataFiles, data_files};
use super::reader::{Table, one_of, positive};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Perplexity on the evaluation text.
    Ppl,
    /// Mean KL divergence from the teacher's next-token distribution.
    Kld,
    /// How often the student's top token is the teacher's.
    Top1,
    /// Whole-answer (and per JSON field) exact match of generated replies.
    Exact,
    /// Tokens accepted per verification step when the student drafts for the teacher.
    Draft,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Ppl => "ppl",
            Metric::Kld => "kld",
            Metric::Top1 => "top1",
            Metric::Exact => "exact",
            Metric::Draft => "draft",
        }
    }

    /// Whether the metric compares the student with the teacher.
    pub fn needs_teacher(self) -> bool {
        matches!(self, Metric::Kld | Metric::Top1 | Metric::Draft)
    }
}

const METRICS: [&str; 5] = ["ppl", "kld", "top1", "exact", "draft"];

/// Routing for a serving cascade: the student answers when its confidence
/// clears the threshold that keeps its exact-match at `target_accuracy`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Cascade {
    pub target_accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Eval {
    pub metrics: Vec<Metric>,
    /// Evaluation files; without them, `[data]`'s eval files or held-out part.
    pub data: Option<DataFiles>,
    /// Longest generated answer for `exact`.
    pub max_new_tokens: u64,
    /// Evaluate the first N examples only.
    pub max_examples: Option<u64>,
    pub cascade: Option<Cascade>,
}

pub fn read(mut table: Table<'_, '_>, base: &Path, has_teacher: bool) -> Option<Eval> {
    let metrics = table.list("metrics", one_of(&METRICS), |names| {
        if names.is_empty() {
            return Err(format!(
                "expected at least one metric ({})",
                METRICS.join(", ")
            ));
        }
        let mut metrics = Vec::new();
        for name in names {
            let metric = parse_metric(name.get_ref());
            if metrics.contains(&metric) {
                return Err(format!("'{}' is listed twice", metric.name()));
            }
            metrics.push(metric);
        }
        Ok(metrics)
    });
    let data = data_files(&mut table, "data", base, false);
    let max_new_tokens = table.optional("max_new_tokens", positive).unwrap_or(256);
    let max_examples = table.optional("max_examples", positive);
    let cascade = table.table("cascade").and_then(read_cascade);
    let out = table.collector();
    if let Some(metrics) = &metrics
        && !has_teacher
        && let Some(metric) = metrics.iter().find(|metric| metric.needs_teacher())
    {
        out.error(
            out.span_of(&format!("{}.metrics", table.path())),
            format!(
                "`{}.metrics`: '{}' compares the student with the teacher, and the recipe has \
                 no [teacher]",
                table.path(),
                metric.name()
            ),
        );
    }
    let metrics = metrics.unwrap_or_else(|| match has_teacher {
        true => vec![Metric::Ppl, Metric::Kld, Metric::Top1],
        false => vec![Metric::Ppl],
    });
    if table.has("cascade") && !metrics.contains(&Metric::Exact) {
        out.error(
            out.span_of(&format!("{}.cascade", table.path())),
            format!(
                "[{}.cascade]: the cascade threshold is chosen by exact-match; add \"exact\" to \
                 `metrics`",
                table.path()
            ),
        );
    }
    table.finish();
    Some(Eval {
        metrics,
        data,
        max_new_tokens,
        max_examples,
        cascade,
    })
}

fn parse_metric(name: &str) -> Metric {
    match name {
        "ppl" => Metric::Ppl,
        "kld" => Metric::Kld,
        "top1" => Metric::Top1,
        "exact" => Metric::Exact,
        _ => Metric::Draft,
    }
}

fn read_cascade(mut table: Table<'_, '_>) -> Option<Cascade> {
    let target_accuracy = table.required("target_accuracy", |value| {
        let accuracy = super::reader::number(value)?;
        if accuracy > 0.0 && accuracy <= 1.0 {
            Ok(accuracy)
        } else {
            Err(format!("{accuracy} is not an accuracy in (0, 1]"))
        }
    });
    table.finish();
    Some(Cascade {
        target_accuracy: target_accuracy?,
    })
}
