//! Winograd convolution F(m x m, 3 x 3) for 3x3 stride-1 convolutions
//! (m = 2 or 4, tiles of `alpha = m + 2` inputs), with the epilogue fused
//! into the output transform.
//!
//! The kernel's rows are runs of consecutive output tiles in row-major
//! order ([`WinogradSpec::runs`]), so threads never share a tile. Per run:
//! 1. input transform: each tile's `alpha x alpha` input patch, four channels
//!    at a time, becomes `V = Bᵀ d B`, stored in `scratch` as
//!    `[alpha²][run][C rounded up to 4]`. Interior tiles read the patch
//!    straight from the HWC input; border tiles first copy the part of it
//!    inside the input into a zeroed `alpha x alpha` tile on the stack, so
//!    the padding is never read and the transform is emitted only twice.
//!    Where the spec's native ISA is on the host (with FMA), one call a tile to its
//!    native input transform ([`super::native_winograd`], 8 or 16 channels
//!    a vector, reading only the patch's rows and columns inside the
//!    input) does it instead;
//! 2. `alpha²` GEMMs in the transformed domain, `M[ξ] = V[ξ] U[ξ]`, stored in
//!    `scratch` as `[alpha²][block][run][width]`: on the native AVX2 or
//!    AVX-512 tile ([`super::native`], blocks of 16 channels, up to
//!    [`Isa::rows`] tiles a call; on AVX-512 two blocks a call through the
//!    wide tile, an odd last block alone) where the spec asks for it and the
//!    host has it, else on the direct
//!    convolution's Cranelift register tile (blocks of 8, 4 tiles);
//! 3. output transform `Y = Aᵀ M A`, then the epilogue, storing only the
//!    output pixels and channels that exist (tiles cut by the bottom or right
//!    edge through a stack tile and a loop over the pixels that exist), or
//!    one call a tile to the native output transform, which applies the
//!    epilogue with [`super::native_epilogue`]'s code. The native transforms
//!    are the generated ones' operations, so either way the outputs are
//!    bitwise the same.
//!
//! Compile time is what shapes the code: Cranelift's time grows with the
//! code, so each transform is emitted once per path and loops over channel
//! vectors, and only the whole tiles' epilogue is unrolled.
//!
//! The weights are transformed once, at packing time, in `f64`:
//! `U = G g Gᵀ`, packed `[alpha²][block][ci][width]` (zero past `K`). Each
//! run reads all of `U` once, so where `U` is large (`LONG_RUNS_FROM`) runs
//! are as long as `RUN_BYTES` of `V` and `M` allow, and of equal length to a
//! tile, an even count, so two threads get equal shares: 28x28x256's 7 x 7
//! tiles of F(4x4) are two runs of 24 and 25, not 7 tile rows split 4 : 3.
//! Where `U` outgrows a large L2 (`LARGE_L2`: 2 MB and more, the host's by
//! `crate::host`), runs are as long as half the L2 allows, so `U` comes from
//! L3 fewer times while `V` and `M` stay in L2. Otherwise the runs are the
//! tile rows, one fewer where those are odd, so two threads still take equal
//! shares (7 tile rows are six runs of 8 or 9 tiles); in a kernel lowering
//! marks `tile_rows` (a batch's: each image on one thread, `U` warm in the
//! outer cache from the image before, where AlexNet's 13x13x384 F(2x2) layer
//! in two runs of 1.2 MB of `V` and `M` each, beyond L2, made batch 32 4%
//! slower), the runs are the tile rows.
//!
//! Numerics: the transforms' constants make F(4x4) lose about three more
//! bits than the direct convolution on inputs of one scale; the error
//! measured against `f64` is given in BENCHMARKS.md ("Winograd"). The error
//! scales with the largest input of a tile's `alpha x alpha` patch, not with
//! each output's own 3x3 window: to first order, with `u = 2^-24`,
//! `γ(n) = n u / (1 - n u)`, `C` input channels, `P` the largest `|input|`
//! of the patch and `W_k` the sum of `|weights|` of output channel `k`,
//!
//! `|computed - exact| <= γ(C + 20) · c_m · P · W_k`, `c_2 = 16`, `c_4 = 7744/9`
//!
//! (the direct kernel: `γ(9C + 1) · P_window · W_k`). Derivation: each
//! rounding is relative to the absolute values of its terms, so the error is
//! at most `γ(N)` times `|Aᵀ| [Σ_c |U_c| ⊙ |V_c|] |A|`, `N` the roundings on
//! a path (1 for `U`, rounded once from `f64`; 8 for `V`, two products of at
//! most 4 terms; `C` for the channel sum; 10 for the output transform, two
//! products of at most 5 terms; 1 for the bias). `|V_c|ᵢⱼ <= βᵢ βⱼ P` with
//! `βᵢ` the sum of `|Bᵀ|`'s row `i`; `|U_c|ᵢⱼ <= κᵢ κⱼ Σ|g_c|` with `κᵢ` the
//! largest `|G|` of row `i`, which sums over channels to `W_k`; so
//! `c_m = (maxₚ Σᵢ |Aᵀₚᵢ| βᵢ κᵢ)²`: `4²` for F(2x2), `(88/3)²` for F(4x4)
//! (`Aᵀ`'s last row against `β = (10,10,10,6,6,10)`, `κ = (1/4, 1/6, 1/6,
//! 1/6, 1/6, 1)`). One large input thus perturbs every output of its tiles,
//! and an input near `f32::MAX` overflows the input transform (NaN outputs
//! where the direct kernel is finite): `Options::winograd` in the runtime
//! turns Winograd off or bounds it to F(2x2). `runtime/tests/winograd.rs`
//! checks every variant within this bound on a layer with an outlier.

use super::conv::{ConvSpec, BLOCK, TILE};
use super::fold;
use super::native::{self, Isa, Tap, TileFn, WideTileFn};
use super::native_epilogue;
use super::native_winograd::{self, InputFn, InputShape, OutputFn, OutputShape};
use super::{
    apply_epilogue, clamp, epilogue_lengths, for_range, for_tiles, int, store_words, tap_classes,
    vector, Args, ChannelSlice, Epilogue, Epilogued, Lengths, OutputLayout, TileSplit,
};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, InstBuilder, SigRef, StackSlot, StackSlotData, StackSlotKind, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};

/// Input channels per iteration of the GEMM's channel loop.
const UNROLL: usize = 4;

/// The most bytes of `V` and `M` one run of tiles keeps in `scratch`
/// ([`WinogradSpec::runs`]). Every run reads all of `U` (9.4 MB for F(4x4)
/// at 256 channels, beyond L2), so fewer, longer runs read it fewer times
/// and fill the GEMM tiles. Measured, AVX-512, two threads, interleaved (one
/// thread within noise either way): the 28x28x256 3x3 conv (F(4x4), 49
/// tiles) 0.694 ms in 7 tile rows, 0.639 in 4 runs (0.96 MB each), 0.598 in
/// 2 (1.8 MB); the 56x56x128 one (196 tiles) 0.701 in 14 tile rows, 0.650 in
/// 4 runs (1.8 MB), 0.665 in 2 (3.6 MB).
const RUN_BYTES: usize = 2 << 20;

