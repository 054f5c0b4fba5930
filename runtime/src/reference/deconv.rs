//! Transposed convolution (`deconv`), as PyTorch's `ConvTranspose2d` with one
//! group, no dilation and no output padding.

use super::{check_len, Dims, KernelError, Result};
use crate::ir::Deconv;

/// The output dimensions of `op` on an input of `input` dimensions:
/// `(H - 1) sh - 2 pad + Fh` rows, `(W - 1) sw - 2 pad + Fw` columns and
/// `op.out_channels` channels.
///
/// Errors when the stride, kernel or output channels are zero, the input is
/// empty, or the padding crops the whole output.
pub fn deconv2d_output_dims(op: &Deconv, input: Dims) -> Result<Dims> {
    let (fh, fw) = (op.kernel.h as usize, op.kernel.w as usize);
    let (sh, sw) = (op.stride.h as usize, op.stride.w as usize);
    let invalid = || {
        KernelError::Invalid(format!(
            "deconv: kernel {} (stride {}, pad {}) and {} output channels on {}x{}x{} give no output",
            op.kernel, op.stride, op.padding, op.out_channels, input.h, input.w, input.c
        ))
    };
    if fh == 0 || fw == 0 || sh == 0 || sw == 0 || op.out_channels == 0 || input.is_empty() {
        return Err(invalid());
    }
    let cut = 2 * op.padding as usize;
    let axis = |n: usize, s: usize, f: usize| {
        (n - 1)
            .checked_mul(s)?
            .checked_add(f)?
            .checked_sub(cut)
            .filter(|&len| len > 0)
    };
    match (axis(input.h, sh, fh), axis(input.w, sw, fw)) {
        (Some(h), Some(w)) => Ok(Dims::new(h, w, op.out_channels as usize)),
        _ => Err(invalid()),
    }
}

