//! The cost model: parameters, FLOPs and MACs per layer by the lecture's
//! rules, and the memory figures of one image.
//!
//! The rules (DSL.md, and ground_truth.json's conventions):
//! - conv and dwconv: params `K (Fh Fw Cin/g + 1)` (no `+ 1` without bias),
//!   MACs = FLOPs = `Hout Wout K Fh Fw Cin/g`;
//! - deconv (transposed conv): params `Cin K Fh Fw + K` (no `+ K` without
//!   bias), MACs = FLOPs = `H W Cin K Fh Fw` over its input's `H x W`: each
//!   input value meets each tap of each output channel once, the taps the
//!   padding crops included;
//! - dense: params `N (Nin + 1)`, MACs = FLOPs = `N Nin`;
//! - upsample: nearest 0 (a copy, as concat), bilinear `4 Hout Wout C`
//!   FLOPs (four weighted inputs per output value, as a 2x2 pool window) and
//!   no MAC;
//! - pools: FLOPs `Hout Wout C Fh Fw` (a global pool: `H W C`), no MAC;
//! - bn: `2C` learnable parameters, and `2C` running statistics counted
//!   apart as buffers; activations, adds, concat and scale count nothing;
//! - prelu: `C` learnable parameters (one slope per channel), and nothing
//!   else: its work per element (a compare and a multiply) is leaky_relu's,
//!   which as every activation counts no FLOP and no MAC, and like every
//!   activation function its output is not stored (below).
//!
//!
//! Training (the lecture's questions on backward passes and memory):
//! - `stored_elements` sums the outputs of every layer a framework keeps for
//!   the backward pass: all but activation functions (softmax included),
//!   dropout, identity, flatten and slice, which run in place or as views
//!   (a slice is PyTorch's `narrow` or `chunk`, a view; a shuffle's
//!   `contiguous()` copies, and is stored as a concat is, as are a deconv's
//!   and an upsample's outputs);
//! - `train_macs` is the forward MACs plus, for every conv, dwconv, deconv
//!   and dense,
//!   the gradient with respect to its weights (its forward MACs again) and,
//!   unless no learnable layer lies upstream of it (the first weighted layer
//!   of a chain), the gradient with respect to its input (again as many);
//! - [`training_bytes`]: `4 (2 params + batch (input + 2 stored))`, to which
//!   an [`Optimizer`]'s state adds `4 params` per copy it keeps (SGD none,
//!   momentum one, Adam two).
//!
//! Every sum is checked: a network whose figures overflow `u64` is
//! [`ShapeError::Overflow`].

use crate::shape::ShapeError;
use crate::{Graph, Op, Shape};

/// The figures of one layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCost {
    /// Learnable parameters.
    pub params: u64,
    /// Non-learnable state (bn running mean and variance).
    pub buffers: u64,
    /// FLOPs by the lecture's rule (one multiply-accumulate = one FLOP, pool windows counted).
    pub flops: u64,
    /// Multiply-accumulates of conv, dwconv and dense.
    pub macs: u64,
}

/// The figures of a whole network, for one image, in `f32`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Per node, in graph order (the input's figures are zero).
    pub layers: Vec<LayerCost>,
    /// Learnable parameters.
    pub params: u64,
    /// Non-learnable state (bn running statistics).
    pub buffers: u64,
    /// FLOPs by the lecture's rule.
    pub flops: u64,
    /// Multiply-accumulates of conv, dwconv and dense.
    pub macs: u64,
    /// `4 * params`.
    pub param_bytes: u64,
    /// `4 *` the output elements of every layer.
    pub activation_bytes: u64,
    /// Output elements of every layer kept for the backward pass.
    pub stored_elements: u64,
    /// Multiply-accumulates of one training step of one image (forward and backward).
    pub train_macs: u64,
    /// `f32` elements of one input.
    pub input_elements: u64,
}

/// Bytes to train with `batch` images in `f32`, without optimizer state: the
/// parameters and their gradients, and per image the input and every stored
/// output and its gradient. The generated `training_bytes` is this function.
/// It saturates at `u64::MAX` rather than overflow.
pub const fn training_bytes(
    params: u64,
    input_elements: u64,
    stored_elements: u64,
    batch: u64,
) -> u64 {
    let per_image = input_elements.saturating_add(stored_elements.saturating_mul(2));
    params
        .saturating_mul(2)
        .saturating_add(batch.saturating_mul(per_image))
        .saturating_mul(4)
}

