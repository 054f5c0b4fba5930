//! Verification: the written source, compiled by `cnnjit_compiler` exactly as
//! `cnn!(file = ...)` compiles it, must be the DAG the model describes.
//!
//! The compiled graph is walked in the creation order the writer recorded;
//! node by node, its op must equal the DAG layer's op (kernel, stride,
//! padding, groups, eps, ...), its inputs must be the layer's inputs, and its
//! shape the layer's shape; the output's shape must be the one the ONNX file
//! declares. Then every tensor the runtime will ask for
//! (`cnnjit_runtime::params::tensor_specs`, names from the compiled graph) is
//! taken from the layer it belongs to, with its dimensions checked.

use crate::error::{Error, Result};
use crate::map::{nchw, Dag};
use crate::write::{Slot, Written};
use crate::NamedTensor;
use cnnjit_compiler::ir::Op;
use cnnjit_compiler::CompiledNet;

/// The compiled net and its named weights, or what differs.
pub fn verify(dag: &Dag, written: &Written) -> Result<(CompiledNet, Vec<NamedTensor>)> {
    let mut nets = cnnjit_compiler::compile_source(&written.source)
        .map_err(|e| Error::Verify(format!("the written source does not compile: {e}")))?;
    let (Some(net), true) = (nets.pop(), nets.is_empty()) else {
        return Err(Error::Verify(
            "the written source holds other than one net".into(),
        ));
    };
    let graph = &net.graph;
    if graph.nodes.len() != written.order.len() + 1 {
        return Err(Error::Verify(format!(
            "the source compiles to {} layers, the model has {}",
            graph.nodes.len() - 1,
            written.order.len()
        )));
    }
    if graph.input_shape() != dag.layers[0].shape {
        return Err(Error::Verify(format!(
            "input {} instead of {}",
            graph.input_shape(),
            dag.layers[0].shape
        )));
    }
    // The DAG layer whose value each compiled node holds.
    let mut value = vec![0; graph.nodes.len()];
    let mut seen = vec![false; dag.layers.len()];
    for (i, (node, slot)) in graph.nodes.iter().skip(1).zip(&written.order).enumerate() {
        let mut inputs: Vec<usize> = node.inputs.iter().map(|id| value[id.index()]).collect();
        let differs = |what: String| Error::Verify(format!("layer `{}`: {what}", node.name));
        value[i + 1] = match *slot {
            Slot::Alias(id) => {
                if node.op != Op::Identity || inputs != [id] {
                    return Err(differs("an identity was expected".into()));
                }
                id
            }
            Slot::Layer(id) => {
                let layer = &dag.layers[id];
                if std::mem::replace(&mut seen[id], true) {
                    return Err(Error::layer(
                        layer,
                        "the graph cannot be nested: the layer would be written twice",
                    ));
                }
                if node.op != layer.op {
                    return Err(differs(format!(
                        "compiles to {:?}, the model has {:?}",
                        node.op, layer.op
                    )));
                }
                let mut expected = layer.inputs.clone();
                // Where the join's order does not matter (checked by shape:
                // a scale's gate has the input's shape or is (1,1,C) and then
                // the DAG put it second), compare as sets.
                if matches!(node.op, Op::Add | Op::Scale) {
                    inputs.sort_unstable();
                    expected.sort_unstable();
                }
                if inputs != expected {
                    return Err(differs(format!(
                        "reads layers {inputs:?}, the model's node `{}` reads {expected:?}",
                        layer.node
                    )));
                }
                if node.output != layer.shape {
                    return Err(differs(format!(
                        "has shape {}, the model {}",
                        node.output, layer.shape
                    )));
                }
                id
            }
        };
    }
    if value.last() != Some(&dag.output) {
        return Err(Error::Verify(
            "the net's last layer is not the model's output".into(),
        ));
    }
    if let Some(declared) = &dag.declared_output {
        let ours = nchw(graph.output_shape());
        let agrees = declared.len() == ours.len()
            && declared
                .iter()
                .zip(&ours)
                .skip(1)
                .all(|(d, &o)| d.is_none_or(|d| d == o as i64));
        if !agrees {
            return Err(Error::Verify(format!(
                "the output is {} ({ours:?} in NCHW), the model declares {declared:?}",
                graph.output_shape()
            )));
        }
    }
    let mut tensors = Vec::new();
    for spec in cnnjit_runtime::params::tensor_specs(graph) {
        let layer = &dag.layers[value[spec.node.index()]];
        let suffix = spec.name.rsplit('.').next().unwrap_or_default();
        let param = layer
            .params
            .iter()
            .find(|p| p.suffix == suffix)
            .ok_or_else(|| Error::Verify(format!("no tensor for `{}`", spec.name)))?;
        if param.dims != spec.shape {
            return Err(Error::Verify(format!(
                "`{}` has dimensions {:?}, the net needs {:?}",
                spec.name, param.dims, spec.shape
            )));
        }
        tensors.push(NamedTensor {
            name: spec.name,
            dims: param.dims.clone(),
            values: param.values.clone(),
        });
    }
    let held: usize = seen
        .iter()
        .zip(&dag.layers)
        .filter(|(s, _)| **s)
        .map(|(_, l)| l.params.len())
        .sum();
    if held != tensors.len() {
        return Err(Error::Verify(format!(
            "the model's layers hold {held} tensors, the net uses {}",
            tensors.len()
        )));
    }
    Ok((net, tensors))
}
