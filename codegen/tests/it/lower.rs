//! The lowering pass on hand-made graphs and plans: one case per fallback
//! reason, the default fusion backed by the kernel families, operands by name.

use cnnjit_codegen::lower::{lower, Capabilities, FallbackReason, LoweredStep};
use cnnjit_codegen::Kernel;
use cnnjit_ir::plan::{self, Fusion, Plan, Slice};
use cnnjit_ir::{Graph, Op, Shape};

fn net(source: &str) -> (Graph, Plan) {
    let net = cnnjit_lang::compile_source(source).unwrap().remove(0);
    (net.graph, net.plan)
}

/// cnnjit's code generator without the native tile, on a host whose L2 is
/// unknown (the same on any host).
fn caps() -> Capabilities {
    Capabilities {
        l2_bytes: None,
        ..Capabilities::host(None, 4, true)
    }
}

fn reasons(graph: &Graph, plan: &Plan, caps: &Capabilities) -> Vec<Option<FallbackReason>> {
    (lower(graph, plan, caps).into_iter())
        .map(|step| match step {
            LoweredStep::Reference(reason) => Some(reason),
            LoweredStep::Kernel(_) | LoweredStep::InNext | LoweredStep::Concat(_) => None,
        })
        .collect()
}

const FIRE: &str = "Fire(8x8x16) { conv(4, 1x1), relu, concat { [conv(8, 1x1), relu], [conv(8, 3x3, pad = 1), relu] } }";

#[test]
fn an_op_without_a_family_runs_on_the_reference() {
    let (graph, plan) = net("Net(4x4x2) { relu, conv(2, 1x1) }");
    assert_eq!(
        reasons(&graph, &plan, &caps()),
        [Some(FallbackReason::NoFamily { kind: "relu" }), None]
    );
}

#[test]
fn an_lrn_whose_base_can_vanish_runs_on_the_reference() {
    let (graph, plan) = net("Net(4x4x4) { lrn(size = 3, k = 0.0), lrn(size = 3) }");
    let reason = FallbackReason::LrnBase { why: "k <= 0" };
    assert_eq!(reasons(&graph, &plan, &caps()), [Some(reason), None]);
    assert_eq!(reason.to_string(), "no JIT kernel for lrn: k <= 0");
}

#[test]
fn shapes_a_family_has_no_kernel_for_run_on_the_reference() {
    // By hand (the language's shape rules forbid it): a pool of a flat input.
    let (mut graph, plan) = net("Net(4x4x2) { maxpool(2x2) }");
    graph.nodes.to_mut()[0].output = Shape::Flat(32);
    assert_eq!(
        reasons(&graph, &plan, &caps()),
        [Some(FallbackReason::Shapes { kind: "maxpool" })]
    );
}

#[test]
fn a_slice_the_family_cannot_write_runs_on_the_reference() {
    let (graph, plan) = net(FIRE);
    let caps = Capabilities {
        fusion: Fusion {
            conv_writes_slice: false,
            ..Fusion::DEFAULT
        },
        ..caps()
    };
    let sliced = Some(FallbackReason::SlicedOutput { kind: "conv" });
    assert_eq!(reasons(&graph, &plan, &caps), [None, sliced, sliced, None]);
    // The concat then has nothing left to copy.
    assert_eq!(
        lower(&graph, &plan, &caps)[3],
        LoweredStep::Concat(Vec::new())
    );
    // Those convs pack nothing: their weights stay for the reference kernels.
    let packed: Vec<_> = (lower(&graph, &plan, &caps).iter())
        .flat_map(|s| s.packed_layers().collect::<Vec<_>>())
        .collect();
    assert_eq!(packed, [plan.steps[0].nodes[0]]);
}

