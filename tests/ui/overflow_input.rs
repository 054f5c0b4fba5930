cnnjit::cnn! {
    Net(5000000000x2x3) {
        relu,
    }
}

fn main() {}
