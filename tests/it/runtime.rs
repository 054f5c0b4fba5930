//! Running networks: generated types and `Model`, batch handling, the arena
//! the compiler promised, and every weights mistake as an error.

use cnnjit::{cnn, Error, Model, Options, Weights};

cnn! {
    LeNet5(32x32x1) {
        conv(6, 5x5), tanh, avgpool(2x2, stride = 2),
        conv(16, 5x5), tanh, avgpool(2x2, stride = 2),
        flatten, dense(120), tanh, dense(84), tanh, dense(10), softmax,
    }

    Affine(2x2x1) { conv(1, 1x1), relu }
}

fn affine_weights(w: f32, b: f32) -> Weights {
    let mut weights = Weights::new();
    weights
        .insert("conv1.weight", vec![1, 1, 1, 1], vec![w])
        .unwrap();
    weights.insert("conv1.bias", vec![1], vec![b]).unwrap();
    weights
}

#[test]
fn a_hand_computed_net() {
    // relu(2x - 1) on 0, 1, 2, 3 is 0, 1, 3, 5.
    let mut net = Affine::new(&affine_weights(2.0, -1.0)).unwrap();
    assert_eq!(net.forward(&[0.0, 1.0, 2.0, 3.0]), [0.0, 1.0, 3.0, 5.0]);
}

#[test]
fn random_lenet_gives_probabilities_deterministically() {
    let input: Vec<f32> = (0..1024).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
    let input: &[f32; 1024] = input.as_slice().try_into().unwrap();
    let out = LeNet5::random(7).forward(input);
    assert!(
        (out.iter().sum::<f32>() - 1.0).abs() < 1e-5,
        "softmax sums to 1: {out:?}"
    );
    assert!(out.iter().all(|p| *p > 0.0));
    assert_eq!(
        LeNet5::random(7).forward(input),
        out,
        "same seed, same network"
    );
    assert_ne!(
        LeNet5::random(8).forward(input),
        out,
        "another seed, another network"
    );
}

