//! Element-wise activations (every [`Activation`]) and softmax over the
//! channels of each pixel, as PyTorch computes them.

use super::{check_len, KernelError, Result};
use crate::ir::Activation;

/// `act` applied to one value, as PyTorch defines it:
///
/// | activation | value |
/// |---|---|
/// | `Relu` | `max(x, 0)` |
/// | `Relu6` | `min(max(x, 0), 6)` (`hardtanh(x, 0, 6)`) |
/// | `Tanh` | `tanh(x)` |
/// | `Sigmoid` | `1 / (1 + e^-x)` |
/// | `Swish` | `x * sigmoid(x)` (`SiLU`) |
/// | `HardSwish` | `x * relu6(x + 3) / 6` |
/// | `HardSigmoid` | `relu6(x + 3) / 6` |
/// | `LeakyRelu(a)` | `x` if `x > 0`, else `a * x` |
/// | `Gelu` | `x (1 + erf(x / sqrt 2)) / 2` (`GELU()`, its exact form) |
///
/// A NaN input gives NaN for every activation (as in PyTorch; note that
/// `f32::max` would turn it into 0). Transcendental functions are evaluated
/// in `f64` and rounded once.
pub fn activate(act: Activation, x: f32) -> f32 {
    fn relu6(x: f32) -> f32 {
        // `clamp` keeps a NaN a NaN.
        x.clamp(0.0, 6.0)
    }
    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }
    match act {
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::Relu6 => relu6(x),
        Activation::Tanh => f64::from(x).tanh() as f32,
        Activation::Sigmoid => sigmoid(f64::from(x)) as f32,
        Activation::Swish => (f64::from(x) * sigmoid(f64::from(x))) as f32,
        Activation::HardSwish => x * relu6(x + 3.0) / 6.0,
        Activation::HardSigmoid => relu6(x + 3.0) / 6.0,
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                x
            } else {
                x * slope
            }
        }
        Activation::Gelu => {
            let x = f64::from(x);
            (0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
        }
    }
}

/// `output[i] = activate(act, input[i])`. Preconditions (else an error):
/// both slices have one length.
pub fn activation(act: Activation, input: &[f32], output: &mut [f32]) -> Result<()> {
    check_len("activation output", input.len(), output.len())?;
    for (out, &x) in output.iter_mut().zip(input) {
        *out = activate(act, x);
    }
    Ok(())
}

/// [`activate`] on every element of `data`, in place (an epilogue).
pub fn activation_in_place(act: Activation, data: &mut [f32]) {
    for x in data {
        *x = activate(act, *x);
    }
}

/// Softmax over the channels of each pixel (`torch.softmax(x, dim=1)` on
/// NCHW; on a flat vector, over all of it with `channels = n`): for each
/// pixel, `out[c] = e^(x[c] - m) / sum_c' e^(x[c'] - m)` with `m` the
/// pixel's maximum (numerically stable: no overflow for large inputs),
/// accumulated in `f64`.
///
/// Preconditions (else an error): `channels > 0`, `input.len()` a multiple
/// of `channels`, `output.len() == input.len()`.
pub fn softmax(input: &[f32], channels: usize, output: &mut [f32]) -> Result<()> {
    check_len("softmax output", input.len(), output.len())?;
    output.copy_from_slice(input);
    softmax_in_place(output, channels)
}

