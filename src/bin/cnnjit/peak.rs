//! The machine's peaks: single-core fp32 FMA throughput and memory
//! bandwidth (a stream triad), for `cnnjit peak`
//! and for putting the JIT's GFLOP/s in proportion.
//!
//! Each figure comes from a loop of independent fused multiply-adds
//! (`acc = acc * m + c`) on [`ACCUMULATORS`] registers, enough to cover the
//! FMA latency on every current x86 core (Zen 4: 4 cycles x 2 pipes; Intel:
//! 4 cycles x 2 ports), so the loop is bound by throughput, not latency.
//! One FMA counts as 2 FLOPs per lane. The best of several short
//! repetitions is reported: these machines are shared and noisy, and the
//! best run is the one least disturbed.
//!
//! On x86_64 the 128-, 256- and 512-bit loops use `core::arch` intrinsics
//! (`_mm_fmadd_ps`, `_mm256_fmadd_ps`, `_mm512_fmadd_ps`), each compiled with
//! `#[target_feature]` and called only after run-time detection; a CPU
//! without FMA is measured with SSE multiplies and adds instead. Elsewhere a
//! portable multiply-add loop (auto-vectorised where the target allows)
//! stands in for the 128-bit figure and the wider figures are `None`.
//!
//! Memory bandwidth is STREAM's triad (`a[i] = b[i] + s c[i]`, 12 bytes per
//! element, [`TRIAD_BYTES_PER_ELEMENT`]) over three arrays sized by
//! [`triad_array_bytes`] (at least four times the last-level cache sysfs
//! reports and 256 MiB, within half the memory available), on one thread
//! and on all, the best of a few passes: the roof a GEMV, which reads each
//! weight once, runs against (`cnnjit bench` reports each dense step's
//! fraction of it).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Independent accumulators per loop: more than latency x pipes (8 on
/// Zen 4 and recent Intel cores) and few enough to stay in the 16
/// architectural vector registers with the two operands.
pub const ACCUMULATORS: usize = 12;

/// Peak fp32 throughput of one core (one thread), in GFLOP/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// 128-bit FMA (4 lanes); on targets other than x86_64, a portable
    /// multiply-add loop.
    pub gflops_128: f64,
    /// 256-bit FMA (8 lanes), where AVX2 and FMA are available.
    pub gflops_256: Option<f64>,
    /// 512-bit FMA (16 lanes), where AVX-512F is available. Zen 4 executes
    /// these as two 256-bit halves, so it matches the 256-bit figure there.
    pub gflops_512: Option<f64>,
}

/// Measures [`Peak`] on the calling thread, spending about `duration` on
/// each vector width the CPU supports, in repetitions of at most 2 ms (at
/// least three per width), and reports the best repetition of each.
pub fn measure_peak(duration: Duration) -> Peak {
    Peak {
        gflops_128: best_of(duration, 4, kernels::run_128),
        gflops_256: kernels::run_256().map(|run| best_of(duration, 8, run)),
        gflops_512: kernels::run_512().map(|run| best_of(duration, 16, run)),
    }
}

/// The best GFLOP/s of `run(iterations)` (which performs `iterations` x
/// [`ACCUMULATORS`] multiply-adds on `lanes` lanes each) over repetitions
/// filling `duration`.
fn best_of(duration: Duration, lanes: usize, run: fn(u64) -> f32) -> f64 {
    const MIN_REPS: usize = 3;
    const TARGET_REPS: u32 = 8;
    // Short repetitions: on a busy machine a 2 ms window without preemption
    // is far likelier than a 25 ms one, and the best window is the figure.
    const MAX_REP_S: f64 = 2e-3;
    let flops_per_iter = (2 * lanes * ACCUMULATORS) as f64;
    // Calibrate: grow the iteration count until one run takes ~100 us.
    let mut iters: u64 = 1024;
    let per_iter = loop {
        let t = Instant::now();
        black_box(run(black_box(iters)));
        let s = t.elapsed().as_secs_f64();
        if s > 1e-4 || iters >= 1 << 40 {
            break s / iters as f64;
        }
        iters *= 4;
    };
    let rep_s = (duration.as_secs_f64() / f64::from(TARGET_REPS)).clamp(1e-4, MAX_REP_S);
    let iters = ((rep_s / per_iter.max(1e-12)) as u64).max(1024);
    let start = Instant::now();
    let mut best = 0.0f64;
    let mut reps = 0;
    while reps < MIN_REPS || start.elapsed() < duration {
        let t = Instant::now();
        black_box(run(black_box(iters)));
        let s = t.elapsed().as_secs_f64().max(1e-9);
        best = best.max(flops_per_iter * iters as f64 / s / 1e9);
        reps += 1;
    }
    best
}

