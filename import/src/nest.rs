//! Nesting recovery: the [`Dag`] of layers as the language's nested blocks.
//!
//! The language nests: a `residual`, `concat` or `scale` reads one tensor,
//! runs its branches on it and joins them. In the DAG such a block is a join
//! layer (`Add`, `Concat`, `Scale`) and the layer where its branches fork,
//! which is the join's immediate dominator (every path from the input to the
//! join passes through it, and it is the last such layer). So the net is read
//! backwards from its output: a layer with one input is the next item of the
//! sequence; a join becomes a block whose branches are the sequences from its
//! dominator to each of the join's inputs, recursively, and the walk goes on
//! from the dominator.
//!
//! Exporters write a dense block (DenseNet's: each layer reads the
//! concatenation of every earlier layer's output) as concatenations of ever
//! longer lists of the same tensors, each tensor read by every later one.
//! [`chain_concats`] first rewrites each concatenation whose first inputs are
//! another's to read that one instead (`cat(a, b, c)` beside `cat(a, b)`
//! becomes `cat(cat(a, b), c)`: the same tensor, as concatenation along
//! channels is associative), so a dense block becomes a chain of
//! `concat { [identity], [layer] }` blocks, each tensor read once.
//!
//! Exporters also flatten nested concatenations: Inception-v3's
//! `cat(b1, cat(b2a, b2b), ...)` arrives as `cat(b1, b2a, b2b, ...)`, whose
//! `b2a` and `b2b` fork from one layer inside the block, which a branch
//! cannot say. [`group_concats`] gives each run of consecutive inputs that
//! fork below the concatenation's own fork a concatenation of its own again.
//!
//! What this cannot see (a tensor read both inside a block and after it, a
//! `Scale` of two computed tensors) either fails here, naming the node, or
//! yields a tree whose compiled graph [`crate::verify`] finds different from
//! the DAG; never a silently wrong net. The walk visits each layer at most
//! once: a layer reached a second time fails at once, so a graph that cannot
//! be nested costs time linear in its size, not in its paths.

use crate::error::{Error, Result};
use crate::map::Dag;
use cnnjit_ir::Op;
use std::cell::RefCell;
use std::collections::HashMap;

pub use cnnjit_lang::dsl::print::{count, Item};

/// The net as one sequence from the input to the output.
pub fn nest(dag: &Dag) -> Result<Vec<Item>> {
    let idom = dominators(dag);
    let nester = Nester {
        dag,
        idom: &idom,
        seen: RefCell::new(vec![false; dag.layers.len()]),
    };
    nester.seq(0, dag.output)
}

/// Rewrites every concatenation whose first two or more inputs are, in
/// order, all the inputs of an earlier concatenation to read that one in
/// their place, taking the longest such (module doc). Linear in the number
/// of concatenation inputs: the input lists are walked through a trie of
/// their prefixes.
pub fn chain_concats(dag: &mut Dag) {
    // Trie nodes are numbered from 1 (0 is the root); `edges` maps a node
    // and the next input to the child, `ends` a node to the first
    // concatenation whose whole input list it spells.
    let mut edges: HashMap<(usize, usize), usize> = HashMap::new();
    let mut ends: HashMap<usize, usize> = HashMap::new();
    for id in 0..dag.layers.len() {
        if !matches!(dag.layers[id].op, Op::Concat) {
            continue;
        }
        let inputs = &dag.layers[id].inputs;
        let (mut node, mut longest) = (0, None);
        for (taken, &input) in inputs.iter().enumerate() {
            let fresh = edges.len() + 1;
            node = *edges.entry((node, input)).or_insert(fresh);
            let prefix = taken + 1;
            if (2..inputs.len()).contains(&prefix) {
                if let Some(&earlier) = ends.get(&node) {
                    longest = Some((earlier, prefix));
                }
            }
        }
        ends.entry(node).or_insert(id);
        if let Some((earlier, prefix)) = longest {
            let inputs = &mut dag.layers[id].inputs;
            inputs.splice(..prefix, [earlier]);
        }
    }
}

/// The immediate dominator of every layer that reaches the output (the
/// input dominates itself; layers that do not reach the output get none).
fn dominators(dag: &Dag) -> Vec<Option<usize>> {
    let n = dag.layers.len();
    let mut live = vec![false; n];
    live[dag.output] = true;
    for id in (0..n).rev() {
        if live[id] {
            for &i in &dag.layers[id].inputs {
                live[i] = true;
            }
        }
    }
    let mut idom: Vec<Option<usize>> = vec![None; n];
    idom[0] = Some(0);
    // Layers are in topological order, so one pass in it settles every
    // dominator (Cooper, Harvey, Kennedy's intersection on a DAG).
    for id in 1..n {
        if !live[id] {
            continue;
        }
        let mut preds = dag.layers[id]
            .inputs
            .iter()
            .filter_map(|&p| idom[p].map(|_| p));
        let Some(mut dom) = preds.next() else {
            continue;
        };
        for other in preds {
            dom = meet(&idom, dom, other);
        }
        idom[id] = Some(dom);
    }
    idom
}

