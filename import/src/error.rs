//! [`Error`]: every way an import can fail, as a value that names the node.

/// Why a model could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file is not a well-formed ONNX model.
    #[error("{0}")]
    Decode(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
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
