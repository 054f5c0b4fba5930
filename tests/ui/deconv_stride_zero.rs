cnnjit::cnn! {
    Net(8x8x16) {
        deconv(8, 2x2, stride = 0),
    }
}

fn main() {}
