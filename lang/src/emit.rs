//! Code generation for `cnn!`: a compiled net to the Rust items the macro
//! emits (a type with `const` figures, `LAYERS`, `summary()` and `graph()`).
//!
//! Everything is emitted as literals of the plain data types in [`cnnjit_ir`]
//! and [`cnnjit_ir::summary`], referred to through the `::cnnjit` facade, so the
//! figures are usable in `const` context and run time never re-parses.
//! On errors the macro still emits each net's type (as thiserror's fallback
//! does), once per name, so one mistake does not cascade into "cannot find
//! type" or "defined multiple times" errors.

use crate::dsl::ast::{Items, NetDef};
use crate::{compile_items, CompiledNet};
use cnnjit_ir::summary::{layer_infos, thousands};
use cnnjit_ir::{Activation, Graph, Hw, Op, Padding, PoolKind, Shape};
use proc_macro2::{Ident, Literal, TokenStream};
use quote::{quote, ToTokens};

/// The whole `cnn!` expansion: `file = "path"` or inline items.
pub fn expand_macro(input: TokenStream) -> TokenStream {
    if let Some(path) = file_argument(&input) {
        return expand_file(&path);
    }
    let items = match crate::dsl::parse::parse_items(input) {
        Ok(items) => items,
        Err(e) => return e.to_compile_error(),
    };
    items_or_errors(&items, syn::Error::to_compile_error)
}

/// `file = "..."` as the macro's whole input.
fn file_argument(input: &TokenStream) -> Option<String> {
    let mut tokens = input.clone().into_iter();
    match (tokens.next(), tokens.next(), tokens.next(), tokens.next()) {
        (
            Some(proc_macro2::TokenTree::Ident(key)),
            Some(proc_macro2::TokenTree::Punct(eq)),
            Some(proc_macro2::TokenTree::Literal(lit)),
            None,
        ) if key == "file" && eq.as_char() == '=' => {
            syn::parse2::<syn::LitStr>(proc_macro2::TokenTree::Literal(lit).into())
                .ok()
                .map(|s| s.value())
        }
        _ => None,
    }
}

/// Resets proc-macro2 to the compiler's implementation when dropped.
struct Unforce;

impl Drop for Unforce {
    fn drop(&mut self) {
        proc_macro2::fallback::unforce();
    }
}

