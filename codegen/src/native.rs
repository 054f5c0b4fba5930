//! The native GEMM tiles: precompiled micro-kernels, one per instruction
//! set ([`Isa`]), that Cranelift-generated kernels call for their innermost
//! tile.
//!
//! Cranelift emits 128-bit vectors only on x86-64, which caps its kernels at
//! a quarter of an AVX-512 core's FMA throughput and half of an AVX2 one's.
//! Where the host has AVX2 and FMA, or AVX-512F (detected at run time,
//! [`Isa::detected`]), the innermost GEMM tile is one of these Rust
//! functions instead; the generated code keeps everything specialised to the
//! network around it: loop nests, tap classes, packing and the fused
//! epilogue. Both ISAs share the calling convention and the packing below,
//! so which one a kernel calls changes only its spec's [`Isa`] and its tile's
//! rows ([`Isa::rows`]).
//!
//! # Calling convention
//!
//! A tile is a [`TileFn`], `extern "C"` (the host's C calling convention):
//!
//! ```text
//! tile(a, a_stride, b, taps, count, depth, c)
//!
//! for r in 0..R, n in 0..16:
//!     c[16 r + n] = sum over t < count, k < depth of
//!                   A(r, t, k) * B(t, k, n)
//! where
//!     A(r, t, k) = *(a + taps[t].a + r * a_stride + 4 k)         (bytes)
//!     B(t, k, n) = *(b + taps[t].b + 64 k + 4 n)                 (bytes)
//! ```
//!
//! `R` is the tile's rows (1 to [`Isa::rows`], one function each,
//! [`Isa::tiles`]): output pixels for a convolution. Each row reads `depth`
//! consecutive `f32`s of `A` per tap (input channels), the rows `a_stride`
//! bytes apart; `B` is packed `[k][16]` per tap (16 output channels,
//! zero-padded by the packer); the tile is written whole to `c` (`R x 16`
//! floats, row-major), overwriting it. A tap is one K-step group with its
//! own offsets into `A` and `B`: a convolution passes one per kernel tap
//! that falls inside the input, or one per kernel row whose depth runs over
//! that row's taps' channels where they are adjacent in memory (an
//! ungrouped conv with undilated columns, `conv::native_taps`), a plain
//! GEMM one tap `{a: 0, b: 0}`. `a` may
//! point outside `A`'s buffer as long as every address above lands inside
//! it: offsets are applied with wrapping arithmetic and only the final
//! addresses are read.
//!
//! # Wide tile
//!
//! AVX-512 also has a wide tile ([`Isa::wide_tiles`], a [`WideTileFn`]):
//! two adjacent blocks of 16 output channels a call, over the same `[k][16]`
//! packing, the second block of `B` `b_block` bytes after the first (every
//! packer lays a layer's blocks of 16 one after another: conv's
//! `[g][block][ky][kx][ci][16]`, Winograd's `[alpha²][block][ci][16]`) and
//! the second block of `C` `c_block` bytes after the first:
//!
//! ```text
//! wide(a, a_stride, b, taps, count, depth, c, b_block, c_block)
//!
//! for j in 0..2, r in 0..R, n in 0..16:
//!     *(c + j c_block + 64 r + 4 n) = sum over t < count, k < depth of
//!                                     A(r, t, k) * B(t, k, n + j b_block / 4)
//! ```
//!
//! with `A` and `B` as above: each block is exactly what the 16-column
//! tile computes on it. Conv passes `b_block` = one packed block of weights
//! and a stack slot of two `R x 16` halves; Winograd `b_block` = one block
//! of `U` and `c_block` = one block of `M` (`tiles_w x 16`), so `M`'s layout
//! is unchanged.
//!
//! # Fused tiles
//!
//! Each tile also has a fused twin ([`Isa::fused_tiles`], a
//! [`FusedTileFn`]) that computes the same sums and, instead of writing
//! `C`, puts them through the native epilogue's steps
//! ([`super::native_epilogue`]'s formula with `T = C`) straight to the
//! output a [`Sink`] names: conv's kernels call these, so a tile's sums
//! never leave registers. The wide one's sink columns run on from its first
//! block to its second.
//!
//! Every tile sums each output in the same order, tap by tap and `k` by `k`,
//! one fused multiply-add per term from zero, so the ISAs' outputs, and the
//! wide tile's against the 16-column ones, are bitwise identical
//! (`tests::the_isas_agree_bitwise`,
//! `tests::the_wide_tile_agrees_with_the_formula_and_bitwise_with_the_narrow_tiles`).
//!
//! Invariant: a tile reads exactly the `A` and `B` elements the formula
//! names, its `count` taps, and writes exactly `R x 16` floats at `c` (the
//! wide tile: at `c` and at `c + c_block` bytes); nothing else. The generated caller therefore keeps the kernel contract
//! (`Lengths`) as long as the formula's addresses are inside the buffers,
//! which `conv`'s tap classes guarantee (`runtime/tests/it/guard_pages.rs`
//! checks every ISA against guard pages).
//!
//! # Tile shapes
//!
//! AVX2: 6 rows x 2 `ymm` are 12 accumulators, plus two weight vectors and a
//! broadcast input, of the 16 `ymm` registers; a step of `k` loads 2 weight
//! vectors and 6 inputs for 12 FMAs, under the 2 loads a cycle of current
//! cores, so the FMA ports bind.
//!
//! AVX-512: one `zmm` accumulator per row (the 16 columns are one vector),
//! each input broadcast by the FMA itself (`vfmadd231ps zmm, zmm,
//! [mem]{1to16}`), so a step of `k` is 1 + R loads for R FMAs and the load
//! ports bind: at 2 loads and 2 FMAs a cycle, `2R / (R + 1)` FMAs a cycle,
//! 86% of peak at 6 rows, 93% at 14. The registers allow up to 31 rows;
//! the general-purpose ones (one per row's address) and the conv tiling
//! argue for fewer. [`AVX512_ROWS`] is 14: it divides 56, 28, 14 and 7,
//! the row widths of ImageNet networks, so their rows need no partial tile,
//! and it measured best or within noise of best (`benches/native_tile.rs`,
//! one thread, a 2-vCPU Xeon with AVX512-FP16 shared with other builds, load
//! about 4): the 3136 x 64 x 256 GEMM at 103 GFLOP/s on 14 rows against 92
//! on 10, 92 on 8, 87 on 6 (AVX2, 6 rows: 82); 784 x 256 x 256 at 98 on 14,
//! 110 on 10, 115 on 8, 98 on 6 (AVX2: 88), each +-10%.
//!
//! AVX-512 wide: [`WIDE_ROWS`] rows x 2 `zmm` are 28 accumulators, plus two
//! weight vectors and one broadcast input (loaded once for its two FMAs):
//! 31 of the 32 `zmm` registers. A step of `k` loads 2 weight vectors and
//! R inputs for 2R FMAs, so the FMA ports bind (MLAS's AVX-512F SGEMM:
//! 12 rows x 2 `zmm`). 14 rows again divide ImageNet's row widths and
//! measured best or within noise of best of 6 to 14 (`benches/native_tile.rs`,
//! one thread, the same Xeon, load about 4, GFLOP/s, ranges of 10 samples):
//! 3136 x 64 x 256 at 131-142 on 14 rows, 140-141 on 12, 123-136 on 10,
//! 125-131 on 8, 125-132 on 6, against 120-121 for the 16-column tile of 14
//! rows and 90-94 for AVX2; 784 x 256 x 256 at 145-159 on 14, 146-159 on 12,
//! 141-157 on 10 to 6, against 129-139 (16 columns, 14 rows) and 92-100
//! (AVX2). The generated code calls it for two adjacent full blocks of a
//! group ([`super::conv`], [`super::winograd`]); an odd last block, or a
//! partial one, takes the 16-column tile.

