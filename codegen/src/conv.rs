//! Direct convolution on HWC data, with its epilogue fused: bias (with any bn
//! folded in), per-channel affine (a bn that could not be folded), every
//! activation, and a residual's add, in the order the plan gives them. A
//! 1x1 convolution and a dense layer (a 1x1 convolution of a 1x1 input) are
//! the same kernel, which is then a packed matrix-vector product: with a
//! native ISA ([`ConvSpec::gemv`]), one call of the native GEMV
//! ([`native_gemv`]) per block of [`native_gemv::WIDTH`] output channels,
//! its sums then through the generated epilogue.
//!
//! Register blocking: a tile of output pixels of one row by a block of output
//! channels; a pointwise convolution's rows are runs of pixels spanning image
//! rows ([`ConvSpec::over_pixels`]), so its tiles run on across them. Pure
//! Cranelift: up to [`TILE`] pixels by [`BLOCK`] channels in
//! `2 x TILE` `f32x4` accumulators. With the native tile
//! ([`ConvSpec::native`]): up to [`Isa::rows`] pixels by [`native::WIDTH`]
//! channels, accumulated by the precompiled AVX2 or AVX-512 micro-kernel
//! into a stack slot; on AVX-512, two adjacent full blocks of a group take
//! one call of the wide tile ([`native::WIDE_ROWS`] pixels by 32 channels,
//! [`Isa::wide_tiles`]), an odd last block the 16-column one. Where
//! `native_epilogue::Use` says (by default a 1x1 kernel, a short reduction
//! such as a stem's over RGB, a transcendental activation, or weights that
//! stream from memory over short rows, which only the fused tiles
//! prefetch) each tile is
//! called in its fused form ([`Isa::fused_tiles`]): the native epilogue of the same ISA
//! ([`super::native_epilogue`]) applies the fused epilogue to the sums in
//! registers and stores the outputs, with no slot in between; elsewhere the
//! tile writes the slot and the generated epilogue reads it. Weights are packed per
//! group and block of output channels as `[g][block][ky][kx][ci][width]`
//! (zero-padded past the group's channels), so each step loads the block's
//! weights for one input channel and one splatted input per pixel.
//!
//! Padding is not materialised: output rows and columns are split at
//! compile time into classes by which kernel taps fall inside the input, and
//! each class gets code with exactly those taps, so no load ever leaves the
//! input and no branch is taken per tap. The exception is a small image
//! ([`ConvSpec::pads_input`]), whose classes would cut every row into short
//! tiles: its kernel copies the input, zero-padded, into its scratch and
//! runs [`ConvSpec::padded`] on the copy. A zero term adds an exact zero, so
//! each output is still the sum of the taps inside the input, in order (a
//! zero's sign aside, or a NaN where an infinite weight meets the padding,
//! as in PyTorch's zero padding).
//!
//! A native tile's pixels need not be along a row: they are any pixels at
//! one stride in the input and one in the output (the tile's `a_stride`).
//! A class of columns narrower than its class of rows is tall (a padded
//! border column: one pixel wide, the image high), so with a native tile
//! it runs down its columns instead, a tile being up to [`Isa::rows`] pixels
//! one below the other, rather than one call per row of a one-pixel tile,
//! which waits on its accumulators' latency (`tiled_down`). Measured on one
//! thread, AVX-512, CPU time per pass on a loaded machine: the 7x7x512 3x3
//! conv 2.7-3.2 to 2.0-2.6 ms, 14x14x256 1.96 to 1.57, 28x28x128 1.8 to 1.56,
//! 56x56x128 (rows split by threads) 7.3 to 6.8. Each output is the same
//! sum in the same order either way (`codegen/tests/it/conv_order.rs`).

use super::epilogue_lengths;
use super::native::{self, FusedTileFn, Isa, Tap, TileFn, WideTileFn};
use super::native_epilogue::{self as native_epilogue, Sink};
use super::native_gemv::{self, GemvFn};
use super::vector;
use super::{
    apply_epilogue, clamp, copy_floats, for_range, for_tiles, int, tap_classes, Args, ChannelSlice,
    Epilogue, Epilogued, Lengths, OutputLayout, TileSplit,
};
use cnnjit_ir::{Conv2d, Dense, Shape};
use cranelift_codegen::ir::{
    types, InstBuilder, SigRef, StackSlot, StackSlotData, StackSlotKind, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::mem::offset_of;

/// The widest output row of a kernel that [`ConvSpec::pads_input`]: ResNet's
/// and GoogLeNet's 7x7 layers. The 7x7x512 3x3 conv alone, one thread,
/// Xeon: 1.82-1.88 ms on the padded input's classes, 1.54-1.59 with no
/// padding on a 9x9 input (its 441 terms a pixel against 361).
pub const PADDED_ROW: usize = 7;
/// Output channels per register block of the pure Cranelift tile (two `f32x4`).
pub const BLOCK: usize = 8;
/// Input channels per iteration of the channel loop.
const UNROLL: usize = 4;
/// Output pixels per register tile: 8 accumulators, two weight vectors and a
/// broadcast input. Measured on the 56x56x128 3x3 conv with `fma`: 4 pixels
/// 0.78 of the 128-bit peak, 3 pixels 0.71, 5 pixels 0.75, 6 pixels 0.67.
pub const TILE: usize = 4;
/// Full tiles of pixels a kernel row of a pointwise convolution holds at
/// least where image rows are merged into runs ([`ConvSpec::over_pixels`]):
/// enough that the ragged tile at a run's end is at most a fifth of its
/// tiles, few enough that a 14x14 image still has rows for two threads.
pub const RUN_TILES: usize = 4;

/// Everything a convolution kernel is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec {
    /// Input height, width, channels.
    pub input: [usize; 3],
    /// Output height, width, channels.
    pub output: [usize; 3],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Zero padding above and on the left (below and right follow from the output size).
    pub pad: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// The fused epilogue, in order.
    pub epilogue: Vec<Epilogue>,
    /// The ISA of the native micro-kernel ([`native`]) that computes the
    /// innermost tile, if any; any ISA sets the packing's block width to
    /// [`native::WIDTH`]. Only where [`Isa::detected`]; elsewhere (a spec
    /// built by hand) the Cranelift tile serves the native packing too.
    pub native: Option<Isa>,
    /// The channel slice of a wider tensor the output is written into, if
    /// not a tensor of its own ([`super::Kernel::sliced`]).
    pub slice: Option<ChannelSlice>,
}

impl ConvSpec {
    /// The spec of a `conv` or `dwconv` from `input` to `output`; its tile is
    /// the native one of `native` if the host has it, else Cranelift's.
    pub fn of_conv(
        op: &Conv2d,
        input: Shape,
        output: Shape,
        epilogue: Vec<Epilogue>,
        native: Option<Isa>,
    ) -> ConvSpec {
        let dims = |s: Shape| {
            let d = s.dims();
            match d.as_slice() {
                [h, w, c] => [*h as usize, *w as usize, *c as usize],
                _ => [1, 1, s.len() as usize],
            }
        };
        ConvSpec {
            input: dims(input),
            output: dims(output),
            kernel: [op.kernel.h as usize, op.kernel.w as usize],
            stride: [op.stride.h as usize, op.stride.w as usize],
            dilation: [op.dilation.h as usize, op.dilation.w as usize],
            pad: [op.padding.top as usize, op.padding.left as usize],
            groups: op.groups as usize,
            epilogue,
            native: native.filter(|isa| isa.detected()),
            slice: None,
        }
    }

