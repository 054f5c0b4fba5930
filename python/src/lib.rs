//! cnnjit's Python package: the extension module `cnnjit`, built by maturin
//! from `python/pyproject.toml` into one abi3 wheel (CPython 3.9 and later).
//!
//! ```python
//! import numpy as np, cnnjit
//! model = cnnjit.Model("examples/nets/lenet5.cnn", weights="examples/data/lenet5_digits.safetensors")
//! probabilities = model(np.zeros((8, 32, 32, 1), np.float32))   # (8, 10)
//! ```
//!
//! What it binds (nothing here computes a figure or runs a kernel itself):
//! - `Model(path_or_source, net=None, weights=None, threads=0, input_shape=None,
//!   batch_kernels="image")`: a [`cnnjit::Model`] from a `.cnn` file, `.cnn`
//!   source text, or an `.onnx` file (imported by [`cnnjit::import`] as
//!   `cnnjit import` does);
//! - `model(x, layout="NHWC")`: [`cnnjit::Model::forward_batch`] on a float32
//!   NumPy array of one image or a batch;
//! - `model.summary()` and the figures of [`cnnjit::Summary`]
//!   (`params`, `macs`, `flops`, `peak_inference_bytes`, `training_bytes(batch)`),
//!   `input_shape`, `output_shape`, `kernels()` ([`cnnjit::runtime::report::KernelReport`]);
//! - `import_onnx(path, net=None, input_shape=None, output=None)`: the `.cnn`
//!   source and safetensors weights of an ONNX model;
//! - `preprocess(image, preset="imagenet", layout="NHWC", **overrides)` and
//!   `labels(name_or_path="imagenet")`: [`cnnjit::image`] (module `image`).
//!
//! Invariants:
//! - Threads: `forward` takes `&mut self` (it runs in the model's one arena),
//!   so a `Model` holds its [`cnnjit::Model`] in a [`Mutex`]. A call copies
//!   its input out of the NumPy array while it holds the GIL, then releases
//!   the GIL ([`Python::detach`]) before it takes the lock and runs: other
//!   Python threads run meanwhile, and calls on one model from several
//!   threads run one after another, each with the same result as alone
//!   (outputs are bitwise identical for any thread count, and the arena is
//!   rewritten by every pass). Within one call the model's own `threads`
//!   split each kernel's rows.
//! - The input is copied, never read in place after the GIL is released, so
//!   a Python thread writing the array meanwhile cannot race the kernels.
//! - Errors: every Rust error becomes a Python exception carrying the Rust
//!   message: `OSError` (with its errno subclass, e.g. `FileNotFoundError`)
//!   for a file that could not be read, `MemoryError` for a model over the
//!   memory budget, `TypeError` / `ValueError` for arguments of the wrong
//!   type or shape, and `cnnjit.Error` (a subclass of `Exception`) for the
//!   rest (a net that does not compile, weights that do not fit it, an ONNX
//!   model cnnjit cannot import, an image that is not a readable JPEG or PNG).
//!   Nothing panics on bad input.
//!
//! Why a workspace member: `cargo clippy --workspace`, `cargo doc` and
//! `cargo test --workspace` lint, document and build it with the rest, and it
//! shares the workspace's `Cargo.lock`, so it cannot drift from the crates
//! it binds. That works on a machine with no Python development files: abi3
//! needs no interpreter headers or `libpython` to build, the `cdylib` leaves
//! the interpreter's symbols undefined (`extension-module`) and so links
//! without one, and the crate has no Rust tests (`test = false`) that would
//! have to link `libpython` to run.

mod image;

use cnnjit::import::Error as ImportError;
use cnnjit::ir::{cost, summary::Summary};
use cnnjit::{BatchKernels, Error as RuntimeError, Options, Shape, Weights};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
    ToPyArray,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyMemoryError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

create_exception!(
    cnnjit,
    Error,
    PyException,
    "An error from cnnjit: a net that does not compile, weights that do not fit it, an ONNX model it cannot import, an image or labels file it cannot read."
);

/// An `OSError` (its errno subclass where the OS gave one) for `path`.
fn os_error(message: String, path: &Path, source: &std::io::Error) -> PyErr {
    let path = path.display().to_string();
    match source.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, message, path)),
        None => PyOSError::new_err(message),
    }
}

