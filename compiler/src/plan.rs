//! Planning: which nodes run together as one kernel ([`fuse`]), and where
//! every tensor lives in one arena ([`plan_arena`]).
//!
//! A [`Step`] is one kernel: an anchor node that reads its inputs and writes a
//! fresh tensor, followed by epilogue nodes that transform that tensor in
//! place (bn, activations, softmax, dropout, identity, flatten, and the add of
//! a residual, which also reads its shortcut). A node joins the step before it
//! only when it reads that step's tensor and nothing else reads that tensor,
//! so no value another node needs is ever overwritten.
//!
//! Invariants of a [`Plan`]:
//! - every node of the graph but the input belongs to exactly one step, and
//!   steps are in graph order;
//! - value 0 is the network's input; the last step's value is the output;
//! - two values whose lifetimes (from the step that writes them to the last
//!   step that reads them; the input from before the first step, the output
//!   to after the last) overlap never overlap in the arena;
//! - offsets are multiples of [`ALIGN_ELEMENTS`] (64 bytes), and
//!   [`Plan::arena_bytes`] is the end of the highest value: exactly the arena
//!   the runtime allocates, and `PEAK_INFERENCE_BYTES`.

use crate::ir::{Graph, NodeId, Op};
use crate::shape::ShapeError;

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
    /// Offset in the arena, in `f32` elements.
    pub offset: u64,
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
    /// the step before, when the two form a separable pair (see [`separable`]).
    pub keeps: Option<ValueId>,
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
}

/// Whether `op` can run in place on the tensor it reads.
fn is_epilogue(op: &Op) -> bool {
    matches!(
        op,
        Op::BatchNorm { .. }
            | Op::Activation(_)
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Identity
            | Op::Flatten
            | Op::Add
    )
}

/// Whether steps `a` then `b` form a separable pair that a JIT may run as one
/// kernel from `a`'s input to `b`'s output, never writing `a`'s output: `a` is
/// a depthwise convolution (multiplier 1) or a `1xk` convolution whose
/// epilogue is per channel (bn, activations), and `b` a convolution with
/// kernels one column wide (a `1x1` or a `kx1`) that is the only reader of
/// `a`'s output. Such a `b` keeps `a`'s input live, so the fused kernel never
/// writes over what it reads; the reference path then holds one more tensor
/// there, which `PEAK_INFERENCE_BYTES` counts.
fn separable(graph: &Graph, consumers: &[u32], a: &Step, b: &Step) -> bool {
    let anchor = |step: &Step| graph.node(step.nodes[0]);
    let (first, second) = (anchor(a), anchor(b));
    let tail = *a.nodes.last().expect("a step has an anchor");
    let first_fits = match &first.op {
        Op::Conv2d(conv) => {
            let c = first.output.channels();
            let depthwise = conv.groups == c && graph.node(first.inputs[0]).output.channels() == c;
            depthwise || (conv.kernel.h == 1 && conv.groups == 1)
        }
        _ => false,
    };
    let per_channel = a.nodes[1..].iter().all(|id| {
        matches!(
            graph.node(*id).op,
            Op::BatchNorm { .. } | Op::Activation(_) | Op::Dropout { .. } | Op::Identity
        )
    });
    first_fits
        && per_channel
        && matches!(&second.op, Op::Conv2d(conv) if conv.kernel.w == 1)
        && second.inputs.as_ref() == [tail]
        && consumers[tail.index()] == 1
}

/// Groups the graph's nodes into steps and assigns each node its value.
/// Offsets are left at zero for [`plan_arena`].
pub fn fuse(graph: &Graph) -> Plan {
    let consumers = graph.consumer_counts();
    let mut steps: Vec<Step> = Vec::new();
    let mut values = vec![Value {
        len: graph.input_shape().len(),
        offset: 0,
    }];
    let mut node_values = vec![ValueId(0); graph.nodes.len()];
    for (id, node) in graph.layers() {
        let joins = steps.last().is_some_and(|step| {
            let tail = *step.nodes.last().expect("a step has an anchor");
            is_epilogue(&node.op)
                && node.inputs.first() == Some(&tail)
                && consumers[tail.index()] == 1
                && node.inputs[1..]
                    .iter()
                    .all(|other| !step.nodes.contains(other))
        });
        if joins {
            let step = steps.last_mut().expect("checked above");
            step.nodes.push(id);
            for other in &node.inputs[1..] {
                step.inputs.push(node_values[other.index()]);
            }
            node_values[id.index()] = step.output;
        } else {
            let output = ValueId(values.len() as u32);
            values.push(Value {
                len: node.output.len(),
                offset: 0,
            });
            steps.push(Step {
                nodes: vec![id],
                inputs: node.inputs.iter().map(|i| node_values[i.index()]).collect(),
                output,
                keeps: None,
            });
            node_values[id.index()] = output;
        }
    }
    for s in 1..steps.len() {
        if steps[s - 1].keeps.is_none() && separable(graph, &consumers, &steps[s - 1], &steps[s]) {
            steps[s].keeps = steps[s - 1].inputs.first().copied();
        }
    }
    Plan {
        steps,
        values,
        node_values,
        arena_bytes: 0,
    }
}