#[cfg(target_arch = "x86_64")]
mod kernels {
    use super::ACCUMULATORS;
    use core::arch::x86_64::*;
    use std::hint::black_box;

    /// Multiplier and addend: `acc * M + C` converges to 1 without
    /// overflowing or reaching subnormals however long the loop runs.
    const M: f32 = 0.999_999;
    const C: f32 = 1e-6;

    /// The 128-bit loop: FMA where the CPU has it, SSE mul + add otherwise.
    pub(super) fn run_128(iters: u64) -> f32 {
        if is_x86_feature_detected!("fma") {
            // SAFETY: `fma128` needs the `fma` feature, detected just above.
            unsafe { fma128(iters) }
        } else {
            // SAFETY: `sse_mul_add` needs `sse`, part of the x86_64 baseline.
            unsafe { sse_mul_add(iters) }
        }
    }

    /// The 256-bit loop, if the CPU has AVX2 and FMA.
    pub(super) fn run_256() -> Option<fn(u64) -> f32> {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Some(|iters| {
                // SAFETY: this closure is only handed out after `avx2` and
                // `fma` were detected at run time (above).
                unsafe { fma256(iters) }
            })
        } else {
            None
        }
    }

    /// The 512-bit loop, if the CPU has AVX-512F (and FMA, which every
    /// AVX-512 CPU has; both are checked).
    pub(super) fn run_512() -> Option<fn(u64) -> f32> {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            Some(|iters| {
                // SAFETY: this closure is only handed out after `avx512f`
                // and `fma` were detected at run time (above).
                unsafe { fma512(iters) }
            })
        } else {
            None
        }
    }

    /// One throughput loop per vector width: `ACCUMULATORS` independent
    /// chains of `acc = step(acc)`, then a sum so nothing is optimised away.
    macro_rules! throughput_loop {
        ($(#[$doc:meta])* $name:ident, $features:literal, $set1:ident, $zero:ident, $add:ident, $to_f32:ident, |$a:ident, $m:ident, $c:ident| $step:expr) => {
            $(#[$doc])*
            #[target_feature(enable = $features)]
            fn $name(iters: u64) -> f32 {
                let $m = $set1(black_box(M));
                let $c = $set1(black_box(C));
                let mut acc = [$set1(black_box(1.0)); ACCUMULATORS];
                for _ in 0..iters {
                    for $a in &mut acc {
                        *$a = $step;
                    }
                }
                let acc = black_box(acc);
                $to_f32(acc.iter().fold($zero(), |s, &a| $add(s, a)))
            }
        };
    }

    throughput_loop!(
        fma128,
        "fma",
        _mm_set1_ps,
        _mm_setzero_ps,
        _mm_add_ps,
        _mm_cvtss_f32,
        |a, m, c| _mm_fmadd_ps(*a, m, c)
    );
    throughput_loop!(
        /// SSE (baseline on x86_64): a multiply and an add per lane, 2 FLOPs.
        sse_mul_add, "sse", _mm_set1_ps, _mm_setzero_ps, _mm_add_ps, _mm_cvtss_f32, |a, m, c| _mm_add_ps(_mm_mul_ps(*a, m), c)
    );
    throughput_loop!(
        fma256,
        "avx2,fma",
        _mm256_set1_ps,
        _mm256_setzero_ps,
        _mm256_add_ps,
        _mm256_cvtss_f32,
        |a, m, c| _mm256_fmadd_ps(*a, m, c)
    );
    throughput_loop!(
        fma512,
        "avx512f,fma",
        _mm512_set1_ps,
        _mm512_setzero_ps,
        _mm512_add_ps,
        _mm512_reduce_add_ps,
        |a, m, c| _mm512_fmadd_ps(*a, m, c)
    );
}

#[cfg(not(target_arch = "x86_64"))]
mod kernels {
    use super::ACCUMULATORS;
    use std::hint::black_box;

    const M: f32 = 0.999_999;
    const C: f32 = 1e-6;

    /// A portable multiply-add loop on `ACCUMULATORS` groups of 4 lanes
    /// (2 FLOPs per lane per step), which the compiler may vectorise to the
    /// target's 128-bit SIMD (NEON, SIMD128, ...).
    pub(super) fn run_128(iters: u64) -> f32 {
        let m = black_box(M);
        let c = black_box(C);
        let mut acc = [[black_box(1.0f32); 4]; ACCUMULATORS];
        for _ in 0..iters {
            for group in &mut acc {
                for a in group.iter_mut() {
                    *a = *a * m + c;
                }
            }
        }
        black_box(acc).iter().flatten().sum()
    }

    pub(super) fn run_256() -> Option<fn(u64) -> f32> {
        None
    }

    pub(super) fn run_512() -> Option<fn(u64) -> f32> {
        None
    }
}

/// Bytes a triad moves per element, STREAM's count: `a[i] = b[i] + s c[i]`
/// reads `b[i]` and `c[i]` and writes `a[i]`, 4 bytes each (the
/// write-allocate read of `a[i]`'s line is not counted).
pub const TRIAD_BYTES_PER_ELEMENT: u64 = 3 * 4;

/// The smallest triad array, 256 MiB: past any private cache and most last
/// levels, whatever sysfs reports.
pub const TRIAD_MIN_BYTES: u64 = 256 << 20;

/// Memory bandwidth measured by a stream triad, in GB/s (1e9 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth {
    /// On the calling thread alone.
    pub gbs_one: f64,
    /// On `threads` threads, each its share of the arrays.
    pub gbs_all: f64,
    /// The threads of `gbs_all`.
    pub threads: usize,
    /// Bytes of each of the three arrays.
    pub array_bytes: u64,
}

