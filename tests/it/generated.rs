//! What `cnn!` generates: const figures, LAYERS, summary(), graph(), nets
//! read from files. Expected figures are derived by hand in comments (the
//! lecture's LeNet-5 analysis, slide 43) or taken from the ground truth.

use cnnjit::{cnn, Shape};

cnn! {
    /// LeNet-5 as the lecture analyses it.
    pub LeNet5(32x32x1) {
        conv(6, 5x5), tanh,
        avgpool(2x2, stride = 2),
        conv(16, 5x5), tanh,
        avgpool(2x2, stride = 2),
        flatten,
        dense(120), tanh,
        dense(84), tanh,
        dense(10), softmax,
    }

    block basic(c, s) {
        residual(shortcut = auto) {
            conv(c, 3x3, stride = s, pad = 1, bias = false), bn, relu,
            conv(c, 3x3, pad = 1, bias = false), bn,
        },
        relu,
    }

    Tiny(8x8x4) {
        stem: conv(8, 3x3, pad = same), bn, relu,
        layer1: repeat(2) { basic(8, 1) },
        layer2: basic(16, 2),
        global_avgpool, flatten, fc(3),
    }
}

// The constants are usable in const context.
// conv1 6(25+1) + conv2 16(150+1) + fc 120*401 + 84*121 + 10*85 = 156 + 2416 + 48120 + 10164 + 850.
const _: () = assert!(LeNet5::PARAMS == 61_706);
const _: () = assert!(LeNet5::FLOPS < 1_000_000);
const _: () = assert!(LeNet5::INPUT_LEN == 32 * 32);

#[test]
fn lenet_figures_match_the_lecture() {
    assert_eq!(LeNet5::INPUT_SHAPE, Shape::Volume { h: 32, w: 32, c: 1 });
    assert_eq!(LeNet5::OUTPUT_SHAPE, Shape::Flat(10));
    assert_eq!(LeNet5::OUTPUT_LEN, 10);
    // MACs: 28*28*6*25 + 10*10*16*150 + 400*120 + 120*84 + 84*10
    //     = 117,600 + 240,000 + 48,000 + 10,080 + 840 = 416,520.
    assert_eq!(LeNet5::MACS, 416_520);
    // FLOPs add the pools' windows: 14*14*6*4 + 5*5*16*4 = 4,704 + 1,600.
    assert_eq!(LeNet5::FLOPS, 416_520 + 4_704 + 1_600);
    assert_eq!(LeNet5::PARAM_BYTES, 4 * 61_706);
    // Every layer's output: 4704 (conv1) + 4704 (tanh) + 1176 + 1600 + 1600 + 400 + 400
    // (flatten) + 120 + 120 + 84 + 84 + 10 + 10 = 15,012 floats.
    assert_eq!(LeNet5::ACTIVATION_BYTES, 4 * 15_012);
    assert_eq!(LeNet5::BUFFERS, 0);
}

#[test]
fn lenet_layers_are_the_lecture_rows() {
    let rows: Vec<(&str, u64, u64)> = LeNet5::LAYERS
        .iter()
        .filter(|l| l.params > 0 || l.flops > 0)
        .map(|l| (l.name.as_ref(), l.params, l.flops))
        .collect();
    // Slide 43: params 156, 2416, 48120, 10164, 850; flops 117.6k, 4.7k, 240k, 1.6k, 48k, 10k, 840.
    assert_eq!(
        rows,
        [
            ("conv1", 156, 117_600),
            ("avgpool1", 0, 4_704),
            ("conv2", 2_416, 240_000),
            ("avgpool2", 0, 1_600),
            ("dense1", 48_120, 48_000),
            ("dense2", 10_164, 10_080),
            ("dense3", 850, 840),
        ]
    );
    assert_eq!(LeNet5::LAYERS[0].hyper, "K=6, f=(5,5), s=(1,1)");
    assert_eq!(
        LeNet5::LAYERS[0].output,
        Shape::Volume { h: 28, w: 28, c: 6 }
    );
}

#[test]
fn peak_memory_is_the_largest_live_pair() {
    // conv1 (+ tanh in place) reads the input (1024 floats) and writes 4704: 5728 live.
    // avgpool1 reads those 4704 and writes 1176, rounded up to 64 bytes (16 floats)
    // = 1184: 5888 live, the most at any step; every later pair is smaller.
    assert_eq!(LeNet5::PEAK_INFERENCE_BYTES, 4 * (4704 + 1184));
    const { assert!(LeNet5::PEAK_INFERENCE_BYTES < LeNet5::ACTIVATION_BYTES) };
}

#[test]
fn summary_prints_the_table_and_footer() {
    let text = LeNet5::summary().to_string();
    for expected in [
        "conv1",
        "K=6, f=(5,5), s=(1,1)",
        "(28,28,6)",
        "48,120",
        "Total params: 61,706",
        "MACs (conv, dense): 416,520",
    ] {
        assert!(
            text.contains(expected),
            "summary lacks {expected:?}:\n{text}"
        );
    }
}

#[test]
fn names_follow_scopes_and_auto_shortcuts() {
    let names: Vec<&str> = Tiny::LAYERS.iter().map(|l| l.name.as_ref()).collect();
    // stem is labelled; bn and relu count from 1 in the net's scope.
    assert_eq!(&names[..3], ["stem", "bn1", "relu1"]);
    // A labelled repeat names its iterations label.0, label.1, each its own scope.
    assert!(names.contains(&"layer1.0.conv1") && names.contains(&"layer1.1.bn2"));
    // The auto shortcut of the stride-2 block comes after the body: conv3, bn3.
    assert!(names.contains(&"layer2.conv3") && names.contains(&"layer2.bn3"));
    assert!(
        !names.contains(&"layer1.0.conv3"),
        "identity shortcuts add no projection"
    );
    // stem 8*(9*4+1)... the projection: 16 * 8 * 1 * 1 weights, no bias.
    let proj = Tiny::LAYERS
        .iter()
        .find(|l| l.name == "layer2.conv3")
        .unwrap();
    assert_eq!(proj.params, 16 * 8);
    assert_eq!(proj.output, Shape::Volume { h: 4, w: 4, c: 16 });
    assert_eq!(Tiny::OUTPUT_SHAPE, Shape::Flat(3));
}

#[test]
fn graph_is_embedded_and_valid() {
    let graph = Tiny::graph();
    graph
        .verify()
        .expect("the embedded graph satisfies the IR invariants");
    assert_eq!(graph.nodes.len(), Tiny::LAYERS.len() + 1);
    assert_eq!(graph.output_shape(), Tiny::OUTPUT_SHAPE);
    let adds = graph
        .nodes
        .iter()
        .filter(|n| n.op == cnnjit::ir::Op::Add)
        .count();
    assert_eq!(adds, 3);
}

#[test]
fn file_nets_equal_inline_ones() {
    // examples/nets/lenet5.cnn defines the same LeNet5 in module scope via `file =`;
    // its type is named LeNet5 too, so compare through the module below.
    assert_eq!(from_file::LeNet5::PARAMS, LeNet5::PARAMS);
    assert_eq!(from_file::LeNet5::FLOPS, LeNet5::FLOPS);
    assert_eq!(from_file::LeNet5::graph(), LeNet5::graph());
}

mod from_file {
    cnnjit::cnn!(file = "examples/nets/lenet5.cnn");
}
