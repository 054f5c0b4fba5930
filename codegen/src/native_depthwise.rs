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
//! row(input, weights, params, extra, output, pixels, shape, steps)
//!
//! for p in 0..pixels, c in 0..shape.channels:
//!     x = sum over y in ky.0..ky.1, then x in kx.0..kx.1, of
//!         I(p, y, x, c) * W(y, x, c)
//!     x = x + P(0, c)
//!     for s in steps[0..shape.steps]:
//!         x = s applied to x as native_epilogue's formula says, its
//!             per-channel vectors P(j, c) from j = 1, its shortcut E(p, c)
//!     O(p, c) = x
//! where (bytes, C = shape.channels)
//!     I(p, y, x, c) = *(input + y in_row + (p stride + x dilation) 4 C + 4 c)
//!     W(y, x, c)    = *(weights + ((y kernel_width + x) padded + c) 4)
//!     P(j, c)       = *(params + (j padded + c) 4)
//!     E(p, c)       = *(extra + p out_pixel + 4 c)
//!     O(p, c)       = *(output + p out_pixel + 4 c)
//! ```
//!
//! with `ky`, `kx`, `in_row`, `stride`, `dilation`, `kernel_width`,
//! `padded`, `out_pixel` and `steps` the fields of `*shape` ([`RowShape`]),
//! and `steps` [`native_epilogue::Step`]s. This is [`super::depthwise`]'s
//! packing: weights `[ky][kx][C']`, the bias and each step's per-channel
//! vectors padded to `C'` one after another (the kernel's `params`), HWC
//! input whose pixels are `4 C` bytes apart and whose `input` may point
//! before the buffer (a padded border): offsets use wrapping arithmetic and
//! only the final addresses are read.
//!
//! The whole fused epilogue runs on the accumulators in registers, before
//! the one store: it is `native_epilogue::apply`, the native epilogue's
//! code, which is the shared generated epilogue's operation sequence lane
//! for lane, so the ISAs and Cranelift agree bitwise (NaN payloads aside)
//! on every epilogue: bn + swish (EfficientNet's depthwise layers) as well
//! as ReLU6.
//!
//! Every output is summed in the order above, one fused multiply-add per
//! term from zero, as Cranelift's depthwise code does (`vector::mul_add` is
//! `fma` on every host with a native ISA), so the ISAs and Cranelift agree
//! bitwise (`depthwise::the_isas_agree_with_cranelift_bitwise` in the
//! runtime's integration tests; `tests::kernels_compute_the_formula_exactly`
//! here checks the formula itself).
//!
//! Invariant: a kernel reads exactly the `I`, `W`, `P` and `E` elements the
//! formula names (`P(j, ..)` only for the `j` its steps reach, `E` only with
//! an `ADD` step; masked loads for the channel tail: masked-off lanes are
//! not accessed) and writes exactly the `pixels x C` floats `O` names,
//! nothing else; `depthwise`'s tap classes keep every `I` inside the input
//! (`runtime/tests/it/guard_pages.rs` checks every ISA against guard pages).

use super::native::Isa;
use super::native_epilogue::{self, Step};
use cranelift_codegen::ir::{types, AbiParam, SigRef, Signature, Type};
use cranelift_frontend::FunctionBuilder;

/// Output pixels whose accumulators a kernel keeps in registers at once.
pub const PIXELS: usize = 8;

/// Blocks of fewer pixels than this (a padded border's columns, one
/// pixel a call) sum [`VECTORS`] channel vectors at once: one pixel's sum
/// is one chain of dependent FMAs, so a single vector would wait on each
/// FMA's latency (EfficientNet's 5x5 layers on 14x14 and 7x7 images,
/// where four of each row's columns are border pixels).
const FEW: usize = 4;

/// Channel vectors a block of fewer than [`FEW`] pixels sums at once.
const VECTORS: usize = 4;

