//! The options every recipe-stage command (`run`, `distill`, `qat`) takes.

use std::path::PathBuf;

use decant::recipe::Recipe;
use train::BackendKind;
use train::trainer::{Nodes, Topology};

#[derive(clap::Args)]
pub struct StageArgs {
    /// The recipe (TOML).
    pub recipe: PathBuf,
    /// The run directory [default: runs/<recipe name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue a stopped stage from its newest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// The backend to train on [default: the recipe's `train.backend`].
    #[arg(long, value_parser = parse_backend)]
    pub backend: Option<BackendKind>,
    /// Print one JSON object describing what was written.
    #[arg(long)]
    pub json: bool,
    /// Data-parallel replicas on this machine [default: the recipe's `train.devices`].
    #[arg(long, value_name = "N")]
    pub devices: Option<u64>,
    /// This process's place among `--world` nodes training together, from 0.
    #[arg(long, value_name = "R", requires = "world")]
    pub rank: Option<u32>,
    /// Nodes (processes, one per machine) training together.
    #[arg(long, value_name = "W", requires_all = ["rank", "coordinator"])]
    pub world: Option<u32>,
    /// HOST:PORT where rank 0 serves the nodes' meeting point.
    #[arg(long, value_name = "HOST:PORT", requires = "world")]
    pub coordinator: Option<String>,
    /// HOST:PORT where this node serves its gradients to the others
    /// [default on one machine: 127.0.0.1 and the coordinator's port + 1 + rank].
    #[arg(long, value_name = "HOST:PORT", requires = "world")]
    pub node_address: Option<String>,
}

impl StageArgs {
    pub fn run_dir(&self, recipe: &Recipe) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&recipe.export.name))
    }

    /// `RUN_DIR/.lock`: one decant at a time works in a run directory. The
    /// other ranks of a multi-node run share it with rank 0, which holds it.
    pub fn lock(&self, recipe: &Recipe) -> anyhow::Result<Option<decant::lock::Lock>> {
        if self.rank.is_some_and(|r| r > 0) {
            return Ok(None);
        }
        Ok(Some(decant::lock::Lock::take(
            &self.run_dir(recipe).join(".lock"),
            "this run directory",
        )?))
    }

    /// The data-parallel replicas: this machine's devices, and the nodes.
    pub fn topology(&self, recipe: &Recipe) -> anyhow::Result<Topology> {
        let devices = self.devices.unwrap_or(recipe.train.devices);
        if devices == 0 || recipe.train.batch_size % devices != 0 {
            anyhow::bail!(
                "--devices {devices}: `train.batch_size` = {} must split evenly over the devices",
                recipe.train.batch_size
            );
        }
        let (Some(rank), Some(world), Some(coordinator)) =
            (self.rank, self.world, &self.coordinator)
        else {
            return Ok(Topology {
                devices: devices as usize,
                nodes: None,
            });
        };
        if rank >= world {
            anyhow::bail!("--rank {rank}: expected a rank below --world {world}");
        }
        if recipe.train.batch_size % (devices * u64::from(world)) != 0 {
            anyhow::bail!(
                "--world {world}: `train.batch_size` = {} must split evenly over {world} nodes of {devices} devices",
                recipe.train.batch_size
            );
        }
        let address = match &self.node_address {
            Some(address) => address.clone(),
            None => default_node_address(coordinator, rank)?,
        };
        let nodes = Nodes {
            rank,
            world,
            coordinator: coordinator.clone(),
            address,
        };
        Ok(Topology {
            devices: devices as usize,
            nodes: Some(nodes),
        })
    }

    pub fn backend(&self, recipe: &Recipe) -> BackendKind {
        self.backend.unwrap_or(recipe.train.backend)
    }

    /// The checked recipe, its warnings printed on stderr.
    pub fn load(&self) -> anyhow::Result<decant::recipe::Checked> {
        let checked = decant::recipe::load(&self.recipe)?;
        for warning in &checked.warnings {
            eprintln!("{warning}");
        }
        Ok(checked)
    }
}

/// On one machine each rank can serve on the port after the coordinator's and
/// its predecessors'; across machines, the address peers reach must be given.
fn default_node_address(coordinator: &str, rank: u32) -> anyhow::Result<String> {
    let address: std::net::SocketAddr = coordinator.parse().map_err(|_| {
        anyhow::anyhow!("--coordinator {coordinator}: expected IP:PORT, or give --node-address")
    })?;
    if !address.ip().is_loopback() {
        anyhow::bail!(
            "--node-address: required when the coordinator ({coordinator}) is on another machine; \
             give the HOST:PORT the other nodes reach this one at"
        );
    }
    let port = u32::from(address.port()) + 1 + rank;
    let port = u16::try_from(port).map_err(|_| {
        anyhow::anyhow!("--coordinator {coordinator}: no port left for rank {rank}")
    })?;
    Ok(format!("127.0.0.1:{port}"))
}

fn parse_backend(name: &str) -> Result<BackendKind, String> {
    name.parse().map_err(|e: train::BackendError| e.to_string())
}
