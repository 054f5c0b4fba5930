cnnjit::cnn! {
    Net(8x8x16) {
        deconv(8, 3x3, stride = 2, pad = same),
    }
}

fn main() {}