    /// The spec of a `dense` on `inputs` features: a 1x1 convolution of a 1x1
    /// input, a matrix-vector product ([`ConvSpec::gemv`]) on the native GEMV
    /// of `native` if the host has it, else on Cranelift's tile.
    pub fn of_dense(
        op: &Dense,
        inputs: usize,
        epilogue: Vec<Epilogue>,
        native: Option<Isa>,
    ) -> ConvSpec {
        ConvSpec {
            input: [1, 1, inputs],
            output: [1, 1, op.out_features as usize],
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0, 0],
            groups: 1,
            epilogue,
            native: native.filter(|isa| isa.detected()),
            slice: None,
        }
    }

    /// The same convolution over runs of pixels that span image rows, if it
    /// is pointwise (1x1, stride 1, unpadded); any other spec unchanged.
    ///
    /// Such a convolution over `[H, W]` is a GEMM of `H W` pixels: output
    /// pixel `p` reads input pixel `p` alone, and the output (a channel slice
    /// included, `OutputLayout`), the residual shortcut and the bias are
    /// addressed per pixel or per channel, never per row, so it computes
    /// exactly what the convolution over `[H / g, g W]` computes, `g`
    /// dividing `H`: each kernel row is then a run of `g W` pixels tiled
    /// without a ragged tile at every image row's end, and every output is
    /// the same sum in the same order, bitwise. The packed weights and
    /// vectors do not depend on `H` and `W`.
    ///
    /// Which `g`: where the kernel's rows are blocks of output channels
    /// ([`ConvSpec::rows_are_blocks`], weights outweigh the input) the
    /// whole image, one run of `H W` pixels (a 7x7 layer: 49 pixels, tiles
    /// of 14 + 14 + 14 + 7 on AVX-512 rather than seven of 7, each block's
    /// weights read 4 times rather than 7), threads splitting the blocks;
    /// else the fewest image rows whose pixels fill [`RUN_TILES`] tiles, `H`
    /// at most, so the kernel's rows, which threads split, stay image rows
    /// on all but narrow images (28 pixels a row on AVX-512: runs of 56).
    /// This is the only place that decides it; lowering applies it to every
    /// convolution that runs as a kernel of its own (a separable pair's
    /// halves keep their rows, which its ring defines).
    pub fn over_pixels(self) -> ConvSpec {
        let [h, w, c] = self.input;
        let [ho, wo, k] = self.output;
        let pointwise = self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && [ho, wo] == [h, w];
        if !pointwise || h * w == 0 {
            return self;
        }
        let rows = if self.rows_are_blocks() {
            h
        } else {
            let run = RUN_TILES * self.tile();
            (1..=h).find(|g| h % g == 0 && g * w >= run).unwrap_or(h)
        };
        ConvSpec {
            input: [h / rows, rows * w, c],
            output: [h / rows, rows * w, k],
            ..self
        }
    }

    /// Passes the kernel makes over its packed weights, each a read from
    /// memory unless they stay in cache: one where the weights stay still
    /// (they outweigh the input, and the loop over rows runs inside each
    /// block), else one per kernel row.
    pub fn weight_passes(&self) -> usize {
        if self.weights_stationary() {
            1
        } else {
            self.output[0]
        }
    }

    /// Whether the spec is a matrix-vector product: one output pixel from a
    /// one-pixel input through a 1x1 kernel, ungrouped (a dense layer, a
    /// squeeze-excite 1x1 convolution). With a native ISA, its packing's
    /// block is [`native_gemv::WIDTH`] channels wide and the native GEMV
    /// computes it.
    pub fn gemv(&self) -> bool {
        let pixels = |[h, w, _]: [usize; 3]| h * w;
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.groups == 1
            && pixels(self.input) == 1
            && pixels(self.output) == 1
    }

    /// Whether the kernel's rows are blocks of output channels rather than
    /// output rows, each computing every output pixel of its channels: for a
    /// spec of one output pixel (a dense layer, a squeeze-excite 1x1
    /// convolution), whose single output row threads could not split, and
    /// for one whose packed weights outweigh its input (the kernel then keeps
    /// each block's weights in cache across the rows, "weights stationary"),
    /// so that threads share out the weights rather than each reading all of
    /// them, and balance on the many blocks rather than the few rows of the
    /// small images deep in a network (ResNet's 7x7: 7 rows, 32 blocks).
    /// Each block still computes its whole reduction, so the output does not
    /// depend on how the blocks are split.
    pub fn rows_are_blocks(&self) -> bool {
        self.groups == 1 && (self.output[0] * self.output[1] == 1 || self.weights_stationary())
    }

    fn in_per_group(&self) -> usize {
        self.input[2] / self.groups
    }

    fn out_per_group(&self) -> usize {
        self.output[2] / self.groups
    }

    /// Output channels per block: the width of the tile, or of the native GEMV.
    pub fn block(&self) -> usize {
        if self.native.is_some() && self.gemv() {
            native_gemv::WIDTH
        } else if self.native.is_some() {
            native::WIDTH
        } else {
            BLOCK
        }
    }

    /// Output pixels per full tile: the native ISA's rows (which the
    /// Cranelift tile serves too, on a host without it).
    pub(super) fn tile(&self) -> usize {
        self.native.map_or(TILE, Isa::rows)
    }

    /// The ISA whose GEMM tiles the kernel calls: the spec's, but none for a
    /// GEMV, which calls the native GEMV ([`ConvSpec::gemv`]) and never a tile.
    fn tile_isa(&self) -> Option<Isa> {
        self.native.filter(|_| !self.gemv())
    }

    /// The wide tiles, two blocks a call, where the spec's tile ISA has them
    /// and the host runs it.
    fn wide_tiles(&self) -> Option<&'static [WideTileFn]> {
        self.tile_isa().and_then(Isa::wide_tiles)
    }

    /// The widest tile's output pixels and channels: the wide tile's where
    /// a group has two blocks for it, else [`Self::tile`] by [`Self::block`].
    pub(super) fn widest_tile(&self) -> (usize, usize) {
        match self.wide_tiles() {
            Some(_) if self.out_per_group() >= 2 * native::WIDTH => {
                (native::WIDE_ROWS, 2 * native::WIDTH)
            }
            _ => (self.tile(), self.block()),
        }
    }

    /// Blocks of output channels per group.
    fn blocks(&self) -> usize {
        self.out_per_group().div_ceil(self.block())
    }

    /// Whether the kernel loops over output rows inside each block of output
    /// channels, so that each block's weights are read from memory once per
    /// call and stay in cache across the rows, rather than over blocks
    /// inside each row, which reads all the weights once per row and the
    /// input once. The larger of the two is the one kept still: ResNet-50's
    /// 7x7x512 3x3 conv has 9.4 MB of weights and 100 KB of input.
    pub(super) fn weights_stationary(&self) -> bool {
        let [h, w, c] = self.input;
        self.weights_len() > h * w * c
    }

    /// Whether its weights stay still over short output rows
    /// ([`native_epilogue::Tiles::streams_weights`]).
    pub(super) fn streams_weights(&self) -> bool {
        self.weights_stationary() && self.output[1] <= native_epilogue::STREAMING_ROW
    }

    /// Whether the kernel first copies its input, zero-padded, into its
    /// scratch and runs [`ConvSpec::padded`] on the copy: a padded
    /// convolution whose rows are blocks, whose output rows are at most
    /// [`PADDED_ROW`] pixels, on the native tile, over whole vectors of
    /// channels. On a small image the padding's classes of rows and columns
    /// cut every row into short tiles with few taps (7x7: a tile of 5 pixels
    /// and two of one); the copy makes each row one tile of every tap, at
    /// the price of the zero terms' multiply-adds.
    pub fn pads_input(&self) -> bool {
        self.pad != [0, 0]
            && self.tile_isa().is_some()
            && self.rows_are_blocks()
            && self.output[1] <= PADDED_ROW
            && self.input[2].is_multiple_of(4)
    }

    /// The spec that [`ConvSpec::pads_input`] runs on its copy: the input
    /// grown by the padding (up to the rows and columns the kernel reaches),
    /// and no padding.
    pub fn padded(&self) -> ConvSpec {
        let reach = |axis: usize| {
            (self.output[axis].max(1) - 1) * self.stride[axis]
                + (self.kernel[axis] - 1) * self.dilation[axis]
                + 1
        };
        ConvSpec {
            input: [reach(0), reach(1), self.input[2]],
            pad: [0, 0],
            ..self.clone()
        }
    }

    /// `f32`s of the packed weights.
    fn weights_len(&self) -> usize {
        self.vector_len() * self.kernel[0] * self.kernel[1] * self.in_per_group()
    }

    /// `f32`s in one packed per-channel vector.
    fn vector_len(&self) -> usize {
        self.groups * self.blocks() * self.block()
    }

    /// Where its output pixels lie.
    pub(super) fn layout(&self) -> OutputLayout {
        OutputLayout::new(self.slice, self.output[2])
    }

    /// The buffer lengths of the kernel's safety contract.
    pub fn lengths(&self) -> Lengths {
        let [h, w, c] = self.input;
        let [ho, wo, k] = self.output;
        let (params, extra) = epilogue_lengths(&self.epilogue, self.vector_len(), ho * wo * k);
        Lengths {
            input: h * w * c,
            weights: self.weights_len(),
            params,
            extra,
            output: self.layout().len(ho * wo),
            scratch: if self.pads_input() {
                self.padded().input.iter().product()
            } else {
                0
            },
            rows: if self.rows_are_blocks() {
                self.blocks()
            } else {
                ho
            },
        }
    }

    /// PyTorch's `[K, Cin/g, Fh, Fw]` weights, each output channel's times
    /// its `scale` if given, packed as `[g][block][ky][kx][ci][width]`: one
    /// [`ConvSpec::pack_block`] per block, in order.
    pub fn pack_weights(&self, weight: &[f32], scale: Option<&[f64]>) -> Vec<f32> {
        let mut packed = vec![0.0; self.lengths().weights];
        for (b, block) in packed.chunks_exact_mut(self.packed_block_len()).enumerate() {
            self.pack_block(weight, scale, b, block);
        }
        packed
    }

    /// Floats of one packed block (`[ky][kx][ci][width]`), the unit of
    /// [`ConvSpec::pack_block`]; at least 1, so that chunks of it are never
    /// empty (an empty layer has no block).
    pub fn packed_block_len(&self) -> usize {
        (self.kernel[0] * self.kernel[1] * self.in_per_group() * self.block()).max(1)
    }

    /// Writes packed block `b` (of `[g][block]`, in order) into `block`, its
    /// [`ConvSpec::packed_block_len`] floats, which hold zeros: the lanes
    /// past the group's channels are left as they are. Blocks are
    /// independent, so a caller may pack them on several threads.
    ///
    /// Written in order, so that the stores stream, each tap's `width` lanes
    /// gathered from the block's rows by index, with no `Option` tested per
    /// weight: 2.5x faster than the iterator chain it replaced (one core,
    /// 2026-12-06). Each weight is times its channel's factor in `f64`,
    /// rounded once: what [`super::fold`] computes.
    pub fn pack_block(&self, weight: &[f32], scale: Option<&[f64]>, b: usize, block: &mut [f32]) {
        let (cg, kg, [fh, fw]) = (self.in_per_group(), self.out_per_group(), self.kernel);
        let (taps, width, blocks) = (fh * fw, self.block(), self.blocks());
        let row = cg * taps;
        let (g, first) = (b / blocks, b % blocks * width);
        let lanes = width.min(kg - first);
        let k0 = g * kg + first;
        let rows = &weight[k0 * row..][..lanes * row];
        let scale = scale.map(|s| &s[k0..][..lanes]);
        for tap in 0..taps {
            for ci in 0..cg {
                let x = ci * taps + tap;
                let out = &mut block[(tap * cg + ci) * width..][..lanes];
                match scale {
                    None => {
                        for (lane, out) in out.iter_mut().enumerate() {
                            *out = rows[lane * row + x];
                        }
                    }
                    Some(scale) => {
                        for (lane, (out, s)) in out.iter_mut().zip(scale).enumerate() {
                            *out = (f64::from(rows[lane * row + x]) * s) as f32;
                        }
                    }
                }
            }
        }
    }

    /// A per-channel vector (`[K]`) packed as `[g][block][width]`, zero-padded.
    pub fn pack_vector(&self, v: &[f32]) -> Vec<f32> {
        let (kg, width) = (self.out_per_group(), self.block());
        let mut packed = vec![0.0; self.vector_len()];
        for g in 0..self.groups {
            for k in 0..kg {
                packed[(g * self.blocks() + k / width) * width + k % width] = v[g * kg + k];
            }
        }
        packed
    }
}

