//! The per-layer choice of convolution algorithm: direct, GEMM (a 1x1
//! convolution, which the direct kernel computes as a packed GEMM) or
//! Winograd F(2x2, 3x3) / F(4x4, 3x3).
//!
//! A static cost model per ISA ([`CostModel::of`]: [`MEASURED`] for
//! Cranelift's tile, [`MEASURED_AVX2`] for AVX2's, [`MEASURED_AVX512`] for
//! AVX-512's), from
//! one-thread throughputs measured on the development machines
//! (BENCHMARKS.md, "Winograd"): the direct convolution
//! runs at [`CostModel::direct_macs_per_ns`] over its MACs (output channels
//! rounded up to its 8-channel blocks); Winograd pays its transformed-domain
//! GEMMs at [`CostModel::gemm_macs_per_ns`] plus a cost per transformed
//! `f32x4` written by its input and output transforms. Tiles that stick out
//! of the output are paid in full, which is what makes F(2x2) or the direct
//! kernel win on small images. An estimate is the larger of that compute
//! time and the time to read the weights: inside a network they are cold,
//! and weights larger than [`CostModel::cache_bytes`] are read from memory
//! once and again from the outer caches (from memory again, if larger than
//! [`CostModel::outer_cache_bytes`]) as often as the kernel's loops
//! re-read them (Winograd: once per tile row; the direct kernel: once, or
//! once per kernel row unless its weights outweigh its input, see
//! [`ConvSpec::weight_passes`]; a pointwise convolution's kernel rows are
//! runs of pixels, [`ConvSpec::over_pixels`]). Deep in ResNet-50,
//! F(4x4)'s 36/9 larger weights, re-read per tile row, make it memory bound.
//! The cheapest estimate wins; ties go to the simpler algorithm. The caller
//! may bound the Winograd tile (`largest_tile`: 0 for none, 2 for F(2x2)
//! only, 4 for either), for users who need the direct convolution's accuracy
//! (F(4x4)'s error grows with the largest input of its 6x6 patch, see
//! [`super::winograd`]'s "Numerics").
//!
//! Measured choices ([`Tuned`]) override the model: `cnnjit tune` times
//! every candidate ([`candidates`]) of each distinct convolution of a net on
//! the host and caches the fastest, keyed by [`ChoiceKey`] (the shape and
//! the ISA, not the epilogue or the output slice, which cost every
//! algorithm alike); [`tuned_kernel`] takes a cached pick where it names an
//! algorithm that computes the spec within `largest_tile`, the static model
//! elsewhere. A family that adds an algorithm for convolutions (a pixel-run
//! GEMM, a wider tile) adds it to [`candidates`] and to [`Pick`], and tuning
//! times it with no other change.
//!
//! Invariant: the choice depends only on the spec (and the [`Tuned`] table
//! given, plain data), so a model compiles the same code on every run with
//! the same cache, and [`kernel`] and [`tuned_kernel`] return a Winograd
//! kernel only for a spec [`WinogradSpec::of_conv`] accepts.

use super::algorithm::Algorithm;
use super::conv::{ConvSpec, BLOCK};
use super::lower::Capabilities;
use super::native::Isa;
use super::winograd::WinogradSpec;
use super::Kernel;
use std::collections::BTreeMap;
use std::fmt;

/// Measured throughputs, one thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostModel {
    /// MACs per nanosecond of the direct kernel on the Cranelift tile.
    pub direct_macs_per_ns: f64,
    /// MACs per nanosecond of the direct kernel on the model's native tile.
    pub native_direct_macs_per_ns: f64,
    /// MACs per nanosecond of the transformed-domain GEMMs on the Cranelift tile.
    pub gemm_macs_per_ns: f64,
    /// MACs per nanosecond of the transformed-domain GEMMs on the native tile.
    pub native_gemm_macs_per_ns: f64,
    /// Nanoseconds per `f32x4` of `V` or `M` the transforms write (loads,
    /// arithmetic and the store, averaged over both transforms).
    pub transform_ns_per_vector: f64,
    /// Packed weights larger than this many bytes do not stay in L2 from
    /// one pass over them to the next.
    pub cache_bytes: usize,
    /// Packed weights larger than this many bytes do not stay in the outer
    /// caches either: every pass reads them from memory.
    pub outer_cache_bytes: usize,
    /// Bytes per nanosecond of a read of weights from memory.
    pub memory_bytes_per_ns: f64,
    /// Bytes per nanosecond of every later read, from the outer caches.
    pub reread_bytes_per_ns: f64,
    /// Whether weights that fit the outer caches are there before the
    /// kernel's first pass, so it too reads them at
    /// [`CostModel::reread_bytes_per_ns`]: in a batch, where the thread's
    /// previous image ran the same step moments before ([`BATCH_AVX512`]).
    pub warm: bool,
}

