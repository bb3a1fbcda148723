//! decant's Flex kernels against Burn's stock ops, through the whole model:
//! the same model trained a step on `Autodiff<Flex>` (where the kernels run)
//! and on Flex under autodiff with another checkpointing strategy (which the
//! kernels leave to the stock ops) has the same loss and the same gradient
//! for every parameter. The batches pack several documents per row, and the
//! configurations cover grouped key/value heads, Qwen3's query/key norms,
//! biases, a sliding window and untied heads.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use datasets::order::SplitMix64;
use datasets::{Batch, Documents, Loader, LoaderConfig, Order, Shard};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::trainer::{CrossEntropy, Objective};
use train::{CpuBackend, Transformer};

type Kernels = Autodiff<CpuBackend>;
type Stock = Autodiff<CpuBackend, BalancedCheckpointing>;

fn config(
    architecture: Architecture,
    tied: bool,
    bias: bool,
    window: Option<usize>,
) -> ModelConfig {
    ModelConfig {
        architecture,
        vocab_size: 61,
        hidden_size: 48,
        intermediate_size: 80,
        num_layers: 2,
        num_heads: 6,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 128,
        tie_word_embeddings: tied,
        qkv_bias: bias,
        o_bias: bias,
        mlp_bias: bias,
        sliding_window: window,
    }
}

/// Rows of 40 tokens, each packing documents of 7 to 30 tokens (and padding).
fn batches(packing: bool) -> Vec<Batch> {
    let docs: Vec<(Vec<u32>, Vec<bool>)> = (0..10u32)
        .map(|d| {
            let len = 7 + (d as usize * 11) % 24;
            let tokens = (0..len as u32).map(|k| 1 + (d * 13 + k * 7) % 60).collect();
            let trained = (0..len).map(|k| k >= 2).collect();
            (tokens, trained)
        })
        .collect();
    let documents = Documents::from_tokens(
        docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice())),
        "kernels",
    )
    .unwrap();
    let config = LoaderConfig {
        batch_size: 3,
        seq_len: 40,
        packing,
        order: Order {
            shuffle: false,
            seed: 0,
            shard: Shard::SINGLE,
        },
        pad_token: 0,
        epochs: Some(1),
    };
    Loader::new(Arc::new(documents), config)
        .unwrap()
        .take(2)
        .collect()
}

/// The loss of `batch` and the gradient of every parameter, by name.
fn loss_and_gradients<B: AutodiffBackend>(
    config: &ModelConfig,
    batch: &Batch,
) -> (f64, BTreeMap<String, Vec<f32>>) {
    B::seed(&Default::default(), 17);
    let model: Transformer<B> = config.init(&Default::default()).unwrap();
    let loss = CrossEntropy
        .loss(&model, batch, &mut SplitMix64::new(0))
        .unwrap()
        .total;
    let value = loss.clone().into_scalar().elem::<f64>();
    let grads = loss.mul_scalar(0.25).backward();
    struct Collect<'a, B: AutodiffBackend> {
        grads: &'a B::Gradients,
        path: Vec<String>,
        out: BTreeMap<String, Vec<f32>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_, B> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let grad = param
                .val()
                .grad(self.grads)
                .expect("every parameter has a gradient");
            self.out.insert(
                self.path.join("."),
                grad.into_data().convert::<f32>().into_vec().unwrap(),
            );
        }
    }
    let mut collect = Collect::<B> {
        grads: &grads,
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    model.visit(&mut collect);
    (value, collect.out)
}