/// The optimizer whose state is kept beside the parameters while training,
/// for the training memory with its state ([`Optimizer::state_bytes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Optimizer {
    /// Plain SGD: no state.
    #[default]
    Sgd,
    /// SGD with momentum: one copy of the parameters (the velocity).
    Momentum,
    /// Adam: two copies (the first and second moments).
    Adam,
}

impl Optimizer {
    /// Copies of the parameters the optimizer keeps: 0, 1 or 2.
    pub const fn state_copies(self) -> u64 {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum => 1,
            Optimizer::Adam => 2,
        }
    }

    /// Bytes of the optimizer's state for `params` `f32` parameters,
    /// `4 params copies`, to add to [`training_bytes`] (which counts none).
    /// It saturates at `u64::MAX` rather than overflow.
    pub const fn state_bytes(self, params: u64) -> u64 {
        params.saturating_mul(4).saturating_mul(self.state_copies())
    }
}

/// Whether a layer's output is kept for the backward pass (not in place, not a view).
pub fn is_stored(op: &Op) -> bool {
    match op {
        Op::Input
        | Op::Activation(_)
        | Op::PRelu
        | Op::Softmax
        | Op::Dropout { .. }
        | Op::Identity
        | Op::Flatten
        | Op::Slice { .. } => false,
        Op::LayerNorm { .. } | Op::Affine { .. } => true,
        Op::Conv2d(_)
        | Op::Dense(_)
        | Op::Pool2d(_)
        | Op::GlobalPool(_)
        | Op::BatchNorm { .. }
        | Op::Lrn(_)
        | Op::Concat
        | Op::Add
        | Op::Scale
        | Op::Shuffle { .. }
        | Op::Upsample(_)
        | Op::Deconv(_) => true,
    }
}

/// The figures of one node, from its op, its input shapes and its output shape.
pub fn layer_cost(op: &Op, inputs: &[Shape], output: Shape) -> Result<LayerCost, ShapeError> {
    let o = ShapeError::Overflow;
    let input = inputs.first().copied().unwrap_or(output);
    let product = |xs: &[u64]| {
        xs.iter()
            .try_fold(1u64, |acc, &x| acc.checked_mul(x))
            .ok_or(ShapeError::Overflow)
    };
    Ok(match op {
        Op::Conv2d(c) => {
            let per_output = product(&[
                c.kernel.h as u64,
                c.kernel.w as u64,
                (input.channels() / c.groups.max(1)) as u64,
            ])?;
            let weights = product(&[c.out_channels as u64, per_output])?;
            let bias = if c.bias { c.out_channels as u64 } else { 0 };
            let macs = product(&[output.len(), per_output])?;
            LayerCost {
                params: weights.checked_add(bias).ok_or(o)?,
                buffers: 0,
                flops: macs,
                macs,
            }
        }
        // Each input value times each tap of each output channel's kernel,
        // taps the padding crops included: the scatter a transposed conv
        // computes (`H W Cin K Fh Fw`), also the count of the conv whose
        // gradient it is.
        Op::Deconv(d) => {
            let per_input =
                product(&[d.out_channels as u64, d.kernel.h as u64, d.kernel.w as u64])?;
            let weights = product(&[input.channels() as u64, per_input])?;
            let bias = if d.bias { d.out_channels as u64 } else { 0 };
            let macs = product(&[input.len(), per_input])?;
            LayerCost {
                params: weights.checked_add(bias).ok_or(o)?,
                buffers: 0,
                flops: macs,
                macs,
            }
        }
        // Bilinear: each output value a weighted sum of 4 inputs, 4 FLOPs
        // (as a 2x2 average pool's window counts 4); no MAC, as pools.
        // Nearest copies, as concat: nothing.
        Op::Upsample(u) => LayerCost {
            flops: if u.bilinear {
                product(&[output.len(), 4])?
            } else {
                0
            },
            ..LayerCost::default()
        },
        Op::Dense(d) => {
            let macs = product(&[d.out_features as u64, input.len()])?;
            let bias = if d.bias { d.out_features as u64 } else { 0 };
            LayerCost {
                params: macs.checked_add(bias).ok_or(o)?,
                buffers: 0,
                flops: macs,
                macs,
            }
        }
        Op::Pool2d(p) => LayerCost {
            flops: product(&[output.len(), p.kernel.h as u64, p.kernel.w as u64])?,
            ..LayerCost::default()
        },
        Op::GlobalPool(_) => LayerCost {
            flops: input.len(),
            ..LayerCost::default()
        },
        Op::BatchNorm { .. } => {
            let c = 2 * output.channels() as u64;
            LayerCost {
                params: c,
                buffers: c,
                ..LayerCost::default()
            }
        }
        // One learned slope per channel. Per element prelu computes what
        // leaky_relu does (a compare, then a multiply by the slope on the
        // negative side), only with the slope read per channel; the lecture
        // counts no FLOP for an activation, so prelu counts none either.
        Op::PRelu => LayerCost {
            params: output.channels() as u64,
            ..LayerCost::default()
        },
        // gamma and beta per channel. At inference bn is an affine map and
        // counts no FLOP; layernorm also computes each pixel's statistics,
        // a reduction over its channels, which counts as global pooling's
        // does (one FLOP per element reduced): one for the mean, one for
        // the variance. Normalising, scaling and shifting count none, as bn's.
        Op::LayerNorm { .. } => LayerCost {
            params: 2 * output.channels() as u64,
            flops: input.len().checked_mul(2).ok_or(o)?,
            ..LayerCost::default()
        },
        // A factor and a shift per channel, each where present; no FLOP, as bn.
        Op::Affine { weight, bias } => LayerCost {
            params: (u64::from(*weight) + u64::from(*bias)) * output.channels() as u64,
            ..LayerCost::default()
        },
        Op::Input
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
        | Op::Slice { .. } => LayerCost::default(),
    })
}

