//! cnnjit-import: an ONNX model as a net in the `cnn!` language and its
//! weights.
//!
//! ```text
//! bytes --onnx::decode--> Model --map (fold constants, map operators)--> Dag
//!       --nest--> Items --write--> .cnn text + creation order
//!       --compile (cnnjit_lang, as the macro does) + verify--> Imported
//! ```
//!
//! - [`onnx`]: the protobuf messages, tensors (inline or external data);
//! - [`fold`]: constant folding of shape arithmetic;
//! - [`map`]: ONNX operators to cnnjit layers (a DAG), NCHW shapes to HWC;
//! - [`nest`]: the DAG as nested `residual`, `concat` and `scale` blocks;
//! - [`mod@write`]: the `.cnn` text;
//! - [`verify`]: the text compiled again and compared with the DAG, node by
//!   node, and the weights named after the compiled graph's layers;
//! - [`Imported::save`] writes `NAME.cnn` and `NAME.safetensors`: both or
//!   neither, never over the model or each other.
//!
//! Invariant: an [`Imported`] net is one whose source compiles (through the
//! same pipeline as `cnn!(file = ...)`) to a graph with the model's layers,
//! connections, shapes and output shape, and whose tensors are exactly the
//! ones the runtime asks for under the names it asks for. Anything else is
//! an [`Error`].

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod error;
pub mod fold;
pub mod map;
pub mod nest;
pub mod onnx;
pub mod verify;
pub mod write;

pub use error::{DecodeError, Error, OutputProblem, Result, TensorProblem, VerifyError};

use cnnjit_ir::Shape;
use cnnjit_lang::CompiledNet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A weight tensor under its cnnjit name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// `conv1.weight`, ...
    pub name: String,
    /// PyTorch's dimensions.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// An imported model: the net's source, compiled, and its weights.
#[derive(Clone)]
pub struct Imported {
    /// The text of the `.cnn` file.
    pub source: String,
    /// The source, compiled.
    pub net: CompiledNet,
    /// The weights, in graph order.
    pub tensors: Vec<NamedTensor>,
    /// The file it was imported from, which [`Imported::save`] never
    /// overwrites (`None` for a model imported from bytes).
    pub model: Option<PathBuf>,
}

/// How to import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The net's name (default: the file's stem in UpperCamelCase).
    pub net: Option<String>,
    /// The input's shape (`HxWxC`, or the features of a flat input) where
    /// the file leaves sizes open (`[-1, 3, ?, ?]`); every size the file
    /// fixes must agree with it. The batch dimension is never read.
    pub input_shape: Option<Shape>,
}

/// Imports the ONNX file at `path`; external data is read from regular files
/// inside its folder only (see [`onnx`]).
pub fn import(path: impl AsRef<Path>, options: &Options) -> Result<Imported> {
    let path = path.as_ref();
    // Read fallibly against the machine's memory: a model file larger than
    // memory is an error, not an abort.
    let mut budget = cnnjit_runtime::memory::Budget::new(None);
    let bytes = cnnjit_runtime::memory::read_file(path, &mut budget).map_err(|e| match e {
        cnnjit_runtime::Error::Io { path, source } => Error::Io { path, source },
        e => Error::Memory(e),
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match &options.net {
        Some(name) => name.clone(),
        None => camel_case(&stem),
    };
    let names = Names {
        net: &name,
        file: &file,
        weights: &format!("{stem}.safetensors"),
    };
    let imported = import_bytes_as(&bytes, path.parent(), &names, options.input_shape)?;
    Ok(Imported {
        model: Some(path.to_path_buf()),
        ..imported
    })
}

/// Imports a model from the bytes of an ONNX file; `dir` is where its
/// external data lives, `name` the net's name, `file` and `weights` the
/// names the source's header gives the model and its weights.
pub fn import_bytes(
    bytes: &[u8],
    dir: Option<&Path>,
    name: &str,
    file: &str,
    weights: &str,
) -> Result<Imported> {
    let names = Names {
        net: name,
        file,
        weights,
    };
    import_bytes_as(bytes, dir, &names, None)
}

/// The names an import writes: the net's, and the model's and weights'
/// files in the source's header.
#[derive(Clone, Copy, Debug)]
pub struct Names<'a> {
    /// The net's name.
    pub net: &'a str,
    /// The model's file.
    pub file: &'a str,
    /// The weights' file.
    pub weights: &'a str,
}

/// [`import_bytes`] with the input's shape given where the file leaves
/// sizes open ([`Options::input_shape`]).
pub fn import_bytes_as(
    bytes: &[u8],
    dir: Option<&Path>,
    names: &Names<'_>,
    input_shape: Option<Shape>,
) -> Result<Imported> {
    let Names {
        net: name,
        file,
        weights,
    } = *names;
    if !is_net_name(name) {
        let name = name.to_string();
        return Err(DecodeError::NetName { name }.into());
    }
    let model = onnx::decode(bytes)?;
    let opset = standard_opset(&model)?;
    let graph = model.graph.as_ref().ok_or(DecodeError::NoGraph)?;
    let mut dag = map::map(graph, opset, dir, input_shape)?;
    nest::chain_concats(&mut dag);
    nest::group_concats(&mut dag)?;
    let items = nest::nest(&dag)?;
    let producer = match model.producer_name.as_str() {
        "" => format!("ONNX opset {opset}"),
        p => format!("{p}, ONNX opset {opset}"),
    };
    let written = write::write(
        &dag,
        &items,
        &write::Header {
            name,
            file,
            weights,
            producer: &producer,
        },
    )?;
    let (net, tensors) = verify::verify(&dag, &written)?;
    Ok(Imported {
        source: written.source,
        net,
        tensors,
        model: None,
    })
}

/// The version of the standard operator set the model uses.
fn standard_opset(model: &onnx::Model) -> Result<i64> {
    let version = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or(Error::NoOpset)?;
    if !map::OPSETS.contains(&version) {
        return Err(Error::Opset { version });
    }
    Ok(version)
}

/// `resnet_18-v2` as `Resnet18V2`; a leading digit gets `Net` before it.
pub fn camel_case(stem: &str) -> String {
    let mut out = String::new();
    for word in stem.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "Net");
    }
    out
}

