//! A separable pair fused into one pass over output rows: a first
//! convolution (depthwise, or `1xk`) with its per-channel epilogue, whose
//! output feeds only a second convolution (a pointwise `1x1`, or `kx1`) with
//! its epilogue, residual add included. MobileNet's block (depthwise +
//! pointwise) and the lecture's spatially separable convolution (`1xk` +
//! `kx1`) are the two pairs the plan marks (`plan::Step::keeps`).
//!
//! The intermediate tensor never leaves cache: for each output row of the
//! second convolution, the kernel computes the rows of the intermediate that
//! row reads and has not computed yet into a ring in `scratch`, then runs the
//! second convolution's row code on the ring. Each intermediate row is
//! computed once per call (a thread's part of the rows; rows at the seams of
//! two parts are computed by both). Both halves are the families' own code,
//! [`super::depthwise::emit`] or [`super::conv::emit_rows`] for one intermediate
//! row, either for one output row, given pointers that make
//! the ring look like the whole tensor:
//!
//! - The second convolution's output row `oy` reads the `window` rows
//!   `oy * stride - pad ..` (`window` = its dilated kernel height), clipped to
//!   the intermediate. The ring holds `window` rows, row `r` in slot
//!   `r % window`, and each row is stored twice, in slot `s` and `s + window`,
//!   so that any `window` consecutive rows are contiguous: the second
//!   convolution reads them at a fixed row stride, as it reads a tensor.
//!   With `window` 1 (a pointwise second half) the ring is one row.
//! - The first convolution writes row `r` through an `output` pointer that
//!   is `r` rows before its slot; the second reads through an `input` pointer
//!   that is `top` rows before the slot of its first row `top`. Neither
//!   pointer is dereferenced outside the ring: the families address only the
//!   rows `[begin, end)` they are given (one row here) and the taps inside.
//!
//! Buffers: `input` is the first's input, `weights` and `params` are the
//! first's packed ones followed by the second's, `extra` is the second's
//! shortcut, `output` the second's output. The intermediate is never written
//! to the arena, which still holds a place for it so that the reference path
//! runs the same plan; the plan keeps the first's input live through the
//! second step, so the fused kernel's input and output never share memory.
//!
//! The second convolution's input loads are marked read-only, as in every
//! conv kernel, although the ring is written by the same function. Cranelift
//! then treats them as pure, which lets lowering sink a load to its use
//! within one block; the ring rows a block of the second convolution reads
//! are all written by earlier blocks (the first convolution's), and with
//! `opt_level = none` no pass moves a load across blocks.

use super::conv::ConvSpec;
use super::depthwise::DepthwiseSpec;
use super::{clamp, for_range, int, vector, Args, Epilogue, Lengths};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// One half of a pair: either family's kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Half {
    /// A depthwise convolution.
    Depthwise(DepthwiseSpec),
    /// A convolution (`1xk`, `1x1` or `kx1` in the pairs the plan marks).
    Conv(ConvSpec),
}

impl Half {
    fn lengths(&self) -> Lengths {
        match self {
            Half::Depthwise(spec) => spec.lengths(),
            Half::Conv(spec) => spec.lengths(),
        }
    }

    /// Input height, width and channels.
    fn input(&self) -> [usize; 3] {
        match self {
            Half::Depthwise(spec) => [spec.input[0], spec.input[1], spec.channels],
            Half::Conv(spec) => spec.input,
        }
    }

    /// Output height, width and channels.
    fn output(&self) -> [usize; 3] {
        match self {
            Half::Depthwise(spec) => [spec.output[0], spec.output[1], spec.channels],
            Half::Conv(spec) => spec.output,
        }
    }

    /// Kernel height, stride, dilation and padding along the height.
    fn rows(&self) -> [usize; 4] {
        match self {
            Half::Depthwise(spec) => [
                spec.kernel[0],
                spec.stride[0],
                spec.dilation[0],
                spec.pad[0],
            ],
            Half::Conv(spec) => [
                spec.kernel[0],
                spec.stride[0],
                spec.dilation[0],
                spec.pad[0],
            ],
        }
    }

    fn epilogue(&self) -> &[Epilogue] {
        match self {
            Half::Depthwise(spec) => &spec.epilogue,
            Half::Conv(spec) => &spec.epilogue,
        }
    }

    fn emit(&self, b: &mut FunctionBuilder, a: &Args) {
        match self {
            Half::Depthwise(spec) => super::depthwise::emit(spec, b, a),
            Half::Conv(spec) => super::conv::emit_rows(spec, b, a),
        }
    }
}

/// Everything a fused pair is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeparableSpec {
    /// The first convolution and its epilogue (no residual add).
    pub first: Half,
    /// The second convolution, reading the first's output, and its epilogue.
    pub second: Half,
}

impl SeparableSpec {
    /// The pair, or `None` if the second does not read exactly the first's
    /// output or the first's epilogue reads a shortcut.
    pub fn new(first: Half, second: Half) -> Option<SeparableSpec> {
        (first.output() == second.input() && !first.epilogue().contains(&Epilogue::Add))
            .then_some(SeparableSpec { first, second })
    }

