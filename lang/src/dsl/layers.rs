//! The layer table: one [`Layer`] row per built-in layer of the language,
//! and the only place its vocabulary is written down.
//!
//! A row holds the layer's keyword and aliases, its arguments (positional
//! and named, each with its [`Ty`] and what it means when [`Omitted`]), the
//! usage its errors quote, and its builder from evaluated arguments to an
//! [`ir::Op`](cnnjit_ir::Op). Everything else reads the rows:
//! - the parser: [`words`] cannot name a block;
//! - [`crate::expand`]: [`find`] resolves a call's word (aliases included),
//!   its arguments are matched against the row and its builder makes the op;
//! - the printer ([`super::print`]): [`written`] is the builders' inverse, an
//!   op as the row's arguments, and the row's defaults say which to omit;
//! - the importer writes through the printer.
//!
//! [`Op::kind`] (the IR cannot depend on the language) names every row's
//! ops by the row's name; a test checks that they agree.

use super::ast::Call;
use cnnjit_ir::{
    Activation, Conv2d, Deconv, Dense, Hw, Lrn, Op, Padding, Pool2d, PoolKind, Shape, Upsample,
};

/// What an argument's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A non-negative integer expression.
    Int,
    /// A size: `3x3`, `(a, b)` or `k` for `k x k`.
    Dims,
    /// A float literal (or an integer).
    Float,
    /// `true` or `false`.
    Bool,
    /// `valid`, `same`, `p` or `(ph, pw)`.
    Pad,
}

/// What an argument means when it is not written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Omitted {
    /// Nothing: the builder asks for it (a required positional argument, or
    /// `lrn`'s size).
    Needed,
    /// This integer.
    Int(u32),
    /// This size along both axes.
    Dims(u32),
    /// This float.
    Float(f32),
    /// This flag.
    Bool(bool),
    /// No padding (`pad = valid`).
    Valid,
    /// The value of the named argument (a pool's stride is its kernel).
    Like(&'static str),
}

/// One argument of a layer.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Its name: the key of a named argument; for a positional one, the name
    /// errors use.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// What it means when not written.
    pub omitted: Omitted,
}

const fn param(name: &'static str, ty: Ty, omitted: Omitted) -> Param {
    Param { name, ty, omitted }
}

/// An evaluated argument: what a builder reads and the printer writes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    /// An integer.
    Int(u32),
    /// A size.
    Dims(Hw),
    /// A float; equal to another only bit for bit.
    Float(f32),
    /// A flag.
    Bool(bool),
    /// Padding, resolved to numbers.
    Pad(Padding),
}

impl Val {
    /// Equality as the printer needs it: floats by their bits.
    pub fn same(&self, other: &Val) -> bool {
        match (self, other) {
            (Val::Float(a), Val::Float(b)) => a.to_bits() == b.to_bits(),
            _ => self == other,
        }
    }
}

/// A call's arguments as a builder reads them, matched against its row:
/// each accessor gives the written value, else the row's default
/// ([`Omitted`]); `None` only for an argument that has none.
pub trait Args {
    /// The call, for messages.
    fn call(&self) -> &Call;
    /// An integer argument.
    fn int(&self, name: &str) -> syn::Result<Option<u32>>;
    /// A size argument.
    fn dims(&self, name: &str) -> syn::Result<Option<Hw>>;
    /// A float argument, finite.
    fn float(&self, name: &str) -> syn::Result<Option<f32>>;
    /// A flag argument.
    fn bool(&self, name: &str) -> syn::Result<Option<bool>>;
    /// `pad`, resolved for a window on this call's input.
    fn padding(&self, kernel: Hw, stride: Hw, dilation: Hw) -> syn::Result<Padding>;
    /// The input's height, width and channels, or an error if it is flat.
    fn volume(&self) -> syn::Result<(u32, u32, u32)>;
    /// Output channels `k` scaled by the net's `width = a`.
    fn width(&self, k: u32) -> u32;
    /// An error on the argument `name` (on the call's name if not written).
    fn error(&self, name: &str, message: String) -> syn::Error;
    /// An arithmetic overflow in the call.
    fn overflow(&self) -> syn::Error;
}

/// A builder: a call's arguments to its op.
pub type Build = fn(&dyn Args) -> syn::Result<Op>;

