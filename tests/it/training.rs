//! The lecture's training questions: memory to train and MACs of a training
//! step, pinned for LeNet-5, AlexNet and VGG16 against figures derived by hand;
//! a small net with prelu, its figures and its slopes' initial value and order.

mod nets {
    pub mod lenet5 {
        cnnjit::cnn!(file = "examples/nets/lenet5.cnn");
    }
    pub mod alexnet {
        cnnjit::cnn!(file = "examples/nets/alexnet.cnn");
    }
    pub mod vgg16 {
        cnnjit::cnn!(file = "examples/nets/vgg16.cnn");
    }
}
use nets::{alexnet::AlexNet, lenet5::LeNet5, vgg16::VGG16};

/// 4 (2 params + batch (input + 2 stored)), written out independently of the crate.
fn by_hand(params: u64, input: u64, stored: u64, batch: u64) -> u64 {
    4 * (2 * params + batch * (input + 2 * stored))
}

#[test]
fn lenet5() {
    // Stored outputs (tanh, flatten and softmax run in place or as views):
    // conv1 28*28*6 = 4704, pool1 14*14*6 = 1176, conv2 10*10*16 = 1600,
    // pool2 5*5*16 = 400, dense 120 + 84 + 10 = 214: 8,094.
    assert_eq!(LeNet5::STORED_ELEMENTS, 8_094);
    // 4 (2 * 61,706 + 1 (1024 + 2 * 8,094)) = 562,496 bytes.
    assert_eq!(LeNet5::training_bytes(1), 562_496);
    assert_eq!(LeNet5::training_bytes(32), by_hand(61_706, 1024, 8_094, 32));
    // Forward 416,520 MACs, weight gradients as many again, input gradients as
    // many but for conv1 (28*28*6*25 = 117,600): 3 * 416,520 - 117,600.
    assert_eq!(LeNet5::TRAIN_MACS, 1_131_960);
    const _: () = assert!(LeNet5::training_bytes(1) < LeNet5::training_bytes(2));
}

#[test]
fn alexnet() {
    // conv1 55*55*96 = 290,400; pool1 27*27*96 = 69,984; conv2 27*27*256 = 186,624;
    // pool2 13*13*256 = 43,264; conv3, conv4 13*13*384 = 64,896 each; conv5 43,264;
    // pool3 6*6*256 = 9,216; fc 4096 + 4096 + 1000: 781,736 in all.
    assert_eq!(AlexNet::STORED_ELEMENTS, 781_736);
    // 4 (2 * 62,378,344 + 227*227*3 + 2 * 781,736) = 4 * 126,474,747.
    assert_eq!(AlexNet::training_bytes(1), 505_898_988);
    // 4 (124,756,688 + 32 * (154,587 + 1,563,472)) = 4 * 179,734,576.
    assert_eq!(AlexNet::training_bytes(32), 718_938_304);
    // 3 * 1,135,256,096 - conv1's 55*55*96*363 = 105,415,200.
    assert_eq!(AlexNet::TRAIN_MACS, 3_300_353_088);
}

#[test]
fn vgg16() {
    // convs: 2 * 224*224*64 + 2 * 112*112*128 + 3 * 56*56*256 + 3 * 28*28*512 + 3 * 14*14*512
    //      = 6,422,528 + 3,211,264 + 2,408,448 + 1,204,224 + 301,056;
    // pools: 802,816 + 401,408 + 200,704 + 100,352 + 25,088, and the 1x1 avgpool 25,088;
    // dense 4096 + 4096 + 1000 (relu, dropout, flatten are not stored): 15,112,168.
    assert_eq!(VGG16::STORED_ELEMENTS, 15_112_168);
    assert_eq!(
        VGG16::training_bytes(32),
        by_hand(138_357_544, 224 * 224 * 3, 15_112_168, 32)
    );
    // 3 * 15,470,264,320 - conv1's 224*224*64*27 = 86,704,128.
    assert_eq!(VGG16::TRAIN_MACS, 46_324_088_832);
}

mod prelu_nets {
    cnnjit::cnn! {
        pub PreluNet(6x6x3) { conv(4, 3x3), prelu, flatten, dense(2), prelu }
        pub PreluAlone(1x1x2) { prelu }
        pub PreluFlat(1x2x2) { flatten, prelu }
    }
}

#[test]
fn prelu_figures() {
    use prelu_nets::PreluNet;
    // conv 3x3x3 -> 4 on 6x6: 4 (27 + 1) = 112 params, 4x4x4 outputs of 27
    // MACs = 1,728; prelu one slope per channel: 4; flatten: 64 features;
    // dense(2): 2 (64 + 1) = 130 params, 128 MACs; prelu: 2 slopes.
    // Params 112 + 4 + 130 + 2 = 248; FLOPs = MACs = 1,856 (no FLOP for a
    // prelu, as for any activation).
    assert_eq!(PreluNet::PARAMS, 248);
    assert_eq!(PreluNet::MACS, 1_856);
    assert_eq!(PreluNet::FLOPS, 1_856);
    let params: Vec<u64> = PreluNet::LAYERS.iter().map(|l| l.params).collect();
    assert_eq!(params, [112, 4, 0, 130, 2]);
    // Stored: the conv's 64 and the dense's 2 (prelu, like every activation,
    // and flatten are not).
    assert_eq!(PreluNet::STORED_ELEMENTS, 66);
    // conv: forward and weight gradient (nothing learnable upstream) 2 * 1,728;
    // dense: three times 128.
    assert_eq!(PreluNet::TRAIN_MACS, 3_456 + 384);
}

#[test]
fn prelu_starts_at_a_quarter_and_reads_flat_slopes_in_pytorchs_order() {
    use prelu_nets::{PreluAlone, PreluFlat};
    // PyTorch's nn.PReLU initialises its slopes to 0.25: [-4, 2] -> [-1, 2].
    assert_eq!(PreluAlone::random(1).forward(&[-4.0, 2.0]), [-1.0, 2.0]);
    // After a flatten of a 1x2x2 volume, PyTorch's features are (c, w):
    // slopes [s(c0 w0), s(c0 w1), s(c1 w0), s(c1 w1)] = [1, 2, 3, 4]. Ours
    // are HWC, (w0 c0, w0 c1, w1 c0, w1 c1): an input of -1 everywhere
    // gives -[1, 3, 2, 4].
    let mut weights = cnnjit::Weights::new();
    weights
        .insert("prelu1.weight", vec![4], vec![1.0, 2.0, 3.0, 4.0])
        .unwrap();
    let mut net = PreluFlat::new(&weights).unwrap();
    assert_eq!(net.forward(&[-1.0; 4]), [-1.0, -3.0, -2.0, -4.0]);
}
