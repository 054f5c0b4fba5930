//! Local response normalisation across channels on HWC data, as PyTorch's
//! `LocalResponseNorm` (`runtime/src/reference/lrn.rs` is its twin):
//!
//! ```text
//! out[p, c] = in[p, c] / (k + alpha / size * sum_{c' = c - size/2}^{c + (size-1)/2} in[p, c']^2)^beta
//! ```
//!
//! with channels outside `0..C` counting as zero and the divisor always
//! `size`. Its rows are pixels.
//!
//! Per pixel, the squares go into the call's `scratch` between zeros (`before`
//! channels ahead, `after` behind, clipped to what can reach a channel), so
//! that each `f32x4` of outputs sums its window with one unaligned load per
//! window tap and no edge case: a direct sum of at most `size` terms in `f32`
//! (a running sum along the channels would be serial, and its subtractions
//! lose accuracy when large squares leave the window). Only the squares are
//! rewritten per pixel; the zeros around them are written once per call.
//!
//! Cranelift has no `pow`: `t^-beta` is `1 / (sqrt(t) sqrt(sqrt(t)))` for
//! AlexNet's and GoogLeNet's `beta = 0.75`, `1 / sqrt(t)` for 0.5, `1 / t` for
//! 1, and `e^(-beta ln t)` ([`vector::ln`], [`vector::exp`]) for any other.
//! That needs `t > 0`, which `k > 0` and `alpha >= 0` guarantee; other
//! parameters keep the reference kernel ([`unsupported`]).

use super::{apply_epilogue, clamp, for_range, int, vector, Args, Epilogue, Epilogued, Lengths};
use super::{epilogue_lengths, pack_padded, padded_channels};
use cnnjit_ir::{F32Bits, Lrn, Shape};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// Window taps summed per loop iteration when the window is too long to
/// unroll whole.
const UNROLL: usize = 4;
/// The longest window unrolled whole.
const UNROLLED_TAPS: usize = 16;

/// Everything an LRN kernel is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LrnSpec {
    /// Pixels (the rows `[begin, end)` ranges over).
    pub pixels: usize,
    /// Channels of each pixel, the window's axis.
    pub channels: usize,
    /// Channels the window reaches before a channel: `size / 2`, clipped to
    /// `channels` (no farther channel exists).
    pub before: usize,
    /// Channels the window reaches after a channel: `(size - 1) / 2`, clipped.
    pub after: usize,
    /// `alpha / size`.
    pub scale: F32Bits,
    /// `k`.
    pub k: F32Bits,
    /// `beta`.
    pub beta: F32Bits,
    /// The fused epilogue.
    pub epilogue: Vec<Epilogue>,
}

impl LrnSpec {
    /// The spec of `op` on `input` (a flat vector is one pixel), or `None`
    /// when the base `k + alpha / size * sum` could be zero or negative
    /// ([`unsupported`] says why): the reference kernel then keeps PyTorch's
    /// answer (zero, infinity or NaN).
    pub fn new(op: &Lrn, input: Shape, epilogue: Vec<Epilogue>) -> Option<LrnSpec> {
        let (pixels, channels) = match input {
            Shape::Volume { h, w, c } => (h as usize * w as usize, c as usize),
            Shape::Flat(n) => (1, n as usize),
        };
        let size = op.size as usize;
        if unsupported(op).is_some() || size == 0 || channels == 0 {
            return None;
        }
        Some(LrnSpec {
            pixels,
            channels,
            before: (size / 2).min(channels),
            after: ((size - 1) / 2).min(channels),
            scale: F32Bits::new((f64::from(op.alpha) / size as f64) as f32),
            k: F32Bits::new(op.k),
            beta: F32Bits::new(op.beta),
            epilogue,
        })
    }

    fn padded(&self) -> usize {
        padded_channels(self.channels)
    }

    /// Window taps one output sums (clipped like `before` and `after`).
    fn taps(&self) -> usize {
        self.before + 1 + self.after
    }

    /// The buffer lengths of the kernel's safety contract. `scratch` holds one
    /// pixel's squares between zeros: the last vector's last lane reads up to
    /// `after` channels past the padded channels.
    pub fn lengths(&self) -> Lengths {
        let len = self.pixels * self.channels;
        let (params, extra) = epilogue_lengths(&self.epilogue, self.padded(), len);
        Lengths {
            input: len,
            weights: 0,
            params,
            extra,
            output: len,
            scratch: self.before + self.padded() + self.after,
            rows: self.pixels,
        }
    }

    /// A per-channel vector padded to whole vectors.
    pub fn pack_vector(&self, v: &[f32]) -> Vec<f32> {
        pack_padded(v)
    }
}

