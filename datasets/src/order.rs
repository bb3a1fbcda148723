//! The order examples are seen in: a shuffle per epoch that depends only on the
//! seed and the epoch, and the share of it each data-parallel rank takes.
//!
//! The generator and the shuffle are written out here rather than taken from
//! `rand`, whose algorithms may change between versions: a resumed run, or a
//! run on another machine, must see the same order for as long as the data,
//! seed and ranks are the same. The shuffle is Durstenfeld's Fisher–Yates
//! driven by SplitMix64, with bounded draws by Lemire's multiply-and-reject
//! ("Fast random integer generation in an interval", 2019), all in `u64`
//! arithmetic, so neither the platform nor the thread count changes it.

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};
use crate::hash::{StableHasher, mix64};

/// SplitMix64 (Steele, Lea & Flood, 2014), as in Java's `SplittableRandom`.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// A uniform draw from `0..bound`, without modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range has nothing to draw");
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if product as u64 >= threshold {
                return (product >> 64) as u64;
            }
        }
    }
}

/// One data-parallel rank among `world_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub rank: usize,
    pub world_size: usize,
}

impl Shard {
    pub const SINGLE: Shard = Shard {
        rank: 0,
        world_size: 1,
    };

    pub fn new(rank: usize, world_size: usize) -> Result<Self> {
        if rank >= world_size {
            return Err(DatasetError::InvalidConfig {
                what: "shard",
                message: format!("rank {rank} is not below the world size {world_size}"),
            });
        }
        Ok(Self { rank, world_size })
    }
}

/// How each epoch orders `examples` examples for one rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Order {
    pub shuffle: bool,
    pub seed: u64,
    pub shard: Shard,
}

impl Order {
    /// Examples each rank sees per epoch: the same number on every rank, so
    /// that ranks step together; the `examples % world_size` left over are
    /// left out of that epoch (different ones each epoch when shuffling).
    pub fn per_rank(&self, examples: usize) -> usize {
        examples / self.shard.world_size
    }

    /// This rank's example indices for `epoch`: every `world_size`-th entry
    /// of the epoch's permutation, starting at `rank`.
    pub fn epoch(&self, examples: usize, epoch: u64) -> Vec<u32> {
        let examples = u32::try_from(examples).expect("fewer than 2^32 examples");
        let mut indices: Vec<u32> = (0..examples).collect();
        if self.shuffle {
            let mut rng = SplitMix64::new(StableHasher::new().u64(self.seed).u64(epoch).finish());
            for last in (1..indices.len()).rev() {
                let other = rng.below(last as u64 + 1) as usize;
                indices.swap(last, other);
            }
        }
        let Shard { rank, world_size } = self.shard;
        let take = self.per_rank(indices.len());
        indices
            .into_iter()
            .skip(rank)
            .step_by(world_size)
            .take(take)
            .collect()
    }
}
