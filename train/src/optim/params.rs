//! A module's float parameters by name — the module path Burn walks, such as
//! `layers.3.self_attn.q_proj.weight` — for checkpoints, freezing by pattern and
//! the global gradient norm.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};

use crate::error::TrainError;

/// The path of the parameter being visited, kept by `enter_module`/`exit_module`.
#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }

    fn exit(&mut self) {
        self.0.pop();
    }

    fn name(&self) -> String {
        self.0.join(".")
    }
}

/// One parameter's values on the host, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl NamedTensor {
    fn of<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> Self {
        let data = tensor.to_data().convert::<f32>();
        Self {
            shape: data.shape.to_vec(),
            values: data.into_vec().expect("converted to f32"),
        }
    }
}

struct Collect {
    path: Path,
    tensors: BTreeMap<String, NamedTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.tensors
            .insert(self.path.name(), NamedTensor::of(&param.val()));
    }
}

/// Every float parameter of `module` by name.
pub fn named_tensors<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, NamedTensor> {
    let mut collect = Collect {
        path: Path::default(),
        tensors: BTreeMap::new(),
    };
    module.visit(&mut collect);
    collect.tensors
}

struct Replace<'a, B: Backend> {
    path: Path,
    tensors: &'a BTreeMap<String, NamedTensor>,
    device: B::Device,
    error: Option<TrainError>,
    replaced: usize,
}

impl<B: Backend> ModuleMapper<B> for Replace<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.name();
        let (id, tensor, mapper) = param.consume();
        let Some(saved) = self.tensors.get(&name) else {
            self.error
                .get_or_insert(TrainError::MissingParameter { name });
            return Param::from_mapped_value(id, tensor, mapper);
        };
        if saved.shape != tensor.dims() {
            self.error.get_or_insert(TrainError::ParameterShape {
                name,
                expected: tensor.dims().to_vec(),
                actual: saved.shape.clone(),
            });
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let data = TensorData::new(saved.values.clone(), saved.shape.clone());
        let mut loaded = Tensor::from_data(data, &self.device);
        if require_grad {
            loaded = loaded.require_grad();
        }
        self.replaced += 1;
        Param::from_mapped_value(id, loaded, mapper)
    }
}

/// `module` with every float parameter replaced by the tensor of the same name,
/// keeping parameter ids (so optimizer state stays attached). Every parameter
/// must be present with its shape, and every tensor must be used.
pub fn load_named<B: Backend, M: Module<B>>(
    module: M,
    tensors: &BTreeMap<String, NamedTensor>,
    device: &B::Device,
) -> Result<M, TrainError> {
    let mut replace = Replace {
        path: Path::default(),
        tensors,
        device: device.clone(),
        error: None,
        replaced: 0,
    };
    let module = module.map(&mut replace);
    if let Some(error) = replace.error {
        return Err(error);
    }
    if replace.replaced != tensors.len() {
        let known = named_tensors(&module);
        let unused = tensors
            .keys()
            .find(|name| !known.contains_key(*name))
            .cloned();
        return Err(TrainError::UnexpectedParameter {
            name: unused.unwrap_or_default(),
        });
    }
    Ok(module)
}

/// Glob patterns over parameter names (`*` any run of characters, `?` one),
/// e.g. `embed_tokens.*` or `layers.*.self_attn.*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreezePatterns(Vec<glob::Pattern>);

impl FreezePatterns {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, TrainError> {
        patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p.as_ref()).map_err(|e| TrainError::FreezePattern {
                    pattern: p.as_ref().to_owned(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.matches(name))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct Freeze<'a> {
    path: Path,
    patterns: &'a FreezePatterns,
    frozen: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Freeze<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.name();
        if !self.patterns.matches(&name) {
            return param;
        }
        self.frozen.push(name);
        param.set_require_grad(false)
    }
}

/// `module` with the parameters whose names match `patterns` excluded from
/// autodiff (no gradient is computed for them, so no update reaches them), and
/// their names. A pattern that matches nothing is an error: it is a typo.
pub fn freeze<B: Backend, M: Module<B>>(
    module: M,
    patterns: &FreezePatterns,
) -> Result<(M, Vec<String>), TrainError> {
    let mut freeze = Freeze {
        path: Path::default(),
        patterns,
        frozen: Vec::new(),
    };
    let module = module.map(&mut freeze);
    if let Some(unused) = patterns
        .0
        .iter()
        .find(|p| !freeze.frozen.iter().any(|name| p.matches(name)))
    {
        return Err(TrainError::FreezePattern {
            pattern: unused.as_str().to_owned(),
            message: "it matches no parameter".to_owned(),
        });
    }
    Ok((module, freeze.frozen))
}

struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let squares = grad.powi_scalar(2).sum();
        self.sum = Some(match self.sum.take() {
            Some(sum) => sum + squares,
            None => squares,
        });
    }
}

/// The L2 norm of all gradients together, as `torch.nn.utils.clip_grad_norm_`
/// computes it (Burn's own clipping works tensor by tensor).
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> f64 {
    let mut norm = SquaredNorm::<B> { grads, sum: None };
    module.visit(&mut norm);
    norm.sum.map_or(0.0, |sum| {
        let sum: f64 = sum.into_scalar().elem();
        sum.sqrt()
    })
}

/// Clipping by global norm: the factor every gradient is multiplied with,
/// `min(1, max_norm / (norm + 1e-6))` as in PyTorch.
pub fn scale_grads(norm: f64, max_norm: Option<f64>) -> f64 {
    max_norm.map_or(1.0, |max| (max / (norm + 1e-6)).min(1.0))
}
