//! Reading an ONNX file: the protobuf messages, and tensors decoded to
//! [`Tensor`]s (inline or in an external-data side file).
//!
//! The messages are the subset of `onnx.proto` (ONNX 1.x, stable since IR
//! version 3) that an importer of feed-forward CNNs reads, written as `prost`
//! derive structs with the field numbers of `onnx.proto`. Protobuf skips
//! fields a reader does not declare, so any ONNX file decodes; subgraphs
//! (`If`, `Loop`), sparse tensors and training info are simply not read.
//! Writing them by hand rather than depending on a crate of generated types
//! keeps the build free of `protoc` and of the one published crate of
//! generated ONNX types (`onnx-protobuf`), which is a single author's and
//! pulls in rust-protobuf; `prost` is the well-kept protobuf crate.
//!
//! Invariants: every decoded [`Tensor`] has exactly `dims.iter().product()`
//! elements; a file that says otherwise is an [`Error`]. External data is
//! read only from a regular file inside the model's folder (its `location`
//! relative, resolved with symbolic links followed, opened without following
//! one and without blocking, and checked again on the opened handle), and
//! only the tensor's own bytes, `offset..offset + length`, checked against
//! the file's size and the tensor's dimensions before anything is allocated;
//! all the initializers' external data together must fit in the machine's
//! memory, checked before any is read ([`crate::map`]).
//! Anything else (an absolute path, `..` or a link leading out, a folder, a
//! FIFO, a device, an empty location or one with a NUL byte) is an
//! [`Error::External`] naming the tensor and the location, as ONNX Runtime
//! and the `onnx` checker refuse them.

use crate::error::{DecodeError, Error, Result, TensorProblem};
use std::path::{Path, PathBuf};

/// `ModelProto`: the whole file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Model {
    /// The IR version of the file format.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// The tool that wrote the file.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// The operator sets the graph's nodes are taken from.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetId>,
}

/// `OperatorSetIdProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetId {
    /// `""` (or `"ai.onnx"`) for the standard operators.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The operator set's version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The nodes, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (the weights).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Inputs (in old files, initializers are listed here too).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfo>,
    /// Outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfo>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Names of the values it reads (`""` for an omitted optional input).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the values it writes.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Its name (may be empty).
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Its attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<Attribute>,
    /// The operator set's domain (`""` for the standard one).
    #[prost(string, tag = "7")]
    pub domain: String,
}

/// `AttributeProto` (the kinds an importer of CNNs reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attribute {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// A float.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// An integer.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// A string.
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// A tensor.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// Floats.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// Integers.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

/// `TensorProto.DataType` values that are read.
pub mod data_type {
    /// float32.
    pub const FLOAT: i32 = 1;
    /// int32.
    pub const INT32: i32 = 6;
    /// int64.
    pub const INT64: i32 = 7;
    /// float64.
    pub const DOUBLE: i32 = 11;
}

/// `TensorProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Dimensions.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// One of [`data_type`].
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// float32 values.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// int32 values.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// int64 values.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Its name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Values as little-endian bytes.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// float64 values.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// Where external data is (`location`, `offset`, `length`).
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringEntry>,
    /// 1 when the values are in a side file.
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `StringStringEntryProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringEntry {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `ValueInfoProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfo {
    /// The value's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto` (only its tensor case).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// A tensor type.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorType>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorType {
    /// Element type, one of [`data_type`].
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// Shape, when known.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShape>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShape {
    /// Dimensions.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a size or a symbolic name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// A fixed size.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// A symbolic size (`batch`).
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

impl ValueInfo {
    /// The dimensions, `None` for a symbolic or unknown one; `None` overall
    /// when the shape is not given.
    pub fn dims(&self) -> Option<Vec<Option<i64>>> {
        let shape = self.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?;
        Some(shape.dim.iter().map(|d| d.dim_value).collect())
    }
}

impl Attribute {
    /// The string value.
    pub fn string(&self) -> String {
        String::from_utf8_lossy(&self.s).into_owned()
    }
}

/// Decodes a model from the bytes of an `.onnx` file.
pub fn decode(bytes: &[u8]) -> Result<Model> {
    <Model as prost::Message>::decode(bytes).map_err(|e| DecodeError::NotOnnx(e).into())
}

/// A constant tensor's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Floating point (float32, and float64 narrowed).
    F32(Vec<f32>),
    /// Integers (int64 and int32 widened).
    I64(Vec<i64>),
}

