cnnjit::cnn! {
    Net(224x224) {
        relu,
    }
}

fn main() {}
