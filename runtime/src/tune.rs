//! Measured algorithm choice, cached per host: what `cnnjit tune` measures
//! and what [`crate::Model`] reads back.
//!
//! [`time_spec`] times every candidate ([`choice::candidates`]: the direct
//! kernel, Winograd F(2x2) and F(4x4) where they apply) of each distinct
//! convolution a net lowers to ([`convolutions`]), on the ISA and threads
//! the model would use, warm-up then the median of five calls, each kernel
//! alone on random data, its weights evicted from every cache before each
//! call (`evict`) as a network's are when its layer comes round again.
//! [`write()`] records the winners in the cache file ([`cache_path`]: the
//! folder of [`CACHE_ENV`], else `$XDG_CACHE_HOME/cnnjit`, else
//! `~/.cache/cnnjit`), one line per (CPU model, [`ChoiceKey`]), merged with
//! what the file held for other CPUs and shapes, and replaced atomically
//! (a temporary file beside it, renamed).
//!
//! The file is untrusted: [`read`] refuses a file that is missing, not a
//! regular file, larger than [`MAX_CACHE_BYTES`], not UTF-8, without the
//! header line, truncated (its last line unterminated), with any malformed
//! line, or with no line for this CPU ([`Ignored`] says which), and never
//! panics; the model then uses the static cost model and reports why
//! ([`Tuning`]). The choice stays a pure function of (spec, file contents).
//!
//! File format: [`HEADER`], then one line per choice, three fields
//! separated by tabs (`<TAB>` below), every line ending in a line break:
//! ```text
//! # cnnjit choices 1
//! Intel(R) Xeon(R) Processor<TAB>avx512 28x28x512>28x28x512 k3x3 s1x1 d1x1 p1x1 g1<TAB>f2
//! ```

use crate::error::Result;
use crate::exec::Arena;
use crate::jit::{call_kernel, scratch_len, Buffers, Extra};
use crate::memory::Budget;
use crate::team::Team;
use cnnjit_codegen::choice::{self, ChoiceKey, Pick, Tuned};
use cnnjit_codegen::conv::ConvSpec;
use cnnjit_codegen::lower::{lower, Capabilities, LoweredStep};
use cnnjit_codegen::{Jit, Kernel};
use cnnjit_ir::{Graph, Op};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The environment variable naming the cache's folder (tests point it at a
/// temporary one).
pub const CACHE_ENV: &str = "CNNJIT_CACHE_DIR";

/// The cache file's name in its folder.
pub const CACHE_FILE: &str = "choices.tsv";

/// The cache file's first line.
pub const HEADER: &str = "# cnnjit choices 1";

/// The largest cache file read (a line is about 100 bytes: ten thousand
/// shapes).
pub const MAX_CACHE_BYTES: u64 = 1 << 20;

/// The cache file: `$CNNJIT_CACHE_DIR/choices.tsv`, else under
/// `$XDG_CACHE_HOME/cnnjit`, else `$HOME/.cache/cnnjit`; `None` if none of
/// them is set.
pub fn cache_path() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = var(CACHE_ENV)
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("cnnjit")))
        .or_else(|| var("HOME").map(|d| PathBuf::from(d).join(".cache").join("cnnjit")))?;
    Some(dir.join(CACHE_FILE))
}

/// This CPU's model name, the cache's first key: `/proc/cpuinfo`'s first
/// `model name` (read at most 64 KiB), else `unknown`. Tabs and line breaks
/// become spaces, so it is one field of a line.
pub fn cpu_model() -> String {
    let mut text = String::new();
    let read = std::fs::File::open("/proc/cpuinfo")
        .and_then(|f| f.take(1 << 16).read_to_string(&mut text));
    let name = read.ok().and_then(|_| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == "model name")
            .map(|(_, v)| v.trim().to_string())
    });
    match name {
        Some(n) if !n.is_empty() => n.replace(['\t', '\n', '\r'], " "),
        _ => "unknown".to_string(),
    }
}

/// Why a cache file was not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// There is no file (or no cache folder is known).
    #[error("no cache file")]
    Missing,
    /// It could not be read, or is not a regular file.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// It is larger than [`MAX_CACHE_BYTES`].
    #[error("{bytes} bytes, more than the {MAX_CACHE_BYTES} a cache may have")]
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// It is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
    /// Its first line is not [`HEADER`].
    #[error("not a cnnjit choice cache (first line is not `{HEADER}`)")]
    Header,
    /// Its last line has no line break: it was cut short.
    #[error("truncated (the last line is unterminated)")]
    Truncated,
    /// A line is not `cpu<TAB>key<TAB>pick`.
    #[error("line {line} is malformed: {why}")]
    Corrupt {
        /// Its number, from 1.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// It holds no choice for this CPU.
    #[error("it holds no choices for this CPU ({cpu}), only for {other}")]
    Foreign {
        /// This CPU.
        cpu: String,
        /// A CPU it holds choices for (none if empty).
        other: String,
    },
}

