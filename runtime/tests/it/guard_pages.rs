//! Generated code touches only its own buffers.
//!
//! Every buffer of a kernel call (input, weights, params, extra, output) gets
//! its own anonymous mapping, laid out as
//!
//! ```text
//! [ PROT_NONE page | ... unused ... buffer ][ PROT_NONE page ]
//!                                          ^ page boundary
//! ```
//!
//! so the buffer's last element ends exactly where a guard page begins (a read
//! or write even one `f32` past the end faults) and a guard page sits before
//! it (an underflow of up to a page past the buffer's page faults). Inputs are
//! made read-only once filled, so a write to anything but `output` faults as
//! well. Each buffer is exactly as long as the kernel's `Lengths`: the safety
//! contract of codegen says that is enough.
//!
//! Random kernels of every family (direct, grouped, 1x1 and dense
//! convolutions through `ConvSpec`, 1x1 ones over runs of pixels as
//! lowering runs them (`ConvSpec::over_pixels`), Winograd F(2x2) and F(4x4) 3x3
//! convolutions through `WinogradSpec`, depthwise through `DepthwiseSpec`, max
//! and average pools, windowed and global, through `PoolSpec`, and fused
//! separable pairs of two convolutions through `SeparableSpec` (small
//! images with a pointwise second half run whole, by blocks of output
//! channels), checked against the two references in turn, element-wise adds and scales, whole
//! or per channel, through `ElementwiseSpec`, and concat branches copied into
//! their channel slice through `ConcatSpec`, whose other channels must keep
//! the sentinel, and local response normalisations through `LrnSpec`) with random
//! fused epilogues (affine, prelu, activations, residual add) are compiled and run
//! over all rows (on the calling thread and split across a 2-thread team) and
//! over sub-ranges of rows, including out-of-range and reversed ones, which
//! the code must clamp. The output is compared with the reference kernels,
//! and rows outside the range asked for must keep a sentinel. One in three
//! convolutions and pools without a residual add writes its output into a
//! random channel slice of a wider tensor (`Kernel::sliced`, as a concat's
//! branch does in place), and so does the second half of one fused pair in
//! three: the channels outside the slice must keep the sentinel too.
//!
//! Softmax, the in-place kernel, gets only a guarded `output` holding its
//! data (every other pointer null): rows outside the range must keep theirs.
//!
//! A fault kills the test binary (that is the point of the test). The cases
//! come from a fixed seed; run with `--nocapture` to see each case before it
//! runs, so the last one printed is the one that faulted. `GUARD_PAGES_SEED`
//! and `GUARD_PAGES_CASES` override the seed and the number of cases.

#![cfg(all(unix, feature = "jit"))]

use cnnjit_codegen::concat::ConcatSpec;
use cnnjit_codegen::conv::ConvSpec;
use cnnjit_codegen::depthwise::DepthwiseSpec;
use cnnjit_codegen::elementwise::{Binary, ElementwiseSpec};
use cnnjit_codegen::lrn::LrnSpec;
use cnnjit_codegen::native::Isa;
use cnnjit_codegen::pool::PoolSpec;
use cnnjit_codegen::separable::{Half, SeparableSpec};
use cnnjit_codegen::softmax::SoftmaxSpec;
use cnnjit_codegen::winograd::WinogradSpec;
use cnnjit_codegen::{ChannelSlice, Epilogue, Jit, Kernel, Lengths};
use cnnjit_runtime::ir::{self, Activation, Conv2d, Hw, Padding, Pool2d, PoolKind};
use cnnjit_runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use cnnjit_runtime::reference::{self, Dims};
use cnnjit_runtime::team::Team;
use std::ptr::NonNull;

/// The system's page size in bytes.
fn page_size() -> usize {
    // SAFETY: `sysconf` only reads a configuration value; it has no
    // preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    assert!(page > 0, "sysconf(_SC_PAGESIZE) failed");
    page as usize
}

/// `len` `f32`s in their own mapping, between two `PROT_NONE` guard pages,
/// the last element ending exactly at the trailing guard page.
struct Guarded {
    /// The whole mapping (leading guard, data pages, trailing guard): its
    /// start and length in bytes; `None` for an empty buffer.
    map: Option<(NonNull<libc::c_void>, usize)>,
    /// The first element (dangling, and never dereferenced, when empty).
    data: NonNull<f32>,
    len: usize,
}

impl Guarded {
    /// `len` zeros.
    fn new(len: usize) -> Guarded {
        if len == 0 {
            return Guarded {
                map: None,
                data: NonNull::dangling(),
                len,
            };
        }
        let page = page_size();
        let bytes = len * std::mem::size_of::<f32>();
        let body = bytes.div_ceil(page) * page;
        let total = body + 2 * page;
        // SAFETY: a fresh private anonymous mapping at an address the kernel
        // picks: it overlaps no existing memory and has no file behind it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap of {total} bytes failed");
        let base = NonNull::new(base).expect("mmap returned null");
        let guarded = Guarded {
            map: Some((base, total)),
            // SAFETY: `page + body - bytes <= total`, so the pointer stays
            // inside the mapping; it is 4-aligned since `base` is page
            // aligned and `page + body - bytes` is a multiple of 4.
            data: unsafe { base.cast::<u8>().add(page + body - bytes).cast::<f32>() },
            len,
        };
        guarded.protect(libc::PROT_READ | libc::PROT_WRITE);
        guarded
    }

    /// A copy of `values`.
    fn from_slice(values: &[f32]) -> Guarded {
        let mut g = Guarded::new(values.len());
        g.as_mut_slice().copy_from_slice(values);
        g
    }

    /// Sets the protection of the data pages (not the guards) to `prot`.
    fn protect(&self, prot: libc::c_int) {
        let Some((base, total)) = self.map else {
            return;
        };
        let page = page_size();
        // SAFETY: `[base + page, base + total - page)` is the page-aligned
        // middle of the mapping this `Guarded` owns; changing its protection
        // touches no other memory. Callers only make it read-only while no
        // `&mut` to it is alive (`freeze` takes `&mut self`).
        let rc = unsafe {
            libc::mprotect(
                base.cast::<u8>().add(page).cast().as_ptr(),
                total - 2 * page,
                prot,
            )
        };
        assert_eq!(rc, 0, "mprotect failed");
    }

