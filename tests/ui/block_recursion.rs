cnnjit::cnn! {
    block a(c) {
        conv(c, 1x1), b(c),
    }

    block b(c) {
        relu, a(c),
    }

    Net(32x32x3) {
        a(8),
    }
}

fn main() {}
