//! A batch run as a batch: [`Model::forward_batch`](crate::Model::forward_batch)'s
//! engine on the JIT.
//!
//! How a batch runs is lowering's decision ([`BatchPlan`], made by
//! `cnnjit_codegen::batch::plan_batch`); this module carries it out. A
//! batch runs in chunks of at most [`BATCH_CHUNK`] images. Where the plan
//! ends in a dense tail that the lowering runs batched ([`Tail`],
//! [`BatchPlan::tail`]), every image of a chunk runs the steps before
//! the tail and its input to the tail is copied into the tail's first
//! buffer; then each dense step runs once for the whole chunk
//! ([`DenseBatch`]: each block of output channels' weights read once for
//! every image, the blocks split across the threads), its softmax, if any,
//! image by image after it. A chunk of one image runs as [`exec::run_on`]
//! does on the batch plan's kernels.
//!
//! The images of a chunk (their steps before the tail, or all of them
//! without a tail) run one after another, each kernel's rows split across
//! the model's threads as at batch 1, or, where [`across_images`] says so,
//! shared out among the threads, each running whole images with no
//! synchronisation between steps in arenas and working memory of its own (a
//! *lane*; the model's own serves one thread), a thread taking the next
//! group of images when it is done. A group holds up to
//! [`BatchPlan::group`] images, each in an arena of its lane (the model's
//! with arenas beside it), and runs ([`exec::run_group`]) the steps
//! [`BatchPlan::step_by_step`] marks step by step, so their weights are
//! read from memory once per group, and the others image by image.
//!
//! Outputs are bitwise those of each image run alone through the batch
//! plan's kernels, by default the image's own, so its `forward`
//! ([`DenseBatch`]'s module doc: the same chain of FMAs and the same
//! epilogue; a kernel's output does not depend on how its rows are split),
//! so also the same for any thread count and any chunking
//! (`tests/it/batch.rs`).
//!
//! The tail's buffers and the lanes are allocated on the first batch that
//! needs them, weighed against what the model's memory budget had left
//! when it was built ([`crate::memory`]): [`crate::Model::batch_bytes`]
//! says how much before.

use crate::error::{Error, InternalError, Result};
use crate::exec::{self, Arena, Engine, Kernels};
use crate::jit::{CallError, Lowering};
use crate::memory::Budget;
use crate::team::Team;
use cnnjit_codegen::batch::BatchPlan;
use cnnjit_codegen::lower::LoweredStep;
use cnnjit_codegen::native_dense_batch::{DenseBatch, Pointers};
use cnnjit_codegen::Kernel;
use cnnjit_ir::batch::{DenseTail, BATCH_CHUNK};
use std::sync::{Mutex, PoisonError};

/// How a model runs batches: its dense tail, if the JIT compiled one, and
/// the lanes of the threads that run whole images.
#[derive(Debug, Default)]
pub struct Batch {
    /// The plan's dense tail, run once per chunk.
    pub tail: Option<Tail>,
    /// Whether the threads share out a chunk's images ([`across_images`]).
    pub across: bool,
    /// Per step, whether a group of images runs it step by step
    /// ([`BatchPlan::step_by_step`]).
    step_by_step: Vec<bool>,
    /// The arenas and working memory of every thread but the caller's,
    /// allocated on the first batch that shares out its images.
    lanes: Vec<Mutex<Lane>>,
    /// The caller's arenas beside the model's, for a group of images.
    extra: Vec<Arena>,
    /// Images in a thread's group ([`BatchPlan::group`]; 0 as 1).
    group: usize,
}

impl Clone for Batch {
    fn clone(&self) -> Batch {
        // A clone allocates lanes of its own when it first needs them.
        Batch {
            tail: self.tail.clone(),
            across: self.across,
            step_by_step: self.step_by_step.clone(),
            lanes: Vec::new(),
            extra: Vec::new(),
            group: self.group,
        }
    }
}

/// One thread's memory for a group of whole images: an arena per image.
#[derive(Debug)]
struct Lane {
    arena: Arena,
    extra: Vec<Arena>,
    /// 64-byte aligned, as the model's.
    scratch: Arena,
}