    /// Makes the data read-only: a write to it then faults.
    fn freeze(&mut self) {
        self.protect(libc::PROT_READ);
    }

    fn as_slice(&self) -> &[f32] {
        // SAFETY: `data` points to `len` `f32`s inside the readable pages of
        // the mapping (or is dangling with `len == 0`, which a slice allows),
        // initialised (zero-filled by `mmap`, then written as `f32`s), and
        // alive as long as `self`; `&self` excludes any `&mut` to them.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference.
        // Only unfrozen buffers are written (a frozen one would fault, not
        // corrupt memory).
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some((base, total)) = self.map {
            // SAFETY: the mapping was created by `mmap` in `new` with exactly
            // this start and length, is owned by `self` alone, and no slice of
            // it outlives `self` (they borrow it).
            let rc = unsafe { libc::munmap(base.as_ptr(), total) };
            debug_assert_eq!(rc, 0, "munmap failed");
        }
    }
}

/// SplitMix64: a small deterministic generator, so a case is reproducible
/// from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in `[-bound, bound)`.
    fn value(&mut self, bound: f32) -> f32 {
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * bound
    }

    fn values(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n).map(|_| self.value(bound)).collect()
    }

    /// Uniform in `lo..=hi`, signed.
    fn signed(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// One step of the epilogue as the test applies it (the activation in the
/// IR's form, for the reference).
#[derive(Clone, Copy, Debug)]
enum Step {
    Affine,
    PRelu,
    Act(Activation),
    Add,
}

/// The IR op of a case, for the reference.
#[derive(Clone, Copy, Debug)]
enum Op {
    Conv(Conv2d),
    Pool(Pool2d),
    /// `input op extra`.
    Elementwise(Binary),
    /// A concat branch at this channel offset.
    Concat(usize),
    /// Local response normalisation.
    Lrn(ir::Lrn),
}

/// One random configuration: the IR op (for the reference), the kernel, the
/// epilogue, and the channel slice of a wider tensor the kernel writes into,
/// if it does (`output` is then the slice's own dimensions).
#[derive(Debug)]
struct Case {
    input: Dims,
    output: Dims,
    op: Op,
    kernel: Kernel,
    steps: Vec<Step>,
    slice: Option<ChannelSlice>,
}

fn random_activation(rng: &mut Rng) -> Activation {
    match rng.range(0, 8) {
        0 => Activation::Relu,
        1 => Activation::Relu6,
        2 => Activation::Tanh,
        3 => Activation::Sigmoid,
        4 => Activation::Swish,
        5 => Activation::HardSwish,
        6 => Activation::HardSigmoid,
        7 => Activation::Gelu,
        _ => Activation::LeakyRelu(0.01 + rng.value(0.5).abs()),
    }
}

fn hw(v: [usize; 2]) -> Hw {
    Hw {
        h: v[0] as u32,
        w: v[1] as u32,
    }
}

/// A random kernel with a random epilogue, or `None` if its output would be
/// empty. Half the cases are direct convolutions (grouped or not); one in ten
/// is a dense layer (a 1x1 convolution of a 1x1 input, whose rows are blocks
/// of output channels) with more channels, to run the channel loop and the
/// block loop longer; two in ten are depthwise
/// (one group per channel, multiplier 1), two in ten pools (max or
/// average, windowed or global) and one in ten a Winograd 3x3 convolution,
/// which have kernels of their own. One case in eleven is instead an
/// element-wise add or scale, one a concat branch and one a local response
/// normalisation.
fn random_case(rng: &mut Rng) -> Option<Case> {
    match rng.range(0, 10) {
        0 => return Some(random_elementwise(rng)),
        1 => return Some(random_branch(rng)),
        2 => return Some(random_lrn(rng)),
        _ => {}
    }
    let (steps, epilogue) = random_epilogue(rng, true);
    let (input, output, op, kernel) = match rng.range(0, 10) {
        0 => random_conv(rng, ConvKind::Dense, None, epilogue)?,
        1 | 2 => random_conv(rng, ConvKind::Depthwise, None, epilogue)?,
        3 | 4 => random_pool(rng, epilogue)?,
        5 => random_conv(rng, ConvKind::Winograd, None, epilogue)?,
        6 => random_conv(rng, ConvKind::Pointwise, None, epilogue)?,
        _ => random_conv(rng, ConvKind::Direct, None, epilogue)?,
    };
    let (kernel, slice) = maybe_sliced(rng, kernel, output.c);
    Some(Case {
        input,
        output,
        op,
        kernel,
        steps,
        slice,
    })
}

/// One time in three, `kernel` writing its `channels` into a random channel
/// slice of a wider tensor, if it can (no residual add), and that slice.
fn maybe_sliced(rng: &mut Rng, kernel: Kernel, channels: usize) -> (Kernel, Option<ChannelSlice>) {
    let first = rng.range(0, 6);
    let slice = ChannelSlice {
        first,
        total: first + channels + rng.range(0, 6),
    };
    match kernel.clone().sliced(slice) {
        Some(sliced) if rng.range(0, 2) == 0 => (sliced, Some(slice)),
        _ => (kernel, None),
    }
}

/// The reference output `want` of `dims`, spread into its `slice` of a wider
/// tensor whose other channels are the sentinel (the kernel must not write
/// them), and the wider tensor's dimensions.
fn widen(want: Vec<f32>, dims: Dims, slice: Option<ChannelSlice>) -> (Vec<f32>, Dims) {
    let Some(ChannelSlice { first, total }) = slice else {
        return (want, dims);
    };
    let wide = Dims::new(dims.h, dims.w, total);
    let mut out = vec![f32::from_bits(SENTINEL); wide.len()];
    reference::concat_part(&want, dims, first, wide, &mut out).expect("the slice fits");
    (out, wide)
}

/// A random concat branch: its pixels are the kernel's rows, so the output
/// is `pixels x 1 x total`.
fn random_branch(rng: &mut Rng) -> Case {
    let (pixels, channels) = (rng.range(1, 40), rng.range(1, 19));
    let (offset, after) = (rng.range(0, 9), rng.range(0, 9));
    let total = offset + channels + after;
    let spec = ConcatSpec {
        pixels,
        channels,
        offset,
        total,
    };
    Case {
        input: Dims::new(pixels, 1, channels),
        output: Dims::new(pixels, 1, total),
        op: Op::Concat(offset),
        kernel: Kernel::Concat(spec),
        steps: Vec::new(),
        slice: None,
    }
}

/// A random local response normalisation over pixels of odd channel counts,
/// windows wider than the channels and powers of every kind the kernel
/// distinguishes, with any epilogue; its pixels are its rows.
fn random_lrn(rng: &mut Rng) -> Case {
    let (steps, epilogue) = random_epilogue(rng, true);
    let (pixels, c) = (rng.range(1, 30), rng.range(1, 19));
    let op = ir::Lrn {
        size: rng.range(1, 12) as u32,
        alpha: rng.value(2.0).abs(),
        beta: [0.75, 0.5, 1.0, 0.1 + rng.value(1.5).abs()][rng.range(0, 3)],
        k: 0.1 + rng.value(2.0).abs(),
    };
    let shape = ir::Shape::Volume {
        h: pixels as u32,
        w: 1,
        c: c as u32,
    };
    let spec = LrnSpec::new(&op, shape, epilogue).expect("a positive base");
    Case {
        input: Dims::new(pixels, 1, c),
        output: Dims::new(pixels, 1, c),
        op: Op::Lrn(op),
        kernel: Kernel::Lrn(spec),
        steps,
        slice: None,
    }
}

/// A random add or scale (a per-channel gate one time in two), odd channel
/// counts included, with an epilogue without add (`extra` is its operand).
fn random_elementwise(rng: &mut Rng) -> Case {
    let (steps, epilogue) = random_epilogue(rng, false);
    let (h, w, c) = (rng.range(1, 9), rng.range(1, 9), rng.range(1, 19));
    let shape = ir::Shape::Volume {
        h: h as u32,
        w: w as u32,
        c: c as u32,
    };
    let op = if rng.range(0, 1) == 0 {
        Binary::Add
    } else {
        Binary::Mul
    };
    let other = if op == Binary::Mul && rng.range(0, 1) == 0 {
        ir::Shape::Volume {
            h: 1,
            w: 1,
            c: c as u32,
        }
    } else {
        shape
    };
    let spec = ElementwiseSpec::new(op, shape, other, epilogue).expect("operands of one shape");
    Case {
        input: Dims::new(h, w, c),
        output: Dims::new(h, w, c),
        op: Op::Elementwise(op),
        kernel: Kernel::Elementwise(spec),
        steps,
        slice: None,
    }
}

/// Up to two random epilogue steps (a residual add only if `add`), as the
/// test applies them and as the kernel does.
fn random_epilogue(rng: &mut Rng, add: bool) -> (Vec<Step>, Vec<Epilogue>) {
    let steps: Vec<Step> = (0..rng.range(0, 3))
        .map(|_| match rng.range(0, 4) {
            0 => Step::Affine,
            1 if add => Step::Add,
            2 => Step::PRelu,
            _ => Step::Act(random_activation(rng)),
        })
        .collect();
    let epilogue = steps
        .iter()
        .map(|s| match *s {
            Step::Affine => Epilogue::Affine,
            Step::PRelu => Epilogue::PRelu,
            Step::Act(a) => Epilogue::Act(a),
            Step::Add => Epilogue::Add,
        })
        .collect();
    (steps, epilogue)
}

/// A random separable pair: a depthwise or direct convolution with an
/// epilogue without add, then a direct (two in four), pointwise or depthwise
/// convolution of its output with any epilogue, which may write a channel
/// slice of a wider tensor ([`maybe_sliced`]); and the fused kernel.
fn random_pair(rng: &mut Rng) -> Option<(Case, Case, Kernel)> {
    let half = |rng: &mut Rng, kind, on: Option<Dims>, add| {
        let (steps, epilogue) = random_epilogue(rng, add);
        let (input, output, op, kernel) = random_conv(rng, kind, on, epilogue)?;
        // Only the second half's output is a tensor that may be a slice.
        let (kernel, slice) = match on {
            Some(_) => maybe_sliced(rng, kernel, output.c),
            None => (kernel, None),
        };
        let half = match &kernel {
            Kernel::Depthwise(spec) => Half::Depthwise(spec.clone()),
            Kernel::Conv(spec) => Half::Conv(spec.clone()),
            _ => return None,
        };
        let case = Case {
            input,
            output,
            op,
            kernel,
            steps,
            slice,
        };
        Some((case, half))
    };
    let kind = if rng.range(0, 1) == 0 {
        ConvKind::Depthwise
    } else {
        ConvKind::Direct
    };
    let (first, a) = half(rng, kind, None, false)?;
    let kind = match rng.range(0, 3) {
        0 => ConvKind::Depthwise,
        // A 1x1 convolution of the first's output: run over blocks of rows.
        1 => ConvKind::Dense,
        _ => ConvKind::Direct,
    };
    let (second, b) = half(rng, kind, Some(first.output), true)?;
    let kernel = Kernel::Separable(SeparableSpec::new(a, b)?);
    Some((first, second, kernel))
}

/// Which convolution [`random_conv`] draws.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    Direct,
    /// 1x1, stride 1, no padding: a dense layer, or a pointwise convolution `on` a tensor.
    Dense,
    Depthwise,
    /// 3x3, stride 1, F(2x2) or F(4x4).
    Winograd,
    /// 1x1, stride 1, no padding, on its own: over runs of pixels
    /// ([`ConvSpec::over_pixels`]), as lowering runs it.
    Pointwise,
}

