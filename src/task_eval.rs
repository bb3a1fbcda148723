//! Task evaluation on chat examples with gold answers: the model generates the
//! last assistant turn greedily from the conversation before it, and the answer
//! is scored whole (exact match) and, where the gold answer is a JSON object,
//! as JSON (does it parse) and field by field.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use datasets::{ChatTemplate, EncodeOptions, Example, Record, Role, Tokenizer};
use serde::Serialize;
use serde_json::Value;
use train::Transformer;
use train::eval::{DraftFigure, DraftTally, draft_matches};
use train::generate::{StopReason, generate_greedy};
use train::model::InputError;

#[derive(Debug, thiserror::Error)]
pub enum TaskEvalError {
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    #[error("{location}: {message}")]
    Example { location: String, message: String },
    #[error("{0}: has no example to evaluate")]
    Empty(String),
}

/// One example's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The record it came from (file and line).
    pub location: String,
    pub gold: String,
    pub prediction: String,
    pub exact: bool,
    /// Whether the prediction parses as JSON; `None` when the gold answer is no
    /// JSON object.
    pub json_valid: Option<bool>,
    /// Gold field → whether the prediction has it with the same value.
    pub fields: BTreeMap<String, bool>,
    /// Mean natural log-probability of the answer's tokens (its end included):
    /// the confidence a cascade thresholds.
    pub mean_logprob: f64,
    pub tokens: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskReport {
    pub examples: usize,
    pub exact_match: f64,
    /// Examples whose gold answer is a JSON object.
    pub json_examples: usize,
    /// Share of those whose prediction parses as JSON.
    pub json_valid: Option<f64>,
    /// Share of all gold fields predicted exactly (micro average).
    pub field_accuracy: Option<f64>,
    pub per_field: BTreeMap<String, f64>,
    /// Generated tokens per second of generation, prompt processing included.
    pub tokens_per_s: Option<f64>,
    pub predictions: Vec<Prediction>,
}

/// How chat examples become prompts and how long answers may grow.
#[derive(Clone, Copy)]
pub struct ChatTask<'a> {
    pub tokenizer: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    /// Tokens generated at most per answer.
    pub max_new_tokens: usize,
}

/// Evaluates `model` on `records` (chat examples ending in the gold assistant
/// turn), generating at most `task.max_new_tokens` per answer. `on_example` sees
/// each prediction as it is made.
pub fn evaluate<B: Backend>(
    model: &Transformer<B>,
    task: &ChatTask<'_>,
    records: impl IntoIterator<Item = datasets::Result<Record>>,
    origin: &str,
    mut on_example: impl FnMut(&Prediction),
) -> Result<TaskReport, TaskEvalError> {
    let ChatTask {
        tokenizer,
        template,
        max_new_tokens,
    } = *task;
    let mut predictions = Vec::new();
    let mut generating = std::time::Duration::ZERO;
    for record in records {
        let example = ChatExample::of(record?, tokenizer, template)?;
        let (location, prompt) = (example.location, example.prompt);
        let fail = |message: &str| TaskEvalError::Example {
            location: location.clone(),
            message: message.to_owned(),
        };
        let started = std::time::Instant::now();
        let generation = generate_greedy(
            model,
            &prompt,
            max_new_tokens,
            |id| tokenizer.is_eog(id),
            |_| {},
        )
        .map_err(|e| fail(&e.to_string()))?;
        generating += started.elapsed();
        let text = tokenizer.decode(&generation.tokens, false)?;
        let mean_logprob = if generation.logprobs.is_empty() {
            0.0
        } else {
            generation
                .logprobs
                .iter()
                .map(|&l| f64::from(l))
                .sum::<f64>()
                / generation.logprobs.len() as f64
        };
        let prediction = score(
            location,
            &example.gold,
            text,
            mean_logprob,
            generation.tokens.len(),
        );
        on_example(&prediction);
        predictions.push(prediction);
    }
    if predictions.is_empty() {
        return Err(TaskEvalError::Empty(origin.to_owned()));
    }
    let generated: usize = predictions.iter().map(|p| p.tokens).sum();
    let seconds = generating.as_secs_f64();
    Ok(TaskReport {
        tokens_per_s: (seconds > 0.0).then(|| generated as f64 / seconds),
        ..summarize(predictions)
    })
}

