//! Compiling a lowered plan: for each step that [`lower`](cnnjit_codegen::lower::lower)
//! gave a compiled kernel, its kernels compiled and its weights and
//! per-channel vectors packed; for a concat, one copy kernel per input not
//! written in place. Nothing is decided here: what each step runs, its
//! operands and why a step keeps the reference kernels are the lowering's.
//!
//! Every call checks the buffers against the kernel's [`Lengths`] first, so a
//! kernel can never be handed a buffer shorter than its code assumes, then
//! splits the kernel's rows (output rows, pixels, tile rows, or a dense
//! layer's blocks of output channels) across the team's threads if its
//! [`work`] reaches [`PARALLEL_WORK`]; a row is a whole reduction, so the
//! output is the same for any thread count.

use crate::error::{Error, InternalError, Result};
use crate::exec::Kernels;
use crate::ir::{Graph, NodeId, Op};
use crate::memory::Budget;
use crate::params::{LayerParams, Params, Weight};
use crate::reference::{Affine, BatchNorm, KernelError};
use crate::team::Team;
use crate::weights::Weights;
use cnnjit_codegen::concat::ConcatSpec;
pub use cnnjit_codegen::lower::work;
use cnnjit_codegen::lower::{FallbackReason, KernelStep, LoweredStep, Operands, Part};
use cnnjit_codegen::softmax::SoftmaxSpec;
use cnnjit_codegen::{Algorithm, Tile};
use cnnjit_codegen::{CodegenError, Jit, Kernel, KernelFn, KernelId, Lengths, Program};
use cnnjit_ir::plan::ValueId;
use rayon::prelude::*;
use std::sync::Arc;
use std::time::Instant;

/// How one step runs: its [`LoweredStep`], compiled.
#[derive(Clone, Debug)]
pub enum Lowering {
    /// On the reference kernels, for this reason.
    Reference(FallbackReason),
    /// On a compiled kernel (boxed: a `Lowered` is large beside the other variants).
    Kernel(Box<Lowered>),
    /// Not at all: the next step's kernel computes it too (a fused separable
    /// pair), never writing its output.
    InNext,
    /// A concat: one compiled copy per input not written in place, in
    /// order, each into its channel slice of the output; the epilogue on the
    /// reference kernels.
    Concat(Vec<Branch>),
}

/// One concat input's compiled copy.
#[derive(Clone, Debug)]
pub struct Branch {
    /// The value it copies.
    pub input: ValueId,
    /// The compiled kernel.
    pub kernel: KernelId,
    /// Its spec (the branch's slice), whose lengths are its contract.
    pub spec: ConcatSpec,
}

/// One step's compiled kernel.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The compiled kernel.
    pub kernel: KernelId,
    /// Its safety contract.
    pub lengths: Lengths,
    /// Packed weights.
    pub weights: Vec<f32>,
    /// Packed bias, then a scale and a shift per fused unfolded bn.
    pub params: Vec<f32>,
    /// The values it reads and writes.
    pub operands: Operands,
    /// A softmax the epilogue ends in, run in place on the output after the
    /// kernel: its compiled kernel and spec.
    pub then: Option<(KernelId, SoftmaxSpec)>,
    /// The epilogue nodes left for the reference path, in order.
    pub rest: Vec<NodeId>,
    /// Its [`work`]: below [`PARALLEL_WORK`] it runs on one thread.
    pub work: u64,
    /// What the kernel computes with, for reports.
    pub algorithm: Algorithm,
    /// Its register tile, for reports.
    pub tile: Tile,
}

/// The least [`work`] worth splitting across threads: about 80 us of one
/// thread's time (at the native tile's 54 MACs/ns; 180 us on Cranelift's
/// tile). It was set when a split woke a sleeping pool (28-52 us, 2-core
/// AVX-512 host, 2026-12-06); with the spinning [`Team`] a split costs far
/// less, but 2^18 and 2^20 measured no faster on MobileNetV2, MobileNetV1,
/// EfficientNet-B0, ResNet-18 and LeNet-5 (same run, within its noise), so
/// it stays. LeNet-5's layers, MobileNetV1's global pool and small 1x1
/// convolutions stay on one thread.
pub const PARALLEL_WORK: u64 = 1 << 22;

/// `team` if `work` is worth splitting across its threads.
fn split(work: u64, team: Option<&Team>) -> Option<&Team> {
    team.filter(|_| work >= PARALLEL_WORK)
}