/// A random convolution: input h, w in 1..=9 (or `on`, in one group),
/// channels per group 1..=8 in 1 or 2 groups, 1..=50 output channels per
/// group (up to three native blocks of 16 and a tail: on AVX-512 an even or
/// odd number of full blocks, paired on the wide tile, with or without a
/// partial one; 1..=40 after `on`, 1..=99 for a 1x1 after `on`), kernel
/// 1..=4 (depthwise: 1..=5, on inputs up to 20 wide, one in two 3 wide,
/// undilated at stride 1 along the rows with 256..=280 channels; pointwise:
/// 1x1 over runs of pixels, inputs up to 15 a side), stride 1..=3, dilation 1..=2,
/// symmetric padding 0..=2 per axis; a dense one 1..=64 inputs to 1..=140
/// outputs (the native GEMV's two blocks of 64 and a tail); direct, dense,
/// pointwise and depthwise ones on each native ISA the host has (a dense one
/// then on its native GEMV) or in pure Cranelift, evenly.
fn random_conv(
    rng: &mut Rng,
    kind: ConvKind,
    on: Option<Dims>,
    epilogue: Vec<Epilogue>,
) -> Option<(Dims, Dims, Op, Kernel)> {
    let depthwise = kind == ConvKind::Depthwise;
    // One Winograd conv in three has 362 to 400 channels in and out: `U`
    // then takes over 8 MiB (F(2x2): 16 x 368 x 362 x 4 bytes at least), and
    // its rows are runs of tiles across tile rows (`WinogradSpec::runs`).
    let wide = kind == ConvKind::Winograd && on.is_none() && rng.range(0, 2) == 0;
    // One depthwise conv in two has 256 to 280 channels and a 3-wide
    // undilated kernel at stride 1 along the rows: AVX2's kernel then sums
    // two channel vectors per block (`native_depthwise`'s pairs), a path
    // fewer channels never take.
    let deep = kind == ConvKind::Depthwise && on.is_none() && rng.range(0, 1) == 0;
    let (h, w, groups, in_per_group, out_per_group) = match (kind, on) {
        (ConvKind::Depthwise, Some(d)) => (d.h, d.w, d.c, 1, 1),
        // Up to seven native blocks after a pair's first half: a small
        // image then runs whole, by blocks of channels.
        (ConvKind::Dense, Some(d)) => (d.h, d.w, 1, d.c, rng.range(1, 100)),
        (_, Some(d)) => (d.h, d.w, 1, d.c, rng.range(1, 40)),
        (ConvKind::Dense, None) => (1, 1, 1, rng.range(1, 64), rng.range(1, 140)),
        (ConvKind::Depthwise, None) if deep => {
            (rng.range(3, 8), rng.range(3, 12), rng.range(256, 280), 1, 1)
        }
        (ConvKind::Depthwise, None) => (rng.range(1, 9), rng.range(1, 20), rng.range(1, 19), 1, 1),
        (ConvKind::Winograd, None) if wide => (
            rng.range(1, 9),
            rng.range(1, 9),
            1,
            rng.range(362, 400),
            rng.range(362, 400),
        ),
        (ConvKind::Winograd, None) => (
            rng.range(1, 13),
            rng.range(1, 13),
            1,
            rng.range(1, 12),
            rng.range(1, 50),
        ),
        (ConvKind::Pointwise, None) => (
            rng.range(1, 16),
            rng.range(1, 16),
            1,
            rng.range(1, 20),
            rng.range(1, 40),
        ),
        (ConvKind::Direct, None) => (
            rng.range(1, 9),
            rng.range(1, 9),
            rng.range(1, 2),
            rng.range(1, 8),
            rng.range(1, 50),
        ),
    };
    let (kernel, stride, dilation, pad) = if matches!(kind, ConvKind::Dense | ConvKind::Pointwise) {
        ([1, 1], [1, 1], [1, 1], [0, 0])
    } else if kind == ConvKind::Winograd {
        ([3, 3], [1, 1], [1, 1], [rng.range(0, 1), rng.range(0, 1)])
    } else {
        // Depthwise up to 5 wide: the native kernel's sliding window is for
        // widths 3 and 5.
        let widest = if depthwise { 5 } else { 4 };
        // The pairs slide their window: undilated along the rows.
        let (kernel_width, stride_x, dilation_x) = if deep {
            (3, 1, 1)
        } else {
            (rng.range(1, widest), rng.range(1, 3), rng.range(1, 2))
        };
        (
            [rng.range(1, widest), kernel_width],
            [rng.range(1, 3), stride_x],
            [rng.range(1, 2), dilation_x],
            [rng.range(0, 2), rng.range(0, 2)],
        )
    };
    // PyTorch's output size, symmetric padding: floor((n + 2p - d(f-1) - 1) / s) + 1.
    let out_len = |n: usize, axis: usize| {
        let span = (n + 2 * pad[axis]) as i64 - (dilation[axis] * (kernel[axis] - 1)) as i64 - 1;
        (span >= 0).then(|| span as usize / stride[axis] + 1)
    };
    let (ho, wo) = (out_len(h, 0)?, out_len(w, 1)?);
    let (c, k) = (groups * in_per_group, groups * out_per_group);
    let op = Conv2d {
        out_channels: k as u32,
        kernel: hw(kernel),
        stride: hw(stride),
        dilation: hw(dilation),
        padding: Padding {
            top: pad[0] as u32,
            left: pad[1] as u32,
            bottom: pad[0] as u32,
            right: pad[1] as u32,
        },
        groups: groups as u32,
        bias: true,
        depthwise,
    };
    let kernel = if depthwise {
        Kernel::Depthwise(DepthwiseSpec {
            channels: c,
            input: [h, w],
            output: [ho, wo],
            kernel,
            stride,
            dilation,
            pad,
            epilogue,
            slice: None,
            native: native(rng),
        })
    } else {
        let spec = ConvSpec {
            input: [h, w, c],
            output: [ho, wo, k],
            kernel,
            stride,
            dilation,
            pad,
            groups,
            epilogue,
            native: native(rng),
            slice: None,
        };
        match kind {
            ConvKind::Winograd => {
                let tile = [2, 4][rng.range(0, 1)];
                Kernel::Winograd(WinogradSpec::of_conv(&spec, tile).expect("a 3x3 stride-1 conv"))
            }
            ConvKind::Pointwise => Kernel::Conv(spec.over_pixels()),
            _ => Kernel::Conv(spec),
        }
    };
    Some((
        Dims::new(h, w, c),
        Dims::new(ho, wo, k),
        Op::Conv(op),
        kernel,
    ))
}