/// The model measured on the development machine (BENCHMARKS.md), for
/// Cranelift's tile, and the base of the native tiles' models.
pub const MEASURED: CostModel = CostModel {
    direct_macs_per_ns: 23.0,
    native_direct_macs_per_ns: 54.0,
    gemm_macs_per_ns: 15.0,
    native_gemm_macs_per_ns: 29.0,
    transform_ns_per_vector: 1.5,
    cache_bytes: 1 << 20,
    // VGG16's 28x28x512 layer on the AVX-512 host (2026-12-06, `cnnjit
    // tune`, two threads, load 6): F(4x4) read its 37.7 MB of weights 7
    // times in 31.1 ms, 8.5 B/ns, its GEMMs 6.6 ms of that; F(2x2), its
    // 16.8 MB 14 times in 19.7 ms, faster than memory allows, so they
    // stayed in the outer caches.
    outer_cache_bytes: 32 << 20,
    memory_bytes_per_ns: 8.5,
    reread_bytes_per_ns: 25.0,
    warm: false,
};

/// [`MEASURED`] with the AVX-512 tile's rates: `cnnjit tune --threads 1`
/// timed every candidate of ResNet-50's and VGG16's convolutions on the
/// AVX2 and the AVX-512 tile, interleaved, on a 2-core AVX-512 Xeon
/// (2026-12-06, load 5-7 from other jobs, so only the ratios are kept): the
/// direct kernel ran a median 1.2 (VGG16's 3x3) to 1.7 (ResNet-50's 3x3)
/// and 1.36 (the 1x1 GEMMs) times faster, Winograd (GEMMs and transforms)
/// 1.04-1.23 times; so 1.3 x AVX2's direct rate and 1.2 x its GEMM rate.
/// The memory terms are the machine's, not the ISA's.
pub const MEASURED_AVX512: CostModel = CostModel {
    native_direct_macs_per_ns: 70.0,
    native_gemm_macs_per_ns: 35.0,
    ..MEASURED
};

/// The AVX-512 tile in a batch, where each image runs on one thread after
/// another image ran the same steps (`crate::batch::plan_batch`), with the
/// rates of the 2-core AVX-512 EPYC (Zen 5) host this project's batch
/// targets are measured on (2026-12-06, builds paused, `cnnjit bench
/// --profile --threads 1` of AlexNet's 13x13 3x3 layers, each way in turn):
/// the direct kernel 1.057 / 1.569 / 1.037 ms for 149.5M / 224.3M / 149.5M
/// MACs, 141-144 MACs/ns, so 143; F(2x2) 0.984 / 1.384 / 0.899 ms, which
/// less its transforms at [`MEASURED`]'s rate leaves its GEMMs 97-108
/// MACs/ns, so 100; F(2x2)'s 9.4 MB of weights read 7 times (once per tile
/// row) within those 1.384 ms is at least 47 bytes/ns from the outer
/// caches. [`MEASURED_AVX512`]'s rates, older and from a loaded Xeon, are
/// half these and in another ratio (2 to 1 rather than 1.43 to 1). In a
/// batch the weights are warm ([`CostModel::warm`]). A batch of 32
/// AlexNet images on two threads ran at 264 images/s on F(2x2) against 240
/// on the direct kernel and 225 on F(4x4) (medians of 3, interleaved),
/// which this model picks (F(4x4)'s 21 MB read 4 times outlast the direct
/// kernel); a single image (its dense layers flushing the caches between
/// images) did not gain (13.3 ms direct, 14.0 F(2x2), one thread), so the
/// image's own choice stays [`MEASURED_AVX512`]'s.
pub const BATCH_AVX512: CostModel = CostModel {
    native_direct_macs_per_ns: 143.0,
    native_gemm_macs_per_ns: 100.0,
    reread_bytes_per_ns: 47.0,
    warm: true,
    ..MEASURED
};

/// [`MEASURED`] with the AVX2 tile's GEMM rate on the 2-core AVX2-only EPYC
/// (Zen 3) host (2026-12-07, `cnnjit tune --threads 1` of AlexNet's 13x13
/// 3x3 layers, [`BATCH_AVX2`]'s measurements): Winograd's GEMMs ran 49-50
/// MACs/ns, not the 29 of the machine [`MEASURED`] was measured on, so
/// AlexNet's and ZFNet's 13x13 layers take F(2x2) (AlexNet on one thread
/// 32.1 to 29.5 ms, two threads 18.6 to 17.8; ZFNet 61.1 to 59.9) and
/// every other pick of the example networks but four of U-Net's and one of
/// FPN's stays. Against `cnnjit tune` on that host the static pick is
/// within 5% of the fastest on 47 of the 49 distinct convolutions of
/// AlexNet, ResNet-18, ResNet-50, VGG16 and MobileNetV1 (the two others:
/// VGG16's 28x28x512, F(2x2) where F(4x4) measured 33% faster, and
/// ResNet-50's 7x7x512, direct where F(2x2) measured 21% faster with the
/// warm weights a tuning run has).
pub const MEASURED_AVX2: CostModel = CostModel {
    native_gemm_macs_per_ns: 50.0,
    ..MEASURED
};

