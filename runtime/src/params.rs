//! From a [`Weights`] file to the parameters each kernel reads.
//!
//! - [`tensor_specs`] lists every tensor a graph needs, by DSL.md's names and
//!   PyTorch's shapes: `conv1.weight` `[K, Cin/g, Fh, Fw]`, `conv1.bias`,
//!   `dense1.weight` `[N, Nin]`, `bn1.weight/bias/running_mean/running_var`,
//!   `prelu1.weight` `[C]`.
//! - [`load_params`] checks a file against that list (a missing tensor, a
//!   wrong shape, a value that is not finite, a negative variance, and unused
//!   tensors unless allowed are errors naming the layer and tensor), then
//!   folds every bn that directly follows a conv or dense in the same plan
//!   step into that layer's weights and bias (`fold_batch_norm`), and reorders
//!   the columns of a dense (and the vectors of a bn or prelu) that reads a flattened
//!   volume from PyTorch's (C, H, W) order to ours (H, W, C). For a model
//!   that compiles its layers, it can leave the weights of the conv and dense
//!   layers that compiled kernels pack ([`LoadOptions::in_file`]) in the file
//!   ([`Weight::InFile`]) with the fold's factors beside them: the JIT packs
//!   them straight from the file, so their only copy is the packed one. Every
//!   other layer's weights are copied, so a step lowered to the reference
//!   kernels always finds them.
//! - [`random_weights`] initialises a graph like PyTorch's defaults, from a seed.
//!
//! Invariant: after loading, `Params::layers[i]` matches node `i`'s op and the
//! kernels need no further checks of lengths.

use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, Op, Shape};
use crate::memory::Budget;
use crate::reference::{check_len, permute_dense_weight_chw_to_hwc, BatchNorm, KernelError};
use crate::weights::Weights;
pub use cnnjit_ir::naming::{tensor_specs, TensorSpec};
use cnnjit_ir::plan::{self, Plan};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeSet;

/// What one node's kernel reads besides its inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerParams {
    /// No parameter (pools, activations, ...).
    None,
    /// A conv, deconv or dense: weights in PyTorch's layout (a dense's
    /// columns in HWC order), and a bias when the layer has one or a bn was
    /// folded into it (never into a deconv).
    Linear {
        /// `[K, Cin/g, Fh, Fw]`, `[Cin, K, Fh, Fw]` or `[N, Nin]`, row-major.
        weight: Weight,
        /// `[K]` or `[N]`.
        bias: Option<Vec<f32>>,
    },
    /// A bn that could not be folded into the layer before it.
    BatchNorm {
        /// gamma.
        gamma: Vec<f32>,
        /// beta.
        beta: Vec<f32>,
        /// Running mean.
        mean: Vec<f32>,
        /// Running variance.
        var: Vec<f32>,
    },
    /// A bn folded into the conv or dense before it: nothing left to do.
    Folded,
    /// A prelu's slopes, one per channel (a flat input's in HWC order).
    PRelu {
        /// `[C]`.
        slopes: Vec<f32>,
    },
    /// A layernorm's gamma and beta.
    LayerNorm {
        /// `[C]`.
        gamma: Vec<f32>,
        /// `[C]`.
        beta: Vec<f32>,
    },
    /// An affine's factor and shift: all ones where the layer has no
    /// weight, all zeros where it has no bias.
    Affine {
        /// `[C]`.
        scale: Vec<f32>,
        /// `[C]`.
        shift: Vec<f32>,
    },
}

/// A conv's or dense's weights.
#[derive(Clone, Debug, PartialEq)]
pub enum Weight {
    /// Copied out of the file, any folded bn applied: what the reference
    /// kernels read.
    Loaded(Vec<f32>),
    /// Left in the weights file, under the name `tensor`, for the JIT to pack
    /// from; each output channel's weights times its `scale` if a bn is folded
    /// into the layer (`codegen::fold`, which rounds as folding first would).
    InFile {
        /// The tensor's name.
        tensor: String,
        /// The folded bn's factor per output channel.
        scale: Option<Vec<f64>>,
    },
}