/// One built-in layer.
#[derive(Clone, Copy)]
pub struct Layer {
    /// The keyword, the stem of default names (`conv1`) and [`Op::kind`].
    pub name: &'static str,
    /// Other words for the same layer (`fc` for `dense`).
    pub aliases: &'static [&'static str],
    /// How it is written, as errors quote it; or `takes no argument`.
    pub usage: &'static str,
    /// Positional arguments, in order.
    pub positional: &'static [Param],
    /// How many of the positional arguments must be written.
    pub required: usize,
    /// Named arguments (a name may be both positional and named: `lrn`'s size).
    pub keys: &'static [Param],
    /// Its op, from its arguments.
    pub build: Build,
}

impl Layer {
    /// The argument called `name`, positional or named.
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.positional
            .iter()
            .chain(self.keys)
            .find(|p| p.name == name)
    }

    /// What argument `name` means when not written, given the others' values.
    pub fn default(&self, name: &str, value: impl Fn(&str) -> Option<Val>) -> Option<Val> {
        match self.param(name)?.omitted {
            Omitted::Needed => None,
            Omitted::Int(n) => Some(Val::Int(n)),
            Omitted::Dims(n) => Some(Val::Dims(Hw::square(n))),
            Omitted::Float(x) => Some(Val::Float(x)),
            Omitted::Bool(b) => Some(Val::Bool(b)),
            Omitted::Valid => Some(Val::Pad(Padding::default())),
            Omitted::Like(other) => value(other),
        }
    }
}

/// `bn`'s default eps, also that of the `bn` an `auto` shortcut writes.
pub const BN_EPS: f32 = 1e-5;

const NO_ARGS: &[Param] = &[];