#[test]
fn batches_equal_single_images_and_lengths_are_checked() {
    let mut net = LeNet5::random(1);
    let inputs: Vec<f32> = (0..3 * 1024).map(|i| (i % 13) as f32 / 13.0).collect();
    let mut outputs = vec![0.0; 3 * 10];
    net.forward_batch(&inputs, &mut outputs).unwrap();
    for i in 0..3 {
        let one: &[f32; 1024] = inputs[i * 1024..(i + 1) * 1024].try_into().unwrap();
        assert_eq!(net.forward(one).as_slice(), &outputs[i * 10..(i + 1) * 10]);
    }
    let err = net
        .forward_batch(&inputs[..1000], &mut outputs)
        .unwrap_err();
    assert!(
        matches!(err, Error::BufferLength { found: 1000, .. }),
        "{err}"
    );
    let err = net.forward_batch(&inputs, &mut outputs[..20]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BufferLength {
                expected: 30,
                found: 20,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_arena_is_what_the_compiler_reported() {
    let model = Model::random(LeNet5::graph(), 0).unwrap();
    assert_eq!(model.arena_bytes(), LeNet5::PEAK_INFERENCE_BYTES);
    for file in [
        "resnet.cnn",
        "mobilenet_v2.cnn",
        "googlenet.cnn",
        "efficientnet_b0.cnn",
    ] {
        let text = std::fs::read_to_string(format!(
            "{}/examples/nets/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        for net in cnnjit::lang::compile_source(&text)
            .unwrap()
            .into_iter()
            .take(1)
        {
            let model = Model::new(
                net.graph.clone(),
                &cnnjit::runtime::params::random_weights(&net.graph, 0),
            )
            .unwrap();
            assert_eq!(
                model.arena_bytes(),
                net.plan.arena_bytes,
                "{}",
                net.graph.name
            );
        }
    }
}

#[test]
fn weights_mistakes_are_errors_naming_the_tensor() {
    let mut missing = Weights::new();
    missing
        .insert("conv1.weight", vec![1, 1, 1, 1], vec![1.0])
        .unwrap();
    let err = Affine::new(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "conv1.bias"),
        "{err}"
    );
    assert!(err.to_string().contains("conv1.bias"));

    let mut wrong = Weights::new();
    wrong
        .insert("conv1.weight", vec![1, 1, 2, 1], vec![1.0, 2.0])
        .unwrap();
    wrong.insert("conv1.bias", vec![1], vec![0.0]).unwrap();
    let err = Affine::new(&wrong).unwrap_err();
    assert!(
        matches!(&err, Error::WrongShape { expected, found, .. } if expected == &[1, 1, 1, 1] && found == &[1, 1, 2, 1]),
        "{err}"
    );

    let mut extra = affine_weights(1.0, 0.0);
    extra.insert("conv2.weight", vec![1], vec![0.0]).unwrap();
    let err = Affine::new(&extra).unwrap_err();
    assert!(
        matches!(&err, Error::UnusedTensors { names, .. } if names == &["conv2.weight"]),
        "{err}"
    );
    let allowed = Options {
        allow_unused_tensors: true,
        ..Options::default()
    };
    assert!(Affine::with_options(&extra, allowed).is_ok());

    let err = Affine::new(&affine_weights(f32::NAN, 0.0)).unwrap_err();
    assert!(
        matches!(&err, Error::BadValue { tensor, .. } if tensor == "conv1.weight"),
        "{err}"
    );
}

#[test]
fn models_from_source_pick_their_net() {
    let source = "A(2x2x1) { conv(1, 1x1), relu } B(4) { dense(2) }";
    let err = Model::from_source(source, None, &affine_weights(1.0, 0.0)).unwrap_err();
    assert!(err.to_string().contains("defines 2 nets (A, B)"), "{err}");
    let mut a = Model::from_source(source, Some("A"), &affine_weights(-1.0, 0.0)).unwrap();
    assert_eq!(
        a.forward(&[1.0, -2.0, 3.0, -4.0]).unwrap(),
        [0.0, 2.0, 0.0, 4.0]
    );
    let err = Model::from_source(source, Some("C"), &affine_weights(1.0, 0.0)).unwrap_err();
    assert!(err.to_string().contains("no net `C`"), "{err}");
    let err = Model::from_source("A(2x2x1) { conv(1, 3x3) }", None, &Weights::new()).unwrap_err();
    assert!(
        err.to_string().contains("larger than its padded input"),
        "{err}"
    );
}

/// One budget through a command: the weights read and the model built from
/// them count against one limit. `Wide`'s 1x1 conv has 1024 x 1024 weights
/// and 1024 biases, W = 4 MiB + 4 KiB (its safetensors file a few hundred
/// bytes more); its arena holds its input and its output, 32 x 32 x 1024
/// floats each, A = 8 MiB. Reading the file takes 2 W at most (the bytes
/// and the tensors), the reference model A + W (the arena and its copy of
/// the weights): a limit of 14 MiB fits each alone but not both, W + A + W
/// = 16 MiB and some.
#[test]
fn weights_and_model_share_one_budget() {
    use cnnjit::runtime::memory::Budget;
    let graph = cnnjit::lang::compile_source("Wide(32x32x1024) { conv(1024, 1x1) }")
        .unwrap()
        .remove(0)
        .graph;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("one_budget.safetensors");
    cnnjit::runtime::params::random_weights(&graph, 1)
        .save(&path)
        .unwrap();
    let limit = Some(14 << 20);
    let reference = Options {
        reference: true,
        ..Options::default()
    };
    let weights =
        Weights::from_file_in(&path, &mut Budget::new(limit)).expect("the weights alone fit");
    Model::with_budget(graph.clone(), &weights, reference, &mut Budget::new(limit))
        .expect("the model alone fits");
    let mut budget = Budget::new(limit);
    let weights = Weights::from_file_in(&path, &mut budget).unwrap();
    let err = Model::with_budget(graph, &weights, reference, &mut budget).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
    std::fs::remove_file(&path).unwrap();
}

/// A compiled dense layer reading a flattened volume keeps a copy of its
/// weights reordered to H,W,C beside the packed ones; the budget counts both.
#[test]
fn a_compiled_models_weight_copies_count_against_its_budget() {
    use cnnjit::runtime::memory::Budget;
    use cnnjit::runtime::model::Backend;
    // By hand: 32*32*64 = 65,536 inputs x 64 outputs = 4 Mi floats = 16 MiB,
    // packed once (16 MiB) and copied once (16 MiB), beside an arena of
    // 65,536 + 64 floats (about 256 KiB): 32.3 MiB in all, 16.3 without
    // the copy.
    let graph = cnnjit::lang::compile_source("Head(32x32x64) { flatten, dense(64) }")
        .unwrap()
        .remove(0)
        .graph;
    let weights = cnnjit::runtime::params::random_weights(&graph, 1);
    let model = Model::with_budget(
        graph.clone(),
        &weights,
        Options::default(),
        &mut Budget::new(Some(40 << 20)),
    )
    .expect("the packed weights, their copy and the arena fit in 40 MiB");
    assert!(
        matches!(model.backend(), Backend::Jit { .. }),
        "{:?}",
        model.backend()
    );
    let err = Model::with_budget(
        graph,
        &weights,
        Options::default(),
        &mut Budget::new(Some(24 << 20)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
}
