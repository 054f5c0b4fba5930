cnnjit::cnn! {
    Net(8x8x16) {
        conv(16, 1x1), affine(weight = false, bias = false),
    }
}

fn main() {}
