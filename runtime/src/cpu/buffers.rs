//! Reuse of the CPU backend's large f32 buffers across ops and inferences. A fresh `vec![0.0; n]` of tens of
//! megabytes is zeroed by one thread before the cores can start on it (about a tenth of a BERT inference at
//! batch 32); a buffer taken from here is only resized, so its stale values cost nothing. Only ops that
//! overwrite every element take from here. The price: each thread that runs inferences keeps up to
//! [`KEEP`] dead buffers (at MiniLM batch 32, 6.3 MB each) between inferences.
//!
//! Who owns the activation memory: the thread that runs the graph (the caller, or the pool worker a
//! `ThreadPool::install` hands it to). The layers run on that thread (the other workers only fill slices of
//! buffers it made), so the pool is per graph-running thread and needs no lock; two inferences at once on two threads (a server's concurrent batches) each
//! have their own live tensors and their own pool, and their memory adds up. Measured, not estimated:
//! `mxrt bench --json` reports `activation_bytes`, the heap the inferences allocate at their peak (MiniLM
//! w+a at batch 32: 34 MB, under the bound `tests/models.rs` derives from the largest live tensors).

use std::cell::RefCell;

/// Buffers kept per thread (a BERT layer has at most this many dead tensors at once).
const KEEP: usize = 8;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Buffers below this many values are neither kept nor handed out: cheap to make, and a small request
/// served from the pool would carry off a large buffer (a classifier head's few outputs took two
/// activation-sized buffers out of circulation per inference, made again from fresh pages next time).
const SMALL: usize = 1 << 12;

/// A vector of `len` values for an op that writes every one of them: a recycled buffer (stale contents) when
/// one is large enough, else a new zeroed one.
pub(crate) fn take(len: usize) -> Vec<f32> {
    if len < SMALL {
        return vec![0.0; len];
    }
    let reused = FREE.with(|free| {
        let mut free = free.borrow_mut();
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        Some(free.swap_remove(best))
    });
    match reused {
        Some(mut v) => {
            v.resize(len, 0.0); // zero-fills only past the buffer's previous length
            v
        }
        None => vec![0.0; len],
    }
}

/// Gives a dead tensor's buffer back for [`take`]; small ones are simply dropped.
pub(crate) fn recycle(v: Vec<f32>) {
    if v.capacity() < SMALL {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        free.push(v);
        if free.len() > KEEP {
            // Drop the smallest: the large ones are the expensive ones to make again.
            let smallest = free
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            if let Some(i) = smallest {
                free.swap_remove(i);
            }
        }
    });
}

/// A zeroed f32 buffer whose values start on a 64-byte boundary: for packed panels the kernels load whole
/// vectors from. The allocator aligns large buffers to 16 bytes only, and where one landed 16 bytes off,
/// every other 32-byte load (every 64-byte load) split a cache line: the AVX2 FP32 GEMM ran 11 % slower at
/// batch 32 from one build to the next, with nothing changed but where its buffers fell.
#[derive(Default)]
pub(crate) struct AlignedBuffer {
    values: Vec<f32>,
    start: usize,
    len: usize,
}

/// f32 values per 64 bytes.
const LANES: usize = 16;

impl AlignedBuffer {
    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> AlignedBuffer {
        let values = vec![0.0f32; len + LANES - 1];
        let start = Self::aligned_start(&values);
        AlignedBuffer { values, start, len }
    }

    /// The first index of `values` on a 64-byte boundary (Vec<f32> is at least 4-byte aligned).
    fn aligned_start(values: &[f32]) -> usize {
        let misalignment = (values.as_ptr() as usize % 64) / std::mem::size_of::<f32>();
        (LANES - misalignment) % LANES
    }

    /// `len` values, for a caller that writes every one: the allocation is kept when large enough (the
    /// values are then stale), else replaced by zeros.
    pub(crate) fn resize_stale(&mut self, len: usize) -> &mut [f32] {
        if self.values.len() < len + LANES - 1 {
            *self = AlignedBuffer::zeroed(len);
        }
        self.len = len;
        self.as_mut_slice()
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.values[self.start..self.start + self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.values[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_buffer_starts_on_64_bytes_and_has_its_length() {
        for len in [0usize, 1, 15, 16, 17, 1000, 1 << 16] {
            let mut b = AlignedBuffer::zeroed(len);
            assert_eq!(b.as_slice().len(), len);
            assert_eq!(b.as_mut_slice().as_ptr() as usize % 64, 0, "len {len}");
            assert!(b.as_slice().iter().all(|&v| v == 0.0));
            b.as_mut_slice().fill(2.0);
            let kept = b.resize_stale(len / 2); // kept: stale values, still aligned
            assert_eq!(kept.len(), len / 2);
            assert_eq!(kept.as_ptr() as usize % 64, 0);
            assert!(kept.iter().all(|&v| v == 2.0));
            assert_eq!(b.resize_stale(2 * len + 1).as_ptr() as usize % 64, 0);
        }
    }

    #[test]
    fn a_recycled_buffer_is_reused_with_the_requested_length() {
        let v = vec![1.5f32; 1 << 17];
        let ptr = v.as_ptr();
        recycle(v);
        let small = take(100); // a small request does not carry the large buffer off
        assert_ne!(small.as_ptr(), ptr);
        let w = take(SMALL);
        assert_eq!(w.len(), SMALL);
        assert_eq!(
            w.as_ptr(),
            ptr,
            "the recycled allocation is handed out again"
        );
        let grown = take(1 << 18); // nothing large enough left: a fresh zeroed one
        assert!(grown.iter().all(|&x| x == 0.0));
        recycle(w);
        let again = take((1 << 17) + 5); // larger than its last length: the extension is zero-filled
        assert_eq!(again.len(), (1 << 17) + 5);
        assert!(again[SMALL..].iter().all(|&x| x == 0.0));
    }
}
