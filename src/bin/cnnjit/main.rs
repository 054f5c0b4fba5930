//! The `cnnjit` command-line tool: reads `.cnn` files (the `cnn!` language)
//! and prints their summaries (text or JSON) or graphs (Graphviz DOT), or
//! runs a net on images (JPEG/PNG files or a `.npy` file), or imports an ONNX model.
//! Errors in a file are printed rustc-style with file, line, column and a
//! caret, and the exit status is 1.

use clap::{Parser, Subcommand};
use cnnjit::codegen::native::Isa;
use cnnjit::ir::{cost, dot, summary::Summary};
use cnnjit::lang::{dsl::diagnostic, CompiledNet};
use cnnjit::npy;
use cnnjit::runtime::memory::Budget;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench;
mod images;
mod peak;
mod report;
mod tune;

#[derive(Parser)]
#[command(
    name = "cnnjit",
    version,
    about = "A compiler for convolutional neural networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the lecture's table (layer, hyper-parameters, output, params, FLOPs) and totals.
    Summary {
        /// A file in the cnn! language.
        file: PathBuf,
        /// Only this net (default: every net in the file).
        #[arg(long)]
        net: Option<String>,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Add this optimizer's state to the training memory.
        #[arg(long, value_enum, default_value_t = Optimizer::Sgd)]
        optimizer: Optimizer,
    },
    /// Compare networks side by side (sorted by FLOPs), optionally as a bubble chart.
    Compare {
        /// Files in the cnn! language.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only these nets (repeatable; default: every net in the files).
        #[arg(long)]
        net: Vec<String>,
        /// Write the lecture's bubble chart (x: GFLOPs, y: parameters, or latency with
        /// --bench; area: parameters) as SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Also measure batch-1 latency (random weights, the reference kernels).
        #[arg(long)]
        bench: bool,
    },
    /// Run a net on images (JPEG/PNG files or a .npy file) and print the top classes of each.
    Run {
        /// A file in the cnn! language.
        file: PathBuf,
        /// The net to run (needed if the file defines several).
        #[arg(long)]
        net: Option<String>,
        /// The weights, a safetensors file (PyTorch names and layouts).
        #[arg(long)]
        weights: PathBuf,
        /// The images: a float32 C-order .npy of shape (H, W, C) or (N, H, W, C)
        /// ((F,) or (N, F) for a net with a flat input).
        #[arg(long, required_unless_present = "image", conflicts_with = "image")]
        input: Option<PathBuf>,
        /// Image files (JPEG or PNG), preprocessed by --preprocess into one batch.
        #[arg(long, num_args = 1..)]
        image: Vec<PathBuf>,
        /// How --image files become the net's input: `imagenet` (short side 256,
        /// centre crop 224, torchvision's mean and std), `digits` (the digits
        /// demo: grey 32x32 in [0, 1]) or `none` (RGB in [0, 1], as they are).
        #[arg(long, default_value = "imagenet", requires = "image",
              value_parser = clap::builder::PossibleValuesParser::new(cnnjit::image::PRESETS))]
        preprocess: String,
        /// Class names for --image: `imagenet` (shipped) or a file of one name per line.
        #[arg(long, requires = "image")]
        labels: Option<String>,
        /// Write the outputs as a float32 .npy of shape (N, ...output dims).
        #[arg(long)]
        output: Option<PathBuf>,
        /// How many classes to print per image (at most the output's size).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        top: u32,
        /// Which Winograd convolutions the JIT may use: `off` for the direct
        /// convolution's accuracy, `f2` for F(2x2) at most, `any` (default).
        #[arg(long, value_enum, default_value_t = WinogradArg::Any)]
        winograd: WinogradArg,
        /// Which kernels a batch of two or more images runs: `image` (default:
        /// each image's own, so a batch is bitwise each image run alone) or
        /// `fastest` (another algorithm where a batch runs it faster, within
        /// its rounding).
        #[arg(long, value_enum, default_value_t = BatchKernelsArg::Image)]
        batch_kernels: BatchKernelsArg,
    },
    /// Run a net with random weights through the JIT and the reference kernels; compare.
    Check {
        /// A file in the cnn! language.
        file: PathBuf,
        /// The net (default: the only net in the file).
        #[arg(long)]
        net: Option<String>,
        /// Seed of the random weights and input.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Compile every kernel in pure Cranelift, without native (AVX2 or
        /// AVX-512) code: the same as `--isa cranelift`.
        #[arg(long)]
        pure_cranelift: bool,
        /// The widest native code (GEMM tiles, depthwise rows) the JIT may
        /// call: `avx2` or `avx512` (default: the widest this CPU has), or
        /// `cranelift` for none. A CPU without it gets the widest it has
        /// below; `bench` reports which one ran.
        #[arg(long, value_enum)]
        isa: Option<IsaArg>,
        /// Which Winograd convolutions the JIT may use: `off` for the direct
        /// convolution's accuracy, `f2` for F(2x2) at most, `any` (default).
        #[arg(long, value_enum, default_value_t = WinogradArg::Any)]
        winograd: WinogradArg,
    },
    /// Time a net: compile time, JIT and reference latency, GFLOP/s, fraction of peak.
    Bench {
        /// A file in the cnn! language.
        file: PathBuf,
        /// The net (default: the only net in the file).
        #[arg(long)]
        net: Option<String>,
        /// Threads for the JIT's kernels (default: every core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Images per forward pass; a comma-separated list (1,8,32) times each
        /// and reports images per second.
        #[arg(long, value_delimiter = ',', default_value = "1",
              value_parser = clap::value_parser!(u32).range(1..))]
        batch: Vec<u32>,
        /// Print what was built for each step (layers, algorithm, tile, fused
        /// epilogue, MACs, reference steps and why) without timing anything.
        #[arg(long)]
        plan: bool,
        /// Time each step (median over runs): layer, algorithm, tile, time,
        /// GFLOP/s, share of the total.
        #[arg(long)]
        profile: bool,
        /// Compile every kernel in pure Cranelift, without native (AVX2 or
        /// AVX-512) code: the same as `--isa cranelift`.
        #[arg(long)]
        pure_cranelift: bool,
        /// The widest native code (GEMM tiles, depthwise rows) the JIT may
        /// call: `avx2` or `avx512` (default: the widest this CPU has), or
        /// `cranelift` for none. A CPU without it gets the widest it has
        /// below; `bench` reports which one ran.
        #[arg(long, value_enum)]
        isa: Option<IsaArg>,
        /// Run each separable pair (depthwise + pointwise, 1xk + kx1) as two
        /// kernels instead of one fused kernel, to compare.
        #[arg(long)]
        separate_pairs: bool,
        /// Skip timing the reference kernels (seconds per image on large nets).
        #[arg(long)]
        no_reference: bool,
        /// Which Winograd convolutions the JIT may use: `off` for the direct
        /// convolution's accuracy, `f2` for F(2x2) at most, `any` (default).
        #[arg(long, value_enum, default_value_t = WinogradArg::Any)]
        winograd: WinogradArg,
        /// Which kernels a batch of two or more images runs: `image` (default:
        /// each image's own, so a batch is bitwise each image run alone) or
        /// `fastest` (another algorithm where a batch runs it faster, within
        /// its rounding).
        #[arg(long, value_enum, default_value_t = BatchKernelsArg::Image)]
        batch_kernels: BatchKernelsArg,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Time every algorithm (direct, Winograd F2/F4) for each distinct convolution of a
    /// net on this CPU, print the static model's pick against the fastest, and cache
    /// the fastest for this CPU model (read by every later model on this CPU; `Options::tuned = false` ignores it).
    Tune {
        /// A file in the cnn! language.
        file: PathBuf,
        /// The net (default: the only net in the file).
        #[arg(long)]
        net: Option<String>,
        /// Threads the kernels are timed on (default: every core, as models run).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Time the pure Cranelift kernels (the choice is cached per ISA).
        #[arg(long)]
        pure_cranelift: bool,
        /// The widest native tile: `avx2` or `avx512` (default: the widest this CPU has).
        #[arg(long, value_enum)]
        isa: Option<IsaArg>,
        /// Which Winograd convolutions are candidates: `off`, `f2`, `any` (default).
        #[arg(long, value_enum, default_value_t = WinogradArg::Any)]
        winograd: WinogradArg,
        /// The cache file (default: choices.tsv in $CNNJIT_CACHE_DIR, else
        /// $XDG_CACHE_HOME/cnnjit, else ~/.cache/cnnjit).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Measure and print the table, but write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measure this CPU's peak fp32 FMA throughput per core (one thread) and
    /// its memory bandwidth (a stream triad, on one thread and on all), and
    /// print the L2 cache size lowering reads (sysfs).
    Peak {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Each triad array's size in MiB (default: at least 4x the
        /// last-level cache and 256 MiB, within half the memory available).
        #[arg(long)]
        triad_mib: Option<u64>,
    },
    /// Import an ONNX model: write its net in the cnn! language and its weights
    /// (a safetensors file beside it), and print the net's summary.
    Import {
        /// The ONNX file (external data is read from files inside its folder only).
        model: PathBuf,
        /// The .cnn file to write; the weights go to the same path with .safetensors
        /// (both or neither are written, never over the model).
        #[arg(short, long)]
        output: PathBuf,
        /// The net's name (default: the model file's name in UpperCamelCase).
        #[arg(long)]
        net: Option<String>,
        /// The input's shape, `HxWxC` (or `F` for a flat input), for a model
        /// whose input sizes are not fixed (`[-1, 3, ?, ?]`); sizes the model
        /// fixes must agree. The batch size is never needed.
        #[arg(long, value_parser = parse_shape)]
        input_shape: Option<cnnjit::Shape>,
    },
    /// Print the graph in Graphviz DOT.
    Graph {
        /// A file in the cnn! language.
        file: PathBuf,
        /// The net to draw (default: the only or first net in the file).
        #[arg(long)]
        net: Option<String>,
    },
}

