cnnjit::cnn! {
    Net(32x32x3) {
        conv(16, 3x3, stride = 99999999999),
    }
}

fn main() {}
