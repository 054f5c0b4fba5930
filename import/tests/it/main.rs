//! The importer's integration tests: each mapping and error, external data confined to the model's folder, fuzzed files.
//!
//! One test binary per crate: each file below was a binary of its own, and
//! linking each against Cranelift and the workspace was most of CI's time.

mod channels_last;
mod common;
mod external_data;
mod fuzz;
mod import;
mod resize;
