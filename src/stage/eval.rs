//! The eval stage: every exported GGUF file, and the teacher beside them, on
//! the evaluation conversations — perplexity of the tokens training trains on
//! (each conversation rendered and scored on its own; against the teacher,
//! KL divergence and same-top-token rate too), and exact match of generated
//! answers; with `[eval] cascade`, the confidence threshold up to which the
//! student keeps `target_accuracy` (see [`super::cascade`]), recorded in each
//! GGUF's metadata and in the model card (see [`super::cascade_stamp`]).

use std::path::{Path, PathBuf};

use datasets::{DataSource, Documents, Prepare, Record, RecordSpec, Renderer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use train::eval::score_trained;
use train::{CpuBackend, Transformer};

use super::cascade::{Cascade, choose};
use super::export::ExportReport;
use super::state::{self, REPORT_FILE};
use super::{StageError, data, source};
use crate::model_arg::{self, ModelSource};
use crate::recipe::Recipe;
use crate::recipe::eval::{Eval, Metric};
use crate::task_eval::{self, ChatTask};

/// One evaluated model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelScores {
    /// `teacher`, or the export type.
    pub label: String,
    pub model: PathBuf,
    pub file_size: u64,
    pub parameters: u64,
    pub ppl: Option<f64>,
    pub kld: Option<f64>,
    pub top1: Option<f64>,
    pub exact_match: Option<f64>,
    pub json_valid: Option<f64>,
    pub field_accuracy: Option<f64>,
    /// Generated tokens per second in the exact-match generations.
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
    pub cascade: Option<Cascade>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    pub inputs: String,
    pub data: String,
    pub examples: usize,
    pub models: Vec<ModelScores>,
    #[serde(default)]
    pub reused: bool,
}

/// Evaluates the files `exported` lists into `RUN_DIR/eval`.
pub fn run(
    recipe: &Recipe,
    run_dir: &Path,
    exported: &ExportReport,
) -> Result<EvalReport, StageError> {
    let eval = recipe
        .eval
        .as_ref()
        .expect("the eval stage runs with [eval]");
    let dir = run_dir.join("eval");
    let inputs = inputs_hash(recipe, &exported.inputs);
    if let Some(report) = state::completed(&dir, &inputs, "eval", |r: &EvalReport| &r.inputs)? {
        return Ok(EvalReport {
            reused: true,
            ..report
        });
    }
    let teacher_source = recipe
        .teacher
        .as_ref()
        .map(|t| model_arg::resolve(&t.model.argument()))
        .transpose()?;
    let student_source = ModelSource::HfDir(exported.student.clone());
    let vocab_source = teacher_source
        .clone()
        .unwrap_or_else(|| student_source.clone());
    let tokenizer = source::tokenizer(&vocab_source)?;
    let template = source::chat_template(&vocab_source)?;
    let (records, origin) = records(recipe, eval)?;
    let renderer = Renderer::new(&tokenizer, template.as_ref(), recipe.data.train_on);
    let prepare = Prepare::new(
        renderer,
        Some(recipe.data.max_length as usize),
        recipe.data.truncation,
    )?;
    let (documents, _) = Documents::build(records.iter().cloned().map(Ok), &prepare, &origin)?;

    let load = |path: &Path| train::load_model::<CpuBackend>(path, &Default::default());
    let teacher = teacher_source
        .as_ref()
        .map(|s| load(s.path()))
        .transpose()?;
    let mut candidates: Vec<(String, PathBuf)> = teacher_source
        .iter()
        .map(|s| ("teacher".to_owned(), s.path().to_owned()))
        .collect();
    candidates.extend(
        exported
            .files
            .iter()
            .filter(|f| f.format == "gguf")
            .map(|f| (f.ty.clone(), f.path.clone())),
    );

    let mut models = Vec::new();
    for (label, path) in candidates {
        let is_teacher = label == "teacher";
        let loaded;
        let model = match (&teacher, is_teacher) {
            (Some(teacher), true) => teacher,
            _ => {
                loaded = load(&path)?;
                &loaded
            }
        };
        let mut scores = ModelScores {
            label,
            file_size: std::fs::metadata(&path)
                .map_err(|e| StageError::io(&path, e))?
                .len(),
            model: path,
            parameters: burn::module::Module::num_params(model) as u64,
            ppl: None,
            kld: None,
            top1: None,
            exact_match: None,
            json_valid: None,
            field_accuracy: None,
            tokens_per_s: None,
            cascade: None,
        };
        text_metrics(
            &mut scores,
            model,
            teacher.as_ref().filter(|_| !is_teacher),
            &documents,
            eval,
            &origin,
        )?;
        if eval.metrics.contains(&Metric::Exact) {
            let Some(template) = &template else {
                return Err(StageError::Unsupported(format!(
                    "[eval] metrics: 'exact' renders each conversation through the chat template, and {vocab_source} has none"
                )));
            };
            let task = ChatTask {
                tokenizer: &tokenizer,
                template,
                max_new_tokens: eval.max_new_tokens as usize,
            };
            let report = task_eval::evaluate(
                model,
                &task,
                records.iter().cloned().map(Ok),
                &origin,
                |_| {},
            )
            .map_err(|e| StageError::Unsupported(e.to_string()))?;
            scores.exact_match = Some(report.exact_match);
            scores.json_valid = report.json_valid;
            scores.field_accuracy = report.field_accuracy;
            scores.tokens_per_s = report.tokens_per_s;
            scores.cascade = eval
                .cascade
                .map(|c| choose(&report.predictions, c.target_accuracy));
        }
        models.push(scores);
    }
    super::cascade_stamp::stamp(&models, exported)?;
    let report = EvalReport {
        inputs,
        data: origin,
        examples: records.len(),
        models,
        reused: false,
    };
    std::fs::create_dir_all(&dir).map_err(|e| StageError::io(&dir, e))?;
    state::write_json(&dir.join(REPORT_FILE), &report)?;
    Ok(report)
}

