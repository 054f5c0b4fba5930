cnnjit::cnn! {
    Net(32x32x3) {
        relu,
    }

    Other(32x32x3) {
        relu,
    }

    Net(16x16x3) {
        relu,
    }
}

fn main() {}
