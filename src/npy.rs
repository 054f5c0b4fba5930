//! NumPy `.npy` files of `f32`, as `cnnjit run` reads its inputs and writes
//! its outputs (with the [`npyz`] crate): images saved with NumPy, in the
//! shape a [`Model`](crate::Model) takes, for
//! [`Model::forward_batch`](crate::Model::forward_batch). Behind the `npy`
//! feature (on by default, with the CLI).
//!
//! ```
//! use cnnjit::npy;
//! // Two 2x2x1 images, as `np.save("x.npy", x.astype(np.float32))` writes them.
//! let bytes = npy::to_bytes_f32(&[2, 2, 2, 1], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])?;
//! let array = npy::parse_f32(&bytes, "x.npy")?;
//! assert_eq!(npy::images_in(&array.shape, &[2, 2, 1]), Some(2));
//! assert_eq!(array.data[4], 4.0);
//! // Anything but C-order float32 is refused, naming the file.
//! let err = npy::parse_f32(b"not numpy", "y.npy").unwrap_err();
//! assert_eq!(err.origin, "y.npy");
//! # Ok::<(), npy::NpyError>(())
//! ```
//!
//! Reading is strict and never panics, whatever the bytes: only C-order
//! `float32` arrays load (`<f4` or `>f4`); anything else (another dtype, a
//! Fortran-order array, a truncated or corrupt file, trailing bytes) is an
//! [`NpyError`] naming the file and what was expected against what was found.
//! Before `npyz` parses a header, [`check_header`] bounds its length, its
//! nesting and its integers (so that no shape's element count overflows),
//! which `npyz` does not.

use crate::runtime::memory::{self, Budget};
use crate::Error;
use npyz::{DType, NpyHeader, Order, TypeChar, WriterBuilder};
use std::fmt;
use std::path::Path;

/// The NumPy magic string that opens every `.npy` file.
const MAGIC: &[u8] = b"\x93NUMPY";

/// The longest header accepted, in bytes (NumPy itself refuses headers over
/// 10,000 bytes unless told otherwise).
const MAX_HEADER_LEN: usize = 65_536;

/// The deepest nesting of brackets accepted in a header (a plain array's
/// header has 2: the dict and its shape tuple).
const MAX_NESTING: usize = 8;

/// A `.npy` file that could not be read or written: the file (or `<bytes>`)
/// and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyError {
    /// The file, or `<bytes>`.
    pub origin: String,
    /// What is wrong, e.g. `expected dtype float32 ('<f4'), found '<f8'`.
    pub reason: String,
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.reason)
    }
}

impl std::error::Error for NpyError {}

/// A C-order `f32` array: its shape (outermost first) and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The dimensions, outermost first.
    pub shape: Vec<u64>,
    /// The values in C (row-major) order; as many as the product of `shape`.
    pub data: Vec<f32>,
}

/// Reads a C-order `float32` `.npy` file, whole, through `read`. The file
/// and its values together must fit in the machine's memory: a larger file
/// is an error saying how many bytes, and so is a directory.
pub fn read_f32(path: impl AsRef<Path>) -> Result<Array, NpyError> {
    read_f32_in(path, &mut Budget::new(None))
}

/// [`read_f32`] under `budget`, the budget of the whole command (see
/// [`memory`]): the values are taken from it for good, the file's bytes only
/// while they are parsed.
pub fn read_f32_in(path: impl AsRef<Path>, budget: &mut Budget) -> Result<Array, NpyError> {
    let path = path.as_ref();
    let origin = path.display().to_string();
    let err = |e: Error| NpyError {
        origin: origin.clone(),
        reason: match e {
            Error::Io { source, .. } => format!("cannot read: {source}"),
            Error::NotAFile { found, .. } => format!("cannot read: it is {found}, expected a file"),
            e => e.to_string(),
        },
    };
    // The values decoded take as much again as the file's bytes.
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    budget
        .take(len, || format!("the values of {origin}"))
        .map_err(err)?;
    // The bytes are freed once parsed: taken from a copy of the budget.
    let mut parsing = *budget;
    let bytes = memory::read_file(path, &mut parsing).map_err(err)?;
    parse_f32(&bytes, &origin)
}

