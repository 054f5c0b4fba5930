//! Lowering's batch decisions (`cnnjit_codegen::batch`) on example nets,
//! each figure derived by hand in a comment.

use cnnjit_codegen::batch::{plan_batch, BatchPlan, GROUP};
use cnnjit_codegen::lower::{lower, Capabilities};
use cnnjit_codegen::native::Isa;
use cnnjit_ir::plan::Fusion;

fn batch_plan(source: &str, native: Option<Isa>) -> BatchPlan {
    let net = cnnjit_lang::compile_source(source).unwrap().remove(0);
    // Direct convolutions only, so the packed lengths below are the direct
    // kernel's; lowering is pure, so any ISA lowers on any host.
    let caps = Capabilities {
        native,
        winograd_tile: 0,
        fusion: Fusion::DEFAULT,
    };
    let steps = lower(&net.graph, &net.plan, &caps);
    plan_batch(&net.graph, &net.plan, &steps)
}

#[test]
fn deep_convolutions_on_small_images_run_step_by_step_in_groups() {
    // Five steps: conv + relu, maxpool, conv + relu, conv + relu, conv.
    // Packed weights against the values each step writes and reads:
    // conv(64, 3x3) on 12x12x3: 64 x 27 = 1,728 against 432 + 9,216; the
    // pool none; conv(1024, 3x3) on 6x6x64: 1024 x 576 = 589,824 against
    // 2,304 + 16,384; on 4x4x1024: 1024 x 9,216 = 9,437,184 against 16,384
    // + 4,096; conv(16, 1x1) on 2x2x1024: 16,384 against 4,096 + 64. In all
    // 10,045,120 floats, 40.2 MB, more than the outer caches' 32 MiB.
    let plan = batch_plan(
        "Groups(12x12x3) {
            conv(64, 3x3, pad = 1), relu, maxpool(2x2),
            conv(1024, 3x3), relu, conv(1024, 3x3), relu, conv(16, 1x1),
        }",
        None,
    );
    assert_eq!(plan.tail, None);
    assert_eq!(plan.group, GROUP);
    assert_eq!(plan.step_by_step, [false, false, true, true, true]);
    // Without the 4x4x1024 layer: 1,728 + 589,824 + 16,384 = 607,936
    // floats, 2.4 MB, which the outer caches hold, so each image runs alone;
    // conv(16, 1x1) now reads 4x4x1024: 16,384 weights against 16,384 + 256
    // values, image by image.
    let small = batch_plan(
        "Small(12x12x3) { conv(64, 3x3, pad = 1), relu, maxpool(2x2), conv(1024, 3x3), relu, conv(16, 1x1) }",
        None,
    );
    assert_eq!(small.group, 1);
    assert_eq!(small.step_by_step, [false, false, true, false]);
}

#[test]
fn a_dense_tail_runs_batched_only_on_native_gemvs() {
    const NET: &str =
        "Net(6x6x4) { conv(5, 3x3), relu, flatten, dense(70), tanh, dense(9), softmax }";
    // Steps: conv + relu + flatten, dense(70) + tanh, dense(9) + softmax;
    // the dense tail is the last two, reading the conv's 4x4x5 output.
    let native = batch_plan(NET, Some(Isa::Avx2));
    let tail = native.tail.expect("a tail of native GEMVs");
    assert_eq!(tail.first, 1);
    // Buffers per image: the tail's input, the 80 features, then
    // dense(70)'s 70 outputs, which dense(9) reads to write the caller's.
    assert_eq!(tail.buffers, [80, 70]);
    assert_eq!(native.group, 1);
    // Cranelift's dense kernel has no batched form: the tail runs per image.
    assert_eq!(batch_plan(NET, None).tail, None);
}
