//! `Weights`: safetensors round trips, every error a loader can meet, and
//! property tests that no mutated or crafted file makes loading panic.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use cnnjit_runtime::error::Error;
use cnnjit_runtime::{Model, Tensor, Weights};
use proptest::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

/// A path in the temp directory no other test (or test run) uses; the file
/// is removed when the guard drops.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "cnnjit-weights-{tag}-{}-{}-{nanos}.safetensors",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TempFile(std::env::temp_dir().join(name))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A few tensors covering the shapes that matter: 4-d, 1-d, a scalar, a
/// zero-size dimension, and awkward values.
fn sample() -> Weights {
    let mut w = Weights::new();
    let conv: Vec<f32> = (0..2 * 3 * 3 * 3).map(|i| i as f32 * 0.25 - 3.0).collect();
    w.insert("conv1.weight", vec![2, 3, 3, 3], conv).unwrap();
    w.insert("conv1.bias", vec![2], vec![0.5, -1.5]).unwrap();
    w.insert("scale", vec![], vec![7.0]).unwrap();
    w.insert("empty", vec![4, 0, 2], vec![]).unwrap();
    let odd = vec![
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE / 2.0,
        f32::MAX,
        f32::NAN,
    ];
    w.insert("odd", vec![2, 3], odd).unwrap();
    w
}

/// Equality bit for bit, so NaNs compare equal.
fn assert_same(a: &Weights, b: &Weights) {
    let names_a: Vec<&str> = a.names().collect();
    let names_b: Vec<&str> = b.names().collect();
    assert_eq!(names_a, names_b);
    for name in names_a {
        let (ta, tb) = (a.get(name).unwrap(), b.get(name).unwrap());
        assert_eq!(ta.shape, tb.shape, "{name}");
        let bits = |t: &Tensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(ta), bits(tb), "{name}");
    }
}

/// A safetensors file holding one tensor of any dtype, written by the
/// `safetensors` crate itself.
fn one_tensor(name: &str, dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) -> Vec<u8> {
    let view = TensorView::new(dtype, shape, bytes).unwrap();
    safetensors::serialize([(name, view)], None).unwrap()
}

/// A file with an arbitrary header (padded to 8 bytes) and data section.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut header = header.as_bytes().to_vec();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

fn expect_corrupt(result: Result<Weights, Error>, origin: &str) -> String {
    match result {
        Err(Error::Corrupt { origin: o, reason }) => {
            assert_eq!(o, origin);
            reason.to_string()
        }
        other => panic!("expected Corrupt from {origin}, got {other:?}"),
    }
}

#[test]
fn round_trip_through_bytes() {
    let w = sample();
    let bytes = w.to_safetensors().unwrap();
    let back = Weights::from_bytes(&bytes).unwrap();
    assert_same(&w, &back);
    assert_eq!(back.len(), 5);
    assert!(!back.is_empty());
    // Writing what was read gives the same bytes.
    assert_eq!(back.to_safetensors().unwrap(), bytes);
}

#[test]
fn round_trip_of_nothing() {
    let w = Weights::new();
    assert!(w.is_empty());
    assert_eq!(w, Weights::default());
    let back = Weights::from_bytes(&w.to_safetensors().unwrap()).unwrap();
    assert!(back.is_empty());
    assert_eq!(back.len(), 0);
}

#[test]
fn accessors() {
    let mut w = sample();
    let names: Vec<&str> = w.names().collect();
    assert_eq!(
        names,
        ["conv1.bias", "conv1.weight", "empty", "odd", "scale"]
    );
    assert_eq!(
        w.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        names,
        "iter agrees with names"
    );
    assert_eq!(w.get("conv1.bias").unwrap().data, [0.5, -1.5]);
    assert_eq!(w.get("empty").unwrap().shape, [4, 0, 2]);
    assert!(w.get("conv1").is_none());
    // Inserting an existing name replaces the tensor.
    w.insert("conv1.bias", vec![1], vec![9.0]).unwrap();
    assert_eq!(w.len(), 5);
    assert_eq!(
        w.get("conv1.bias").unwrap(),
        &Tensor {
            shape: vec![1],
            data: vec![9.0]
        }
    );
}

