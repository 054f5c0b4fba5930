//! Weights: a set of named `f32` tensors, read from and written to the
//! [safetensors](https://github.com/huggingface/safetensors) format.
//!
//! A network's parameters live in one safetensors file whose tensor names are
//! `layer.param` (`conv1.weight`, `bn1.running_var`, ...), in PyTorch's
//! layouts (see [`reference`](crate::reference)). [`Weights`] is what that
//! file is once loaded: an owned, sorted map from name to [`Tensor`]. Checking
//! that the tensors fit a network is the model builder's job, not this
//! module's.
//!
//! # Invariants
//!
//! - Every tensor in a [`Weights`] has `data.len()` equal to the product of
//!   its `shape` (a shape with a zero dimension holds no data; a shape `[]`
//!   is a scalar holding one value). [`Weights::insert`] and the loaders
//!   check it, and a [`Weights`] hands out only shared references.
//! - Only `F32` tensors load. Any other element type (`F16`, `BF16`, `F64`,
//!   integers, ...) is an [`Error::WrongDtype`] naming the tensor: nothing is
//!   converted behind the caller's back.
//! - Loading never panics and never reads out of bounds, whatever the bytes:
//!   a truncated or corrupt file (one shorter than its header says, too) is
//!   an [`Error::Corrupt`], an unreadable one an [`Error::Io`], a directory
//!   an [`Error::NotAFile`], one larger than the machine's memory an
//!   [`Error::OutOfMemory`]. Values are decoded from little-endian bytes by
//!   copying, so the file's alignment does not matter.
//! - A file is read once, whole, with `read` into memory allocated fallibly
//!   ([`memory::read_file`]), never memory-mapped: another process truncating
//!   or rewriting it meanwhile can change what is read (and so make it
//!   corrupt), never fault this one (a map's pages would raise SIGBUS). A
//!   loaded [`Weights`] owns its data and does not depend on the file after
//!   [`Weights::from_file`] returns.
//! - [`Weights::to_safetensors`] followed by [`Weights::from_bytes`] gives
//!   back equal weights, bit for bit. The name `__metadata__` is reserved by
//!   the format and refused by [`Weights::insert`]; the file's free-form
//!   metadata is ignored on load and not written.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::error::{Corruption, Error};
use crate::memory::{self, Budget};

/// The origin named in errors about weights parsed from memory.
const BYTES_ORIGIN: &str = "<bytes>";

/// The key safetensors reserves for free-form metadata in its header.
const METADATA_KEY: &str = "__metadata__";

/// The largest header the `safetensors` crate accepts (its `MAX_HEADER_SIZE`).
const MAX_HEADER_LEN: usize = 100_000_000;

/// A named tensor: its shape and its `f32` data (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The dimensions, outermost first (PyTorch's order).
    pub shape: Vec<usize>,
    /// The values, row-major; as many as the product of `shape`.
    pub data: Vec<f32>,
}

