//! Burn's autodiff gradients of the model's loss against central finite
//! differences, parameter entry by parameter entry, for every kind of weight
//! (embedding, attention and MLP projections, norms, QKV bias).

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use datasets::order::SplitMix64;
use datasets::{Documents, Loader, LoaderConfig, Order, Shard};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::optim::{load_named, named_tensors};
use train::trainer::{CrossEntropy, Objective};
use train::{CpuBackend, Transformer};

type B = Autodiff<CpuBackend>;

fn model() -> Transformer<B> {
    B::seed(&Default::default(), 11);
    ModelConfig {
        architecture: Architecture::Qwen2,
        vocab_size: 16,
        hidden_size: 16,
        intermediate_size: 32,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 4,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 32,
        tie_word_embeddings: false,
        qkv_bias: true,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
    .init(&Default::default())
    .unwrap()
}

fn batch() -> datasets::Batch {
    let docs = [
        (
            vec![1u32, 5, 9, 2, 7, 3],
            vec![false, true, true, true, true, true],
        ),
        (
            vec![4u32, 4, 8, 15, 1],
            vec![false, false, true, true, true],
        ),
    ];
    let documents = Documents::from_tokens(
        docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice())),
        "gradients",
    )
    .unwrap();
    let config = LoaderConfig {
        batch_size: 1,
        seq_len: 12,
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

/// The mean loss per trained token, on the plain (inner) backend.
fn loss(model: &Transformer<CpuBackend>, batch: &datasets::Batch) -> f64 {
    let hidden = model.hidden_states_rows(
        train::trainer::token_tensor(batch, &Default::default()),
        train::trainer::layout(batch),
    );
    let trained = train::trainer::TrainedPositions::of(batch);
    let logits = model
        .output_logits(trained.select(hidden).unwrap())
        .squeeze_dim(0);
    let sum: f64 = train::trainer::cross_entropy_sum(logits, &trained.targets)
        .into_scalar()
        .elem();
    sum / trained.targets.len() as f64
}

#[test]
fn autodiff_matches_finite_differences() {
    let model = model();
    let batch = batch();
    let trained = train::trainer::TrainedPositions::of(&batch).targets.len() as f32;
    let loss_sum = <CrossEntropy as Objective<B>>::loss(
        &mut CrossEntropy,
        &model,
        &batch,
        &mut SplitMix64::new(0),
    )
    .unwrap()
    .total;
    let grads = loss_sum.div_scalar(trained).backward();
    let grads = burn::optim::GradientsParams::from_grads(grads, &model);
    let analytic = analytic_gradients(&model, &grads);

    let inner = model.valid();
    let weights = named_tensors(&inner);
    let h = 1e-2f32;
    let mut checked = 0;
    for name in [
        "embed_tokens.weight",
        "layers.0.self_attn.q_proj.weight",
        "layers.0.self_attn.k_proj.bias",
        "layers.1.self_attn.v_proj.weight",
        "layers.1.self_attn.o_proj.weight",
        "layers.0.mlp.gate_proj.weight",
        "layers.1.mlp.down_proj.weight",
        "layers.1.input_layernorm.gamma",
        "norm.gamma",
        "lm_head.weight",
    ] {
        let values = &weights[name].values;
        let grad = &analytic[name];
        for index in (0..values.len()).step_by(values.len().div_ceil(6)) {
            let shifted = |delta: f32| {
                let mut perturbed = weights.clone();
                perturbed.get_mut(name).unwrap().values[index] += delta;
                let model = load_named(inner.clone(), &perturbed, &Default::default()).unwrap();
                loss(&model, &batch)
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * f64::from(h));
            let exact = f64::from(grad[index]);
            assert!(
                (numeric - exact).abs() <= 2e-4 + 2e-2 * exact.abs(),
                "{name}[{index}]: autodiff {exact}, finite differences {numeric}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked} entries checked");
}

/// Each parameter's gradient as host values, by name.
fn analytic_gradients(
    model: &Transformer<B>,
    grads: &burn::optim::GradientsParams,
) -> std::collections::BTreeMap<String, Vec<f32>> {
    struct Collect<'a> {
        grads: &'a burn::optim::GradientsParams,
        path: Vec<String>,
        out: std::collections::BTreeMap<String, Vec<f32>>,
    }
    impl burn::module::ModuleVisitor<B> for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.get::<CpuBackend, D>(param.id) {
                let values = grad.into_data().convert::<f32>().into_vec().unwrap();
                self.out.insert(self.path.join("."), values);
            }
        }
    }
    let mut collect = Collect {
        grads,
        path: Vec::new(),
        out: Default::default(),
    };
    burn::module::Module::visit(model, &mut collect);
    collect.out
}