/// A native ISA the host has, or none (pure Cranelift), evenly.
fn native(rng: &mut Rng) -> Option<Isa> {
    Isa::on_host()
        .get(rng.range(0, Isa::on_host().len()))
        .copied()
}

/// A random pool: max or average, window 1..=4, stride 1..=3, padding up to
/// half the window on each side (PyTorch's limit, asymmetric allowed), ceil
/// mode and `count_include_pad` either way; one in four global.
fn random_pool(rng: &mut Rng, epilogue: Vec<Epilogue>) -> Option<(Dims, Dims, Op, Kernel)> {
    let (h, w, c) = (rng.range(1, 9), rng.range(1, 9), rng.range(1, 19));
    let kind = if rng.range(0, 1) == 0 {
        PoolKind::Max
    } else {
        PoolKind::Avg
    };
    let input = Dims::new(h, w, c);
    let shape = ir::Shape::Volume {
        h: h as u32,
        w: w as u32,
        c: c as u32,
    };
    if rng.range(0, 3) == 0 {
        let op = Pool2d {
            kind,
            kernel: hw([h, w]),
            stride: Hw::square(1),
            padding: Padding::default(),
            ceil: false,
            count_include_pad: true,
        };
        let spec = PoolSpec::of_global(kind, shape, epilogue)?;
        return Some((input, Dims::new(1, 1, c), Op::Pool(op), Kernel::Pool(spec)));
    }
    let kernel = [rng.range(1, 4), rng.range(1, 4)];
    let mut pad = || rng.range(0, kernel[0] / 2) as u32;
    let (top, bottom) = (pad(), pad());
    let mut pad = || rng.range(0, kernel[1] / 2) as u32;
    let (left, right) = (pad(), pad());
    let op = Pool2d {
        kind,
        kernel: hw(kernel),
        stride: hw([rng.range(1, 3), rng.range(1, 3)]),
        padding: Padding {
            top,
            left,
            bottom,
            right,
        },
        ceil: rng.range(0, 1) == 0,
        count_include_pad: rng.range(0, 1) == 0,
    };
    let output = reference::pool2d_output_dims(&op, input).ok()?;
    let out_shape = ir::Shape::Volume {
        h: output.h as u32,
        w: output.w as u32,
        c: output.c as u32,
    };
    let spec = PoolSpec::of_pool(&op, shape, out_shape, epilogue)?;
    Some((input, output, Op::Pool(op), Kernel::Pool(spec)))
}

