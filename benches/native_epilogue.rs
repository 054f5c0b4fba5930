//! The fused tiles (the native epilogue on a tile's sums in registers)
//! against the tile then the generated `f32x4` epilogue on its slot, on the
//! same kernel (`Use::Always` against `Use::Never`), one thread:
//! EfficientNet-B0's 28x28 1x1 convolutions, the expansion 40 -> 240 with
//! its bn folded and swish (`expand_swish`), the same with relu
//! (`expand_relu`: a cheap activation) and the projection 240 -> 40 with a
//! residual add (`project_add`), each on the host's widest native tile. The
//! two kernels' outputs are bitwise equal
//! (`codegen/tests/it/native_epilogue.rs`).
//!
//! `cargo bench --bench native_epilogue` (groups `native` and `generated`).

use cnnjit::codegen::conv::ConvSpec;
use cnnjit::codegen::native_epilogue::Use;
use cnnjit::codegen::{native, Epilogue, Jit, Kernel, KernelId, Lengths, Program};
use cnnjit::ir::Activation;
use cnnjit::runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

/// A 28x28 1x1 convolution, `c -> k` channels.
fn conv(c: usize, k: usize, epilogue: Vec<Epilogue>) -> ConvSpec {
    ConvSpec {
        input: [28, 28, c],
        output: [28, 28, k],
        kernel: [1, 1],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [0, 0],
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
    /// `spec` from a JIT that applies its epilogue with `code`.
    fn new(spec: &ConvSpec, code: Use) -> Compiled {
        let kernel = Kernel::Conv(spec.clone());
        let lengths = kernel.lengths();
        let mut jit = Jit::with_native_epilogue(code).expect("a JIT for this host");
        let id = jit.compile(&kernel).expect("the kernel compiles");
        let weight = cnnjit::check::random_input(spec.input[2] * spec.output[2], 2);
        Compiled {
            program: jit.finish().expect("the program links"),
            id,
            weights: kernel.pack_weights(&weight, None),
            params: cnnjit::check::random_input(lengths.params, 4),
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

fn epilogues(c: &mut Criterion) {
    let act = |a| Epilogue::Act(a);
    let cases = [
        ("expand_swish", 40, 240, vec![act(Activation::Swish)]),
        ("expand_relu", 40, 240, vec![act(Activation::Relu)]),
        ("project_add", 240, 40, vec![Epilogue::Add]),
    ];
    for (name, channels, k, epilogue) in cases {
        let spec = conv(channels, k, epilogue);
        let input = cnnjit::check::random_input(28 * 28 * channels, 1);
        let extra = cnnjit::check::random_input(spec.lengths().extra, 3);
        let mut output = vec![0.0; 28 * 28 * k];
        let mut kernels = [Use::Always, Use::Never].map(|code| Compiled::new(&spec, code));
        for (kernel, group) in kernels.iter_mut().zip(["native", "generated"]) {
            let mut group = c.benchmark_group(group);
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(30)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2))
                .throughput(Throughput::Elements((28 * 28 * channels * k * 2) as u64));
            group.bench_function(name, |b| b.iter(|| kernel.run(&input, &extra, &mut output)));
            group.finish();
        }
    }
}

criterion_group!(benches, epilogues);
criterion_main!(benches);