/// Byte offsets and sizes of the spec, as `i64`s.
struct Layout<'s> {
    spec: &'s ConvSpec,
    /// Bytes per input row (`W C 4`).
    in_row: i64,
    /// Where the output pixels lie.
    out: OutputLayout,
    /// Bytes per output row.
    out_row: i64,
    /// Bytes of one packed weight block (`Fh Fw Cg width 4`).
    weight_block: i64,
    /// Bytes of one packed per-channel vector.
    vector: i64,
    /// The native tile, if the spec asks for it.
    native: Option<Native>,
    /// Narrow classes of columns may run down their columns ([`tiled_down`]).
    down: bool,
}

/// What the generated code needs to call the native tile.
struct Native {
    /// The tile of each row count.
    tiles: &'static [TileFn],
    /// The tiles with the native epilogue fused, where the JIT's
    /// [`super::native_epilogue::Use`] asks for it and the host has it; else
    /// the generated epilogue reads the tile's slot.
    fused: Option<Fused>,
    /// [`TileFn`]'s signature, imported into the kernel.
    signature: SigRef,
    /// The wide tile of each row count and its signature, where the spec's
    /// ISA has one.
    wide: Option<(&'static [WideTileFn], SigRef)>,
    /// The taps of one call.
    taps: StackSlot,
    /// The tile one call writes: up to `rows x WIDTH` floats, or the wide
    /// tile's two blocks of `WIDE_ROWS x WIDTH`, [`WIDE_BLOCK`] bytes apart.
    tile: StackSlot,
}

/// What the generated code needs to call a tile with its epilogue fused.
struct Fused {
    /// The tile of each row count.
    tiles: &'static [FusedTileFn],
    /// The wide tile of each row count, where the spec's ISA has one.
    wide: Option<&'static [FusedTileFn]>,
    /// [`FusedTileFn`]'s signature, imported into the kernel.
    signature: SigRef,
    /// The call's [`Sink`]: its steps, their count and the vector stride
    /// stored once where the kernel starts, the rest before each call.
    sink: StackSlot,
    /// Where the weights end and the output starts, where the kernel's
    /// weights stay still ([`ConvSpec::weights_stationary`]): each tile then
    /// prefetches its share of the next blocks' weights ([`prefetch_ahead`]).
    /// Elsewhere the sink asks for no lines.
    ahead: Option<[Value; 2]>,
}

impl Fused {
    /// The fused tiles of `isa` for `spec`'s epilogue, or `None` where the
    /// host lacks them; stores the sink's fixed fields at the current point
    /// of `b`, which must come before every call.
    fn new(
        spec: &ConvSpec,
        b: &mut FunctionBuilder,
        a: &Args,
        isa: Isa,
        vector: i64,
    ) -> Option<Fused> {
        let ptr = b.func.dfg.value_type(a.input);
        let (tiles, wide) = isa.fused_tiles()?;
        let steps = native_epilogue::store_steps(b, ptr, &spec.epilogue)?;
        let bytes = size_of::<Sink>() as u32;
        let sink =
            b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 3));
        let steps = b.ins().stack_addr(ptr, steps, 0);
        b.ins()
            .stack_store(ptr, steps, sink, offset_of!(Sink, steps) as i32);
        let count = int(b, spec.epilogue.len() as i64);
        b.ins()
            .stack_store(ptr, count, sink, offset_of!(Sink, count) as i32);
        let vector = int(b, vector);
        b.ins()
            .stack_store(ptr, vector, sink, offset_of!(Sink, vector) as i32);
        let ahead = if spec.weights_stationary() {
            let end = b
                .ins()
                .iadd_imm_s(a.weights, (spec.weights_len() * 4) as i64);
            Some([end, spec.layout().start(b, a.output)])
        } else {
            let none = int(b, 0);
            for field in [offset_of!(Sink, prefetch), offset_of!(Sink, lines)] {
                b.ins().stack_store(ptr, none, sink, field as i32);
            }
            None
        };
        Some(Fused {
            tiles,
            wide,
            signature: native::import_fused_signature(b, ptr),
            sink,
            ahead,
        })
    }
}

