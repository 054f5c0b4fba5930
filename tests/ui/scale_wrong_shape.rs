cnnjit::cnn! {
    Net(14x14x32) {
        scale { global_avgpool, conv(8, 1x1), sigmoid },
    }
}

fn main() {}
