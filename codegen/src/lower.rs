//! One lowering pass: from a graph, its plan and what the code generator
//! can do ([`Capabilities`]) to one [`LoweredStep`] per step of the plan,
//! decided here and only here. [`lower`] is pure: it reads no weights,
//! calls no Cranelift and allocates no buffer, so the runtime, the reports
//! and the tests all see the same decisions.
//!
//! A step lowers to:
//! - a compiled kernel ([`LoweredStep::Kernel`]): its spec, the layers whose
//!   weights and per-channel vectors it packs ([`Part`]), its operands by
//!   name ([`Operands`]: plan values, no positions), the epilogue nodes it
//!   fuses, a softmax run in place after it (`then`), and the epilogue nodes
//!   left to the reference kernels (`rest`). Its epilogue is fused up to the
//!   first node the kernel cannot apply per channel (a softmax, a second
//!   residual add, a bn or prelu past a flatten, whose vectors are per
//!   feature); a bn right after a conv or dense is folded into its
//!   weights ([`plan::folded_bn`]), any other is an affine epilogue, as is
//!   an `affine` layer (its factor and shift), and a
//!   prelu is an epilogue reading its slopes per channel; a pointwise
//!   convolution that is a kernel of its own runs over runs of pixels
//!   spanning image rows ([`ConvSpec::over_pixels`], applied last);
//! - the first half of a separable pair the plan marks (`Step::keeps`) and
//!   the capabilities fuse ([`LoweredStep::InNext`]): the next step's
//!   [`SeparableSpec`] kernel reads this step's input and computes both;
//! - a concat ([`LoweredStep::Concat`]): one copy per input not written in
//!   place, each into its channel slice; its epilogue on the reference kernels;
//! - the reference kernels, with a typed [`FallbackReason`]
//!   ([`LoweredStep::Reference`]).
//!
//! A step whose output the plan makes a slice of a concat's output
//! (`plan::Slice`) gets its kernel's strided form ([`Kernel::sliced`]); a
//! family the capabilities say cannot write one, or a kernel that would leave
//! epilogue nodes to run after it, falls back to the reference kernels. A
//! step the plan writes over its shortcut (`plan::Step::over`) must fuse the
//! add of that shortcut (its `extra`), which every kernel family reads in
//! place (the kernel contract in the crate root), or falls back too.
//!
//! Invariant: any step may lower to [`LoweredStep::Reference`], and the
//! runtime then runs it with its weights loaded; only the layers of
//! [`LoweredStep::packed_layers`] are packed for compiled kernels.
//!
//! The planner's questions ([`Fusion`]) are answered by [`Capabilities::fusion`];
//! the build-time plan uses [`Fusion::DEFAULT`], which the tests of
//! `codegen/tests/it/lower.rs` check the kernel families do.

use super::choice;
use super::concat::ConcatSpec;
use super::conv::ConvSpec;
use super::depthwise::DepthwiseSpec;
use super::elementwise::{Binary, ElementwiseSpec};
use super::lrn::{self, LrnSpec};
use super::native;
use super::pool::PoolSpec;
use super::separable::{Half, SeparableSpec};
use super::softmax::SoftmaxSpec;
use super::{ChannelSlice, Epilogue, Kernel, Lengths};
use cnnjit_ir::plan::{self, Fusion, Plan, Step, ValueId};
use cnnjit_ir::{Graph, NodeId, Op};

/// What the code generator can do, as far as lowering is concerned: the
/// host's features and the options that bear on lowering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The native GEMM tile convolutions call, if any: an ISA the host has
    /// ([`native::Isa::detected`]), none for Cranelift's own tile.
    pub native: Option<native::Isa>,
    /// The largest Winograd output tile the cost model may choose (4, 2, or
    /// 0 for none).
    pub winograd_tile: usize,
    /// What the kernel families fuse: slices they write, pairs they run as one.
    pub fusion: Fusion,
    /// The L2 of one of the host's cores in bytes, if known
    /// ([`crate::host::l2_bytes`]): how Winograd kernels cut their tiles into
    /// runs ([`crate::winograd::WinogradSpec::runs`]).
    pub l2_bytes: Option<usize>,
}

