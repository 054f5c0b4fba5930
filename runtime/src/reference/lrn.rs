//! Local response normalisation (`lrn`) across channels, as PyTorch's
//! `LocalResponseNorm`.

use super::{check_len, KernelError, Result};
use crate::ir::Lrn;

/// Normalises each element of `input` (HWC, or a flat vector as one pixel)
/// by its neighbours across channels, into `output`:
///
/// ```text
/// out[p, c] = in[p, c] / (k + alpha / n * sum_{c' = c - n/2}^{c + (n-1)/2} in[p, c']^2)^beta
/// ```
///
/// with `n = op.size`, integer division, and channels outside `0..C` counting
/// as zero. This is PyTorch's `local_response_norm`: it pads the squared
/// input by `size / 2` channels before and `(size - 1) / 2` after and takes
/// an average pool of `size` channels (so the divisor is always `size`, even
/// at the edges). The sum accumulates in `f64`.
///
/// Preconditions (else an error): `op.size > 0`, `channels > 0`,
/// `input.len()` a multiple of `channels`, `output.len() == input.len()`.
pub fn lrn(op: &Lrn, input: &[f32], channels: usize, output: &mut [f32]) -> Result<()> {
    let size = op.size as usize;
    if size == 0 || channels == 0 || !input.len().is_multiple_of(channels) {
        return Err(KernelError::Invalid(format!(
            "lrn: size {size} over {} elements of {channels} channels",
            input.len()
        )));
    }
    check_len("lrn output", input.len(), output.len())?;
    let before = size / 2;
    let after = (size - 1) / 2;
    for (pixel_in, pixel_out) in input
        .chunks_exact(channels)
        .zip(output.chunks_exact_mut(channels))
    {
        for c in 0..channels {
            let first = c.saturating_sub(before);
            let last = (c + after).min(channels - 1);
            let mut sum = 0.0f64;
            for &a in &pixel_in[first..=last] {
                sum += f64::from(a) * f64::from(a);
            }
            let base = f64::from(op.k) + f64::from(op.alpha) / size as f64 * sum;
            pixel_out[c] = (f64::from(pixel_in[c]) / base.powf(f64::from(op.beta))) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    #[test]
    fn odd_size() {
        // size 3: channels c-1..c+1. alpha 3 (alpha/n = 1), k 1, beta 1.
        // Pixel 0, a = [1, 2, 3, 4]: sums of squares 1+4 = 5, 1+4+9 = 14, 4+9+16 = 29,
        // 9+16 = 25 -> a / (1 + sum) = 1/6, 2/15, 3/30, 4/26.
        // Pixel 1, a = [2, 0, 0, 0]: sums 4, 4, 0, 0 -> 2/5, 0, 0, 0.
        let op = Lrn {
            size: 3,
            alpha: 3.0,
            beta: 1.0,
            k: 1.0,
        };
        let input = [1.0, 2.0, 3.0, 4.0, 2.0, 0.0, 0.0, 0.0];
        let mut out = [f32::NAN; 8];
        lrn(&op, &input, 4, &mut out).unwrap();
        assert_close(
            &out,
            &[1.0 / 6.0, 2.0 / 15.0, 0.1, 4.0 / 26.0, 0.4, 0.0, 0.0, 0.0],
        );
    }

    #[test]
    fn even_size_window_leans_back() {
        // size 2: size/2 = 1 channel before, (size-1)/2 = 0 after: channels c-1..c.
        // alpha 2 (alpha/n = 1), k 2, beta 0.5. a = [1, 2, 3, 4]: sums 1, 1+4 = 5,
        // 4+9 = 13, 9+16 = 25 -> a / sqrt(2 + sum) = 1/sqrt(3), 2/sqrt(7), 3/sqrt(15), 4/sqrt(27)
        // = 0.57735027, 0.75592895, 0.77459667, 0.76980036.
        let op = Lrn {
            size: 2,
            alpha: 2.0,
            beta: 0.5,
            k: 2.0,
        };
        let mut out = [f32::NAN; 4];
        lrn(&op, &[1.0, 2.0, 3.0, 4.0], 4, &mut out).unwrap();
        assert_close(&out, &[0.577_350_3, 0.755_928_9, 0.774_596_7, 0.769_800_36]);
    }

    #[test]
    fn alexnet_parameters() {
        // AlexNet: size 5, alpha 1e-4, beta 0.75, k 2. One channel a = [10]:
        // 10 / (2 + 1e-4 / 5 * 100)^0.75 = 10 / 2.002^0.75; ln 2.002 = 0.69414668,
        // * 0.75 = 0.52061001, e^that = e^0.5 * e^0.02061001 = 1.64872127 * 1.02082386
        // = 1.68305402 -> 10 / 1.68305402 = 5.94158 (to 6 digits).
        let op = Lrn {
            size: 5,
            alpha: 1e-4,
            beta: 0.75,
            k: 2.0,
        };
        let mut out = [0.0];
        lrn(&op, &[10.0], 1, &mut out).unwrap();
        assert!((out[0] - 5.941_58).abs() < 1e-4, "{}", out[0]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let op = Lrn {
            size: 0,
            alpha: 1.0,
            beta: 1.0,
            k: 1.0,
        };
        let mut out = [0.0; 2];
        assert!(lrn(&op, &[1.0, 2.0], 2, &mut out).is_err());
        let op = Lrn { size: 3, ..op };
        assert!(lrn(&op, &[1.0, 2.0], 3, &mut out).is_err());
        assert!(lrn(&op, &[1.0, 2.0], 2, &mut out[..1]).is_err());
    }
}
