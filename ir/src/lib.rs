//! cnnjit-ir: the plain-data description of a network, and the passes over it
//! that need neither syntax nor a code generator.
//!
//! ```text
//! Graph (this module, shapes by shape::output_shape) --cost--> Figures --summary--> table
//!       --plan--> Plan (steps + arena)          naming: the tensors a graph's weights hold
//! ```
//!
//! The language (`cnnjit-lang`) builds a [`Graph`]; the code generator
//! (`cnnjit-codegen`), the runtime and the importer read it. This crate
//! depends on neither syn nor Cranelift, so a program that only runs a network
//! never builds them.
//!
//! # The graph
//!
//! The one plain-data description of a network that every pass after the
//! language's expansion reads.
//!
//! Invariants (checked by [`Graph::verify`]):
//! - node 0 is the only [`Op::Input`] and has no inputs;
//! - nodes are in topological order: every input of node `i` is a node `< i`;
//! - the last node is the network's output;
//! - every node's `output` is the shape [`crate::shape::output_shape`] gives for
//!   its op and its inputs' shapes;
//! - names are unique.
//!
//! A broken invariant is a [`GraphError`] naming the node ([`At`]: its id
//! and name) and what was expected and found.
//!
//! Every field is a plain value, a `&'static str`-or-`String` ([`Str`]) or a
//! borrowed-or-owned slice ([`List`]), so that the `cnn!` macro can embed a
//! whole graph as a `const` built from literals while the CLI and the passes
//! build owned ones. Run time never re-parses a network.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod batch;
pub mod cost;
pub mod dot;
pub mod naming;
pub mod plan;
pub mod shape;
pub mod summary;

use std::borrow::Cow;
use std::fmt;

/// A name: borrowed when the macro embeds a graph, owned when a pass builds one.
pub type Str = Cow<'static, str>;
/// A list: borrowed when the macro embeds a graph, owned when a pass builds one.
pub type List<T> = Cow<'static, [T]>;

/// The shape of one image's tensor: a volume in (height, width, channels)
/// order, or a flat vector of features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A volume, laid out height, width, channel (HWC).
    Volume {
        /// Height.
        h: u32,
        /// Width.
        w: u32,
        /// Channels.
        c: u32,
    },
    /// A flat vector of `n` features, e.g. after `flatten`.
    Flat(u32),
}

impl Shape {
    /// Number of `f32` elements of one image's tensor.
    pub const fn len(&self) -> u64 {
        match *self {
            Shape::Volume { h, w, c } => h as u64 * w as u64 * c as u64,
            Shape::Flat(n) => n as u64,
        }
    }

    /// Whether the tensor holds no element (never true of a checked graph).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Channels of a volume; features of a flat vector.
    pub const fn channels(&self) -> u32 {
        match *self {
            Shape::Volume { c, .. } => c,
            Shape::Flat(n) => n,
        }
    }

    /// The dimensions in (height, width, channels) order, `[n]` once flat.
    pub fn dims(&self) -> Vec<u32> {
        match *self {
            Shape::Volume { h, w, c } => vec![h, w, c],
            Shape::Flat(n) => vec![n],
        }
    }
}

impl fmt::Display for Shape {
    /// The lecture's notation: `(28,28,6)`, and `(400,)` once flat.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shape::Volume { h, w, c } => write!(f, "({h},{w},{c})"),
            Shape::Flat(n) => write!(f, "({n},)"),
        }
    }
}

/// A pair of sizes along height and width: a kernel, a stride or a dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hw {
    /// Along the height.
    pub h: u32,
    /// Along the width.
    pub w: u32,
}

impl Hw {
    /// The same size along both axes.
    pub const fn square(n: u32) -> Hw {
        Hw { h: n, w: n }
    }
}

impl fmt::Display for Hw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.h, self.w)
    }
}

/// Zero padding on each side, resolved to numbers (`same` already applied).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Padding {
    /// Rows added above.
    pub top: u32,
    /// Columns added on the left.
    pub left: u32,
    /// Rows added below.
    pub bottom: u32,
    /// Columns added on the right.
    pub right: u32,
}

