//! The heap allocator for processes that train: mimalloc, told to keep the
//! memory a process frees instead of returning it to the OS.
//!
//! A training step allocates and frees the same large tensors every step
//! (activations, logits chunks, gradients, optimizer moments: tens to
//! hundreds of MiB each). With glibc's malloc, or mimalloc's default purging
//! after a delay, each of those comes back from the OS as fresh pages, and the
//! kernel's page faults and zeroing cost more than the arithmetic of many
//! ops. Kept, the process's resident memory stays at its peak, as with
//! PyTorch's caching allocators. Measured on the 50M-parameter benchmark
//! model (`benches/train_step.rs`, 2 threads): 7.5 s per step with glibc,
//! 4.6 s with this.
//!
//! A binary installs it with
//! `#[global_allocator] static HEAP: train::allocator::Heap = train::allocator::HEAP;`
//! and calls [`keep_freed_memory`] first thing in `main`.

pub type Heap = mimalloc::MiMalloc;

pub const HEAP: Heap = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e` of the
/// vendored v3 sources, which the bindings do not name): -1 never purges.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process for reuse.
pub fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's documented options; mimalloc reads its
    // options at every purge, so a change at any time is safe.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc's purge delay: its default in the
    /// vendored sources (`options.c`) is 1000 ms until set, and it reads back
    /// what was set.
    #[test]
    fn the_option_is_the_purge_delay() {
        // SAFETY: reads and sets documented mimalloc options.
        let default = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(default, 1000, "mimalloc's purge delay defaults to 1000 ms");
        keep_freed_memory();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, -1);
    }
}
