//! The native Winograd transforms: precompiled Rust, one per instruction
//! set ([`Isa`]) and tile size, that [`super::winograd`]'s generated loops
//! call for each tile's input transform (`V = Bᵀ d B`) and output transform
//! (`Y = Aᵀ M A`, then the fused epilogue).
//!
//! Cranelift's transforms are `f32x4`, four channels of a tile at a time;
//! these run 8 (AVX2) or 16 (AVX-512F) channels a vector, the channel tail
//! masked. On an AVX-512 Xeon the generated transforms took a third of a
//! Winograd kernel's time (the 56x56x128 F(4x4) layer, one thread: 36% of
//! its samples outside the GEMM tiles), four times the vectors these need.
//!
//! # Calling convention
//!
//! The input transform is an [`InputFn`], `extern "C"`:
//!
//! ```text
//! input(patch, v, shape, i_lo, i_hi, j_lo, j_hi)
//!
//! for c in 0..shape.channels:
//!     d[i][j] = D(i, j, c) if i_lo <= i < i_hi and j_lo <= j < j_hi, else 0
//!     for (r, s) in alpha x alpha:
//!         V(r, s, c) = (Bᵀ d B)[r][s]
//! where (bytes)
//!     D(i, j, c) = *(patch + i shape.row + j shape.pixel + 4 c)
//!     V(r, s, c) = *(v + (r alpha + s) shape.point + 4 c)
//! ```
//!
//! The output transform is an [`OutputFn`]:
//!
//! ```text
//! output(m, out, extra, rows, cols, params, steps, shape)
//!
//! for k in 0..shape.channels:
//!     x[ξ] = M(ξ, k) for ξ in 0..alpha²
//!     for (r, s) in rows x cols (each at most the tile side):
//!         y = (Aᵀ x A)[r][s]
//!         O(r, s, k) = native_epilogue's formula on y, its bias and
//!                      per-channel vectors P(j, k), its shortcut E(r, s, k)
//! where (bytes)
//!     M(ξ, k)    = *(m + ξ shape.point + (k / 16) shape.block + 4 (k % 16))
//!     P(j, k)    = *(params + j shape.vector + 4 k)
//!     E(r, s, k) = *(extra + r shape.row + s shape.pixel + 4 k)
//!     O(r, s, k) = *(out + r shape.row + s shape.pixel + 4 k)
//! ```
//!
//! with `steps` the kernel's `shape.steps` [`Step`]s. This is
//! [`super::winograd`]'s layout: `V` is `[alpha²][run][C']`, `M`
//! `[alpha²][block][run][16]` (so `m` is one tile's row of block 0), the
//! input HWC with `patch` the tile's top-left input, which may lie outside
//! the input where the bounds leave it out: offsets use wrapping arithmetic
//! and only in-bounds addresses are read.
//!
//! # Bitwise equal to the generated transforms
//!
//! Each transform is the generated one's operation sequence
//! (`winograd::transform`: columns, then rows; each sum from its first
//! nonzero coefficient, a coefficient of 1 an add, of -1 a subtraction or a
//! negation, any other a multiply or a fused multiply-add, zero
//! coefficients skipped) on the same constants, and the epilogue is
//! `native_epilogue::finish`, which is the generated epilogue's. Every
//! operation is lane-wise and IEEE-exact, so the ISAs and Cranelift agree
//! bit for bit, NaN payloads aside (`runtime/tests/it/winograd.rs`,
//! `the_isas_agree_with_cranelift_bitwise`; here, `tests` checks each
//! transform's formula against a scalar twin, bit for bit).
//!
//! Invariant: a call reads exactly the `D` (within the bounds), `M`, `P`
//! and `E` elements the formulas name (`P(j, ..)` only for the `j` the
//! steps reach, `E` only with an `ADD` step; masked loads for the channel
//! tail) and writes exactly the `V` or `O` elements they name, nothing
//! else (`runtime/tests/it/guard_pages.rs` checks every ISA against guard
//! pages).