impl Padding {
    /// Whether no padding is added on any side.
    pub const fn is_zero(&self) -> bool {
        self.top == 0 && self.left == 0 && self.bottom == 0 && self.right == 0
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.top == self.bottom && self.left == self.right {
            write!(f, "({},{})", self.top, self.left)
        } else {
            write!(
                f,
                "({},{},{},{})",
                self.top, self.left, self.bottom, self.right
            )
        }
    }
}

/// A 2-D convolution (`conv`), or a depthwise one (`dwconv`: one group per
/// input channel, `out_channels = C * multiplier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2d {
    /// Output channels (K).
    pub out_channels: u32,
    /// Kernel size (Fh x Fw).
    pub kernel: Hw,
    /// Stride.
    pub stride: Hw,
    /// Dilation.
    pub dilation: Hw,
    /// Zero padding.
    pub padding: Padding,
    /// Channel groups; the weights are `[K, Cin/groups, Fh, Fw]`.
    pub groups: u32,
    /// Whether a bias is added.
    pub bias: bool,
    /// Written as `dwconv` (groups equal to the input channels).
    pub depthwise: bool,
}

impl Conv2d {
    /// `conv(out_channels, 1x1, stride, bias = false)`: a projection of
    /// each pixel's channels, one group, no padding.
    pub fn pointwise(out_channels: u32, stride: Hw) -> Conv2d {
        Conv2d {
            out_channels,
            kernel: Hw::square(1),
            stride,
            dilation: Hw::square(1),
            padding: Padding::default(),
            groups: 1,
            bias: false,
            depthwise: false,
        }
    }
}

/// A fully connected layer (`dense`, `fc`) on a flat input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dense {
    /// Output features (N).
    pub out_features: u32,
    /// Whether a bias is added.
    pub bias: bool,
}

/// Which reduction a pooling layer takes over its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// The maximum.
    Max,
    /// The mean.
    Avg,
}

/// A windowed pooling layer (`maxpool`, `avgpool`), with PyTorch's semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window size.
    pub kernel: Hw,
    /// Stride.
    pub stride: Hw,
    /// Padding (implicit -inf for max, zeros for average).
    pub padding: Padding,
    /// PyTorch's `ceil_mode`.
    pub ceil: bool,
    /// Whether padded zeros count in an average's divisor (PyTorch's default).
    pub count_include_pad: bool,
}

/// `upsample(s)`: each pixel repeated `s x s` times (nearest, PyTorch's
/// `nn.Upsample(scale_factor = s)`), or bilinear interpolation with
/// `align_corners = False` (ONNX `Resize` linear, `half_pixel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Upsample {
    /// The integer factor along both axes.
    pub scale: u32,
    /// Bilinear rather than nearest.
    pub bilinear: bool,
}

/// `deconv(K, FhxFw, stride = s, pad = p)`: a transposed convolution
/// (PyTorch's `nn.ConvTranspose2d`, one group, no output padding). Output
/// `(H - 1) s - 2p + Fh` by `(W - 1) s - 2p + Fw`; the weights are
/// `[Cin, K, Fh, Fw]`, PyTorch's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deconv {
    /// Output channels (K).
    pub out_channels: u32,
    /// Kernel size (Fh x Fw).
    pub kernel: Hw,
    /// Stride.
    pub stride: Hw,
    /// Rows and columns cropped from each side of the full output.
    pub padding: u32,
    /// Whether a bias is added.
    pub bias: bool,
}

/// An `f32` that is equal, hashed and ordered by its bits, so that a value
/// carrying one (a kernel spec, an activation) can key a map or be compared
/// for identity: `NaN` equals a `NaN` of the same bits, `0.0` and `-0.0`
/// differ. The order is the bits' (as `u32`), not the numbers'.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct F32Bits(u32);

impl F32Bits {
    /// The key of `x`.
    pub const fn new(x: f32) -> F32Bits {
        F32Bits(x.to_bits())
    }

