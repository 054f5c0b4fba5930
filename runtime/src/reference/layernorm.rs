//! `layernorm`: each pixel normalised over its channels, then scaled and
//! shifted per channel (PyTorch's `nn.LayerNorm(C)` on channels-last data,
//! as ConvNeXt applies it: `LayerNorm2d` and its blocks' `LayerNorm` after a
//! permute to NHWC).

use super::{check_len, KernelError, Result};

/// `output = (x - mean) / sqrt(var + eps) gamma_c + beta_c` for each pixel
/// `x` of `input` (HWC, `gamma.len()` channels; a flat vector is one pixel
/// of all its features), `mean` and the biased variance `var` taken over the
/// pixel's channels as PyTorch does. The statistics and the result are
/// computed in `f64` and rounded once. Preconditions (else an error): at
/// least one channel, `beta` as long as `gamma`, whole pixels, `output` as
/// long as `input`.
pub fn layer_norm(
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    input: &[f32],
    output: &mut [f32],
) -> Result<()> {
    let channels = gamma.len();
    check_len("layernorm beta", channels, beta.len())?;
    check_len("layernorm output", input.len(), output.len())?;
    if channels == 0 || !input.len().is_multiple_of(channels) {
        return Err(KernelError::Invalid(format!(
            "layernorm: {} elements are not pixels of {channels} channels",
            input.len()
        )));
    }
    let n = channels as f64;
    for (pixel, out) in input
        .chunks_exact(channels)
        .zip(output.chunks_exact_mut(channels))
    {
        let mean = pixel.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = pixel
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        for (((o, &x), &g), &b) in out.iter_mut().zip(pixel).zip(gamma).zip(beta) {
            *o = ((f64::from(x) - mean) * inv * f64::from(g) + f64::from(b)) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pixel_is_normalised_over_its_channels() {
        // Pixel [1, 2, 3, 6]: mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5;
        // eps 0.5 makes the divisor sqrt(4) = 2: normalised [-1, -0.5, 0, 1.5];
        // times gamma [1, 2, -1, 4] plus beta [0, 1, 0.5, -1]: [-1, 0, 0.5, 5].
        // Pixel [5, 5, 5, 5]: variance 0, all normalised to 0: beta.
        let input = [1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0];
        let mut out = [0.0; 8];
        layer_norm(
            &[1.0, 2.0, -1.0, 4.0],
            &[0.0, 1.0, 0.5, -1.0],
            0.5,
            &input,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [-1.0, 0.0, 0.5, 5.0, 0.0, 1.0, 0.5, -1.0]);
    }

    #[test]
    fn mismatched_lengths_are_errors() {
        let mut out = [0.0; 6];
        assert!(layer_norm(&[1.0; 4], &[0.0; 4], 1e-5, &[0.0; 6], &mut out).is_err());
        assert!(layer_norm(&[1.0; 3], &[0.0; 2], 1e-5, &[0.0; 6], &mut out).is_err());
        assert!(layer_norm(&[], &[], 1e-5, &[], &mut []).is_err());
        assert!(layer_norm(&[1.0; 3], &[0.0; 3], 1e-5, &[0.0; 6], &mut out[..3]).is_err());
    }
}
