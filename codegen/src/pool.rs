//! Max and average pooling (windowed and global) on HWC data, vectorised
//! across channels like [`super::depthwise`], with PyTorch's semantics: max
//! ignores padding; average divides by the window clipped to the padded input
//! (`count_include_pad`, PyTorch's default) or by the taps inside the input.
//! Windows are classed at compile time by which taps fall inside the input,
//! so each class's divisor is a constant. The epilogue (a bn or an activation
//! after the pool) is the shared one; its bias vector is zero. An unrolled
//! max window runs on `maxps` unless one of its inputs is NaN
//! (`max_unless_nan`), which gives the same bits as the reference's rule.

use super::{
    apply_epilogue, clamp, for_range, int, tap_classes, vector, Args, Epilogue, Epilogued, Lengths,
};
use super::{epilogue_lengths, pack_padded, padded_channels, ChannelSlice, OutputLayout};
use cnnjit_ir::{Pool2d, PoolKind, Shape};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

/// Everything a pooling kernel is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolSpec {
    /// Max (else average).
    pub max: bool,
    /// Channels.
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Padding above and on the left.
    pub pad: [usize; 2],
    /// Padding below and on the right.
    pub pad_after: [usize; 2],
    /// Average only: padded zeros count in the divisor.
    pub count_include_pad: bool,
    /// The fused epilogue.
    pub epilogue: Vec<Epilogue>,
    /// The channel slice of a wider tensor the output is written into, if
    /// not a tensor of its own ([`super::Kernel::sliced`]).
    pub slice: Option<ChannelSlice>,
}

impl PoolSpec {
    /// The spec of a windowed pool.
    pub fn of_pool(
        op: &Pool2d,
        input: Shape,
        output: Shape,
        epilogue: Vec<Epilogue>,
    ) -> Option<PoolSpec> {
        let (Shape::Volume { h, w, c }, Shape::Volume { h: ho, w: wo, .. }) = (input, output)
        else {
            return None;
        };
        Some(PoolSpec {
            max: op.kind == PoolKind::Max,
            channels: c as usize,
            input: [h as usize, w as usize],
            output: [ho as usize, wo as usize],
            kernel: [op.kernel.h as usize, op.kernel.w as usize],
            stride: [op.stride.h as usize, op.stride.w as usize],
            pad: [op.padding.top as usize, op.padding.left as usize],
            pad_after: [op.padding.bottom as usize, op.padding.right as usize],
            count_include_pad: op.count_include_pad,
            epilogue,
            slice: None,
        })
    }