/// Parses the bytes of a C-order `float32` `.npy` file; errors name `origin`.
pub fn parse_f32(bytes: &[u8], origin: &str) -> Result<Array, NpyError> {
    let err = |reason: String| NpyError {
        origin: origin.to_string(),
        reason,
    };
    check_header(bytes).map_err(err)?;
    let mut rest = bytes;
    let header = NpyHeader::from_reader(&mut rest)
        .map_err(|e| err(format!("not a valid .npy file: {e}")))?;
    match header.dtype() {
        DType::Plain(ty) if ty.type_char() == TypeChar::Float && ty.size_field() == 4 => {}
        other => {
            return Err(err(format!(
                "expected dtype float32 ('<f4'), found {}",
                describe(&other)
            )))
        }
    }
    if header.order() == Order::Fortran {
        return Err(err(
            "expected a C-order array, found a Fortran-order one (fortran_order: True); \
             save it with np.ascontiguousarray"
                .to_string(),
        ));
    }
    let shape = header.shape().to_vec();
    let expected = usize::try_from(header.len())
        .ok()
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| err(format!("shape {} is too large", show_shape(&shape))))?;
    if rest.len() != expected {
        let what = if rest.len() < expected {
            "truncated"
        } else {
            "has trailing bytes"
        };
        return Err(err(format!(
            "{what}: shape {} needs {expected} bytes of float32 data, found {}",
            show_shape(&shape),
            rest.len()
        )));
    }
    let data = npyz::NpyFile::with_header(header, rest)
        .into_vec::<f32>()
        .map_err(|e| err(format!("cannot decode the data: {e}")))?;
    Ok(Array { shape, data })
}

/// The bytes of a C-order little-endian `float32` `.npy` file of `shape`.
///
/// Errors (origin `<bytes>`) if `data` does not hold the product of `shape`
/// values.
pub fn to_bytes_f32(shape: &[u64], data: &[f32]) -> Result<Vec<u8>, NpyError> {
    let err = |reason: String| NpyError {
        origin: "<bytes>".to_string(),
        reason,
    };
    let count = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    if count != Some(data.len() as u64) {
        return Err(err(format!(
            "shape {} does not hold {} values",
            show_shape(shape),
            data.len()
        )));
    }
    let mut bytes = Vec::with_capacity(128 + 4 * data.len());
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .map_err(|e| err(e.to_string()))?;
    writer
        .extend(data.iter().copied())
        .map_err(|e| err(e.to_string()))?;
    writer.finish().map_err(|e| err(e.to_string()))?;
    Ok(bytes)
}

/// Writes a C-order little-endian `float32` `.npy` file of `shape`,
/// replacing `path`.
pub fn write_f32(path: impl AsRef<Path>, shape: &[u64], data: &[f32]) -> Result<(), NpyError> {
    let path = path.as_ref();
    let origin = path.display().to_string();
    let bytes = to_bytes_f32(shape, data).map_err(|e| NpyError {
        origin: origin.clone(),
        reason: e.reason,
    })?;
    std::fs::write(path, bytes).map_err(|e| NpyError {
        origin,
        reason: format!("cannot write: {e}"),
    })
}

/// A dtype as NumPy writes it, with its NumPy name when it has a common one:
/// `'<f8' (float64)`.
fn describe(dtype: &DType) -> String {
    let DType::Plain(ty) = dtype else {
        return format!("the structured dtype {}", dtype.descr());
    };
    let bits = ty.size_field().saturating_mul(8);
    let name = match ty.type_char() {
        TypeChar::Float => format!("float{bits}"),
        TypeChar::Int => format!("int{bits}"),
        TypeChar::Uint => format!("uint{bits}"),
        TypeChar::Bool => "bool".to_string(),
        TypeChar::Complex => format!("complex{bits}"),
        _ => return dtype.descr(),
    };
    format!("{} ({name})", dtype.descr())
}

/// A shape as NumPy prints it: `(2, 3)`, `(5,)`, `()`.
pub fn show_shape(shape: &[u64]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// Checks what `npyz` takes on trust: the magic string, a header length
/// within the file and at most `MAX_HEADER_LEN` (64 KiB), brackets nested
/// at most `MAX_NESTING` (8) deep, and, outside quoted strings, no words but `True`,
/// `False` and decimal integers whose product (zeros aside) fits in a `u64`.
/// NumPy's own headers always pass. The header's meaning (keys, dtype,
/// shape) is left to `npyz`.
pub fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err("not a .npy file (it does not start with \\x93NUMPY)".to_string());
    }
    let (text_start, len) = match (bytes[6], bytes[7]) {
        (1, 0) => (10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        (2, 0) | (3, 0) => match bytes.get(8..12) {
            Some(&[a, b, c, d]) => (12, u32::from_le_bytes([a, b, c, d]) as usize),
            _ => return Err("truncated in the header".to_string()),
        },
        (major, minor) => {
            return Err(format!(
                "unsupported .npy format version {major}.{minor} (expected 1.0, 2.0 or 3.0)"
            ))
        }
    };
    if len > MAX_HEADER_LEN {
        return Err(format!(
            "the header is {len} bytes long, more than the {MAX_HEADER_LEN} accepted"
        ));
    }
    let Some(text) = bytes.get(text_start..text_start + len) else {
        return Err(format!(
            "truncated in the header: it should be {len} bytes, the file has {} after the preamble",
            bytes.len() - text_start
        ));
    };
    check_header_text(text)
}

