//! [`Error`]: every way an import can fail, as a value that names the node,
//! the tensor or the file.

use std::path::PathBuf;

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not a well-formed ONNX model.
    #[error("{0}")]
    Decode(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tensor's external data cannot be read: its location is not a
    /// regular file inside the model's folder, or its offset and length do
    /// not name the tensor's bytes inside that file.
    #[error(
        "tensor `{tensor}`: external data `{}` {why}{}",
        location.escape_debug(),
        source.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    External {
        /// The tensor's name.
        tensor: String,
        /// The location as the model gives it.
        location: String,
        /// What is wrong.
        why: String,
        /// The error of the file system, where one is the cause.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The model file, or all its external data, cannot be had: a
    /// directory, or more than the machine's memory (the runtime's memory
    /// budget, `cnnjit_runtime::memory`).
    #[error(transparent)]
    Memory(#[from] cnnjit_runtime::Error),
    /// The outputs would overwrite the model or each other.
    #[error("{0}")]
    Output(String),
    /// The weights cannot be written as safetensors.
    #[error("cannot write the weights as safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// The model uses operator sets this importer does not read.
    #[error("{0}")]
    Opset(String),
    /// A node cannot be written in the `cnn!` language.
    #[error("node `{node}` ({op}): {why}")]
    Node {
        /// The node's name (or its first output's, when it has none).
        node: String,
        /// Its operator.
        op: String,
        /// What is wrong.
        why: String,
    },
    /// The written source does not compile to the graph the model describes
    /// (a bug of the importer, reported instead of a wrong net).
    #[error("the imported net does not match the model: {0}")]
    Verify(String),
}

/// A `Result` whose error is an import [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
