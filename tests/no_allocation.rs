//! `forward_into` allocates nothing: the arena, packed weights and compiled
//! kernels are all made when the model is built. Counted with a global
//! allocator that tallies every allocation on this test's thread.
//! A binary of its own (not a module of `tests/it`), so that its allocator
//! replaces no other test's.

use cnnjit::{Model, Options};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const NET: &str = "Net(9x9x3) {
    conv(8, 3x3, pad = 1), bn, relu,
    concat { [conv(4, 1x1)], [maxpool(3x3, stride = 1, pad = 1)], [dwconv(3x3, pad = 1), relu6] },
    affine, bn,
    residual { conv(20, 3x3, pad = 1), bn }, relu,
    scale { global_avgpool, conv(4, 1x1), relu, conv(20, 1x1), sigmoid },
    lrn(size = 3), avgpool(2x2), flatten, dense(10), softmax,
}";

/// Convolutions large enough to be split across threads (47.8M MACs each,
/// over `jit::PARALLEL_WORK`).
const SPLIT: &str = "Net(9x9x256) { conv(256, 3x3, pad = 1), relu, conv(256, 3x3, pad = 1) }";

fn allocations_of_forward(source: &str, reference: bool, threads: usize) -> usize {
    let graph = cnnjit::lang::compile_source(source)
        .unwrap()
        .remove(0)
        .graph;
    let weights = cnnjit::runtime::params::random_weights(&graph, 1);
    let options = Options {
        reference,
        threads,
        ..Options::default()
    };
    let mut model = Model::with_options(graph, &weights, options).unwrap();
    let input = cnnjit::check::random_input(model.input_len(), 2);
    let mut output = vec![0.0; model.output_len()];
    model.forward_into(&input, &mut output).unwrap();
    let before = ALLOCATIONS.with(Cell::get);
    model.forward_into(&input, &mut output).unwrap();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_reference_path_allocates_nothing_per_image() {
    assert_eq!(allocations_of_forward(NET, true, 1), 0);
}

#[test]
fn the_jit_path_allocates_nothing_per_image() {
    assert_eq!(allocations_of_forward(NET, false, 1), 0);
}

/// Splitting a kernel across the model's thread team allocates nothing on
/// the calling thread either (the team's job lives on its stack).
#[test]
fn the_jit_path_on_two_threads_allocates_nothing_per_image() {
    assert_eq!(allocations_of_forward(SPLIT, false, 2), 0);
}

/// A batch allocates nothing on the calling thread once the first batch
/// has allocated the dense layers' buffers and the threads' arenas
/// (`runtime::batch`): on one thread, and with two threads sharing out
/// the images.
#[test]
fn a_batch_allocates_nothing_after_the_first() {
    for threads in [1, 2] {
        let graph = cnnjit::lang::compile_source(NET).unwrap().remove(0).graph;
        let weights = cnnjit::runtime::params::random_weights(&graph, 1);
        let options = Options {
            threads,
            ..Options::default()
        };
        let mut model = Model::with_options(graph, &weights, options).unwrap();
        let batch = 5;
        let inputs = cnnjit::check::random_input(batch * model.input_len(), 2);
        let mut outputs = vec![0.0; batch * model.output_len()];
        model.forward_batch(&inputs, &mut outputs).unwrap();
        let before = ALLOCATIONS.with(Cell::get);
        model.forward_batch(&inputs, &mut outputs).unwrap();
        assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0, "{threads} threads");
    }
}
