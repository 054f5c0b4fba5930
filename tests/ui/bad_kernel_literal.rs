cnnjit::cnn! {
    Net(32x32x3) {
        conv(8, 3x3x3),
    }
}

fn main() {}
