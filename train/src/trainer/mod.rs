//! The training core: a loop over prepared data with AdamW, schedules,
//! clipping, accumulation, freezing, metrics and exact resumption.

mod config;
mod head_loss;
mod metrics;
mod objective;
mod parallel;
mod precision;
mod progress;
mod replicas;
mod run;

pub use config::{NonFinitePolicy, Precision, TrainConfig};
pub use head_loss::{CHUNK_LOGITS, chunk_rows, chunked_cross_entropy, chunked_head_loss};
pub use metrics::{MetricsLog, StepMetrics, read_metrics};
pub use objective::{
    CrossEntropy, LossSum, Objective, TrainedPositions, cross_entropy_sum, layout, token_tensor,
};
pub use parallel::{Nodes, Replica, Topology, join, leave};
pub use progress::{Quiet, StepObserver, TrainProgress};
pub use replicas::{MakeObjective, Prepare, Replicas, train_replicas};
pub use run::{TrainData, TrainSummary, Trainer};
