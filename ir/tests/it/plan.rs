//! The planner on nets the language built: fusion, slices, the arena, `Plan::verify`.

use cnnjit_ir::plan::ValueId;
use cnnjit_lang::compile_source;

fn resnet_block() -> (cnnjit_ir::Graph, cnnjit_ir::plan::Plan) {
    let net = compile_source(
        "Block(8x8x4) { conv(4, 3x3, pad = 1), bn, relu, residual { conv(4, 3x3, pad = 1), bn, relu, conv(4, 3x3, pad = 1), bn }, relu }",
    )
    .unwrap()
    .remove(0);
    (net.graph, net.plan)
}

#[test]
fn conv_bn_relu_and_residual_add_fuse_into_one_step() {
    let (graph, plan) = resnet_block();
    let kinds: Vec<Vec<&str>> = plan
        .steps
        .iter()
        .map(|s| s.nodes.iter().map(|id| graph.node(*id).op.kind()).collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec!["conv", "bn", "relu"],
            vec!["conv", "bn", "relu"],
            vec!["conv", "bn", "residual", "relu"],
        ]
    );
    // The last step reads its input and the block's input (the shortcut).
    assert_eq!(plan.steps[2].inputs.len(), 2);
    plan.verify(&graph).unwrap();
    // 8*8*4 = 256 floats a tensor; at most three are live at once
    // (shortcut, body tensor, output of the step).
    assert_eq!(plan.arena_bytes, 3 * 256 * 4);
}

/// A projection shortcut is computed after its block's body, so the add
/// reads the shortcut's tensor second: it joins the shortcut's step, which
/// reads the body's tensor as its operand, and no add runs alone.
#[test]
fn a_residual_add_fuses_into_a_projection_shortcut_computed_after_the_body() {
    let (graph, plan) = net(
        "Block(8x8x4) { residual(shortcut = auto) { conv(8, 3x3, stride = 2, pad = 1), bn, relu, conv(8, 3x3, pad = 1), bn }, relu }",
    );
    let kinds: Vec<Vec<&str>> = (plan.steps.iter())
        .map(|s| s.nodes.iter().map(|id| graph.node(*id).op.kind()).collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec!["conv", "bn", "relu"],
            vec!["conv", "bn"],
            vec!["conv", "bn", "residual", "relu"],
        ]
    );
    // The shortcut's step reads the block's input, then the body's tensor.
    assert_eq!(plan.steps[2].inputs, [ValueId(0), plan.steps[1].output]);
    let add = graph.node(plan.steps[2].nodes[2]);
    let shortcut_bn = plan.steps[2].nodes[1];
    assert_eq!(
        add.inputs[1], shortcut_bn,
        "the add reads the shortcut second"
    );
    assert!(cnnjit_ir::plan::runs_on(add, shortcut_bn));
    let operands: Vec<_> = cnnjit_ir::plan::operands(add, shortcut_bn).collect();
    assert_eq!(operands, [plan.steps[1].nodes[1]]);
}

fn net(source: &str) -> (cnnjit_ir::Graph, cnnjit_ir::plan::Plan) {
    let net = compile_source(source).unwrap().remove(0);
    net.plan.verify(&net.graph).unwrap();
    (net.graph, net.plan)
}

/// For each input of the step anchored at the concat, the channels of
/// the concat's output it is written into in place, if it is.
fn slices(graph: &cnnjit_ir::Graph, plan: &cnnjit_ir::plan::Plan) -> Vec<Option<(u32, u32)>> {
    let concat = plan
        .steps
        .iter()
        .find(|s| graph.node(s.nodes[0]).op == cnnjit_ir::Op::Concat)
        .expect("a concat step");
    concat
        .inputs
        .iter()
        .map(|v| {
            let slice = plan.values[v.0 as usize].slice?;
            assert_eq!(slice.of, concat.output);
            Some((slice.first, slice.channels))
        })
        .collect()
}

const FIRE: &str = "Fire(8x8x16) { conv(4, 1x1), relu, concat { [conv(8, 1x1), relu], [conv(8, 3x3, pad = 1), relu] } }";

#[test]
fn fire_expands_write_their_halves_of_the_concat_in_place() {
    let (graph, plan) = net(FIRE);
    assert_eq!(slices(&graph, &plan), [Some((0, 8)), Some((8, 8))]);
    // By hand: input X 1024 floats, squeeze S 256, concat C 1024.
    // Lifetimes (step writing .. last step reading, shifted by one):
    // X 0..1, S 1..3, C 2..5 (from the first expand that writes into it).
    // Greedy by size: X at 0, C at 0 (not live with X), S at 1024.
    assert_eq!(plan.arena_bytes, 1280 * 4);
    // Copying the expands (E1 2..4, E3 3..4, C 4..5): X 0, C 0, E1 1024,
    // E3 1536, S 2048; 2304 floats.
    let copied = cnnjit_ir::plan::plan_arena(cnnjit_ir::plan::fuse(
        &graph,
        &cnnjit_ir::plan::Fusion::DEFAULT,
    ))
    .unwrap();
    assert_eq!(copied.arena_bytes, 2304 * 4);
}

