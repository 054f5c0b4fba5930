//! Lowering's batch decisions (`cnnjit_codegen::batch`) on example nets,
//! each figure derived by hand in a comment.

use cnnjit_codegen::batch::{plan_batch, BatchKernels, BatchPlan, GROUP};
use cnnjit_codegen::choice::{batch_kernel, conv_spec};
use cnnjit_codegen::lower::{lower, Capabilities, LoweredStep};
use cnnjit_codegen::native::Isa;
use cnnjit_codegen::winograd::WinogradSpec;
use cnnjit_codegen::Kernel;
use cnnjit_ir::plan::Fusion;
use proptest::prelude::*;

fn batch_plan(source: &str, native: Option<Isa>) -> BatchPlan {
    // Direct convolutions only, so the packed lengths below are the direct
    // kernel's.
    batch_plan_up_to(source, native, 0)
}

/// The batch plan of `source`'s first net, a batch's kernels the fastest
/// (`BatchKernels::Fastest`), Winograd tiles up to `tile` (lowering is
/// pure, so any ISA lowers on any host).
fn batch_plan_up_to(source: &str, native: Option<Isa>, tile: usize) -> BatchPlan {
    batch_plan_allowing(source, native, tile, BatchKernels::Fastest)
}

/// [`batch_plan_up_to`], a batch's kernels as `allowed` says.
fn batch_plan_allowing(
    source: &str,
    native: Option<Isa>,
    tile: usize,
    allowed: BatchKernels,
) -> BatchPlan {
    let (net, steps) = lowered(source, native, tile);
    plan_batch(&net.graph, &net.plan, &steps, allowed, tile)
}

/// The image's kernels of `source`'s first net, lowered as [`batch_plan_up_to`].
fn image_kernels(source: &str, native: Option<Isa>, tile: usize) -> Vec<Option<Kernel>> {
    (lowered(source, native, tile).1.into_iter())
        .map(|step| match step {
            LoweredStep::Kernel(k) => Some(k.kernel),
            LoweredStep::InNext | LoweredStep::Concat(_) | LoweredStep::Reference(_) => None,
        })
        .collect()
}

/// A Winograd kernel's tile, 0 for any other kernel: its algorithm.
fn winograd_tile(kernel: &Kernel) -> usize {
    match kernel {
        Kernel::Winograd(w) => w.tile,
        _ => 0,
    }
}

/// `source`'s first net and its steps lowered on `native`, Winograd tiles up
/// to `tile`.
fn lowered(
    source: &str,
    native: Option<Isa>,
    tile: usize,
) -> (cnnjit_lang::CompiledNet, Vec<LoweredStep>) {
    let net = cnnjit_lang::compile_source(source).unwrap().remove(0);
    let caps = Capabilities {
        native,
        winograd_tile: tile,
        fusion: Fusion::DEFAULT,
        l2_bytes: None,
    };
    let steps = lower(&net.graph, &net.plan, &caps);
    (net, steps)
}

/// AlexNet's conv4 shape at 256 channels: 13x13x256 -> 256, 3x3, pad 1.
const WARM: &str = "Warm(13x13x256) { conv(256, 3x3, pad = 1), relu }";

/// A 9x9x512 -> 512 3x3 layer, which a batch on the AVX2 tile runs on
/// F(2x2) where the image runs the direct kernel.
const WARM_AVX2: &str = "WarmAvx2(9x9x512) { conv(512, 3x3, pad = 1), relu }";