use super::native_epilogue::Sink;
use cranelift_codegen::ir::{types, AbiParam, SigRef, Signature, Type};
use cranelift_frontend::FunctionBuilder;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
use std::fmt;

/// Output columns of a tile: two 256-bit or one 512-bit vector of `f32`.
pub const WIDTH: usize = 16;

/// An instruction set a native tile is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// AVX2 and FMA: 6 rows of two `ymm` accumulators.
    Avx2,
    /// AVX-512F: [`AVX512_ROWS`] rows of one `zmm` accumulator, and the
    /// wide tile of [`WIDE_ROWS`] rows of two ([`Isa::wide_tiles`]).
    Avx512,
}

/// The rows of the AVX-512 tile (the module doc's "Tile shapes").
pub const AVX512_ROWS: usize = 14;

/// The rows of the wide AVX-512 tile (the module doc's "Wide tile").
pub const WIDE_ROWS: usize = 14;

/// The most rows of any ISA's tile.
pub const MAX_ROWS: usize = {
    let (avx2, avx512) = (Isa::Avx2.rows(), Isa::Avx512.rows());
    if avx2 > avx512 {
        avx2
    } else {
        avx512
    }
};

impl Isa {
    /// Every ISA, narrowest first.
    pub const ALL: [Isa; 2] = [Isa::Avx2, Isa::Avx512];

    /// Its name in kernel reports and options: `avx2`, `avx512`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The most rows of its tile.
    pub const fn rows(self) -> usize {
        match self {
            Isa::Avx2 => 6,
            Isa::Avx512 => AVX512_ROWS,
        }
    }

    /// How a run of pixels (or Winograd tiles) is cut into its tiles
    /// ([`super::TileSplit`]). AVX2's tile of 6 rows has two FMA chains a
    /// row, so a short tile waits on their latency: as few tiles as cover
    /// the run, of even sizes (7 = 4 + 3, not 6 + 1; Zen 3, session 14).
    /// AVX-512's 14-row tiles run full, then one tile of the rest: on an
    /// Intel Xeon (Emerald Rapids, session 16) its fused wide tiles of 12
    /// and 13 rows ran 25-40% slower than of 14, and the even split made
    /// 1x1 convolutions of 13x13 and 7x7 pixels 35-60% slower (one thread,
    /// 13x13x1024 -> 256: 104 GFLOP/s split evenly into tiles of 13, 165 in
    /// tiles of 14 and one of 1; 26x26x256 -> 256: 124 against 167).
    pub(crate) const fn split(self) -> super::TileSplit {
        match self {
            Isa::Avx2 => super::TileSplit::Even,
            Isa::Avx512 => super::TileSplit::FullFirst,
        }
    }

    /// Whether this host runs it (detected at run time; false off x86-64).
    pub fn detected(self) -> bool {
        self.tiles().is_some()
    }