/// Every line of a cache file: `(cpu, key) -> pick`.
type Lines = BTreeMap<(String, ChoiceKey), Pick>;

/// Parses a cache file's text (module doc's format, every line checked).
fn parse(text: &str) -> std::result::Result<Lines, Ignored> {
    let body = text.strip_prefix(HEADER).ok_or(Ignored::Header)?;
    let body = match body.strip_prefix('\n') {
        Some(body) => body,
        None if body.is_empty() => return Err(Ignored::Truncated),
        None => return Err(Ignored::Header),
    };
    if !body.is_empty() && !body.ends_with('\n') {
        return Err(Ignored::Truncated);
    }
    let mut lines = Lines::new();
    for (i, line) in body.lines().enumerate() {
        let corrupt = |why| Ignored::Corrupt { line: i + 2, why };
        let mut fields = line.split('\t');
        let (Some(cpu), Some(key), Some(pick), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(corrupt("not three tab-separated fields"));
        };
        if cpu.is_empty() {
            return Err(corrupt("no CPU model"));
        }
        let key = ChoiceKey::parse(key).ok_or_else(|| corrupt("not a convolution's key"))?;
        let pick = Pick::from_name(pick).ok_or_else(|| corrupt("not direct, f2 or f4"))?;
        lines.insert((cpu.to_string(), key), pick);
    }
    Ok(lines)
}

/// Reads the cache file at `path`, bounded, whole or not at all.
fn read_lines(path: &Path) -> std::result::Result<Lines, Ignored> {
    let file = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Ignored::Missing),
        other => other.map_err(|e| Ignored::Unreadable(e.to_string()))?,
    };
    let meta = file
        .metadata()
        .map_err(|e| Ignored::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(Ignored::Unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_CACHE_BYTES {
        return Err(Ignored::TooLarge { bytes: meta.len() });
    }
    let mut bytes = Vec::new();
    // One byte more than allowed: a file grown since its metadata is caught.
    file.take(MAX_CACHE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Ignored::Unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_CACHE_BYTES {
        return Err(Ignored::TooLarge {
            bytes: bytes.len() as u64,
        });
    }
    parse(std::str::from_utf8(&bytes).map_err(|_| Ignored::NotText)?)
}

/// The picks the cache file at `path` holds for CPU `cpu`, or why it is
/// not used (module doc).
pub fn read(path: &Path, cpu: &str) -> std::result::Result<Tuned, Ignored> {
    let lines = read_lines(path)?;
    let mut tuned = Tuned::new();
    for ((line_cpu, key), pick) in &lines {
        if line_cpu == cpu {
            tuned.insert(key.clone(), *pick);
        }
    }
    if tuned.is_empty() {
        let other = lines.keys().next().map_or("none", |(c, _)| c.as_str());
        return Err(Ignored::Foreign {
            cpu: cpu.to_string(),
            other: other.to_string(),
        });
    }
    Ok(tuned)
}

/// Writes `picks` for CPU `cpu` into the cache file at `path`, keeping the
/// lines of a valid existing file for other CPUs and keys (an invalid one is
/// replaced); creates the folder, writes a temporary file beside the cache
/// and renames it over, so a reader sees the old file or the new one.
pub fn write(path: &Path, cpu: &str, picks: &Tuned) -> std::io::Result<()> {
    let mut lines = read_lines(path).unwrap_or_default();
    let cpu = cpu.replace(['\t', '\n', '\r'], " ");
    for (key, pick) in picks.iter() {
        lines.insert((cpu.clone(), key.clone()), pick);
    }
    let mut text = format!("{HEADER}\n");
    for ((c, key), pick) in &lines {
        text.push_str(&format!("{c}\t{key}\t{pick}\n"));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Where a model's algorithm choices came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tuning {
    /// The static cost model, as the options asked (or the reference kernels).
    Static,
    /// The cache file at `path`, which held `picks` choices for this CPU.
    Cache {
        /// The file.
        path: PathBuf,
        /// Its picks for this CPU.
        picks: usize,
    },
    /// The picks given to [`crate::Model::with_tuned`].
    Given {
        /// How many.
        picks: usize,
    },
    /// The static cost model, because the cache file was not used.
    Ignored {
        /// The file, if a cache folder is known.
        path: Option<PathBuf>,
        /// Why.
        reason: Ignored,
    },
}

impl fmt::Display for Tuning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tuning::Static => write!(f, "static cost model"),
            Tuning::Cache { path, picks } => {
                write!(f, "{picks} measured choices from {}", path.display())
            }
            Tuning::Given { picks } => write!(f, "{picks} measured choices given"),
            Tuning::Ignored { path: None, reason } => {
                write!(f, "static cost model: no cache folder ({reason})")
            }
            Tuning::Ignored {
                path: Some(path),
                reason,
            } => write!(
                f,
                "static cost model: cache {} ignored: {reason}",
                path.display()
            ),
        }
    }
}