#[test]
fn every_inception_branch_writes_its_slice_in_place() {
    let (graph, plan) = net(
        "Inception(12x12x8) { concat { [conv(8, 1x1), relu], [conv(6, 1x1), relu, conv(10, 3x3, pad = 1), relu], [conv(3, 1x1), relu, conv(5, 5x5, pad = 2), relu], [maxpool(3x3, stride = 1, pad = 1), conv(7, 1x1), relu] }, relu }",
    );
    assert_eq!(
        slices(&graph, &plan),
        [Some((0, 8)), Some((8, 10)), Some((18, 5)), Some((23, 7))]
    );
    // By hand (floats): X 1152 live 0..6, the reductions R3 864 (2..3)
    // and R5 432 (4..5), the pool's P 1152 (6..7), the concat C 4320
    // from the first branch, 1..9. Greedy by size: C 0, X 4320, P 5472,
    // R3 and R5 5472: 6624 floats.
    assert_eq!(plan.arena_bytes, 6624 * 4);
    // Copying the branches (B1 1152 1..8, B3 1440 3..8, B5 720 5..8,
    // B7 1008 7..8, C 8..9): C 0, B3 4320, X 0, B1 5760, P 1152,
    // B7 6912, R3 1152, B5 7920, R5 1152: 8640 floats.
    let copied = cnnjit_ir::plan::plan_arena(cnnjit_ir::plan::fuse(
        &graph,
        &cnnjit_ir::plan::Fusion::DEFAULT,
    ))
    .unwrap();
    assert_eq!(copied.arena_bytes, 8640 * 4);
}

#[test]
fn inputs_a_step_cannot_write_in_place_keep_their_copy() {
    // The network's input; a residual's output (its add reads a
    // contiguous shortcut); a conv whose output is read twice; a dense
    // head is no concat input, but a softmax ends no strided step either.
    let (graph, plan) = net(
        "Mixed(6x6x4) { concat { [identity], [residual { conv(4, 3x3, pad = 1) }], [conv(5, 1x1), softmax], [maxpool(2x2, stride = 1, pad = same), relu] } }",
    );
    assert_eq!(slices(&graph, &plan), [None, None, None, Some((13, 4))]);
}

#[test]
fn a_code_generator_that_fuses_nothing_gets_no_slices_and_no_pairs() {
    let graph = compile_source(FIRE).unwrap().remove(0).graph;
    let plan = cnnjit_ir::plan::plan_for(&graph, &cnnjit_ir::plan::Fusion::NONE).unwrap();
    plan.verify(&graph).unwrap();
    assert_eq!(slices(&graph, &plan), [None, None]);
    // The arena of the copied expands, as in the test above.
    assert_eq!(plan.arena_bytes, 2304 * 4);
    let graph = compile_source("Sep(8x8x4) { dwconv(3x3, pad = 1), relu, conv(8, 1x1) }")
        .unwrap()
        .remove(0)
        .graph;
    let keeps = |fusion| cnnjit_ir::plan::plan_for(&graph, &fusion).unwrap().steps[1].keeps;
    assert_eq!(
        keeps(cnnjit_ir::plan::Fusion::DEFAULT),
        Some(cnnjit_ir::plan::ValueId(0))
    );
    assert_eq!(keeps(cnnjit_ir::plan::Fusion::NONE), None);
}

#[test]
fn verify_rejects_a_slice_overlapping_a_live_value() {
    let (graph, mut plan) = net(FIRE);
    // The squeeze's output is read while the expands write their slices:
    // placing it in the concat's memory must be caught, though the
    // concat's own step comes after the squeeze's last read.
    let squeeze = plan.steps[0].output.0 as usize;
    let concat = plan.steps.last().unwrap().output.0 as usize;
    plan.values[squeeze].offset = plan.values[concat].offset;
    let err = plan.verify(&graph).unwrap_err();
    assert!(err.to_string().contains("share memory"), "{err}");
    assert!(
        matches!(err, cnnjit_ir::plan::PlanError::SharedMemory { .. }),
        "{err:?}"
    );
}