    /// The ISAs this host runs, narrowest first.
    pub fn on_host() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.detected()).collect()
    }

    /// The widest ISA this host runs, if any.
    pub fn best() -> Option<Isa> {
        Isa::on_host().pop()
    }

    /// The widest ISA this host runs that is no wider than `self`: `self`
    /// where the host has it.
    pub fn at_most(self) -> Option<Isa> {
        Isa::on_host().into_iter().filter(|isa| *isa <= self).max()
    }

    /// Its wide tiles of 1 to [`WIDE_ROWS`] rows (index `rows - 1`), two
    /// blocks of [`WIDTH`] columns a call, where it has them (AVX-512) and
    /// the host runs it.
    pub fn wide_tiles(self) -> Option<&'static [WideTileFn]> {
        #[cfg(target_arch = "x86_64")]
        if self == Isa::Avx512 && self.detected() {
            return Some(&avx512::WIDE);
        }
        None
    }

    /// Its tiles with the epilogue fused, where the host runs them with
    /// FMA (the native epilogue's condition,
    /// [`super::native_epilogue::available`]): `(tiles, wide tiles)`, of 1 to
    /// [`Isa::rows`] and [`WIDE_ROWS`] rows (index `rows - 1`); the wide
    /// ones where [`Isa::wide_tiles`] has them.
    pub fn fused_tiles(self) -> Option<(&'static [FusedTileFn], Option<&'static [FusedTileFn]>)> {
        super::native_epilogue::available(self).then_some(())?;
        #[cfg(target_arch = "x86_64")]
        return Some(match self {
            Isa::Avx2 => (&avx2::FUSED[..], None),
            Isa::Avx512 => (
                &avx512::FUSED[..],
                self.wide_tiles().map(|_| &avx512::FUSED_WIDE[..]),
            ),
        });
        #[cfg(not(target_arch = "x86_64"))]
        None
    }

    /// Its tiles of 1 to [`Isa::rows`] rows (index `rows - 1`), where the
    /// host runs it.
    pub fn tiles(self) -> Option<&'static [TileFn]> {
        #[cfg(target_arch = "x86_64")]
        match self {
            Isa::Avx2 if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => {
                return Some(&avx2::TILES);
            }
            Isa::Avx512 if is_x86_feature_detected!("avx512f") => return Some(&avx512::TILES),
            Isa::Avx2 | Isa::Avx512 => {}
        }
        None
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One K-step group of a tile: byte offsets from `a` and from `b`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tap {
    /// Byte offset of row 0's first element in `A`, from `a`.
    pub a: i64,
    /// Byte offset of this tap's packed `[depth][16]` block of `B`, from `b`.
    pub b: i64,
}

/// A tile's entry point: `(a, a_stride, b, taps, count, depth, c)`, see the
/// module doc.
pub type TileFn = unsafe extern "C" fn(*const f32, i64, *const f32, *const Tap, i64, i64, *mut f32);

/// Imports [`TileFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = [ptr, types::I64, ptr, ptr, types::I64, types::I64, ptr]
        .into_iter()
        .map(AbiParam::new)
        .collect();
    b.import_signature(signature)
}

/// The wide tile's entry point: `(a, a_stride, b, taps, count, depth, c,
/// b_block, c_block)`, the module doc's "Wide tile".
pub type WideTileFn =
    unsafe extern "C" fn(*const f32, i64, *const f32, *const Tap, i64, i64, *mut f32, i64, i64);

/// Imports [`WideTileFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_wide_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = [
        ptr,
        types::I64,
        ptr,
        ptr,
        types::I64,
        types::I64,
        ptr,
        types::I64,
        types::I64,
    ]
    .into_iter()
    .map(AbiParam::new)
    .collect();
    b.import_signature(signature)
}

/// A tile with its epilogue fused: `(a, a_stride, b, taps, count, depth,
/// b_block, sink)`, the tile's sums (the 16-column tile's, or the wide
/// tile's two blocks of `B` `b_block` bytes apart) kept in registers and
/// put through the native epilogue's steps straight to the output the
/// [`Sink`] names: the module doc's formula for `C`, then the native
/// epilogue's with `T = C`, bitwise as the tile then the epilogue.
pub type FusedTileFn =
    unsafe extern "C" fn(*const f32, i64, *const f32, *const Tap, i64, i64, i64, *const Sink);

/// Imports [`FusedTileFn`]'s signature into a kernel whose pointers are `ptr`.
pub(crate) fn import_fused_signature(b: &mut FunctionBuilder, ptr: Type) -> SigRef {
    let i64 = types::I64;
    let mut signature = Signature::new(b.func.signature.call_conv);
    signature.params = [ptr, i64, ptr, ptr, i64, i64, i64, ptr]
        .into_iter()
        .map(AbiParam::new)
        .collect();
    b.import_signature(signature)
}

/// Whether this host runs a native tile of any ISA.
pub fn available() -> bool {
    Isa::best().is_some()
}

/// Input channels per step of the unrolled depth loop: the rows' addresses
/// are computed once per step and each load has a constant displacement.
#[cfg(target_arch = "x86_64")]
const UNROLL: usize = 4;

/// 64-byte lines a kernel asks the cache for while it computes, a hint that
/// changes no result: a fused tile's [`Sink::prefetch`] and
/// [`Sink::lines`], where its caller reads those weights next (none for
/// the other tiles); the batched dense kernel's next chunk of weights
/// (`native_dense_batch`).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Prefetch {
    /// The first line.
    at: *const f32,
    /// Lines from `at` on.
    lines: usize,
}

#[cfg(target_arch = "x86_64")]
impl Prefetch {
    /// No lines.
    const NONE: Prefetch = Prefetch {
        at: std::ptr::null(),
        lines: 0,
    };

    /// `lines` lines from `at` on. Any address will do: the lines are only
    /// asked for ([`Prefetch::line`]).
    pub(crate) fn new(at: *const f32, lines: usize) -> Prefetch {
        Prefetch { at, lines }
    }

    /// Whether line `i` is one of its lines.
    #[inline(always)]
    pub(crate) fn has(self, i: usize) -> bool {
        i < self.lines
    }

    /// A sink's lines.
    fn of(sink: &Sink) -> Prefetch {
        Prefetch {
            at: sink.prefetch,
            lines: sink.lines.max(0) as usize,
        }
    }

    /// Asks for line `i` into every level of the cache (the caller keeps
    /// `i` below `lines`). A prefetch never faults and reads nothing
    /// architecturally, and the address is formed by wrapping arithmetic,
    /// so any address is sound.
    #[inline(always)]
    pub(crate) fn line(self, i: usize) {
        let at = self.at.wrapping_byte_add(64 * i).cast::<i8>();
        // SAFETY: `prefetcht0` (SSE, in every x86-64) only hints at the
        // cache; it neither faults nor reads architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at) };
    }
}

