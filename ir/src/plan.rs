//! Planning: which nodes run together as one kernel ([`fuse`]), which
//! concat inputs are written straight into the concat's output
//! ([`concat_in_place`]), which steps write their output over the residual
//! shortcut they add ([`shortcut_in_place`]), and where every tensor lives
//! in one arena ([`plan_arena`]).
//!
//! A [`Step`] is one kernel: an anchor node that reads its inputs and writes a
//! fresh tensor, followed by epilogue nodes that transform that tensor in
//! place (bn, activations, softmax, dropout, identity, flatten, and the add of
//! a residual, which also reads its shortcut). A node joins the step before it
//! only when it reads that step's tensor and nothing else reads that tensor,
//! so no value another node needs is ever overwritten. It reads it as its
//! first input, or, an add, as either ([`runs_on`]): a projection shortcut
//! is computed after its block's body, so its step adds the body (its
//! operand, [`operands`]) with the same bits as the body's step would add it.
//!
//! A concat's input may be a [`Slice`] of the concat's output: its step writes
//! its channels straight into their place in every pixel of the output, and
//! the concat copies only its other inputs. A slice has no memory of its own.
//!
//! A step whose epilogue adds a shortcut that no later step reads may write
//! its output over it ([`Step::over`]): the output has no memory of its own
//! either, and the kernel reads each element of the shortcut just before it
//! writes the output element in its place.
//!
//! Invariants of a [`Plan`]:
//! - every node of the graph but the input belongs to exactly one step, and
//!   steps are in graph order;
//! - value 0 is the network's input; the last step's value is the output;
//! - two values whose lifetimes (from the step that writes them to the last
//!   step that reads them; the input from before the first step, the output
//!   to after the last; a concat's output from the first step that writes one
//!   of its slices) overlap never overlap in the arena;
//! - a slice is an input of exactly one step, the concat that writes the
//!   value it is a slice `of`, at its own channels of that concat; it is
//!   written by a step whose anchor [`Plan::fusion`] says writes a slice (a
//!   conv, dwconv or pool by default) and whose epilogue is per channel
//!   (bn, activations, dropout, identity: no shortcut, no softmax), and its
//!   offset is that of the value it is a slice of, which is no slice itself;
//! - a step writes its output over a value only where [`over_shortcut`]
//!   allows (the shortcut of its one add, read by no later step, neither
//!   the network's input nor its output, no slice, one length, an anchor
//!   [`Plan::fusion`] lets add in place), and the output's offset is the
//!   shortcut's;
//! - offsets are multiples of [`ALIGN_ELEMENTS`] (64 bytes), and
//!   [`Plan::arena_bytes`] is the end of the highest value (slices aside): exactly the arena
//!   the runtime allocates, and `PEAK_INFERENCE_BYTES`.
//!
//! [`Plan::verify`] checks them; a broken one is a [`PlanError`] naming the
//! step, node or value and what was expected and found.
//!
//! What a step may fuse beyond running in place is the code generator's to
//! say, not the plan's: [`fuse`], [`concat_in_place`] and
//! [`shortcut_in_place`] ask a [`Fusion`], plain data (which anchors write a
//! channel slice, which separable pairs run as one kernel, which add a
//! shortcut in place), and the plan records the answers it was made with
//! ([`Plan::fusion`]) so that lowering can check its code generator agrees.
//! The `cnn!` macro plans at build time, where no code generator is linked,
//! so [`Fusion::DEFAULT`] holds the answers of cnnjit's own (Cranelift)
//! code generator as data; `codegen::lower`'s tests check that its kernel
//! families do each of them, and [`plan`] uses them, so the runtime's arena
//! is the macro's `PEAK_INFERENCE_BYTES`. A code generator that can do less
//! lowers the steps it cannot serve to the reference kernels, with a reason.

use crate::shape::ShapeError;
use crate::{Graph, Node, NodeId, Op, Shape};

/// Offsets are multiples of this many `f32`s (64 bytes, a cache line and an AVX-512 vector).
pub const ALIGN_ELEMENTS: u64 = 16;

/// The index of a tensor in [`Plan::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// A tensor of one image, placed in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    /// `f32` elements.
    pub len: u64,
    /// Offset in the arena, in `f32` elements; a slice's is that of the value
    /// it is a slice of.
    pub offset: u64,
    /// Where the value lives inside another, if it has no memory of its own.
    pub slice: Option<Slice>,
}

/// A value that lives in a channel slice of another (a concat's input, in
/// the concat's output): channel `c` of pixel `p` is element
/// `p * total + first + c` of value `of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The value it lives in.
    pub of: ValueId,
    /// Its first channel there.
    pub first: u32,
    /// Its channels.
    pub channels: u32,
    /// The channels of `of`: the pixel stride.
    pub total: u32,
}

