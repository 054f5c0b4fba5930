//! `cnnjit::Error`: every mistake at run time — a weights file that is
//! missing, corrupt or does not fit the network, a buffer of the wrong length,
//! a network file that does not compile, a network too large for memory — as a value that names what is wrong
//! and where. Nothing in the runtime panics on user input.
//!
//! Errors of other parts keep their type as the `source`: a corrupt file's
//! [`Corruption`] (with `safetensors`' own error), an invalid graph's
//! `GraphError`, a plan's `ShapeError`, and for a bug in cnnjit (or a host
//! Cranelift cannot serve) [`Error::Internal`]'s [`InternalError`]: a
//! reference kernel's `KernelError`, Cranelift's `CodegenError`, a compiled
//! kernel's `CallError`. The runtime prints nothing: a model that falls back
//! to the reference kernels says why in its `Backend`.

use crate::reference::KernelError;
use cnnjit_ir::summary::thousands;
use std::path::PathBuf;

/// What went wrong while loading weights, building a model or running it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A weights file is not valid safetensors (truncated, corrupt header, bad offsets).
    #[error("{origin}: not a valid safetensors file: {reason}")]
    Corrupt {
        /// The file, or `<bytes>`.
        origin: String,
        /// What is wrong.
        #[source]
        reason: Corruption,
    },
    /// A tensor has an element type other than `f32`.
    #[error("tensor `{tensor}` is {found}, expected F32")]
    WrongDtype {
        /// The tensor's name.
        tensor: String,
        /// Its dtype.
        found: String,
    },
    /// A tensor the network needs is absent.
    #[error("layer `{layer}` needs tensor `{tensor}` with shape {expected:?}, which the weights do not have")]
    MissingTensor {
        /// The layer.
        layer: String,
        /// The tensor's full name (`conv1.weight`).
        tensor: String,
        /// The shape it must have.
        expected: Vec<usize>,
    },
    /// A tensor has the wrong shape.
    #[error("layer `{layer}`: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        /// The layer.
        layer: String,
        /// The tensor's full name.
        tensor: String,
        /// The shape the layer needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The weights hold tensors no layer uses (an error unless allowed).
    #[error("the weights have {} tensor(s) no layer of `{net}` uses: {}; check the layer names, or allow extra tensors", names.len(), names.join(", "))]
    UnusedTensors {
        /// The network.
        net: String,
        /// The unused tensors' names.
        names: Vec<String>,
    },
    /// A tensor holds a value that is not finite, or a bn variance below zero.
    #[error("tensor `{tensor}`: {reason}")]
    BadValue {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A caller's buffer has the wrong length.
    #[error("{what} has {found} elements, expected {expected}")]
    BufferLength {
        /// Which buffer.
        what: &'static str,
        /// The length needed.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// Memory that cannot be had: more than is left under the memory limit
    /// (see [`crate::memory`]), or refused by the system.
    #[error("cannot allocate {} bytes for {what}: {}", thousands(*bytes), match left {
        Some(left) => format!("more than the {} bytes left under the memory limit", thousands(*left)),
        None => "the system refused".to_string(),
    })]
    OutOfMemory {
        /// What the memory was for.
        what: String,
        /// How much was asked for.
        bytes: u64,
        /// The bytes that were left under the limit, or `None` if the
        /// allocator refused.
        left: Option<u64>,
    },
    /// A path that must name a file names something else.
    #[error("cannot read {}: it is {found}, expected a file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it names (`a directory`).
        found: &'static str,
    },
    /// More threads than [`MAX_THREADS`](crate::model::MAX_THREADS) asked for.
    #[error("cannot run on {requested} threads: at most {max} are allowed (0 means one per core)")]
    TooManyThreads {
        /// The threads asked for.
        requested: usize,
        /// The bound.
        max: usize,
    },
    /// A network source did not compile (rendered diagnostics).
    #[error("{0}")]
    Network(String),
    /// A graph given to [`Model`](crate::Model) breaks an invariant of the IR
    /// (one built by hand rather than by the compiler).
    #[error("net `{net}` is not a valid graph: {source}")]
    InvalidGraph {
        /// The network.
        net: String,
        /// The invariant that does not hold.
        #[source]
        source: cnnjit_ir::GraphError,
    },
    /// A graph that cannot be planned (a tensor or arena too large to address).
    #[error("net `{net}`: {source}")]
    Plan {
        /// The network.
        net: String,
        /// Why.
        #[source]
        source: cnnjit_ir::shape::ShapeError,
    },
    /// A kernel rejected its arguments, or code could not be generated: a
    /// bug in cnnjit (or a host Cranelift cannot serve), reported rather
    /// than a panic.
    #[error("internal error in layer `{layer}`: {source}")]
    Internal {
        /// The layer, or the network when no layer is to blame.
        layer: String,
        /// What failed.
        #[source]
        source: InternalError,
    },
}

/// Why a weights file is not valid safetensors: the source of an [`Error::Corrupt`].
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// The `safetensors` crate refused it (or, writing, its header).
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// A tensor's data offsets point past the end of the data.
    #[error("tensor `{tensor}` has data offsets [{}] past the end of the {data_len} bytes of data", offsets.join(", "))]
    DataOffsets {
        /// The tensor's name.
        tensor: String,
        /// Its offsets as the header writes them.
        offsets: Vec<String>,
        /// The bytes of data after the header.
        data_len: usize,
    },
    /// A tensor's data is not its shape's size.
    #[error("tensor `{tensor}` has shape {shape:?} but {bytes} bytes of data")]
    DataSize {
        /// The tensor's name.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Its bytes of data.
        bytes: usize,
    },
}

/// What failed inside cnnjit: the source of an [`Error::Internal`].
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// A reference kernel refused its buffers or hyper-parameters.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Cranelift could not generate or link a kernel.
    #[cfg(feature = "jit")]
    #[error(transparent)]
    Codegen(#[from] cnnjit_codegen::CodegenError),
    /// A compiled kernel's buffer is shorter than its contract requires.
    #[cfg(feature = "jit")]
    #[error(transparent)]
    Call(#[from] crate::jit::CallError),
    /// A layer the reference kernels run has no parameters loaded.
    #[error("no parameters loaded for {kind}")]
    NoParams {
        /// The layer's kind ([`Op::kind`](cnnjit_ir::Op::kind)).
        kind: &'static str,
    },
    /// A weight left in the file is not there when the JIT packs it.
    #[error("no tensor `{tensor}` in the weights")]
    NoTensor {
        /// The tensor's name.
        tensor: String,
    },
    /// Another invariant of the plan, the arena or a packed kernel does not hold.
    #[error("{0}")]
    Broken(&'static str),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
