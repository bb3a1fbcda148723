//! Writing a teacher cache: the teacher runs once over the prepared documents
//! and its top-k distribution at every trained position is coded into shards
//! (see `datasets::logit_cache`).
//!
//! The id permutation that makes the codes small is ranked on the first
//! documents' top-k sets before anything is written; the cache is built in
//! `DIR.partial` and renamed to `DIR` when complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::Backend;
use datasets::logit_cache::manifest::{FORMAT, VERSION, write_permutation};
use datasets::logit_cache::{
    CacheQuality, Manifest, PERMUTATION_FILE, Permutation, ShardEntry, ShardWriter, TopK, codec,
};
use datasets::{Batch, Documents, Loader, LoaderConfig, Order, Shard};
use train::Transformer;
use train::trainer::{TrainedPositions, layout, token_tensor};

/// What a cache is made of, for its manifest.
#[derive(Clone, Debug)]
pub struct CacheSpec {
    pub k: usize,
    pub teacher_sha256: String,
    pub tokenizer_sha256: String,
    /// Documents per shard.
    pub shard_documents: u64,
    /// Documents whose top-k sets rank the permutation.
    pub ranking_documents: u64,
    /// Rows per teacher forward pass.
    pub batch_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheWriteError {
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    #[error("top-k = {k}: expected 1 to the teacher's vocabulary of {vocab}")]
    K { k: usize, vocab: usize },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Writes the cache of `teacher` over `documents` to `dir` (which must not
/// exist), calling `progress(done, total)` per document.
pub fn write_cache<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Arc<Documents>,
    spec: &CacheSpec,
    dir: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Manifest, CacheWriteError> {
    let vocab = teacher.config.vocab_size;
    if spec.k == 0 || spec.k > vocab {
        return Err(CacheWriteError::K { k: spec.k, vocab });
    }
    let partial = partial_dir(dir);
    let io = |path: &Path, source| CacheWriteError::Io { path: path.to_owned(), source };
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io(&partial, e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| io(&partial, e))?;

    let total = documents.len() as u64;
    let mut batches = Loader::new(
        Arc::clone(documents),
        LoaderConfig {
            batch_size: spec.batch_rows,
            seq_len: documents.longest(),
            packing: false,
            order: Order { shuffle: false, seed: 0, shard: Shard::SINGLE },
            pad_token: 0,
            epochs: Some(1),
        },
    )?;
    // The first documents, held until the permutation ranked on them exists.
    let mut pending: Vec<Vec<TopK>> = Vec::new();
    let mut done = 0u64;
    while (pending.len() as u64) < spec.ranking_documents.min(total) {
        let Some(batch) = batches.next() else { break };
        pending.extend(teacher_topk(teacher, &batch, spec.k));
        done = pending.len() as u64;
        progress(done, total);
    }
    let mut counts = vec![0u64; vocab];
    for topk in pending.iter().flatten() {
        for &id in &topk.ids {
            counts[id as usize] += 1;
        }
    }
    let permutation = Permutation::by_frequency(&counts);
    write_permutation(&partial.join(PERMUTATION_FILE), &permutation)?;

    let mut writer = Writer { dir: &partial, spec, permutation: &permutation, shard: None, shards: Vec::new(), quality: QualitySum::default() };
    for document in pending.drain(..) {
        writer.push(&document)?;
    }
    for batch in batches {
        for document in teacher_topk(teacher, &batch, spec.k) {
            writer.push(&document)?;
            done += 1;
        }
        progress(done, total);
    }
    let Writer { shard, mut shards, quality, .. } = writer;
    if let Some(shard) = shard {
        shards.push(shard.finish()?);
    }
    let positions: u64 = shards.iter().map(|s| s.records).sum();
    let record_bytes = quality.record_bytes;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        k: spec.k,
        vocab,
        teacher_sha256: spec.teacher_sha256.clone(),
        tokenizer_sha256: spec.tokenizer_sha256.clone(),
        data_fingerprint: documents.fingerprint(),
        documents: total,
        positions,
        record_bytes,
        bytes_per_position: record_bytes as f64 / positions.max(1) as f64,
        permutation_sha256: {
            use sha2::Digest;
            let bytes: Vec<u8> = permutation.ranks().iter().flat_map(|r| r.to_le_bytes()).collect();
            format!("{:x}", sha2::Sha256::digest(&bytes))
        },
        quality: quality.finish(positions),
        shards,
    };
    manifest.write(&partial.join(datasets::logit_cache::MANIFEST_FILE))?;
    std::fs::rename(&partial, dir).map_err(|e| io(dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent).and_then(|f| f.sync_all()).map_err(|e| io(parent, e))?;
    }
    Ok(manifest)
}

/// Where a cache is built before it is renamed to `dir`.
pub fn partial_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    dir.with_file_name(name)
}

struct Writer<'a> {
    dir: &'a Path,
    spec: &'a CacheSpec,
    permutation: &'a Permutation,
    shard: Option<ShardWriter>,
    shards: Vec<ShardEntry>,
    quality: QualitySum,
}