/// One kernel: an anchor node, then epilogue nodes applied in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The anchor first, then its epilogue, in graph order.
    pub nodes: Vec<NodeId>,
    /// Every value the step reads: the anchor's inputs, then epilogue shortcuts.
    pub inputs: Vec<ValueId>,
    /// The value the step writes.
    pub output: ValueId,
    /// A value the step does not read but keeps live through it: the input of
    /// the step before, when the two form a separable pair: the step before
    /// is a depthwise (multiplier 1) or `1xk` convolution with a per-channel
    /// epilogue, and this one a `1x1` or `kx1` convolution that is the only
    /// reader of its output, and [`Plan::fusion`] runs such a pair as one
    /// kernel, which then never writes over what it reads.
    pub keeps: Option<ValueId>,
    /// The shortcut the step writes its output over, if any
    /// ([`shortcut_in_place`]): the value its residual add reads, which dies
    /// at this step; the output has no memory of its own but that value's.
    /// A kernel reads each shortcut element before it writes the output
    /// element in its place.
    pub over: Option<ValueId>,
}

/// What a code generator can run as one kernel, which the planner asks
/// (module doc): plain data, so a plan made at build time without a code
/// generator uses the same answers ([`Fusion::DEFAULT`]) as the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fusion {
    /// A convolution (direct, depthwise or Winograd) with a per-channel
    /// epilogue can write its output into a channel slice of a concat's output.
    pub conv_writes_slice: bool,
    /// A windowed or global pool with a per-channel epilogue can write its
    /// output into a channel slice of a concat's output.
    pub pool_writes_slice: bool,
    /// A depthwise convolution (multiplier 1) with a per-channel epilogue,
    /// then a convolution one column wide reading it alone, run as one kernel.
    pub depthwise_pairs: bool,
    /// A `1xk` convolution (`k > 1`) with a per-channel epilogue, then a
    /// convolution one column wide reading it alone, run as one kernel. Two
    /// `1x1` convolutions in a row are no such pair: the second reads one
    /// intermediate pixel per output pixel, so fusing saves no recomputation
    /// and only splits the first's GEMM into the second's rows (EfficientNet-B0's
    /// 7x7 projection and head, fused: 2.1 ms; apart: 1.2 ms, one thread).
    pub row_pairs: bool,
    /// A convolution whose epilogue adds a residual's shortcut reads each
    /// element of the shortcut before writing the output element at the same
    /// place, so a shortcut that dies there can lend the output its memory.
    pub conv_adds_in_place: bool,
}

impl Fusion {
    /// What cnnjit's code generator fuses: everything above.
    pub const DEFAULT: Fusion = Fusion {
        conv_writes_slice: true,
        pool_writes_slice: true,
        depthwise_pairs: true,
        row_pairs: true,
        conv_adds_in_place: true,
    };

    /// Nothing: every step writes a tensor of its own, every pair runs apart.
    pub const NONE: Fusion = Fusion {
        conv_writes_slice: false,
        pool_writes_slice: false,
        depthwise_pairs: false,
        row_pairs: false,
        conv_adds_in_place: false,
    };

    /// Whether a step anchored at `op` whose epilogue adds a shortcut can
    /// write its output over that shortcut.
    pub fn adds_in_place(&self, op: &Op) -> bool {
        matches!(op, Op::Conv2d(_)) && self.conv_adds_in_place
    }

    /// Whether a step anchored at `op`, with a per-channel epilogue, can write
    /// a channel slice of a concat's output.
    pub fn writes_slice(&self, op: &Op) -> bool {
        match op {
            Op::Conv2d(_) => self.conv_writes_slice,
            Op::Pool2d(_) | Op::GlobalPool(_) => self.pool_writes_slice,
            Op::Input
            | Op::Dense(_)
            | Op::Flatten
            | Op::BatchNorm { .. }
            | Op::Activation(_)
            | Op::PRelu
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
            | Op::LayerNorm { .. }
            | Op::Affine { .. } => false,
        }
    }
}

/// The bn folded into `step`'s anchor, if any: a bn right after a conv or
/// dense anchor. The weights' loader folds exactly this one, and lowering
/// applies every other bn of the step as an affine epilogue.
pub fn folded_bn(graph: &Graph, step: &Step) -> Option<NodeId> {
    match step.nodes[..] {
        [anchor, bn, ..]
            if matches!(graph.node(anchor).op, Op::Conv2d(_) | Op::Dense(_))
                && matches!(graph.node(bn).op, Op::BatchNorm { .. }) =>
        {
            Some(bn)
        }
        _ => None,
    }
}