/// `--optimizer`: the state kept beside the parameters while training
/// ([`cost::Optimizer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Optimizer {
    /// Plain SGD: no state.
    Sgd,
    /// SGD with momentum: one copy of the parameters.
    Momentum,
    /// Adam: two copies (first and second moments).
    Adam,
}

/// `--batch-kernels`: which kernels a batch of two or more images runs
/// (`cnnjit::BatchKernels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BatchKernelsArg {
    /// Each image's own: a batch is bitwise each image run alone.
    Image,
    /// Another algorithm where a batch runs it faster, within its rounding.
    Fastest,
}

impl From<BatchKernelsArg> for cnnjit::BatchKernels {
    fn from(arg: BatchKernelsArg) -> cnnjit::BatchKernels {
        match arg {
            BatchKernelsArg::Image => cnnjit::BatchKernels::Image,
            BatchKernelsArg::Fastest => cnnjit::BatchKernels::Fastest,
        }
    }
}

/// `--winograd`: which Winograd convolutions the JIT may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum WinogradArg {
    /// None: every convolution direct.
    Off,
    /// F(2x2) at most.
    F2,
    /// F(2x2) or F(4x4), as the cost model prefers.
    Any,
}

/// `--isa`: the widest native code the JIT may call, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum IsaArg {
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512F.
    Avx512,
    /// No native code: pure Cranelift.
    Cranelift,
}

