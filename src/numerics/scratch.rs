//! Recycled f32 buffers for the training step's activations, their gradients and the packed
//! panels of its products, and for the inference path's layer outputs (`backbone::fast`, freed
//! when an `Embedder` call returns).
//!
//! A training step allocates a few hundred MB afresh (MiniLM, batch 16 × 128 tokens: the
//! forward's kept activations alone are ~50 MB a layer), frees them in the backward, and the
//! next step allocates them again. Large allocations come from fresh pages, and the first touch
//! of a fresh page is a page fault, on every step. glibc's tunables (a higher mmap threshold, no
//! trimming) did not remove those faults in the training step. Here the step hands its large
//! buffers back when done with them and takes them again the next step, so their pages stay
//! mapped (`bench-train-ab.md` times this with the rest of its change).
//!
//! [`take`] gives a buffer whose contents are unspecified (values of an earlier use): only for
//! outputs the caller overwrites in full. Small buffers bypass the pool (the allocator serves
//! them well). The pool holds at most [`CAP_BYTES`]; [`release`] empties it (after
//! fine-tuning).
use std::sync::Mutex;

/// Buffers below this many floats (64 KB) are plain allocations, never pooled.
const MIN_LEN: usize = 1 << 14;
/// The most the pool keeps.
pub const CAP_BYTES: usize = 1 << 30;

/// Spare buffers, at most `cap` bytes of them.
struct Pool {
    spare: Mutex<Vec<Vec<f32>>>,
    cap: usize,
}

static POOL: Pool = Pool::new(CAP_BYTES);

impl Pool {
    const fn new(cap: usize) -> Pool {
        Pool {
            spare: Mutex::new(Vec::new()),
            cap,
        }
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f32>>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, len: usize) -> Vec<f32> {
        if len < MIN_LEN {
            return vec![0f32; len];
        }
        let found = {
            let mut spare = self.spare();
            let best = spare
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len && v.capacity() <= 2 * len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| spare.swap_remove(i))
        };
        match found {
            Some(mut v) => {
                if v.len() >= len {
                    v.truncate(len);
                } else {
                    // Within the capacity: no reallocation, zeros for the part never written.
                    v.resize(len, 0.0);
                }
                v
            }
            None => {
                // Room for the next power of two: a later, somewhat longer request (a batch of
                // longer rows) fits it too, instead of allocating (and faulting in) a buffer of
                // its own. The pages past `len` are not touched until a request needs them.
                let mut v = Vec::with_capacity(len.next_power_of_two());
                v.resize(len, 0.0);
                v
            }
        }
    }

    fn give(&self, v: Vec<f32>) {
        if v.capacity() < MIN_LEN {
            return;
        }
        let mut spare = self.spare();
        let held: usize = spare.iter().map(|b| b.capacity() * 4).sum();
        if held + v.capacity() * 4 <= self.cap {
            spare.push(v);
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.spare().iter().map(|b| b.capacity()).sum()
    }
}

/// A buffer of `len` floats with unspecified contents (zeros, or what an earlier user left):
/// the caller must write every element before reading any. Reuses the smallest spare buffer
/// that fits and is at most twice as large; otherwise allocates.
pub fn take(len: usize) -> Vec<f32> {
    POOL.take(len)
}

/// Hand `v` back for a later [`take`]. Small buffers, and any that would take the pool past
/// [`CAP_BYTES`], are freed instead.
pub fn give(v: Vec<f32>) {
    POOL.give(v)
}

/// Free every spare buffer.
pub fn release() {
    std::mem::take(&mut *POOL.spare());
}

/// Frees the spare buffers when dropped: a fine-tuning run holds one, so that the memory its
/// steps recycled goes back when it ends, however it ends.
pub struct ReleaseOnDrop;

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_by_size_and_the_cap_holds() {
        let pool = Pool::new(4 * 10 * MIN_LEN);
        let n = 3 * MIN_LEN + 7;
        let mut v = pool.take(n);
        // Allocated with room up to the next power of two.
        assert_eq!((v.len(), v.capacity()), (n, 4 * MIN_LEN));
        v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
        let ptr = v.as_ptr();
        pool.give(v);
        assert_eq!(pool.held(), 4 * MIN_LEN);
        // Too large a buffer for this request (more than twice it): a new one.
        let small = pool.take(MIN_LEN);
        assert_ne!(small.as_ptr(), ptr);
        assert_eq!(pool.held(), 4 * MIN_LEN);
        // A request it fits: the same memory, truncated, its old contents left.
        let w = pool.take(n - 5);
        assert_eq!((w.as_ptr(), w.len(), w[10]), (ptr, n - 5, 10.0));
        assert_eq!(pool.held(), 0);
        // Grown back within its capacity on a later, larger request (larger than the first
        // one, too: the room the rounding left), zeros where it was never written.
        pool.give(w);
        let w = pool.take(4 * MIN_LEN);
        assert_eq!(
            (w.as_ptr(), w.len(), w[n - 1], w[n]),
            (ptr, 4 * MIN_LEN, 0.0, 0.0)
        );
        // Small buffers are not kept; nor one that would pass the cap.
        pool.give(vec![0f32; 16]);
        assert_eq!(pool.held(), 0);
        pool.give(w);
        pool.give(vec![0f32; 8 * MIN_LEN]);
        assert_eq!(
            pool.held(),
            4 * MIN_LEN,
            "10 · MIN_LEN floats of room: the second one is freed"
        );
        pool.give(small);
        assert_eq!(pool.held(), 5 * MIN_LEN);
    }
}