/// Whether `op` works per channel and keeps the shape, so that a kernel
/// with a strided output or a fused pair's first half can apply it.
pub fn is_per_channel(op: &Op) -> bool {
    match op {
        Op::BatchNorm { .. }
        | Op::Affine { .. }
        | Op::Activation(_)
        | Op::PRelu
        | Op::Dropout { .. }
        | Op::Identity => true,
        Op::Input
        | Op::Conv2d(_)
        | Op::Dense(_)
        | Op::Pool2d(_)
        | Op::GlobalPool(_)
        | Op::Flatten
        | Op::Softmax
        | Op::Lrn(_)
        | Op::Concat
        | Op::Add
        | Op::Scale
        | Op::Shuffle { .. }
        | Op::Slice { .. }
        | Op::Upsample(_)
        | Op::Deconv(_)
        | Op::LayerNorm { .. } => false,
    }
}

/// The kernels of a network and the layout of its arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Kernels in execution order.
    pub steps: Vec<Step>,
    /// Tensors: value 0 is the input.
    pub values: Vec<Value>,
    /// For every node, the value holding its output.
    pub node_values: Vec<ValueId>,
    /// The arena's size in bytes.
    pub arena_bytes: u64,
    /// The code generator's answers the plan was made with.
    pub fusion: Fusion,
}

/// Whether `op` can run in place on the tensor it reads.
fn is_epilogue(op: &Op) -> bool {
    match op {
        Op::BatchNorm { .. }
        | Op::Affine { .. }
        | Op::Activation(_)
        | Op::PRelu
        | Op::Softmax
        | Op::Dropout { .. }
        | Op::Identity
        | Op::Flatten
        | Op::Add => true,
        Op::Input
        | Op::Conv2d(_)
        | Op::Dense(_)
        | Op::Pool2d(_)
        | Op::GlobalPool(_)
        | Op::Lrn(_)
        | Op::Concat
        | Op::Scale
        | Op::Shuffle { .. }
        | Op::Slice { .. }
        | Op::Upsample(_)
        | Op::Deconv(_)
        | Op::LayerNorm { .. } => false,
    }
}

/// Whether steps `a` then `b` form a separable pair that `fusion` runs as one
/// kernel from `a`'s input to `b`'s output, never writing `a`'s output: `a` is
/// a depthwise convolution (multiplier 1, [`Fusion::depthwise_pairs`]) or a
/// `1xk` convolution with `k > 1` ([`Fusion::row_pairs`]) whose epilogue is per channel
/// (bn, activations), and `b` a convolution with kernels one column wide (a
/// `1x1` or a `kx1`) that is the only reader of `a`'s output. Such a `b` keeps `a`'s input live, so the fused kernel never
/// writes over what it reads; the reference path then holds one more tensor
/// there, which `PEAK_INFERENCE_BYTES` counts.
fn separable(graph: &Graph, fusion: &Fusion, consumers: &[u32], a: &Step, b: &Step) -> bool {
    let anchor = |step: &Step| graph.node(step.nodes[0]);
    let (first, second) = (anchor(a), anchor(b));
    let tail = *a.nodes.last().expect("a step has an anchor");
    let first_fits = match &first.op {
        Op::Conv2d(conv) => {
            let c = first.output.channels();
            let depthwise = conv.groups == c && graph.node(first.inputs[0]).output.channels() == c;
            (depthwise && fusion.depthwise_pairs)
                || (conv.kernel.h == 1 && conv.kernel.w > 1 && conv.groups == 1 && fusion.row_pairs)
        }
        Op::Input
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
        | Op::Add
        | Op::Scale
        | Op::Shuffle { .. }
        | Op::Slice { .. }
        | Op::Upsample(_)
        | Op::Deconv(_)
        | Op::LayerNorm { .. }
        | Op::Affine { .. } => false,
    };
    let per_channel = a.nodes[1..]
        .iter()
        .all(|id| is_per_channel(&graph.node(*id).op));
    first_fits
        && per_channel
        && matches!(&second.op, Op::Conv2d(conv) if conv.kernel.w == 1)
        && second.inputs.as_ref() == [tail]
        && consumers[tail.index()] == 1
}

/// Whether epilogue node `node` can transform `after`'s tensor in place: it
/// reads it first, or it is an add that reads it second. An add gives the
/// same bits in either order, so a residual whose shortcut is computed after
/// its body (a projection shortcut) joins the shortcut's step, reading the
/// body as its operand.
pub fn runs_on(node: &Node, after: NodeId) -> bool {
    node.inputs.first() == Some(&after)
        || (node.op == Op::Add && node.inputs.get(1) == Some(&after))
}

/// The inputs an epilogue node running in place on `after`'s tensor
/// ([`runs_on`]) reads besides it, in order: a residual add's shortcut.
pub fn operands(node: &Node, after: NodeId) -> impl Iterator<Item = NodeId> + '_ {
    let skip = node.inputs.iter().position(|&i| i == after);
    (node.inputs.iter().enumerate())
        .filter(move |&(i, _)| Some(i) != skip)
        .map(|(_, &input)| input)
}

