cnnjit::cnn! {
    block squeeze(c, r) {
        conv(c / r, 1x1),
    }

    Net(8x8x16) {
        squeeze(16, 0),
    }
}

fn main() {}
