//! Depthwise convolution (one group per channel, multiplier 1) on HWC data,
//! vectorised across channels, which are contiguous in HWC: each `f32x4`
//! holds four channels of one pixel, and each tap is one multiply-add with
//! that tap's four weights. The epilogue is the one every family shares.
//!
//! Weights are packed `[ky][kx][C']` with `C'` the channels rounded up to a
//! multiple of 4 (zeros past `C`); a tile is [`TILE`] output pixels of one
//! row by four channels. Padding is handled as in [`super::conv`]: output
//! rows and columns are classed at compile time by which taps fall inside.
//!
//! With [`DepthwiseSpec::native`] (and the host running it), each class of
//! columns of an output row is one call to the native row kernel of
//! [`super::native_depthwise`] instead (8 or 16 channels a vector, a
//! sliding window in the interior), which sums in the same order, one fused
//! multiply-add per term, and applies the whole fused epilogue in
//! registers with the native epilogue's code (the shared one's operations,
//! lane for lane), so its outputs are bitwise Cranelift's.

use super::fold;
use super::native::Isa;
use super::native_depthwise::{self, RowFn, RowShape};
use super::native_epilogue;
use super::{
    apply_epilogue, clamp, for_range, int, tap_classes, vector, Args, Epilogue, Epilogued, Lengths,
};
use super::{
    epilogue_lengths, pack_padded, padded_channels, store_words, ChannelSlice, OutputLayout,
};
use cnnjit_ir::{Conv2d, Shape};
use cranelift_codegen::ir::{InstBuilder, SigRef, StackSlot, StackSlotData, StackSlotKind, Value};
use cranelift_frontend::FunctionBuilder;

/// Output pixels per register tile.
pub const TILE: usize = 4;

/// Everything a depthwise kernel is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DepthwiseSpec {
    /// Input (and output) channels.
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Padding above and on the left.
    pub pad: [usize; 2],
    /// The fused epilogue.
    pub epilogue: Vec<Epilogue>,
    /// The channel slice of a wider tensor the output is written into, if
    /// not a tensor of its own ([`super::Kernel::sliced`]).
    pub slice: Option<ChannelSlice>,
    /// The ISA of the native row kernel ([`super::native_depthwise`]) that
    /// computes each run of output pixels, or `None` for Cranelift's tiles.
    /// Only where [`Isa::detected`]; elsewhere (a spec built by hand)
    /// Cranelift's code serves it.
    pub native: Option<Isa>,
}

impl DepthwiseSpec {
    /// The spec of a `dwconv` (or a conv with one group per channel and no
    /// multiplier), or `None` where this kernel does not apply.
    pub fn of_conv(
        op: &Conv2d,
        input: Shape,
        output: Shape,
        epilogue: Vec<Epilogue>,
        native: Option<Isa>,
    ) -> Option<DepthwiseSpec> {
        let (Shape::Volume { h, w, c }, Shape::Volume { h: ho, w: wo, c: k }) = (input, output)
        else {
            return None;
        };
        (op.groups == c && k == c).then_some(DepthwiseSpec {
            channels: c as usize,
            input: [h as usize, w as usize],
            output: [ho as usize, wo as usize],
            kernel: [op.kernel.h as usize, op.kernel.w as usize],
            stride: [op.stride.h as usize, op.stride.w as usize],
            dilation: [op.dilation.h as usize, op.dilation.w as usize],
            pad: [op.padding.top as usize, op.padding.left as usize],
            epilogue,
            slice: None,
            native: native.filter(|isa| isa.detected()),
        })
    }

    fn padded(&self) -> usize {
        padded_channels(self.channels)
    }

    fn layout(&self) -> OutputLayout {
        OutputLayout::new(self.slice, self.channels)
    }

    /// The buffer lengths of the kernel's safety contract.
    pub fn lengths(&self) -> Lengths {
        let out = self.output[0] * self.output[1] * self.channels;
        let (params, extra) = epilogue_lengths(&self.epilogue, self.padded(), out);
        Lengths {
            input: self.input[0] * self.input[1] * self.channels,
            weights: self.kernel[0] * self.kernel[1] * self.padded(),
            params,
            extra,
            output: self.layout().len(self.output[0] * self.output[1]),
            scratch: 0,
            rows: self.output[0],
        }
    }

    /// PyTorch's `[C, 1, Fh, Fw]` weights, each channel's times its `scale`
    /// if given, packed as `[ky][kx][C']`.
    pub fn pack_weights(&self, weight: &[f32], scale: Option<&[f64]>) -> Vec<f32> {
        let [fh, fw] = self.kernel;
        let mut packed = vec![0.0; self.lengths().weights];
        for ky in 0..fh {
            for kx in 0..fw {
                for c in 0..self.channels {
                    packed[(ky * fw + kx) * self.padded() + c] =
                        fold(weight[(c * fh + ky) * fw + kx], c, scale);
                }
            }
        }
        packed
    }

