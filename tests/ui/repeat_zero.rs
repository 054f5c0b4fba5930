cnnjit::cnn! {
    Net(32x32x3) {
        repeat(0) { conv(8, 3x3, pad = 1), relu },
    }
}

fn main() {}