/// The figures of a whole graph.
pub fn figures(graph: &Graph) -> Result<Figures, ShapeError> {
    let mut f = Figures::default();
    let add = |acc: &mut u64, x: u64| -> Result<(), ShapeError> {
        *acc = acc.checked_add(x).ok_or(ShapeError::Overflow)?;
        Ok(())
    };
    // Whether some learnable layer lies at or before each node's output.
    let mut learnable_upstream = vec![false; graph.nodes.len()];
    f.input_elements = graph.input_shape().len();
    for (i, node) in graph.nodes.iter().enumerate() {
        let inputs: Vec<Shape> = node
            .inputs
            .iter()
            .map(|id| graph.node(*id).output)
            .collect();
        let cost = layer_cost(&node.op, &inputs, node.output)?;
        let upstream = node.inputs.iter().any(|id| learnable_upstream[id.index()]);
        learnable_upstream[i] = upstream || cost.params > 0;
        // The weight gradient costs the forward MACs again; the input gradient too,
        // unless nothing learnable lies upstream (the first weighted layer).
        let backward = if upstream {
            cost.macs.checked_mul(2).ok_or(ShapeError::Overflow)?
        } else {
            cost.macs
        };
        add(
            &mut f.train_macs,
            cost.macs
                .checked_add(backward)
                .ok_or(ShapeError::Overflow)?,
        )?;
        if is_stored(&node.op) {
            add(&mut f.stored_elements, node.output.len())?;
        }
        add(&mut f.params, cost.params)?;
        add(&mut f.buffers, cost.buffers)?;
        add(&mut f.flops, cost.flops)?;
        add(&mut f.macs, cost.macs)?;
        if i > 0 {
            add(
                &mut f.activation_bytes,
                node.output
                    .len()
                    .checked_mul(4)
                    .ok_or(ShapeError::Overflow)?,
            )?;
        }
        f.layers.push(cost);
    }
    f.param_bytes = f.params.checked_mul(4).ok_or(ShapeError::Overflow)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::{training_bytes, Optimizer};

    /// LeNet-5 (61,706 parameters, tests/data/ground_truth.json): momentum
    /// keeps one copy, 4 x 61,706 = 246,824 bytes; Adam two, 493,648 bytes.
    /// With LeNet-5's 1,024 inputs and 8,094 stored elements, training at
    /// batch 1 takes 4 (2 x 61,706 + 1,024 + 2 x 8,094) = 562,496 bytes, so
    /// with Adam 562,496 + 493,648 = 1,056,144.
    #[test]
    fn state_bytes_count_four_bytes_per_parameter_per_copy() {
        assert_eq!(Optimizer::Sgd.state_bytes(61_706), 0);
        assert_eq!(Optimizer::Momentum.state_bytes(61_706), 246_824);
        assert_eq!(Optimizer::Adam.state_bytes(61_706), 493_648);
        assert_eq!(
            training_bytes(61_706, 1_024, 8_094, 1) + Optimizer::Adam.state_bytes(61_706),
            1_056_144
        );
        assert_eq!(Optimizer::default(), Optimizer::Sgd);
    }

    #[test]
    fn state_bytes_saturate() {
        assert_eq!(Optimizer::Adam.state_bytes(u64::MAX / 4), u64::MAX);
        assert_eq!(Optimizer::Momentum.state_bytes(u64::MAX), u64::MAX);
    }
}
