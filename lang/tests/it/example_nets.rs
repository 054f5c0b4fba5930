//! Every network in examples/nets goes through the whole front end, and the
//! graph and plan it yields satisfy their documented invariants.

use std::path::Path;

#[test]
fn every_example_net_compiles_and_verifies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nets");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "cnn") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let nets = cnnjit_lang::compile_source(&text).unwrap_or_else(|e| {
            let name = path.display().to_string();
            panic!("{}", cnnjit_lang::dsl::diagnostic::render(&e, &name, &text))
        });
        for net in nets {
            let name = &net.graph.name;
            net.graph
                .verify()
                .unwrap_or_else(|e| panic!("{name}: graph: {e}"));
            net.plan
                .verify(&net.graph)
                .unwrap_or_else(|e| panic!("{name}: plan: {e}"));
            // The arena never exceeds keeping every tensor (input included) at once.
            let everything = net.graph.input_shape().len() * 4 + net.figures.activation_bytes;
            assert!(net.plan.arena_bytes <= everything + 64 * net.plan.values.len() as u64);
            count += 1;
        }
    }
    assert!(count >= 20, "only {count} nets found in {}", dir.display());
}
