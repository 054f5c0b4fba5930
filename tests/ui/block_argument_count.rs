cnnjit::cnn! {
    block basic(c, s) {
        conv(c, 3x3, stride = s, pad = 1), relu,
    }

    Net(32x32x3) {
        basic(64),
    }
}

fn main() {}