/// The picks of the cache at [`cache_path`] for this CPU, and where they
/// came from; an empty table where it was not used.
pub fn load() -> (Tuned, Tuning) {
    let Some(path) = cache_path() else {
        let reason = Ignored::Missing;
        return (Tuned::new(), Tuning::Ignored { path: None, reason });
    };
    match read(&path, &cpu_model()) {
        Ok(tuned) => {
            let picks = tuned.len();
            (tuned, Tuning::Cache { path, picks })
        }
        Err(reason) => (
            Tuned::new(),
            Tuning::Ignored {
                path: Some(path),
                reason,
            },
        ),
    }
}

/// One convolution's measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Its key.
    pub key: ChoiceKey,
    /// The static cost model's pick.
    pub static_pick: Pick,
    /// Each candidate's median time, in seconds, simplest first.
    pub times: Vec<(Pick, f64)>,
}

impl Timing {
    /// The fastest candidate and its time (ties to the simpler).
    pub fn fastest(&self) -> (Pick, f64) {
        self.times
            .iter()
            .copied()
            .fold((Pick::Direct, f64::INFINITY), |best, (p, t)| {
                if t < best.1 {
                    (p, t)
                } else {
                    best
                }
            })
    }

    /// The time of `pick`, if it was a candidate.
    pub fn time(&self, pick: Pick) -> Option<f64> {
        self.times.iter().find(|(p, _)| *p == pick).map(|(_, t)| *t)
    }
}

/// Calls per measurement after the warm-up; the median is kept.
const RUNS: usize = 5;

/// The distinct convolutions (by [`ChoiceKey`]) `graph` lowers to under
/// `caps`, each with the first spec met, in plan order.
pub fn convolutions(graph: &Graph, caps: &Capabilities) -> Result<Vec<ConvSpec>> {
    let plan = cnnjit_ir::plan::plan(graph).map_err(|source| crate::Error::Plan {
        net: graph.name.to_string(),
        source,
    })?;
    let mut seen = std::collections::BTreeSet::new();
    let mut specs = Vec::new();
    for step in lower(graph, &plan, caps) {
        let LoweredStep::Kernel(step) = step else {
            continue;
        };
        let is_conv = (step.parts.first()).is_some_and(|p| match &graph.node(p.layer).op {
            Op::Conv2d(_) => true,
            Op::Input
            | Op::Dense(_)
            | Op::Pool2d(_)
            | Op::GlobalPool(_)
            | Op::Flatten
            | Op::BatchNorm { .. }
            | Op::Activation(_)
            | Op::PRelu
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Identity
            | Op::Lrn(_)
            | Op::Concat
            | Op::Add
            | Op::Scale
            | Op::Shuffle { .. }
            | Op::Slice { .. }
            | Op::Upsample(_)
            | Op::Deconv(_)
            | Op::LayerNorm { .. }
            | Op::Affine { .. } => false,
        });
        if let Some(spec) = choice::conv_spec(&step.kernel).filter(|_| is_conv) {
            if seen.insert(ChoiceKey::of(&spec)) {
                specs.push(spec);
            }
        }
    }
    Ok(specs)
}

/// A team of `threads` threads for [`time_spec`] (0: every core), `None`
/// for one thread or where the threads cannot start (as a model's).
pub fn team(threads: usize) -> Result<Option<Team>> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads > crate::model::MAX_THREADS {
        return Err(crate::Error::TooManyThreads {
            requested: threads,
            max: crate::model::MAX_THREADS,
        });
    }
    Ok((threads > 1).then(|| Team::new(threads).ok()).flatten())
}

