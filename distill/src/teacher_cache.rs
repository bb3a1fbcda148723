//! Writing a teacher cache: the teacher runs once over the prepared documents
//! and its top-k distribution at every trained position is coded into shards
//! (see `datasets::logit_cache`).
//!
//! The id permutation that makes the codes small is ranked on the first
//! documents' top-k sets before anything is written. One process builds the
//! whole cache in `DIR.partial` and renames it to `DIR` ([`write_cache`]);
//! ranks sharing the work each write a part of it ([`write_part`]) that
//! `datasets::logit_cache::merge` assembles into the same `DIR`.
//!
//! Both run the same [`encode_range`]: the teacher sees the same batches
//! (rows of one document, padded to the longest document of the whole data,
//! batches counted from document 0) whichever process runs them, so a shard
//! is the same bytes written by a rank or by one process.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::Backend;
use datasets::logit_cache::manifest::write_permutation;
use datasets::logit_cache::parts::{
    self, CacheIdentity, PART_FORMAT, PART_MANIFEST_FILE, PART_VERSION, PartManifest, PartShard, QualitySums,
    cache_manifest, part_name, parts_dir, rank_range, shard_file,
};
use datasets::logit_cache::{Manifest, PERMUTATION_FILE, Permutation, ShardWriter, TopK, codec};
use datasets::order::SplitMix64;
use datasets::{Batch, Documents, Loader, LoaderConfig, Order, Shard};
use train::Transformer;
use train::trainer::{TrainedPositions, layout, token_tensor};

