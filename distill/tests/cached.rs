//! Distillation from a teacher cache against the online teacher: with the whole
//! vocabulary cached the losses agree up to the cache's value codes; with top-k
//! the rest bucket keeps them close; and a run trains from the cache.

use std::sync::Arc;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use datasets::logit_cache::TeacherCache;
use datasets::order::SplitMix64;
use datasets::{Documents, Loader, LoaderConfig, Order, Shard};
use distill::teacher_cache::{CacheSpec, top_k, write_cache};
use distill::{CachedDistillation, Divergence, OnlineDistillation};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::trainer::{Objective, Quiet, TrainConfig, TrainData, Trainer};
use train::{CpuBackend, Transformer};

type B = Autodiff<CpuBackend>;
const VOCAB: usize = 40;

fn model(seed: u64, layers: usize) -> Transformer<B> {
    B::seed(&Default::default(), seed);
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: VOCAB,
        hidden_size: 32,
        intermediate_size: 48,
        num_layers: layers,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope: RopeConfig { theta: 10_000.0, scaling: RopeScaling::None },
        max_position_embeddings: 32,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
    .init(&Default::default())
    .unwrap()
}

/// A teacher with sharp distributions, as trained models have: random tiny
/// models are nearly uniform, where 6-bit value codes would dominate the KL.
fn teacher() -> Transformer<B> {
    let mut teacher = model(1, 2);
    let weight = teacher.embed_tokens.weight.val().mul_scalar(6.0).detach();
    teacher.embed_tokens.weight = burn::module::Param::from_tensor(weight);
    teacher
}

fn documents() -> Arc<Documents> {
    let docs: Vec<(Vec<u32>, Vec<bool>)> = (0..12u32)
        .map(|i| {
            let tokens: Vec<u32> = (0..(6 + i % 5)).map(|k| 1 + (i * 7 + k * 3) % 39).collect();
            // The first tokens are a prompt, not trained.
            let trained = (0..tokens.len()).map(|j| j >= 2).collect();
            (tokens, trained)
        })
        .collect();
    Arc::new(
        Documents::from_tokens(docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice())), "cached").unwrap(),
    )
}

fn loader_config() -> LoaderConfig {
    LoaderConfig {
        batch_size: 3,
        seq_len: 24,
        packing: true,
        order: Order { shuffle: true, seed: 5, shard: Shard::SINGLE },
        pad_token: 0,
        epochs: None,
    }
}

fn cache(teacher: &Transformer<B>, documents: &Arc<Documents>, k: usize, dir: &std::path::Path) -> TeacherCache {
    let spec = CacheSpec {
        k,
        tail_samples: 0,
        teacher_sha256: "teacher".into(),
        tokenizer_sha256: "tokenizer".into(),
        shard_documents: 5,
        ranking_documents: 4,
        batch_rows: 2,
    };
    let manifest = write_cache(&teacher.valid(), documents, &spec, dir, |_, _| {}).unwrap();
    assert_eq!(manifest.documents, 12);
    assert_eq!(manifest.shards.len(), 3, "12 documents in shards of 5");
    let trained: usize = (0..documents.len()).map(|i| documents.get(i).trained[1..].iter().filter(|&&t| t).count()).sum();
    assert_eq!(manifest.positions, trained as u64);
    let cache = TeacherCache::open(dir).unwrap();
    cache.verify().unwrap();
    cache
}

fn losses(student: &Transformer<B>, objective: &mut impl Objective<B>) -> Vec<f64> {
    let batches: Vec<_> = Loader::new(documents(), loader_config()).unwrap().take(4).collect();
    batches
        .iter()
        .map(|batch| {
            let loss = objective.loss(student, batch, &mut SplitMix64::new(0)).unwrap();
            loss.components["kd"]
        })
        .collect()
}

#[test]
fn a_whole_vocabulary_cache_gives_the_online_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (teacher, student, documents) = (teacher(), model(2, 1), documents());
    let cache = cache(&teacher, &documents, VOCAB, &dir.path().join("cache"));
    assert!(cache.manifest().quality.mean_rest < 1e-6);
    for divergence in [Divergence::ForwardKl, Divergence::ReverseKl, Divergence::Jsd { beta: 0.5 }] {
        let cache = TeacherCache::open(&dir.path().join("cache")).unwrap();
        let mut cached = CachedDistillation::new(cache, Arc::clone(&documents), divergence, 0.0).unwrap();
        let mut online = OnlineDistillation::<B>::new(teacher.valid(), divergence, 1.0, 0.0).unwrap();
        for (c, o) in losses(&student, &mut cached).iter().zip(losses(&student, &mut online)) {
            assert!((c - o).abs() <= 0.01 * o.abs() + 1e-4, "{divergence:?}: cached {c} vs online {o}");
        }
    }
}

