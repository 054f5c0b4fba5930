//! Windowed pooling (`maxpool`, `avgpool`) as PyTorch's `MaxPool2d` and
//! `AvgPool2d`, and global pooling (`global_maxpool`, `global_avgpool`) as
//! `AdaptiveMaxPool2d(1)` and `AdaptiveAvgPool2d(1)`.

use super::{check_len, input_coord, window_output_len, Dims, KernelError, Result};
use crate::ir::{Pool2d, PoolKind};

/// The output dimensions of `op` on an input of `input` dimensions: as a
/// convolution without dilation (rows `floor((H + top + bottom - Fh) / sh) + 1`,
/// likewise columns), or with `op.ceil` PyTorch's `ceil_mode`: `ceil` instead
/// of `floor`, then one fewer if the last window would start in the bottom
/// (right) padding. The channels are the input's.
///
/// Errors when the stride or kernel is zero or the kernel is larger than the
/// padded input.
pub fn pool2d_output_dims(op: &Pool2d, input: Dims) -> Result<Dims> {
    let p = op.padding;
    let rows = window_output_len(
        input.h,
        p.top as usize,
        p.bottom as usize,
        op.kernel.h as usize,
        op.stride.h as usize,
        1,
        op.ceil,
    );
    let cols = window_output_len(
        input.w,
        p.left as usize,
        p.right as usize,
        op.kernel.w as usize,
        op.stride.w as usize,
        1,
        op.ceil,
    );
    match (rows, cols) {
        (Some(h), Some(w)) => Ok(Dims::new(h, w, input.c)),
        _ => Err(KernelError::Invalid(format!(
            "pool: window {} (stride {}) does not fit the input {}x{} padded by {}",
            op.kernel, op.stride, input.h, input.w, op.padding
        ))),
    }
}

/// Pools `input` (HWC, `dims`) into `output` (HWC, the returned dimensions),
/// channel by channel.
///
/// **Max**: the maximum over the window, the padding counting as `-inf`
/// (so a window lying wholly in the padding gives `-inf`). A NaN in the
/// window makes the result NaN, as in PyTorch.
///
/// **Average**, exactly PyTorch's `avg_pool2d` on CPU. Along rows (columns
/// alike), for output row `oy`:
///
/// ```text
/// start = oy * sh - top
/// end   = min(start + Fh, H + bottom)     // clipped to the padded input only
/// size  = end - start                     // the rows counted with padding
/// start = max(start, 0); end = min(end, H) // the rows actually summed
/// ```
///
/// The sum over the clipped window is divided by `size_rows * size_cols`
/// when `op.count_include_pad` (PyTorch's default), else by the number of
/// input elements summed. In ceil mode a window may reach past the padded
/// input; the part beyond it counts in neither divisor. A window holding no
/// input element gives 0 (PyTorch's kernel skips it and leaves the zero).
///
/// Preconditions (else an error): `input.len() == dims.len()` and
/// `output.len()` equals the output dimensions' length.
pub fn pool2d(op: &Pool2d, input: &[f32], dims: Dims, output: &mut [f32]) -> Result<Dims> {
    let out = pool2d_output_dims(op, dims)?;
    check_len("pool input", dims.len(), input.len())?;
    check_len("pool output", out.len(), output.len())?;
    let (kh, kw) = (op.kernel.h as usize, op.kernel.w as usize);
    let (sh, sw) = (op.stride.h as usize, op.stride.w as usize);
    let (top, left) = (op.padding.top as usize, op.padding.left as usize);
    let at = |y: usize, x: usize, c: usize| input[(y * dims.w + x) * dims.c + c];

    for oy in 0..out.h {
        for ox in 0..out.w {
            for c in 0..dims.c {
                let value = match op.kind {
                    PoolKind::Max => {
                        let mut best = f32::NEG_INFINITY;
                        for ky in 0..kh {
                            let Some(iy) = input_coord(oy, ky, sh, 1, top, dims.h) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = input_coord(ox, kx, sw, 1, left, dims.w) else {
                                    continue;
                                };
                                let v = at(iy, ix, c);
                                if v > best || v.is_nan() {
                                    best = v;
                                }
                            }
                        }
                        best
                    }
                    PoolKind::Avg => {
                        let rows = avg_window(oy, sh, kh, top, op.padding.bottom as usize, dims.h);
                        let cols = avg_window(ox, sw, kw, left, op.padding.right as usize, dims.w);
                        if rows.first >= rows.end || cols.first >= cols.end {
                            0.0
                        } else {
                            let mut sum = 0.0f64;
                            for iy in rows.first..rows.end {
                                for ix in cols.first..cols.end {
                                    sum += f64::from(at(iy, ix, c));
                                }
                            }
                            let divisor = if op.count_include_pad {
                                rows.padded_size * cols.padded_size
                            } else {
                                (rows.end - rows.first) * (cols.end - cols.first)
                            };
                            (sum / divisor as f64) as f32
                        }
                    }
                };
                output[(oy * out.w + ox) * dims.c + c] = value;
            }
        }
    }
    Ok(out)
}

