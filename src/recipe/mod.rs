//! Recipes: one strict TOML file that drives a whole run, read into typed
//! runtime configs before any work starts.
//!
//! [`load`] reads every section, reports every problem at once with its
//! `file:line:col` (unknown keys, wrong types, bad values, combinations that
//! cannot run, data files that do not exist) and returns the [`Recipe`] only
//! when there is none. Relative paths are read from the recipe's directory.

pub mod data;
pub mod diagnostic;
pub mod distill;
pub mod eval;
pub mod export;
pub mod paths;
pub mod publish;
pub mod qat;
mod reader;
pub mod student;
mod summary;
pub mod teacher;
pub mod train;

use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::de::DeTable;

pub use data::{Data, DataFiles};
pub use diagnostic::{Diagnostic, Severity};
pub use distill::Distill;
pub use eval::Eval;
pub use export::Export;
pub use publish::Publish;
pub use qat::Qat;
pub use student::Student;
pub use summary::render_text;
pub use teacher::Teacher;
pub use train::Train;

use diagnostic::Collector;
use reader::Table;

/// A recipe, checked. Optional sections are stages the run skips: no
/// `[teacher]`/`[distill]` trains on the labels alone, no `[qat]` exports
/// the trained weights as they are, no `[eval]` or `[publish]` stops after
/// export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recipe {
    pub teacher: Option<Teacher>,
    pub student: Student,
    pub data: Data,
    pub distill: Option<Distill>,
    pub train: Train,
    pub qat: Option<Qat>,
    pub export: Export,
    pub eval: Option<Eval>,
    pub publish: Option<Publish>,
}

/// A valid recipe and what is worth knowing about it.
#[derive(Clone, Debug)]
pub struct Checked {
    pub recipe: Recipe,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{}: cannot read the recipe: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every error of the recipe, and its warnings, in file order.
    #[error("{}", render_lines(diagnostics))]
    Invalid { diagnostics: Vec<Diagnostic> },
}

fn render_lines(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}