/// The AVX2 tile in a batch, as [`BATCH_AVX512`] is AVX-512's, with the
/// rates of the 2-core AVX2-only EPYC (Zen 3) host (2026-12-07, builds
/// paused, `cnnjit tune --threads 1` of AlexNet's 13x13 3x3 layers, which
/// times each candidate repeatedly, so with warm weights): the direct
/// kernel 2.812 / 4.249 / 2.827 ms for 149.5M / 224.3M / 149.5M MACs, so
/// 53 MACs/ns; F(2x2) 1.730 / 2.520 / 1.759 ms, which less its transforms
/// at [`MEASURED`]'s rate (0.188 / 0.226 / 0.188 ms) leaves its GEMMs
/// (77.1M / 115.6M / 77.1M MACs) 49-50 MACs/ns, so 50; F(4x4) of
/// 13x13x384 -> 384, 1.702 / 3.298 / 1.721 ms, read its 21.2 MB of weights
/// 4 times at 25.8 B/ns, so rereads at 26. An image's own choice is
/// [`MEASURED_AVX2`]'s, its weights cold after the dense layers.
pub const BATCH_AVX2: CostModel = CostModel {
    native_direct_macs_per_ns: 53.0,
    native_gemm_macs_per_ns: 50.0,
    reread_bytes_per_ns: 26.0,
    warm: true,
    ..MEASURED
};

impl CostModel {
    /// The model of the native tile of `isa` (Cranelift's rates serve
    /// every spec without one).
    pub const fn of(isa: Option<Isa>) -> &'static CostModel {
        match isa {
            Some(Isa::Avx512) => &MEASURED_AVX512,
            Some(Isa::Avx2) => &MEASURED_AVX2,
            None => &MEASURED,
        }
    }

    /// The model of the native tile of `isa` in a batch, where the
    /// thread's previous image ran the same step ([`BATCH_AVX512`],
    /// [`BATCH_AVX2`]); `None` for Cranelift's tile, whose batch rates are
    /// not measured.
    pub const fn batch(isa: Option<Isa>) -> Option<&'static CostModel> {
        match isa {
            Some(Isa::Avx512) => Some(&BATCH_AVX512),
            Some(Isa::Avx2) => Some(&BATCH_AVX2),
            None => None,
        }
    }

    /// Estimated nanoseconds of `spec` computed by `algorithm`, or `None` if
    /// the algorithm cannot compute it.
    pub fn estimate(&self, spec: &ConvSpec, algorithm: Algorithm) -> Option<f64> {
        let [ho, wo, k] = spec.output;
        let c = spec.input[2] / spec.groups;
        let blocked_k = (k / spec.groups).div_ceil(BLOCK) * BLOCK * spec.groups;
        match algorithm {
            Algorithm::Direct | Algorithm::Gemm => {
                let macs = ho * wo * blocked_k * c * spec.kernel[0] * spec.kernel[1];
                let rate = if spec.native.is_some() {
                    self.native_direct_macs_per_ns
                } else {
                    self.direct_macs_per_ns
                };
                let passes = spec.clone().over_pixels().weight_passes();
                let compute = macs as f64 / rate;
                Some(compute.max(self.weight_ns(spec.lengths().weights * 4, passes)))
            }
            Algorithm::Winograd { tile } => {
                let w = WinogradSpec::of_conv(spec, tile)?;
                let [th, tw] = w.tiles();
                let points = th * tw * (tile + 2).pow(2);
                let macs = points * c * blocked_k;
                let vectors = points * (c.div_ceil(4) + k.div_ceil(4));
                let rate = if w.native.is_some() {
                    self.native_gemm_macs_per_ns
                } else {
                    self.gemm_macs_per_ns
                };
                let compute = macs as f64 / rate + vectors as f64 * self.transform_ns_per_vector;
                Some(compute.max(self.weight_ns(w.lengths().weights * 4, th)))
            }
            _ => None,
        }
    }

    /// Nanoseconds to read `bytes` of weights `passes` times, if they do
    /// not stay in L2 between passes (else the compute hides them).
    fn weight_ns(&self, bytes: usize, passes: usize) -> f64 {
        if bytes <= self.cache_bytes {
            return 0.0;
        }
        let reread = if bytes > self.outer_cache_bytes {
            self.memory_bytes_per_ns
        } else {
            self.reread_bytes_per_ns
        };
        let first = if self.warm {
            reread
        } else {
            self.memory_bytes_per_ns
        };
        let bytes = bytes as f64;
        bytes / first + (passes.max(1) - 1) as f64 * bytes / reread
    }

    /// The cheapest algorithm for `spec`, Winograd tiles no larger than
    /// `largest_tile` (0: no Winograd).
    pub fn choose(&self, spec: &ConvSpec, largest_tile: usize) -> Algorithm {
        if spec.kernel == [1, 1] && spec.stride == [1, 1] {
            return Algorithm::Gemm;
        }
        [
            Algorithm::Direct,
            Algorithm::Winograd { tile: 2 },
            Algorithm::Winograd { tile: 4 },
        ]
        .into_iter()
        .filter(|a| !matches!(a, Algorithm::Winograd { tile } if *tile > largest_tile))
        .filter_map(|a| Some((a, self.estimate(spec, a)?)))
        .fold(None, |best: Option<(Algorithm, f64)>, (a, t)| match best {
            Some((_, bt)) if bt <= t => best,
            _ => Some((a, t)),
        })
        .map_or(Algorithm::Direct, |(a, _)| a)
    }
}