    /// A per-channel vector padded to whole vectors.
    pub fn pack_vector(&self, v: &[f32]) -> Vec<f32> {
        pack_padded(v)
    }
}

/// Emits the kernel body for rows `[begin, end)`.
pub(crate) fn emit(spec: &DepthwiseSpec, b: &mut FunctionBuilder, a: &Args) {
    let [h, w] = spec.input;
    let [ho, wo] = spec.output;
    let c = spec.channels as i64;
    let in_row = w as i64 * c * 4;
    let out = spec.layout();
    let out_row = wo as i64 * out.pixel_bytes();
    let output = out.start(b, a.output);
    let rows = tap_classes(
        ho,
        h,
        spec.kernel[0],
        spec.stride[0],
        spec.dilation[0],
        spec.pad[0],
    );
    let cols = tap_classes(
        wo,
        w,
        spec.kernel[1],
        spec.stride[1],
        spec.dilation[1],
        spec.pad[1],
    );
    let native = spec
        .native
        .and_then(native_depthwise::row)
        .and_then(|row| Native::new(spec, b, a, row));
    for (oy_lo, oy_hi, ky_lo, ky_hi) in rows {
        let lo = clamp(b, a.begin, oy_lo as i64, oy_hi as i64);
        let hi = clamp(b, a.end, oy_lo as i64, oy_hi as i64);
        for_range(b, lo, hi, 1, |b, oy| {
            let iy0 = b.ins().imul_imm_s(oy, spec.stride[0] as i64);
            let iy0 = b.ins().iadd_imm_s(iy0, -(spec.pad[0] as i64));
            let in_off = b.ins().imul_imm_s(iy0, in_row);
            let input = b.ins().iadd(a.input, in_off);
            let out_off = b.ins().imul_imm_s(oy, out_row);
            let output = b.ins().iadd(output, out_off);
            let extra = b.ins().iadd(a.extra, out_off);
            let row = Row {
                input,
                output,
                extra,
                ky: (ky_lo, ky_hi),
            };
            for &(ox_lo, ox_hi, kx_lo, kx_hi) in &cols {
                if let Some(native) = &native {
                    native_columns(spec, native, b, a, &row, (ox_lo, ox_hi), (kx_lo, kx_hi));
                    continue;
                }
                let n = ox_hi - ox_lo;
                let (full, rest) = (n / TILE, n % TILE);
                if full > 0 {
                    let lo = int(b, ox_lo as i64);
                    let hi = int(b, (ox_lo + full * TILE) as i64);
                    for_range(b, lo, hi, TILE as i64, |b, ox| {
                        channels(spec, b, a, &row, ox, TILE, (kx_lo, kx_hi))
                    });
                }
                if rest > 0 {
                    let ox = int(b, (ox_lo + full * TILE) as i64);
                    channels(spec, b, a, &row, ox, rest, (kx_lo, kx_hi));
                }
            }
        });
    }
}

/// What the generated code needs to call the native row kernel.
struct Native {
    row: RowFn,
    /// [`RowFn`]'s signature, imported into the kernel.
    signature: SigRef,
    /// The [`RowShape`] of one call.
    shape: StackSlot,
    /// The fused epilogue's steps ([`native_epilogue::Step`]s), stored once
    /// where the kernel sets up.
    steps: StackSlot,
}

impl Native {
    /// The native path of `spec`, or `None` where its steps do not fit a
    /// stack slot.
    fn new(spec: &DepthwiseSpec, b: &mut FunctionBuilder, a: &Args, row: RowFn) -> Option<Native> {
        let ptr = b.func.dfg.value_type(a.input);
        let bytes = size_of::<RowShape>() as u32;
        let shape =
            b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 3));
        Some(Native {
            row,
            signature: native_depthwise::import_signature(b, ptr),
            shape,
            steps: native_epilogue::store_steps(b, ptr, &spec.epilogue)?,
        })
    }
}

