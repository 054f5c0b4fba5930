cnnjit::cnn! {
    Net(224x224x3, widht = 0.5) {
        conv(32, 3x3),
    }
}

fn main() {}