/// The pick of the static model of `spec`'s ISA ([`CostModel::of`]),
/// Winograd tiles no larger than `largest_tile` (0: no Winograd).
pub fn static_pick(spec: &ConvSpec, largest_tile: usize) -> Pick {
    let algorithm = CostModel::of(spec.native).choose(spec, largest_tile);
    Pick::of(algorithm).unwrap_or(Pick::Direct)
}

/// The kernel that computes `spec` by the algorithm the static model of its
/// ISA chooses ([`static_pick`]), Winograd tiles no larger than `caps`'
/// `winograd_tile` (0: no Winograd), cut for `caps`' L2.
pub fn kernel(spec: ConvSpec, caps: &Capabilities) -> Kernel {
    let pick = Some(static_pick(&spec, caps.winograd_tile));
    pick.and_then(|p| p.kernel(&spec, caps.l2_bytes))
        .unwrap_or(Kernel::Conv(spec))
}

/// The kernel that computes `spec` by the algorithm `tuned` names for it,
/// where that algorithm computes it with Winograd tiles no larger than
/// `caps`' `winograd_tile`; else [`kernel`]'s.
pub fn tuned_kernel(spec: ConvSpec, caps: &Capabilities, tuned: &Tuned) -> Kernel {
    let allowed = |p: &Pick| p.tile() <= caps.winograd_tile;
    match tuned.get(&ChoiceKey::of(&spec)).filter(allowed) {
        Some(pick) => pick
            .kernel(&spec, caps.l2_bytes)
            .unwrap_or_else(|| kernel(spec, caps)),
        None => kernel(spec, caps),
    }
}

/// Every algorithm that computes `spec` with Winograd tiles no larger than
/// `caps`' `winograd_tile`, and its kernel as lowering would build it:
/// what `cnnjit tune` times.
pub fn candidates(spec: &ConvSpec, caps: &Capabilities) -> Vec<(Pick, Kernel)> {
    Pick::ALL
        .into_iter()
        .filter(|p| p.tile() <= caps.winograd_tile)
        .filter_map(|p| Some((p, p.kernel(spec, caps.l2_bytes)?)))
        .collect()
}

/// The kernel a batch runs for `image`, a step's kernel for one image
/// (lowering's, static or tuned), where it differs: the convolution `image`
/// computes on the algorithm its tile's batch model
/// ([`CostModel::batch`]) picks, Winograd tiles no larger than
/// `largest_tile`, for a convolution on a native tile (the ones whose batch
/// rates are measured), a Winograd kernel's rows its tile rows
/// (`WinogradSpec::tile_rows`); `None` elsewhere, and where that algorithm
/// is the image's own. A batch that keeps the image's algorithm keeps its
/// kernel too: VGG16's and ResNet-50's Winograd layers in tile rows rather
/// than the image's long runs read `U` more often, and a batch of 32 on
/// two threads ran 8-13% (VGG16) and 1-2% (ResNet-50) slower so (Zen 3,
/// AVX2).
pub fn batch_kernel(image: &Kernel, largest_tile: usize) -> Option<Kernel> {
    let spec = conv_spec(image)?;
    let model = CostModel::batch(spec.native)?;
    let pick = Pick::of(model.choose(&spec, largest_tile))?;
    // The image's Winograd tile, 0 for its direct kernel, as `Pick::tile`.
    let own = match image {
        Kernel::Winograd(w) => w.tile,
        _ => 0,
    };
    if pick.tile() == own {
        return None;
    }
    let kernel = match pick.kernel(&spec, None)? {
        // A batch model counts a pass over `U` per tile row.
        Kernel::Winograd(w) => Kernel::Winograd(WinogradSpec {
            tile_rows: true,
            ..w
        }),
        kernel => kernel,
    };
    (kernel != *image).then_some(kernel)
}

