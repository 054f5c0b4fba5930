cnnjit::cnn! {
    Net(8x8x16) {
        dwconv(7x7, pad = same), layernorm(eps = 0.0),
    }
}

fn main() {}