/// Bytes from the wide tile's first block to its second in the stack slot.
const WIDE_BLOCK: usize = native::WIDE_ROWS * native::WIDTH * 4;

impl Native {
    fn new(
        spec: &ConvSpec,
        b: &mut FunctionBuilder,
        a: &Args,
        tiles: &'static [TileFn],
        vector: i64,
    ) -> Native {
        let ptr = b.func.dfg.value_type(a.input);
        let taps = spec.kernel[0] * spec.kernel[1] * size_of::<Tap>();
        let wide = spec.wide_tiles();
        let tile = (tiles.len() * native::WIDTH * 4).max(wide.map_or(0, |_| 2 * WIDE_BLOCK));
        let mut slot = |bytes: usize| {
            let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 5))
        };
        let (taps, tile) = (slot(taps), slot(tile));
        let fused = spec
            .native
            .filter(|_| {
                a.native_epilogue.native(native_epilogue::Tiles {
                    kernel: spec.kernel,
                    depth: spec.in_per_group(),
                    steps: &spec.epilogue,
                    streams_weights: spec.streams_weights(),
                })
            })
            .and_then(|isa| Fused::new(spec, b, a, isa, vector));
        Native {
            tiles,
            fused,
            taps,
            tile,
            signature: native::import_signature(b, ptr),
            wide: wide.map(|wide| (wide, native::import_wide_signature(b, ptr))),
        }
    }
}

/// Where one tile's code reads and writes.
#[derive(Clone, Copy)]
struct Tile {
    /// The first input pixel of the tile's first tap row, group applied (may
    /// point before the input: every load adds a tap offset that lands inside).
    input: Value,
    /// The tile's first output element of this block.
    output: Value,
    /// The same place in `extra`.
    extra: Value,
    /// This block's packed weights.
    weights: Value,
    /// This block's bias in `params`.
    params: Value,
    /// The output row of the tile's first pixel.
    row: Value,
    /// Pixels in the tile.
    pixels: usize,
    /// Bytes from one of the tile's pixels to the next in the input (the
    /// native tile's `a_stride`) and in the output and `extra`: the next
    /// pixel of a row, or of a column where the tile runs down one
    /// ([`down_columns`]).
    steps: Steps,
    /// Valid output channels in this block (1 to the block's width), or
    /// twice the width for a pair of full blocks on the wide tile.
    lanes: usize,
}

/// Bytes from one pixel of a tile to the next: in the input and in the
/// output (and `extra`, laid out alike).
#[derive(Clone, Copy)]
struct Steps {
    input: i64,
    output: i64,
    /// Down a column: the generated epilogue is then a loop over the
    /// tile's pixels rather than unrolled, which keeps the border tiles'
    /// code (and Cranelift's time) small.
    column: bool,
}

impl Steps {
    /// Along an output row.
    fn row(l: &Layout) -> Steps {
        Steps {
            input: (l.spec.stride[1] * l.spec.input[2] * 4) as i64,
            output: l.out.pixel_bytes(),
            column: false,
        }
    }

    /// Down an output column.
    fn column(l: &Layout) -> Steps {
        Steps {
            input: l.spec.stride[0] as i64 * l.in_row,
            output: l.out_row,
            column: true,
        }
    }
}

/// Emits the kernel body for rows `[begin, end)`: output rows, or blocks of
/// output channels, each over every output pixel ([`ConvSpec::rows_are_blocks`]).
pub(crate) fn emit(spec: &ConvSpec, b: &mut FunctionBuilder, a: &Args) {
    if !spec.rows_are_blocks() {
        return emit_rows(spec, b, a);
    }
    if let Some(gemv) = spec.native.filter(|_| spec.gemv()).and_then(Isa::gemv) {
        return emit_gemv(spec, b, a, gemv);
    }
    if spec.pads_input() {
        let padded = spec.padded();
        copy_padded(spec, padded.input, b, a);
        let args = Args {
            input: a.scratch,
            ..*a
        };
        return emit_blocks(&padded, b, &args);
    }
    emit_blocks(spec, b, a)
}

/// The body of a kernel whose rows are blocks of output channels, each
/// over every output pixel.
fn emit_blocks(spec: &ConvSpec, b: &mut FunctionBuilder, a: &Args) {
    let l = layout(spec, b, a);
    let blocks = spec.blocks() as i64;
    let range = [clamp(b, a.begin, 0, blocks), clamp(b, a.end, 0, blocks)];
    // Every output row, so each class of rows is known here: its narrow
    // classes of columns run down the columns ([`down_columns`]).
    for_blocks(spec, b, range, |b, block| {
        for (oy_lo, oy_hi, ky_lo, ky_hi) in row_classes(spec) {
            let ky = (ky_lo, ky_hi);
            let height = oy_hi - oy_lo;
            let (lo, hi) = (int(b, oy_lo as i64), int(b, oy_hi as i64));
            for_range(b, lo, hi, 1, |b, oy| {
                let base = block_row(&l, b, a, oy, block);
                columns(&l, b, &base, ky, height)
            });
            let base = block_row(&l, b, a, lo, block);
            let end = int(b, oy_hi as i64);
            down_columns(&l, b, &base, ky, (height, end));
        }
    });
}

/// Copies the input into the scratch as [`ConvSpec::padded`]'s input
/// (`[hp, wp, c]`): each of its rows the input's row moved by the padding,
/// zeros around it. Every call copies all of it (the rows are blocks, and
/// every block reads every pixel): 166 KB for ResNet's 7x7x512 layers,
/// against their 9.4 MB of weights.
fn copy_padded(spec: &ConvSpec, [hp, wp, _]: [usize; 3], b: &mut FunctionBuilder, a: &Args) {
    let [h, w, c] = spec.input;
    // The zero rows above and columns left of the input, then its rows and
    // columns inside the copy: those the kernel reaches.
    let [top, left] = [spec.pad[0].min(hp), spec.pad[1].min(wp)];
    let rows = h.min(hp - top);
    let columns = w.min(wp - left);
    let row_bytes = (wp * c * 4) as i64;
    copy_floats(b, None, a.scratch, top * wp * c);
    let (first, end) = (int(b, 0), int(b, rows as i64));
    for_range(b, first, end, 1, |b, y| {
        let to = b.ins().imul_imm_s(y, row_bytes);
        let to = b.ins().iadd_imm_s(to, top as i64 * row_bytes);
        let to = b.ins().iadd(a.scratch, to);
        let from = b.ins().imul_imm_s(y, (w * c * 4) as i64);
        let from = b.ins().iadd(a.input, from);
        copy_floats(b, None, to, left * c);
        let middle = b.ins().iadd_imm_s(to, (left * c * 4) as i64);
        copy_floats(b, Some(from), middle, columns * c);
        let right = b.ins().iadd_imm_s(middle, (columns * c * 4) as i64);
        copy_floats(b, None, right, (wp - left - columns) * c);
    });
    let below = b
        .ins()
        .iadd_imm_s(a.scratch, (top + rows) as i64 * row_bytes);
    copy_floats(b, None, below, (hp - top - rows) * wp * c);
}