#[test]
fn verify_rejects_a_slice_of_the_wrong_channels() {
    let (graph, mut plan) = net(FIRE);
    let expand = plan.steps[1].output.0 as usize;
    plan.values[expand].slice.as_mut().unwrap().first = 4;
    let err = plan.verify(&graph).unwrap_err();
    assert!(err.to_string().contains("own channels"), "{err}");
    assert!(
        matches!(
            err,
            cnnjit_ir::plan::PlanError::Slice {
                source: cnnjit_ir::plan::SliceError::Channels {
                    found: (4, 8),
                    found_total: 16,
                    expected: Some((0, 8)),
                    expected_total: 16,
                },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn verify_rejects_shared_memory_between_live_values() {
    let (graph, mut plan) = resnet_block();
    let last = plan.steps.last().unwrap().output.0 as usize;
    let shortcut = plan.steps[2].inputs[1].0 as usize;
    plan.values[last].offset = plan.values[shortcut].offset;
    let err = plan.verify(&graph).unwrap_err();
    assert!(err.to_string().contains("share memory"), "{err}");
    assert!(
        matches!(err, cnnjit_ir::plan::PlanError::SharedMemory { .. }),
        "{err:?}"
    );
}

/// Two residuals on one shortcut `A` (a conv and relu's output, 8x8x4 = 256
/// floats a tensor), then a 1x1 conv: the inner add's step cannot write over
/// `A`, which the outer add reads later; the outer add's step can.
const NESTED: &str = "Nested(8x8x4) { conv(4, 1x1), relu, residual { residual { conv(4, 3x3, pad = 1) }, conv(4, 3x3, pad = 1) }, conv(4, 1x1) }";

#[test]
fn a_step_writes_its_output_over_a_shortcut_no_later_step_reads() {
    let (_, plan) = net(NESTED);
    let a = plan.steps[0].output;
    // Steps: conv+relu -> A; conv(A)+A -> B; conv(B)+A -> C; conv(C) -> out.
    assert_eq!(plan.steps[1].inputs, [a, a]);
    assert_eq!(plan.steps[2].inputs, [plan.steps[1].output, a]);
    assert_eq!(plan.steps[1].over, None);
    assert_eq!(plan.steps[2].over, Some(a));
    let (c, a) = (plan.steps[2].output.0 as usize, a.0 as usize);
    assert_eq!(plan.values[c].offset, plan.values[a].offset);
    // Live at each step: image and A; A and B; B and C (in A's memory); C
    // and the output: two tensors. Without writing over A, step 2 holds A,
    // B and C: three.
    assert_eq!(plan.arena_bytes, 2 * 256 * 4);
    let graph = compile_source(NESTED).unwrap().remove(0).graph;
    let apart = cnnjit_ir::plan::Fusion {
        conv_adds_in_place: false,
        ..cnnjit_ir::plan::Fusion::DEFAULT
    };
    let apart = cnnjit_ir::plan::plan_for(&graph, &apart).unwrap();
    apart.verify(&graph).unwrap();
    assert!(apart.steps.iter().all(|s| s.over.is_none()));
    assert_eq!(apart.arena_bytes, 3 * 256 * 4);
}

#[test]
fn no_step_writes_over_the_image_or_into_the_networks_output() {
    // The block's add reads the image: its step writes a tensor of its own.
    let (_, plan) = net("Block(8x8x4) { residual { conv(4, 3x3, pad = 1) }, conv(4, 1x1) }");
    assert_eq!(plan.steps[0].inputs, [ValueId(0), ValueId(0)]);
    assert_eq!(plan.steps[0].over, None);
    // The last step's add: the output goes to the caller's buffer.
    let (_, plan) = resnet_block();
    assert!(plan.steps.iter().all(|s| s.over.is_none()));
}

/// A block's shortcut `A` that a concat reads after the block's add.
const REUSED: &str = "Reused(8x8x4) { conv(4, 1x1), relu, concat { [residual { conv(4, 3x3, pad = 1), relu, conv(4, 3x3, pad = 1) }], [identity] }, conv(4, 1x1) }";

#[test]
fn verify_rejects_writing_over_a_shortcut_read_later() {
    let (graph, mut plan) = net(REUSED);
    let a = plan.steps[0].output;
    let add = (plan.steps.iter())
        .position(|s| s.inputs.len() == 2 && s.inputs[1] == a)
        .expect("the block's add reads A second");
    assert_eq!(plan.steps[add].over, None);
    plan.steps[add].over = Some(a);
    let err = plan.verify(&graph).unwrap_err();
    assert!(err.to_string().contains("reads later"), "{err}");
    assert!(
        matches!(
            err,
            cnnjit_ir::plan::PlanError::Over {
                source: cnnjit_ir::plan::OverError::ReadLater { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn verify_rejects_an_output_elsewhere_than_over_its_shortcut() {
    let (graph, mut plan) = net(NESTED);
    let c = plan.steps[2].output.0 as usize;
    plan.values[c].offset += 256;
    let err = plan.verify(&graph).unwrap_err();
    assert!(
        matches!(
            err,
            cnnjit_ir::plan::PlanError::Over {
                step: 2,
                source: cnnjit_ir::plan::OverError::Offset { .. },
                ..
            }
        ),
        "{err:?}"
    );
}
