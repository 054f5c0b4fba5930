cnnjit::cnn! {
    Net(28x28x3) {
        conv(116, 1x1), shuffle(3),
    }
}

fn main() {}
