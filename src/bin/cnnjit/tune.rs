//! `cnnjit tune`: times every candidate algorithm of each distinct
//! convolution of a net on this CPU (`cnnjit::runtime::tune`), prints the
//! table of the static model's pick against the fastest, and caches the
//! fastest for `Model::new` to use.

use cnnjit::codegen::choice::{Pick, Tuned};
use cnnjit::codegen::lower::Capabilities;
use cnnjit::runtime::memory::Budget;
use cnnjit::runtime::tune::{self, Timing};
use std::fmt::Write as _;
use std::path::PathBuf;

/// A pick "within 5%" of the fastest takes at most this much of its time.
pub const WITHIN: f64 = 1.05;

/// What `cnnjit tune` does.
pub struct TuneArgs {
    /// The model options whose ISA, Winograd bound and threads are timed.
    pub options: cnnjit::Options,
    /// The cache file to write, if not the default one.
    pub cache: Option<PathBuf>,
    /// Measure and print, but write nothing.
    pub dry_run: bool,
}

/// Measures `graph`'s convolutions, writes the cache, and returns the table.
pub fn tune(graph: &cnnjit::Graph, args: &TuneArgs) -> Result<String, String> {
    let name = &graph.name;
    let fail = |e: cnnjit::Error| format!("error: {name}: {e}");
    let options = args.options;
    let largest_tile = options.winograd.largest_tile();
    let caps = Capabilities::host(options.native(), largest_tile, options.fuse_separable);
    let specs = tune::convolutions(graph, &caps).map_err(fail)?;
    let team = tune::team(options.threads).map_err(fail)?;
    let threads = team.as_ref().map_or(1, |t| t.threads());
    let mut budget = Budget::new(options.memory_limit);
    let mut timings = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let timing = tune::time_spec(spec, &caps, team.as_ref(), &mut budget).map_err(fail)?;
        eprintln!("[{}/{}] {}", i + 1, specs.len(), progress(&timing));
        timings.push(timing);
    }
    let mut tuned = Tuned::new();
    for t in &timings {
        tuned.insert(t.key.clone(), t.fastest().0);
    }
    let cpu = tune::cpu_model();
    let mut out = table(name, &cpu, threads, &timings);
    if args.dry_run {
        out.push_str("not written (--dry-run)\n");
        return Ok(out);
    }
    let path = args
        .cache
        .clone()
        .or_else(tune::cache_path)
        .ok_or("error: no cache folder: set CNNJIT_CACHE_DIR, XDG_CACHE_HOME or HOME")?;
    tune::write(&path, &cpu, &tuned)
        .map_err(|e| format!("error: cannot write {}: {e}", path.display()))?;
    let _ = writeln!(
        out,
        "wrote {} choices for {cpu} to {}",
        tuned.len(),
        path.display()
    );
    Ok(out)
}

/// Milliseconds, three decimals.
fn ms(seconds: f64) -> String {
    format!("{:.3}", seconds * 1e3)
}

/// One progress line: the shape and each candidate's time.
fn progress(t: &Timing) -> String {
    let times: Vec<String> = (t.times.iter())
        .map(|(p, s)| format!("{p} {} ms", ms(*s)))
        .collect();
    format!("{}: {}, fastest {}", t.key, times.join(", "), t.fastest().0)
}

/// The table: per shape, the static model's pick, each candidate's time,
/// the fastest, and whether the pick is within 5% of it; then a count.
fn table(net: &str, cpu: &str, threads: usize, timings: &[Timing]) -> String {
    let mut out = format!("{net} on {cpu}, {threads} thread(s), times in ms (median)\n");
    let _ = writeln!(
        out,
        "{:<52} {:>6} {:>9} {:>9} {:>9} {:>7} {:>6}",
        "convolution", "static", "direct", "f2", "f4", "fastest", "within"
    );
    let mut good = 0;
    for t in timings {
        let cell = |p: Pick| t.time(p).map_or_else(|| "-".to_string(), ms);
        let (fastest, best) = t.fastest();
        let ratio = t.time(t.static_pick).map_or(f64::INFINITY, |s| s / best);
        let within = ratio <= WITHIN;
        good += usize::from(within);
        let verdict = if within {
            "yes".to_string()
        } else {
            format!("{:+.0}%", (ratio - 1.0) * 100.0)
        };
        let _ = writeln!(
            out,
            "{:<52} {:>6} {:>9} {:>9} {:>9} {:>7} {:>6}",
            t.key.to_string(),
            t.static_pick.name(),
            cell(Pick::Direct),
            cell(Pick::F2),
            cell(Pick::F4),
            fastest.name(),
            verdict
        );
    }
    let _ = writeln!(
        out,
        "the static model's pick is within 5% of the fastest on {good} of {} shapes",
        timings.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnnjit::codegen::choice::ChoiceKey;

    fn timing(static_pick: Pick, times: Vec<(Pick, f64)>) -> Timing {
        let key = ChoiceKey::parse("avx2 8x8x4>8x8x4 k3x3 s1x1 d1x1 p1x1 g1").unwrap();
        Timing {
            key,
            static_pick,
            times,
        }
    }

    #[test]
    fn the_table_says_whether_the_pick_is_within_five_percent() {
        // F(4x4) picked at 1.10 ms, F(2x2) fastest at 1.00 ms: 10% over.
        let slow = timing(
            Pick::F4,
            vec![(Pick::Direct, 2e-3), (Pick::F2, 1e-3), (Pick::F4, 1.1e-3)],
        );
        // Direct picked at 1.04 ms against F(2x2)'s 1.00 ms: within.
        let close = timing(
            Pick::Direct,
            vec![(Pick::Direct, 1.04e-3), (Pick::F2, 1e-3)],
        );
        let out = table("Net", "cpu", 1, &[slow, close]);
        let rows: Vec<&str> = out.lines().collect();
        assert!(rows[2].ends_with("f2   +10%"), "{out}");
        assert!(rows[3].ends_with("f2    yes"), "{out}");
        assert!(rows[3].contains("        -"), "{out}");
        assert!(
            out.ends_with("within 5% of the fastest on 1 of 2 shapes\n"),
            "{out}"
        );
    }
}