/// Whether a model of `engine` shares a batch's images out among its
/// threads rather than splitting each kernel's rows: whenever it has more
/// than one thread. Measured on this project's 2-core AVX-512 host (two
/// threads, batch 32, images/s, the two ways interleaved, load 4 to 6 from
/// other builds): MobileNetV1 89.0 / 89.2 / 56.0 across images against
/// 67.1 / 76.4 / 54.2 splitting rows, ResNet-50 14.0 / 8.5 / 8.9 against
/// 12.7 / 8.5 / 8.4, AlexNet 55.8 against 47.2: never slower, since a
/// thread running whole images waits for no other between steps, where
/// small layers (7x7, 14x14) leave split rows unbalanced. It costs an arena
/// and working memory per thread but one; where the budget cannot give
/// them, the batch splits rows instead ([`run`]).
pub fn across_images(engine: &Engine) -> bool {
    threads(engine) > 1
}

/// The model's threads.
fn threads(engine: &Engine) -> usize {
    engine.team.as_ref().map_or(1, |t| t.threads())
}

impl Batch {
    /// How a model of `engine`, its steps lowered as `lowered`, runs batches
    /// as `plan` says: its tail and groups only where the JIT compiled the
    /// steps (the plan weighs their packed weights), else one image a group.
    pub fn new(engine: &Engine, lowered: &[LoweredStep], plan: BatchPlan) -> Batch {
        let compiled = engine.compiled.is_some();
        Batch {
            tail: (plan.tail).and_then(|tail| Tail::new(engine, lowered, tail)),
            across: across_images(engine),
            step_by_step: plan.step_by_step,
            lanes: Vec::new(),
            extra: Vec::new(),
            group: if compiled { plan.group } else { 1 },
        }
    }

    /// Images in a thread's group.
    fn group(&self) -> usize {
        self.group.max(1)
    }

    /// Bytes a batch of `batch` images takes beside the weights: the
    /// model's arena (`arena` bytes), the tail's buffers for a chunk, and,
    /// where threads share out the images, a group's arenas beside the
    /// model's (one fewer than its images) and a group's
    /// arenas and working memory (`scratch` bytes) per thread but the first.
    pub fn bytes(&self, engine: &Engine, (arena, scratch): (u64, u64), batch: usize) -> u64 {
        let per_image = self.tail.as_ref().map_or(0, |t| t.tail.bytes_per_image());
        let bytes = cnnjit_ir::batch::peak_inference_bytes(arena, per_image, batch as u64);
        let lanes = self.lanes_for(engine, batch.min(BATCH_CHUNK as usize)) as u64;
        let group = match lanes {
            0 => 0,
            _ => self.group() as u64,
        };
        let lane = arena.saturating_mul(group).saturating_add(scratch);
        let extra = arena.saturating_mul(group.saturating_sub(1));
        bytes.saturating_add(lanes.saturating_mul(lane).saturating_add(extra))
    }

    /// Lanes beside the caller's that a chunk of `images` images runs on.
    fn lanes_for(&self, engine: &Engine, images: usize) -> usize {
        match self.across && images > 1 {
            true => threads(engine).min(images) - 1,
            false => 0,
        }
    }

    /// Makes at least `lanes` lanes, taking their memory from `budget`.
    fn reserve_lanes(&mut self, engine: &Engine, lanes: usize, budget: &mut Budget) -> Result<()> {
        let net = &engine.graph.name;
        let arena = |budget: &mut Budget| {
            Arena::new(engine.plan.arena_bytes, budget, || {
                format!("the arena of a batch's thread of net `{net}`")
            })
        };
        let group = self.group();
        while self.lanes.len() < lanes {
            let first = arena(budget)?;
            let extra = (1..group).map(|_| arena(budget)).collect::<Result<_>>()?;
            let scratch = Arena::new(engine.scratch_len() as u64 * 4, budget, || {
                format!("the working memory of a batch's thread of net `{net}`")
            })?;
            self.lanes.push(Mutex::new(Lane {
                arena: first,
                extra,
                scratch,
            }));
        }
        while lanes > 0 && self.extra.len() + 1 < group {
            self.extra.push(arena(budget)?);
        }
        Ok(())
    }
}

/// A plan's dense tail, every step of it compiled to a [`DenseBatch`].
#[derive(Clone, Debug)]
pub struct Tail {
    /// Where it starts, what it reads and its buffers' sizes.
    pub tail: DenseTail,
    /// Per step of the tail, its batch kernel.
    steps: Vec<DenseBatch>,
    /// The two buffers, for `images` images each (empty until a batch).
    buffers: [Vec<f32>; 2],
    images: usize,
}

