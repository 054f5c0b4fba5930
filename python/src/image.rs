//! `cnnjit.preprocess` and `cnnjit.labels`: [`cnnjit::image`] from Python.
//!
//! ```python
//! x = cnnjit.preprocess("cat.jpg")                 # float32 (224, 224, 3), torchvision's ImageNet transform
//! names = cnnjit.labels()                          # ImageNet's 1,000 class names
//! ```
//!
//! - `preprocess(image, preset="imagenet", layout="NHWC", **overrides)`:
//!   `image` is a JPEG or PNG file's path or its bytes; `preset` one of
//!   [`cnnjit::image::PRESETS`] or a dict of the fields below (starting from
//!   `"none"`); `overrides` (keyword arguments) replace fields of the preset:
//!   `resize` (short side, or None), `crop` (`(H, W)`, a side, or None),
//!   `mean` and `std` (one float per channel), `channels` (`"rgb"`, `"bgr"`
//!   or `"grey"`). Returns a new float32 array `(H, W, C)`, or `(C, H, W)`
//!   with `layout="NCHW"`.
//! - `labels(name_or_path="imagenet")`: the class names, a `list` of `str`,
//!   output `i` at index `i`: ImageNet's shipped with cnnjit, or a text file
//!   of one name per line.
//!
//! Invariants: the GIL is released while an image is decoded and
//! preprocessed (a path is read, and `bytes` borrowed, which Python never
//! mutates); the decoding limits are [`Limits::DEFAULT`]. Errors carry the
//! Rust message: `OSError` for a file that cannot be read, `ValueError` for
//! an unknown preset, a malformed preprocessing or one that cannot apply to
//! the image (a crop larger than it), `TypeError` for an argument of the
//! wrong type or an unknown field, and `cnnjit.Error` for a file that is
//! not a JPEG or PNG, corrupt, truncated, larger than the limits, or a
//! malformed labels file.

use crate::{as_path, os_error, Error, Layout};
use cnnjit::image::{Channels, Labels, Limits, Preprocess, PRESETS};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::ToPyArray;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use std::path::PathBuf;

/// What `origin` names in errors about an image given as bytes.
const BYTES_ORIGIN: &str = "<bytes>";

fn image_error(e: cnnjit::image::Error) -> PyErr {
    use cnnjit::image::Error as E;
    let message = e.to_string();
    match &e {
        E::Io { path, source } => os_error(message, path, source),
        E::Preprocess { .. } => PyValueError::new_err(message),
        _ => Error::new_err(message),
    }
}

/// Sets the field `key` of `preprocess` to `value`.
fn set_field(preprocess: &mut Preprocess, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let wrong = |what: &str| {
        PyTypeError::new_err(format!(
            "preprocessing field `{key}` must be {what}, got {value}"
        ))
    };
    match key {
        "resize" => {
            preprocess.resize = value
                .extract::<Option<u32>>()
                .map_err(|_| wrong("a short side (int) or None"))?;
        }
        "crop" => {
            let wrong = || wrong("(H, W), a side (int) or None");
            preprocess.crop = if value.is_none() {
                None
            } else if let Ok(side) = value.extract::<u32>() {
                Some((side, side))
            } else {
                match value.extract::<Vec<u32>>().map_err(|_| wrong())?[..] {
                    [h, w] => Some((h, w)),
                    _ => return Err(wrong()),
                }
            };
        }
        "mean" => {
            preprocess.mean = value
                .extract()
                .map_err(|_| wrong("a sequence of floats, one per channel"))?;
        }
        "std" => {
            preprocess.std = value
                .extract()
                .map_err(|_| wrong("a sequence of floats, one per channel"))?;
        }
        "channels" => {
            let wrong = || wrong("\"rgb\", \"bgr\" or \"grey\"");
            preprocess.channels = match value.extract::<String>().map_err(|_| wrong())?.as_str() {
                "rgb" => Channels::Rgb,
                "bgr" => Channels::Bgr,
                "grey" => Channels::Grey,
                _ => return Err(wrong()),
            };
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "unknown preprocessing field `{key}`: the fields are resize, crop, mean, std and channels"
            )))
        }
    }
    Ok(())
}

