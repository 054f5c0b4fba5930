cnnjit::cnn! {
    Net(28x28x16) {
        concat {
            [conv(8, 1x1)],
            [conv(8, 3x3)],
        },
    }
}

fn main() {}