    /// The value.
    pub const fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl From<f32> for F32Bits {
    fn from(x: f32) -> F32Bits {
        F32Bits::new(x)
    }
}

impl fmt::Debug for F32Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// An element-wise activation function. It is equal and hashed by the bits
/// of its parameter ([`F32Bits`]), so that kernel specs fusing it can be
/// deduplicated.
#[derive(Clone, Copy, Debug)]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// tanh(x).
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// x * sigmoid(x) (SiLU).
    Swish,
    /// x * relu6(x + 3) / 6.
    HardSwish,
    /// relu6(x + 3) / 6.
    HardSigmoid,
    /// x for x >= 0, else slope * x.
    LeakyRelu(f32),
    /// `x Phi(x) = x (1 + erf(x / sqrt 2)) / 2`, the exact (erf) form of
    /// PyTorch's `nn.GELU()`.
    Gelu,
}

impl Activation {
    /// What equality and hashing compare: the variant and its parameter's bits.
    fn key(&self) -> (std::mem::Discriminant<Activation>, Option<F32Bits>) {
        let parameter = match *self {
            Activation::LeakyRelu(slope) => Some(F32Bits::new(slope)),
            Activation::Relu
            | Activation::Relu6
            | Activation::Tanh
            | Activation::Sigmoid
            | Activation::Swish
            | Activation::HardSwish
            | Activation::HardSigmoid
            | Activation::Gelu => None,
        };
        (std::mem::discriminant(self), parameter)
    }
}

impl PartialEq for Activation {
    fn eq(&self, other: &Activation) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Activation {}

impl std::hash::Hash for Activation {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// PyTorch's `LocalResponseNorm` across channels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lrn {
    /// Number of neighbouring channels summed over.
    pub size: u32,
    /// Multiplicative factor.
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Additive constant.
    pub k: f32,
}

/// What a node computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// The network's input (node 0 only).
    Input,
    /// `conv` and `dwconv`.
    Conv2d(Conv2d),
    /// `dense`.
    Dense(Dense),
    /// `maxpool`, `avgpool`.
    Pool2d(Pool2d),
    /// `global_maxpool`, `global_avgpool`: a volume to `(1,1,C)`.
    GlobalPool(PoolKind),
    /// `flatten`: a volume to `(H W C,)`; a view, no data moves.
    Flatten,
    /// `bn`: batch normalisation with running statistics.
    BatchNorm {
        /// Added to the variance.
        eps: f32,
    },
    /// An element-wise activation.
    Activation(Activation),
    /// `prelu`: `max(x, 0) + a_c min(x, 0)` with a learned slope `a_c` per
    /// channel of its input (PyTorch's `nn.PReLU(num_parameters = C)`).
    PRelu,
    /// Softmax over the channels.
    Softmax,
    /// `dropout(p)`: nothing at inference.
    Dropout {
        /// Drop probability during training.
        p: f32,
    },
    /// `identity`: nothing.
    Identity,
    /// `lrn`.
    Lrn(Lrn),
    /// Channel concatenation of its inputs, in order.
    Concat,
    /// Element-wise sum of its two inputs (a residual's join).
    Add,
    /// Its first input multiplied channel-wise by its second (`scale`).
    Scale,
    /// `shuffle(groups)`: ShuffleNet's channel shuffle (PyTorch's
    /// `channel_shuffle`): the channels seen as `groups x (C / groups)`,
    /// transposed, so output channel `j groups + g` is input channel
    /// `g C / groups + j`. A permutation of each pixel's channels.
    Shuffle {
        /// The groups; they divide the channels.
        groups: u32,
    },
    /// `slice(first, count)`: the channels `[first, first + count)` of its
    /// input (PyTorch's `x.narrow(1, first, count)`; ShuffleNet's
    /// `x.chunk(2, dim = 1)` is two of them).
    Slice {
        /// The first channel taken.
        first: u32,
        /// How many channels are taken.
        count: u32,
    },
    /// `upsample(s)`, nearest or bilinear.
    Upsample(Upsample),
    /// `deconv`: a transposed convolution.
    Deconv(Deconv),
    /// `layernorm(eps)`: each pixel normalised over its channels, then
    /// scaled and shifted per channel: `(x - mean) / sqrt(var + eps) gamma_c
    /// + beta_c`, the mean and (biased) variance over the pixel's `C`
    /// channels (PyTorch's `nn.LayerNorm(C)` on channels-last data,
    /// ConvNeXt's `LayerNorm2d`).
    LayerNorm {
        /// Added to the variance.
        eps: f32,
    },
    /// `affine(weight, bias)`: `x w_c + b_c` with a learned factor and a
    /// learned shift per channel, either of which may be absent (ConvNeXt's
    /// layer scale is the factor alone; an input normalisation `(x - mean) /
    /// std` baked into a model is both).
    Affine {
        /// Whether the factor `w_c` is there (else 1).
        weight: bool,
        /// Whether the shift `b_c` is there (else 0).
        bias: bool,
    },
}

