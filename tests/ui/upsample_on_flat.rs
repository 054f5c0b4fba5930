cnnjit::cnn! {
    Net(8x8x3) {
        flatten, upsample(2),
    }
}

fn main() {}
