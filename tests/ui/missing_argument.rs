cnnjit::cnn! {
    Net(32x32x3) {
        conv(64), relu,
    }
}

fn main() {}