/// The fewest bytes of `U` for which a kernel runs in [`RUN_BYTES`] runs;
/// below, its runs are about its tile rows but on a [`LARGE_L2`]. ResNet-18's
/// 3x3 layers (`U` of 0.6 to 4.2 MB) in long runs were faster alone (layer3's,
/// one thread, 0.472 to 0.437 ms) but 5-25% slower inside the net, one
/// thread (interleaved: the net 11.06 ms in tile rows, 12.04 in long runs;
/// Zen 5, 1 MB of L2).
///
/// Below it, an odd count of tile rows (7 at 28x28 for F(4x4), at 14x14
/// for F(2x2)) is one fewer runs, so two threads take equal shares rather
/// than 4 : 3 rows, and one thread reads `U` once less, in runs of 8 or 9
/// tiles (`V` and `M` of at most 0.29 MB at 14x14x256 for F(2x2), 0.33 MB
/// at 28x28x128 for F(4x4)). Measured on ResNet-18, interleaved, 5 rounds,
/// medians: one thread 12.51 to 12.07 ms, two 6.60 to 6.39 (one more run
/// than the tile rows: 12.20 and 6.41).
const LONG_RUNS_FROM: usize = 8 << 20;

/// The smallest L2 (per core, [`crate::host::l2_bytes`]) on which a kernel
/// whose `U` outgrows the L2 but not [`LONG_RUNS_FROM`] runs in the fewest
/// runs whose `V` and `M` take half the L2, where those are fewer than its
/// tile rows. On an Emerald Rapids Xeon (2 MB of L2; 2026-12-07, one
/// thread, interleaved, 5 rounds, medians): ResNet-50 55.5 to 52.4 ms,
/// ResNet-18 21.5 to 20.5, VGG16 148.1 and 147.2 (its 112x112x128 layer
/// keeps its tile rows of 28 tiles). ResNet's 28x28x128 F(4x4) and
/// 14x14x256 F(2x2) layers, `U` of 2.4 and 4.2 MB, go from six runs of 8
/// or 9 tiles, each reading `U` from L3, to two of 24 or 25. The same rule
/// for a 1 MB L2 (runs of 0.5 MB), tried on that Xeon, was mixed (ResNet-50
/// 58.0 ms, ResNet-18 20.6), and Zen 5's 1 MB L2 measured long runs slower
/// ([`LONG_RUNS_FROM`]), so smaller L2s keep the tile rows.
const LARGE_L2: usize = 2 << 20;

/// F(2x2, 3x3): `Bᵀ`, `G`, `Aᵀ` (Lavin and Gray, 2016).
pub(crate) const F2: Transforms = Transforms {
    bt: &[
        &[1.0, 0.0, -1.0, 0.0],
        &[0.0, 1.0, 1.0, 0.0],
        &[0.0, -1.0, 1.0, 0.0],
        &[0.0, 1.0, 0.0, -1.0],
    ],
    g: &[
        &[1.0, 0.0, 0.0],
        &[0.5, 0.5, 0.5],
        &[0.5, -0.5, 0.5],
        &[0.0, 0.0, 1.0],
    ],
    at: &[&[1.0, 1.0, 1.0, 0.0], &[0.0, 1.0, -1.0, -1.0]],
};

