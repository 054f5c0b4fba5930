//! Element-wise binary kernels on HWC data: an unfused residual add
//! (`input + extra`, same shape) and a scale (`input * extra`, where `extra`
//! is either the same shape or one gate per channel, as a squeeze-excite
//! block multiplies by its `1x1xC` sigmoid). The second operand is `extra`,
//! so the fused epilogue (bn, activations) is the shared one with no add of
//! its own; its bias vector is zero.
//!
//! Vectorised across channels like [`super::pool`]: each pixel's channels in
//! `f32x4` vectors, a partial vector for the tail, so a per-channel gate and
//! the epilogue's per-channel vectors line up with the data.

use super::{apply_epilogue, clamp, for_range, int, vector, Args, Epilogue, Epilogued, Lengths};
use super::{epilogue_lengths, pack_padded, padded_channels};
use cnnjit_ir::Shape;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// The binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    /// `input + extra`.
    Add,
    /// `input * extra`.
    Mul,
}

/// Everything an element-wise kernel is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElementwiseSpec {
    /// The operation.
    pub op: Binary,
    /// Height, width and channels of `input` and `output`.
    pub shape: [usize; 3],
    /// `extra` holds one value per channel, broadcast over pixels (else one
    /// per element).
    pub per_channel: bool,
    /// The fused epilogue (never an add: `extra` is the second operand).
    pub epilogue: Vec<Epilogue>,
}

impl ElementwiseSpec {
    /// The spec of `op` on tensors of `shape` whose second operand has
    /// `other` elements, or `None` if that fits neither the whole tensor nor
    /// its channels, or the epilogue adds.
    pub fn new(
        op: Binary,
        shape: Shape,
        other: Shape,
        epilogue: Vec<Epilogue>,
    ) -> Option<ElementwiseSpec> {
        let shape = match shape {
            Shape::Volume { h, w, c } => [h as usize, w as usize, c as usize],
            Shape::Flat(n) => [1, 1, n as usize],
        };
        let len = shape.iter().product::<usize>() as u64;
        let per_channel = match other.len() {
            n if n == len => false,
            n if n == shape[2] as u64 && op == Binary::Mul => true,
            _ => return None,
        };
        if epilogue.contains(&Epilogue::Add) {
            return None;
        }
        Some(ElementwiseSpec {
            op,
            shape,
            per_channel,
            epilogue,
        })
    }

    fn channels(&self) -> usize {
        self.shape[2]
    }

    fn padded(&self) -> usize {
        padded_channels(self.shape[2])
    }

    /// The buffer lengths of the kernel's safety contract.
    pub fn lengths(&self) -> Lengths {
        let [h, w, c] = self.shape;
        let (params, _) = epilogue_lengths(&self.epilogue, self.padded(), h * w * c);
        Lengths {
            input: h * w * c,
            weights: 0,
            params,
            extra: if self.per_channel { c } else { h * w * c },
            output: h * w * c,
            scratch: 0,
            rows: h,
        }
    }

    /// A per-channel vector padded to whole vectors.
    pub fn pack_vector(&self, v: &[f32]) -> Vec<f32> {
        pack_padded(v)
    }
}

/// Emits the kernel body for rows `[begin, end)`.
pub(crate) fn emit(spec: &ElementwiseSpec, b: &mut FunctionBuilder, a: &Args) {
    let [h, w, c] = spec.shape;
    let row_bytes = (w * c * 4) as i64;
    let lo = clamp(b, a.begin, 0, h as i64);
    let hi = clamp(b, a.end, 0, h as i64);
    for_range(b, lo, hi, 1, |b, y| {
        let row = b.ins().imul_imm_s(y, row_bytes);
        let zero = int(b, 0);
        let width = int(b, w as i64);
        for_range(b, zero, width, 1, |b, x| {
            let pixel = b.ins().imul_imm_s(x, (c * 4) as i64);
            let pixel = b.ins().iadd(row, pixel);
            let at = |b: &mut FunctionBuilder, p: Value| b.ins().iadd(p, pixel);
            let input = at(b, a.input);
            let output = at(b, a.output);
            let extra = if spec.per_channel {
                a.extra
            } else {
                at(b, a.extra)
            };
            channels(spec, b, a, [input, extra, output]);
        });
    });
}

/// One pixel's channels: whole vectors unrolled (the loop's counter and
/// address arithmetic cost as much as an add), then the tail's lanes.
fn channels(spec: &ElementwiseSpec, b: &mut FunctionBuilder, a: &Args, pixel: [Value; 3]) {
    let c = spec.channels();
    for v in 0..c.div_ceil(4) {
        let bytes = (v * 16) as i64;
        let p = [pixel[0], pixel[1], pixel[2], a.params].map(|p| b.ins().iadd_imm_s(p, bytes));
        lanes(spec, b, p, (c - 4 * v).min(4));
    }
}

fn lanes(
    spec: &ElementwiseSpec,
    b: &mut FunctionBuilder,
    [input, extra, output, params]: [Value; 4],
    lanes: usize,
) {
    let x = vector::load_partial(b, input, 0, lanes);
    let y = vector::load_partial(b, extra, 0, lanes);
    let x = match spec.op {
        Binary::Add => b.ins().fadd(x, y),
        Binary::Mul => b.ins().fmul(x, y),
    };
    let at = Epilogued {
        params,
        channel: 0,
        vector: (spec.padded() * 4) as i64,
        extra,
        output,
        element: 0,
        lanes,
    };
    apply_epilogue(b, &spec.epilogue, x, &at);
}
