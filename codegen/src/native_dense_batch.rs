//! The batched dense layer: a dense layer (any spec the native GEMV serves,
//! [`ConvSpec::gemv`]) run once for a batch of images, reading its weights
//! once for all of them rather than once per image.
//!
//! At batch 1 a dense layer is a matrix-vector product bound by reading its
//! weights (AlexNet's classifier reads 230 MB an image, VGG16's 500 MB).
//! Over a batch it is a GEMM with few columns (the images): per block of
//! [`WIDTH`] output channels, this module runs every image of the batch
//! against the block's weights, which are the native GEMV's own packing
//! (`[block][C][WIDTH]`, so a model packs its weights once for both), then
//! the block's fused epilogue on every image with the native epilogue
//! ([`super::native_epilogue`]).
//!
//! # Bitwise equal to batch 1
//!
//! Each output is the same chain of fused multiply-adds as the native
//! GEMV's ([`super::native_gemv`]): from zero, `k` by `k`, one FMA per
//! term. The batch kernel only reorders *which* outputs advance when: it
//! walks the depth in chunks of [`DEPTH_CHUNK`] (whose weights, 32 KB, stay
//! in L1 while every image passes over them), keeping each image's partial
//! sums in a tile between chunks (a store and a load of an `f32` are exact).
//! The native epilogue is bitwise the generated one (its module doc), so a
//! batch's outputs equal each image run alone bit for bit, on every ISA
//! (`tests::the_batch_is_the_gemv_chain`, and through whole models in the
//! facade's `tests/it/batch.rs`).
//!
//! # Calling convention
//!
//! An [`AccumulateFn`], `extern "C"`:
//!
//! ```text
//! accumulate(x, x_stride, images, w, k0, k1, ahead, y)
//!
//! for i in 0..images, n in 0..WIDTH:
//!     for k in k0..k1:
//!         y[WIDTH i + n] = fma(x[x_stride i + k], w[WIDTH k + n], y[WIDTH i + n])
//! ```
//!
//! It reads exactly `x[x_stride i + k]` for `i < images`, `k0 <= k < k1`,
//! `w[WIDTH k0..WIDTH k1]` and `y[0..WIDTH images]`, and writes exactly
//! `y[0..WIDTH images]` (`runtime/tests/it/guard_pages.rs` runs every ISA
//! between guard pages). It may prefetch the next chunk's weights, the
//! first `min(ahead, k1 - k0)` rows from `w[WIDTH k1..]` (a hint through
//! `native::Prefetch`, whose addresses need not be in bounds; the caller
//! keeps them inside the block, so none is wasted): on AVX-512 every group
//! prefetches its images' share of them, so memory has the whole chunk's
//! time to bring them rather than the first group's pass alone (AlexNet's
//! classifier at batch 32 on two threads, 2,524 to 3,238 images/s,
//! interleaved medians of 5: a chunk's compute and the next chunk's weights
//! from memory overlapped where they had run one after the other). Inside,
//! images go in groups of [`GROUP`] (the registers: AVX-512 keeps 6 images
//! x 64 channels in 24 `zmm`, AVX2 6 images x 16 channels in 12 `ymm` per
//! quarter of the block), each group's sums in registers across the chunk.
//!
//! [`DenseBatch::blocks`] is the driver: for each block of output channels
//! in a range, the tile of every image zeroed, the chunks accumulated, then
//! the epilogue stores each image's valid channels into its output row.
//! Threads split the blocks (each a whole reduction), so the outputs do not
//! depend on the thread count.

use super::conv::ConvSpec;
use super::native::Isa;
use super::native_epilogue::{self, EpilogueFn, Step};
use super::native_gemv::WIDTH;
use super::Epilogue;

/// Images per group whose partial sums stay in registers.
pub const GROUP: usize = 6;

/// Input channels per chunk of the depth: `DEPTH_CHUNK x WIDTH` weights
/// (32 KB) stay in L1 while every image of the batch passes over them.
pub const DEPTH_CHUNK: usize = 128;

/// The most images one [`DenseBatch::blocks`] call takes: its tile of
/// partial sums (`MAX_IMAGES x WIDTH` floats, 8 KB) is on the stack.
pub const MAX_IMAGES: usize = 32;

