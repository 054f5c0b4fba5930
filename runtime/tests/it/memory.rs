//! Networks too large for memory, and too many threads: each an error that
//! says how much was asked and for what, before anything is allocated;
//! never an abort (`memory allocation of ... bytes failed`) or a hang.

use cnnjit_ir::summary::thousands;
use cnnjit_runtime::error::Error;
use cnnjit_runtime::model::MAX_THREADS;
use cnnjit_runtime::params::random_weights;
use cnnjit_runtime::{Graph, Model, Options};

/// 100,000 x 100,000 pixels: its input (3 channels) and its output (11)
/// live together, 560 GB of activations, with 1,188 bytes of weights.
const BIG: &str = "Big(100000x100000x3) { c: conv(11, 3x3, pad = same) }";

/// A dense layer of 100,000 outputs over a million inputs: 400 GB of weights
/// over a tiny arena.
const HEAVY: &str = "Heavy(1000x1000x1) { flatten, fc: dense(100000) }";

/// Small enough to build in a test: a 16x16x4 input, two convolutions.
const SMALL: &str = "Small(16x16x4) { a: conv(8, 3x3, pad = same), relu, b: conv(8, 3x3) }";

fn graph(source: &str) -> Graph {
    let mut nets = cnnjit_lang::compile_source(source).unwrap();
    nets.remove(0).graph
}

/// The error's message, checked to be an `OutOfMemory`.
fn out_of_memory(result: Result<Model, Error>) -> String {
    match result {
        Err(e @ Error::OutOfMemory { .. }) => e.to_string(),
        Err(e) => panic!("expected OutOfMemory, got {e:?}"),
        Ok(_) => panic!("expected OutOfMemory, got a model"),
    }
}

#[test]
fn an_arena_larger_than_memory_is_an_error_naming_its_bytes() {
    let graph = graph(BIG);
    let weights = random_weights(&graph, 0);
    // 100,000² pixels x (3 + 11) channels x 4 bytes, and 64 bytes to align it.
    let expected = "cannot allocate 560,000,000,064 bytes for the activation arena of net `Big`";
    for reference in [false, true] {
        let options = Options {
            reference,
            ..Options::default()
        };
        let message = out_of_memory(Model::with_options(graph.clone(), &weights, options));
        assert!(message.starts_with(expected), "{message}");
    }
    // Even with no limit, the allocator's refusal is an error, not an abort.
    let unlimited = Options {
        memory_limit: Some(u64::MAX),
        ..Options::default()
    };
    let message = out_of_memory(Model::with_options(graph, &weights, unlimited));
    assert!(
        message == format!("{expected}: the system refused"),
        "{message}"
    );
}

#[test]
fn random_weights_larger_than_memory_are_an_error() {
    let message = out_of_memory(Model::random(graph(HEAVY), 0));
    // 100,000 x 1,000,000 weights and 100,000 biases, 4 bytes each.
    assert!(
        message.starts_with("cannot allocate 400,000,400,000 bytes for the weights of net `Heavy`"),
        "{message}"
    );
}

#[test]
fn the_memory_limit_counts_the_arena_weights_and_working_memory() {
    let graph = graph(SMALL);
    let weights = random_weights(&graph, 0);
    let with = |limit: u64, reference: bool| {
        let options = Options {
            memory_limit: Some(limit),
            reference,
            ..Options::default()
        };
        Model::with_options(graph.clone(), &weights, options)
    };
    // The arena the compiler plans (its `PEAK_INFERENCE_BYTES`), with 64
    // bytes to align it.
    let arena = cnnjit_ir::plan::plan(&graph).unwrap().arena_bytes + 64;
    let message = out_of_memory(with(arena - 1, false));
    assert_eq!(
        message,
        format!(
            "cannot allocate {} bytes for the activation arena of net `Small`: \
             more than the {} bytes left under the memory limit",
            thousands(arena),
            thousands(arena - 1)
        )
    );
    // The reference kernels' copy of the weights: 8x4x3x3 + 8 + 8x8x3x3 + 8.
    let weight_bytes = (8 * 4 * 9 + 8 + 8 * 8 * 9 + 8) * 4;
    let message = out_of_memory(with(arena + weight_bytes - 1, true));
    assert!(
        message.starts_with(&format!(
            "cannot allocate {} bytes for the weights of net `Small`",
            thousands(weight_bytes)
        )),
        "{message}"
    );
    with(arena + weight_bytes, true).unwrap();
    // The JIT packs its weights instead (at least as many bytes as they
    // have), after the arena.
    let message = out_of_memory(with(arena + weight_bytes - 1, false));
    assert!(
        message.contains(" bytes for the packed weights of net `Small`"),
        "{message}"
    );
    // Ample room: the same model as without a limit.
    let input: Vec<f32> = (0..16 * 16 * 4).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut limited = with(1 << 30, false).unwrap();
    let mut unlimited = Model::new(graph.clone(), &weights).unwrap();
    assert_eq!(
        limited.forward(&input).unwrap(),
        unlimited.forward(&input).unwrap()
    );
}

#[test]
fn too_many_threads_are_an_error_naming_the_bound() {
    let graph = graph(SMALL);
    let weights = random_weights(&graph, 0);
    for threads in [MAX_THREADS + 1, 20_000] {
        let options = Options {
            threads,
            ..Options::default()
        };
        match Model::with_options(graph.clone(), &weights, options) {
            Err(e @ Error::TooManyThreads { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "cannot run on {threads} threads: at most 1024 are allowed (0 means one per core)"
                )
            ),
            other => panic!("expected TooManyThreads, got {other:?}"),
        }
    }
    let most = Options {
        threads: MAX_THREADS,
        ..Options::default()
    };
    assert_eq!(
        Model::with_options(graph, &weights, most)
            .unwrap()
            .input_len(),
        16 * 16 * 4
    );
}
