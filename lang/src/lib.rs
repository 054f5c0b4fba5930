//! cnnjit-lang: the `cnn!` language, from tokens to a checked graph.
//!
//! The front end, one module per stage, each a function from one plain
//! structure to the next (cost and plan are the IR crate's passes, run here
//! so a compiled net carries its figures):
//!
//! ```text
//! tokens --dsl::parse--> ast::Items --expand--> cnnjit_ir::Graph (shapes inferred)
//!        --cost--> Figures --plan--> Plan (steps + arena) --emit--> Rust items
//! ```
//!
//! The `cnn!` proc macro (crate `cnnjit-macros`) is [`emit::expand_macro`];
//! the CLI calls [`compile_source`]. No pass reaches back into the syntax
//! tree: after [`expand`], only the [`cnnjit_ir::Graph`] (and the span of
//! each node, for errors) is read. Everything after the graph lives in
//! `cnnjit-ir`, which depends on no syntax crate.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod dsl;
pub mod emit;
pub mod expand;

use cnnjit_ir::{cost, plan, shape, summary};

use dsl::ast::{Items, NetDef, SpanRange};

/// A net that went through every front-end pass.
#[derive(Clone)]
pub struct CompiledNet {
    /// The definition as written (name, visibility, doc comments).
    pub def: NetDef,
    /// The graph, shapes inferred.
    pub graph: cnnjit_ir::Graph,
    /// Where each node was written.
    pub spans: Vec<SpanRange>,
    /// Params, FLOPs, MACs, memory.
    pub figures: cost::Figures,
    /// Fused kernels and the arena layout.
    pub plan: plan::Plan,
}

impl CompiledNet {
    /// The summary table of this net.
    pub fn summary(&self) -> summary::Summary {
        summary::Summary::of(&self.graph, &self.figures, self.plan.arena_bytes)
    }
}

/// Runs expand, cost and plan on one net.
pub fn compile_net(def: &NetDef, items: &Items) -> syn::Result<CompiledNet> {
    let expanded = expand::expand_net(def, &items.blocks)?;
    let overflow =
        |e: shape::ShapeError| syn::Error::new(def.name.span(), format!("net `{}`: {e}", def.name));
    let figures = cost::figures(&expanded.graph).map_err(overflow)?;
    let plan = plan::plan(&expanded.graph).map_err(overflow)?;
    Ok(CompiledNet {
        def: def.clone(),
        graph: expanded.graph,
        spans: expanded.spans,
        figures,
        plan,
    })
}

/// Compiles every net of `items`: the nets that compiled, and an error for
/// each that did not. A net named like an earlier one is an error on its name
/// (a file's nets are chosen by name), and is not compiled.
pub fn compile_items(items: &Items) -> (Vec<CompiledNet>, Vec<(&NetDef, syn::Error)>) {
    let mut nets = Vec::new();
    let mut errors = Vec::new();
    for (i, def) in items.nets.iter().enumerate() {
        if items.nets[..i]
            .iter()
            .any(|earlier| earlier.name == def.name)
        {
            let error = syn::Error::new(
                def.name.span(),
                format!(
                    "net `{}` is defined twice; give this one another name",
                    def.name
                ),
            );
            errors.push((def, error));
            continue;
        }
        match compile_net(def, items) {
            Ok(net) => nets.push(net),
            Err(e) => errors.push((def, e)),
        }
    }
    (nets, errors)
}

/// Compiles the text of a `.cnn` file (or of a `cnn!` call's body): every
/// net, or every error combined.
pub fn compile_source(text: &str) -> syn::Result<Vec<CompiledNet>> {
    let items = dsl::parse_source(text)?;
    let (nets, errors) = compile_items(&items);
    let mut combined: Option<syn::Error> = None;
    for (_, e) in errors {
        match &mut combined {
            Some(c) => c.combine(e),
            None => combined = Some(e),
        }
    }
    match combined {
        Some(e) => Err(e),
        None => Ok(nets),
    }
}