impl Op {
    /// The layer kind as the language writes it; the stem of default names.
    pub const fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d(c) if c.depthwise => "dwconv",
            Op::Conv2d(_) => "conv",
            Op::Dense(_) => "dense",
            Op::Pool2d(Pool2d {
                kind: PoolKind::Max,
                ..
            }) => "maxpool",
            Op::Pool2d(_) => "avgpool",
            Op::GlobalPool(PoolKind::Max) => "global_maxpool",
            Op::GlobalPool(PoolKind::Avg) => "global_avgpool",
            Op::Flatten => "flatten",
            Op::BatchNorm { .. } => "bn",
            Op::Activation(a) => match a {
                Activation::Relu => "relu",
                Activation::Relu6 => "relu6",
                Activation::Tanh => "tanh",
                Activation::Sigmoid => "sigmoid",
                Activation::Swish => "swish",
                Activation::HardSwish => "hard_swish",
                Activation::HardSigmoid => "hard_sigmoid",
                Activation::LeakyRelu(_) => "leaky_relu",
                Activation::Gelu => "gelu",
            },
            Op::PRelu => "prelu",
            Op::Softmax => "softmax",
            Op::Dropout { .. } => "dropout",
            Op::Identity => "identity",
            Op::Lrn(_) => "lrn",
            Op::Concat => "concat",
            Op::Add => "residual",
            Op::Scale => "scale",
            Op::Shuffle { .. } => "shuffle",
            Op::Slice { .. } => "slice",
            Op::Upsample(_) => "upsample",
            Op::Deconv(_) => "deconv",
            Op::LayerNorm { .. } => "layernorm",
            Op::Affine { .. } => "affine",
        }
    }

    /// The hyper-parameters in the lecture's notation, e.g. `K=6, f=(5,5), s=(1,1)`.
    pub fn hyper_parameters(&self) -> String {
        fn window(
            out: &mut String,
            kernel: Hw,
            stride: Hw,
            padding: Padding,
            dilation: Option<Hw>,
        ) {
            out.push_str(&format!("f={kernel}, s={stride}"));
            if !padding.is_zero() {
                out.push_str(&format!(", p={padding}"));
            }
            if let Some(d) = dilation.filter(|d| *d != Hw::square(1)) {
                out.push_str(&format!(", d={d}"));
            }
        }
        let mut out = String::new();
        match *self {
            Op::Conv2d(c) => {
                if !c.depthwise {
                    out.push_str(&format!("K={}, ", c.out_channels));
                }
                window(&mut out, c.kernel, c.stride, c.padding, Some(c.dilation));
                if c.groups > 1 && !c.depthwise {
                    out.push_str(&format!(", g={}", c.groups));
                }
                if !c.bias {
                    out.push_str(", no bias");
                }
            }
            Op::Dense(d) => {
                out.push_str(&format!("n={}", d.out_features));
                if !d.bias {
                    out.push_str(", no bias");
                }
            }
            Op::Pool2d(p) => {
                window(&mut out, p.kernel, p.stride, p.padding, None);
                if p.ceil {
                    out.push_str(", ceil");
                }
            }
            Op::BatchNorm { eps } | Op::LayerNorm { eps } => out.push_str(&format!("eps={eps}")),
            Op::Affine { weight, bias } => out.push_str(match (weight, bias) {
                (true, true) => "",
                (true, false) => "no bias",
                (false, true) => "no weight",
                (false, false) => "no weight, no bias",
            }),
            Op::Activation(Activation::LeakyRelu(a)) => out.push_str(&format!("a={a}")),
            Op::Dropout { p } => out.push_str(&format!("p={p}")),
            Op::Lrn(l) => out.push_str(&format!(
                "size={}, alpha={}, beta={}, k={}",
                l.size, l.alpha, l.beta, l.k
            )),
            Op::Shuffle { groups } => out.push_str(&format!("g={groups}")),
            Op::Slice { first, count } => out.push_str(&format!(
                "channels [{first}, {})",
                first as u64 + count as u64
            )),
            Op::Upsample(u) => {
                out.push_str(&format!("s={}", u.scale));
                if u.bilinear {
                    out.push_str(", bilinear");
                }
            }
            Op::Deconv(d) => {
                out.push_str(&format!("K={}, ", d.out_channels));
                let padding = Padding {
                    top: d.padding,
                    left: d.padding,
                    bottom: d.padding,
                    right: d.padding,
                };
                window(&mut out, d.kernel, d.stride, padding, None);
                if !d.bias {
                    out.push_str(", no bias");
                }
            }
            Op::Input
            | Op::GlobalPool(_)
            | Op::Flatten
            | Op::Activation(
                Activation::Relu
                | Activation::Relu6
                | Activation::Tanh
                | Activation::Sigmoid
                | Activation::Swish
                | Activation::HardSwish
                | Activation::HardSigmoid
                | Activation::Gelu,
            )
            | Op::PRelu
            | Op::Softmax
            | Op::Identity
            | Op::Concat
            | Op::Add
            | Op::Scale => {}
        }
        out
    }
}

