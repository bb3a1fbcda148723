//! The model's forward and backward passes on Burn's WGPU backend agree with the
//! CPU backend. Without a GPU this runs on Mesa's software Vulkan driver
//! (`tools/setup-vulkan.sh`); the model is tiny because every new kernel shape
//! costs a shader compilation there.
#![cfg(feature = "wgpu")]

use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use train::backend::WgpuBackend;
use train::{Architecture, CpuBackend, ModelConfig, RopeConfig, RopeScaling, Transformer};

type Cpu = Autodiff<CpuBackend>;
type Gpu = Autodiff<WgpuBackend>;

const BATCH: usize = 2;
const SEQ: usize = 8;
/// Elementwise, relative to the tensor's largest magnitude: f32 sums taken in a
/// different order differ by a few ulps of the largest terms, not of each element.
const TOLERANCE: f32 = 1e-4;

fn tiny_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 64,
        tie_word_embeddings: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

/// Every float parameter's values, in the order the module visits them.
struct Values(Vec<TensorData>);

impl<B: Backend> ModuleVisitor<B> for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().into_data());
    }
}

/// Every float parameter's gradient, in the order the module visits them.
struct Grads<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    found: Vec<TensorData>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let grad = param
            .val()
            .grad(self.grads)
            .expect("every parameter has a gradient");
        self.found.push(grad.into_data());
    }
}

/// Replaces each float parameter's values with the next of `values`.
struct Place<I>(I);

impl<B: Backend, I: Iterator<Item = TensorData>> ModuleMapper<B> for Place<I> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let values = self.0.next().expect("as many values as parameters");
        param.map(|tensor| {
            assert_eq!(values.shape, tensor.shape(), "parameter shapes match");
            Tensor::from_data(values, &tensor.device()).require_grad()
        })
    }
}

/// The same model on another backend: a fresh one with `model`'s weights.
fn copy_to<B: Backend>(model: &Transformer<Cpu>, device: &B::Device) -> Transformer<B> {
    let mut values = Values(Vec::new());
    model.visit(&mut values);
    let count = values.0.len();
    let mut place = Place(values.0.into_iter());
    let copy = model.config.init::<B>(device).unwrap().map(&mut place);
    assert!(place.0.next().is_none(), "all {count} parameters placed");
    copy
}

/// Logits and every parameter's gradient of the mean cross-entropy of
/// predicting each next token.
fn forward_backward<B: AutodiffBackend>(model: &Transformer<B>) -> (TensorData, Vec<TensorData>) {
    let device = model.devices()[0].clone();
    let vocab = model.config.vocab_size as i64;
    let ids: Vec<i64> = (0..(BATCH * (SEQ + 1)) as i64)
        .map(|i| (i * 37 + 11) % vocab)
        .collect();
    let rows: Vec<&[i64]> = ids.chunks(SEQ + 1).collect();
    let inputs: Vec<i64> = rows.iter().flat_map(|r| &r[..SEQ]).copied().collect();
    let targets: Vec<i64> = rows.iter().flat_map(|r| &r[1..]).copied().collect();
    let inputs = Tensor::<B, 2, Int>::from_data(TensorData::new(inputs, [BATCH, SEQ]), &device);
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [BATCH * SEQ]), &device);

    let logits = model.forward(inputs);
    let loss = CrossEntropyLossConfig::new().init(&device).forward(
        logits.clone().reshape([BATCH * SEQ, vocab as usize]),
        targets,
    );
    let grads = loss.backward();
    let mut found = Grads::<B> {
        grads: &grads,
        found: Vec::new(),
    };
    model.visit(&mut found);
    (logits.into_data(), found.found)
}

fn assert_close(what: &str, actual: &TensorData, expected: &TensorData) {
    assert_eq!(actual.shape, expected.shape, "{what}: shapes");
    let actual = actual.to_vec::<f32>().unwrap();
    let expected = expected.to_vec::<f32>().unwrap();
    let scale = expected.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(scale > 0.0, "{what}: all zeros on the CPU");
    let (worst, at) = actual
        .iter()
        .zip(&expected)
        .map(|(a, e)| (a - e).abs())
        .enumerate()
        .fold(
            (0f32, 0),
            |(w, at), (i, d)| if d > w { (d, i) } else { (w, at) },
        );
    assert!(
        worst <= TOLERANCE * scale,
        "{what}: element {at} is {} on wgpu and {} on the CPU, off by {worst:e} \
         (more than {TOLERANCE:e} of the largest magnitude {scale:e})",
        actual[at],
        expected[at]
    );
}

#[test]
fn forward_and_backward_match_the_cpu_backend() {
    let cpu_device = Default::default();
    Cpu::seed(&cpu_device, 3);
    let cpu_model = tiny_config().init::<Cpu>(&cpu_device).unwrap();
    let gpu_model = copy_to::<Gpu>(&cpu_model, &Default::default());

    let (cpu_logits, cpu_grads) = forward_backward(&cpu_model);
    let started = Instant::now();
    let (gpu_logits, gpu_grads) = forward_backward(&gpu_model);
    eprintln!("wgpu forward + backward: {:.1?}", started.elapsed());

    assert_close("logits", &gpu_logits, &cpu_logits);
    assert_eq!(gpu_grads.len(), cpu_grads.len());
    // 2 layers × (2 norms + 4 attention + 3 MLP) + embedding, final norm, head
    assert_eq!(cpu_grads.len(), 21);
    for (i, (gpu, cpu)) in gpu_grads.iter().zip(&cpu_grads).enumerate() {
        assert_close(&format!("gradient of parameter {i}"), gpu, cpu);
    }
}
