//! The weight-naming contract: which tensors a graph needs, by name and shape.
//!
//! DSL.md's names and PyTorch's shapes: `conv1.weight` `[K, Cin/g, Fh, Fw]`,
//! `conv1.bias`, `deconv1.weight` `[Cin, K, Fh, Fw]` (PyTorch's
//! `ConvTranspose2d`), `dense1.weight` `[N, Nin]`,
//! `bn1.weight/bias/running_mean/running_var`, `prelu1.weight` `[C]` (its
//! slopes, PyTorch's `nn.PReLU(num_parameters = C)`), `layernorm1.weight/bias`
//! `[C]` (PyTorch's `nn.LayerNorm(C)`), `affine1.weight` and `affine1.bias`
//! `[C]` (each only where the layer has it). The runtime checks a weights
//! file against this list and the importer names the tensors it writes by it,
//! so both sides of a `.safetensors` file read one definition.

use crate::{Graph, NodeId, Op};

/// One tensor a graph needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The node it belongs to.
    pub node: NodeId,
    /// Its full name (`conv1.weight`).
    pub name: String,
    /// PyTorch's shape.
    pub shape: Vec<usize>,
    /// Fan-in of the layer (for initialisation), 0 for bn, prelu, layernorm
    /// and affine tensors.
    pub fan_in: usize,
}

/// Every tensor `graph` needs, in graph order.
pub fn tensor_specs(graph: &Graph) -> Vec<TensorSpec> {
    let mut specs = Vec::new();
    for (id, node) in graph.layers() {
        let input = graph.node(node.inputs[0]).output;
        let mut push = |suffix: &str, shape: Vec<usize>, fan_in: usize| {
            specs.push(TensorSpec {
                node: id,
                name: format!("{}.{suffix}", node.name),
                shape,
                fan_in,
            })
        };
        match node.op {
            Op::Conv2d(c) => {
                let per_group = (input.channels() / c.groups.max(1)) as usize;
                let (k, fh, fw) = (
                    c.out_channels as usize,
                    c.kernel.h as usize,
                    c.kernel.w as usize,
                );
                let fan_in = per_group * fh * fw;
                push("weight", vec![k, per_group, fh, fw], fan_in);
                if c.bias {
                    push("bias", vec![k], fan_in);
                }
            }
            // PyTorch's `ConvTranspose2d` layout, input channels first; each
            // output value sums `Cin Fh Fw / (stride_h stride_w)` terms on
            // average, but PyTorch's init reads fan-in off dimension 1: `K Fh Fw`.
            Op::Deconv(d) => {
                let (cin, k, fh, fw) = (
                    input.channels() as usize,
                    d.out_channels as usize,
                    d.kernel.h as usize,
                    d.kernel.w as usize,
                );
                let fan_in = k * fh * fw;
                push("weight", vec![cin, k, fh, fw], fan_in);
                if d.bias {
                    push("bias", vec![k], fan_in);
                }
            }
            Op::Dense(d) => {
                let (n, nin) = (d.out_features as usize, input.len() as usize);
                push("weight", vec![n, nin], nin);
                if d.bias {
                    push("bias", vec![n], nin);
                }
            }
            Op::BatchNorm { .. } => {
                let c = node.output.channels() as usize;
                for suffix in ["weight", "bias", "running_mean", "running_var"] {
                    push(suffix, vec![c], 0);
                }
            }
            Op::PRelu => push("weight", vec![node.output.channels() as usize], 0),
            Op::LayerNorm { .. } => {
                let c = node.output.channels() as usize;
                push("weight", vec![c], 0);
                push("bias", vec![c], 0);
            }
            Op::Affine { weight, bias } => {
                let c = node.output.channels() as usize;
                if weight {
                    push("weight", vec![c], 0);
                }
                if bias {
                    push("bias", vec![c], 0);
                }
            }
            Op::Input
            | Op::Pool2d(_)
            | Op::GlobalPool(_)
            | Op::Flatten
            | Op::Activation(_)
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Identity
            | Op::Lrn(_)
            | Op::Concat
            | Op::Add
            | Op::Scale
            | Op::Shuffle { .. }
            | Op::Slice { .. }
            | Op::Upsample(_) => {}
        }
    }
    specs
}
