//! A residual's add and ReLU fused into the convolution's epilogue, against
//! the same convolution followed by a separate element-wise add + ReLU
//! kernel (what the plan runs when the add cannot join the convolution's
//! step), one thread, kernels alone: ResNet-18's 3x3 convolutions on 56x56x64
//! and 28x28x128 and ResNet-50's 1x1 expansion on 56x56x64 -> 256. Each
//! convolution is the algorithm the runtime chooses for it (Winograd, direct
//! or GEMM, on the native tile where the host has it).
//!
//! `cargo bench --bench fused_epilogue` (groups `fused` and `separate`).

use cnnjit::codegen::choice;
use cnnjit::codegen::conv::ConvSpec;
use cnnjit::codegen::elementwise::{Binary, ElementwiseSpec};
use cnnjit::codegen::lower::Capabilities;
use cnnjit::codegen::{native, Epilogue, Jit, Kernel, KernelId, Lengths, Program};
use cnnjit::ir::Activation;
use cnnjit::ir::Shape;
use cnnjit::runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::time::Duration;

/// A `kernel x kernel` convolution, stride 1, `same` padding, `c -> k` channels.
fn conv(side: usize, c: usize, k: usize, kernel: usize, epilogue: Vec<Epilogue>) -> ConvSpec {
    ConvSpec {
        input: [side, side, c],
        output: [side, side, k],
        kernel: [kernel; 2],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [kernel / 2; 2],
        groups: 1,
        epilogue,
        native: native::Isa::best(),
        slice: None,
    }
}

/// One compiled kernel and the buffers it reads.
struct Compiled {
    program: Program,
    id: KernelId,
    lengths: Lengths,
    weights: Vec<f32>,
    params: Vec<f32>,
    scratch: Vec<f32>,
}

impl Compiled {
    /// `kernel` with weights `weight` (PyTorch's layout; none for an add) and
    /// `bias` (zeros past its end, as the runtime gives an add).
    fn new(kernel: Kernel, weight: &[f32], bias: &[f32]) -> Compiled {
        let lengths = kernel.lengths();
        let mut jit = Jit::new().expect("a JIT for this host");
        let id = jit.compile(&kernel).expect("the kernel compiles");
        let mut params = kernel.pack_vector(bias);
        params.resize(lengths.params, 0.0);
        Compiled {
            program: jit.finish().expect("the program links"),
            id,
            weights: kernel.pack_weights(weight, None),
            params,
            scratch: vec![0.0; scratch_len(&lengths, None)],
            lengths,
        }
    }

    fn run(&mut self, input: &[f32], extra: &[f32], output: &mut [f32]) {
        let buffers = Buffers {
            input: std::hint::black_box(input),
            weights: &self.weights,
            params: &self.params,
            extra: Extra::Buffer(extra),
            output,
            scratch: &mut self.scratch,
        };
        call_kernel(&self.program, self.id, &self.lengths, buffers, None).expect("the buffers fit")
    }
}

fn conv_add_relu(c: &mut Criterion) {
    let relu = Epilogue::Act(Activation::Relu);
    for (name, side, channels, k, kernel) in [
        ("conv3x3_56x56x64", 56, 64, 64, 3),
        ("conv3x3_28x28x128", 28, 128, 128, 3),
        ("conv1x1_56x56x64_256", 56, 64, 256, 1),
    ] {
        let weight = cnnjit::check::random_input(k * channels * kernel * kernel, 2);
        let input = cnnjit::check::random_input(side * side * channels, 1);
        let shortcut = cnnjit::check::random_input(side * side * k, 3);
        let mut output = vec![0.0; side * side * k];
        let mut sum = vec![0.0; side * side * k];
        let bias = vec![0.1; k];
        let caps = Capabilities::host(native::Isa::best(), 4, true);
        let fused_spec = conv(side, channels, k, kernel, vec![Epilogue::Add, relu]);
        let mut fused = Compiled::new(choice::kernel(fused_spec, &caps), &weight, &bias);
        let alone_spec = conv(side, channels, k, kernel, Vec::new());
        let mut alone = Compiled::new(choice::kernel(alone_spec, &caps), &weight, &bias);
        let shape = Shape::Volume {
            h: side as u32,
            w: side as u32,
            c: k as u32,
        };
        let add = ElementwiseSpec::new(Binary::Add, shape, shape, vec![relu])
            .expect("operands of one shape");
        let mut add = Compiled::new(Kernel::Elementwise(add), &[], &[]);
        for backend in ["fused", "separate"] {
            let mut group = c.benchmark_group(backend);
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(20)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2));
            group.bench_function(name, |b| {
                b.iter(|| match backend {
                    "fused" => fused.run(&input, &shortcut, &mut output),
                    _ => {
                        alone.run(&input, &[], &mut sum);
                        add.run(&sum, &shortcut, &mut output);
                    }
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, conv_add_relu);
criterion_main!(benches);