/// A row of a layer without arguments.
const fn plain(name: &'static str, aliases: &'static [&'static str], build: Build) -> Layer {
    Layer {
        name,
        aliases,
        usage: "takes no argument",
        positional: NO_ARGS,
        required: 0,
        keys: NO_ARGS,
        build,
    }
}

const STRIDE: Param = param("stride", Ty::Dims, Omitted::Dims(1));
const PAD: Param = param("pad", Ty::Pad, Omitted::Valid);
const DILATION: Param = param("dilation", Ty::Dims, Omitted::Dims(1));
const BIAS: Param = param("bias", Ty::Bool, Omitted::Bool(true));
const KERNEL: Param = param("kernel", Ty::Dims, Omitted::Needed);
const POOL_KEYS: &[Param] = &[
    param("stride", Ty::Dims, Omitted::Like("kernel")),
    PAD,
    param("ceil", Ty::Bool, Omitted::Bool(false)),
    param("count_include_pad", Ty::Bool, Omitted::Bool(true)),
];

/// Every built-in layer, in the order suggestions try them.
pub const LAYERS: &[Layer] = &[
    Layer {
        name: "conv",
        aliases: &[],
        usage: "conv(K, FhxFw, stride = s, pad = p, dilation = d, groups = g, bias = false)",
        positional: &[param("K", Ty::Int, Omitted::Needed), KERNEL],
        required: 2,
        keys: &[
            STRIDE,
            PAD,
            DILATION,
            param("groups", Ty::Int, Omitted::Int(1)),
            BIAS,
        ],
        build: |args| conv(args, false),
    },
    Layer {
        name: "dwconv",
        aliases: &[],
        usage: "dwconv(FhxFw, stride = s, pad = p, dilation = d, multiplier = m, bias = false)",
        positional: &[KERNEL],
        required: 1,
        keys: &[
            STRIDE,
            PAD,
            DILATION,
            param("multiplier", Ty::Int, Omitted::Int(1)),
            BIAS,
        ],
        build: |args| conv(args, true),
    },
    Layer {
        name: "dense",
        aliases: &["fc"],
        usage: "dense(N, bias = false)",
        positional: &[param("N", Ty::Int, Omitted::Needed)],
        required: 1,
        keys: &[BIAS],
        build: |args| {
            Ok(Op::Dense(Dense {
                out_features: args.int("N")?.expect("N is required"),
                bias: args.bool("bias")?.expect("bias has a default"),
            }))
        },
    },
    Layer {
        name: "maxpool",
        aliases: &[],
        usage: "maxpool(FhxFw, stride = s, pad = p, ceil = true)",
        positional: &[KERNEL],
        required: 1,
        keys: &[POOL_KEYS[0], POOL_KEYS[1], POOL_KEYS[2]],
        build: |args| pool(args, PoolKind::Max),
    },
    Layer {
        name: "avgpool",
        aliases: &[],
        usage: "avgpool(FhxFw, stride = s, pad = p, ceil = true, count_include_pad = false)",
        positional: &[KERNEL],
        required: 1,
        keys: POOL_KEYS,
        build: |args| pool(args, PoolKind::Avg),
    },
    plain("global_avgpool", &[], |_| Ok(Op::GlobalPool(PoolKind::Avg))),
    plain("global_maxpool", &[], |_| Ok(Op::GlobalPool(PoolKind::Max))),
    plain("flatten", &[], |_| Ok(Op::Flatten)),
    Layer {
        name: "bn",
        aliases: &["batchnorm"],
        usage: "bn(eps = 1e-5)",
        positional: NO_ARGS,
        required: 0,
        keys: &[param("eps", Ty::Float, Omitted::Float(BN_EPS))],
        build: |args| {
            Ok(Op::BatchNorm {
                eps: eps(args, "sqrt(running_var + eps)")?,
            })
        },
    },
    Layer {
        name: "layernorm",
        aliases: &[],
        usage: "layernorm(eps = 1e-5)",
        positional: NO_ARGS,
        required: 0,
        keys: &[param("eps", Ty::Float, Omitted::Float(LAYERNORM_EPS))],
        build: |args| {
            Ok(Op::LayerNorm {
                eps: eps(args, "sqrt(var + eps)")?,
            })
        },
    },
    Layer {
        name: "affine",
        aliases: &[],
        usage: "affine(weight = false, bias = false)",
        positional: NO_ARGS,
        required: 0,
        keys: &[param("weight", Ty::Bool, Omitted::Bool(true)), BIAS],
        build: |args| {
            let weight = args.bool("weight")?.expect("weight has a default");
            let bias = args.bool("bias")?.expect("bias has a default");
            if !weight && !bias {
                return Err(args.error(
                    "bias",
                    format!(
                        "{}: an affine without weight and bias does nothing; write `identity`",
                        args.call()
                    ),
                ));
            }
            Ok(Op::Affine { weight, bias })
        },
    },
    plain("relu", &[], |_| Ok(Op::Activation(Activation::Relu))),
    plain("relu6", &[], |_| Ok(Op::Activation(Activation::Relu6))),
    plain("tanh", &[], |_| Ok(Op::Activation(Activation::Tanh))),
    plain("sigmoid", &[], |_| Ok(Op::Activation(Activation::Sigmoid))),
    plain("swish", &["silu"], |_| {
        Ok(Op::Activation(Activation::Swish))
    }),
    plain("hard_swish", &["hardswish"], |_| {
        Ok(Op::Activation(Activation::HardSwish))
    }),
    plain("hard_sigmoid", &[], |_| {
        Ok(Op::Activation(Activation::HardSigmoid))
    }),
    plain("gelu", &[], |_| Ok(Op::Activation(Activation::Gelu))),
    plain("prelu", &[], |_| Ok(Op::PRelu)),
    plain("softmax", &[], |_| Ok(Op::Softmax)),
    Layer {
        name: "leaky_relu",
        aliases: &[],
        usage: "leaky_relu(a)",
        positional: &[param("a", Ty::Float, Omitted::Float(0.01))],
        required: 0,
        keys: NO_ARGS,
        build: |args| {
            let a = args.float("a")?.expect("a has a default");
            Ok(Op::Activation(Activation::LeakyRelu(a)))
        },
    },
    Layer {
        name: "dropout",
        aliases: &[],
        usage: "dropout(p)",
        positional: &[param("p", Ty::Float, Omitted::Float(0.5))],
        required: 0,
        keys: NO_ARGS,
        build: |args| {
            let p = args.float("p")?.expect("p has a default");
            if !(0.0..1.0).contains(&p) {
                return Err(args.error(
                    "p",
                    format!(
                        "{}: a drop probability must be in [0, 1), found {p}",
                        args.call()
                    ),
                ));
            }
            Ok(Op::Dropout { p })
        },
    },
    plain("identity", &[], |_| Ok(Op::Identity)),
    Layer {
        name: "lrn",
        aliases: &[],
        usage: "lrn(size = n, alpha = 1e-4, beta = 0.75, k = 1.0)",
        positional: &[LRN_SIZE],
        required: 0,
        keys: &[
            LRN_SIZE,
            param("alpha", Ty::Float, Omitted::Float(1e-4)),
            param("beta", Ty::Float, Omitted::Float(0.75)),
            param("k", Ty::Float, Omitted::Float(1.0)),
        ],
        build: |args| {
            let size = args.int("size")?.ok_or_else(|| {
                syn::Error::new(
                    args.call().name.span(),
                    format!("{}: lrn needs a size, e.g. `lrn(size = 5)`", args.call()),
                )
            })?;
            Ok(Op::Lrn(Lrn {
                size,
                alpha: args.float("alpha")?.expect("alpha has a default"),
                beta: args.float("beta")?.expect("beta has a default"),
                k: args.float("k")?.expect("k has a default"),
            }))
        },
    },
    Layer {
        name: "shuffle",
        aliases: &[],
        usage: "shuffle(groups)",
        positional: &[param("groups", Ty::Int, Omitted::Needed)],
        required: 1,
        keys: NO_ARGS,
        build: |args| {
            Ok(Op::Shuffle {
                groups: args.int("groups")?.expect("groups is required"),
            })
        },
    },
    Layer {
        name: "slice",
        aliases: &[],
        usage: "slice(first, count)",
        positional: &[
            param("first", Ty::Int, Omitted::Needed),
            param("count", Ty::Int, Omitted::Needed),
        ],
        required: 2,
        keys: NO_ARGS,
        build: |args| {
            Ok(Op::Slice {
                first: args.int("first")?.expect("first is required"),
                count: args.int("count")?.expect("count is required"),
            })
        },
    },
    Layer {
        name: "upsample",
        aliases: &[],
        usage: "upsample(s, bilinear = true)",
        positional: &[param("scale", Ty::Int, Omitted::Needed)],
        required: 1,
        keys: &[param("bilinear", Ty::Bool, Omitted::Bool(false))],
        build: |args| {
            args.volume()?;
            let scale = args.int("scale")?.expect("scale is required");
            if scale == 0 {
                return Err(args.error(
                    "scale",
                    format!(
                        "{}: `scale` must be an integer of at least 1, found 0",
                        args.call()
                    ),
                ));
            }
            Ok(Op::Upsample(Upsample {
                scale,
                bilinear: args.bool("bilinear")?.expect("bilinear has a default"),
            }))
        },
    },
    Layer {
        name: "deconv",
        aliases: &[],
        usage: "deconv(K, FhxFw, stride = s, pad = p, bias = false)",
        positional: &[param("K", Ty::Int, Omitted::Needed), KERNEL],
        required: 2,
        keys: &[STRIDE, param("pad", Ty::Int, Omitted::Int(0)), BIAS],
        build: |args| {
            args.volume()?;
            let k = args.int("K")?.expect("K is required");
            Ok(Op::Deconv(Deconv {
                out_channels: args.width(k),
                kernel: args.dims("kernel")?.expect("kernel is required"),
                stride: args.dims("stride")?.expect("stride has a default"),
                padding: args.int("pad")?.expect("pad has a default"),
                bias: args.bool("bias")?.expect("bias has a default"),
            }))
        },
    },
];

const LRN_SIZE: Param = param("size", Ty::Int, Omitted::Needed);

/// `layernorm`'s default eps, PyTorch's `nn.LayerNorm`'s.
pub const LAYERNORM_EPS: f32 = 1e-5;

/// `eps` of a normalisation, which must be positive: it keeps `root`, the
/// square root it is added under, away from zero.
fn eps(args: &dyn Args, root: &str) -> syn::Result<f32> {
    let eps = args.float("eps")?.expect("eps has a default");
    if eps <= 0.0 {
        return Err(args.error(
            "eps",
            format!(
                "{}: `eps` must be greater than 0, found {eps}; it keeps `{root}` away from zero",
                args.call()
            ),
        ));
    }
    Ok(eps)
}

/// The words that introduce composite layers; with [`LAYERS`]' names and
/// aliases, the words no block may take.
pub const COMPOSITES: &[&str] = &["repeat", "concat", "residual", "scale"];

/// Every layer word, aliases after their layer, then the composites: for
/// suggestions, and none of them can name a block.
pub fn words() -> impl Iterator<Item = &'static str> + Clone {
    LAYERS
        .iter()
        .flat_map(|l| std::iter::once(l.name).chain(l.aliases.iter().copied()))
        .chain(COMPOSITES.iter().copied())
}

