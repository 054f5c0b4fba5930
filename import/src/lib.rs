//! cnnjit-import: an ONNX model as a net in the `cnn!` language and its
//! weights.
//!
//! ```text
//! bytes --onnx::decode--> Model --map (fold constants, map operators)--> Dag
//!       --nest--> Items --write--> .cnn text + creation order
//!       --compile (cnnjit_compiler, as the macro does) + verify--> Imported
//! ```
//!
//! - [`onnx`]: the protobuf messages, tensors (inline or external data);
//! - [`fold`]: constant folding of shape arithmetic;
//! - [`map`]: ONNX operators to cnnjit layers (a DAG), NCHW shapes to HWC;
//! - [`nest`]: the DAG as nested `residual`, `concat` and `scale` blocks;
//! - [`write`]: the `.cnn` text;
//! - [`verify`]: the text compiled again and compared with the DAG, node by
//!   node, and the weights named after the compiled graph's layers;
//! - [`Imported::save`] writes `NAME.cnn` and `NAME.safetensors`.
//!
//! Invariant: an [`Imported`] net is one whose source compiles (through the
//! same pipeline as `cnn!(file = ...)`) to a graph with the model's layers,
//! connections, shapes and output shape, and whose tensors are exactly the
//! ones the runtime asks for under the names it asks for. Anything else is
//! an [`Error`].

#![deny(missing_docs)]

pub mod error;
pub mod fold;
pub mod map;
pub mod nest;
pub mod onnx;
pub mod verify;
pub mod write;

pub use error::{Error, Result};

use cnnjit_compiler::CompiledNet;
use std::path::{Path, PathBuf};

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
}

/// How to import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The net's name (default: the file's stem in UpperCamelCase).
    pub net: Option<String>,
}

/// Imports the ONNX file at `path` (external data is read beside it).
pub fn import(path: impl AsRef<Path>, options: &Options) -> Result<Imported> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
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
    import_bytes(
        &bytes,
        path.parent(),
        &name,
        &file,
        &format!("{stem}.safetensors"),
    )
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
    if !is_net_name(name) {
        return Err(Error::Decode(format!(
            "`{name}` is not a valid net name (a Rust identifier starting with a letter)"
        )));
    }
    let model = onnx::decode(bytes)?;
    let opset = standard_opset(&model)?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Decode("the model has no graph".into()))?;
    let dag = map::map(graph, opset, dir)?;
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
    })
}

/// The version of the standard operator set the model uses.
fn standard_opset(model: &onnx::Model) -> Result<i64> {
    let version = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| Error::Opset("the model imports no standard ONNX operator set".into()))?;
    if !map::OPSETS.contains(&version) {
        return Err(Error::Opset(format!(
            "the model uses ONNX opset {version}; cnnjit imports opsets {} to {}",
            map::OPSETS.start(),
            map::OPSETS.end()
        )));
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
    pub fn save(&self, cnn_path: impl AsRef<Path>) -> Result<PathBuf> {
        let cnn_path = cnn_path.as_ref();
        let weights_path = cnn_path.with_extension("safetensors");
        let io = |p: &Path, e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", p.display()));
        std::fs::write(cnn_path, &self.source).map_err(|e| io(cnn_path, &e))?;
        std::fs::write(&weights_path, self.safetensors()?).map_err(|e| io(&weights_path, &e))?;
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
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Io(format!("safetensors: {e}")))?;
        safetensors::tensor::serialize(views, None)
            .map_err(|e| Error::Io(format!("safetensors: {e}")))
    }
}