/// The whole plan compiled: a kernel per step the lowering compiles.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The code, shared by clones of a model.
    pub program: Arc<Program>,
    /// Per step, how it runs.
    pub steps: Vec<Lowering>,
    /// Per step, how it runs in a batch where that differs (lowering's
    /// `BatchPlan::kernels`), else `None`: [`Compiled::step`].
    pub batch: Vec<Option<Lowering>>,
    /// Distinct kernels compiled.
    pub kernels: usize,
    /// Wall time of packing and compiling, in milliseconds.
    pub compile_ms: f64,
    /// Where that time went.
    pub phases: Phases,
}

/// Wall times, in milliseconds, of the two halves of [`compile`], which run
/// side by side: their sum exceeds `compile_ms` by the overlap.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phases {
    /// Packing every step's weights, on every core.
    pub pack_ms: f64,
    /// Cranelift compiling the distinct kernels, on the threads
    /// [`compile`] was given.
    pub cranelift_ms: f64,
}

impl Lowered {
    /// The threads this step runs on: none below [`PARALLEL_WORK`].
    fn team<'t>(&self, team: Option<&'t Team>) -> Option<&'t Team> {
        split(self.work, team)
    }
}

impl Compiled {
    /// How step `index` runs on `kernels`.
    pub fn step(&self, index: usize, kernels: Kernels) -> &Lowering {
        let own = self.batch.get(index).and_then(Option::as_ref);
        match (kernels, own) {
            (Kernels::Batch, Some(lowering)) => lowering,
            (Kernels::Batch, None) | (Kernels::Image, _) => &self.steps[index],
        }
    }

    /// The scratch, in `f32`s, that [`run`] needs for any step, alone or in
    /// a batch, on `team`.
    pub fn scratch_len(&self, team: Option<&Team>) -> usize {
        (self.steps.iter().chain(self.batch.iter().flatten()))
            .filter_map(|step| match step {
                Lowering::Kernel(l) => Some(scratch_len(&l.lengths, l.team(team))),
                Lowering::Reference(_) | Lowering::InNext | Lowering::Concat(_) => None,
            })
            .max()
            .unwrap_or(0)
    }
}

fn internal(graph: &Graph, id: NodeId, source: impl Into<InternalError>) -> Error {
    Error::Internal {
        layer: graph.node(id).name.to_string(),
        source: source.into(),
    }
}

