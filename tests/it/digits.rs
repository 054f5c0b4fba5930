//! The trained LeNet-5 (examples/data, from scripts/train_lenet_digits.py):
//! cnnjit classifies the held-out digits exactly as PyTorch did.

use cnnjit::Weights;

mod net {
    cnnjit::cnn!(file = "examples/nets/lenet5.cnn");
}

#[test]
fn lenet5_on_digits_equals_pytorch() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");
    let weights = Weights::from_file(format!("{data}/lenet5_digits.safetensors")).unwrap();
    let test = Weights::from_file(format!("{data}/digits_test.safetensors")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{data}/lenet5_digits.json")).unwrap(),
    )
    .unwrap();
    let images = &test.get("images").unwrap().data;
    let labels = &test.get("labels").unwrap().data;
    let torch = &test.get("pytorch_probabilities").unwrap().data;

    let mut net = net::LeNet5::new(&weights).unwrap();
    let mut probabilities = vec![0.0; torch.len()];
    net.forward_batch(images, &mut probabilities).unwrap();
    for (i, (a, b)) in probabilities.iter().zip(torch).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
            "image {}: {a} vs PyTorch's {b}",
            i / 10
        );
    }
    let argmax = |p: &[f32]| (0..p.len()).max_by(|&x, &y| p[x].total_cmp(&p[y])).unwrap();
    let correct = probabilities
        .chunks(10)
        .zip(labels)
        .filter(|(p, l)| argmax(p) == **l as usize)
        .count();
    assert_eq!(correct as u64, summary["test_correct"].as_u64().unwrap());
    assert_eq!(labels.len() as u64, summary["n_test"].as_u64().unwrap());
}
