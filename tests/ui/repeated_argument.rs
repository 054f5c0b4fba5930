cnnjit::cnn! {
    Net(32x32x3) {
        conv(8, 3x3, stride = 2, pad = 1, stride = 1),
    }
}

fn main() {}
