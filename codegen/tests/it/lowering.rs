//! The lowering of every example net is the kernels the code before the
//! lowering pass built: tests/it/example_kernels.txt, recorded from that code's
//! `Model::kernels()` (native tile off, so the same on any host). A change
//! that means to change a lowering rewrites the recording with
//! `CNNJIT_RECORD=overwrite cargo test -p cnnjit-codegen --test it lowering`;
//! its diff is then the change's effect on every example net, to review.

use cnnjit_codegen::lower::{lower, Capabilities, LoweredStep};
use cnnjit_codegen::Kernel;
use cnnjit_ir::plan::Plan;
use cnnjit_ir::Graph;

/// One line per step, as the recording wrote `Model::kernels()`.
fn kernels(graph: &Graph, plan: &Plan) -> String {
    let lowered = lower(graph, plan, &Capabilities::host(None, 4, true));
    let mut text = format!("## {}\n", graph.name);
    for (step, lowering) in plan.steps.iter().zip(&lowered) {
        let anchor = graph.node(step.nodes[0]);
        let (algorithm, tile, fused, reason) = match lowering {
            LoweredStep::Kernel(k) => (
                k.kernel.algorithm().name(),
                k.kernel.tile().to_string(),
                step.nodes.len() - k.rest.len(),
                String::new(),
            ),
            LoweredStep::InNext => ("in next", "-".into(), step.nodes.len(), String::new()),
            LoweredStep::Concat(branches) => match branches.first() {
                None => ("in place", "-".into(), 1, String::new()),
                Some(b) => {
                    let kernel = Kernel::Concat(b.spec.clone());
                    (
                        kernel.algorithm().name(),
                        kernel.tile().to_string(),
                        1,
                        String::new(),
                    )
                }
            },
            LoweredStep::Reference(reason) => ("reference", "-".into(), 1, reason.to_string()),
        };
        let kinds = |ids: &[cnnjit_ir::NodeId]| {
            ids.iter()
                .map(|id| graph.node(*id).op.kind())
                .collect::<Vec<_>>()
                .join("+")
        };
        text.push_str(&format!(
            "{} {algorithm} {tile} {} {} {reason}\n",
            anchor.op.kind(),
            kinds(&step.nodes[1..fused]),
            kinds(&step.nodes[fused..]),
        ));
    }
    text
}

#[test]
fn every_example_net_lowers_to_the_kernels_it_had() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/nets");
    let mut files: Vec<_> = (std::fs::read_dir(dir).unwrap())
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    let mut found = String::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for net in cnnjit_lang::compile_source(&text).unwrap() {
            found.push_str(&kernels(&net.graph, &net.plan));
        }
    }
    let recorded = include_str!("example_kernels.txt");
    if std::env::var_os("CNNJIT_RECORD").is_some_and(|v| v == "overwrite") {
        let header = recorded.lines().take_while(|l| l.starts_with("# "));
        let text: String = header.map(|l| format!("{l}\n")).collect::<String>() + &found;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/example_kernels.txt");
        std::fs::write(path, text).unwrap();
        return;
    }
    let expected: String = (recorded.lines())
        .filter(|l| !l.starts_with("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(expected.matches("## ").count() >= 24);
    for (i, (found, expected)) in found.lines().zip(expected.lines()).enumerate() {
        assert_eq!(found, expected, "line {i} of the recording");
    }
    assert_eq!(found.lines().count(), expected.lines().count());
}