/// A constant tensor: dimensions and values in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions (empty for a scalar).
    pub dims: Vec<usize>,
    /// Values.
    pub data: Data,
}

impl Tensor {
    /// Number of elements `dims` holds, or `None` on overflow.
    pub fn count(dims: &[usize]) -> Option<usize> {
        dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// A float tensor, checked against its dimensions.
    pub fn f32(dims: Vec<usize>, values: Vec<f32>) -> Result<Tensor> {
        Tensor::new(dims, Data::F32(values))
    }

    /// An integer tensor, checked against its dimensions.
    pub fn i64(dims: Vec<usize>, values: Vec<i64>) -> Result<Tensor> {
        Tensor::new(dims, Data::I64(values))
    }

    fn new(dims: Vec<usize>, data: Data) -> Result<Tensor> {
        let len = match &data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        if Tensor::count(&dims) != Some(len) {
            return Err(tensor_error("", TensorProblem::Count { dims, values: len }));
        }
        Ok(Tensor { dims, data })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as floats.
    pub fn floats(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as integers (floats truncated, as ONNX's `Cast` does).
    pub fn ints(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
        }
    }
}

/// Largest external data read for one tensor (4 GiB; ONNX's limit for a
/// single protobuf is 2 GiB).
const MAX_EXTERNAL_BYTES: u64 = 1 << 32;

/// A [`DecodeError::Tensor`] for the tensor called `name` (empty if it has none).
fn tensor_error(name: &str, problem: TensorProblem) -> Error {
    DecodeError::Tensor {
        tensor: name.to_string(),
        problem,
    }
    .into()
}

/// Decodes a tensor; `dir` is the model's folder, where external data files
/// are looked up.
pub fn tensor(proto: &TensorProto, dir: Option<&Path>) -> Result<Tensor> {
    let fail = |problem| tensor_error(&proto.name, problem);
    let dims = proto
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| {
            fail(TensorProblem::NegativeDimension {
                dims: proto.dims.clone(),
            })
        })?;
    let width = match proto.data_type {
        data_type::FLOAT | data_type::INT32 => 4,
        data_type::INT64 | data_type::DOUBLE => 8,
        found => return Err(fail(TensorProblem::ElementType { found })),
    };
    let external;
    let raw: &[u8] = if proto.data_location == 1 {
        let bytes = external_bytes(proto)
            .ok_or_else(|| fail(TensorProblem::TooLarge { dims: dims.clone() }))?;
        external = read_external(proto, dir, bytes)?;
        &external
    } else {
        &proto.raw_data
    };
    if !raw.len().is_multiple_of(width) {
        return Err(fail(TensorProblem::RaggedBytes {
            bytes: raw.len(),
            width,
        }));
    }
    let chunks = raw.chunks_exact(width);
    let data = match (proto.data_type, raw.is_empty()) {
        (data_type::FLOAT, false) => Data::F32(
            chunks
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        (data_type::FLOAT, true) => Data::F32(proto.float_data.clone()),
        (data_type::DOUBLE, false) => Data::F32(
            chunks
                .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32)
                .collect(),
        ),
        (data_type::DOUBLE, true) => {
            Data::F32(proto.double_data.iter().map(|&x| x as f32).collect())
        }
        (data_type::INT32, false) => Data::I64(
            chunks
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
        ),
        (data_type::INT32, true) => Data::I64(proto.int32_data.iter().map(|&x| x as i64).collect()),
        (_, false) => Data::I64(
            chunks
                .map(|b| i64::from_le_bytes(b.try_into().expect("8-byte chunk")))
                .collect(),
        ),
        (_, true) => Data::I64(proto.int64_data.clone()),
    };
    Tensor::new(dims, data).map_err(|e| match e {
        Error::Decode(DecodeError::Tensor { problem, .. }) => fail(problem),
        other => other,
    })
}

/// The bytes of external data `proto`'s dimensions and element type call
/// for, or `None` if they overflow or are invalid.
pub fn external_bytes(proto: &TensorProto) -> Option<u64> {
    let width = match proto.data_type {
        data_type::FLOAT | data_type::INT32 => 4,
        data_type::INT64 | data_type::DOUBLE => 8,
        _ => return None,
    };
    let dims = (proto.dims.iter())
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<_>>>()?;
    Tensor::count(&dims)
        .and_then(|n| n.checked_mul(width))
        .and_then(|n| u64::try_from(n).ok())
}

/// The `bytes` bytes of a tensor stored in a side file: its `location` must
/// resolve (symbolic links followed) to a regular file inside `dir`, and
/// `offset..offset + length` must lie inside that file and be the tensor's
/// bytes exactly. Nothing is allocated or read before both are checked.
fn read_external(proto: &TensorProto, dir: Option<&Path>, bytes: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let entry = |key: &str| {
        proto
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or_else(|| DecodeError::NoLocation {
        tensor: proto.name.clone(),
    })?;
    let refuse = |why: String, source: Option<std::io::Error>| Error::External {
        tensor: proto.name.clone(),
        location: location.to_string(),
        why,
        source,
    };
    let number = |key: &str| -> Result<Option<u64>> {
        entry(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    refuse(
                        format!("has {key} `{}`, which is not a size", v.escape_debug()),
                        None,
                    )
                })
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?;
    let Some(dir) = dir else {
        return Err(refuse(
            "cannot be read: the model was not read from a file, so it has no folder".into(),
            None,
        ));
    };
    let path = resolve(dir, location).map_err(|(why, source)| refuse(why, source))?;
    let mut file = open_regular(&path).map_err(|(why, source)| refuse(why, source))?;
    let cannot_read = |e| refuse("cannot be read".into(), Some(e));
    let size = file.metadata().map_err(cannot_read)?.len();
    let length = match length {
        Some(length) if length != bytes => {
            return Err(refuse(
                format!("has length {length} bytes, but the tensor holds {bytes} bytes"),
                None,
            ))
        }
        Some(length) => length,
        None => match size.checked_sub(offset) {
            Some(rest) if rest == bytes => rest,
            _ => {
                return Err(refuse(
                    format!(
                        "has no length, and its file ({size} bytes) does not end {bytes} bytes \
                         (the tensor's) after offset {offset}"
                    ),
                    None,
                ))
            }
        },
    };
    if length > MAX_EXTERNAL_BYTES {
        return Err(refuse(
            format!(
                "has length {length} bytes, more than the {MAX_EXTERNAL_BYTES} read for one tensor"
            ),
            None,
        ));
    }
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(refuse(
            format!("at offset {offset}, length {length} lies outside its file ({size} bytes)"),
            None,
        ));
    }
    file.seek(SeekFrom::Start(offset)).map_err(cannot_read)?;
    let mut data = Vec::new();
    data.try_reserve_exact(length as usize).map_err(|_| {
        refuse(
            format!("has length {length} bytes, more than this machine can allocate"),
            None,
        )
    })?;
    file.take(length)
        .read_to_end(&mut data)
        .map_err(cannot_read)?;
    if data.len() as u64 != length {
        return Err(refuse(
            format!(
                "was truncated while it was read: {} of {length} bytes",
                data.len()
            ),
            None,
        ));
    }
    Ok(data)
}

/// Why a location is refused, and the file system's error if it is the cause.
type Refusal = (String, Option<std::io::Error>);

/// `location` as a canonical path (no `.`, `..` or symbolic link) to a
/// regular file inside the canonical `dir`.
fn resolve(dir: &Path, location: &str) -> std::result::Result<PathBuf, Refusal> {
    use std::path::Component;
    if location.is_empty() {
        return Err((
            "is empty: a path inside the model's folder is expected".into(),
            None,
        ));
    }
    if location.contains('\0') {
        return Err(("contains a NUL byte".into(), None));
    }
    if Path::new(location)
        .components()
        .any(|c| matches!(c, Component::Prefix(_) | Component::RootDir))
    {
        return Err((
            "is an absolute path: a path relative to the model's folder is expected".into(),
            None,
        ));
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let folder = dir.canonicalize().map_err(|e| {
        (
            format!("cannot be read: the model's folder `{}`", dir.display()),
            Some(e),
        )
    })?;
    let path = folder.join(location).canonicalize().map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist",
            _ => "cannot be resolved",
        };
        (why.to_string(), Some(e))
    })?;
    if path == folder {
        return Err(("is the model's folder, not a file inside it".into(), None));
    }
    if !path.starts_with(&folder) {
        return Err((
            format!(
                "resolves to `{}`, not a file inside the model's folder `{}`",
                path.display(),
                folder.display()
            ),
            None,
        ));
    }
    Ok(path)
}

