//! `[data]` → training documents: the recipe's files read, rendered through the
//! chat template, tokenized, masked and cut to `max_length`.

use std::path::PathBuf;

use datasets::{
    ChatTemplate, DataSource, Documents, FractionSplit, HeldOut, Part, Prepare, RecordSpec,
    Renderer, Split, Stats, Tokenizer,
};

use super::StageError;
use crate::recipe::Data;

/// The seed of the `held_out` split: fixed, so that the eval stage and every
/// rerun hold out the same records whatever the training seed.
pub const SPLIT_SEED: u64 = 0;

pub struct Prepared {
    pub documents: Documents,
    pub stats: Stats,
    pub files: Vec<PathBuf>,
}

/// `part` of the training files (all of them without `held_out`).
pub fn prepare(
    data: &Data,
    part: Part,
    tokenizer: &Tokenizer,
    template: Option<&ChatTemplate>,
) -> Result<Prepared, StageError> {
    let spec = RecordSpec {
        format: data.format,
        columns: data.columns.clone(),
    };
    let source = DataSource::from_files(data.train.files.clone(), spec.clone());
    let template = if data.chat_template { template } else { None };
    let renderer = Renderer::new(tokenizer, template, data.train_on);
    let prepare = Prepare::new(renderer, Some(data.max_length as usize), data.truncation)?;
    let (documents, stats) = match data.held_out {
        Some(_) => {
            let split = held_out_split(data, spec)?;
            Documents::build(split.records(part), &prepare, &split.origin(part))?
        }
        None => Documents::build(source.records(), &prepare, &source.origin())?,
    };
    Ok(Prepared {
        documents,
        stats,
        files: source.files().to_vec(),
    })
}

/// `[data] train` split by `held_out` (its fraction, or none held out).
pub fn held_out_split(data: &Data, spec: RecordSpec) -> Result<Split, StageError> {
    let Some(fraction) = data.held_out else {
        return Err(StageError::Unsupported(
            "[data]: nothing is held out for evaluation; set `held_out`, `[data] eval` or `[eval] data`".to_owned(),
        ));
    };
    let source = DataSource::from_files(data.train.files.clone(), spec);
    Ok(Split::new(
        source,
        HeldOut::Fraction(FractionSplit::new(fraction, SPLIT_SEED)?),
    )?)
}