fn runtime_error(e: RuntimeError) -> PyErr {
    let message = e.to_string();
    match &e {
        RuntimeError::Io { path, source } => os_error(message, path, source),
        RuntimeError::OutOfMemory { .. } => PyMemoryError::new_err(message),
        RuntimeError::TooManyThreads { .. } | RuntimeError::BufferLength { .. } => {
            PyValueError::new_err(message)
        }
        _ => Error::new_err(message),
    }
}

fn import_error(e: ImportError, model: &Path) -> PyErr {
    match e {
        ImportError::Io { path, source } => {
            os_error(format!("{}: {source}", path.display()), &path, &source)
        }
        ImportError::Memory(e) => runtime_error(e),
        e @ ImportError::Output { .. } => PyValueError::new_err(e.to_string()),
        e => Error::new_err(format!("{}: {e}", model.display())),
    }
}

/// A `str` or `os.PathLike` argument as a path, or `None` for anything else.
fn as_path(obj: &Bound<'_, PyAny>) -> Option<PathBuf> {
    if obj.is_instance_of::<PyString>() {
        return obj.extract::<String>().ok().map(PathBuf::from);
    }
    obj.extract::<PathBuf>().ok()
}

/// `(H, W, C)`, `F` or `(F,)` as a shape.
fn shape_arg(obj: &Bound<'_, PyAny>) -> PyResult<Shape> {
    let sizes: Vec<u32> = match obj.extract::<u32>() {
        Ok(f) => vec![f],
        Err(_) => obj.extract().map_err(|_| {
            PyTypeError::new_err("input_shape must be (H, W, C) or F, with positive sizes")
        })?,
    };
    match sizes[..] {
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok(Shape::Volume { h, w, c }),
        [f] if f > 0 => Ok(Shape::Flat(f)),
        _ => Err(PyValueError::new_err(format!(
            "input_shape {sizes:?} is not (H, W, C) or F, with positive sizes"
        ))),
    }
}

/// The weights argument: `None` (no tensors), a safetensors path, or its bytes.
fn weights_arg(weights: Option<&Bound<'_, PyAny>>) -> PyResult<Weights> {
    let Some(weights) = weights else {
        return Ok(Weights::new());
    };
    if let Ok(bytes) = weights.cast::<PyBytes>() {
        return Weights::from_bytes(bytes.as_bytes()).map_err(runtime_error);
    }
    match as_path(weights) {
        Some(path) => Weights::from_file(path).map_err(runtime_error),
        None => Err(PyTypeError::new_err(format!(
            "weights must be a safetensors path, its bytes, or None; got {}",
            weights.get_type().name()?
        ))),
    }
}

