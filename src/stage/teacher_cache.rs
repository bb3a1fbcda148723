//! The teacher-cache stage: the teacher's top-k distributions over the
//! prepared training documents, written once and reused while the teacher,
//! its tokenizer, the data and k stay the same.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use datasets::logit_cache::{MANIFEST_FILE, Manifest, TeacherCache};
use datasets::{Documents, Tokenizer};
use distill::teacher_cache::{CacheSpec, write_cache};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use train::Transformer;

use super::StageError;

/// Documents per shard: a few MB each at ~90 bytes per position.
pub const SHARD_DOCUMENTS: u64 = 4096;
/// Documents whose top-k sets rank the id permutation.
pub const RANKING_DOCUMENTS: u64 = 512;
const BATCH_ROWS: usize = 8;

/// sha256 of every token's piece, in id order: two tokenizers that agree on it
/// split text into the same ids.
pub fn tokenizer_sha256(tokenizer: &Tokenizer, vocab: usize) -> String {
    let mut hasher = Sha256::new();
    for id in 0..vocab as u32 {
        match tokenizer.token_to_piece(id, true) {
            Ok(piece) => {
                hasher.update((piece.len() as u32).to_le_bytes());
                hasher.update(&piece);
            }
            Err(_) => hasher.update(u32::MAX.to_le_bytes()),
        }
    }
    format!("{:x}", hasher.finalize())
}

/// The cache in `dir` for these inputs, written first if absent.
pub fn ensure<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Arc<Documents>,
    spec: CacheSpec,
    dir: &Path,
    progress: bool,
) -> Result<(TeacherCache, Manifest, bool), StageError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if manifest_path.is_file() {
        let manifest = Manifest::read(&manifest_path)?;
        let same = manifest.teacher_sha256 == spec.teacher_sha256
            && manifest.tokenizer_sha256 == spec.tokenizer_sha256
            && manifest.data_fingerprint == documents.fingerprint()
            && manifest.k == spec.k;
        if !same {
            return Err(StageError::RunDir {
                path: dir.to_owned(),
                message: "holds a teacher cache of another teacher, tokenizer, data or top-k; \
                          remove it or use another --out"
                    .to_owned(),
            });
        }
        return Ok((TeacherCache::open(dir)?, manifest, true));
    }
    let bar = if progress {
        ProgressBar::new(documents.len() as u64).with_style(
            ProgressStyle::with_template("teacher cache [{bar:30}] {pos}/{len} documents  ETA {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        )
    } else {
        ProgressBar::hidden()
    };
    let manifest = write_cache(teacher, documents, &spec, dir, |done, _| bar.set_position(done))
        .map_err(|e| StageError::Unsupported(e.to_string()))?;
    bar.finish_and_clear();
    Ok((TeacherCache::open(dir)?, manifest, false))
}

pub fn spec(k: usize, teacher_sha256: String, tokenizer_sha256: String) -> CacheSpec {
    CacheSpec {
        k,
        teacher_sha256,
        tokenizer_sha256,
        shard_documents: SHARD_DOCUMENTS,
        ranking_documents: RANKING_DOCUMENTS,
        batch_rows: BATCH_ROWS,
    }
}
