//! What cnnjit built for a model, step by step ([`KernelReport`], from
//! `Model::kernels`), and where a forward pass spends its time ([`Profile`],
//! from `Model::profile`): the layers each step covers, the algorithm and
//! register tile of its compiled kernel (or why it runs on the reference
//! kernels), the epilogue fused into it, and its multiply-accumulates.
//!
//! A report is read off the engine after the fact and owns its data; making
//! one changes nothing about how the model runs. A step's reason for the
//! reference kernels is the one its lowering gave (`codegen::lower::FallbackReason`). Its tables clip layer names
//! and epilogues to `summary::MAX_CELL` characters.

use crate::exec::Engine;
use crate::jit::Lowering;
use cnnjit_codegen::{Algorithm, Kernel, Tile};
use cnnjit_ir::plan::Step;
use cnnjit_ir::summary::{clip, thousands, MAX_CELL};
use std::fmt::{self, Write as _};

/// How a step runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Path {
    /// Through a kernel the JIT compiled.
    Compiled {
        /// What the kernel computes with.
        algorithm: Algorithm,
        /// Its register tile.
        tile: Tile,
    },
    /// By the next step's kernel: the first half of a fused separable pair,
    /// whose output never reaches the arena.
    InNext,
    /// Not at all: a concat whose inputs were all written in place by their
    /// own steps, leaving nothing to copy.
    InPlace,
    /// Through the reference kernels.
    Reference {
        /// Why the JIT does not serve it.
        reason: String,
    },
}

/// One step of the plan: an anchor layer and the epilogue that runs on its output.
#[derive(Clone, Debug, PartialEq)]
pub struct StepKernel {
    /// The names of the layers it covers, the anchor first.
    pub layers: Vec<String>,
    /// The anchor's kind, as the language writes it (`conv`, `dense`, ...).
    pub kind: &'static str,
    /// Compiled or reference.
    pub path: Path,
    /// Kinds of the epilogue layers the compiled kernel applies to its
    /// accumulators before storing (empty on the reference path).
    pub fused: Vec<&'static str>,
    /// Kinds of the epilogue layers applied in place afterwards by the
    /// reference kernels.
    pub unfused: Vec<&'static str>,
    /// Multiply-accumulates of the anchor (0 for pools and element-wise layers).
    pub macs: u64,
}

impl StepKernel {
    /// The algorithm column: the compiled kernel's, or `reference`.
    pub fn algorithm(&self) -> &'static str {
        match &self.path {
            Path::Compiled { algorithm, .. } => algorithm.name(),
            Path::InNext => "in next",
            Path::InPlace => "in place",
            Path::Reference { .. } => "reference",
        }
    }

    /// The register tile, if compiled.
    pub fn tile(&self) -> Option<Tile> {
        match &self.path {
            Path::Compiled { tile, .. } => Some(*tile),
            Path::InNext | Path::InPlace | Path::Reference { .. } => None,
        }
    }
}

/// Every step of a model, as built.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelReport {
    /// The net's name.
    pub net: String,
    /// One entry per step of the plan, in execution order.
    pub steps: Vec<StepKernel>,
    /// Distinct kernels compiled (identical specs share one).
    pub distinct_kernels: usize,
}

impl KernelReport {
    /// The report of `engine`; `no_jit` says why it has no compiled kernels
    /// at all, if so.
    pub(crate) fn of(engine: &Engine, no_jit: Option<&str>) -> KernelReport {
        let graph = &engine.graph;
        let kinds = |ids: &[crate::ir::NodeId]| -> Vec<&'static str> {
            ids.iter().map(|id| graph.node(*id).op.kind()).collect()
        };
        let steps = engine
            .plan
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let anchor = graph.node(step.nodes[0]);
                let inputs: Vec<_> = anchor
                    .inputs
                    .iter()
                    .map(|id| graph.node(*id).output)
                    .collect();
                let (path, fused) = match (no_jit, &engine.compiled) {
                    (None, Some(compiled)) => path(&compiled.steps[index], step),
                    (Some(why), _) => reference(why.to_string()),
                    (None, None) => reference("no compiled kernels".to_string()),
                };
                StepKernel {
                    layers: step
                        .nodes
                        .iter()
                        .map(|id| graph.node(*id).name.to_string())
                        .collect(),
                    kind: anchor.op.kind(),
                    path,
                    fused: kinds(&step.nodes[1..fused]),
                    unfused: kinds(&step.nodes[fused..]),
                    macs: cnnjit_ir::cost::layer_cost(&anchor.op, &inputs, anchor.output)
                        .map_or(0, |c| c.macs),
                }
            })
            .collect();
        KernelReport {
            net: graph.name.to_string(),
            steps,
            distinct_kernels: engine.compiled.as_ref().map_or(0, |c| c.kernels),
        }
    }

    /// Steps that run compiled code (a fused pair's first half included).
    pub fn compiled_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !matches!(s.path, Path::Reference { .. }))
            .count()
    }
}

/// A step on the reference kernels, for `reason`: it fuses nothing.
fn reference(reason: String) -> (Path, usize) {
    (Path::Reference { reason }, 1)
}

