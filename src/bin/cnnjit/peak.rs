//! The machine's peak: single-core fp32 FMA throughput, for `cnnjit peak`
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