#[test]
fn a_batch_runs_winograd_f2_where_warm_weights_make_it_cheaper() {
    // [`WARM`]: 99,680,256 MACs direct (13 x 13 x 256 x 256 x 9); F(2x2):
    // 7 x 7 tiles of 16 points, 784 x 256 x 256 = 51,380,224 MACs and 784 x
    // (64 + 64) = 100,352 transformed vectors at 1.5 ns; F(4x4): 4 x 4
    // tiles of 36 points, 37,748,736 MACs and 73,728 vectors. Packed
    // weights: 2.36 MB direct (read once: they outweigh the 173 KB input),
    // 4.19 MB F(2x2) read per tile row (7), 9.44 MB F(4x4) (4 rows).
    // For one image on AVX-512 (`MEASURED_AVX512`, cold weights at 8.5
    // B/ns, rereads at 25): direct 99.68M / 70 = 1.424 ms; F(2x2) 51.38M /
    // 35 + 0.151 = 1.619 ms (its weights 0.493 + 6 x 0.168 = 1.50 ms);
    // F(4x4) weights 1.110 + 3 x 0.378 = 2.243 ms: direct.
    // In a batch on AVX-512 (`BATCH_AVX512`, warm weights at 47 B/ns):
    // direct 99.68M / 143 = 0.697 ms; F(2x2) 51.38M / 100 + 0.151 = 0.664 ms
    // (weights 7 x 4.19 MB / 47 = 0.624 ms); F(4x4) 0.377 + 0.111 = 0.488
    // ms but its weights 4 x 9.44 MB / 47 = 0.803 ms: F(2x2).
    // On AVX2 (`MEASURED_AVX2`, Winograd's GEMMs at 50) one image takes
    // F(2x2) already: direct 99.68M / 54 = 1.846 ms; F(2x2) 51.38M / 50 +
    // 0.151 = 1.179 ms, its weights 1.499 ms; F(4x4) 2.243 ms. So does a
    // batch (`BATCH_AVX2`, 26 B/ns): F(2x2) 1.179 ms, its weights 7 x 4.19
    // / 26 = 1.129 ms, against direct 99.68M / 53 = 1.881 ms and F(4x4)'s
    // weights 4 x 9.44 / 26 = 1.452 ms; the batch keeps the image's kernel.
    // [`WARM_AVX2`]: 191,102,976 MACs direct (9 x 9 x 512 x 512 x 9), 9.44
    // MB of weights read once; F(2x2): 5 x 5 tiles, 400 x 512 x 512 =
    // 104,857,600 MACs and 400 x 256 = 102,400 vectors (0.154 ms), `U`
    // 16.78 MB read per tile row (5); F(4x4): 3 x 3 tiles, 324 x 512 x 512
    // = 84,934,656 MACs, `U` 37.75 MB, over the 32 MiB of the outer caches.
    // One image on AVX2: direct 191.1M / 54 = 3.539 ms; F(2x2) 104.9M / 50
    // + 0.154 = 2.251 ms but its weights 16.78 / 8.5 + 4 x 16.78 / 25 =
    // 4.658 ms; F(4x4) its weights 3 x 37.75 / 8.5 = 13.3 ms: direct. A
    // batch: direct 191.1M / 53 = 3.606 ms; F(2x2) its weights 5 x 16.78 /
    // 26 = 3.227 ms; F(4x4) 13.3 ms: F(2x2).
    for (isa, layer, runs) in [(Isa::Avx512, WARM, 7), (Isa::Avx2, WARM_AVX2, 5)] {
        if !isa.detected() {
            // Lowering names only an ISA the host has (`ConvSpec::of_conv`).
            continue;
        }
        let image = image_kernels(layer, Some(isa), 4);
        assert!(matches!(image[..], [Some(Kernel::Conv(_))]), "{image:?}");
        let plan = batch_plan_up_to(layer, Some(isa), 4);
        let Some(step) = &plan.kernels[0] else {
            panic!("no batch kernel on {isa:?}: {plan:?}")
        };
        let Kernel::Winograd(w) = &step.kernel else {
            panic!("{:?}", step.kernel)
        };
        // In its tile rows, the passes over `U` its cost model counts.
        assert_eq!((w.tile, w.tile_rows, w.runs()), (2, true, runs));
        // It packs by its own kernel, and computes the image's convolution.
        assert_eq!(step.parts[0].kernel, step.kernel);
        assert_eq!(
            conv_spec(&step.kernel),
            image[0].as_ref().and_then(conv_spec)
        );
        // Winograd only where allowed.
        assert_eq!(batch_plan_up_to(layer, Some(isa), 0).kernels, [None]);
    }
    if Isa::Avx512.detected() {
        // AlexNet's conv4 itself, 13x13x384: `U` is 16 x 384 x 384 x 4 =
        // 9.44 MB, over the 8 MiB from which the image's Winograd kernels
        // run in long runs of tiles (49 tiles of 16 x (384 + 384) x 4 =
        // 49,152 bytes of `V` and `M`, 2.41 MB, over the 2 MiB of a run: two
        // runs); the batch's runs in its 7 tile rows.
        let wide = "Wide(13x13x384) { conv(384, 3x3, pad = 1), relu }";
        let plan = batch_plan_up_to(wide, Some(Isa::Avx512), 4);
        let Some(Kernel::Winograd(w)) = plan.kernels[0].as_ref().map(|s| &s.kernel) else {
            panic!("no batch Winograd kernel: {plan:?}")
        };
        assert_eq!((w.tile, w.runs()), (2, 7));
        let image = WinogradSpec::of_conv(&conv_spec(&Kernel::Winograd(w.clone())).unwrap(), 2);
        assert_eq!(image.map(|s| s.runs()), Some(2));
    }
    if Isa::Avx2.detected() {
        let image = image_kernels(WARM, Some(Isa::Avx2), 4);
        assert!(
            matches!(&image[..], [Some(Kernel::Winograd(w))] if w.tile == 2),
            "{image:?}"
        );
        assert_eq!(batch_plan_up_to(WARM, Some(Isa::Avx2), 4).kernels, [None]);
    }
    // Cranelift's tile has no batch rates.
    assert_eq!(batch_plan_up_to(WARM, None, 4).kernels, [None]);
}

