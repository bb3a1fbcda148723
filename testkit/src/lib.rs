//! Test support shared by the workspace's crates.
//!
//! [`PeakAlloc`] is a global allocator that meters, per thread, the most heap
//! bytes live at once. The reader fuzz tests install it to check that a reader
//! given hostile bytes never allocates more than a bound derived from the
//! input's size, which an unchecked size field in the file would break.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts per thread so that tests running in parallel in one process do not
/// see each other's allocations.
pub struct PeakAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    // `try_with` because the allocator also runs while a thread's locals are torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes as isize;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - bytes as isize));
}

// SAFETY: every call forwards to `System` with the caller's layout unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        new
    }
}

/// Runs `f` on this thread and returns its result with the most heap bytes that
/// were live at once during it, above what was live when it started. Only this
/// thread's allocations count, so `f` should not hand work to other threads.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - start).max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static METER: PeakAlloc = PeakAlloc;

    #[test]
    fn the_peak_counts_the_largest_live_allocation_and_not_what_was_freed_before() {
        let kept = vec![0u8; 1 << 20];
        let ((), peak) = peak_during(|| {
            let a = vec![1u8; 4096];
            drop(a);
            let b = vec![2u8; 100_000];
            std::hint::black_box(&b);
        });
        assert!((100_000..100_000 + 4096).contains(&peak), "peak {peak}");
        std::hint::black_box(&kept);
    }

    #[test]
    fn a_realloc_that_grows_counts_its_new_size() {
        let ((), peak) = peak_during(|| {
            let mut v: Vec<u8> = Vec::with_capacity(10);
            v.resize(1 << 16, 0);
            std::hint::black_box(&v);
        });
        assert!(peak >= 1 << 16, "peak {peak}");
    }
}
