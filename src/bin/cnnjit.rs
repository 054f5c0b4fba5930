//! The `cnnjit` command-line tool: reads `.cnn` files (the `cnn!` language)
//! and prints their summaries (text or JSON) or graphs (Graphviz DOT).
//! Errors in a file are printed rustc-style with file, line, column and a
//! caret, and the exit status is 1.

use clap::{Parser, Subcommand};
use cnnjit::compiler::{dot, dsl::diagnostic, CompiledNet};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cnnjit",
    version,
    about = "A compiler for convolutional neural networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the lecture's table (layer, hyper-parameters, output, params, FLOPs) and totals.
    Summary {
        /// A file in the cnn! language.
        file: PathBuf,
        /// Only this net (default: every net in the file).
        #[arg(long)]
        net: Option<String>,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Print the graph in Graphviz DOT.
    Graph {
        /// A file in the cnn! language.
        file: PathBuf,
        /// The net to draw (default: the only or first net in the file).
        #[arg(long)]
        net: Option<String>,
    },
}

fn load(file: &PathBuf, net: Option<&str>) -> Result<Vec<CompiledNet>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("error: cannot read {}: {e}", file.display()))?;
    let nets = cnnjit::compiler::compile_source(&text)
        .map_err(|e| diagnostic::render(&e, &file.display().to_string(), &text))?;
    match net {
        None => Ok(nets),
        Some(name) => {
            let names: Vec<String> = nets.iter().map(|n| n.graph.name.to_string()).collect();
            let chosen: Vec<CompiledNet> =
                nets.into_iter().filter(|n| n.graph.name == name).collect();
            if chosen.is_empty() {
                Err(format!(
                    "error: no net `{name}` in {}; it defines: {}",
                    file.display(),
                    names.join(", ")
                ))
            } else {
                Ok(chosen)
            }
        }
    }
}

fn summary_json(nets: &[CompiledNet]) -> serde_json::Value {
    let nets: Vec<serde_json::Value> = nets
        .iter()
        .map(|net| {
            let s = net.summary();
            let layers: Vec<serde_json::Value> = s
                .layers
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "name": l.name, "kind": l.kind, "hyper": l.hyper,
                        "output_shape": l.output.dims(), "params": l.params, "flops": l.flops, "macs": l.macs,
                    })
                })
                .collect();
            serde_json::json!({
                "name": s.name,
                "input_shape": s.input.dims(),
                "output_shape": net.graph.output_shape().dims(),
                "params": s.params,
                "buffers": s.buffers,
                "flops": s.flops,
                "macs": s.macs,
                "param_bytes": s.param_bytes,
                "activation_bytes": s.activation_bytes,
                "peak_inference_bytes": s.peak_inference_bytes,
                "layers": layers,
            })
        })
        .collect();
    serde_json::json!({ "nets": nets })
}

fn run(cli: Cli) -> Result<String, String> {
    match cli.command {
        Command::Summary { file, net, json } => {
            let nets = load(&file, net.as_deref())?;
            if json {
                Ok(format!("{:#}\n", summary_json(&nets)))
            } else {
                Ok(nets
                    .iter()
                    .map(|n| format!("{}\n\n", n.summary()))
                    .collect())
            }
        }
        Command::Graph { file, net } => {
            let nets = load(&file, net.as_deref())?;
            let first = nets
                .first()
                .ok_or_else(|| format!("error: {} defines no net", file.display()))?;
            Ok(dot::to_dot(&first.graph))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprint!("{err}");
            if !err.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}
