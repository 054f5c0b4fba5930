//! The executor: runs a [`Plan`] on one image with the reference kernels,
//! in one arena of exactly `Plan::arena_bytes` (the `PEAK_INFERENCE_BYTES`
//! the compiler reported), allocating nothing per call.
//!
//! A step's anchor reads its input values and writes its output value; its
//! epilogue nodes then run in place on that output, a residual's add reading
//! the step's extra input. The plan guarantees that a step's inputs and its
//! output never share memory, and this module checks it before every step
//! (an overlap is an internal error, never aliasing).

use crate::error::{Error, Result};
use crate::ir::{Graph, Node, NodeId, Op};
use crate::params::{LayerParams, Params};
use crate::reference::{self as r, BatchNorm, Dims, KernelError};
use cnnjit_compiler::plan::{Plan, Step, Value, ALIGN_ELEMENTS};
use std::ops::Range;

/// A zeroed `f32` buffer whose first element is 64-byte aligned.
#[derive(Clone, Debug)]
pub struct Arena {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Arena {
    /// An arena of `bytes` bytes (rounded up to whole `f32`s).
    pub fn new(bytes: u64) -> Arena {
        let len = bytes.div_ceil(4) as usize;
        let buf = vec![0.0f32; len + ALIGN_ELEMENTS as usize];
        let start = buf.as_ptr().align_offset(64).min(ALIGN_ELEMENTS as usize);
        Arena { buf, start, len }
    }

    /// The arena's elements.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// Its size in bytes.
    pub fn bytes(&self) -> u64 {
        self.len as u64 * 4
    }
}

fn range(value: &Value) -> Range<usize> {
    value.offset as usize..(value.offset + value.len) as usize
}

/// The output range mutably and the input ranges shared, or `None` if an input
/// overlaps the output or a range lies outside the arena.
fn carve<'a>(
    arena: &'a mut [f32],
    out: Range<usize>,
    ins: &[Range<usize>],
) -> Option<(&'a mut [f32], Vec<&'a [f32]>)> {
    if out.end > arena.len() {
        return None;
    }
    let (left, rest) = arena.split_at_mut(out.start);
    let (output, right) = rest.split_at_mut(out.len());
    let (left, right): (&'a [f32], &'a [f32]) = (left, right);
    let inputs = ins
        .iter()
        .map(|r| {
            if r.end <= out.start {
                left.get(r.clone())
            } else if r.start >= out.end {
                right.get(r.start - out.end..r.end - out.end)
            } else {
                None
            }
        })
        .collect::<Option<Vec<_>>>()?;
    Some((output, inputs))
}

/// What runs a plan: the graph, its plan and parameters, and, when the JIT
/// serves it, the compiled kernels and the threads that split their rows.
#[derive(Clone, Debug)]
pub struct Engine {
    /// The network.
    pub graph: Graph,
    /// Its steps and arena layout.
    pub plan: Plan,
    /// Its parameters for the reference kernels.
    pub params: Params,
    /// Compiled kernels, if any.
    #[cfg(feature = "jit")]
    pub compiled: Option<crate::jit::Compiled>,
    /// Threads for the compiled kernels.
    pub pool: Option<std::sync::Arc<rayon::ThreadPool>>,
}

/// Runs one image: `input` in, `output` out; lengths are the caller's to check.
pub fn run(engine: &Engine, arena: &mut Arena, input: &[f32], output: &mut [f32]) -> Result<()> {
    let (graph, plan) = (&engine.graph, &engine.plan);
    let arena = arena.as_mut_slice();
    let internal = |what: &str| Error::Internal {
        layer: graph.name.to_string(),
        reason: what.to_string(),
    };
    arena
        .get_mut(range(&plan.values[0]))
        .ok_or_else(|| internal("the input does not fit the arena"))?
        .copy_from_slice(input);
    for (i, step) in plan.steps.iter().enumerate() {
        run_step(engine, i, step, arena)?;
    }
    let last = plan.steps.last().map(|s| s.output.0 as usize).unwrap_or(0);
    output.copy_from_slice(
        arena
            .get(range(&plan.values[last]))
            .ok_or_else(|| internal("the output does not fit the arena"))?,
    );
    Ok(())
}

