//! Data parallelism through Burn's collective operations: each replica trains
//! on its rows of every global micro-batch, and the gradients are summed by
//! `burn_collective::all_reduce` between the threads of a process and, with
//! several nodes, between processes through its websocket orchestrator.
//!
//! Gradients are reduced by parameter name, in module order, and a parameter
//! a replica got no gradient for contributes zeros: Burn's own
//! `GradientsParams::all_reduce` pairs tensors by `ParamId`, which differs
//! between processes that built their models apart.

use std::ops::Range;
use std::sync::OnceLock;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{
    AllReduceStrategy, CollectiveConfig, CollectiveError, PeerId, ReduceOperation, all_reduce,
    finish_collective, register,
};
use burn_communication::Address;

use crate::error::TrainError;

/// Several processes, one per node, in one collective.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nodes {
    /// This process's place among `world`, from 0.
    pub rank: u32,
    pub world: u32,
    /// `HOST:PORT` of the orchestrator, which rank 0 serves.
    pub coordinator: String,
    /// `HOST:PORT` where this process serves its gradients to the others.
    pub address: String,
}

/// Where a process's replicas sit: its devices, and the nodes when there are
/// more processes than this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub devices: usize,
    pub nodes: Option<Nodes>,
}

impl Topology {
    pub const SINGLE: Topology = Topology {
        devices: 1,
        nodes: None,
    };

    /// Replicas in the whole run.
    pub fn peers(&self) -> usize {
        self.devices * self.nodes.as_ref().map_or(1, |n| n.world as usize)
    }

    pub fn is_parallel(&self) -> bool {
        self.peers() > 1
    }

    /// Whether this process holds replica 0, the one that writes.
    pub fn is_leader(&self) -> bool {
        self.nodes.as_ref().is_none_or(|n| n.rank == 0)
    }

    /// The replica of this process's `local`-th device.
    pub fn replica(&self, local: usize) -> Replica {
        let rank = self.nodes.as_ref().map_or(0, |n| n.rank as usize);
        Replica {
            peer: rank * self.devices + local,
            peers: self.peers(),
        }
    }

    fn config(&self) -> Result<CollectiveConfig, TrainError> {
        let config = CollectiveConfig::default()
            .with_num_devices(self.devices)
            .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
        let Some(nodes) = &self.nodes else {
            return Ok(config);
        };
        let port = port_of(&nodes.address)?;
        Ok(config
            .with_num_nodes(nodes.world)
            .with_global_address(ws(&nodes.coordinator))
            .with_node_address(ws(&nodes.address))
            .with_data_service_port(port)
            .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2)))
    }
}

fn ws(address: &str) -> Address {
    format!("ws://{address}")
        .parse()
        .expect("any string is an address")
}

fn port_of(address: &str) -> Result<u16, TrainError> {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| TrainError::Collective(format!("`{address}`: expected HOST:PORT")))
}

/// One replica: the trainer's view of the run's data parallelism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replica {
    pub peer: usize,
    pub peers: usize,
}

impl Replica {
    pub const SOLE: Replica = Replica { peer: 0, peers: 1 };

    pub fn is_parallel(&self) -> bool {
        self.peers > 1
    }

    /// Replica 0 writes checkpoints and metrics; the others only compute.
    pub fn is_leader(&self) -> bool {
        self.peer == 0
    }

    /// This replica's rows of a global micro-batch of `rows`: contiguous, so
    /// that the replicas together hold the batch one device would.
    pub fn rows(&self, rows: usize) -> Range<usize> {
        rows * self.peer / self.peers..rows * (self.peer + 1) / self.peers
    }
}