/// The convolution a kernel [`kernel`] or [`tuned_kernel`] returned
/// computes: a direct kernel's spec, or the 3x3 stride-1 convolution a
/// Winograd kernel computes; `None` for any other kernel.
pub fn conv_spec(kernel: &Kernel) -> Option<ConvSpec> {
    match kernel {
        Kernel::Conv(spec) => Some(spec.clone()),
        Kernel::Winograd(w) => Some(ConvSpec {
            input: w.input,
            output: w.output,
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad: w.pad,
            groups: 1,
            epilogue: w.epilogue.clone(),
            native: w.native,
            slice: w.slice,
        }),
        _ => None,
    }
}

/// An algorithm the choice can pick for a convolution, as cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pick {
    /// The direct kernel (which is the packed GEMM for a 1x1 stride-1 convolution).
    Direct,
    /// Winograd F(2x2, 3x3).
    F2,
    /// Winograd F(4x4, 3x3).
    F4,
}

impl Pick {
    /// Every pick, simplest first (the order ties go by).
    pub const ALL: [Pick; 3] = [Pick::Direct, Pick::F2, Pick::F4];

    /// Its name in the cache and in tables.
    pub const fn name(self) -> &'static str {
        match self {
            Pick::Direct => "direct",
            Pick::F2 => "f2",
            Pick::F4 => "f4",
        }
    }

    /// The pick called `name`, if any.
    pub fn from_name(name: &str) -> Option<Pick> {
        Pick::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The pick of an algorithm [`CostModel::choose`] returns.
    pub fn of(algorithm: Algorithm) -> Option<Pick> {
        match algorithm {
            Algorithm::Direct | Algorithm::Gemm => Some(Pick::Direct),
            Algorithm::Winograd { tile: 2 } => Some(Pick::F2),
            Algorithm::Winograd { tile: 4 } => Some(Pick::F4),
            _ => None,
        }
    }

    /// Its Winograd output tile, 0 for the direct kernel.
    pub const fn tile(self) -> usize {
        match self {
            Pick::Direct => 0,
            Pick::F2 => 2,
            Pick::F4 => 4,
        }
    }

    /// Its kernel for `spec`, if it computes `spec`, on a host whose cores'
    /// L2 takes `l2_bytes` (how Winograd cuts its runs).
    pub fn kernel(self, spec: &ConvSpec, l2_bytes: Option<usize>) -> Option<Kernel> {
        match self {
            Pick::Direct => Some(Kernel::Conv(spec.clone())),
            Pick::F2 | Pick::F4 => WinogradSpec::of_conv(spec, self.tile())
                .map(|w| Kernel::Winograd(WinogradSpec { l2_bytes, ..w })),
        }
    }
}

impl fmt::Display for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What a measured choice is keyed by: a convolution's shape and the ISA of
/// its native tile (none: Cranelift's), not its epilogue or output slice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChoiceKey {
    /// The ISA, if any.
    pub native: Option<Isa>,
    /// Input `[h, w, c]`.
    pub input: [usize; 3],
    /// Output `[h, w, k]`.
    pub output: [usize; 3],
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Padding.
    pub pad: [usize; 2],
    /// Groups.
    pub groups: usize,
}

impl ChoiceKey {
    /// The key of `spec`.
    pub fn of(spec: &ConvSpec) -> ChoiceKey {
        ChoiceKey {
            native: spec.native,
            input: spec.input,
            output: spec.output,
            kernel: spec.kernel,
            stride: spec.stride,
            dilation: spec.dilation,
            pad: spec.pad,
            groups: spec.groups,
        }
    }

    /// The key written as [`fmt::Display`] writes it, if `text` is one.
    pub fn parse(text: &str) -> Option<ChoiceKey> {
        let mut words = text.split(' ');
        let native = match words.next()? {
            "cranelift" => None,
            name => Some(Isa::ALL.into_iter().find(|isa| isa.name() == name)?),
        };
        let (input, output) = words.next()?.split_once('>')?;
        let mut pair = |prefix: &str| -> Option<[usize; 2]> {
            let [a, b] = numbers(words.next()?.strip_prefix(prefix)?)?;
            Some([a, b])
        };
        let key = ChoiceKey {
            native,
            input: numbers(input)?,
            output: numbers(output)?,
            kernel: pair("k")?,
            stride: pair("s")?,
            dilation: pair("d")?,
            pad: pair("p")?,
            groups: words.next()?.strip_prefix('g')?.parse().ok()?,
        };
        words.next().is_none().then_some(key)
    }
}

