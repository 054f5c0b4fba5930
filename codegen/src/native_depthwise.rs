//! The native depthwise row kernels: precompiled Rust, one per instruction
//! set ([`Isa`]), that [`super::depthwise`]'s generated loops call for each
//! run of output pixels of one row that share their valid taps (a tap class
//! of columns).
//!
//! Cranelift's depthwise code is `f32x4` (four channels of one pixel per
//! vector); these kernels vectorise the same channels 8 (AVX2) or 16
//! (AVX-512F) at a time, the channel tail masked, and keep a block of
//! [`PIXELS`] output pixels' accumulators in registers. Where every column
//! tap of a full 3- or 5-wide kernel of dilation 1 and stride 1 or 2 is
//! valid (the interior of a row), they slide the window: each input vector
//! of the block's span is loaded once and multiplied into every accumulator
//! whose window holds it (a 3x3 stride-1 block of 8 pixels loads 10 input
//! vectors per kernel row, not 24). Elsewhere (the padded border, other
//! shapes) each tap loads its pixels' inputs.
//!
//! # Calling convention
//!
//! A kernel is a [`RowFn`], `extern "C"`:
//!
//! ```text
//! row(input, weights, bias, output, pixels, shape)
//!
//! for p in 0..pixels, c in 0..shape.channels:
//!     s(p, c) = sum over y in ky.0..ky.1, then x in kx.0..kx.1, of
//!               I(p, y, x, c) * W(y, x, c)
//!     O(p, c) = s(p, c)                          epilogue RAW
//!             = s(p, c) + B(c)                   epilogue BIAS
//!             = max(s(p, c) + B(c), 0)           epilogue RELU
//!             = min(max(s(p, c) + B(c), 0), 6)   epilogue RELU6
//! where (bytes, C = shape.channels)
//!     I(p, y, x, c) = *(input + y in_row + (p stride + x dilation) 4 C + 4 c)
//!     W(y, x, c)    = *(weights + ((y kernel_width + x) padded + c) 4)
//!     B(c)          = *(bias + 4 c)
//!     O(p, c)       = *(output + p out_pixel + 4 c)
//! ```
//!
//! with `ky`, `kx`, `in_row`, `stride`, `dilation`, `kernel_width`,
//! `padded` and `out_pixel` the fields of `*shape` ([`RowShape`]). This is
//! [`super::depthwise`]'s packing: weights `[ky][kx][C']`, per-channel
//! vectors padded to `C'`, HWC input whose pixels are `4 C` bytes apart and
//! whose `input` may point before the buffer (a padded border): offsets use
//! wrapping arithmetic and only the final addresses are read. `max` and
//! `min` are the shared epilogue's `at_least` / `at_most`, which keep a NaN
//! and -0 (`max(0, x)` in `maxps` operand order). Any other epilogue is
//! applied by the generated code after the call, on the `RAW` sums the
//! kernel wrote (reading and rewriting them in `output`).
//!
//! Every output is summed in the order above, one fused multiply-add per
//! term from zero, as Cranelift's depthwise code does (`vector::mul_add` is
//! `fma` on every host with a native ISA), so the ISAs and Cranelift agree
//! bitwise (`depthwise::the_isas_agree_with_cranelift_bitwise` in the
//! runtime's integration tests; `tests::kernels_compute_the_formula_exactly`
//! here checks the formula itself).
//!
//! Invariant: a kernel reads exactly the `I`, `W` and `B` elements the
//! formula names (masked loads for the channel tail: masked-off lanes are
//! not accessed) and writes exactly the `pixels x C` floats `O` names,
//! nothing else; `depthwise`'s tap classes keep every `I` inside the input
//! (`runtime/tests/it/guard_pages.rs` checks every ISA against guard pages).

use super::native::Isa;
use cranelift_codegen::ir::{types, AbiParam, SigRef, Signature, Type};
use cranelift_frontend::FunctionBuilder;

