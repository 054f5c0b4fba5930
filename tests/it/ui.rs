//! Every compile error of the cnn! language, checked against its .stderr snapshot.

use std::path::Path;

#[test]
fn compile_errors() {
    stage_net_files();
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

/// `cnn!(file = "...")` reads a path relative to `CARGO_MANIFEST_DIR`, which
/// under trybuild is the project trybuild generates in
/// `TARGET/tests/trybuild/cnnjit`, not this crate's root: copy the `.cnn`
/// files the cases read there, under the same relative path.
fn stage_net_files() {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is TARGET/tmp");
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/nets");
    let to = target.join("tests/trybuild/cnnjit/tests/ui/nets");
    std::fs::create_dir_all(&to).expect("create the trybuild project's nets directory");
    for entry in std::fs::read_dir(&from).expect("read tests/ui/nets") {
        let path = entry.expect("list tests/ui/nets").path();
        if path.extension().is_some_and(|e| e == "cnn") {
            let name = path.file_name().expect("a file name");
            std::fs::copy(&path, to.join(name)).expect("copy a .cnn file");
        }
    }
}