use super::native::Isa;
use super::native_epilogue::{self, Step};
#[cfg(target_arch = "x86_64")]
use super::native_epilogue::{finish, Lanes, Sink};
use cranelift_codegen::ir::{types, AbiParam, SigRef, Signature, Type};
use cranelift_frontend::FunctionBuilder;

/// The constants of an input transform call (the module doc's formula),
/// `#[repr(C)]` so that generated code can store it in a stack slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    /// Input channels `C`.
    pub channels: i64,
    /// Bytes from one input row to the next.
    pub row: i64,
    /// Bytes from one input pixel to the next.
    pub pixel: i64,
    /// Bytes from one transformed point's plane of `V` to the next.
    pub point: i64,
}

/// The constants of an output transform call (the module doc's formula).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputShape {
    /// Output channels `K`.
    pub channels: i64,
    /// Bytes from one transformed point's plane of `M` to the next.
    pub point: i64,
    /// Bytes from one block of 16 channels of `M` to the next.
    pub block: i64,
    /// Bytes between two per-channel vectors of `params`.
    pub vector: i64,
    /// Bytes from one output row to the next, in the output and `extra`.
    pub row: i64,
    /// Bytes from one output pixel to the next, in the output and `extra`.
    pub pixel: i64,
    /// Epilogue steps after the bias.
    pub steps: i64,
}

impl InputShape {
    /// Its fields in memory order (`#[repr(C)]`, all `i64`): what generated
    /// code stores.
    pub(crate) fn words(&self) -> [i64; 4] {
        [self.channels, self.row, self.pixel, self.point]
    }
}

impl OutputShape {
    /// Its fields in memory order, as [`InputShape::words`].
    pub(crate) fn words(&self) -> [i64; 7] {
        [
            self.channels,
            self.point,
            self.block,
            self.vector,
            self.row,
            self.pixel,
            self.steps,
        ]
    }
}

/// An input transform: `(patch, v, shape, i_lo, i_hi, j_lo, j_hi)`, the
/// module doc's formula.
pub type InputFn =
    unsafe extern "C" fn(*const f32, *mut f32, *const InputShape, i64, i64, i64, i64);

/// An output transform: `(m, out, extra, rows, cols, params, steps,
/// shape)`, the module doc's formula.
pub type OutputFn = unsafe extern "C" fn(
    *const f32,
    *mut f32,
    *const f32,
    i64,
    i64,
    *const f32,
    *const Step,
    *const OutputShape,
);

/// Imports [`InputFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_input_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let i64 = types::I64;
    signature(b, &[ptr, ptr, ptr, i64, i64, i64, i64])
}

/// Imports [`OutputFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_output_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let i64 = types::I64;
    signature(b, &[ptr, ptr, ptr, i64, i64, ptr, ptr, ptr])
}

fn signature(b: &mut FunctionBuilder, params: &[Type]) -> SigRef {
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = params.iter().copied().map(AbiParam::new).collect();
    b.import_signature(signature)
}

