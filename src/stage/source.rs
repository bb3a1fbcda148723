//! What a stage needs from a model file besides its weights: the tokenizer,
//! the chat template, and the vocabulary an export carries over.

use datasets::{ChatTemplate, DatasetError, Tokenizer};
use export::Vocabulary;
use quantize::gguf::GgufFile;

use super::StageError;
use crate::model_arg::ModelSource;
use crate::tokenize::{self, TokenizeError};

/// The model's chat template, or `None` for a model that has none: text data
/// needs none, and a chat record then fails naming itself.
pub fn chat_template(model: &ModelSource) -> Result<Option<ChatTemplate>, StageError> {
    let template = match model {
        ModelSource::Gguf(path) => {
            let file = open_gguf(path)?;
            ChatTemplate::from_gguf(&file)
        }
        ModelSource::HfDir(dir) => ChatTemplate::from_hf_dir(dir),
    };
    match template {
        Ok(template) => Ok(Some(template)),
        Err(DatasetError::MissingKey { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

pub fn tokenizer(model: &ModelSource) -> Result<Tokenizer, StageError> {
    Ok(tokenize::load_tokenizer(model)?)
}

/// The vocabulary to write beside exported weights; `None` for a Hugging Face
/// directory without `tokenizer.json`.
pub fn vocabulary(
    model: &ModelSource,
    vocab_size: usize,
) -> Result<Option<Vocabulary>, StageError> {
    match model {
        ModelSource::Gguf(path) => Ok(Some(Vocabulary::from_gguf(&open_gguf(path)?)?)),
        ModelSource::HfDir(dir) if dir.join("tokenizer.json").is_file() => {
            Ok(Some(Vocabulary::from_hf_dir(dir, vocab_size)?))
        }
        ModelSource::HfDir(_) => Ok(None),
    }
}

fn open_gguf(path: &std::path::Path) -> Result<GgufFile, StageError> {
    GgufFile::open(path).map_err(|e| TokenizeError::Gguf(path.display().to_string(), e).into())
}

/// Refuses a student whose tokenizer is not the teacher's: logits of different
/// vocabularies cannot be compared token by token. The token strings are
/// compared as the vocabularies store them (GGUF and `tokenizer.json` keep
/// the same byte-level forms); a student vocabulary padded or cut at the end
/// is fine, the losses use the shared part.
pub fn same_tokenizer(
    teacher: (&ModelSource, usize),
    student: (&ModelSource, usize),
    shared: usize,
) -> Result<(), StageError> {
    let (Some(t), Some(s)) = (
        vocabulary(teacher.0, teacher.1)?,
        vocabulary(student.0, student.1)?,
    ) else {
        return Err(StageError::Unsupported(format!(
            "cannot check that the student {} and the teacher {} share a tokenizer: one of them has \
             no tokenizer.json",
            student.0, teacher.0
        )));
    };
    let differs = (0..shared).find(|&id| t.tokens.get(id) != s.tokens.get(id));
    match differs {
        None => Ok(()),
        Some(id) => {
            let piece = |tokens: &[String]| {
                tokens
                    .get(id)
                    .map_or("no token".to_owned(), |p| format!("{p:?}"))
            };
            Err(StageError::Unsupported(format!(
                "the student {} and the teacher {} have different tokenizers (token {id} is {} for \
                 the teacher and {} for the student); distillation compares their distributions \
                 token by token, so both must use the same tokenizer",
                student.0,
                teacher.0,
                piece(&t.tokens),
                piece(&s.tokens)
            )))
        }
    }
}