/// The lexical checks of [`check_header`] on the header's text.
fn check_header_text(text: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut product = 1u64;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b'\'' | b'"' => {
                // A quoted string: skip to its closing quote, minding escapes.
                i += 1;
                loop {
                    match text.get(i) {
                        None => return Err("the header has an unterminated string".to_string()),
                        Some(b'\\') => i += 2,
                        Some(&c) if c == b => break,
                        Some(_) => i += 1,
                    }
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "the header nests brackets more than {MAX_NESTING} deep"
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ if b.is_ascii_alphanumeric() || b == b'_' => {
                let start = i;
                while text
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                let word = &text[start..=i];
                if word == b"True" || word == b"False" {
                } else if word.iter().all(u8::is_ascii_digit) {
                    let n = std::str::from_utf8(word)
                        .ok()
                        .and_then(|w| w.parse::<u64>().ok())
                        .ok_or_else(|| "the header has an integer larger than 2^64".to_string())?;
                    if n != 0 {
                        product = product.checked_mul(n).ok_or_else(|| {
                            "the header's shape has more elements than 2^64".to_string()
                        })?;
                    }
                } else {
                    return Err(format!(
                        "the header has an unexpected word `{}`",
                        String::from_utf8_lossy(word)
                    ));
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// How many images an array of `shape` holds for a net whose input is
/// `input` (`[h, w, c]` or `[n]`, as [`Shape::dims`](crate::Shape::dims)):
/// one image of exactly that shape, or a batch with one leading dimension
/// more. `None` if the shapes do not match.
pub fn images_in(shape: &[u64], input: &[u32]) -> Option<u64> {
    let same = |dims: &[u64]| {
        dims.len() == input.len() && dims.iter().zip(input).all(|(&a, &b)| a == u64::from(b))
    };
    match shape.split_first() {
        _ if same(shape) => Some(1),
        Some((&n, rest)) if same(rest) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(shape: &[u64], data: &[f32]) -> Vec<u8> {
        to_bytes_f32(shape, data).unwrap()
    }

    /// A version 1.0 file with the given header text (padded as NumPy does).
    fn with_header(text: &str, data: &[u8]) -> Vec<u8> {
        let mut header = text.to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn round_trip() {
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes = npy(&[2, 3, 4], &data);
        let array = parse_f32(&bytes, "x.npy").unwrap();
        assert_eq!(array.shape, vec![2, 3, 4]);
        assert_eq!(array.data, data);
        let scalar = parse_f32(&npy(&[], &[7.0]), "s.npy").unwrap();
        assert_eq!((scalar.shape, scalar.data), (vec![], vec![7.0]));
        let empty = parse_f32(&npy(&[0, 3], &[]), "e.npy").unwrap();
        assert_eq!(empty.shape, vec![0, 3]);
    }

    #[test]
    fn reads_numpy_headers() {
        // As np.save writes them, little- and big-endian.
        let data: Vec<u8> = [1.0f32, -2.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &data,
        );
        assert_eq!(parse_f32(&bytes, "a").unwrap().data, vec![1.0, -2.5]);
        let data: Vec<u8> = [1.0f32, -2.5]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let bytes = with_header(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 2), }",
            &data,
        );
        let array = parse_f32(&bytes, "b").unwrap();
        assert_eq!((array.shape, array.data), (vec![1, 2], vec![1.0, -2.5]));
    }

    #[test]
    fn refuses_other_dtypes_and_orders() {
        let f8 = with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        );
        let e = parse_f32(&f8, "x.npy").unwrap_err();
        assert_eq!(e.origin, "x.npy");
        assert!(e.reason.ends_with("found '<f8' (float64)"), "{e}");
        let i4 = with_header(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        );
        assert!(parse_f32(&i4, "x")
            .unwrap_err()
            .reason
            .ends_with("found '<i4' (int32)"));
        let fortran = with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            &[0; 16],
        );
        let e = parse_f32(&fortran, "x").unwrap_err();
        assert!(e.reason.contains("Fortran"), "{e}");
    }

    #[test]
    fn refuses_truncated_and_corrupt_files() {
        let bytes = npy(&[2, 3], &[0.0; 6]);
        for cut in 0..bytes.len() {
            let e = parse_f32(&bytes[..cut], "t.npy").unwrap_err();
            assert_eq!(e.origin, "t.npy");
        }
        let e = parse_f32(&bytes[..bytes.len() - 1], "t").unwrap_err();
        assert!(
            e.reason.contains("truncated") && e.reason.contains("24"),
            "{e}"
        );
        let mut long = bytes.clone();
        long.push(0);
        assert!(parse_f32(&long, "t")
            .unwrap_err()
            .reason
            .contains("trailing"));
        assert!(parse_f32(b"hello, world", "t")
            .unwrap_err()
            .reason
            .contains("not a .npy"));
        // Every single-byte corruption of the header is an error or a valid
        // array, never a panic.
        let header_end = bytes.len() - 24;
        for i in 0..header_end {
            for v in [0u8, b'(', b')', b'9', b'x', b'\'', 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = parse_f32(&b, "c");
            }
        }
    }

    #[test]
    fn refuses_a_file_larger_than_memory_before_reading_it() {
        // Sparse: a terabyte of holes after a valid header costs no disk.
        let path = std::env::temp_dir().join(format!("cnnjit-npy-huge-{}.npy", std::process::id()));
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (250000000000,), }";
        std::fs::write(&path, with_header(header, &[])).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1_000_000_000_000)
            .unwrap();
        let err = read_f32(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(err.origin, path.display().to_string());
        assert!(
            err.reason.starts_with(&format!(
                "cannot allocate 1,000,000,000,000 bytes for the values of {}",
                path.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_directory_is_not_a_file() {
        let dir = std::env::temp_dir();
        let err = read_f32(&dir).unwrap_err();
        assert_eq!(err.origin, dir.display().to_string());
        assert_eq!(
            err.reason,
            "cannot read: it is a directory, expected a file"
        );
    }

    #[test]
    fn refuses_hostile_headers() {
        let huge = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296), }",
            &[],
        );
        assert!(parse_f32(&huge, "h").unwrap_err().reason.contains("2^64"));
        let deep = with_header(&format!("{}{}", "[".repeat(1000), "]".repeat(1000)), &[]);
        assert!(parse_f32(&deep, "d").unwrap_err().reason.contains("nests"));
        let hex = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0xffffffffffff,), }",
            &[],
        );
        assert!(parse_f32(&hex, "x").unwrap_err().reason.contains("0xff"));
        let mut big = MAGIC.to_vec();
        big.extend([2, 0]);
        big.extend(u32::MAX.to_le_bytes());
        assert!(parse_f32(&big, "b").unwrap_err().reason.contains("header"));
        let mut v9 = npy(&[1], &[0.0]);
        v9[6] = 9;
        assert!(parse_f32(&v9, "v").unwrap_err().reason.contains("version"));
    }

    #[test]
    fn write_checks_the_length() {
        assert!(to_bytes_f32(&[2, 2], &[0.0; 3]).is_err());
        assert!(to_bytes_f32(&[u64::MAX, 2], &[]).is_err());
    }

    #[test]
    fn images() {
        assert_eq!(images_in(&[4, 4, 1], &[4, 4, 1]), Some(1));
        assert_eq!(images_in(&[3, 4, 4, 1], &[4, 4, 1]), Some(3));
        assert_eq!(images_in(&[0, 4, 4, 1], &[4, 4, 1]), Some(0));
        assert_eq!(images_in(&[4, 1, 4], &[4, 4, 1]), None);
        assert_eq!(images_in(&[1, 1, 4, 4, 1], &[4, 4, 1]), None);
        assert_eq!(images_in(&[10], &[10]), Some(1));
        assert_eq!(images_in(&[5, 10], &[10]), Some(5));
        assert_eq!(images_in(&[], &[10]), None);
        assert_eq!(show_shape(&[5]), "(5,)");
        assert_eq!(show_shape(&[1, 2]), "(1, 2)");
    }
}