/// Output pixels whose accumulators a kernel keeps in registers at once.
pub const PIXELS: usize = 8;

// The kernels' tail covers blocks of 1 to 7 pixels.
const _: () = assert!(PIXELS == 8);

/// Channels of one vector of `isa`'s kernel.
pub const fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
    }
}

/// What a call writes after the sums (module doc's formula).
pub mod epilogue {
    /// The sums only.
    pub const RAW: i64 = 0;
    /// The sums plus the bias.
    pub const BIAS: i64 = 1;
    /// ReLU of the sums plus the bias.
    pub const RELU: i64 = 2;
    /// ReLU6 of the sums plus the bias.
    pub const RELU6: i64 = 3;
}

/// The constants of a call (the module doc's formula), `#[repr(C)]` so that
/// generated code can store it in a stack slot; byte counts are bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowShape {
    /// Channels `C`.
    pub channels: i64,
    /// Channels of the packed weights, `C' >= C`.
    pub padded: i64,
    /// Kernel width.
    pub kernel_width: i64,
    /// Kernel rows summed: `[ky.0, ky.1)`.
    pub ky: [i64; 2],
    /// Kernel columns summed: `[kx.0, kx.1)`.
    pub kx: [i64; 2],
    /// Bytes from one kernel row's input row to the next (dilation included).
    pub in_row: i64,
    /// Input pixels from one output pixel to the next.
    pub stride: i64,
    /// Input pixels from one kernel column to the next.
    pub dilation: i64,
    /// Bytes from one output pixel to the next.
    pub out_pixel: i64,
    /// One of [`epilogue`]'s codes.
    pub epilogue: i64,
}

impl RowShape {
    /// Its fields in memory order (`#[repr(C)]`, all `i64`): what generated
    /// code stores.
    pub(crate) fn words(&self) -> [i64; 12] {
        let ([ky0, ky1], [kx0, kx1]) = (self.ky, self.kx);
        [
            self.channels,
            self.padded,
            self.kernel_width,
            ky0,
            ky1,
            kx0,
            kx1,
            self.in_row,
            self.stride,
            self.dilation,
            self.out_pixel,
            self.epilogue,
        ]
    }
}

/// Imports [`RowFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = [ptr, ptr, ptr, ptr, types::I64, ptr]
        .into_iter()
        .map(AbiParam::new)
        .collect();
    b.import_signature(signature)
}

/// A row kernel's entry point: `(input, weights, bias, output, pixels,
/// shape)`, see the module doc.
pub type RowFn =
    unsafe extern "C" fn(*const f32, *const f32, *const f32, *mut f32, i64, *const RowShape);

