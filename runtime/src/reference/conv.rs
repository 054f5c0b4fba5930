//! 2-D convolution (`conv`) and, through groups, depthwise convolution
//! (`dwconv`), as PyTorch's `Conv2d`.

use super::{check_len, input_coord, window_output_len, Dims, KernelError, Result};
use crate::ir::Conv2d;

/// The output dimensions of `op` on an input of `input` dimensions:
/// `floor((H + top + bottom - d (F - 1) - 1) / s) + 1` rows (likewise
/// columns) and `op.out_channels` channels.
///
/// Errors when the stride, dilation, kernel or groups is zero, when the
/// channels (in or out) are not divisible by the groups, or when the dilated
/// kernel is larger than the padded input.
pub fn conv2d_output_dims(op: &Conv2d, input: Dims) -> Result<Dims> {
    let groups = op.groups as usize;
    let out_channels = op.out_channels as usize;
    if groups == 0 || out_channels == 0 {
        return Err(KernelError::Invalid(format!(
            "conv: groups ({groups}) and output channels ({out_channels}) must be positive"
        )));
    }
    if !input.c.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        return Err(KernelError::Invalid(format!(
            "conv: input channels ({}) and output channels ({out_channels}) must be divisible by groups ({groups})",
            input.c
        )));
    }
    let p = op.padding;
    let rows = window_output_len(
        input.h,
        p.top as usize,
        p.bottom as usize,
        op.kernel.h as usize,
        op.stride.h as usize,
        op.dilation.h as usize,
        false,
    );
    let cols = window_output_len(
        input.w,
        p.left as usize,
        p.right as usize,
        op.kernel.w as usize,
        op.stride.w as usize,
        op.dilation.w as usize,
        false,
    );
    match (rows, cols) {
        (Some(h), Some(w)) => Ok(Dims::new(h, w, out_channels)),
        _ => Err(KernelError::Invalid(format!(
            "conv: kernel {} (stride {}, dilation {}) does not fit the input {}x{} padded by {}",
            op.kernel, op.stride, op.dilation, input.h, input.w, op.padding
        ))),
    }
}

/// Convolves `input` (HWC, `dims`) with `weight` (`[K, Cin/groups, Fh, Fw]`,
/// PyTorch's layout) into `output` (HWC, the returned dimensions), adding
/// `bias` (`[K]`) when given:
///
/// ```text
/// out[oy, ox, k] = bias[k] + sum over ci < Cin/g, fy < Fh, fx < Fw of
///     weight[k, ci, fy, fx] * in[oy*sh + fy*dh - top, ox*sw + fx*dw - left, g*Cin/g + ci]
/// ```
///
/// where `g = k / (K/groups)` is the group of output channel `k`, and taps
/// falling in the padding read zero. Depthwise convolution is the case
/// `groups = Cin` (`K = Cin * multiplier`: output channel `k` reads input
/// channel `k / multiplier`).
///
/// `op.bias` is not consulted: the bias is `bias` if given (folding a batch
/// norm gives a conv without bias one). `op.depthwise` is not consulted
/// either; `op.groups` says everything.
///
/// Preconditions (else an error): `input.len() == dims.len()`,
/// `weight.len() == K * Cin/groups * Fh * Fw`, `bias.len() == K`, and
/// `output.len()` equals the output dimensions' length.
pub fn conv2d(
    op: &Conv2d,
    input: &[f32],
    dims: Dims,
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) -> Result<Dims> {
    let out = conv2d_output_dims(op, dims)?;
    let groups = op.groups as usize;
    let k_total = out.c;
    let cin_per_group = dims.c / groups;
    let k_per_group = k_total / groups;
    let (fh, fw) = (op.kernel.h as usize, op.kernel.w as usize);
    let (sh, sw) = (op.stride.h as usize, op.stride.w as usize);
    let (dh, dw) = (op.dilation.h as usize, op.dilation.w as usize);
    let (top, left) = (op.padding.top as usize, op.padding.left as usize);

    check_len("conv input", dims.len(), input.len())?;
    let weight_len = k_total
        .saturating_mul(cin_per_group)
        .saturating_mul(fh)
        .saturating_mul(fw);
    check_len("conv weight", weight_len, weight.len())?;
    if let Some(bias) = bias {
        check_len("conv bias", k_total, bias.len())?;
    }
    check_len("conv output", out.len(), output.len())?;

    for oy in 0..out.h {
        let rows = taps_inside(oy, fh, sh, dh, top, dims.h);
        for ox in 0..out.w {
            let columns = taps_inside(ox, fw, sw, dw, left, dims.w);
            for k in 0..k_total {
                let group = k / k_per_group;
                let mut acc = bias.map_or(0.0, |b| f64::from(b[k]));
                for ci in 0..cin_per_group {
                    let channel = group * cin_per_group + ci;
                    for (fy, iy) in rows.clone() {
                        for (fx, ix) in columns.clone() {
                            let w = weight[((k * cin_per_group + ci) * fh + fy) * fw + fx];
                            let x = input[(iy * dims.w + ix) * dims.c + channel];
                            acc += f64::from(w) * f64::from(x);
                        }
                    }
                }
                output[(oy * out.w + ox) * k_total + k] = acc as f32;
            }
        }
    }
    Ok(out)
}