    /// Intermediate rows one output row reads: the second's dilated kernel height.
    fn window(&self) -> usize {
        let [kernel, _, dilation, _] = self.second.rows();
        (kernel - 1) * dilation + 1
    }

    /// Rows the ring stores: each row twice, unless the window is one row.
    fn ring_rows(&self) -> usize {
        match self.window() {
            1 => 1,
            w => 2 * w,
        }
    }

    /// `f32`s in one intermediate row.
    fn row_len(&self) -> usize {
        let [_, w, c] = self.second.input();
        w * c
    }

    /// The buffer lengths of the kernel's safety contract.
    pub fn lengths(&self) -> Lengths {
        let (first, second) = (self.first.lengths(), self.second.lengths());
        Lengths {
            input: first.input,
            weights: first.weights + second.weights,
            params: first.params + second.params,
            extra: second.extra,
            output: second.output,
            scratch: self.ring_rows() * self.row_len(),
            rows: self.second.output()[0],
        }
    }
}

/// Emits the kernel body for output rows `[begin, end)`.
pub(crate) fn emit(spec: &SeparableSpec, b: &mut FunctionBuilder, a: &Args) {
    let first = spec.first.lengths();
    let second = &spec.second;
    let [_, stride, _, pad] = second.rows();
    let window = spec.window() as i64;
    let mid_rows = second.input()[0] as i64;
    let row_bytes = (spec.row_len() * 4) as i64;
    let second_weights = b.ins().iadd_imm_s(a.weights, (first.weights * 4) as i64);
    let second_params = b.ins().iadd_imm_s(a.params, (first.params * 4) as i64);
    // The first intermediate row not computed yet in this call.
    let next = b.declare_var(types::I64);
    let zero = int(b, 0);
    b.def_var(next, zero);
    let rows = second.output()[0] as i64;
    let lo = clamp(b, a.begin, 0, rows);
    let hi = clamp(b, a.end, 0, rows);
    for_range(b, lo, hi, 1, |b, oy| {
        let start = b.ins().imul_imm_s(oy, stride as i64);
        let start = b.ins().iadd_imm_s(start, -(pad as i64));
        let top = clamp(b, start, 0, mid_rows);
        let bottom = b.ins().iadd_imm_s(start, window);
        let bottom = clamp(b, bottom, 0, mid_rows);
        let computed = b.use_var(next);
        let from = b.ins().smax(computed, top);
        for_range(b, from, bottom, 1, |b, r| {
            let slot = slot(b, r, window, row_bytes, a.scratch);
            let back = b.ins().imul_imm_s(r, row_bytes);
            let output = b.ins().isub(slot, back);
            let r1 = b.ins().iadd_imm_s(r, 1);
            let args = Args {
                output,
                begin: r,
                end: r1,
                ..*a
            };
            spec.first.emit(b, &args);
            if window > 1 {
                let twin = b.ins().iadd_imm_s(slot, window * row_bytes);
                copy(b, slot, twin, spec.row_len());
            }
        });
        let computed = b.ins().smax(computed, bottom);
        b.def_var(next, computed);
        let slot = slot(b, top, window, row_bytes, a.scratch);
        let back = b.ins().imul_imm_s(top, row_bytes);
        let input = b.ins().isub(slot, back);
        let oy1 = b.ins().iadd_imm_s(oy, 1);
        let args = Args {
            input,
            weights: second_weights,
            params: second_params,
            begin: oy,
            end: oy1,
            ..*a
        };
        second.emit(b, &args);
    });
}

/// Where intermediate row `r` lives in the ring.
fn slot(b: &mut FunctionBuilder, r: Value, window: i64, row_bytes: i64, scratch: Value) -> Value {
    if window == 1 {
        return scratch;
    }
    let index = b.ins().urem_imm_s(r, window);
    let offset = b.ins().imul_imm_s(index, row_bytes);
    b.ins().iadd(scratch, offset)
}

/// Copies `len` `f32`s from `from` to `to` (which do not overlap).
fn copy(b: &mut FunctionBuilder, from: Value, to: Value, len: usize) {
    const UNROLL: usize = 4;
    let chunk = 4 * UNROLL;
    let full = len / chunk;
    if full > 0 {
        let zero = int(b, 0);
        let end = int(b, (full * chunk * 4) as i64);
        for_range(b, zero, end, (chunk * 4) as i64, |b, offset| {
            let src = b.ins().iadd(from, offset);
            let dst = b.ins().iadd(to, offset);
            for v in 0..UNROLL as i64 {
                let x = vector::load4(b, src, 16 * v);
                vector::store_partial(b, x, dst, 16 * v, 4);
            }
        });
    }
    for at in (full * chunk..len).step_by(4) {
        let lanes = (len - at).min(4);
        let x = vector::load_partial(b, from, at as i64 * 4, lanes);
        vector::store_partial(b, x, to, at as i64 * 4, lanes);
    }
}