/// The data of one case, in PyTorch's layouts.
struct Data {
    input: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// The epilogue's per-channel vectors in order: `scale` and `shift` per
    /// `Affine` step, the slopes per `PRelu` step.
    vectors: Vec<Vec<f32>>,
    extra: Vec<f32>,
}

fn random_data(case: &Case, lengths: &Lengths, rng: &mut Rng) -> Data {
    let k = case.output.c;
    let mut vectors = Vec::new();
    for step in &case.steps {
        match step {
            Step::Affine => vectors.extend([rng.values(k, 2.0), rng.values(k, 1.0)]),
            Step::PRelu => vectors.push(rng.values(k, 1.0)),
            Step::Act(_) | Step::Add => {}
        }
    }
    let (weight, bias) = match case.op {
        Op::Conv(op) => {
            let fan_in = case.input.c / op.groups as usize * (op.kernel.h * op.kernel.w) as usize;
            let bound = 1.0 / (fan_in as f32).sqrt();
            (rng.values(k * fan_in, bound), rng.values(k, bound))
        }
        // A pool or an element-wise op has no weights, and the bias of its
        // fused epilogue is zero.
        Op::Pool(_) | Op::Elementwise(_) | Op::Concat(_) | Op::Lrn(_) => (Vec::new(), vec![0.0; k]),
    };
    Data {
        input: rng.values(lengths.input, 2.0),
        weight,
        bias,
        vectors,
        extra: rng.values(lengths.extra, 2.0),
    }
}

/// The reference output: the conv, then the epilogue applied element by element.
fn expected(case: &Case, data: &Data) -> Vec<f32> {
    let k = case.output.c;
    let mut out = vec![0.0; case.output.len()];
    let dims = match &case.op {
        Op::Conv(op) => reference::conv2d(
            op,
            &data.input,
            case.input,
            &data.weight,
            Some(&data.bias),
            &mut out,
        ),
        Op::Pool(op) => reference::pool2d(op, &data.input, case.input, &mut out),
        Op::Elementwise(Binary::Add) => {
            reference::add(&data.input, &data.extra, &mut out).map(|()| case.output)
        }
        // Other branches' channels are the sentinel: the branch must not write them.
        &Op::Concat(offset) => {
            out.fill(f32::from_bits(SENTINEL));
            reference::concat_part(&data.input, case.input, offset, case.output, &mut out)
                .map(|()| case.output)
        }
        Op::Elementwise(Binary::Mul) => {
            reference::scale(&data.input, case.input, &data.extra, &mut out).map(|()| case.output)
        }
        Op::Lrn(op) => {
            reference::lrn(op, &data.input, case.input.c, &mut out).map(|()| case.output)
        }
    }
    .expect("the reference accepts the case");
    assert_eq!(dims, case.output, "output size of {case:?}");
    for (i, x) in out.iter_mut().enumerate() {
        let ch = i % k;
        let mut vectors = data.vectors.iter();
        let mut next = || &vectors.next().expect("the step's vectors")[ch];
        for step in &case.steps {
            match *step {
                Step::Affine => {
                    let (scale, shift) = (*next(), *next());
                    *x = *x * scale + shift;
                }
                // max(x, 0) + slope min(x, 0), written out here.
                Step::PRelu => {
                    let slope = *next();
                    *x = x.max(0.0) + slope * x.min(0.0);
                }
                Step::Act(a) => *x = reference::activate(a, *x),
                Step::Add => *x += data.extra[i],
            }
        }
    }
    out
}

/// Written nowhere by a kernel: a NaN with a payload no arithmetic produces.
const SENTINEL: u32 = 0x7fc0_dead;

/// Checks `got` against `want` on output rows `[lo, hi)` (element `i` is in
/// row `row_of(i)`) and against the sentinel elsewhere.
fn check(
    got: &[f32],
    want: &[f32],
    row_of: impl Fn(usize) -> usize,
    (lo, hi): (usize, usize),
    what: &str,
) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let row = row_of(i);
        if (lo..hi).contains(&row) && w.to_bits() != SENTINEL {
            // Equal (infinities included), both NaN, or within 1e-4 relative + 1e-5 absolute.
            let close =
                g == w || (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-4 * w.abs() + 1e-5;
            assert!(
                close,
                "{what}: element {i} (row {row}) is {g}, the reference {w}"
            );
        } else {
            assert_eq!(
                g.to_bits(),
                SENTINEL,
                "{what}: element {i} (row {row}) is outside rows [{lo}, {hi}) or the slice but was written ({g})"
            );
        }
    }
}

