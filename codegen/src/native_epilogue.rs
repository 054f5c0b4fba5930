//! The native epilogue: a kernel's whole fused epilogue (bias, affine,
//! prelu, activation, residual add) applied at 256 or 512 bits to the sums
//! of a [`native`](super::native) GEMM tile while they are still in
//! registers, then stored.
//!
//! The generated epilogue (`apply_epilogue` in the crate root) is 128-bit
//! Cranelift code, one `f32x4` at a time, reading a tile the native tile
//! stored to a stack slot. Where a conv kernel calls a native tile it calls
//! the tile's fused twin instead ([`super::native::FusedTileFn`]): the
//! tile's sums go through this module's steps (`finish`) and straight to
//! the output, with no slot in between (MobileNetV1's 112x112x32 to 64 1x1:
//! 0.62 to 0.56 ms, one thread, AVX-512). The steps are plain data
//! ([`Step`]), written to a stack slot where the conv code sets up its
//! loops and read by pointer, so one compiled tile per ISA and row count
//! serves every epilogue.
//!
//! The steps' code is `apply`, over any ISA's vectors (`Lanes`): the fused
//! tiles run it on their sums (`finish`), and the native depthwise row
//! kernels ([`super::native_depthwise`]) on their accumulators, in
//! registers before their one store, for every epilogue.
//!
//! # The formula
//!
//! A fused tile's [`Sink`] names where its epilogue reads and writes; for
//! the tile's sums `T(r, n)` (row `r` an output pixel, `n` an output
//! channel of the tile):
//!
//! ```text
//! for r in 0..rows, n in 0..columns:
//!     x = T(r, n) + P(0, n)
//!     j = 1
//!     for s in steps[0..count]:
//!         match s.code:
//!             AFFINE: x = fma(x, P(j, n), P(j + 1, n)); j += 2
//!             PRELU:  x = fma(min(0, x), P(j, n), max(0, x)); j += 1
//!             ADD:    x = x + E(r, n)
//!             an activation code: x = act(x)     (LEAKY_RELU's slope: s.slope)
//!     O(r, n) = x
//! where (byte offsets, the `f32` at each)
//!     P(j, n) = *(params + j vector + 4 n)
//!     E(r, n) = *(extra + r pixel + 4 n)
//!     O(r, n) = *(output + r pixel + 4 n)
//! ```
//!
//! `vector` (bytes between two per-channel vectors of `params`) and `pixel`
//! (bytes between two output pixels, the same in `extra`: an epilogue with an
//! add never writes a channel slice) are in bytes. It reads exactly the `P`
//! and `E` elements the formula names (`P(j, ..)` only for the `j` its steps
//! reach, `E` only with an `ADD` step) and the `count` steps, and writes
//! exactly the `rows x columns` elements `O`: partial vectors are masked
//! loads and stores, which never touch the lanes they leave out. A step with
//! an unknown code does nothing.
//!
//! # Bitwise equal to the Cranelift epilogue
//!
//! Each step is [`vector`](super::vector)'s code for it, operation for
//! operation and constant for constant (the constants are shared): `at_least`
//! and `at_most` are `maxps`/`minps` with the bound first (a NaN `x` stays
//! NaN, `-0` stays `-0`), `mul_add` one FMA, `exp` the same clamps, round to
//! nearest even, two-part ln 2 by multiply-adds, a tiny reduced argument
//! taken as 0, degree-6 polynomial in Estrin's form and exponent bits,
//! sigmoid `1 / (1 + exp(-x))`, tanh and gelu's erf Eigen's rationals. Every
//! operation is lane-wise and IEEE-exact, so a lane's result does not depend
//! on the vector width: AVX2, AVX-512 and the Cranelift epilogue agree bit
//! for bit, NaN payloads aside (an operation on two NaNs may keep either's
//! payload). One difference is argued rather than shared: Cranelift's saturating float to
//! int conversion of `exp`'s `n` gives 0 for NaN, `cvtps2dq` gives
//! `i32::MIN`; both build the scale 1.0 from it (`(n + 127) << 23`
//! wraps to `127 << 23`), and `n` is otherwise an integer in `[-126, 127]`
//! (after the clamp). The Cranelift epilogue multiplies by one FMA only where
//! the host has FMA ([`super::vector::mul_add`]), so both ISAs here require
//! it ([`available`]). Tested bitwise against the Cranelift epilogue through
//! whole conv kernels (`codegen/tests/it/native_epilogue.rs`).

use super::native::Isa;
#[cfg(target_arch = "x86_64")]
use super::vector::{
    ERF_LIMIT, ERF_P, ERF_Q, EXP_LN2, EXP_POLY, EXP_RANGE, EXP_TINY, SIXTH, TANH_LIMIT, TANH_P,
    TANH_Q,
};
use super::Epilogue;
use cnnjit_ir::Activation;
use cranelift_codegen::ir::{types, InstBuilder, StackSlot, StackSlotData, StackSlotKind, Type};
use cranelift_frontend::FunctionBuilder;

/// `x * scale + shift`, the next two vectors of `params`.
pub const AFFINE: u32 = 0;
/// `max(x, 0) + slope min(x, 0)`, the slope the next vector of `params`.
pub const PRELU: u32 = 1;
/// `x + extra`.
pub const ADD: u32 = 2;
/// relu.
pub const RELU: u32 = 3;
/// relu6.
pub const RELU6: u32 = 4;
/// leaky_relu, the slope in [`Step::slope`].
pub const LEAKY_RELU: u32 = 5;
/// sigmoid.
pub const SIGMOID: u32 = 6;
/// tanh.
pub const TANH: u32 = 7;
/// swish.
pub const SWISH: u32 = 8;
/// hard_sigmoid.
pub const HARD_SIGMOID: u32 = 9;
/// hard_swish.
pub const HARD_SWISH: u32 = 10;
/// gelu.
pub const GELU: u32 = 11;