/// `Options::native_tile` and `Options::native_isa` of `--pure-cranelift`
/// and `--isa`.
fn native_options(pure_cranelift: bool, isa: Option<IsaArg>) -> (bool, Option<Isa>) {
    match isa {
        Some(IsaArg::Cranelift) => (false, None),
        Some(IsaArg::Avx2) => (!pure_cranelift, Some(Isa::Avx2)),
        Some(IsaArg::Avx512) => (!pure_cranelift, Some(Isa::Avx512)),
        None => (!pure_cranelift, None),
    }
}

impl From<WinogradArg> for cnnjit::Winograd {
    fn from(arg: WinogradArg) -> cnnjit::Winograd {
        match arg {
            WinogradArg::Off => cnnjit::Winograd::Off,
            WinogradArg::F2 => cnnjit::Winograd::F2x2Only,
            WinogradArg::Any => cnnjit::Winograd::Any,
        }
    }
}

impl From<Optimizer> for cost::Optimizer {
    fn from(arg: Optimizer) -> cost::Optimizer {
        match arg {
            Optimizer::Sgd => cost::Optimizer::Sgd,
            Optimizer::Momentum => cost::Optimizer::Momentum,
            Optimizer::Adam => cost::Optimizer::Adam,
        }
    }
}

fn load(file: &PathBuf, net: Option<&str>) -> Result<Vec<CompiledNet>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("error: cannot read {}: {e}", file.display()))?;
    let nets = cnnjit::lang::compile_source(&text)
        .map_err(|e| diagnostic::render(&e, &file.display().to_string(), &text))?;
    match net {
        None => Ok(nets),
        Some(name) => {
            let names: Vec<String> = nets.iter().map(|n| n.graph.name.to_string()).collect();
            let chosen: Vec<CompiledNet> =
                nets.into_iter().filter(|n| n.graph.name == name).collect();
            if chosen.is_empty() {
                Err(format!(
                    "error: no net `{name}` in {}; it defines: {}",
                    file.display(),
                    names.join(", ")
                ))
            } else {
                Ok(chosen)
            }
        }
    }
}

fn summary_json(nets: &[CompiledNet], optimizer: Optimizer) -> serde_json::Value {
    let nets: Vec<serde_json::Value> = nets
        .iter()
        .map(|net| {
            let s = net.summary();
            let layers: Vec<serde_json::Value> = s
                .layers
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "name": l.name, "kind": l.kind, "hyper": l.hyper,
                        "output_shape": l.output.dims(), "params": l.params, "flops": l.flops, "macs": l.macs,
                    })
                })
                .collect();
            serde_json::json!({
                "name": s.name,
                "input_shape": s.input.dims(),
                "output_shape": net.graph.output_shape().dims(),
                "params": s.params,
                "buffers": s.buffers,
                "flops": s.flops,
                "macs": s.macs,
                "param_bytes": s.param_bytes,
                "activation_bytes": s.activation_bytes,
                "peak_inference_bytes": s.peak_inference_bytes,
                "stored_elements": s.stored_elements,
                "train_bytes": {
                    "1": train_bytes(&s, 1, optimizer),
                    "32": train_bytes(&s, 32, optimizer),
                },
                "train_macs": s.train_macs,
                "optimizer": format!("{optimizer:?}").to_lowercase(),
                "layers": layers,
            })
        })
        .collect();
    serde_json::json!({ "nets": nets })
}

/// Training bytes at `batch` with the optimizer's state ([`cost::Optimizer::state_bytes`]).
fn train_bytes(s: &Summary, batch: u64, optimizer: Optimizer) -> u64 {
    s.training_bytes(batch)
        .saturating_add(cost::Optimizer::from(optimizer).state_bytes(s.params))
}

/// The net called `net`, or the only net of the file.
fn one_net(file: &PathBuf, net: Option<&str>) -> Result<CompiledNet, String> {
    let mut nets = load(file, net)?;
    if nets.len() > 1 {
        let names: Vec<String> = nets.iter().map(|n| n.graph.name.to_string()).collect();
        return Err(format!(
            "error: {} defines several nets ({}); choose one with --net",
            file.display(),
            names.join(", ")
        ));
    }
    nets.pop()
        .ok_or_else(|| format!("error: {} defines no net", file.display()))
}

/// What `cnnjit bench` measures and prints.
struct BenchArgs {
    options: cnnjit::Options,
    batches: Vec<usize>,
    plan: bool,
    profile: bool,
    reference: bool,
    json: bool,
}