/// The module doc's loops around one step: `step(rows, u, w)` for every tap
/// `t < count` and channel `k < depth` in order, where `rows[r] + u` is
/// `A(r, t, k)` and `w` is `B(t, k, 0)`. Inlined into each ISA's tile, whose
/// `step` (a closure there) inherits its target features.
///
/// # Safety
/// `taps` points to `count` initialised, aligned [`Tap`]s; `step` is called
/// with the formula's addresses, readable by the tile's contract.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn for_each_k<const R: usize>(
    a: *const f32,
    a_stride: i64,
    b: *const f32,
    (taps, count): (*const Tap, i64),
    depth: i64,
    prefetch: Prefetch,
    mut step: impl FnMut(&[*const f32; R], usize, *const f32),
) {
    let depth = depth.max(0) as usize;
    // The prefetch's lines, one every `every` steps of `k`, spread over the
    // whole tile so that they come in at memory's pace while the FMAs run.
    // Asked one a step (all in the tile's first steps), they queued on the
    // core's few outstanding misses and the tile waited with them: ResNet's
    // 7x7x512 3x3 layer took as long as without them.
    let steps = count.max(0) as usize * depth;
    let every = (steps / prefetch.lines.max(1)).max(1);
    let (mut line, mut countdown) = (0, 0);
    let mut ask = || {
        if countdown == 0 {
            countdown = every;
            if prefetch.has(line) {
                prefetch.line(line);
                line += 1;
            }
        }
        countdown -= 1;
    };
    for t in 0..count.max(0) as usize {
        // SAFETY: `t < count`, and the caller passes `count` initialised,
        // aligned `Tap`s at `taps`, so `taps + t` is one of them.
        let tap = unsafe { *taps.add(t) };
        let row0 = a.wrapping_byte_offset(tap.a as isize);
        let w = b.wrapping_byte_offset(tap.b as isize);
        let rows = |k: usize| -> [*const f32; R] {
            std::array::from_fn(|r| {
                row0.wrapping_byte_offset(r as isize * a_stride as isize)
                    .wrapping_add(k)
            })
        };
        let main = depth / UNROLL * UNROLL;
        for k in (0..main).step_by(UNROLL) {
            let rows = rows(k);
            for u in 0..UNROLL {
                ask();
                step(&rows, u, w.wrapping_add(WIDTH * (k + u)));
            }
        }
        for k in main..depth {
            ask();
            step(&rows(k), 0, w.wrapping_add(WIDTH * k));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{for_each_k, FusedTileFn, Prefetch, Tap, TileFn, WIDTH};
    use crate::native_epilogue::{avx2::Ymm, finish_tile, Sink};
    use std::arch::x86_64::{
        __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    pub(super) static TILES: [TileFn; 6] = [
        tile::<1>, tile::<2>, tile::<3>, tile::<4>, tile::<5>, tile::<6>,
    ];

    pub(super) static FUSED: [FusedTileFn; 6] = [
        fused::<1>, fused::<2>, fused::<3>, fused::<4>, fused::<5>, fused::<6>,
    ];

    /// The tile's sums, `R` rows of two `ymm`: inlined into the entry points,
    /// whose features its intrinsics run with.
    ///
    /// # Safety
    /// As [`tile`]'s, but for `c`.
    #[inline(always)]
    unsafe fn sums<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        (taps, count): (*const Tap, i64),
        depth: i64,
        prefetch: Prefetch,
    ) -> [[__m256; 2]; R] {
        // SAFETY: the entry points that inline this have AVX2 and FMA.
        let mut acc: [[__m256; 2]; R] = [[unsafe { _mm256_setzero_ps() }; 2]; R];
        let step = |rows: &[*const f32; R], u: usize, w: *const f32| {
            // SAFETY: the host has AVX2 and FMA (the contract), which
            // the intrinsics need; `for_each_k` passes `w = B(t, k, 0)`,
            // so the two unaligned 8-float loads at `w` and `w + 8` read
            // `B(t, k, 0..16)`, and `rows[r] + u = A(r, t, k)`, one readable,
            // aligned `f32` per row, all by the caller's contract.
            unsafe {
                let (w0, w1) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
                for (acc, row) in acc.iter_mut().zip(rows) {
                    let x = _mm256_broadcast_ss(&*row.add(u));
                    acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
                }
            }
        };
        // SAFETY: `taps`, `count` and the formula's addresses are as
        // `for_each_k` needs, by the caller's contract.
        unsafe { for_each_k(a, a_stride, b, (taps, count), depth, prefetch, step) };
        acc
    }

    /// The tile of `R` rows.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; `taps` points to `count` initialised
    /// [`Tap`]s (aligned: conv's stack slot is 32-byte aligned); every `A`
    /// and `B` address the module doc's formula names is a readable, aligned
    /// `f32`; and `c` has `R x 16` writable floats.
    #[target_feature(enable = "avx2,fma")]
    unsafe extern "C" fn tile<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        taps: *const Tap,
        count: i64,
        depth: i64,
        c: *mut f32,
    ) {
        // SAFETY: this function's contract is `sums`'s.
        let acc = unsafe { sums::<R>(a, a_stride, b, (taps, count), depth, Prefetch::NONE) };
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: the host has AVX2 (this function's contract); `c` has
            // `R x 16` writable floats, so for `r < R` the two unaligned
            // 8-float stores at `c + 16 r` and `c + 16 r + 8` stay inside it.
            unsafe {
                _mm256_storeu_ps(c.add(r * WIDTH), acc[0]);
                _mm256_storeu_ps(c.add(r * WIDTH + 8), acc[1]);
            }
        }
    }

    /// The tile of `R` rows with its epilogue fused ([`FusedTileFn`]).
    ///
    /// # Safety
    /// As [`tile`]'s for `a`, `b` and the taps; `sink` points to a [`Sink`]
    /// whose addresses are as its doc says for `R` rows and the columns it
    /// names (at most 16).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn fused<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        taps: *const Tap,
        count: i64,
        depth: i64,
        _b_block: i64,
        sink: *const Sink,
    ) {
        // SAFETY: this function's contract is `sums`'s, and `sink` points to
        // a readable `Sink` whose addresses are as `finish` needs.
        unsafe {
            let acc = sums::<R>(a, a_stride, b, (taps, count), depth, Prefetch::of(&*sink));
            // Plain loops, not `array::map`: a closure not inlined would be
            // compiled without this function's features, and the sums
            // would go through memory to reach it.
            let mut halves = [[Ymm(_mm256_setzero_ps()); 2]; R];
            for (row, [low, high]) in halves.iter_mut().zip(acc) {
                *row = [Ymm(low), Ymm(high)];
            }
            finish_tile(halves, &*sink);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{
        for_each_k, FusedTileFn, Prefetch, Tap, TileFn, WideTileFn, AVX512_ROWS, WIDE_ROWS, WIDTH,
    };
    use crate::native_epilogue::{avx512::Zmm, finish_tile, Sink};
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    pub(super) static TILES: [TileFn; AVX512_ROWS] = [
        tile::<1>, tile::<2>, tile::<3>, tile::<4>, tile::<5>, tile::<6>, tile::<7>, tile::<8>,
        tile::<9>, tile::<10>, tile::<11>, tile::<12>, tile::<13>, tile::<14>,
    ];

    pub(super) static WIDE: [WideTileFn; WIDE_ROWS] = [
        wide::<1>, wide::<2>, wide::<3>, wide::<4>, wide::<5>, wide::<6>, wide::<7>, wide::<8>,
        wide::<9>, wide::<10>, wide::<11>, wide::<12>, wide::<13>, wide::<14>,
    ];

    pub(super) static FUSED: [FusedTileFn; AVX512_ROWS] = [
        fused::<1>,
        fused::<2>,
        fused::<3>,
        fused::<4>,
        fused::<5>,
        fused::<6>,
        fused::<7>,
        fused::<8>,
        fused::<9>,
        fused::<10>,
        fused::<11>,
        fused::<12>,
        fused::<13>,
        fused::<14>,
    ];

    pub(super) static FUSED_WIDE: [FusedTileFn; WIDE_ROWS] = [
        fused_wide::<1>,
        fused_wide::<2>,
        fused_wide::<3>,
        fused_wide::<4>,
        fused_wide::<5>,
        fused_wide::<6>,
        fused_wide::<7>,
        fused_wide::<8>,
        fused_wide::<9>,
        fused_wide::<10>,
        fused_wide::<11>,
        fused_wide::<12>,
        fused_wide::<13>,
        fused_wide::<14>,
    ];

    /// The wide tile's sums, `R` rows of two `zmm` (the second block of `B`
    /// `b_block` bytes after the first): inlined into the entry points,
    /// whose features its intrinsics run with.
    ///
    /// # Safety
    /// As [`wide`]'s, but for `c`.
    #[inline(always)]
    unsafe fn wide_sums<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        (taps, count): (*const Tap, i64),
        depth: i64,
        b_block: i64,
        prefetch: Prefetch,
    ) -> [[__m512; 2]; R] {
        // SAFETY: the entry points that inline this have AVX-512F.
        let mut acc: [[__m512; 2]; R] = [[unsafe { _mm512_setzero_ps() }; 2]; R];
        let step = |rows: &[*const f32; R], u: usize, w: *const f32| {
            // SAFETY: the host has AVX-512F (the contract), which
            // the intrinsics need; `for_each_k` passes `w = B(t, k, 0)` of the
            // first block, so the unaligned 16-float loads at `w` and at
            // `w + b_block` bytes read `B(t, k, 0..32)`, and `rows[r] + u =
            // A(r, t, k)`, one readable `f32` per row, all by the caller's
            // contract. Each input is broadcast once for its two FMAs.
            unsafe {
                let w0 = _mm512_loadu_ps(w);
                let w1 = _mm512_loadu_ps(w.wrapping_byte_offset(b_block as isize));
                for (acc, row) in acc.iter_mut().zip(rows) {
                    let x = _mm512_set1_ps(*row.add(u));
                    acc[0] = _mm512_fmadd_ps(x, w0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(x, w1, acc[1]);
                }
            }
        };
        // SAFETY: `taps`, `count` and the formula's addresses are as
        // `for_each_k` needs, by the caller's contract.
        unsafe { for_each_k(a, a_stride, b, (taps, count), depth, prefetch, step) };
        acc
    }

    /// The wide tile of `R` rows: two blocks of 16 columns, `B`'s second
    /// block `b_block` bytes after the first and `C`'s `c_block` after.
    ///
    /// # Safety
    /// The host has AVX-512F; otherwise as [`super::avx2`]'s tile, for both
    /// blocks of `B` and of `c` (the module doc's "Wide tile").
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn wide<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        taps: *const Tap,
        count: i64,
        depth: i64,
        c: *mut f32,
        b_block: i64,
        c_block: i64,
    ) {
        // SAFETY: this function's contract is `wide_sums`'s.
        let acc = unsafe {
            wide_sums::<R>(
                a,
                a_stride,
                b,
                (taps, count),
                depth,
                b_block,
                Prefetch::NONE,
            )
        };
        for (r, acc) in acc.iter().enumerate() {
            for (j, acc) in acc.iter().enumerate() {
                // SAFETY: the host has AVX-512F (this function's contract);
                // `c` has `R x 16` writable floats at `c` and at `c +
                // c_block` bytes, so for `r < R` the unaligned 16-float store
                // at `c + j c_block + 64 r` bytes stays inside block `j`.
                unsafe {
                    let c = c.wrapping_byte_offset(j as isize * c_block as isize);
                    _mm512_storeu_ps(c.add(r * WIDTH), *acc)
                };
            }
        }
    }

    /// The wide tile of `R` rows with its epilogue fused ([`FusedTileFn`]):
    /// the sink's columns run on from the first block to the second.
    ///
    /// # Safety
    /// The host has AVX-512F and FMA; as [`wide`]'s for `a`, `b` and the
    /// taps; `sink` points to a [`Sink`] whose addresses are as its doc
    /// says for `R` rows and the columns it names (at most 32).
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn fused_wide<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        taps: *const Tap,
        count: i64,
        depth: i64,
        b_block: i64,
        sink: *const Sink,
    ) {
        // SAFETY: this function's contract is `wide_sums`'s, and `sink`
        // points to a readable `Sink` whose addresses are as `finish` needs.
        unsafe {
            let acc = wide_sums::<R>(
                a,
                a_stride,
                b,
                (taps, count),
                depth,
                b_block,
                Prefetch::of(&*sink),
            );
            // Plain loops, as the AVX2 tile's.
            let mut blocks = [[Zmm(_mm512_setzero_ps()); 2]; R];
            for (row, [first, second]) in blocks.iter_mut().zip(acc) {
                *row = [Zmm(first), Zmm(second)];
            }
            finish_tile(blocks, &*sink);
        }
    }

    /// The 16-column tile's sums, `R` rows of one `zmm`, as [`wide_sums`].
    ///
    /// # Safety
    /// As [`tile`]'s, but for `c`.
    #[inline(always)]
    unsafe fn sums<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        (taps, count): (*const Tap, i64),
        depth: i64,
        prefetch: Prefetch,
    ) -> [__m512; R] {
        // SAFETY: the entry points that inline this have AVX-512F.
        let mut acc: [__m512; R] = [unsafe { _mm512_setzero_ps() }; R];
        let step = |rows: &[*const f32; R], u: usize, w: *const f32| {
            // SAFETY: the host has AVX-512F (the contract), which
            // the intrinsics need; `for_each_k` passes `w = B(t, k, 0)`, so
            // the unaligned 16-float load at `w` reads `B(t, k, 0..16)`, and
            // `rows[r] + u = A(r, t, k)`, one readable `f32` per row, all by
            // the caller's contract. The broadcast folds into the FMA's
            // memory operand.
            unsafe {
                let w = _mm512_loadu_ps(w);
                for (acc, row) in acc.iter_mut().zip(rows) {
                    *acc = _mm512_fmadd_ps(_mm512_set1_ps(*row.add(u)), w, *acc);
                }
            }
        };
        // SAFETY: `taps`, `count` and the formula's addresses are as
        // `for_each_k` needs, by the caller's contract.
        unsafe { for_each_k(a, a_stride, b, (taps, count), depth, prefetch, step) };
        acc
    }

    /// The tile of `R` rows.
    ///
    /// # Safety
    /// The host has AVX-512F; otherwise as [`super::avx2`]'s tile.
    #[target_feature(enable = "avx512f")]
    unsafe extern "C" fn tile<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        taps: *const Tap,
        count: i64,
        depth: i64,
        c: *mut f32,
    ) {
        // SAFETY: this function's contract is `sums`'s.
        let acc = unsafe { sums::<R>(a, a_stride, b, (taps, count), depth, Prefetch::NONE) };
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: the host has AVX-512F (this function's contract); `c`
            // has `R x 16` writable floats, so for `r < R` the unaligned
            // 16-float store at `c + 16 r` stays inside it.
            unsafe { _mm512_storeu_ps(c.add(r * WIDTH), *acc) };
        }
    }

    /// The tile of `R` rows with its epilogue fused ([`FusedTileFn`]).
    ///
    /// # Safety
    /// The host has AVX-512F and FMA; as [`tile`]'s for `a`, `b` and the
    /// taps; `sink` as [`fused_wide`]'s, for at most 16 columns.
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn fused<const R: usize>(
        a: *const f32,
        a_stride: i64,
        b: *const f32,
        taps: *const Tap,
        count: i64,
        depth: i64,
        _b_block: i64,
        sink: *const Sink,
    ) {
        // SAFETY: this function's contract is `sums`'s, and `sink` points to
        // a readable `Sink` whose addresses are as `finish` needs.
        unsafe {
            let mut xs = [[Zmm(_mm512_setzero_ps()); 1]; R];
            for (x, sum) in xs.iter_mut().zip(sums::<R>(
                a,
                a_stride,
                b,
                (taps, count),
                depth,
                Prefetch::of(&*sink),
            )) {
                *x = [Zmm(sum)];
            }
            finish_tile(xs, &*sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One call's operands: `A` with `a` at `origin` floats in, `B`, the
    /// taps (in floats, `A`'s relative to `a`), the stride and depth.
    #[derive(Clone, Debug)]
    struct Call {
        a: Vec<f32>,
        origin: usize,
        a_stride: usize,
        b: Vec<f32>,
        taps: Vec<(isize, usize)>,
        depth: usize,
        rows: usize,
        /// Floats from the wide tile's first block of `B` to its second.
        b_block: usize,
    }

    impl Call {
        /// The module doc's formula, in `f64`, as plain loops, with each
        /// output's sum of `|A B|` (for the rounding bound).
        fn formula(&self) -> Vec<(f64, f64)> {
            let mut c = vec![(0.0, 0.0); self.rows * WIDTH];
            for r in 0..self.rows {
                for n in 0..WIDTH {
                    for &(ta, tb) in &self.taps {
                        for k in 0..self.depth {
                            let at = self.origin as isize + ta + (r * self.a_stride + k) as isize;
                            let term = f64::from(self.a[at as usize])
                                * f64::from(self.b[tb + k * WIDTH + n]);
                            let (sum, abs) = &mut c[r * WIDTH + n];
                            *sum += term;
                            *abs += term.abs();
                        }
                    }
                }
            }
            c
        }

        /// The call on the next block of `B`: every tap `b_block` floats on.
        fn second_block(&self) -> Call {
            let mut call = self.clone();
            for tap in &mut call.taps {
                tap.1 += self.b_block;
            }
            call
        }

        /// `isa`'s wide tile on the two blocks of `B` (this call's and
        /// [`Self::second_block`]'s), if the host runs it: the two blocks of
        /// `C`, after checking that the tile wrote nothing between them
        /// (they are `GAP` floats apart in one buffer of NaNs).
        fn run_wide(&self, isa: Isa) -> Option<[Vec<f32>; 2]> {
            const GAP: usize = 3;
            let tile = isa.wide_tiles()?[self.rows - 1];
            let taps: Vec<Tap> = self
                .taps
                .iter()
                .map(|&(ta, tb)| Tap {
                    a: 4 * ta as i64,
                    b: 4 * tb as i64,
                })
                .collect();
            let block = self.rows * WIDTH;
            let mut c = vec![f32::NAN; 2 * block + GAP];
            // SAFETY: the host runs `isa`'s wide tile (`wide_tiles` returned
            // it); every address the formula names is inside `a` and `b` for
            // both blocks (`formula` on this call and on `second_block`
            // indexes the same elements, checked), `taps` has `count`
            // initialised taps, and `c` has `rows x 16` floats at `c` and at
            // `c_block` bytes after it.
            unsafe {
                tile(
                    self.a.as_ptr().add(self.origin),
                    4 * self.a_stride as i64,
                    self.b.as_ptr(),
                    taps.as_ptr(),
                    taps.len() as i64,
                    self.depth as i64,
                    c.as_mut_ptr(),
                    4 * self.b_block as i64,
                    4 * (block + GAP) as i64,
                )
            };
            assert!(c[block..block + GAP].iter().all(|x| x.is_nan()), "{c:?}");
            Some([c[..block].to_vec(), c[block + GAP..].to_vec()])
        }

        /// The tile `isa` computes, if the host runs it.
        fn run(&self, isa: Isa) -> Option<Vec<f32>> {
            let tile = isa.tiles()?[self.rows - 1];
            let taps: Vec<Tap> = self
                .taps
                .iter()
                .map(|&(ta, tb)| Tap {
                    a: 4 * ta as i64,
                    b: 4 * tb as i64,
                })
                .collect();
            let mut c = vec![f32::NAN; self.rows * WIDTH];
            // SAFETY: the host runs `isa` (`tiles` returned its tiles); every
            // address the formula names is inside `a` and `b` (`formula`
            // indexes the same elements, checked), `taps` has `count`
            // initialised taps, and `c` has `rows x 16` floats.
            unsafe {
                tile(
                    self.a.as_ptr().add(self.origin),
                    4 * self.a_stride as i64,
                    self.b.as_ptr(),
                    taps.as_ptr(),
                    taps.len() as i64,
                    self.depth as i64,
                    c.as_mut_ptr(),
                )
            };
            Some(c)
        }
    }

    /// Random calls: up to 3 taps, depths around the unrolled loop's step,
    /// strides from 0 (rows reading the same pixels) up, every row count of
    /// the widest tile, the wide tile's second block of `B` from 0 (the
    /// first again) to past the first's end.
    fn calls() -> impl Strategy<Value = Call> {
        (
            1..=MAX_ROWS.max(WIDE_ROWS),
            0usize..23,
            0usize..40,
            0usize..9,
            prop::collection::vec((0usize..20, 0usize..40), 0..4),
            (any::<u64>(), 0usize..400),
        )
            .prop_map(|(rows, depth, a_stride, origin, taps, (seed, b_block))| {
                let taps: Vec<(isize, usize)> = taps
                    .into_iter()
                    .map(|(ta, tb)| (ta as isize - origin as isize, tb))
                    .collect();
                let a_len = origin + 20 + (rows - 1) * a_stride + depth;
                let b_len = 40 + b_block + depth * WIDTH;
                let mut x = seed | 1;
                let mut random = || {
                    // xorshift64: values in [-1, 1).
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                };
                Call {
                    a: (0..a_len).map(|_| random()).collect(),
                    origin,
                    a_stride,
                    b: (0..b_len).map(|_| random()).collect(),
                    taps,
                    depth,
                    rows,
                    b_block,
                }
            })
    }

    /// The `flags` of `/proc/cpuinfo`'s first processor.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn cpu_flags() -> Vec<String> {
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo is readable");
        let line = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .expect("/proc/cpuinfo lists flags");
        line.split_whitespace().map(str::to_string).collect()
    }

    /// A test that skips an ISA the host lacks says so, and this test checks
    /// that the host does lack it: detection agrees with the kernel's flags.
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn detection_agrees_with_proc_cpuinfo() {
        let flags = cpu_flags();
        let has = |f: &str| flags.iter().any(|x| x == f);
        assert_eq!(Isa::Avx2.detected(), has("avx2") && has("fma"));
        assert_eq!(Isa::Avx512.detected(), has("avx512f"));
        assert_eq!(Isa::best(), Isa::on_host().last().copied());
        assert_eq!(available(), Isa::best().is_some());
    }

    #[test]
    fn isas_are_chosen_no_wider_than_asked() {
        for isa in Isa::ALL {
            let chosen = isa.at_most();
            assert!(
                chosen.is_none_or(|c| c <= isa && c.detected()),
                "{isa}: {chosen:?}"
            );
            assert_eq!(chosen == Some(isa), isa.detected(), "{isa}");
            assert_eq!(
                isa.tiles().map(<[TileFn]>::len),
                isa.detected().then_some(isa.rows())
            );
            assert!(isa.rows() <= MAX_ROWS);
        }
    }

    /// A call of `rows` rows on small integers and halves, so that every sum
    /// is exact in `f32`: two taps, the second starting later in both `A`
    /// and `B`, and room in `B` for a third unused one and for the wide
    /// tile's second block (`b_block` on, overlapping the first's by half).
    fn exact_call(rows: usize) -> Call {
        let depth = 5;
        Call {
            a: (0..8 + 7 * rows).map(|i| (i % 11) as f32 - 5.0).collect(),
            origin: 0,
            a_stride: 7,
            b: (0..4 * depth * WIDTH)
                .map(|i| (i % 13) as f32 * 0.5 - 3.0)
                .collect(),
            taps: vec![(3, 0), (1, 2 * depth * WIDTH)],
            depth,
            rows,
            b_block: depth * WIDTH / 2,
        }
    }

    /// Every sum exact in `f32` ([`exact_call`]), on every ISA.
    #[test]
    fn every_tile_computes_the_formula_exactly() {
        for isa in Isa::ALL {
            if !isa.detected() {
                eprintln!("note: this host lacks {isa}; its tiles are not run");
                continue;
            }
            for rows in 1..=isa.rows() {
                let call = exact_call(rows);
                let want: Vec<f64> = call.formula().into_iter().map(|(sum, _)| sum).collect();
                let got: Vec<f64> = call.run(isa).unwrap().into_iter().map(f64::from).collect();
                assert_eq!(got, want, "{isa}, {rows} rows");
            }
        }
    }

    /// As [`every_tile_computes_the_formula_exactly`], for the wide tile's
    /// two blocks (the second overlapping the first's `B` by half).
    #[test]
    fn every_wide_tile_computes_the_formula_exactly() {
        assert_eq!(Isa::Avx2.wide_tiles().map(<[WideTileFn]>::len), None);
        assert_eq!(
            Isa::Avx512.wide_tiles().map(<[WideTileFn]>::len),
            Isa::Avx512.detected().then_some(WIDE_ROWS)
        );
        if !Isa::Avx512.detected() {
            eprintln!("note: this host lacks avx512; its wide tiles are not run");
        }
        for rows in 1..=WIDE_ROWS {
            let call = exact_call(rows);
            for (j, got) in call.run_wide(Isa::Avx512).into_iter().flatten().enumerate() {
                let block = if j == 0 {
                    call.clone()
                } else {
                    call.second_block()
                };
                let want: Vec<f64> = block.formula().into_iter().map(|(sum, _)| sum).collect();
                let got: Vec<f64> = got.into_iter().map(f64::from).collect();
                assert_eq!(got, want, "{rows} rows, block {j}");
            }
        }
    }

    proptest! {
        /// Every ISA the host has, on random shapes, taps and strides,
        /// against the formula in `f64`: each output within the bound of a
        /// sum of `n` rounded terms, `n 2^-24` times its sum of `|A B|`.
        #[test]
        fn tiles_agree_with_an_f64_gemm(call in calls()) {
            for isa in Isa::ALL {
                let mut call = call.clone();
                call.rows = call.rows.min(isa.rows());
                let Some(got) = call.run(isa) else {
                    eprintln!("note: this host lacks {isa}; its tiles are not run");
                    continue;
                };
                let terms = (call.taps.len() * call.depth) as f64;
                for (i, (&got, (want, abs))) in got.iter().zip(call.formula()).enumerate() {
                    let bound = (terms + 1.0) * f64::from(f32::EPSILON) / 2.0 * abs;
                    prop_assert!(
                        (f64::from(got) - want).abs() <= bound,
                        "{isa}: c[{i}] = {got}, want {want} (bound {bound:e})"
                    );
                }
            }
        }

        /// The wide tile's two blocks, each against the formula as in
        /// [`tiles_agree_with_an_f64_gemm`], and bitwise equal to every
        /// ISA's 16-column tile on that block (same order, one rounding per
        /// FMA).
        #[test]
        fn the_wide_tile_agrees_with_the_formula_and_bitwise_with_the_narrow_tiles(
            call in calls(),
        ) {
            let mut call = call;
            call.rows = call.rows.min(WIDE_ROWS);
            let got = call.run_wide(Isa::Avx512);
            if got.is_none() {
                eprintln!("note: this host lacks avx512; its wide tiles are not run");
            }
            let terms = (call.taps.len() * call.depth) as f64;
            let blocks = [call.clone(), call.second_block()];
            for (j, (block, got)) in blocks.iter().zip(got.iter().flatten()).enumerate() {
                for (i, (&got, (want, abs))) in got.iter().zip(block.formula()).enumerate() {
                    let bound = (terms + 1.0) * f64::from(f32::EPSILON) / 2.0 * abs;
                    prop_assert!(
                        (f64::from(got) - want).abs() <= bound,
                        "block {j}: c[{i}] = {got}, want {want} (bound {bound:e})"
                    );
                }
                for isa in Isa::ALL {
                    let mut narrow = block.clone();
                    narrow.rows = narrow.rows.min(isa.rows());
                    let Some(want) = narrow.run(isa) else { continue };
                    let bits = |c: &[f32]| c.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    prop_assert_eq!(
                        bits(&got[..want.len()]),
                        bits(&want),
                        "block {} against {}",
                        j,
                        isa
                    );
                }
            }
        }

        /// The ISAs sum in the same order with one rounding per FMA: their
        /// tiles are bitwise identical.
        #[test]
        fn the_isas_agree_bitwise(call in calls()) {
            let mut call = call;
            call.rows = call.rows.min(Isa::ALL.iter().map(|isa| isa.rows()).min().unwrap_or(1));
            let runs: Vec<(Isa, Vec<u32>)> = Isa::ALL
                .into_iter()
                .filter_map(|isa| Some((isa, call.run(isa)?.iter().map(|x| x.to_bits()).collect())))
                .collect();
            if runs.len() < 2 {
                eprintln!("note: this host runs {} native ISA(s); nothing to compare", runs.len());
            }
            for pair in runs.windows(2) {
                prop_assert_eq!(&pair[0].1, &pair[1].1, "{} against {}", pair[0].0, pair[1].0);
            }
        }
    }
}
