//! `check`'s verdict (`cnnjit::check::Agreement`): a NaN or an infinity in
//! either output fails, and each output is held to its own tolerance, so one
//! large output cannot make a wrong one pass.

use cnnjit::check::{jit_against_reference_with, tolerance, Agreement};
use cnnjit::runtime::model::Backend;
use cnnjit::{Options, Weights};

fn backend() -> Backend {
    Backend::Reference {
        reason: "a test".into(),
    }
}

/// 100 outputs of order one, and one of 1e4.
fn outputs() -> Vec<f32> {
    let mut y: Vec<f32> = (0..100).map(|i| 0.5 + (i % 7) as f32 / 7.0).collect();
    y[40] = 1e4;
    y
}

#[test]
fn nan_or_infinity_in_either_output_fails() {
    let expected = outputs();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut actual = expected.clone();
        actual[3] = bad;
        let a = Agreement::between(&actual, &expected, backend());
        assert!(!a.within_tolerance, "{bad} in the JIT's output passed");
        assert_eq!(a.non_finite, 1);
        let a = Agreement::between(&expected, &actual, backend());
        assert!(
            !a.within_tolerance,
            "{bad} in the reference's output passed"
        );
        let all = vec![bad; expected.len()];
        let a = Agreement::between(&all, &all, backend());
        assert!(!a.within_tolerance, "outputs all {bad} passed");
        assert_eq!(a.non_finite, expected.len());
    }
}

#[test]
fn a_net_whose_outputs_are_nan_fails() {
    let graph = cnnjit::lang::compile_source("Net(4) { fc: dense(2) }")
        .unwrap()
        .remove(0)
        .graph;
    let mut weights = Weights::new();
    weights
        .insert("fc.weight", vec![2, 4], vec![0.5; 8])
        .unwrap();
    weights.insert("fc.bias", vec![2], vec![0.0; 2]).unwrap();
    let input = [1.0, f32::NAN, 2.0, 3.0];
    let a = jit_against_reference_with(&graph, &weights, &input, Options::default()).unwrap();
    assert!(!a.within_tolerance, "{a:?}");
    assert_eq!((a.non_finite, a.len), (2, 2), "{a:?}");
}

#[test]
fn one_outlier_cannot_make_a_wrong_output_pass() {
    let expected = outputs();
    // Output 3 (0.93) off by 0.5: 1e-4 of the largest output (1e4) would
    // allow it; its own tolerance does not.
    let mut actual = expected.clone();
    actual[3] += 0.5;
    let a = Agreement::between(&actual, &expected, backend());
    assert!(!a.within_tolerance, "{a:?}");
    assert!(a.worst > 1000.0, "{a:?}");
    // The outlier itself is held to 1e-4 of its own size.
    let mut actual = expected.clone();
    actual[40] = 1e4 + 2.0;
    assert!(!Agreement::between(&actual, &expected, backend()).within_tolerance);
}

#[test]
fn the_tolerance_is_the_documented_formula() {
    assert_eq!(tolerance(0.0, 0.0), 1e-5);
    assert_eq!(tolerance(2.0, 0.5), 1e-5 + 2e-4);
    assert_eq!(tolerance(0.5, 2.0), 1e-5 + 2e-4);
}

#[test]
fn rounding_errors_pass() {
    let expected = outputs();
    let typical = 0.5 + 3.0 / 7.0;
    // Each output off by 0.9 of its tolerance; an output that is zero in the
    // reference (left out of the median) by 0.9 of the typical output's.
    let mut expected_with_zero = expected.clone();
    expected_with_zero[7] = 0.0;
    let actual: Vec<f32> = expected_with_zero
        .iter()
        .map(|&y| y + (0.9 * (1e-5 + 1e-4 * f64::from(y.abs()).max(typical))) as f32)
        .collect();
    let a = Agreement::between(&actual, &expected_with_zero, backend());
    assert!(a.within_tolerance, "{a:?}");
    assert!((a.typical - typical).abs() < 1e-6, "{a:?}");
    assert_eq!(a.scale, 1e4);
    // A ReLU's zeros, even most of the output, leave the typical scale to
    // the outputs that are not zero.
    let relu: Vec<f32> = (0..100).map(|i| if i < 70 { 0.0 } else { 2.0 }).collect();
    assert_eq!(Agreement::between(&relu, &relu, backend()).typical, 2.0);
}

/// One memory budget for the whole comparison: the weights and both models
/// count against `Options::memory_limit` together. `Wide`'s arena holds its
/// input and its output, 512 x 512 x 4 floats each, 2 x 4 MiB = 8 MiB; its
/// weights are 20 floats. A limit of 12 MiB fits either model alone, not
/// both (16 MiB). Each model used to get a budget of its own, and this
/// comparison passed.
#[test]
fn the_weights_and_both_models_share_the_memory_limit() {
    let graph = cnnjit::lang::compile_source("Wide(512x512x4) { conv(4, 1x1) }")
        .unwrap()
        .remove(0)
        .graph;
    let limit = Some(12 << 20);
    let weights = cnnjit::check::lively_weights(&graph, 1);
    for reference in [true, false] {
        let alone = Options {
            reference,
            memory_limit: limit,
            ..Options::default()
        };
        let model = cnnjit::Model::with_options(graph.clone(), &weights, alone);
        assert!(model.is_ok(), "reference {reference}: {:?}", model.err());
    }
    let options = Options {
        memory_limit: limit,
        ..Options::default()
    };
    let err = cnnjit::check::jit_against_reference(&graph, 1, options).unwrap_err();
    assert!(matches!(err, cnnjit::Error::OutOfMemory { .. }), "{err}");
    let input = vec![0.5; 512 * 512 * 4];
    let err = jit_against_reference_with(&graph, &weights, &input, options).unwrap_err();
    assert!(matches!(err, cnnjit::Error::OutOfMemory { .. }), "{err}");
}
