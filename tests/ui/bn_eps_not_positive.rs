cnnjit::cnn! {
    Net(32x32x3) {
        conv(16, 3x3), bn(eps = -1.0),
    }
}

fn main() {}