/// Emits the native GEMV's kernel body for blocks `[begin, end)`: a call
/// per block into a stack slot of [`native_gemv::WIDTH`] floats, then the
/// epilogue on its valid lanes.
fn emit_gemv(spec: &ConvSpec, b: &mut FunctionBuilder, a: &Args, gemv: GemvFn) {
    let l = layout(spec, b, a);
    let ptr = b.func.dfg.value_type(a.input);
    let signature = native_gemv::import_signature(b, ptr);
    let bytes = (native_gemv::WIDTH * 4) as u32;
    let sums = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 6));
    let blocks = spec.blocks() as i64;
    let range = [clamp(b, a.begin, 0, blocks), clamp(b, a.end, 0, blocks)];
    for_blocks(spec, b, range, |b, block| {
        let oy = int(b, 0);
        let t = Tile {
            pixels: 1,
            ..block_row(&l, b, a, oy, block)
        };
        let callee = int(b, gemv as usize as i64);
        let depth = int(b, spec.input[2] as i64);
        let y = b.ins().stack_addr(ptr, sums, 0);
        b.ins()
            .call_indirect(signature, callee, &[t.input, t.weights, depth, y]);
        let acc: Vec<Value> = (0..t.lanes.div_ceil(4))
            .map(|v| b.ins().stack_load(ptr, types::F32X4, sums, (16 * v) as i32))
            .collect();
        epilogue(&l, b, &t, &[acc]);
    });
}

/// Emits code for output rows `[begin, end)`, every block of each, in the
/// order that keeps the larger of weights and input still
/// ([`ConvSpec::weights_stationary`]): the body of a kernel whose rows are
/// output rows, and what a fused separable pair runs for either half.
pub(crate) fn emit_rows(spec: &ConvSpec, b: &mut FunctionBuilder, a: &Args) {
    emit_rows_down(spec, b, a, true);
}

/// [`emit_rows`] for a half of a separable pair run row by row (its first
/// half fills the pair's ring): every class of columns along the rows, none
/// down its columns (measured: the 1x3 + 3x1 pair on 28x28x192 took 3.7 ms with its
/// border columns tiled down, 1.37 ms without).
pub(crate) fn emit_ring_rows(spec: &ConvSpec, b: &mut FunctionBuilder, a: &Args) {
    emit_rows_down(spec, b, a, false);
}

fn emit_rows_down(spec: &ConvSpec, b: &mut FunctionBuilder, a: &Args, down: bool) {
    let l = Layout {
        down,
        ..layout(spec, b, a)
    };
    let blocks = [int(b, 0), int(b, spec.blocks() as i64)];
    let columns = |b: &mut FunctionBuilder, oy, ky, block| {
        let base = block_row(&l, b, a, oy, block);
        columns(&l, b, &base, ky, 0)
    };
    let rows = [a.begin, a.end];
    if spec.weights_stationary() {
        for_blocks(spec, b, blocks, |b, block| {
            for_rows(spec, b, rows, |b, oy, ky| columns(b, oy, ky, block))
        });
    } else {
        // Each class of rows, then its narrow classes of columns down the
        // columns over the rows of the class in range.
        for (oy_lo, oy_hi, ky_lo, ky_hi) in row_classes(spec) {
            let ky = (ky_lo, ky_hi);
            let height = oy_hi - oy_lo;
            let lo = clamp(b, a.begin, oy_lo as i64, oy_hi as i64);
            let hi = clamp(b, a.end, oy_lo as i64, oy_hi as i64);
            for_range(b, lo, hi, 1, |b, oy| {
                for_blocks(spec, b, blocks, |b, block| {
                    let base = block_row(&l, b, a, oy, block);
                    self::columns(&l, b, &base, ky, height)
                })
            });
            for_blocks(spec, b, blocks, |b, block| {
                let base = block_row(&l, b, a, lo, block);
                down_columns(&l, b, &base, ky, (height, hi));
            });
        }
    }
}

fn layout<'s>(spec: &'s ConvSpec, b: &mut FunctionBuilder, a: &Args) -> Layout<'s> {
    let [_, w, c] = spec.input;
    let [_, wo, _] = spec.output;
    let out = spec.layout();
    // Where the host lacks the native tile (a spec built by hand), the
    // Cranelift tile serves the native packing too.
    let vector = (spec.vector_len() * 4) as i64;
    let native = spec
        .tile_isa()
        .and_then(Isa::tiles)
        .map(|tiles| Native::new(spec, b, a, tiles, vector));
    Layout {
        spec,
        in_row: (w * c * 4) as i64,
        out,
        out_row: wo as i64 * out.pixel_bytes(),
        weight_block: (spec.kernel[0] * spec.kernel[1] * spec.in_per_group() * spec.block() * 4)
            as i64,
        vector,
        native,
        down: true,
    }
}

/// One block of output channels: its group, its index in the group, and its
/// valid channels (1 to the block's width), or a pair of full blocks from
/// that index on (twice the width) for the wide tile.
#[derive(Clone, Copy)]
struct Block {
    group: Value,
    index: Value,
    lanes: usize,
}

/// `body(oy, (ky_lo, ky_hi))` for each output row in `[begin, end)`, with
/// the kernel rows that fall inside the input, one loop per class of rows.
fn for_rows(
    spec: &ConvSpec,
    b: &mut FunctionBuilder,
    [begin, end]: [Value; 2],
    mut body: impl FnMut(&mut FunctionBuilder, Value, (usize, usize)),
) {
    for (oy_lo, oy_hi, ky_lo, ky_hi) in row_classes(spec) {
        let lo = clamp(b, begin, oy_lo as i64, oy_hi as i64);
        let hi = clamp(b, end, oy_lo as i64, oy_hi as i64);
        for_range(b, lo, hi, 1, |b, oy| body(b, oy, (ky_lo, ky_hi)));
    }
}

/// The classes of output rows by the kernel rows inside the input:
/// `(oy_lo, oy_hi, ky_lo, ky_hi)`, as [`tap_classes`].
fn row_classes(spec: &ConvSpec) -> Vec<(usize, usize, usize, usize)> {
    tap_classes(
        spec.output[0],
        spec.input[0],
        spec.kernel[0],
        spec.stride[0],
        spec.dilation[0],
        spec.pad[0],
    )
}

/// The classes of output columns by the kernel columns inside the input:
/// `(ox_lo, ox_hi, kx_lo, kx_hi)`, as [`tap_classes`].
fn column_classes(spec: &ConvSpec) -> Vec<(usize, usize, usize, usize)> {
    tap_classes(
        spec.output[1],
        spec.input[1],
        spec.kernel[1],
        spec.stride[1],
        spec.dilation[1],
        spec.pad[1],
    )
}

/// `body(block)` for each group and its blocks of output channels in
/// `[first, end)` (`end` at most the blocks per group): a loop over the
/// full blocks (by pairs where the spec has the wide tile, then the odd one
/// left), then the partial one if the range reaches it.
fn for_blocks(
    spec: &ConvSpec,
    b: &mut FunctionBuilder,
    [first, end]: [Value; 2],
    mut body: impl FnMut(&mut FunctionBuilder, Block),
) {
    let width = spec.block();
    let full_blocks = spec.out_per_group() / width;
    let tail = spec.out_per_group() % width;
    let pairs = spec.wide_tiles().is_some() && full_blocks >= 2;
    let zero = int(b, 0);
    let groups = int(b, spec.groups as i64);
    for_range(b, zero, groups, 1, |b, group| {
        let full = int(b, full_blocks as i64);
        let full_end = b.ins().smin(end, full);
        // The pairs of full blocks in range, ending where an even number
        // of them does.
        let paired = pairs.then(|| {
            let zero = int(b, 0);
            let n = b.ins().isub(full_end, first);
            let n = b.ins().smax(n, zero);
            let n = b.ins().band_imm_s(n, -2);
            b.ins().iadd(first, n)
        });
        // The pairs, the full blocks left, then the partial one if the
        // range reaches it (at most one iteration each).
        let runs = [
            paired.map(|paired| (first, paired, 2, 2 * width)),
            (full_blocks > 0).then(|| (paired.unwrap_or(first), full_end, 1, width)),
            (tail > 0).then(|| (b.ins().smax(first, full), end, 1, tail)),
        ];
        for (lo, hi, step, lanes) in runs.into_iter().flatten() {
            for_range(b, lo, hi, step, |b, index| {
                body(
                    b,
                    Block {
                        group,
                        index,
                        lanes,
                    },
                )
            });
        }
    });
}