/// Compiles the `lowered` steps of `graph`'s plan, and per step the kernel
/// a batch runs in its place where `batch` has one: packs each compiled
/// step's weights and per-channel vectors from `params`, where `params` left
/// a layer's weights in the file ([`Weight::InFile`]) from `file`, folding
/// their bn as they are packed. The packed weights' bytes are taken from
/// `budget` before any is packed.
///
/// Packing touches every weight (200 MB packed for ResNet-50, most of it
/// memory the process has never touched) and each step's depends on no other
/// step's, so the steps' weights are packed on every core while Cranelift
/// compiles the distinct kernels on `threads` threads, the calling thread
/// one of them ([`Jit::finish_on`]); neither waits for the other, since a
/// kernel's code depends on its spec alone. The program, its kernel ids
/// and its code are the same for any `threads`.
pub fn compile(
    graph: &Graph,
    lowered: &[LoweredStep],
    batch: &[Option<KernelStep>],
    params: &Params,
    file: &Weights,
    budget: &mut Budget,
    threads: usize,
) -> Result<Compiled> {
    let start = Instant::now();
    let whole = |e: CodegenError| Error::Internal {
        layer: graph.name.to_string(),
        source: e.into(),
    };
    let mut jit = Jit::new().map_err(whole)?;
    fn kernel(step: &LoweredStep) -> Option<&KernelStep> {
        match step {
            LoweredStep::Kernel(step) => Some(step),
            LoweredStep::InNext | LoweredStep::Concat(_) | LoweredStep::Reference(_) => None,
        }
    }
    let extra: Vec<LoweredStep> = (batch.iter().flatten())
        .map(|k| LoweredStep::Kernel(Box::new(k.clone())))
        .collect();
    let images = lowered.len();
    let lowered: Vec<&LoweredStep> = lowered.iter().chain(&extra).collect();
    let sources = (lowered.iter())
        .map(|step| kernel(step).map_or(Ok(Vec::new()), |k| sources(graph, params, file, k)))
        .collect::<Result<Vec<_>>>()?;
    let packed_bytes = (lowered.iter().copied().filter_map(kernel))
        .map(|k| (k.kernel.lengths().weights as u64).saturating_mul(4))
        .fold(0u64, u64::saturating_add);
    budget.take(packed_bytes, || {
        format!("the packed weights of net `{}`", graph.name)
    })?;
    let (mut weights, mut pack_ms) = (Vec::new(), 0.0);
    let (steps, program, kernels, cranelift_ms) = rayon::in_place_scope(|scope| {
        scope.spawn(|_| {
            let start = Instant::now();
            // A step of one layer keeps its packed vector as it is: copying
            // VGG16's first dense layer (411 MB) would double its peak.
            weights = (sources.par_iter())
                .map(|parts| {
                    (parts.iter().map(Source::pack))
                        .reduce(|mut all, next| {
                            all.extend_from_slice(&next);
                            all
                        })
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>();
            pack_ms = start.elapsed().as_secs_f64() * 1e3;
        });
        let start = Instant::now();
        let steps = (lowered.iter())
            .map(|step| compile_step(graph, params, step, &mut jit))
            .collect::<Result<Vec<_>>>()?;
        let kernels = jit.compiled();
        let program = jit.finish_on(threads).map_err(whole)?;
        Ok::<_, Error>((steps, program, kernels, start.elapsed().as_secs_f64() * 1e3))
    })?;
    let mut steps = (steps.into_iter().zip(weights).zip(lowered))
        .map(|((mut lowering, weights), step)| {
            if let (Lowering::Kernel(compiled), LoweredStep::Kernel(step)) = (&mut lowering, step) {
                if weights.len() != compiled.lengths.weights {
                    return Err(internal(
                        graph,
                        step.parts[0].layer,
                        InternalError::Broken("packed weights do not match the kernel"),
                    ));
                }
                compiled.weights = weights;
            }
            Ok(lowering)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut own = steps.split_off(images).into_iter();
    let batch = (batch.iter())
        .map(|k| k.as_ref().and_then(|_| own.next()))
        .collect();
    Ok(Compiled {
        program: Arc::new(program),
        steps,
        batch,
        kernels,
        compile_ms: start.elapsed().as_secs_f64() * 1e3,
        phases: Phases {
            pack_ms,
            cranelift_ms,
        },
    })
}

/// One layer's weights to pack: by `kernel`'s layout, each output channel's
/// times its `scale` if a bn is folded in.
struct Source<'p> {
    kernel: &'p Kernel,
    weight: &'p [f32],
    scale: Option<&'p [f64]>,
}

impl Source<'_> {
    /// The packed weights. A convolution's (and a dense layer's) blocks are
    /// independent and packed on every core, each thread first touching
    /// the fresh pages it writes (VGG16's first dense layer alone is 411
    /// MB). Transparent huge pages (`madvise(MADV_HUGEPAGE)`) were tried
    /// and made VGG16's packing four times slower on a host whose THP
    /// defrag compacts memory on fault.
    fn pack(&self) -> Vec<f32> {
        match self.kernel {
            Kernel::Conv(spec) => {
                let mut packed = vec![0.0; spec.lengths().weights];
                (packed
                    .par_chunks_exact_mut(spec.packed_block_len())
                    .enumerate())
                .for_each(|(b, block)| spec.pack_block(self.weight, self.scale, b, block));
                packed
            }
            kernel => kernel.pack_weights(self.weight, self.scale),
        }
    }
}

/// The weights of `step`'s weighted layers, as packing reads them: the
/// copy in `params`, or the tensor in `file` and the factors of the bn
/// folded into it.
fn sources<'p>(
    graph: &Graph,
    params: &'p Params,
    file: &'p Weights,
    step: &'p KernelStep,
) -> Result<Vec<Source<'p>>> {
    let weighted = step.parts.iter().filter(|part| part.weighted);
    weighted
        .map(|part| {
            let LayerParams::Linear { weight, .. } = &params.layers[part.layer.index()] else {
                let kind = graph.node(part.layer).op.kind();
                return Err(internal(
                    graph,
                    part.layer,
                    InternalError::NoParams { kind },
                ));
            };
            let (weight, scale) = match weight {
                Weight::Loaded(weight) => (weight.as_slice(), None),
                Weight::InFile { tensor, scale } => file
                    .get(tensor)
                    .map(|t| (t.data.as_slice(), scale.as_deref()))
                    .ok_or_else(|| {
                        let tensor = tensor.to_string();
                        internal(graph, part.layer, InternalError::NoTensor { tensor })
                    })?,
            };
            Ok(Source {
                kernel: &part.kernel,
                weight,
                scale,
            })
        })
        .collect()
}

