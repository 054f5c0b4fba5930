cnnjit::cnn! {
    Net(32x32x3) {
        repeat(2) conv(8, 3x3, pad = 1),
    }
}

fn main() {}