/// Opens the regular file at `path`, refusing anything else before opening
/// it (a FIFO would block) and again on the opened handle, which must be the
/// file that was checked. On Unix the file is opened without following a
/// symbolic link and without blocking, so a FIFO swapped in between is an
/// error too; on Linux, the opened file must be at `path` itself (its
/// `/proc/self/fd` link), so a folder on the way swapped for a link is an
/// error as well.
fn open_regular(path: &Path) -> std::result::Result<std::fs::File, Refusal> {
    let checked = std::fs::metadata(path).map_err(|e| ("cannot be read".to_string(), Some(e)))?;
    not_regular(&checked)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    let file = options
        .open(path)
        .map_err(|e| ("cannot be opened".to_string(), Some(e)))?;
    let opened = file
        .metadata()
        .map_err(|e| ("cannot be read".to_string(), Some(e)))?;
    not_regular(&opened)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (opened.dev(), opened.ino()) != (checked.dev(), checked.ino()) {
            return Err(("was replaced while it was being opened".into(), None));
        }
    }
    #[cfg(target_os = "linux")]
    {
        // `O_NOFOLLOW` guards only the last component: a folder on the way
        // swapped for a link after `resolve` would lead the open outside.
        // The kernel's name for the opened file says where it really is.
        use std::os::fd::AsRawFd;
        if let Ok(opened_at) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            if opened_at != path {
                return Err((
                    format!(
                        "was opened at `{}`, not where it was checked: a folder on its path \
                         changed while it was being opened",
                        opened_at.display()
                    ),
                    None,
                ));
            }
        }
    }
    Ok(file)
}

