//! The output head's loss computed a chunk of positions at a time has the value
//! and the gradients of the loss on the whole logits at once, for a tied and an
//! untied head (with a bias), on both its paths: decant's Flex kernels
//! (`Autodiff<Flex>`) and Burn's stock ops (any other backend; here Flex
//! under autodiff with another checkpointing strategy). Its peak memory does
//! not grow with positions × vocabulary as the whole-logits loss's does.

use std::collections::BTreeMap;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, ElementConversion, Tensor, TensorData};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::model::RowLayout;
use train::trainer::{
    CHUNK_LOGITS, LossSum, chunk_rows, chunked_cross_entropy, chunked_head_loss, cross_entropy_sum,
};
use train::{CpuBackend, TrainError, Transformer};

#[global_allocator]
static ALLOC: testkit::PeakAlloc = testkit::PeakAlloc;

type B = Autodiff<CpuBackend>;
/// The same arithmetic as `B`, which the kernels do not claim.
type Stock =
    Autodiff<CpuBackend, burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing>;

fn config(vocab: usize, hidden: usize, tied: bool) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: 2 * hidden,
        num_layers: 1,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: hidden / 2,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 64,
        tie_word_embeddings: tied,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

fn model<B: AutodiffBackend>(tied: bool) -> Transformer<B> {
    B::seed(&Default::default(), 3);
    let mut model = config(37, 16, tied).init::<B>(&Default::default()).unwrap();
    if let Some(head) = model.lm_head.as_mut() {
        let bias = Tensor::random([37], Distribution::Normal(0.0, 0.5), &Default::default());
        head.bias = Some(Param::from_tensor(bias));
    }
    model
}

fn targets(n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| (i * 7 + 2) % 37).collect()
}

/// Cross-entropy plus a term that reads every logit, so that a chunk's
/// gradient is not that of cross-entropy alone.
fn loss_of<B: AutodiffBackend>(logits: Tensor<B, 2>, targets: &[i64]) -> Tensor<B, 1> {
    let spread = log_softmax(logits.clone(), 1)
        .exp()
        .powi_scalar(2)
        .sum()
        .mul_scalar(3.0);
    cross_entropy_sum(logits, targets) + spread
}

fn gradients<B: AutodiffBackend>(
    model: &Transformer<B>,
    loss: Tensor<B, 1>,
) -> BTreeMap<String, Vec<f32>> {
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
            if let Some(grad) = param.val().grad(self.grads) {
                let values = grad.into_data().convert::<f32>().into_vec().unwrap();
                self.out.insert(self.path.join("."), values);
            }
        }
    }
    let grads = loss.backward();
    let mut collect = Collect {
        grads: &grads,
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    model.visit(&mut collect);
    collect.out
}

/// Final-norm hidden states of 11 positions, differentiable back to the model.
fn hidden<B: AutodiffBackend>(model: &Transformer<B>) -> Tensor<B, 2> {
    let tokens: Vec<i64> = (0..11).map(|i| (i * 5 + 1) % 37).collect();
    let positions: Vec<u32> = (0..11).collect();
    let layout = RowLayout {
        rows: 1,
        seq: 11,
        position_ids: &positions,
        document_ids: &[1; 11],
    };
    let tokens = Tensor::from_data(TensorData::new(tokens, [1, 11]), &Default::default());
    model.hidden_states_rows(tokens, layout).squeeze_dim(0)
}

/// The chunked loss on backend `C` against the whole-logits loss on `B`.
fn chunked_matches_whole<C: AutodiffBackend>(tied: bool) {
    let targets = targets(11);
    let whole_model = model::<B>(tied);
    let whole_logits = whole_model
        .output_logits(hidden(&whole_model).unsqueeze_dim(0))
        .squeeze_dim(0);
    let whole_loss = loss_of(whole_logits, &targets);
    let whole_value = whole_loss.clone().into_scalar().elem::<f64>();
    let whole = gradients(&whole_model, whole_loss);

    let chunked_model = model::<C>(tied);
    let mut seen = Vec::new();
    let loss = chunked_head_loss(
        &chunked_model,
        hidden(&chunked_model),
        3,
        |logits, positions| {
            seen.push(positions.clone());
            let total = loss_of(logits, &targets[positions]);
            let value = total.clone().into_scalar().elem::<f64>();
            Ok::<_, TrainError>(LossSum {
                total,
                components: BTreeMap::from([("part", value)]),
            })
        },
    )
    .unwrap();
    assert_eq!(seen, [0..3, 3..6, 6..9, 9..11]);
    let value = loss.total.clone().into_scalar().elem::<f64>();
    assert!(
        (value - whole_value).abs() < 1e-4 * whole_value.abs(),
        "chunked {value}, whole {whole_value}"
    );
    assert!((loss.components["part"] - whole_value).abs() < 1e-4 * whole_value.abs());
    same_gradients(
        &whole,
        &gradients(&chunked_model, loss.total.div_scalar(2.0)),
        0.5,
    );
}

/// `got` is `expected` times `scale`, parameter by parameter.
fn same_gradients(
    expected: &BTreeMap<String, Vec<f32>>,
    got: &BTreeMap<String, Vec<f32>>,
    scale: f32,
) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (name, expected) in expected {
        let got = &got[name];
        let largest = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in expected.iter().zip(got).enumerate() {
            let a = a * scale;
            assert!(
                (a - b).abs() <= 1e-5 + 1e-4 * largest,
                "{name}[{i}]: whole {a}, chunked {b}"
            );
        }
    }
}

