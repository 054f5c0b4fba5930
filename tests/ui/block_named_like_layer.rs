cnnjit::cnn! {
    block relu() {
        sigmoid,
    }

    Net(32x32x3) {
        relu,
    }
}

fn main() {}