    /// The spec of a global pool: one window over the whole input.
    pub fn of_global(kind: PoolKind, input: Shape, epilogue: Vec<Epilogue>) -> Option<PoolSpec> {
        let Shape::Volume { h, w, c } = input else {
            return None;
        };
        let (h, w) = (h as usize, w as usize);
        Some(PoolSpec {
            max: kind == PoolKind::Max,
            channels: c as usize,
            input: [h, w],
            output: [1, 1],
            kernel: [h, w],
            stride: [1, 1],
            pad: [0, 0],
            pad_after: [0, 0],
            count_include_pad: true,
            epilogue,
            slice: None,
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
            weights: 0,
            params,
            extra,
            output: self.layout().len(self.output[0] * self.output[1]),
            scratch: 0,
            rows: self.output[0],
        }
    }

    /// A per-channel vector padded to whole vectors.
    pub fn pack_vector(&self, v: &[f32]) -> Vec<f32> {
        pack_padded(v)
    }

    /// PyTorch's window extent along one axis for output `o`: from its start
    /// to the end of the padded input, whichever comes first.
    fn extent(&self, axis: usize, o: usize) -> usize {
        let start = (o * self.stride[axis]) as i64 - self.pad[axis] as i64;
        let end = (start + self.kernel[axis] as i64)
            .min((self.input[axis] + self.pad_after[axis]) as i64);
        (end - start).max(0) as usize
    }
}

/// Emits the kernel body for rows `[begin, end)`.
pub(crate) fn emit(spec: &PoolSpec, b: &mut FunctionBuilder, a: &Args) {
    let [h, w] = spec.input;
    let [ho, wo] = spec.output;
    let c = spec.channels as i64;
    let out = spec.layout();
    let output = out.start(b, a.output);
    let rows = tap_classes(ho, h, spec.kernel[0], spec.stride[0], 1, spec.pad[0]);
    let cols = tap_classes(wo, w, spec.kernel[1], spec.stride[1], 1, spec.pad[1]);
    for (oy_lo, oy_hi, ky_lo, ky_hi) in rows {
        let lo = clamp(b, a.begin, oy_lo as i64, oy_hi as i64);
        let hi = clamp(b, a.end, oy_lo as i64, oy_hi as i64);
        for_range(b, lo, hi, 1, |b, oy| {
            let iy0 = b.ins().imul_imm_s(oy, spec.stride[0] as i64);
            let iy0 = b.ins().iadd_imm_s(iy0, -(spec.pad[0] as i64));
            let in_off = b.ins().imul_imm_s(iy0, w as i64 * c * 4);
            let input = b.ins().iadd(a.input, in_off);
            let out_off = b.ins().imul_imm_s(oy, wo as i64 * out.pixel_bytes());
            let output = b.ins().iadd(output, out_off);
            let extra = b.ins().iadd(a.extra, out_off);
            for &(ox_lo, ox_hi, kx_lo, kx_hi) in &cols {
                let divisor = if spec.count_include_pad {
                    spec.extent(0, oy_lo) * spec.extent(1, ox_lo)
                } else {
                    (ky_hi - ky_lo) * (kx_hi - kx_lo)
                };
                let lo = int(b, ox_lo as i64);
                let hi = int(b, ox_hi as i64);
                for_range(b, lo, hi, 1, |b, ox| {
                    let i = b.ins().imul_imm_s(ox, spec.stride[1] as i64 * c * 4);
                    let o = b.ins().imul_imm_s(ox, out.pixel_bytes());
                    let pixel = Pixel {
                        input: b.ins().iadd(input, i),
                        output: b.ins().iadd(output, o),
                        extra: b.ins().iadd(extra, o),
                        ky: (ky_lo, ky_hi),
                        kx: (kx_lo, kx_hi),
                        scale: 1.0 / divisor.max(1) as f32,
                    };
                    channels(spec, b, a, &pixel);
                });
            }
        });
    }
}

/// One output pixel's pointers and window.
struct Pixel {
    input: Value,
    output: Value,
    extra: Value,
    ky: (usize, usize),
    kx: (usize, usize),
    scale: f32,
}

/// Channel vectors a window sums at once, each into an accumulator of its
/// own: independent chains of adds, and each input pixel's channels read
/// as one contiguous run (a global pool over 112x112x32 reads its 1.6 MB
/// once, not once per vector). Each channel still sums its window in the
/// same order, so the grouping changes no output.
const GROUP: usize = 8;

fn channels(spec: &PoolSpec, b: &mut FunctionBuilder, a: &Args, px: &Pixel) {
    let c = spec.channels;
    let full = c / 4;
    let at = |b: &mut FunctionBuilder, cv: Value| {
        let bytes = b.ins().imul_imm_s(cv, 16);
        [px.input, px.output, px.extra, a.params].map(|p| b.ins().iadd(p, bytes))
    };
    let groups = full / GROUP;
    if groups > 0 {
        let zero = int(b, 0);
        let n = int(b, (groups * GROUP) as i64);
        for_range(b, zero, n, GROUP as i64, |b, cv| {
            let p = at(b, cv);
            window(spec, b, p, px, &[4; GROUP]);
        });
    }
    let mut rest = vec![4; full - groups * GROUP];
    if !c.is_multiple_of(4) {
        rest.push(c % 4);
    }
    if !rest.is_empty() {
        let cv = int(b, (groups * GROUP) as i64);
        let p = at(b, cv);
        window(spec, b, p, px, &rest);
    }
}

/// Windows of at most this many taps are unrolled (every tap a load at a
/// constant offset); larger ones (global pools) loop at run time.
const UNROLLED_TAPS: usize = 49;

/// Consecutive vectors of four channels, the `i`th of `lanes[i]` (1 to 4)
/// of them, one accumulator per vector: the window unrolled or as a
/// run-time loop over its rows and columns, then the divisor and the
/// epilogue.
fn window(
    spec: &PoolSpec,
    b: &mut FunctionBuilder,
    [input, output, extra, params]: [Value; 4],
    px: &Pixel,
    lanes: &[usize],
) {
    let c = spec.channels as i64;
    let (row_bytes, pixel_bytes) = (spec.input[1] as i64 * c * 4, c * 4);
    let left = -(spec.pad[1] as i64) * pixel_bytes;
    let init = vector::splat(b, if spec.max { f32::NEG_INFINITY } else { 0.0 });
    let taps = (px.ky.1 - px.ky.0) * (px.kx.1 - px.kx.0);
    // The window's taps, each an offset from `input`.
    let offsets: Vec<i64> = (px.ky.0..px.ky.1)
        .flat_map(|y| (px.kx.0..px.kx.1).map(move |x| (y, x)))
        .map(|(y, x)| y as i64 * row_bytes + x as i64 * pixel_bytes + left)
        .collect();
    let unrolled = |b: &mut FunctionBuilder| {
        let mut acc = vec![init; lanes.len()];
        for &at in &offsets {
            for (v, (acc, &lanes)) in acc.iter_mut().zip(lanes).enumerate() {
                let x = vector::load_partial(b, input, at + 16 * v as i64, lanes);
                *acc = combine(spec, b, *acc, x);
            }
        }
        acc
    };
    let sums: Vec<Value> = if spec.max && taps <= UNROLLED_TAPS {
        max_unless_nan(b, (init, input), &offsets, lanes, unrolled)
    } else if taps <= UNROLLED_TAPS {
        unrolled(b)
    } else {
        let acc: Vec<_> = (lanes.iter())
            .map(|_| {
                let acc = b.declare_var(types::F32X4);
                b.def_var(acc, init);
                acc
            })
            .collect();
        let (y0, y1) = (int(b, px.ky.0 as i64), int(b, px.ky.1 as i64));
        for_range(b, y0, y1, 1, |b, y| {
            let row = b.ins().imul_imm_s(y, row_bytes);
            let row = b.ins().iadd(input, row);
            let (x0, x1) = (int(b, px.kx.0 as i64), int(b, px.kx.1 as i64));
            for_range(b, x0, x1, 1, |b, x| {
                let col = b.ins().imul_imm_s(x, pixel_bytes);
                let at = b.ins().iadd(row, col);
                for (v, (&acc, &lanes)) in acc.iter().zip(lanes).enumerate() {
                    let x = vector::load_partial(b, at, 16 * v as i64 + left, lanes);
                    let old = b.use_var(acc);
                    let new = combine(spec, b, old, x);
                    b.def_var(acc, new);
                }
            });
        });
        acc.iter().map(|&acc| b.use_var(acc)).collect()
    };
    for (v, (mut x, &lanes)) in sums.into_iter().zip(lanes).enumerate() {
        if !spec.max {
            let scale = vector::splat(b, px.scale);
            x = b.ins().fmul(x, scale);
        }
        let bytes = 16 * v as i64;
        let at = Epilogued {
            params,
            channel: bytes,
            vector: (spec.padded() * 4) as i64,
            extra,
            output,
            element: bytes,
            lanes,
        };
        apply_epilogue(b, &spec.epilogue, x, &at);
    }
}

/// The max of an unrolled window from `init` (-inf), `lanes[i]` channels at
/// byte `16 i` of each tap `input + offsets[t]`, one `maxps` per tap and
/// vector: where no
/// lane of the window is NaN, `maxps(v, acc)` (`v` if greater, else `acc`)
/// is exactly [`combine`]'s max, equal values keeping the first. A NaN is
/// found by one unordered compare per two taps; a window with one takes
/// `exact` instead, [`combine`] on fresh loads (the fast path's values are
/// not kept live across the branch, which would spill them).
fn max_unless_nan(
    b: &mut FunctionBuilder,
    (init, input): (Value, Value),
    offsets: &[i64],
    lanes: &[usize],
    exact: impl FnOnce(&mut FunctionBuilder) -> Vec<Value>,
) -> Vec<Value> {
    let mut acc = vec![init; lanes.len()];
    let mut nan: Option<Value> = None;
    for (v, (acc, &lanes)) in acc.iter_mut().zip(lanes).enumerate() {
        let taps: Vec<Value> = (offsets.iter())
            .map(|&at| vector::load_partial(b, input, at + 16 * v as i64, lanes))
            .collect();
        for &x in &taps {
            let greater = b.ins().fcmp(FloatCC::LessThan, *acc, x);
            let take = b.ins().bitcast(types::F32X4, MemFlagsData::new(), greater);
            *acc = b.ins().bitselect(take, x, *acc);
        }
        for pair in taps.chunks(2) {
            let either = b
                .ins()
                .fcmp(FloatCC::Unordered, pair[0], pair[pair.len() - 1]);
            nan = Some(nan.map_or(either, |n| b.ins().bor(n, either)));
        }
    }
    let Some(nan) = nan else {
        return acc;
    };
    let (slow, join) = (b.create_block(), b.create_block());
    let args: Vec<BlockArg> = acc.iter().map(|&v| BlockArg::Value(v)).collect();
    for _ in &acc {
        b.append_block_param(join, types::F32X4);
    }
    let any = b.ins().vany_true(nan);
    b.ins().brif(any, slow, &[], join, &args);
    b.switch_to_block(slow);
    let exact: Vec<BlockArg> = exact(b).into_iter().map(BlockArg::Value).collect();
    b.ins().jump(join, &exact);
    b.switch_to_block(join);
    b.block_params(join).to_vec()
}

/// One tap into the window's accumulator: the sum, or the reference's max
/// (`v` replaces `acc` if it is greater or NaN, so a NaN sticks and of equal
/// values the first stays): a compare, an unordered compare, an or and a
/// select, where Cranelift's IEEE `fmax` is nine instructions.
fn combine(spec: &PoolSpec, b: &mut FunctionBuilder, acc: Value, v: Value) -> Value {
    if !spec.max {
        return b.ins().fadd(acc, v);
    }
    let greater = b.ins().fcmp(FloatCC::LessThan, acc, v);
    let nan = b.ins().fcmp(FloatCC::Unordered, v, v);
    let take = b.ins().bor(greater, nan);
    let take = b.ins().bitcast(types::F32X4, MemFlagsData::new(), take);
    b.ins().bitselect(take, v, acc)
}
