//! Tensors whose data is in a side file (ONNX's external data): read only
//! from a regular file inside the model's folder, only the bytes named, and
//! every other location an error naming the tensor and the location, never a
//! hang (a FIFO) and never a panic. The last test fuzzes the locations,
//! offsets and lengths.

#![cfg(unix)]

use crate::common;

use cnnjit_import::onnx::{StringEntry, TensorProto};
use cnnjit_import::{Error, Imported, Options};
use common::{model, node, weight};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The weight's dimensions: 6 floats, 24 bytes.
const DIMS: [i64; 4] = [3, 2, 1, 1];
const BYTES: u64 = 24;
/// Each side file's size.
const SIZE: u64 = 4096;

/// A model's folder and, beside it, a file it must never read:
///
/// ```text
/// root/secret.bin            -7.0 repeated
/// root/model/w.bin           the floats 1, 2, 3, ...
/// root/model/sub/x.bin       the floats -1, -2, -3, ...
/// root/model/link_in         -> w.bin
/// root/model/link_out        -> ../secret.bin
/// root/model/up              -> ..
/// root/model/fifo            a FIFO no one writes
/// root/model/dir/            a folder
/// ```
struct Folder {
    root: PathBuf,
}

impl Folder {
    fn new() -> Folder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "cnnjit-external-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let model = root.join("model");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        std::fs::create_dir_all(model.join("dir")).unwrap();
        std::fs::write(root.join("secret.bin"), floats(|_| -7.0)).unwrap();
        std::fs::write(model.join("w.bin"), floats(|i| i as f32 + 1.0)).unwrap();
        std::fs::write(model.join("sub/x.bin"), floats(|i| -(i as f32) - 1.0)).unwrap();
        std::os::unix::fs::symlink("w.bin", model.join("link_in")).unwrap();
        std::os::unix::fs::symlink("../secret.bin", model.join("link_out")).unwrap();
        std::os::unix::fs::symlink("..", model.join("up")).unwrap();
        let fifo = std::ffi::CString::new(model.join("fifo").into_os_string().into_encoded_bytes())
            .unwrap();
        // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        Folder { root }
    }

    fn model(&self) -> PathBuf {
        self.root.join("model")
    }

    /// The bytes of the file at `path` inside the model's folder.
    fn inside(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.model().join(path)).unwrap()
    }

    /// Writes a model whose one weight has `external_data` and imports it:
    /// the bytes of the weight's values, or the error's message. Fails the
    /// test if the import takes more than ten seconds.
    fn import(&self, external_data: Vec<StringEntry>) -> Result<Vec<u8>, String> {
        let tensor = TensorProto {
            raw_data: vec![],
            data_location: 1,
            external_data,
            ..weight("w", &DIMS)
        };
        let bytes = model(
            13,
            &[1, 2, 4, 4],
            vec![node("Conv", "c", &["x", "w"], "y", vec![])],
            vec![tensor],
        );
        let path = self.model().join("net.onnx");
        std::fs::write(&path, bytes).unwrap();
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let result = cnnjit_import::import(&path, &Options::default());
            send.send(result.as_ref().map(read_bytes).map_err(Error::to_string))
                .unwrap()
        });
        receive
            .recv_timeout(Duration::from_secs(10))
            .expect("the import returns within ten seconds")
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).unwrap();
    }
}

fn floats(value: impl Fn(u64) -> f32) -> Vec<u8> {
    (0..SIZE / 4).flat_map(|i| value(i).to_le_bytes()).collect()
}

fn entries(location: &str, offset: Option<u64>, length: Option<u64>) -> Vec<StringEntry> {
    let entry = |key: &str, value: String| StringEntry {
        key: key.into(),
        value,
    };
    let mut entries = vec![entry("location", location.into())];
    entries.extend(offset.map(|o| entry("offset", o.to_string())));
    entries.extend(length.map(|l| entry("length", l.to_string())));
    entries
}

