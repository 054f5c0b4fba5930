cnnjit::cnn! {
    Net(32x32x6) {
        conv(12, 3x3, groups = 4),
    }
}

fn main() {}