/// Where one block of output channels of output row `oy` starts.
fn block_row(l: &Layout, b: &mut FunctionBuilder, a: &Args, oy: Value, block: Block) -> Tile {
    let spec = l.spec;
    let width = spec.block();
    // The input row of tap 0: (oy * sh - pt) rows in, possibly negative.
    let iy0 = b.ins().imul_imm_s(oy, spec.stride[0] as i64);
    let iy0 = b.ins().iadd_imm_s(iy0, -(spec.pad[0] as i64));
    let in_off = b.ins().imul_imm_s(iy0, l.in_row);
    let in_row = b.ins().iadd(a.input, in_off);
    let out_off = b.ins().imul_imm_s(oy, l.out_row);
    let output = l.out.start(b, a.output);
    let out_row = b.ins().iadd(output, out_off);
    let extra_row = b.ins().iadd(a.extra, out_off);
    // Block index within the whole packed layout: g * blocks + blk.
    let index = b.ins().imul_imm_s(block.group, spec.blocks() as i64);
    let index = b.ins().iadd(index, block.index);
    let w_off = b.ins().imul_imm_s(index, l.weight_block);
    let weights = b.ins().iadd(a.weights, w_off);
    let p_off = b.ins().imul_imm_s(index, (width * 4) as i64);
    let params = b.ins().iadd(a.params, p_off);
    // Output channel offset: g * Kg + blk * width.
    let ch = b.ins().imul_imm_s(block.group, spec.out_per_group() as i64);
    let ch_blk = b.ins().imul_imm_s(block.index, width as i64);
    let ch = b.ins().iadd(ch, ch_blk);
    let ch_bytes = b.ins().imul_imm_s(ch, 4);
    let output = b.ins().iadd(out_row, ch_bytes);
    let extra = b.ins().iadd(extra_row, ch_bytes);
    let gi = b
        .ins()
        .imul_imm_s(block.group, (spec.in_per_group() * 4) as i64);
    Tile {
        input: b.ins().iadd(in_row, gi),
        output,
        extra,
        weights,
        params,
        row: oy,
        pixels: 0,
        steps: Steps::row(l),
        lanes: block.lanes,
    }
}

/// Whether a class of `width` output columns, in a class of `height`
/// output rows with the same kernel rows, runs down its columns (tiles of
/// pixels one below the other, [`down_columns`]) rather than along its rows:
/// where the native tile computes it and the class is taller than wide, so
/// the tiles hold more pixels. A padded border column (one pixel wide) then
/// takes tiles of up to the tile's rows rather than one call per row, whose
/// one-pixel tile waits on its accumulators' latency. Each output is the same
/// sum in the same order either way.
fn tiled_down(l: &Layout, width: usize, height: usize) -> bool {
    l.down && l.native.is_some() && width < height
}

/// The tiles of one block of one output row, in a class of `height` rows
/// with the same kernel rows (0 where the rows are not known at compile
/// time): each tile's sums, then its epilogue; the classes of columns that
/// run down their columns instead ([`tiled_down`]) are left to
/// [`down_columns`].
fn columns(l: &Layout, b: &mut FunctionBuilder, base: &Tile, ky: (usize, usize), height: usize) {
    for (ox_lo, ox_hi, kx_lo, kx_hi) in column_classes(l.spec) {
        if tiled_down(l, ox_hi - ox_lo, height) {
            continue;
        }
        let ox = int(b, ox_lo as i64);
        let first = shift(b, base, Steps::row(l), ox);
        tiles(l, b, &first, ox_hi - ox_lo, ky, (kx_lo, kx_hi));
    }
}

/// The classes of columns [`columns`] leaves, of one block over the rows
/// of a class of `height` output rows from `top` (the first row's
/// [`block_row`]) to row `end`: for each column, tiles down its pixels.
/// Where the kernel runs every row (its rows are blocks), the class's
/// `height` pixels are tiled as a row's are; else (threads split the rows)
/// tiles of the tile's rows while they fit, then of 4 while they fit, then
/// of one pixel.
fn down_columns(
    l: &Layout,
    b: &mut FunctionBuilder,
    top: &Tile,
    ky: (usize, usize),
    (height, end): (usize, Value),
) {
    for (ox_lo, ox_hi, kx_lo, kx_hi) in column_classes(l.spec) {
        if !tiled_down(l, ox_hi - ox_lo, height) {
            continue;
        }
        let kx = (kx_lo, kx_hi);
        let (lo, hi) = (int(b, ox_lo as i64), int(b, ox_hi as i64));
        for_range(b, lo, hi, 1, |b, ox| {
            let column = Tile {
                steps: Steps::column(l),
                ..shift(b, top, Steps::row(l), ox)
            };
            if l.spec.rows_are_blocks() {
                return tiles(l, b, &column, height, ky, kx);
            }
            let (full, _) = per_tile(l, &column);
            let mut next = top.row;
            for size in [full, full.min(4), 1] {
                let zero = int(b, 0);
                let left = b.ins().isub(end, next);
                let left = b.ins().smax(left, zero);
                let n = b.ins().udiv_imm_s(left, size as i64);
                let n = b.ins().imul_imm_s(n, size as i64);
                let stop = b.ins().iadd(next, n);
                for_range(b, next, stop, size as i64, |b, oy| {
                    let i = b.ins().isub(oy, top.row);
                    let t = Tile {
                        pixels: size,
                        ..shift(b, &column, column.steps, i)
                    };
                    tile(l, b, &t, ky, kx);
                });
                next = stop;
            }
        });
    }
}

/// Pixels in a full tile of `t`'s block: the wide tile's rows for a pair
/// of blocks, else the spec's tile's.
fn per_tile(l: &Layout, t: &Tile) -> (usize, TileSplit) {
    let rows = if t.lanes > l.spec.block() {
        native::WIDE_ROWS
    } else {
        l.spec.tile()
    };
    (rows, TileSplit::of(l.spec.native))
}

/// `base` moved `i` pixels on by `steps`.
fn shift(b: &mut FunctionBuilder, base: &Tile, steps: Steps, i: Value) -> Tile {
    let input = b.ins().imul_imm_s(i, steps.input);
    let output = b.ins().imul_imm_s(i, steps.output);
    Tile {
        input: b.ins().iadd(base.input, input),
        output: b.ins().iadd(base.output, output),
        extra: b.ins().iadd(base.extra, output),
        ..*base
    }
}

/// The tiles of `n` pixels from `first`, each `first.steps` after the last,
/// cut as the ISA cuts a run ([`native::Isa::split`], [`for_tiles`]).
fn tiles(
    l: &Layout,
    b: &mut FunctionBuilder,
    first: &Tile,
    n: usize,
    ky: (usize, usize),
    kx: (usize, usize),
) {
    for_tiles(b, n, per_tile(l, first), |b, i, rows| {
        let t = Tile {
            pixels: rows,
            ..shift(b, first, first.steps, i)
        };
        tile(l, b, &t, ky, kx);
    });
}

