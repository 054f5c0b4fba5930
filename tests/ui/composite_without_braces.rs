cnnjit::cnn! {
    Net(32x32x3) {
        conv(8, 1x1),
        concat,
        relu,
    }
}

fn main() {}
