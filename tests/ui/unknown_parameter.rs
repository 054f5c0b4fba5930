cnnjit::cnn! {
    block basic(channels, s) {
        conv(chanels, 3x3, stride = s, pad = 1),
    }

    Net(32x32x3) {
        basic(16, 1),
    }
}

fn main() {}
