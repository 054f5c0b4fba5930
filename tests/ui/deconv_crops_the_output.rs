cnnjit::cnn! {
    Net(1x1x16) {
        deconv(8, 2x2, stride = 2, pad = 1),
    }
}

fn main() {}