/// `N` numbers written `axbxc`, if `text` is that.
fn numbers<const N: usize>(text: &str) -> Option<[usize; N]> {
    let mut out = [0; N];
    let mut parts = text.split('x');
    for n in &mut out {
        *n = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl fmt::Display for ChoiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [h, w, c] = self.input;
        let [ho, wo, k] = self.output;
        let isa = self.native.map_or("cranelift", Isa::name);
        let pair = |[a, b]: [usize; 2]| format!("{a}x{b}");
        write!(
            f,
            "{isa} {h}x{w}x{c}>{ho}x{wo}x{k} k{} s{} d{} p{} g{}",
            pair(self.kernel),
            pair(self.stride),
            pair(self.dilation),
            pair(self.pad),
            self.groups
        )
    }
}

/// Measured picks by key: plain data, read from `cnnjit tune`'s cache by the
/// runtime. Empty, every choice is the static model's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tuned {
    picks: BTreeMap<ChoiceKey, Pick>,
}

impl Tuned {
    /// No measured picks.
    pub fn new() -> Tuned {
        Tuned::default()
    }

    /// Records `pick` for `key`, replacing any earlier one.
    pub fn insert(&mut self, key: ChoiceKey, pick: Pick) {
        self.picks.insert(key, pick);
    }

    /// The pick recorded for `key`.
    pub fn get(&self, key: &ChoiceKey) -> Option<Pick> {
        self.picks.get(key).copied()
    }

    /// How many keys have a pick.
    pub fn len(&self) -> usize {
        self.picks.len()
    }

    /// Whether no key has a pick.
    pub fn is_empty(&self) -> bool {
        self.picks.is_empty()
    }