/// `cnnjit bench`: compile time, JIT latency per batch size (with images per
/// second), reference latency, GFLOP/s and the fraction of peak; with
/// `--plan` what was built per step, with `--profile` where the time goes.
fn bench(net: &CompiledNet, args: &BenchArgs) -> Result<String, String> {
    use cnnjit::runtime::model::Backend;
    use std::time::Duration;
    let name = net.graph.name.to_string();
    let fail = |e: cnnjit::Error| format!("error: {name}: {e}");
    let mut memory = Budget::new(None);
    let weights = random_weights(&net.graph, &mut memory).map_err(fail)?;
    eprintln!("compiling {name} ...");
    let mut jit =
        cnnjit::Model::with_budget(net.graph.clone(), &weights, args.options, &mut memory)
            .map_err(fail)?;
    warn_if_cache_ignored(&jit);
    let (compile_ms, pack_ms, cranelift_ms, kernels, native_tile) = match jit.backend() {
        Backend::Jit {
            compile_ms,
            pack_ms,
            cranelift_ms,
            kernels,
            native_tile,
            ..
        } => (*compile_ms, *pack_ms, *cranelift_ms, *kernels, *native_tile),
        Backend::Reference { reason } => {
            return Err(format!(
                "error: {name}: the JIT is unavailable here: {reason}"
            ))
        }
    };
    if args.plan {
        let kernels = jit.kernels();
        return Ok(if args.json {
            format!(
                "{:#}\n",
                serde_json::json!({ "net": name, "compile_ms": compile_ms, "pack_ms": pack_ms, "cranelift_ms": cranelift_ms, "steps": steps_json(&kernels, None) })
            )
        } else {
            kernels.to_string()
        });
    }
    let profile = if args.profile {
        eprintln!("profiling each step ...");
        Some(bench::profile(&mut jit, 5, Duration::from_secs(1)).map_err(fail)?)
    } else {
        None
    };
    let mut latencies = Vec::with_capacity(args.batches.len());
    for &batch in &args.batches {
        eprintln!("timing the JIT at batch {batch} ...");
        let timing = bench::time_forward(&mut jit, batch, 5, Duration::from_secs(2), memory)
            .map_err(fail)?;
        latencies.push((batch, timing.median_ms, jit.batch_bytes(batch)));
    }
    let (batch, jit_ms, _) = latencies[0];
    let reference_ms = if args.reference {
        eprintln!("timing the reference kernels ...");
        let reference = cnnjit::Options {
            reference: true,
            ..cnnjit::Options::default()
        };
        let mut slow =
            cnnjit::Model::with_budget(net.graph.clone(), &weights, reference, &mut memory)
                .map_err(fail)?;
        let timing = bench::time_forward(&mut slow, batch, 1, Duration::from_secs(2), memory)
            .map_err(fail)?;
        Some(timing.median_ms)
    } else {
        None
    };
    eprintln!("measuring the FMA peak ...");
    let peak = peak::measure_peak(Duration::from_millis(200));
    let threads = if args.options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.options.threads
    };
    // The roof of the dense steps profiled: the triad on the run's threads.
    let dense = match &profile {
        Some(p) if !gemv_steps(p).is_empty() => {
            let bandwidth = measure_bandwidth(None, threads, memory)?;
            Some(DenseRoof {
                gbs: if threads == 1 {
                    bandwidth.gbs_one
                } else {
                    bandwidth.gbs_all
                },
                threads,
            })
        }
        _ => None,
    };
    let gflops = (net.figures.macs * 2 * batch as u64) as f64 / (jit_ms * 1e6);
    // The native tile's kernels run at its ISA's peak pace, Cranelift's at the 128-bit one's.
    let isa = args.options.native().filter(|_| native_tile);
    let (bits, peak_gflops) = match (isa, peak.gflops_256, peak.gflops_512) {
        (Some(Isa::Avx512), _, Some(p)) => (512, p),
        (Some(_), Some(p), _) => (256, p),
        _ => (128, peak.gflops_128),
    };
    let images_per_s = |batch: usize, ms: f64| batch as f64 * 1e3 / ms;
    if args.json {
        let batches: Vec<serde_json::Value> = latencies
            .iter()
            .map(|&(batch, ms, bytes)| serde_json::json!({ "batch": batch, "ms": ms, "images_per_s": images_per_s(batch, ms), "memory_bytes": bytes }))
            .collect();
        let mut out = serde_json::json!({
            "net": name, "compile_ms": compile_ms, "pack_ms": pack_ms, "cranelift_ms": cranelift_ms, "jit_ms": jit_ms, "reference_ms": reference_ms,
            "gflops": gflops, "peak_gflops_128": peak.gflops_128, "peak_gflops_256": peak.gflops_256, "peak_gflops_512": peak.gflops_512,
            "native_tile": native_tile, "native_isa": isa.map(|isa| isa.name()), "threads": threads, "batch": batch, "batches": batches,
        });
        if let Some(p) = &profile {
            out["steps"] = steps_json(&p.kernels, Some(p));
            out["profile_runs"] = p.runs.into();
            if let Some(roof) = &dense {
                out["triad_gbs"] = roof.gbs.into();
                for (i, gbs) in gemv_steps(p) {
                    out["steps"][i]["gbs"] = gbs.into();
                    out["steps"][i]["triad_fraction"] = (gbs / roof.gbs).into();
                }
            }
        }
        return Ok(format!("{out:#}\n"));
    }
    let mut out = profile
        .as_ref()
        .map(|p| format!("{p}\n"))
        .unwrap_or_default();
    if let (Some(p), Some(roof)) = (&profile, &dense) {
        out.push_str(&dense_report(p, roof));
    }
    out.push_str(&format!(
        "{name}: batch {batch}, {threads} thread(s), {}\n  compile: {compile_ms:.1} ms (packing weights {pack_ms:.1} ms on every core, alongside Cranelift {cranelift_ms:.1} ms for {kernels} kernels)\n  JIT: {jit_ms:.3} ms ({gflops:.1} GFLOP/s, {:.2} of the {bits}-bit peak per core x {threads})\n  reference: {}\n",
        isa.map_or_else(|| "pure Cranelift".to_string(), |isa| format!("native {isa} tile")),
        gflops / (peak_gflops * threads as f64),
        reference_ms.map_or_else(
            || "not timed (--no-reference)".to_string(),
            |ms| format!("{ms:.3} ms ({:.1}x slower)", ms / jit_ms)
        )
    ));
    if latencies.len() > 1 {
        for &(batch, ms, bytes) in &latencies {
            out.push_str(&format!(
                "  batch {batch:>3}: {ms:.3} ms, {:.1} images/s, {:.1} MB activations\n",
                images_per_s(batch, ms),
                bytes as f64 / 1e6
            ));
        }
    }
    Ok(out)
}