/// The row kernel of `isa`, where the host runs it.
pub fn row(isa: Isa) -> Option<RowFn> {
    isa.tiles()?;
    #[cfg(target_arch = "x86_64")]
    return Some(match isa {
        Isa::Avx2 => avx2::row,
        Isa::Avx512 => avx512::row,
    });
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The shared body of both ISAs' kernels, expanded in each ISA's module next
/// to its vector helpers (`V`, `Mask`, `LANES`, `mask`, `zero`, `load`,
/// `store`, `fma`, `add`, `max`, `min`, `splat`): every function carries the
/// module's target feature, so the helpers inline into them.
#[cfg(target_arch = "x86_64")]
macro_rules! kernels {
    ($feature:literal) => {
        /// The kernel (module doc's formula).
        ///
        /// # Safety
        /// The host has this module's ISA; `shape` points to a valid
        /// [`RowShape`], and every address the formula names for it is
        /// readable (`I`, `W`, `B`) or writable (`O`) and aligned for `f32`.
        #[target_feature(enable = $feature)]
        pub(super) unsafe extern "C" fn row(
            input: *const f32,
            weights: *const f32,
            bias: *const f32,
            output: *mut f32,
            pixels: i64,
            shape: *const RowShape,
        ) {
            // SAFETY: the caller passes a valid `RowShape`.
            let s = unsafe { &*shape };
            let pixels = pixels.max(0) as usize;
            let call = Call {
                input: input.cast(),
                weights: weights.cast(),
                bias: bias.cast(),
                output: output.cast(),
                s,
            };
            let sliding = s.dilation == 1 && s.kx == [0, s.kernel_width];
            let full = pixels / PIXELS * PIXELS;
            for p in (0..full).step_by(PIXELS) {
                // SAFETY: pixels `p .. p + PIXELS` are among the call's.
                unsafe { dispatch::<PIXELS>(&call, p, sliding) };
            }
            // SAFETY: pixels `full .. pixels` are among the call's.
            unsafe {
                tail(&call, full, pixels - full, sliding);
            }
        }

        /// The remaining `n < PIXELS` pixels from `p`, as one block of `n`.
        ///
        /// # Safety
        /// Pixels `p .. p + n` are among the call's.
        #[target_feature(enable = $feature)]
        unsafe fn tail(call: &Call, p: usize, n: usize, sliding: bool) {
            // SAFETY: in each arm, pixels `p .. p + n` are among the call's.
            unsafe {
                match n {
                    1 => dispatch::<1>(call, p, sliding),
                    2 => dispatch::<2>(call, p, sliding),
                    3 => dispatch::<3>(call, p, sliding),
                    4 => dispatch::<4>(call, p, sliding),
                    5 => dispatch::<5>(call, p, sliding),
                    6 => dispatch::<6>(call, p, sliding),
                    7 => dispatch::<7>(call, p, sliding),
                    _ => {}
                }
            }
        }

        /// `P` pixels from `p`, by the sliding window where it applies.
        ///
        /// # Safety
        /// Pixels `p .. p + P` are among the call's.
        #[target_feature(enable = $feature)]
        unsafe fn dispatch<const P: usize>(call: &Call, p: usize, sliding: bool) {
            let s = call.s;
            // SAFETY: in each arm, pixels `p .. p + P` are among the call's,
            // and `block` reads the taps the formula names: a sliding arm is
            // taken only for its kernel width and stride, dilation 1 and
            // every column tap.
            unsafe {
                match (sliding, s.kernel_width, s.stride) {
                    (true, 3, 1) => block::<P, 3, 1, true>(call, p),
                    (true, 3, 2) => block::<P, 3, 2, true>(call, p),
                    (true, 5, 1) => block::<P, 5, 1, true>(call, p),
                    (true, 5, 2) => block::<P, 5, 2, true>(call, p),
                    _ => block::<P, 0, 0, false>(call, p),
                }
            }
        }

        /// `P` pixels from `p`, every channel vector: whole vectors, then
        /// the masked tail.
        ///
        /// # Safety
        /// Pixels `p .. p + P` are among the call's, and `K`, `S` and
        /// `SLIDE` are as [`dispatch`] picks them.
        #[target_feature(enable = $feature)]
        unsafe fn block<const P: usize, const K: usize, const S: usize, const SLIDE: bool>(
            call: &Call,
            p: usize,
        ) {
            let channels = call.s.channels.max(0) as usize;
            let whole = channels / LANES;
            for v in 0..whole {
                // SAFETY: channels `v LANES ..` are whole vectors inside `C`.
                unsafe { vector::<P, K, S, SLIDE>(call, p, v * LANES, mask(LANES), true) };
            }
            let rest = channels - whole * LANES;
            if rest > 0 {
                // SAFETY: the mask covers the `rest` channels left.
                unsafe { vector::<P, K, S, SLIDE>(call, p, whole * LANES, mask(rest), false) };
            }
        }

        /// One vector of channels from `c` of `P` pixels from `p`: the sums
        /// (by the sliding window if `SLIDE`, for kernel width `K` and
        /// stride `S`), the epilogue, the store.
        ///
        /// # Safety
        /// As [`block`]; the lanes of `m` from channel `c` are inside `C`,
        /// all of a vector if `whole`.
        #[target_feature(enable = $feature)]
        #[inline]
        unsafe fn vector<const P: usize, const K: usize, const S: usize, const SLIDE: bool>(
            call: &Call,
            p: usize,
            c: usize,
            m: Mask,
            whole: bool,
        ) {
            let s = call.s;
            let pixel = s.channels as isize * 4;
            let padded = s.padded as isize * 4;
            let c_bytes = c as isize * 4;
            let input = call
                .input
                .wrapping_offset(p as isize * s.stride as isize * pixel + c_bytes);
            let weights = call.weights.wrapping_offset(c_bytes);
            let w_at = |y: i64, x: i64| {
                weights.wrapping_offset((y * s.kernel_width + x) as isize * padded)
            };
            let ld = |at: *const u8| {
                // SAFETY: every load is of an address the formula names for
                // the call's pixels and the mask's channels.
                unsafe { load(at.cast(), m, whole) }
            };
            let mut acc = [zero(); P];
            for y in s.ky[0]..s.ky[1] {
                let row = input.wrapping_offset(y as isize * s.in_row as isize);
                if SLIDE {
                    let w: [V; K] = std::array::from_fn(|x| ld(w_at(y, x as i64)));
                    for q in 0..(P - 1) * S + K {
                        let v = ld(row.wrapping_offset(q as isize * pixel));
                        for (i, acc) in acc.iter_mut().enumerate() {
                            if q >= i * S && q - i * S < K {
                                *acc = fma(v, w[q - i * S], *acc);
                            }
                        }
                    }
                } else {
                    for x in s.kx[0]..s.kx[1] {
                        let w = ld(w_at(y, x));
                        let tap = row.wrapping_offset(x as isize * s.dilation as isize * pixel);
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let step = (i as isize) * s.stride as isize * pixel;
                            *acc = fma(ld(tap.wrapping_offset(step)), w, *acc);
                        }
                    }
                }
            }
            if s.epilogue != epilogue::RAW {
                let b = ld(call.bias.wrapping_offset(c_bytes));
                for acc in &mut acc {
                    *acc = add(*acc, b);
                    if s.epilogue >= epilogue::RELU {
                        *acc = max(zero(), *acc);
                    }
                    if s.epilogue == epilogue::RELU6 {
                        *acc = min(splat(6.0), *acc);
                    }
                }
            }
            let out = call
                .output
                .wrapping_offset(p as isize * s.out_pixel as isize + c_bytes);
            for (i, acc) in acc.iter().enumerate() {
                let at = out.wrapping_offset(i as isize * s.out_pixel as isize);
                // SAFETY: the formula names `O(p + i, c ..)` for the mask's
                // channels as writable.
                unsafe { store(at.cast(), *acc, m, whole) };
            }
        }
    };
}