/// The row of a built-in layer's word or alias.
pub fn find(word: &str) -> Option<&'static Layer> {
    LAYERS
        .iter()
        .find(|l| l.name == word || l.aliases.contains(&word))
}

fn conv(args: &dyn Args, depthwise: bool) -> syn::Result<Op> {
    let (_, _, c) = args.volume()?;
    let kernel = args.dims("kernel")?.expect("kernel is required");
    let stride = args.dims("stride")?.expect("stride has a default");
    let dilation = args.dims("dilation")?.expect("dilation has a default");
    let (out_channels, groups) = if depthwise {
        let m = args.int("multiplier")?.expect("multiplier has a default");
        (c.checked_mul(m).ok_or_else(|| args.overflow())?, c)
    } else {
        let k = args.int("K")?.expect("K is required");
        let groups = args.int("groups")?.expect("groups has a default");
        (args.width(k), groups)
    };
    let padding = args.padding(kernel, stride, dilation)?;
    Ok(Op::Conv2d(Conv2d {
        out_channels,
        kernel,
        stride,
        dilation,
        padding,
        groups,
        bias: args.bool("bias")?.expect("bias has a default"),
        depthwise,
    }))
}

fn pool(args: &dyn Args, kind: PoolKind) -> syn::Result<Op> {
    args.volume()?;
    let kernel = args.dims("kernel")?.expect("kernel is required");
    let stride = args.dims("stride")?.expect("stride has a default");
    let padding = args.padding(kernel, stride, Hw::square(1))?;
    pool_padding_fits(args, kernel, padding)?;
    Ok(Op::Pool2d(Pool2d {
        kind,
        kernel,
        stride,
        padding,
        ceil: args.bool("ceil")?.expect("ceil has a default"),
        // `maxpool` has no such argument: no padding enters a maximum.
        count_include_pad: args.bool("count_include_pad")?.unwrap_or(true),
    }))
}