/// One JSON object per step of `kernels`, with its timing if profiled.
fn steps_json(
    kernels: &cnnjit::runtime::report::KernelReport,
    profile: Option<&cnnjit::runtime::report::Profile>,
) -> serde_json::Value {
    use cnnjit::runtime::report::Path;
    let steps: Vec<serde_json::Value> = kernels
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut step = serde_json::json!({
                "layers": s.layers, "kind": s.kind, "algorithm": s.algorithm(),
                "tile": s.tile().map(|t| [t.pixels, t.channels]),
                "fused": s.fused, "unfused": s.unfused, "macs": s.macs,
                "reference_reason": match &s.path {
                    Path::Reference { reason } => Some(reason),
                    Path::Compiled { .. } | Path::InNext | Path::InPlace => None,
                },
            });
            if let Some(p) = profile {
                step["time_ms"] = p.step_ms[i].into();
                step["gflops"] = p.gflops(i).into();
                step["share"] = p.share(i).into();
            }
            step
        })
        .collect();
    steps.into()
}

/// The memory roof the dense steps are measured against: the stream
/// triad's GB/s on the run's threads.
struct DenseRoof {
    gbs: f64,
    threads: usize,
}

/// The profile's GEMV steps (dense layers, one-pixel 1x1 convolutions) by
/// index, each with the GB/s at which it read its weights: one `f32` per
/// MAC, each read once, over its median time.
fn gemv_steps(profile: &cnnjit::runtime::report::Profile) -> Vec<(usize, f64)> {
    profile
        .kernels
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.algorithm().starts_with("gemv"))
        .map(|(i, s)| (i, weight_gbs(s.macs, profile.step_ms[i])))
        .collect()
}

/// GB/s of reading `macs` weights (4 bytes each) in `ms` milliseconds.
fn weight_gbs(macs: u64, ms: f64) -> f64 {
    (macs * 4) as f64 / (ms.max(1e-9) * 1e6)
}

/// The profile's dense steps against the triad: each one's bandwidth and
/// fraction, then all of them together.
fn dense_report(profile: &cnnjit::runtime::report::Profile, roof: &DenseRoof) -> String {
    let steps = gemv_steps(profile);
    let mut out = format!(
        "dense steps against the stream triad ({:.1} GB/s on {} thread(s)):\n",
        roof.gbs, roof.threads
    );
    for &(i, gbs) in &steps {
        let step = &profile.kernels.steps[i];
        out.push_str(&format!(
            "  step {i} {}: {:.2} MB in {:.3} ms, {gbs:.1} GB/s, {:.2} of the triad\n",
            step.layers.first().map_or("", String::as_str),
            (step.macs * 4) as f64 / 1e6,
            profile.step_ms[i],
            gbs / roof.gbs,
        ));
    }
    let macs: u64 = steps
        .iter()
        .map(|&(i, _)| profile.kernels.steps[i].macs)
        .sum();
    let ms: f64 = steps.iter().map(|&(i, _)| profile.step_ms[i]).sum();
    let gbs = weight_gbs(macs, ms);
    out.push_str(&format!(
        "  all dense: {:.2} MB in {ms:.3} ms, {gbs:.1} GB/s, {:.2} of the triad\n\n",
        (macs * 4) as f64 / 1e6,
        gbs / roof.gbs,
    ));
    out
}

/// Random weights for `graph` ([`cnnjit::runtime::params::random_weights`],
/// seed 0), taken from `memory` before they are made.
fn random_weights(
    graph: &cnnjit::Graph,
    memory: &mut Budget,
) -> Result<cnnjit::Weights, cnnjit::Error> {
    cnnjit::runtime::params::reserve_weights(graph, memory)?;
    Ok(cnnjit::runtime::params::random_weights(graph, 0))
}

/// Batch-1 median latency of a net with random weights, with progress on stderr.
fn measure(net: &CompiledNet) -> Result<f64, String> {
    let name = &net.graph.name;
    let fail = |e: cnnjit::Error| format!("error: {name}: {e}");
    eprint!("benchmarking {name} ... ");
    let mut memory = Budget::new(None);
    let weights = random_weights(&net.graph, &mut memory).map_err(fail)?;
    let options = cnnjit::Options::default();
    let mut model = cnnjit::Model::with_budget(net.graph.clone(), &weights, options, &mut memory)
        .map_err(fail)?;
    warn_if_fallen_back(&model);
    let duration = std::time::Duration::from_millis(500);
    let timing = bench::time_forward(&mut model, 1, 3, duration, memory).map_err(fail)?;
    eprintln!("{:.3} ms (median of {})", timing.median_ms, timing.runs);
    Ok(timing.median_ms)
}

/// Warns on stderr that `model`, built for the JIT, runs on the reference
/// kernels, and why: the library reports it ([`cnnjit::Model::backend`]), the
/// CLI tells its user.
fn warn_if_fallen_back(model: &cnnjit::Model) {
    if let cnnjit::runtime::model::Backend::Reference { reason } = model.backend() {
        eprintln!(
            "cnnjit: warning: cannot compile `{}` ({reason}); running the reference kernels",
            model.graph().name
        );
    }
    warn_if_cache_ignored(model);
}