impl Tail {
    /// The dense tail `tail` of `engine`'s plan, each step's batched kernel
    /// made from its lowered spec (`None` if one has none, which
    /// `plan_batch` rules out).
    pub fn new(engine: &Engine, lowered: &[LoweredStep], tail: DenseTail) -> Option<Tail> {
        let compiled = engine.compiled.as_ref()?;
        let steps = (tail.first..engine.plan.steps.len())
            .map(|i| match (&compiled.steps[i], &lowered[i]) {
                (Lowering::Kernel(compiled), LoweredStep::Kernel(step))
                    if compiled.rest.is_empty() =>
                {
                    match &step.kernel {
                        Kernel::Conv(spec) => DenseBatch::new(spec),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Tail {
            tail,
            steps,
            buffers: [Vec::new(), Vec::new()],
            images: 0,
        })
    }

    /// Makes the buffers hold `images` images, taking what they grow by
    /// from `budget`.
    fn reserve(&mut self, images: usize, budget: &mut Budget, net: &str) -> Result<()> {
        if images <= self.images {
            return Ok(());
        }
        for (buffer, per_image) in self.buffers.iter_mut().zip(self.tail.buffers) {
            let len = (per_image as usize).saturating_mul(images);
            *buffer = budget.zeroed(len, || {
                format!("the dense layers' buffers of net `{net}` for a batch of {images} images")
            })?;
        }
        self.images = images;
        Ok(())
    }
}

/// Runs `inputs` (whole images, one after another) into `outputs` as
/// `batch` says, in chunks of at most [`BATCH_CHUNK`] images; the tail's
/// buffers and the lanes are taken from `budget` when a chunk first needs
/// them.
#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: &Engine,
    batch: &mut Batch,
    budget: &mut Budget,
    arena: &mut Arena,
    scratch: &mut [f32],
    inputs: &[f32],
    outputs: &mut [f32],
    (n_in, n_out): (usize, usize),
) -> Result<()> {
    let chunk = BATCH_CHUNK as usize;
    let (n_in, n_out) = (n_in.max(1), n_out.max(1));
    for (x, y) in inputs
        .chunks(chunk * n_in)
        .zip(outputs.chunks_mut(chunk * n_out))
    {
        let images = x.len() / n_in;
        if images <= 1 {
            exec::run_on(engine, Kernels::Batch, arena, scratch, x, y)?;
            continue;
        }
        let lanes = batch.lanes_for(engine, images);
        match batch.reserve_lanes(engine, lanes, budget) {
            // Without memory for the lanes, the threads split rows.
            Err(Error::OutOfMemory { .. }) => batch.across = false,
            result => result?,
        }
        let lanes = batch.lanes_for(engine, images).min(batch.lanes.len());
        let group = match lanes {
            0 => 1,
            _ => batch.group().min(batch.extra.len() + 1),
        };
        let Batch {
            tail,
            lanes: all,
            extra,
            step_by_step,
            ..
        } = batch;
        let step_by_step = &step_by_step[..];
        let own = Mutex::new(Own {
            arena: &mut *arena,
            extra: &mut extra[..group - 1],
            scratch: &mut *scratch,
        });
        let lanes = Lanes {
            own: &own,
            others: &all[..lanes],
            group,
        };
        match tail {
            Some(tail) => {
                tail.reserve(images, budget, &engine.graph.name)?;
                run_chunk(engine, tail, &lanes, step_by_step, x, y, images)?;
            }
            None => {
                let rows = Rows::new(y, n_out);
                each_group(engine, &lanes, x, images, |lane, i, x| {
                    // SAFETY: each image is run once, by one thread.
                    let y = unsafe { rows.get(i, lane.extra.len() + 1) };
                    let Using {
                        arena,
                        extra,
                        scratch,
                        team,
                    } = lane;
                    let steps = 0..engine.plan.steps.len();
                    let group = (arena, extra);
                    exec::run_group(
                        engine,
                        team,
                        group,
                        scratch,
                        x,
                        Some(y),
                        steps,
                        step_by_step,
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// The caller's arena, its arenas beside it for a group and its working
/// memory, borrowed as a lane.
struct Own<'a> {
    arena: &'a mut Arena,
    extra: &'a mut [Arena],
    scratch: &'a mut [f32],
}

/// The lanes a chunk runs on: the caller's, then the others', and how many
/// images each runs as a group.
struct Lanes<'a, 'b> {
    own: &'a Mutex<Own<'b>>,
    others: &'a [Mutex<Lane>],
    group: usize,
}

/// What a group of images runs with: an arena per image (the first, then
/// the others), working memory, and the threads its kernels split rows
/// across (none where threads run whole images).
struct Using<'a, 't> {
    arena: &'a mut Arena,
    extra: &'a mut [Arena],
    scratch: &'a mut [f32],
    team: Option<&'t Team>,
}

/// Calls `f` once for each group of images of `inputs` (`f(lane, index of
/// its first image, its images)`): image by image on the caller's lane with
/// the model's threads splitting each kernel, or, with other lanes, groups
/// of `lanes.group` images shared out among the threads, each group on
/// whichever lane is free.
fn each_group(
    engine: &Engine,
    lanes: &Lanes<'_, '_>,
    inputs: &[f32],
    images: usize,
    f: impl Fn(Using<'_, '_>, usize, &[f32]) -> Result<()> + Sync,
) -> Result<()> {
    let n_in = inputs.len() / images;
    let team = engine.team.as_deref();
    if lanes.others.is_empty() {
        let mut own = lanes.own.lock().unwrap_or_else(PoisonError::into_inner);
        let Own { arena, scratch, .. } = &mut *own;
        for (i, x) in inputs.chunks_exact(n_in).enumerate() {
            let using = Using {
                arena,
                extra: &mut [],
                scratch,
                team,
            };
            f(using, i, x)?;
        }
        return Ok(());
    }
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    // No thread is left without a group where the images could go round.
    let size = lanes.group.min(images.div_ceil(lanes.others.len() + 1));
    let run = |p: usize| {
        let (first, end) = (p * size, ((p + 1) * size).min(images));
        let x = &inputs[first * n_in..end * n_in];
        let n = end - first;
        let on = |arena: &mut Arena, extra: &mut [Arena], scratch: &mut [f32]| {
            let using = Using {
                arena,
                extra: &mut extra[..n - 1],
                scratch,
                team: None,
            };
            f(using, first, x)
        };
        // At most one call per thread runs at once, and there are as many
        // lanes as threads: one of them is free.
        let result = loop {
            if let Ok(mut own) = lanes.own.try_lock() {
                let Own {
                    arena,
                    extra,
                    scratch,
                } = &mut *own;
                break on(arena, extra, scratch);
            }
            if let Some(mut lane) = lanes.others.iter().find_map(|l| l.try_lock().ok()) {
                let Lane {
                    arena,
                    extra,
                    scratch,
                } = &mut *lane;
                break on(arena, extra, scratch.as_mut_slice());
            }
            std::hint::spin_loop();
        };
        if let Err(e) = result {
            failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(e);
        }
    };
    let groups = images.div_ceil(size);
    match team {
        Some(team) => team.run(groups, run),
        None => (0..groups).for_each(run),
    }
    failed
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .map_or(Ok(()), Err)
}

/// A buffer of equal rows (an image's output or tail input each) that
/// threads write, each its own rows.
struct Rows {
    start: *mut f32,
    len: usize,
    row: usize,
}

// SAFETY: `Rows::get` hands out disjoint rows of a buffer that outlives
// every use (its callers hold its borrow), one per image, each to one thread.
unsafe impl Sync for Rows {}

impl Rows {
    fn new(buffer: &mut [f32], row: usize) -> Rows {
        Rows {
            start: buffer.as_mut_ptr(),
            len: buffer.len(),
            row,
        }
    }

    /// Rows `i..i + n` (cut at the buffer's end).
    ///
    /// # Safety
    /// No other reference to these rows is alive while the result is, and
    /// the buffer outlives it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, i: usize, n: usize) -> &mut [f32] {
        let start = (i * self.row).min(self.len);
        let len = (n * self.row).min(self.len - start);
        // SAFETY: `start + len <= len` of the buffer; the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.start.add(start), len) }
    }
}

fn run_chunk(
    engine: &Engine,
    tail: &mut Tail,
    lanes: &Lanes<'_, '_>,
    step_by_step: &[bool],
    inputs: &[f32],
    outputs: &mut [f32],
    images: usize,
) -> Result<()> {
    let Tail {
        tail: shape,
        steps,
        buffers: [first, second],
        ..
    } = tail;
    let from_image = shape.input.0 == 0;
    let held = Rows::new(first, shape.buffers[0] as usize);
    each_group(engine, lanes, inputs, images, |lane, i, x| {
        let Using {
            arena,
            extra,
            scratch,
            team,
        } = lane;
        let steps = 0..shape.first.min(engine.plan.steps.len().saturating_sub(1));
        exec::run_group(
            engine,
            team,
            (&mut *arena, &mut *extra),
            scratch,
            x,
            None,
            steps,
            step_by_step,
        )?;
        if !from_image {
            let n_in = x.len() / (extra.len() + 1);
            let arenas = std::iter::once(&*arena).chain(extra.iter());
            for (g, (arena, x)) in arenas.zip(x.chunks_exact(n_in)).enumerate() {
                let value = exec::value_of(engine, arena, x, shape.input)?;
                // SAFETY: each image is run once, by one thread.
                let row = unsafe { held.get(i + g, 1) };
                row.get_mut(..value.len())
                    .ok_or_else(|| broken(engine))?
                    .copy_from_slice(value);
            }
        }
        Ok(())
    })?;
    let compiled = engine.compiled.as_ref().ok_or_else(|| broken(engine))?;
    let team = engine.team.as_deref();
    let last = steps.len() - 1;
    for (p, dense) in steps.iter().enumerate() {
        let Lowering::Kernel(lowered) = &compiled.steps[shape.first + p] else {
            return Err(broken(engine));
        };
        let lowered: &crate::jit::Lowered = lowered;
        let (depth, channels) = (dense.depth() * images, dense.channels() * images);
        let (even, odd) = (&mut first[..], &mut second[..]);
        let (read, write) = if p % 2 == 0 { (even, odd) } else { (odd, even) };
        let input: &[f32] = if p == 0 && from_image {
            inputs
        } else {
            &read[..depth]
        };
        let output = if p == last {
            &mut *outputs
        } else {
            &mut write[..channels]
        };
        let fail = |e: CallError| Error::Internal {
            layer: engine
                .graph
                .node(engine.plan.steps[shape.first + p].nodes[0])
                .name
                .to_string(),
            source: e.into(),
        };
        call(
            dense,
            images,
            input,
            &lowered.weights,
            &lowered.params,
            output,
            team,
            lowered.work,
        )
        .map_err(fail)?;
        for y in output.chunks_exact_mut(dense.channels()) {
            crate::jit::run_then(&compiled.program, lowered, y, team).map_err(fail)?;
        }
    }
    Ok(())
}

fn broken(engine: &Engine) -> Error {
    Error::Internal {
        layer: engine.graph.name.to_string(),
        source: InternalError::Broken("a batch's dense tail is not compiled"),
    }
}

/// The pointers of one batched call, shared by the threads that split its
/// blocks.
#[derive(Clone, Copy)]
struct Shared(Pointers);

// SAFETY: the pointers are only dereferenced by `DenseBatch::blocks` on
// disjoint ranges of blocks, each writing only its own blocks' channels
// (its contract), while `call` holds the borrows they came from.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`: shared reads, disjoint writes.
unsafe impl Sync for Shared {}

/// Runs `dense` over `images` images after checking every buffer against
/// its lengths, its blocks split across `team` where the chunk's work
/// (`work` per image) reaches `jit::PARALLEL_WORK`.
#[allow(clippy::too_many_arguments)]
fn call(
    dense: &DenseBatch,
    images: usize,
    input: &[f32],
    weights: &[f32],
    params: &[f32],
    output: &mut [f32],
    team: Option<&Team>,
    work: u64,
) -> std::result::Result<(), CallError> {
    let l = dense.lengths(images);
    let short = [
        ("input", input.len(), l.input),
        ("weights", weights.len(), l.weights),
        ("params", params.len(), l.params),
        ("extra", 0, l.extra),
        ("output", output.len(), l.output),
    ]
    .into_iter()
    .find(|(_, have, need)| have < need);
    if let Some((buffer, has, needs)) = short {
        return Err(CallError { buffer, needs, has });
    }
    let shared = Shared(Pointers {
        input: input.as_ptr(),
        weights: weights.as_ptr(),
        params: params.as_ptr(),
        extra: std::ptr::null(),
        output: output.as_mut_ptr(),
    });
    let images = images.min(cnnjit_codegen::native_dense_batch::MAX_IMAGES);
    let blocks = l.blocks;
    let shared = &shared;
    let run = |begin: usize, end: usize| {
        let Shared(ptrs) = *shared;
        // SAFETY: every buffer was checked above to hold what `lengths`
        // asks for `images` images; the ranges of blocks are disjoint.
        unsafe { dense.blocks(images, ptrs, begin, end) }
    };
    let team = team.filter(|t| t.threads() > 1 && blocks > 1);
    match team.filter(|_| work.saturating_mul(images as u64) >= crate::jit::PARALLEL_WORK) {
        Some(team) => {
            let parts = (4 * team.threads()).min(blocks);
            team.run(parts, |p| run(blocks * p / parts, blocks * (p + 1) / parts));
        }
        None => run(0, blocks),
    }
    Ok(())
}
