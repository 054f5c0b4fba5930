//! The native GEMM tile: a precompiled AVX2 + FMA micro-kernel that
//! Cranelift-generated kernels call for their innermost tile.
//!
//! Cranelift emits 128-bit vectors only on x86-64, which caps its kernels at
//! half of an AVX2 core's FMA throughput. Where the host has AVX2 and FMA
//! (detected at run time, [`available`]), the innermost GEMM tile is this Rust
//! function instead; the generated code keeps everything specialised to the
//! network around it: loop nests, tap classes, packing and the fused
//! epilogue.
//!
//! # Calling convention
//!
//! A tile is a [`TileFn`], `extern "C"` (the host's C calling convention):
//!
//! ```text
//! tile(a, a_stride, b, taps, count, depth, c)
//!
//! for r in 0..R, n in 0..16:
//!     c[16 r + n] = sum over t < count, k < depth of
//!                   A(r, t, k) * B(t, k, n)
//! where
//!     A(r, t, k) = *(a + taps[t].a + r * a_stride + 4 k)         (bytes)
//!     B(t, k, n) = *(b + taps[t].b + 64 k + 4 n)                 (bytes)
//! ```
//!
//! `R` is the tile's rows (1 to [`ROWS`], one function each, [`tiles`]):
//! output pixels for a convolution. Each row reads `depth` consecutive `f32`s
//! of `A` per tap (input channels), the rows `a_stride` bytes apart; `B` is
//! packed `[k][16]` per tap (16 output channels, zero-padded by the packer);
//! the tile is written whole to `c` (`R x 16` floats, row-major), overwriting
//! it. A tap is one K-step group with its own offsets into `A` and `B`: a
//! convolution passes one per kernel tap that falls inside the input, a
//! plain GEMM one tap `{a: 0, b: 0}`. `a` may point outside `A`'s buffer as
//! long as every address above lands inside it: offsets are applied with
//! wrapping arithmetic and only the final addresses are read.
//!
//! Invariant: a tile reads exactly the `A` and `B` elements the formula
//! names, its `count` taps, and writes exactly `R x 16` floats at `c`;
//! nothing else. The generated caller therefore keeps the kernel contract
//! (`Lengths`) as long as the formula's addresses are inside the buffers,
//! which `conv`'s tap classes guarantee (`runtime/tests/guard_pages.rs`
//! checks both paths against guard pages).

use cranelift_codegen::ir::{types, AbiParam, SigRef, Signature, Type};
use cranelift_frontend::FunctionBuilder;

/// Output columns of a tile (two 256-bit vectors of `f32`).
pub const WIDTH: usize = 16;

/// The most rows a tile has: 6 rows x 2 vectors are 12 accumulators, plus two
/// weight vectors and a broadcast input, of the 16 `ymm` registers.
pub const ROWS: usize = 6;

/// One K-step group of a tile: byte offsets from `a` and from `b`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tap {
    /// Byte offset of row 0's first element in `A`, from `a`.
    pub a: i64,
    /// Byte offset of this tap's packed `[depth][16]` block of `B`, from `b`.
    pub b: i64,
}

/// A tile's entry point: `(a, a_stride, b, taps, count, depth, c)`, see the
/// module doc.
pub type TileFn = unsafe extern "C" fn(*const f32, i64, *const f32, *const Tap, i64, i64, *mut f32);

/// Imports [`TileFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = [ptr, types::I64, ptr, ptr, types::I64, types::I64, ptr]
        .into_iter()
        .map(AbiParam::new)
        .collect();
    b.import_signature(signature)
}

/// Whether this host runs the native tile (x86-64 with AVX2 and FMA).
pub fn available() -> bool {
    tiles().is_some()
}

