//! The export stage: the trained student (QAT's master weights when the recipe
//! has `[qat]`, else the distilled student) written as one GGUF file per
//! `[export] types` entry, with its Ollama Modelfile, and as a Hugging Face
//! directory when `formats` has `safetensors`. The whole stage is built in
//! `RUN_DIR/export.partial` and renamed to `RUN_DIR/export` when complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use export::{Dtype, ExportMetadata, HfOptions, ModelRef};
use quantize::mix::MixOptions;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use train::CpuBackend;

use super::distill::name_of;
use super::state::{self, REPORT_FILE};
use super::{StageError, source};
use crate::model_arg::{self, ModelSource};
use crate::recipe::Recipe;
use crate::recipe::export::Format;

/// One file or directory the stage wrote.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Exported {
    pub path: PathBuf,
    pub format: String,
    /// The GGUF mix, or the safetensors float type.
    #[serde(rename = "type")]
    pub ty: String,
    pub size: u64,
    /// Tensors per ggml type (GGUF).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tensors: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportReport {
    pub inputs: String,
    /// The model the files were written from.
    pub student: PathBuf,
    pub files: Vec<Exported>,
    #[serde(default)]
    pub reused: bool,
}

/// Writes `student` as `[export]` asks into `RUN_DIR/export`; `upstream` is
/// the inputs hash of the stage that trained it.
pub fn run(
    recipe: &Recipe,
    run_dir: &Path,
    student: &Path,
    upstream: &str,
) -> Result<ExportReport, StageError> {
    let dir = run_dir.join("export");
    let inputs = inputs_hash(recipe, upstream);
    if let Some(report) = state::completed(&dir, &inputs, "export", |r: &ExportReport| &r.inputs)? {
        return Ok(ExportReport {
            reused: true,
            ..report
        });
    }
    if dir.exists() {
        return Err(StageError::RunDir {
            path: dir,
            message: "is an export stage that did not finish writing its report; remove it"
                .to_owned(),
        });
    }
    let partial = run_dir.join("export.partial");
    state::clear_dir(&partial)?;
    std::fs::create_dir_all(&partial).map_err(|e| StageError::io(&partial, e))?;

    let source = ModelSource::HfDir(student.to_owned());
    let model = train::load_model::<CpuBackend>(student, &Default::default())?;
    let vocab = source::vocabulary(&source, model.config.vocab_size)?.ok_or_else(|| {
        StageError::RunDir {
            path: student.to_owned(),
            message: "has no tokenizer.json; a GGUF file needs the tokenizer".to_owned(),
        }
    })?;
    let metadata = ExportMetadata {
        name: recipe.export.name.clone(),
        base_models: recipe
            .teacher
            .iter()
            .map(|t| {
                model_arg::resolve(&t.model.argument()).map(|s| ModelRef {
                    name: name_of(&s),
                    ..ModelRef::default()
                })
            })
            .collect::<Result<_, _>>()?,
        quantized_by: Some("decant".to_owned()),
        recipe_hash: Some(inputs.clone()),
        qat_type: recipe.qat.as_ref().map(|q| q.mix.name().to_owned()),
        ..ExportMetadata::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let name = &recipe.export.name;
    let mut files = Vec::new();
    for format in &recipe.export.formats {
        match format {
            Format::Gguf => {
                for &mix in &recipe.export.types {
                    let options = MixOptions {
                        pure: recipe.export.pure,
                        ..MixOptions::new(mix)
                    };
                    let file = format!("{name}-{}.gguf", mix.name());
                    let report = export::export_gguf(
                        &model,
                        &vocab,
                        &metadata,
                        options,
                        &partial.join(&file),
                        threads,
                        |_| {},
                    )?;
                    export::write_modelfile(&report.path, vocab.chat_template.as_deref())?;
                    files.push(Exported {
                        path: dir.join(&file),
                        format: "gguf".to_owned(),
                        ty: mix.name().to_owned(),
                        size: report.size,
                        tensors: report
                            .type_counts
                            .iter()
                            .map(|(t, &n)| (t.name().to_owned(), n))
                            .collect(),
                    });
                }
            }
            Format::Safetensors => {
                let hf = format!("{name}-hf");
                let options = HfOptions {
                    dtype: Dtype::F32,
                    max_shard_bytes: export::hf::DEFAULT_MAX_SHARD_BYTES,
                };
                let report = export::export_hf_dir(
                    &model,
                    Some(&vocab),
                    &metadata,
                    options,
                    &partial.join(&hf),
                    |_| {},
                )?;
                files.push(Exported {
                    path: dir.join(&hf),
                    format: "safetensors".to_owned(),
                    ty: "f32".to_owned(),
                    size: report.weights_size,
                    tensors: BTreeMap::new(),
                });
            }
        }
    }
    let report = ExportReport {
        inputs,
        student: student.to_owned(),
        files,
        reused: false,
    };
    state::write_json(&partial.join(REPORT_FILE), &report)?;
    std::fs::rename(&partial, &dir).map_err(|e| StageError::io(&dir, e))?;
    Ok(report)
}

/// sha256 over the trained student's inputs and `[export]`.
fn inputs_hash(recipe: &Recipe, upstream: &str) -> String {
    let sections = json!({ "student": upstream, "export": recipe.export });
    format!("{:x}", Sha256::digest(sections.to_string().as_bytes()))
}