/// Why the kernel leaves `op` to the reference, if it does: its powers need
/// a positive base `k + alpha / size * sum`, so `k > 0` (a normal `f32`) and
/// `alpha >= 0`, every parameter finite.
pub fn unsupported(op: &Lrn) -> Option<&'static str> {
    if !(op.k.is_finite() && op.alpha.is_finite() && op.beta.is_finite()) {
        Some("a parameter is not finite")
    } else if op.k <= 0.0 {
        Some("k <= 0")
    } else if !op.k.is_normal() {
        Some("k is subnormal")
    } else if op.alpha < 0.0 {
        Some("alpha < 0")
    } else {
        None
    }
}

/// Emits the kernel body for pixels `[begin, end)`.
pub(crate) fn emit(spec: &LrnSpec, b: &mut FunctionBuilder, a: &Args) {
    let (c, padded) = (spec.channels, spec.padded());
    // The zeros around the squares: channels -before..0 and C..padded+after.
    let zero = vector::splat(b, 0.0);
    let squares = b.ins().iadd_imm_s(a.scratch, (spec.before * 4) as i64);
    zeros(b, zero, a.scratch, spec.before);
    let tail = b.ins().iadd_imm_s(squares, (c * 4) as i64);
    zeros(b, zero, tail, padded - c + spec.after);
    let lo = clamp(b, a.begin, 0, spec.pixels as i64);
    let hi = clamp(b, a.end, 0, spec.pixels as i64);
    for_range(b, lo, hi, 1, |b, p| {
        let offset = b.ins().imul_imm_s(p, (c * 4) as i64);
        let [input, output, extra] =
            [a.input, a.output, a.extra].map(|base| b.ins().iadd(base, offset));
        for v in 0..c.div_ceil(4) {
            let x = vector::load_partial(b, input, (v * 16) as i64, (c - 4 * v).min(4));
            let x2 = b.ins().fmul(x, x);
            vector::store_partial(b, x2, squares, (v * 16) as i64, (c - 4 * v).min(4));
        }
        // Unrolled over the channels, like the element-wise kernels: a vector's
        // window is a handful of loads and adds.
        for v in 0..c.div_ceil(4) {
            let lanes = (c - 4 * v).min(4);
            let window = b.ins().iadd_imm_s(a.scratch, (v * 16) as i64);
            let sum = window_sum(spec, b, window);
            let x = vector::load_partial(b, input, (v * 16) as i64, lanes);
            let y = normalise(spec, b, x, sum);
            let at = Epilogued {
                params: a.params,
                channel: (v * 16) as i64,
                vector: (padded * 4) as i64,
                extra,
                output,
                element: (v * 16) as i64,
                lanes,
            };
            apply_epilogue(b, &spec.epilogue, y, &at);
        }
    });
}

/// Stores `n` zeros from `at` (whole vectors, then the lanes left).
fn zeros(b: &mut FunctionBuilder, zero: Value, at: Value, n: usize) {
    for v in 0..n.div_ceil(4) {
        vector::store_partial(b, zero, at, (v * 16) as i64, (n - 4 * v).min(4));
    }
}

/// The sum of the `taps` vectors from `window` on, one channel apart: the
/// squares in the windows of four consecutive channels.
fn window_sum(spec: &LrnSpec, b: &mut FunctionBuilder, window: Value) -> Value {
    let taps = spec.taps();
    let looped = if taps > UNROLLED_TAPS {
        taps / UNROLL * UNROLL
    } else {
        0
    };
    let acc = b.declare_var(types::F32X4);
    let zero = vector::splat(b, 0.0);
    b.def_var(acc, zero);
    let add = |b: &mut FunctionBuilder, at: Value, tap: usize| {
        let x = vector::load4(b, at, (tap * 4) as i64);
        let sum = b.use_var(acc);
        let sum = b.ins().fadd(sum, x);
        b.def_var(acc, sum);
    };
    if looped > 0 {
        let start = int(b, 0);
        let end = int(b, looped as i64);
        for_range(b, start, end, UNROLL as i64, |b, tap| {
            let bytes = b.ins().imul_imm_s(tap, 4);
            let at = b.ins().iadd(window, bytes);
            for unit in 0..UNROLL {
                add(b, at, unit);
            }
        });
    }
    for tap in looped..taps {
        add(b, window, tap);
    }
    b.use_var(acc)
}

/// `x / (k + scale * sum)^beta`.
fn normalise(spec: &LrnSpec, b: &mut FunctionBuilder, x: Value, sum: Value) -> Value {
    let k = vector::splat(b, spec.k.get());
    let scale = vector::splat(b, spec.scale.get());
    let t = vector::mul_add(b, sum, scale, k);
    let beta = spec.beta.get();
    let power = match beta {
        0.75 => {
            let s = b.ins().sqrt(t);
            let q = b.ins().sqrt(s);
            b.ins().fmul(s, q)
        }
        0.5 => b.ins().sqrt(t),
        1.0 => t,
        _ => {
            let ln = vector::ln(b, t);
            let minus_beta = vector::splat(b, -beta);
            let e = b.ins().fmul(ln, minus_beta);
            let inverse = vector::exp(b, e);
            return b.ins().fmul(x, inverse);
        }
    };
    b.ins().fdiv(x, power)
}