    /// Every key and its pick, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ChoiceKey, Pick)> {
        self.picks.iter().map(|(k, p)| (k, *p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::Isa;
    use cnnjit_ir::plan::Fusion;

    /// Lowering's capabilities with Winograd tiles up to `tile`, on a host whose L2 is unknown.
    fn upto(tile: usize) -> Capabilities {
        Capabilities {
            native: None,
            winograd_tile: tile,
            fusion: Fusion::DEFAULT,
            l2_bytes: None,
        }
    }

    fn conv(input: [usize; 3], k: usize, kernel: usize, stride: usize, pad: usize) -> ConvSpec {
        let out = |n: usize| (n + 2 * pad - kernel) / stride + 1;
        ConvSpec {
            input,
            output: [out(input[0]), out(input[1]), k],
            kernel: [kernel; 2],
            stride: [stride; 2],
            dilation: [1, 1],
            pad: [pad; 2],
            groups: 1,
            epilogue: Vec::new(),
            native: None,
            slice: None,
        }
    }

    #[test]
    fn known_shapes_get_the_algorithm_the_model_says() {
        // VGG's 56x56x128 -> 128 3x3, by hand from MEASURED: direct 56² 128 128 9
        // = 462.4M MACs / 23 = 20.1 ms (native: / 54 = 8.6 ms); F(4x4) 14² 36 =
        // 7056 points, 7056 128 128 = 115.6M MACs / 15 = 7.7 ms (native: / 29 =
        // 4.0 ms) + 7056 (32 + 32) vectors 1.5 ns = 0.68 ms; F(2x2) 28² 16 =
        // 12544 points: 205.5M MACs, 13.7 ms (native: 7.1 ms) + 1.2 ms.
        let vgg = conv([56, 56, 128], 128, 3, 1, 1);
        assert_eq!(MEASURED.choose(&vgg, 4), Algorithm::Winograd { tile: 4 });
        assert!(matches!(kernel(vgg.clone(), &upto(4)), Kernel::Winograd(w) if w.tile == 4));
        let native = ConvSpec {
            native: Some(Isa::Avx2),
            ..vgg
        };
        assert_eq!(MEASURED.choose(&native, 4), Algorithm::Winograd { tile: 4 });
        // Bounded, the choice takes the best allowed algorithm: F(2x2) 8.3 ms
        // native against the direct kernel's 8.6 ms, or the direct kernel.
        assert_eq!(MEASURED.choose(&native, 2), Algorithm::Winograd { tile: 2 });
        assert_eq!(MEASURED.choose(&native, 0), Algorithm::Direct);
        assert!(matches!(kernel(native.clone(), &upto(0)), Kernel::Conv(_)));
        // On AVX-512's rates: direct 462.4M / 70 = 6.6 ms; F(4x4) 115.6M / 35
        // = 3.3 + 0.68 ms; F(2x2) 205.5M / 35 = 5.9 + 1.2 = 7.1 ms. F(4x4)
        // still wins, but bounded to F(2x2) the direct kernel does (on AVX2's
        // it lost, 8.6 ms against 8.3).
        let wide = ConvSpec {
            native: Some(Isa::Avx512),
            ..native
        };
        assert_eq!(CostModel::of(wide.native), &MEASURED_AVX512);
        assert_eq!(static_pick(&wide, 4), Pick::F4);
        assert_eq!(static_pick(&wide, 2), Pick::Direct);
        assert!(matches!(kernel(wide, &upto(2)), Kernel::Conv(_)));
        // ResNet's stem, 7x7 stride 2: only the direct kernel computes it.
        // VGG's first layer, 3 input channels: direct 224² 64 3 9 = 86.7M MACs
        // / 54 = 1.6 ms native; F(4x4) 56² 36 = 112896 points: 21.7M MACs / 29
        // = 0.75 ms + 112896 (1 + 16) vectors 1.5 ns = 2.9 ms.
        let first = conv([224, 224, 3], 64, 3, 1, 1);
        let first = ConvSpec {
            native: Some(Isa::Avx2),
            ..first
        };
        assert_eq!(MEASURED.choose(&first, 4), Algorithm::Direct);
        let stem = conv([224, 224, 3], 64, 7, 2, 3);
        assert_eq!(MEASURED.choose(&stem, 4), Algorithm::Direct);
        assert!(matches!(kernel(stem, &upto(4)), Kernel::Conv(_)));
        // A 1x1 convolution is a GEMM.
        let pointwise = conv([28, 28, 256], 128, 1, 1, 0);
        assert_eq!(MEASURED.choose(&pointwise, 4), Algorithm::Gemm);
        // Deep in ResNet-50, weights bound the time. 14x14x256 -> 256, native:
        // F(2x2) 7² tiles 16 points 256 256 = 51.4M MACs / 29 = 1.77 ms +
        // 784 (64 + 64) vectors 1.5 ns = 0.15 ms = 1.92 ms, its 4.2 MB of
        // weights read from memory once (0.49 ms) and from cache 6 more
        // times (1.01 ms): 1.92 ms. F(4x4): 4² tiles 36 points = 37.7M MACs,
        // 1.30 + 0.11 ms compute, but 9.4 MB of weights read 4 times: 1.11 +
        // 1.13 = 2.24 ms. Direct: 115.6M MACs / 54 = 2.14 ms, its 2.4 MB
        // read once (the weights are the larger, so they stay still): 0.28 ms.
        let native = |spec: ConvSpec| ConvSpec {
            native: Some(Isa::Avx2),
            ..spec
        };
        let layer3 = native(conv([14, 14, 256], 256, 3, 1, 1));
        assert_eq!(MEASURED.choose(&layer3, 4), Algorithm::Winograd { tile: 2 });
        // 7x7x512 -> 512: direct 2.14 ms compute, 9.4 MB read once 1.11 ms;
        // F(2x2) 4² tiles 16 points: 67.1M MACs 2.31 ms, 16.8 MB read 4 times
        // 1.98 + 2.01 = 3.99 ms; F(4x4) 2² tiles: 37.7 MB, more than the outer
        // caches hold, read twice from memory, 8.87 ms.
        let layer4 = native(conv([7, 7, 512], 512, 3, 1, 1));
        assert_eq!(MEASURED.choose(&layer4, 4), Algorithm::Direct);
        // VGG16's 28x28x512 -> 512, AVX2: direct 1.85G MACs / 54 = 34.3 ms
        // (9.4 MB read once); F(2x2) 14² tiles = 3136 points, 822M MACs / 29
        // = 28.4 + 3136 (128 + 128) vectors 1.5 ns = 1.2 ms = 29.6 ms, its
        // 16.8 MB read 14 times, 1.98 + 13 x 0.67 = 10.7 ms; F(4x4) 7² tiles
        // 1764 points, 462M / 29 = 15.9 + 0.68 = 16.6 ms compute, but its
        // 37.7 MB outgrow the outer caches: 7 reads from memory, 31.1 ms.
        // F(2x2), as measured (F(4x4) 58% slower). AVX-512: F(2x2) 822M / 35
        // = 23.5 + 1.2 = 24.7 ms, direct 26.4 ms, F(4x4) 31.1 ms.
        let vgg4 = native(conv([28, 28, 512], 512, 3, 1, 1));
        assert_eq!(MEASURED.choose(&vgg4, 4), Algorithm::Winograd { tile: 2 });
        let wide = ConvSpec {
            native: Some(Isa::Avx512),
            ..vgg4
        };
        assert_eq!(static_pick(&wide, 4), Pick::F2);
        // 28x28x256 -> 512: F(4x4)'s 18.9 MB stay in the outer caches: 1764
        // points 231M MACs / 29 = 8.0 + 0.5 ms against reads 2.2 + 6 x 0.76
        // = 6.8 ms, 8.5 ms; F(2x2) 411M / 29 = 14.2 + 0.9 ms: F(4x4).
        let vgg3 = native(conv([28, 28, 256], 512, 3, 1, 1));
        assert_eq!(MEASURED.choose(&vgg3, 4), Algorithm::Winograd { tile: 4 });
        // On AVX-512's rates, 14x14x256: F(2x2) 51.4M / 35 = 1.47 + 0.15 =
        // 1.62 ms (weights 1.43 ms); direct 115.6M / 70 = 1.65 ms; F(4x4)'s
        // weights 2.07 ms. F(2x2), by 2%.
        let wide = ConvSpec {
            native: Some(Isa::Avx512),
            ..layer3
        };
        assert_eq!(static_pick(&wide, 4), Pick::F2);
        // A 3x3 stride-2 convolution has no Winograd form here.
        assert_eq!(
            MEASURED.choose(&conv([56, 56, 64], 128, 3, 2, 1), 4),
            Algorithm::Direct
        );
    }

    #[test]
    fn keys_print_and_parse_back_and_nothing_else_parses() {
        let spec = ConvSpec {
            native: Some(Isa::Avx512),
            groups: 2,
            dilation: [2, 1],
            ..conv([30, 20, 8], 6, 3, 2, 1)
        };
        let key = ChoiceKey::of(&spec);
        let text = key.to_string();
        assert_eq!(text, "avx512 30x20x8>15x10x6 k3x3 s2x2 d2x1 p1x1 g2");
        assert_eq!(ChoiceKey::parse(&text), Some(key.clone()));
        let cranelift = ChoiceKey {
            native: None,
            ..key
        };
        assert_eq!(ChoiceKey::parse(&cranelift.to_string()), Some(cranelift));
        for bad in [
            "",
            "avx512",
            "avx512 30x20x8>15x10x6 k3x3 s2x2 d2x1 p1x1 g2 extra",
            "avx512 30x20>15x10x6 k3x3 s2x2 d2x1 p1x1 g2",
            "avx512 30x20x8x1>15x10x6 k3x3 s2x2 d2x1 p1x1 g2",
            "avx512 30x20x8>15x10x6 s3x3 k2x2 d2x1 p1x1 g2",
            "avx512 30x20x8>15x10x6 k3x3 s2x2 d2x1 p1x1 g-2",
            "avx512  30x20x8>15x10x6 k3x3 s2x2 d2x1 p1x1 g2",
            "neon 30x20x8>15x10x6 k3x3 s2x2 d2x1 p1x1 g2",
            "avx512 30x20x99999999999999999999999>15x10x6 k3x3 s2x2 d2x1 p1x1 g2",
        ] {
            assert_eq!(ChoiceKey::parse(bad), None, "{bad}");
        }
        for p in Pick::ALL {
            assert_eq!(Pick::from_name(p.name()), Some(p));
        }
        assert_eq!(Pick::from_name("F2"), None);
    }

    #[test]
    fn a_tuned_pick_is_taken_only_where_it_computes_the_spec_within_the_bound() {
        // VGG's 56x56x128, F(4x4) by the model (above).
        let vgg = conv([56, 56, 128], 128, 3, 1, 1);
        let mut tuned = Tuned::new();
        tuned.insert(ChoiceKey::of(&vgg), Pick::F2);
        let tile = |k: Kernel| match k {
            Kernel::Winograd(w) => w.tile,
            _ => 0,
        };
        assert_eq!(tile(tuned_kernel(vgg.clone(), &upto(4), &Tuned::new())), 4);
        assert_eq!(tile(tuned_kernel(vgg.clone(), &upto(4), &tuned)), 2);
        // Bounded to no Winograd, the pick is not allowed: the model's.
        assert_eq!(tile(tuned_kernel(vgg.clone(), &upto(0), &tuned)), 0);
        tuned.insert(ChoiceKey::of(&vgg), Pick::Direct);
        assert_eq!(tile(tuned_kernel(vgg.clone(), &upto(4), &tuned)), 0);
        // A Winograd pick for a stride-2 conv (a hand-edited cache) cannot
        // compute it: the model's direct kernel.
        let strided = conv([56, 56, 64], 128, 3, 2, 1);
        tuned.insert(ChoiceKey::of(&strided), Pick::F4);
        assert_eq!(tile(tuned_kernel(strided.clone(), &upto(4), &tuned)), 0);
        assert_eq!(candidates(&strided, &upto(4)).len(), 1);
        let all: Vec<Pick> = candidates(&vgg, &upto(4))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(all, Pick::ALL);
        let bounded: Vec<Pick> = candidates(&vgg, &upto(2))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(bounded, [Pick::Direct, Pick::F2]);
        // The Winograd kernel's convolution is the spec it was made from.
        let w = Pick::F4.kernel(&vgg, None).unwrap();
        assert_eq!(conv_spec(&w), Some(vgg));
    }
}