/// Regroups each concatenation's consecutive inputs that fork below its
/// own fork (its immediate dominator) into a concatenation of their own,
/// inserted before it (module doc): the same tensor, as concatenation along
/// channels is associative. Layers stay in topological order; those after
/// an insertion are renumbered.
pub fn group_concats(dag: &mut Dag) -> Result<()> {
    let idom = dominators(dag);
    let groups = |id: usize| -> Vec<Vec<usize>> {
        let layer = &dag.layers[id];
        let Some(fork) = idom[id].filter(|_| matches!(layer.op, Op::Concat)) else {
            return Vec::new();
        };
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut common = None;
        for &input in &layer.inputs {
            match common.map(|c| meet(&idom, c, input)).filter(|&m| m != fork) {
                Some(m) => {
                    common = Some(m);
                    if let Some(group) = groups.last_mut() {
                        group.push(input);
                    }
                }
                None => {
                    common = Some(input);
                    groups.push(vec![input]);
                }
            }
        }
        groups
    };
    let plans: Vec<Vec<Vec<usize>>> = (0..dag.layers.len()).map(groups).collect();
    if plans
        .iter()
        .all(|groups| groups.iter().all(|g| g.len() < 2))
    {
        return Ok(());
    }
    let old = std::mem::take(&mut dag.layers);
    let mut renumbered = Vec::with_capacity(old.len());
    for (id, mut layer) in old.into_iter().enumerate() {
        let mut inputs = Vec::new();
        for group in &plans[id] {
            let group: Vec<usize> = group.iter().map(|&i| renumbered[i]).collect();
            if let [one] = group[..] {
                inputs.push(one);
                continue;
            }
            let shapes: Vec<_> = group.iter().map(|&i| dag.layers[i].shape).collect();
            let shape = cnnjit_ir::shape::output_shape(&Op::Concat, &shapes)
                .map_err(|e| Error::layer(&layer, e.to_string()))?;
            inputs.push(dag.layers.len());
            dag.layers.push(crate::map::Layer {
                op: Op::Concat,
                inputs: group,
                shape,
                node: layer.node.clone(),
                onnx_op: layer.onnx_op.clone(),
                params: Vec::new(),
            });
        }
        if plans[id].is_empty() {
            // `map` lists layers in topological order: inputs come first.
            layer.inputs.iter_mut().for_each(|i| *i = renumbered[*i]);
        } else {
            layer.inputs = inputs;
        }
        renumbered.push(dag.layers.len());
        dag.layers.push(layer);
    }
    dag.output = renumbered[dag.output];
    Ok(())
}

/// The nearest common dominator of `a` and `b`, both dominated by layers
/// whose dominators `idom` already holds (layers are in topological order,
/// so a dominator's index is below its layer's).
fn meet(idom: &[Option<usize>], mut a: usize, mut b: usize) -> usize {
    while a != b {
        while a > b {
            a = idom[a].expect("a dominator's dominators are set");
        }
        while b > a {
            b = idom[b].expect("a dominator's dominators are set");
        }
    }
    a
}

struct Nester<'a> {
    dag: &'a Dag,
    idom: &'a [Option<usize>],
    /// The layers already placed in the tree.
    seen: RefCell<Vec<bool>>,
}

impl Nester<'_> {
    /// The items that turn the output of `start` into the output of `end`.
    fn seq(&self, start: usize, end: usize) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut cur = end;
        while cur != start {
            let layer = &self.dag.layers[cur];
            if std::mem::replace(&mut self.seen.borrow_mut()[cur], true) {
                return Err(Error::layer(
                    layer,
                    "the graph cannot be nested: this layer's output is read both inside a block and after it",
                ));
            }
            let fork = match layer.op {
                Op::Add | Op::Concat | Op::Scale => self.idom[cur],
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
                | Op::Shuffle { .. }
                | Op::Slice { .. }
                | Op::Upsample(_)
                | Op::Deconv(_)
                | Op::LayerNorm { .. }
                | Op::Affine { .. } => layer.inputs.first().copied(),
            };
            let Some(fork) = fork.filter(|&f| f >= start && f < cur) else {
                return Err(Error::layer(
                    layer,
                    "the graph cannot be nested: this layer is reached by a path that bypasses the block it is in",
                ));
            };
            let branch = |input: usize| self.seq(fork, input);
            items.push(match layer.op {
                Op::Add => {
                    let [a, b] = layer.inputs[..] else {
                        return Err(Error::layer(layer, "an addition of other than two tensors"));
                    };
                    let (a, b) = (branch(a)?, branch(b)?);
                    if a.is_empty() && b.is_empty() {
                        return Err(Error::layer(
                            layer,
                            "adds a tensor to itself; the language's residual adds a body to its input",
                        ));
                    }
                    let (body, shortcut) = if count(&b) > count(&a) { (b, a) } else { (a, b) };
                    Item::Residual {
                        body,
                        shortcut,
                        join: cur,
                    }
                }
                Op::Concat => Item::Concat {
                    branches: layer
                        .inputs
                        .iter()
                        .map(|&i| branch(i))
                        .collect::<Result<_>>()?,
                    join: cur,
                },
                Op::Scale => {
                    let gate = match layer.inputs[..] {
                        [x, gate] if x == fork => gate,
                        [gate, x] if x == fork => gate,
                        _ => {
                            return Err(Error::layer(
                                layer,
                                "multiplies two computed tensors; the language's scale multiplies a block's input by a gate computed from it",
                            ))
                        }
                    };
                    let body = branch(gate)?;
                    if body.is_empty() {
                        return Err(Error::layer(
                            layer,
                            "multiplies a tensor by itself; the language's scale multiplies a block's input by a gate computed from it",
                        ));
                    }
                    Item::Scale { body, join: cur }
                }
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
                | Op::Shuffle { .. }
                | Op::Slice { .. }
                | Op::Upsample(_)
                | Op::Deconv(_)
                | Op::LayerNorm { .. }
                | Op::Affine { .. } => Item::Layer(cur),
            });
            cur = fork;
        }
        items.reverse();
        Ok(items)
    }
}
