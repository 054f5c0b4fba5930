cnnjit::cnn! {
    Net(784) {
        dense(64), slice(0, 32),
    }
}

fn main() {}
