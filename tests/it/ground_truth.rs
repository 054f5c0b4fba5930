//! Every network in examples/nets, compiled by `cnn!(file = ...)`, against
//! tests/data/ground_truth.json (PyTorch's figures, produced by
//! scripts/trim_ground_truth.py from shared/refs): PARAMS = params_total,
//! MACS = macs_conv_fc, FLOPS = macs_lecture (conv and dense MACs plus pooling
//! windows), the output shape, and the per-layer rows of the lecture's tables.
//! The errata test pins the correct values where the lecture prints wrong ones.

use cnnjit::{LayerInfo, Shape};
use serde_json::Value;

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
    pub mod inception {
        cnnjit::cnn!(file = "examples/nets/inception_examples.cnn");
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
    pub mod unet {
        cnnjit::cnn!(file = "examples/nets/unet.cnn");
    }
    pub mod fpn {
        cnnjit::cnn!(file = "examples/nets/fpn.cnn");
    }
}

fn truth() -> Value {
    serde_json::from_str(include_str!("../data/ground_truth.json"))
        .expect("ground_truth.json parses")
}

/// The entry at `path` (keys separated by `/`).
fn entry<'a>(truth: &'a Value, path: &str) -> &'a Value {
    path.split('/').fold(&truth["networks"], |v, key| &v[key])
}

fn number(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("ground truth lacks {key}"))
}

/// NCHW `[1, C, H, W]` or `[1, N]` as our HWC shape.
fn shape_of(dims: &Value) -> Shape {
    let d: Vec<u32> = dims
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    match d.as_slice() {
        [1, c, h, w] => Shape::Volume {
            h: *h,
            w: *w,
            c: *c,
        },
        [1, n] => Shape::Flat(*n),
        other => panic!("unexpected shape {other:?}"),
    }
}

struct Net {
    truth_key: &'static str,
    params: u64,
    macs: u64,
    flops: u64,
    output: Shape,
    layers: &'static [LayerInfo],
}

macro_rules! net {
    ($key:literal, $($ty:ident)::+) => {
        Net {
            truth_key: $key,
            params: nets::$($ty)::+::PARAMS,
            macs: nets::$($ty)::+::MACS,
            flops: nets::$($ty)::+::FLOPS,
            output: nets::$($ty)::+::OUTPUT_SHAPE,
            layers: nets::$($ty)::+::LAYERS,
        }
    };
}

fn all_nets() -> Vec<Net> {
    vec![
        net!("lenet5_lecture", lenet5::LeNet5),
        net!("alexnet_lecture", alexnet::AlexNet),
        net!("zfnet_lecture", zfnet::ZFNet),
        net!("vgg16", vgg16::VGG16),
        net!("googlenet_paper", googlenet::GoogLeNet),
        net!(
            "inception_examples_28x28x192/a_conv3x3_128_same",
            inception::InceptionDirect3x3
        ),
        net!(
            "inception_examples_28x28x192/b_1x1_96_then_3x3_128",
            inception::InceptionReduced
        ),
        net!(
            "inception_examples_28x28x192/c1_1x3_192to128_3x1_128to128_same",
            inception::InceptionFactorized
        ),
        net!(
            "inception_examples_28x28x192/c2_1x3_192to128_3x1_128to128_valid",
            inception::InceptionFactorizedValid
        ),
        net!(
            "inception_examples_28x28x192/c3_1x3_192to96_3x1_96to128_same",
            inception::InceptionFactorized96
        ),
        net!(
            "inception_examples_28x28x192/c4_1x1_96_1x3_96to128_3x1_128to128_same",
            inception::InceptionReducedFactorized
        ),
        net!(
            "inception_examples_28x28x192/c5_1x3_192to48_3x1_48to128_same (gives exactly 36.1M)",
            inception::InceptionFactorized48
        ),
        net!(
            "inception_examples_28x28x192/d_naive_inception",
            inception::InceptionNaive
        ),
        net!(
            "inception_examples_28x28x192/e_googlenet_3a",
            inception::Inception3a
        ),
        net!("resnet18", resnet::ResNet18),
        net!("resnet34", resnet::ResNet34),
        net!("resnet50", resnet::ResNet50),
        net!("resnet152", resnet::ResNet152),
        net!("mobilenet_v1_1.0", mobilenet_v1::MobileNetV1),
        net!("mobilenet_v1_0.75", mobilenet_v1::MobileNetV1_075),
        net!("mobilenet_v1_0.5", mobilenet_v1::MobileNetV1_050),
        net!("mobilenet_v1_0.25", mobilenet_v1::MobileNetV1_025),
        net!("mobilenet_v2", mobilenet_v2::MobileNetV2),
        net!("efficientnet_b0", efficientnet::EfficientNetB0),
    ]
}

#[test]
fn params_macs_and_flops_equal_pytorch() {
    let truth = truth();
    for net in all_nets() {
        let t = entry(&truth, net.truth_key);
        assert_eq!(
            net.params,
            number(t, "params_total"),
            "{}: params",
            net.truth_key
        );
        assert_eq!(
            net.macs,
            number(t, "macs_conv_fc"),
            "{}: MACs",
            net.truth_key
        );
        // torchvision's MobileNetV2 applies its final 7x7x1280 global average pool as a
        // function, which PyTorch's hooks do not see (the note in ground_truth.json):
        // 7 * 7 * 1280 = 62,720 pool ops that our global_avgpool counts.
        let functional_pool = if net.truth_key == "mobilenet_v2" {
            7 * 7 * 1280
        } else {
            0
        };
        assert_eq!(
            net.flops,
            number(t, "macs_lecture") + functional_pool,
            "{}: FLOPs",
            net.truth_key
        );
        if let Some(out) = t.get("output_shape") {
            assert_eq!(net.output, shape_of(out), "{}: output shape", net.truth_key);
        }
    }
}

