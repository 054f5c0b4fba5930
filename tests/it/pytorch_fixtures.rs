//! Every fixture in tests/fixtures (written by scripts/make_fixtures.py with
//! PyTorch): the net, its weights, a batch of two inputs and PyTorch's
//! outputs, all in HWC. cnnjit must agree within 1e-4 relative, 1e-5
//! absolute near zero.

use cnnjit::{Model, Weights};
use std::path::Path;

/// |a - b| <= 1e-5 + 1e-4 |b| for every element; the worst violation otherwise.
pub fn assert_close(name: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{name}: lengths");
    let worst = actual
        .iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (a, b))| (i, (a - b).abs() - (1e-5 + 1e-4 * b.abs())))
        .max_by(|x, y| x.1.total_cmp(&y.1));
    if let Some((i, excess)) = worst {
        assert!(
            excess <= 0.0,
            "{name}: element {i} is {} but PyTorch gives {}",
            actual[i],
            expected[i]
        );
    }
}

#[test]
fn every_fixture_matches_pytorch() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "cnn")
                .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "only {} fixtures found", names.len());
    for name in &names {
        let weights = Weights::from_file(dir.join(format!("{name}.safetensors"))).unwrap();
        let io = Weights::from_file(dir.join(format!("{name}.io.safetensors"))).unwrap();
        let mut model = Model::from_file(dir.join(format!("{name}.cnn")), None, &weights)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (input, expected) = (io.get("input").unwrap(), io.get("output").unwrap());
        let mut output = vec![0.0; expected.data.len()];
        model
            .forward_batch(&input.data, &mut output)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_close(name, &output, &expected.data);
    }
}
