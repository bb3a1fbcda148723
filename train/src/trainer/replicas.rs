//! A data-parallel run of one process: one replica per device, each in its own
//! thread, all meeting in the collective. The leading replica starts (or
//! resumes) the run and checkpoints the weights it starts from; every other
//! replica, in this process or another, starts from that checkpoint, so no
//! replica needs to know how the student was made.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;

use super::config::TrainConfig;
use super::objective::Objective;
use super::parallel::{self, Replica, Topology};
use super::progress::{Quiet, StepObserver};
use super::run::{TrainData, TrainSummary, Trainer};
use crate::error::TrainError;

/// Builds a replica's objective in its own thread, after every replica has
/// joined (so that what the leader prepared, such as a teacher cache, exists).
pub type MakeObjective<'a, D, O> = Box<dyn FnOnce(&D) -> Result<O, TrainError> + Send + 'a>;

/// What the leader does once every replica has joined and before any starts,
/// such as merging the parts of a teacher cache the nodes wrote.
pub type Prepare<'a> = Box<dyn FnOnce() -> Result<(), TrainError> + Send + 'a>;

/// What this process trains with: the run's shape and one device and
/// objective per replica it holds.
pub struct Replicas<'a, B: AutodiffBackend, O> {
    pub topology: Topology,
    pub devices: Vec<B::Device>,
    pub objectives: Vec<MakeObjective<'a, B::Device, O>>,
    /// Run by the leader only.
    pub prepare: Option<Prepare<'a>>,
    pub config: TrainConfig,
    pub data: TrainData,
    pub run_dir: &'a Path,
}

/// Trains every replica of this process to the configured step and returns the
/// first one (the leader's, on rank 0) with its summary. `leader` is the run
/// as [`Trainer::start`] or [`Trainer::resume`] made it, on the process of
/// rank 0; other processes pass `None`.
pub fn train_replicas<B, O>(
    replicas: Replicas<'_, B, O>,
    leader: Option<Trainer<B>>,
    observer: &mut impl StepObserver,
) -> Result<(Trainer<B>, TrainSummary), TrainError>
where
    B: AutodiffBackend,
    O: Objective<B>,
{
    let Replicas {
        topology,
        devices,
        objectives,
        prepare,
        config,
        data,
        run_dir,
    } = replicas;
    assert_eq!(devices.len(), topology.devices, "one device per replica");
    assert_eq!(
        objectives.len(),
        topology.devices,
        "one objective per replica"
    );
    if leader.is_some() != topology.is_leader() {
        return Err(TrainError::Collective(
            "the process of rank 0, and only it, starts the run".to_owned(),
        ));
    }
    let mut leader = leader;
    if let Some(trainer) = &mut leader
        && topology.is_parallel()
    {
        trainer.checkpoint_for_replicas()?;
    }
    let mut objectives = objectives.into_iter();
    let first = objectives.next().expect("at least one device");
    std::thread::scope(|scope| {
        let others: Vec<_> = objectives
            .zip(devices.iter().cloned())
            .enumerate()
            .map(|(at, (objective, device))| {
                let (config, data, topology) = (config.clone(), data.clone(), &topology);
                std::thread::Builder::new()
                    .name(format!("decant-replica-{}", at + 1))
                    .spawn_scoped(scope, move || {
                        replica(
                            topology,
                            at + 1,
                            &device,
                            None,
                            None,
                            objective,
                            &mut Quiet,
                            |r, step| Trainer::follow(config, data, run_dir, &device, r, step),
                        )
                        .map(|_| ())
                        .inspect_err(|_| release::<B>())
                    })
                    .expect("a thread")
            })
            .collect();
        let device = devices[0].clone();
        let (config, data) = (config.clone(), data.clone());
        let prepare = if topology.is_leader() { prepare } else { None };
        let mine = replica(
            &topology,
            0,
            &device,
            leader,
            prepare,
            first,
            observer,
            |r, step| Trainer::follow(config, data, run_dir, &device, r, step),
        )
        .inspect_err(|_| release::<B>());
        let mut first_error = None;
        for other in others {
            if let Err(e) = other.join().expect("a replica thread panicked") {
                first_error.get_or_insert(e);
            }
        }
        match (mine, first_error) {
            (Err(e), _) | (Ok(_), Some(e)) => Err(e),
            (Ok(done), None) => Ok(done),
        }
    })
}

/// One replica's whole run: join, agree on the starting step, train, leave.
fn replica<B, O>(
    topology: &Topology,
    local: usize,
    device: &B::Device,
    leader: Option<Trainer<B>>,
    prepare: Option<Prepare<'_>>,
    objective: MakeObjective<'_, B::Device, O>,
    observer: &mut impl StepObserver,
    follow: impl FnOnce(Replica, u64) -> Result<Trainer<B>, TrainError>,
) -> Result<(Trainer<B>, TrainSummary), TrainError>
where
    B: AutodiffBackend,
    O: Objective<B>,
{
    let me = parallel::join::<B::InnerBackend>(topology, local, device)?;
    // The others wait for the leader's step in the sum below, so they start
    // after what the leader prepares.
    if let Some(prepare) = prepare {
        prepare()?;
    }
    let offered = leader.as_ref().map_or(0.0, |t| t.step() as f64);
    let step = parallel::sum_values::<B::InnerBackend>(me, &[offered], device)?[0] as u64;
    let mut trainer = match leader {
        Some(trainer) => trainer.into_replica(me),
        None => follow(me, step)?,
    };
    let mut objective = objective(device)?;
    let summary = if me.is_leader() {
        trainer.run(&mut objective, observer, None)?
    } else {
        trainer.run(&mut objective, &mut Quiet, None)?
    };
    parallel::leave::<B::InnerBackend>(me)?;
    Ok((trainer, summary))
}

/// A replica that failed leaves the others waiting in an all-reduce; resetting
/// the collective fails their pending operations instead.
fn release<B: AutodiffBackend>() {
    burn_collective::reset_collective::<B::InnerBackend>();
}