pub fn load(path: &Path) -> Result<Checked, RecipeError> {
    let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Checks `text` as the recipe at `path` (whose directory relative paths are
/// read from).
pub fn parse(path: &Path, text: &str) -> Result<Checked, RecipeError> {
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(err) => {
            let (line, column) = diagnostic::line_column(text, err.span().map_or(0, |s| s.start));
            return Err(RecipeError::Invalid {
                diagnostics: vec![Diagnostic {
                    file: path.to_path_buf(),
                    line,
                    column,
                    severity: Severity::Error,
                    message: format!("TOML syntax: {}", err.message().trim_end()),
                }],
            });
        }
    };
    let base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_stem().map_or_else(
        || "model".to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let out = Collector::default();
    let recipe = read_recipe(Table::root(&document, &out), &base, name);
    let has_errors = out.has_errors();
    let diagnostics = out.into_diagnostics(path, text);
    match recipe {
        Some(recipe) if !has_errors => Ok(Checked {
            recipe,
            warnings: diagnostics,
        }),
        _ => Err(RecipeError::Invalid { diagnostics }),
    }
}

/// The table at `key`; an absent required one is reported at the document.
fn section<'a, 'i>(
    root: &mut Table<'a, 'i>,
    key: &'static str,
    required: bool,
) -> Option<Table<'a, 'i>> {
    let table = root.table(key);
    if table.is_none() && required && !root.has(key) {
        root.collector()
            .error(root.span(), format!("missing required section [{key}]"));
    }
    table
}

fn read_recipe(mut root: Table<'_, '_>, base: &Path, name: String) -> Option<Recipe> {
    let out = root.collector();
    let teacher_table = section(&mut root, "teacher", false);
    let has_teacher = root.has("teacher");
    let teacher = teacher_table.and_then(|t| teacher::read(t, base));
    let student = section(&mut root, "student", true).and_then(|t| student::read(t, base));
    let data = section(&mut root, "data", true).and_then(|t| data::read(t, base));
    let distill = section(&mut root, "distill", false).and_then(distill::read);
    let train = section(&mut root, "train", true).and_then(train::read);
    let qat =
        section(&mut root, "qat", false).and_then(|t| qat::read(t, train.as_ref(), has_teacher));
    let export = match section(&mut root, "export", false) {
        Some(table) => export::read(table, name, qat.as_ref()),
        None if root.has("export") => None,
        None => Some(Export::default_for(name, qat.as_ref())),
    };
    let eval = section(&mut root, "eval", false).and_then(|t| eval::read(t, base, has_teacher));
    let publish_name = export
        .as_ref()
        .map_or("", |export| export.name.as_str())
        .to_owned();
    let publish =
        section(&mut root, "publish", false).and_then(|t| publish::read(t, base, &publish_name));
    let given = |key| root.has(key);
    let (has_distill, has_qat, has_eval, has_publish) = (
        given("distill"),
        given("qat"),
        given("eval"),
        given("publish"),
    );
    root.finish();

    if !has_teacher {
        if has_distill {
            out.error(
                out.span_of("distill"),
                "[distill]: distillation needs a [teacher] section",
            );
        }
        if let Some(student) = &student
            && student.init.prunes_teacher()
        {
            out.error(
                out.span_of("student.init.kind"),
                "`student.init.kind`: the student is pruned from the teacher, and the recipe has no \
                 [teacher]; add one or start from a model (kind = \"model\")",
            );
        }
    }
    if let (Some(eval), Some(data)) = (&eval, &data) {
        if eval.data.is_none() && data.eval.is_none() && data.held_out.is_none() {
            out.error(
                out.span_of("eval"),
                "[eval]: no evaluation data; set `eval.data`, `data.eval` or a `data.held_out` fraction",
            );
        }
        if eval.metrics.contains(&eval::Metric::Exact)
            && data.format == datasets::RecordFormat::Text
        {
            out.error(
                out.span_of("eval.metrics"),
                "`eval.metrics`: 'exact' scores generated answers against gold ones, and text records \
                 have none; use prompt-completion or messages records",
            );
        }
    }
    Some(Recipe {
        teacher: if has_teacher { Some(teacher?) } else { None },
        student: student?,
        data: data?,
        distill: if has_distill { Some(distill?) } else { None },
        train: train?,
        qat: if has_qat { Some(qat?) } else { None },
        export: export?,
        eval: if has_eval { Some(eval?) } else { None },
        publish: if has_publish { Some(publish?) } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `body` as `dir/r.toml`, beside a one-record `train.jsonl`.
    fn check(body: &str) -> (tempfile::TempDir, Result<Checked, RecipeError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.jsonl"), "{\"text\": \"a\"}\n").unwrap();
        std::fs::write(dir.path().join("teacher.gguf"), b"GGUF").unwrap();
        let path = dir.path().join("r.toml");
        let result = parse(&path, body);
        (dir, result)
    }

    fn messages(result: Result<Checked, RecipeError>) -> Vec<String> {
        match result {
            Ok(checked) => panic!("expected errors, got {:#?}", checked.recipe),
            Err(RecipeError::Invalid { diagnostics }) => diagnostics
                .into_iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect(),
            Err(err) => panic!("{err}"),
        }
    }

    const BASE: &str = "[teacher]\nmodel = \"teacher.gguf\"\n\n[student.init]\nkind = \"depth\"\nkeep = 4\n\n\
                        [data]\ntrain = \"train.jsonl\"\n\n[train]\nlr = 1e-3\nsteps = 20\n";

    #[test]
    fn a_misspelt_section_is_unknown_and_the_real_one_missing() {
        let (_dir, result) = check(&BASE.replace("[train]", "[trian]"));
        assert_eq!(
            messages(result),
            [
                "1:1: missing required section [train]",
                "11:2: unknown key `trian` in the recipe's top level; did you mean `train`? \
                 (known keys: teacher, student, data, distill, train, qat, export, eval, publish)",
            ]
        );
    }

    #[test]
    fn pruning_and_distillation_need_a_teacher() {
        let body = BASE.replace("[teacher]\nmodel = \"teacher.gguf\"\n", "")
            + "\n[distill]\nalpha = 0.1\n";
        let (_dir, result) = check(&body);
        assert_eq!(
            messages(result),
            [
                "3:8: `student.init.kind`: the student is pruned from the teacher, and the recipe has \
                 no [teacher]; add one or start from a model (kind = \"model\")",
                "13:1: [distill]: distillation needs a [teacher] section",
            ]
        );
    }

    #[test]
    fn qat_defaults_follow_train_and_an_unexported_type_is_a_warning() {
        let body = format!("{BASE}\n[qat]\ntype = \"q4_0\"\n\n[export]\ntypes = [\"q8_0\"]\n");
        let (_dir, result) = check(&body);
        let checked = result.unwrap();
        let qat = checked.recipe.qat.unwrap();
        assert_eq!((qat.steps, qat.lr), (2, 1e-4));
        assert_eq!(qat.reference, qat::Reference::Teacher);
        assert_eq!(checked.warnings.len(), 1);
        assert_eq!(checked.warnings[0].severity, Severity::Warning);
        assert!(
            checked.warnings[0]
                .message
                .starts_with("[export]: QAT trained against q4_0 but no GGUF export is q4_0"),
            "{}",
            checked.warnings[0]
        );
    }

    #[test]
    fn gguf_types_need_the_gguf_format() {
        let body = format!("{BASE}\n[export]\nformats = [\"safetensors\"]\ntypes = [\"q8_0\"]\n");
        let (_dir, result) = check(&body);
        assert_eq!(
            messages(result),
            [
                "17:9: `export.types`: types choose GGUF quantizations, and `formats` has no \"gguf\""
            ]
        );
    }

    #[test]
    fn a_backend_missing_from_this_build_is_only_a_warning() {
        let body = BASE.replace("steps = 20", "steps = 20\nbackend = \"cuda\"");
        let (_dir, result) = check(&body);
        let checked = result.unwrap();
        assert_eq!(checked.recipe.train.backend, ::train::BackendKind::Cuda);
        if cfg!(feature = "cuda") {
            assert!(checked.warnings.is_empty());
        } else {
            assert_eq!(checked.warnings.len(), 1);
            assert!(checked.warnings[0].message.contains("--features cuda"));
        }
    }
}
