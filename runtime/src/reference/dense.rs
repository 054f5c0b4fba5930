//! Fully connected layers (`dense`, `fc`) as PyTorch's `Linear`, and the
//! reordering of a PyTorch dense weight that follows a `flatten`.

use super::{check_len, Result};
use crate::ir::Dense;
use rayon::prelude::*;

/// `output[n] = bias[n] + sum_i weight[n, i] * input[i]`, with `weight` in
/// PyTorch's `[N, Nin]` layout (row-major), `Nin = input.len()` and
/// `N = op.out_features`. The input is taken as the flat vector it is; a
/// dense right after `flatten` of an HWC volume needs its PyTorch weight
/// reordered first (see [`permute_dense_weight_chw_to_hwc`]).
///
/// `op.bias` is not consulted: the bias is `bias` if given (folding a batch
/// norm gives a dense one).
///
/// Preconditions (else an error): `weight.len() == N * Nin`,
/// `bias.len() == N`, `output.len() == N`.
pub fn dense(
    op: &Dense,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) -> Result<()> {
    let n_out = op.out_features as usize;
    let n_in = input.len();
    check_len("dense weight", n_out.saturating_mul(n_in), weight.len())?;
    if let Some(bias) = bias {
        check_len("dense bias", n_out, bias.len())?;
    }
    check_len("dense output", n_out, output.len())?;
    for n in 0..n_out {
        let mut acc = bias.map_or(0.0, |b| f64::from(b[n]));
        for i in 0..n_in {
            acc += f64::from(weight[n * n_in + i]) * f64::from(input[i]);
        }
        output[n] = acc as f32;
    }
    Ok(())
}

/// Reorders the columns of a PyTorch dense weight (`[n, h*w*c]`) trained on
/// the flatten of a CHW volume (`torch.flatten` of `[C, H, W]`: column
/// `ch*H*W + y*W + x`) so that it reads the flatten of the same volume laid
/// out HWC (column `(y*W + x)*C + ch`), as cnnjit's activations are:
///
/// ```text
/// result[row, (y*w + x)*c + ch] = weight[row, ch*h*w + y*w + x]
/// ```
///
/// Then `dense(result, hwc_vector) == Linear(weight)(chw_vector)`. The bias
/// is unchanged. Precondition (else an error): `weight.len() == n*h*w*c`.
pub fn permute_dense_weight_chw_to_hwc(
    weight: &[f32],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
) -> Result<Vec<f32>> {
    let n_in = h.saturating_mul(w).saturating_mul(c);
    check_len("dense weight", n.saturating_mul(n_in), weight.len())?;
    let mut result = vec![0.0; weight.len()];
    if n_in == 0 {
        return Ok(result);
    }
    // Row by row on every core (VGG16's fc6: 4096 rows of 100 KB, each
    // transposed in cache), each thread first touching the pages it writes.
    let pixels = h * w;
    (result
        .par_chunks_exact_mut(n_in)
        .zip(weight.par_chunks_exact(n_in)))
    .for_each(|(out, row)| {
        // Output pixel `p`'s channels, `hwc = p c + ch`, from `chw = ch h w + p`.
        for (p, out) in out.chunks_exact_mut(c).enumerate() {
            for (out, &x) in out.iter_mut().zip(row[p..].iter().step_by(pixels)) {
                *out = x;
            }
        }
    });
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    fn op(n: u32) -> Dense {
        Dense {
            out_features: n,
            bias: true,
        }
    }

    #[test]
    fn matrix_vector() {
        // [[1, 2, 3], [4, 5, 6]] . [1, 2, 3] = [1+4+9, 4+10+18] = [14, 32]; bias [0.5, -1].
        let weight = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0.0; 2];
        dense(
            &op(2),
            &[1.0, 2.0, 3.0],
            &weight,
            Some(&[0.5, -1.0]),
            &mut out,
        )
        .unwrap();
        assert_close(&out, &[14.5, 31.0]);
        dense(&op(2), &[1.0, 2.0, 3.0], &weight, None, &mut out).unwrap();
        assert_close(&out, &[14.0, 32.0]);
    }

    #[test]
    fn permutes_chw_columns_to_hwc() {
        // 1x2x2 volume (h 1, w 2, c 2), one row. CHW columns: (c0,x0), (c0,x1), (c1,x0),
        // (c1,x1) = [1, 2, 3, 4]; in HWC order (x0,c0), (x0,c1), (x1,c0), (x1,c1) = [1, 3, 2, 4].
        let got = permute_dense_weight_chw_to_hwc(&[1.0, 2.0, 3.0, 4.0], 1, 1, 2, 2).unwrap();
        assert_close(&got, &[1.0, 3.0, 2.0, 4.0]);

        // 2x2x2 volume, two rows. Row 0 holds 10*ch + pixel at CHW column ch*4 + pixel:
        // [0, 1, 2, 3, 10, 11, 12, 13]; row 1 the same plus 100. HWC column pixel*2 + ch:
        // [0, 10, 1, 11, 2, 12, 3, 13] and plus 100.
        let row0 = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0];
        let weight: Vec<f32> = row0
            .iter()
            .chain(row0.iter())
            .enumerate()
            .map(|(i, &v)| if i < 8 { v } else { v + 100.0 })
            .collect();
        let got = permute_dense_weight_chw_to_hwc(&weight, 2, 2, 2, 2).unwrap();
        #[rustfmt::skip]
        assert_close(&got, &[
            0.0, 10.0, 1.0, 11.0, 2.0, 12.0, 3.0, 13.0,
            100.0, 110.0, 101.0, 111.0, 102.0, 112.0, 103.0, 113.0,
        ]);

        // The same volume as a vector: channel 0 at pixel 1 is 1, channel 1 at pixel 2 is 3.
        // CHW flatten [0, 1, 0, 0, 0, 0, 3, 0]; HWC flatten [0, 0, 1, 0, 0, 3, 0, 0].
        // PyTorch: row 0 gives 1*1 + 12*3 = 37, row 1 gives 101*1 + 112*3 = 437.
        let chw = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0];
        let hwc = [0.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 0.0];
        let mut out = [0.0; 2];
        dense(&op(2), &chw, &weight, None, &mut out).unwrap();
        assert_close(&out, &[37.0, 437.0]);
        dense(&op(2), &hwc, &got, None, &mut out).unwrap();
        assert_close(&out, &[37.0, 437.0]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut out = [0.0; 2];
        let weight = [1.0; 6];
        assert!(dense(&op(2), &[1.0, 2.0], &weight, None, &mut out).is_err());
        assert!(dense(&op(2), &[1.0, 2.0, 3.0], &weight, Some(&[1.0]), &mut out).is_err());
        assert!(dense(&op(2), &[1.0, 2.0, 3.0], &weight, None, &mut out[..1]).is_err());
        assert!(permute_dense_weight_chw_to_hwc(&weight, 1, 2, 2, 2).is_err());
    }
}
