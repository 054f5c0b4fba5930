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
//! [`super::depthwise::emit`] or [`super::conv::emit`] for one intermediate
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
use cranelift_codegen::ir::condcodes::IntCC;
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
            Half::Conv(spec) => super::conv::emit(spec, b, a),
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

    /// The second half as a GEMM over whole blocks of rows, if it is a
    /// pointwise convolution (`1x1`, stride 1, no padding): its output row
    /// `r` reads intermediate row `r` alone, and consecutive rows of either
    /// are consecutive pixels, so a block of rows is one row of a `1x1`
    /// convolution over all its pixels.
    fn pointwise(&self) -> Option<Blocks<'_>> {
        let Half::Conv(conv) = &self.second else {
            return None;
        };
        (conv.kernel == [1, 1] && conv.stride == [1, 1] && conv.pad == [0, 0]).then(|| {
            let [height, width, _] = conv.output;
            // Rows per block: the fewest whose pixels fill whole tiles
            // (112 pixels a row are 18 tiles of 6 and one of 4; 3 rows are
            // 56 tiles), but no more than the tensor has.
            let tile = conv.tile();
            let rows = (tile / gcd(width, tile)).min(height);
            Blocks { conv, rows }
        })
    }

    /// Output rows per row of the kernel (`Lengths::rows` counts blocks of
    /// this many output rows, the last one possibly shorter).
    pub fn block_rows(&self) -> usize {
        self.pointwise().map_or(1, |blocks| blocks.rows)
    }

    /// The buffer lengths of the kernel's safety contract.
    pub fn lengths(&self) -> Lengths {
        let (first, second) = (self.first.lengths(), self.second.lengths());
        let (scratch, rows) = match self.pointwise() {
            Some(blocks) => (blocks.rows * self.row_len(), blocks.count()),
            None => (self.ring_rows() * self.row_len(), second.rows),
        };
        Lengths {
            input: first.input,
            weights: first.weights + second.weights,
            params: first.params + second.params,
            extra: second.extra,
            output: second.output,
            scratch,
            rows,
        }
    }
}

/// A pointwise second half run over blocks of `rows` rows: the kernel's
/// rows are these blocks (the last one has the rows left over), so threads
/// split whole blocks.
struct Blocks<'s> {
    conv: &'s ConvSpec,
    rows: usize,
}