/// The batch kernel's entry point: `(x, x_stride, images, w, k0, k1,
/// ahead, y)`, see the module doc.
pub type AccumulateFn =
    unsafe extern "C" fn(*const f32, i64, i64, *const f32, i64, i64, i64, *mut f32);

impl Isa {
    /// Its batch kernel, where the host runs it (detected at run time, like
    /// [`Isa::gemv`]).
    pub fn accumulate(self) -> Option<AccumulateFn> {
        #[cfg(target_arch = "x86_64")]
        if self.detected() {
            return Some(match self {
                Isa::Avx2 => avx2::accumulate,
                Isa::Avx512 => avx512::accumulate,
            });
        }
        None
    }
}

/// A dense layer ready to run over batches: its spec's shape and epilogue,
/// with the native functions of its ISA.
#[derive(Clone, Debug)]
pub struct DenseBatch {
    /// Input features.
    depth: usize,
    /// Output features.
    channels: usize,
    /// Floats of one packed per-channel vector (the blocks, padded).
    vector: usize,
    /// Floats of the packed parameters.
    params: usize,
    /// Whether the epilogue adds `extra`.
    add: bool,
    steps: Vec<Step>,
    accumulate: AccumulateFn,
    epilogue: EpilogueFn,
}

/// The buffer lengths, in `f32`s, of [`DenseBatch::blocks`] for `images`
/// images: each image's input, output and shortcut one after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLengths {
    /// `images x` input features.
    pub input: usize,
    /// The packed weights (the native GEMV's packing).
    pub weights: usize,
    /// The packed per-channel vectors.
    pub params: usize,
    /// `images x` output features if the epilogue adds a shortcut, else 0.
    pub extra: usize,
    /// `images x` output features.
    pub output: usize,
    /// Blocks of [`WIDTH`] output channels: the range threads split.
    pub blocks: usize,
}

impl DenseBatch {
    /// The batch form of `spec`, if it is a matrix-vector product on a
    /// native ISA the host runs (with its native epilogue) writing a
    /// tensor of its own; else `None`, and its images run one by one.
    pub fn new(spec: &ConvSpec) -> Option<DenseBatch> {
        let isa = spec
            .native
            .filter(|_| spec.gemv() && spec.slice.is_none())?;
        let lengths = spec.lengths();
        Some(DenseBatch {
            depth: spec.input[2],
            channels: spec.output[2],
            vector: spec.block() * spec.output[2].div_ceil(spec.block()),
            params: lengths.params,
            add: spec.epilogue.contains(&Epilogue::Add),
            steps: spec.epilogue.iter().copied().map(Step::of).collect(),
            accumulate: isa.accumulate()?,
            epilogue: native_epilogue::for_isa(isa)?,
        })
    }

    /// Input features per image.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Output features per image.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The lengths [`DenseBatch::blocks`] needs for `images` images.
    pub fn lengths(&self, images: usize) -> BatchLengths {
        BatchLengths {
            input: images * self.depth,
            weights: self.vector * self.depth,
            params: self.params,
            extra: if self.add { images * self.channels } else { 0 },
            output: images * self.channels,
            blocks: self.channels.div_ceil(WIDTH),
        }
    }

