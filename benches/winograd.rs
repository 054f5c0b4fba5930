//! Every algorithm for the 3x3 convolution + ReLU of benches/nets/layers.cnn
//! (56x56x128 -> 128 and 28x28x256 -> 256), one thread, kernel alone:
//! direct, Winograd F(2x2, 3x3) and F(4x4, 3x3). Throughput is effective
//! FLOPs (the direct convolution's `2 MACs`), so the figures compare. Then
//! the native transforms alone (`codegen::native_winograd`), on each ISA
//! the host has: one tile row of the 56x56x128 layer's F(4x4) input and
//! output transforms (14 tiles, with the ReLU), the part of a Winograd
//! kernel outside its GEMMs.
//!
//! `cargo bench --bench winograd`.

use cnnjit::codegen::conv::ConvSpec;
use cnnjit::codegen::native::Isa;
use cnnjit::codegen::native_epilogue::{Step, RELU};
use cnnjit::codegen::native_winograd::{self, InputShape, OutputShape};
use cnnjit::codegen::winograd::WinogradSpec;
use cnnjit::codegen::{Epilogue, Jit, Kernel};
use cnnjit::ir::Activation;
use cnnjit::runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

fn conv3x3(side: usize, channels: usize) -> ConvSpec {
    ConvSpec {
        input: [side, side, channels],
        output: [side, side, channels],
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1],
        groups: 1,
        epilogue: vec![Epilogue::Act(Activation::Relu)],
        native: None,
        slice: None,
    }
}

/// `len` zeros of `buffer` from a 64-byte boundary, as a model's working
/// memory is aligned (`buffer` grows by a line's 16 floats to allow it).
fn line_aligned(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len + 16, 0.0);
    let at = buffer.as_ptr().align_offset(64).min(16);
    &mut buffer[at..at + len]
}

fn algorithms(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3_relu");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (side, channels) in [(56, 128), (28, 256)] {
        let spec = conv3x3(side, channels);
        let macs = (side * side * channels * channels * 9) as u64;
        group.throughput(Throughput::Elements(2 * macs));
        let mut kernels = vec![("direct", Kernel::Conv(spec.clone()))];
        let native = ConvSpec {
            native: cnnjit::codegen::native::Isa::best(),
            ..spec.clone()
        };
        kernels.push(("direct-native", Kernel::Conv(native.clone())));
        for (name, conv, tile) in [
            ("F2x2", &spec, 2),
            ("F4x4", &spec, 4),
            ("F4x4-native", &native, 4),
        ] {
            let w = WinogradSpec::of_conv(conv, tile).expect("a 3x3 stride-1 conv");
            kernels.push((name, Kernel::Winograd(w)));
        }
        for (name, kernel) in kernels {
            let lengths = kernel.lengths();
            let mut jit = Jit::new().expect("a JIT for this host");
            let id = jit.compile(&kernel).expect("the kernel compiles");
            let program = jit.finish().expect("the program links");
            let input = cnnjit::check::random_input(lengths.input, 1);
            let weight = cnnjit::check::random_input(channels * channels * 9, 2);
            let weights = kernel.pack_weights(&weight, None);
            let params = kernel.pack_vector(&vec![0.1; channels]);
            let mut output = vec![0.0; lengths.output];
            let mut buffer = Vec::new();
            let scratch = line_aligned(&mut buffer, scratch_len(&lengths, None));
            group.bench_function(format!("{name}/{side}x{side}x{channels}"), |b| {
                b.iter(|| {
                    let buffers = Buffers {
                        input: std::hint::black_box(&input),
                        weights: &weights,
                        params: &params,
                        extra: Extra::NONE,
                        output: &mut output,
                        scratch: &mut *scratch,
                    };
                    call_kernel(&program, id, &lengths, buffers, None).expect("the buffers fit")
                })
            });
        }
    }
    group.finish();
}

/// F(4x4)'s transforms over one tile row of 56x56x128 (14 tiles): `V` and
/// `M` of the row in a 64-byte aligned buffer, as in a kernel's scratch.
fn transforms(c: &mut Criterion) {
    const TILES: usize = 14;
    let (side, channels, alpha) = (56, 128, 6);
    let mut group = c.benchmark_group("winograd_transforms");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let input = cnnjit::check::random_input(side * side * channels, 1);
    let plane = TILES * channels;
    let mut buffer = Vec::new();
    let scratch = line_aligned(&mut buffer, alpha * alpha * plane);
    let bias = vec![0.1f32; channels];
    let mut output = vec![0.0f32; side * side * channels];
    let steps = [Step {
        code: RELU,
        slope: 0.0,
    }];
    let pixel = (channels * 4) as i64;
    let input_shape = InputShape {
        channels: channels as i64,
        row: side as i64 * pixel,
        pixel,
        point: (plane * 4) as i64,
    };
    let output_shape = OutputShape {
        channels: channels as i64,
        point: (plane * 4) as i64,
        block: (TILES * 16 * 4) as i64,
        vector: pixel,
        row: side as i64 * pixel,
        pixel,
        steps: 1,
    };
    for isa in Isa::on_host() {
        let Some((input_fn, output_fn)) = native_winograd::transforms(isa, 4) else {
            continue;
        };
        // The second tile row: interior tiles but the first and last.
        group.bench_function(format!("input-{isa}/56x56x128"), |b| {
            b.iter(|| {
                for t in 0..TILES {
                    let (ix, j_lo) = if t == 0 { (0, 1) } else { (4 * t - 1, 0) };
                    let j_hi = (side + 1 - 4 * t).min(alpha) as i64;
                    let patch = &input[(3 * side + ix) * channels..];
                    // SAFETY: the host runs `isa`; the patch's rows 3 to 8
                    // and columns within the bounds are inside `input`, and
                    // tile `t`'s `V` inside the scratch.
                    unsafe {
                        input_fn(
                            patch.as_ptr().wrapping_sub(j_lo as usize * channels),
                            scratch.as_mut_ptr().add(t * channels),
                            &input_shape,
                            0,
                            alpha as i64,
                            j_lo,
                            j_hi,
                        )
                    }
                }
            })
        });
        group.bench_function(format!("output-{isa}/56x56x128"), |b| {
            b.iter(|| {
                for t in 0..TILES {
                    let out = &mut output[(4 * side + 4 * t) * channels..];
                    // SAFETY: the host runs `isa`; tile `t`'s `M`, the bias
                    // and its 4 x 4 output pixels are inside `scratch`,
                    // `bias` and `output`; no `ADD` step reads `extra`.
                    unsafe {
                        output_fn(
                            scratch.as_ptr().add(t * 16),
                            out.as_mut_ptr(),
                            std::ptr::null(),
                            4,
                            4,
                            bias.as_ptr(),
                            steps.as_ptr(),
                            &output_shape,
                        )
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, algorithms, transforms);
criterion_main!(benches);