fn run_step(engine: &Engine, index: usize, step: &Step, arena: &mut [f32]) -> Result<()> {
    let (graph, plan, params) = (&engine.graph, &engine.plan, &engine.params);
    let anchor = graph.node(step.nodes[0]);
    let ins: Vec<Range<usize>> = step
        .inputs
        .iter()
        .map(|v| range(&plan.values[v.0 as usize]))
        .collect();
    let (out, inputs) = carve(arena, range(&plan.values[step.output.0 as usize]), &ins)
        .ok_or_else(|| Error::Internal {
            layer: anchor.name.to_string(),
            reason: "a step's input and output share memory".into(),
        })?;
    let fail = |node: &Node| {
        let layer = node.name.to_string();
        move |e: KernelError| Error::Internal {
            layer,
            reason: e.to_string(),
        }
    };
    #[cfg(feature = "jit")]
    if let Some((compiled, lowered)) = engine
        .compiled
        .as_ref()
        .and_then(|c| c.steps[index].as_ref().map(|l| (c, l)))
    {
        let extra = lowered.extra.map(|i| inputs[i]);
        crate::jit::run(
            &compiled.program,
            lowered,
            inputs[0],
            extra,
            out,
            engine.pool.as_deref(),
        )
        .map_err(|reason| Error::Internal {
            layer: anchor.name.to_string(),
            reason,
        })?;
        let mut shortcuts =
            inputs[anchor.inputs.len() + usize::from(lowered.extra.is_some())..].iter();
        return epilogue(graph, params, &lowered.rest, out, &mut shortcuts);
    }
    #[cfg(not(feature = "jit"))]
    let _ = index;
    let in_dims = |i: usize| Dims::from(graph.node(anchor.inputs[i]).output);
    let layer = &params.layers[step.nodes[0].index()];
    match (&anchor.op, layer) {
        (Op::Conv2d(conv), LayerParams::Linear { weight, bias }) => {
            r::conv2d(conv, inputs[0], in_dims(0), weight, bias.as_deref(), out)
                .map_err(fail(anchor))?;
        }
        (Op::Dense(dense), LayerParams::Linear { weight, bias }) => {
            r::dense(dense, inputs[0], weight, bias.as_deref(), out).map_err(fail(anchor))?;
        }
        (Op::Pool2d(pool), _) => {
            r::pool2d(pool, inputs[0], in_dims(0), out).map_err(fail(anchor))?;
        }
        (Op::GlobalPool(kind), _) => {
            r::global_pool(*kind, inputs[0], in_dims(0), out).map_err(fail(anchor))?
        }
        (Op::Lrn(lrn), _) => r::lrn(lrn, inputs[0], in_dims(0).c, out).map_err(fail(anchor))?,
        (Op::Concat, _) => {
            let parts: Vec<(&[f32], Dims)> = inputs
                .iter()
                .enumerate()
                .map(|(i, x)| (*x, in_dims(i)))
                .collect();
            r::concat(&parts, out).map_err(fail(anchor))?;
        }
        (Op::Add, _) => r::add(inputs[0], inputs[1], out).map_err(fail(anchor))?,
        (Op::Scale, _) => r::scale(inputs[0], in_dims(0), inputs[1], out).map_err(fail(anchor))?,
        // An epilogue op that could not run in place: copy, then apply in place.
        (
            Op::BatchNorm { .. }
            | Op::Activation(_)
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Identity
            | Op::Flatten,
            _,
        ) => {
            if out.len() != inputs[0].len() {
                return Err(fail(anchor)(KernelError::Length {
                    what: "element-wise output",
                    expected: inputs[0].len(),
                    found: out.len(),
                }));
            }
            out.copy_from_slice(inputs[0]);
            in_place(anchor, layer, out, &[])?;
        }
        (op, _) => {
            return Err(Error::Internal {
                layer: anchor.name.to_string(),
                reason: format!("no parameters loaded for {}", op.kind()),
            })
        }
    }
    let mut shortcuts = inputs[anchor.inputs.len()..].iter();
    epilogue(graph, params, &step.nodes[1..], out, &mut shortcuts)
}

/// Applies `nodes` in place to `data`, each residual add taking the next shortcut.
fn epilogue<'s>(
    graph: &Graph,
    params: &Params,
    nodes: &[NodeId],
    data: &mut [f32],
    shortcuts: &mut impl Iterator<Item = &'s &'s [f32]>,
) -> Result<()> {
    for id in nodes {
        let node = graph.node(*id);
        let shortcut: Vec<&[f32]> = if node.op == Op::Add {
            vec![*shortcuts.next().ok_or_else(|| Error::Internal {
                layer: node.name.to_string(),
                reason: "a residual add without its shortcut".into(),
            })?]
        } else {
            Vec::new()
        };
        in_place(node, &params.layers[id.index()], data, &shortcut)?;
    }
    Ok(())
}

/// Applies an epilogue node to `data` in place.
fn in_place(node: &Node, layer: &LayerParams, data: &mut [f32], shortcut: &[&[f32]]) -> Result<()> {
    let fail = |e: KernelError| Error::Internal {
        layer: node.name.to_string(),
        reason: e.to_string(),
    };
    match (&node.op, layer) {
        (
            Op::BatchNorm { eps },
            LayerParams::BatchNorm {
                gamma,
                beta,
                mean,
                var,
            },
        ) => {
            let bn = BatchNorm {
                gamma,
                beta,
                running_mean: mean,
                running_var: var,
                eps: *eps,
            };
            r::batch_norm_in_place(&bn, data).map_err(fail)
        }
        (Op::BatchNorm { .. }, LayerParams::Folded)
        | (Op::Dropout { .. } | Op::Identity | Op::Flatten, _) => Ok(()),
        (Op::Activation(act), _) => {
            r::activation_in_place(*act, data);
            Ok(())
        }
        (Op::Softmax, _) => {
            r::softmax_in_place(data, node.output.channels() as usize).map_err(fail)
        }
        (Op::Add, _) => match shortcut {
            [other] => r::add_in_place(data, other).map_err(fail),
            _ => Err(fail(KernelError::Invalid(
                "a residual add without its shortcut".into(),
            ))),
        },
        (op, _) => Err(fail(KernelError::Invalid(format!(
            "{} cannot run in place",
            op.kind()
        )))),
    }
}
