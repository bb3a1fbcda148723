//! Fake-quantization: the forward pass sees exactly what `quantize`'s kernels
//! round each weight to, and the straight-through estimator hands the gradient
//! at the rounded weights to the full-precision master weights.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::module::{AutodiffModule, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::TensorData;
use burn::tensor::backend::{AutodiffBackend, Backend};
use datasets::order::SplitMix64;
use datasets::{Documents, Loader, LoaderConfig, Order, Shard};
use quantize::GgmlType;
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::import::{LayerWeight, Weight, transpose};
use train::optim::{load_named, named_tensors};
use train::qat::{FakeQuant, FakeQuantPlan, Ste, fake_quantized};
use train::trainer::{CrossEntropy, Objective};
use train::{CpuBackend, Transformer};

type B = Autodiff<CpuBackend>;
/// Burn's stock ops: another checkpointing strategy makes another autodiff
/// backend type, for which decant's Flex kernels are not dispatched.
type Stock = Autodiff<CpuBackend, BalancedCheckpointing>;

const TYPES: [GgmlType; 8] = train::qat::FAKE_QUANT_TYPES;

/// Rows of 256 or 512 values everywhere, so that every type's blocks fit.
fn config(hidden: usize) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 24,
        hidden_size: hidden,
        intermediate_size: 2 * hidden,
        num_layers: 1,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: hidden / 4,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 32,
        tie_word_embeddings: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

fn model<Bk: Backend>(hidden: usize) -> Transformer<Bk> {
    Bk::seed(&Default::default(), 5);
    config(hidden).init(&Default::default()).unwrap()
}

/// Every matrix: its weight, its parameter name, and whether Burn holds it
/// transposed (`Linear` is `[d_in, d_out]`; a GGUF row is one output's weights).
fn matrices() -> Vec<(Weight, &'static str, bool)> {
    use LayerWeight::*;
    let layer = |kind, name| (Weight::Layer(0, kind), name, true);
    vec![
        (Weight::TokenEmbedding, "embed_tokens.weight", false),
        (Weight::Output, "lm_head.weight", true),
        layer(Q, "layers.0.self_attn.q_proj.weight"),
        layer(K, "layers.0.self_attn.k_proj.weight"),
        layer(V, "layers.0.self_attn.v_proj.weight"),
        layer(O, "layers.0.self_attn.o_proj.weight"),
        layer(Gate, "layers.0.mlp.gate_proj.weight"),
        layer(Up, "layers.0.mlp.up_proj.weight"),
        layer(Down, "layers.0.mlp.down_proj.weight"),
    ]
}

fn plan(ty: GgmlType, ste: Ste) -> FakeQuantPlan {
    FakeQuantPlan {
        tensors: matrices().into_iter().map(|(w, _, _)| (w, ty)).collect(),
        ste,
        threads: 2,
    }
}

/// A parameter's values as GGUF rows, and the row length.
fn gguf_rows(values: &[f32], shape: &[usize], transposed: bool) -> (Vec<f32>, usize) {
    if transposed {
        (transpose(values, shape[0], shape[1]), shape[0])
    } else {
        (values.to_vec(), shape[1])
    }
}

#[test]
fn forward_weights_are_exactly_the_export_rounding() {
    let original = model::<CpuBackend>(256);
    let before = named_tensors(&original);
    for ty in TYPES {
        let after = named_tensors(&fake_quantized(&original, &plan(ty, Ste::Identity)).unwrap());
        for (_, name, transposed) in matrices() {
            let (rows, row) = gguf_rows(&before[name].values, &before[name].shape, transposed);
            let bytes = quantize::quantize_to_vec(ty, &rows, row, None).unwrap();
            let expected = quantize::dequantize_to_vec(ty, &bytes).unwrap();
            let (actual, _) = gguf_rows(&after[name].values, &after[name].shape, transposed);
            let differing = expected
                .iter()
                .zip(&actual)
                .filter(|(e, a)| e.to_bits() != a.to_bits() && !(**e == 0.0 && **a == 0.0))
                .count();
            assert_eq!(
                differing, 0,
                "{ty} {name}: {differing} values differ from dequantize(quantize(w))"
            );
            assert_ne!(expected, rows, "{ty} {name}: the rounding changed nothing");
        }
        for name in ["layers.0.input_layernorm.gamma", "norm.gamma"] {
            assert_eq!(
                before[name], after[name],
                "{ty}: {name} is not a planned weight"
            );
        }
    }
}