/// The index of a node in [`Graph::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The index into [`Graph::nodes`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A node named in a [`GraphError`]: its id and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    /// The node's id.
    pub node: NodeId,
    /// The node's name.
    pub name: String,
}

impl fmt::Display for At {
    /// `n3 `conv1``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.node, self.name)
    }
}

/// Which invariant of a [`Graph`] (this module's documentation) does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The graph has no node at all.
    #[error("a graph needs an input node, found no node")]
    Empty,
    /// Node 0 is not an input, or reads something.
    #[error("node 0 (`{name}`) must be the input and read nothing, found a {kind} reading {inputs} node(s)")]
    FirstNotInput {
        /// Its name.
        name: String,
        /// Its kind ([`Op::kind`]).
        kind: &'static str,
        /// How many nodes it reads.
        inputs: usize,
    },
    /// A node after node 0 is an input.
    #[error("{at}: only node 0 may be the input")]
    SecondInput {
        /// The node.
        at: At,
    },
    /// A node reads itself or a node after it.
    #[error("{at}: reads {input}, which does not come before it")]
    ReadsLater {
        /// The node.
        at: At,
        /// The input it reads.
        input: NodeId,
    },
    /// A node's recorded shape is not the one its op gives.
    #[error("{at}: recorded shape {recorded} but its op gives {inferred}")]
    WrongShape {
        /// The node.
        at: At,
        /// Its `output`.
        recorded: Shape,
        /// What [`crate::shape::output_shape`] gives.
        inferred: Shape,
    },
    /// A node's op cannot be applied to its inputs' shapes.
    #[error("{at}: {source}")]
    Shape {
        /// The node.
        at: At,
        /// Why the shape rule refuses it.
        #[source]
        source: crate::shape::ShapeError,
    },
    /// Two nodes have one name.
    #[error("{at}: the name is used by an earlier node")]
    DuplicateName {
        /// The second node of that name.
        at: At,
    },
}

/// One layer of the network and the tensor it produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique name (DSL.md's naming rules), the key of its weights.
    pub name: Str,
    /// What it computes.
    pub op: Op,
    /// The nodes whose outputs it reads, in order.
    pub inputs: List<NodeId>,
    /// The shape of its output for one image.
    pub output: Shape,
}