impl Capabilities {
    /// cnnjit's code generator on this host: the native tile of `native`
    /// where the host has that ISA (none otherwise), Winograd tiles up to
    /// `winograd_tile`, separable pairs fused into one kernel if
    /// `fuse_separable`, and the host's L2.
    pub fn host(
        native: Option<native::Isa>,
        winograd_tile: usize,
        fuse_separable: bool,
    ) -> Capabilities {
        Capabilities {
            native: native.filter(|isa| isa.detected()),
            winograd_tile,
            fusion: Fusion {
                depthwise_pairs: fuse_separable,
                row_pairs: fuse_separable,
                ..Fusion::DEFAULT
            },
            l2_bytes: crate::host::l2_bytes(),
        }
    }
}

/// How one step of the plan runs.
#[derive(Clone, Debug, PartialEq)]
pub enum LoweredStep {
    /// On a compiled kernel (boxed: it is large beside the other variants).
    Kernel(Box<KernelStep>),
    /// Not at all: the next step's kernel computes it too (a fused separable
    /// pair), never writing its output.
    InNext,
    /// A concat: one compiled copy per input not written in place, in
    /// order; the epilogue on the reference kernels.
    Concat(Vec<Branch>),
    /// On the reference kernels, for this reason.
    Reference(FallbackReason),
}

/// Why a step runs on the reference kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FallbackReason {
    /// No kernel family computes the anchor's op (an activation, bn, ...
    /// that could not run in place after a kernel, the input).
    #[error("no JIT kernel for {kind}")]
    NoFamily {
        /// The anchor's kind.
        kind: &'static str,
    },
    /// An lrn whose base `k + alpha / size * sum` could be zero or
    /// negative: the reference kernel keeps PyTorch's answer.
    #[error("no JIT kernel for lrn: {why}")]
    LrnBase {
        /// Which parameter (`lrn::unsupported`).
        why: &'static str,
    },
    /// The family has no kernel for these shapes (a pool of a flat tensor,
    /// a scale whose factor fits neither the tensor nor its channels, an lrn
    /// of no channels).
    #[error("no JIT kernel for {kind} of these shapes")]
    Shapes {
        /// The anchor's kind.
        kind: &'static str,
    },
    /// The plan makes the step's output a slice of a concat's output, which
    /// the family cannot write.
    #[error("the {kind} kernel cannot write its slice of the concat's output")]
    SlicedOutput {
        /// The anchor's kind.
        kind: &'static str,
    },
    /// The plan writes the step's output over the shortcut its add reads
    /// (`plan::Step::over`), but its kernel would not add that shortcut.
    #[error("the {kind} kernel cannot add the shortcut its output is written over")]
    OverShortcut {
        /// The anchor's kind.
        kind: &'static str,
    },
    /// The plan makes the step's output a slice of a concat's output, but
    /// its kernel would leave epilogue nodes to run after it.
    #[error("the {kind} kernel writing a slice of the concat's output cannot fuse its epilogue")]
    SlicedEpilogue {
        /// The anchor's kind.
        kind: &'static str,
    },
}

/// The values a compiled kernel reads and writes, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operands {
    /// What the kernel reads as `input`: the anchor's first input, or for a
    /// fused pair the first half's input (the value the step keeps).
    pub input: ValueId,
    /// What it reads as `extra`: a fused residual's shortcut, or a binary
    /// anchor's second operand.
    pub extra: Option<ValueId>,
    /// What it writes (a slice's parent, whole, if the value is a slice).
    pub output: ValueId,
}

/// One layer a compiled kernel packs: its weights (if it has any) by
/// `kernel`'s layout, then its bias (zeros if none) and, per node of
/// `vectors` in order, a scale and a shift (an unfolded bn) or the slopes (a
/// prelu), each as `kernel` reads a per-channel vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// The layer (a step's anchor).
    pub layer: NodeId,
    /// The spec it packs by (a fused pair's half packs by its own).
    pub kernel: Kernel,
    /// Whether it has weights (a conv or dense).
    pub weighted: bool,
    /// Its output channels: the length of its bias.
    pub channels: usize,
    /// The epilogue nodes with per-channel vectors (bns applied as an affine
    /// epilogue, prelus), in order.
    pub vectors: Vec<NodeId>,
}

/// A step lowered to a compiled kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelStep {
    /// The kernel.
    pub kernel: Kernel,
    /// What it packs, in order: one layer, or a fused pair's two.
    pub parts: Vec<Part>,
    /// Its operands.
    pub operands: Operands,
    /// The epilogue nodes it applies (with `then`), in order.
    pub fused: Vec<NodeId>,
    /// A softmax the epilogue ends in, run in place on the output after the kernel.
    pub then: Option<SoftmaxSpec>,
    /// The epilogue nodes left to the reference kernels, in order.
    pub rest: Vec<NodeId>,
    /// Its [`work`], to decide whether to split it across threads.
    pub work: u64,
}