/// The weight's values as the bytes they were read from.
fn read_bytes(imported: &Imported) -> Vec<u8> {
    imported.tensors[0]
        .values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// The import failed with an error naming the tensor `w` and `location`.
fn assert_refused(result: Result<Vec<u8>, String>, location: &str) -> String {
    let message = match result {
        Err(message) => message,
        Ok(read) => panic!("`{}` was read: {read:?}", location.escape_debug()),
    };
    assert!(message.contains("tensor `w`"), "{message}");
    assert!(
        message.contains(&format!("`{}`", location.escape_debug())),
        "{message}"
    );
    message
}

#[test]
fn external_data_is_read_from_the_side_file() {
    let folder = Folder::new();
    for location in ["w.bin", "./w.bin", "sub/../w.bin", "link_in", "sub/x.bin"] {
        let imported = folder.import(entries(location, Some(8), Some(BYTES)));
        let file = folder.inside(location);
        assert_eq!(imported.unwrap(), file[8..8 + BYTES as usize]);
    }
    // Without a length: up to the end of the file.
    let imported = folder.import(entries("w.bin", Some(SIZE - BYTES), None));
    assert_eq!(
        imported.unwrap(),
        folder.inside("w.bin")[(SIZE - BYTES) as usize..]
    );
}

#[test]
fn external_data_outside_the_models_folder_is_refused() {
    let folder = Folder::new();
    let secret = folder.root.join("secret.bin");
    let absolute_inside = folder.model().join("w.bin");
    for location in [
        "../secret.bin",
        "sub/../../secret.bin",
        "link_out",
        "up/secret.bin",
        secret.to_str().unwrap(),
        absolute_inside.to_str().unwrap(),
        "/etc/passwd",
    ] {
        assert_refused(
            folder.import(entries(location, None, Some(BYTES))),
            location,
        );
    }
}

#[test]
fn a_fifo_a_folder_and_malformed_locations_are_refused_without_hanging() {
    let folder = Folder::new();
    for location in [
        "fifo",
        "dir",
        "sub",
        ".",
        "",
        "up",
        "w.bin\0",
        "missing.bin",
    ] {
        assert_refused(
            folder.import(entries(location, None, Some(BYTES))),
            location,
        );
    }
}

#[test]
fn offsets_and_lengths_outside_the_file_or_the_tensor_are_refused() {
    let folder = Folder::new();
    for (offset, length) in [
        (Some(SIZE - 16), Some(BYTES)),
        (Some(SIZE + 1), None),
        (Some(u64::MAX), Some(BYTES)),
        (Some(8), Some(u64::MAX)),
        (None, Some(1 << 40)),
        // Inside the file, but not the tensor's 24 bytes.
        (Some(0), Some(28)),
        (Some(0), None),
    ] {
        let message = assert_refused(folder.import(entries("w.bin", offset, length)), "w.bin");
        assert!(message.contains("bytes"), "{message}");
    }
}

#[test]
fn a_model_not_read_from_a_file_has_no_folder_for_external_data() {
    let tensor = TensorProto {
        raw_data: vec![],
        data_location: 1,
        external_data: entries("w.bin", None, None),
        ..weight("w", &DIMS)
    };
    let bytes = model(
        13,
        &[1, 2, 4, 4],
        vec![node("Conv", "c", &["x", "w"], "y", vec![])],
        vec![tensor],
    );
    let result = cnnjit_import::import_bytes(&bytes, None, "Net", "net.onnx", "net.safetensors");
    assert_refused(
        result.map(|i| read_bytes(&i)).map_err(|e| e.to_string()),
        "w.bin",
    );
}

/// 300 tensors of 4 GiB each, all naming one sparse 4 GiB file (which
/// costs no disk): 1.2 TB, more than any machine's memory, refused before a
/// byte is read (each tensor was read in turn until the process ran out).
#[test]
fn many_tensors_naming_one_large_file_are_refused_before_any_is_read() {
    let folder = Folder::new();
    let length = 1u64 << 32;
    std::fs::File::create(folder.model().join("big.bin"))
        .unwrap()
        .set_len(length)
        .unwrap();
    let tensors = (0..300)
        .map(|i| TensorProto {
            raw_data: vec![],
            data_location: 1,
            external_data: entries("big.bin", Some(0), Some(length)),
            ..weight(&format!("w{i}"), &[])
        })
        .map(|t| TensorProto {
            dims: vec![1 << 30],
            ..t
        })
        .collect();
    let bytes = model(
        13,
        &[1, 2],
        vec![node("Relu", "r", &["x"], "y", vec![])],
        tensors,
    );
    let path = folder.model().join("net.onnx");
    std::fs::write(&path, bytes).unwrap();
    let start = std::time::Instant::now();
    let message = cnnjit_import::import(&path, &Options::default())
        .err()
        .expect("the import fails")
        .to_string();
    assert!(
        message.starts_with("cannot allocate ")
            && message.contains("for the external data of the model's initializers"),
        "{message}"
    );
    assert!(start.elapsed() < Duration::from_secs(10), "{message}");
}

/// A location: a known one, or a random path of `..`, `.`, the folder's
/// names and a leading `/`.
fn location() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "w.bin",
        "./w.bin",
        "sub/x.bin",
        "sub/../w.bin",
        "link_in",
        "link_out",
        "up/secret.bin",
        "up/model/w.bin",
        "../secret.bin",
        "fifo",
        "dir",
        ".",
        "",
        "/etc/passwd",
        "w.bin\0",
        "missing.bin",
    ])
    .prop_map(String::from);
    let part = prop::sample::select(vec![
        "..",
        ".",
        "",
        "sub",
        "up",
        "model",
        "w.bin",
        "x.bin",
        "secret.bin",
        "link_in",
        "link_out",
        "fifo",
        "dir",
    ]);
    let random =
        (any::<bool>(), prop::collection::vec(part, 1..6)).prop_map(|(absolute, parts)| {
            format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"))
        });
    prop_oneof![2 => known, 1 => random]
}

/// An offset or a length: absent, small, near the file's size or huge.
fn size() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        1 => Just(None),
        1 => (0..SIZE + 64).prop_map(Some),
        3 => Just(Some(BYTES)),
        1 => Just(Some(SIZE - BYTES)),
        1 => prop::sample::select(vec![1 << 32, 1 << 40, u64::MAX - 3, u64::MAX]).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Either the weight's bytes are `offset..offset + 24` of `w.bin` or
    /// `sub/x.bin` (the only regular files inside the folder; the secret
    /// outside holds other values), or the import is an error naming the
    /// tensor and the location.
    #[test]
    fn external_data_is_read_from_inside_the_folder_or_refused(
        location in location(),
        offset in size(),
        length in size(),
    ) {
        let folder = Folder::new();
        match folder.import(entries(&location, offset, length)) {
            Ok(read) => {
                let start = offset.unwrap_or(0) as usize;
                let from = |file: &str| folder.inside(file).get(start..start + BYTES as usize) == Some(&read[..]);
                prop_assert!(from("w.bin") || from("sub/x.bin"), "`{}` read {read:?}", location.escape_debug());
            }
            Err(message) => {
                prop_assert!(message.contains("tensor `w`"), "{message}");
                prop_assert!(message.contains(&format!("`{}`", location.escape_debug())), "{message}");
            }
        }
    }
}