#[test]
fn a_batch_keeps_the_images_kernel_where_it_keeps_its_algorithm() {
    // VGG16's 14x14x512 layer: `U` of F(2x2) is 16 x 512 x 512 x 4 = 16.8
    // MB, over `LONG_RUNS_FROM` (8 MiB), so the image runs it in long runs
    // (`MEASURED_AVX2`: direct 462.4M / 54 = 8.56 ms; F(2x2) 784 x 512 x
    // 512 = 205.5M / 50 + 784 x 256 x 1.5 ns = 4.41 ms, its weights 16.8 /
    // 8.5 + 6 x 16.8 / 25 = 6.00 ms; F(4x4) 16 x 36 x 512 x 512 = 151.0M /
    // 50 + 0.221 = 3.24 ms but its weights 37.7 / 8.5 + 3 x 37.7 / 8.5 (over
    // the 32 MiB of the outer caches) = 17.8 ms: F(2x2)). A batch on AVX2 picks
    // F(2x2) too (direct 8.72 ms; F(2x2) 4.11 + 0.301 = 4.41 ms, its
    // weights 7 x 16.8 / 26 = 4.52 ms; F(4x4) 4 x 37.7 / 8.5 = 17.8 ms), so
    // it keeps the image's kernel, long runs and all, rather than one in
    // tile rows that reads `U` seven times.
    let layer = "Keep(14x14x512) { conv(512, 3x3, pad = 1), relu }";
    for isa in [Some(Isa::Avx2), None] {
        let image = image_kernels(layer, isa, 4);
        if isa.is_some_and(|isa| isa.detected()) {
            let [Some(Kernel::Winograd(w))] = &image[..] else {
                panic!("{image:?}")
            };
            assert_eq!((w.tile, w.tile_rows), (2, false));
        }
        assert_eq!(batch_plan_up_to(layer, isa, 4).kernels, [None]);
    }
}

#[test]
fn by_default_a_batch_runs_the_images_kernels() {
    // The layer above, where `Fastest` runs F(2x2): by default the batch
    // keeps the image's direct kernel, and every other decision is the same.
    let image = batch_plan_allowing(WARM, Some(Isa::Avx512), 4, BatchKernels::default());
    assert_eq!(image.kernels, [None]);
    let fastest = batch_plan_up_to(WARM, Some(Isa::Avx512), 4);
    // Only where the host has AVX-512 does lowering keep its tile, whose
    // batch model picks F(2x2) (the test above).
    assert_eq!(
        fastest.kernels[0].is_some(),
        Isa::Avx512.detected(),
        "{fastest:?}"
    );
    assert_eq!((image.tail, image.group), (fastest.tail, fastest.group));
}

proptest! {
    // Lowering is pure and cheap; about one case in twenty draws a shape a
    // batch runs on its own kernel (3x3, stride 1, a native tile, many channels).
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A batch kernel, where `BatchKernels::Fastest` gives one
    /// (`choice::batch_kernel`'s), computes the image kernel's convolution
    /// on a native tile by another algorithm, within the Winograd bound;
    /// there is none on Cranelift's tile, and none by default.
    #[test]
    fn a_batch_kernel_computes_the_images_convolution(
        size in 4usize..28,
        channels in 1usize..512,
        outputs in 1usize..512,
        kernel in prop::sample::select(vec![1usize, 3, 3, 3, 5]),
        stride in prop::sample::select(vec![1usize, 1, 1, 2]),
        pad in 0usize..2,
        tile in prop::sample::select(vec![0usize, 2, 4, 4]),
        isa in prop::sample::select(vec![None, Some(Isa::Avx2), Some(Isa::Avx512), Some(Isa::Avx512)]),
    ) {
        prop_assume!(size + 2 * pad >= kernel);
        let source = format!(
            "P({size}x{size}x{channels}) {{ conv({outputs}, {kernel}x{kernel}, stride = {stride}, pad = {pad}), relu }}"
        );
        let image = image_kernels(&source, isa, tile);
        let default = batch_plan_allowing(&source, isa, tile, BatchKernels::Image);
        prop_assert!(default.kernels.iter().all(Option::is_none));
        for (own, image) in batch_plan_up_to(&source, isa, tile).kernels.iter().zip(&image) {
            let (Some(own), Some(image)) = (own, image) else {
                prop_assert!(own.is_none());
                continue;
            };
            prop_assert!(isa.is_some());
            prop_assert_eq!(Some(own.kernel.clone()), batch_kernel(image, tile));
            prop_assert_ne!(winograd_tile(&own.kernel), winograd_tile(image));
            prop_assert_eq!(conv_spec(&own.kernel), conv_spec(image));
            let within = match &own.kernel {
                Kernel::Winograd(w) => w.tile <= tile,
                _ => true,
            };
            prop_assert!(within, "{:?}", own.kernel);
            prop_assert_eq!(&own.parts[0].kernel, &own.kernel);
        }
    }
}

