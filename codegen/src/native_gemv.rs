//! The native GEMV: precompiled matrix-vector micro-kernels, one per
//! instruction set ([`Isa`]), that a dense layer's kernel (and a 1x1
//! convolution of a 1x1 input, squeeze-excite's) calls once per block of
//! [`WIDTH`] output channels.
//!
//! A matrix-vector product reads every weight once and does one
//! multiply-add with it, so it runs at the speed weights stream from memory:
//! the packing makes each block's weights one contiguous stream
//! (`[block][C][WIDTH]`, [`crate::conv::ConvSpec::pack_weights`] with the
//! block width [`WIDTH`]), and the kernel's rows are the blocks, so threads
//! split the weights by blocks of output channels and each reads its share
//! once. [`WIDTH`] columns are 8 `ymm` (AVX2) or 4 `zmm` (AVX-512)
//! accumulators: with a 4-cycle FMA latency, 8 independent chains keep
//! AVX2's two FMA ports busy, and 4 chains of 16 lanes stream 64 bytes a
//! cycle on AVX-512, past what memory delivers.
//!
//! # Calling convention
//!
//! A [`GemvFn`], `extern "C"`:
//!
//! ```text
//! gemv(x, w, depth, y)
//!
//! for n in 0..WIDTH:
//!     y[n] = sum over k < depth of x[k] * w[WIDTH k + n]
//! ```
//!
//! `y` is written whole (`WIDTH` floats), overwriting it; the caller applies
//! the epilogue to the lanes that are output channels (the packer zero-pads
//! the rest).
//!
//! Each output sums `k` by `k` from zero, one fused multiply-add per term,
//! on every ISA, so the ISAs' outputs are bitwise identical
//! (`tests::each_output_is_the_fma_chain_from_zero`). The Cranelift tile sums a one-pixel
//! kernel's channels in four interleaved partial sums (`conv::cranelift_tile`),
//! so it differs from the native GEMV by rounding only.
//!
//! Invariant: a call reads exactly `x[0..depth]` and `w[0..WIDTH depth]`
//! and writes exactly `y[0..WIDTH]`; nothing else
//! (`runtime/tests/it/guard_pages.rs` checks every ISA against guard pages).

use super::native::Isa;
use cranelift_codegen::ir::{types, AbiParam, SigRef, Signature, Type};
use cranelift_frontend::FunctionBuilder;

/// Output channels per call: the block width of a native GEMV's packing.
pub const WIDTH: usize = 64;

/// A GEMV's entry point: `(x, w, depth, y)`, see the module doc.
pub type GemvFn = unsafe extern "C" fn(*const f32, *const f32, i64, *mut f32);

impl Isa {
    /// Its GEMV, where the host runs it (detected at run time, like
    /// [`Isa::tiles`]).
    pub fn gemv(self) -> Option<GemvFn> {
        #[cfg(target_arch = "x86_64")]
        if self.detected() {
            return Some(match self {
                Isa::Avx2 => avx2::gemv,
                Isa::Avx512 => avx512::gemv,
            });
        }
        None
    }
}