impl Blocks<'_> {
    fn height(&self) -> usize {
        self.conv.output[0]
    }

    /// Blocks in the tensor.
    fn count(&self) -> usize {
        self.height().div_ceil(self.rows)
    }

    /// The second half over `rows` rows, as one row of all their pixels.
    /// Its packed weights and vectors are the same as the whole tensor's:
    /// they depend only on channels, groups and tile width.
    fn flat(&self, rows: usize) -> ConvSpec {
        let [_, w, c] = self.conv.input;
        let [_, _, k] = self.conv.output;
        ConvSpec {
            input: [1, rows * w, c],
            output: [1, rows * w, k],
            ..self.conv.clone()
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Emits the kernel body for rows `[begin, end)`: output rows, or blocks of
/// them for a pointwise second half.
pub(crate) fn emit(spec: &SeparableSpec, b: &mut FunctionBuilder, a: &Args) {
    match spec.pointwise() {
        Some(blocks) => emit_blocks(spec, &blocks, b, a),
        None => emit_rows(spec, b, a),
    }
}

/// The second half's weights and vectors, after the first's.
fn second_buffers(spec: &SeparableSpec, b: &mut FunctionBuilder, a: &Args) -> (Value, Value) {
    let first = spec.first.lengths();
    (
        b.ins().iadd_imm_s(a.weights, (first.weights * 4) as i64),
        b.ins().iadd_imm_s(a.params, (first.params * 4) as i64),
    )
}

/// A pointwise pair, block by block: the first half computes the block's
/// intermediate rows into `scratch` (one after the other, so they are one
/// run of pixels), then the second half runs once over all of them.
fn emit_blocks(spec: &SeparableSpec, blocks: &Blocks, b: &mut FunctionBuilder, a: &Args) {
    let (weights, params) = second_buffers(spec, b, a);
    let height = blocks.height() as i64;
    let per_block = blocks.rows as i64;
    let full = height / per_block;
    let row_bytes = (spec.row_len() * 4) as i64;
    let out_row_bytes = (blocks.conv.output[1] * blocks.conv.output[2] * 4) as i64;
    let lo = clamp(b, a.begin, 0, blocks.count() as i64);
    let hi = clamp(b, a.end, 0, blocks.count() as i64);
    for_range(b, lo, hi, 1, |b, block| {
        let top = b.ins().imul_imm_s(block, per_block);
        let bottom = b.ins().iadd_imm_s(top, per_block);
        let bottom = clamp(b, bottom, 0, height);
        let back = b.ins().imul_imm_s(top, row_bytes);
        let output = b.ins().isub(a.scratch, back);
        spec.first.emit(
            b,
            &Args {
                output,
                begin: top,
                end: bottom,
                ..*a
            },
        );
        let offset = b.ins().imul_imm_s(top, out_row_bytes);
        let args = Args {
            input: a.scratch,
            weights,
            params,
            extra: b.ins().iadd(a.extra, offset),
            output: b.ins().iadd(a.output, offset),
            begin: int(b, 0),
            end: int(b, 1),
            ..*a
        };
        let rest = blocks.height() % blocks.rows;
        if rest == 0 {
            super::conv::emit(&blocks.flat(blocks.rows), b, &args);
        } else {
            // Every block but the last is whole.
            let whole = b.ins().icmp_imm_s(IntCC::SignedLessThan, block, full);
            let (then, other, join) = (b.create_block(), b.create_block(), b.create_block());
            b.ins().brif(whole, then, &[], other, &[]);
            b.switch_to_block(then);
            super::conv::emit(&blocks.flat(blocks.rows), b, &args);
            b.ins().jump(join, &[]);
            b.switch_to_block(other);
            super::conv::emit(&blocks.flat(rest), b, &args);
            b.ins().jump(join, &[]);
            b.switch_to_block(join);
        }
    });
}

/// Any other pair, output row by output row, through the ring.
fn emit_rows(spec: &SeparableSpec, b: &mut FunctionBuilder, a: &Args) {
    let second = &spec.second;
    let [_, stride, _, pad] = second.rows();
    let window = spec.window() as i64;
    let mid_rows = second.input()[0] as i64;
    let row_bytes = (spec.row_len() * 4) as i64;
    let (second_weights, second_params) = second_buffers(spec, b, a);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(height: usize, width: usize, native: bool) -> SeparableSpec {
        let depthwise = DepthwiseSpec {
            channels: 8,
            input: [height, width],
            output: [height, width],
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [1, 1],
            epilogue: Vec::new(),
        };
        let pointwise = ConvSpec {
            input: [height, width, 8],
            output: [height, width, 16],
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0, 0],
            groups: 1,
            epilogue: Vec::new(),
            native,
        };
        SeparableSpec::new(Half::Depthwise(depthwise), Half::Conv(pointwise)).unwrap()
    }

    #[test]
    fn pointwise_blocks_fill_whole_tiles() {
        // By hand, with tiles of 6 (native) and 4 pixels: 112 = 18 x 6 + 4, so
        // 3 rows (336 = 56 x 6); 7 needs 6 rows (42), or 4 (28); 14 needs 3 or 2.
        // The kernel's rows are blocks, the last one shorter; scratch is one block.
        for (height, width, native, rows, blocks) in [
            (112, 112, true, 3, 38),
            (112, 112, false, 1, 112),
            (7, 7, true, 6, 2),
            (7, 7, false, 4, 2),
            (14, 14, true, 3, 5),
            (14, 14, false, 2, 7),
            (4, 7, true, 4, 1),
        ] {
            let spec = pair(height, width, native);
            assert_eq!(spec.block_rows(), rows, "{height}x{width}, native {native}");
            let lengths = spec.lengths();
            assert_eq!(lengths.rows, blocks, "{height}x{width}, native {native}");
            assert_eq!(lengths.scratch, rows * width * 8);
        }
    }
}
