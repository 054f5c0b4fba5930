//! Graphviz DOT rendering of a [`Graph`]: one node per layer labelled with
//! its name, hyper-parameters and output shape; concat, residual adds and
//! scales are drawn as their own (differently shaped) nodes, so branches and
//! joins are visible.

use crate::{Graph, Op};
use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The graph in DOT, top to bottom.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", escape(&graph.name));
    let _ = writeln!(out, "  rankdir=TB;");
    let _ = writeln!(
        out,
        "  node [shape=box, style=rounded, fontname=\"Helvetica\"];"
    );
    for (i, node) in graph.nodes.iter().enumerate() {
        let hyper = node.op.hyper_parameters();
        let mut label = format!("{}\\n{}", escape(&node.name), node.op.kind());
        if !hyper.is_empty() {
            let _ = write!(label, " {}", escape(&hyper));
        }
        let _ = write!(label, "\\n{}", node.output);
        let shape = match node.op {
            Op::Input => ", shape=oval",
            Op::Concat | Op::Add | Op::Scale => {
                ", shape=diamond, style=filled, fillcolor=\"#eeeeee\""
            }
            Op::Conv2d(_)
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
            | Op::Affine { .. } => "",
        };
        let _ = writeln!(out, "  n{i} [label=\"{label}\"{shape}];");
        for input in node.inputs.iter() {
            let _ = writeln!(out, "  n{} -> n{i};", input.0);
        }
    }
    out.push_str("}\n");
    out
}
