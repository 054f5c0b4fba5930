cnnjit::cnn! {
    Net(56x56x64) {
        residual {
            conv(128, 3x3, stride = 2, pad = 1), bn, relu,
            conv(128, 3x3, pad = 1), bn,
        },
        relu,
    }
}

fn main() {}
