//! Lowering's decisions for a batch of images ([`BatchPlan`]): which dense
//! tail runs once per chunk on the batched dense kernel, the kernel each
//! step runs in a batch where it differs from the image's, how many images
//! a thread runs as a group, and which steps a group runs step by step
//! rather than image by image. [`plan_batch`] makes them from the graph,
//! its plan and the lowered steps alone, as [`lower`](crate::lower::lower)
//! makes a step's kernel: it is pure, and the runtime's batch executor
//! reads the answers as data and decides nothing.
//!
//! Invariant: every decision but the batch's kernels is a loop order, or a
//! kernel that sums each output in the order the image's own kernel does
//! (the batched dense kernel, `native_dense_batch`). The batch's kernels
//! ([`BatchPlan::kernels`]) are the image's unless the model asks for
//! [`BatchKernels::Fastest`], so by default a batch's outputs are each
//! image's `forward` (the image's plan), bitwise. With `Fastest` a step may
//! run another kernel ([`choice::batch_kernel`]: Winograd where the weights
//! stay warm from one image to the next), which computes the same
//! convolution in another order: a batch's outputs are then each image's
//! run through the batch plan alone, bitwise, and within rounding of its
//! `forward`.

use crate::choice::{self, MEASURED};
use crate::lower::{KernelStep, LoweredStep, Part};
use crate::native_dense_batch::DenseBatch;
use crate::Kernel;
use cnnjit_ir::batch::{dense_tail, DenseTail};
use cnnjit_ir::plan::{Plan, Step, ValueId};
use cnnjit_ir::Graph;

/// How many images a thread running whole images runs as a group, where
/// the weights of the steps it runs per image outgrow the outer caches
/// ([`BatchPlan::group`]): each step that [`BatchPlan::step_by_step`] marks
/// runs on every image of the group before the next, so it reads its
/// weights from memory once per group rather than once per image. Measured
/// on this project's 2-core AVX-512 host (two threads, batch 32, images/s,
/// interleaved, builds of other jobs paused, medians of 3 runs): ResNet-50
/// 62.0 / 64.2 / 65.5 at groups of 1 / 4 / 8 (other runs: 62.4 / 66.5 at
/// 1 / 4; 65.5 / 64.1 / 63.2 at 4 / 8 / 16), VGG16 28.0 / 32.2 at 1 / 4; 4
/// has most of it for half the memory of 8.
pub const GROUP: usize = 4;

/// Which kernels a batch of two or more images may run: the image's own
/// (the default, so a batch is bitwise each image's `forward`), or, where
/// it measures faster, a kernel of another algorithm, within its rounding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BatchKernels {
    /// Each step runs the kernel it runs for one image: a batch's outputs
    /// are bitwise each image's `forward`.
    #[default]
    Image,
    /// A step may run a kernel of another algorithm where a batch runs it
    /// faster ([`choice::batch_kernel`]: today Winograd F(2x2) on
    /// AlexNet's 13x13 3x3 layers on a native tile), within that
    /// algorithm's rounding of `forward`'s (`winograd`'s "Numerics").
    Fastest,
}

/// How a batch runs, decided once per model.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchPlan {
    /// The plan's dense tail, if every step of it lowered to a native GEMV
    /// with its whole epilogue fused (a [`DenseBatch`] each): it runs once
    /// per chunk of images, the steps before it once per image.
    pub tail: Option<DenseTail>,
    /// Per step of the plan, the kernel a batch runs in place of the
    /// image's, where they differ ([`choice::batch_kernel`], with
    /// [`BatchKernels::Fastest`] only; `None` everywhere with
    /// [`BatchKernels::Image`]); the same step otherwise (its parts,
    /// operands and epilogue).
    pub kernels: Vec<Option<KernelStep>>,
    /// Images a thread runs as a group: [`GROUP`] where the packed weights
    /// of the steps before the tail outgrow the outer caches
    /// ([`CostModel::outer_cache_bytes`](crate::choice::CostModel::outer_cache_bytes)),
    /// so an image run alone reads them from memory; else 1, each image's
    /// values staying in cache from one step to the next while the weights
    /// come from the outer caches either way (MobileNetV1, 17 MB: 376
    /// images/s at groups of 1 against 339 at 4, batch 32, two threads,
    /// medians of 5; AlexNet's 9 MB of convolutions: 226 against 224).
    pub group: usize,
    /// Per step of the plan, whether a group runs it step by step (on every
    /// image before the next step) rather than image by image: a compiled
    /// kernel whose packed weights are longer than the values it writes and
    /// reads and those that live across it (a residual block's shortcut),
    /// deep convolutions on small images, so its weights come from memory
    /// once per group and from the cache for its other images, where the
    /// others keep each image's values in cache from step to step. The
    /// values live across a step count because running it step by step
    /// leaves the group's other images' in the cache's way too: without them
    /// ResNet-50's 28x28 F(4x4) layers ran step by step, their 2.4 MB of
    /// weights against 0.8 MB of values and 1.6 MB of shortcut, and the
    /// shortcut's residual adds read it from memory (two threads, batch 32,
    /// interleaved, medians of 3, three runs: 62.2 -> 64.8, 61.1 -> 63.6 and
    /// 58.6 -> 62.2 images/s).
    pub step_by_step: Vec<bool>,
}

