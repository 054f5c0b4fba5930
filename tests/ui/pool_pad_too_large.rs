cnnjit::cnn! {
    Net(32x32x3) {
        maxpool(3x3, pad = 5),
    }
}

fn main() {}