/// Output columns `[ox.0, ox.1)` of one row, summing the kernel columns
/// `[kx.0, kx.1)`, by one call to the native row kernel, which applies the
/// fused epilogue too.
fn native_columns(
    spec: &DepthwiseSpec,
    native: &Native,
    b: &mut FunctionBuilder,
    a: &Args,
    row: &Row,
    ox: (usize, usize),
    kx: (usize, usize),
) {
    let c = spec.channels as i64;
    let pixel_bytes = spec.layout().pixel_bytes();
    let shape = RowShape {
        channels: c,
        padded: spec.padded() as i64,
        kernel_width: spec.kernel[1] as i64,
        ky: [row.ky.0 as i64, row.ky.1 as i64],
        kx: [kx.0 as i64, kx.1 as i64],
        in_row: (spec.dilation[0] * spec.input[1]) as i64 * c * 4,
        stride: spec.stride[1] as i64,
        dilation: spec.dilation[1] as i64,
        out_pixel: pixel_bytes,
        steps: spec.epilogue.len() as i64,
    };
    let ptr = b.func.dfg.value_type(a.input);
    store_words(b, native.shape, &shape.words());
    let first = (ox.0 * spec.stride[1]) as i64 - spec.pad[1] as i64;
    let input = b.ins().iadd_imm_s(row.input, first * c * 4);
    let output = b.ins().iadd_imm_s(row.output, ox.0 as i64 * pixel_bytes);
    let extra = b.ins().iadd_imm_s(row.extra, ox.0 as i64 * pixel_bytes);
    let pixels = int(b, (ox.1 - ox.0) as i64);
    let shape_at = b.ins().stack_addr(ptr, native.shape, 0);
    let steps_at = b.ins().stack_addr(ptr, native.steps, 0);
    let callee = int(b, native.row as usize as i64);
    b.ins().call_indirect(
        native.signature,
        callee,
        &[
            input, a.weights, a.params, extra, output, pixels, shape_at, steps_at,
        ],
    );
}

/// `body(vector, lanes)` for each `f32x4` of channels: a loop over the
/// whole ones, then the partial one.
fn for_vectors(
    spec: &DepthwiseSpec,
    b: &mut FunctionBuilder,
    mut body: impl FnMut(&mut FunctionBuilder, Value, usize),
) {
    let c = spec.channels;
    let full = c / 4;
    if full > 0 {
        let zero = int(b, 0);
        let n = int(b, full as i64);
        for_range(b, zero, n, 1, |b, cv| body(b, cv, 4));
    }
    if !c.is_multiple_of(4) {
        let cv = int(b, full as i64);
        body(b, cv, c % 4);
    }
}

/// One output row's pointers (the input at tap row 0, possibly before the input).
struct Row {
    input: Value,
    output: Value,
    extra: Value,
    ky: (usize, usize),
}

/// A tile of `pixels` pixels from column `ox`, over every channel vector.
fn channels(
    spec: &DepthwiseSpec,
    b: &mut FunctionBuilder,
    a: &Args,
    row: &Row,
    ox: Value,
    pixels: usize,
    kx: (usize, usize),
) {
    let c = spec.channels;
    let step_in = b.ins().imul_imm_s(ox, (spec.stride[1] * c * 4) as i64);
    let input = b.ins().iadd(row.input, step_in);
    let step_out = b.ins().imul_imm_s(ox, spec.layout().pixel_bytes());
    let output = b.ins().iadd(row.output, step_out);
    let extra = b.ins().iadd(row.extra, step_out);
    let ptrs = |b: &mut FunctionBuilder, cv: Value| {
        let bytes = b.ins().imul_imm_s(cv, 16);
        [input, output, extra, a.weights, a.params].map(|p| b.ins().iadd(p, bytes))
    };
    for_vectors(spec, b, |b, cv, lanes| {
        let p = ptrs(b, cv);
        vector_tile(spec, b, p, pixels, kx, row.ky, lanes);
    });
}

/// Four (or `lanes`) channels of a tile: every tap, then the epilogue.
fn vector_tile(
    spec: &DepthwiseSpec,
    b: &mut FunctionBuilder,
    [input, output, extra, weights, params]: [Value; 5],
    pixels: usize,
    kx: (usize, usize),
    ky: (usize, usize),
    lanes: usize,
) {
    let c = spec.channels as i64;
    let padded = spec.padded() as i64;
    let mut acc: Vec<Value> = (0..pixels).map(|_| vector::splat(b, 0.0)).collect();
    for y in ky.0..ky.1 {
        let row = (y * spec.dilation[0]) as i64 * spec.input[1] as i64 * c * 4;
        for x in kx.0..kx.1 {
            let wv = vector::load4(b, weights, (y * spec.kernel[1] + x) as i64 * padded * 4);
            for (p, acc_p) in acc.iter_mut().enumerate() {
                let column =
                    (p * spec.stride[1] + x * spec.dilation[1]) as i64 - spec.pad[1] as i64;
                let xv = vector::load_partial(b, input, row + column * c * 4, lanes);
                *acc_p = vector::mul_add(b, xv, wv, *acc_p);
            }
        }
    }
    for (p, x) in acc.into_iter().enumerate() {
        let at = Epilogued {
            params,
            channel: 0,
            vector: padded * 4,
            extra,
            output,
            element: p as i64 * spec.layout().pixel_bytes(),
            lanes,
        };
        apply_epilogue(b, &spec.epilogue, x, &at);
    }
}
