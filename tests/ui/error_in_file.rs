cnnjit::cnn!(file = "tests/ui/nets/bad.cnn");

fn main() {}