fn kernels_match_stock(config: ModelConfig, packing: bool) {
    for batch in batches(packing) {
        let (kernel_loss, kernel) = loss_and_gradients::<Kernels>(&config, &batch);
        let (stock_loss, stock) = loss_and_gradients::<Stock>(&config, &batch);
        assert!(
            (kernel_loss - stock_loss).abs() <= 1e-5 * stock_loss.abs(),
            "{config:?}: loss {kernel_loss} with the kernels, {stock_loss} with stock ops"
        );
        assert_eq!(
            kernel.keys().collect::<Vec<_>>(),
            stock.keys().collect::<Vec<_>>()
        );
        for (name, expected) in &stock {
            let got = &kernel[name];
            let largest = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in got.iter().zip(expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 + 2e-4 * largest,
                    "{:?} {name}[{i}]: kernels {a}, stock ops {b}",
                    config.architecture
                );
            }
        }
    }
}

#[test]
fn grouped_heads_over_packed_documents() {
    kernels_match_stock(config(Architecture::Llama, true, false, None), true);
}

#[test]
fn one_document_per_row_and_an_untied_head() {
    kernels_match_stock(config(Architecture::Llama, false, false, None), false);
}

#[test]
fn qwen3_query_and_key_norms() {
    kernels_match_stock(config(Architecture::Qwen3, true, false, None), true);
}

#[test]
fn biases_and_a_sliding_window() {
    kernels_match_stock(config(Architecture::Qwen2, false, true, Some(9)), true);
}

/// Plain Flex (forward only, as teachers, evaluation and prefill run) gives
/// the stock ops' logits over packed rows, and decoding from the cache the
/// kernels filled gives the logits of the whole sequence at once.
#[test]
fn forward_only_kernels_and_their_cache() {
    use burn::tensor::backend::Backend;
    use burn::tensor::{Int, TensorData};
    use train::model::LogitsFor;
    use train::trainer::{layout, token_tensor};
    type Plain = CpuBackend;
    for config in [
        config(Architecture::Llama, true, false, None),
        config(Architecture::Qwen3, false, true, Some(9)),
    ] {
        for batch in batches(true) {
            Plain::seed(&Default::default(), 17);
            let plain: Transformer<Plain> = config.init(&Default::default()).unwrap();
            let stock: Transformer<Stock> = train::optim::load_named(
                config.init(&Default::default()).unwrap(),
                &train::optim::named_tensors(&plain),
                &Default::default(),
            )
            .unwrap();
            let a: Vec<f32> = plain
                .hidden_states_rows(token_tensor(&batch, &Default::default()), layout(&batch))
                .into_data()
                .to_vec()
                .unwrap();
            let b: Vec<f32> = stock
                .hidden_states_rows(token_tensor(&batch, &Default::default()), layout(&batch))
                .into_data()
                .to_vec()
                .unwrap();
            let largest = b.iter().fold(0f32, |m: f32, v: &f32| m.max(v.abs()));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 * largest.max(1.0),
                    "{:?} hidden[{i}]: {x} vs {y}",
                    config.architecture
                );
            }
        }
        Plain::seed(&Default::default(), 17);
        let model: Transformer<Plain> = config.init(&Default::default()).unwrap();
        let ids: Vec<i64> = (0..12).map(|i| 1 + (i * 7) % 60).collect();
        let tokens = |ids: &[i64]| {
            Tensor::<Plain, 2, Int>::from_data(
                TensorData::new(ids.to_vec(), [1, ids.len()]),
                &Default::default(),
            )
        };
        let whole: Vec<f32> = model
            .forward(tokens(&ids))
            .narrow(1, 11, 1)
            .into_data()
            .to_vec()
            .unwrap();
        let mut cache = model.new_cache();
        model.forward_with_cache(tokens(&ids[..9]), &mut cache, LogitsFor::Last);
        model.forward_with_cache(tokens(&ids[9..11]), &mut cache, LogitsFor::Last);
        let last: Vec<f32> = model
            .forward_with_cache(tokens(&ids[11..]), &mut cache, LogitsFor::Last)
            .into_data()
            .to_vec()
            .unwrap();
        for (i, (x, y)) in last.iter().zip(&whole).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4,
                "{:?} logit {i}: decoded {x}, whole {y}",
                config.architecture
            );
        }
    }
}
