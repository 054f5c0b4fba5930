//! Tests of the IR's passes on networks written in the language (which the IR
//! crate itself does not depend on).

mod graph;
mod plan;