fn batch() -> datasets::Batch {
    let tokens: Vec<u32> = (0..20).map(|i| (i * 7 + 3) % 24).collect();
    let mask: Vec<bool> = (0..20).map(|i| i > 0).collect();
    let documents = Documents::from_tokens([(tokens.as_slice(), mask.as_slice())], "qat").unwrap();
    let config = LoaderConfig {
        batch_size: 1,
        seq_len: 20,
        packing: true,
        order: Order {
            shuffle: false,
            seed: 0,
            shard: Shard::SINGLE,
        },
        pad_token: 0,
        epochs: Some(1),
    };
    Loader::new(documents.into(), config)
        .unwrap()
        .next()
        .unwrap()
}

/// The cross-entropy gradient of `objective` on `model`, by parameter.
fn gradients(model: &Transformer<B>, objective: &mut impl Objective<B>) -> GradientsParams {
    let loss = objective
        .loss(model, &batch(), &mut SplitMix64::new(0))
        .unwrap()
        .total;
    GradientsParams::from_grads(loss.backward(), model)
}

fn grad_rows(grads: &GradientsParams, param: &Param<Tensor<B, 2>>, transposed: bool) -> Vec<f32> {
    let grad = grads.get::<CpuBackend, 2>(param.id).expect("a gradient");
    let shape = grad.dims();
    let values = grad.into_data().convert::<f32>().into_vec().unwrap();
    gguf_rows(&values, &shape, transposed).0
}

fn linear_weights(model: &Transformer<B>) -> Vec<(&'static str, &Param<Tensor<B, 2>>, bool)> {
    let layer = &model.layers[0];
    vec![
        ("embed_tokens.weight", &model.embed_tokens.weight, false),
        (
            "lm_head.weight",
            &model.lm_head.as_ref().unwrap().weight,
            true,
        ),
        (
            "layers.0.self_attn.q_proj.weight",
            &layer.self_attn.q_proj.weight,
            true,
        ),
        (
            "layers.0.self_attn.v_proj.weight",
            &layer.self_attn.v_proj.weight,
            true,
        ),
        (
            "layers.0.mlp.gate_proj.weight",
            &layer.mlp.gate_proj.weight,
            true,
        ),
        (
            "layers.0.mlp.down_proj.weight",
            &layer.mlp.down_proj.weight,
            true,
        ),
    ]
}

#[test]
fn straight_through_gradient_is_the_gradient_at_the_rounded_weights() {
    let master = model::<B>(256);
    for ty in [GgmlType::Q4_0, GgmlType::Q4K] {
        let mut qat = FakeQuant::new(CrossEntropy, plan(ty, Ste::Identity));
        let through = gradients(&master, &mut qat);
        let rounded_values = named_tensors(&fake_quantized(&master.valid(), qat.plan()).unwrap());
        let rounded = load_named(master.clone(), &rounded_values, &Default::default()).unwrap();
        let direct = gradients(&rounded, &mut CrossEntropy);
        for (name, param, transposed) in linear_weights(&master) {
            let a = grad_rows(&through, param, transposed);
            let b = grad_rows(&direct, param, transposed);
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            let scale = b.iter().map(|v| v.abs()).fold(0f32, f32::max);
            assert!(scale > 0.0, "{ty} {name}: no gradient");
            assert!(
                worst <= 1e-6 * scale,
                "{ty} {name}: STE gradient differs by {worst} (scale {scale})"
            );
        }
    }
}

