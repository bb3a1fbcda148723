use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    ModelArg(#[from] crate::model_arg::ModelArgError),
    #[error(transparent)]
    Tokenize(#[from] crate::tokenize::TokenizeError),
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    Import(#[from] train::ImportError),
    #[error(transparent)]
    Backend(#[from] train::BackendError),
    #[error("student init: {0}")]
    Prune(#[from] distill::prune::PruneError),
    #[error("[distill]: {0}")]
    Divergence(#[from] distill::DivergenceError),
    #[error(transparent)]
    Export(#[from] export::ExportError),
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A recipe combination this stage cannot run, with the key at fault.
    #[error("{0}")]
    Unsupported(String),
    #[error("{}: {message}", path.display())]
    RunDir { path: PathBuf, message: String },
}

impl StageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StageError::Io {
            path: path.into(),
            source,
        }
    }
}