/// Imports [`GemvFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = [ptr, ptr, types::I64, ptr]
        .into_iter()
        .map(AbiParam::new)
        .collect();
    b.import_signature(signature)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::WIDTH;
    use std::arch::x86_64::{
        __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    /// Accumulators: `WIDTH / 8` `ymm` registers.
    const VECTORS: usize = WIDTH / 8;

    /// The module doc's GEMV.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; `x` has `depth` readable floats, `w` has
    /// `WIDTH x depth` and `y` has `WIDTH` writable ones.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe extern "C" fn gemv(x: *const f32, w: *const f32, depth: i64, y: *mut f32) {
        let mut acc: [__m256; VECTORS] = [_mm256_setzero_ps(); VECTORS];
        for k in 0..depth.max(0) as usize {
            // SAFETY: the host has AVX2 and FMA (this function's contract);
            // `k < depth`, so `x + k` is readable and the `VECTORS` 8-float
            // unaligned loads at `w + WIDTH k + 8 v` read `w[WIDTH k..WIDTH (k + 1)]`,
            // inside `w`'s `WIDTH x depth` floats.
            unsafe {
                let xs = _mm256_broadcast_ss(&*x.add(k));
                let row = w.add(WIDTH * k);
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(xs, _mm256_loadu_ps(row.add(8 * v)), *acc);
                }
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            // SAFETY: the host has AVX2; `y` has `WIDTH` writable floats and
            // `8 v + 8 <= WIDTH`.
            unsafe { _mm256_storeu_ps(y.add(8 * v), *acc) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::WIDTH;
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    /// Accumulators: `WIDTH / 16` `zmm` registers.
    const VECTORS: usize = WIDTH / 16;

    /// The module doc's GEMV.
    ///
    /// # Safety
    /// The host has AVX-512F; otherwise as [`super::avx2`]'s.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe extern "C" fn gemv(x: *const f32, w: *const f32, depth: i64, y: *mut f32) {
        let mut acc: [__m512; VECTORS] = [_mm512_setzero_ps(); VECTORS];
        for k in 0..depth.max(0) as usize {
            // SAFETY: the host has AVX-512F (this function's contract);
            // `k < depth`, so `x + k` is readable and the `VECTORS` 16-float
            // unaligned loads at `w + WIDTH k + 16 v` read
            // `w[WIDTH k..WIDTH (k + 1)]`, inside `w`'s `WIDTH x depth` floats.
            unsafe {
                let xs = _mm512_set1_ps(*x.add(k));
                let row = w.add(WIDTH * k);
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(xs, _mm512_loadu_ps(row.add(16 * v)), *acc);
                }
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            // SAFETY: the host has AVX-512F; `y` has `WIDTH` writable floats
            // and `16 v + 16 <= WIDTH`.
            unsafe { _mm512_storeu_ps(y.add(16 * v), *acc) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The module doc's formula in `f64`, with each output's sum of `|x w|`.
    fn formula(x: &[f32], w: &[f32]) -> Vec<(f64, f64)> {
        (0..WIDTH)
            .map(|n| {
                x.iter()
                    .enumerate()
                    .fold((0.0, 0.0), |(sum, abs), (k, &xk)| {
                        let term = f64::from(xk) * f64::from(w[WIDTH * k + n]);
                        (sum + term, abs + term.abs())
                    })
            })
            .collect()
    }

    /// What `isa`'s GEMV writes, if the host runs it.
    fn run(isa: Isa, x: &[f32], w: &[f32]) -> Option<Vec<f32>> {
        let gemv = isa.gemv()?;
        let mut y = vec![f32::NAN; WIDTH];
        // SAFETY: the host runs `isa` (`gemv` returned its function); `x`
        // has `depth` floats, `w` `WIDTH x depth` (the strategy's sizes) and
        // `y` `WIDTH`.
        unsafe { gemv(x.as_ptr(), w.as_ptr(), x.len() as i64, y.as_mut_ptr()) };
        Some(y)
    }

    fn operands() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (0usize..70).prop_flat_map(|depth| {
            (
                prop::collection::vec(-2.0f32..2.0, depth),
                prop::collection::vec(-2.0f32..2.0, depth * WIDTH),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_isa_computes_the_formula((x, w) in operands()) {
            for isa in Isa::on_host() {
                let y = run(isa, &x, &w).expect("on the host");
                for (n, (&got, (sum, abs))) in y.iter().zip(formula(&x, &w)).enumerate() {
                    // One rounding per term and per sum: (depth + 1) ulps of |x w|.
                    let bound = (x.len() + 1) as f64 * f64::from(f32::EPSILON) * abs + 1e-30;
                    prop_assert!(
                        (f64::from(got) - sum).abs() <= bound,
                        "{isa} column {n}: {got} against {sum}"
                    );
                }
            }
        }

        #[test]
        fn each_output_is_the_fma_chain_from_zero((x, w) in operands()) {
            // `f32::mul_add` is one rounding per term, as the doc's order says.
            let chain: Vec<u32> = (0..WIDTH)
                .map(|n| {
                    x.iter()
                        .enumerate()
                        .fold(0.0f32, |acc, (k, &xk)| xk.mul_add(w[WIDTH * k + n], acc))
                        .to_bits()
                })
                .collect();
            for isa in Isa::on_host() {
                let y: Vec<u32> = run(isa, &x, &w).expect("on the host").iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(&y, &chain, "{}", isa);
            }
        }
    }
}