/// Serves the orchestrator on `coordinator`'s port from this process, once.
fn serve_orchestrator(coordinator: &str) -> Result<(), TrainError> {
    static SERVED: OnceLock<u16> = OnceLock::new();
    let port = port_of(coordinator)?;
    let served = *SERVED.get_or_init(|| {
        std::thread::Builder::new()
            .name("decant-orchestrator".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                runtime.block_on(burn_collective::start_global_orchestrator(port));
            })
            .expect("a thread");
        port
    });
    if served != port {
        return Err(TrainError::Collective(format!(
            "this process already serves the orchestrator on port {served}, not {port}"
        )));
    }
    Ok(())
}

/// Joins the collective as the replica of this process's `local`-th device,
/// returning when every replica of the run has joined. Rank 0 serves the
/// orchestrator the nodes meet at.
pub fn join<B: Backend>(
    topology: &Topology,
    local: usize,
    device: &B::Device,
) -> Result<Replica, TrainError> {
    let replica = topology.replica(local);
    if !replica.is_parallel() {
        return Ok(replica);
    }
    if let Some(nodes) = &topology.nodes
        && nodes.rank == 0
        && local == 0
    {
        serve_orchestrator(&nodes.coordinator)?;
    }
    register::<B>(
        PeerId::from(replica.peer),
        device.clone(),
        topology.config()?,
    )
    .map_err(|e| collective_error("joining the collective", e))?;
    Ok(replica)
}

/// Leaves the collective; every replica that joined must.
pub fn leave<B: Backend>(replica: Replica) -> Result<(), TrainError> {
    if !replica.is_parallel() {
        return Ok(());
    }
    finish_collective::<B>(PeerId::from(replica.peer))
        .map_err(|e| collective_error("leaving the collective", e))
}

fn collective_error(what: &str, error: CollectiveError) -> TrainError {
    TrainError::Collective(format!("{what}: {error:?}"))
}

fn sum<B: Backend, const D: usize>(
    replica: Replica,
    tensor: Tensor<B, D>,
) -> Result<Tensor<B, D>, TrainError> {
    let summed = all_reduce::<B>(
        PeerId::from(replica.peer),
        tensor.into_primitive().tensor(),
        ReduceOperation::Sum,
    )
    .map_err(|e| collective_error("summing over the replicas", e))?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(summed)))
}

/// `values` summed over the replicas (in f32, the backends' float).
pub fn sum_values<B: Backend>(
    replica: Replica,
    values: &[f64],
    device: &B::Device,
) -> Result<Vec<f64>, TrainError> {
    if !replica.is_parallel() {
        return Ok(values.to_vec());
    }
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let tensor = Tensor::<B, 1>::from_data(TensorData::new(data, [values.len()]), device);
    let summed = sum(replica, tensor)?.into_data().convert::<f32>();
    Ok(summed
        .into_vec::<f32>()
        .expect("converted to f32")
        .into_iter()
        .map(f64::from)
        .collect())
}

struct SumGrads<'a, B: AutodiffBackend> {
    replica: Replica,
    local: &'a mut GradientsParams,
    summed: GradientsParams,
    error: Option<TrainError>,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SumGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let grad = self
            .local
            .remove::<B::InnerBackend, D>(param.id)
            .unwrap_or_else(|| Tensor::zeros(value.dims(), &value.device()));
        match sum(self.replica, grad) {
            Ok(summed) => self.summed.register::<B::InnerBackend, D>(param.id, summed),
            Err(e) => self.error = Some(e),
        }
    }
}

/// The sum over the replicas of each trainable parameter's gradient.
pub fn sum_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    replica: Replica,
    module: &M,
    mut grads: GradientsParams,
) -> Result<GradientsParams, TrainError> {
    if !replica.is_parallel() {
        return Ok(grads);
    }
    let mut visitor = SumGrads::<B> {
        replica,
        local: &mut grads,
        summed: GradientsParams::new(),
        error: None,
        _backend: std::marker::PhantomData,
    };
    module.visit(&mut visitor);
    match visitor.error {
        Some(e) => Err(e),
        None => Ok(visitor.summed),
    }
}