/// F(4x4, 3x3) with the points 0, ±1, ±2 and infinity (Lavin and Gray, 2016).
pub(crate) const F4: Transforms = Transforms {
    bt: &[
        &[4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        &[0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        &[0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        &[0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        &[0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        &[0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ],
    g: &[
        &[1.0 / 4.0, 0.0, 0.0],
        &[-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        &[-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        &[1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        &[1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        &[0.0, 0.0, 1.0],
    ],
    at: &[
        &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        &[0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        &[0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        &[0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ],
};

/// The three matrices of one F(m x m, 3 x 3).
pub(crate) struct Transforms {
    /// `alpha x alpha`: input tile to transformed domain.
    pub(crate) bt: &'static [&'static [f64]],
    /// `alpha x 3`: kernel to transformed domain.
    g: &'static [&'static [f64]],
    /// `m x alpha`: transformed domain to output tile.
    pub(crate) at: &'static [&'static [f64]],
}

/// Everything a Winograd kernel is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WinogradSpec {
    /// Output tile side `m` of F(m x m, 3 x 3): 2 or 4.
    pub tile: usize,
    /// Input height, width, channels.
    pub input: [usize; 3],
    /// Output height, width, channels.
    pub output: [usize; 3],
    /// Zero padding above and on the left (below and right follow from the output size).
    pub pad: [usize; 2],
    /// The fused epilogue, in order.
    pub epilogue: Vec<Epilogue>,
    /// The ISA of the native tile ([`native`]) the GEMMs run on, if any;
    /// any ISA sets the packing's block width, and the Cranelift tile serves
    /// either width.
    pub native: Option<Isa>,
    /// The channel slice of a wider tensor the output is written into, if
    /// not a tensor of its own ([`super::Kernel::sliced`]).
    pub slice: Option<ChannelSlice>,
    /// The kernel's rows are its tile rows whatever `U`'s size (lowering's
    /// choice for a batch's kernel, `choice::batch_kernel`); else
    /// [`Self::runs`]' rule.
    pub tile_rows: bool,
    /// The L2 of one of the host's cores, in bytes, if known
    /// ([`crate::lower::Capabilities::l2_bytes`]): [`Self::runs`]' rule
    /// depends on it. [`Self::of_conv`] leaves it unknown.
    pub l2_bytes: Option<usize>,
}

impl WinogradSpec {
    /// F(`tile` x `tile`, 3 x 3) for `conv`, or `None` unless it is a 3x3,
    /// stride 1, undilated, ungrouped convolution and `tile` is 2 or 4.
    pub fn of_conv(conv: &ConvSpec, tile: usize) -> Option<WinogradSpec> {
        let fits = conv.kernel == [3, 3]
            && conv.stride == [1, 1]
            && conv.dilation == [1, 1]
            && conv.groups == 1
            && matches!(tile, 2 | 4);
        fits.then(|| WinogradSpec {
            tile,
            input: conv.input,
            output: conv.output,
            pad: conv.pad,
            epilogue: conv.epilogue.clone(),
            native: conv.native,
            slice: conv.slice,
            tile_rows: false,
            l2_bytes: None,
        })
    }

    fn transforms(&self) -> &'static Transforms {
        if self.tile == 2 {
            &F2
        } else {
            &F4
        }
    }

    /// Inputs per tile side, `m + 2`.
    fn alpha(&self) -> usize {
        self.tile + 2
    }

    /// Tiles along height and width.
    pub fn tiles(&self) -> [usize; 2] {
        [
            self.output[0].div_ceil(self.tile),
            self.output[1].div_ceil(self.tile),
        ]
    }

    /// Output channels per block: the width of the GEMM's tile.
    pub(super) fn width(&self) -> usize {
        if self.native.is_some() {
            native::WIDTH
        } else {
            BLOCK
        }
    }

    /// Tiles per GEMM tile (its rows), where the host has the tile the spec asks for.
    pub(super) fn gemm_tile(&self) -> usize {
        match self.native {
            Some(isa) if isa.detected() => isa.rows(),
            _ => TILE,
        }
    }

    /// The widest GEMM tile's rows and channels: the wide tile's where it
    /// takes two blocks a call, else [`Self::gemm_tile`] by [`Self::width`].
    pub(super) fn widest_tile(&self) -> (usize, usize) {
        match self.native.and_then(Isa::wide_tiles) {
            Some(_) if self.blocks() >= 2 => (native::WIDE_ROWS, 2 * native::WIDTH),
            _ => (self.gemm_tile(), self.width()),
        }
    }

    /// Blocks of [`Self::width`] output channels.
    fn blocks(&self) -> usize {
        self.output[2].div_ceil(self.width())
    }

    /// Output channels rounded up to whole blocks: one packed per-channel
    /// vector, and one transformed output pixel in scratch.
    fn vector_len(&self) -> usize {
        self.blocks() * self.width()
    }

    /// `f32`s of the transformed weights `U`, `[alpha²][block][ci][width]`.
    fn u_len(&self) -> usize {
        self.alpha().pow(2) * self.vector_len() * self.input[2]
    }

    /// Input channels rounded up to whole `f32x4`: one transformed input pixel in scratch.
    fn channels(&self) -> usize {
        super::padded_channels(self.input[2])
    }

    /// The kernel's rows: runs of consecutive tiles in row-major order. Where
    /// `U` takes `LONG_RUNS_FROM` bytes or more, the fewest whose `V` and `M`
    /// fit `RUN_BYTES`, and an even count (two at least) where there are
    /// several tiles, so two threads take equal shares; where it outgrows
    /// an L2 of `LARGE_L2` or more, the same with half the L2 in place of
    /// `RUN_BYTES`, if that is fewer than the tile rows; else as many as the
    /// tile rows, one fewer where they are odd (`LONG_RUNS_FROM`); where
    /// the spec asks for `tile_rows`, the tile rows.
    /// Run `r` is tiles `[r T / n, (r + 1) T / n)` of the `T` tiles, so runs
    /// differ in length by one tile at most.
    pub fn runs(&self) -> usize {
        let [th, tw] = self.tiles();
        let tiles = th * tw;
        if self.tile_rows {
            return th;
        }
        let u = self.u_len() * 4;
        let row_runs = (th - th % 2).max(1);
        let per_tile = self.alpha().pow(2) * (self.channels() + self.vector_len()) * 4;
        let fewest = |bytes: usize| {
            (tiles * per_tile)
                .div_ceil(bytes)
                .max(2)
                .next_multiple_of(2)
                .min(tiles)
        };
        match self.l2_bytes {
            _ if u >= LONG_RUNS_FROM => fewest(RUN_BYTES),
            Some(l2) if l2 >= LARGE_L2 && u > l2 => fewest(l2 / 2).min(row_runs),
            _ => row_runs,
        }
    }

    /// The shortest and the longest run, in tiles.
    pub(super) fn run_lengths(&self) -> (usize, usize) {
        let [th, tw] = self.tiles();
        let (tiles, runs) = (th * tw, self.runs());
        (tiles / runs, tiles.div_ceil(runs))
    }

    /// `f32`s of `V` in scratch (the longest run); `M` follows,
    /// `alpha² run vector_len` of them.
    fn v_len(&self) -> usize {
        self.alpha().pow(2) * self.run_lengths().1 * self.channels()
    }

    /// The buffer lengths of the kernel's safety contract. Its rows are
    /// runs of tiles ([`Self::runs`]).
    pub fn lengths(&self) -> Lengths {
        let [h, w, c] = self.input;
        let [ho, wo, k] = self.output;
        let (params, extra) = epilogue_lengths(&self.epilogue, self.vector_len(), ho * wo * k);
        let run = self.run_lengths().1;
        Lengths {
            input: h * w * c,
            weights: self.u_len(),
            params,
            extra,
            output: OutputLayout::new(self.slice, k).len(ho * wo),
            scratch: self.v_len() + self.alpha().pow(2) * run * self.vector_len(),
            rows: self.runs(),
        }
    }

    /// PyTorch's `[K, C, 3, 3]` weights, each output channel's times its
    /// `scale` if given, transformed to `U = G g Gᵀ` (in `f64`) and packed as
    /// `[alpha²][block][ci][width]`.
    pub fn pack_weights(&self, weight: &[f32], scale: Option<&[f64]>) -> Vec<f32> {
        /// The widest block.
        const LANES: usize = native::WIDTH;
        /// Input channels transformed before they are stored.
        const CHUNK: usize = 8;
        let (c, k, alpha) = (self.input[2], self.output[2], self.alpha());
        let (width, blocks) = (self.width(), self.blocks());
        let g: Vec<[f64; 3]> = self
            .transforms()
            .g
            .iter()
            .map(|r| [r[0], r[1], r[2]])
            .collect();
        let mut packed = vec![0.0; self.lengths().weights];
        // `U` of one block and `CHUNK` input channels, `[alpha²][ci][lane]`.
        let mut u = vec![[0.0f32; LANES]; alpha * alpha * CHUNK];
        // One block of output channels and a chunk of input channels at a
        // time, the block's channels innermost: the arithmetic runs on whole
        // arrays of lanes, and each of the `alpha²` planes then receives the
        // chunk as one contiguous run (a few cache lines, written in order),
        // which matters for the largest layers (36 MB packed for 512 channels).
        for kb in 0..blocks {
            let channels = kb * width..k.min((kb + 1) * width);
            // Lanes past `K` stay zero.
            let lanes = channels.len();
            for c0 in (0..c).step_by(CHUNK) {
                let chunk = CHUNK.min(c - c0);
                for dc in 0..chunk {
                    // w[tap][lane], zero past K.
                    let mut w = [[0.0f64; LANES]; 9];
                    for (lane, ko) in channels.clone().enumerate() {
                        for (tap, &x) in weight[(ko * c + c0 + dc) * 9..][..9].iter().enumerate() {
                            w[tap][lane] = f64::from(fold(x, ko, scale));
                        }
                    }
                    for (a, ga) in g.iter().enumerate() {
                        // (G g)[a][x], then times Gᵀ.
                        let mut gw = [[0.0f64; LANES]; 3];
                        for (x, gw) in gw.iter_mut().enumerate() {
                            for (l, v) in gw.iter_mut().enumerate() {
                                *v = ga[0] * w[x][l] + ga[1] * w[3 + x][l] + ga[2] * w[6 + x][l];
                            }
                        }
                        for (bb, gb) in g.iter().enumerate() {
                            let u = &mut u[(a * alpha + bb) * CHUNK + dc];
                            for (l, v) in u.iter_mut().enumerate() {
                                *v =
                                    (gw[0][l] * gb[0] + gw[1][l] * gb[1] + gw[2][l] * gb[2]) as f32;
                            }
                        }
                    }
                }
                for (xi, plane) in u.chunks_exact(CHUNK).enumerate() {
                    let at = ((xi * blocks + kb) * c + c0) * width;
                    let run = packed[at..at + chunk * width].chunks_exact_mut(width);
                    for (dst, src) in run.zip(plane) {
                        dst[..lanes].copy_from_slice(&src[..lanes]);
                    }
                }
            }
        }
        packed
    }

    /// A per-channel vector (`[K]`) zero-padded to whole blocks.
    pub fn pack_vector(&self, v: &[f32]) -> Vec<f32> {
        let mut packed = v.to_vec();
        packed.resize(self.vector_len(), 0.0);
        packed
    }
}

/// `out[r] = Σ_k m[r][k] x[k]` for `r < rows`, where `None` is a known zero:
/// zero coefficients and zero inputs cost nothing.
fn combine(
    b: &mut FunctionBuilder,
    m: &[&[f64]],
    rows: usize,
    x: &[Option<Value>],
) -> Vec<Option<Value>> {
    m[..rows]
        .iter()
        .map(|row| {
            let mut acc: Option<Value> = None;
            for (&coef, &xk) in row.iter().zip(x) {
                let Some(xk) = xk.filter(|_| coef != 0.0) else {
                    continue;
                };
                acc = Some(match (acc, coef) {
                    (None, 1.0) => xk,
                    (None, -1.0) => b.ins().fneg(xk),
                    (None, _) => {
                        let c = vector::splat(b, coef as f32);
                        b.ins().fmul(xk, c)
                    }
                    (Some(acc), 1.0) => b.ins().fadd(acc, xk),
                    (Some(acc), -1.0) => b.ins().fsub(acc, xk),
                    (Some(acc), _) => {
                        let c = vector::splat(b, coef as f32);
                        vector::mul_add(b, xk, c, acc)
                    }
                });
            }
            acc
        })
        .collect()
}

/// `L x Rᵀ` of an `alpha x alpha` tile `x` (row-major), keeping the first
/// `rows x cols` of the result.
fn transform(
    b: &mut FunctionBuilder,
    m: &[&[f64]],
    (rows, cols): (usize, usize),
    x: &[Option<Value>],
) -> Vec<Vec<Option<Value>>> {
    let alpha = m[0].len();
    // Columns first: t[r][j] = Σ_i m[r][i] x[i][j].
    let columns: Vec<Vec<Option<Value>>> = (0..alpha)
        .map(|j| {
            let column: Vec<Option<Value>> = (0..alpha).map(|i| x[i * alpha + j]).collect();
            combine(b, m, rows, &column)
        })
        .collect();
    (0..rows)
        .map(|r| {
            let row: Vec<Option<Value>> = columns.iter().map(|c| c[r]).collect();
            combine(b, m, cols, &row)
        })
        .collect()
}

/// `body(first, lanes)` over `n` channels in vectors of four: a loop over the
/// whole vectors, then the partial one.
fn channel_vectors(
    b: &mut FunctionBuilder,
    n: usize,
    mut body: impl FnMut(&mut FunctionBuilder, Value, usize),
) {
    let full = n / 4 * 4;
    if full > 0 {
        let zero = int(b, 0);
        let end = int(b, full as i64);
        for_range(b, zero, end, 4, |b, ch| body(b, ch, 4));
    }
    if n > full {
        let ch = int(b, full as i64);
        body(b, ch, n - full);
    }
}

/// Emits the kernel body for runs of tiles `[begin, end)` ([`WinogradSpec::runs`]).
pub(crate) fn emit(spec: &WinogradSpec, b: &mut FunctionBuilder, a: &Args) {
    let [th, tw] = spec.tiles();
    let runs = spec.runs() as i64;
    let (short, long) = spec.run_lengths();
    let native = spec
        .native
        .and_then(|isa| native_winograd::transforms(isa, spec.tile))
        .and_then(|(input, output)| NativeTransforms::new(spec, b, a, input, output));
    let begin = clamp(b, a.begin, 0, runs);
    let end = clamp(b, a.end, 0, runs);
    // The first tile of run `r`: `r T / n`.
    let start = |b: &mut FunctionBuilder, r: Value| {
        let t = b.ins().imul_imm_s(r, (th * tw) as i64);
        b.ins().udiv_imm_s(t, runs)
    };
    for_range(b, begin, end, 1, |b, r| {
        let first = start(b, r);
        let next = b.ins().iadd_imm_s(r, 1);
        let next = start(b, next);
        input_run(spec, b, a, native.as_ref(), first, next);
        if short == long {
            gemm(spec, b, a, long);
        } else {
            let tiles = b.ins().isub(next, first);
            let is_long = b.ins().icmp_imm_s(IntCC::Equal, tiles, long as i64);
            if_else(
                b,
                is_long,
                |b| gemm(spec, b, a, long),
                |b| gemm(spec, b, a, short),
            );
        }
        output_run(spec, b, a, native.as_ref(), first, next);
    });
}

/// What the generated code needs to call the native transforms
/// ([`native_winograd`]): their entry points and signatures, and the
/// constants of every call, stored once where the kernel sets up.
struct NativeTransforms {
    input: InputFn,
    input_signature: SigRef,
    input_shape: StackSlot,
    output: OutputFn,
    output_signature: SigRef,
    output_shape: StackSlot,
    /// The fused epilogue's steps ([`native_epilogue::Step`]s).
    steps: StackSlot,
}

impl NativeTransforms {
    /// The native transforms of `spec`, or `None` where its steps do not
    /// fit a stack slot.
    fn new(
        spec: &WinogradSpec,
        b: &mut FunctionBuilder,
        a: &Args,
        input: InputFn,
        output: OutputFn,
    ) -> Option<NativeTransforms> {
        let ptr = b.func.dfg.value_type(a.input);
        let [_, w, c] = spec.input;
        let [_, wo, k] = spec.output;
        let run = spec.run_lengths().1;
        let out = OutputLayout::new(spec.slice, k);
        let input_words = InputShape {
            channels: c as i64,
            row: (w * c * 4) as i64,
            pixel: (c * 4) as i64,
            point: (run * spec.channels() * 4) as i64,
        }
        .words();
        let output_words = OutputShape {
            channels: k as i64,
            point: (run * spec.vector_len() * 4) as i64,
            block: (run * spec.width() * 4) as i64,
            vector: (spec.vector_len() * 4) as i64,
            row: wo as i64 * out.pixel_bytes(),
            pixel: out.pixel_bytes(),
            steps: spec.epilogue.len() as i64,
        }
        .words();
        let mut slot = |words: &[i64]| {
            let bytes = (words.len() * 8) as u32;
            let slot = b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                bytes,
                3,
            ));
            store_words(b, slot, words);
            slot
        };
        let (input_shape, output_shape) = (slot(&input_words), slot(&output_words));
        Some(NativeTransforms {
            input,
            input_signature: native_winograd::import_input_signature(b, ptr),
            input_shape,
            output,
            output_signature: native_winograd::import_output_signature(b, ptr),
            output_shape,
            steps: native_epilogue::store_steps(b, ptr, &spec.epilogue)?,
        })
    }
}

/// Tile `t`'s tile row and column, `(t / tiles_w, t % tiles_w)`.
fn tile_at(spec: &WinogradSpec, b: &mut FunctionBuilder, t: Value) -> (Value, Value) {
    let tw = spec.tiles()[1] as i64;
    let ty = b.ins().udiv_imm_s(t, tw);
    let row = b.ins().imul_imm_s(ty, tw);
    (ty, b.ins().isub(t, row))
}

/// The tiles, along one side, whose whole patch lies inside the input:
/// `[first, end)`, empty if there are none.
fn interior(tiles: usize, input: usize, m: usize, pad: usize) -> (i64, i64) {
    let alpha = m + 2;
    tap_classes(tiles, input, alpha, m, 1, pad)
        .into_iter()
        .find(|c| (c.2, c.3) == (0, alpha))
        .map_or((0, 0), |c| (c.0 as i64, c.1 as i64))
}

/// `then` if `cond` is nonzero, else `otherwise`.
fn if_else(
    b: &mut FunctionBuilder,
    cond: Value,
    then: impl FnOnce(&mut FunctionBuilder),
    otherwise: impl FnOnce(&mut FunctionBuilder),
) {
    let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
    b.ins().brif(cond, yes, &[], no, &[]);
    b.switch_to_block(yes);
    then(b);
    b.ins().jump(join, &[]);
    b.switch_to_block(no);
    otherwise(b);
    b.ins().jump(join, &[]);
    b.switch_to_block(join);
}

/// `start <= x < end` for constants `start` and `end`, as an `I8` truth value.
fn in_range(b: &mut FunctionBuilder, x: Value, (start, end): (i64, i64)) -> Value {
    let above = b
        .ins()
        .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, x, start);
    let below = b.ins().icmp_imm_s(IntCC::SignedLessThan, x, end);
    b.ins().band(above, below)
}

/// Transforms the input patches of tiles `[first, next)` into `V`.
///
/// The transform is emitted once for the interior tiles, which read their
/// patch straight from the input, and once for all the border tiles, which
/// first gather the part of their patch inside the input into a zeroed
/// `alpha x alpha` stack tile of one channel vector: two copies of the
/// transform instead of one per class of border (up to nine), which is most
/// of the kernel's compile time, for a little more work on the border tiles.
/// With `native`, each tile is one call to the native input transform,
/// given the patch rows and columns inside the input.
fn input_run(
    spec: &WinogradSpec,
    b: &mut FunctionBuilder,
    a: &Args,
    native: Option<&NativeTransforms>,
    first: Value,
    next: Value,
) {
    let [h, w, c] = spec.input;
    let (m, alpha) = (spec.tile, spec.alpha());
    let [th, tw] = spec.tiles();
    let cp = spec.channels();
    let (pixel, in_row) = ((c * 4) as i64, (w * c * 4) as i64);
    let rows = interior(th, h, m, spec.pad[0]);
    let columns = interior(tw, w, m, spec.pad[1]);
    let staging = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        (alpha * alpha * 16) as u32,
        4,
    ));
    let ptr = b.func.dfg.value_type(a.input);
    for_range(b, first, next, 1, |b, t| {
        let (ty, tx) = tile_at(spec, b, t);
        // The input row of patch row 0: ty m - pad, possibly negative.
        let iy = b.ins().imul_imm_s(ty, m as i64);
        let iy = b.ins().iadd_imm_s(iy, -(spec.pad[0] as i64));
        let off = b.ins().imul_imm_s(iy, in_row);
        let row = b.ins().iadd(a.input, off);
        // Patch column 0 of this tile: tx m - pad, possibly negative.
        let ix = b.ins().imul_imm_s(tx, m as i64);
        let ix = b.ins().iadd_imm_s(ix, -(spec.pad[1] as i64));
        let off = b.ins().imul_imm_s(ix, pixel);
        let patch = b.ins().iadd(row, off);
        // This tile's place in the run.
        let slot = b.ins().isub(t, first);
        let off = b.ins().imul_imm_s(slot, (cp * 4) as i64);
        let v = b.ins().iadd(a.scratch, off);
        // The patch rows and columns inside the input.
        let bounds = |b: &mut FunctionBuilder, first: Value, n: usize| {
            let neg = b.ins().ineg(first);
            let lo = clamp(b, neg, 0, alpha as i64);
            let rest = b.ins().iadd_imm_s(neg, n as i64);
            (lo, clamp(b, rest, 0, alpha as i64))
        };
        if let Some(native) = native {
            let (i_lo, i_hi) = bounds(b, iy, h);
            let (j_lo, j_hi) = bounds(b, ix, w);
            let shape = b.ins().stack_addr(ptr, native.input_shape, 0);
            let callee = int(b, native.input as usize as i64);
            b.ins().call_indirect(
                native.input_signature,
                callee,
                &[patch, v, shape, i_lo, i_hi, j_lo, j_hi],
            );
            return;
        }
        let row_inside = in_range(b, ty, rows);
        let column_inside = in_range(b, tx, columns);
        let inside = b.ins().band(row_inside, column_inside);
        if_else(
            b,
            inside,
            |b| {
                channel_vectors(b, c, |b, ch, lanes| {
                    let off = b.ins().imul_imm_s(ch, 4);
                    let patch = b.ins().iadd(patch, off);
                    let v = b.ins().iadd(v, off);
                    transform_patch(spec, b, (patch, in_row, pixel), lanes, v);
                })
            },
            |b| {
                let (i_lo, i_hi) = bounds(b, iy, h);
                let (j_lo, j_hi) = bounds(b, ix, w);
                let tile = b.ins().stack_addr(ptr, staging, 0);
                // Every channel vector copies the same part, so the rest stays zero.
                let zero = vector::splat(b, 0.0);
                for p in 0..alpha * alpha {
                    vector::store_partial(b, zero, tile, (p * 16) as i64, 4);
                }
                channel_vectors(b, c, |b, ch, lanes| {
                    let off = b.ins().imul_imm_s(ch, 4);
                    let patch = b.ins().iadd(patch, off);
                    for_range(b, i_lo, i_hi, 1, |b, i| {
                        let off = b.ins().imul_imm_s(i, in_row);
                        let src = b.ins().iadd(patch, off);
                        let off = b.ins().imul_imm_s(i, (alpha * 16) as i64);
                        let dst = b.ins().iadd(tile, off);
                        for_range(b, j_lo, j_hi, 1, |b, j| {
                            let off = b.ins().imul_imm_s(j, pixel);
                            let src = b.ins().iadd(src, off);
                            let x = vector::load_partial(b, src, 0, lanes);
                            let off = b.ins().imul_imm_s(j, 16);
                            let dst = b.ins().iadd(dst, off);
                            vector::store_partial(b, x, dst, 0, 4);
                        });
                    });
                    let off = b.ins().imul_imm_s(ch, 4);
                    let v = b.ins().iadd(v, off);
                    transform_patch(spec, b, (tile, (alpha * 16) as i64, 16), 4, v);
                })
            },
        );
    });
}

/// `V = Bᵀ d B` of one channel vector of one tile, `d[i][j]` at
/// `base + i row + j column` bytes (`lanes` of it), stored at `v`.
fn transform_patch(
    spec: &WinogradSpec,
    b: &mut FunctionBuilder,
    (base, row, column): (Value, i64, i64),
    lanes: usize,
    v: Value,
) {
    let alpha = spec.alpha();
    let stride = (spec.run_lengths().1 * spec.channels() * 4) as i64;
    let d: Vec<Option<Value>> = (0..alpha * alpha)
        .map(|p| {
            let (i, j) = ((p / alpha) as i64, (p % alpha) as i64);
            Some(vector::load_partial(b, base, i * row + j * column, lanes))
        })
        .collect();
    let t = transform(b, spec.transforms().bt, (alpha, alpha), &d);
    for (xi, x) in t.into_iter().flatten().enumerate() {
        let x = x.unwrap_or_else(|| vector::splat(b, 0.0));
        vector::store_partial(b, x, v, xi as i64 * stride, 4);
    }
}

/// What the generated code needs to call the native tile.
struct Native {
    /// The tile of each row count.
    tiles: &'static [TileFn],
    /// [`TileFn`]'s signature, imported into the kernel.
    signature: SigRef,
    /// The wide tile of each row count and its signature, where the spec's
    /// ISA has one.
    wide: Option<(&'static [WideTileFn], SigRef)>,
    /// The one tap of every call, `{a: 0, b: 0}`: a plain GEMM.
    tap: StackSlot,
}

/// `M[ξ] = V[ξ] U[ξ]` for every `ξ` of a run of `tiles` tiles in scratch.
fn gemm(spec: &WinogradSpec, b: &mut FunctionBuilder, a: &Args, tiles: usize) {
    let c = spec.input[2];
    // Rows of `V` and `M` are a run apart, whatever this run's length.
    let run = spec.run_lengths().1;
    let (cp, width, blocks) = (spec.channels(), spec.width(), spec.blocks());
    let ptr = b.func.dfg.value_type(a.input);
    // Where the host lacks the native tile (a spec built by hand), the
    // Cranelift tile serves the native packing too.
    let native = spec.native.and_then(Isa::tiles).map(|tiles| {
        let bytes = size_of::<Tap>() as u32;
        let tap =
            b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 3));
        let zero = int(b, 0);
        b.ins().stack_store(ptr, zero, tap, 0);
        b.ins().stack_store(ptr, zero, tap, 8);
        Native {
            tiles,
            signature: native::import_signature(b, ptr),
            wide: spec
                .native
                .and_then(Isa::wide_tiles)
                .map(|wide| (wide, native::import_wide_signature(b, ptr))),
            tap,
        }
    });
    // Blocks per GEMM call: two where the wide tile takes them, the odd
    // last one alone.
    let pair = native.as_ref().is_some_and(|n| n.wide.is_some()) && blocks >= 2;
    let rows = spec.gemm_tile();
    let shape = Gemm { c, cp, width };
    let v_base = a.scratch;
    let m_base = b.ins().iadd_imm_s(a.scratch, (spec.v_len() * 4) as i64);
    let zero = int(b, 0);
    let points = int(b, spec.alpha().pow(2) as i64);
    for_range(b, zero, points, 1, |b, xi| {
        let paired = if pair { blocks / 2 * 2 } else { 0 };
        let runs = [(0, paired, 2i64), (paired, blocks, 1)];
        for (first, end, step) in runs.into_iter().filter(|(f, e, _)| f < e) {
            let n = int(b, end as i64);
            let first = int(b, first as i64);
            for_range(b, first, n, step, |b, blk| {
                let index = b.ins().imul_imm_s(xi, blocks as i64);
                let index = b.ins().iadd(index, blk);
                let off = b.ins().imul_imm_s(index, (c * width * 4) as i64);
                let u = b.ins().iadd(a.weights, off);
                // M[ξ][block] holds `run` rows of `width`.
                let off = b.ins().imul_imm_s(index, (run * width * 4) as i64);
                let m = b.ins().iadd(m_base, off);
                let at = |b: &mut FunctionBuilder, tx: Value| {
                    let pixel = b.ins().imul_imm_s(xi, run as i64);
                    let pixel = b.ins().iadd(pixel, tx);
                    let off = b.ins().imul_imm_s(pixel, (cp * 4) as i64);
                    let v = b.ins().iadd(v_base, off);
                    let off = b.ins().imul_imm_s(tx, (width * 4) as i64);
                    (v, b.ins().iadd(m, off))
                };
                let tile = |b: &mut FunctionBuilder, tx: Value, pixels: usize| {
                    let (v, out) = at(b, tx);
                    match &native {
                        Some(native) => {
                            let a_stride = int(b, (cp * 4) as i64);
                            let taps = b.ins().stack_addr(ptr, native.tap, 0);
                            let count = int(b, 1);
                            let depth = int(b, c as i64);
                            let mut args = vec![v, a_stride, u, taps, count, depth, out];
                            // A pair: the next block of `U` and of `M` follow
                            // this one's.
                            let (signature, callee) = match native.wide {
                                Some((wide, signature)) if step == 2 => {
                                    let b_block = int(b, (c * width * 4) as i64);
                                    let c_block = int(b, (run * width * 4) as i64);
                                    args.extend([b_block, c_block]);
                                    (signature, wide[pixels - 1] as usize)
                                }
                                _ => (native.signature, native.tiles[pixels - 1] as usize),
                            };
                            let callee = int(b, callee as i64);
                            b.ins().call_indirect(signature, callee, &args);
                        }
                        None => gemm_tile(b, &shape, v, u, out, pixels),
                    }
                };
                let most = if step == 2 { native::WIDE_ROWS } else { rows };
                for_tiles(b, tiles, (most, TileSplit::of(spec.native)), tile);
            });
        }
    });
}

/// The strides of one transformed-domain GEMM, in `f32`s.
struct Gemm {
    /// Reduction length (input channels).
    c: usize,
    /// Between rows of `V` (tiles).
    cp: usize,
    /// Output channels of a block, and between rows of `M`.
    width: usize,
}

/// `pixels` rows of `V` times one packed block of `U` (`[ci][width]`), stored
/// as `pixels` rows of `width` in `M`: `width / 4 x pixels` `f32x4`
/// accumulators, one splatted `V` element and `width / 4` weight vectors per
/// step, as in the direct convolution.
fn gemm_tile(b: &mut FunctionBuilder, g: &Gemm, v: Value, u: Value, out: Value, pixels: usize) {
    let vectors = g.width / 4;
    let acc: Vec<Vec<Variable>> = (0..pixels)
        .map(|_| {
            (0..vectors)
                .map(|_| {
                    let var = b.declare_var(types::F32X4);
                    let zero = vector::splat(b, 0.0);
                    b.def_var(var, zero);
                    var
                })
                .collect()
        })
        .collect();
    let step = |b: &mut FunctionBuilder, v: Value, u: Value, unit: usize| {
        let w: Vec<Value> = (0..vectors)
            .map(|q| vector::load4(b, u, ((unit * g.width + 4 * q) * 4) as i64))
            .collect();
        for (p, acc_p) in acc.iter().enumerate() {
            let x = vector::load_splat(b, v, ((p * g.cp + unit) * 4) as i64);
            for (var, wv) in acc_p.iter().zip(&w) {
                let old = b.use_var(*var);
                let new = vector::mul_add(b, x, *wv, old);
                b.def_var(*var, new);
            }
        }
    };
    let at = |b: &mut FunctionBuilder, ci: Value| {
        let off = b.ins().imul_imm_s(ci, 4);
        let v = b.ins().iadd(v, off);
        let off = b.ins().imul_imm_s(ci, (g.width * 4) as i64);
        (v, b.ins().iadd(u, off))
    };
    let main = g.c / UNROLL * UNROLL;
    if main > 0 {
        let zero = int(b, 0);
        let end = int(b, main as i64);
        for_range(b, zero, end, UNROLL as i64, |b, ci| {
            let (v, u) = at(b, ci);
            for unit in 0..UNROLL {
                step(b, v, u, unit);
            }
        });
    }
    let ci = int(b, main as i64);
    let (v, u) = at(b, ci);
    for unit in 0..g.c - main {
        step(b, v, u, unit);
    }
    for (p, acc_p) in acc.iter().enumerate() {
        for (q, var) in acc_p.iter().enumerate() {
            let x = b.use_var(*var);
            vector::store_partial(b, x, out, ((p * g.width + 4 * q) * 4) as i64, 4);
        }
    }
}

/// Transforms tiles `[first, next)` of `M` back, applies the epilogue and
/// stores the output pixels that exist.
///
/// The transform is emitted once; whole tiles then store all `m x m`
/// pixels unrolled, while the tiles cut by the bottom or right edge stage
/// the transformed tile on the stack and store the pixels that exist in a
/// loop, so a kernel holds two copies of the epilogue rather than one per
/// class of edge tile. With `native`, each tile is one call to the native
/// output transform, given the rows and columns of it that exist.
fn output_run(
    spec: &WinogradSpec,
    b: &mut FunctionBuilder,
    a: &Args,
    native: Option<&NativeTransforms>,
    first: Value,
    next: Value,
) {
    let [ho, wo, k] = spec.output;
    let m = spec.tile;
    let run = spec.run_lengths().1;
    let (kp, width) = (spec.vector_len(), spec.width());
    let out = OutputLayout::new(spec.slice, k);
    let (pixel, out_row) = (out.pixel_bytes(), wo as i64 * out.pixel_bytes());
    let m_base = b.ins().iadd_imm_s(a.scratch, (spec.v_len() * 4) as i64);
    let staging = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        (m * m * 16) as u32,
        4,
    ));
    let ptr = b.func.dfg.value_type(a.input);
    let output = out.start(b, a.output);
    for_range(b, first, next, 1, |b, t| {
        let (ty, tx) = tile_at(spec, b, t);
        // The output rows of this tile that exist.
        let top = b.ins().imul_imm_s(ty, m as i64);
        let left = b.ins().ineg(top);
        let left = b.ins().iadd_imm_s(left, ho as i64);
        let rows = clamp(b, left, 0, m as i64);
        // The tile's first output element.
        let oy = b.ins().imul_imm_s(top, out_row);
        let ox = b.ins().imul_imm_s(tx, m as i64 * pixel);
        let at = b.ins().iadd(oy, ox);
        let extra = b.ins().iadd(a.extra, at);
        let output = b.ins().iadd(output, at);
        // This tile's place in the run.
        let slot = b.ins().isub(t, first);
        let off = b.ins().imul_imm_s(slot, (width * 4) as i64);
        let mt = b.ins().iadd(m_base, off);
        let first = b.ins().imul_imm_s(tx, m as i64);
        let left = b.ins().ineg(first);
        let left = b.ins().iadd_imm_s(left, wo as i64);
        let cols = clamp(b, left, 0, m as i64);
        if let Some(native) = native {
            let steps = b.ins().stack_addr(ptr, native.steps, 0);
            let shape = b.ins().stack_addr(ptr, native.output_shape, 0);
            let callee = int(b, native.output as usize as i64);
            b.ins().call_indirect(
                native.output_signature,
                callee,
                &[mt, output, extra, rows, cols, a.params, steps, shape],
            );
            return;
        }
        let row_whole = in_range(b, ty, (0, (ho / m) as i64));
        let column_whole = in_range(b, tx, (0, (wo / m) as i64));
        let whole = b.ins().band(row_whole, column_whole);
        channel_vectors(b, k, |b, ch, lanes| {
            // Vector ch / 4 is vector `sub` of block `blk`: M[ξ][blk][slot][4 sub..].
            let q = b.ins().ushr_imm_s(ch, 2);
            let per_block = (width / 4) as i64;
            let blk = b.ins().ushr_imm_s(q, i64::from(per_block.trailing_zeros()));
            let sub = b.ins().band_imm_s(q, per_block - 1);
            let off = b.ins().imul_imm_s(blk, (run * width * 4) as i64);
            let mt = b.ins().iadd(mt, off);
            let off = b.ins().imul_imm_s(sub, 16);
            let mt = b.ins().iadd(mt, off);
            let x: Vec<Option<Value>> = (0..spec.alpha().pow(2))
                .map(|xi| Some(vector::load4(b, mt, (xi * run * kp * 4) as i64)))
                .collect();
            let y: Vec<Value> = transform(b, spec.transforms().at, (m, m), &x)
                .into_iter()
                .flatten()
                .map(|y| y.unwrap_or_else(|| vector::splat(b, 0.0)))
                .collect();
            let ch = b.ins().imul_imm_s(ch, 4);
            let params = b.ins().iadd(a.params, ch);
            let output = b.ins().iadd(output, ch);
            let extra = b.ins().iadd(extra, ch);
            let at = |output: Value, extra: Value, element: i64| Epilogued {
                params,
                channel: 0,
                vector: (kp * 4) as i64,
                extra,
                output,
                element,
                lanes,
            };
            if_else(
                b,
                whole,
                |b| {
                    for (p, &y) in y.iter().enumerate() {
                        let element = (p / m) as i64 * out_row + (p % m) as i64 * pixel;
                        apply_epilogue(b, &spec.epilogue, y, &at(output, extra, element));
                    }
                },
                |b| {
                    let tile = b.ins().stack_addr(ptr, staging, 0);
                    for (p, &y) in y.iter().enumerate() {
                        vector::store_partial(b, y, tile, (p * 16) as i64, 4);
                    }
                    let zero = int(b, 0);
                    for_range(b, zero, rows, 1, |b, i| {
                        let off = b.ins().imul_imm_s(i, out_row);
                        let (output, extra) = (b.ins().iadd(output, off), b.ins().iadd(extra, off));
                        let off = b.ins().imul_imm_s(i, (m * 16) as i64);
                        let src = b.ins().iadd(tile, off);
                        let zero = int(b, 0);
                        for_range(b, zero, cols, 1, |b, j| {
                            let off = b.ins().imul_imm_s(j, 16);
                            let src = b.ins().iadd(src, off);
                            let y = vector::load4(b, src, 0);
                            let off = b.ins().imul_imm_s(j, pixel);
                            let (output, extra) =
                                (b.ins().iadd(output, off), b.ins().iadd(extra, off));
                            apply_epilogue(b, &spec.epilogue, y, &at(output, extra, 0));
                        });
                    });
                },
            );
        });
    });
}