/// An error unless `metadata` is a regular file's.
fn not_regular(metadata: &std::fs::Metadata) -> std::result::Result<(), Refusal> {
    if metadata.is_file() {
        return Ok(());
    }
    let kind = if metadata.is_dir() {
        "a folder"
    } else {
        special_kind(metadata.file_type())
    };
    Err((format!("is {kind}, not a regular file"), None))
}

#[cfg(unix)]
fn special_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: std::fs::FileType) -> &'static str {
    "a special file"
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::open_regular;

    /// What `open_regular` sees when a folder on a checked path is swapped
    /// for a link to another folder between `resolve` and the open: a path
    /// whose last component is a regular file but which leads elsewhere.
    #[test]
    fn a_path_leading_through_a_linked_folder_is_refused() {
        let root = std::env::temp_dir()
            .canonicalize()
            .unwrap()
            .join(format!("cnnjit-open-regular-{}", std::process::id()));
        let outside = root.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("x.bin"), [0u8; 4]).unwrap();
        let model = root.join("model");
        std::fs::create_dir_all(&model).unwrap();
        std::os::unix::fs::symlink(&outside, model.join("sub")).unwrap();

        let refused = open_regular(&model.join("sub/x.bin"));
        let direct = open_regular(&outside.join("x.bin"));
        std::fs::remove_dir_all(&root).unwrap();

        let (why, _) = refused.expect_err("the file lies outside the checked path");
        assert!(why.contains("not where it was checked"), "{why}");
        assert!(direct.is_ok(), "a canonical path to a regular file opens");
    }
}