/// Groups the graph's nodes into steps and assigns each node its value,
/// marking the separable pairs `fusion` runs as one kernel (`Step::keeps`).
/// Offsets are left at zero for [`plan_arena`].
pub fn fuse(graph: &Graph, fusion: &Fusion) -> Plan {
    let consumers = graph.consumer_counts();
    let mut steps: Vec<Step> = Vec::new();
    let mut values = vec![Value {
        len: graph.input_shape().len(),
        offset: 0,
        slice: None,
    }];
    let mut node_values = vec![ValueId(0); graph.nodes.len()];
    for (id, node) in graph.layers() {
        let joins = steps.last().is_some_and(|step| {
            let tail = *step.nodes.last().expect("a step has an anchor");
            is_epilogue(&node.op)
                && runs_on(node, tail)
                && consumers[tail.index()] == 1
                && operands(node, tail).all(|other| !step.nodes.contains(&other))
        });
        if joins {
            let step = steps.last_mut().expect("checked above");
            let tail = *step.nodes.last().expect("a step has an anchor");
            step.nodes.push(id);
            for other in operands(node, tail) {
                step.inputs.push(node_values[other.index()]);
            }
            node_values[id.index()] = step.output;
        } else {
            let output = ValueId(values.len() as u32);
            values.push(Value {
                len: node.output.len(),
                offset: 0,
                slice: None,
            });
            steps.push(Step {
                nodes: vec![id],
                inputs: node.inputs.iter().map(|i| node_values[i.index()]).collect(),
                output,
                keeps: None,
                over: None,
            });
            node_values[id.index()] = output;
        }
    }
    for s in 1..steps.len() {
        if steps[s - 1].keeps.is_none()
            && separable(graph, fusion, &consumers, &steps[s - 1], &steps[s])
        {
            steps[s].keeps = steps[s - 1].inputs.first().copied();
        }
    }
    Plan {
        steps,
        values,
        node_values,
        arena_bytes: 0,
        fusion: *fusion,
    }
}

/// Whether `step` can write its output as a slice of a concat's output:
/// `fusion` says its anchor can ([`Fusion::writes_slice`]) and its epilogue
/// works per channel.
fn writes_strided(graph: &Graph, fusion: &Fusion, step: &Step) -> bool {
    fusion.writes_slice(&graph.node(step.nodes[0]).op)
        && step.nodes[1..]
            .iter()
            .all(|id| is_per_channel(&graph.node(*id).op))
}

/// Makes each concat input that its step can write in place a [`Slice`] of
/// the concat's output: the output of a step (not the network's input)
/// whose anchor [`Plan::fusion`] says writes a slice (a conv, dwconv or
/// pool by default), with a per-channel epilogue (no
/// shortcut: it is contiguous; no softmax), read by the concat alone and
/// listed once among its inputs. The concat then copies only its other
/// inputs. Offsets are left for [`plan_arena`].
pub fn concat_in_place(graph: &Graph, mut plan: Plan) -> Plan {
    let consumers = graph.consumer_counts();
    let mut writers = vec![None; plan.values.len()];
    for step in &plan.steps {
        writers[step.output.0 as usize] = Some(step);
    }
    let mut slices = Vec::new();
    for step in &plan.steps {
        let anchor = graph.node(step.nodes[0]);
        if anchor.op != Op::Concat || !matches!(anchor.output, Shape::Volume { .. }) {
            continue;
        }
        let total = anchor.output.channels();
        let mut first = 0;
        for (input, value) in anchor.inputs.iter().zip(&step.inputs) {
            let channels = graph.node(*input).output.channels();
            let once = anchor.inputs.iter().filter(|i| *i == input).count() == 1;
            let in_place =
                writers[value.0 as usize].is_some_and(|w| writes_strided(graph, &plan.fusion, w));
            if in_place && once && consumers[input.index()] == 1 {
                let slice = Slice {
                    of: step.output,
                    first,
                    channels,
                    total,
                };
                slices.push((*value, slice));
            }
            first += channels;
        }
    }
    for (value, slice) in slices {
        plan.values[value.0 as usize].slice = Some(slice);
    }
    plan
}

/// The value whose memory each value lives in: a slice's parent's, an
/// output written over its shortcut ([`Step::over`]) the shortcut's, else
/// its own.
fn owners(plan: &Plan) -> Vec<usize> {
    let mut owner: Vec<usize> = (plan.values.iter().enumerate())
        .map(|(v, value)| value.slice.map_or(v, |slice| slice.of.0 as usize))
        .collect();
    for step in &plan.steps {
        if let Some(shortcut) = step.over {
            owner[step.output.0 as usize] = owner[shortcut.0 as usize];
        }
    }
    owner
}