/// How step `step`, lowered to `lowering`, runs, and how many of its nodes
/// (the anchor included) its kernel covers.
fn path(lowering: &Lowering, step: &Step) -> (Path, usize) {
    match lowering {
        Lowering::Kernel(lowered) => {
            let path = Path::Compiled {
                algorithm: lowered.algorithm,
                tile: lowered.tile,
            };
            (path, step.nodes.len() - lowered.rest.len())
        }
        Lowering::InNext => (Path::InNext, step.nodes.len()),
        Lowering::Concat(branches) => match branches.first() {
            None => (Path::InPlace, 1),
            Some(branch) => {
                let kernel = Kernel::Concat(branch.spec.clone());
                let path = Path::Compiled {
                    algorithm: kernel.algorithm(),
                    tile: kernel.tile(),
                };
                (path, 1)
            }
        },
        Lowering::Reference(reason) => reference(reason.to_string()),
    }
}

/// Where one forward pass spends its time, step by step.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// What each step runs.
    pub kernels: KernelReport,
    /// Per step, its median wall time over the runs, in milliseconds.
    pub step_ms: Vec<f64>,
    /// Forward passes timed (after one warm-up).
    pub runs: usize,
}

impl Profile {
    /// The sum of the steps' medians, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.step_ms.iter().sum()
    }

    /// Step `i`'s share of [`total_ms`](Profile::total_ms), from 0 to 1.
    pub fn share(&self, i: usize) -> f64 {
        let total = self.total_ms();
        if total > 0.0 {
            self.step_ms[i] / total
        } else {
            0.0
        }
    }

    /// Step `i`'s arithmetic rate, two flops per MAC, in GFLOP/s (`None` for
    /// steps without MACs or too fast to time).
    pub fn gflops(&self, i: usize) -> Option<f64> {
        let (macs, ms) = (self.kernels.steps[i].macs, self.step_ms[i]);
        (macs > 0 && ms > 0.0).then(|| 2.0 * macs as f64 / (ms * 1e6))
    }
}

impl fmt::Display for KernelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        table(f, self, None)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        table(f, &self.kernels, Some(self))
    }
}

/// The table of `report`, with timing columns if `profile` is given: one
/// row per step, then a footer. The epilogue column lists the fused layers,
/// then (`then ... (ref)`) those the reference kernels apply afterwards.
/// Layer names and epilogues are clipped to [`MAX_CELL`] characters.
fn table(
    f: &mut fmt::Formatter<'_>,
    report: &KernelReport,
    profile: Option<&Profile>,
) -> fmt::Result {
    let epilogue = |s: &StepKernel| {
        let mut text = s.fused.join("+");
        if !s.unfused.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            let _ = write!(text, "then {} (ref)", s.unfused.join("+"));
        }
        clip(&text, MAX_CELL).into_owned()
    };
    let layer = |s: &StepKernel| clip(&s.layers[0], MAX_CELL).into_owned();
    let width = report
        .steps
        .iter()
        .map(|s| layer(s).chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let epi_width = report
        .steps
        .iter()
        .map(|s| epilogue(s).chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let tiles: Vec<String> = (report.steps.iter())
        .map(|s| s.tile().map_or_else(|| "-".to_string(), |t| t.to_string()))
        .collect();
    // Names and tiles carry their ISA (`1x1-gemm-avx512`, `14px x 16ch
    // avx512`): the columns fit the longest.
    let algo_width = (report.steps.iter())
        .map(|s| s.algorithm().to_string().chars().count())
        .fold(13, usize::max);
    let tile_width = tiles.iter().map(|t| t.chars().count()).fold(10, usize::max);
    write!(
        f,
        "{:>4}  {:<width$}  {:<14}  {:<algo_width$}  {:<tile_width$}  {:<epi_width$}  {:>13}",
        "step", "layer", "kind", "algorithm", "tile", "epilogue", "MACs"
    )?;
    if profile.is_some() {
        write!(f, "  {:>10}  {:>8}  {:>6}", "time (ms)", "GFLOP/s", "share")?;
    }
    writeln!(f)?;
    for (i, (s, tile)) in report.steps.iter().zip(&tiles).enumerate() {
        write!(
            f,
            "{i:>4}  {:<width$}  {:<14}  {:<algo_width$}  {:<tile_width$}  {:<epi_width$}  {:>13}",
            layer(s),
            s.kind,
            s.algorithm(),
            tile,
            epilogue(s),
            thousands(s.macs),
        )?;
        if let Some(p) = profile {
            let rate = p
                .gflops(i)
                .map_or_else(|| "-".into(), |g| format!("{g:.1}"));
            write!(
                f,
                "  {:>10.4}  {:>8}  {:>5.1}%",
                p.step_ms[i],
                rate,
                100.0 * p.share(i)
            )?;
        }
        if let Path::Reference { reason } = &s.path {
            write!(f, "  ({reason})")?;
        }
        writeln!(f)?;
    }
    write!(
        f,
        "{}: {} steps, {} compiled ({} distinct kernels), {} on the reference kernels",
        clip(&report.net, MAX_CELL),
        report.steps.len(),
        report.compiled_steps(),
        report.distinct_kernels,
        report.steps.len() - report.compiled_steps()
    )?;
    if let Some(p) = profile {
        write!(
            f,
            "; {:.4} ms a pass (sum of per-step medians over {} runs)",
            p.total_ms(),
            p.runs
        )?;
    }
    writeln!(f)
}
