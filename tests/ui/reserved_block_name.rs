cnnjit::cnn! {
    block concat(c) {
        conv(c, 1x1),
    }

    Net(32x32x3) {
        relu,
    }
}

fn main() {}
