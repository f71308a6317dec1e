//! f32 matrix products for the inference and training paths: `C = A · W (+ bias)` with `W`
//! packed.
//!
//! On CPUs with AVX-512 a 12 × 32 register-blocked kernel runs over `W` stored as 32-column
//! panels (`[⌈n/32⌉][k][32]`, the last panel zero-padded, its stores masked), with the rows of
//! `A` broadcast straight from their row-major layout (each row prefetched a line ahead), or,
//! for a transposed `A` ([`Panels::matmul_t_into`]), from tiles packed as it goes; k in passes
//! of `KC` steps so the panel's slice stays in L1. [`Panels`] is the kernel on plain slices
//! (the backbone's dense layers, the training step's forward and backward products, the proxy's
//! logits), serial or split over rayon by (row block, panel group); its strided forms read A or
//! W from wider rows and write C into wider rows, so the training step's attention multiplies a
//! head's queries, keys and values where they lie in the `[s, 3h]` rows and writes its
//! gradients straight into the head's columns; [`PackedWeight`] wraps it
//! with candle's matmul as the fallback elsewhere. The kernel accumulates over `k` in order,
//! one FMA per step, starting from the bias (or zero), so a row's result does not depend on the
//! other rows of the batch, nor on threading, nor on the passes, nor on how A is laid out.
use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::scratch;

const NR: usize = 32;
const MR: usize = 12;
/// Rows per task (a multiple of MR); 96 rows × k = 384 floats stay in L2 across the panels.
const MB: usize = 96;
/// 32-column panels per task.
const NP: usize = 4;
/// … and for a transposed A ([`Panels::matmul_t_into`]), whose tasks pack their rows of A
/// first: more panels to share that packing.
const NP_T: usize = 16;
/// Steps of k per pass over a panel: 256 × 32 floats (32 KB) of the panel stay in L1 while the
/// block's row tiles pass over them; between passes the partial sums wait in C.
const KC: usize = 256;

/// Whether the AVX-512F kernels can run on this CPU (checked at run time; the build is
/// baseline x86-64).
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One k-step of a 32-column panel, 64-byte aligned: loaded as two 16-lane vectors by value
/// (no pointer reads, so no per-load UB checks in builds with debug assertions).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct PanelRow([f32; NR]);

/// A weight `[k, n]` packed for the AVX-512 kernel. Only built where [`avx512`] holds.
pub struct Panels {
    k: usize,
    n: usize,
    /// `[⌈n / NR⌉][k]` rows of NR floats from float `off` on (64-byte aligned there); columns
    /// past `n` are zero. From [`scratch`] and back to it when dropped: a training step packs
    /// activations of several MB, whose fresh pages would fault on every step.
    buf: Vec<f32>,
    off: usize,
}

impl Clone for Panels {
    fn clone(&self) -> Panels {
        let mut p = Panels::alloc(self.k, self.n);
        p.rows_mut().copy_from_slice(self.rows());
        p
    }
}

impl Drop for Panels {
    fn drop(&mut self) {
        scratch::give(std::mem::take(&mut self.buf));
    }
}