/// The parameters of a whole graph, one entry per node.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Indexed by node.
    pub layers: Vec<LayerParams>,
}

/// How strictly [`load_params`] treats the weights, and which it copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions<'a> {
    /// Accept tensors no layer uses (default: an error).
    pub allow_unused_tensors: bool,
    /// The conv and dense layers whose weights stay in the file
    /// ([`Weight::InFile`]) rather than be copied: those a compiled kernel
    /// packs (`LoweredStep::packed_layers`). A dense whose columns are
    /// reordered is copied all the same.
    pub in_file: &'a [NodeId],
}

/// Checks `weights` against `graph` and packs them for the kernels.
pub fn load_params(
    graph: &Graph,
    plan: &Plan,
    weights: &Weights,
    options: LoadOptions<'_>,
) -> Result<Params> {
    let specs = tensor_specs(graph);
    // Each tensor is checked and copied on its own (on every core: the copy
    // is most of loading, about 100 MB for ResNet-50); the first mistake in
    // graph order is the one reported, whatever the threads' timing.
    let fetched: Vec<Result<Vec<f32>>> = specs
        .par_iter()
        .map(|spec| {
            let copy = !stays_in_file(graph, spec, options.in_file);
            fetch(graph, weights, spec, copy)
        })
        .collect();
    let fetched = fetched.into_iter().collect::<Result<Vec<_>>>()?;
    let used: BTreeSet<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    if !options.allow_unused_tensors {
        let unused: Vec<String> = weights
            .names()
            .filter(|n| !used.contains(n))
            .map(String::from)
            .collect();
        if !unused.is_empty() {
            return Err(Error::UnusedTensors {
                net: graph.name.to_string(),
                names: unused,
            });
        }
    }
    let mut layers = vec![LayerParams::None; graph.nodes.len()];
    let mut tensors = specs.iter().zip(fetched).peekable();
    while let Some((spec, data)) = tensors.next() {
        let node = graph.node(spec.node);
        let mut take_next = |suffix: &str| -> Option<Vec<f32>> {
            let follows = tensors
                .peek()
                .is_some_and(|(next, _)| next.node == spec.node && next.name.ends_with(suffix));
            if follows {
                tensors.next().map(|(_, d)| d)
            } else {
                None
            }
        };
        layers[spec.node.index()] = match node.op {
            // A deconv's weights are never packed: always copied.
            Op::Deconv(_) => LayerParams::Linear {
                weight: Weight::Loaded(data),
                bias: take_next(".bias"),
            },
            Op::Conv2d(_) | Op::Dense(_) => LayerParams::Linear {
                weight: if stays_in_file(graph, spec, options.in_file) {
                    Weight::InFile {
                        tensor: spec.name.clone(),
                        scale: None,
                    }
                } else {
                    Weight::Loaded(data)
                },
                bias: take_next(".bias"),
            },
            Op::BatchNorm { .. } => {
                let beta = take_next(".bias").unwrap_or_default();
                let mean = take_next(".running_mean").unwrap_or_default();
                let var = take_next(".running_var").unwrap_or_default();
                LayerParams::BatchNorm {
                    gamma: data,
                    beta,
                    mean,
                    var,
                }
            }
            Op::PRelu => LayerParams::PRelu { slopes: data },
            Op::LayerNorm { .. } => LayerParams::LayerNorm {
                gamma: data,
                beta: take_next(".bias").unwrap_or_default(),
            },
            Op::Affine { weight, .. } => {
                let c = node.output.channels() as usize;
                let (scale, shift) = if weight {
                    (data, take_next(".bias"))
                } else {
                    (vec![1.0; c], Some(data))
                };
                LayerParams::Affine {
                    scale,
                    shift: shift.unwrap_or_else(|| vec![0.0; c]),
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
            | Op::Upsample(_) => LayerParams::None,
        };
    }
    reorder_flattened(graph, &mut layers)?;
    for step in &plan.steps {
        if let Some(bn) = plan::folded_bn(graph, step) {
            if let Op::BatchNorm { eps } = graph.node(bn).op {
                fold_batch_norm(&mut layers, step.nodes[0], bn, eps).map_err(|e| {
                    Error::Internal {
                        layer: graph.node(bn).name.to_string(),
                        source: e.into(),
                    }
                })?;
            }
        }
    }
    Ok(Params { layers })
}

/// Whether `spec` names weights left in the file: those of a layer in
/// `in_file`, a conv's, or a dense's whose columns need no reordering.
fn stays_in_file(graph: &Graph, spec: &TensorSpec, in_file: &[NodeId]) -> bool {
    let node = graph.node(spec.node);
    in_file.contains(&spec.node)
        && spec.name.ends_with(".weight")
        && match node.op {
            Op::Conv2d(_) => true,
            Op::Dense(_) => flattened_from(graph, node.inputs[0]).is_none(),
            Op::Input
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
        }
}

/// `spec`'s tensor in `weights`, checked (present, of its shape, finite, a
/// variance not negative) and, if `copy`, copied (else empty).
fn fetch(graph: &Graph, weights: &Weights, spec: &TensorSpec, copy: bool) -> Result<Vec<f32>> {
    let layer = graph.node(spec.node).name.to_string();
    let tensor = weights
        .get(&spec.name)
        .ok_or_else(|| Error::MissingTensor {
            layer: layer.clone(),
            tensor: spec.name.clone(),
            expected: spec.shape.clone(),
        })?;
    if tensor.shape != spec.shape {
        return Err(Error::WrongShape {
            layer,
            tensor: spec.name.clone(),
            expected: spec.shape.clone(),
            found: tensor.shape.clone(),
        });
    }
    // Whole chunks checked without a branch per value, so the check vectorises.
    let finite = |chunk: &[f32]| chunk.iter().fold(true, |all, x| all & x.is_finite());
    if let Some(bad) = tensor
        .data
        .chunks(1024)
        .find(|chunk| !finite(chunk))
        .and_then(|chunk| chunk.iter().find(|x| !x.is_finite()))
    {
        return Err(Error::BadValue {
            tensor: spec.name.clone(),
            reason: format!("holds {bad}; every value must be finite"),
        });
    }
    if spec.name.ends_with(".running_var") && tensor.data.iter().any(|&v| v < 0.0) {
        return Err(Error::BadValue {
            tensor: spec.name.clone(),
            reason: "a variance is negative".into(),
        });
    }
    Ok(if copy {
        tensor.data.clone()
    } else {
        Vec::new()
    })
}

/// Folds the bn at `bn` into the conv or dense at `anchor`, with
/// [`BatchNorm::affine`]'s per-channel `scale` and `shift` (in `f64`):
/// `W' = W scale` per output channel (each product rounded once to `f32`,
/// here or, for weights left in the file, as the JIT packs them) and
/// `b' = b scale + shift` (rounded once). Errors if the bn's tensors differ
/// in length.
pub fn fold_batch_norm(
    layers: &mut [LayerParams],
    anchor: NodeId,
    bn: NodeId,
    eps: f32,
) -> std::result::Result<(), KernelError> {
    let LayerParams::BatchNorm {
        gamma,
        beta,
        mean,
        var,
    } = std::mem::replace(&mut layers[bn.index()], LayerParams::Folded)
    else {
        return Ok(());
    };
    let LayerParams::Linear { weight, bias } = &mut layers[anchor.index()] else {
        return Ok(());
    };
    let affine = BatchNorm::new(&gamma, &beta, &mean, &var, eps).affine()?;
    let b = bias.get_or_insert_with(|| vec![0.0; affine.len()]);
    check_len("bias folding a bn", affine.len(), b.len())?;
    for (b, a) in b.iter_mut().zip(&affine) {
        *b = (f64::from(*b) * a.scale + a.shift) as f32;
    }
    let scale: Vec<f64> = affine.iter().map(|a| a.scale).collect();
    match weight {
        Weight::Loaded(weight) => {
            // `max(1)`: a layer without weights has no chunk, and no chunk may be empty.
            let per_channel = (weight.len() / scale.len().max(1)).max(1);
            weight
                .par_chunks_mut(per_channel)
                .zip(&scale)
                .for_each(|(weight, &s)| {
                    for w in weight {
                        *w = (f64::from(*w) * s) as f32;
                    }
                });
        }
        Weight::InFile { scale: folded, .. } => *folded = Some(scale),
    }
    Ok(())
}

/// The volume a flat tensor was flattened from, if PyTorch would order its
/// features (C, H, W): a flatten of a volume, through element-wise layers.
fn flattened_from(graph: &Graph, mut id: NodeId) -> Option<(usize, usize, usize)> {
    loop {
        let node = graph.node(id);
        match node.op {
            Op::Flatten => {
                return match graph.node(node.inputs[0]).output {
                    Shape::Volume { h, w, c } if h as usize * w as usize > 1 => {
                        Some((h as usize, w as usize, c as usize))
                    }
                    _ => None,
                };
            }
            Op::Activation(_)
            | Op::PRelu
            | Op::Dropout { .. }
            | Op::Identity
            | Op::BatchNorm { .. }
            | Op::LayerNorm { .. }
            | Op::Affine { .. } => id = node.inputs[0],
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
            | Op::Deconv(_) => return None,
        }
    }
}

/// Reorders a dense's columns, and a flat bn's, prelu's, layernorm's or affine's vectors, from PyTorch's
/// flatten order to ours, where they read a flattened volume.
fn reorder_flattened(graph: &Graph, layers: &mut [LayerParams]) -> Result<()> {
    for (id, node) in graph.layers() {
        let Some((h, w, c)) = flattened_from(graph, node.inputs[0]) else {
            continue;
        };
        let internal = |e: KernelError| Error::Internal {
            layer: node.name.to_string(),
            source: e.into(),
        };
        match &mut layers[id.index()] {
            LayerParams::Linear {
                weight: Weight::Loaded(weight),
                ..
            } if matches!(node.op, Op::Dense(_)) => {
                let n = weight.len() / (h * w * c).max(1);
                *weight = permute_dense_weight_chw_to_hwc(weight, n, h, w, c).map_err(internal)?;
            }
            LayerParams::BatchNorm {
                gamma,
                beta,
                mean,
                var,
            } => {
                for v in [gamma, beta, mean, var] {
                    *v = permute_dense_weight_chw_to_hwc(v, 1, h, w, c).map_err(internal)?;
                }
            }
            LayerParams::PRelu { slopes } => {
                *slopes = permute_dense_weight_chw_to_hwc(slopes, 1, h, w, c).map_err(internal)?;
            }
            LayerParams::LayerNorm { gamma: a, beta: b }
            | LayerParams::Affine { scale: a, shift: b } => {
                for v in [a, b] {
                    *v = permute_dense_weight_chw_to_hwc(v, 1, h, w, c).map_err(internal)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Takes the bytes of every tensor `graph` needs from `budget` (for a copy
/// of its weights, or random ones), without allocating.
pub fn reserve_weights(graph: &Graph, budget: &mut Budget) -> Result<()> {
    reserve(graph, budget, |_| true)
}

/// Takes from `budget` the bytes of every tensor [`load_params`] copies when
/// the layers in `in_file` keep their weights in the file, by the rule
/// [`load_params`] copies by, so a flattened dense's reordered copy and the
/// small vectors count too. With `in_file` empty this is [`reserve_weights`].
pub fn reserve_copied_weights(
    graph: &Graph,
    in_file: &[NodeId],
    budget: &mut Budget,
) -> Result<()> {
    reserve(graph, budget, |spec| !stays_in_file(graph, spec, in_file))
}

/// Takes the bytes of `graph`'s tensors that `which` selects from `budget`.
fn reserve(graph: &Graph, budget: &mut Budget, which: impl Fn(&TensorSpec) -> bool) -> Result<()> {
    let elements = (tensor_specs(graph).iter())
        .filter(|spec| which(spec))
        .map(|spec| {
            spec.shape
                .iter()
                .fold(1u64, |n, &d| n.saturating_mul(d as u64))
        })
        .fold(0u64, u64::saturating_add);
    budget.take(elements.saturating_mul(4), || {
        format!("the weights of net `{}`", graph.name)
    })
}

/// PyTorch's initial prelu slope (`nn.PReLU(init = 0.25)`).
pub const PRELU_SLOPE: f32 = 0.25;

/// Weights for `graph` initialised as PyTorch does by default, from `seed`:
/// conv and dense weights and biases uniform in `±1/sqrt(fan_in)` (Kaiming-uniform
/// with `a = sqrt(5)`), bn `gamma = 1`, `beta = 0`, `mean = 0`, `var = 1`,
/// prelu slopes `0.25`.
pub fn random_weights(graph: &Graph, seed: u64) -> Weights {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut weights = Weights::new();
    for spec in tensor_specs(graph) {
        let len = spec.shape.iter().product();
        let data: Vec<f32> = if spec.fan_in > 0 {
            let bound = 1.0 / (spec.fan_in as f32).sqrt();
            // 24 random bits to a uniform float in [-bound, bound).
            (0..len)
                .map(|_| ((rng.next_u32() >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0) * bound)
                .collect()
        } else if graph.node(spec.node).op == Op::PRelu {
            vec![PRELU_SLOPE; len]
        } else {
            let one = spec.name.ends_with(".weight") || spec.name.ends_with(".running_var");
            vec![if one { 1.0 } else { 0.0 }; len]
        };
        weights
            .insert(spec.name, spec.shape, data)
            .expect("a spec's data has its shape's length");
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input, a conv of one output channel with `weight` and bias 1,
    /// then a bn with gamma 3, beta 0.5, mean 1, var 3.
    fn conv_then_bn(weight: Weight) -> Vec<LayerParams> {
        vec![
            LayerParams::None,
            LayerParams::Linear {
                weight,
                bias: Some(vec![1.0]),
            },
            LayerParams::BatchNorm {
                gamma: vec![3.0],
                beta: vec![0.5],
                mean: vec![1.0],
                var: vec![3.0],
            },
        ]
    }

    #[test]
    fn folding_matches_bn_after_conv() {
        // Weight 2, eps 1: s = 3 / sqrt(4) = 1.5; W' = 3; b' = (1 - 1) * 1.5 + 0.5 = 0.5.
        let mut layers = conv_then_bn(Weight::Loaded(vec![2.0]));
        fold_batch_norm(&mut layers, NodeId(1), NodeId(2), 1.0).unwrap();
        assert_eq!(
            layers[1],
            LayerParams::Linear {
                weight: Weight::Loaded(vec![3.0]),
                bias: Some(vec![0.5])
            }
        );
        assert_eq!(layers[2], LayerParams::Folded);
    }

    #[test]
    fn folding_weights_left_in_the_file_keeps_their_factors() {
        // The bn above: the bias folds now, b' = 0.5; the weights keep
        // s = 3 / sqrt(3 + 1) = 1.5 for the JIT to apply as it packs them.
        let mut layers = conv_then_bn(Weight::InFile {
            tensor: "conv1.weight".into(),
            scale: None,
        });
        fold_batch_norm(&mut layers, NodeId(1), NodeId(2), 1.0).unwrap();
        assert_eq!(
            layers[1],
            LayerParams::Linear {
                weight: Weight::InFile {
                    tensor: "conv1.weight".into(),
                    scale: Some(vec![1.5]),
                },
                bias: Some(vec![0.5])
            }
        );
    }
}