/// One epilogue step as plain data: a code (the constants above) and
/// leaky_relu's slope (0 for any other step).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// What the step does.
    pub code: u32,
    /// leaky_relu's slope.
    pub slope: f32,
}

impl Step {
    /// The plain-data form of `step`.
    pub fn of(step: Epilogue) -> Step {
        let (code, slope) = match step {
            Epilogue::Affine => (AFFINE, 0.0),
            Epilogue::PRelu => (PRELU, 0.0),
            Epilogue::Add => (ADD, 0.0),
            Epilogue::Act(act) => match act {
                Activation::Relu => (RELU, 0.0),
                Activation::Relu6 => (RELU6, 0.0),
                Activation::LeakyRelu(slope) => (LEAKY_RELU, slope),
                Activation::Sigmoid => (SIGMOID, 0.0),
                Activation::Tanh => (TANH, 0.0),
                Activation::Swish => (SWISH, 0.0),
                Activation::HardSigmoid => (HARD_SIGMOID, 0.0),
                Activation::HardSwish => (HARD_SWISH, 0.0),
                Activation::Gelu => (GELU, 0.0),
            },
        };
        Step { code, slope }
    }
}

/// Which code applies the fused epilogue of a native tile
/// ([`super::Jit::with_native_epilogue`]). Both give bitwise the same
/// outputs. (The native depthwise row kernels always apply theirs in
/// registers with `apply`: they have no tile in a slot to hand over.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Use {
    /// The fused tiles where they measured faster (the default): a 1x1
    /// kernel (one tap per call, whose short calls the slot's round trip
    /// and 128-bit epilogue weigh most on) or an epilogue with a
    /// transcendental step (sigmoid, tanh, swish); the plain tile and the
    /// generated epilogue elsewhere. Measured one thread, AVX-512 Xeon,
    /// against `Never`: MobileNetV1 9.8 to 9.4-9.6 ms, MobileNetV2 6.3-6.5 to
    /// 6.0-6.3, GoogLeNet 24.2-24.7 to 23.1-24.0; but AlexNet's 13x13 3x3
    /// convs 1.58-1.69, 2.48-2.54, 1.66-1.73 ms to 2.20-2.35, 3.25-3.34,
    /// 2.18-2.24 and VGG16 1% slower with every conv fused. Also a kernel
    /// whose reduction is short ([`SHORT_REDUCTION`]): the 3x3 stem over 3
    /// channels (27 terms) spends as long on the slot's round trip as on
    /// its FMAs; fused, MobileNetV2's 224x224x3 stem went 0.166-0.194 to
    /// 0.128-0.133 ms on one thread (AMD EPYC Zen 5, AVX-512, interleaved).
    /// And a kernel that streams its weights ([`Tiles::streams_weights`]):
    /// only the fused tiles prefetch the next blocks' weights while they
    /// compute. ResNet-18's 7x7x512 3x3 convs went 2.21-2.26 to 1.87-1.95 ms
    /// inside the net on one thread (Xeon, interleaved; fused without the
    /// prefetch, 2.15-2.29), the net 19.2 to 18.5 ms and ResNet-50 52.4 to
    /// 49.9.
    #[default]
    ByKernel,
    /// The fused tiles wherever the host has them.
    Always,
    /// The generated `f32x4` epilogue on the tile's slot, as every other tile.
    /// (A Winograd kernel whose transforms are native,
    /// [`super::native_winograd`], applies its epilogue in its native output
    /// transform whatever this says: bitwise the same.)
    Never,
}

/// The longest reduction (taps x input channels per group) whose tiles
/// [`Use::ByKernel`] fuses whatever their kernel: the 3x3 stems over RGB
/// (27 terms) and ResNet's 7x7 stem (147: its conv, bn, relu and max pool
/// 1.031 -> 1.001 ms on one thread, Zen 5, interleaved), not AlexNet's 3x3
/// convs (2304 and up), which measured slower fused.
pub const SHORT_REDUCTION: usize = 160;

/// What [`Use::native`] asks of a convolution's native tiles.
#[derive(Clone, Copy, Debug)]
pub struct Tiles<'a> {
    /// The kernel's rows and columns.
    pub kernel: [usize; 2],
    /// Input channels per group, summed at each tap.
    pub depth: usize,
    /// The fused epilogue's steps.
    pub steps: &'a [Epilogue],
    /// Whether the kernel keeps its weights still, one block at a time
    /// across every output row, and those rows are short (at most
    /// [`STREAMING_ROW`] pixels): its weights, which outweigh its input,
    /// come from memory block by block while few FMAs per row hide them.
    pub streams_weights: bool,
}

/// The widest output row of a kernel that [`Tiles::streams_weights`]:
/// ResNet's 7x7 layers. Not AlexNet's 13x13 3x3 convs, whose 13-pixel
/// fused tiles measured slower than the plain ones even with the prefetch
/// (conv3 2.01 to 2.35 ms, one thread, Xeon, interleaved).
pub const STREAMING_ROW: usize = 7;