fn is_net_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Imported {
    /// The net's name.
    pub fn name(&self) -> &str {
        &self.net.graph.name
    }

    /// Writes the source to `cnn_path` and the weights to the same path with
    /// the extension `.safetensors`; returns the weights' path.
    ///
    /// Both are written or neither: each goes to a temporary file in its
    /// folder, renamed into place once both are written. Errors: an
    /// [`Error::Output`] if the two paths are the same file (a `cnn_path`
    /// ending in `.safetensors`) or either is the model imported (compared
    /// by their canonical folders), or names a folder; an [`Error::Io`]
    /// naming the file that could not be written.
    pub fn save(&self, cnn_path: impl AsRef<Path>) -> Result<PathBuf> {
        let cnn_path = cnn_path.as_ref();
        let weights_path = cnn_path.with_extension("safetensors");
        let cnn = file_entry(cnn_path)?;
        if file_entry(&weights_path)? == cnn {
            return Err(output_error(cnn_path, OutputProblem::SourceIsWeights));
        }
        if let Some(model) = &self.model {
            // The model's own entry (perhaps a link) and the file it names.
            let model = [
                file_entry(model)?,
                model.canonicalize().map_err(|source| Error::Io {
                    path: model.clone(),
                    source,
                })?,
            ];
            for path in [cnn_path, &weights_path] {
                if model.contains(&file_entry(path)?) {
                    return Err(output_error(path, OutputProblem::IsTheModel));
                }
            }
        }
        write_all(&[
            (cnn_path, self.source.as_bytes()),
            (&weights_path, &self.safetensors()?),
        ])?;
        Ok(weights_path)
    }

    /// The weights as the bytes of a safetensors file.
    pub fn safetensors(&self) -> Result<Vec<u8>> {
        let bytes: Vec<Vec<u8>> = self
            .tensors
            .iter()
            .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views = self
            .tensors
            .iter()
            .zip(&bytes)
            .map(|(t, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.dims.clone(), b)
                    .map(|v| (t.name.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(safetensors::tensor::serialize(views, None)?)
    }
}

/// An [`Error::Output`] for `path`.
fn output_error(path: &Path, problem: OutputProblem) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        problem,
    }
}

/// The directory entry `path` names: its folder, canonical, and its file
/// name. A rename replaces exactly this entry.
fn file_entry(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| output_error(path, OutputProblem::NoFileName))?;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let folder = folder.canonicalize().map_err(|source| Error::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    Ok(folder.join(name))
}

/// Writes every file or none: each to a new temporary file in its folder,
/// then, once all are written and none of the paths is a folder, renamed
/// into place. On an error, the temporary files are removed, and so are the
/// files already renamed.
fn write_all(files: &[(&Path, &[u8])]) -> Result<()> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut temps = Vec::new();
    let mut renamed = Vec::new();
    let mut write = || -> Result<()> {
        for &(path, bytes) in files {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let temp = path.with_file_name(format!(
                ".{name}.{}-{}.tmp",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .map_err(io(&temp))?;
            temps.push(temp.clone());
            file.write_all(bytes).map_err(io(&temp))?;
            file.sync_all().map_err(io(&temp))?;
        }
        if let Some(&(folder, _)) = files.iter().find(|(path, _)| path.is_dir()) {
            return Err(output_error(folder, OutputProblem::Folder));
        }
        for (&(path, _), temp) in files.iter().zip(&temps) {
            std::fs::rename(temp, path).map_err(io(path))?;
            renamed.push(path);
        }
        Ok(())
    };
    let result = write();
    if result.is_err() {
        for path in temps.iter().map(PathBuf::as_path).chain(renamed) {
            // Best effort: the error reported is the one that stopped the
            // write, and a temporary file already renamed is gone.
            let _ = std::fs::remove_file(path);
        }
    }
    result
}