/// A whole network: nodes in topological order, node 0 the input, the last
/// node the output.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// The net's name as written (`LeNet5`).
    pub name: Str,
    /// The nodes, indexed by [`NodeId`]: every node after its inputs, node 0
    /// the input, the last node the output.
    pub nodes: List<Node>,
}

impl Graph {
    /// The input's shape.
    pub fn input_shape(&self) -> Shape {
        self.nodes[0].output
    }

    /// The output's shape.
    pub fn output_shape(&self) -> Shape {
        self.nodes[self.nodes.len() - 1].output
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// Every layer: the nodes after the input, with their ids.
    pub fn layers(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, n)| (NodeId(i as u32), n))
    }

    /// How many nodes read each node's output.
    pub fn consumer_counts(&self) -> Vec<u32> {
        let mut counts = vec![0; self.nodes.len()];
        for node in self.nodes.iter() {
            for input in node.inputs.iter() {
                counts[input.index()] += 1;
            }
        }
        counts
    }

    /// Checks the invariants in this module's documentation.
    pub fn verify(&self) -> Result<(), GraphError> {
        let Some(first) = self.nodes.first() else {
            return Err(GraphError::Empty);
        };
        if first.op != Op::Input || !first.inputs.is_empty() {
            return Err(GraphError::FirstNotInput {
                name: first.name.to_string(),
                kind: first.op.kind(),
                inputs: first.inputs.len(),
            });
        }
        let mut names = std::collections::HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let at = || At {
                node: NodeId(i as u32),
                name: node.name.to_string(),
            };
            if i > 0 && node.op == Op::Input {
                return Err(GraphError::SecondInput { at: at() });
            }
            if let Some(&input) = node.inputs.iter().find(|id| id.index() >= i) {
                return Err(GraphError::ReadsLater { at: at(), input });
            }
            if i > 0 {
                let inputs: Vec<Shape> = node
                    .inputs
                    .iter()
                    .map(|id| self.nodes[id.index()].output)
                    .collect();
                match crate::shape::output_shape(&node.op, &inputs) {
                    Ok(shape) if shape == node.output => {}
                    Ok(inferred) => {
                        return Err(GraphError::WrongShape {
                            at: at(),
                            recorded: node.output,
                            inferred,
                        })
                    }
                    Err(source) => return Err(GraphError::Shape { at: at(), source }),
                }
            }
            if !names.insert(node.name.as_ref()) {
                return Err(GraphError::DuplicateName { at: at() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Activation, F32Bits};
    use std::collections::HashSet;

    #[test]
    fn f32_bits_key_by_bits() {
        let nan = f32::NAN;
        assert_eq!(
            F32Bits::new(nan),
            F32Bits::new(f32::from_bits(nan.to_bits()))
        );
        assert_ne!(F32Bits::new(0.0), F32Bits::new(-0.0));
        assert_eq!(F32Bits::new(0.25).get(), 0.25);
        assert_eq!(format!("{:?}", F32Bits::from(0.1)), "0.1");
        // Ordered by bits: -1.0 has the sign bit, so it comes after 2.0.
        assert!(F32Bits::new(2.0) < F32Bits::new(-1.0));
    }

    /// An activation is equal and hashed by its slope's bits: a NaN slope
    /// equals itself (with `f32`'s `==` it did not, so a spec fusing it
    /// never matched its own copy) and `0.0` differs from `-0.0`.
    #[test]
    fn activations_are_equal_and_hashed_by_bits() {
        let nan = Activation::LeakyRelu(f32::NAN);
        let copy = Activation::LeakyRelu(f32::from_bits(f32::NAN.to_bits()));
        assert_eq!(nan, copy);
        assert_ne!(Activation::LeakyRelu(0.0), Activation::LeakyRelu(-0.0));
        assert_ne!(Activation::Relu, Activation::Relu6);
        let set: HashSet<Activation> = [
            nan,
            copy,
            Activation::LeakyRelu(0.1),
            Activation::LeakyRelu(0.1),
            Activation::LeakyRelu(0.2),
            Activation::Relu,
            Activation::Relu,
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 4);
    }
}
