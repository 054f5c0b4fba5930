cnnjit::cnn! {
    Net(8x8x1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
        repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) { repeat(1) {
            relu
        }}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}
    }
}

fn main() {}