/// One concat input copied by a compiled kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Branch {
    /// The value it copies.
    pub input: ValueId,
    /// Its spec (the branch's channel slice).
    pub spec: ConcatSpec,
}

impl LoweredStep {
    /// The conv and dense layers whose weights a compiled kernel packs: the
    /// only ones whose weights the reference kernels never read.
    pub fn packed_layers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let parts = match self {
            LoweredStep::Kernel(step) => step.parts.as_slice(),
            LoweredStep::InNext | LoweredStep::Concat(_) | LoweredStep::Reference(_) => &[],
        };
        parts.iter().filter(|p| p.weighted).map(|p| p.layer)
    }
}

/// The work of touching one element of a kernel's buffers, in MACs: a
/// memory-bound kernel takes about this long per element as the native
/// direct kernel per MAC (one thread, AVX-512 host, 2026-12-06: AlexNet's
/// pool1, 360k elements in 0.32 ms, 48 MACs' time each at 54 MACs/ns;
/// MobileNetV1's global pool, 51k elements in 23 us, 24).
pub const ELEMENT_WORK: u64 = 32;

/// A kernel's work, to decide whether to split it across threads: its
/// multiply-accumulates (`macs`, from the cost model), or, for a kernel bound
/// by memory (a pool, an add, a concat, an lrn, a softmax, a dense layer's
/// weights), [`ELEMENT_WORK`] per element its buffers hold, whichever is
/// more: both in units of about 1/50 ns of one thread's time.
pub fn work(macs: u64, lengths: &Lengths) -> u64 {
    let elements = [
        lengths.input,
        lengths.weights,
        lengths.params,
        lengths.extra,
        lengths.output,
    ]
    .iter()
    .map(|&n| n as u64)
    .fold(0u64, u64::saturating_add);
    macs.max(elements.saturating_mul(ELEMENT_WORK))
}

/// Lowers every step of `plan` (module doc), convolutions by the static
/// cost model.
pub fn lower(graph: &Graph, plan: &Plan, caps: &Capabilities) -> Vec<LoweredStep> {
    lower_tuned(graph, plan, caps, &choice::Tuned::new())
}

/// [`lower`], each convolution by the pick `tuned` measured for it where it
/// has one ([`choice::tuned_kernel`]).
pub fn lower_tuned(
    graph: &Graph,
    plan: &Plan,
    caps: &Capabilities,
    tuned: &choice::Tuned,
) -> Vec<LoweredStep> {
    let mut steps: Vec<LoweredStep> = (plan.steps.iter())
        .map(|step| lower_step(graph, plan, caps, tuned, step))
        .collect();
    for s in 1..steps.len() {
        let Some(kept) = plan.steps[s].keeps else {
            continue;
        };
        if let (LoweredStep::Kernel(first), LoweredStep::Kernel(second)) =
            (&steps[s - 1], &steps[s])
        {
            if let Some(pair) = pair(caps, first, second, kept) {
                steps[s] = LoweredStep::Kernel(Box::new(pair));
                steps[s - 1] = LoweredStep::InNext;
            }
        }
    }
    // A convolution on its own (not a pair's half: the pair's ring defines
    // its rows) runs a pointwise one over runs of pixels.
    for step in &mut steps {
        if let LoweredStep::Kernel(k) = step {
            if let Kernel::Conv(spec) = &k.kernel {
                k.kernel = Kernel::Conv(spec.clone().over_pixels());
                k.parts[0].kernel = k.kernel.clone();
            }
        }
    }
    steps
}

/// Two lowered steps as one separable kernel reading `kept` (the first's
/// input), or `None` if the capabilities do not fuse them or they do not
/// make a pair.
fn pair(
    caps: &Capabilities,
    first: &KernelStep,
    second: &KernelStep,
    kept: ValueId,
) -> Option<KernelStep> {
    if !first.rest.is_empty() || first.operands.extra.is_some() || first.then.is_some() {
        return None;
    }
    let head = match &first.kernel {
        Kernel::Depthwise(spec) if caps.fusion.depthwise_pairs => Half::Depthwise(spec.clone()),
        Kernel::Conv(spec) if caps.fusion.row_pairs => Half::Conv(spec.clone()),
        _ => return None,
    };
    let tail = match &second.kernel {
        Kernel::Depthwise(spec) => Half::Depthwise(spec.clone()),
        Kernel::Conv(spec) => Half::Conv(spec.clone()),
        _ => return None,
    };
    let spec = SeparableSpec::new(head, tail)?;
    Some(KernelStep {
        kernel: Kernel::Separable(spec),
        parts: [first.parts.as_slice(), &second.parts].concat(),
        operands: Operands {
            input: kept,
            ..second.operands
        },
        fused: second.fused.clone(),
        then: second.then.clone(),
        rest: second.rest.clone(),
        work: first.work.saturating_add(second.work),
    })
}