/// A chat example ready to generate from: the conversation before its last
/// (gold) assistant turn, rendered with the generation prompt and tokenized
/// as training renders it.
struct ChatExample {
    location: String,
    prompt: Vec<u32>,
    gold: String,
}

impl ChatExample {
    fn of(
        record: Record,
        tokenizer: &Tokenizer,
        template: &ChatTemplate,
    ) -> Result<Self, TaskEvalError> {
        let location = record.location.to_string();
        let fail = |message: &str| TaskEvalError::Example {
            location: location.clone(),
            message: message.to_owned(),
        };
        let Example::Chat(messages) = &record.example else {
            return Err(fail(
                "is plain text; task evaluation needs conversations whose last turn is the gold \
                 assistant answer (messages, or prompt and completion)",
            ));
        };
        let Some((gold, context)) = messages
            .split_last()
            .filter(|(m, _)| m.role == Role::Assistant)
        else {
            return Err(fail("does not end with an assistant turn, the gold answer"));
        };
        let prompt = chat_prompt(tokenizer, template, context)?;
        Ok(Self {
            gold: gold.content.clone(),
            location,
            prompt,
        })
    }
}

/// The ids of `messages` rendered with the generation prompt, tokenized as
/// training renders a conversation (special-token texts read as those tokens,
/// nothing added).
pub fn chat_prompt(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    messages: &[datasets::Message],
) -> Result<Vec<u32>, TaskEvalError> {
    let text = template.render(messages, true)?;
    let options = EncodeOptions {
        add_special: false,
        parse_special: true,
    };
    Ok(tokenizer.encode(&text, options)?)
}

/// How well `draft` serves as `target`'s draft model in greedy speculative
/// decoding, over `target`'s greedy answers (its end-of-generation token
/// included) to the chat examples of `records`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DraftReport {
    pub examples: usize,
    /// Target tokens the figures are measured over.
    pub tokens: u64,
    pub draft_lengths: Vec<DraftFigure>,
}

pub fn draft<B: Backend>(
    draft: &Transformer<B>,
    target: &Transformer<B>,
    task: &ChatTask<'_>,
    records: impl IntoIterator<Item = datasets::Result<Record>>,
    origin: &str,
    mut on_example: impl FnMut(usize),
) -> Result<DraftReport, TaskEvalError> {
    let ChatTask {
        tokenizer,
        template,
        max_new_tokens,
    } = *task;
    let mut tally = DraftTally::default();
    let mut examples = 0;
    for record in records {
        let example = ChatExample::of(record?, tokenizer, template)?;
        let fail = |e: InputError| TaskEvalError::Example {
            location: example.location.clone(),
            message: e.to_string(),
        };
        let generation = generate_greedy(
            target,
            &example.prompt,
            max_new_tokens,
            |id| tokenizer.is_eog(id),
            |_| {},
        )
        .map_err(fail)?;
        let mut continuation = generation.tokens;
        if let StopReason::EndOfGeneration(token) = generation.stop {
            continuation.push(token);
        }
        tally.add(&draft_matches(draft, &example.prompt, &continuation).map_err(fail)?);
        examples += 1;
        on_example(examples);
    }
    if examples == 0 {
        return Err(TaskEvalError::Empty(origin.to_owned()));
    }
    Ok(DraftReport {
        examples,
        tokens: tally.tokens,
        draft_lengths: tally.figures(),
    })
}