#[test]
fn a_slice_with_an_epilogue_the_kernel_leaves_runs_on_the_reference() {
    // By hand (the planner makes no slice of a step ending in a softmax):
    // the conv's 5 channels at 8..13 of the concat's 17.
    let (graph, plan) = net(
        "Mixed(6x6x4) { concat { [identity], [residual { conv(4, 3x3, pad = 1) }], [conv(5, 1x1), softmax], [maxpool(2x2, stride = 1, pad = same), relu] } }",
    );
    let softmax = (plan.steps.iter())
        .position(|s| s.nodes.len() == 2 && graph.node(s.nodes[1]).op == Op::Softmax)
        .unwrap();
    let concat = plan.steps.last().unwrap().output;
    let value = plan.steps[softmax].output.0 as usize;
    let mut sliced = plan.clone();
    sliced.values[value].slice = Some(Slice {
        of: concat,
        first: 8,
        channels: 5,
        total: 17,
    });
    let mut expected = reasons(&graph, &plan, &caps());
    assert_eq!(expected[softmax], None);
    expected[softmax] = Some(FallbackReason::SlicedEpilogue { kind: "conv" });
    assert_eq!(reasons(&graph, &sliced, &caps()), expected);
}

/// The answers the build-time plan uses ([`Fusion::DEFAULT`]) are what the
/// kernel families do: every slice the default plan makes (a direct, a
/// Winograd and a depthwise convolution, a pool, a global pool) is written
/// by its kernel's strided form, and both kinds of separable pair fuse.
#[test]
fn the_kernel_families_do_what_the_default_fusion_says() {
    assert_eq!(caps().fusion, Fusion::DEFAULT);
    let (graph, plan) = net(
        "Net(16x16x8) { concat { [conv(8, 1x1), relu], [conv(8, 3x3, pad = 1), bn, relu], [dwconv(3x3, pad = 1), relu6], [maxpool(3x3, stride = 1, pad = 1)] }, concat { [global_avgpool], [global_maxpool] } }",
    );
    assert_eq!(plan.fusion, Fusion::DEFAULT);
    let lowered = lower(&graph, &plan, &caps());
    let mut sliced = Vec::new();
    for (step, lowering) in plan.steps.iter().zip(&lowered) {
        if plan.values[step.output.0 as usize].slice.is_none() {
            continue;
        }
        let LoweredStep::Kernel(kernel) = lowering else {
            panic!("{step:?}: {lowering:?}");
        };
        let slice = match &kernel.kernel {
            Kernel::Conv(spec) => spec.slice,
            Kernel::Winograd(spec) => spec.slice,
            Kernel::Depthwise(spec) => spec.slice,
            Kernel::Pool(spec) => spec.slice,
            other => panic!("{other:?} writes a slice"),
        };
        assert!(slice.is_some(), "{kernel:?}");
        sliced.push(kernel.kernel.algorithm().name());
    }
    assert_eq!(
        sliced,
        [
            "1x1-gemm",
            "winograd-f4x4",
            "depthwise",
            "pool",
            "global-pool",
            "global-pool"
        ]
    );
    for (source, algorithm) in [
        (
            "Net(8x8x4) { dwconv(3x3, pad = 1), relu, conv(8, 1x1) }",
            "dw+pw",
        ),
        (
            "Net(8x8x4) { conv(4, 1x3, pad = (0, 1)), relu, conv(8, 3x1, pad = (1, 0)) }",
            "1xk+kx1",
        ),
    ] {
        let (graph, plan) = net(source);
        let lowered = lower(&graph, &plan, &caps());
        assert_eq!(lowered[0], LoweredStep::InNext, "{source}");
        let LoweredStep::Kernel(pair) = &lowered[1] else {
            panic!("{source}: {lowered:?}");
        };
        assert_eq!(pair.kernel.algorithm().name(), algorithm);
        assert_eq!(pair.operands.input, plan::ValueId(0));
        // Unfused when the capabilities say so.
        let apart = Capabilities::host(None, 4, false);
        assert!(matches!(
            lower(&graph, &plan, &apart)[0],
            LoweredStep::Kernel(_)
        ));
    }
    // A convolution adds a dying shortcut in place: the step written over
    // it reads it as its `extra`, from its output.
    let (graph, plan) = net(
        "Net(8x8x4) { conv(4, 1x1), relu, residual { conv(4, 1x1), relu, conv(4, 3x3, pad = 1) }, relu, conv(4, 1x1) }",
    );
    let over = plan.steps[2].over.expect("the add's step writes over A");
    assert_eq!(over, plan.steps[0].output);
    let LoweredStep::Kernel(step) = &lower(&graph, &plan, &caps())[2] else {
        panic!("{plan:?}")
    };
    assert_eq!(step.operands.extra, Some(over));
}

