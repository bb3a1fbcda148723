//! `[data]`: which files, read how, cut to what length.

use std::path::{Path, PathBuf};

use datasets::{AssistantTurns, Columns, RecordFormat, Truncation};
use serde::Serialize;

use super::paths;
use super::reader::{Table, boolean, number, parsed, positive, string, strings};

const MAX_LENGTH: u64 = 2048;

/// Data files as the recipe names them (files, directories or globs, made
/// absolute from the recipe's directory) and the files they resolve to now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataFiles {
    pub patterns: Vec<String>,
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Data {
    pub train: DataFiles,
    /// Evaluation files; without them, `held_out` sets part of `train` aside.
    pub eval: Option<DataFiles>,
    /// The fraction of the training records held out for evaluation, chosen
    /// by content hash (`datasets::FractionSplit`).
    pub held_out: Option<f64>,
    pub format: RecordFormat,
    pub columns: Columns,
    /// Render conversations through the model's chat template.
    pub chat_template: bool,
    pub train_on: AssistantTurns,
    pub max_length: u64,
    pub truncation: Truncation,
    /// Several documents per row where they fit.
    pub packing: bool,
}

pub fn read(mut table: Table<'_, '_>, base: &Path) -> Option<Data> {
    let train = data_files(&mut table, "train", base, true);
    let eval = data_files(&mut table, "eval", base, false);
    let held_out = table.optional("held_out", |value| {
        let fraction = number(value)?;
        if fraction > 0.0 && fraction < 1.0 {
            Ok(fraction)
        } else {
            Err(format!("{fraction} is not strictly between 0 and 1"))
        }
    });
    let format = table.optional("format", parsed::<RecordFormat>);
    let columns = table.table("columns").map(read_columns);
    let chat_template = table.optional("chat_template", boolean).unwrap_or(true);
    let train_on = table.optional("train_on", parsed::<AssistantTurns>);
    let max_length = table.optional("max_length", |value| match positive(value)? {
        1 => Err("expected at least 2 tokens: one to predict from and one to predict".to_owned()),
        n => Ok(n),
    });
    let truncation = table.optional("truncation", parsed::<Truncation>);
    let packing = table.optional("packing", boolean).unwrap_or(true);

    if eval.is_some() && held_out.is_some() {
        table.collector().error(
            table.span(),
            format!(
                "{}: give either `eval` files or a `held_out` fraction, not both",
                table.name()
            ),
        );
    }
    let format = format.unwrap_or_default();
    if !chat_template
        && matches!(
            format,
            RecordFormat::Messages | RecordFormat::PromptCompletion
        )
    {
        table.collector().error(
            table
                .collector()
                .span_of(&format!("{}.chat_template", table.path())),
            format!(
                "`{}.chat_template`: {format} records are conversations, rendered through the chat \
                 template; turn it on or use text records",
                table.path()
            ),
        );
    }
    let has_columns = table.has("columns");
    table.finish();
    let columns = match has_columns {
        true => columns.flatten()?,
        false => Columns::default(),
    };
    Some(Data {
        train: train?,
        eval,
        held_out,
        format,
        columns,
        chat_template,
        train_on: train_on.unwrap_or_default(),
        max_length: max_length.unwrap_or(MAX_LENGTH),
        truncation: truncation.unwrap_or(Truncation::Right),
        packing,
    })
}

/// The data files at `key`, each pattern resolved now (a missing file fails
/// the check rather than the run) and each failure reported at its pattern.
pub fn data_files(
    table: &mut Table<'_, '_>,
    key: &'static str,
    base: &Path,
    required: bool,
) -> Option<DataFiles> {
    if required && !table.require(key) {
        return None;
    }
    let value = table.value(key)?;
    let patterns = match strings(value) {
        Ok(patterns) => patterns,
        Err(message) => {
            table.error_at(value.span(), key, message);
            return None;
        }
    };
    let mut files = DataFiles {
        patterns: Vec::new(),
        files: Vec::new(),
    };
    let mut ok = true;
    for pattern in patterns {
        let resolved = paths::resolve(base, pattern.get_ref())
            .to_string_lossy()
            .into_owned();
        match datasets::source::resolve_files(&[&resolved]) {
            Ok(found) => {
                for file in found {
                    if !files.files.contains(&file) {
                        files.files.push(file);
                    }
                }
            }
            Err(err) => {
                ok = false;
                table.error_at(pattern.span(), key, err);
            }
        }
        files.patterns.push(resolved);
    }
    ok.then_some(files)
}

fn read_columns(mut table: Table<'_, '_>) -> Option<Columns> {
    let mut columns = Columns::default();
    let mut ok = true;
    for field in Columns::FIELDS {
        if let Some(name) = table.optional(field, string) {
            ok &= columns.set(field, name).is_ok();
        }
    }
    table.finish();
    ok.then_some(columns)
}