/// [`softmax`] in place on `data` (an epilogue).
pub fn softmax_in_place(data: &mut [f32], channels: usize) -> Result<()> {
    if channels == 0 || !data.len().is_multiple_of(channels) {
        return Err(KernelError::Invalid(format!(
            "softmax: {} elements are not pixels of {channels} channels",
            data.len()
        )));
    }
    for pixel in data.chunks_exact_mut(channels) {
        let max = pixel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let max = f64::from(max);
        let sum: f64 = pixel.iter().map(|&x| (f64::from(x) - max).exp()).sum();
        for x in pixel.iter_mut() {
            *x = ((f64::from(*x) - max).exp() / sum) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    fn apply(act: Activation, xs: &[f32]) -> Vec<f32> {
        let mut out = vec![f32::NAN; xs.len()];
        activation(act, xs, &mut out).unwrap();
        let mut in_place = xs.to_vec();
        activation_in_place(act, &mut in_place);
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            in_place.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        out
    }

    // ln 3: e^-ln3 = 1/3, so sigmoid(ln 3) = 1 / (1 + 1/3) = 3/4 and sigmoid(-ln 3) = 1/4.
    const LN3: f32 = 1.098_612_3;

    #[test]
    fn relu_family() {
        assert_close(
            &apply(Activation::Relu, &[-2.0, -0.5, 0.0, 1.5]),
            &[0.0, 0.0, 0.0, 1.5],
        );
        assert_close(
            &apply(Activation::Relu6, &[-1.0, 3.0, 6.0, 7.0]),
            &[0.0, 3.0, 6.0, 6.0],
        );
        // Slope 0.1: -2 -> -0.2, 0 -> 0, 3 -> 3.
        assert_close(
            &apply(Activation::LeakyRelu(0.1), &[-2.0, 0.0, 3.0]),
            &[-0.2, 0.0, 3.0],
        );
    }

    #[test]
    fn smooth_functions() {
        // tanh(0) = 0, tanh(+-1) = +-0.76159415595576...
        assert_close(
            &apply(Activation::Tanh, &[0.0, 1.0, -1.0]),
            &[0.0, 0.761_594_2, -0.761_594_2],
        );
        // sigmoid(0) = 1/2; sigmoid(+-ln 3) = 3/4, 1/4; far tails saturate to 1 and 0.
        assert_close(
            &apply(Activation::Sigmoid, &[0.0, LN3, -LN3, 200.0, -200.0]),
            &[0.5, 0.75, 0.25, 1.0, 0.0],
        );
        // swish(x) = x sigmoid(x): 0, ln3 * 3/4 = 0.82395921..., -ln3 * 1/4 = -0.27465307...
        assert_close(
            &apply(Activation::Swish, &[0.0, LN3, -LN3]),
            &[0.0, 0.823_959_2, -0.274_653_07],
        );
        // gelu(x) = x Phi(x), the normal distribution's table: Phi(1) =
        // 0.8413447461, Phi(2) = 0.9772498681, Phi(-1) = 1 - Phi(1); far left
        // tail 0 (-20 Phi(-20) is below 1e-88, which f32 rounds to -0).
        assert_close(
            &apply(Activation::Gelu, &[0.0, 1.0, -1.0, 2.0, -20.0]),
            &[0.0, 0.841_344_8, -0.158_655_26, 1.954_499_7, 0.0],
        );
    }

    #[test]
    fn hard_functions() {
        // hard_sigmoid = relu6(x + 3) / 6: -4 -> 0, -3 -> 0, 0 -> 3/6, 1 -> 4/6, 3 -> 1, 4 -> 1.
        assert_close(
            &apply(Activation::HardSigmoid, &[-4.0, -3.0, 0.0, 1.0, 3.0, 4.0]),
            &[0.0, 0.0, 0.5, 4.0 / 6.0, 1.0, 1.0],
        );
        // hard_swish = x * hard_sigmoid(x): 0, 0, 0, 1 * 4/6, 3 * 1, 4 * 1; -1 -> -1 * 2/6.
        assert_close(
            &apply(
                Activation::HardSwish,
                &[-4.0, -3.0, 0.0, 1.0, 3.0, 4.0, -1.0],
            ),
            &[0.0, 0.0, 0.0, 4.0 / 6.0, 3.0, 4.0, -2.0 / 6.0],
        );
    }

    #[test]
    fn nan_propagates() {
        for act in [
            Activation::Relu,
            Activation::Relu6,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Swish,
            Activation::HardSwish,
            Activation::HardSigmoid,
            Activation::LeakyRelu(0.01),
            Activation::Gelu,
        ] {
            assert!(activate(act, f32::NAN).is_nan(), "{act:?}");
        }
    }

    #[test]
    fn softmax_per_pixel() {
        // Pixel 0: [0, ln 2, ln 3] -> e^x = [1, 2, 3] / 6 = [1/6, 1/3, 1/2].
        // Pixel 1: [1000, 1001, 1002] -> [1, e, e^2] / (1 + e + e^2) =
        //          [0.09003057, 0.24472847, 0.66524096] (a naive e^1000 would overflow).
        let input = [0.0, std::f32::consts::LN_2, LN3, 1000.0, 1001.0, 1002.0];
        let expected = [
            1.0 / 6.0,
            1.0 / 3.0,
            0.5,
            0.090_030_57,
            0.244_728_47,
            0.665_240_96,
        ];
        let mut out = [0.0; 6];
        softmax(&input, 3, &mut out).unwrap();
        assert_close(&out, &expected);
        let mut data = input;
        softmax_in_place(&mut data, 3).unwrap();
        assert_close(&data, &expected);
        // One channel: always 1.
        let mut one = [-5.0, 7.0];
        softmax_in_place(&mut one, 1).unwrap();
        assert_close(&one, &[1.0, 1.0]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut out = [0.0; 2];
        assert!(activation(Activation::Relu, &[1.0], &mut out).is_err());
        assert!(softmax(&[1.0, 2.0], 3, &mut out).is_err());
        assert!(softmax_in_place(&mut out, 0).is_err());
    }
}