/// A step the plan writes over its shortcut whose kernel would not add it
/// (its fused epilogue stops at a softmax, before the add) runs on the
/// reference kernels, which add a copy of the shortcut.
#[test]
fn a_step_over_its_shortcut_that_would_not_add_it_falls_back() {
    let (graph, plan) = net(
        "Net(4x4x8) { conv(8, 1x1), relu, residual { conv(8, 1x1), relu, conv(8, 1x1), softmax }, relu, conv(8, 1x1) }",
    );
    let add = (plan.steps.iter())
        .position(|s| s.inputs.len() == 2)
        .expect("the add's step");
    assert_eq!(plan.steps[add].over, Some(plan.steps[0].output));
    assert_eq!(
        lower(&graph, &plan, &caps())[add],
        LoweredStep::Reference(FallbackReason::OverShortcut { kind: "conv" })
    );
}

#[test]
fn operands_are_named_by_value() {
    // A residual block's last step: the conv reads the block's first
    // output and adds the block's input (value 1's writer's input).
    let (graph, plan) = net(
        "Block(8x8x4) { conv(4, 3x3, pad = 1), relu, residual { conv(4, 3x3, pad = 1), bn, relu, conv(4, 3x3, pad = 1), bn }, relu }",
    );
    let lowered = lower(&graph, &plan, &caps());
    let LoweredStep::Kernel(last) = &lowered[2] else {
        panic!("{lowered:?}")
    };
    assert_eq!(last.operands.input, plan.steps[1].output);
    assert_eq!(last.operands.extra, Some(plan.steps[0].output));
    assert_eq!(last.operands.output, plan.steps[2].output);
    assert!(last.rest.is_empty());
}

/// A pointwise convolution of its own runs over runs of pixels spanning
/// image rows (`ConvSpec::over_pixels`), by hand with Cranelift's tile of 4
/// pixels (runs of at least 16) and blocks of 8 channels: 12x6x32 -> 8
/// (256 weights, 2304 inputs) merges 3 rows into runs of 18 pixels;
/// 12x6x8 -> 256 (2048 weights, 576 inputs) is one run of 72 pixels, its
/// rows blocks of channels; and a depthwise + pointwise pair on this small
/// image runs apart (`SeparableSpec::new`: a ring of 72 x 256 = 18432
/// `f32`s over every row, weights 131072, depthwise MACs 1/57 of the
/// pointwise ones), its pointwise half one run of 72 pixels by its 64
/// blocks of output channels.
#[test]
fn pointwise_convolutions_run_over_runs_of_pixels() {
    let (graph, plan) = net(
        "Runs(12x6x32) { conv(8, 1x1), relu, maxpool(3x3, stride = 1, pad = 1), conv(256, 1x1), dwconv(3x3, pad = same), conv(512, 1x1) }",
    );
    let lowered = lower(&graph, &plan, &caps());
    let spec = |i: usize| match &lowered[i] {
        LoweredStep::Kernel(k) => k,
        other => panic!("step {i}: {other:?}"),
    };
    // A convolution of its own packs by the spec it runs.
    let conv = |i: usize| match &spec(i).kernel {
        Kernel::Conv(c) => {
            assert_eq!(spec(i).parts[0].kernel, Kernel::Conv(c.clone()));
            (c.input, c.output, c.lengths().rows)
        }
        other => panic!("step {i}: {other:?}"),
    };
    assert_eq!(conv(0), ([4, 18, 32], [4, 18, 8], 4));
    assert!(matches!(spec(1).kernel, Kernel::Pool(_)));
    assert_eq!(conv(2), ([1, 72, 8], [1, 72, 256], 32));
    assert!(matches!(spec(3).kernel, Kernel::Depthwise(_)));
    assert_eq!(conv(4), ([1, 72, 256], [1, 72, 512], 64));
}
