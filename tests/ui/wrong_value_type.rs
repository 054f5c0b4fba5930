cnnjit::cnn! {
    Net(32x32x3) {
        conv(8, 3x3, stride = same),
    }
}

fn main() {}
