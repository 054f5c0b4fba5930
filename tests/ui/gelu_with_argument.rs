cnnjit::cnn! {
    Net(8x8x16) {
        conv(64, 1x1), gelu(tanh),
    }
}

fn main() {}