/// Each value's lifetime as (first, last) step, shifted by one: the input is
/// written at 0, step `s` writes at `s + 1`, the output is read after the last
/// step. A value whose memory others live in ([`owners`]) is live from the
/// first write of any of them to the last read of any.
fn lifetimes(plan: &Plan) -> (Vec<usize>, Vec<usize>) {
    let n = plan.values.len();
    let (mut first, mut last) = (vec![0usize; n], vec![0usize; n]);
    for (s, step) in plan.steps.iter().enumerate() {
        first[step.output.0 as usize] = s + 1;
        last[step.output.0 as usize] = last[step.output.0 as usize].max(s + 1);
        for input in step.inputs.iter().chain(&step.keeps) {
            last[input.0 as usize] = last[input.0 as usize].max(s + 1);
        }
    }
    if let Some(out) = plan.steps.last().map(|s| s.output) {
        last[out.0 as usize] = plan.steps.len() + 1;
    }
    for (v, owner) in owners(plan).into_iter().enumerate() {
        if owner != v {
            first[owner] = first[owner].min(first[v]);
            last[owner] = last[owner].max(last[v]);
        }
    }
    (first, last)
}

/// Places every value of `plan` in one arena, reusing memory between values
/// whose lifetimes do not overlap (greedy by size, as TensorFlow Lite does);
/// a slice, and an output written over its shortcut, take the offset of the
/// value they live in.
pub fn plan_arena(mut plan: Plan) -> Result<Plan, ShapeError> {
    let n = plan.values.len();
    let (first, last) = lifetimes(&plan);
    let owner = owners(&plan);
    let mut order: Vec<usize> = (0..n).filter(|&v| owner[v] == v).collect();
    order.sort_by(|&a, &b| plan.values[b].len.cmp(&plan.values[a].len).then(a.cmp(&b)));
    let mut placed: Vec<usize> = Vec::new();
    let mut arena: u64 = 0;
    for v in order {
        let len = plan.values[v]
            .len
            .checked_next_multiple_of(ALIGN_ELEMENTS)
            .ok_or(ShapeError::Overflow)?;
        let mut live: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&p| first[p] <= last[v] && first[v] <= last[p])
            .map(|&p| {
                let value = plan.values[p];
                (
                    value.offset,
                    value.offset + value.len.next_multiple_of(ALIGN_ELEMENTS),
                )
            })
            .collect();
        live.sort_unstable();
        // The lowest gap that fits, best fit among gaps.
        let mut best: Option<(u64, u64)> = None;
        let mut cursor = 0u64;
        for (start, end) in &live {
            if *start >= cursor && start - cursor >= len {
                let gap = start - cursor;
                if best.is_none_or(|(_, g)| gap < g) {
                    best = Some((cursor, gap));
                }
            }
            cursor = cursor.max(*end);
        }
        let offset = best.map(|(o, _)| o).unwrap_or(cursor);
        plan.values[v].offset = offset;
        arena = arena.max(offset.checked_add(len).ok_or(ShapeError::Overflow)?);
        placed.push(v);
    }
    for (v, owner) in owner.into_iter().enumerate() {
        plan.values[v].offset = plan.values[owner].offset;
    }
    plan.arena_bytes = arena.checked_mul(4).ok_or(ShapeError::Overflow)?;
    Ok(plan)
}

/// [`fuse`], then [`concat_in_place`], then [`shortcut_in_place`], then
/// [`plan_arena`], with what cnnjit's code generator fuses
/// ([`Fusion::DEFAULT`]): the plan of `PEAK_INFERENCE_BYTES`.
pub fn plan(graph: &Graph) -> Result<Plan, ShapeError> {
    plan_for(graph, &Fusion::DEFAULT)
}

/// [`fuse`], then [`concat_in_place`], then [`shortcut_in_place`], then
/// [`plan_arena`], with `fusion`.
pub fn plan_for(graph: &Graph, fusion: &Fusion) -> Result<Plan, ShapeError> {
    plan_arena(shortcut_in_place(
        graph,
        concat_in_place(graph, fuse(graph, fusion)),
    ))
}

/// Writes the output of each step that can over the shortcut its residual
/// adds ([`Step::over`]; [`over_shortcut`] says when). The shortcut's memory
/// is then the output's, so the kernel reads the shortcut from the lines it
/// writes and the arena holds one tensor fewer there (ResNet-50's layer1
/// adds a 3.2 MB shortcut). Offsets are left for [`plan_arena`].
pub fn shortcut_in_place(graph: &Graph, mut plan: Plan) -> Plan {
    let uses = ValueUses::of(&plan);
    for s in 0..plan.steps.len() {
        let shortcut = (plan.steps[s].inputs.iter())
            .copied()
            .find(|&v| over_shortcut(graph, &plan, &uses, s, v).is_ok());
        plan.steps[s].over = shortcut;
    }
    plan
}