/// The tiles of 1 to [`ROWS`] rows (index `rows - 1`), where [`available`].
pub fn tiles() -> Option<[TileFn; ROWS]> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return Some([
            avx2::tile::<1>,
            avx2::tile::<2>,
            avx2::tile::<3>,
            avx2::tile::<4>,
            avx2::tile::<5>,
            avx2::tile::<6>,
        ]);
    }
    None
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Tap, WIDTH};
    use std::arch::x86_64::{
        __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    /// Input channels per step of the unrolled depth loop: the rows'
    /// addresses are computed once per step and each load has a constant
    /// displacement.
    const UNROLL: usize = 4;

    /// The tile of `R` rows.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; `taps` points to `count` initialised
    /// [`Tap`]s (aligned: conv's stack slot is 32-byte aligned); every `A`
    /// and `B` address the module doc's formula names is a readable, aligned
    /// `f32`; and `c` has `R x 16` writable floats.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe extern "C" fn tile<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        taps: *const Tap,
        count: i64,
        depth: i64,
        c: *mut f32,
    ) {
        let depth = depth.max(0) as usize;
        let mut acc: [[__m256; 2]; R] = [[_mm256_setzero_ps(); 2]; R];
        for t in 0..count.max(0) as usize {
            // SAFETY: `t < count`, and the caller passes `count` initialised,
            // aligned `Tap`s at `taps`, so `taps + t` is one of them.
            let tap = unsafe { *taps.add(t) };
            let row0 = a.wrapping_byte_offset(tap.a as isize);
            let w = b.wrapping_byte_offset(tap.b as isize);
            let rows = |k: usize| -> [*const f32; R] {
                std::array::from_fn(|r| {
                    row0.wrapping_byte_offset(r as isize * a_stride as isize)
                        .wrapping_add(k)
                })
            };
            let main = depth / UNROLL * UNROLL;
            for k in (0..main).step_by(UNROLL) {
                let rows = rows(k);
                for u in 0..UNROLL {
                    // SAFETY: `rows[r] + u` is `A(r, t, k + u)` and
                    // `w + 16 (k + u)` is `B(t, k + u, 0)`, both readable by
                    // the caller's contract.
                    unsafe { fma_step(&mut acc, &rows, u, w.add(WIDTH * (k + u))) };
                }
            }
            for k in main..depth {
                // SAFETY: as above, for `k`.
                unsafe { fma_step(&mut acc, &rows(k), 0, w.add(WIDTH * k)) };
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: the host has AVX2 (this function's contract); `c` has
            // `R x 16` writable floats, so for `r < R` the two unaligned
            // 8-float stores at `c + 16 r` and `c + 16 r + 8` stay inside it.
            unsafe {
                _mm256_storeu_ps(c.add(r * WIDTH), acc[0]);
                _mm256_storeu_ps(c.add(r * WIDTH + 8), acc[1]);
            }
        }
    }

    /// One input channel: `acc[r] += rows[r][u] * w[0..16]` for every row.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; `rows[r] + u` is a readable, aligned `f32`
    /// for every row and `w[0..16]` are readable `f32`s.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma_step<const R: usize>(
        acc: &mut [[__m256; 2]; R],
        rows: &[*const f32; R],
        u: usize,
        w: *const f32,
    ) {
        // SAFETY: the host has AVX2 and FMA (the caller's contract), which
        // the intrinsics need; the two unaligned 8-float loads at `w` and
        // `w + 8` read exactly `w[0..16]`, and `&*row.add(u)` is a reference
        // to one readable, aligned `f32` per row, all by the caller's contract.
        unsafe {
            let (w0, w1) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
            for (acc, row) in acc.iter_mut().zip(rows) {
                let x = _mm256_broadcast_ss(&*row.add(u));
                acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module doc's formula, in `f64`, as plain loops.
    fn formula(
        a: &[f32],
        a_stride: usize,
        b: &[f32],
        taps: &[(usize, usize)],
        depth: usize,
        rows: usize,
    ) -> Vec<f64> {
        let mut c = vec![0.0; rows * WIDTH];
        for r in 0..rows {
            for n in 0..WIDTH {
                for &(ta, tb) in taps {
                    for k in 0..depth {
                        c[r * WIDTH + n] +=
                            f64::from(a[ta + r * a_stride + k]) * f64::from(b[tb + k * WIDTH + n]);
                    }
                }
            }
        }
        c
    }

    #[test]
    fn every_tile_computes_the_formula() {
        let Some(tiles) = tiles() else {
            return;
        };
        let (depth, a_stride) = (5, 7);
        let a: Vec<f32> = (0..64).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..3 * depth * WIDTH)
            .map(|i| (i % 13) as f32 * 0.5 - 3.0)
            .collect();
        // Two taps, the second starting later in both A and B; a third unused.
        let taps = [(3, 0), (1, 2 * depth * WIDTH)];
        let raw: Vec<Tap> = taps
            .iter()
            .map(|&(ta, tb)| Tap {
                a: 4 * ta as i64,
                b: 4 * tb as i64,
            })
            .collect();
        for (i, tile) in tiles.iter().enumerate() {
            let rows = i + 1;
            let mut c = vec![f32::NAN; rows * WIDTH];
            // SAFETY: the host has AVX2 and FMA (`tiles` returned them); every
            // address the formula names is inside `a` and `b` (the largest A
            // index is 3 + 5 * 7 + 4 = 42 < 64), and `c` has `rows x 16` floats.
            unsafe {
                tile(
                    a.as_ptr(),
                    4 * a_stride as i64,
                    b.as_ptr(),
                    raw.as_ptr(),
                    raw.len() as i64,
                    depth as i64,
                    c.as_mut_ptr(),
                )
            };
            let want = formula(&a, a_stride, &b, &taps, depth, rows);
            // Small integers and halves: every sum is exact in f32.
            let got: Vec<f64> = c.iter().map(|&x| f64::from(x)).collect();
            assert_eq!(got, want, "{rows} rows");
        }
    }
}