/// What a cache is made of, for its manifest.
#[derive(Clone, Debug)]
pub struct CacheSpec {
    pub k: usize,
    /// Ids drawn from the teacher's distribution outside the top-k, per unit
    /// of the mass there ([`top_k`]); 0 stores the top-k and the rest mass alone.
    pub tail_samples: usize,
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
    #[error("{tail} tail samples with top-k = the whole vocabulary of {vocab}: there is no tail to sample")]
    NoTail { tail: usize, vocab: usize },
    #[error("{tail} tail samples per unit of rest mass: at most {} are written", codec::MAX_TAIL)]
    TailTooLarge { tail: usize },
    #[error("{0}")]
    Split(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheWriteError + '_ {
    move |source| CacheWriteError::Io { path: path.to_owned(), source }
}

/// What the parts of this cache must agree on (and a part on disk is checked
/// against before it is reused).
pub fn cache_identity(vocab: usize, spec: &CacheSpec, documents: &Documents) -> CacheIdentity {
    CacheIdentity {
        k: spec.k,
        tail_samples: spec.tail_samples,
        vocab,
        teacher_sha256: spec.teacher_sha256.clone(),
        tokenizer_sha256: spec.tokenizer_sha256.clone(),
        data_fingerprint: documents.fingerprint(),
        documents: documents.len() as u64,
        shard_documents: spec.shard_documents,
        ranking_documents: spec.ranking_documents,
    }
}

fn check_k(spec: &CacheSpec, vocab: usize) -> Result<(), CacheWriteError> {
    if spec.k == 0 || spec.k > vocab {
        return Err(CacheWriteError::K { k: spec.k, vocab });
    }
    if spec.tail_samples > 0 && spec.k == vocab {
        return Err(CacheWriteError::NoTail { tail: spec.tail_samples, vocab });
    }
    if spec.tail_samples > codec::MAX_TAIL {
        return Err(CacheWriteError::TailTooLarge { tail: spec.tail_samples });
    }
    Ok(())
}

/// Writes the cache of `teacher` over `documents` to `dir` (which must not
/// exist), calling `progress(done, total)` per batch of documents.
pub fn write_cache<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Arc<Documents>,
    spec: &CacheSpec,
    dir: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<Manifest, CacheWriteError> {
    let vocab = teacher.config.vocab_size;
    check_k(spec, vocab)?;
    let partial = partial_dir(dir);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let all = 0..documents.len() as u64;
    let encoded = encode_range(teacher, documents, spec, all, &partial, progress)?;
    let identity = cache_identity(vocab, spec, documents);
    let permutation_sha256 = encoded.permutation_sha256.expect("a data set has documents");
    let manifest = cache_manifest(&identity, &permutation_sha256, &encoded.shards);
    manifest.write(&partial.join(datasets::logit_cache::MANIFEST_FILE))?;
    std::fs::rename(&partial, dir).map_err(io(dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

/// Writes rank `rank` of `world`'s part of the cache `dir` to
/// `DIR.parts/rank-RRRRR-of-WWWWW` (which must not exist) and returns its
/// manifest; `progress(done, total)` counts the documents this rank runs the
/// teacher on, the ranking documents included.
///
/// The part is built in a directory of its own temporary name (pid and time:
/// two processes given the same rank never share one) and renamed when
/// complete. Should another process have completed the same part first, its
/// part is returned if it is of the same cache, and this one is dropped.
pub fn write_part<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Arc<Documents>,
    spec: &CacheSpec,
    dir: &Path,
    rank: u32,
    world: u32,
    progress: impl FnMut(u64, u64),
) -> Result<PartManifest, CacheWriteError> {
    let vocab = teacher.config.vocab_size;
    check_k(spec, vocab)?;
    if world == 0 || rank >= world {
        return Err(CacheWriteError::Split(format!("rank {rank} of {world}: expected a rank from 0 to world - 1")));
    }
    // A rank's first batch must start where one process's batch would, or
    // its teacher outputs (and so its shards) could differ in the last bits.
    if spec.shard_documents == 0 || !spec.shard_documents.is_multiple_of(spec.batch_rows as u64) {
        return Err(CacheWriteError::Split(format!(
            "shards of {} documents: a sharded cache needs a multiple of the {} rows per teacher batch",
            spec.shard_documents, spec.batch_rows
        )));
    }
    let identity = cache_identity(vocab, spec, documents);
    let range = rank_range(identity.documents, spec.shard_documents, rank, world);
    let root = parts_dir(dir);
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let name = part_name(rank, world);
    let finished = root.join(&name);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let temporary = root.join(format!("{name}.tmp-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&temporary).map_err(io(&temporary))?;
    let written = encode_range(teacher, documents, spec, range.clone(), &temporary, progress).and_then(|encoded| {
        let part = PartManifest {
            format: PART_FORMAT.to_owned(),
            version: PART_VERSION,
            rank,
            world,
            first_document: range.start,
            end_document: range.end,
            cache: identity,
            permutation_sha256: encoded.permutation_sha256,
            shards: encoded.shards,
        };
        part.write(&temporary.join(PART_MANIFEST_FILE))?;
        sync_dir(&temporary)?;
        Ok(part)
    });
    let part = match written {
        Ok(part) => part,
        Err(e) => {
            // What a failed rank leaves would only be passed over by the merge.
            let _ = std::fs::remove_dir_all(&temporary);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&temporary, &finished) {
        let theirs = finished.join(PART_MANIFEST_FILE);
        if !theirs.is_file() {
            return Err(io(&finished)(e));
        }
        std::fs::remove_dir_all(&temporary).map_err(io(&temporary))?;
        let other = PartManifest::read(&theirs)?;
        if other.cache != part.cache || other.range() != part.range() {
            return Err(CacheWriteError::Split(format!(
                "{}: another process wrote this rank's part, of another cache; remove it and rerun",
                finished.display()
            )));
        }
        return Ok(other);
    }
    sync_dir(&root)?;
    Ok(part)
}

/// Where a cache is built before it is renamed to `dir`.
pub fn partial_dir(dir: &Path) -> PathBuf {
    parts::partial_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), CacheWriteError> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

/// The shards (and `permutation.bin`) of one run of documents.
#[derive(Default)]
struct Encoded {
    /// `None` when the range is empty: nothing is computed or written.
    permutation_sha256: Option<String>,
    shards: Vec<PartShard>,
}

/// Codes the documents `range` (starting on a shard boundary) into `dir`.
///
/// The permutation needs the first documents' top-k before any record is
/// coded, so a rank whose range starts later runs the teacher on them too:
/// at most `ranking_documents` extra documents per rank buy ranks that never
/// wait on one another, and each computes the same permutation (the merge
/// checks that). Those batches are whole, counted from document 0, so they
/// are the batches one process runs.
fn encode_range<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Arc<Documents>,
    spec: &CacheSpec,
    range: Range<u64>,
    dir: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Encoded, CacheWriteError> {
    if range.is_empty() {
        return Ok(Encoded::default());
    }
    let vocab = teacher.config.vocab_size;
    let total = documents.len() as u64;
    let rows = spec.batch_rows.max(1) as u64;
    let ranked = (spec.ranking_documents.min(total).div_ceil(rows) * rows).min(total);
    let rest = range.start.max(ranked)..range.end;
    let work = ranked + rest.end.saturating_sub(rest.start);
    let mut done = 0u64;

    // The ranking documents, those of them in `range` held until the
    // permutation ranked on them exists.
    let mut held: Vec<Vec<TopK>> = Vec::new();
    let mut counts = vec![0u64; vocab];
    run_teacher(teacher, documents, 0..ranked, spec, |first, batch| {
        for (index, topks) in (first..).zip(batch) {
            for topk in &topks {
                for &id in &topk.ids {
                    counts[id as usize] += 1;
                }
            }
            if range.contains(&index) {
                held.push(topks);
            }
        }
        done = first + rows.min(ranked - first);
        progress(done, work);
        Ok(())
    })?;
    let permutation = Permutation::by_frequency(&counts);
    write_permutation(&dir.join(PERMUTATION_FILE), &permutation)?;

    let mut writer = Writer {
        dir,
        spec,
        permutation: &permutation,
        next_shard: range.start / spec.shard_documents,
        next_document: range.start,
        open: None,
        shards: Vec::new(),
    };
    for document in held.drain(..) {
        writer.push(&document)?;
    }
    run_teacher(teacher, documents, rest, spec, |_, batch| {
        done += batch.len() as u64;
        for document in batch {
            writer.push(&document)?;
        }
        progress(done, work);
        Ok(())
    })?;
    Ok(Encoded { permutation_sha256: Some(permutation_sha256(&permutation)), shards: writer.finish()? })
}

/// sha256 of the permutation as `permutation.bin` stores it.
fn permutation_sha256(permutation: &Permutation) -> String {
    use sha2::Digest;
    let bytes: Vec<u8> = permutation.ranks().iter().flat_map(|r| r.to_le_bytes()).collect();
    format!("{:x}", sha2::Sha256::digest(&bytes))
}

/// Runs the teacher over documents `range` in batches of `spec.batch_rows`
/// rows, one document per row padded to the longest document of all, and
/// hands `each(first document, top-k per document)` every batch in order.
fn run_teacher<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Documents,
    range: Range<u64>,
    spec: &CacheSpec,
    mut each: impl FnMut(u64, Vec<Vec<TopK>>) -> Result<(), CacheWriteError>,
) -> Result<(), CacheWriteError> {
    if range.is_empty() {
        return Ok(());
    }
    let own = Documents::from_tokens(
        range.clone().map(|i| {
            let d = documents.get(i as usize);
            (d.tokens, d.trained)
        }),
        "teacher cache",
    )?;
    if own.len() as u64 != range.end - range.start {
        return Err(CacheWriteError::Split(format!("documents {range:?} include an empty one")));
    }
    let batches = Loader::new(
        Arc::new(own),
        LoaderConfig {
            batch_size: spec.batch_rows,
            seq_len: documents.longest(),
            packing: false,
            order: Order { shuffle: false, seed: 0, shard: Shard::SINGLE },
            pad_token: 0,
            epochs: Some(1),
        },
    )?;
    let mut first = range.start;
    for batch in batches {
        let topks = teacher_topk(teacher, &batch, first, spec);
        let n = topks.len() as u64;
        each(first, topks)?;
        first += n;
    }
    Ok(())
}

/// Cuts consecutive documents into shards of `spec.shard_documents`, named by
/// their place in the whole cache.
struct Writer<'a> {
    dir: &'a Path,
    spec: &'a CacheSpec,
    permutation: &'a Permutation,
    next_shard: u64,
    next_document: u64,
    open: Option<(ShardWriter, QualitySum)>,
    shards: Vec<PartShard>,
}

impl Writer<'_> {
    fn push(&mut self, document: &[TopK]) -> Result<(), CacheWriteError> {
        if self.open.as_ref().is_some_and(|(s, _)| s.documents() >= self.spec.shard_documents) {
            self.close()?;
        }
        if self.open.is_none() {
            let path = self.dir.join(shard_file(self.next_shard));
            let shard = ShardWriter::create(&path, self.spec.k, self.spec.tail_samples, self.next_document)?;
            self.open = Some((shard, QualitySum::default()));
            self.next_shard += 1;
        }
        let (shard, quality) = self.open.as_mut().expect("a shard is open");
        for topk in document {
            quality.add(topk, self.spec, self.permutation)?;
        }
        shard.push_document(document, self.permutation)?;
        self.next_document += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), CacheWriteError> {
        if let Some((shard, quality)) = self.open.take() {
            self.shards.push(PartShard { shard: shard.finish()?, quality: quality.sums() });
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<PartShard>, CacheWriteError> {
        self.close()?;
        Ok(self.shards)
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
    fn add(&mut self, topk: &TopK, spec: &CacheSpec, permutation: &Permutation) -> Result<(), CacheWriteError> {
        let (k, tail) = (spec.k, spec.tail_samples);
        self.scratch.clear();
        codec::encode(topk, k, tail, permutation, &mut self.scratch)
            .map_err(|e| datasets::DatasetError::InvalidConfig { what: "teacher cache", message: e.to_string() })?;
        self.record_bytes += self.scratch.len() as u64;
        let (decoded, _) = codec::decode(&self.scratch, k, tail, permutation)
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

    fn sums(self) -> QualitySums {
        QualitySums {
            rest: self.rest,
            abs_error: self.sum_max_abs,
            max_abs_error: self.max_abs,
            record_bytes: self.record_bytes,
        }
    }
}

/// The teacher's top-k at each trained position of each row (row `r` is
/// document `first + r`).
fn teacher_topk<B: Backend>(teacher: &Transformer<B>, batch: &Batch, first: u64, spec: &CacheSpec) -> Vec<Vec<TopK>> {
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
        let (row, position) = (flat as usize / batch.seq_len, flat as usize % batch.seq_len);
        // Where the draws fall depends on the document and position alone, so
        // a cache is the same bytes however its documents were batched or split.
        let seed = ((first + row as u64) << 24) ^ position as u64;
        per_row[row].push(top_k(row_logits, spec.k, spec.tail_samples, seed));
    }
    per_row
}

/// The `k` most likely ids with their log-probabilities and the rest mass,
/// and `m = round(tail · rest)` ids ([`codec::tail_count`]) drawn from the
/// distribution outside them by systematic sampling (one uniform from `seed`,
/// then evenly spaced): each id outside the top-k is drawn `m · p / rest` times
/// in expectation, so giving each draw `rest / m` of the mass is an unbiased
/// estimate of the tail.
pub fn top_k(logits: &[f32], k: usize, tail: usize, seed: u64) -> TopK {
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
    let rest = (1.0 - kept).max(0.0) as f32;
    let tail = sample_tail(logits, log_sum, &order, codec::tail_count(rest, tail), seed);
    TopK { ids: order, logprobs, rest, tail }
}

fn sample_tail(logits: &[f32], log_sum: f64, top: &[u32], count: usize, seed: u64) -> Vec<u32> {
    if count == 0 {
        return Vec::new();
    }
    let mut in_top = vec![false; logits.len()];
    for &id in top {
        in_top[id as usize] = true;
    }
    let prob = |id: usize| (f64::from(logits[id]) - log_sum).exp();
    let outside = || (0..logits.len()).filter(|&id| !in_top[id]);
    let rest: f64 = outside().map(prob).sum();
    let Some(first_outside) = outside().next() else {
        return Vec::new();
    };
    if rest <= 0.0 {
        // No mass to follow; the draws weigh nothing, any id outside will do.
        return vec![first_outside as u32; count];
    }
    let offset = (SplitMix64::new(seed).next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let step = rest / count as f64;
    let mut drawn = Vec::with_capacity(count);
    let mut cumulative = 0.0;
    let mut last = first_outside;
    for id in outside() {
        cumulative += prob(id);
        last = id;
        while drawn.len() < count && (drawn.len() as f64 + offset) * step < cumulative {
            drawn.push(id as u32);
        }
    }
    // Rounding can leave the last point a hair past the summed mass.
    drawn.resize(count, last as u32);
    drawn
}