/// What [`over_shortcut`] asks of a plan's values, found in one pass over
/// it rather than once per step asked about (a net may have 100,000 layers).
pub struct ValueUses {
    /// Per value, the last step that reads or keeps it, if any.
    last_reader: Vec<Option<usize>>,
    /// Per value, whether it is a slice or has slices.
    sliced: Vec<bool>,
}

impl ValueUses {
    /// The uses of `plan`'s values.
    pub fn of(plan: &Plan) -> ValueUses {
        let mut last_reader = vec![None; plan.values.len()];
        for (s, step) in plan.steps.iter().enumerate() {
            for v in step.inputs.iter().chain(&step.keeps) {
                last_reader[v.0 as usize] = Some(s);
            }
        }
        let mut sliced: Vec<bool> = plan.values.iter().map(|v| v.slice.is_some()).collect();
        for slice in plan.values.iter().filter_map(|v| v.slice) {
            sliced[slice.of.0 as usize] = true;
        }
        ValueUses {
            last_reader,
            sliced,
        }
    }
}

/// Whether step `s` of `plan` can write its output over value `shortcut`, or
/// why not: its anchor is one [`Plan::fusion`] says adds in place (a
/// convolution by default); its epilogue has one add, whose shortcut is
/// `shortcut`, which the anchor does not read and the step does not keep;
/// the shortcut is not the network's input (the caller's buffer), the
/// output not the network's output (written where the caller says); neither
/// is a slice or has slices; they have one length; and no later step reads
/// or keeps the shortcut. `uses` are `plan`'s ([`ValueUses::of`]).
pub fn over_shortcut(
    graph: &Graph,
    plan: &Plan,
    uses: &ValueUses,
    s: usize,
    shortcut: ValueId,
) -> Result<(), OverError> {
    let step = &plan.steps[s];
    let anchor = graph.node(step.nodes[0]);
    if !plan.fusion.adds_in_place(&anchor.op) {
        return Err(OverError::Anchor);
    }
    let mut adds = (1..step.nodes.len()).filter(|&i| graph.node(step.nodes[i]).op == Op::Add);
    let add = adds.next().filter(|_| adds.next().is_none());
    let added = add.and_then(|i| operands(graph.node(step.nodes[i]), step.nodes[i - 1]).next());
    let anchor_reads =
        step.inputs[..anchor.inputs.len().min(step.inputs.len())].contains(&shortcut);
    if added.map(|id| plan.node_values[id.index()]) != Some(shortcut)
        || anchor_reads
        || step.keeps == Some(shortcut)
    {
        return Err(OverError::NotShortcut);
    }
    let last = plan.steps.last().map(|last| last.output);
    if shortcut == ValueId(0) || last == Some(step.output) {
        return Err(OverError::NetworkBuffer);
    }
    if uses.sliced[shortcut.0 as usize] || uses.sliced[step.output.0 as usize] {
        return Err(OverError::Slice);
    }
    if plan.values[shortcut.0 as usize].len != plan.values[step.output.0 as usize].len {
        return Err(OverError::Length);
    }
    match uses.last_reader[shortcut.0 as usize] {
        Some(later) if later > s => Err(OverError::ReadLater { step: later }),
        _ => Ok(()),
    }
}