/// A set of named `f32` tensors, sorted by name (see the [module
/// docs](self) for the invariants).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    /// No tensors.
    pub fn new() -> Weights {
        Weights::default()
    }

    /// Loads a safetensors file: reads it whole, parses and validates the
    /// header, and copies every tensor out into owned `f32`s. The file and
    /// the tensors together must fit in the machine's memory.
    ///
    /// Errors: [`Error::Io`] if the file cannot be opened or read,
    /// [`Error::NotAFile`] if the path is a directory,
    /// [`Error::OutOfMemory`] if the file is larger than half the memory
    /// the machine has available, [`Error::Corrupt`] (naming the path) if it is not valid
    /// safetensors, [`Error::WrongDtype`] if a tensor is not `F32`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Weights, Error> {
        Weights::from_file_in(path, &mut Budget::new(None))
    }

    /// [`Weights::from_file`] under `budget`, the budget of the whole command
    /// (see [`crate::memory`]): the tensors are taken from it for good, the
    /// file's bytes only while they are parsed.
    pub fn from_file_in(path: impl AsRef<Path>, budget: &mut Budget) -> Result<Weights, Error> {
        let path = path.as_ref();
        // The tensors copied out take as much again as the file's bytes.
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        budget.take(len, || format!("the tensors of {}", path.display()))?;
        // The bytes are freed once parsed: taken from a copy of the budget.
        let mut parsing = *budget;
        let bytes = memory::read_file(path, &mut parsing)?;
        Weights::parse(&bytes, &path.display().to_string())
    }

    /// Parses safetensors bytes held in memory (errors name the origin
    /// `<bytes>`); otherwise as [`Weights::from_file`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Weights, Error> {
        Weights::parse(bytes, BYTES_ORIGIN)
    }

    /// Adds a tensor, replacing any tensor of the same name.
    ///
    /// Errors: [`Error::BadValue`] if `data.len()` is not the product of
    /// `shape` (or the product overflows), or if the name is `__metadata__`,
    /// which safetensors reserves.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> Result<(), Error> {
        let name = name.into();
        if name == METADATA_KEY {
            return Err(Error::BadValue {
                tensor: name,
                reason: "the name is reserved by the safetensors format".to_string(),
            });
        }
        match element_count(&shape) {
            Some(n) if n == data.len() => {}
            Some(n) => {
                return Err(Error::BadValue {
                    tensor: name,
                    reason: format!(
                        "shape {shape:?} has {n} elements but {} values were given",
                        data.len()
                    ),
                })
            }
            None => {
                return Err(Error::BadValue {
                    tensor: name,
                    reason: format!("shape {shape:?} has more elements than fit in memory"),
                })
            }
        }
        self.tensors.insert(name, Tensor { shape, data });
        Ok(())
    }

    /// The tensor called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The tensors' names, in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The tensors with their names, in sorted order of name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(name, t)| (name.as_str(), t))
    }

    /// How many tensors there are.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensors as a safetensors file (all `F32`, little-endian, no
    /// metadata), which [`Weights::from_bytes`] reads back unchanged.
    ///
    /// Errors: [`Error::Corrupt`] (origin `<to_safetensors>`) if the
    /// `safetensors` crate refuses to write it, which happens only when the
    /// header (names and shapes) would exceed its 100 MB limit.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, Error> {
        let views = self
            .tensors
            .iter()
            .map(|(name, t)| (name.as_str(), F32View(t)));
        safetensors::serialize(views, None).map_err(|e| Error::Corrupt {
            origin: "<to_safetensors>".to_string(),
            reason: e.into(),
        })
    }

    /// Writes [`Weights::to_safetensors`] to `path`, replacing the file.
    ///
    /// Errors: those of [`Weights::to_safetensors`], or [`Error::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let bytes = self.to_safetensors()?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Validates `bytes` as safetensors and copies out its tensors.
    fn parse(bytes: &[u8], origin: &str) -> Result<Weights, Error> {
        let corrupt = |reason: Corruption| Error::Corrupt {
            origin: origin.to_string(),
            reason,
        };
        check_data_offsets(bytes).map_err(corrupt)?;
        let file = SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.into()))?;
        // Sorted, so that the first bad tensor reported does not depend on
        // hash order.
        let views: BTreeMap<&str, _> = file.iter().collect();
        let mut tensors = BTreeMap::new();
        for (name, view) in views {
            if view.dtype() != Dtype::F32 {
                return Err(Error::WrongDtype {
                    tensor: name.to_string(),
                    found: view.dtype().to_string(),
                });
            }
            let raw = view.data();
            // `safetensors` has checked that the data is exactly shape x 4
            // bytes; check again rather than trust it with the invariant.
            if element_count(view.shape()).and_then(|n| n.checked_mul(4)) != Some(raw.len()) {
                return Err(corrupt(Corruption::DataSize {
                    tensor: name.to_string(),
                    shape: view.shape().to_vec(),
                    bytes: raw.len(),
                }));
            }
            let data = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(
                name.to_string(),
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(Weights { tensors })
    }
}

/// The number of elements of a tensor of `shape`, or `None` on overflow.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Refuses a header whose tensors' data offsets point past the end of the
/// data section.
///
/// `safetensors` 0.8 checks the file length with an unchecked
/// `buffer_end + 8 + header_len`, where `buffer_end` is the last tensor's end
/// offset, straight from the header: offsets near `usize::MAX` overflow it,
/// which panics in a build with overflow checks. Every tensor's offsets
/// lying within the data section rules that out. Anything this check cannot
/// make sense of (no header, bad JSON, offsets that are not numbers) is left
/// for `safetensors` to report.
fn check_data_offsets(bytes: &[u8]) -> Result<(), Corruption> {
    let Some(prefix) = bytes.first_chunk::<8>() else {
        return Ok(());
    };
    let Ok(header_len) = usize::try_from(u64::from_le_bytes(*prefix)) else {
        return Ok(());
    };
    if header_len > MAX_HEADER_LEN {
        return Ok(());
    }
    let Some(header) = bytes.get(8..8 + header_len) else {
        return Ok(());
    };
    let data_len = bytes.len() - 8 - header_len;
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_slice(header) else {
        return Ok(());
    };
    for (name, entry) in &entries {
        let Some(offsets) = entry.get("data_offsets").and_then(|o| o.as_array()) else {
            continue;
        };
        let past_end = offsets
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .any(|o| usize::try_from(o).map_or(true, |o| o > data_len));
        if past_end {
            return Err(Corruption::DataOffsets {
                tensor: name.clone(),
                offsets: offsets.iter().map(ToString::to_string).collect(),
                data_len,
            });
        }
    }
    Ok(())
}

/// A [`Tensor`] as `safetensors` sees it when writing: `F32`, little-endian.
struct F32View<'a>(&'a Tensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.0.data.len() * 4
    }
}