/// The batch decisions for `graph`'s `plan`, its steps lowered as `steps`,
/// a batch's kernels as `allowed` says, Winograd tiles no larger than
/// `largest_tile` (module doc).
pub fn plan_batch(
    graph: &Graph,
    plan: &Plan,
    steps: &[LoweredStep],
    allowed: BatchKernels,
    largest_tile: usize,
) -> BatchPlan {
    let tail = dense_tail(graph, plan).filter(|tail| steps[tail.first..].iter().all(batched));
    let first = tail.as_ref().map_or(steps.len(), |t| t.first);
    let kernels: Vec<Option<KernelStep>> = (steps.iter().enumerate())
        .map(|(i, step)| match step {
            // A step of one layer, which packs by the step's kernel.
            LoweredStep::Kernel(k)
                if allowed == BatchKernels::Fastest && i < first && k.parts.len() == 1 =>
            {
                let kernel = choice::batch_kernel(&k.kernel, largest_tile)?;
                let part = Part {
                    kernel: kernel.clone(),
                    ..k.parts[0].clone()
                };
                Some(KernelStep {
                    kernel,
                    parts: vec![part],
                    ..(**k).clone()
                })
            }
            LoweredStep::Kernel(_)
            | LoweredStep::InNext
            | LoweredStep::Concat(_)
            | LoweredStep::Reference(_) => None,
        })
        .collect();
    let packed = |i: usize| match &kernels[i] {
        Some(k) => k.kernel.lengths().weights,
        None => packed_weights(&steps[i]),
    };
    let floats: usize = (0..first).map(packed).sum();
    let group = match floats.saturating_mul(4) > MEASURED.outer_cache_bytes {
        true => GROUP,
        false => 1,
    };
    let across = live_across(plan);
    let step_by_step = (plan.steps.iter().enumerate())
        .map(|(i, step)| packed(i) > values(plan, step) + across[i])
        .collect();
    BatchPlan {
        tail,
        kernels,
        group,
        step_by_step,
    }
}

/// Whether a step of the dense tail runs batched: a native GEMV that leaves
/// nothing of its epilogue to the reference kernels.
fn batched(step: &LoweredStep) -> bool {
    match step {
        LoweredStep::Kernel(k) if k.rest.is_empty() => match &k.kernel {
            Kernel::Conv(spec) => DenseBatch::new(spec).is_some(),
            _ => false,
        },
        LoweredStep::Kernel(_)
        | LoweredStep::InNext
        | LoweredStep::Concat(_)
        | LoweredStep::Reference(_) => false,
    }
}

/// The `f32`s a step's compiled kernel packs as weights (0 for any other).
fn packed_weights(step: &LoweredStep) -> usize {
    match step {
        LoweredStep::Kernel(k) => k.kernel.lengths().weights,
        LoweredStep::InNext | LoweredStep::Concat(_) | LoweredStep::Reference(_) => 0,
    }
}

/// The `f32`s of the arena a step writes and reads: its output (a slice's
/// whole parent), its inputs and the value it keeps (a slice as nothing:
/// its concat finds it in place; the shortcut its output is written over
/// as the output).
fn values(plan: &Plan, step: &Step) -> usize {
    let len = |v: ValueId| plan.values[v.0 as usize].len as usize;
    let output = match plan.values[step.output.0 as usize].slice {
        Some(slice) => len(slice.of),
        None => len(step.output),
    };
    let inputs = (step.inputs.iter().chain(&step.keeps))
        .filter(|v| plan.values[v.0 as usize].slice.is_none() && step.over != Some(**v))
        .map(|v| len(*v));
    output + inputs.sum::<usize>()
}

/// Per step of `plan`, the `f32`s of the arena that live across it: values
/// written by an earlier step and read by a later one that the step neither
/// reads nor writes (a slice as its whole parent, which lives from its first
/// slice's step; the image, read from the caller's buffer, as nothing).
fn live_across(plan: &Plan) -> Vec<usize> {
    let memory = |v: ValueId| plan.values[v.0 as usize].slice.map_or(v, |slice| slice.of);
    let mut lives = vec![(usize::MAX, 0); plan.values.len()];
    for (i, step) in plan.steps.iter().enumerate() {
        let born = &mut lives[memory(step.output).0 as usize].0;
        *born = (*born).min(i);
        for v in step.inputs.iter().chain(&step.keeps) {
            let dies = &mut lives[memory(*v).0 as usize].1;
            *dies = (*dies).max(i);
        }
    }
    (plan.steps.iter().enumerate())
        .map(|(i, step)| {
            let touched = |v: usize| {
                let of = |w: &ValueId| memory(*w).0 as usize == v;
                of(&step.output) || step.inputs.iter().chain(&step.keeps).any(of)
            };
            (lives.iter().enumerate())
                .filter(|&(v, &(born, dies))| born < i && i < dies && !touched(v))
                .map(|(v, _)| plan.values[v].len as usize)
                .sum()
        })
        .collect()
}