#[test]
fn deep_convolutions_on_small_images_run_step_by_step_in_groups() {
    // Five steps: conv + relu, maxpool, conv + relu, conv + relu, conv.
    // Packed weights against the values each step writes and reads:
    // conv(64, 3x3) on 12x12x3: 64 x 27 = 1,728 against 432 + 9,216; the
    // pool none; conv(1024, 3x3) on 6x6x64: 1024 x 576 = 589,824 against
    // 2,304 + 16,384; on 4x4x1024: 1024 x 9,216 = 9,437,184 against 16,384
    // + 4,096; conv(16, 1x1) on 2x2x1024: 16,384 against 4,096 + 64. In all
    // 10,045,120 floats, 40.2 MB, more than the outer caches' 32 MiB.
    let plan = batch_plan(
        "Groups(12x12x3) {
            conv(64, 3x3, pad = 1), relu, maxpool(2x2),
            conv(1024, 3x3), relu, conv(1024, 3x3), relu, conv(16, 1x1),
        }",
        None,
    );
    assert_eq!(plan.tail, None);
    assert_eq!(plan.group, GROUP);
    assert_eq!(plan.step_by_step, [false, false, true, true, true]);
    // Without the 4x4x1024 layer: 1,728 + 589,824 + 16,384 = 607,936
    // floats, 2.4 MB, which the outer caches hold, so each image runs alone;
    // conv(16, 1x1) now reads 4x4x1024: 16,384 weights against 16,384 + 256
    // values, image by image.
    let small = batch_plan(
        "Small(12x12x3) { conv(64, 3x3, pad = 1), relu, maxpool(2x2), conv(1024, 3x3), relu, conv(16, 1x1) }",
        None,
    );
    assert_eq!(small.group, 1);
    assert_eq!(small.step_by_step, [false, false, true, false]);
}

#[test]
fn values_live_across_a_step_count_against_its_weights() {
    // Four steps: conv(256, 1x1) + relu on 8x8x3; the body's conv(32, 1x1)
    // + relu, conv(32, 3x3) + relu and conv(256, 1x1), which ends in the
    // residual add and relu. The 3x3 conv packs 9 x 32 x 32 = 9,216 weights
    // against 2,048 + 2,048 values it reads and writes, but the block's
    // 8x8x256 input (16,384) lives across it, from step 0 to the add of step
    // 3: 9,216 < 20,480, so it runs image by image. Step 0: 3 x 256 = 768
    // against 192 + 16,384; step 1: 256 x 32 = 8,192 against 16,384 + 2,048;
    // step 3: 32 x 256 = 8,192 against 2,048 + 16,384 + 16,384 written.
    let residual = batch_plan(
        "Live(8x8x3) {
            conv(256, 1x1), relu,
            residual { conv(32, 1x1), relu, conv(32, 3x3, pad = 1), relu, conv(256, 1x1) },
            relu,
        }",
        None,
    );
    assert_eq!(residual.step_by_step, [false, false, false, false]);
    // The same body without the shortcut: nothing lives across the 3x3 conv
    // (9,216 > 4,096), which then runs step by step; conv(256, 1x1) reads
    // 2,048 and writes 16,384.
    let chain = batch_plan(
        "Chain(8x8x3) {
            conv(256, 1x1), relu,
            conv(32, 1x1), relu, conv(32, 3x3, pad = 1), relu, conv(256, 1x1), relu,
        }",
        None,
    );
    assert_eq!(chain.step_by_step, [false, false, true, false]);
}

#[test]
fn a_dense_tail_runs_batched_only_on_native_gemvs() {
    const NET: &str =
        "Net(6x6x4) { conv(5, 3x3), relu, flatten, dense(70), tanh, dense(9), softmax }";
    // Steps: conv + relu + flatten, dense(70) + tanh, dense(9) + softmax;
    // the dense tail is the last two, reading the conv's 4x4x5 output.
    let native = batch_plan(NET, Some(Isa::Avx2));
    let tail = native.tail.expect("a tail of native GEMVs");
    assert_eq!(tail.first, 1);
    // Buffers per image: the tail's input, the 80 features, then
    // dense(70)'s 70 outputs, which dense(9) reads to write the caller's.
    assert_eq!(tail.buffers, [80, 70]);
    assert_eq!(native.group, 1);
    // Cranelift's dense kernel has no batched form: the tail runs per image.
    assert_eq!(batch_plan(NET, None).tail, None);
}