/// One tile: its accumulators (per pixel, per `f32x4` of channels), then the
/// epilogue on them.
fn tile(l: &Layout, b: &mut FunctionBuilder, t: &Tile, ky: (usize, usize), kx: (usize, usize)) {
    let acc = match &l.native {
        Some(native) => native_tile(l, native, b, t, ky, kx),
        None => Some(cranelift_tile(l, b, t, ky, kx)),
    };
    if let Some(acc) = acc {
        epilogue(l, b, t, &acc);
    }
}

/// The native tile's taps for the kernel rows `ky` and columns `kx` of a
/// class, and the depth of each: one [`Tap`] per kernel tap, or, where a
/// kernel row's taps read adjacent input pixels whose channels are all the
/// group's (one group, undilated columns), one tap per kernel row whose
/// depth runs over its columns' channels in turn. The packing is
/// `[ky][kx][ci][width]` and the input HWC, so both walk the same `A` and
/// `B` elements in the same order: each output is the same chain of
/// multiply-adds, with fewer, longer taps (the 7x7 stem's 3-channel taps were
/// three steps of the tile's depth loop each).
fn native_taps(l: &Layout, ky: (usize, usize), kx: (usize, usize)) -> (Vec<Tap>, usize) {
    let spec = l.spec;
    let (c, cg) = (spec.input[2], spec.in_per_group());
    let tap = |y: usize, x: usize| Tap {
        a: (y * spec.dilation[0]) as i64 * l.in_row
            + ((x * spec.dilation[1]) as i64 - spec.pad[1] as i64) * c as i64 * 4,
        b: ((y * spec.kernel[1] + x) * cg * native::WIDTH * 4) as i64,
    };
    if cg == c && spec.dilation[1] == 1 {
        let taps = (ky.0..ky.1).map(|y| tap(y, kx.0)).collect();
        return (taps, (kx.1 - kx.0) * cg);
    }
    let taps = (ky.0..ky.1)
        .flat_map(|y| (kx.0..kx.1).map(move |x| (y, x)))
        .map(|(y, x)| tap(y, x))
        .collect();
    (taps, cg)
}

/// The lines a tile of a kernel whose weights stay still prefetches
/// ([`native_epilogue::Sink::prefetch`]): of the weights of the blocks
/// after this tile's (as many as it computes), the share its pixels are of
/// the image, so the block's tiles together ask for the next blocks' weights
/// once, spread over the block's time. Without it the next block's first
/// tile reads them from memory alone, at the FMAs' pace, as fast as one
/// core streams memory (ResNet's deep layers, whose weights come from
/// memory on every image). Clamped to the weights buffer: the last blocks
/// ask for none. `ahead` is [`Fused::ahead`].
fn prefetch_ahead(
    l: &Layout,
    b: &mut FunctionBuilder,
    t: &Tile,
    [weights_end, output_start]: [Value; 2],
) -> (Value, Value) {
    let spec = l.spec;
    let blocks = if t.lanes > native::WIDTH { 2 } else { 1 };
    let next_bytes = l.weight_block * blocks;
    let pixels = (spec.output[0] * spec.output[1]).max(1) as i64;
    let per_pixel = (next_bytes + pixels - 1) / pixels;
    // The tile's first pixel: its output offset over the pixel's bytes (the
    // block's channels are within the pixel).
    let offset = b.ins().isub(t.output, output_start);
    let pixel = b.ins().udiv_imm_s(offset, l.out.pixel_bytes());
    let share = b.ins().imul_imm_s(pixel, per_pixel);
    let next = b.ins().iadd_imm_s(t.weights, next_bytes);
    let start = b.ins().iadd(next, share);
    let start = b.ins().umin(start, weights_end);
    let end = b.ins().iadd_imm_s(start, per_pixel * t.pixels as i64);
    let end = b.ins().umin(end, weights_end);
    let bytes = b.ins().isub(end, start);
    let bytes = b.ins().iadd_imm_s(bytes, 63);
    let lines = b.ins().ushr_imm_u(bytes, 6);
    (start, lines)
}

/// The tile by a call to the native micro-kernel, with the class's
/// [`native_taps`]: its fused form where there is one, which stores the
/// outputs itself (no accumulators returned), else the slot loaded for the
/// generated epilogue:
/// for a tile down a column, in a loop over its pixels (no accumulators
/// returned either), else every pixel's, returned.
fn native_tile(
    l: &Layout,
    native: &Native,
    b: &mut FunctionBuilder,
    t: &Tile,
    ky: (usize, usize),
    kx: (usize, usize),
) -> Option<Vec<Vec<Value>>> {
    let ptr = b.func.dfg.value_type(t.input);
    let (taps, depth) = native_taps(l, ky, kx);
    for (i, tap) in taps.iter().enumerate() {
        let at = (i * size_of::<Tap>()) as i32;
        let a = int(b, tap.a);
        b.ins().stack_store(ptr, a, native.taps, at);
        let w = int(b, tap.b);
        b.ins().stack_store(ptr, w, native.taps, at + 8);
    }
    let a_stride = int(b, t.steps.input);
    let taps_at = b.ins().stack_addr(ptr, native.taps, 0);
    let count = int(b, taps.len() as i64);
    let depth = int(b, depth as i64);
    let wide = t.lanes > native::WIDTH;
    if let Some(fused) = &native.fused {
        let sink = fused.sink;
        let pixel = int(b, t.steps.output);
        let columns = int(b, t.lanes as i64);
        for (field, value) in [
            (offset_of!(Sink, params), t.params),
            (offset_of!(Sink, extra), t.extra),
            (offset_of!(Sink, output), t.output),
            (offset_of!(Sink, pixel), pixel),
            (offset_of!(Sink, columns), columns),
        ] {
            b.ins().stack_store(ptr, value, sink, field as i32);
        }
        if let Some(ahead) = fused.ahead {
            let (at, lines) = prefetch_ahead(l, b, t, ahead);
            b.ins()
                .stack_store(ptr, at, sink, offset_of!(Sink, prefetch) as i32);
            b.ins()
                .stack_store(ptr, lines, sink, offset_of!(Sink, lines) as i32);
        }
        let tiles = match fused.wide {
            Some(wide_tiles) if wide => wide_tiles,
            _ => fused.tiles,
        };
        let callee = int(b, tiles[t.pixels - 1] as usize as i64);
        let b_block = int(b, l.weight_block);
        let sink = b.ins().stack_addr(ptr, sink, 0);
        let args = [
            t.input, a_stride, t.weights, taps_at, count, depth, b_block, sink,
        ];
        b.ins().call_indirect(fused.signature, callee, &args);
        return None;
    }
    let tile_at = b.ins().stack_addr(ptr, native.tile, 0);
    let mut args = vec![t.input, a_stride, t.weights, taps_at, count, depth, tile_at];
    // A pair of blocks (`lanes` past one block's width) takes the wide
    // tile, which writes its second block `WIDE_BLOCK` bytes after the first.
    let (signature, callee, block_bytes) = match native.wide {
        Some((wide_tiles, signature)) if wide => {
            let b_block = int(b, l.weight_block);
            let c_block = int(b, WIDE_BLOCK as i64);
            args.extend([b_block, c_block]);
            (signature, wide_tiles[t.pixels - 1] as usize, WIDE_BLOCK)
        }
        _ => (native.signature, native.tiles[t.pixels - 1] as usize, 0),
    };
    let callee = int(b, callee as i64);
    b.ins().call_indirect(signature, callee, &args);
    // Where pixel `p`'s vector `v` (of four channels) is in the slot.
    let at = |p: usize, v: usize| {
        let (block, v) = (v / (native::WIDTH / 4), v % (native::WIDTH / 4));
        (block * block_bytes + (p * native::WIDTH + 4 * v) * 4) as i64
    };
    if t.steps.column && t.pixels > 1 {
        let (zero, pixels) = (int(b, 0), int(b, t.pixels as i64));
        for_range(b, zero, pixels, 1, |b, p| {
            let row = b.ins().imul_imm_s(p, (native::WIDTH * 4) as i64);
            let row = b.ins().iadd(tile_at, row);
            let acc = (0..t.lanes.div_ceil(4))
                .map(|v| vector::load4(b, row, at(0, v)))
                .collect();
            let pixel = Tile {
                pixels: 1,
                ..shift(b, t, t.steps, p)
            };
            epilogue(l, b, &pixel, &[acc]);
        });
        return None;
    }
    let acc = (0..t.pixels)
        .map(|p| {
            (0..t.lanes.div_ceil(4))
                .map(|v| {
                    b.ins()
                        .stack_load(ptr, types::F32X4, native.tile, at(p, v) as i32)
                })
                .collect()
        })
        .collect();
    Some(acc)
}