impl Use {
    /// Whether a convolution's native tiles get the fused epilogue.
    pub fn native(self, tiles: Tiles) -> bool {
        let Tiles {
            kernel,
            depth,
            steps,
            streams_weights,
        } = tiles;
        let transcendental = |step: &Epilogue| {
            matches!(
                step,
                Epilogue::Act(
                    Activation::Sigmoid | Activation::Tanh | Activation::Swish | Activation::Gelu
                )
            )
        };
        match self {
            Use::ByKernel => {
                kernel == [1, 1]
                    || kernel[0] * kernel[1] * depth <= SHORT_REDUCTION
                    || steps.iter().any(transcendental)
                    || streams_weights
            }
            Use::Always => true,
            Use::Never => false,
        }
    }
}

/// `isa`'s [`EpilogueFn`], where the host runs it ([`available`]).
pub fn for_isa(isa: Isa) -> Option<EpilogueFn> {
    #[cfg(target_arch = "x86_64")]
    if available(isa) {
        return Some(match isa {
            Isa::Avx2 => avx2::epilogue,
            Isa::Avx512 => avx512::epilogue,
        });
    }
    let _ = isa;
    None
}

/// Whether the host runs `isa`'s native epilogue: the ISA's own features
/// and FMA (which the Cranelift epilogue then uses too).
pub fn available(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.detected() && is_x86_feature_detected!("fma") {
        return true;
    }
    let _ = isa;
    false
}

/// A stack slot holding `steps` as [`Step`]s, stored at the current point
/// of `b` in a kernel whose pointers are `ptr` (which must come before
/// every read of the slot), or `None` if
/// they do not fit a slot.
pub(crate) fn store_steps(
    b: &mut FunctionBuilder,
    ptr: Type,
    steps: &[Epilogue],
) -> Option<StackSlot> {
    let bytes = u32::try_from(steps.len().max(1) * size_of::<Step>()).ok()?;
    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 3));
    for (i, step) in steps.iter().enumerate() {
        let step = Step::of(*step);
        let at = (i * size_of::<Step>()) as i32;
        let code = b.ins().iconst(types::I32, i64::from(step.code));
        b.ins().stack_store(ptr, code, slot, at);
        let slope = b.ins().f32const(step.slope);
        b.ins().stack_store(ptr, slope, slot, at + 4);
    }
    Some(slot)
}

/// One ISA's vector of `f32` lanes and the operations the epilogue needs,
/// each one instruction (or the documented sequence): the body
/// ([`run`], [`apply`]) is written once over it and inlined into each ISA's
/// `#[target_feature]` entry points (this module's and
/// [`super::native_depthwise`]'s), which give the intrinsics their
/// features.
#[cfg(target_arch = "x86_64")]
pub(crate) trait Lanes: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// How many rows of a tile's column [`finish`] takes through a
    /// transcendental step at once: enough independent chains to hide the
    /// `exp` and the division's latency, few enough that the temporaries
    /// stay in registers.
    const TRANSCENDENTAL_ROWS: usize;
    fn splat(x: f32) -> Self;
    /// The first `n` (at most [`Lanes::LANES`]) `f32`s at `p`, zero elsewhere;
    /// reads only those.
    ///
    /// # Safety
    /// The `n` floats at `p` are readable.
    unsafe fn load(p: *const f32, n: usize) -> Self;
    /// Stores the first `n` lanes at `p`, touching nothing else.
    ///
    /// # Safety
    /// The `n` floats at `p` are writable.
    unsafe fn store(self, p: *mut f32, n: usize);
    fn add(self, y: Self) -> Self;
    fn sub(self, y: Self) -> Self;
    fn mul(self, y: Self) -> Self;
    fn div(self, y: Self) -> Self;
    /// `self * y + z`, one rounding.
    fn mul_add(self, y: Self, z: Self) -> Self;
    /// `self > y ? self : y` (`maxps`): with the bound as `self`, vector.rs's `at_least`.
    fn max(self, y: Self) -> Self;
    /// `self < y ? self : y` (`minps`): with the bound as `self`, vector.rs's `at_most`.
    fn min(self, y: Self) -> Self;
    fn neg(self) -> Self;
    /// `|self| < tiny ? +0 : self` (a NaN stays).
    fn zero_if_tiny(self, tiny: f32) -> Self;
    /// Round to nearest, ties to even.
    fn nearest(self) -> Self;
    /// `2^self` for integral `self` in `[-126, 127]` by the exponent bits,
    /// `1` for NaN (the module doc).
    fn pow2(self) -> Self;
}

/// `x < lo ? lo : x`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn at_least<V: Lanes>(x: V, lo: f32) -> V {
    V::splat(lo).max(x)
}

/// `hi < x ? hi : x`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn at_most<V: Lanes>(x: V, hi: f32) -> V {
    V::splat(hi).min(x)
}

/// vector.rs's `exp`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn exp<V: Lanes>(x: V) -> V {
    let x = at_most(at_least(x, EXP_RANGE[0]), EXP_RANGE[1]);
    let n = x.mul(V::splat(std::f32::consts::LOG2_E)).nearest();
    let r = n.mul_add(V::splat(-EXP_LN2[0]), x);
    let r = n.mul_add(V::splat(-EXP_LN2[1]), r).zero_if_tiny(EXP_TINY);
    let c = |degree: usize| V::splat(EXP_POLY[6 - degree]);
    let a0 = r.mul_add(c(1), c(0));
    let a1 = r.mul_add(c(3), c(2));
    let a2 = r.mul_add(c(5), c(4));
    let r2 = r.mul(r);
    let b0 = a1.mul_add(r2, a0);
    let b1 = r2.mul_add(c(6), a2);
    let r4 = r2.mul(r2);
    b1.mul_add(r4, b0).mul(n.pow2())
}