#[cfg(test)]
mod tests {
    use super::{interior, WinogradSpec};
    use crate::native::Isa;

    /// F(`tile`) of a 3x3 `same` conv on `side x side x c` to `c` channels.
    fn spec(tile: usize, side: usize, c: usize, native: Option<Isa>) -> WinogradSpec {
        WinogradSpec {
            tile,
            input: [side, side, c],
            output: [side, side, c],
            pad: [1, 1],
            epilogue: Vec::new(),
            native,
            slice: None,
            tile_rows: false,
            l2_bytes: None,
        }
    }

    #[test]
    fn runs_are_even_balanced_and_bounded() {
        // By hand. 28x28x256, F(4x4): U is 36 x 256 x 256 x 4 = 9.4 MB, so
        // long runs; 7 x 7 = 49 tiles of 36 (256 + 256) x 4 = 73,728 bytes
        // of V and M, 3.6 MB in all: two runs of 24 and 25 (1.8 MB, within
        // 2 MiB).
        let s = spec(4, 28, 256, Some(Isa::Avx512));
        assert_eq!(s.runs(), 2);
        assert_eq!(s.run_lengths(), (24, 25));
        assert_eq!(s.lengths().rows, 2);
        assert_eq!(s.lengths().scratch, 36 * 25 * 512);
        // 56x56x256: 196 tiles, 14.4 MB: 6.9 runs' worth, so eight (even
        // counts only) of 24 or 25.
        let s = spec(4, 56, 256, Some(Isa::Avx512));
        assert_eq!((s.runs(), s.run_lengths()), (8, (24, 25)));
        // 14x14x512, F(2x2) on Cranelift's blocks: U is 16 x 512 x 512 x 4 =
        // 16.8 MB; 49 tiles of 16 (512 + 512) x 4 = 65,536 bytes, 3.2 MB:
        // two runs.
        let s = spec(2, 14, 512, None);
        assert_eq!((s.runs(), s.run_lengths()), (2, (24, 25)));
        // U below 8 MiB: the tile rows, an odd count one fewer: 7 rows of
        // 7 tiles are six runs, 49 / 6 = 8.2 tiles, of 8 or 9.
        let s = spec(4, 28, 128, Some(Isa::Avx512));
        assert_eq!((s.runs(), s.run_lengths()), (6, (8, 9)));
        let mut rows = s.clone();
        rows.tile_rows = true;
        assert_eq!((rows.runs(), rows.run_lengths()), (7, (7, 7)));
        let s = spec(4, 56, 128, Some(Isa::Avx512));
        assert_eq!((s.runs(), s.run_lengths()), (14, (14, 14)));
        let s = spec(4, 3, 16, None);
        assert_eq!((s.runs(), s.run_lengths()), (1, (1, 1)));
        // Cranelift's blocks of 8: 5 channels pad to 8 per tile and 8 in;
        // 3 rows of 3 tiles are two runs, of 4 and 5 tiles.
        let s = spec(2, 6, 5, None);
        assert_eq!((s.runs(), s.run_lengths()), (2, (4, 5)));
        assert_eq!(s.lengths().scratch, 16 * 5 * (8 + 8));
    }