/// The input and output transforms of F(`tile` x `tile`, 3 x 3) on `isa`,
/// where the host runs them (the ISA's tiles and the FMA the epilogue and
/// the transforms' multiply-adds need: [`native_epilogue::available`]).
pub fn transforms(isa: Isa, tile: usize) -> Option<(InputFn, OutputFn)> {
    native_epilogue::available(isa).then_some(())?;
    #[cfg(target_arch = "x86_64")]
    return match (isa, tile) {
        (Isa::Avx2, 2) => Some((avx2::input_f2, avx2::output_f2)),
        (Isa::Avx2, 4) => Some((avx2::input_f4, avx2::output_f4)),
        (Isa::Avx512, 2) => Some((avx512::input_f2, avx512::output_f2)),
        (Isa::Avx512, 4) => Some((avx512::input_f4, avx512::output_f4)),
        _ => None,
    };
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `x ↦ L x` for one transform matrix `L` (`R x A`), each sum as the
/// generated `combine` computes it: from the first nonzero coefficient, 1
/// taken as the term itself (or an add), -1 as its negation (or a
/// subtraction), any other as a multiply (or a fused multiply-add); zero
/// coefficients skipped. Written out by hand per matrix, since a loop over
/// a table left its branches in the code (twice as slow as the generated
/// transforms), and implemented on types rather than passed as functions,
/// which were compiled apart from the ISA's features; `tests` holds each
/// to a scalar twin built from [`super::winograd`]'s tables.
#[cfg(target_arch = "x86_64")]
trait Rows<const R: usize, const A: usize> {
    fn rows<V: Lanes>(x: [V; A]) -> [V; R];
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn times<V: Lanes>(x: V, c: f32) -> V {
    x.mul(V::splat(c))
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fma<V: Lanes>(x: V, c: f32, acc: V) -> V {
    x.mul_add(V::splat(c), acc)
}

/// F(2x2)'s `Bᵀ`: `[1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`.
#[cfg(target_arch = "x86_64")]
struct Bt2;
/// F(2x2)'s `Aᵀ`: `[1 1 1 0; 0 1 -1 -1]`.
#[cfg(target_arch = "x86_64")]
struct At2;
/// F(4x4)'s `Bᵀ`: `[4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
/// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]`.
#[cfg(target_arch = "x86_64")]
struct Bt4;
/// F(4x4)'s `Aᵀ`: `[1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]`.
#[cfg(target_arch = "x86_64")]
struct At4;

#[cfg(target_arch = "x86_64")]
impl Rows<4, 4> for Bt2 {
    #[inline(always)]
    fn rows<V: Lanes>([x0, x1, x2, x3]: [V; 4]) -> [V; 4] {
        [x0.sub(x2), x1.add(x2), x1.neg().add(x2), x1.sub(x3)]
    }
}

#[cfg(target_arch = "x86_64")]
impl Rows<2, 4> for At2 {
    #[inline(always)]
    fn rows<V: Lanes>([x0, x1, x2, x3]: [V; 4]) -> [V; 2] {
        [x0.add(x1).add(x2), x1.sub(x2).sub(x3)]
    }
}

#[cfg(target_arch = "x86_64")]
impl Rows<6, 6> for Bt4 {
    #[inline(always)]
    fn rows<V: Lanes>([x0, x1, x2, x3, x4, x5]: [V; 6]) -> [V; 6] {
        [
            fma(x2, -5.0, times(x0, 4.0)).add(x4),
            fma(x2, -4.0, times(x1, -4.0)).add(x3).add(x4),
            fma(x2, -4.0, times(x1, 4.0)).sub(x3).add(x4),
            fma(x3, 2.0, times(x1, -2.0).sub(x2)).add(x4),
            fma(x3, -2.0, times(x1, 2.0).sub(x2)).add(x4),
            fma(x3, -5.0, times(x1, 4.0)).add(x5),
        ]
    }
}

#[cfg(target_arch = "x86_64")]
impl Rows<4, 6> for At4 {
    #[inline(always)]
    fn rows<V: Lanes>([x0, x1, x2, x3, x4, x5]: [V; 6]) -> [V; 4] {
        [
            x0.add(x1).add(x2).add(x3).add(x4),
            fma(x4, -2.0, fma(x3, 2.0, x1.sub(x2))),
            fma(x4, 4.0, fma(x3, 4.0, x1.add(x2))),
            fma(x4, -8.0, fma(x3, 8.0, x1.sub(x2))).add(x5),
        ]
    }
}

/// The input transform's formula for one tile, `V::LANES` channels at a
/// time; `BORDER` reads only within the bounds (else every bound is the
/// whole patch).
///
/// # Safety
/// As [`InputFn`]'s: the module doc's `D` within the bounds readable, `V`
/// writable, for `shape.channels`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn input<V: Lanes, Bt: Rows<A, A>, const A: usize, const BORDER: bool>(
    patch: *const f32,
    v: *mut f32,
    shape: &InputShape,
    [i_lo, i_hi, j_lo, j_hi]: [i64; 4],
) {
    let channels = shape.channels.max(0) as usize;
    let at = |i: usize, j: usize| {
        patch.wrapping_byte_offset((i as i64 * shape.row + j as i64 * shape.pixel) as isize)
    };
    let inside = |i: usize, j: usize| {
        !BORDER || ((i_lo..i_hi).contains(&(i as i64)) && (j_lo..j_hi).contains(&(j as i64)))
    };
    // `Bᵀ d B` as the generated `transform` takes it: `Bᵀ` on each column
    // of the patch as it is loaded, then on each row of the result.
    for c in (0..channels).step_by(V::LANES) {
        let lanes = V::LANES.min(channels - c);
        let zero = V::splat(0.0);
        let mut t = [[zero; A]; A];
        for j in 0..A {
            let mut column = [zero; A];
            for (i, x) in column.iter_mut().enumerate() {
                if inside(i, j) {
                    // SAFETY: `D(i, j, c..c + lanes)` is within the bounds,
                    // so readable (the contract).
                    *x = unsafe { V::load(at(i, j).wrapping_add(c), lanes) };
                }
            }
            for (t, y) in t.iter_mut().zip(Bt::rows(column)) {
                t[j] = y;
            }
        }
        for (r, t) in t.into_iter().enumerate() {
            for (s, y) in Bt::rows(t).into_iter().enumerate() {
                let point = ((r * A + s) as i64 * shape.point) as isize;
                // SAFETY: `V(r, s, c..c + lanes)` is writable (the contract).
                unsafe { y.store(v.wrapping_byte_offset(point).wrapping_add(c), lanes) };
            }
        }
    }
}

/// The output transform's formula for one tile, `V::LANES` channels at a
/// time; `AT` is `Aᵀ`, `M x A`.
///
/// # Safety
/// As [`OutputFn`]'s: the module doc's `M`, `P` (for the `j` the steps
/// reach) and `E` (with an `ADD` step) readable and `O` writable for
/// `rows x cols` pixels (each at most `M`) and `shape.channels`; `steps`
/// has `shape.steps` initialised [`Step`]s.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output<V: Lanes, At: Rows<M, A>, const M: usize, const A: usize>(
    m: *const f32,
    out: *mut f32,
    extra: *const f32,
    (rows, cols): (i64, i64),
    params: *const f32,
    steps: *const Step,
    shape: &OutputShape,
) {
    let (rows, cols) = (
        rows.clamp(0, M as i64) as usize,
        cols.clamp(0, M as i64) as usize,
    );
    let channels = shape.channels.max(0) as usize;
    let row = |r: usize| (r as i64 * shape.row) as isize;
    for c in (0..channels).step_by(V::LANES) {
        let lanes = V::LANES.min(channels - c);
        let chunk = m
            .wrapping_byte_offset((c / 16) as isize * shape.block as isize)
            .wrapping_add(c % 16);
        // `Aᵀ M A` as the generated `transform` takes it: `Aᵀ` on each
        // column as it is loaded, then on each row of the result.
        let zero = V::splat(0.0);
        let mut t = [[zero; A]; M];
        for j in 0..A {
            let mut column = [zero; A];
            for (i, x) in column.iter_mut().enumerate() {
                let point = ((i * A + j) as i64 * shape.point) as isize;
                // SAFETY: `M(ξ, c..c + lanes)` is readable (the contract).
                *x = unsafe { V::load(chunk.wrapping_byte_offset(point), lanes) };
            }
            for (t, y) in t.iter_mut().zip(At::rows(column)) {
                t[j] = y;
            }
        }
        for (r, t) in t.into_iter().enumerate().take(rows) {
            let mut ys = At::rows(t);
            let sink = Sink {
                steps,
                count: shape.steps,
                params,
                vector: shape.vector,
                extra: extra.wrapping_byte_offset(row(r)),
                output: out.wrapping_byte_offset(row(r)),
                pixel: shape.pixel,
                columns: shape.channels,
                prefetch: std::ptr::null(),
                lines: 0,
            };
            // SAFETY: row `r`'s `cols` pixels are among the call's, so the
            // sink's `P`, `E` and `O` are as `finish` needs (the contract).
            unsafe { finish(&mut ys[..cols], &sink, c) };
        }
    }
}

/// Both ISAs' entry points, expanded in each ISA's module next to its
/// vector type `$v` (a [`Lanes`]): every function carries the module's
/// target features, so the generic bodies inline into them.
#[cfg(target_arch = "x86_64")]
macro_rules! entry_points {
    ($feature:literal, $v:ty) => {
        use super::{At2, At4, Bt2, Bt4, InputShape, OutputShape, Rows, Step};

        /// The input transform `Bt` (`A x A`), whole patch or within its bounds.
        ///
        /// # Safety
        /// The host has this module's ISA and FMA; `shape` points to a
        /// valid [`InputShape`]; the module doc's `D` within the bounds is
        /// readable and `V` writable.
        #[target_feature(enable = $feature)]
        unsafe fn input<Bt: Rows<A, A>, const A: usize>(
            patch: *const f32,
            v: *mut f32,
            shape: *const InputShape,
            bounds: [i64; 4],
        ) {
            // SAFETY: the caller passes a valid shape; the rest of the
            // contract is `super::input`'s, which reads within the bounds
            // only, and reads the whole patch only where they are whole.
            unsafe {
                let shape = &*shape;
                if bounds == [0, A as i64, 0, A as i64] {
                    super::input::<$v, Bt, A, false>(patch, v, shape, bounds)
                } else {
                    super::input::<$v, Bt, A, true>(patch, v, shape, bounds)
                }
            }
        }

        /// Each tile size's input transform, [`super::InputFn`].
        macro_rules! input_fn {
            ($name:ident, $rows:ty, $alpha:literal, $what:literal) => {
                #[doc = concat!($what, "'s input transform ([`super::InputFn`]).")]
                ///
                /// # Safety
                /// As `input`'s.
                #[target_feature(enable = $feature)]
                pub(super) unsafe extern "C" fn $name(
                    patch: *const f32,
                    v: *mut f32,
                    shape: *const InputShape,
                    i_lo: i64,
                    i_hi: i64,
                    j_lo: i64,
                    j_hi: i64,
                ) {
                    // SAFETY: the same contract.
                    unsafe { input::<$rows, $alpha>(patch, v, shape, [i_lo, i_hi, j_lo, j_hi]) }
                }
            };
        }

        /// Each tile size's output transform, [`super::OutputFn`].
        macro_rules! output_fn {
            ($name:ident, $rows:ty, $m:literal, $alpha:literal, $what:literal) => {
                #[doc = concat!($what, "'s output transform ([`super::OutputFn`]).")]
                ///
                /// # Safety
                /// The host has this module's ISA and FMA; `shape` points to a
                /// valid [`OutputShape`]; otherwise as `super::output`'s.
                #[target_feature(enable = $feature)]
                #[allow(clippy::too_many_arguments)]
                pub(super) unsafe extern "C" fn $name(
                    m: *const f32,
                    out: *mut f32,
                    extra: *const f32,
                    rows: i64,
                    cols: i64,
                    params: *const f32,
                    steps: *const Step,
                    shape: *const OutputShape,
                ) {
                    // SAFETY: the same contract.
                    unsafe {
                        super::output::<$v, $rows, $m, $alpha>(
                            m,
                            out,
                            extra,
                            (rows, cols),
                            params,
                            steps,
                            &*shape,
                        )
                    }
                }
            };
        }

        input_fn!(input_f2, Bt2, 4, "F(2x2)");
        input_fn!(input_f4, Bt4, 6, "F(4x4)");
        output_fn!(output_f2, At2, 2, 4, "F(2x2)");
        output_fn!(output_f4, At4, 4, 6, "F(4x4)");
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    entry_points!("avx2,fma", crate::native_epilogue::avx2::Ymm);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    entry_points!("avx512f,fma", crate::native_epilogue::avx512::Zmm);
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::winograd::{F2, F4};
    use proptest::prelude::*;

    /// Marks elements a call must not write.
    const UNTOUCHED: f32 = -12345.0;

    /// `Σ_k m[r][k] x[k]` as the generated `combine` takes it, in scalar
    /// `f32` from `winograd`'s tables: the twin the hand-written rows are
    /// held to, bit for bit.
    fn combine(m: &[f64], x: &[f32]) -> f32 {
        let mut acc: Option<f32> = None;
        for (&coef, &x) in m.iter().zip(x) {
            if coef == 0.0 {
                continue;
            }
            let c = coef as f32;
            acc = Some(match (acc, coef) {
                (None, 1.0) => x,
                (None, -1.0) => -x,
                (None, _) => x * c,
                (Some(acc), 1.0) => acc + x,
                (Some(acc), -1.0) => acc - x,
                (Some(acc), _) => x.mul_add(c, acc),
            });
        }
        acc.unwrap_or(0.0)
    }

    /// `L x Lᵀ` (first `rows` of each side) of the `alpha x alpha` tile
    /// `x`, columns first, as the generated `transform`.
    fn transform(l: &[&[f64]], x: &[f32], alpha: usize) -> Vec<f32> {
        let rows = l.len();
        let mut t = vec![0.0; rows * alpha];
        for j in 0..alpha {
            let column: Vec<f32> = (0..alpha).map(|i| x[i * alpha + j]).collect();
            for r in 0..rows {
                t[r * alpha + j] = combine(l[r], &column);
            }
        }
        t.chunks(alpha)
            .flat_map(|t| l.iter().map(|l| combine(l, t)))
            .collect()
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The input transform is the twin's `Bᵀ d B` bit for bit on every
        /// ISA the host has, reads only within its bounds (the input past
        /// them is NaN, which would show) and writes exactly `V`'s
        /// elements: the gaps between channel rows and planes keep their
        /// mark.
        #[test]
        fn the_input_transform_computes_the_formula(
            tile in prop::sample::select(vec![2usize, 4]),
            channels in 1usize..40,
            gap in 0usize..5,
            (i_lo, i_hi) in (0i64..7).prop_flat_map(|lo| (Just(lo), lo..7)),
            (j_lo, j_hi) in (0i64..7).prop_flat_map(|lo| (Just(lo), lo..7)),
            seed in any::<u64>(),
        ) {
            let (table, alpha) = if tile == 2 { (F2.bt, 4) } else { (F4.bt, 6) };
            let (i_lo, i_hi) = (i_lo.min(alpha as i64), i_hi.min(alpha as i64));
            let (j_lo, j_hi) = (j_lo.min(alpha as i64), j_hi.min(alpha as i64));
            // Pixels `channels + gap` floats apart, rows `alpha + 1` pixels.
            let pixel = channels + gap;
            let row = (alpha + 1) * pixel;
            let inside = |i: usize, j: usize| {
                (i_lo..i_hi).contains(&(i as i64)) && (j_lo..j_hi).contains(&(j as i64))
            };
            let data = values(alpha * row, seed);
            let input: Vec<f32> = (0..alpha * row)
                .map(|at| {
                    let (i, j) = (at / row, at % row / pixel);
                    if inside(i, j) { data[at] } else { f32::NAN }
                })
                .collect();
            let point = channels + gap;
            let shape = InputShape {
                channels: channels as i64,
                row: (row * 4) as i64,
                pixel: (pixel * 4) as i64,
                point: (point * 4) as i64,
            };
            let mut want = vec![UNTOUCHED; alpha * alpha * point];
            for c in 0..channels {
                let d: Vec<f32> = (0..alpha * alpha)
                    .map(|p| {
                        let (i, j) = (p / alpha, p % alpha);
                        if inside(i, j) { input[i * row + j * pixel + c] } else { 0.0 }
                    })
                    .collect();
                for (xi, y) in transform(table, &d, alpha).into_iter().enumerate() {
                    want[xi * point + c] = y;
                }
            }
            for isa in Isa::on_host() {
                let Some((input_fn, _)) = transforms(isa, tile) else { continue };
                let mut got = vec![UNTOUCHED; want.len()];
                // SAFETY: the host runs `isa` (`transforms`); the patch's
                // `D` within the bounds and `V` are inside `input` and
                // `got` by construction.
                unsafe {
                    input_fn(input.as_ptr(), got.as_mut_ptr(), &shape, i_lo, i_hi, j_lo, j_hi)
                };
                prop_assert_eq!(bits(&got), bits(&want), "{}", isa);
            }
        }

        /// The output transform is the twin's `Aᵀ M A` plus the bias bit
        /// for bit (a ReLU after it where drawn), writes exactly the
        /// `rows x cols` pixels' channels and reads `M` as laid out in
        /// blocks of 16.
        #[test]
        fn the_output_transform_computes_the_formula(
            tile in prop::sample::select(vec![2usize, 4]),
            channels in 1usize..40,
            rows in 0i64..5,
            cols in 0i64..5,
            relu in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let (table, alpha) = if tile == 2 { (F2.at, 4) } else { (F4.at, 6) };
            let (rows, cols) = (rows.min(tile as i64) as usize, cols.min(tile as i64) as usize);
            let blocks = channels.div_ceil(16);
            // `M` of one tile in a run of 3, `[ξ][block][run][16]`; this tile
            // is the run's second.
            let (run, slot) = (3, 1);
            let m = values(alpha * alpha * blocks * run * 16, seed);
            let bias = values(blocks * 16, seed ^ 1);
            // Output pixels `channels + 3` floats apart, rows `tile + 1` pixels.
            let pixel = channels + 3;
            let row = (tile + 1) * pixel;
            let shape = OutputShape {
                channels: channels as i64,
                point: (blocks * run * 16 * 4) as i64,
                block: (run * 16 * 4) as i64,
                vector: (blocks * 16 * 4) as i64,
                row: (row * 4) as i64,
                pixel: (pixel * 4) as i64,
                steps: i64::from(relu),
            };
            let steps = [Step { code: native_epilogue::RELU, slope: 0.0 }];
            let mut want = vec![UNTOUCHED; tile * row];
            for c in 0..channels {
                let x: Vec<f32> = (0..alpha * alpha)
                    .map(|xi| m[((xi * blocks + c / 16) * run + slot) * 16 + c % 16])
                    .collect();
                let y = transform(table, &x, alpha);
                for r in 0..rows {
                    for s in 0..cols {
                        let y = y[r * tile + s] + bias[c];
                        // `maxps` with the bound first, as the epilogue's ReLU.
                        want[r * row + s * pixel + c] = if relu { if 0.0 > y { 0.0 } else { y } } else { y };
                    }
                }
            }
            for isa in Isa::on_host() {
                let Some((_, output_fn)) = transforms(isa, tile) else { continue };
                let mut got = vec![UNTOUCHED; want.len()];
                // SAFETY: the host runs `isa`; `M` of this tile, the bias
                // and the `rows x cols` output pixels are inside `m`,
                // `bias` and `got` by construction; no `ADD` step, so
                // `extra` is never read.
                unsafe {
                    output_fn(
                        m.as_ptr().add(slot * 16),
                        got.as_mut_ptr(),
                        std::ptr::null(),
                        rows as i64,
                        cols as i64,
                        bias.as_ptr(),
                        steps.as_ptr(),
                        &shape,
                    )
                };
                prop_assert_eq!(bits(&got), bits(&want), "{}", isa);
            }
        }
    }
}