#[test]
fn reads_unaligned_bytes() {
    let bytes = sample().to_safetensors().unwrap();
    for shift in 1..4 {
        let mut buf = vec![0u8; shift];
        buf.extend(&bytes);
        assert_same(&sample(), &Weights::from_bytes(&buf[shift..]).unwrap());
    }
}

#[test]
fn reads_what_the_safetensors_crate_writes() {
    let values = [1.0f32, -2.0, 3.5, 0.0, 1e-3, 6.0];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let file = one_tensor("fc.weight", Dtype::F32, vec![2, 3], &bytes);
    let w = Weights::from_bytes(&file).unwrap();
    let t = w.get("fc.weight").unwrap();
    assert_eq!(t.shape, [2, 3]);
    assert_eq!(t.data, values);

    let file = one_tensor("nothing", Dtype::F32, vec![0, 5], &[]);
    let t = Weights::from_bytes(&file).unwrap().get("nothing").cloned();
    assert_eq!(t.map(|t| (t.shape, t.data.len())), Some((vec![0, 5], 0)));
}

#[test]
fn save_and_load_a_file() {
    let tmp = TempFile::new("roundtrip");
    let w = sample();
    w.save(&tmp.0).unwrap();
    assert_same(&w, &Weights::from_file(&tmp.0).unwrap());
    // A path given as a String works too.
    let as_string = tmp.0.display().to_string();
    assert_same(&w, &Weights::from_file(as_string).unwrap());
}

#[test]
fn empty_file_is_corrupt() {
    let tmp = TempFile::new("empty");
    std::fs::write(&tmp.0, b"").unwrap();
    let origin = tmp.0.display().to_string();
    expect_corrupt(Weights::from_file(&tmp.0), &origin);
}

#[test]
fn truncated_bytes_are_corrupt() {
    let bytes = sample().to_safetensors().unwrap();
    // Every cut: inside the length, inside the header, inside the data.
    for cut in 0..bytes.len() {
        expect_corrupt(Weights::from_bytes(&bytes[..cut]), "<bytes>");
    }
    // Extra bytes after the data are corrupt too.
    let mut long = bytes.clone();
    long.extend([0, 0, 0, 0]);
    expect_corrupt(Weights::from_bytes(&long), "<bytes>");
}

#[test]
fn truncated_file_is_corrupt_and_names_the_path() {
    let bytes = sample().to_safetensors().unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let tmp = TempFile::new("truncated");
    let origin = tmp.0.display().to_string();
    for cut in [3, 8, 8 + header_len / 2, 8 + header_len, bytes.len() - 1] {
        std::fs::write(&tmp.0, &bytes[..cut]).unwrap();
        let err = Weights::from_file(&tmp.0).unwrap_err();
        assert!(err.to_string().contains(&origin), "{err}");
        expect_corrupt(Err(err), &origin);
    }
}

#[test]
fn garbage_header_is_corrupt() {
    expect_corrupt(
        Weights::from_bytes(&raw_file("this is not json", &[])),
        "<bytes>",
    );
    expect_corrupt(Weights::from_bytes(&raw_file("[1, 2, 3]", &[])), "<bytes>");
    let missing_offsets = r#"{"a":{"dtype":"F32","shape":[1]}}"#;
    expect_corrupt(
        Weights::from_bytes(&raw_file(missing_offsets, &[0; 4])),
        "<bytes>",
    );
    let unknown_dtype = r#"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#;
    expect_corrupt(
        Weights::from_bytes(&raw_file(unknown_dtype, &[0; 4])),
        "<bytes>",
    );
    let wrong_size = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#;
    expect_corrupt(
        Weights::from_bytes(&raw_file(wrong_size, &[0; 4])),
        "<bytes>",
    );
    let gap = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    expect_corrupt(Weights::from_bytes(&raw_file(gap, &[0; 8])), "<bytes>");
    // Not UTF-8.
    let mut bytes = 8u64.to_le_bytes().to_vec();
    bytes.extend([0xff, 0xfe, 0x7b, 0x7d, 0x80, 0x20, 0x20, 0x20]);
    expect_corrupt(Weights::from_bytes(&bytes), "<bytes>");
    // A header length of zero leaves no JSON at all.
    expect_corrupt(Weights::from_bytes(&0u64.to_le_bytes()), "<bytes>");
}

