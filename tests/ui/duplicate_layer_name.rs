cnnjit::cnn! {
    Net(32x32x3) {
        stem: conv(8, 3x3), relu,
        stem: conv(8, 3x3),
    }
}

fn main() {}