/// The net called `net` (or the only net) of `.cnn` source text.
fn graph_from_source(source: &str, net: Option<&str>) -> PyResult<cnnjit::Graph> {
    const ORIGIN: &str = "<source>";
    let nets = cnnjit::lang::compile_source(source)
        .map_err(|e| Error::new_err(cnnjit::lang::dsl::diagnostic::render(&e, ORIGIN, source)))?;
    let names = || {
        nets.iter()
            .map(|n| n.graph.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match net {
        Some(name) => nets.iter().find(|n| n.graph.name == name).ok_or_else(|| {
            Error::new_err(format!(
                "{ORIGIN} has no net `{name}`; it defines: {}",
                names()
            ))
        })?,
        None if nets.len() == 1 => &nets[0],
        None => {
            return Err(Error::new_err(format!(
                "{ORIGIN} defines {} nets ({}); name the one to load",
                nets.len(),
                names()
            )))
        }
    };
    Ok(chosen.graph.clone())
}

/// An imported model's tensors as weights.
fn imported_weights(tensors: Vec<cnnjit::import::NamedTensor>) -> PyResult<Weights> {
    let mut weights = Weights::new();
    for t in tensors {
        weights
            .insert(t.name, t.dims, t.values)
            .map_err(runtime_error)?;
    }
    Ok(weights)
}

fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// What `Model`'s first argument names.
enum Input {
    /// `.cnn` source text.
    Source(String),
    /// An `.onnx` file.
    Onnx(PathBuf),
    /// A `.cnn` file.
    Cnn(PathBuf),
}

/// Which way the caller lays out volumes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Nhwc,
    Nchw,
}

/// The value `choices` pairs with `text`, else a `ValueError` naming
/// `argument` and every choice: how a keyword argument spelled as a word
/// becomes an option.
fn one_of<T: Copy>(argument: &str, text: &str, choices: &[(&str, T)]) -> PyResult<T> {
    match choices.iter().find(|(name, _)| *name == text) {
        Some(&(_, value)) => Ok(value),
        None => {
            let names: Vec<String> = choices
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            Err(PyValueError::new_err(format!(
                "{argument} must be {}, got {text:?}",
                names.join(" or ")
            )))
        }
    }
}

impl Layout {
    fn parse(text: &str) -> PyResult<Layout> {
        one_of(
            "layout",
            text,
            &[("NHWC", Layout::Nhwc), ("NCHW", Layout::Nchw)],
        )
    }

    /// `shape` (a model's, HWC) as this layout writes one image.
    fn dims(self, shape: Shape) -> Vec<usize> {
        let dims: Vec<usize> = shape.dims().into_iter().map(|d| d as usize).collect();
        match (self, shape) {
            (Layout::Nchw, Shape::Volume { h, w, c }) => vec![c as usize, h as usize, w as usize],
            _ => dims,
        }
    }
}

/// Zeroed outputs for `n` images of `per_image` values, allocated fallibly:
/// a batch whose outputs do not fit in memory is a `MemoryError`, not an abort.
fn output_buffer(n: usize, per_image: u64) -> PyResult<Vec<f32>> {
    let too_large = || {
        PyMemoryError::new_err(format!(
            "the outputs of {n} images ({per_image} values each) do not fit in memory"
        ))
    };
    let len = usize::try_from(per_image)
        .ok()
        .and_then(|per_image| per_image.checked_mul(n))
        .ok_or_else(too_large)?;
    let mut output = Vec::new();
    output.try_reserve_exact(len).map_err(|_| too_large())?;
    output.resize(len, 0.0);
    Ok(output)
}

/// `(1, 2, 3)` as Python writes a tuple.
fn tuple_text(dims: &[usize]) -> String {
    match dims {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A network with its weights, compiled for this CPU.
///
/// `Model(path_or_source, net=None, weights=None, threads=0, input_shape=None,
/// batch_kernels="image")`:
/// `path_or_source` is a `.cnn` file, an `.onnx` file (imported as
/// `cnnjit import` does; `input_shape` sizes a model whose input sizes are
/// open), or `.cnn` source text (a `str` holding a newline or `{`). `net`
/// names the net of a file defining several. `weights` is a safetensors
/// file's path or bytes (PyTorch names and layouts), or None for a net
/// without parameters or an ONNX model (which brings its own). `threads`
/// splits each kernel's rows (0: every core); outputs are bitwise identical
/// for any count. `batch_kernels` is which kernels a batch of two or more
/// images runs: `"image"`, each image's own, so every output is bitwise what
/// its image gives alone; or `"fastest"`, another algorithm where a batch
/// runs it faster (Winograd on AlexNet's 13x13 layers), within its rounding
/// (the Rust `Options::batch_kernels`).
///
/// Calling it runs the net; one model may be called from several Python
/// threads (calls take turns on its one arena, with the GIL released).
#[pyclass(name = "Model", module = "cnnjit", frozen)]
struct PyModel {
    model: Mutex<cnnjit::Model>,
    summary: Summary,
    output: Shape,
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (path_or_source, net=None, weights=None, threads=0, input_shape=None, batch_kernels="image"))]
    fn new(
        py: Python<'_>,
        path_or_source: &Bound<'_, PyAny>,
        net: Option<String>,
        weights: Option<&Bound<'_, PyAny>>,
        threads: usize,
        input_shape: Option<&Bound<'_, PyAny>>,
        batch_kernels: &str,
    ) -> PyResult<PyModel> {
        let options = Options {
            threads,
            batch_kernels: one_of(
                "batch_kernels",
                batch_kernels,
                &[
                    ("image", BatchKernels::Image),
                    ("fastest", BatchKernels::Fastest),
                ],
            )?,
            ..Options::default()
        };
        let input_shape = input_shape.map(shape_arg).transpose()?;
        let input =
            match path_or_source.extract::<String>() {
                Ok(text) if text.contains(['\n', '{']) => Input::Source(text),
                _ => match as_path(path_or_source) {
                    Some(path) if is_onnx(&path) => Input::Onnx(path),
                    Some(path) => Input::Cnn(path),
                    None => return Err(PyTypeError::new_err(
                        "path_or_source must be a path (str or os.PathLike) or .cnn source text",
                    )),
                },
            };
        if input_shape.is_some() && !matches!(input, Input::Onnx(_)) {
            return Err(PyValueError::new_err(
                "input_shape is for ONNX models; a .cnn net fixes its input shape",
            ));
        }
        let (graph, weights) = match input {
            Input::Onnx(path) => {
                if weights.is_some() {
                    return Err(PyValueError::new_err(
                        "an ONNX model brings its own weights: pass weights=None",
                    ));
                }
                let import_options = cnnjit::import::Options { net, input_shape };
                // The compiled net keeps the parser's spans, which may not
                // leave this thread: only its graph and tensors do.
                let (graph, tensors) = py
                    .detach(|| {
                        cnnjit::import::import(&path, &import_options)
                            .map(|imported| (imported.net.graph, imported.tensors))
                    })
                    .map_err(|e| import_error(e, &path))?;
                (graph, imported_weights(tensors)?)
            }
            Input::Cnn(path) => {
                let graph = cnnjit::runtime::model::graph_from_file(&path, net.as_deref())
                    .map_err(runtime_error)?;
                (graph, weights_arg(weights)?)
            }
            Input::Source(source) => (
                graph_from_source(&source, net.as_deref())?,
                weights_arg(weights)?,
            ),
        };
        let model = py
            .detach(|| cnnjit::Model::with_options(graph, &weights, options))
            .map_err(runtime_error)?;
        let figures = cost::figures(model.graph()).map_err(|e| Error::new_err(e.to_string()))?;
        let summary = Summary::of(model.graph(), &figures, model.arena_bytes());
        Ok(PyModel {
            output: model.graph().output_shape(),
            summary,
            model: Mutex::new(model),
        })
    }

    /// Runs the net on `x`: one image, `(H, W, C)`, or a batch, `(N, H, W, C)`
    /// (`(F,)` / `(N, F)` for a net with a flat input); with `layout="NCHW"`,
    /// `(C, H, W)` / `(N, C, H, W)`. `x` must be float32 (any strides: a
    /// non-contiguous array is copied). Returns float32 outputs:
    /// `output_shape` per image, after a batch dimension for a batch (a
    /// volume output in the same layout as the input).
    #[pyo3(signature = (x, layout="NHWC"))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        layout: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layout = Layout::parse(layout)?;
        let array = x.cast::<PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "expected a numpy.ndarray of float32, got {}",
                x.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        let got = array.shape().to_vec();
        let dtype = array.dtype();
        if !dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
            return Err(PyTypeError::new_err(format!(
                "expected a float32 array, got dtype {} of shape {}; convert it with x.astype(numpy.float32)",
                dtype.str()?,
                tuple_text(&got)
            )));
        }
        let image = layout.dims(self.summary.input);
        let batch = if got == image {
            None
        } else if got.len() == image.len() + 1 && got[1..] == image[..] {
            Some(got[0])
        } else {
            return Err(PyValueError::new_err(format!(
                "expected an array of shape {} or (N, {}) ({} layout), got {}",
                tuple_text(&image),
                image
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if layout == Layout::Nchw {
                    "NCHW"
                } else {
                    "NHWC"
                },
                tuple_text(&got)
            )));
        };
        let array = array.cast::<PyArrayDyn<f32>>()?.readonly();
        let nchw_volume = layout == Layout::Nchw && got.len() >= 3;
        let input: Vec<f32> = if nchw_volume {
            let view = array.as_array();
            let rank = view.ndim();
            // (N,) C, H, W -> (N,) H, W, C.
            let mut axes: Vec<usize> = (0..rank).collect();
            axes[rank - 3..].rotate_left(1);
            view.permuted_axes(IxDyn(&axes)).iter().copied().collect()
        } else {
            // `as_slice` also takes Fortran order: only C order is HWC.
            match array.as_slice() {
                Ok(slice) if array.is_c_contiguous() => slice.to_vec(),
                _ => array.as_array().iter().copied().collect(),
            }
        };
        drop(array);
        let n = batch.unwrap_or(1);
        let mut output = output_buffer(n, self.output.len())?;
        py.detach(|| {
            let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
            model.forward_batch(&input, &mut output)
        })
        .map_err(runtime_error)?;
        let mut dims: Vec<usize> = self.output.dims().into_iter().map(|d| d as usize).collect();
        if batch.is_some() {
            dims.insert(0, n);
        }
        let output = ArrayD::from_shape_vec(IxDyn(&dims), output)
            .map_err(|e| Error::new_err(e.to_string()))?;
        let output = match (layout, self.output) {
            (Layout::Nchw, Shape::Volume { .. }) => {
                let rank = dims.len();
                let mut axes: Vec<usize> = (0..rank).collect();
                // (N,) H, W, C -> (N,) C, H, W.
                axes[rank - 3..].rotate_right(1);
                output.permuted_axes(IxDyn(&axes)).to_pyarray(py)
            }
            _ => numpy::PyArray::from_owned_array(py, output),
        };
        Ok(output.into_any())
    }

    /// The summary table: every layer's output shape, parameters and FLOPs,
    /// with totals and the memory footer (as `cnnjit summary` prints it).
    fn summary(&self) -> String {
        self.summary.to_string()
    }

    /// What was built for each step of the plan: the layers it covers, its
    /// kernel's algorithm and tile (or why it runs on the reference kernels).
    fn kernels(&self) -> String {
        let model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        model.kernels().to_string()
    }

    /// The net's name.
    #[getter]
    fn name(&self) -> String {
        self.summary.name.to_string()
    }

    /// Learnable parameters.
    #[getter]
    fn params(&self) -> u64 {
        self.summary.params
    }

    /// Multiply-accumulates of one image's forward pass.
    #[getter]
    fn macs(&self) -> u64 {
        self.summary.macs
    }

    /// FLOPs of one image's forward pass (the lecture's rule).
    #[getter]
    fn flops(&self) -> u64 {
        self.summary.flops
    }

    /// Bytes of the arena one forward pass runs in.
    #[getter]
    fn peak_inference_bytes(&self) -> u64 {
        self.summary.peak_inference_bytes
    }

    /// Bytes to train with `batch` images (parameters, gradients, the
    /// activations kept for the backward pass; plain SGD).
    fn training_bytes(&self, batch: u64) -> u64 {
        self.summary.training_bytes(batch)
    }

    /// One image's input shape, HWC: `(H, W, C)`, or `(F,)` for a flat input.
    #[getter]
    fn input_shape(&self) -> Vec<u32> {
        self.summary.input.dims()
    }

    /// One image's output shape: `(outputs,)`, or `(H, W, C)` for a volume.
    #[getter]
    fn output_shape(&self) -> Vec<u32> {
        self.output.dims()
    }

    fn __repr__(&self) -> String {
        format!(
            "cnnjit.Model({}: {} -> {}, {} params)",
            self.summary.name,
            self.summary.input,
            self.output,
            cnnjit::ir::summary::thousands(self.summary.params)
        )
    }
}

