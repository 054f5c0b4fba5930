//! Prints the lecture's summary table of each of its networks, compiled at
//! build time by `cnn!` from the files in examples/nets.
//!
//! Run: `cargo run --release --example summary`

mod nets {
    pub mod lenet5 {
        cnnjit::cnn!(file = "examples/nets/lenet5.cnn");
    }
    pub mod alexnet {
        cnnjit::cnn!(file = "examples/nets/alexnet.cnn");
    }
    pub mod zfnet {
        cnnjit::cnn!(file = "examples/nets/zfnet.cnn");
    }
    pub mod vgg16 {
        cnnjit::cnn!(file = "examples/nets/vgg16.cnn");
    }
    pub mod googlenet {
        cnnjit::cnn!(file = "examples/nets/googlenet.cnn");
    }
    pub mod resnet {
        cnnjit::cnn!(file = "examples/nets/resnet.cnn");
    }
    pub mod mobilenet_v1 {
        cnnjit::cnn!(file = "examples/nets/mobilenet_v1.cnn");
    }
    pub mod mobilenet_v2 {
        cnnjit::cnn!(file = "examples/nets/mobilenet_v2.cnn");
    }
    pub mod efficientnet {
        cnnjit::cnn!(file = "examples/nets/efficientnet_b0.cnn");
    }
}

use cnnjit::ir::summary::thousands;
use nets::*;

fn main() {
    // The lecture walks through these three layer by layer.
    println!("{}\n", lenet5::LeNet5::summary());
    println!("{}\n", alexnet::AlexNet::summary());
    println!("{}\n", vgg16::VGG16::summary());

    // The rest, side by side: the figures are compile-time constants.
    macro_rules! row {
        ($name:literal, $($net:ident)::+) => {
            ($name, $($net)::+::PARAMS, $($net)::+::MACS, $($net)::+::FLOPS, $($net)::+::PEAK_INFERENCE_BYTES)
        };
    }
    let rows = [
        row!("LeNet-5", lenet5::LeNet5),
        row!("AlexNet", alexnet::AlexNet),
        row!("ZFNet", zfnet::ZFNet),
        row!("VGG16", vgg16::VGG16),
        row!("GoogLeNet", googlenet::GoogLeNet),
        row!("ResNet-18", resnet::ResNet18),
        row!("ResNet-34", resnet::ResNet34),
        row!("ResNet-50", resnet::ResNet50),
        row!("ResNet-152", resnet::ResNet152),
        row!("MobileNetV1", mobilenet_v1::MobileNetV1),
        row!("MobileNetV1 0.25", mobilenet_v1::MobileNetV1_025),
        row!("MobileNetV2", mobilenet_v2::MobileNetV2),
        row!("EfficientNet-B0", efficientnet::EfficientNetB0),
    ];
    println!(
        "{:<18} {:>14} {:>17} {:>17} {:>12}",
        "network", "params", "MACs", "FLOPs (lecture)", "arena MB"
    );
    for (name, params, macs, flops, peak) in rows {
        println!(
            "{name:<18} {:>14} {:>17} {:>17} {:>12.2}",
            thousands(params),
            thousands(macs),
            thousands(flops),
            peak as f64 / 1e6
        );
    }
}