    #[test]
    fn runs_on_a_large_l2_fit_half_of_it() {
        let on_l2 = |l2: usize, tile, side, c| WinogradSpec {
            l2_bytes: Some(l2),
            ..spec(tile, side, c, Some(Isa::Avx512))
        };
        // On a 2 MB L2, where U (36 x 128 x 128 x 4 = 2.4 MB) outgrows it,
        // 28x28x128's 49 tiles of 36 (128 + 128) x 4 = 36,864 bytes (1.8 MB)
        // are two runs of half the L2 at most; on 1 MB, the tile rows.
        let s = on_l2(2 << 20, 4, 28, 128);
        assert_eq!((s.runs(), s.run_lengths()), (2, (24, 25)));
        assert_eq!(on_l2(1 << 20, 4, 28, 128).runs(), 6);
        // 14x14x256, F(2x2): U is 16 x 256 x 256 x 4 = 4.2 MB, 49 tiles of
        // 16 (256 + 256) x 4 = 32,768 bytes (1.6 MB): two runs on 2 MB.
        let s = on_l2(2 << 20, 2, 14, 256);
        assert_eq!((s.runs(), s.run_lengths()), (2, (24, 25)));
        // U within the L2 (56x56x64: 36 x 64 x 64 x 4 = 0.6 MB): tile rows.
        assert_eq!(on_l2(2 << 20, 4, 56, 64).runs(), 14);
        // Never more runs than the tile rows: 120x120x128's 900 tiles of
        // 36,864 bytes (33.2 MB) would take 32 runs of 1 MB; it keeps its
        // 30 tile rows.
        let s = on_l2(2 << 20, 4, 120, 128);
        assert_eq!((s.runs(), s.run_lengths()), (30, (30, 30)));
        // U of 8 MiB or more keeps its runs of 2 MiB whatever the L2
        // (28x28x256, F(4x4): two runs, as without an L2).
        assert_eq!(on_l2(2 << 20, 4, 28, 256).runs(), 2);
        assert_eq!(on_l2(4 << 20, 4, 28, 256).runs(), 2);
    }

    #[test]
    fn interior_tiles_read_only_inside_the_input() {
        // F(4x4), pad 1 on 56: tile t reads inputs 4t - 1 ..= 4t + 4, inside
        // for 1 <= t <= 12.
        assert_eq!(interior(14, 56, 4, 1), (1, 13));
        // On 7 inputs tile 0 reads -1 and tile 1 reads up to 8: none inside.
        assert_eq!(interior(2, 7, 4, 1), (0, 0));
        // F(2x2) without padding on 6 inputs: tile t reads 2t ..= 2t + 3.
        assert_eq!(interior(2, 6, 2, 0), (0, 2));
    }
}
