//! Softmax over the channels of each pixel, in place on `output`: the
//! softmax that ends a classifier runs right after the kernel of the layer
//! before it (its epilogue cannot apply it per channel), on that kernel's
//! output. The only kernel that reads `output`; it reads no other buffer.
//!
//! Three passes over a pixel's channels in `f32x4` vectors (a partial vector
//! for the tail): the maximum, `e^(x - max)` stored and summed, then the
//! product by `1 / sum`. Only valid lanes enter the reductions.

use super::{clamp, for_range, int, vector, Args, Lengths};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

/// Everything a softmax kernel is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SoftmaxSpec {
    /// Pixels (the rows `[begin, end)` ranges over).
    pub pixels: usize,
    /// Channels of each pixel, the softmax's axis.
    pub channels: usize,
}

impl SoftmaxSpec {
    /// The buffer lengths of the kernel's safety contract: `output` only.
    pub fn lengths(&self) -> Lengths {
        Lengths {
            output: self.pixels * self.channels,
            rows: self.pixels,
            ..Lengths::default()
        }
    }
}

/// How a pass combines one vector of `lanes` valid lanes into its accumulator.
#[derive(Clone, Copy)]
enum Pass {
    Max,
    /// Stores `e^(x - max)` and sums it.
    ExpSum(Value),
    /// Stores `x * scale`.
    Scale(Value),
}

/// Emits the kernel body for pixels `[begin, end)`.
pub(crate) fn emit(spec: &SoftmaxSpec, b: &mut FunctionBuilder, a: &Args) {
    let lo = clamp(b, a.begin, 0, spec.pixels as i64);
    let hi = clamp(b, a.end, 0, spec.pixels as i64);
    for_range(b, lo, hi, 1, |b, p| {
        let offset = b.ins().imul_imm_s(p, (spec.channels * 4) as i64);
        let pixel = b.ins().iadd(a.output, offset);
        let max = pass(spec, b, pixel, Pass::Max, f32::NEG_INFINITY);
        let max_v = b.ins().splat(types::F32X4, max);
        let sum = pass(spec, b, pixel, Pass::ExpSum(max_v), 0.0);
        let one = b.ins().f32const(1.0);
        let inv = b.ins().fdiv(one, sum);
        let inv = b.ins().splat(types::F32X4, inv);
        pass(spec, b, pixel, Pass::Scale(inv), 0.0);
    });
}

/// One pass over a pixel's channels; the reduction's scalar (max or sum).
fn pass(spec: &SoftmaxSpec, b: &mut FunctionBuilder, pixel: Value, how: Pass, init: f32) -> Value {
    let acc = b.declare_var(types::F32);
    let init = b.ins().f32const(init);
    b.def_var(acc, init);
    let full = spec.channels / 4;
    if full > 0 {
        let zero = int(b, 0);
        let n = int(b, full as i64);
        for_range(b, zero, n, 1, |b, cv| {
            let bytes = b.ins().imul_imm_s(cv, 16);
            let at = b.ins().iadd(pixel, bytes);
            step(b, at, how, acc, 4);
        });
    }
    if !spec.channels.is_multiple_of(4) {
        let at = b.ins().iadd_imm_s(pixel, (full * 16) as i64);
        step(b, at, how, acc, spec.channels % 4);
    }
    b.use_var(acc)
}

fn step(b: &mut FunctionBuilder, at: Value, how: Pass, acc: Variable, lanes: usize) {
    let x = vector::load_partial(b, at, 0, lanes);
    let reduce = match how {
        Pass::Max => x,
        Pass::ExpSum(max) => {
            let d = b.ins().fsub(x, max);
            let e = vector::exp(b, d);
            vector::store_partial(b, e, at, 0, lanes);
            e
        }
        Pass::Scale(inv) => {
            let y = b.ins().fmul(x, inv);
            vector::store_partial(b, y, at, 0, lanes);
            return;
        }
    };
    let mut r = b.use_var(acc);
    for lane in 0..lanes {
        let v = b.ins().extractlane(reduce, lane as u8);
        r = match how {
            Pass::Max => b.ins().fmax(r, v),
            _ => b.ins().fadd(r, v),
        };
    }
    b.def_var(acc, r);
}