/// PyTorch's rule for pools: padding at most half the kernel on each side
/// (beyond it, windows see mostly or only padding: -inf or a 0/0 average).
/// `pad = same` always keeps it.
fn pool_padding_fits(args: &dyn Args, kernel: Hw, padding: Padding) -> syn::Result<()> {
    let (ph, pw) = (
        padding.top.max(padding.bottom),
        padding.left.max(padding.right),
    );
    let (most_h, most_w) = (kernel.h / 2, kernel.w / 2);
    if ph <= most_h && pw <= most_w {
        return Ok(());
    }
    let pair = |a: u32, b: u32| {
        if a == b {
            a.to_string()
        } else {
            format!("({a}, {b})")
        }
    };
    Err(args.error(
        "pad",
        format!(
            "{}: `pad` must be at most half the kernel, {} for {}x{} (PyTorch's rule), found {}",
            args.call(),
            pair(most_h, most_w),
            kernel.h,
            kernel.w,
            pair(ph, pw)
        ),
    ))
}

/// The builders' inverse: the row that writes `op` (reading an `input` of
/// this shape) and the value of each of its arguments, in the row's order;
/// `None` for the ops no layer word writes (the input and the composites'
/// joins).
pub fn written(op: &Op, input: Shape) -> Option<(&'static Layer, Vec<(&'static str, Val)>)> {
    let values = match *op {
        Op::Input | Op::Concat | Op::Add | Op::Scale => return None,
        Op::Conv2d(c) => {
            let mut v = Vec::new();
            if !c.depthwise {
                v.push(("K", Val::Int(c.out_channels)));
            }
            v.extend([
                ("kernel", Val::Dims(c.kernel)),
                ("stride", Val::Dims(c.stride)),
                ("pad", Val::Pad(c.padding)),
                ("dilation", Val::Dims(c.dilation)),
            ]);
            if c.depthwise {
                let multiplier = c.out_channels / input.channels().max(1);
                v.push(("multiplier", Val::Int(multiplier)));
            } else {
                v.push(("groups", Val::Int(c.groups)));
            }
            v.push(("bias", Val::Bool(c.bias)));
            v
        }
        Op::Dense(d) => vec![("N", Val::Int(d.out_features)), ("bias", Val::Bool(d.bias))],
        Op::Pool2d(p) => {
            let mut v = vec![
                ("kernel", Val::Dims(p.kernel)),
                ("stride", Val::Dims(p.stride)),
                ("pad", Val::Pad(p.padding)),
                ("ceil", Val::Bool(p.ceil)),
            ];
            // `maxpool` cannot say `count_include_pad = false`.
            if p.kind == PoolKind::Avg || !p.count_include_pad {
                v.push(("count_include_pad", Val::Bool(p.count_include_pad)));
            }
            v
        }
        Op::BatchNorm { eps } | Op::LayerNorm { eps } => vec![("eps", Val::Float(eps))],
        Op::Affine { weight, bias } => {
            vec![("weight", Val::Bool(weight)), ("bias", Val::Bool(bias))]
        }
        Op::Activation(Activation::LeakyRelu(a)) => vec![("a", Val::Float(a))],
        Op::Dropout { p } => vec![("p", Val::Float(p))],
        Op::Lrn(l) => vec![
            ("size", Val::Int(l.size)),
            ("alpha", Val::Float(l.alpha)),
            ("beta", Val::Float(l.beta)),
            ("k", Val::Float(l.k)),
        ],
        Op::Shuffle { groups } => vec![("groups", Val::Int(groups))],
        Op::Slice { first, count } => vec![("first", Val::Int(first)), ("count", Val::Int(count))],
        Op::Upsample(u) => vec![
            ("scale", Val::Int(u.scale)),
            ("bilinear", Val::Bool(u.bilinear)),
        ],
        Op::Deconv(d) => vec![
            ("K", Val::Int(d.out_channels)),
            ("kernel", Val::Dims(d.kernel)),
            ("stride", Val::Dims(d.stride)),
            ("pad", Val::Int(d.padding)),
            ("bias", Val::Bool(d.bias)),
        ],
        Op::GlobalPool(_)
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
        | Op::Identity => Vec::new(),
    };
    let row = find(op.kind()).expect("every op a word writes has a row of its kind");
    Some((row, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument's default has the argument's type.
    #[test]
    fn defaults_have_their_arguments_types() {
        for row in LAYERS {
            for p in row.positional.iter().chain(row.keys) {
                let fits = match p.omitted {
                    Omitted::Needed => true,
                    Omitted::Int(_) => p.ty == Ty::Int,
                    Omitted::Dims(_) => p.ty == Ty::Dims,
                    Omitted::Float(_) => p.ty == Ty::Float,
                    Omitted::Bool(_) => p.ty == Ty::Bool,
                    Omitted::Valid => p.ty == Ty::Pad,
                    Omitted::Like(other) => row.param(other).is_some_and(|o| o.ty == p.ty),
                };
                assert!(
                    fits,
                    "{}: `{}`'s default is not a {:?}",
                    row.name, p.name, p.ty
                );
            }
            assert!(row.required <= row.positional.len(), "{}", row.name);
        }
    }

    /// No word names two layers, and no alias is a layer's name.
    #[test]
    fn words_are_distinct() {
        let all: Vec<&str> = words().collect();
        for (i, w) in all.iter().enumerate() {
            assert!(!all[..i].contains(w), "`{w}` is written twice");
        }
        assert_eq!(all.len(), 37);
    }

    /// [`written`] names each argument of its row exactly once.
    #[test]
    fn written_lists_the_rows_arguments() {
        let input = Shape::Volume { h: 8, w: 8, c: 4 };
        let ops = [
            Op::Conv2d(crate::expand::auto_projection([8, 8], [4, 4, 8])),
            Op::Conv2d(Conv2d {
                depthwise: true,
                groups: 4,
                out_channels: 4,
                ..crate::expand::auto_projection([8, 8], [8, 8, 4])
            }),
            Op::Dense(Dense {
                out_features: 3,
                bias: true,
            }),
            Op::BatchNorm { eps: BN_EPS },
            Op::Activation(Activation::LeakyRelu(0.1)),
            Op::Dropout { p: 0.5 },
            Op::Shuffle { groups: 2 },
            Op::Slice { first: 1, count: 2 },
            Op::Upsample(Upsample {
                scale: 2,
                bilinear: true,
            }),
            Op::Deconv(Deconv {
                out_channels: 3,
                kernel: Hw::square(2),
                stride: Hw::square(2),
                padding: 1,
                bias: false,
            }),
            Op::Lrn(Lrn {
                size: 5,
                alpha: 1e-4,
                beta: 0.75,
                k: 1.0,
            }),
        ];
        for op in ops {
            let (row, values) = written(&op, input).expect("a layer");
            let mut names: Vec<&str> = row
                .positional
                .iter()
                .chain(row.keys)
                .map(|p| p.name)
                .collect();
            names.dedup();
            names.sort_unstable();
            let mut got: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            got.sort_unstable();
            assert_eq!(got, names, "{op:?}");
        }
    }
}
