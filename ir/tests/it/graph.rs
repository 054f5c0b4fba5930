//! `Graph::verify` on graphs the language built, then broken by hand.

use cnnjit_ir::{At, Graph, GraphError, NodeId, Shape};

fn graph() -> Graph {
    cnnjit_lang::compile_source("Small(8x8x3) { conv(4, 3x3), relu, flatten, dense(10) }")
        .unwrap()
        .remove(0)
        .graph
}

fn at(graph: &Graph, node: u32) -> At {
    At {
        node: NodeId(node),
        name: graph.nodes[node as usize].name.to_string(),
    }
}

#[test]
fn verify_names_the_node_and_the_shapes_that_differ() {
    let mut graph = graph();
    graph.nodes.to_mut()[2].output = Shape::Volume { h: 6, w: 6, c: 5 };
    let err = graph.verify().unwrap_err();
    assert_eq!(
        err,
        GraphError::WrongShape {
            at: at(&graph, 2),
            recorded: Shape::Volume { h: 6, w: 6, c: 5 },
            inferred: Shape::Volume { h: 6, w: 6, c: 4 },
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "n2 `{}`: recorded shape (6,6,5) but its op gives (6,6,4)",
            graph.nodes[2].name
        )
    );
}

#[test]
fn verify_rejects_a_read_of_a_later_node_and_a_second_name() {
    let mut reads_itself = graph();
    reads_itself.nodes.to_mut()[1].inputs = vec![NodeId(1)].into();
    assert_eq!(
        reads_itself.verify(),
        Err(GraphError::ReadsLater {
            at: at(&reads_itself, 1),
            input: NodeId(1),
        })
    );
    let mut renamed = graph();
    let name = renamed.nodes[1].name.clone();
    renamed.nodes.to_mut()[3].name = name;
    assert_eq!(
        renamed.verify(),
        Err(GraphError::DuplicateName {
            at: at(&renamed, 3)
        })
    );
}

#[test]
fn verify_keeps_the_shape_rule_as_its_source() {
    let mut graph = graph();
    // A dense layer reading the volume before `flatten`.
    graph.nodes.to_mut()[4].inputs = vec![NodeId(2)].into();
    let err = graph.verify().unwrap_err();
    let source = std::error::Error::source(&err).expect("the shape rule's error");
    assert!(
        source.to_string().contains("expected a flat input"),
        "{source}"
    );
    assert!(matches!(err, GraphError::Shape { ref at, .. } if at.node == NodeId(4)));
}
