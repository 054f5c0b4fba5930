//! A separable pair fused into one kernel: a first convolution (depthwise,
//! or `1xk`) with its per-channel epilogue, whose output feeds only a second
//! convolution (a pointwise `1x1`, or `kx1`) with its epilogue, residual add
//! included. MobileNet's block (depthwise + pointwise) and the lecture's
//! spatially separable convolution (`1xk` + `kx1`) are the two pairs the
//! plan marks (`plan::Step::keeps`).
//!
//! The intermediate tensor never leaves cache: the kernel computes the rows
//! of the intermediate that the next output rows read and it has not
//! computed yet into a ring in `scratch`, then runs the second convolution's
//! code on the ring. Each intermediate row is computed once per call (a
//! thread's part of the rows; rows at the seams of two parts are computed by
//! both). Both halves are the families' own code, the `emit` of
//! [`super::depthwise`] or the `emit_rows` of [`super::conv`], given
//! pointers that make the ring look like the tensor. Two ways, by the second
//! convolution:
//!
//! - **Blocks of rows** (`Blocks`), where the second is a `kx1` (or `1x1`)
//!   convolution of stride 1, the two pairs the plan marks in the networks
//!   we run. The kernel's rows are blocks of output rows, as many as make
//!   their pixels whole register tiles (3 rows of 112 pixels are 56 tiles of
//!   6; one row is 18 and a ragged tile of 4). The ring holds the block's
//!   intermediate rows and the `window - 1` after them (`window` = the
//!   dilated kernel height) in order, padding rows zeroed, so it is one run
//!   of pixels; the second convolution is then one row of a `1xk`
//!   convolution over it, its taps whole rows of pixels apart, with no
//!   padding and no ragged tile but the block's last. The rows two blocks
//!   share are moved to the front of the ring, not recomputed.
//!
//!   **Small images run apart**: where the ring of every row fits
//!   [`SMALL_IMAGE`], the second half's weights outweigh that ring
//!   (MobileNet's 7x7x1024 pair: 4 MB of weights, 200 KB of intermediate)
//!   and the first half is cheap beside the second (`CHEAP` times fewer
//!   MACs), there is no pair ([`SeparableSpec::new`]): blocks of rows
//!   would read the weights once per block (four times at 7x7 with tiles
//!   of 14), and the two halves apart are a convolution whose rows are
//!   blocks of output channels over every pixel
//!   ([`ConvSpec::rows_are_blocks`]), which threads share out, after a
//!   first half that threads split by rows. The pair used to run such an
//!   image whole, every call computing all the intermediate and then its
//!   blocks of output channels: on one thread level with the halves apart
//!   (MobileNetV1's 14x14x512 pairs 0.64-0.67 ms against 0.65-0.68,
//!   Emerald Rapids Xeon, AVX-512), on two threads slower, each thread
//!   recomputing the whole first half (0.37-0.40 against 0.36; the net 4.57
//!   against 4.31 ms).
//! - **Row by row** otherwise (a strided or depthwise second half). Output row
//!   `oy` reads the `window` rows `oy * stride - pad ..`, clipped to the
//!   intermediate. The ring holds `window` rows, row `r` in slot
//!   `r % window`, and each row is stored twice, in slot `s` and
//!   `s + window`, so that any `window` consecutive rows are contiguous: the
//!   second convolution reads them at a fixed row stride, as it reads a
//!   tensor.
//!
//! Either way the first convolution writes row `r` through an `output`
//! pointer that is `r` rows before its slot, and the second reads through
//! an `input` pointer at the slot of its first row (row by row: that many
//! rows before it). Neither pointer is dereferenced outside the ring: the
//! families address only the rows `[begin, end)` they are given and the taps
//! inside.
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
//! are all written by earlier blocks (the first convolution's, the copy's
//! and the zeroing's), and with `opt_level = none` no pass moves a load
//! across blocks.

