//! [`Error`]: every way an import can fail, as a value that names the node,
//! the tensor or the file. What is structured stays structured:
//! [`DecodeError`] (which input, output or tensor, and [`TensorProblem`]),
//! [`OutputProblem`] (which path, and why), [`VerifyError`] (expected and
//! found); errors of other crates (prost, the file system, safetensors, the
//! runtime's memory budget) are kept as the `source`.

use crate::map::OPSETS;
use cnnjit_ir::Shape;
use std::path::PathBuf;

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not a well-formed ONNX model, or not one net cnnjit reads.
    #[error(transparent)]
    Decode(#[from] DecodeError),
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
    /// An output path that would overwrite the model or the other output,
    /// or that names no file.
    #[error("`{}` {problem}", path.display())]
    Output {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        problem: OutputProblem,
    },
    /// The weights cannot be written as safetensors.
    #[error("cannot write the weights as safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// The model imports no standard operator set.
    #[error("the model imports no standard ONNX operator set")]
    NoOpset,
    /// The model uses an operator set this importer does not read.
    #[error("the model uses ONNX opset {version}; cnnjit imports opsets {} to {}", OPSETS.start(), OPSETS.end())]
    Opset {
        /// The standard operator set's version.
        version: i64,
    },
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
    Verify(#[from] VerifyError),
}

/// Why a file is not an ONNX model, or not one net cnnjit reads.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model: {0}")]
    NotOnnx(#[source] prost::DecodeError),
    /// The model holds no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// The name asked for the net cannot name one.
    #[error("`{name}` is not a valid net name (a Rust identifier starting with a letter)")]
    NetName {
        /// The name.
        name: String,
    },
    /// Not exactly one graph input (initializers aside).
    #[error("the model has {found} inputs that are not initializers; cnnjit nets have one")]
    Inputs {
        /// The inputs found.
        found: usize,
    },
    /// The input's dimensions are not `[N, C, H, W]` or `[N, F]` with fixed
    /// sizes, or disagree with the shape given for it.
    #[error("input `{input}` has dimensions {}; {}", dims_text(dims), match given {
        None => "cnnjit reads [N, C, H, W] or [N, F]: give the sizes the file leaves open with `--input-shape HxWxC` (or `F`)".to_string(),
        Some(shape) => format!("the input shape given, {}, disagrees with a size the file fixes", shape_text(*shape)),
    })]
    InputDims {
        /// The input's name.
        input: String,
        /// Its dimensions (`None` where symbolic), if declared.
        dims: Option<Vec<Option<i64>>>,
        /// The shape given for it (`Options::input_shape`), if any.
        given: Option<Shape>,
    },
    /// Not exactly one graph output.
    #[error("the model has {found} outputs; cnnjit nets have one")]
    Outputs {
        /// The outputs found.
        found: usize,
    },
    /// The output is a constant.
    #[error("output `{output}` is a constant, not computed from the input")]
    ConstantOutput {
        /// The output's name.
        output: String,
    },
    /// The output is an unfinished layer written in several nodes: a
    /// hard-sigmoid or hard-swish, a `Pad` before a conv, a channel shuffle.
    #[error("output `{output}` is a step of a layer written in several nodes that never finished: x + 3, relu6(x + 3) or x * relu6(x + 3) of a hard_sigmoid or hard_swish, an explicit Pad before a conv, or the Reshape and Transpose of a channel shuffle")]
    PartialOutput {
        /// The output's name.
        output: String,
    },
    /// No node computes the output.
    #[error("output `{output}` is computed by no node")]
    UnknownOutput {
        /// The output's name.
        output: String,
    },
    /// A tensor's data cannot be decoded.
    #[error("{} {problem}", tensor_name(tensor))]
    Tensor {
        /// The tensor's name (empty if it has none).
        tensor: String,
        /// What is wrong.
        problem: TensorProblem,
    },
    /// A tensor's external data names no file.
    #[error("tensor `{tensor}`: external data without a location")]
    NoLocation {
        /// The tensor's name.
        tensor: String,
    },
}

/// `tensor `NAME``, or `a tensor` for an unnamed one.
fn tensor_name(name: &str) -> String {
    if name.is_empty() {
        "a tensor".to_string()
    } else {
        format!("tensor `{name}`")
    }
}