/// One call's pointers (as bytes, for offset arithmetic) and shape.
#[cfg(target_arch = "x86_64")]
struct Call<'s> {
    input: *const u8,
    weights: *const u8,
    bias: *const u8,
    output: *mut u8,
    s: &'s RowShape,
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{epilogue, Call, RowShape, PIXELS};
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps,
        _mm256_maskstore_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps, _mm256_setr_epi32,
        _mm256_setzero_ps, _mm256_storeu_ps,
    };

    type V = __m256;
    type Mask = __m256i;
    const LANES: usize = super::lanes(super::Isa::Avx2);

    /// Lanes `0 .. n` set.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn mask(n: usize) -> Mask {
        let on = |i: usize| if i < n { -1 } else { 0 };
        _mm256_setr_epi32(on(0), on(1), on(2), on(3), on(4), on(5), on(6), on(7))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn zero() -> V {
        _mm256_setzero_ps()
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn splat(x: f32) -> V {
        _mm256_set1_ps(x)
    }

    /// The lanes of `m` at `p` (all eight if `whole`), zeros elsewhere.
    ///
    /// # Safety
    /// The lanes of `m` at `p` are readable `f32`s (all eight if `whole`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load(p: *const f32, m: Mask, whole: bool) -> V {
        // SAFETY: as this function's contract; `maskload` does not access
        // masked-off lanes.
        unsafe {
            if whole {
                _mm256_loadu_ps(p)
            } else {
                _mm256_maskload_ps(p, m)
            }
        }
    }

    /// Stores the lanes of `m` (all eight if `whole`) at `p`.
    ///
    /// # Safety
    /// The lanes of `m` at `p` are writable `f32`s (all eight if `whole`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn store(p: *mut f32, v: V, m: Mask, whole: bool) {
        // SAFETY: as this function's contract; `maskstore` does not access
        // masked-off lanes.
        unsafe {
            if whole {
                _mm256_storeu_ps(p, v)
            } else {
                _mm256_maskstore_ps(p, m, v)
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn fma(a: V, b: V, c: V) -> V {
        _mm256_fmadd_ps(a, b, c)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn add(a: V, b: V) -> V {
        _mm256_add_ps(a, b)
    }

    /// `a > b ? a : b` lane-wise (`maxps` order).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn max(a: V, b: V) -> V {
        _mm256_max_ps(a, b)
    }

    /// `a < b ? a : b` lane-wise (`minps` order).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn min(a: V, b: V) -> V {
        _mm256_min_ps(a, b)
    }

    kernels!("avx2,fma");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{epilogue, Call, RowShape, PIXELS};
    use std::arch::x86_64::{
        __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };

    type V = __m512;
    type Mask = __mmask16;
    const LANES: usize = super::lanes(super::Isa::Avx512);

    /// Lanes `0 .. n` set.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn mask(n: usize) -> Mask {
        ((1u32 << n.min(16)) - 1) as Mask
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn zero() -> V {
        _mm512_setzero_ps()
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn splat(x: f32) -> V {
        _mm512_set1_ps(x)
    }

    /// The lanes of `m` at `p`, zeros elsewhere (`whole`: `m` is all lanes).
    ///
    /// # Safety
    /// The lanes of `m` at `p` are readable `f32`s.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load(p: *const f32, m: Mask, _whole: bool) -> V {
        // SAFETY: as this function's contract; a masked load does not
        // access masked-off lanes.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    /// Stores the lanes of `m` at `p`.
    ///
    /// # Safety
    /// The lanes of `m` at `p` are writable `f32`s.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store(p: *mut f32, v: V, m: Mask, _whole: bool) {
        // SAFETY: as this function's contract; a masked store does not
        // access masked-off lanes.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn fma(a: V, b: V, c: V) -> V {
        _mm512_fmadd_ps(a, b, c)
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn add(a: V, b: V) -> V {
        _mm512_add_ps(a, b)
    }

    /// `a > b ? a : b` lane-wise (`maxps` order).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn max(a: V, b: V) -> V {
        _mm512_max_ps(a, b)
    }

    /// `a < b ? a : b` lane-wise (`minps` order).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn min(a: V, b: V) -> V {
        _mm512_min_ps(a, b)
    }

    kernels!("avx512f");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module doc's formula as plain loops, in `f64`, for a call whose
    /// `input` is element `origin` of `data`; outputs `out_pixel / 4` floats
    /// apart, the gaps untouched (NaN).
    fn formula(
        s: &RowShape,
        data: &[f32],
        origin: usize,
        weights: &[f32],
        bias: &[f32],
        pixels: usize,
    ) -> Vec<f64> {
        let c = s.channels as usize;
        let stride = s.out_pixel as usize / 4;
        let mut out = vec![f64::NAN; pixels * stride];
        for p in 0..pixels {
            for ch in 0..c {
                let mut sum = 0.0;
                for y in s.ky[0] as usize..s.ky[1] as usize {
                    for x in s.kx[0] as usize..s.kx[1] as usize {
                        let at = origin
                            + y * s.in_row as usize / 4
                            + (p * s.stride as usize + x * s.dilation as usize) * c
                            + ch;
                        let w = weights[(y * s.kernel_width as usize + x) * s.padded as usize + ch];
                        sum += f64::from(data[at]) * f64::from(w);
                    }
                }
                let b = f64::from(bias[ch]);
                out[p * stride + ch] = match s.epilogue {
                    epilogue::RAW => sum,
                    epilogue::BIAS => sum + b,
                    epilogue::RELU => (sum + b).max(0.0),
                    _ => (sum + b).clamp(0.0, 6.0),
                };
            }
        }
        out
    }

    /// Small integers: every sum is exact in `f32`, so each ISA must write
    /// exactly the formula's values, and nothing in the gaps between output
    /// pixels. Shapes: both sliding widths and strides, a dilated and a
    /// clipped one (the generic path), channels of whole and partial
    /// vectors, pixel counts around the block of 8, every epilogue code.
    #[test]
    fn kernels_compute_the_formula_exactly() {
        let shapes = [
            // (channels, kernel_width, kx, stride, dilation, pixels, epilogue)
            (
                16usize,
                3usize,
                [0usize, 3],
                1usize,
                1usize,
                8usize,
                epilogue::RAW,
            ),
            (5, 3, [0, 3], 1, 1, 19, epilogue::BIAS),
            (37, 5, [0, 5], 2, 1, 11, epilogue::RELU),
            (24, 3, [0, 3], 2, 1, 3, epilogue::RELU6),
            (9, 3, [1, 3], 1, 1, 9, epilogue::RELU),
            (20, 3, [0, 3], 1, 2, 10, epilogue::BIAS),
            (3, 4, [0, 4], 3, 1, 7, epilogue::RAW),
        ];
        for (channels, kw, kx, stride, dilation, pixels, code) in shapes {
            let padded = channels.div_ceil(4) * 4;
            let ky = [0, 2];
            let width = (pixels - 1) * stride + (kw - 1) * dilation + 1;
            let row_len = width * channels;
            let shape = RowShape {
                channels: channels as i64,
                padded: padded as i64,
                kernel_width: kw as i64,
                ky,
                kx: [kx[0] as i64, kx[1] as i64],
                in_row: (row_len * 4) as i64,
                stride: stride as i64,
                dilation: dilation as i64,
                out_pixel: ((channels + 3) * 4) as i64,
                epilogue: code,
            };
            let data: Vec<f32> = (0..2 * row_len).map(|i| (i % 7) as f32 - 3.0).collect();
            let weights: Vec<f32> = (0..2 * kw * padded).map(|i| (i % 5) as f32 - 2.0).collect();
            let bias: Vec<f32> = (0..padded).map(|i| (i % 3) as f32 - 1.0).collect();
            let want = formula(&shape, &data, 0, &weights, &bias, pixels);
            for isa in Isa::ALL {
                let Some(kernel) = row(isa) else {
                    eprintln!("note: this host lacks {isa}; its kernel is not run");
                    continue;
                };
                let mut out = vec![f32::NAN; want.len()];
                // SAFETY: the host runs `isa`; the formula's addresses are
                // inside `data`, `weights` and `bias` (`formula` indexes the
                // same elements, checked) and `out` (`pixels` pixels of
                // `out_pixel` bytes).
                unsafe {
                    kernel(
                        data.as_ptr(),
                        weights.as_ptr(),
                        bias.as_ptr(),
                        out.as_mut_ptr(),
                        pixels as i64,
                        &shape,
                    )
                };
                for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        f64::from(got) == want || (got.is_nan() && want.is_nan()),
                        "{isa}, {shape:?}: element {i} is {got}, want {want}"
                    );
                }
            }
        }
    }
}