#[test]
fn chunked_loss_has_the_whole_loss_and_gradients_with_an_untied_head_and_bias() {
    chunked_matches_whole::<B>(false);
    chunked_matches_whole::<Stock>(false);
}

#[test]
fn chunked_loss_has_the_whole_loss_and_gradients_with_a_tied_head() {
    chunked_matches_whole::<B>(true);
    chunked_matches_whole::<Stock>(true);
}

/// Cross-entropy's own chunked path (written in place on Flex) against the
/// whole-logits cross-entropy, both heads, both paths.
#[test]
fn chunked_cross_entropy_has_the_whole_loss_and_gradients() {
    fn check<C: AutodiffBackend>(tied: bool) {
        let targets = targets(11);
        let whole_model = model::<B>(tied);
        let logits = whole_model
            .output_logits(hidden(&whole_model).unsqueeze_dim(0))
            .squeeze_dim(0);
        let whole_loss = cross_entropy_sum(logits, &targets);
        let whole_value = whole_loss.clone().into_scalar().elem::<f64>();
        let whole = gradients(&whole_model, whole_loss);
        let chunked_model = model::<C>(tied);
        let loss =
            chunked_cross_entropy(&chunked_model, hidden(&chunked_model), &targets, 4).unwrap();
        let value = loss.total.clone().into_scalar().elem::<f64>();
        assert!(
            (value - whole_value).abs() < 1e-5 * whole_value.abs(),
            "chunked {value}, whole {whole_value}"
        );
        assert!((loss.components["ce"] - whole_value).abs() < 1e-5 * whole_value.abs());
        same_gradients(
            &whole,
            &gradients(&chunked_model, loss.total.mul_scalar(3.0)),
            3.0,
        );
    }
    for tied in [true, false] {
        check::<B>(tied);
        check::<Stock>(tied);
    }
}

/// How the memory test computes the loss.
#[derive(Clone, Copy, Debug)]
enum Way {
    Whole,
    Chunked,
    ChunkedCrossEntropy,
}

/// Peak heap of one loss-and-backward over `positions` final-norm states at
/// the reference vocabulary, on this thread, on backend `C`.
fn peak_of<C: AutodiffBackend>(positions: usize, way: Way) -> usize {
    let vocab = 49_152;
    C::seed(&Default::default(), 5);
    let model = config(vocab, 64, true)
        .init::<C>(&Default::default())
        .unwrap()
        .valid();
    let model: Transformer<C> = Transformer::from_inner(model);
    let targets = targets(positions)
        .into_iter()
        .map(|t| t * 1291 % vocab as i64)
        .collect::<Vec<_>>();
    let hidden = Tensor::<C, 2>::random(
        [positions, 64],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    )
    .require_grad();
    let rows = chunk_rows(vocab, CHUNK_LOGITS);
    let ((), peak) = testkit::peak_during(|| {
        let loss = match way {
            Way::Whole => cross_entropy_sum(
                model
                    .output_logits(hidden.clone().unsqueeze_dim(0))
                    .squeeze_dim(0),
                &targets,
            ),
            Way::Chunked => {
                chunked_head_loss(&model, hidden.clone(), rows, |logits, positions| {
                    let total = cross_entropy_sum(logits, &targets[positions]);
                    Ok::<_, TrainError>(LossSum {
                        total,
                        components: BTreeMap::new(),
                    })
                })
                .unwrap()
                .total
            }
            Way::ChunkedCrossEntropy => {
                chunked_cross_entropy(&model, hidden.clone(), &targets, rows)
                    .unwrap()
                    .total
            }
        };
        let grads = loss.backward();
        assert!(hidden.grad(&grads).is_some());
    });
    peak
}

#[test]
fn chunked_loss_memory_does_not_grow_with_positions_times_vocabulary() {
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let whole = peak_of::<B>(1024, Way::Whole);
    let logits_bytes = 1024 * 49_152 * 4;
    assert!(
        whole >= 2 * logits_bytes,
        "the whole-logits loss peaked at {} MiB",
        mib(whole)
    );
    let mut report = format!(
        "loss + backward at vocab 49152, hidden 64: whole logits {:.0} MiB at 1024 positions",
        mib(whole)
    );
    for (path, way, short, long) in [
        (
            "kernels",
            Way::Chunked,
            peak_of::<B>(1024, Way::Chunked),
            peak_of::<B>(4096, Way::Chunked),
        ),
        (
            "kernels",
            Way::ChunkedCrossEntropy,
            peak_of::<B>(1024, Way::ChunkedCrossEntropy),
            peak_of::<B>(4096, Way::ChunkedCrossEntropy),
        ),
        (
            "stock ops",
            Way::Chunked,
            peak_of::<Stock>(1024, Way::Chunked),
            peak_of::<Stock>(4096, Way::Chunked),
        ),
    ] {
        report += &format!(
            "; {way:?} ({path}) {:.0} MiB at 1024, {:.0} MiB at 4096",
            mib(short),
            mib(long)
        );
        assert!(
            short * 3 < whole,
            "{way:?} ({path}) {} MiB, whole {} MiB",
            mib(short),
            mib(whole)
        );
        assert!(
            (long as f64) < 1.2 * short as f64,
            "4x the positions took {way:?} ({path}) from {} to {} MiB",
            mib(short),
            mib(long)
        );
    }
    eprintln!("{report}");
}