/// A case's weights and per-channel vectors, packed as its kernel reads them.
fn pack(case: &Case, data: &Data) -> (Vec<f32>, Vec<f32>) {
    let kernel = &case.kernel;
    let mut params = kernel.pack_vector(&data.bias);
    for v in &data.vectors {
        params.extend(kernel.pack_vector(v));
    }
    (kernel.pack_weights(&data.weight, None), params)
}

/// Compiles, runs and checks one case; whether it ran over its shortcut.
fn run_case(index: usize, case: &Case, rng: &mut Rng, team: &Team) -> bool {
    let data = random_data(case, &case.kernel.lengths(), rng);
    let want = expected(case, &data);
    let (weights, params) = pack(case, &data);
    let buffers = Packed {
        input: &data.input,
        weights: &weights,
        params: &params,
        extra: &data.extra,
    };
    let what = format!("case {index}: {case:?}");
    let (want, dims) = widen(want, case.output, case.slice);
    run_kernel(&what, &case.kernel, buffers, &want, dims, rng, team)
}

/// Compiles, runs and checks one separable pair against the two
/// convolutions' references, one after the other; whether it ran over its
/// shortcut.
fn run_pair(
    index: usize,
    (first, second, kernel): &(Case, Case, Kernel),
    rng: &mut Rng,
    team: &Team,
) -> bool {
    let data = random_data(first, &first.kernel.lengths(), rng);
    let mut then = random_data(second, &second.kernel.lengths(), rng);
    then.input = expected(first, &data);
    let want = expected(second, &then);
    let (w1, p1) = pack(first, &data);
    let (w2, p2) = pack(second, &then);
    let (weights, params) = ([w1, w2].concat(), [p1, p2].concat());
    let buffers = Packed {
        input: &data.input,
        weights: &weights,
        params: &params,
        extra: &then.extra,
    };
    let what = format!("pair {index}: {kernel:?}");
    let (want, dims) = widen(want, second.output, second.slice);
    run_kernel(&what, kernel, buffers, &want, dims, rng, team)
}

/// A kernel's read-only buffers, packed.
struct Packed<'a> {
    input: &'a [f32],
    weights: &'a [f32],
    params: &'a [f32],
    extra: &'a [f32],
}