#[test]
fn a_top_k_cache_stays_close_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let (teacher, student, documents) = (teacher(), model(2, 1), documents());
    let cache = cache(&teacher, &documents, 8, &dir.path().join("cache"));
    assert!(cache.manifest().quality.mean_rest > 0.0);
    let mut cached = CachedDistillation::new(cache, Arc::clone(&documents), Divergence::ForwardKl, 0.0).unwrap();
    let mut online = OnlineDistillation::<B>::new(teacher.valid(), Divergence::ForwardKl, 1.0, 0.0).unwrap();
    for (c, o) in losses(&student, &mut cached).iter().zip(losses(&student, &mut online)) {
        // Merging tokens into one bucket never raises a KL (up to the value codes).
        assert!(c.is_finite() && *c <= 1.02 * o + 1e-4, "{c} vs {o}");
        assert!(*c > 0.5 * o, "{c} vs {o}");
    }

    let config = TrainConfig { steps: 6, lr: 5e-3, checkpoint_every: 6, ..TrainConfig::default() };
    let data = TrainData { documents: Arc::clone(&documents), loader: loader_config() };
    let run = dir.path().join("run");
    let mut trainer = Trainer::start(config, student, data, &run).unwrap();
    let summary = trainer.run(&mut cached, &mut Quiet, None).unwrap();
    assert_eq!(summary.steps, 6);
    let metrics = train::trainer::read_metrics(&run.join("metrics.jsonl")).unwrap();
    assert!(metrics.last().unwrap().components["kd"] < metrics[0].components["kd"], "{metrics:?}");
}

#[test]
fn a_cache_of_other_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = teacher();
    let cache = cache(&teacher, &documents(), 8, &dir.path().join("cache"));
    let other: Vec<(Vec<u32>, Vec<bool>)> = vec![(vec![1, 2, 3], vec![true; 3])];
    let other = Arc::new(Documents::from_tokens(other.iter().map(|(t, m)| (t.as_slice(), m.as_slice())), "other").unwrap());
    let err = CachedDistillation::new(cache, other, Divergence::ForwardKl, 0.5).err().unwrap().to_string();
    assert!(err.contains("was cached from other data"), "{err}");
}

#[test]
fn top_k_keeps_the_most_likely_ids_and_the_rest_mass() {
    let logits = [0.5f32, 3.0, -1.0, 3.0, 2.0];
    let topk = top_k(&logits, 3, 0, 0);
    assert_eq!(topk.ids, [1, 3, 4]);
    let total: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
    for (id, lp) in topk.ids.iter().zip(&topk.logprobs) {
        let expected = (f64::from(logits[*id as usize]).exp() / total).ln();
        assert!((f64::from(*lp) - expected).abs() < 1e-6);
    }
    let rest = (0.5f64.exp() + (-1.0f64).exp()) / total;
    assert!((f64::from(topk.rest) - rest).abs() < 1e-6);
}

/// Each batch's loss parts and the gradient of its total on the student's
/// (tied) embedding.
fn loss_and_gradient(student: &Transformer<B>, objective: &mut impl Objective<B>) -> Vec<(Vec<f64>, Vec<f32>)> {
    let batches: Vec<_> = Loader::new(documents(), loader_config()).unwrap().take(3).collect();
    batches
        .iter()
        .map(|batch| {
            let loss = objective.loss(student, batch, &mut SplitMix64::new(0)).unwrap();
            let mut parts: Vec<f64> = loss.components.values().copied().collect();
            parts.push(loss.total.clone().into_scalar().into());
            let grads = loss.total.backward();
            let grad = student.embed_tokens.weight.grad(&grads).unwrap();
            (parts, grad.into_data().convert::<f32>().into_vec().unwrap())
        })
        .collect()
}

/// The loss through the head a few positions at a time is the loss through it
/// at once, online and cached, in value and gradient.
#[test]
fn chunks_of_positions_give_the_whole_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (teacher, student, documents) = (teacher(), model(2, 1), documents());
    cache(&teacher, &documents, 8, &dir.path().join("cache"));
    let divergence = Divergence::Jsd { beta: 0.3 };
    let cached = |chunk_logits| {
        let cache = TeacherCache::open(&dir.path().join("cache")).unwrap();
        CachedDistillation::new(cache, Arc::clone(&documents), divergence, 0.4)
            .unwrap()
            .with_chunk_logits(chunk_logits)
    };
    let online = |chunk_logits| {
        OnlineDistillation::<B>::new(teacher.valid(), divergence, 2.0, 0.4)
            .unwrap()
            .with_chunk_logits(chunk_logits)
    };
    let pairs = [
        (loss_and_gradient(&student, &mut cached(2 * VOCAB)), loss_and_gradient(&student, &mut cached(usize::MAX))),
        (loss_and_gradient(&student, &mut online(3 * VOCAB)), loss_and_gradient(&student, &mut online(usize::MAX))),
    ];
    for (chunked, whole) in pairs {
        for ((parts, grad), (whole_parts, whole_grad)) in chunked.iter().zip(&whole) {
            for (a, b) in parts.iter().zip(whole_parts) {
                assert!((a - b).abs() <= 1e-5 * b.abs() + 1e-6, "chunked {parts:?} vs whole {whole_parts:?}");
            }
            for (a, b) in grad.iter().zip(whole_grad) {
                assert!((a - b).abs() <= 1e-5, "gradient: chunked {a} vs whole {b}");
            }
        }
    }
}