/// vector.rs's `sigmoid`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sigmoid<V: Lanes>(x: V) -> V {
    let one = V::splat(1.0);
    one.div(one.add(exp(x.neg())))
}

/// vector.rs's `tanh`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tanh<V: Lanes>(x: V) -> V {
    odd_rational(x, TANH_LIMIT, &TANH_P, &TANH_Q)
}

/// vector.rs's `gelu` (its `erf` inlined).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn gelu<V: Lanes>(x: V) -> V {
    let e = odd_rational(
        x.mul(V::splat(std::f32::consts::FRAC_1_SQRT_2)),
        ERF_LIMIT,
        &ERF_P,
        &ERF_Q,
    );
    let half = V::splat(0.5);
    x.mul(e.mul_add(half, half))
}

/// vector.rs's `odd_rational`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn odd_rational<V: Lanes>(x: V, limit: f32, p: &[f32], q: &[f32]) -> V {
    let x = at_most(at_least(x, -limit), limit);
    let x2 = x.mul(x);
    let horner = |c: &[f32]| {
        c[1..]
            .iter()
            .fold(V::splat(c[0]), |acc, &c| acc.mul_add(x2, V::splat(c)))
    };
    horner(p).mul(x).div(horner(q))
}

/// vector.rs's `leaky`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn leaky<V: Lanes>(x: V, slope: V) -> V {
    at_most(x, 0.0).mul_add(slope, at_least(x, 0.0))
}

/// vector.rs's `activate`'s hard_sigmoid.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn hard_sigmoid<V: Lanes>(x: V) -> V {
    let t = x.add(V::splat(3.0));
    at_most(at_least(t, 0.0), 6.0).mul(V::splat(SIXTH))
}

/// The module doc's loop body after the tile's load, on each of `xs` (one
/// vector of the same columns for several rows): the bias `param(0)` added,
/// then `steps` in order, step-major (each step's per-channel vectors
/// loaded once for all of `xs`). `param(j)` is `P(j, ..)` of these columns;
/// `extra(i)` is `E` of `xs[i]`'s row, called only for an `ADD` step. The
/// depthwise row kernels ([`super::native_depthwise`]) apply their
/// epilogue with it too, on their accumulators.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn apply<V: Lanes>(
    xs: &mut [V],
    steps: &[Step],
    param: impl Fn(i64) -> V,
    extra: impl Fn(usize) -> V,
) {
    let bias = param(0);
    // The bias alone, or with a residual's add and one ReLU or ReLU6
    // (MobileNet's and ResNet's layers): the same operations as the loop
    // below, without its dispatch.
    if let Some(plain) = Plain::of(steps) {
        for (i, x) in xs.iter_mut().enumerate() {
            *x = plain.apply(*x, bias, || extra(i));
        }
        return;
    }
    for x in xs.iter_mut() {
        *x = x.add(bias);
    }
    // `x = f(x)` for each of `xs`, as a plain loop: a closure would be a
    // function of its own, compiled without the caller's target features
    // unless inlined.
    macro_rules! each {
        (|$x:ident| $f:expr) => {
            for x in xs.iter_mut() {
                let $x = *x;
                *x = $f;
            }
        };
    }
    let mut j = 1;
    for step in steps {
        match step.code {
            AFFINE => {
                let (scale, shift) = (param(j), param(j + 1));
                j += 2;
                each!(|x| x.mul_add(scale, shift));
            }
            PRELU => {
                let slope = param(j);
                j += 1;
                each!(|x| leaky(x, slope));
            }
            ADD => {
                for (i, x) in xs.iter_mut().enumerate() {
                    *x = x.add(extra(i));
                }
            }
            RELU => each!(|x| at_least(x, 0.0)),
            RELU6 => each!(|x| at_most(at_least(x, 0.0), 6.0)),
            LEAKY_RELU => {
                let slope = V::splat(step.slope);
                each!(|x| leaky(x, slope));
            }
            SIGMOID => each!(|x| sigmoid(x)),
            TANH => each!(|x| tanh(x)),
            SWISH => each!(|x| x.mul(sigmoid(x))),
            HARD_SIGMOID => each!(|x| hard_sigmoid(x)),
            HARD_SWISH => each!(|x| x.mul(hard_sigmoid(x))),
            GELU => each!(|x| gelu(x)),
            _ => {}
        }
    }
}

/// The epilogues most layers end in, the bias alone or then a residual's
/// add, and then at most one ReLU or ReLU6: [`apply`]'s operations for them,
/// without its dispatch over steps.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Plain {
    /// Whether the steps begin with an `ADD` (ResNet's blocks end in one).
    add: bool,
    /// The activation after it, if any.
    clamp: Clamp,
}

/// A [`Plain`] epilogue's activation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clamp {
    None,
    Relu,
    Relu6,
}

impl Plain {
    /// The plain epilogue `steps` are (after the bias), if they are one.
    fn of(steps: &[Step]) -> Option<Plain> {
        let (add, rest) = match steps {
            [Step { code: ADD, .. }, rest @ ..] => (true, rest),
            _ => (false, steps),
        };
        let clamp = match rest {
            [] => Clamp::None,
            [Step { code: RELU, .. }] => Clamp::Relu,
            [Step { code: RELU6, .. }] => Clamp::Relu6,
            _ => return None,
        };
        Some(Plain { add, clamp })
    }

