cnnjit::cnn! {
    Net(8x8x3) {
        conv(4, 3x3), upsample(1.5),
    }
}

fn main() {}