/// Sets every field `fields` names.
fn set_fields(preprocess: &mut Preprocess, fields: &Bound<'_, PyDict>) -> PyResult<()> {
    for (key, value) in fields.iter() {
        let key: String = key
            .extract()
            .map_err(|_| PyTypeError::new_err("preprocessing field names are str"))?;
        set_field(preprocess, &key, &value)?;
    }
    Ok(())
}

/// The preset argument: a name of [`PRESETS`] or a dict of fields.
fn preset_arg(preset: &Bound<'_, PyAny>) -> PyResult<Preprocess> {
    if let Ok(fields) = preset.cast::<PyDict>() {
        let mut preprocess = Preprocess::none();
        set_fields(&mut preprocess, fields)?;
        return Ok(preprocess);
    }
    let name: String = preset.extract().map_err(|_| {
        PyTypeError::new_err("preset must be a preset's name (str) or a dict of fields")
    })?;
    Preprocess::preset(&name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown preset {name:?}; the presets are {}",
            PRESETS.join(", ")
        ))
    })
}

/// Decodes a JPEG or PNG image (a path, or its bytes) and preprocesses it as
/// torchvision would: `preset` is "imagenet" (Resize(256), CenterCrop(224),
/// ImageNet's mean and deviation; (224, 224, 3)), "digits" (the digits demo's
/// LeNet-5: grey 32x32, [0, 1]), "none" ([0, 1] RGB at the image's size), or
/// a dict of fields starting from "none". Keyword arguments replace fields:
/// `resize` (short side or None), `crop` ((H, W), a side, or None), `mean`
/// and `std` (one float per channel), `channels` ("rgb", "bgr" or "grey").
/// Returns a float32 array (H, W, C), or (C, H, W) with `layout="NCHW"`.
#[pyfunction]
#[pyo3(signature = (image, preset=None, layout="NHWC", **overrides), text_signature = "(image, preset=\"imagenet\", layout=\"NHWC\", **overrides)")]
pub(crate) fn preprocess<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    preset: Option<&Bound<'py, PyAny>>,
    layout: &str,
    overrides: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = Layout::parse(layout)?;
    let mut preprocess = match preset {
        Some(preset) => preset_arg(preset)?,
        None => Preprocess::imagenet(),
    };
    if let Some(overrides) = overrides {
        set_fields(&mut preprocess, overrides)?;
    }
    let limits = Limits::DEFAULT;
    let tensor = if let Ok(bytes) = image.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        py.detach(|| {
            cnnjit::image::decode(bytes, BYTES_ORIGIN, &limits)
                .and_then(|rgb| preprocess.apply(&rgb, BYTES_ORIGIN))
        })
    } else {
        let path: PathBuf = as_path(image).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "image must be a path (str or os.PathLike) or the file's bytes, got {}",
                image
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        py.detach(|| preprocess.open(&path, &limits))
    }
    .map_err(image_error)?;
    let array = ArrayD::from_shape_vec(IxDyn(&tensor.shape), tensor.data)
        .map_err(|e| Error::new_err(e.to_string()))?;
    Ok(match layout {
        Layout::Nhwc => numpy::PyArray::from_owned_array(py, array),
        // H, W, C -> C, H, W.
        Layout::Nchw => array.permuted_axes(IxDyn(&[2, 0, 1])).to_pyarray(py),
    }
    .into_any())
}

/// The class names of a classifier's outputs, output `i` at index `i`:
/// "imagenet" (ImageNet-1k's 1,000 names in torchvision's order, shipped with
/// cnnjit), or the path of a text file of one name per line.
#[pyfunction]
#[pyo3(signature = (name_or_path=None), text_signature = "(name_or_path=\"imagenet\")")]
pub(crate) fn labels(name_or_path: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let labels = match name_or_path {
        None => Labels::imagenet(),
        Some(arg) if arg.is_instance_of::<PyString>() && arg.extract::<String>()? == "imagenet" => {
            Labels::imagenet()
        }
        Some(arg) => {
            let path = as_path(arg).ok_or_else(|| {
                PyTypeError::new_err(
                    "name_or_path must be \"imagenet\" or a path (str or os.PathLike)",
                )
            })?;
            Labels::open(path).map_err(image_error)?
        }
    };
    Ok(labels.names().to_vec())
}