    /// `x + bias`, then `+ extra()` with an add, then the activation: the
    /// operations of the module doc's formula for these steps. `extra` is
    /// called only with an add.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn apply<V: Lanes>(self, x: V, bias: V, extra: impl FnOnce() -> V) -> V {
        let x = x.add(bias);
        let x = if self.add { x.add(extra()) } else { x };
        match self.clamp {
            Clamp::None => x,
            Clamp::Relu => at_least(x, 0.0),
            Clamp::Relu6 => at_most(at_least(x, 0.0), 6.0),
        }
    }
}

/// Where a native tile's fused epilogue reads and writes: the module doc's
/// formula with `T` the tile's accumulators, which never leave registers
/// (the fused tiles, [`super::native::Isa::fused_tiles`]). One per tile
/// call, in a stack slot the generated code fills before the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sink {
    /// The [`Step`]s, `count` of them.
    pub steps: *const Step,
    /// Steps at `steps`.
    pub count: i64,
    /// `P(0, 0)`: the bias of the tile's first column.
    pub params: *const f32,
    /// Bytes between two per-channel vectors of `params`.
    pub vector: i64,
    /// `E(0, 0)`, read only with an `ADD` step.
    pub extra: *const f32,
    /// `O(0, 0)`.
    pub output: *mut f32,
    /// Bytes from one output pixel (tile row) to the next, in `output` and `extra`.
    pub pixel: i64,
    /// Columns (output channels) to write, from the tile's first; the
    /// columns past them are computed and dropped.
    pub columns: i64,
    /// The first of `lines` 64-byte lines the tile asks the cache for while
    /// it sums, one per step of its depth loop (lines past its last step
    /// are not asked for): a hint, never read, so it changes no result (a
    /// kernel whose weights stay still points it at the part of the next
    /// blocks' weights this tile's share is, so they come from memory while
    /// this block computes, not at the next block's first tile).
    pub prefetch: *const f32,
    /// Lines at `prefetch`; 0 for none.
    pub lines: i64,
}

/// The module doc's formula on `xs`, rows `0..xs.len()` of the tile's
/// columns `n..n + V::LANES` (those of them under `sink.columns`): each
/// step applied to all rows at once ([`apply`]), then stored. Inlined into
/// the fused tiles, whose accumulators `xs` are.
///
/// # Safety
/// `sink` is as its doc says for `xs.len()` rows: the module doc's `P`, `E`
/// (with an `ADD` step) readable and `O` writable, for these columns.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn finish<V: Lanes>(xs: &mut [V], sink: &Sink, n: usize) {
    let columns = sink.columns.max(0) as usize;
    if n >= columns {
        return;
    }
    let lanes = V::LANES.min(columns - n);
    // SAFETY: the caller passes `count` initialised steps at `steps`.
    let steps = unsafe { std::slice::from_raw_parts(sink.steps, sink.count.max(0) as usize) };
    let param = |j: i64| {
        let p = sink.params.wrapping_byte_offset((j * sink.vector) as isize);
        // SAFETY: `P(j, n..n + lanes)` is readable for every `j` the steps
        // reach (this function's contract), and only those are read.
        unsafe { V::load(p.wrapping_add(n), lanes) }
    };
    let row = |i: usize| i as isize * sink.pixel as isize;
    let extra = |i: usize| {
        // SAFETY: with an `ADD` step `E(i, n..n + lanes)` is readable (the
        // contract); `apply` reads it only for one, for `i < xs.len()`.
        unsafe {
            V::load(
                sink.extra.wrapping_byte_offset(row(i)).wrapping_add(n),
                lanes,
            )
        }
    };
    // Step-major over all rows keeps each per-channel vector in a register
    // for the cheap steps; a transcendental step's temporaries beside every
    // row's accumulator would spill, so those go `TRANSCENDENTAL_ROWS` rows
    // at a time (AVX-512, EfficientNet's bn + swish 1x1 convs of 24
    // channels in: 0.69 ms step-major over 14 rows, 0.38 row by row).
    if steps
        .iter()
        .any(|step| matches!(step.code, SIGMOID | TANH | SWISH | GELU))
    {
        let rows = V::TRANSCENDENTAL_ROWS;
        for (c, chunk) in xs.chunks_mut(rows).enumerate() {
            apply(chunk, steps, param, |i| extra(c * rows + i));
        }
    } else {
        apply(xs, steps, param, extra);
    }
    for (i, x) in xs.iter().enumerate() {
        // SAFETY: `O(i, n..n + lanes)` is writable (the contract).
        unsafe {
            x.store(
                sink.output.wrapping_byte_offset(row(i)).wrapping_add(n),
                lanes,
            )
        };
    }
}

