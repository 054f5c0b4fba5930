cnnjit::cnn! {
    Net(8x8x3) {
        conv(4, 3x3), prelu(3),
    }
}

fn main() {}