impl Writer<'_> {
    fn push(&mut self, document: &[TopK]) -> Result<(), CacheWriteError> {
        if self.shard.as_ref().is_some_and(|s| s.documents() >= self.spec.shard_documents) {
            let full = self.shard.take().expect("a shard is open");
            self.shards.push(full.finish()?);
        }
        if self.shard.is_none() {
            let first: u64 = self.shards.iter().map(|s| s.documents).sum();
            let path = self.dir.join(format!("shard-{:05}.dlc", self.shards.len()));
            self.shard = Some(ShardWriter::create(&path, self.spec.k, first)?);
        }
        for topk in document {
            self.quality.add(topk, self.spec.k, self.permutation)?;
        }
        self.shard.as_mut().expect("a shard is open").push_document(document, self.permutation)?;
        Ok(())
    }
}

/// Running sums of how far decoded records are from the teacher's values.
#[derive(Default)]
struct QualitySum {
    rest: f64,
    max_abs: f64,
    sum_max_abs: f64,
    record_bytes: u64,
    scratch: Vec<u8>,
}

impl QualitySum {
    fn add(&mut self, topk: &TopK, k: usize, permutation: &Permutation) -> Result<(), CacheWriteError> {
        self.scratch.clear();
        codec::encode(topk, k, permutation, &mut self.scratch)
            .map_err(|e| datasets::DatasetError::InvalidConfig { what: "teacher cache", message: e.to_string() })?;
        self.record_bytes += self.scratch.len() as u64;
        let (decoded, _) = codec::decode(&self.scratch, k, permutation)
            .map_err(|e| datasets::DatasetError::InvalidConfig { what: "teacher cache", message: e.to_string() })?;
        let mut worst = 0.0f64;
        for (id, p) in decoded.ids.iter().zip(&decoded.probs) {
            let index = topk.ids.iter().position(|i| i == id).expect("decoded ids are the encoded ones");
            worst = worst.max((f64::from(*p) - f64::from(topk.logprobs[index]).exp()).abs());
        }
        self.rest += f64::from(topk.rest);
        self.sum_max_abs += worst;
        self.max_abs = self.max_abs.max(worst);
        Ok(())
    }

    fn finish(self, positions: u64) -> CacheQuality {
        let n = positions.max(1) as f64;
        CacheQuality { mean_rest: self.rest / n, mean_max_abs_error: self.sum_max_abs / n, max_abs_error: self.max_abs }
    }
}

/// The teacher's top-k at each trained position of each row (a document per
/// row, in order).
fn teacher_topk<B: Backend>(teacher: &Transformer<B>, batch: &Batch, k: usize) -> Vec<Vec<TopK>> {
    let device = teacher.embed_tokens.weight.device();
    let trained = TrainedPositions::of(batch);
    let mut per_row: Vec<Vec<TopK>> = (0..batch.rows).map(|_| Vec::new()).collect();
    let Some(hidden) = trained.select(teacher.hidden_states_rows(token_tensor(batch, &device), layout(batch)))
    else {
        return per_row;
    };
    let logits: Vec<f32> = teacher
        .output_logits(hidden)
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("converted to f32");
    let vocab = teacher.config.vocab_size;
    for (&flat, row_logits) in trained.indices.iter().zip(logits.chunks_exact(vocab)) {
        per_row[flat as usize / batch.seq_len].push(top_k(row_logits, k));
    }
    per_row
}

/// The `k` most likely ids with their log-probabilities and the rest mass.
pub fn top_k(logits: &[f32], k: usize) -> TopK {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|&l| f64::from(l - max).exp()).sum::<f64>().ln() + f64::from(max);
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, by_logit);
        order.truncate(k);
    }
    order.sort_unstable_by(by_logit);
    let logprobs: Vec<f32> = order.iter().map(|&id| (f64::from(logits[id as usize]) - log_sum) as f32).collect();
    let kept: f64 = order.iter().map(|&id| (f64::from(logits[id as usize]) - log_sum).exp()).sum();
    TopK { ids: order, logprobs, rest: (1.0 - kept).max(0.0) as f32 }
}