use super::conv::ConvSpec;
use super::depthwise::DepthwiseSpec;
use super::{clamp, copy_floats, for_range, int, Args, Epilogue, Lengths};
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

    /// Multiply-adds over the whole output.
    fn macs(&self) -> usize {
        let [h, w, k] = self.output();
        let (per_output, kernel) = match self {
            Half::Depthwise(spec) => (1, spec.kernel),
            Half::Conv(spec) => (spec.input[2] / spec.groups, spec.kernel),
        };
        h * w * k * per_output * kernel[0] * kernel[1]
    }

    fn emit(&self, b: &mut FunctionBuilder, a: &Args) {
        match self {
            Half::Depthwise(spec) => super::depthwise::emit(spec, b, a),
            Half::Conv(spec) => super::conv::emit_ring_rows(spec, b, a),
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
    /// output, the first's epilogue reads a shortcut, or a row of the second
    /// would be packed unlike the second itself: the second half runs as a
    /// `1xk` convolution over a run of its rows, and on a one-pixel-wide image
    /// a `1x1` second half's single row is a one-pixel GEMV, which packs its
    /// weights in wider blocks ([`ConvSpec::block`]), or a `1xk` first half
    /// with padded columns calls a native tile: its padded border columns
    /// are then one-pixel tile calls on every row (`conv::emit_ring_rows`),
    /// each bound by the FMA latency, where the kernel on its own runs them
    /// down the column in full tiles. Such a pair runs as two kernels
    /// (measured on 28x28x192, 1x3 to 128 then 3x1, one thread, AVX-512:
    /// 0.753 ms fused, 0.678 ms apart; unpadded, 0.630 and 0.624).
    pub fn new(first: Half, second: Half) -> Option<SeparableSpec> {
        let no_one_pixel_calls = match &first {
            Half::Conv(conv) => conv.pad[1] == 0 || conv.native.is_none(),
            Half::Depthwise(_) => true,
        };
        let packs_alike = match &second {
            Half::Conv(conv) if conv.input[1] == 1 => {
                let one_row = Blocks { conv, rows: 1 }.flat(1);
                one_row.block() == conv.block()
            }
            Half::Conv(_) | Half::Depthwise(_) => true,
        };
        let spec = SeparableSpec { first, second };
        (spec.first.output() == spec.second.input()
            && !spec.first.epilogue().contains(&Epilogue::Add)
            && packs_alike
            && no_one_pixel_calls
            && !spec.runs_apart())
        .then_some(spec)
    }

    /// Whether the halves run apart on a small image (module doc): the
    /// second a `kx1` convolution of stride 1 whose ring over every row fits
    /// [`SMALL_IMAGE`] and whose weights outweigh it, the first `CHEAP`
    /// beside it.
    fn runs_apart(&self) -> bool {
        let Half::Conv(conv) = &self.second else {
            return false;
        };
        let height = conv.output[0];
        let whole = Blocks { conv, rows: height };
        self.blocks_fit()
            && whole.ring_rows() * self.row_len() <= SMALL_IMAGE
            && whole.flat(height).rows_are_blocks()
            && self.first.macs() * CHEAP <= self.second.macs()
    }

    /// Whether the second half is a `kx1` convolution of stride 1 (a
    /// pointwise `1x1` one included), which runs over blocks of rows.
    fn blocks_fit(&self) -> bool {
        matches!(&self.second, Half::Conv(conv) if conv.kernel[1] == 1 && conv.stride == [1, 1] && conv.pad[1] == 0)
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

    /// The second half over whole blocks of rows, if it is a `kx1`
    /// convolution of stride 1 (a pointwise `1x1` one included): then its
    /// output pixel `(y, x)` reads intermediate pixels `(y - pad + t d, x)`,
    /// which in a block of consecutive rows, padding rows zeroed, are the
    /// block's pixels shifted by `t d` whole rows. A block is then one row of
    /// a `1xk` convolution dilated by `d` rows' worth of pixels, with no
    /// padding ([`Blocks::flat`]): one run of pixels, tiled without a ragged
    /// tile at every row's end.
    fn blocks(&self) -> Option<Blocks<'_>> {
        let Half::Conv(conv) = &self.second else {
            return None;
        };
        self.blocks_fit().then(|| {
            let [height, width, _] = conv.output;
            // Rows per block: the fewest whose pixels fill whole tiles
            // (112 pixels a row are 17 tiles of 6 and 2 of 5, `TileSplit::Even`;
            // 3 rows are 56 tiles of 6), but no more than the tensor has.
            let tile = conv.tile();
            let rows = (tile / gcd(width, tile)).min(height);
            Blocks { conv, rows }
        })
    }

    /// Output rows per block of rows (the kernel's rows are such blocks, the
    /// last one possibly shorter).
    pub fn block_rows(&self) -> usize {
        self.blocks().map_or(1, |blocks| blocks.rows)
    }

    /// The buffer lengths of the kernel's safety contract.
    pub fn lengths(&self) -> Lengths {
        let (first, second) = (self.first.lengths(), self.second.lengths());
        let (scratch, rows) = match self.blocks() {
            Some(blocks) => (blocks.ring_rows() * self.row_len(), blocks.count()),
            None => (self.ring_rows() * self.row_len(), self.second.output()[0]),
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

/// A `kx1` second half run over blocks of `rows` output rows: the kernel's
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

    /// Intermediate rows one output row reads: the dilated kernel height.
    fn window(&self) -> usize {
        (self.conv.kernel[0] - 1) * self.conv.dilation[0] + 1
    }

    /// Intermediate rows a block reads, consecutive in the ring.
    fn ring_rows(&self) -> usize {
        self.rows + self.window() - 1
    }

    /// The second half over a block of `rows` output rows, as one row of
    /// the ring's pixels: kernel `1xk`, each tap `d` rows of pixels after the
    /// last. Its packed weights and vectors are the `kx1` convolution's: the
    /// packing's tap order `ky kx` is the same, and the rest depends only on
    /// channels, groups and tile width.
    fn flat(&self, rows: usize) -> ConvSpec {
        let [_, w, c] = self.conv.input;
        let [_, _, k] = self.conv.output;
        ConvSpec {
            input: [1, (rows + self.window() - 1) * w, c],
            output: [1, rows * w, k],
            kernel: [1, self.conv.kernel[0]],
            dilation: [1, self.conv.dilation[0] * w],
            pad: [0, 0],
            ..self.conv.clone()
        }
    }
}

/// `f32`s of a ring over every row up to which a pair whose second half's
/// weights outweigh it runs apart (see the module doc, "small images run
/// apart"): 512 KB, a quarter of the 2 MB L2 per core of the Xeon measured.
pub const SMALL_IMAGE: usize = 1 << 17;

/// How many times fewer MACs than the second half the first must have for
/// the halves of a small image to run apart ([`SeparableSpec::new`]): a
/// 3x3 depthwise half is cheap from 72 output channels of the pointwise
/// one; a `1x1` first half, a GEMM of its own, rarely is.
const CHEAP: usize = 8;

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Emits the kernel body for rows `[begin, end)`: output rows, or blocks of
/// them for a `kx1` second half.
pub(crate) fn emit(spec: &SeparableSpec, b: &mut FunctionBuilder, a: &Args) {
    match spec.blocks() {
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

/// A `kx1` pair, block by block. Ring slot `i` holds intermediate row
/// `top + i`, `top` the block's first output row less the padding; the
/// rows the block shares with the previous one in this call are moved to
/// the front, the first half computes the others (each row once per call,
/// as in [`emit_rows`]), rows outside the intermediate are zeroed (the
/// second's padding), then the second half runs once over the block.
fn emit_blocks(spec: &SeparableSpec, blocks: &Blocks, b: &mut FunctionBuilder, a: &Args) {
    let (weights, params) = second_buffers(spec, b, a);
    let height = blocks.height() as i64;
    let per_block = blocks.rows as i64;
    let full = height / per_block;
    let ring = blocks.ring_rows() as i64;
    let shared = ring - per_block;
    let mid_rows = spec.second.input()[0] as i64;
    let pad = blocks.conv.pad[0] as i64;
    let row_len = spec.row_len();
    let row_bytes = (row_len * 4) as i64;
    // The shortcut is a tensor of its own; the output may be a channel slice
    // of a wider one, its pixels further apart.
    let extra_row_bytes = (blocks.conv.output[1] * blocks.conv.output[2] * 4) as i64;
    let out_row_bytes = blocks.conv.output[1] as i64 * blocks.conv.layout().pixel_bytes();
    let count = blocks.count() as i64;
    let (lo, hi) = (clamp(b, a.begin, 0, count), clamp(b, a.end, 0, count));
    for_range(b, lo, hi, 1, |b, block| {
        let first_row = b.ins().imul_imm_s(block, per_block);
        let top = b.ins().iadd_imm_s(first_row, -pad);
        let bottom = b.ins().iadd_imm_s(top, ring);
        // Row `r` of the intermediate at `rows + r * row_bytes` (never
        // dereferenced outside the ring).
        let back = b.ins().imul_imm_s(top, row_bytes);
        let rows = b.ins().isub(a.scratch, back);
        let from = if shared > 0 {
            // The block's first `shared` rows are the previous block's last:
            // moved forward (an ascending copy to a lower address, safe when
            // the two overlap). In the call's first block they are garbage,
            // then overwritten below.
            let last = b.ins().iadd_imm_s(a.scratch, per_block * row_bytes);
            copy_floats(b, Some(last), a.scratch, shared as usize * row_len);
            let kept = b.ins().iadd_imm_s(top, shared);
            let first = b.ins().icmp(IntCC::Equal, block, lo);
            b.ins().select(first, top, kept)
        } else {
            top
        };
        let zero_rows = |b: &mut FunctionBuilder, from: Value, to: Value| {
            for_range(b, from, to, 1, |b, r| {
                let offset = b.ins().imul_imm_s(r, row_bytes);
                let at = b.ins().iadd(rows, offset);
                copy_floats(b, None, at, row_len);
            });
        };
        if pad > 0 {
            let zero = int(b, 0);
            let above = b.ins().smin(bottom, zero);
            zero_rows(b, from, above);
        }
        // The first half clamps its rows to the intermediate's.
        spec.first.emit(
            b,
            &Args {
                output: rows,
                begin: from,
                end: bottom,
                ..*a
            },
        );
        // Padding rows below the intermediate, if the last block reaches
        // them (a padded `1x1` second half does too, with a window of one).
        if (blocks.count() as i64 - 1) * per_block - pad + ring > mid_rows {
            let end = int(b, mid_rows);
            let below = b.ins().smax(from, end);
            zero_rows(b, below, bottom);
        }
        let extra_offset = b.ins().imul_imm_s(first_row, extra_row_bytes);
        let offset = b.ins().imul_imm_s(first_row, out_row_bytes);
        let args = Args {
            input: a.scratch,
            weights,
            params,
            extra: b.ins().iadd(a.extra, extra_offset),
            output: b.ins().iadd(a.output, offset),
            begin: int(b, 0),
            end: int(b, 1),
            ..*a
        };
        let rest = blocks.height() % blocks.rows;
        if rest == 0 {
            super::conv::emit_rows(&blocks.flat(blocks.rows), b, &args);
        } else {
            // Every block but the last is whole.
            let whole = b.ins().icmp_imm_s(IntCC::SignedLessThan, block, full);
            let (then, other, join) = (b.create_block(), b.create_block(), b.create_block());
            b.ins().brif(whole, then, &[], other, &[]);
            b.switch_to_block(then);
            super::conv::emit_rows(&blocks.flat(blocks.rows), b, &args);
            b.ins().jump(join, &[]);
            b.switch_to_block(other);
            super::conv::emit_rows(&blocks.flat(rest), b, &args);
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
                copy_floats(b, Some(slot), twin, spec.row_len());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::Isa;

    /// A 3x3 depthwise convolution on 8 channels, then a `kernel x 1`
    /// convolution to 16 channels with `same` padding.
    fn halves(height: usize, width: usize, kernel: usize, native: Option<Isa>) -> (Half, Half) {
        let depthwise = DepthwiseSpec {
            channels: 8,
            input: [height, width],
            output: [height, width],
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [1, 1],
            epilogue: Vec::new(),
            slice: None,
            native,
        };
        let second = ConvSpec {
            input: [height, width, 8],
            output: [height, width, 16],
            kernel: [kernel, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [kernel / 2, 0],
            groups: 1,
            epilogue: Vec::new(),
            native,
            slice: None,
        };
        (Half::Depthwise(depthwise), Half::Conv(second))
    }

    /// [`halves`] as a pair.
    fn pair(height: usize, width: usize, kernel: usize, native: Option<Isa>) -> SeparableSpec {
        let (first, second) = halves(height, width, kernel, native);
        SeparableSpec::new(first, second).unwrap()
    }

    #[test]
    fn blocks_fill_whole_tiles() {
        // By hand, with tiles of 6 (native AVX2) and 4 pixels: 112 = 18 x 6 + 4, so
        // 3 rows (336 = 56 x 6); 7 needs 6 rows (42), or 4 (28); 14 needs 3 or 2.
        // The kernel's rows are blocks, the last one shorter; scratch is one
        // block and the `kernel - 1` rows a `kx1` second half reads beyond it.
        for (height, width, kernel, native, rows, blocks) in [
            (112, 112, 1, Some(Isa::Avx2), 3, 38),
            (112, 112, 1, None, 1, 112),
            (7, 7, 1, Some(Isa::Avx2), 6, 2),
            (7, 7, 1, None, 4, 2),
            (14, 14, 1, Some(Isa::Avx2), 3, 5),
            (14, 14, 3, None, 2, 7),
            (4, 7, 1, Some(Isa::Avx2), 4, 1),
            (28, 28, 3, Some(Isa::Avx2), 3, 10),
        ] {
            let spec = pair(height, width, kernel, native);
            let what = format!("{height}x{width}, {kernel}x1, native {native:?}");
            assert_eq!(spec.block_rows(), rows, "{what}");
            let lengths = spec.lengths();
            assert_eq!(lengths.rows, blocks, "{what}");
            assert_eq!(lengths.scratch, (rows + kernel - 1) * width * 8, "{what}");
        }
    }

    /// On a one-pixel-wide image, a `1x1` second half's row is one pixel, a
    /// GEMV packed in blocks of 64 on a native ISA where the second half packs
    /// 16: no pair (it ran on the wrong packing; `tests/it/jit.rs`'s
    /// `concat_in_place_equals_reference` found it on a 7x1 image). Two
    /// pixels a row, or a `3x1` second half, keep the pair.
    #[test]
    fn a_pair_whose_rows_would_pack_unlike_it_is_refused() {
        let make = |width, kernel, native| {
            let (first, second) = halves(7, width, kernel, native);
            SeparableSpec::new(first, second)
        };
        let native = Isa::best().filter(|isa| isa.gemv().is_some());
        if native.is_some() {
            assert_eq!(make(1, 1, native), None);
        }
        assert!(make(1, 1, None).is_some());
        assert!(make(2, 1, native).is_some());
        assert!(make(1, 3, native).is_some());
    }

    /// A `1x3` first half with padded columns on a native tile would call it
    /// pixel by pixel at the borders of every row: no pair there; unpadded,
    /// or on Cranelift's tile, a pair.
    #[test]
    fn a_padded_row_first_half_on_a_native_tile_is_refused() {
        let make = |pad: usize, native| {
            let conv = |input: [usize; 3], kernel: [usize; 2], pad: [usize; 2]| {
                let output = [
                    input[0] + 2 * pad[0] + 1 - kernel[0],
                    input[1] + 2 * pad[1] + 1 - kernel[1],
                    16,
                ];
                ConvSpec {
                    input,
                    output,
                    kernel,
                    stride: [1, 1],
                    dilation: [1, 1],
                    pad,
                    groups: 1,
                    epilogue: Vec::new(),
                    native,
                    slice: None,
                }
            };
            let first = conv([7, 9, 8], [1, 3], [0, pad]);
            let second = conv(first.output, [3, 1], [1, 0]);
            SeparableSpec::new(Half::Conv(first), Half::Conv(second))
        };
        for isa in [Isa::Avx2, Isa::Avx512] {
            assert_eq!(make(1, Some(isa)), None, "{isa}");
            assert!(make(0, Some(isa)).is_some(), "{isa}");
        }
        assert!(make(1, None).is_some());
        assert!(make(0, None).is_some());
    }

    #[test]
    fn small_images_run_apart() {
        // `halves` with `k` output channels and `c` channels between them.
        let make = |height, width, kernel, native, c, k| {
            let (mut first, mut second) = halves(height, width, kernel, native);
            let (Half::Depthwise(dw), Half::Conv(pw)) = (&mut first, &mut second) else {
                unreachable!("the halves are depthwise then pointwise")
            };
            dw.channels = c;
            pw.input[2] = c;
            pw.output[2] = k;
            SeparableSpec::new(first, second)
        };
        // By hand, 8 channels to 80: the second half's packed weights are
        // 8 x 80 x kernel `f32`s, its MACs 8 x 80 x kernel a pixel against
        // the depthwise half's 8 x 9, at least 8 times more; the ring of
        // the whole image is (height + kernel - 1) x width x 8. 2x3, 1x1:
        // ring 48 < 640, apart. 3x3, 3x1: ring 120 < 1920, apart.
        for (height, width, kernel, native) in
            [(2, 3, 1, Some(Isa::Avx2)), (2, 3, 1, None), (3, 3, 3, None)]
        {
            let what = format!("{height}x{width}, {kernel}x1, native {native:?}");
            assert_eq!(make(height, width, kernel, native, 8, 80), None, "{what}");
        }
        // 9x9: ring 648, more than the weights. 16 channels out: the
        // depthwise half's 72 MACs a pixel are more than an eighth of the 128.
        assert!(make(9, 9, 1, None, 8, 80).is_some());
        assert!(make(2, 3, 1, None, 8, 16).is_some());
        // MobileNet's last pair, 7x7x1024 -> 1024 on AVX-512: 200 KB of ring.
        assert_eq!(make(7, 7, 1, Some(Isa::Avx512), 1024, 1024), None);
        // Its 14x14x512 pairs: a ring of 14 x 14 x 512 = 100,352 <= 131,072.
        assert_eq!(make(14, 14, 1, Some(Isa::Avx512), 512, 512), None);
        // Its 28x28x256 pairs: 200,704, a pair by blocks of rows.
        assert!(make(28, 28, 1, Some(Isa::Avx512), 256, 256).is_some());
    }
}