/// Which invariant of a [`Plan`] (this module's documentation) does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A step holds the input node, or a node before its step's previous
    /// one, or one already in a step.
    #[error("step {step}: {node} is the input, out of graph order, or in two steps")]
    Order {
        /// The step's index.
        step: usize,
        /// The node.
        node: NodeId,
    },
    /// A node's value is not the one its step writes.
    #[error(
        "step {step}: {node} is mapped to value {found}, expected its step's value {expected}"
    )]
    Mapping {
        /// The step's index.
        step: usize,
        /// The node.
        node: NodeId,
        /// The step's value.
        expected: u32,
        /// [`Plan::node_values`]'s entry.
        found: u32,
    },
    /// A node after a step's anchor is no in-place epilogue of the node before it.
    #[error("step {step}: {node} cannot run in place after {after}")]
    NotInPlace {
        /// The step's index.
        step: usize,
        /// The node.
        node: NodeId,
        /// The node before it in the step.
        after: NodeId,
    },
    /// A node of the graph is in no step.
    #[error("{node} is in no step")]
    Unplanned {
        /// The node.
        node: NodeId,
    },
    /// A slice breaks the invariant on slices.
    #[error("value {value}, a slice of value {of}, {source}")]
    Slice {
        /// The slice's value.
        value: usize,
        /// The value it is a slice of.
        of: u32,
        /// What is wrong with it.
        #[source]
        source: SliceError,
    },
    /// A step writes its output over a value it cannot ([`over_shortcut`]),
    /// or elsewhere than over it.
    #[error("step {step} writes its output over value {shortcut}, which {source}")]
    Over {
        /// The step's index.
        step: usize,
        /// The value it writes over.
        shortcut: u32,
        /// What is wrong.
        #[source]
        source: OverError,
    },
    /// A value's offset is not a multiple of [`ALIGN_ELEMENTS`].
    #[error("value {value} at offset {offset} is not aligned to {ALIGN_ELEMENTS} floats")]
    Unaligned {
        /// The value.
        value: usize,
        /// Its offset, in `f32`s.
        offset: u64,
    },
    /// Two values live at once share memory.
    #[error("values {a} (floats {}..{}) and {b} (floats {}..{}) are live at once but share memory", a_at.0, a_at.1, b_at.0, b_at.1)]
    SharedMemory {
        /// The first value.
        a: usize,
        /// Its range in the arena, in `f32`s.
        a_at: (u64, u64),
        /// The second value.
        b: usize,
        /// Its range in the arena, in `f32`s.
        b_at: (u64, u64),
    },
    /// [`Plan::arena_bytes`] is not the end of the highest value.
    #[error("arena of {bytes} bytes for values ending at {end} floats, expected {} to {} bytes", end * 4, (end + ALIGN_ELEMENTS) * 4)]
    ArenaSize {
        /// [`Plan::arena_bytes`].
        bytes: u64,
        /// The end of the highest value, in `f32`s.
        end: u64,
    },
}

/// Why a step cannot write its output over a shortcut ([`over_shortcut`],
/// [`PlanError::Over`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverError {
    /// The fusion does not let the step's anchor add in place.
    #[error("its anchor does not add a shortcut in place")]
    Anchor,
    /// The value is not the shortcut of the step's one add, or the anchor
    /// reads it, or the step keeps it.
    #[error("is not the shortcut of its one add alone")]
    NotShortcut,
    /// The value is the network's input, or the output the network's.
    #[error("is the network's input, or the step writes the network's output")]
    NetworkBuffer,
    /// The value or the output is a slice or has slices.
    #[error("is a slice or has slices, or the output does")]
    Slice,
    /// The value and the output differ in length.
    #[error("is not as long as the output")]
    Length,
    /// A later step reads or keeps the value (the last that does).
    #[error("step {step} reads later")]
    ReadLater {
        /// That step's index.
        step: usize,
    },
    /// The output does not live at the value's offset.
    #[error("is at offset {shortcut}, the output at {output}")]
    Offset {
        /// The shortcut's offset.
        shortcut: u64,
        /// The output's.
        output: u64,
    },
}

/// What is wrong with a [`Slice`] (see [`PlanError::Slice`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    /// `of` is not a value of the plan.
    #[error("lives in no value")]
    NoParent,
    /// No step writes `of`.
    #[error("lives in a value no step writes")]
    NoWriter,
    /// `of` is a slice itself, or not a concat's output.
    #[error("does not live in a concat's own output")]
    NotConcat,
    /// The slice is not where its concat puts that input.
    #[error("is not the concat's input once, at its own channels: found channels {} to {} of {found_total}, {}", found.0, found.0 + found.1, match expected {
        Some((first, channels)) => format!("expected {} to {} of {expected_total}", first, first + channels),
        None => "but it is not one input of the concat".to_string(),
    })]
    Channels {
        /// The slice's first channel and channels.
        found: (u32, u32),
        /// The slice's `total`.
        found_total: u32,
        /// Where the concat puts it, if it is one of its inputs exactly once.
        expected: Option<(u32, u32)>,
        /// The concat's channels.
        expected_total: u32,
    },
    /// Another step than the concat reads the slice (or keeps it live).
    #[error("is read by another step than its concat")]
    OtherReader,
    /// The step that writes the slice cannot write a strided output.
    #[error("is not written by a step that writes a strided output")]
    NotStrided,
    /// The slice's offset is not its parent's.
    #[error("is at offset {found}, expected its parent's offset {expected}")]
    Offset {
        /// The slice's offset.
        found: u64,
        /// The parent's offset.
        expected: u64,
    },
}

