//! cnnjit: a compiler for convolutional neural networks.
//!
//! Write a network in the `cnn!` layer language; the macro parses it at
//! build time, infers every shape, turns mistakes into compile errors on the
//! offending token, and emits a type with `const` figures:
//!
//! ```
//! cnnjit::cnn! {
//!     pub LeNet5(32x32x1) {
//!         conv(6, 5x5), tanh, avgpool(2x2, stride = 2),
//!         conv(16, 5x5), tanh, avgpool(2x2, stride = 2),
//!         flatten, dense(120), tanh, dense(84), tanh, dense(10), softmax,
//!     }
//! }
//! const _: () = assert!(LeNet5::PARAMS == 61_706);
//! assert_eq!(LeNet5::OUTPUT_LEN, 10);
//! println!("{}", LeNet5::summary());
//! ```
//!
//! The language is documented in docs/language.md.
//!
//! Besides the macro, the facade re-exports the run-time API ([`Model`],
//! [`Weights`], [`runtime`]), the crates of each stage (the graph IR [`ir`],
//! the language [`lang`], the code generator `codegen` with the `jit`
//! feature) and the ONNX importer ([`import`]), and adds [`check`] (the JIT against the reference
//! kernels on one network) and, with the `npy` feature, `npy` (NumPy
//! inputs and outputs), with the `image` feature, `image` (JPEG and PNG
//! files preprocessed as torchvision does, and class names). The `cnnjit` binary's own timing, peak and chart
//! code lives with it, in `src/bin/cnnjit/`.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "jit")]
pub use cnnjit_codegen as codegen;
pub use cnnjit_import as import;
pub use cnnjit_ir as ir;
pub use cnnjit_lang as lang;
pub use cnnjit_macros::cnn;
pub use cnnjit_runtime as runtime;
#[cfg(feature = "jit")]
pub use cnnjit_runtime::BatchKernels;
pub use cnnjit_runtime::{
    Error, Graph, LayerInfo, Model, Options, Shape, Summary, Tensor, Weights, Winograd,
};

pub mod check;
#[cfg(feature = "image")]
pub mod image;
#[cfg(feature = "npy")]
pub mod npy;
