cnnjit::cnn! {
    block wide(c) {
        conv(c * c * c, 1x1),
    }

    Net(8x8x3) {
        wide(3000000),
    }
}

fn main() {}