/// `part`'s per-channel vectors as its kernel reads them: its bias (zeros
/// if it has none), then a scale and a shift per unfolded bn and the slopes
/// per prelu, in the epilogue's order.
fn pack_vectors(graph: &Graph, params: &Params, part: &Part, packed: &mut Vec<f32>) -> Result<()> {
    let bias = match &params.layers[part.layer.index()] {
        LayerParams::Linear {
            bias: Some(bias), ..
        } => bias.clone(),
        _ => vec![0.0; part.channels],
    };
    packed.extend(part.kernel.pack_vector(&bias));
    for id in &part.vectors {
        let broken = || {
            internal(
                graph,
                *id,
                InternalError::Broken("an epilogue's per-channel vectors without its parameters"),
            )
        };
        let layer = &params.layers[id.index()];
        match &graph.node(*id).op {
            Op::BatchNorm { eps } => {
                let LayerParams::BatchNorm {
                    gamma,
                    beta,
                    mean,
                    var,
                } = layer
                else {
                    return Err(broken());
                };
                let affine = BatchNorm::new(gamma, beta, mean, var, *eps);
                let (scale, shift) =
                    unfolded_affine(&affine).map_err(|e| internal(graph, *id, e))?;
                packed.extend(part.kernel.pack_vector(&scale));
                packed.extend(part.kernel.pack_vector(&shift));
            }
            Op::PRelu => {
                let LayerParams::PRelu { slopes } = layer else {
                    return Err(broken());
                };
                packed.extend(part.kernel.pack_vector(slopes));
            }
            Op::Affine { .. } => {
                let LayerParams::Affine { scale, shift } = layer else {
                    return Err(broken());
                };
                packed.extend(part.kernel.pack_vector(scale));
                packed.extend(part.kernel.pack_vector(shift));
            }
            Op::Input
            | Op::Conv2d(_)
            | Op::Dense(_)
            | Op::Pool2d(_)
            | Op::GlobalPool(_)
            | Op::Flatten
            | Op::Activation(_)
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Identity
            | Op::Lrn(_)
            | Op::Concat
            | Op::Add
            | Op::Scale
            | Op::Shuffle { .. }
            | Op::Slice { .. }
            | Op::Upsample(_)
            | Op::Deconv(_)
            | Op::LayerNorm { .. } => return Err(broken()),
        }
    }
    Ok(())
}

