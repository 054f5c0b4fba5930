//! Images in, labels out: classifies image files with the digits demo's
//! LeNet-5 (trained weights in examples/data) and prints each file's top
//! three classes with their names and probabilities.
//!
//! Run: `cargo run --release --example classify -- examples/data/digit_4.png`
//! (no argument: that file). The same from the shell:
//! `cnnjit run examples/nets/lenet5.cnn --weights examples/data/lenet5_digits.safetensors --image examples/data/digit_4.png --preprocess digits`.
//! The net learnt light digits on a dark ground, 8x8 scans upsampled to 32x32.

use cnnjit::image::{check_input, Labels, Limits, Preprocess};
use cnnjit::Weights;

mod net {
    cnnjit::cnn!(file = "examples/nets/lenet5.cnn");
}
use net::LeNet5;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<String> = match std::env::args().skip(1).collect::<Vec<_>>() {
        files if files.is_empty() => vec![format!("{DATA}/digit_4.png")],
        files => files,
    };
    let mut net = LeNet5::new(&Weights::from_file(format!(
        "{DATA}/lenet5_digits.safetensors"
    ))?)?;
    let names = Labels::parse("0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n", "digits")?;
    names.check_outputs(LeNet5::OUTPUT_LEN)?;
    let preprocess = Preprocess::digits();
    for file in &files {
        let x = preprocess.open(file, &Limits::default())?;
        check_input(&x.shape, net.model().graph(), file)?;
        // The net ends in softmax: its outputs are probabilities.
        let p = net.forward(x.data.as_slice().try_into()?);
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        println!("{file}:");
        for &class in &order[..3] {
            println!("  {:.4}  {}", p[class], names.name(class).unwrap_or("?"));
        }
    }
    Ok(())
}