/// Imports the ONNX model at `path` as `cnnjit import` does: returns
/// `(source, weights)`, the net in the `.cnn` language and its weights, the
/// bytes of a safetensors file (`Model(source, weights=weights)` runs it).
/// With `output`, also writes the source there and the weights beside it
/// (`.safetensors`; both or neither), and `weights` is that file's path.
/// `net` names the net (default: the file's name in UpperCamelCase);
/// `input_shape`, `(H, W, C)` or `F`, sizes a model whose input sizes are open.
#[pyfunction]
#[pyo3(signature = (path, net=None, input_shape=None, output=None))]
fn import_onnx<'py>(
    py: Python<'py>,
    path: PathBuf,
    net: Option<String>,
    input_shape: Option<&Bound<'py, PyAny>>,
    output: Option<PathBuf>,
) -> PyResult<(String, Bound<'py, PyAny>)> {
    let options = cnnjit::import::Options {
        net,
        input_shape: input_shape.map(shape_arg).transpose()?,
    };
    // The compiled net keeps the parser's spans, which may not leave this
    // thread: the import runs with the GIL held.
    let imported = cnnjit::import::import(&path, &options).map_err(|e| import_error(e, &path))?;
    let weights = match output {
        Some(output) => {
            let written = imported.save(&output).map_err(|e| import_error(e, &path))?;
            written.into_pyobject(py)?.into_any()
        }
        None => {
            let bytes = imported.safetensors().map_err(|e| import_error(e, &path))?;
            PyBytes::new(py, &bytes).into_any()
        }
    };
    Ok((imported.source, weights))
}

#[pymodule(name = "cnnjit")]
fn cnnjit_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("Error", m.py().get_type::<Error>())?;
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(import_onnx, m)?)?;
    m.add_function(wrap_pyfunction!(image::preprocess, m)?)?;
    m.add_function(wrap_pyfunction!(image::labels, m)?)?;
    Ok(())
}
