//! `prelu`: PyTorch's `PReLU(num_parameters = C)`, a leaky relu whose slope
//! is learned, one per channel.

use super::{activate, KernelError, Result};
use crate::ir::Activation;

/// Applies `prelu` in place to `data` (HWC, `slopes.len()` channels):
/// `x` if `x > 0`, else `slopes[c] * x`, which is `max(x, 0) + slopes[c]
/// min(x, 0)` and exactly `leaky_relu(slopes[c])` on channel `c` (a NaN stays
/// a NaN). Preconditions (else an error): at least one channel, and `data`
/// holds whole pixels.
pub fn prelu_in_place(slopes: &[f32], data: &mut [f32]) -> Result<()> {
    let channels = slopes.len();
    if channels == 0 || !data.len().is_multiple_of(channels) {
        return Err(KernelError::Invalid(format!(
            "prelu: {} elements are not pixels of {channels} channels",
            data.len()
        )));
    }
    for pixel in data.chunks_exact_mut(channels) {
        for (x, &a) in pixel.iter_mut().zip(slopes) {
            *x = activate(Activation::LeakyRelu(a), *x);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_has_its_slope() {
        // Two pixels of three channels, slopes [0.25, -1, 0]:
        // pixel 1 [-4, -2, -8] -> [0.25 * -4, -1 * -2, 0 * -8] = [-1, 2, 0 (negative zero)];
        // pixel 2 [3, 0.5, 7] (positive: kept) -> [3, 0.5, 7].
        let mut data = [-4.0, -2.0, -8.0, 3.0, 0.5, 7.0];
        prelu_in_place(&[0.25, -1.0, 0.0], &mut data).unwrap();
        assert_eq!(data, [-1.0, 2.0, 0.0, 3.0, 0.5, 7.0]);
        assert!(data[2].is_sign_negative());
        let mut nan = [f32::NAN];
        prelu_in_place(&[0.25], &mut nan).unwrap();
        assert!(nan[0].is_nan());
    }

    #[test]
    fn partial_pixels_are_errors() {
        let mut data = [1.0; 5];
        assert!(prelu_in_place(&[0.25, 0.25], &mut data).is_err());
        assert!(prelu_in_place(&[], &mut data).is_err());
    }
}