#[test]
fn header_length_past_the_end_is_corrupt() {
    let mut bytes = sample().to_safetensors().unwrap();
    let real = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    for len in [
        real + 1,
        bytes.len() as u64,
        bytes.len() as u64 - 7,
        1 << 40,
        u64::MAX,
    ] {
        bytes[..8].copy_from_slice(&len.to_le_bytes());
        expect_corrupt(Weights::from_bytes(&bytes), "<bytes>");
    }
}

/// `safetensors` 0.8 adds the last tensor's end offset to the header length
/// unchecked; offsets summing to nearly `usize::MAX` must be an error, not an
/// overflow panic.
#[test]
fn offsets_near_usize_max_are_corrupt() {
    let size = (1usize << 61) - 1;
    let entries: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#""t{i}":{{"dtype":"U8","shape":[{size}],"data_offsets":[{},{}]}}"#,
                i * size,
                (i + 1) * size
            )
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let reason = expect_corrupt(Weights::from_bytes(&raw_file(&header, &[])), "<bytes>");
    assert!(reason.contains("past the end"), "{reason}");
}

#[test]
fn other_dtypes_are_refused_by_name() {
    let cases = [
        (Dtype::F64, vec![0u8; 16], "F64"),
        (Dtype::F16, vec![0u8; 4], "F16"),
        (Dtype::BF16, vec![0u8; 4], "BF16"),
        (Dtype::I32, vec![0u8; 8], "I32"),
        (Dtype::U8, vec![0u8; 2], "U8"),
    ];
    for (dtype, bytes, found_name) in cases {
        let file = one_tensor("bn1.running_var", dtype, vec![2], &bytes);
        match Weights::from_bytes(&file) {
            Err(Error::WrongDtype { tensor, found }) => {
                assert_eq!(tensor, "bn1.running_var");
                assert_eq!(found, found_name);
            }
            other => panic!("expected WrongDtype for {found_name}, got {other:?}"),
        }
    }
    // The error names the tensor in its message too.
    let file = one_tensor("fc.bias", Dtype::F64, vec![1], &[0; 8]);
    let message = Weights::from_bytes(&file).unwrap_err().to_string();
    assert!(
        message.contains("fc.bias") && message.contains("F64"),
        "{message}"
    );
}

#[test]
fn first_wrong_dtype_in_name_order_is_reported() {
    let f64_view = TensorView::new(Dtype::F64, vec![1], &[0; 8]).unwrap();
    let f16_view = TensorView::new(Dtype::F16, vec![1], &[0; 2]).unwrap();
    let f32_view = TensorView::new(Dtype::F32, vec![1], &[0; 4]).unwrap();
    let file =
        safetensors::serialize([("b", f64_view), ("c", f16_view), ("a", f32_view)], None).unwrap();
    match Weights::from_bytes(&file) {
        Err(Error::WrongDtype { tensor, .. }) => assert_eq!(tensor, "b"),
        other => panic!("expected WrongDtype, got {other:?}"),
    }
}

#[test]
fn insert_checks_the_length() {
    let mut w = Weights::new();
    for (shape, len) in [(vec![2, 3], 5), (vec![2, 3], 7), (vec![], 0), (vec![0], 1)] {
        match w.insert("x", shape.clone(), vec![0.0; len]) {
            Err(Error::BadValue { tensor, reason }) => {
                assert_eq!(tensor, "x");
                assert!(reason.contains(&len.to_string()), "{reason}");
            }
            other => panic!("expected BadValue for {shape:?} with {len}, got {other:?}"),
        }
    }
    // A shape whose product overflows.
    assert!(matches!(
        w.insert("x", vec![usize::MAX, 2], vec![]),
        Err(Error::BadValue { .. })
    ));
    // The reserved name.
    assert!(matches!(
        w.insert("__metadata__", vec![1], vec![0.0]),
        Err(Error::BadValue { .. })
    ));
    assert!(w.is_empty(), "nothing was inserted");
}

