//! The language's integration tests: every example net, the language's rules, deep nesting, no input that panics.
//!
//! One test binary per crate: each file below was a binary of its own, and
//! linking each against Cranelift and the workspace was most of CI's time.

mod deep_nesting;
mod example_nets;
mod language_rules;
mod no_panic;
mod print;