/// Scores one answer against its gold text.
pub fn score(
    location: String,
    gold: &str,
    prediction: String,
    mean_logprob: f64,
    tokens: usize,
) -> Prediction {
    let exact = prediction.trim() == gold.trim();
    let (json_valid, fields) = match serde_json::from_str::<Value>(gold.trim()) {
        Ok(Value::Object(gold_fields)) => {
            let predicted = serde_json::from_str::<Value>(prediction.trim()).ok();
            let fields = gold_fields
                .iter()
                .map(|(key, value)| {
                    let hit = predicted
                        .as_ref()
                        .and_then(|p| p.get(key))
                        .is_some_and(|p| same_value(p, value));
                    (key.clone(), hit)
                })
                .collect();
            (Some(predicted.is_some()), fields)
        }
        _ => (None, BTreeMap::new()),
    };
    Prediction {
        location,
        gold: gold.to_owned(),
        prediction,
        exact,
        json_valid,
        fields,
        mean_logprob,
        tokens,
    }
}

/// JSON equality with numbers compared by value (`243` equals `243.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

pub fn summarize(predictions: Vec<Prediction>) -> TaskReport {
    let examples = predictions.len();
    let share = |hits: usize, of: usize| hits as f64 / of as f64;
    let exact_match = share(predictions.iter().filter(|p| p.exact).count(), examples);
    let json: Vec<&Prediction> = predictions
        .iter()
        .filter(|p| p.json_valid.is_some())
        .collect();
    let json_valid = (!json.is_empty()).then(|| {
        share(
            json.iter().filter(|p| p.json_valid == Some(true)).count(),
            json.len(),
        )
    });
    let mut per_field: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for prediction in &predictions {
        for (field, &hit) in &prediction.fields {
            let entry = per_field.entry(field.clone()).or_default();
            entry.0 += usize::from(hit);
            entry.1 += 1;
        }
    }
    let (hits, total) = per_field
        .values()
        .fold((0, 0), |(h, t), &(fh, ft)| (h + fh, t + ft));
    TaskReport {
        examples,
        exact_match,
        json_examples: json.len(),
        json_valid,
        field_accuracy: (total > 0).then(|| share(hits, total)),
        per_field: per_field
            .into_iter()
            .map(|(k, (h, t))| (k, share(h, t)))
            .collect(),
        tokens_per_s: None,
        predictions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_are_scored_field_by_field_with_numbers_by_value() {
        let gold = r#"{"total": 243, "city": "Oslo", "names": ["Ana", "Bo"]}"#;
        let p = score(
            "a:1".into(),
            gold,
            r#"{"total": 243.0, "city": "Porto", "names": ["Ana", "Bo"]}"#.into(),
            -0.5,
            9,
        );
        assert!(!p.exact);
        assert_eq!(p.json_valid, Some(true));
        assert_eq!(
            p.fields,
            BTreeMap::from([
                ("city".into(), false),
                ("names".into(), true),
                ("total".into(), true)
            ])
        );
        let broken = score(
            "a:2".into(),
            gold,
            r#"{"total": 243, "city": "#.into(),
            -1.0,
            5,
        );
        assert_eq!(broken.json_valid, Some(false));
        assert!(broken.fields.values().all(|&hit| !hit));
        let same = score("a:3".into(), gold, format!(" {gold}\n"), -0.1, 12);
        assert!(same.exact);

        let report = summarize(vec![p, broken, same]);
        assert_eq!(report.examples, 3);
        assert!((report.exact_match - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(report.json_valid, Some(2.0 / 3.0));
        assert_eq!(report.field_accuracy, Some(5.0 / 9.0));
        assert_eq!(report.per_field["city"], 1.0 / 3.0);
        assert_eq!(report.per_field["total"], 2.0 / 3.0);
    }

    #[test]
    fn plain_text_answers_have_no_json_figures() {
        let report = summarize(vec![score("a:1".into(), "Paris", "Paris".into(), 0.0, 1)]);
        assert_eq!(report.exact_match, 1.0);
        assert_eq!(report.json_examples, 0);
        assert_eq!(report.json_valid, None);
        assert_eq!(report.field_accuracy, None);
    }
}