/// The transposed convolution of `input` (HWC, `dims`) with `weight`
/// (`[Cin, K, Fh, Fw]`, PyTorch's layout) into `output` (HWC, the returned
/// dimensions), adding `bias` (`[K]`) when given. Each input pixel scatters
/// its taps onto the output at `stride` steps, then `pad` rows and columns
/// are cut from each side; as a gather:
///
/// ```text
/// out[oy, ox, k] = bias[k] + sum over ci < Cin, fy < Fh, fx < Fw with
///     oy + pad - fy = iy sh and ox + pad - fx = ix sw (0 <= iy < H, 0 <= ix < W) of
///     weight[ci, k, fy, fx] * in[iy, ix, ci]
/// ```
///
/// Sums in `f64`, as the conv reference does, tap by tap and within a tap
/// channel by channel. `op.bias` is not consulted:
/// the bias is `bias` if given.
///
/// Preconditions (else an error): `input.len() == dims.len()`,
/// `weight.len() == Cin K Fh Fw`, `bias.len() == K`, and `output.len()`
/// equals the output dimensions' length.
pub fn deconv2d(
    op: &Deconv,
    input: &[f32],
    dims: Dims,
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) -> Result<Dims> {
    let out = deconv2d_output_dims(op, dims)?;
    let k_total = out.c;
    let (fh, fw) = (op.kernel.h as usize, op.kernel.w as usize);
    let (sh, sw) = (op.stride.h as usize, op.stride.w as usize);
    let pad = op.padding as usize;
    check_len("deconv input", dims.len(), input.len())?;
    let weight_len = dims
        .c
        .saturating_mul(k_total)
        .saturating_mul(fh)
        .saturating_mul(fw);
    check_len("deconv weight", weight_len, weight.len())?;
    if let Some(bias) = bias {
        check_len("deconv bias", k_total, bias.len())?;
    }
    check_len("deconv output", out.len(), output.len())?;
    // The input coordinate tap `f` of output position `o` reads along one
    // axis, if any: `(o + pad - f) / s` where that divides and is in range.
    let source = |o: usize, f: usize, s: usize, n: usize| {
        let at = (o + pad).checked_sub(f)?;
        (at % s == 0 && at / s < n).then_some(at / s)
    };
    // Tap by tap, each valid tap's channels in a row: the modulo tests run
    // once per tap, not once per tap and channel.
    for oy in 0..out.h {
        for ox in 0..out.w {
            for k in 0..k_total {
                let mut acc = bias.map_or(0.0, |b| f64::from(b[k]));
                for fy in 0..fh {
                    let Some(iy) = source(oy, fy, sh, dims.h) else {
                        continue;
                    };
                    for fx in 0..fw {
                        let Some(ix) = source(ox, fx, sw, dims.w) else {
                            continue;
                        };
                        let pixel = &input[(iy * dims.w + ix) * dims.c..][..dims.c];
                        for (ci, &x) in pixel.iter().enumerate() {
                            let w = weight[((ci * k_total + k) * fh + fy) * fw + fx];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Hw;
    use crate::reference::testutil::assert_close;

    fn op(k: u32, f: u32, s: u32, padding: u32) -> Deconv {
        Deconv {
            out_channels: k,
            kernel: Hw::square(f),
            stride: Hw::square(s),
            padding,
            bias: false,
        }
    }

    /// A 2x2 kernel of stride 2 pastes a scaled copy of the kernel per
    /// input pixel, without overlap: input [1 2; 3 4], kernel [1 10; 100 1000]
    /// give the 4x4 blocks x [1 10; 100 1000], by hand.
    #[test]
    fn stride_equal_to_the_kernel_tiles_the_output() {
        let mut out = vec![f32::NAN; 16];
        let d = deconv2d(
            &op(1, 2, 2, 0),
            &[1.0, 2.0, 3.0, 4.0],
            Dims::new(2, 2, 1),
            &[1.0, 10.0, 100.0, 1000.0],
            Some(&[0.5]),
            &mut out,
        )
        .unwrap();
        assert_eq!(d, Dims::new(4, 4, 1));
        #[rustfmt::skip]
        let expected = [
            1.0, 10.0, 2.0, 20.0,
            100.0, 1000.0, 200.0, 2000.0,
            3.0, 30.0, 4.0, 40.0,
            300.0, 3000.0, 400.0, 4000.0,
        ];
        let expected: Vec<f32> = expected.iter().map(|x| x + 0.5).collect();
        assert_close(&out, &expected);
    }

    /// Overlapping taps add, and padding crops: a 1x3 input [1 2 3] with the
    /// 1-row kernel [1 1 1] of stride 1 scatters to [1 3 6 5 3]; with pad 1
    /// (and a 3x3 kernel whose middle row only is non-zero, so the rows
    /// crop to one) it is [3 6 5]. Two input channels sum, two output
    /// channels read `weight[ci, k]`.
    #[test]
    fn overlaps_add_and_padding_crops() {
        let mut out = vec![f32::NAN; 3];
        let mut w = [0.0; 9];
        w[3..6].copy_from_slice(&[1.0, 1.0, 1.0]);
        deconv2d(
            &op(1, 3, 1, 1),
            &[1.0, 2.0, 3.0],
            Dims::new(1, 3, 1),
            &w,
            None,
            &mut out,
        )
        .unwrap();
        assert_close(&out, &[3.0, 6.0, 5.0]);
        // One pixel of channels [1, 2]; 1x1 kernels weight[ci][k] = [[1, 2], [3, 4]]:
        // k0 = 1 + 2 x 3 = 7, k1 = 2 + 2 x 4 = 10.
        let mut out = vec![f32::NAN; 2];
        deconv2d(
            &op(2, 1, 1, 0),
            &[1.0, 2.0],
            Dims::new(1, 1, 2),
            &[1.0, 2.0, 3.0, 4.0],
            None,
            &mut out,
        )
        .unwrap();
        assert_close(&out, &[7.0, 10.0]);
    }

    #[test]
    fn mismatches_are_errors() {
        // A 2x2 input of one channel, into 4x4 (2x2 kernel, stride 2).
        let run = |op: Deconv, weight: usize, bias: Option<usize>, out: usize| {
            let bias = bias.map(|n| vec![0.0; n]);
            let mut output = vec![0.0; out];
            deconv2d(
                &op,
                &[1.0; 4],
                Dims::new(2, 2, 1),
                &vec![0.0; weight],
                bias.as_deref(),
                &mut output,
            )
        };
        assert!(run(op(1, 2, 2, 0), 4, Some(1), 16).is_ok());
        assert!(run(op(1, 2, 0, 0), 4, None, 16).is_err());
        assert!(run(op(1, 2, 2, 0), 3, None, 16).is_err());
        assert!(run(op(1, 2, 2, 0), 4, Some(2), 16).is_err());
        assert!(run(op(1, 2, 2, 0), 4, None, 15).is_err());
        // A 1x1 input, 2x2 kernel: 2x2 before cropping 1 on each side.
        assert!(deconv2d_output_dims(&op(1, 2, 2, 1), Dims::new(1, 1, 1)).is_err());
    }
}
