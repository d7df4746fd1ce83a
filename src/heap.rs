//! The process's heap, counted: every allocation goes through [`peakmem_alloc`]'s wrapper of the system
//! allocator (two atomic counters per call), so `bench` can report how many bytes the inferences themselves
//! allocate at their peak: activations, scratch, the buffer pool and outputs. The weights are mapped from
//! the file, not allocated, so they are not in it; on a GPU backend it is the host side only.

use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait};

#[global_allocator]
static HEAP: PeakMemAlloc<std::alloc::System> = PeakMemAlloc::system();

/// Starts a new measurement: from now on, [`peak_since_reset`] is the largest number of bytes allocated
/// and not yet freed since this call.
pub fn reset_peak() {
    HEAP.reset_peak_memory();
}

/// The high-water mark of heap bytes allocated (net of frees) since the last [`reset_peak`].
pub fn peak_since_reset() -> usize {
    HEAP.get_peak_memory()
}