/// Compiles `kernel`, runs it on `data` in guarded buffers over all rows and
/// sub-ranges of rows, and checks its output (`dims`) against `want`; and,
/// if it adds a shortcut, over the shortcut (which it then says).
fn run_kernel(
    what: &str,
    kernel: &Kernel,
    data: Packed<'_>,
    want: &[f32],
    dims: Dims,
    rng: &mut Rng,
    team: &Team,
) -> bool {
    let lengths = kernel.lengths();
    let mut jit = Jit::new().expect("a JIT for this host");
    let id = jit.compile(kernel).expect("the kernel compiles");
    let program = jit.finish().expect("the program links");
    assert_eq!(data.weights.len(), lengths.weights, "{what}");
    assert_eq!(data.params.len(), lengths.params, "{what}");

    let mut input = Guarded::from_slice(data.input);
    let mut weights = Guarded::from_slice(data.weights);
    let mut params = Guarded::from_slice(data.params);
    let mut extra = Guarded::from_slice(&data.extra[..lengths.extra]);
    for g in [&mut input, &mut weights, &mut params, &mut extra] {
        g.freeze();
    }
    let mut output = Guarded::new(lengths.output);
    let rows = lengths.rows;
    // The kernel's rows are output rows (runs of pixels of a pointwise
    // convolution), runs of tiles of a Winograd kernel, blocks of rows of a
    // pointwise separable pair, or blocks of output channels, at every
    // pixel, of a convolution with one output pixel or whose weights
    // outweigh its input (from the slice's first channel, if it writes one).
    let by_channels = match kernel {
        Kernel::Conv(spec) if spec.rows_are_blocks() => Some(spec),
        _ => None,
    };
    let row_len = match kernel {
        _ if by_channels.is_some() => by_channels.map_or(1, ConvSpec::block),
        Kernel::Separable(spec) => spec.block_rows() * dims.w * dims.c,
        Kernel::Conv(spec) => spec.output[1] * dims.c,
        _ => dims.w * dims.c,
    };
    let first = by_channels.map_or(0, |spec| spec.slice.map_or(0, |s| s.first));
    let row_of = |i: usize| match (by_channels, kernel) {
        // A block's channels at every pixel.
        (Some(_), _) => (i % dims.c).saturating_sub(first) / row_len,
        // Run `r` of `n` holds tiles `[r T / n, (r + 1) T / n)` of the `T`
        // tiles, row-major (`WinogradSpec::runs`).
        (None, Kernel::Winograd(spec)) => {
            let (pixel, [th, tw]) = (i / dims.c, spec.tiles());
            let (y, x) = (pixel / dims.w, pixel % dims.w);
            let tile = y / spec.tile * tw + x / spec.tile;
            let (tiles, runs) = (th * tw, spec.runs());
            (0..runs)
                .rev()
                .find(|r| r * tiles / runs <= tile)
                .expect("run 0 starts at tile 0")
        }
        (None, _) => i / row_len,
    };

    // All rows through the runtime's entry point, alone and on two threads.
    for (split, label) in [(None, "all rows"), (Some(team), "all rows, 2 threads")] {
        output.as_mut_slice().fill(f32::from_bits(SENTINEL));
        let mut scratch = Guarded::new(scratch_len(&lengths, split));
        let buffers = Buffers {
            input: input.as_slice(),
            weights: weights.as_slice(),
            params: params.as_slice(),
            extra: Extra::Buffer(extra.as_slice()),
            output: output.as_mut_slice(),
            scratch: scratch.as_mut_slice(),
        };
        call_kernel(&program, id, &lengths, buffers, split).expect("the buffers fit");
        check(
            output.as_slice(),
            want,
            row_of,
            (0, rows),
            &format!("{what}, {label}"),
        );
    }

    // Over its shortcut (`plan::Step::over`): a kernel whose epilogue adds
    // one reads it from the output, which holds it when the call starts,
    // alone and on two threads, and writes bitwise what it wrote from a
    // shortcut of its own above.
    let adds_shortcut = lengths.extra > 0 && !matches!(kernel, Kernel::Elementwise(_));
    if adds_shortcut {
        assert_eq!(lengths.extra, lengths.output, "{what}");
        let apart = output.as_slice().to_vec();
        for (split, label) in [
            (None, "over its shortcut"),
            (Some(team), "over its shortcut, 2 threads"),
        ] {
            output.as_mut_slice().copy_from_slice(extra.as_slice());
            let mut scratch = Guarded::new(scratch_len(&lengths, split));
            let buffers = Buffers {
                input: input.as_slice(),
                weights: weights.as_slice(),
                params: params.as_slice(),
                extra: Extra::Output,
                output: output.as_mut_slice(),
                scratch: scratch.as_mut_slice(),
            };
            call_kernel(&program, id, &lengths, buffers, split).expect("the buffers fit");
            let differs = (output.as_slice().iter().zip(&apart))
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(
                differs, None,
                "{what}, {label}: the first element that differs"
            );
        }
    }

    // Sub-ranges of rows, straight to the code, out-of-range and reversed ones
    // included: the kernel clamps them to [0, rows).
    let r = rows as i64;
    let mut ranges = vec![
        (0, r),
        (-5, r + 7),
        (r + 7, -5),
        (-5, 0),
        (r, r + 7),
        (r / 2, r / 2),
        (r - 1, r),
        (3, 1),
    ];
    for _ in 0..4 {
        ranges.push((rng.signed(-5, r + 7), rng.signed(-5, r + 7)));
    }
    let function = program.function(id);
    let mut scratch = Guarded::new(lengths.scratch);
    for (begin, end) in ranges {
        output.as_mut_slice().fill(f32::from_bits(SENTINEL));
        let extra_ptr = if lengths.extra > 0 {
            extra.as_slice().as_ptr()
        } else {
            std::ptr::null()
        };
        // SAFETY: every buffer is exactly as long as the kernel's `Lengths`
        // (checked by the asserts above and by construction), the code
        // outlives the call (`program`), and nothing else touches `output`.
        // `[begin, end)` may lie outside `0 <= begin <= end <= rows`: the
        // kernel clamps it to constant bounds, which is what this exercises; a
        // stray access lands in a guard page (or a read-only page) and kills
        // the test rather than corrupting memory silently.
        unsafe {
            function(
                input.as_slice().as_ptr(),
                weights.as_slice().as_ptr(),
                params.as_slice().as_ptr(),
                extra_ptr,
                output.as_mut_slice().as_mut_ptr(),
                scratch.as_mut_slice().as_mut_ptr(),
                begin,
                end,
            )
        };
        let lo = begin.clamp(0, r) as usize;
        let hi = end.clamp(0, r) as usize;
        check(
            output.as_slice(),
            want,
            row_of,
            (lo, hi.max(lo)),
            &format!("{what}, rows [{begin}, {end})"),
        );
    }
    adds_shortcut
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn generated_code_touches_only_its_own_buffers() {
    let seed = env_u64("GUARD_PAGES_SEED", 0x6775_6172_645f_7067);
    let cases = env_u64("GUARD_PAGES_CASES", 128) as usize;
    let team = Team::new(2).expect("a 2-thread team");
    let mut rng = Rng(seed);
    let (mut run, mut skipped, mut padded, mut over) = (0, 0, 0, 0);
    while run < cases {
        let Some(case) = random_case(&mut rng) else {
            skipped += 1;
            continue;
        };
        eprintln!("seed {seed:#x}, case {run}: {case:?}");
        over += usize::from(run_case(run, &case, &mut rng, &team));
        run += 1;
        // A kernel that copies its input, padded, into its scratch.
        padded += usize::from(matches!(&case.kernel, Kernel::Conv(spec) if spec.pads_input()));
    }
    eprintln!("{run} cases run ({padded} on a padded copy, {over} over their shortcut), {skipped} configurations skipped (empty output)");
    assert!(
        cases < 32 || padded > 0,
        "no kernel drawn runs on a padded copy"
    );
    assert!(cases < 32 || over > 0, "no kernel drawn adds a shortcut");
}

#[test]
fn fused_separable_pairs_touch_only_their_own_buffers() {
    let seed = env_u64("GUARD_PAGES_SEED", 0x7061_6972_735f_6770);
    let cases = env_u64("GUARD_PAGES_CASES", 128) as usize / 2;
    let team = Team::new(2).expect("a 2-thread team");
    let mut rng = Rng(seed);
    let (mut run, mut over) = (0, 0);
    while run < cases {
        let Some(pair) = random_pair(&mut rng) else {
            continue;
        };
        eprintln!("seed {seed:#x}, pair {run}: {:?}", pair.2);
        over += usize::from(run_pair(run, &pair, &mut rng, &team));
        run += 1;
    }
    eprintln!("{run} pairs run, {over} over their shortcut");
    assert!(cases < 32 || over > 0, "no pair drawn adds a shortcut");
}

#[test]
fn softmax_touches_only_its_output() {
    let seed = env_u64("GUARD_PAGES_SEED", 0x736f_6674_6d61_7867);
    let mut rng = Rng(seed);
    for case in 0..env_u64("GUARD_PAGES_CASES", 128) / 4 {
        let spec = SoftmaxSpec {
            pixels: rng.range(1, 9),
            channels: rng.range(1, 19),
        };
        let lengths = Kernel::Softmax(spec.clone()).lengths();
        let what = format!("softmax case {case}: {spec:?}");
        eprintln!("seed {seed:#x}, {what}");
        let data = rng.values(lengths.output, 8.0);
        let mut want = data.clone();
        reference::softmax_in_place(&mut want, spec.channels).expect("whole pixels");
        let mut jit = Jit::new().expect("a JIT for this host");
        let id = jit
            .compile(&Kernel::Softmax(spec.clone()))
            .expect("the kernel compiles");
        let program = jit.finish().expect("the program links");
        let function = program.function(id);
        let mut output = Guarded::new(lengths.output);
        let r = spec.pixels as i64;
        for (begin, end) in [(0, r), (-5, r + 7), (r + 7, -5), (r / 2, r), (1, r / 2 + 1)] {
            output.as_mut_slice().copy_from_slice(&data);
            // SAFETY: `output` is exactly `lengths.output` long and no other
            // buffer is read (the spec declares none); the kernel clamps
            // `[begin, end)` to its pixels; `program` outlives the call.
            unsafe {
                function(
                    std::ptr::null(),
                    std::ptr::null(),
                    std::ptr::null(),
                    std::ptr::null(),
                    output.as_mut_slice().as_mut_ptr(),
                    std::ptr::null_mut(),
                    begin,
                    end,
                )
            };
            let (lo, hi) = (begin.clamp(0, r) as usize, end.clamp(0, r) as usize);
            for (i, (&g, (&w, &d))) in output
                .as_slice()
                .iter()
                .zip(want.iter().zip(&data))
                .enumerate()
            {
                let pixel = i / spec.channels;
                if (lo..hi).contains(&pixel) {
                    assert!(
                        (g - w).abs() <= 1e-5,
                        "{what}, [{begin}, {end}): element {i} is {g}, the reference {w}"
                    );
                } else {
                    assert_eq!(
                        g.to_bits(),
                        d.to_bits(),
                        "{what}, [{begin}, {end}): element {i} outside the range was written"
                    );
                }
            }
        }
    }
}

#[test]
fn guarded_buffers_end_at_a_guard_page() {
    let page = page_size();
    for len in [
        0,
        1,
        3,
        4,
        page / 4 - 1,
        page / 4,
        page / 4 + 1,
        3 * page / 4 + 5,
    ] {
        let mut g = Guarded::new(len);
        assert_eq!(g.as_slice().len(), len);
        assert!(g.as_slice().iter().all(|&x| x == 0.0));
        g.as_mut_slice()
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = i as f32);
        if len > 0 {
            let end = g.as_slice().as_ptr_range().end as usize;
            assert_eq!(
                end % page,
                0,
                "length {len} does not end at a page boundary"
            );
            assert_eq!(g.as_slice()[len - 1], (len - 1) as f32);
        }
        g.freeze();
        assert!(g.as_slice().iter().enumerate().all(|(i, &x)| x == i as f32));
    }
}

