cnnjit::cnn! {
    Net(784) {
        conv(8, 3x3),
    }
}

fn main() {}