/// One axis of an average-pooling window, PyTorch's way.
struct AvgWindow {
    /// The window's extent clipped to the padded input (`end - start` before
    /// clipping to the input): the divisor with `count_include_pad`.
    padded_size: usize,
    /// The first input coordinate summed.
    first: usize,
    /// One past the last input coordinate summed (`first >= end`: none).
    end: usize,
}

/// The window of output position `out` along an axis of `n` inputs padded by
/// `before` and `after`. Computed in signed arithmetic, as PyTorch does.
fn avg_window(
    out: usize,
    stride: usize,
    kernel: usize,
    before: usize,
    after: usize,
    n: usize,
) -> AvgWindow {
    let start = (out * stride) as i64 - before as i64;
    let end = (start + kernel as i64).min(n as i64 + after as i64);
    let padded_size = (end - start) as usize;
    let first = start.max(0) as usize;
    let end = end.clamp(0, n as i64) as usize;
    AvgWindow {
        padded_size,
        first,
        end,
    }
}

/// Reduces each channel of `input` (HWC, `dims`) over all `H x W` pixels
/// into `output` (`C` values, i.e. `1 x 1 x C`): the mean for
/// [`PoolKind::Avg`], the maximum (NaN-propagating) for [`PoolKind::Max`].
///
/// Preconditions (else an error): `dims` has at least one pixel,
/// `input.len() == dims.len()`, `output.len() == dims.c`.
pub fn global_pool(kind: PoolKind, input: &[f32], dims: Dims, output: &mut [f32]) -> Result<()> {
    if dims.pixels() == 0 {
        return Err(KernelError::Invalid(format!(
            "global pool: the input {}x{} has no pixel",
            dims.h, dims.w
        )));
    }
    check_len("global pool input", dims.len(), input.len())?;
    check_len("global pool output", dims.c, output.len())?;
    for c in 0..dims.c {
        let mut sum = 0.0f64;
        let mut best = f32::NEG_INFINITY;
        for p in 0..dims.pixels() {
            let v = input[p * dims.c + c];
            sum += f64::from(v);
            if v > best || v.is_nan() {
                best = v;
            }
        }
        output[c] = match kind {
            PoolKind::Avg => (sum / dims.pixels() as f64) as f32,
            PoolKind::Max => best,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Hw, Padding, Shape};
    use crate::reference::testutil::{assert_close, GRID};

    fn pool(kind: PoolKind, kernel: (u32, u32), stride: (u32, u32)) -> Pool2d {
        Pool2d {
            kind,
            kernel: Hw {
                h: kernel.0,
                w: kernel.1,
            },
            stride: Hw {
                h: stride.0,
                w: stride.1,
            },
            padding: Padding::default(),
            ceil: false,
            count_include_pad: true,
        }
    }

    fn pad(top: u32, left: u32, bottom: u32, right: u32) -> Padding {
        Padding {
            top,
            left,
            bottom,
            right,
        }
    }

    fn run(op: &Pool2d, input: &[f32], dims: Dims) -> (Dims, Vec<f32>) {
        let out_dims = pool2d_output_dims(op, dims).unwrap();
        let mut out = vec![f32::NAN; out_dims.len()];
        let got = pool2d(op, input, dims, &mut out).unwrap();
        assert_eq!(got, out_dims);
        (got, out)
    }

    #[test]
    fn max_2x2_stride_1() {
        // Windows of GRID: max(1,2,4,5) = 5, max(2,3,5,6) = 6, 8, 9.
        let (d, out) = run(
            &pool(PoolKind::Max, (2, 2), (1, 1)),
            &GRID,
            Dims::new(3, 3, 1),
        );
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[5.0, 6.0, 8.0, 9.0]);
    }

    #[test]
    fn max_pads_with_minus_infinity() {
        // Channels GRID and -GRID, window 2, stride 2, pad 1 -> 2x2.
        // Windows cover rows/cols {-1,0} or {1,2}:
        // channel 0: max(1) = 1, max(2,3) = 3, max(4,7) = 7, max(5,6,8,9) = 9;
        // channel 1: -1, max(-2,-3) = -2, max(-4,-7) = -4, -5 (zero padding would give 0).
        let input: Vec<f32> = GRID.iter().flat_map(|&v| [v, -v]).collect();
        let mut op = pool(PoolKind::Max, (2, 2), (2, 2));
        op.padding = pad(1, 1, 1, 1);
        let (d, out) = run(&op, &input, Dims::new(3, 3, 2));
        assert_eq!(d, Dims::new(2, 2, 2));
        assert_close(&out, &[1.0, -1.0, 3.0, -2.0, 7.0, -4.0, 9.0, -5.0]);
    }

    #[test]
    fn max_ceil_mode() {
        // 3x3, window 2, stride 2: floor((3-2)/2)+1 = 1 -> [max(1,2,4,5)] = [5].
        let mut op = pool(PoolKind::Max, (2, 2), (2, 2));
        let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_eq!(d, Dims::new(1, 1, 1));
        assert_close(&out, &[5.0]);
        // ceil: ceil(1/2)+1 = 2 (the 2nd window starts at 2 < 3, kept); the windows
        // clip at the input: max(1,2,4,5) = 5, max(3,6) = 6, max(7,8) = 8, max(9) = 9.
        op.ceil = true;
        let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[5.0, 6.0, 8.0, 9.0]);
    }

    #[test]
    fn max_propagates_nan() {
        // One row [1, NaN, 3], window 1x3: NaN; window 1x1: each element.
        let input = [1.0, f32::NAN, 3.0];
        let (_, out) = run(
            &pool(PoolKind::Max, (1, 3), (1, 1)),
            &input,
            Dims::new(1, 3, 1),
        );
        assert!(out[0].is_nan());
        // 1x2 windows stride 1: [1, NaN] -> NaN, [NaN, 3] -> NaN.
        let (_, out) = run(
            &pool(PoolKind::Max, (1, 2), (1, 1)),
            &input,
            Dims::new(1, 3, 1),
        );
        assert!(out[0].is_nan() && out[1].is_nan());
    }

    #[test]
    fn avg_with_padding_both_ways() {
        // GRID, window 2, stride 2, pad 1 -> 2x2. Every window lies inside the padded
        // 5x5 input, so with padding counted the divisor is 4:
        // (0,0) sum 1 -> 0.25; (0,1) 2+3 = 5 -> 1.25; (1,0) 4+7 = 11 -> 2.75; (1,1) 28 -> 7.
        // Without: 1/1 = 1, 5/2 = 2.5, 11/2 = 5.5, 28/4 = 7.
        let mut op = pool(PoolKind::Avg, (2, 2), (2, 2));
        op.padding = pad(1, 1, 1, 1);
        let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[0.25, 1.25, 2.75, 7.0]);
        op.count_include_pad = false;
        let (_, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_close(&out, &[1.0, 2.5, 5.5, 7.0]);
    }

    #[test]
    fn avg_ceil_mode_divisor_clipped_at_padded_input() {
        // One row [1, 2, 3, 4], window 1x3, stride 1x2, pad 1 left and right, ceil:
        // padded width 6, ceil((6-3)/2)+1 = 3 (the 3rd window starts at padded 4 < 4 + 1, kept).
        // Window starts (input coords) -1, 1, 3:
        //   ox0: end min(2, 4+1) = 2, size 3; sums cols 0..2: 1+2 = 3.
        //   ox1: end min(4, 5) = 4, size 3; sums cols 1..4: 2+3+4 = 9.
        //   ox2: end min(6, 5) = 5, size 2 (the column past the padding does not count);
        //        sums col 3: 4.
        // count_include_pad: 3/3 = 1, 9/3 = 3, 4/2 = 2. Without: 3/2 = 1.5, 9/3 = 3, 4/1 = 4.
        let input = [1.0, 2.0, 3.0, 4.0];
        let mut op = pool(PoolKind::Avg, (1, 3), (1, 2));
        op.padding = pad(0, 1, 0, 1);
        op.ceil = true;
        let (d, out) = run(&op, &input, Dims::new(1, 4, 1));
        assert_eq!(d, Dims::new(1, 3, 1));
        assert_close(&out, &[1.0, 3.0, 2.0]);
        op.count_include_pad = false;
        let (_, out) = run(&op, &input, Dims::new(1, 4, 1));
        assert_close(&out, &[1.5, 3.0, 4.0]);
        // Floor mode: floor(3/2)+1 = 2 outputs, the first two of each.
        op.ceil = false;
        let (d, out) = run(&op, &input, Dims::new(1, 4, 1));
        assert_eq!(d, Dims::new(1, 2, 1));
        assert_close(&out, &[1.5, 3.0]);
        op.count_include_pad = true;
        let (_, out) = run(&op, &input, Dims::new(1, 4, 1));
        assert_close(&out, &[1.0, 3.0]);
    }

    #[test]
    fn avg_ceil_mode_without_padding() {
        // GRID, window 2, stride 2, ceil -> 2x2, windows clipped at the input; with no
        // padding both divisors are the clipped counts:
        // (1+2+4+5)/4 = 3, (3+6)/2 = 4.5, (7+8)/2 = 7.5, 9/1 = 9.
        let mut op = pool(PoolKind::Avg, (2, 2), (2, 2));
        op.ceil = true;
        for include in [true, false] {
            op.count_include_pad = include;
            let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1));
            assert_eq!(d, Dims::new(2, 2, 1));
            assert_close(&out, &[3.0, 4.5, 7.5, 9.0]);
        }
    }

    #[test]
    fn asymmetric_padding() {
        // GRID, window 2, stride 2, padding bottom 1 and right 1 only: padded 4x4 -> 2x2.
        // (0,0) rows 0..1, cols 0..1: 1+2+4+5 = 12 (4 elements, size 4).
        // (0,1) cols 2..3 (col 3 is padding): 3+6 = 9 (2 elements, size 4).
        // (1,0) rows 2..3 (row 3 is padding): 7+8 = 15 (2 elements, size 4).
        // (1,1): 9 (1 element, size 4).
        // Avg with padding: 3, 2.25, 3.75, 2.25. Without: 3, 4.5, 7.5, 9. Max: 5, 6, 8, 9.
        let mut op = pool(PoolKind::Avg, (2, 2), (2, 2));
        op.padding = pad(0, 0, 1, 1);
        let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[3.0, 2.25, 3.75, 2.25]);
        op.count_include_pad = false;
        let (_, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_close(&out, &[3.0, 4.5, 7.5, 9.0]);
        op.kind = PoolKind::Max;
        let (_, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_close(&out, &[5.0, 6.0, 8.0, 9.0]);
        // Top/left padding instead: windows start at -1 and cover {-1,0} and {1,2}:
        // max: 1, max(2,3) = 3, max(4,7) = 7, 9 (as in the symmetric case).
        op.padding = pad(1, 1, 0, 0);
        let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1));
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[1.0, 3.0, 7.0, 9.0]);
    }

    #[test]
    fn window_wholly_in_padding() {
        // One pixel [5], window 1x1, stride 1, pad 1 on the left: width 2.
        // ox0 reads only padding: max -inf, average 0 both ways (nothing summed); ox1 = 5.
        let mut op = pool(PoolKind::Max, (1, 1), (1, 1));
        op.padding = pad(0, 1, 0, 0);
        let (_, out) = run(&op, &[5.0], Dims::new(1, 1, 1));
        assert_close(&out, &[f32::NEG_INFINITY, 5.0]);
        op.kind = PoolKind::Avg;
        for include in [true, false] {
            op.count_include_pad = include;
            let (_, out) = run(&op, &[5.0], Dims::new(1, 1, 1));
            assert_close(&out, &[0.0, 5.0]);
        }
    }

    #[test]
    fn global_pools() {
        // 2x2 pixels, 2 channels: channel 0 = 1, 2, 3, 4; channel 1 = -1, -5, 0, 2.
        // Mean: 10/4 = 2.5 and -4/4 = -1. Max: 4 and 2.
        let input = [1.0, -1.0, 2.0, -5.0, 3.0, 0.0, 4.0, 2.0];
        let dims = Dims::new(2, 2, 2);
        let mut out = [0.0; 2];
        global_pool(PoolKind::Avg, &input, dims, &mut out).unwrap();
        assert_close(&out, &[2.5, -1.0]);
        global_pool(PoolKind::Max, &input, dims, &mut out).unwrap();
        assert_close(&out, &[4.0, 2.0]);
        // All negative: max is the largest, not 0.
        global_pool(
            PoolKind::Max,
            &[-3.0, -2.0],
            Dims::new(1, 2, 1),
            &mut out[..1],
        )
        .unwrap();
        assert_close(&out[..1], &[-2.0]);
    }

    #[test]
    fn output_dims_agree_with_shape_inference() {
        // The compiler's shape inference is independent code: both must agree.
        for (h, w) in [(3, 3), (4, 7), (5, 5), (6, 6), (112, 112), (1, 9)] {
            for (kh, kw) in [(1, 1), (2, 2), (3, 3), (1, 3)] {
                for (sh, sw) in [(1, 1), (2, 2), (3, 2)] {
                    for p in [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0), (1, 0, 0, 2)] {
                        for ceil in [false, true] {
                            let mut op = pool(PoolKind::Max, (kh, kw), (sh, sw));
                            op.padding = pad(p.0, p.1, p.2, p.3);
                            op.ceil = ceil;
                            let ours =
                                pool2d_output_dims(&op, Dims::new(h as usize, w as usize, 3));
                            let theirs = cnnjit_ir::shape::output_shape(
                                &crate::ir::Op::Pool2d(op),
                                &[Shape::Volume { h, w, c: 3 }],
                            );
                            match (ours, theirs) {
                                (Ok(a), Ok(b)) => assert_eq!(a, Dims::from(b), "{op:?} on {h}x{w}"),
                                (Err(_), Err(_)) => {}
                                (a, b) => panic!("{op:?} on {h}x{w}: {a:?} vs {b:?}"),
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let op = pool(PoolKind::Max, (2, 2), (1, 1));
        let mut out = [0.0; 4];
        assert!(matches!(
            pool2d(&op, &GRID[..8], Dims::new(3, 3, 1), &mut out),
            Err(KernelError::Length {
                what: "pool input",
                ..
            })
        ));
        assert!(matches!(
            pool2d(&op, &GRID, Dims::new(3, 3, 1), &mut out[..3]),
            Err(KernelError::Length {
                what: "pool output",
                ..
            })
        ));
        assert!(pool2d(&op, &[1.0], Dims::new(1, 1, 1), &mut out).is_err());
        assert!(global_pool(PoolKind::Avg, &GRID, Dims::new(3, 3, 1), &mut out[..2]).is_err());
        assert!(global_pool(PoolKind::Avg, &[], Dims::new(0, 3, 1), &mut out[..1]).is_err());
    }
}