#[test]
fn clipped_estimator_zeroes_exactly_the_clipped_weights() {
    let master = model::<B>(256);
    for ty in [GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K] {
        let identity = gradients(
            &master,
            &mut FakeQuant::new(CrossEntropy, plan(ty, Ste::Identity)),
        );
        let clipped = gradients(
            &master,
            &mut FakeQuant::new(CrossEntropy, plan(ty, Ste::Clipped)),
        );
        let values = named_tensors(&master.valid());
        let mut n_clipped = 0;
        for (name, param, transposed) in linear_weights(&master) {
            let (rows, row) = gguf_rows(&values[name].values, &values[name].shape, transposed);
            let bytes = quantize::quantize_to_vec(ty, &rows, row, None).unwrap();
            let inside = quantize::inside_range(ty, &rows, row, &bytes).unwrap();
            let (full, masked) = (
                grad_rows(&identity, param, transposed),
                grad_rows(&clipped, param, transposed),
            );
            for (i, &inside) in inside.iter().enumerate() {
                let expected = if inside { full[i] } else { 0.0 };
                assert_eq!(masked[i], expected, "{ty} {name}[{i}] (inside: {inside})");
                n_clipped += usize::from(!inside);
            }
        }
        if ty == GgmlType::Q4_0 {
            assert!(n_clipped > 0, "{ty}: the test weights clip nowhere");
        }
    }
}

/// The fake-quantized values of four matrices (embedding, head, a projection
/// of attention and of the MLP), and the gradients with respect to their
/// master weights of a weighted sum of those values.
fn weighted_sum_through<Bk: AutodiffBackend>(ty: GgmlType, ste: Ste) -> [Vec<Vec<f32>>; 2] {
    let master = model::<Bk>(256);
    let rounded = fake_quantized(&master, &plan(ty, ste)).unwrap();
    let pick = |m: &Transformer<Bk>| {
        let layer = &m.layers[0];
        [
            m.embed_tokens.weight.val(),
            m.lm_head.as_ref().unwrap().weight.val(),
            layer.self_attn.q_proj.weight.val(),
            layer.mlp.down_proj.weight.val(),
        ]
    };
    let values = |t: Tensor<Bk::InnerBackend, 2>| t.into_data().convert::<f32>().to_vec().unwrap();
    let mut loss = Tensor::<Bk, 1>::zeros([1], &Default::default());
    for (i, q) in pick(&rounded).into_iter().enumerate() {
        let n = q.shape().num_elements();
        let coefficients: Vec<f32> = (0..n).map(|k| ((k * 7919 + i) % 13) as f32 - 6.0).collect();
        let coefficients = Tensor::from_data(TensorData::new(coefficients, q.shape()), &q.device());
        loss = loss + (q * coefficients).sum();
    }
    let grads = loss.backward();
    [
        pick(&rounded).map(|q| values(q.inner())).to_vec(),
        pick(&master)
            .map(|w| values(w.grad(&grads).expect("a gradient")))
            .to_vec(),
    ]
}

#[test]
fn straight_through_kernel_matches_the_stock_ops() {
    for ste in [Ste::Identity, Ste::Clipped] {
        let [kernel_values, kernel_grads] = weighted_sum_through::<B>(GgmlType::Q4_0, ste);
        let [stock_values, stock_grads] = weighted_sum_through::<Stock>(GgmlType::Q4_0, ste);
        assert!(
            kernel_values == stock_values,
            "{ste:?}: forward values differ"
        );
        assert!(kernel_grads == stock_grads, "{ste:?}: gradients differ");
        if ste == Ste::Clipped {
            let zeros = kernel_grads.iter().flatten().filter(|g| **g == 0.0).count();
            assert!(zeros > 0, "the clip mask zeroed no gradient");
        }
    }
}

#[test]
fn rows_a_type_cannot_hold_are_an_error_naming_the_tensor() {
    let small = model::<CpuBackend>(64);
    let plan = FakeQuantPlan {
        tensors: vec![(Weight::Layer(0, LayerWeight::Gate), GgmlType::Q4K)],
        ste: Ste::Identity,
        threads: 1,
    };
    let message = fake_quantized(&small, &plan).unwrap_err().to_string();
    assert!(
        message.contains("model.layers.0.mlp.gate_proj.weight") && message.contains("q4_K"),
        "{message}"
    );
    let norm = FakeQuantPlan {
        tensors: vec![(Weight::OutputNorm, GgmlType::Q8_0)],
        ..plan
    };
    let message = fake_quantized(&small, &norm).unwrap_err().to_string();
    assert!(
        message.contains("model.norm.weight") && message.contains("2-D"),
        "{message}"
    );
}
