//! Writing source: the nested items as one net in the `cnn!` language,
//! through the language's printer (`cnnjit_lang::dsl::print`), which
//! writes every layer from the layer table.
//!
//! Besides the text, [`fn@write`] returns the order in which the compiler's
//! expansion will create the net's nodes ([`Slot`]s), as the printer's
//! [`print::order`] gives it for the tree (checked against the expander in
//! `lang/tests/it/print.rs`). [`crate::verify`] walks the compiled graph in
//! that order to check it against the DAG. An empty `concat` branch is
//! written `identity` (a [`Slot::Alias`]).
//!
//! Layers are labelled with their ONNX node's name where it is a valid
//! identifier of at most [`MAX_LABEL`] characters that names one node only
//! and cannot clash with the language's words or default names (`conv3`);
//! the others take default names. (A longer name is an exporter's path, not
//! a name a person gave the layer, and would widen every table it is in.)

use crate::error::{Error, Result};
use crate::map::Dag;
use crate::nest::Item;
use cnnjit_ir::{Op, Shape};
use cnnjit_lang::dsl::print::{self, Nodes};
use std::collections::HashMap;

/// A node of the compiled graph, in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The DAG's layer.
    Layer(usize),
    /// An `identity` written for an empty concat branch; its value is that
    /// of the DAG's layer it reads.
    Alias(usize),
}

/// A net's source and its nodes' creation order.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The text of a `.cnn` file.
    pub source: String,
    /// One slot per node after the input.
    pub order: Vec<Slot>,
}

/// What the file says about where it came from.
pub struct Header<'a> {
    /// The net's name.
    pub name: &'a str,
    /// The ONNX file's name.
    pub file: &'a str,
    /// The weights file's name.
    pub weights: &'a str,
    /// The tool that wrote the ONNX file, and its operator set.
    pub producer: &'a str,
}

/// Writes the net `items` of `dag`.
pub fn write(dag: &Dag, items: &[Item], header: &Header) -> Result<Written> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for layer in &dag.layers {
        *names.entry(layer.node.as_str()).or_default() += 1;
    }
    let view = View { dag, names };
    let tree = with_aliases(items, 0, dag.layers.len());
    let Header {
        name,
        file,
        weights,
        producer,
    } = header;
    let net = print::net(name, dag.layers[0].shape, &tree, &view).map_err(|e| {
        let layer = &dag.layers[e.node.min(dag.layers.len() - 1)];
        Error::layer(layer, e.problem.to_string())
    })?;
    let n = dag.layers.len();
    let order = print::order(&tree)
        .into_iter()
        .map(|id| match id.checked_sub(n) {
            Some(read) => Slot::Alias(read),
            None => Slot::Layer(id),
        })
        .collect();
    Ok(Written {
        source: format!(
            "// Imported by `cnnjit import` from {file} ({producer}).\n// Weights: {weights} (PyTorch names and layouts).\n\n/// Imported from {file}.\n{net}"
        ),
        order,
    })
}

/// `items` (reading layer `input`, of a DAG of `n` layers) with each empty
/// `concat` branch holding an `identity` of the layer it reads: node
/// `n + input`.
fn with_aliases(items: &[Item], mut input: usize, n: usize) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(match item {
            Item::Layer(id) => Item::Layer(*id),
            Item::Residual {
                body,
                shortcut,
                join,
            } => Item::Residual {
                body: with_aliases(body, input, n),
                shortcut: with_aliases(shortcut, input, n),
                join: *join,
            },
            Item::Concat { branches, join } => Item::Concat {
                branches: branches
                    .iter()
                    .map(|b| {
                        if b.is_empty() {
                            vec![Item::Layer(n + input)]
                        } else {
                            with_aliases(b, input, n)
                        }
                    })
                    .collect(),
                join: *join,
            },
            Item::Scale { body, join } => Item::Scale {
                body: with_aliases(body, input, n),
                join: *join,
            },
        });
        input = match item {
            Item::Layer(id) => *id,
            Item::Residual { join, .. } | Item::Concat { join, .. } | Item::Scale { join, .. } => {
                *join
            }
        };
    }
    out
}

/// The DAG as the printer reads it: node `n + i` (past the DAG's `n`
/// layers) is an `identity` of layer `i`.
struct View<'a> {
    dag: &'a Dag,
    names: HashMap<&'a str, usize>,
}

impl Nodes for View<'_> {
    fn op(&self, id: usize) -> Op {
        self.dag.layers.get(id).map_or(Op::Identity, |l| l.op)
    }

    fn shape(&self, id: usize) -> Shape {
        let n = self.dag.layers.len();
        self.dag.layers[if id < n { id } else { id - n }].shape
    }

    fn input_shape(&self, id: usize) -> Shape {
        match self.dag.layers.get(id) {
            Some(layer) => layer
                .inputs
                .first()
                .map_or(layer.shape, |&i| self.dag.layers[i].shape),
            None => self.shape(id),
        }
    }

    /// The layer's ONNX name, if it can serve as its label.
    fn label(&self, id: usize) -> Option<&str> {
        let name = self.dag.layers.get(id)?.node.as_str();
        (print::can_label(name) && name.len() <= MAX_LABEL && self.names.get(name) == Some(&1))
            .then_some(name)
    }
}

/// The longest ONNX node name written as a label.
pub const MAX_LABEL: usize = 64;