/// Warns on stderr that the choice cache of `cnnjit tune` exists but was
/// ignored, and why ([`cnnjit::Model::tuning`]); no cache at all is silent.
fn warn_if_cache_ignored(model: &cnnjit::Model) {
    use cnnjit::runtime::tune::{Ignored, Tuning};
    if let Tuning::Ignored { reason, .. } = model.tuning() {
        if *reason != Ignored::Missing {
            eprintln!("cnnjit: warning: {}", model.tuning());
        }
    }
}

/// What `cnnjit run` reads: a `.npy` batch or image files.
enum Input<'a> {
    /// `--input`.
    Npy(&'a Path),
    /// `--image` and its options.
    Images(images::Images),
}

/// `cnnjit run`: the model, the images, the outputs, the top classes.
fn run_model(
    file: &Path,
    net: Option<&str>,
    weights: &Path,
    input: Input<'_>,
    output: Option<&Path>,
    top: usize,
    options: cnnjit::Options,
) -> Result<String, String> {
    // One budget for the weights, the model, the images and the outputs.
    let mut memory = Budget::new(None);
    let params = cnnjit::Weights::from_file_in(weights, &mut memory)
        .map_err(|e| weights_error(e, weights))?;
    let graph = cnnjit::runtime::model::graph_from_file(file, net)
        .map_err(|e| weights_error(e, weights))?;
    let mut model = cnnjit::Model::with_budget(graph, &params, options, &mut memory)
        .map_err(|e| weights_error(e, weights))?;
    warn_if_fallen_back(&model);
    let input = match input {
        Input::Npy(path) => path,
        Input::Images(images) => {
            let (outputs, report) = images::classify(&mut model, &images, top, &mut memory)?;
            if let Some(path) = output {
                let shape: Vec<u64> = std::iter::once(images.files.len() as u64)
                    .chain(
                        model
                            .graph()
                            .output_shape()
                            .dims()
                            .iter()
                            .map(|&d| u64::from(d)),
                    )
                    .collect();
                npy::write_f32(path, &shape, &outputs).map_err(|e| format!("error: {e}"))?;
            }
            return Ok(report);
        }
    };
    let array = npy::read_f32_in(input, &mut memory).map_err(|e| format!("error: {e}"))?;
    let graph = model.graph();
    let (input_dims, output_dims) = (graph.input_shape().dims(), graph.output_shape().dims());
    let Some(images) = npy::images_in(&array.shape, &input_dims) else {
        let one: Vec<u64> = input_dims.iter().map(|&d| u64::from(d)).collect();
        let dims: Vec<String> = one.iter().map(u64::to_string).collect();
        return Err(format!(
            "error: {}: expected shape {} or (N, {}) for the input of net `{}`, found {}",
            input.display(),
            npy::show_shape(&one),
            dims.join(", "),
            graph.name,
            npy::show_shape(&array.shape)
        ));
    };
    let out_len = model.output_len();
    let len = usize::try_from(images).map_or(usize::MAX, |n| n.saturating_mul(out_len));
    let mut outputs = memory
        .zeroed(len, || format!("the outputs of {images} images"))
        .map_err(|e| format!("error: {}: {e}", input.display()))?;
    model
        .forward_batch(&array.data, &mut outputs)
        .map_err(|e| format!("error: running net `{}`: {e}", model.graph().name))?;
    if let Some(path) = output {
        let shape: Vec<u64> = std::iter::once(images)
            .chain(output_dims.iter().map(|&d| u64::from(d)))
            .collect();
        npy::write_f32(path, &shape, &outputs).map_err(|e| format!("error: {e}"))?;
    }
    let mut out = String::new();
    for (i, scores) in outputs.chunks_exact(out_len.max(1)).enumerate() {
        let bad = scores.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            return Err(format!(
                "error: the output of image {i} is not finite: {bad} of its {} values are NaN or infinite, so it has no top classes",
                scores.len()
            ));
        }
        let best: Vec<String> = top_k(scores, top)
            .into_iter()
            .map(|c| format!("{c} ({})", scores[c]))
            .collect();
        out.push_str(&format!("image {i}: {}\n", best.join(", ")));
    }
    Ok(out)
}

/// The indices of the `k` largest values (at most `values.len()`), largest
/// first; ties go to the lower index.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// A model-building error as one line: weights that do not fit the net are
/// attributed to the weights file (other errors name their file already).
fn weights_error(e: cnnjit::Error, weights: &Path) -> String {
    match e {
        // Diagnostics rendered rustc-style carry their own `error:`.
        cnnjit::Error::Network(text) if text.starts_with("error: ") => text,
        cnnjit::Error::Io { .. }
        | cnnjit::Error::NotAFile { .. }
        | cnnjit::Error::OutOfMemory { .. }
        | cnnjit::Error::Corrupt { .. }
        | cnnjit::Error::Network(_)
        | cnnjit::Error::InvalidGraph { .. }
        | cnnjit::Error::Plan { .. } => format!("error: {e}"),
        _ => format!("error: {}: {e}", weights.display()),
    }
}