/// A concat step's inputs not written in place, each a copy into its
/// channel slice.
fn concat(graph: &Graph, plan: &Plan, step: &Step) -> LoweredStep {
    let anchor = graph.node(step.nodes[0]);
    let total = anchor.output.channels() as usize;
    let pixels = anchor.output.len() as usize / total;
    let mut offset = 0;
    let mut branches = Vec::with_capacity(anchor.inputs.len());
    for id in anchor.inputs.iter() {
        let channels = graph.node(*id).output.channels() as usize;
        let input = plan.node_values[id.index()];
        if plan.values[input.0 as usize].slice.is_none() {
            let spec = ConcatSpec {
                pixels,
                channels,
                offset,
                total,
            };
            branches.push(Branch { input, spec });
        }
        offset += channels;
    }
    LoweredStep::Concat(branches)
}

/// Lowers one step, a separable pair's halves on their own.
fn lower_step(
    graph: &Graph,
    plan: &Plan,
    caps: &Capabilities,
    tuned: &choice::Tuned,
    step: &Step,
) -> LoweredStep {
    let anchor = graph.node(step.nodes[0]);
    let kind = anchor.op.kind();
    let value = |id: NodeId| plan.node_values[id.index()];
    // A binary element-wise anchor reads its second operand as `extra`, so
    // its epilogue fuses no add of its own.
    let binary = match anchor.op {
        Op::Add => Some(Binary::Add),
        Op::Scale => Some(Binary::Mul),
        Op::Input
        | Op::Conv2d(_)
        | Op::Dense(_)
        | Op::Pool2d(_)
        | Op::GlobalPool(_)
        | Op::Flatten
        | Op::BatchNorm { .. }
        | Op::Activation(_)
        | Op::PRelu
        | Op::Softmax
        | Op::Dropout { .. }
        | Op::Identity
        | Op::Lrn(_)
        | Op::Concat
        | Op::Shuffle { .. }
        | Op::Slice { .. }
        | Op::Upsample(_)
        | Op::Deconv(_)
        | Op::LayerNorm { .. }
        | Op::Affine { .. } => None,
    };
    let mut extra = binary.map(|_| value(anchor.inputs[1]));
    // The fusable prefix of the epilogue.
    let folded = plan::folded_bn(graph, step);
    let mut epilogue = Vec::new();
    let mut vectors = Vec::new();
    let mut fused = 1;
    for (i, id) in step.nodes.iter().enumerate().skip(1) {
        let node = graph.node(*id);
        // A kernel reads per-channel vectors by its anchor's channels; past
        // a flatten a bn's or prelu's vectors have one value per feature.
        let per_anchor_channel = node.output.channels() == anchor.output.channels();
        match &node.op {
            Op::BatchNorm { .. } if folded == Some(*id) => {}
            Op::Dropout { .. } | Op::Identity | Op::Flatten => {}
            Op::BatchNorm { .. } | Op::PRelu | Op::Affine { .. } if !per_anchor_channel => break,
            Op::BatchNorm { .. } | Op::Affine { .. } => {
                vectors.push(*id);
                epilogue.push(Epilogue::Affine);
            }
            Op::PRelu => {
                vectors.push(*id);
                epilogue.push(Epilogue::PRelu);
            }
            Op::Activation(a) => epilogue.push(Epilogue::Act(*a)),
            Op::Add if extra.is_none() => {
                let shortcut = plan::operands(node, step.nodes[i - 1]).next();
                extra = Some(value(shortcut.expect("an add has two inputs")));
                epilogue.push(Epilogue::Add);
            }
            Op::Input
            | Op::Conv2d(_)
            | Op::Dense(_)
            | Op::Pool2d(_)
            | Op::GlobalPool(_)
            | Op::Softmax
            | Op::Lrn(_)
            | Op::Concat
            | Op::Add
            | Op::Scale
            | Op::Shuffle { .. }
            | Op::Slice { .. }
            | Op::Upsample(_)
            | Op::Deconv(_)
            | Op::LayerNorm { .. } => break,
        }
        fused = i + 1;
    }
    let input = graph.node(anchor.inputs[0]).output;
    let shapes = FallbackReason::Shapes { kind };
    let kernel = match &anchor.op {
        Op::Conv2d(conv) => Ok(
            match DepthwiseSpec::of_conv(conv, input, anchor.output, epilogue.clone(), caps.native)
            {
                Some(spec) => Kernel::Depthwise(spec),
                None => choice::tuned_kernel(
                    ConvSpec::of_conv(conv, input, anchor.output, epilogue, caps.native),
                    caps,
                    tuned,
                ),
            },
        ),
        Op::Dense(dense) => Ok(Kernel::Conv(ConvSpec::of_dense(
            dense,
            input.len() as usize,
            epilogue,
            caps.native,
        ))),
        Op::Pool2d(pool) => PoolSpec::of_pool(pool, input, anchor.output, epilogue)
            .map(Kernel::Pool)
            .ok_or(shapes),
        Op::GlobalPool(pool) => PoolSpec::of_global(*pool, input, epilogue)
            .map(Kernel::Pool)
            .ok_or(shapes),
        Op::Lrn(op) => match lrn::unsupported(op) {
            Some(why) => Err(FallbackReason::LrnBase { why }),
            None => LrnSpec::new(op, input, epilogue)
                .map(Kernel::Lrn)
                .ok_or(shapes),
        },
        Op::Add | Op::Scale => {
            let other = graph.node(anchor.inputs[1]).output;
            binary
                .and_then(|op| ElementwiseSpec::new(op, input, other, epilogue))
                .map(Kernel::Elementwise)
                .ok_or(shapes)
        }
        Op::Concat => return concat(graph, plan, step),
        Op::Input
        | Op::Flatten
        | Op::BatchNorm { .. }
        | Op::Activation(_)
        | Op::PRelu
        | Op::Softmax
        | Op::Dropout { .. }
        | Op::Identity
        | Op::Shuffle { .. }
        | Op::Slice { .. }
        | Op::Upsample(_)
        | Op::Deconv(_)
        | Op::LayerNorm { .. }
        | Op::Affine { .. } => Err(FallbackReason::NoFamily { kind }),
    };
    // A slice of a concat's output is written in place, by the strided form
    // of the kernel, which must then be the whole step.
    let kernel = kernel.and_then(|kernel| match plan.values[step.output.0 as usize].slice {
        None => Ok(kernel),
        Some(_) if fused < step.nodes.len() => Err(FallbackReason::SlicedEpilogue { kind }),
        Some(slice) if caps.fusion.writes_slice(&anchor.op) => kernel
            .sliced(ChannelSlice {
                first: slice.first as usize,
                total: slice.total as usize,
            })
            .ok_or(FallbackReason::SlicedOutput { kind }),
        Some(_) => Err(FallbackReason::SlicedOutput { kind }),
    });
    // An output written over its shortcut needs the kernel to read the
    // shortcut there, element by element before writing it: to add it.
    let kernel = kernel.and_then(|kernel| match step.over {
        Some(over) if extra != Some(over) => Err(FallbackReason::OverShortcut { kind }),
        _ => Ok(kernel),
    });
    let kernel = match kernel {
        Ok(kernel) => kernel,
        Err(reason) => return LoweredStep::Reference(reason),
    };
    // A softmax right after the fused prefix runs in place after the kernel.
    let then = step
        .nodes
        .get(fused)
        .filter(|id| graph.node(**id).op == Op::Softmax)
        .map(|_| {
            fused += 1;
            let out = anchor.output;
            SoftmaxSpec {
                pixels: (out.len() / u64::from(out.channels())) as usize,
                channels: out.channels() as usize,
            }
        });
    let macs = cnnjit_ir::cost::layer_cost(&anchor.op, &[input], anchor.output)
        .map_or(u64::MAX, |c| c.macs);
    LoweredStep::Kernel(Box::new(KernelStep {
        work: work(macs, &kernel.lengths()),
        parts: vec![Part {
            layer: step.nodes[0],
            kernel: kernel.clone(),
            weighted: matches!(anchor.op, Op::Conv2d(_) | Op::Dense(_)),
            channels: anchor.output.channels() as usize,
            vectors,
        }],
        kernel,
        operands: Operands {
            input: value(anchor.inputs[0]),
            extra,
            output: step.output,
        },
        fused: step.nodes[1..fused].to_vec(),
        then,
        rest: step.nodes[fused..].to_vec(),
    }))
}