/// U-Net and FPN against tests/data/dense_prediction.json: PyTorch's
/// parameters and hook-counted MACs of the same nets built from torch.nn
/// modules (scripts/dense_prediction_truth.py), by ground_truth.json's
/// conventions, a transposed conv counting `Hin Win Cin Cout Fh Fw`.
#[test]
fn unet_and_fpn_equal_pytorchs_counts() {
    let truth: Value = serde_json::from_str(include_str!("../data/dense_prediction.json"))
        .expect("dense_prediction.json parses");
    for net in [net!("unet", unet::UNet), net!("fpn", fpn::FPN)] {
        let t = &truth["networks"][net.truth_key];
        assert_eq!(net.params, number(t, "params_total"), "{}", net.truth_key);
        assert_eq!(net.macs, number(t, "macs_conv_fc"), "{}", net.truth_key);
        assert_eq!(net.flops, number(t, "macs_lecture"), "{}", net.truth_key);
        assert_eq!(
            net.output,
            shape_of(&t["output_shape"]),
            "{}",
            net.truth_key
        );
    }
}

/// The layers that carry params, MACs or pool windows, as (params, macs + pool ops, output).
fn weighted_rows(layers: &[LayerInfo]) -> Vec<(u64, u64, Shape)> {
    layers
        .iter()
        .filter(|l| {
            matches!(
                l.kind.as_ref(),
                "conv"
                    | "dwconv"
                    | "dense"
                    | "maxpool"
                    | "avgpool"
                    | "global_avgpool"
                    | "global_maxpool"
            )
        })
        .map(|l| (l.params, l.flops, l.output))
        .collect()
}

#[test]
fn per_layer_rows_of_the_lecture_tables() {
    let truth = truth();
    for net in all_nets().into_iter().filter(|n| {
        [
            "lenet5_lecture",
            "alexnet_lecture",
            "vgg16",
            "zfnet_lecture",
        ]
        .contains(&n.truth_key)
    }) {
        let expected: Vec<(u64, u64, Shape)> = entry(&truth, net.truth_key)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| {
                matches!(
                    l["type"].as_str(),
                    Some("Conv2d" | "Linear" | "MaxPool2d" | "AvgPool2d" | "AdaptiveAvgPool2d")
                )
            })
            .map(|l| {
                (
                    number(l, "params"),
                    number(l, "macs") + number(l, "pool_ops"),
                    shape_of(&l["out_shape"]),
                )
            })
            .collect();
        assert_eq!(
            weighted_rows(net.layers),
            expected,
            "{}: per-layer rows",
            net.truth_key
        );
    }
}

fn layer(layers: &'static [LayerInfo], name: &str) -> &'static LayerInfo {
    layers
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name}"))
}

/// Where the lecture prints a wrong figure, the correct one (README's errata table).
#[test]
fn errata_pin_the_correct_values() {
    use nets::*;
    // AlexNet conv1: 96 * (11*11*3 + 1) = 34,944; the lecture prints 34,857.
    assert_eq!(
        layer(alexnet::AlexNet::LAYERS, "conv1").params,
        96 * (11 * 11 * 3 + 1)
    );
    // ZFNet conv2 must be 5x5 stride 2 pad 0 to give 26x26 from 55x55 ((55 - 5)/2 + 1).
    assert_eq!(
        layer(zfnet::ZFNet::LAYERS, "conv2").output,
        Shape::Volume {
            h: 26,
            w: 26,
            c: 256
        }
    );
    // ZFNet pool2: 13*13*256*9 = 389,376 ops; the lecture prints 0.09M.
    assert_eq!(
        layer(zfnet::ZFNet::LAYERS, "pool2").flops,
        13 * 13 * 256 * 9
    );
    // ZFNet conv5 (1024 -> 512, 3x3): 512 * (9*1024 + 1) = 4,719,104; the lecture repeats conv4's 4,719,616.
    assert_eq!(
        layer(zfnet::ZFNet::LAYERS, "conv5").params,
        512 * (9 * 1024 + 1)
    );
    // ZFNet fc6: 18432*4096 + 4096 = 75,501,568; the lecture's 75,515,904 = 18432*4097.
    assert_eq!(
        layer(zfnet::ZFNet::LAYERS, "fc6").params,
        18_432 * 4_096 + 4_096
    );
    // GoogLeNet conv1 (7x7/2, 3 -> 64): 9,408 weights and 112*112*64*147 = 118,013,952 MACs;
    // the paper's table prints 2.7K and 34M.
    let conv1 = layer(googlenet::GoogLeNet::LAYERS, "conv1.conv");
    assert_eq!(conv1.params - 64, 7 * 7 * 3 * 64);
    assert_eq!(conv1.macs, 112 * 112 * 64 * 7 * 7 * 3);
    // Inception (c): 36.1M MACs needs ~46k parameters (1x3 192->48 then 3x1 48->128):
    // 784 * 46,080 = 36,126,720 MACs with 46,256 parameters; "~100k and 36.1M" cannot both hold.
    assert_eq!(inception::InceptionFactorized48::MACS, 784 * 46_080);
    assert_eq!(inception::InceptionFactorized48::PARAMS, 46_256);
}