    /// Computes blocks `[begin, end)` of output channels for `images`
    /// images (at most [`MAX_IMAGES`]; `end` at most the blocks).
    ///
    /// # Safety
    /// Each pointer has at least the floats [`DenseBatch::lengths`] gives
    /// for `images` (`extra` may be null without an add); `output` is
    /// written only at the channels of blocks `[begin, end)` of each
    /// image, so calls on disjoint ranges may run at once.
    pub unsafe fn blocks(&self, images: usize, ptrs: Pointers, begin: usize, end: usize) {
        debug_assert!(images <= MAX_IMAGES && end <= self.channels.div_ceil(WIDTH));
        let images = images.min(MAX_IMAGES);
        let mut tile = [0.0f32; MAX_IMAGES * WIDTH];
        let (depth, k) = (self.depth, self.channels);
        for block in begin..end {
            tile[..images * WIDTH].fill(0.0);
            // SAFETY: `block < blocks`, so the block's weights
            // `w[block C WIDTH..][..C WIDTH]` lie in the packed weights
            // (`vector C` floats), and its params and outputs below lie in
            // theirs; `images <= MAX_IMAGES` rows of `tile`; each input
            // row `i < images` has `depth` floats at `x + depth i`.
            unsafe {
                let w = ptrs.weights.add(block * depth * WIDTH);
                for k0 in (0..depth).step_by(DEPTH_CHUNK) {
                    let k1 = (k0 + DEPTH_CHUNK).min(depth);
                    (self.accumulate)(
                        ptrs.input,
                        depth as i64,
                        images as i64,
                        w,
                        k0 as i64,
                        k1 as i64,
                        (depth - k1).min(DEPTH_CHUNK) as i64,
                        tile.as_mut_ptr(),
                    );
                }
                let first = block * WIDTH;
                let extra = if self.add {
                    ptrs.extra.add(first)
                } else {
                    std::ptr::null()
                };
                (self.epilogue)(
                    self.steps.as_ptr(),
                    self.steps.len() as i64,
                    tile.as_ptr(),
                    WIDTH as i64,
                    images as i64,
                    WIDTH.min(k - first) as i64,
                    ptrs.params.add(first),
                    (self.vector * 4) as i64,
                    extra,
                    ptrs.output.add(first),
                    (k * 4) as i64,
                );
            }
        }
    }
}

/// The buffers of one [`DenseBatch::blocks`] call.
#[derive(Clone, Copy, Debug)]
pub struct Pointers {
    /// Each image's input features, one image after another.
    pub input: *const f32,
    /// The packed weights.
    pub weights: *const f32,
    /// The packed per-channel vectors.
    pub params: *const f32,
    /// Each image's shortcut (null without an add).
    pub extra: *const f32,
    /// Each image's output features.
    pub output: *mut f32,
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{GROUP, WIDTH};
    use std::arch::x86_64::{
        __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_storeu_ps,
    };

    /// Columns a pass keeps in registers: two `ymm` per image.
    const SLAB: usize = 16;