/// The module doc's formula on a whole tile, `acc[r][v]` the sums of row
/// `r` and columns `v LANES ..`: the fused tiles' one entry to it. Where
/// every column is written and the epilogue is [`Plain`], it runs on `acc`
/// as it stands, in registers, with one full store per vector: the general
/// path keeps the tile in memory, which cost a 14 x 32 tile of 32 terms
/// (MobileNetV1's 112x112x32 to 64 1x1) about a quarter of its time. Either
/// way each output is the same operations on the same sum.
///
/// # Safety
/// As [`finish`]'s, for `R` rows and `B` vectors of columns.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn finish_tile<V: Lanes, const R: usize, const B: usize>(
    acc: [[V; B]; R],
    sink: &Sink,
) {
    // SAFETY: the caller passes `count` initialised steps at `steps`.
    let steps = unsafe { std::slice::from_raw_parts(sink.steps, sink.count.max(0) as usize) };
    match Plain::of(steps) {
        Some(plain) if sink.columns >= (B * V::LANES) as i64 => {
            let (params, extra, output) = (sink.params, sink.extra, sink.output);
            let pixel = sink.pixel as isize;
            for v in 0..B {
                // SAFETY: every column is written, so `P(0, ..)` of all of
                // them is readable, `O(r, ..)` writable and, with an `ADD`
                // step (the only case `extra` is called), `E(r, ..)`
                // readable (the contract).
                unsafe {
                    let bias = V::load(params.add(v * V::LANES), V::LANES);
                    for (r, row) in acc.iter().enumerate() {
                        let at = r as isize * pixel;
                        let shortcut =
                            || V::load(extra.wrapping_byte_offset(at).add(v * V::LANES), V::LANES);
                        plain
                            .apply(row[v], bias, shortcut)
                            .store(output.wrapping_byte_offset(at).add(v * V::LANES), V::LANES);
                    }
                }
            }
        }
        _ => {
            // Plain loops, not `array::map`: a closure not inlined would be
            // compiled without the caller's features.
            let mut columns = [[V::splat(0.0); R]; B];
            for (r, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    columns[v][r] = *x;
                }
            }
            for (v, xs) in columns.iter_mut().enumerate() {
                // SAFETY: the contract is `finish`'s, for these columns.
                unsafe { finish(xs, sink, v * V::LANES) };
            }
        }
    }
}

/// The module doc's formula on a tile of sums in memory (`T(r, n)` at
/// `tile + 4 (r tile_stride + n)` bytes), one row and vector at a time
/// through [`finish`]: what [`for_isa`]'s functions run, for sums that
/// cannot stay in registers (the batched dense layer's tile of every
/// image's partial sums, [`super::native_dense_batch`]).
///
/// # Safety
/// The module doc's addresses are readable (`P`, `E`) and writable (`O`),
/// and so is `T` as above; `steps` has `count` initialised [`Step`]s.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn run<V: Lanes>(
    steps: *const Step,
    count: i64,
    tile: *const f32,
    tile_stride: i64,
    (rows, columns): (i64, i64),
    params: *const f32,
    vector: i64,
    extra: *const f32,
    output: *mut f32,
    pixel: i64,
) {
    for r in 0..rows.max(0) as isize {
        let t = tile.wrapping_offset(r * tile_stride as isize);
        let sink = Sink {
            steps,
            count,
            params,
            vector,
            extra: extra.wrapping_byte_offset(r * pixel as isize),
            output: output.wrapping_byte_offset(r * pixel as isize),
            pixel,
            columns,
            prefetch: std::ptr::null(),
            lines: 0,
        };
        for n in (0..columns.max(0) as usize).step_by(V::LANES) {
            let lanes = V::LANES.min(columns as usize - n);
            // SAFETY: `T(r, n..n + lanes)` is readable and the sink's
            // addresses are as `finish` needs for one row (the contract).
            unsafe {
                let mut x = [V::load(t.wrapping_add(n), lanes)];
                finish(&mut x, &sink, n);
            }
        }
    }
}