/// The batched dense layer (`native_dense_batch`) on every ISA the host
/// has: random depths (across chunks of the depth), widths (partial blocks
/// of 64) and image counts, an activation fused, each buffer exactly as
/// long as `DenseBatch::lengths` between guard pages, all blocks and
/// sub-ranges of blocks; channels outside the blocks asked for keep the
/// sentinel, the rest match the reference kernels.
#[test]
fn the_batched_dense_layer_touches_only_its_own_buffers() {
    use cnnjit_codegen::native_dense_batch::{DenseBatch, Pointers, MAX_IMAGES};
    let seed = env_u64("GUARD_PAGES_SEED", 0x6261_7463_685f_6770);
    let mut rng = Rng(seed);
    let cases = env_u64("GUARD_PAGES_CASES", 128) as usize / 4;
    for case in 0..cases {
        for isa in Isa::on_host() {
            let (depth, channels) = (rng.range(1, 300), rng.range(1, 200));
            let images = rng.range(1, MAX_IMAGES);
            let act = random_activation(&mut rng);
            let op = ir::Dense {
                out_features: channels as u32,
                bias: true,
            };
            let spec = ConvSpec::of_dense(&op, depth, vec![Epilogue::Act(act)], Some(isa));
            let Some(dense) = DenseBatch::new(&spec) else {
                continue;
            };
            eprintln!("seed {seed:#x}, case {case}: {isa} {depth} -> {channels}, {images} images, {act:?}");
            let l = dense.lengths(images);
            let (x, w, bias) = (
                rng.values(l.input, 1.0),
                rng.values(channels * depth, 1.0),
                rng.values(channels, 1.0),
            );
            let mut want = vec![0.0; l.output];
            for (x, y) in x.chunks_exact(depth).zip(want.chunks_exact_mut(channels)) {
                reference::dense(&op, x, &w, Some(&bias), y).expect("the reference runs");
                reference::activation_in_place(act, y);
            }
            let mut input = Guarded::from_slice(&x);
            let mut weights = Guarded::from_slice(&spec.pack_weights(&w, None));
            let mut params = Guarded::from_slice(&spec.pack_vector(&bias));
            for g in [&mut input, &mut weights, &mut params] {
                g.freeze();
            }
            assert_eq!(
                (weights.as_slice().len(), params.as_slice().len()),
                (l.weights, l.params)
            );
            let mut output = Guarded::new(l.output);
            let blocks = l.blocks;
            for (begin, end) in [
                (0, blocks),
                (0, blocks / 2),
                (blocks / 2, blocks),
                (blocks - 1, blocks),
            ] {
                output.as_mut_slice().fill(f32::from_bits(SENTINEL));
                let ptrs = Pointers {
                    input: input.as_slice().as_ptr(),
                    weights: weights.as_slice().as_ptr(),
                    params: params.as_slice().as_ptr(),
                    extra: std::ptr::null(),
                    output: output.as_mut_slice().as_mut_ptr(),
                };
                // SAFETY: every buffer is exactly as long as `lengths` gives
                // for `images` images, `end <= blocks`, and nothing else
                // touches `output`; a stray access faults on a guard page.
                unsafe { dense.blocks(images, ptrs, begin, end) };
                let inside = |i: usize| (begin * 64..end * 64).contains(&(i % channels));
                for (i, (&got, &want)) in output.as_slice().iter().zip(&want).enumerate() {
                    if inside(i) {
                        let bound = 1e-5 * (depth as f32 + 1.0);
                        assert!(
                            (got - want).abs() <= bound || (got.is_nan() && want.is_nan()),
                            "case {case} {isa}, element {i}: {got} for {want}"
                        );
                    } else {
                        assert_eq!(
                            got.to_bits(),
                            SENTINEL,
                            "case {case} {isa}, element {i} outside [{begin}, {end})"
                        );
                    }
                }
            }
        }
    }
}