/// Channel vectors a block of [`FEW`] or more pixels sums at once where
/// [`pairs`] says so: two, whose accumulators fit beside a kernel row's
/// weights in AVX-512's 32 registers (2 x 8) and, for a 3-wide kernel, in
/// AVX2's 16 (2 x 8 spill a few to the stack, which costs less than what
/// pairs save there).
#[cfg(target_arch = "x86_64")]
const PAIR: usize = 2;

/// Whether a block of [`FEW`] or more pixels of kernel width `k` (0: not
/// sliding) and stride `s` over `channels` sums [`PAIR`] vectors at once on
/// an ISA of `lanes` channels a vector.
///
/// Stride 2: such a block reads 17 input pixels a kernel row; with two
/// vectors each call reads two adjacent cache lines of every pixel rather
/// than one, and MobileNetV1's stride-2 3x3 layers on one thread took 52,
/// 26 and 14 µs instead of 79, 39 and 18 (112x112x64, 56x56x128,
/// 28x28x256 in; AVX-512, Zen 5), on AVX2 (Zen 3, in the net) 92-111
/// instead of 148-156 µs (56x56x128), 49-57 instead of 80-83 (28x28x256),
/// 29-30 instead of 42 (14x14x512).
///
/// Stride 1 on AVX2, 3 wide, 256 channels or more: a `ymm` is half a cache
/// line, so one vector a pass leaves each line's other half to the next
/// pass, and where pixels are 1 KB apart or more a block's 30 lines (3
/// rows of 10 pixels) fall into a few L1 sets and are gone by then; a pair
/// uses each line whole in one pass (Zen 3, one thread, in MobileNetV1:
/// 14x14x512 93-109 to 68-73 µs, 7x7x1024 67 to 48-49, 28x28x256 129-130
/// to 120-126). Fewer channels measured no faster, and AVX-512's stride-1
/// layers 8-14% slower (a `zmm` is a whole line already).
#[cfg(target_arch = "x86_64")]
const fn pairs(lanes: usize, k: usize, s: usize, channels: usize) -> bool {
    s == 2 || (lanes == 8 && k == 3 && channels >= 256)
}

// The kernels' tail covers blocks of 1 to 7 pixels.
const _: () = assert!(PIXELS == 8);

/// Channels of one vector of `isa`'s kernel.
pub const fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
    }
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
    /// Epilogue steps after the bias (module doc's formula).
    pub steps: i64,
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
            self.steps,
        ]
    }
}

/// Imports [`RowFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = [ptr, ptr, ptr, ptr, ptr, types::I64, ptr, ptr]
        .into_iter()
        .map(AbiParam::new)
        .collect();
    b.import_signature(signature)
}

/// A row kernel's entry point: `(input, weights, params, extra, output,
/// pixels, shape, steps)`, see the module doc.
pub type RowFn = unsafe extern "C" fn(
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *mut f32,
    i64,
    *const RowShape,
    *const Step,
);