    /// `G` images' columns `[col, col + SLAB)` over `k0..k1`.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; the module doc's reads and writes are in
    /// bounds for `G` images.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn group<const G: usize>(
        x: *const f32,
        xs: usize,
        w: *const f32,
        (k0, k1): (usize, usize),
        y: *mut f32,
        col: usize,
    ) {
        // SAFETY: the caller's contract: `y` has `WIDTH G` floats, `x` row
        // `g < G` has `k1` floats at `x + xs g`, `w` `WIDTH k1` floats, and
        // `col + SLAB <= WIDTH`.
        unsafe {
            let mut acc: [[__m256; 2]; G] = [[_mm256_loadu_ps(y); 2]; G];
            for (g, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_loadu_ps(y.add(WIDTH * g + col + 8 * v));
                }
            }
            for k in k0..k1 {
                let row = w.add(WIDTH * k + col);
                let ws = [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))];
                for (g, acc) in acc.iter_mut().enumerate() {
                    let xs = _mm256_broadcast_ss(&*x.add(xs * g + k));
                    for (acc, w) in acc.iter_mut().zip(ws) {
                        *acc = _mm256_fmadd_ps(xs, w, *acc);
                    }
                }
            }
            for (g, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    _mm256_storeu_ps(y.add(WIDTH * g + col + 8 * v), *acc);
                }
            }
        }
    }

    /// The module doc's batch kernel.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; the module doc's reads and writes are in
    /// bounds.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe extern "C" fn accumulate(
        x: *const f32,
        x_stride: i64,
        images: i64,
        w: *const f32,
        k0: i64,
        k1: i64,
        _ahead: i64,
        y: *mut f32,
    ) {
        let (xs, images) = (x_stride.max(0) as usize, images.max(0) as usize);
        let depth = (k0.max(0) as usize, k1.max(0) as usize);
        for col in (0..WIDTH).step_by(SLAB) {
            let mut i = 0;
            while i < images {
                let n = (images - i).min(GROUP);
                // SAFETY: images `i..i + n` are among `images`, their rows
                // at `x + xs i` and `y + WIDTH i`; this function's contract.
                unsafe {
                    let (x, y) = (x.add(xs * i), y.add(WIDTH * i));
                    match n {
                        1 => group::<1>(x, xs, w, depth, y, col),
                        2 => group::<2>(x, xs, w, depth, y, col),
                        3 => group::<3>(x, xs, w, depth, y, col),
                        4 => group::<4>(x, xs, w, depth, y, col),
                        5 => group::<5>(x, xs, w, depth, y, col),
                        _ => group::<GROUP>(x, xs, w, depth, y, col),
                    }
                }
                i += n;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{GROUP, WIDTH};
    use crate::native::Prefetch;
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };

    /// `zmm` per image: the whole block.
    const VECTORS: usize = WIDTH / 16;

    /// `G` images' whole block over `k0..k1`.
    ///
    /// # Safety
    /// The host has AVX-512F; the module doc's reads and writes are in
    /// bounds for `G` images. It prefetches rows `k1 + from..k1 + to` of
    /// `w`, one a `k` (`to - from <= k1 - k0`).
    #[target_feature(enable = "avx512f")]
    unsafe fn group<const G: usize>(
        x: *const f32,
        xs: usize,
        w: *const f32,
        (k0, k1): (usize, usize),
        y: *mut f32,
        (from, to): (usize, usize),
    ) {
        let prefetch = Prefetch::new(w.wrapping_add(WIDTH * (k1 + from)), (to - from) * VECTORS);
        // SAFETY: the caller's contract: `y` has `WIDTH G` floats, `x` row
        // `g < G` has `k1` floats at `x + xs g`, `w` `WIDTH k1` floats.
        unsafe {
            let mut acc: [[__m512; VECTORS]; G] = [[_mm512_loadu_ps(y); VECTORS]; G];
            for (g, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm512_loadu_ps(y.add(WIDTH * g + 16 * v));
                }
            }
            for k in k0..k1 {
                let row = w.add(WIDTH * k);
                // A row is `VECTORS` lines of 64 bytes.
                let first = VECTORS * (k - k0);
                if prefetch.has(first) {
                    for line in first..first + VECTORS {
                        prefetch.line(line);
                    }
                }
                let ws: [__m512; VECTORS] =
                    std::array::from_fn(|v| _mm512_loadu_ps(row.add(16 * v)));
                for (g, acc) in acc.iter_mut().enumerate() {
                    let xs = _mm512_set1_ps(*x.add(xs * g + k));
                    for (acc, w) in acc.iter_mut().zip(ws) {
                        *acc = _mm512_fmadd_ps(xs, w, *acc);
                    }
                }
            }
            for (g, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    _mm512_storeu_ps(y.add(WIDTH * g + 16 * v), *acc);
                }
            }
        }
    }

    /// The module doc's batch kernel.
    ///
    /// # Safety
    /// The host has AVX-512F; the module doc's reads and writes are in
    /// bounds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe extern "C" fn accumulate(
        x: *const f32,
        x_stride: i64,
        images: i64,
        w: *const f32,
        k0: i64,
        k1: i64,
        ahead: i64,
        y: *mut f32,
    ) {
        let (xs, images) = (x_stride.max(0) as usize, images.max(0) as usize);
        let depth = (k0.max(0) as usize, k1.max(0) as usize);
        // The groups' passes prefetch the next chunk's rows, each its
        // images' share (at most one row a `k`), so memory has the whole
        // chunk's time to bring them.
        let ahead = (ahead.max(0) as usize).min(depth.1.saturating_sub(depth.0));
        let share = |i: usize| ahead * i / images.max(1);
        let mut i = 0;
        while i < images {
            let n = (images - i).min(GROUP);
            let rows = (share(i), share(i + n));
            // SAFETY: images `i..i + n` are among `images`, their rows at
            // `x + xs i` and `y + WIDTH i`; this function's contract.
            unsafe {
                let (x, y) = (x.add(xs * i), y.add(WIDTH * i));
                match n {
                    1 => group::<1>(x, xs, w, depth, y, rows),
                    2 => group::<2>(x, xs, w, depth, y, rows),
                    3 => group::<3>(x, xs, w, depth, y, rows),
                    4 => group::<4>(x, xs, w, depth, y, rows),
                    5 => group::<5>(x, xs, w, depth, y, rows),
                    _ => group::<GROUP>(x, xs, w, depth, y, rows),
                }
            }
            i += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `isa`'s batch kernel leaves in `y` from `y0`, if the host runs it.
    fn run(
        isa: Isa,
        x: &[f32],
        depth: usize,
        w: &[f32],
        k: (usize, usize),
        y0: &[f32],
    ) -> Option<Vec<f32>> {
        let accumulate = isa.accumulate()?;
        let mut y = y0.to_vec();
        let images = y.len() / WIDTH;
        // SAFETY: the host runs `isa`; `x` has `images` rows of `depth`
        // floats, `w` `WIDTH depth`, `y` `WIDTH images`, `k.1 <= depth`, so
        // the `depth - k.1` rows after `k.1` (prefetched) are in `w`.
        unsafe {
            accumulate(
                x.as_ptr(),
                depth as i64,
                images as i64,
                w.as_ptr(),
                k.0 as i64,
                k.1 as i64,
                (depth - k.1) as i64,
                y.as_mut_ptr(),
            )
        };
        Some(y)
    }

    /// Depth, inputs (`images x depth`), packed weights, the tile's
    /// starting values and the range of `k`.
    type Operands = (usize, Vec<f32>, Vec<f32>, Vec<f32>, (usize, usize));

    fn operands() -> impl Strategy<Value = Operands> {
        (0usize..40, 0usize..14).prop_flat_map(|(depth, images)| {
            (
                Just(depth),
                prop::collection::vec(-2.0f32..2.0, depth * images),
                prop::collection::vec(-2.0f32..2.0, depth * WIDTH),
                prop::collection::vec(-2.0f32..2.0, images * WIDTH),
                (0..=depth).prop_flat_map(move |k1| (0..=k1, Just(k1))),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Each output is the doc's chain, `f32::mul_add` (one rounding per
        /// term) from its value in `y`, `k` by `k`: from a zero tile, the
        /// native GEMV's chain (`native_gemv`'s
        /// `each_output_is_the_fma_chain_from_zero`), bitwise.
        #[test]
        fn the_batch_is_the_gemv_chain((depth, x, w, y0, k) in operands()) {
            prop_assume!(!Isa::on_host().is_empty());
            let images = y0.len() / WIDTH;
            let chain: Vec<u32> = (0..images * WIDTH)
                .map(|at| {
                    let (i, n) = (at / WIDTH, at % WIDTH);
                    (k.0..k.1)
                        .fold(y0[at], |acc, kk| x[depth * i + kk].mul_add(w[WIDTH * kk + n], acc))
                        .to_bits()
                })
                .collect();
            for isa in Isa::on_host() {
                let y: Vec<u32> = run(isa, &x, depth, &w, k, &y0).expect("on the host").iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(&y, &chain, "{}", isa);
            }
            // From zero over the whole depth: the native GEMV, image by image.
            let zero = vec![0.0; y0.len()];
            for isa in Isa::on_host() {
                let gemv = isa.gemv().expect("on the host");
                let batch = run(isa, &x, depth, &w, (0, depth), &zero).expect("on the host");
                for i in 0..images {
                    let mut one = vec![f32::NAN; WIDTH];
                    // SAFETY: the host runs `isa`; `x` row `i` has `depth`
                    // floats, `w` `WIDTH depth`, `one` `WIDTH`.
                    unsafe { gemv(x[depth * i..].as_ptr(), w.as_ptr(), depth as i64, one.as_mut_ptr()) };
                    let one: Vec<u32> = one.iter().map(|v| v.to_bits()).collect();
                    let row: Vec<u32> = batch[WIDTH * i..][..WIDTH].iter().map(|v| v.to_bits()).collect();
                    prop_assert_eq!(row, one, "{} image {}", isa, i);
                }
            }
        }
    }
}