#[test]
fn missing_file_is_io() {
    let tmp = TempFile::new("missing");
    match Weights::from_file(&tmp.0) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, tmp.0);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    let message = Weights::from_file(&tmp.0).unwrap_err().to_string();
    assert!(message.contains(&tmp.0.display().to_string()), "{message}");
}

#[test]
fn directory_is_not_a_file_and_says_so() {
    let dir = std::env::temp_dir();
    let err = Weights::from_file(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}: it is a directory, expected a file",
            dir.display()
        )
    );
    assert!(matches!(err, Error::NotAFile { path, .. } if path == dir));
}

#[test]
fn a_file_larger_than_memory_is_refused_before_it_is_read() {
    // Sparse: a terabyte of holes costs no disk, but reading it would take
    // a terabyte of memory (or, mapped, pages that are not there).
    let tmp = TempFile::new("huge");
    std::fs::File::create(&tmp.0)
        .unwrap()
        .set_len(1_000_000_000_000)
        .unwrap();
    let err = Weights::from_file(&tmp.0).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot allocate 1,000,000,000,000 bytes for the tensors of {}",
            tmp.0.display()
        )),
        "{err}"
    );
}

#[test]
fn loaded_weights_do_not_depend_on_the_file() {
    // Read once, then the file is gone: a model still builds and runs the
    // same as one built from the bytes (a map of the file would fault).
    let mut w = Weights::new();
    w.insert("c.weight", vec![2, 1, 1, 1], vec![1.5, -0.5])
        .unwrap();
    w.insert("c.bias", vec![2], vec![0.25, 0.5]).unwrap();
    let bytes = w.to_safetensors().unwrap();
    let tmp = TempFile::new("gone");
    std::fs::write(&tmp.0, &bytes).unwrap();
    let loaded = Weights::from_file(&tmp.0).unwrap();
    std::fs::File::create(&tmp.0).unwrap().set_len(0).unwrap();
    std::fs::remove_file(&tmp.0).unwrap();
    let source = "Net(1x1x1) { c: conv(2, 1x1) }";
    let mut model = Model::from_source(source, None, &loaded).unwrap();
    // 2 x (1.5, -0.5) + (0.25, 0.5).
    assert_eq!(model.forward(&[2.0]).unwrap(), [3.25, -0.5]);
    assert_same(&loaded, &w);
}

#[test]
fn save_to_a_bad_path_is_io() {
    let tmp = TempFile::new("nodir");
    let path = tmp.0.join("inside-a-file-that-does-not-exist.safetensors");
    assert!(matches!(sample().save(&path), Err(Error::Io { .. })));
}

// ---- property tests ----

/// Small random weights: up to four tensors of up to three dimensions.
fn arb_weights() -> impl Strategy<Value = Weights> {
    let tensor = prop::collection::vec(0usize..4, 0..4).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        (Just(shape), prop::collection::vec(any::<f32>(), n))
    });
    prop::collection::btree_map("[a-z][a-z0-9_.]{0,8}", tensor, 0..4).prop_map(|tensors| {
        let mut w = Weights::new();
        for (name, (shape, data)) in tensors {
            w.insert(name, shape, data).unwrap();
        }
        w
    })
}