/// The taps of output position `out` along one axis that fall inside the
/// input, each with the input coordinate it reads ([`input_coord`]): a
/// range of taps, as the coordinate grows with the tap. The same for every
/// channel, so [`conv2d`] finds them once per output row and column
/// (without allocating: the reference path allocates nothing per image).
fn taps_inside(
    out: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    before: usize,
    n: usize,
) -> impl Iterator<Item = (usize, usize)> + Clone {
    let coord = |tap: usize| input_coord(out, tap, stride, dilation, before, n);
    let first = (0..kernel)
        .find(|&tap| coord(tap).is_some())
        .unwrap_or(kernel);
    let end = (first..kernel)
        .find(|&tap| coord(tap).is_none())
        .unwrap_or(kernel);
    let at = coord(first).unwrap_or(0);
    // `conv2d_output_dims` has checked the dilation is positive.
    (first..end).zip((at..).step_by(dilation.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Hw, Padding, Shape};
    use crate::reference::testutil::{assert_close, GRID};

    fn conv(k: u32, kernel: (u32, u32)) -> Conv2d {
        Conv2d {
            out_channels: k,
            kernel: Hw {
                h: kernel.0,
                w: kernel.1,
            },
            stride: Hw::square(1),
            dilation: Hw::square(1),
            padding: Padding::default(),
            groups: 1,
            bias: false,
            depthwise: false,
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

    /// The 2x2 kernel used by several tests, as `[1, 1, 2, 2]`:
    /// ```text
    /// 1 2
    /// 3 4
    /// ```
    const K1234: [f32; 4] = [1.0, 2.0, 3.0, 4.0];

    fn run(
        op: &Conv2d,
        input: &[f32],
        dims: Dims,
        weight: &[f32],
        bias: Option<&[f32]>,
    ) -> (Dims, Vec<f32>) {
        let out_dims = conv2d_output_dims(op, dims).unwrap();
        let mut out = vec![f32::NAN; out_dims.len()];
        let got = conv2d(op, input, dims, weight, bias, &mut out).unwrap();
        assert_eq!(got, out_dims);
        (got, out)
    }

    #[test]
    fn valid_2x2_on_3x3_with_bias() {
        // Window at (0,0): 1*1 + 2*2 + 3*4 + 4*5 = 37; (0,1): 1*2 + 2*3 + 3*5 + 4*6 = 47;
        // (1,0): 1*4 + 2*5 + 3*7 + 4*8 = 67; (1,1): 1*5 + 2*6 + 3*8 + 4*9 = 77; plus 0.5.
        let (d, out) = run(
            &conv(1, (2, 2)),
            &GRID,
            Dims::new(3, 3, 1),
            &K1234,
            Some(&[0.5]),
        );
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[37.5, 47.5, 67.5, 77.5]);
    }

    #[test]
    fn padding_and_stride() {
        // Pad 1 on every side: 5x5 padded, window 2, stride 2 -> 2x2 outputs.
        // (0,0) covers input rows -1..0, cols -1..0: only in(0,0)=1 under weight 4 -> 4.
        // (0,1) rows -1..0, cols 1..2: in(0,1)=2 * 3 + in(0,2)=3 * 4 = 18.
        // (1,0) rows 1..2, cols -1..0: in(1,0)=4 * 2 + in(2,0)=7 * 4 = 36.
        // (1,1) rows 1..2, cols 1..2: 5*1 + 6*2 + 8*3 + 9*4 = 77.
        let mut op = conv(1, (2, 2));
        op.padding = pad(1, 1, 1, 1);
        op.stride = Hw::square(2);
        let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1), &K1234, None);
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[4.0, 18.0, 36.0, 77.0]);
    }

    #[test]
    fn asymmetric_padding() {
        // top 1, left 0, bottom 0, right 1: padded 4x4, stride 1 -> 3x3.
        // Output (oy, ox) covers input rows oy-1..oy and cols ox..ox+1.
        // oy=0 (only row 0, under kernel row 3 4): 3*1+4*2 = 11, 3*2+4*3 = 18, 3*3 = 9.
        // oy=1 (rows 0,1): 37, 47, and cols 2..3: 1*3 + 3*6 = 21.
        // oy=2 (rows 1,2): 67, 77, and cols 2..3: 1*6 + 3*9 = 33.
        let mut op = conv(1, (2, 2));
        op.padding = pad(1, 0, 0, 1);
        let (d, out) = run(&op, &GRID, Dims::new(3, 3, 1), &K1234, None);
        assert_eq!(d, Dims::new(3, 3, 1));
        assert_close(&out, &[11.0, 18.0, 9.0, 37.0, 47.0, 21.0, 67.0, 77.0, 33.0]);
    }

    #[test]
    fn dilation() {
        // 4x4 input 1..16 (row-major), 2x2 kernel dilated by 2 (spans 3x3) -> 2x2.
        //  1  2  3  4
        //  5  6  7  8
        //  9 10 11 12
        // 13 14 15 16
        // (0,0): 1*1 + 2*3 + 3*9 + 4*11 = 78; (0,1): 1*2 + 2*4 + 3*10 + 4*12 = 88;
        // (1,0): 1*5 + 2*7 + 3*13 + 4*15 = 118; (1,1): 1*6 + 2*8 + 3*14 + 4*16 = 128.
        let input: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let mut op = conv(1, (2, 2));
        op.dilation = Hw::square(2);
        let (d, out) = run(&op, &input, Dims::new(4, 4, 1), &K1234, None);
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[78.0, 88.0, 118.0, 128.0]);
    }

    #[test]
    fn unequal_strides_and_dilations() {
        // 4x4 input 1..16, 2x2 kernel, stride (1, 2), dilation (2, 1) -> rows
        // floor((4-3)/1)+1 = 2, cols floor((4-2)/2)+1 = 2.
        // (oy, ox) reads rows oy, oy+2 and cols 2ox, 2ox+1.
        // (0,0): 1*1 + 2*2 + 3*9 + 4*10 = 72; (0,1): 1*3 + 2*4 + 3*11 + 4*12 = 92;
        // (1,0): 1*5 + 2*6 + 3*13 + 4*14 = 112; (1,1): 1*7 + 2*8 + 3*15 + 4*16 = 132.
        let input: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let mut op = conv(1, (2, 2));
        op.stride = Hw { h: 1, w: 2 };
        op.dilation = Hw { h: 2, w: 1 };
        let (d, out) = run(&op, &input, Dims::new(4, 4, 1), &K1234, None);
        assert_eq!(d, Dims::new(2, 2, 1));
        assert_close(&out, &[72.0, 92.0, 112.0, 132.0]);
    }

    #[test]
    fn weight_layout_over_channels() {
        // 2x2 input, 2 channels: channel 0 = [[1,2],[3,4]], channel 1 = [[5,6],[7,8]];
        // HWC: [1,5, 2,6, 3,7, 4,8]. 2x2 kernel, K = 2 -> one pixel, 2 channels.
        // k0: ci0 = [[1,0],[0,0]], ci1 = [[0,0],[0,1]]  -> 1*1 + 1*8 = 9, bias 1 -> 10.
        // k1: ci0 = [[1,1],[1,1]], ci1 = [[0,2],[0,0]]  -> 10 + 2*6 = 22, bias -1 -> 21.
        let input = [1.0, 5.0, 2.0, 6.0, 3.0, 7.0, 4.0, 8.0];
        #[rustfmt::skip]
        let weight = [
            1.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.0, 1.0, // k0: ci0, ci1
            1.0, 1.0, 1.0, 1.0,   0.0, 2.0, 0.0, 0.0, // k1: ci0, ci1
        ];
        let (d, out) = run(
            &conv(2, (2, 2)),
            &input,
            Dims::new(2, 2, 2),
            &weight,
            Some(&[1.0, -1.0]),
        );
        assert_eq!(d, Dims::new(1, 1, 2));
        assert_close(&out, &[10.0, 21.0]);
    }

    #[test]
    fn groups() {
        // 1x2 input, 4 channels: pixel 0 = [1,2,3,4], pixel 1 = [5,6,7,8]. 1x1 kernel,
        // groups 2, K = 4: k0, k1 read channels 0,1; k2, k3 read channels 2,3.
        // Weights [4, 2, 1, 1]: k0 = [1,0], k1 = [0,1], k2 = [1,1], k3 = [1,-1].
        // Pixel 0: k0 = 1, k1 = 2, k2 = 3+4 = 7, k3 = 3-4 = -1.
        // Pixel 1: k0 = 5, k1 = 6, k2 = 7+8 = 15, k3 = 7-8 = -1.
        let input = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let weight = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, -1.0];
        let mut op = conv(4, (1, 1));
        op.groups = 2;
        let (d, out) = run(&op, &input, Dims::new(1, 2, 4), &weight, None);
        assert_eq!(d, Dims::new(1, 2, 4));
        assert_close(&out, &[1.0, 2.0, 7.0, -1.0, 5.0, 6.0, 15.0, -1.0]);
    }

    #[test]
    fn depthwise() {
        // 3x3 input, 2 channels: channel 0 = GRID, channel 1 = -GRID. 2x2 kernel, groups 2.
        // k0 (channel 0) = [[1,2],[3,4]] -> 37, 47, 67, 77.
        // k1 (channel 1) = [[1,0],[0,0]] -> -in(oy,ox) = -1, -2, -4, -5.
        let input: Vec<f32> = GRID.iter().flat_map(|&v| [v, -v]).collect();
        let weight = [1.0, 2.0, 3.0, 4.0, 1.0, 0.0, 0.0, 0.0];
        let mut op = conv(2, (2, 2));
        op.groups = 2;
        op.depthwise = true;
        let (d, out) = run(&op, &input, Dims::new(3, 3, 2), &weight, None);
        assert_eq!(d, Dims::new(2, 2, 2));
        assert_close(&out, &[37.0, -1.0, 47.0, -2.0, 67.0, -4.0, 77.0, -5.0]);
    }

    #[test]
    fn depthwise_multiplier_2() {
        // As above with K = 4 (multiplier 2): k0, k1 read channel 0; k2, k3 channel 1.
        // k0 = [[1,2],[3,4]] on GRID  -> 37, 47, 67, 77.
        // k1 = [[0,0],[0,1]] on GRID  -> in(oy+1, ox+1) = 5, 6, 8, 9.
        // k2 = [[1,0],[0,0]] on -GRID -> -1, -2, -4, -5.
        // k3 = [[1,1],[1,1]] on -GRID -> -(1+2+4+5) = -12, -(2+3+5+6) = -16,
        //                                -(4+5+7+8) = -24, -(5+6+8+9) = -28.
        // Bias [0, 0, 0, 100] lands on k3 only.
        let input: Vec<f32> = GRID.iter().flat_map(|&v| [v, -v]).collect();
        #[rustfmt::skip]
        let weight = [
            1.0, 2.0, 3.0, 4.0,
            0.0, 0.0, 0.0, 1.0,
            1.0, 0.0, 0.0, 0.0,
            1.0, 1.0, 1.0, 1.0,
        ];
        let mut op = conv(4, (2, 2));
        op.groups = 2;
        op.depthwise = true;
        let bias = [0.0, 0.0, 0.0, 100.0];
        let (d, out) = run(&op, &input, Dims::new(3, 3, 2), &weight, Some(&bias));
        assert_eq!(d, Dims::new(2, 2, 4));
        #[rustfmt::skip]
        assert_close(&out, &[
            37.0, 5.0, -1.0, 88.0,
            47.0, 6.0, -2.0, 84.0,
            67.0, 8.0, -4.0, 76.0,
            77.0, 9.0, -5.0, 72.0,
        ]);
    }

    #[test]
    fn output_dims_agree_with_shape_inference() {
        // The compiler's shape inference is independent code: both must agree.
        for (h, w, c) in [(3, 3, 2), (7, 5, 4), (1, 9, 6), (224, 224, 3)] {
            for (kh, kw) in [(1, 1), (2, 3), (3, 3), (7, 7)] {
                for (s, d, p) in [
                    (1, 1, (0, 0, 0, 0)),
                    (2, 1, (1, 2, 0, 1)),
                    (3, 2, (3, 3, 3, 3)),
                    (1, 1, (0, 1, 1, 0)),
                ] {
                    for groups in [1, 2, c] {
                        let mut op = conv(2 * c, (kh, kw));
                        op.stride = Hw {
                            h: s,
                            w: s.max(2) - 1,
                        };
                        op.dilation = Hw::square(d);
                        op.padding = pad(p.0, p.1, p.2, p.3);
                        op.groups = groups;
                        let ours =
                            conv2d_output_dims(&op, Dims::new(h as usize, w as usize, c as usize));
                        let theirs = cnnjit_ir::shape::output_shape(
                            &crate::ir::Op::Conv2d(op),
                            &[Shape::Volume { h, w, c }],
                        );
                        match (ours, theirs) {
                            (Ok(a), Ok(b)) => assert_eq!(a, Dims::from(b), "{op:?} on {h}x{w}x{c}"),
                            (Err(_), Err(_)) => {}
                            (a, b) => panic!("{op:?} on {h}x{w}x{c}: {a:?} vs {b:?}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_lengths_and_shapes_are_errors() {
        let op = conv(1, (2, 2));
        let mut out = vec![0.0; 4];
        let dims = Dims::new(3, 3, 1);
        assert!(matches!(
            conv2d(&op, &GRID[..8], dims, &K1234, None, &mut out),
            Err(KernelError::Length {
                what: "conv input",
                expected: 9,
                found: 8
            })
        ));
        assert!(matches!(
            conv2d(&op, &GRID, dims, &K1234[..3], None, &mut out),
            Err(KernelError::Length {
                what: "conv weight",
                ..
            })
        ));
        assert!(matches!(
            conv2d(&op, &GRID, dims, &K1234, Some(&[1.0, 2.0]), &mut out),
            Err(KernelError::Length {
                what: "conv bias",
                ..
            })
        ));
        assert!(matches!(
            conv2d(&op, &GRID, dims, &K1234, None, &mut out[..3]),
            Err(KernelError::Length {
                what: "conv output",
                ..
            })
        ));
        let big = conv(1, (4, 4));
        assert!(matches!(
            conv2d(&big, &GRID, dims, &[0.0; 16], None, &mut out),
            Err(KernelError::Invalid(_))
        ));
        let mut grouped = conv(1, (1, 1));
        grouped.groups = 2;
        assert!(conv2d_output_dims(&grouped, Dims::new(1, 1, 2)).is_err());
    }
}
