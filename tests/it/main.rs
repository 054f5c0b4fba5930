//! The facade's integration tests: the macro, the CLI, the JIT against the reference kernels, fixtures from PyTorch and ONNX Runtime.
//!
//! One test binary per crate: each file below was a binary of its own, and
//! linking each against Cranelift and the workspace was most of CI's time.

mod batch;
mod check;
mod cli;
mod cli_image;
mod cli_import;
mod cli_run;
mod compare;
mod digits;
mod generated;
mod ground_truth;
mod image;
mod jit;
mod long_names;
mod onnx_import;
mod op_matches;
mod peak;
mod pytorch_fixtures;
mod runtime;
mod training;
mod tune;
mod ui;