/// One way of damaging a file.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte (anywhere) with a non-zero mask.
    Flip(prop::sample::Index, u8),
    /// Keep only a prefix.
    Truncate(prop::sample::Index),
    /// Insert random bytes inside the header (or just after the prefix).
    Splice(prop::sample::Index, Vec<u8>),
    /// Overwrite the 8-byte header length: a random value, or the real one
    /// off by a little.
    HeaderLen(Option<u64>, i8),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..).prop_map(|(i, m)| Mutation::Flip(i, m)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Splice(i, b)),
        (prop::option::of(any::<u64>()), any::<i8>()).prop_map(|(v, d)| Mutation::HeaderLen(v, d)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let header_end = bytes
        .get(..8)
        .map(|p| u64::from_le_bytes(p.try_into().unwrap()))
        .and_then(|n| usize::try_from(n).ok())
        .map_or(bytes.len(), |n| n.saturating_add(8).min(bytes.len()));
    match mutation {
        Mutation::Flip(i, mask) => {
            let i = i.index(bytes.len());
            bytes[i] ^= mask;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Splice(i, insert) => {
            let at = 8.min(bytes.len()) + i.index(header_end.saturating_sub(8) + 1);
            let at = at.min(bytes.len());
            bytes.splice(at..at, insert.iter().copied());
        }
        Mutation::HeaderLen(value, delta) => {
            if bytes.len() < 8 {
                return;
            }
            let real = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            let len = value.unwrap_or_else(|| real.wrapping_add_signed(i64::from(*delta)));
            bytes[..8].copy_from_slice(&len.to_le_bytes());
        }
    }
}

/// Whatever loaded satisfies the invariant.
fn check_loaded(result: Result<Weights, Error>) {
    if let Ok(w) = result {
        for (name, t) in w.iter() {
            assert_eq!(t.shape.iter().product::<usize>(), t.data.len(), "{name}");
        }
    }
}

/// A tensor entry for a crafted header: random dtype, shape and offsets,
/// biased towards the edges (zero, huge, near `usize::MAX`).
fn arb_entry() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        0usize..64,
        Just(usize::MAX),
        Just(usize::MAX / 4),
        Just((1usize << 61) - 1),
        any::<usize>(),
    ];
    let dtype = prop::sample::select(vec!["F32", "F16", "F64", "U8", "BOOL", "F4", "I64", "X"]);
    (
        "[a-c]",
        dtype,
        prop::collection::vec(number.clone(), 0..3),
        prop::collection::vec(number, 0..3),
    )
        .prop_map(|(name, dtype, shape, offsets)| {
            format!(
                r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":{offsets:?}}}"#
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_weights_round_trip(w in arb_weights()) {
        let bytes = w.to_safetensors().unwrap();
        assert_same(&w, &Weights::from_bytes(&bytes).unwrap());
    }

    #[test]
    fn mutated_files_never_panic(
        w in arb_weights(),
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = w.to_safetensors().unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_loaded(Weights::from_bytes(&bytes));
    }

    #[test]
    fn crafted_headers_never_panic(
        entries in prop::collection::vec(arb_entry(), 0..4),
        data_len in 0usize..64,
    ) {
        let header = format!("{{{}}}", entries.join(","));
        check_loaded(Weights::from_bytes(&raw_file(&header, &vec![0x3f; data_len])));
    }
}

#[test]
fn corruption_is_typed_and_keeps_the_parser_error_as_source() {
    use cnnjit_runtime::Corruption;
    let gap = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let err = Weights::from_bytes(&raw_file(gap, &[0; 8])).unwrap_err();
    let source = std::error::Error::source(&err).expect("safetensors' error");
    assert_eq!(
        err.to_string(),
        format!("<bytes>: not a valid safetensors file: {source}")
    );
    assert!(
        matches!(
            err,
            Error::Corrupt {
                reason: Corruption::Safetensors(_),
                ..
            }
        ),
        "{err:?}"
    );
    let past = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,12]}}"#;
    match Weights::from_bytes(&raw_file(past, &[0; 8])) {
        Err(Error::Corrupt {
            reason:
                Corruption::DataOffsets {
                    tensor,
                    offsets,
                    data_len,
                },
            ..
        }) => {
            assert_eq!(tensor, "a");
            assert_eq!(offsets, ["0", "12"]);
            // The header is padded to 8 bytes: the data is what follows it.
            assert_eq!(data_len, 8);
        }
        other => panic!("expected offsets past the data, got {other:?}"),
    }
}