fn run(cli: Cli) -> Result<String, String> {
    match cli.command {
        Command::Summary {
            file,
            net,
            json,
            optimizer,
        } => {
            let nets = load(&file, net.as_deref())?;
            if nets.is_empty() {
                return Err(format!("error: {} defines no net", file.display()));
            }
            if json {
                return Ok(format!("{:#}\n", summary_json(&nets, optimizer)));
            }
            let mut out = String::new();
            for net in &nets {
                let s = net.summary();
                out.push_str(&format!("{s}\n"));
                if optimizer != Optimizer::Sgd {
                    out.push_str(&format!(
                        "Training memory with {optimizer:?} state: {:.2} MB at batch 1, {:.2} MB at batch 32\n",
                        train_bytes(&s, 1, optimizer) as f64 / 1e6,
                        train_bytes(&s, 32, optimizer) as f64 / 1e6
                    ));
                }
                out.push('\n');
            }
            Ok(out)
        }
        Command::Compare {
            files,
            net,
            svg,
            bench,
        } => {
            let mut rows = Vec::new();
            for file in &files {
                for compiled in load(file, None)? {
                    if net.is_empty() || net.iter().any(|n| compiled.graph.name == n.as_str()) {
                        let mut row = report::Row::of(&compiled.summary());
                        if bench {
                            row.latency_ms = Some(measure(&compiled)?);
                        }
                        rows.push(row);
                    }
                }
            }
            if rows.is_empty() {
                return Err(format!(
                    "error: none of the nets {net:?} is defined in the files given"
                ));
            }
            report::sort_by_flops(&mut rows);
            if let Some(path) = svg {
                let chart = report::bubble_chart(&rows)
                    .map_err(|e| format!("error: cannot draw the chart: {e}"))?;
                std::fs::write(&path, chart)
                    .map_err(|e| format!("error: cannot write {}: {e}", path.display()))?;
            }
            Ok(report::table(&rows))
        }
        Command::Run {
            file,
            net,
            weights,
            input,
            image,
            preprocess,
            labels,
            output,
            top,
            winograd,
            batch_kernels,
        } => run_model(
            &file,
            net.as_deref(),
            &weights,
            match input.as_deref() {
                Some(path) => Input::Npy(path),
                None => Input::Images(images::Images {
                    files: image,
                    preprocess: cnnjit::image::Preprocess::preset(&preprocess)
                        .expect("clap checked the preset's name"),
                    labels,
                }),
            },
            output.as_deref(),
            top as usize,
            cnnjit::Options {
                winograd: winograd.into(),
                batch_kernels: batch_kernels.into(),
                ..cnnjit::Options::default()
            },
        ),
        Command::Check {
            file,
            net,
            seed,
            pure_cranelift,
            isa,
            winograd,
        } => {
            let net = one_net(&file, net.as_deref())?;
            let (native_tile, native_isa) = native_options(pure_cranelift, isa);
            let options = cnnjit::Options {
                native_tile,
                native_isa,
                winograd: winograd.into(),
                ..cnnjit::Options::default()
            };
            let a = cnnjit::check::jit_against_reference(&net.graph, seed, options)
                .map_err(|e| format!("error: {e}"))?;
            let verdict = if a.within_tolerance { "ok" } else { "FAILED" };
            let finite = if a.non_finite > 0 {
                format!(
                    "{} of {} outputs are NaN or infinite; ",
                    a.non_finite, a.len
                )
            } else {
                String::new()
            };
            let report = format!(
                "{}: JIT vs reference (seed {seed}, {:?}): {finite}output scale {:.3e} (median of the nonzero {:.3e}), max abs error {:.3e}, max rel error {:.3e}, worst error {:.2} of its tolerance: {verdict} (tolerance per output: 1e-5 + 1e-4 x max(|reference|, median nonzero |reference|))\n",
                net.graph.name, a.backend, a.scale, a.typical, a.max_abs, a.max_rel, a.worst
            );
            if a.within_tolerance {
                Ok(report)
            } else {
                Err(report)
            }
        }
        Command::Bench {
            file,
            net,
            threads,
            batch,
            plan,
            profile,
            pure_cranelift,
            isa,
            separate_pairs,
            no_reference,
            winograd,
            batch_kernels,
            json,
        } => {
            let (native_tile, native_isa) = native_options(pure_cranelift, isa);
            bench(
                &one_net(&file, net.as_deref())?,
                &BenchArgs {
                    options: cnnjit::Options {
                        threads,
                        native_tile,
                        native_isa,
                        fuse_separable: !separate_pairs,
                        winograd: winograd.into(),
                        batch_kernels: batch_kernels.into(),
                        ..cnnjit::Options::default()
                    },
                    batches: batch.into_iter().map(|b| b as usize).collect(),
                    plan,
                    profile,
                    reference: !no_reference,
                    json,
                },
            )
        }
        Command::Tune {
            file,
            net,
            threads,
            pure_cranelift,
            isa,
            winograd,
            cache,
            dry_run,
        } => {
            let (native_tile, native_isa) = native_options(pure_cranelift, isa);
            tune::tune(
                &one_net(&file, net.as_deref())?.graph,
                &tune::TuneArgs {
                    options: cnnjit::Options {
                        threads,
                        native_tile,
                        native_isa,
                        winograd: winograd.into(),
                        ..cnnjit::Options::default()
                    },
                    cache,
                    dry_run,
                },
            )
        }
        Command::Peak { json, triad_mib } => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let bandwidth = measure_bandwidth(triad_mib, threads, Budget::new(None))?;
            Ok(peak_report(
                &peak::measure_peak(std::time::Duration::from_millis(200)),
                &bandwidth,
                json,
            ))
        }
        Command::Import {
            model,
            output,
            net,
            input_shape,
        } => {
            use cnnjit::import::Error;
            let options = cnnjit::import::Options { net, input_shape };
            // Errors about a file name it; the others are the model's.
            let fail = |e: Error| match e {
                Error::Io { .. } | Error::Output { .. } => format!("error: {e}"),
                _ => format!("error: {}: {e}", model.display()),
            };
            let imported = cnnjit::import::import(&model, &options).map_err(fail)?;
            // Everything printed is made before anything is written.
            let summary = imported.net.summary().to_string();
            let weights = imported.save(&output).map_err(fail)?;
            Ok(format!(
                "wrote {} and {} ({} tensors)\n\n{summary}\n",
                output.display(),
                weights.display(),
                imported.tensors.len(),
            ))
        }
        Command::Graph { file, net } => {
            let nets = load(&file, net.as_deref())?;
            let first = nets
                .first()
                .ok_or_else(|| format!("error: {} defines no net", file.display()))?;
            Ok(dot::to_dot(&first.graph))
        }
    }
}