/// Times every candidate of `spec` (Winograd tiles up to `caps`'
/// `winograd_tile`, cut for its L2) on `team` (one thread if `None`): each
/// kernel compiled alone, called once to warm up, then five times; the
/// median. Buffers are taken from `budget` and filled with random numbers.
pub fn time_spec(
    spec: &ConvSpec,
    caps: &Capabilities,
    team: Option<&Team>,
    budget: &mut Budget,
) -> Result<Timing> {
    let key = ChoiceKey::of(spec);
    let static_pick = choice::static_pick(spec, caps.winograd_tile);
    let mut times = Vec::new();
    for (pick, kernel) in choice::candidates(spec, caps) {
        times.push((pick, time_kernel(&kernel, team, &mut budget.clone())?));
    }
    Ok(Timing {
        key,
        static_pick,
        times,
    })
}

/// The median seconds of one call of `kernel` on random buffers.
fn time_kernel(kernel: &Kernel, team: Option<&Team>, budget: &mut Budget) -> Result<f64> {
    let layer = || {
        format!(
            "{} ({})",
            choice::conv_spec(kernel)
                .map(|s| ChoiceKey::of(&s).to_string())
                .unwrap_or_default(),
            kernel.algorithm().name()
        )
    };
    let internal = |e| crate::Error::Internal {
        layer: layer(),
        source: crate::InternalError::Codegen(e),
    };
    let lengths = kernel.lengths();
    let mut jit = Jit::new().map_err(internal)?;
    let id = jit.compile(kernel).map_err(internal)?;
    let program = jit.finish().map_err(internal)?;
    let what = || format!("timing a {} kernel", kernel.algorithm().name());
    // 64-byte aligned, as a model's arena and working memory are, so the
    // kernels are timed on the alignment they run on.
    let mut random = |len: usize, seed: u64| -> Result<Arena> {
        let mut v = Arena::new(len as u64 * 4, budget, what)?;
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for x in v.as_mut_slice() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *x = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        Ok(v)
    };
    let input = random(lengths.input, 1)?;
    let weights = random(lengths.weights, 2)?;
    let params = random(lengths.params, 3)?;
    let extra = random(lengths.extra, 4)?;
    let mut output = random(lengths.output, 5)?;
    let mut scratch = random(scratch_len(&lengths, team), 6)?;
    let mut call = || -> Result<f64> {
        evict(weights.as_slice());
        let start = Instant::now();
        let buffers = Buffers {
            input: std::hint::black_box(input.as_slice()),
            weights: weights.as_slice(),
            params: params.as_slice(),
            extra: Extra::Buffer(extra.as_slice()),
            output: output.as_mut_slice(),
            scratch: scratch.as_mut_slice(),
        };
        call_kernel(&program, id, &lengths, buffers, team).map_err(|e| crate::Error::Internal {
            layer: layer(),
            source: crate::InternalError::Call(e),
        })?;
        Ok(start.elapsed().as_secs_f64())
    };
    call()?;
    let mut samples = (0..RUNS).map(|_| call()).collect::<Result<Vec<f64>>>()?;
    samples.sort_by(f64::total_cmp);
    Ok(samples[RUNS / 2])
}

/// Drops `data`'s cache lines from every level of the cache (`clflush`), so
/// the next call reads it from memory. In a network a layer's weights were
/// last read a whole pass before, behind every other layer's weights and
/// tensors; a layer timed alone on a host whose last-level cache holds its
/// weights (an Emerald Rapids Xeon's 260 MB L3) reads them warm instead,
/// which flatters Winograd's larger `U`. Timed warm, ResNet's 7x7x512 3x3
/// layer took 1.07 ms in F(2x2) and 1.38 direct on two threads, so `tune`
/// cached F(2x2), which took 4.15 ms against the direct kernel's 2.3 inside
/// ResNet-18 on one thread (2026-12-07). The layer's input stays where the
/// warm-up call left it, as the previous layer leaves it in a network.
fn evict(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_clflush, _mm_mfence};
        // One address every 64 bytes (a cache line) meets every line `data`
        // starts in but the one its last byte lies in where `data` is not
        // line-aligned, so that byte too.
        let bytes = std::mem::size_of_val(data);
        let start = data.as_ptr().cast::<u8>();
        let last = bytes.checked_sub(1);
        for offset in (0..bytes).step_by(64).chain(last) {
            // SAFETY: `offset < bytes`, so `start + offset` is inside the
            // live slice `data`; `clflush` (SSE2, part of x86-64) neither
            // changes memory nor faults on a valid address.
            unsafe { _mm_clflush(start.add(offset)) };
        }
        // SAFETY: SSE2 is part of x86-64; a fence has no operands.
        unsafe { _mm_mfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