impl std::fmt::Debug for Panels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Panels")
            .field("k", &self.k)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl Panels {
    /// Room for `[⌈n / NR⌉][k]` panel rows, contents unspecified (every constructor writes
    /// them all).
    fn alloc(k: usize, n: usize) -> Panels {
        let rows = k * n.div_ceil(NR);
        // malloc aligns to 16 bytes at least: at most 12 floats to skip to a 64-byte boundary.
        let buf = scratch::take(rows * NR + 12);
        let off = (buf.as_ptr() as usize).wrapping_neg() % 64 / 4;
        Panels { k, n, buf, off }
    }

    fn rows(&self) -> &[PanelRow] {
        let len = self.k * self.n.div_ceil(NR);
        // SAFETY: `alloc` sized the buffer for `len` rows from `off`, where it is 64-byte
        // aligned; PanelRow is 32 plain floats.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().add(self.off).cast(), len) }
    }

    fn rows_mut(&mut self) -> &mut [PanelRow] {
        let len = self.k * self.n.div_ceil(NR);
        // SAFETY: as in `rows`, and `&mut self` is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().add(self.off).cast(), len) }
    }

    /// Pack `w`, row-major `[k, n]`. `None` when the CPU lacks AVX-512F.
    pub fn new(w: &[f32], k: usize, n: usize) -> Option<Panels> {
        assert_eq!(w.len(), k * n, "Panels::new: w is not k × n");
        Panels::pack(w, n, k, n, k * n >= 1 << 16)
    }

    /// As [`Panels::new`] for `k` rows of `n` floats `ld` apart in `w` (a head's columns of an
    /// attention's `[s, 3h]` rows), packed serially (for callers that run one task per
    /// product already).
    pub fn new_strided(w: &[f32], ld: usize, k: usize, n: usize) -> Option<Panels> {
        check_rows("Panels::new_strided: w", w, ld, k, n);
        Panels::pack(w, ld, k, n, false)
    }

    /// `k` rows of `n` floats, `ld` apart in `w` (checked by the callers), packed; over the
    /// rayon pool when `parallel`.
    fn pack(w: &[f32], ld: usize, k: usize, n: usize, parallel: bool) -> Option<Panels> {
        if !avx512() {
            return None;
        }
        // Every row of every panel is written below (the last panel's padding as zeros), so
        // the buffer is not zeroed first: for a training step's activations that pass was as
        // long as the packing.
        let mut p = Panels::alloc(k, n);
        let full = n / NR;
        let out = SendPtr(p.rows_mut().as_mut_ptr() as *mut f32);
        // Row kk of w goes to row kk of every panel: one forward read of w, a forward write
        // stream per panel (filling one panel at a time read w a row apart, out of reach of the
        // prefetcher for wide w).
        let pack = |rows: std::ops::Range<usize>| {
            for kk in rows {
                let row = &w[kk * ld..kk * ld + n];
                for (pi, src) in row.chunks(NR).enumerate() {
                    let row = if pi < full {
                        // A whole panel row: a fixed-size copy, inlined (not a memcpy call).
                        *<&[f32; NR]>::try_from(src).expect("a whole panel row")
                    } else {
                        let mut row = [0.0; NR];
                        row[..src.len()].copy_from_slice(src);
                        row
                    };
                    // SAFETY: panel pi's row kk lies inside `p`'s rows; tasks pack disjoint
                    // rows.
                    unsafe { (out.get().add((pi * k + kk) * NR) as *mut [f32; NR]).write(row) };
                }
            }
        };
        // Large matrices (the training backward packs every layer's weight and input each
        // step) in parallel, 64 rows a task; the small per-head products of attention, already
        // one task each, serially.
        if parallel {
            (0..k.div_ceil(64))
                .into_par_iter()
                .for_each(|b| pack(b * 64..((b + 1) * 64).min(k)));
        } else {
            pack(0..k);
        }
        Some(p)
    }

    /// Pack the transpose of `w`, row-major `[n, k]` (a linear layer's `[out, in]` weight), as
    /// the `[k, n]` operand, so that [`Panels::matmul_into`] computes `a · wᵀ`. `None` when the
    /// CPU lacks AVX-512F. Panels are filled in parallel.
    pub fn new_transposed(w: &[f32], n: usize, k: usize) -> Option<Panels> {
        assert_eq!(w.len(), k * n, "Panels::new_transposed: w is not n × k");
        Panels::pack_transposed(w, k, n, k, true)
    }

    /// As [`Panels::new_transposed`] for `n` rows of `k` floats `ld` apart in `w` (a head's
    /// keys or values in an attention's `[s, 3h]` rows), packed serially.
    pub fn new_transposed_strided(w: &[f32], ld: usize, n: usize, k: usize) -> Option<Panels> {
        check_rows("Panels::new_transposed_strided: w", w, ld, n, k);
        Panels::pack_transposed(w, ld, n, k, false)
    }

    /// The transpose of `n` rows of `k` floats, `ld` apart in `w` (checked by the callers),
    /// packed as the `[k, n]` operand; panels in parallel when `parallel`.
    fn pack_transposed(w: &[f32], ld: usize, n: usize, k: usize, parallel: bool) -> Option<Panels> {
        if !avx512() {
            return None;
        }
        // Written in full below (as in `new`), not zeroed first.
        let mut p = Panels::alloc(k, n);
        if k > 0 {
            let fill = |(pi, panel): (usize, &mut [PanelRow])| {
                let (c0, c1) = (pi * NR, ((pi + 1) * NR).min(n));
                // 16 steps of k at a time: the 2 KB of panel being filled stay in L1 while
                // the panel's 32 rows of w are read 64 bytes each; whole 32 × 16 blocks as
                // two 16 × 16 transposes in registers.
                for (kb, rows) in panel.chunks_mut(16).enumerate() {
                    let k0 = kb * 16;
                    #[cfg(target_arch = "x86_64")]
                    if c1 - c0 == NR && rows.len() == 16 {
                        let dst = rows.as_mut_ptr() as *mut f32;
                        // SAFETY: AVX-512F checked above; w's rows c0..c0 + 32, columns
                        // k0..k0 + 16 are inside w, and the 16 panel rows inside `rows`.
                        unsafe {
                            x86::transpose16(w.as_ptr().add(c0 * ld + k0), ld, dst, NR);
                            x86::transpose16(
                                w.as_ptr().add((c0 + 16) * ld + k0),
                                ld,
                                dst.add(16),
                                NR,
                            );
                        }
                        continue;
                    }
                    for (t, dst) in rows.iter_mut().enumerate() {
                        let mut row = [0.0; NR];
                        for j in c0..c1 {
                            row[j - c0] = w[j * ld + k0 + t];
                        }
                        *dst = PanelRow(row);
                    }
                }
            };
            if parallel {
                p.rows_mut()
                    .par_chunks_exact_mut(k)
                    .enumerate()
                    .for_each(fill);
            } else {
                p.rows_mut().chunks_exact_mut(k).enumerate().for_each(fill);
            }
        }
        Some(p)
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// `c = a · W + bias` for `a` row-major `[m, k]` and `c` row-major `[m, n]` (overwritten);
    /// `bias` (length n) is the accumulators' starting value. `parallel` splits the work over
    /// the rayon pool; callers that already run one task per block pass `false`. Bit-identical
    /// either way.
    pub fn matmul_into(
        &self,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        c: &mut [f32],
        parallel: bool,
    ) {
        assert_eq!(a.len(), m * self.k, "matmul: A is not m × k");
        assert_eq!(c.len(), m * self.n, "matmul: C is not m × n");
        let (k, n) = (self.k, self.n);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: A holds m rows of k floats and C m rows of n, as asserted.
        unsafe {
            self.product(
                x86::Source::Rows {
                    a: a.as_ptr(),
                    lda: k,
                },
                m,
                bias,
                c.as_mut_ptr(),
                n,
                parallel,
                NP,
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Panels are only built with AVX-512");
    }

    /// `C = A · W` for `m` rows of A, `lda` floats apart in `a` (a head's queries in an
    /// attention's `[s, 3h]` rows, say), into `m` rows of C at `c`, `ldc` floats apart (only
    /// their first n floats written), serially: the products of attention, one task per head.
    /// The same FMAs in the same order as [`Panels::matmul_into`], so the same result bit for
    /// bit.
    ///
    /// # Safety
    /// `c` must be valid for writes of `(m − 1) · ldc + n` floats from it, with `n ≤ ldc`, and
    /// nothing else may read or write the ones written while this runs.
    pub unsafe fn matmul_strided(&self, a: &[f32], lda: usize, m: usize, c: *mut f32, ldc: usize) {
        let (k, n) = (self.k, self.n);
        check_rows("matmul_strided: A", a, lda, m, k);
        assert!(
            n <= ldc,
            "matmul_strided: C's rows of {n} floats {ldc} apart"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: A's rows are inside `a` (asserted), C's are the caller's.
        unsafe {
            self.product(
                x86::Source::Rows { a: a.as_ptr(), lda },
                m,
                None,
                c,
                ldc,
                false,
                NP,
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Panels are only built with AVX-512");
    }

    /// `C = Aᵀ · W` for `a_t` row-major `[k, m]`, as [`Panels::matmul_t_into`] but serially and
    /// into rows of C at `c`, `ldc` floats apart (a head's columns of an attention's gradient).
    /// The same result, bit for bit, as [`Panels::matmul_into`] on A.
    ///
    /// # Safety
    /// As [`Panels::matmul_strided`].
    pub unsafe fn matmul_t_strided(&self, a_t: &[f32], m: usize, c: *mut f32, ldc: usize) {
        assert_eq!(a_t.len(), m * self.k, "matmul_t_strided: Aᵀ is not k × m");
        let n = self.n;
        assert!(
            n <= ldc,
            "matmul_t_strided: C's rows of {n} floats {ldc} apart"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Aᵀ is k × m (asserted), C's rows are the caller's.
        unsafe {
            let src = x86::Source::Transposed {
                a_t: a_t.as_ptr(),
                m,
                sums: std::ptr::null_mut(),
            };
            self.product(src, m, None, c, ldc, false, NP_T)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Panels are only built with AVX-512");
    }

    /// `C = A · W + bias` for A `[m, k]` read from `src`, into m rows of C at `c`, `ldc` floats
    /// apart; split over the rayon pool in tasks of `group` panels when `parallel`.
    ///
    /// # Safety
    /// `src` must hold A's m rows, `c` be valid for writes of `(m − 1) · ldc + n` floats, and
    /// no one else touch them while this runs.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn product(
        &self,
        src: x86::Source,
        m: usize,
        bias: Option<&[f32]>,
        c: *mut f32,
        ldc: usize,
        parallel: bool,
        group: usize,
    ) {
        let (k, n) = (self.k, self.n);
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "matmul: bias is not n long");
        }
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // No step of k for the kernel to run: C is the bias, or zero.
            for i in 0..m {
                // SAFETY: row i of C, n floats from i · ldc, is the caller's (see above).
                let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n) };
                match bias {
                    Some(b) => row.copy_from_slice(b),
                    None => row.fill(0.0),
                }
            }
            return;
        }
        // Zero-padded bias in panel layout (one PanelRow per panel).
        let np = n.div_ceil(NR);
        let mut bp = vec![PanelRow([0.0; NR]); np];
        if let Some(b) = bias {
            for (p, row) in bp.iter_mut().enumerate() {
                let (c0, c1) = (p * NR, ((p + 1) * NR).min(n));
                row.0[..c1 - c0].copy_from_slice(&b[c0..c1]);
            }
        }
        // SAFETY: as the caller promised.
        unsafe { x86::gemm(src, (m, k, n), self.rows(), &bp, c, ldc, parallel, group) };
    }

    /// `c = aᵀ · W` for `a_t` row-major `[k, m]` (so `A = a_tᵀ` is `[m, k]`) and `c` row-major
    /// `[m, n]` (overwritten), over the rayon pool: a weight gradient dW = dyᵀ · x. Each task
    /// packs its tiles of A pass by pass, `[k][12]`, from `a_t` (12 contiguous floats of a row
    /// a step, one masked load and store) and runs the kernel on the packed tiles, its tasks
    /// spanning NP_T panels to share that packing. Read in place instead, A's rows are `a_t`'s
    /// columns, and with `a_t`'s rows a multiple of 4 KB apart every step of k lands in the
    /// same few L1 sets (slower); transposing all of A first cost a pass over it (`bench-train-ab.md`
    /// has the A/B of this change).
    pub fn matmul_t_into(&self, a_t: &[f32], m: usize, c: &mut [f32]) {
        self.matmul_t(a_t, m, c, None);
    }

    /// [`Panels::matmul_t_into`], and `sums[i]` = Σ_k A[i][k] (the column sums of `a_t`: a
    /// linear layer's bias gradient, Σ over rows of dy) added up as the tiles of A are packed,
    /// in order of k from zero, so the same floats as [`column_sums`] of `a_t` gives: no
    /// separate pass over `a_t` for them.
    pub fn matmul_t_sums_into(&self, a_t: &[f32], m: usize, c: &mut [f32], sums: &mut [f32]) {
        assert_eq!(sums.len(), m, "matmul_t: sums are not m long");
        self.matmul_t(a_t, m, c, Some(sums));
    }

    fn matmul_t(&self, a_t: &[f32], m: usize, c: &mut [f32], sums: Option<&mut [f32]>) {
        assert_eq!(a_t.len(), m * self.k, "matmul_t: Aᵀ is not k × m");
        assert_eq!(c.len(), m * self.n, "matmul_t: C is not m × n");
        let sums = match sums {
            // No step of k (zero sums), or no panel for the kernel to run (and pack A) for: the
            // sums of their own pass.
            Some(s) if self.k == 0 || self.n == 0 => {
                column_sums(a_t, m, s);
                std::ptr::null_mut()
            }
            Some(s) => s.as_mut_ptr(),
            None => std::ptr::null_mut(),
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Aᵀ is k × m, C m × n and the sums m long, as asserted.
        unsafe {
            let src = x86::Source::Transposed {
                a_t: a_t.as_ptr(),
                m,
                sums,
            };
            self.product(src, m, None, c.as_mut_ptr(), self.n, true, NP_T)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Panels are only built with AVX-512");
    }
}

/// For a test that needs the packed kernel: true, with the skip recorded as the machine's
/// (`util::skip_for_machine`), where the CPU lacks AVX-512F.
#[cfg(test)]
pub(crate) fn skipped_without_avx512(test: &str) -> bool {
    let skip = !avx512();
    if skip {
        crate::util::skip_for_machine(
            test,
            "no AVX-512F on this CPU (the packed kernel does not run here)",
        );
    }
    skip
}

/// `sums[j]` = Σ_i m[i][j] for `m` row-major with `cols` columns, added in row order from zero,
/// in bands of 64 columns over the rayon pool: a linear layer's bias gradient from dy, where no
/// product packs dy to add it up on the way ([`Panels::matmul_t_sums_into`]).
pub fn column_sums(m: &[f32], cols: usize, sums: &mut [f32]) {
    assert_eq!(sums.len(), cols, "column_sums: sums are not cols long");
    sums.par_chunks_mut(64)
        .enumerate()
        .for_each(|(band, sums)| {
            sums.fill(0.0);
            let c0 = band * 64;
            for row in m.chunks_exact(cols.max(1)) {
                sums.iter_mut().zip(&row[c0..]).for_each(|(s, &v)| *s += v);
            }
        });
}

/// Panics unless `v` holds `rows` rows of `width` floats, `ld` apart (`what` names it).
fn check_rows(what: &str, v: &[f32], ld: usize, rows: usize, width: usize) {
    assert!(
        width <= ld,
        "{what}: rows of {width} floats {ld} apart overlap"
    );
    assert!(
        rows == 0 || v.len() >= (rows - 1) * ld + width,
        "{what}: fewer than {rows} rows of {width} floats {ld} apart"
    );
}

/// `mt = mᵀ` for `m` row-major `[rows, cols]`, in bands of 16 rows of `m`: 16 × 16 blocks
/// transposed in AVX-512 registers where the CPU has it, so every cache line is read and written
/// whole; the edges and other CPUs element by element. Large matrices (a training step's
/// activations) go over the rayon pool; small ones serially.
pub fn transpose(m: &[f32], rows: usize, cols: usize, mt: &mut [f32]) {
    assert_eq!(m.len(), rows * cols, "transpose: m is not rows × cols");
    assert_eq!(mt.len(), rows * cols, "transpose: mt is not cols × rows");
    if rows == 0 || cols == 0 {
        return;
    }
    let simd = avx512();
    let out = SendPtr(mt.as_mut_ptr());
    let band = |(blk, src): (usize, &[f32])| {
        let i0 = blk * 16;
        let r = src.len() / cols;
        let mut j = 0;
        #[cfg(target_arch = "x86_64")]
        if simd && r == 16 {
            while j + 16 <= cols {
                // SAFETY: AVX-512F detected; the block reads rows i0..i0+16, columns j..j+16 of
                // m and writes rows j..j+16, columns i0..i0+16 of mt: inside both, and no
                // other task writes those columns of mt.
                unsafe {
                    x86::transpose16(
                        src.as_ptr().add(j),
                        cols,
                        out.get().add(j * rows + i0),
                        rows,
                    )
                };
                j += 16;
            }
        }
        for jj in j..cols {
            for (t, row) in src.chunks_exact(cols).enumerate() {
                // SAFETY: row jj, column i0 + t of mt: this task's columns, inside mt.
                unsafe { *out.get().add(jj * rows + i0 + t) = row[jj] };
            }
        }
    };
    if rows * cols >= 1 << 16 {
        m.par_chunks(16 * cols).enumerate().for_each(band);
    } else {
        m.chunks(16 * cols).enumerate().for_each(band);
    }
}

/// A pointer to an output that tasks write disjoint parts of.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: every user writes regions no other task writes.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// A weight `[k, n]` ready for [`PackedWeight::matmul`].
pub struct PackedWeight {
    k: usize,
    n: usize,
    /// `[k, n]` row-major, for the fallback.
    tensor: Tensor,
    /// The AVX-512 kernel's copy, when it can run.
    panels: Option<Panels>,
}

impl PackedWeight {
    /// `w` is `[k, n]` (input features × output features).
    pub fn new(w: &Tensor) -> Result<Self> {
        let (k, n) = w.dims2()?;
        let tensor = w.contiguous()?.copy()?;
        let panels = if avx512() {
            Panels::new(&tensor.flatten_all()?.to_vec1::<f32>()?, k, n)
        } else {
            None
        };
        Ok(PackedWeight {
            k,
            n,
            tensor,
            panels,
        })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// `a` is `[m, k]` row-major; returns `[m, n]`, computed over the rayon pool. With the
    /// packed kernel the result is a [`scratch`] buffer (the kernel writes all of it): callers
    /// that run many products (the inference path's layers) hand it back with
    /// [`scratch::give`] so its pages stay mapped.
    pub fn matmul(&self, a: &[f32], m: usize) -> Result<Vec<f32>> {
        assert_eq!(a.len(), m * self.k, "matmul: A is not m × k");
        if let Some(p) = &self.panels {
            let mut c = scratch::take(m * self.n);
            p.matmul_into(a, m, None, &mut c, true);
            return Ok(c);
        }
        let at = Tensor::from_slice(a, (m, self.k), &Device::Cpu)?;
        Ok(at.matmul(&self.tensor)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// The 16 × 16 block at `src` (rows `lds` floats apart), transposed to `dst` (rows `ldd`
    /// apart): three rounds of shuffles (pairs of floats, of float pairs, of 128-bit lanes).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose16(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
        let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * lds)));
        // t[2p], t[2p+1]: rows 2p and 2p+1 interleaved, low and high pairs of each lane.
        let mut t = [_mm512_setzero_ps(); 16];
        for p in 0..8 {
            t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
        }
        // u[4g + c], lane L: column 4L + c of rows 4g..4g+4.
        let pd = _mm512_castps_pd;
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (a0, a1, a2, a3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a0), pd(a2)));
            u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a0), pd(a2)));
            u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a1), pd(a3)));
            u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a1), pd(a3)));
        }
        // Column 4L + c gathers lane L of u[c], u[4 + c], u[8 + c], u[12 + c].
        for c in 0..4 {
            let s0 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
            let s1 = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
            let w0 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
            let w1 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
            _mm512_storeu_ps(dst.add(c * ldd), _mm512_shuffle_f32x4::<0x88>(s0, w0));
            _mm512_storeu_ps(dst.add((4 + c) * ldd), _mm512_shuffle_f32x4::<0xDD>(s0, w0));
            _mm512_storeu_ps(dst.add((8 + c) * ldd), _mm512_shuffle_f32x4::<0x88>(s1, w1));
            _mm512_storeu_ps(
                dst.add((12 + c) * ldd),
                _mm512_shuffle_f32x4::<0xDD>(s1, w1),
            );
        }
    }

    /// `c = A · panels (+ bias)`, A `[m, k]` read from `src` (its caller checked that it holds
    /// A's m rows: (m − 1) · lda + k floats, or k × m for a transposed A); `parallel`: over the
    /// rayon pool, tasks of a row block and `group` panels.
    ///
    /// # Safety
    /// `src` must hold A's m rows and `c` be valid for writes of m rows of n floats, `ldc`
    /// apart, that no one else touches while this runs.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm(
        src: Source,
        (m, k, n): (usize, usize, usize),
        panels: &[PanelRow],
        bias: &[PanelRow],
        c: *mut f32,
        ldc: usize,
        parallel: bool,
        group: usize,
    ) {
        let np = n.div_ceil(NR);
        let cp = SendPtr(c);
        let run = move |(m0, m1, p0, p1): (usize, usize, usize, usize)| {
            let cp = cp;
            // SAFETY: Panels exist only where AVX-512F was detected; every pointer stays inside
            // A and C (the caller's promise); regions written by different tasks are disjoint.
            unsafe { block(src, k, (m0, m1, p0, p1), panels, bias, cp.0, (n, ldc)) }
        };
        if !parallel {
            // Row blocks outer, all panels inner: the block's rows stay in cache while every
            // panel passes over them.
            for m0 in (0..m).step_by(MB) {
                run((m0, (m0 + MB).min(m), 0, np));
            }
            return;
        }
        let mut tasks = Vec::new();
        for m0 in (0..m).step_by(MB) {
            for p0 in (0..np).step_by(group) {
                tasks.push((m0, (m0 + MB).min(m), p0, (p0 + group).min(np)));
            }
        }
        tasks.into_par_iter().for_each(run);
    }

    /// Store masks for panel `p` of an `n`-wide output: (low 16 columns, high 16 columns).
    fn masks(p: usize, n: usize) -> (u16, u16) {
        let cols = (n - p * NR).min(NR);
        let m = |c: usize| if c >= 16 { u16::MAX } else { (1u16 << c) - 1 };
        (m(cols.min(16)), m(cols.saturating_sub(16)))
    }

    thread_local! {
        /// Each thread's packed block of a transposed A (rows × KC steps), reused across calls.
        static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Where a block reads A: row-major rows, or the transpose `a_t` `[k, m]` of A, whose
    /// tiles are packed `[k][R]` pass by pass (R contiguous floats of a row of `a_t` per step:
    /// a copy instead of a transpose of all of A first).
    #[derive(Clone, Copy)]
    pub(super) enum Source {
        /// A's rows, `lda` floats apart.
        Rows { a: *const f32, lda: usize },
        /// `sums` (m floats, or null): where A's row sums go, written by the tasks of the first
        /// panel group as they pack A.
        Transposed {
            a_t: *const f32,
            m: usize,
            sums: *mut f32,
        },
    }
    // SAFETY: A is only read, by tasks that run while the slice it points into is borrowed; the
    // sums of a transposed A are written by one task per row block (its rows alone) and read
    // back only by that task, between its passes.
    unsafe impl Send for Source {}
    unsafe impl Sync for Source {}

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        src: Source,
        k: usize,
        (m0, m1, p0, p1): (usize, usize, usize, usize),
        panels: &[PanelRow],
        bias: &[PanelRow],
        c: *mut f32,
        (n, ldc): (usize, usize),
    ) {
        let run = |buf: *mut f32| {
            for k0 in (0..k).step_by(KC) {
                let k1 = (k0 + KC).min(k);
                let kc = k1 - k0;
                // The first pass starts from the bias, later ones from the sums left in C.
                let more = k0 > 0;
                if let Source::Transposed { a_t, m, sums } = src {
                    // Only one task per row block (the first panel group's) adds up the sums.
                    let sums = if p0 == 0 { sums } else { std::ptr::null_mut() };
                    let mut i = m0;
                    while i < m1 {
                        let r = (m1 - i).min(MR);
                        let mask: u16 = (1u16 << r) - 1;
                        let dst = buf.add((i - m0) * kc);
                        if sums.is_null() {
                            for kk in 0..kc {
                                let v = _mm512_maskz_loadu_ps(mask, a_t.add((k0 + kk) * m + i));
                                _mm512_mask_storeu_ps(dst.add(kk * r), mask, v);
                            }
                        } else {
                            // From zero, then from the sums of the passes before, one add per
                            // step of k in order.
                            let mut acc = if more {
                                _mm512_maskz_loadu_ps(mask, sums.add(i))
                            } else {
                                _mm512_setzero_ps()
                            };
                            for kk in 0..kc {
                                let v = _mm512_maskz_loadu_ps(mask, a_t.add((k0 + kk) * m + i));
                                _mm512_mask_storeu_ps(dst.add(kk * r), mask, v);
                                acc = _mm512_add_ps(acc, v);
                            }
                            _mm512_mask_storeu_ps(sums.add(i), mask, acc);
                        }
                        i += r;
                    }
                }
                for p in p0..p1 {
                    let bp = &panels[p * k + k0..p * k + k1];
                    let b0 = bias[p];
                    let mk = masks(p, n);
                    let mut i = m0;
                    while i < m1 {
                        let r = (m1 - i).min(MR);
                        let ci = c.add(i * ldc + p * NR);
                        macro_rules! go {
                            ($($n:literal)*) => {
                                match (src, r) {
                                    $(
                                        (Source::Rows { a, lda }, $n) => {
                                            tile::<$n, false>(a.add(i * lda + k0), lda, bp, b0, more, ci, ldc, mk)
                                        }
                                        (Source::Transposed { .. }, $n) => {
                                            tile::<$n, true>(buf.add((i - m0) * kc), 0, bp, b0, more, ci, ldc, mk)
                                        }
                                    )*
                                    _ => unreachable!("tiles have 1 to MR rows"),
                                }
                            };
                        }
                        go!(1 2 3 4 5 6 7 8 9 10 11 12);
                        i += r;
                    }
                }
            }
        };
        match src {
            Source::Rows { .. } => run(std::ptr::null_mut()),
            Source::Transposed { .. } => PACKED.with_borrow_mut(|buf| {
                let need = (m1 - m0) * KC.min(k);
                if buf.len() < need {
                    buf.resize(need, 0.0);
                }
                run(buf.as_mut_ptr())
            }),
        }
    }

    /// C[R × 32] = start + A[R × k] · panel[k × 32], `start` the bias or (`more`) what C holds
    /// (a sum over earlier steps of k: the FMAs run on as if in one pass, so the result is the
    /// same bit for bit); A's rows `lda` apart (`P`: A packed `[k][R]` instead, `lda` unused),
    /// C's `ldc`, only the columns in the masks loaded and stored.
    ///
    /// Pointer steps use `wrapping_add` and loads go through intrinsics: in this crate's dev
    /// profile (debug assertions on) `ptr.add` and `*ptr` carry per-use UB checks that would
    /// otherwise sit in the innermost loop.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const P: bool>(
        a: *const f32,
        lda: usize,
        bp: &[PanelRow],
        bias: PanelRow,
        more: bool,
        c: *mut f32,
        ldc: usize,
        (mlo, mhi): (u16, u16),
    ) {
        let [z0, z1]: [__m512; 2] = std::mem::transmute(bias.0);
        let mut lo = [z0; R];
        let mut hi = [z1; R];
        if more {
            for r in 0..R {
                let cr = c.wrapping_add(r * ldc);
                lo[r] = _mm512_maskz_loadu_ps(mlo, cr);
                hi[r] = _mm512_maskz_loadu_ps(mhi, cr.wrapping_add(16));
            }
        }
        // One step of k: row r's element at `$at(r)`, times the panel row.
        macro_rules! step {
            ($row:expr, $at:expr) => {{
                let [b0, b1]: [__m512; 2] = std::mem::transmute($row.0);
                for r in 0..R {
                    let av = _mm512_broadcastss_ps(_mm_load_ss($at(r)));
                    lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                    hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
                }
            }};
        }
        if P {
            // One stream, R floats a step.
            for (kk, row) in bp.iter().enumerate() {
                let at = a.wrapping_add(kk * R);
                step!(row, |r| at.wrapping_add(r));
            }
        } else {
            let mut rows = [a; R];
            for (r, p) in rows.iter_mut().enumerate() {
                *p = a.wrapping_add(r * lda);
            }
            // 16 steps of k use one cache line of each row of A: the line after next is
            // fetched at the start of each 16 (part of the change `bench-train-ab.md` times).
            for chunk in bp.chunks(16) {
                for row in &rows {
                    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(32) as *const i8);
                }
                for row in chunk {
                    step!(row, |r: usize| rows[r]);
                    for p in rows.iter_mut() {
                        *p = p.wrapping_add(1);
                    }
                }
            }
        }
        for r in 0..R {
            let cr = c.wrapping_add(r * ldc);
            _mm512_mask_storeu_ps(cr, mlo, lo[r]);
            _mm512_mask_storeu_ps(cr.wrapping_add(16), mhi, hi[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| r.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn panels_match_f64_reference_any_shape() {
        if skipped_without_avx512("panels_match_f64_reference_any_shape") {
            assert!(Panels::new(&[0.0; 6], 2, 3).is_none());
            return;
        }
        for &(m, k, n) in &[
            (1, 1, 1),
            (4, 0, 9),
            (5, 3, 7),
            (13, 17, 32),
            (25, 40, 33),
            (97, 384, 150),
            (2051, 64, 150),
            (30, 100, 160),
        ] {
            let a = random(m * k, 1 + m as u64);
            let w = random(k * n, 2 + n as u64);
            let bias = random(n, 3);
            let p = Panels::new(&w, k, n).expect("avx512");
            let mut serial = vec![f32::NAN; m * n];
            let mut par = vec![f32::NAN; m * n];
            p.matmul_into(&a, m, Some(&bias), &mut serial, false);
            p.matmul_into(&a, m, Some(&bias), &mut par, true);
            assert_eq!(serial, par, "{m}×{k}×{n}: serial and parallel differ");
            // The same product from Aᵀ (read in place) is the same, bit for bit, as from A:
            // the kernel does the same FMAs in the same order.
            let mut a_t = vec![0f32; m * k];
            for i in 0..m {
                for t in 0..k {
                    a_t[t * m + i] = a[i * k + t];
                }
            }
            let (mut from_t, mut plain) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            p.matmul_t_into(&a_t, m, &mut from_t);
            p.matmul_into(&a, m, None, &mut plain, true);
            assert_eq!(from_t, plain, "{m}×{k}×{n}: from Aᵀ and from A differ");
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = bias[j] as f64
                        + (0..k)
                            .map(|t| a[i * k + t] as f64 * w[t * n + j] as f64)
                            .sum::<f64>();
                    let got = serial[i * n + j] as f64;
                    assert!(
                        (got - want).abs() < 1e-5 * (k as f64).sqrt().max(1.0),
                        "{m}×{k}×{n} [{i},{j}]: {got} vs {want}"
                    );
                }
            }
            // A row's result does not depend on the rest of the batch.
            let i = m / 2;
            let mut one = vec![0.0; n];
            p.matmul_into(&a[i * k..(i + 1) * k], 1, Some(&bias), &mut one, false);
            assert_eq!(one[..], serial[i * n..(i + 1) * n]);
            // No bias: starts from zero.
            let mut nb = vec![0.0; m * n];
            p.matmul_into(&a, m, None, &mut nb, false);
            let w0: f64 = (0..k).map(|t| a[t] as f64 * w[t * n] as f64).sum();
            assert!((nb[0] as f64 - w0).abs() < 1e-5 * (k as f64).sqrt().max(1.0));
        }
    }

    /// The row sums a transposed product adds up as it packs A are the plain sums over `a_t`'s
    /// rows in order, bit for bit, with every row block and panel group (each row summed once),
    /// over several passes of k; and the product is the one without sums.
    #[test]
    fn row_sums_of_a_transposed_product_are_the_plain_sums() {
        if skipped_without_avx512("row_sums_of_a_transposed_product_are_the_plain_sums") {
            return;
        }
        // (m, k, n): one tile; row blocks of 96 and a ragged one; k over several KC passes;
        // n over several panel groups (tasks that must not add the sums again); no k; no n.
        for &(m, k, n) in &[
            (5, 3, 7),
            (200, 600, 40),
            (37, 300, 700),
            (13, 0, 32),
            (6, 5, 0),
        ] {
            let a_t = random(k * m, 21 + m as u64);
            let w = random(k * n, 22 + n as u64);
            let p = Panels::new(&w, k, n).expect("avx512");
            let (mut c, mut plain) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            let mut sums = vec![f32::NAN; m];
            p.matmul_t_sums_into(&a_t, m, &mut c, &mut sums);
            p.matmul_t_into(&a_t, m, &mut plain);
            assert_eq!(c, plain, "{m}×{k}×{n}: the product changed");
            let mut want = vec![0f32; m];
            for row in a_t.chunks_exact(m) {
                want.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
            }
            assert_eq!(sums, want, "{m}×{k}×{n}: row sums");
        }
    }

    /// The strided forms (A read in place from wider rows, W packed from wider rows, C written
    /// into wider rows) give what the contiguous ones give, bit for bit, and write nothing
    /// outside their columns: as attention uses them, a head's columns of `[s, 3h]` rows.
    #[test]
    fn strided_products_equal_the_contiguous_ones_and_write_only_their_columns() {
        if skipped_without_avx512(
            "strided_products_equal_the_contiguous_ones_and_write_only_their_columns",
        ) {
            return;
        }
        // (m, k, n, extra): rows `extra` floats wider than the operand; ragged edges, a k past
        // one KC pass, whole and partial panels.
        for &(m, k, n, extra) in &[(13, 32, 37, 5), (128, 32, 128, 64), (37, 300, 32, 1)] {
            // A [m, k] in rows k + extra apart, W [k, n] in rows n + extra apart.
            let (lda, ldw, ldc) = (k + extra, n + extra, n + 2 * extra);
            let a_wide = random(m * lda, 11 + m as u64);
            let w_wide = random(k * ldw, 12 + k as u64);
            let a: Vec<f32> = a_wide.chunks(lda).flat_map(|r| r[..k].to_vec()).collect();
            let w: Vec<f32> = w_wide.chunks(ldw).flat_map(|r| r[..n].to_vec()).collect();
            let plain = Panels::new(&w, k, n).expect("avx512");
            let mut want = vec![0f32; m * n];
            plain.matmul_into(&a, m, None, &mut want, false);
            // W packed from wide rows: the same panels.
            let strided =
                Panels::new_strided(&w_wide[..(k - 1) * ldw + n], ldw, k, n).expect("avx512");
            assert!(plain
                .rows()
                .iter()
                .zip(strided.rows())
                .all(|(x, y)| x.0 == y.0));
            // Its transpose, packed from wide rows of Wᵀ: the same panels.
            let wt_wide: Vec<f32> = (0..n)
                .flat_map(|j| (0..k + extra).map(move |t| (j, t)))
                .map(|(j, t)| if t < k { w[t * n + j] } else { f32::NAN })
                .collect();
            let from_t = Panels::new_transposed_strided(&wt_wide, k + extra, n, k).expect("avx512");
            assert!(plain
                .rows()
                .iter()
                .zip(from_t.rows())
                .all(|(x, y)| x.0 == y.0));
            // A read in place, C into wide rows whose other columns keep their sentinel.
            let sentinel = -7.25f32;
            let mut c = vec![sentinel; m * ldc];
            // SAFETY: c holds m rows of ldc ≥ n floats, this test's alone.
            unsafe { strided.matmul_strided(&a_wide, lda, m, c.as_mut_ptr(), ldc) };
            // Aᵀ [k, m] as a transposed source, into the same wide rows.
            let mut a_t = vec![0f32; k * m];
            for i in 0..m {
                for t in 0..k {
                    a_t[t * m + i] = a[i * k + t];
                }
            }
            let mut c_t = vec![sentinel; m * ldc];
            // SAFETY: as above.
            unsafe { strided.matmul_t_strided(&a_t, m, c_t.as_mut_ptr(), ldc) };
            for (what, c) in [("strided A", &c), ("transposed A", &c_t)] {
                for (i, row) in c.chunks(ldc).enumerate() {
                    assert_eq!(
                        row[..n],
                        want[i * n..(i + 1) * n],
                        "{what} {m}×{k}×{n} row {i}"
                    );
                    assert!(
                        row[n..].iter().all(|&v| v == sentinel),
                        "{what} {m}×{k}×{n} row {i}: wrote past its columns"
                    );
                }
            }
        }
    }

    #[test]
    fn transpose_matches_the_definition_on_ragged_shapes() {
        // Whole 16 × 16 blocks (the register path), edges, fewer than 16 rows, and one large
        // enough to go over the rayon pool.
        let shapes = [
            (1, 1),
            (16, 16),
            (37, 50),
            (64, 384),
            (5, 33),
            (48, 17),
            (300, 257),
        ];
        for &(rows, cols) in &shapes {
            let m = random(rows * cols, rows as u64 * 31 + cols as u64);
            let mut mt = vec![f32::NAN; rows * cols];
            transpose(&m, rows, cols, &mut mt);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(mt[j * rows + i], m[i * cols + j], "{rows}×{cols} [{i},{j}]");
                }
            }
        }
    }

    #[test]
    fn panels_of_a_transpose_equal_panels_of_the_transposed_copy() {
        if skipped_without_avx512("panels_of_a_transpose_equal_panels_of_the_transposed_copy") {
            return;
        }
        // Whole 32 × 16 blocks (the register transposes), a partial last panel, k off 16.
        for &(n, k) in &[(64, 48), (70, 45), (32, 16), (5, 3), (384, 1536)] {
            let w = random(n * k, (n * 7 + k) as u64);
            let mut wt = vec![0f32; n * k];
            for j in 0..n {
                for t in 0..k {
                    wt[t * n + j] = w[j * k + t];
                }
            }
            let a = Panels::new_transposed(&w, n, k).expect("avx512");
            let b = Panels::new(&wt, k, n).expect("avx512");
            assert_eq!(a.dims(), b.dims());
            let (pa, pb): (Vec<_>, Vec<_>) = (
                a.rows().iter().flat_map(|r| r.0).collect(),
                b.rows().iter().flat_map(|r| r.0).collect(),
            );
            assert_eq!(pa, pb, "{n}×{k}: panels differ");
        }
    }

    #[test]
    fn packed_weight_matches_candle_for_ragged_widths() {
        for &(m, k, n) in &[(7, 16, 50), (40, 384, 96)] {
            let a = random(m * k, 7);
            let w = random(k * n, 8);
            let wt = Tensor::from_slice(&w, (k, n), &Device::Cpu).unwrap();
            let pw = PackedWeight::new(&wt).unwrap();
            let got = pw.matmul(&a, m).unwrap();
            let at = Tensor::from_slice(&a, (m, k), &Device::Cpu).unwrap();
            let want = at.matmul(&wt).unwrap().flatten_all().unwrap();
            let want = want.to_vec1::<f32>().unwrap();
            let diff = got
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{m}×{k}×{n}: max diff {diff}");
        }
    }
}