/// `--input-shape`: `HxWxC` as the volume, `F` as flat features, every size
/// a positive integer.
fn parse_shape(text: &str) -> std::result::Result<cnnjit::Shape, String> {
    let sizes = text
        .split('x')
        .map(|n| n.trim().parse::<u32>().ok().filter(|&n| n > 0))
        .collect::<Option<Vec<_>>>();
    match sizes.as_deref() {
        Some(&[h, w, c]) => Ok(cnnjit::Shape::Volume { h, w, c }),
        Some(&[f]) => Ok(cnnjit::Shape::Flat(f)),
        _ => Err(format!(
            "`{text}` is not HxWxC (e.g. 224x224x3) or F, with positive sizes"
        )),
    }
}

/// `cnnjit peak`'s output: one line per vector width the CPU has, or one
/// JSON object (`null` for the widths it lacks).
fn peak_report(peak: &peak::Peak, bandwidth: &peak::Bandwidth, json: bool) -> String {
    if json {
        let value = serde_json::json!({
            "peak_gflops_128": peak.gflops_128,
            "peak_gflops_256": peak.gflops_256,
            "peak_gflops_512": peak.gflops_512,
            "triad_gbs_one_thread": bandwidth.gbs_one,
            "triad_gbs_all_threads": bandwidth.gbs_all,
            "triad_threads": bandwidth.threads,
            "triad_array_bytes": bandwidth.array_bytes,
            "l2_bytes": cnnjit::codegen::host::l2_bytes(),
        });
        return format!("{value:#}\n");
    }
    let mut out = format!("128-bit FMA: {:.1} GFLOP/s per core\n", peak.gflops_128);
    for (bits, gflops) in [(256, peak.gflops_256), (512, peak.gflops_512)] {
        match gflops {
            Some(g) => out.push_str(&format!("{bits}-bit FMA: {g:.1} GFLOP/s per core\n")),
            None => out.push_str(&format!("{bits}-bit FMA: not available\n")),
        }
    }
    out.push_str(&format!(
        "memory (stream triad, 3 x {:.0} MiB): {:.1} GB/s on one thread, {:.1} GB/s on {}\n",
        bandwidth.array_bytes as f64 / f64::from(1 << 20),
        bandwidth.gbs_one,
        bandwidth.gbs_all,
        bandwidth.threads,
    ));
    out.push_str(&match cnnjit::codegen::host::l2_bytes() {
        Some(bytes) => format!(
            "L2 cache: {} KiB per core (Winograd's runs are cut for it)\n",
            bytes >> 10
        ),
        None => "L2 cache: unknown (Winograd's runs as on a small L2)\n".to_string(),
    });
    out
}

/// The stream triad ([`peak::measure_triad`]) on one thread and on
/// `threads`, each array `mib` MiB or by [`peak::triad_array_bytes`]'s rule
/// within `budget`, whose three arrays it takes.
fn measure_bandwidth(
    mib: Option<u64>,
    threads: usize,
    mut budget: Budget,
) -> Result<peak::Bandwidth, String> {
    let available = cnnjit::runtime::memory::available_memory().unwrap_or(1 << 30);
    let bytes = mib.map_or_else(
        || peak::triad_array_bytes(peak::last_level_cache(), available),
        |mib| mib.saturating_mul(1 << 20),
    );
    budget
        .take(bytes.saturating_mul(3), || {
            "the triad's three arrays".into()
        })
        .map_err(|e| format!("error: {e}"))?;
    eprintln!("measuring memory bandwidth (3 x {} MiB) ...", bytes >> 20);
    Ok(peak::measure_triad(bytes, threads, 3))
}

/// Prints on stderr the kernels' machine code that the code generator logs
/// (target [`DISASM_TARGET`](cnnjit::codegen::DISASM_TARGET)), and
/// nothing else; installed when `CNNJIT_DISASM` is set.
struct Disassembly;

impl log::Log for Disassembly {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == cnnjit::codegen::DISASM_TARGET
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("cnnjit: {}", record.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    if std::env::var_os("CNNJIT_DISASM").is_some() && log::set_logger(&Disassembly).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    match run(Cli::parse()) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // A reader that stopped reading (`cnnjit summary ... | head`)
                // took what it wanted: not a failure, and never a panic.
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("cnnjit: cannot write the output: {err}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(err) => {
            eprint!("{err}");
            if !err.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// By hand: 1024 x 1000 MACs read 4,096,000 bytes; in 0.5 ms that is
    /// 8.192 GB/s.
    #[test]
    fn a_gemv_reads_four_bytes_per_mac() {
        assert!((super::weight_gbs(1024 * 1000, 0.5) - 8.192).abs() < 1e-12);
    }
}
