cnnjit::cnn! {
    Net(32x32x3) {
        conv(8, 3x3), bn(eps = 1e40), relu,
    }
}

fn main() {}
