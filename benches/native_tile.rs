//! The native GEMM tiles alone, one thread, AVX2 against AVX-512 and
//! AVX-512's wide tile: the 56x56x64 -> 256 1x1 convolution as a plain GEMM
//! (3136 x 64 times 64 x 256) and the 28x28x256 -> 256 one (784 x 256 times
//! 256 x 256), each 16-column block of `B` (each pair of blocks, for the
//! wide tile) in turn over every row tile of `A`, as conv's generated code
//! calls them. Each tile runs at its own rows and, for the record of the
//! module doc's choice, at other row counts it has.
//! Throughput is FLOPs (2 per multiply-add).
//!
//! `cargo bench --bench native_tile`.

use cnnjit::codegen::native::{Isa, Tap, WIDE_ROWS, WIDTH};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

/// `C = A B` for `A` `m x k` (rows `k` floats apart), `B` packed
/// `[n / 16][k][16]`, `C` `[n / 16][m][16]`, on `isa`'s tiles of `rows` rows.
fn gemm(
    isa: Isa,
    rows: usize,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    let tiles = isa.tiles().expect("the host runs the ISA");
    let tap = [Tap { a: 0, b: 0 }];
    for block in 0..n / WIDTH {
        let b = &b[block * k * WIDTH..][..k * WIDTH];
        let c = &mut c[block * m * WIDTH..][..m * WIDTH];
        for first in (0..m).step_by(rows) {
            let r = rows.min(m - first);
            // SAFETY: the host runs `isa`; the tile reads rows `first..first
            // + r` of `A` (`k` floats each, inside `a`), `B`'s block (`k x
            // 16` floats inside `b`) through its one tap, and writes `r x
            // 16` floats of `C`'s block, inside `c`.
            unsafe {
                tiles[r - 1](
                    a[first * k..].as_ptr(),
                    (k * 4) as i64,
                    b.as_ptr(),
                    tap.as_ptr(),
                    1,
                    k as i64,
                    c[first * WIDTH..].as_mut_ptr(),
                )
            };
        }
    }
}

/// [`gemm`] on `isa`'s wide tiles of `rows` rows, two blocks a call (`n`
/// a multiple of 32).
fn wide_gemm(
    isa: Isa,
    rows: usize,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    let tiles = isa.wide_tiles().expect("the host runs the wide tile");
    let tap = [Tap { a: 0, b: 0 }];
    for pair in 0..n / (2 * WIDTH) {
        let b = &b[2 * pair * k * WIDTH..][..2 * k * WIDTH];
        let c = &mut c[2 * pair * m * WIDTH..][..2 * m * WIDTH];
        for first in (0..m).step_by(rows) {
            let r = rows.min(m - first);
            // SAFETY: the host runs `isa`'s wide tile; it reads rows `first..
            // first + r` of `A` (`k` floats each, inside `a`), the pair's two
            // blocks of `B` (`k x 16` floats each, `k x 16` apart, inside
            // `b`) through its one tap, and writes `r x 16` floats of each of
            // the pair's blocks of `C` (`m x 16` apart, inside `c`).
            unsafe {
                tiles[r - 1](
                    a[first * k..].as_ptr(),
                    (k * 4) as i64,
                    b.as_ptr(),
                    tap.as_ptr(),
                    1,
                    k as i64,
                    c[first * WIDTH..].as_mut_ptr(),
                    (k * WIDTH * 4) as i64,
                    (m * WIDTH * 4) as i64,
                )
            };
        }
    }
}

fn tiles(c: &mut Criterion) {
    let mut group = c.benchmark_group("native_tile");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    for (name, (m, k, n)) in [
        ("3136x64x256", (3136, 64, 256)),
        ("784x256x256", (784, 256, 256)),
    ] {
        let a = cnnjit::check::random_input(m * k, 1);
        let b = cnnjit::check::random_input(k * n, 2);
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        for isa in Isa::on_host() {
            let mut rows = vec![isa.rows()];
            rows.extend((4..isa.rows()).step_by(2));
            for rows in rows {
                group.bench_function(format!("{name}/{isa}/{rows}rows"), |bench| {
                    bench.iter(|| gemm(isa, rows, (m, k, n), &a, &b, &mut out))
                });
            }
            if isa.wide_tiles().is_some() {
                for rows in (6..=WIDE_ROWS).step_by(2) {
                    group.bench_function(format!("{name}/{isa}-wide/{rows}rows"), |bench| {
                        bench.iter(|| wide_gemm(isa, rows, (m, k, n), &a, &b, &mut out))
                    });
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, tiles);
criterion_main!(benches);
