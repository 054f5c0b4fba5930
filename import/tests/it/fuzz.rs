//! Malformed and truncated ONNX files: the importer returns an error (or,
//! for a mutation that keeps the file meaningful, a net) and never panics.
//! The mutations start from a real model exported by PyTorch, so they reach
//! past the protobuf decoder into folding, mapping, nesting and writing.

use cnnjit_import::import_bytes;
use proptest::prelude::*;

fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/onnx/mobilenet_se.onnx"
    );
    std::fs::read(path).unwrap()
}

/// Whether the bytes import; a panic fails the test. (About a fifth of the
/// mutated files still import: their edits hit weights; most others fail in
/// the decoder, some in mapping, each with an error naming the node.)
fn import(bytes: &[u8]) -> bool {
    import_bytes(bytes, None, "Net", "net.onnx", "net.safetensors").is_ok()
}

#[test]
fn the_unmutated_fixture_imports() {
    assert!(import(&fixture()));
}

#[test]
fn every_truncation_of_the_first_2_kib_is_an_error() {
    let bytes = fixture();
    for len in 0..bytes.len().min(2048) {
        assert!(!import(&bytes[..len]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = fixture();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        import(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        import(&bytes);
    }
}