/// An epilogue on a tile in memory: `(steps, count, tile, tile_stride, rows,
/// columns, params, vector, extra, output, pixel)`, the module doc's formula on one ISA's
/// vectors ([`for_isa`]).
pub type EpilogueFn = unsafe extern "C" fn(
    *const Step,
    i64,
    *const f32,
    i64,
    i64,
    i64,
    *const f32,
    i64,
    *const f32,
    *mut f32,
    i64,
);

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{run, Lanes, Step};
    use std::arch::x86_64::*;

    /// Eight lanes in a `ymm`.
    #[derive(Clone, Copy)]
    pub(crate) struct Ymm(pub(crate) __m256);

    /// The mask of the first `n` (0 to 8) lanes.
    #[inline(always)]
    fn mask(n: usize) -> __m256i {
        // SAFETY: inlined only where `Ymm`'s operations are (see the impl
        // below), all of which run with AVX2.
        unsafe {
            let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), iota)
        }
    }

    // SAFETY (every block below): these are inlined only into the AVX2
    // fused tiles, the AVX2 depthwise row kernel, the AVX2 Winograd
    // transforms (`native_winograd`) and `epilogue`, whose contracts are
    // that the host has AVX2 and FMA, the intrinsics' features.
    impl Lanes for Ymm {
        const LANES: usize = 8;
        // An AVX2 tile's whole column (6 rows): one row at a time, swish
        // was latency-bound (EfficientNet-B0's 112x112x16 to 96 1x1 conv
        // with bn + swish, one thread, Zen 3: 2.2-2.6 ms a row at a time,
        // 1.8-2.5 three rows, 1.6 all six; the whole net 17.9 to 17.5 ms).
        const TRANSCENDENTAL_ROWS: usize = 6;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32, n: usize) -> Self {
            // SAFETY: see the impl; the `n` floats at `p` are readable (the
            // contract) and a masked load reads no other lane.
            Ymm(unsafe {
                if n == 8 {
                    _mm256_loadu_ps(p)
                } else {
                    _mm256_maskload_ps(p, mask(n))
                }
            })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, n: usize) {
            // SAFETY: see the impl; the `n` floats at `p` are writable (the
            // contract) and a masked store writes no other lane.
            unsafe {
                if n == 8 {
                    _mm256_storeu_ps(p, self.0)
                } else {
                    _mm256_maskstore_ps(p, mask(n), self.0)
                }
            }
        }
        #[inline(always)]
        fn add(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_add_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn sub(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_sub_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn mul(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_mul_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn div(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_div_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn mul_add(self, y: Self, z: Self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_fmadd_ps(self.0, y.0, z.0) })
        }
        #[inline(always)]
        fn max(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_max_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn min(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_min_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn neg(self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe { _mm256_xor_ps(self.0, _mm256_set1_ps(-0.0)) })
        }
        #[inline(always)]
        fn zero_if_tiny(self, tiny: f32) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe {
                let magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0);
                let is_tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(magnitude, _mm256_set1_ps(tiny));
                _mm256_andnot_ps(is_tiny, self.0)
            })
        }
        #[inline(always)]
        fn nearest(self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe {
                _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
            })
        }
        #[inline(always)]
        fn pow2(self) -> Self {
            // SAFETY: see the impl.
            Ymm(unsafe {
                let n = _mm256_cvtps_epi32(self.0);
                let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
                _mm256_castsi256_ps(e)
            })
        }
    }

    /// The AVX2 epilogue, [`super::run`] on `ymm`s.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; the module doc's addresses (and `T`, as
    /// `run` says) are readable and writable as it says; `steps` has
    /// `count` initialised [`Step`]s.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe extern "C" fn epilogue(
        steps: *const Step,
        count: i64,
        tile: *const f32,
        tile_stride: i64,
        rows: i64,
        columns: i64,
        params: *const f32,
        vector: i64,
        extra: *const f32,
        output: *mut f32,
        pixel: i64,
    ) {
        // SAFETY: this function's contract is `run`'s, and the host has the
        // features `Ymm`'s operations need.
        unsafe {
            run::<Ymm>(
                steps,
                count,
                tile,
                tile_stride,
                (rows, columns),
                params,
                vector,
                extra,
                output,
                pixel,
            )
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{run, Lanes, Step};
    use std::arch::x86_64::*;

    /// Sixteen lanes in a `zmm`.
    #[derive(Clone, Copy)]
    pub(crate) struct Zmm(pub(crate) __m512);

    /// The mask of the first `n` (0 to 16) lanes.
    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    // SAFETY (every block below): these are inlined only into the AVX-512
    // fused tiles, the AVX-512 depthwise row kernel, the AVX-512 Winograd
    // transforms (`native_winograd`) and `epilogue`, whose contracts are
    // that the host has AVX-512F and FMA, the intrinsics' features.
    impl Lanes for Zmm {
        const LANES: usize = 16;
        // 14 rows of 16 lanes: all at once spilled (`finish`'s comment).
        const TRANSCENDENTAL_ROWS: usize = 1;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32, n: usize) -> Self {
            // SAFETY: see the impl; the `n` floats at `p` are readable (the
            // contract) and a masked load reads no other lane (nor faults on it).
            Zmm(unsafe {
                if n == 16 {
                    _mm512_loadu_ps(p)
                } else {
                    _mm512_maskz_loadu_ps(mask(n), p)
                }
            })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, n: usize) {
            // SAFETY: see the impl; the `n` floats at `p` are writable (the
            // contract) and a masked store writes no other lane.
            unsafe {
                if n == 16 {
                    _mm512_storeu_ps(p, self.0)
                } else {
                    _mm512_mask_storeu_ps(p, mask(n), self.0)
                }
            }
        }
        #[inline(always)]
        fn add(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_add_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn sub(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_sub_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn mul(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_mul_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn div(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_div_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn mul_add(self, y: Self, z: Self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_fmadd_ps(self.0, y.0, z.0) })
        }
        #[inline(always)]
        fn max(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_max_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn min(self, y: Self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe { _mm512_min_ps(self.0, y.0) })
        }
        #[inline(always)]
        fn neg(self) -> Self {
            // SAFETY: see the impl. (`vxorps zmm` is AVX512DQ; the integer xor is F.)
            Zmm(unsafe {
                _mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(self.0),
                    _mm512_set1_epi32(i32::MIN),
                ))
            })
        }
        #[inline(always)]
        fn zero_if_tiny(self, tiny: f32) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe {
                let magnitude = _mm512_abs_ps(self.0);
                let is_tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(magnitude, _mm512_set1_ps(tiny));
                _mm512_mask_mov_ps(self.0, is_tiny, _mm512_setzero_ps())
            })
        }
        #[inline(always)]
        fn nearest(self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe {
                _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
            })
        }
        #[inline(always)]
        fn pow2(self) -> Self {
            // SAFETY: see the impl.
            Zmm(unsafe {
                let n = _mm512_cvtps_epi32(self.0);
                let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)));
                _mm512_castsi512_ps(e)
            })
        }
    }

    /// The AVX-512 epilogue, [`super::run`] on `zmm`s.
    ///
    /// # Safety
    /// The host has AVX-512F and FMA; otherwise as [`super::avx2`]'s epilogue.
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe extern "C" fn epilogue(
        steps: *const Step,
        count: i64,
        tile: *const f32,
        tile_stride: i64,
        rows: i64,
        columns: i64,
        params: *const f32,
        vector: i64,
        extra: *const f32,
        output: *mut f32,
        pixel: i64,
    ) {
        // SAFETY: this function's contract is `run`'s, and the host has the
        // features `Zmm`'s operations need.
        unsafe {
            run::<Zmm>(
                steps,
                count,
                tile,
                tile_stride,
                (rows, columns),
                params,
                vector,
                extra,
                output,
                pixel,
            )
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Marks elements an epilogue must not write.
    const UNTOUCHED: u32 = 0x7fc0_dead;

    #[test]
    fn by_kernel_fuses_1x1_short_reductions_transcendentals_and_streams_only() {
        let relu = [Epilogue::Act(Activation::Relu)];
        let swish = [Epilogue::Act(Activation::Swish)];
        let tiles = |kernel, depth, steps| Tiles {
            kernel,
            depth,
            steps,
            streams_weights: false,
        };
        let by_kernel = |tiles| Use::ByKernel.native(tiles);
        // A 3x3 stem over RGB sums 9 x 3 = 27 terms, a 5x5 over 2 channels
        // 50, ResNet's 7x7 stem over RGB 147, a 3x3 over 17 channels 153.
        assert!(by_kernel(tiles([3, 3], 3, &relu)));
        assert!(by_kernel(tiles([5, 5], 2, &relu)));
        assert!(by_kernel(tiles([7, 7], 3, &[])));
        assert!(by_kernel(tiles([3, 3], 17, &relu)));
        // 3x3 over 18 channels is 162 terms, AlexNet's 3x3 over 256 is 2304.
        assert!(!by_kernel(tiles([3, 3], 18, &relu)));
        assert!(!by_kernel(tiles([3, 3], 256, &relu)));
        assert!(by_kernel(tiles([1, 1], 1024, &relu)));
        assert!(by_kernel(tiles([3, 3], 256, &swish)));
        assert!(by_kernel(Tiles {
            streams_weights: true,
            ..tiles([3, 3], 512, &relu)
        }));
        assert!(Use::Always.native(tiles([3, 3], 256, &relu)));
        assert!(!Use::Never.native(Tiles {
            streams_weights: true,
            ..tiles([3, 3], 3, &swish)
        }));
    }

    /// One call's operands, in floats: `rows x columns` of a tile
    /// `tile_stride` apart, outputs (and the shortcut) `pixel` apart.
    #[derive(Clone, Debug)]
    struct Call {
        steps: Vec<Step>,
        rows: usize,
        columns: usize,
        tile_stride: usize,
        pixel: usize,
        tile: Vec<f32>,
        params: Vec<f32>,
        extra: Vec<f32>,
    }

    impl Call {
        /// The output of `epilogue`, `UNTOUCHED` where it must not write.
        fn run(&self, epilogue: EpilogueFn) -> Vec<f32> {
            let mut output = vec![f32::from_bits(UNTOUCHED); self.extra.len()];
            // SAFETY: the host has the epilogue's ISA (`for_isa` gave it);
            // `tile` has `rows` rows of `tile_stride >= columns` floats,
            // `params` a vector of `columns` floats per step's need (3 per
            // step, `vector` apart: more than any step takes), `extra` and
            // `output` `rows` pixels of `pixel >= columns` floats.
            unsafe {
                epilogue(
                    self.steps.as_ptr(),
                    self.steps.len() as i64,
                    self.tile.as_ptr(),
                    self.tile_stride as i64,
                    self.rows as i64,
                    self.columns as i64,
                    self.params.as_ptr(),
                    (self.columns * 4) as i64,
                    self.extra.as_ptr(),
                    output.as_mut_ptr(),
                    (self.pixel * 4) as i64,
                )
            };
            output
        }
    }

    fn call() -> impl Strategy<Value = Call> {
        let value = prop_oneof![
            4 => -10.0f32..10.0,
            1 => prop::sample::select(vec![f32::NAN, f32::INFINITY, -f32::INFINITY, -0.0, 1e30]),
        ];
        let step = (AFFINE..=GELU, -1.0f32..1.0).prop_map(|(code, slope)| Step {
            code,
            slope: if code == LEAKY_RELU { slope } else { 0.0 },
        });
        (
            prop::collection::vec(step, 0..4),
            1usize..6,
            1usize..41,
            0usize..3,
        )
            .prop_flat_map(move |(steps, rows, columns, pad)| {
                let vectors = 1 + 2 * steps.len();
                let v = prop::collection::vec(value.clone(), rows * (columns + pad));
                (
                    Just((steps, rows, columns, pad)),
                    v.clone(),
                    prop::collection::vec(value.clone(), vectors * columns),
                    v,
                )
            })
            .prop_map(|((steps, rows, columns, pad), tile, params, extra)| Call {
                steps,
                rows,
                columns,
                tile_stride: columns + pad,
                pixel: columns + pad,
                tile,
                params,
                extra,
            })
    }

    proptest! {
        /// The ISAs agree bit for bit (NaN with NaN) at any column count,
        /// one vector or several and a partial one, and write exactly the
        /// `rows x columns` outputs.
        #[test]
        fn the_isas_agree_and_write_only_their_outputs(call in call()) {
            let outputs: Vec<Vec<f32>> =
                Isa::ALL.into_iter().filter_map(for_isa).map(|f| call.run(f)).collect();
            for output in &outputs {
                for (i, x) in output.iter().enumerate() {
                    let inside = i % call.pixel < call.columns;
                    prop_assert_eq!(x.to_bits() != UNTOUCHED, inside, "element {}", i);
                }
                for (i, (x, y)) in output.iter().zip(&outputs[0]).enumerate() {
                    prop_assert!(
                        x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                        "element {i}: {x:e} against {y:e}"
                    );
                }
            }
        }
    }
}