impl Plan {
    /// Checks the invariants in this module's documentation against `graph`.
    pub fn verify(&self, graph: &Graph) -> Result<(), PlanError> {
        let mut seen = vec![false; graph.nodes.len()];
        let mut previous = 0usize;
        for (s, step) in self.steps.iter().enumerate() {
            for &node in &step.nodes {
                if node.index() == 0 || node.index() <= previous || seen[node.index()] {
                    return Err(PlanError::Order { step: s, node });
                }
                seen[node.index()] = true;
                previous = node.index();
                let found = self.node_values[node.index()];
                if found != step.output {
                    return Err(PlanError::Mapping {
                        step: s,
                        node,
                        expected: step.output.0,
                        found: found.0,
                    });
                }
            }
            for pair in step.nodes.windows(2) {
                let (after, node) = (pair[0], pair[1]);
                if !is_epilogue(&graph.node(node).op) || !runs_on(graph.node(node), after) {
                    return Err(PlanError::NotInPlace {
                        step: s,
                        node,
                        after,
                    });
                }
            }
        }
        if let Some(missing) = seen.iter().skip(1).position(|s| !s) {
            return Err(PlanError::Unplanned {
                node: NodeId(missing as u32 + 1),
            });
        }
        for (v, value) in self.values.iter().enumerate() {
            if let Some(slice) = value.slice {
                self.verify_slice(graph, v, value, slice)
                    .map_err(|source| PlanError::Slice {
                        value: v,
                        of: slice.of.0,
                        source,
                    })?;
            }
        }
        let uses = ValueUses::of(self);
        for (s, step) in self.steps.iter().enumerate() {
            if let Some(shortcut) = step.over {
                let (at, output) = (
                    self.values[shortcut.0 as usize].offset,
                    self.values[step.output.0 as usize].offset,
                );
                let placed = match at == output {
                    true => Ok(()),
                    false => Err(OverError::Offset {
                        shortcut: at,
                        output,
                    }),
                };
                over_shortcut(graph, self, &uses, s, shortcut)
                    .and(placed)
                    .map_err(|source| PlanError::Over {
                        step: s,
                        shortcut: shortcut.0,
                        source,
                    })?;
            }
        }
        // Overlapping lifetimes must not share memory; a slice's memory is
        // its parent's, an output's over its shortcut the shortcut's, and
        // that value's lifetime covers theirs.
        let (first, last) = lifetimes(self);
        let owner = owners(self);
        let mut end = 0;
        let owned = || {
            self.values
                .iter()
                .enumerate()
                .filter(|&(v, _)| owner[v] == v)
        };
        for (a, va) in owned() {
            if va.offset % ALIGN_ELEMENTS != 0 {
                return Err(PlanError::Unaligned {
                    value: a,
                    offset: va.offset,
                });
            }
            end = end.max(va.offset + va.len);
            for (b, vb) in owned().filter(|(b, _)| *b > a) {
                let live_together = first[a] <= last[b] && first[b] <= last[a];
                let share = va.offset < vb.offset + vb.len && vb.offset < va.offset + va.len;
                if live_together && share {
                    return Err(PlanError::SharedMemory {
                        a,
                        a_at: (va.offset, va.offset + va.len),
                        b,
                        b_at: (vb.offset, vb.offset + vb.len),
                    });
                }
            }
        }
        if self.arena_bytes < end * 4 || self.arena_bytes > (end + ALIGN_ELEMENTS) * 4 {
            return Err(PlanError::ArenaSize {
                bytes: self.arena_bytes,
                end,
            });
        }
        Ok(())
    }

    /// Checks the module's invariant on slices for value `v`.
    fn verify_slice(
        &self,
        graph: &Graph,
        v: usize,
        value: &Value,
        slice: Slice,
    ) -> Result<(), SliceError> {
        let parent = self
            .values
            .get(slice.of.0 as usize)
            .ok_or(SliceError::NoParent)?;
        let concat = (self.steps.iter())
            .find(|s| s.output == slice.of)
            .ok_or(SliceError::NoWriter)?;
        let anchor = graph.node(concat.nodes[0]);
        let mut first = 0;
        let mut at = None;
        for (input, id) in concat.inputs.iter().zip(anchor.inputs.iter()) {
            let channels = graph.node(*id).output.channels();
            if input.0 as usize == v {
                at = at.xor(Some((first, channels)));
            }
            first += channels;
        }
        if parent.slice.is_some() || anchor.op != Op::Concat {
            return Err(SliceError::NotConcat);
        }
        if at != Some((slice.first, slice.channels)) || slice.total != anchor.output.channels() {
            return Err(SliceError::Channels {
                found: (slice.first, slice.channels),
                found_total: slice.total,
                expected: at,
                expected_total: anchor.output.channels(),
            });
        }
        let readers = self
            .steps
            .iter()
            .filter(|s| s.inputs.iter().chain(&s.keeps).any(|i| i.0 as usize == v));
        if readers.count() != 1 {
            return Err(SliceError::OtherReader);
        }
        match self.steps.iter().find(|s| s.output.0 as usize == v) {
            Some(writer) if writes_strided(graph, &self.fusion, writer) => {}
            _ => return Err(SliceError::NotStrided),
        }
        if value.offset != parent.offset {
            return Err(SliceError::Offset {
                found: value.offset,
                expected: parent.offset,
            });
        }
        Ok(())
    }
}
