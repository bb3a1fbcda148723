//! Errors of model configuration and weight import. Each names the file, key or
//! tensor at fault so that a user can act on it without a debugger.

use std::path::PathBuf;

/// A model configuration decant cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unsupported architecture '{0}': decant runs llama, mistral, qwen2 and qwen3")]
    UnsupportedArchitecture(String),
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("metadata key '{key}' should hold {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("unsupported {option}: {value}")]
    Unsupported { option: String, value: String },
    #[error("invalid model configuration: {0}")]
    Invalid(String),
}

/// A model file or directory whose weights cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Names its file itself; boxed because it is large and errors travel far.
    #[error(transparent)]
    Gguf(Box<quantize::gguf::GgufError>),
    #[error("{}: {source}", path.display())]
    Safetensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    Config { path: PathBuf, source: ModelError },
    #[error("{}: tensor '{tensor}' is missing", path.display())]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{}: tensor '{tensor}' has shape {actual:?}, expected {expected:?}", path.display())]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{}: tensor '{tensor}' has element type {dtype}, which decant cannot load", path.display())]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{}: tensor '{tensor}': {source}", path.display())]
    Dequantize {
        path: PathBuf,
        tensor: String,
        source: quantize::dequant::DequantError,
    },
    #[error(
        "{}: not a model: expected a .gguf file or a Hugging Face directory with config.json",
        path.display()
    )]
    NotAModel { path: PathBuf },
}

/// A training run that cannot start, continue or save.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training configuration: {0}")]
    Config(String),
    #[error("freeze pattern '{pattern}': {message}")]
    FreezePattern { pattern: String, message: String },
    #[error("parameter '{name}' is missing from the saved tensors")]
    MissingParameter { name: String },
    #[error("saved tensor '{name}' has shape {actual:?}, the parameter has {expected:?}")]
    ParameterShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("saved tensor '{name}' belongs to no parameter of the model")]
    UnexpectedParameter { name: String },
    #[error(
        "step {step}: the {what} is {value}; stopping with the last good checkpoint kept \
         (lower the learning rate, clip gradients, or check the data)"
    )]
    NonFinite {
        step: u64,
        what: &'static str,
        value: f64,
    },
    #[error(
        "step {step}: the {what} is {value}, the {steps}th non-finite step in a row; stopping \
         with the last good checkpoint kept (the weights have diverged: lower the learning \
         rate or clip gradients)"
    )]
    NonFiniteRepeated {
        step: u64,
        what: &'static str,
        value: f64,
        steps: u64,
    },
    /// A replica's objective could not be made (its teacher, its cache).
    #[error("{0}")]
    Objective(String),
    /// Data-parallel training could not exchange with the other replicas.
    #[error("data-parallel training: {0}")]
    Collective(String),
    #[error(
        "the objective reported a loss component `{name}` it does not list in `Objective::components`"
    )]
    UnknownComponent { name: &'static str },
    /// A global micro-batch with fewer rows than replicas.
    #[error(
        "step {step}: a micro-batch of {rows} sequences cannot be split over {peers} replicas; \
         use a batch size that is a multiple of the device count"
    )]
    BatchSplit {
        step: u64,
        rows: usize,
        peers: usize,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Safetensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] datasets::DatasetError),
    #[error("fake-quantizing '{tensor}' to {ty}: {message}")]
    FakeQuant {
        tensor: String,
        ty: quantize::GgmlType,
        message: String,
    },
}
