cnnjit::cnn! {
    Net(128) {
        residual(shortcut = auto) { dense(64), relu },
    }
}

fn main() {}
