cnnjit::cnn! {
    Net(32x32x3) {
        conv(8, 3x3, strde = 2),
    }
}

fn main() {}
