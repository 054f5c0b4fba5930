//! The runtime's integration tests: depthwise on every ISA, guard pages around every kernel's buffers, memory budgets, weights files, Winograd's error bound.
//!
//! One test binary per crate: each file below was a binary of its own, and
//! linking each against Cranelift and the workspace was most of CI's time.

mod depthwise;
mod gelu;
mod guard_pages;
mod memory;
// Reads nets from source text (`Model::from_source`), which needs the `source` feature.
#[cfg(feature = "source")]
mod weights;
mod winograd;