fn text_metrics(
    scores: &mut ModelScores,
    model: &Transformer<CpuBackend>,
    teacher: Option<&Transformer<CpuBackend>>,
    documents: &Documents,
    eval: &Eval,
    origin: &str,
) -> Result<(), StageError> {
    let wants = |m| eval.metrics.contains(&m);
    if !(wants(Metric::Ppl) || wants(Metric::Kld) || wants(Metric::Top1)) {
        return Ok(());
    }
    let Some(trained) = score_trained(model, teacher, documents) else {
        return Err(StageError::Unsupported(format!(
            "[eval]: {origin} has no trained tokens to score"
        )));
    };
    scores.ppl = wants(Metric::Ppl).then_some(trained.ppl);
    scores.kld = trained.kld_mean.filter(|_| wants(Metric::Kld));
    scores.top1 = trained.same_top.filter(|_| wants(Metric::Top1));
    Ok(())
}

/// The records rendered as training renders them (chat template, special
/// tokens), one stream of tokens: what perplexity and KL are scored on.
pub fn rendered_tokens(
    records: impl IntoIterator<Item = datasets::Result<Record>>,
    prepare: &Prepare<'_>,
    origin: &str,
) -> Result<Vec<u32>, StageError> {
    let (documents, _) = Documents::build(records, prepare, origin)?;
    Ok((0..documents.len())
        .flat_map(|i| documents.get(i).tokens.to_vec())
        .collect())
}

/// `[eval] data`, else `[data] eval`, else the held-out part of `[data] train`.
fn records(recipe: &Recipe, eval: &Eval) -> Result<(Vec<Record>, String), StageError> {
    let spec = RecordSpec {
        format: recipe.data.format,
        columns: recipe.data.columns.clone(),
    };
    let files = eval.data.as_ref().or(recipe.data.eval.as_ref());
    let (records, origin): (Vec<datasets::Result<Record>>, String) = match files {
        Some(files) => {
            let source = DataSource::from_files(files.files.clone(), spec);
            (source.records().collect(), source.origin())
        }
        None => {
            let split = data::held_out_split(&recipe.data, spec)?;
            (
                split.records(datasets::Part::HeldOut).collect(),
                split.origin(datasets::Part::HeldOut),
            )
        }
    };
    let limit = eval.max_examples.map_or(usize::MAX, |n| n as usize);
    let records = records
        .into_iter()
        .take(limit)
        .collect::<Result<Vec<_>, _>>()?;
    if records.is_empty() {
        return Err(StageError::Unsupported(format!(
            "[eval]: {origin} holds no examples to evaluate on"
        )));
    }
    Ok((records, origin))
}

/// sha256 over the exported files' inputs, `[eval]` and `[data]`.
fn inputs_hash(recipe: &Recipe, upstream: &str) -> String {
    let sections = json!({ "export": upstream, "eval": recipe.eval, "data": recipe.data });
    format!("{:x}", Sha256::digest(sections.to_string().as_bytes()))
}