/// The tile in Cranelift code: `f32x4` fused multiply-adds.
fn cranelift_tile(
    l: &Layout,
    b: &mut FunctionBuilder,
    t: &Tile,
    ky: (usize, usize),
    kx: (usize, usize),
) -> Vec<Vec<Value>> {
    let spec = l.spec;
    let c = spec.input[2] as i64;
    let cg = spec.in_per_group();
    let width = spec.block();
    let vectors = t.lanes.div_ceil(4);
    // One pixel (a dense layer) gives too few accumulators to hide the FMA
    // latency: each unrolled channel then gets its own set, summed at the
    // end (LeNet-5's dense1, 400 x 120: 6.2 us -> see BENCHMARKS.md).
    let sets = if t.pixels == 1 { UNROLL } else { 1 };
    let acc: Vec<Vec<Vec<Variable>>> = (0..sets)
        .map(|_| {
            (0..t.pixels)
                .map(|_| {
                    (0..vectors)
                        .map(|_| {
                            let v = b.declare_var(types::F32X4);
                            let zero = vector::splat(b, 0.0);
                            b.def_var(v, zero);
                            v
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let ky_lo = int(b, ky.0 as i64);
    let ky_hi = int(b, ky.1 as i64);
    for_range(b, ky_lo, ky_hi, 1, |b, y| {
        let in_off = b.ins().imul_imm_s(y, spec.dilation[0] as i64 * l.in_row);
        let in_y = b.ins().iadd(t.input, in_off);
        let w_off = b
            .ins()
            .imul_imm_s(y, (spec.kernel[1] * cg * width * 4) as i64);
        let w_y = b.ins().iadd(t.weights, w_off);
        for x in kx.0..kx.1 {
            // Where channel `ci` starts in the input and in the packed weights.
            let at = |b: &mut FunctionBuilder, ci: Value| {
                let ci_in = b.ins().imul_imm_s(ci, 4);
                let in_ci = b.ins().iadd(in_y, ci_in);
                let ci_w = b.ins().imul_imm_s(ci, (width * 4) as i64);
                (in_ci, b.ins().iadd(w_y, ci_w))
            };
            // One input channel's contribution, `unit` channels past those pointers.
            let step = |b: &mut FunctionBuilder, (in_ci, w_ci): (Value, Value), unit: usize| {
                let w_base = ((x * cg + unit) * width * 4) as i64;
                let weights: Vec<Value> = (0..vectors)
                    .map(|v| vector::load4(b, w_ci, w_base + 16 * v as i64))
                    .collect();
                for (p, acc_p) in acc[unit % sets].iter().enumerate() {
                    let column =
                        (p * spec.stride[1] + x * spec.dilation[1]) as i64 - spec.pad[1] as i64;
                    let xs = vector::load_splat(b, in_ci, (column * c + unit as i64) * 4);
                    for (var, wv) in acc_p.iter().zip(&weights) {
                        let old = b.use_var(*var);
                        let new = vector::mul_add(b, xs, *wv, old);
                        b.def_var(*var, new);
                    }
                }
            };
            // The channel loop unrolled by UNROLL, then the remaining channels.
            let main = cg / UNROLL * UNROLL;
            if main > 0 {
                let zero = int(b, 0);
                let n = int(b, main as i64);
                for_range(b, zero, n, UNROLL as i64, |b, ci| {
                    let ptrs = at(b, ci);
                    for unit in 0..UNROLL {
                        step(b, ptrs, unit);
                    }
                });
            }
            let ci = int(b, main as i64);
            let ptrs = at(b, ci);
            for unit in 0..cg - main {
                step(b, ptrs, unit);
            }
        }
    });
    (0..t.pixels)
        .map(|p| {
            (0..vectors)
                .map(|v| {
                    let first = b.use_var(acc[0][p][v]);
                    acc[1..].iter().fold(first, |sum, set| {
                        let x = b.use_var(set[p][v]);
                        b.ins().fadd(sum, x)
                    })
                })
                .collect()
        })
        .collect()
}

fn epilogue(l: &Layout, b: &mut FunctionBuilder, t: &Tile, acc: &[Vec<Value>]) {
    let pixel = t.steps.output;
    for (p, acc_p) in acc.iter().enumerate() {
        for (v, x) in acc_p.iter().enumerate() {
            let lanes = (t.lanes - 4 * v).min(4);
            let at = Epilogued {
                params: t.params,
                channel: 16 * v as i64,
                vector: l.vector,
                extra: t.extra,
                output: t.output,
                element: p as i64 * pixel + 16 * v as i64,
                lanes,
            };
            apply_epilogue(b, &l.spec.epilogue, *x, &at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConvSpec, Isa};
    use proptest::prelude::*;

    proptest! {
        /// Packed weights follow the documented layout
        /// `[g][block][ky][kx][ci][width]`, zero past a group's channels,
        /// each weight (PyTorch's `[k][ci][ky][kx]`) times its channel's
        /// factor in `f64` and rounded once, on every block width.
        #[test]
        fn packed_weights_follow_the_documented_layout(
            groups in 1usize..4,
            cg in 1usize..6,
            kg in 1usize..40,
            [fh, fw] in [1usize..4, 1usize..4],
            native in any::<bool>(),
            scaled in any::<bool>(),
            seed in any::<u32>(),
        ) {
            let spec = ConvSpec {
                input: [fh + 2, fw + 2, groups * cg],
                output: [3, 3, groups * kg],
                kernel: [fh, fw],
                stride: [1, 1],
                dilation: [1, 1],
                pad: [0, 0],
                groups,
                epilogue: Vec::new(),
                native: native.then_some(Isa::Avx2),
                slice: None,
            };
            let (k, taps) = (groups * kg, fh * fw);
            let weight: Vec<f32> = (0..k * cg * taps)
                .map(|i| ((i as u32 ^ seed) % 1000) as f32 / 7.0 - 70.0)
                .collect();
            let scale: Vec<f64> = (0..k).map(|c| 0.5 + c as f64 / 3.0).collect();
            let scale = scaled.then_some(scale.as_slice());
            let packed = spec.pack_weights(&weight, scale);
            let width = spec.block();
            let blocks = kg.div_ceil(width);
            prop_assert_eq!(packed.len(), groups * blocks * taps * cg * width);
            for (i, &got) in packed.iter().enumerate() {
                let lane = i % width;
                let ci = i / width % cg;
                let tap = i / (width * cg) % taps;
                let block = i / (width * cg * taps) % blocks;
                let g = i / (width * cg * taps * blocks);
                let kk = block * width + lane;
                let expected = if kk < kg {
                    let c = g * kg + kk;
                    let w = weight[(c * cg + ci) * taps + tap];
                    scale.map_or(w, |s| (f64::from(w) * s[c]) as f32)
                } else {
                    0.0
                };
                prop_assert_eq!(got.to_bits(), expected.to_bits(), "element {}", i);
            }
        }
    }
}