/// What is wrong with a tensor's data (see [`DecodeError::Tensor`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TensorProblem {
    /// A dimension below zero.
    #[error("has a negative dimension: {dims:?}")]
    NegativeDimension {
        /// The dimensions.
        dims: Vec<i64>,
    },
    /// An element type the importer does not read (ONNX's code).
    #[error("has element type {found}, not float32, float64, int32 or int64")]
    ElementType {
        /// ONNX's `data_type`.
        found: i32,
    },
    /// External data whose byte size overflows.
    #[error("has too many elements: {dims:?}")]
    TooLarge {
        /// The dimensions.
        dims: Vec<usize>,
    },
    /// Raw data that is not a whole number of elements.
    #[error("has {bytes} bytes of data, not a whole number of {width}-byte elements")]
    RaggedBytes {
        /// The bytes of data.
        bytes: usize,
        /// The bytes of one element.
        width: usize,
    },
    /// Values that do not fill the dimensions.
    #[error("has dimensions {dims:?} but holds {values} values")]
    Count {
        /// The dimensions.
        dims: Vec<usize>,
        /// The values held.
        values: usize,
    },
}

/// What is wrong with an output path (see [`Error::Output`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputProblem {
    /// The `.cnn` path ends in `.safetensors`: both files would be one.
    #[error(
        "would be both the net's source and its weights: the .cnn file needs another extension"
    )]
    SourceIsWeights,
    /// The path is the model being imported.
    #[error("is the model being imported: write the net elsewhere")]
    IsTheModel,
    /// The path has no file name.
    #[error("does not name a file")]
    NoFileName,
    /// The path is a folder.
    #[error("is a folder, not a file")]
    Folder,
}

/// Why the written source is not the net the model describes (a bug of the
/// importer): see [`Error::Verify`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The source does not compile.
    #[error("the written source does not compile: {diagnostic}")]
    DoesNotCompile {
        /// The compiler's error.
        diagnostic: String,
    },
    /// The source holds no net, or several.
    #[error("the written source holds {found} nets, expected one")]
    NetCount {
        /// The nets it holds.
        found: usize,
    },
    /// The source and the model differ in layer count.
    #[error("the source compiles to {source_layers} layers, the model has {model_layers}")]
    LayerCount {
        /// The compiled net's layers.
        source_layers: usize,
        /// The model's.
        model_layers: usize,
    },
    /// The input shapes differ.
    #[error("input {found} instead of {expected}")]
    Input {
        /// The compiled net's input.
        found: Shape,
        /// The model's.
        expected: Shape,
    },
    /// A compiled layer is not the model's layer.
    #[error("layer `{layer}`: {why}")]
    Layer {
        /// The compiled layer's name.
        layer: String,
        /// What differs.
        why: String,
    },
    /// The net's last layer is not the model's output.
    #[error("the net's last layer is not the model's output")]
    Output,
    /// The output shape is not the one the model declares.
    #[error("the output is {found} ({nchw:?} in NCHW), the model declares {declared:?}")]
    OutputShape {
        /// The compiled net's output.
        found: Shape,
        /// The same in NCHW order.
        nchw: Vec<usize>,
        /// The model's declared dimensions (`None` where symbolic).
        declared: Vec<Option<i64>>,
    },
    /// The net needs a tensor no layer of the model holds.
    #[error("no tensor for `{tensor}`")]
    NoTensor {
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor's dimensions are not the ones the net needs.
    #[error("`{tensor}` has dimensions {found:?}, the net needs {needed:?}")]
    TensorDims {
        /// The tensor's name.
        tensor: String,
        /// Its dimensions in the model.
        found: Vec<usize>,
        /// The net's.
        needed: Vec<usize>,
    },
    /// The model holds tensors the net does not use.
    #[error("the model's layers hold {held} tensors, the net uses {used}")]
    TensorCount {
        /// Tensors the model's layers hold.
        held: usize,
        /// Tensors the net uses.
        used: usize,
    },
}

/// A `Result` whose error is an import [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Declared dimensions as `[?, 3, ?, ?]` (`?` where not fixed), or
/// `undeclared`.
fn dims_text(dims: &Option<Vec<Option<i64>>>) -> String {
    match dims {
        None => "undeclared".to_string(),
        Some(dims) => {
            let dims: Vec<String> = (dims.iter())
                .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
                .collect();
            format!("[{}]", dims.join(", "))
        }
    }
}

/// A shape as `--input-shape` writes it: `HxWxC` or `F`.
fn shape_text(shape: Shape) -> String {
    match shape {
        Shape::Volume { h, w, c } => format!("{h}x{w}x{c}"),
        Shape::Flat(f) => f.to_string(),
    }
}
