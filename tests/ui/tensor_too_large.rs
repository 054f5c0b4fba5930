cnnjit::cnn! {
    Net(4294967295x4294967295x4294967295) {
        relu,
    }
}

fn main() {}