/// The rule for the triad's array size: each of the three arrays at least
/// four times the last-level cache (`llc` bytes, if known) and at least
/// [`TRIAD_MIN_BYTES`], so the caches hold a negligible part of them; the
/// three at most half of `budget` (the memory available), and never below
/// 1 MiB. A whole number of 64-byte lines.
pub fn triad_array_bytes(llc: Option<u64>, budget: u64) -> u64 {
    let wanted = llc
        .map_or(0, |llc| llc.saturating_mul(4))
        .max(TRIAD_MIN_BYTES);
    let allowed = budget / 2 / 3;
    (wanted.min(allowed).max(1 << 20)) / 64 * 64
}

/// GB/s of `passes` triads over arrays of `elements` floats in `seconds`.
pub fn triad_gbs(elements: u64, passes: u64, seconds: f64) -> f64 {
    (elements * passes * TRIAD_BYTES_PER_ELEMENT) as f64 / seconds.max(1e-12) / 1e9
}

/// The largest cache of CPU 0 that sysfs reports, in bytes.
pub fn last_level_cache() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|entry| {
        let size = std::fs::read_to_string(entry.ok()?.path().join("size")).ok()?;
        parse_cache_size(size.trim())
    })
    .max()
}

/// sysfs's `32K`, `480M`, `1G` or plain bytes.
fn parse_cache_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Measures [`Bandwidth`]: arrays of `array_bytes` each, first touched by
/// the threads that later stream them, the best of `passes` triads on one
/// thread and on `threads` (each a contiguous share of every array).
pub fn measure_triad(array_bytes: u64, threads: usize, passes: usize) -> Bandwidth {
    let n = (array_bytes / 4) as usize;
    let threads = threads.max(1);
    let mut a = vec![0.0f32; n];
    let mut b = vec![0.0f32; n];
    let mut c = vec![0.0f32; n];
    let share = n.div_ceil(threads).max(1);
    // First touch on the threads that stream each share.
    std::thread::scope(|s| {
        for ((a, b), c) in a
            .chunks_mut(share)
            .zip(b.chunks_mut(share))
            .zip(c.chunks_mut(share))
        {
            s.spawn(move || {
                a.fill(0.0);
                b.fill(1.0);
                c.fill(2.0);
            });
        }
    });
    let best = |a: &mut [f32], threads: usize| {
        let share = a.len().div_ceil(threads).max(1);
        (0..passes.max(1))
            .map(|_| {
                let t = Instant::now();
                std::thread::scope(|s| {
                    for ((a, b), c) in a
                        .chunks_mut(share)
                        .zip(b.chunks(share))
                        .zip(c.chunks(share))
                    {
                        s.spawn(move || triad(a, b, c, black_box(3.0)));
                    }
                });
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let one = best(&mut a, 1);
    let all = best(&mut a, threads);
    black_box(&a);
    Bandwidth {
        gbs_one: triad_gbs(n as u64, 1, one),
        gbs_all: triad_gbs(n as u64, 1, all),
        threads,
        array_bytes: n as u64 * 4,
    }
}

/// `a[i] = b[i] + s c[i]`, vectorised by the compiler.
fn triad(a: &mut [f32], b: &[f32], c: &[f32], s: f32) {
    for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
        *a = b + s * c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: 2^20 elements, 3 passes in 0.5 s move 2^20 x 3 x 12 bytes
    /// = 37,748,736 bytes, 0.0755 GB/s.
    #[test]
    fn the_triad_counts_twelve_bytes_per_element() {
        assert_eq!(TRIAD_BYTES_PER_ELEMENT, 12);
        let gbs = triad_gbs(1 << 20, 3, 0.5);
        assert!((gbs - 37_748_736.0 / 0.5 / 1e9).abs() < 1e-12, "{gbs}");
    }

    /// The size rule, by hand: 480 MiB of L3 asks 1920 MiB per array; a
    /// 32 MiB L3 asks the 256 MiB floor; 3 GiB of budget allows 512 MiB.
    #[test]
    fn the_arrays_outsize_the_cache_within_the_budget() {
        let mib = 1u64 << 20;
        assert_eq!(triad_array_bytes(Some(480 * mib), 64 << 30), 1920 * mib);
        assert_eq!(triad_array_bytes(Some(32 * mib), 64 << 30), 256 * mib);
        assert_eq!(triad_array_bytes(None, 64 << 30), 256 * mib);
        assert_eq!(triad_array_bytes(Some(480 * mib), 3 << 30), 512 * mib);
        assert_eq!(triad_array_bytes(Some(480 * mib), 0), mib);
        assert_eq!(parse_cache_size("480M"), Some(480 * mib));
        assert_eq!(parse_cache_size("48K"), Some(48 << 10));
        assert_eq!(parse_cache_size("1024"), Some(1024));
        assert_eq!(parse_cache_size("x"), None);
    }

    /// A small triad writes `b + 3 c` and reports a finite positive rate.
    #[test]
    fn a_small_triad_runs() {
        let (b, c) = ([1.0f32, 2.0, 3.0], [0.5f32, 0.25, -1.0]);
        let mut a = [0.0f32; 3];
        triad(&mut a, &b, &c, 3.0);
        assert_eq!(a, [2.5, 2.75, 0.0]);
        let bw = measure_triad(1 << 20, 2, 2);
        assert!(bw.gbs_one.is_finite() && bw.gbs_one > 0.0);
        assert!(bw.gbs_all.is_finite() && bw.gbs_all > 0.0);
        assert_eq!(bw.array_bytes, 1 << 20);
    }
}