/// `cnn!(file = "...")`: reads the file relative to `CARGO_MANIFEST_DIR`.
///
/// The file is lexed with proc-macro2's own lexer (forced for the duration),
/// so its tokens carry real lines and columns for error messages; the result
/// is turned back into compiler tokens through text. Spans then point at the
/// macro call, and messages name `FILE:LINE:COL`.
fn expand_file(relative: &str) -> TokenStream {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let full = std::path::Path::new(&dir).join(relative);
    let text = match std::fs::read_to_string(&full) {
        Ok(text) => text,
        Err(e) => {
            let msg = format!("cannot read `{}`: {e}", full.display());
            return quote!(::core::compile_error!(#msg););
        }
    };
    let generated = {
        proc_macro2::fallback::force();
        let _guard = Unforce;
        expand_source(&text, relative).to_string()
    };
    let path = full.display().to_string();
    let mut out: TokenStream = generated.parse().unwrap_or_else(|_| {
        let msg =
            format!("cnnjit: generated code for `{relative}` did not re-lex; please report this");
        quote!(::core::compile_error!(#msg);)
    });
    out.extend(quote!(
        const _: &[u8] = ::core::include_bytes!(#path);
    ));
    out
}

/// The expansion of a file's text, with errors rendered as `FILE:LINE:COL` messages.
fn expand_source(text: &str, path: &str) -> TokenStream {
    let render = |e: &syn::Error| {
        let msg = format!(
            "{}\n{}",
            crate::dsl::diagnostic::location(e, path),
            crate::dsl::diagnostic::render(e, path, text)
        );
        quote!(::core::compile_error!(#msg);)
    };
    let items = match crate::dsl::parse_source(text) {
        Ok(items) => items,
        Err(e) => return render(&e),
    };
    items_or_errors(&items, render)
}

/// Each net's items, or for a net that does not compile its error (as
/// `render` writes it) and its type alone, once per name: a second net of
/// the same name gets its error and no second type.
fn items_or_errors(items: &Items, render: impl Fn(&syn::Error) -> TokenStream) -> TokenStream {
    let (nets, errors) = compile_items(items);
    let mut out: TokenStream = nets.iter().map(net_items).collect();
    let mut typed: Vec<&Ident> = nets.iter().map(|net| &net.def.name).collect();
    for (net, error) in errors {
        if !typed.contains(&&net.name) {
            typed.push(&net.name);
            out.extend(fallback_items(net));
        }
        out.extend(render(&error));
    }
    out
}

/// The type alone, so that uses of it elsewhere do not add errors.
fn fallback_items(net: &NetDef) -> TokenStream {
    let NetDef {
        attrs, vis, name, ..
    } = net;
    quote! {
        #(#attrs)*
        #[allow(dead_code)]
        #vis struct #name { _private: () }
    }
}

fn shape(s: Shape) -> TokenStream {
    match s {
        Shape::Volume { h, w, c } => quote!(::cnnjit::Shape::Volume { h: #h, w: #w, c: #c }),
        Shape::Flat(n) => quote!(::cnnjit::Shape::Flat(#n)),
    }
}

fn hw(v: Hw) -> TokenStream {
    let Hw { h, w } = v;
    quote!(::cnnjit::ir::Hw { h: #h, w: #w })
}

fn padding(p: Padding) -> TokenStream {
    let Padding {
        top,
        left,
        bottom,
        right,
    } = p;
    quote!(::cnnjit::ir::Padding { top: #top, left: #left, bottom: #bottom, right: #right })
}

fn float(x: f32) -> TokenStream {
    if x.is_finite() {
        Literal::f32_suffixed(x).into_token_stream()
    } else if x.is_nan() {
        quote!(::core::f32::NAN)
    } else if x > 0.0 {
        quote!(::core::f32::INFINITY)
    } else {
        quote!(::core::f32::NEG_INFINITY)
    }
}

fn pool_kind(k: PoolKind) -> TokenStream {
    match k {
        PoolKind::Max => quote!(::cnnjit::ir::PoolKind::Max),
        PoolKind::Avg => quote!(::cnnjit::ir::PoolKind::Avg),
    }
}

fn op(op: &Op) -> TokenStream {
    match *op {
        Op::Input => quote!(::cnnjit::ir::Op::Input),
        Op::Conv2d(c) => {
            let (k, kernel, stride, dilation, pad, groups, bias, depthwise) = (
                c.out_channels,
                hw(c.kernel),
                hw(c.stride),
                hw(c.dilation),
                padding(c.padding),
                c.groups,
                c.bias,
                c.depthwise,
            );
            quote!(::cnnjit::ir::Op::Conv2d(::cnnjit::ir::Conv2d {
                out_channels: #k, kernel: #kernel, stride: #stride, dilation: #dilation,
                padding: #pad, groups: #groups, bias: #bias, depthwise: #depthwise,
            }))
        }
        Op::Dense(d) => {
            let (n, bias) = (d.out_features, d.bias);
            quote!(::cnnjit::ir::Op::Dense(::cnnjit::ir::Dense { out_features: #n, bias: #bias }))
        }
        Op::Pool2d(p) => {
            let (kind, kernel, stride, pad, ceil, cip) = (
                pool_kind(p.kind),
                hw(p.kernel),
                hw(p.stride),
                padding(p.padding),
                p.ceil,
                p.count_include_pad,
            );
            quote!(::cnnjit::ir::Op::Pool2d(::cnnjit::ir::Pool2d {
                kind: #kind, kernel: #kernel, stride: #stride, padding: #pad, ceil: #ceil, count_include_pad: #cip,
            }))
        }
        Op::GlobalPool(k) => {
            let k = pool_kind(k);
            quote!(::cnnjit::ir::Op::GlobalPool(#k))
        }
        Op::Flatten => quote!(::cnnjit::ir::Op::Flatten),
        Op::BatchNorm { eps } => {
            let eps = float(eps);
            quote!(::cnnjit::ir::Op::BatchNorm { eps: #eps })
        }
        Op::Activation(a) => {
            let a = match a {
                Activation::Relu => quote!(Relu),
                Activation::Relu6 => quote!(Relu6),
                Activation::Tanh => quote!(Tanh),
                Activation::Sigmoid => quote!(Sigmoid),
                Activation::Swish => quote!(Swish),
                Activation::HardSwish => quote!(HardSwish),
                Activation::HardSigmoid => quote!(HardSigmoid),
                Activation::Gelu => quote!(Gelu),
                Activation::LeakyRelu(s) => {
                    let s = float(s);
                    quote!(LeakyRelu(#s))
                }
            };
            quote!(::cnnjit::ir::Op::Activation(::cnnjit::ir::Activation::#a))
        }
        Op::PRelu => quote!(::cnnjit::ir::Op::PRelu),
        Op::Softmax => quote!(::cnnjit::ir::Op::Softmax),
        Op::Dropout { p } => {
            let p = float(p);
            quote!(::cnnjit::ir::Op::Dropout { p: #p })
        }
        Op::Identity => quote!(::cnnjit::ir::Op::Identity),
        Op::Lrn(l) => {
            let (size, alpha, beta, k) = (l.size, float(l.alpha), float(l.beta), float(l.k));
            quote!(::cnnjit::ir::Op::Lrn(::cnnjit::ir::Lrn { size: #size, alpha: #alpha, beta: #beta, k: #k }))
        }
        Op::Concat => quote!(::cnnjit::ir::Op::Concat),
        Op::Add => quote!(::cnnjit::ir::Op::Add),
        Op::Scale => quote!(::cnnjit::ir::Op::Scale),
        Op::Shuffle { groups } => quote!(::cnnjit::ir::Op::Shuffle { groups: #groups }),
        Op::Slice { first, count } => {
            quote!(::cnnjit::ir::Op::Slice { first: #first, count: #count })
        }
        Op::Upsample(u) => {
            let (scale, bilinear) = (u.scale, u.bilinear);
            quote!(::cnnjit::ir::Op::Upsample(::cnnjit::ir::Upsample { scale: #scale, bilinear: #bilinear }))
        }
        Op::Deconv(d) => {
            let (k, kernel, stride, pad, bias) = (
                d.out_channels,
                hw(d.kernel),
                hw(d.stride),
                d.padding,
                d.bias,
            );
            quote!(::cnnjit::ir::Op::Deconv(::cnnjit::ir::Deconv {
                out_channels: #k, kernel: #kernel, stride: #stride, padding: #pad, bias: #bias,
            }))
        }
        Op::LayerNorm { eps } => {
            let eps = float(eps);
            quote!(::cnnjit::ir::Op::LayerNorm { eps: #eps })
        }
        Op::Affine { weight, bias } => {
            quote!(::cnnjit::ir::Op::Affine { weight: #weight, bias: #bias })
        }
    }
}

fn graph_literal(graph: &Graph) -> TokenStream {
    let nodes = graph.nodes.iter().map(|n| {
        let name = n.name.as_ref();
        let op = op(&n.op);
        let inputs = n.inputs.iter().map(|i| i.0);
        let output = shape(n.output);
        quote!(::cnnjit::ir::Node {
            name: ::std::borrow::Cow::Borrowed(#name),
            op: #op,
            inputs: ::std::borrow::Cow::Borrowed(&[#(::cnnjit::ir::NodeId(#inputs)),*]),
            output: #output,
        })
    });
    let name = graph.name.as_ref();
    quote!(::cnnjit::Graph {
        name: ::std::borrow::Cow::Borrowed(#name),
        nodes: ::std::borrow::Cow::Borrowed(&[#(#nodes),*]),
    })
}

/// The items for one compiled net.
fn net_items(net: &CompiledNet) -> TokenStream {
    let NetDef {
        attrs, vis, name, ..
    } = &net.def;
    let f = &net.figures;
    let (input, output) = (net.graph.input_shape(), net.graph.output_shape());
    let (input_len, output_len) = (input.len() as usize, output.len() as usize);
    let (params, buffers, flops, macs) = (f.params, f.buffers, f.flops, f.macs);
    let (param_bytes, activation_bytes, peak) =
        (f.param_bytes, f.activation_bytes, net.plan.arena_bytes);
    let tail_bytes = cnnjit_ir::batch::dense_tail(&net.graph, &net.plan)
        .map_or(0, |tail| tail.bytes_per_image());
    let (stored, train_macs) = (f.stored_elements, f.train_macs);
    let (input_shape, output_shape) = (shape(input), shape(output));
    let infos = layer_infos(&net.graph, f).into_iter().map(|l| {
        let (lname, kind, hyper, out) = (
            l.name.as_ref(),
            l.kind.as_ref(),
            l.hyper.as_ref(),
            shape(l.output),
        );
        let (p, fl, m) = (l.params, l.flops, l.macs);
        quote!(::cnnjit::LayerInfo {
            name: ::std::borrow::Cow::Borrowed(#lname),
            kind: ::std::borrow::Cow::Borrowed(#kind),
            hyper: ::std::borrow::Cow::Borrowed(#hyper),
            output: #out, params: #p, flops: #fl, macs: #m,
        })
    });
    let graph = graph_literal(&net.graph);
    let name_str = name.to_string();
    let doc = format!(
        "\n\nGenerated by `cnn!`: input {input}, output {output}, {} parameters, {} FLOPs ({} MACs), {} layers.",
        thousands(params),
        thousands(flops),
        thousands(macs),
        net.graph.nodes.len() - 1
    );
    let doc = Literal::string(&doc);
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #[derive(Clone, Debug)]
        #vis struct #name { model: ::cnnjit::Model }

        #[allow(dead_code)]
        impl #name {
            /// The input's shape for one image.
            pub const INPUT_SHAPE: ::cnnjit::Shape = #input_shape;
            /// The output's shape for one image.
            pub const OUTPUT_SHAPE: ::cnnjit::Shape = #output_shape;
            /// `f32` elements of one input.
            pub const INPUT_LEN: usize = #input_len;
            /// `f32` elements of one output.
            pub const OUTPUT_LEN: usize = #output_len;
            /// Learnable parameters.
            pub const PARAMS: u64 = #params;
            /// Non-learnable state: batch-norm running statistics.
            pub const BUFFERS: u64 = #buffers;
            /// FLOPs by the lecture's rule (MACs of conv, dwconv, dense, plus pooling windows).
            pub const FLOPS: u64 = #flops;
            /// Multiply-accumulates of conv, dwconv and dense.
            pub const MACS: u64 = #macs;
            /// Bytes of the learnable parameters in `f32`.
            pub const PARAM_BYTES: u64 = #param_bytes;
            /// Bytes of every layer's output for one image, in `f32`.
            pub const ACTIVATION_BYTES: u64 = #activation_bytes;
            /// Bytes of the arena the runtime allocates for one image (the largest live set, with reuse).
            pub const PEAK_INFERENCE_BYTES: u64 = #peak;
            /// Bytes a batch of `batch` images takes beside the weights: the
            /// one-image arena, and for a batch of more than one image the
            /// dense tail's buffers for a chunk of at most
            /// `cnnjit::ir::batch::BATCH_CHUNK` images (what `Model::batch_bytes` reports).
            pub const fn peak_inference_bytes(batch: u64) -> u64 {
                ::cnnjit::ir::batch::peak_inference_bytes(Self::PEAK_INFERENCE_BYTES, #tail_bytes, batch)
            }
            /// Output elements of the layers kept for the backward pass (all but
            /// activations, dropout, identity and flatten).
            pub const STORED_ELEMENTS: u64 = #stored;
            /// Multiply-accumulates of one training step of one image: forward, and the
            /// gradients with respect to weights and (but for the first weighted layer) inputs.
            pub const TRAIN_MACS: u64 = #train_macs;
            /// One row per layer: name, hyper-parameters, output shape, params, FLOPs.
            pub const LAYERS: &'static [::cnnjit::LayerInfo] = &[#(#infos),*];

            /// Bytes to train on `batch` images in `f32` without optimizer state:
            /// `4 (2 PARAMS + batch (INPUT_LEN + 2 STORED_ELEMENTS))`.
            pub const fn training_bytes(batch: u64) -> u64 {
                ::cnnjit::ir::cost::training_bytes(Self::PARAMS, Self::INPUT_LEN as u64, Self::STORED_ELEMENTS, batch)
            }

            /// The lecture's table with totals; `Display` prints it.
            pub fn summary() -> ::cnnjit::Summary {
                ::cnnjit::Summary {
                    name: ::std::borrow::Cow::Borrowed(#name_str),
                    input: Self::INPUT_SHAPE,
                    layers: ::std::borrow::Cow::Borrowed(Self::LAYERS),
                    params: Self::PARAMS,
                    buffers: Self::BUFFERS,
                    flops: Self::FLOPS,
                    macs: Self::MACS,
                    param_bytes: Self::PARAM_BYTES,
                    activation_bytes: Self::ACTIVATION_BYTES,
                    peak_inference_bytes: Self::PEAK_INFERENCE_BYTES,
                    stored_elements: Self::STORED_ELEMENTS,
                    train_macs: Self::TRAIN_MACS,
                }
            }

            /// The network's graph, every layer with its resolved op and shape.
            pub fn graph() -> ::cnnjit::Graph {
                #graph
            }

            /// The network with `weights` (PyTorch's names and layouts); every
            /// missing, mis-shaped or unused tensor is an error naming it.
            pub fn new(weights: &::cnnjit::Weights) -> ::core::result::Result<Self, ::cnnjit::Error> {
                Self::with_options(weights, ::cnnjit::Options::default())
            }

            /// [`Self::new`] with options.
            pub fn with_options(
                weights: &::cnnjit::Weights,
                options: ::cnnjit::Options,
            ) -> ::core::result::Result<Self, ::cnnjit::Error> {
                ::core::result::Result::Ok(Self {
                    model: ::cnnjit::Model::with_options(Self::graph(), weights, options)?,
                })
            }

            /// The network initialised like PyTorch's defaults; the same seed gives the same network.
            pub fn random(seed: u64) -> Self {
                Self {
                    model: ::cnnjit::Model::random(Self::graph(), seed)
                        .expect("random weights fit the network they are made for"),
                }
            }

            /// Runs one image (height, width, channel order) and returns its output.
            pub fn forward(&mut self, input: &[f32; #input_len]) -> [f32; #output_len] {
                let mut output = [0.0f32; #output_len];
                self.model
                    .forward_into(input, &mut output)
                    .expect("the array types fix both lengths");
                output
            }

            /// Runs a batch: whole images one after another in `inputs`, as many outputs in `outputs`.
            pub fn forward_batch(
                &mut self,
                inputs: &[f32],
                outputs: &mut [f32],
            ) -> ::core::result::Result<(), ::cnnjit::Error> {
                self.model.forward_batch(inputs, outputs)
            }

            /// The underlying dynamic model.
            pub fn model(&self) -> &::cnnjit::Model {
                &self.model
            }
        }
    }
}