/// Each value's lifetime as (first, last) step, shifted by one: the input is
/// written at 0, step `s` writes at `s + 1`, the output is read after the last step.
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
    (first, last)
}

/// Places every value of `plan` in one arena, reusing memory between values
/// whose lifetimes do not overlap (greedy by size, as TensorFlow Lite does).
pub fn plan_arena(mut plan: Plan) -> Result<Plan, ShapeError> {
    let n = plan.values.len();
    let (first, last) = lifetimes(&plan);
    let mut order: Vec<usize> = (0..n).collect();
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
    plan.arena_bytes = arena.checked_mul(4).ok_or(ShapeError::Overflow)?;
    Ok(plan)
}

/// [`fuse`], then [`plan_arena`].
pub fn plan(graph: &Graph) -> Result<Plan, ShapeError> {
    plan_arena(fuse(graph))
}

impl Plan {
    /// Checks the invariants in this module's documentation against `graph`.
    pub fn verify(&self, graph: &Graph) -> Result<(), String> {
        let mut seen = vec![false; graph.nodes.len()];
        let mut previous = 0usize;
        for step in &self.steps {
            for id in &step.nodes {
                if id.index() == 0 || id.index() <= previous || seen[id.index()] {
                    return Err(format!("{id} is out of order or in two steps"));
                }
                seen[id.index()] = true;
                previous = id.index();
                if self.node_values[id.index()] != step.output {
                    return Err(format!("{id} is not mapped to its step's value"));
                }
            }
            for (i, id) in step.nodes.iter().enumerate().skip(1) {
                if !is_epilogue(&graph.node(*id).op)
                    || graph.node(*id).inputs[0] != step.nodes[i - 1]
                {
                    return Err(format!(
                        "{id} cannot run in place after {}",
                        step.nodes[i - 1]
                    ));
                }
            }
        }
        if let Some(missing) = seen.iter().skip(1).position(|s| !s) {
            return Err(format!("n{} is in no step", missing + 1));
        }
        // Overlapping lifetimes must not share memory.
        let (first, last) = lifetimes(self);
        let mut end = 0;
        for (a, va) in self.values.iter().enumerate() {
            if va.offset % ALIGN_ELEMENTS != 0 {
                return Err(format!("value {a} is not aligned"));
            }
            end = end.max(va.offset + va.len);
            for (b, vb) in self.values.iter().enumerate().skip(a + 1) {
                let live_together = first[a] <= last[b] && first[b] <= last[a];
                let share = va.offset < vb.offset + vb.len && vb.offset < va.offset + va.len;
                if live_together && share {
                    return Err(format!(
                        "values {a} and {b} are live at once but share memory"
                    ));
                }
            }
        }
        if self.arena_bytes < end * 4 || self.arena_bytes > (end + ALIGN_ELEMENTS) * 4 {
            return Err(format!(
                "arena of {} bytes for values ending at {end} floats",
                self.arena_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::compile_source;

    fn resnet_block() -> (crate::ir::Graph, super::Plan) {
        let net = compile_source(
            "Block(8x8x4) { conv(4, 3x3, pad = 1), bn, relu, residual { conv(4, 3x3, pad = 1), bn, relu, conv(4, 3x3, pad = 1), bn }, relu }",
        )
        .unwrap()
        .remove(0);
        (net.graph, net.plan)
    }

    #[test]
    fn conv_bn_relu_and_residual_add_fuse_into_one_step() {
        let (graph, plan) = resnet_block();
        let kinds: Vec<Vec<&str>> = plan
            .steps
            .iter()
            .map(|s| s.nodes.iter().map(|id| graph.node(*id).op.kind()).collect())
            .collect();
        assert_eq!(
            kinds,
            [
                vec!["conv", "bn", "relu"],
                vec!["conv", "bn", "relu"],
                vec!["conv", "bn", "residual", "relu"],
            ]
        );
        // The last step reads its input and the block's input (the shortcut).
        assert_eq!(plan.steps[2].inputs.len(), 2);
        plan.verify(&graph).unwrap();
        // 8*8*4 = 256 floats a tensor; at most three are live at once
        // (shortcut, body tensor, output of the step).
        assert_eq!(plan.arena_bytes, 3 * 256 * 4);
    }

    #[test]
    fn verify_rejects_shared_memory_between_live_values() {
        let (graph, mut plan) = resnet_block();
        let last = plan.steps.last().unwrap().output.0 as usize;
        let shortcut = plan.steps[2].inputs[1].0 as usize;
        plan.values[last].offset = plan.values[shortcut].offset;
        assert!(plan.verify(&graph).unwrap_err().contains("share memory"));
    }
}
