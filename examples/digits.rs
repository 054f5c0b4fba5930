//! The lecture's LeNet-5, trained in PyTorch on scikit-learn's handwritten
//! digits (scripts/train_lenet_digits.py), run by cnnjit with no Python:
//! loads the weights and the held-out test set from examples/data, prints the
//! network's summary, classifies every test image, and compares the accuracy
//! with PyTorch's on the same split.
//!
//! Run: `cargo run --release --example digits`

use cnnjit::Weights;
use std::time::Instant;

mod net {
    cnnjit::cnn!(file = "examples/nets/lenet5.cnn");
}
use net::LeNet5;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// A 32x32 image as 16 lines of ASCII art (two rows per line).
fn ascii(image: &[f32]) -> Vec<String> {
    (0..16)
        .map(|line| {
            (0..32)
                .map(|x| {
                    let v = (image[(2 * line) * 32 + x] + image[(2 * line + 1) * 32 + x]) / 2.0;
                    [' ', '.', ':', 'o', '#'][((v * 4.99) as usize).min(4)]
                })
                .collect()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let weights = Weights::from_file(format!("{DATA}/lenet5_digits.safetensors"))?;
    let test = Weights::from_file(format!("{DATA}/digits_test.safetensors"))?;
    let pytorch: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{DATA}/lenet5_digits.json"
    ))?)?;
    let (images, labels) = (
        &test.get("images").ok_or("no images")?.data,
        &test.get("labels").ok_or("no labels")?.data,
    );
    let n = labels.len();

    println!("{}\n", LeNet5::summary());
    // The JIT, and its slow twin on the same weights.
    let mut net = LeNet5::new(&weights)?;
    let reference = cnnjit::Options {
        reference: true,
        ..cnnjit::Options::default()
    };
    let mut slow = LeNet5::with_options(&weights, reference)?;
    let mut outputs = vec![0.0f32; n * LeNet5::OUTPUT_LEN];
    let mut slow_outputs = outputs.clone();
    let start = Instant::now();
    net.forward_batch(images, &mut outputs)?;
    let jit_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    slow.forward_batch(images, &mut slow_outputs)?;
    let reference_seconds = start.elapsed().as_secs_f64();

    let predictions: Vec<usize> = outputs.chunks(LeNet5::OUTPUT_LEN).map(argmax).collect();
    let correct = predictions
        .iter()
        .zip(labels.iter())
        .filter(|(p, l)| **p == **l as usize)
        .count();
    println!("A few test digits:");
    let shown: Vec<usize> = (0..n).step_by(n / 4).take(4).collect();
    let arts: Vec<Vec<String>> = shown
        .iter()
        .map(|&i| ascii(&images[i * 1024..(i + 1) * 1024]))
        .collect();
    for line in 0..16 {
        println!(
            "  {}",
            arts.iter()
                .map(|a| a[line].as_str())
                .collect::<Vec<_>>()
                .join("  |  ")
        );
    }
    for &i in &shown {
        print!(
            "  predicted {} (true {})        ",
            predictions[i], labels[i]
        );
    }
    println!("\n");
    println!(
        "cnnjit accuracy: {correct}/{n} = {:.2}%   (PyTorch on the same split: {:.2}%)",
        100.0 * correct as f64 / n as f64,
        100.0 * pytorch["test_accuracy"].as_f64().unwrap_or(f64::NAN)
    );
    let same = predictions
        == slow_outputs
            .chunks(LeNet5::OUTPUT_LEN)
            .map(argmax)
            .collect::<Vec<_>>();
    if let cnnjit::runtime::model::Backend::Jit {
        compile_ms,
        kernels,
        ..
    } = net.model().backend()
    {
        println!("JIT: {kernels} kernels compiled in {compile_ms:.1} ms");
    }
    for (name, seconds) in [
        ("JIT", jit_seconds),
        ("reference kernels", reference_seconds),
    ] {
        println!(
            "{name:>17}: {:>7.0} images/s ({:.3} ms per image)",
            n as f64 / seconds,
            1e3 * seconds / n as f64
        );
    }
    println!(
        "the JIT is {:.1}x faster; both predict {} the same digits",
        reference_seconds / jit_seconds,
        if same { "exactly" } else { "NOT" }
    );
    Ok(())
}
