cnnjit::cnn! {
    block basic(c, s) {
        conv(c, 3x3, stride = s, pad = 1),
    }

    Net(32x32x3) {
        basic(16, s = 2),
    }
}

fn main() {}
