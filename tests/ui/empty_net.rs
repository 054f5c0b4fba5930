cnnjit::cnn! {
    Net(32x32x3) {}
}

fn main() {}