/// Compiles one lowered step's kernels and packs its per-channel vectors;
/// its weights are packed elsewhere (`weights` is empty until [`compile`]
/// moves them in).
fn compile_step(
    graph: &Graph,
    params: &Params,
    step: &LoweredStep,
    jit: &mut Jit,
) -> Result<Lowering> {
    let step = match step {
        LoweredStep::Reference(reason) => return Ok(Lowering::Reference(*reason)),
        LoweredStep::InNext => return Ok(Lowering::InNext),
        LoweredStep::Concat(branches) => {
            return (branches.iter())
                .map(|branch| {
                    let kernel =
                        jit.compile(&Kernel::Concat(branch.spec.clone()))
                            .map_err(|e| Error::Internal {
                                layer: graph.name.to_string(),
                                source: e.into(),
                            })?;
                    Ok(Branch {
                        input: branch.input,
                        kernel,
                        spec: branch.spec.clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Lowering::Concat)
        }
        LoweredStep::Kernel(step) => step,
    };
    let layer = step.parts[0].layer;
    let lengths = step.kernel.lengths();
    let mut packed = Vec::with_capacity(lengths.params);
    for part in &step.parts {
        pack_vectors(graph, params, part, &mut packed)?;
    }
    if packed.len() != lengths.params {
        return Err(internal(
            graph,
            layer,
            InternalError::Broken("packed params do not match the kernel"),
        ));
    }
    let id = jit
        .compile(&step.kernel)
        .map_err(|e| internal(graph, layer, e))?;
    let then = match &step.then {
        Some(spec) => Some((
            jit.compile(&Kernel::Softmax(spec.clone()))
                .map_err(|e| internal(graph, layer, e))?,
            spec.clone(),
        )),
        None => None,
    };
    Ok(Lowering::Kernel(Box::new(Lowered {
        kernel: id,
        lengths,
        weights: Vec::new(),
        params: packed,
        operands: step.operands,
        then,
        rest: step.rest.clone(),
        work: step.work,
        algorithm: step.kernel.algorithm(),
        tile: step.kernel.tile(),
    })))
}

/// The scale and the shift vectors of a bn the JIT applies as an affine
/// epilogue (one not folded into the layer before it): [`BatchNorm::affine`]'s,
/// each rounded once to `f32`.
fn unfolded_affine(bn: &BatchNorm<'_>) -> std::result::Result<(Vec<f32>, Vec<f32>), KernelError> {
    Ok(bn.affine()?.into_iter().map(Affine::to_f32).unzip())
}

/// Raw pointers of one kernel call, shareable across the threads that split its rows.
#[derive(Clone, Copy)]
struct Call {
    input: *const f32,
    weights: *const f32,
    params: *const f32,
    extra: *const f32,
    output: *mut f32,
    scratch: *mut f32,
}

// SAFETY: the pointers come from slices that outlive the parallel section
// (`run` borrows them for its whole duration), and the threads write disjoint
// output rows and disjoint scratch, so sharing the pointers across threads
// creates no data race.
unsafe impl Send for Call {}
// SAFETY: as for `Send`.
unsafe impl Sync for Call {}

impl Call {
    /// Calls `function` on output rows `[begin, end)` with the `part`-th
    /// scratch, the scratches `scratch` elements apart.
    ///
    /// # Safety
    /// Every buffer must be at least as long as the kernel's `Lengths` (the
    /// scratch `(part + 1) * scratch` elements), and no other call may write
    /// the same rows or the same part at the same time.
    unsafe fn rows(self, function: KernelFn, part: usize, scratch: usize, begin: i64, end: i64) {
        // SAFETY: the caller's contract, and codegen's: the kernel touches only
        // those lengths and only output rows in [begin, end).
        unsafe {
            function(
                self.input,
                self.weights,
                self.params,
                self.extra,
                self.output,
                self.scratch.add(part * scratch),
                begin,
                end,
            )
        }
    }
}

/// Runs a lowered step: checks every buffer against the kernel's lengths,
/// then calls the kernel over its rows, split across `team`'s threads, and
/// the softmax after it, if any, in place on `output`.
pub fn run(
    program: &Program,
    lowered: &Lowered,
    input: &[f32],
    extra: Extra<'_>,
    output: &mut [f32],
    scratch: &mut [f32],
    team: Option<&Team>,
) -> std::result::Result<(), CallError> {
    let buffers = Buffers {
        input,
        weights: &lowered.weights,
        params: &lowered.params,
        extra,
        output: &mut *output,
        scratch,
    };
    call_kernel(
        program,
        lowered.kernel,
        &lowered.lengths,
        buffers,
        lowered.team(team),
    )?;
    run_then(program, lowered, output, team)
}

/// Runs a lowered step's softmax, if it has one, in place on `output` (one
/// image's): what [`run`] does after the step's kernel.
pub fn run_then(
    program: &Program,
    lowered: &Lowered,
    output: &mut [f32],
    team: Option<&Team>,
) -> std::result::Result<(), CallError> {
    if let Some((kernel, spec)) = &lowered.then {
        let in_place = Buffers {
            input: &[],
            weights: &[],
            params: &[],
            extra: Extra::NONE,
            output,
            scratch: &mut [],
        };
        let lengths = spec.lengths();
        let team = split(work(0, &lengths), team);
        call_kernel(program, *kernel, &lengths, in_place, team)?;
    }
    Ok(())
}

/// Copies one concat branch, `input`, into its channel slice of `output`,
/// its pixels split across `team`'s threads if it is large enough.
pub fn run_branch(
    program: &Program,
    branch: &Branch,
    input: &[f32],
    output: &mut [f32],
    team: Option<&Team>,
) -> std::result::Result<(), CallError> {
    let buffers = Buffers {
        input,
        weights: &[],
        params: &[],
        extra: Extra::NONE,
        output,
        scratch: &mut [],
    };
    let lengths = branch.spec.lengths();
    let team = split(work(0, &lengths), team);
    call_kernel(program, branch.kernel, &lengths, buffers, team)
}

/// A buffer shorter than a compiled kernel's [`Lengths`] require: the call
/// is refused before the kernel runs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the kernel's {buffer} needs {needs} elements, has {has}")]
pub struct CallError {
    /// Which buffer (`input`, `weights`, `params`, `extra`, `output`, `scratch`).
    pub buffer: &'static str,
    /// The elements the kernel's contract requires.
    pub needs: usize,
    /// The elements given.
    pub has: usize,
}

/// Where a kernel call's `extra` operand, a residual's shortcut, is.
#[derive(Clone, Copy, Debug)]
pub enum Extra<'a> {
    /// In a buffer of its own (empty if the kernel reads none).
    Buffer(&'a [f32]),
    /// In the output, which holds the shortcut when the call starts: a step
    /// written over the shortcut it adds (`plan::Step::over`). The kernel
    /// reads each element before it writes the output element there
    /// (codegen's kernel contract).
    Output,
}

impl Extra<'_> {
    /// No `extra` operand.
    pub const NONE: Extra<'static> = Extra::Buffer(&[]);
}

/// The buffers of one kernel call.
pub struct Buffers<'a> {
    /// The input tensor.
    pub input: &'a [f32],
    /// Packed weights.
    pub weights: &'a [f32],
    /// Packed per-channel vectors.
    pub params: &'a [f32],
    /// A residual's shortcut.
    pub extra: Extra<'a>,
    /// The output tensor.
    pub output: &'a mut [f32],
    /// Working memory: [`scratch_len`] for the team the kernel runs on.
    pub scratch: &'a mut [f32],
}

/// How many calls [`call_kernel`] splits a kernel with `lengths` into on
/// `team`: one per thread, each a contiguous share of the rows. The caller
/// always runs part 0 ([`Team::run`]), so on two threads each thread writes
/// the same half of every step's output and the next step finds most of
/// its half in its own core's cache. Four parts a thread, claimed by
/// whichever thread came first, balanced the load better but sent the data
/// from core to core: on two threads (AMD EPYC Zen 5, interleaved A/B)
/// EfficientNet-B0 3.41-3.51 ms against 3.11-3.38 in one part a thread,
/// its steps' medians summing to 3.62 against 3.06 ms, the depthwise steps
/// 1.2-1.4x faster and even the squeeze-excite steps left on one thread
/// faster. A kernel with scratch recomputes its intermediate at each seam,
/// a second reason for few parts.
fn parts(lengths: &Lengths, team: Option<&Team>) -> usize {
    match team {
        Some(team) if lengths.rows > 1 => team.threads().min(lengths.rows),
        _ => 1,
    }
}

/// The scratch, in `f32`s, that [`call_kernel`] needs for a kernel with
/// `lengths` on `team`: one per call it splits the rows into.
pub fn scratch_len(lengths: &Lengths, team: Option<&Team>) -> usize {
    scratch_stride(lengths).saturating_mul(parts(lengths, team))
}

/// The `f32`s from one call's scratch to the next's: its own, rounded up to
/// a cache line, and one line more, so that two threads never write one
/// cache line whatever the buffer's alignment (an lrn rewrites its few
/// hundred bytes of scratch at every pixel: sharing a line made two threads
/// slower than one).
fn scratch_stride(lengths: &Lengths) -> usize {
    const LINE: usize = 16;
    match lengths.scratch {
        0 => 0,
        n => n.div_ceil(LINE) * LINE + LINE,
    }
}

/// Calls compiled kernel `kernel` on `buffers`, after checking each against
/// `lengths` (the kernel's contract), its rows split across `team`'s threads.
pub fn call_kernel(
    program: &Program,
    kernel: KernelId,
    lengths: &Lengths,
    buffers: Buffers<'_>,
    team: Option<&Team>,
) -> std::result::Result<(), CallError> {
    let l = lengths;
    let Buffers {
        input,
        weights,
        params,
        extra,
        output,
        scratch,
    } = buffers;
    let team = team.filter(|team| parts(l, Some(team)) > 1);
    let extra_len = match extra {
        Extra::Buffer(extra) => extra.len(),
        Extra::Output => output.len(),
    };
    let short = [
        ("input", input.len(), l.input),
        ("weights", weights.len(), l.weights),
        ("params", params.len(), l.params),
        ("extra", extra_len, l.extra),
        ("output", output.len(), l.output),
        ("scratch", scratch.len(), scratch_len(l, team)),
    ]
    .into_iter()
    .find(|(_, have, need)| have < need);
    if let Some((buffer, has, needs)) = short {
        return Err(CallError { buffer, needs, has });
    }
    let output = output.as_mut_ptr();
    let call = Call {
        input: input.as_ptr(),
        weights: weights.as_ptr(),
        params: params.as_ptr(),
        extra: match extra {
            _ if l.extra == 0 => std::ptr::null(),
            Extra::Buffer(extra) => extra.as_ptr(),
            Extra::Output => output.cast_const(),
        },
        output,
        scratch: scratch.as_mut_ptr(),
    };
    let function = program.function(kernel);
    let rows = l.rows as i64;
    let per_call = scratch_stride(l);
    let run_rows = move |part: usize, begin: i64, end: i64| {
        // SAFETY: every buffer was checked above to be at least as long as the
        // kernel's `Lengths` require, the scratch for every part; the row
        // ranges and parts given here are disjoint; `program` outlives the
        // calls. Where `extra` is the output, a call reads it only at the
        // elements of its own rows, each before writing it (codegen's kernel
        // contract), so no other call's writes race with its reads.
        unsafe { call.rows(function, part, per_call, begin, end) }
    };
    match team {
        Some(team) => {
            let parts = parts(l, Some(team));
            let share = |p: usize| rows * p as i64 / parts as i64;
            team.run(parts, |p| run_rows(p, share(p), share(p + 1)));
        }
        None => run_rows(0, 0, rows),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{call_kernel, unfolded_affine, Buffers, CallError, Extra};
    use crate::error::Error;
    use crate::ir::NodeId;
    use crate::params::{fold_batch_norm, LayerParams, Weight};
    use crate::reference::{batch_norm_in_place, BatchNorm};
    use cnnjit_codegen::softmax::SoftmaxSpec;
    use cnnjit_codegen::{Jit, Kernel};
    use proptest::prelude::*;

    #[test]
    fn a_short_buffer_is_a_typed_error_kept_as_the_source() {
        let kernel = Kernel::Softmax(SoftmaxSpec {
            pixels: 2,
            channels: 3,
        });
        let mut jit = Jit::new().expect("a JIT for this host");
        let id = jit.compile(&kernel).expect("the kernel compiles");
        let program = jit.finish().expect("the program links");
        let mut output = [0.0f32; 5];
        let buffers = Buffers {
            input: &[],
            weights: &[],
            params: &[],
            extra: Extra::NONE,
            output: &mut output,
            scratch: &mut [],
        };
        let err = call_kernel(&program, id, &kernel.lengths(), buffers, None).unwrap_err();
        let expected = CallError {
            buffer: "output",
            needs: 6,
            has: 5,
        };
        assert_eq!(err, expected);
        assert_eq!(
            err.to_string(),
            "the kernel's output needs 6 elements, has 5"
        );
        let err = Error::Internal {
            layer: "softmax".into(),
            source: err.into(),
        };
        let source = std::error::Error::source(&err).expect("the call's error");
        assert_eq!(source.to_string(), expected.to_string());
        assert_eq!(
            err.to_string(),
            "internal error in layer `softmax`: the kernel's output needs 6 elements, has 5"
        );
    }

    /// `got` is `expected` rounded once to `f32`: within half the spacing of
    /// `f32` values where it lies, plus `slack` for the `f64` rounding of
    /// terms of magnitude up to `terms` (PyTorch's order of operations
    /// against the rewritten formula's).
    fn rounded_once(got: f32, expected: f64, terms: f64) -> bool {
        let near = (expected.abs() as f32).max(f32::MIN_POSITIVE);
        let half_spacing = f64::from(near - near.next_down()) / 2.0;
        (f64::from(got) - expected).abs() <= half_spacing + terms * 1e-13
    }

    proptest! {
        /// The fold, the JIT's unfolded affine and the reference kernel all
        /// get one (scale, shift) per channel: PyTorch's
        /// `y = (x - mean) / sqrt(var + eps) * gamma + beta`, as `y = x * scale + y(0)`,
        /// computed in `f64` and rounded once where `f32` is needed.
        #[test]
        fn the_users_of_a_batch_norm_get_one_scale_and_shift(
            channels in prop::collection::vec(
                (-4.0f32..4.0, -4.0f32..4.0, -4.0f32..4.0, 0.0f32..4.0),
                1..8,
            ),
            eps in prop::sample::select(vec![1e-5f32, 1e-3, 0.5]),
        ) {
            let gamma: Vec<f32> = channels.iter().map(|c| c.0).collect();
            let beta: Vec<f32> = channels.iter().map(|c| c.1).collect();
            let mean: Vec<f32> = channels.iter().map(|c| c.2).collect();
            let var: Vec<f32> = channels.iter().map(|c| c.3).collect();
            let bn = BatchNorm {
                gamma: &gamma,
                beta: &beta,
                running_mean: &mean,
                running_var: &var,
                eps,
            };
            let pytorch = |x: f64, c: usize| {
                (x - f64::from(mean[c])) / (f64::from(var[c]) + f64::from(eps)).sqrt()
                    * f64::from(gamma[c])
                    + f64::from(beta[c])
            };
            let scale: Vec<f64> = (0..gamma.len()).map(|c| pytorch(1.0, c) - pytorch(0.0, c)).collect();
            let shift: Vec<f64> = (0..gamma.len()).map(|c| pytorch(0.0, c)).collect();
            // Magnitudes of the terms each shift is summed from.
            let terms: Vec<f64> = (0..gamma.len())
                .map(|c| (f64::from(mean[c]) * scale[c]).abs() + f64::from(beta[c]).abs() + 1.0)
                .collect();

            let (jit_scale, jit_shift) = unfolded_affine(&bn).unwrap();

            let mut layers = vec![
                LayerParams::None,
                LayerParams::Linear {
                    weight: Weight::InFile { tensor: "conv.weight".into(), scale: None },
                    bias: None,
                },
                LayerParams::BatchNorm {
                    gamma: gamma.clone(),
                    beta: beta.clone(),
                    mean: mean.clone(),
                    var: var.clone(),
                },
            ];
            fold_batch_norm(&mut layers, NodeId(1), NodeId(2), eps).unwrap();
            let LayerParams::Linear {
                weight: Weight::InFile { scale: Some(fold_scale), .. },
                bias: Some(fold_shift),
            } = &layers[1]
            else {
                panic!("not folded: {:?}", layers[1]);
            };

            // Pixel 0 of zeros gives the shift; pixel 1 of ones, scale + shift.
            let mut reference = vec![0.0; gamma.len()];
            reference.extend(std::iter::repeat_n(1.0, gamma.len()));
            batch_norm_in_place(&bn, &mut reference).unwrap();
            let (ref_shift, ref_at_one) = reference.split_at(gamma.len());

            for c in 0..gamma.len() {
                prop_assert!((fold_scale[c] - scale[c]).abs() <= terms[c] * 1e-13,
                    "channel {c}: fold scale {} for {}", fold_scale[c], scale[c]);
                prop_assert!(rounded_once(jit_scale[c], scale[c], terms[c]),
                    "channel {c}: jit scale {} for {}", jit_scale[c], scale[c]);
                prop_assert!(rounded_once(jit_shift[c], shift[c], terms[c]),
                    "channel {c}: jit shift {} for {}", jit_shift[c], shift[c]);
                prop_assert!(rounded_once(fold_shift[c], shift[c], terms[c]),
                    "channel {c}: fold shift {} for {}", fold_shift[c], shift[c]);
                prop_assert!(rounded_once(ref_shift[c], shift[c], terms[c]),
                    "channel {c}: reference shift {} for {}", ref_shift[c], shift[c]);
                prop_assert!(rounded_once(ref_at_one[c], pytorch(1.0, c), terms[c]),
                    "channel {c}: reference y(1) {} for {}", ref_at_one[c], pytorch(1.0, c));
                // One formula: the users agree to the bit.
                prop_assert_eq!(jit_scale[c], fold_scale[c] as f32);
                prop_assert_eq!(jit_shift[c].to_bits(), fold_shift[c].to_bits());
                prop_assert_eq!(jit_shift[c].to_bits(), ref_shift[c].to_bits());
            }
        }
    }
}