/// The row kernel of `isa`, where the host runs it (the ISA's tiles and the
/// FMA its epilogue needs: [`native_epilogue::available`]).
pub fn row(isa: Isa) -> Option<RowFn> {
    native_epilogue::available(isa).then_some(())?;
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
/// `store`, `fma`) and the native epilogue's vector type `E` (wrapping `V`):
/// every function carries the module's target features, so the helpers
/// inline into them.
#[cfg(target_arch = "x86_64")]
macro_rules! kernels {
    ($feature:literal) => {
        /// The kernel (module doc's formula).
        ///
        /// # Safety
        /// The host has this module's ISA and FMA; `shape` points to a
        /// valid [`RowShape`] and `steps` to its `steps` initialised
        /// [`Step`]s, and every address the formula names for them is
        /// readable (`I`, `W`, `P`, `E`) or writable (`O`) and aligned for
        /// `f32`.
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe extern "C" fn row(
            input: *const f32,
            weights: *const f32,
            params: *const f32,
            extra: *const f32,
            output: *mut f32,
            pixels: i64,
            shape: *const RowShape,
            steps: *const Step,
        ) {
            // SAFETY: the caller passes a valid `RowShape` and its steps.
            let (s, steps) = unsafe {
                let s = &*shape;
                (
                    s,
                    std::slice::from_raw_parts(steps, s.steps.max(0) as usize),
                )
            };
            let pixels = pixels.max(0) as usize;
            let call = Call {
                input: input.cast(),
                weights: weights.cast(),
                params: params.cast(),
                extra: extra.cast(),
                output: output.cast(),
                s,
                steps,
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
            // every column tap, a full one only where `ky` is every row.
            unsafe {
                let full = sliding && s.ky == [0, s.kernel_width];
                match (sliding, full, s.kernel_width, s.stride) {
                    (true, true, 3, 1) => block::<P, 3, 1, true, true>(call, p),
                    (true, false, 3, 1) => block::<P, 3, 1, true, false>(call, p),
                    (true, true, 3, 2) => block::<P, 3, 2, true, true>(call, p),
                    (true, false, 3, 2) => block::<P, 3, 2, true, false>(call, p),
                    (true, _, 5, 1) => block::<P, 5, 1, true, false>(call, p),
                    (true, _, 5, 2) => block::<P, 5, 2, true, false>(call, p),
                    _ => block::<P, 0, 0, false, false>(call, p),
                }
            }
        }

        /// `P` pixels from `p`, every channel vector: whole vectors (by
        /// [`VECTORS`] at a time where `P` is below [`FEW`]), then the
        /// masked tail.
        ///
        /// # Safety
        /// Pixels `p .. p + P` are among the call's, and `K`, `S`, `SLIDE`
        /// and `FULL` are as [`dispatch`] picks them.
        #[target_feature(enable = $feature)]
        unsafe fn block<
            const P: usize,
            const K: usize,
            const S: usize,
            const SLIDE: bool,
            const FULL: bool,
        >(
            call: &Call,
            p: usize,
        ) {
            let channels = call.s.channels.max(0) as usize;
            let whole = channels / LANES;
            // Whole vectors by `VECTORS` or `PAIR` at a time where that
            // applies, then the ones left one at a time.
            let mut v = 0;
            if P < FEW {
                v = whole / VECTORS * VECTORS;
                // SAFETY: channels `0 .. v LANES` are whole vectors inside `C`.
                unsafe {
                    vector::<P, VECTORS, K, S, SLIDE, FULL>(
                        call,
                        p,
                        0,
                        v / VECTORS,
                        mask(LANES),
                        true,
                    )
                };
            } else if pairs(LANES, K, S, channels) {
                v = whole / PAIR * PAIR;
                // SAFETY: channels `0 .. v LANES` are whole vectors inside `C`.
                unsafe {
                    vector::<P, PAIR, K, S, SLIDE, FULL>(call, p, 0, v / PAIR, mask(LANES), true)
                };
            }
            // SAFETY: channels `v LANES .. whole LANES` are whole vectors
            // inside `C`.
            unsafe {
                vector::<P, 1, K, S, SLIDE, FULL>(call, p, v * LANES, whole - v, mask(LANES), true)
            };
            let rest = channels - whole * LANES;
            if rest > 0 {
                // SAFETY: the mask covers the `rest` channels left.
                unsafe {
                    vector::<P, 1, K, S, SLIDE, FULL>(call, p, whole * LANES, 1, mask(rest), false)
                };
            }
        }

        /// `groups` runs of `G` consecutive vectors of channels, the first
        /// from channel `first`, of `P` pixels from `p`: for each, the sums
        /// (by the sliding window if `SLIDE`, for kernel width `K` and
        /// stride `S`), the epilogue, the stores. Each output's sum is one
        /// chain of FMAs whatever `G`: more vectors only interleave
        /// independent chains. The loop over runs is here, not in
        /// [`block`], so a call's setup is paid once per block of pixels
        /// rather than once per vector (Zen 3, one thread: MobileNetV1's
        /// 56x56x128 layer alone 222 to 206 µs, the net 1-2.5% faster).
        /// With `FULL` the call sums every kernel row (`ky` is `[0, K]`,
        /// an interior output row's) as a constant range, which unrolls
        /// (lone layers, 64-byte-aligned: 112x112x32 178 to 166 µs,
        /// 56x56x128 182 to 176, 28x28x256 116 to 109, 7x7x1024 55 to 38).
        ///
        /// # Safety
        /// As [`block`]; the lanes of `m` from channel `first + (n G + g)
        /// LANES` are inside `C` for each `n < groups` and `g < G`, all of
        /// a vector if `whole`.
        #[target_feature(enable = $feature)]
        #[inline]
        unsafe fn vector<
            const P: usize,
            const G: usize,
            const K: usize,
            const S: usize,
            const SLIDE: bool,
            const FULL: bool,
        >(
            call: &Call,
            p: usize,
            first: usize,
            groups: usize,
            m: Mask,
            whole: bool,
        ) {
            let s = call.s;
            // What each run needs is derived inside the loop: hoisted above
            // it, the 112x112x32 layer alone ran 6% slower on Zen 3.
            for c in (first..).step_by(G * LANES).take(groups) {
                let pixel = s.channels as isize * 4;
                let padded = s.padded as isize * 4;
                let ld = |at: *const u8| {
                    // SAFETY: every load is of an address the formula names for
                    // the call's pixels and the mask's channels.
                    unsafe { load(at.cast(), m, whole) }
                };
                // Vector `g`'s bytes from channel `c`.
                let vb = |g: usize| (g * LANES * 4) as isize;
                let ky = if FULL { [0, K as i64] } else { s.ky };
                let c_bytes = c as isize * 4;
                let input = call
                    .input
                    .wrapping_offset(p as isize * s.stride as isize * pixel + c_bytes);
                let weights = call.weights.wrapping_offset(c_bytes);
                let w_at = |y: i64, x: i64| {
                    weights.wrapping_offset((y * s.kernel_width + x) as isize * padded)
                };
                let mut acc = [[zero(); P]; G];
                for y in ky[0]..ky[1] {
                    let row = input.wrapping_offset(y as isize * s.in_row as isize);
                    if SLIDE {
                        for (g, acc) in acc.iter_mut().enumerate() {
                            let w: [V; K] = std::array::from_fn(|x| {
                                ld(w_at(y, x as i64).wrapping_offset(vb(g)))
                            });
                            for q in 0..(P - 1) * S + K {
                                let v = ld(row.wrapping_offset(q as isize * pixel + vb(g)));
                                for (i, acc) in acc.iter_mut().enumerate() {
                                    if q >= i * S && q - i * S < K {
                                        *acc = fma(v, w[q - i * S], *acc);
                                    }
                                }
                            }
                        }
                    } else {
                        for x in s.kx[0]..s.kx[1] {
                            let tap = row.wrapping_offset(x as isize * s.dilation as isize * pixel);
                            for (g, acc) in acc.iter_mut().enumerate() {
                                let w = ld(w_at(y, x).wrapping_offset(vb(g)));
                                for (i, acc) in acc.iter_mut().enumerate() {
                                    let step = (i as isize) * s.stride as isize * pixel + vb(g);
                                    *acc = fma(ld(tap.wrapping_offset(step)), w, *acc);
                                }
                            }
                        }
                    }
                }
                for (g, acc) in acc.into_iter().enumerate() {
                    let params = call.params.wrapping_offset(c_bytes + vb(g));
                    let at_pixel = |base: *const u8, i: usize| {
                        base.wrapping_offset(
                            (p + i) as isize * s.out_pixel as isize + c_bytes + vb(g),
                        )
                    };
                    let mut xs = acc.map(E);
                    native_epilogue::apply(
                        &mut xs,
                        call.steps,
                        |j| E(ld(params.wrapping_offset(j as isize * padded))),
                        |i| E(ld(at_pixel(call.extra, i))),
                    );
                    for (i, x) in xs.iter().enumerate() {
                        let at = at_pixel(call.output.cast_const(), i).cast_mut();
                        // SAFETY: the formula names `O(p + i, c + g LANES ..)`
                        // for the mask's channels as writable.
                        unsafe { store(at.cast(), x.0, m, whole) };
                    }
                }
            }
        }
    };
}

/// One call's pointers (as bytes, for offset arithmetic), shape and steps.
#[cfg(target_arch = "x86_64")]
struct Call<'s> {
    input: *const u8,
    weights: *const u8,
    params: *const u8,
    extra: *const u8,
    output: *mut u8,
    s: &'s RowShape,
    steps: &'s [Step],
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::native_epilogue::{self, avx2::Ymm as E};
    use super::{pairs, Call, RowShape, Step, FEW, PAIR, PIXELS, VECTORS};
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_maskstore_ps,
        _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps,
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

    kernels!("avx2,fma");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::native_epilogue::{self, avx512::Zmm as E};
    use super::{pairs, Call, RowShape, Step, FEW, PAIR, PIXELS, VECTORS};
    use std::arch::x86_64::{
        __m512, __mmask16, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_setzero_ps,
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

    kernels!("avx512f,fma");
}

#[cfg(test)]
mod tests {
    use super::native_epilogue::{ADD, AFFINE, PRELU, RELU, RELU6};
    use super::*;

    /// One call's operands, in floats.
    struct Operands {
        data: Vec<f32>,
        weights: Vec<f32>,
        params: Vec<f32>,
        extra: Vec<f32>,
    }

    /// The module doc's formula as plain loops, in `f64`, for the steps the
    /// test draws (affine, prelu, add, relu, relu6); outputs `out_pixel / 4`
    /// floats apart, the gaps untouched (NaN).
    fn formula(s: &RowShape, steps: &[Step], o: &Operands, pixels: usize) -> Vec<f64> {
        let c = s.channels as usize;
        let padded = s.padded as usize;
        let stride = s.out_pixel as usize / 4;
        let param = |j: usize, ch: usize| f64::from(o.params[j * padded + ch]);
        let mut out = vec![f64::NAN; pixels * stride];
        for p in 0..pixels {
            for ch in 0..c {
                let mut x = 0.0;
                for y in s.ky[0] as usize..s.ky[1] as usize {
                    for k in s.kx[0] as usize..s.kx[1] as usize {
                        let at = y * s.in_row as usize / 4
                            + (p * s.stride as usize + k * s.dilation as usize) * c
                            + ch;
                        let w = o.weights[(y * s.kernel_width as usize + k) * padded + ch];
                        x += f64::from(o.data[at]) * f64::from(w);
                    }
                }
                x += param(0, ch);
                let mut j = 1;
                for step in steps {
                    x = match step.code {
                        AFFINE => {
                            j += 2;
                            x * param(j - 2, ch) + param(j - 1, ch)
                        }
                        PRELU => {
                            j += 1;
                            x.max(0.0) + x.min(0.0) * param(j - 1, ch)
                        }
                        ADD => x + f64::from(o.extra[p * stride + ch]),
                        RELU => x.max(0.0),
                        RELU6 => x.clamp(0.0, 6.0),
                        code => unreachable!("the test draws no step {code}"),
                    };
                }
                out[p * stride + ch] = x;
            }
        }
        out
    }

    /// Small integers: every sum is exact in `f32`, so each ISA must write
    /// exactly the formula's values, and nothing in the gaps between output
    /// pixels. Shapes: both sliding widths and strides, a dilated and a
    /// clipped one (the generic path), channels of whole and partial
    /// vectors, pixel counts around the block of 8, blocks of few pixels
    /// over many channel vectors; epilogues: the bias
    /// alone, activations, per-channel vectors of several steps (each
    /// reading its own) and a shortcut.
    #[test]
    fn kernels_compute_the_formula_exactly() {
        let step = |code| Step { code, slope: 0.0 };
        let shapes = [
            // (channels, kernel_width, kx, stride, dilation, pixels, steps)
            (16usize, 3usize, [0usize, 3], 1usize, 1usize, 8usize, vec![]),
            (5, 3, [0, 3], 1, 1, 19, vec![step(AFFINE), step(RELU)]),
            (37, 5, [0, 5], 2, 1, 11, vec![step(RELU)]),
            (24, 3, [0, 3], 2, 1, 3, vec![step(RELU6)]),
            (9, 3, [1, 3], 1, 1, 9, vec![step(ADD), step(RELU6)]),
            (20, 3, [0, 3], 1, 2, 10, vec![step(PRELU), step(AFFINE)]),
            (3, 4, [0, 4], 3, 1, 7, vec![]),
            // Blocks of few pixels, several channel vectors at once (whole
            // groups of 4 on both ISAs, then single vectors, the tail).
            (70, 5, [1, 5], 1, 1, 1, vec![step(AFFINE), step(RELU6)]),
            (67, 3, [0, 3], 2, 1, 2, vec![step(ADD)]),
            (140, 3, [0, 3], 1, 1, 11, vec![step(RELU)]),
            // Blocks of 8 pixels over an odd number of whole vectors (pairs
            // on AVX-512, then one alone), and over a pair and a tail.
            (48, 3, [0, 3], 2, 1, 16, vec![step(RELU)]),
            (40, 3, [0, 3], 1, 1, 9, vec![step(AFFINE)]),
            // Stride 1 over 256 channels or more: pairs on AVX2 (33 whole
            // vectors: 16 pairs and one alone), single vectors and a tail
            // on AVX-512.
            (264, 3, [0, 3], 1, 1, 12, vec![step(AFFINE), step(RELU)]),
        ];
        for (channels, kw, kx, stride, dilation, pixels, steps) in shapes {
            let padded = channels.div_ceil(4) * 4;
            let width = (pixels - 1) * stride + (kw - 1) * dilation + 1;
            let row_len = width * channels;
            let gap = channels + 3;
            let shape = RowShape {
                channels: channels as i64,
                padded: padded as i64,
                kernel_width: kw as i64,
                ky: [0, 2],
                kx: [kx[0] as i64, kx[1] as i64],
                in_row: (row_len * 4) as i64,
                stride: stride as i64,
                dilation: dilation as i64,
                out_pixel: (gap * 4) as i64,
                steps: steps.len() as i64,
            };
            let vectors = 1 + 2 * steps.len();
            let small = |n: usize, m: usize, at: f32| -> Vec<f32> {
                (0..n).map(|i| (i % m) as f32 - at).collect()
            };
            let o = Operands {
                data: small(2 * row_len, 7, 3.0),
                weights: small(2 * kw * padded, 5, 2.0),
                params: small(vectors * padded, 3, 1.0),
                extra: small(pixels * gap, 4, 2.0),
            };
            let want = formula(&shape, &steps, &o, pixels);
            for isa in Isa::ALL {
                let Some(kernel) = row(isa) else {
                    eprintln!("note: this host lacks {isa}; its kernel is not run");
                    continue;
                };
                let mut out = vec![f32::NAN; want.len()];
                // SAFETY: the host runs `isa`; the formula's addresses are
                // inside `data`, `weights`, `params` (a vector per step's
                // need: at most 2 each) and `extra` (`formula` indexes the
                // same elements, checked) and `out` (`pixels` pixels of
                // `out_pixel` bytes); `steps` has `shape.steps` steps.
                unsafe {
                    kernel(
                        o.data.as_ptr(),
                        o.weights.as_ptr(),
                        o.params.as_ptr(),
                        o.extra.as_ptr(),
                        out.as_mut_ptr(),
                        pixels as i64,
                        &shape,
                        steps.as_ptr(),
                    )
                };
                for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        f64::from(got) == want || (got.is_nan() && want.is_nan()),
                        "{isa}, {shape:?}, {steps:?}: element {i} is {got}, want {want}"
                    );
                }
            }
        }
    }
}
