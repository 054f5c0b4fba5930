//! Verification: the written source, compiled by `cnnjit_lang` exactly as
//! `cnn!(file = ...)` compiles it, must be the DAG the model describes.
//!
//! The compiled graph is walked in the creation order the writer recorded;
//! node by node, its op must equal the DAG layer's op (kernel, stride,
//! padding, groups, eps, ...), its inputs must be the layer's inputs, and its
//! shape the layer's shape; the output's shape must be the one the ONNX file
//! declares. Then every tensor the runtime will ask for
//! (`cnnjit_ir::naming::tensor_specs`, names from the compiled graph) is
//! taken from the layer it belongs to, with its dimensions checked.

use crate::error::{Error, Result, VerifyError};
use crate::map::{nchw, Dag};
use crate::write::{Slot, Written};
use crate::NamedTensor;
use cnnjit_ir::Op;
use cnnjit_lang::CompiledNet;

/// The compiled net and its named weights, or what differs.
pub fn verify(dag: &Dag, written: &Written) -> Result<(CompiledNet, Vec<NamedTensor>)> {
    let mut nets =
        cnnjit_lang::compile_source(&written.source).map_err(|e| VerifyError::DoesNotCompile {
            diagnostic: e.to_string(),
        })?;
    let found = nets.len();
    let (Some(net), true) = (nets.pop(), found == 1) else {
        return Err(VerifyError::NetCount { found }.into());
    };
    let graph = &net.graph;
    if graph.nodes.len() != written.order.len() + 1 {
        return Err(VerifyError::LayerCount {
            source_layers: graph.nodes.len() - 1,
            model_layers: written.order.len(),
        }
        .into());
    }
    if graph.input_shape() != dag.layers[0].shape {
        return Err(VerifyError::Input {
            found: graph.input_shape(),
            expected: dag.layers[0].shape,
        }
        .into());
    }
    // The DAG layer whose value each compiled node holds.
    let mut value = vec![0; graph.nodes.len()];
    let mut seen = vec![false; dag.layers.len()];
    for (i, (node, slot)) in graph.nodes.iter().skip(1).zip(&written.order).enumerate() {
        let mut inputs: Vec<usize> = node.inputs.iter().map(|id| value[id.index()]).collect();
        let differs = |why: String| {
            Error::from(VerifyError::Layer {
                layer: node.name.to_string(),
                why,
            })
        };
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
        return Err(VerifyError::Output.into());
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
            return Err(VerifyError::OutputShape {
                found: graph.output_shape(),
                nchw: ours,
                declared: declared.clone(),
            }
            .into());
        }
    }
    let mut tensors = Vec::new();
    for spec in cnnjit_ir::naming::tensor_specs(graph) {
        let layer = &dag.layers[value[spec.node.index()]];
        let suffix = spec.name.rsplit('.').next().unwrap_or_default();
        let param = layer
            .params
            .iter()
            .find(|p| p.suffix == suffix)
            .ok_or_else(|| VerifyError::NoTensor {
                tensor: spec.name.clone(),
            })?;
        if param.dims != spec.shape {
            return Err(VerifyError::TensorDims {
                tensor: spec.name,
                found: param.dims.clone(),
                needed: spec.shape,
            }
            .into());
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
        return Err(VerifyError::TensorCount {
            held,
            used: tensors.len(),
        }
        .into());
    }
    Ok((net, tensors))
}
