cnnjit::cnn! {
    Net(56x56x64) {
        residual(shortcut = [conv(128, 1x1)]) {
            conv(128, 3x3, stride = 2, pad = 1), bn,
        },
    }
}

fn main() {}
