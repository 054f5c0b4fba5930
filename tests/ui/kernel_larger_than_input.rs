// LeNet-5 on a 12x12 image: the second conv meets a 4x4x6 volume.
cnnjit::cnn! {
    pub LeNet5(12x12x1) {
        conv(6, 5x5), tanh,
        avgpool(2x2, stride = 2),
        conv(16, 5x5), tanh,
        avgpool(2x2, stride = 2),
        flatten,
        dense(120), tanh,
        dense(84), tanh,
        dense(10), softmax,
    }
}

fn main() {}
