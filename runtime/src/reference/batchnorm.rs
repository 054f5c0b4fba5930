//! Batch normalisation (`bn`) at inference, as PyTorch's `BatchNorm2d` (or
//! `BatchNorm1d` on a flat vector) in `eval()` mode: with running statistics.
//!
//! [`BatchNorm::affine`] is the one batch-norm formula: the per-channel
//! (scale, shift) it computes in `f64` is what this reference kernel applies,
//! what `params::fold_batch_norm` folds into a conv or dense, and what the
//! JIT's unfolded affine epilogue applies after rounding each once to `f32`.

use super::{check_len, KernelError, Result};

/// The parameters of one batch norm, in PyTorch's tensors (each `[C]`).
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm<'a> {
    /// `weight` (gamma).
    pub gamma: &'a [f32],
    /// `bias` (beta).
    pub beta: &'a [f32],
    /// `running_mean`.
    pub running_mean: &'a [f32],
    /// `running_var`.
    pub running_var: &'a [f32],
    /// Added to the variance (PyTorch's default is `1e-5`).
    pub eps: f32,
}

/// One channel of a batch norm as the affine map it is at inference,
/// `y = x * scale + shift`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// `gamma / sqrt(running_var + eps)`.
    pub scale: f64,
    /// `beta - running_mean * scale`.
    pub shift: f64,
}

impl Affine {
    /// The scale and the shift each rounded once to `f32` (for kernels that
    /// compute in `f32`).
    pub fn to_f32(self) -> (f32, f32) {
        (self.scale as f32, self.shift as f32)
    }

    /// `x * scale + shift` on every element of `data` (whole pixels of
    /// `channels` channels, else an error naming `layer`), channel `c`'s map
    /// `map(c)`, in `f64`, rounded once: the one loop of every per-channel
    /// affine reference kernel (`bn`, `affine`). It allocates nothing (the
    /// executor calls it per image).
    pub(super) fn apply_in_place(
        channels: usize,
        map: impl Fn(usize) -> Affine,
        layer: &str,
        data: &mut [f32],
    ) -> Result<()> {
        if channels == 0 || !data.len().is_multiple_of(channels) {
            return Err(KernelError::Invalid(format!(
                "{layer}: {} elements are not pixels of {channels} channels",
                data.len()
            )));
        }
        for pixel in data.chunks_exact_mut(channels) {
            for (c, x) in pixel.iter_mut().enumerate() {
                let a = map(c);
                *x = (f64::from(*x) * a.scale + a.shift) as f32;
            }
        }
        Ok(())
    }
}

impl<'a> BatchNorm<'a> {
    /// PyTorch's four tensors in the order of its `batch_norm` arguments'
    /// names: `weight` (gamma), `bias` (beta), `running_mean`, `running_var`.
    pub fn new(
        gamma: &'a [f32],
        beta: &'a [f32],
        running_mean: &'a [f32],
        running_var: &'a [f32],
        eps: f32,
    ) -> Self {
        Self {
            gamma,
            beta,
            running_mean,
            running_var,
            eps,
        }
    }

    /// The channels, checking that all four tensors have the same length.
    fn channels(&self) -> Result<usize> {
        let c = self.gamma.len();
        check_len("bn beta", c, self.beta.len())?;
        check_len("bn running_mean", c, self.running_mean.len())?;
        check_len("bn running_var", c, self.running_var.len())?;
        Ok(c)
    }

    /// Each channel's [`Affine`] map: PyTorch's
    ///
    /// ```text
    /// y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
    /// ```
    ///
    /// rewritten as `y = x * scale + shift` with
    ///
    /// ```text
    /// scale = gamma / sqrt(running_var + eps)
    /// shift = beta - running_mean * scale
    /// ```
    ///
    /// both computed in `f64` from the `f32` parameters and left unrounded:
    /// a user that needs `f32` rounds each once ([`Affine::to_f32`]). Errors
    /// if the four tensors differ in length.
    pub fn affine(&self) -> Result<Vec<Affine>> {
        let channels = self.channels()?;
        Ok((0..channels).map(|c| self.channel(c)).collect())
    }

    /// Channel `c`'s [`Affine`] map (`c` below [`BatchNorm::channels`]).
    fn channel(&self, c: usize) -> Affine {
        let scale = f64::from(self.gamma[c])
            / (f64::from(self.running_var[c]) + f64::from(self.eps)).sqrt();
        Affine {
            scale,
            shift: f64::from(self.beta[c]) - f64::from(self.running_mean[c]) * scale,
        }
    }
}

/// Normalises `input` (HWC, or a flat vector: any number of pixels of `C`
/// channels, `C` the parameters' length) into `output`:
///
/// ```text
/// out[p, c] = (in[p, c] - running_mean[c]) / sqrt(running_var[c] + eps) * gamma[c] + beta[c]
/// ```
///
/// computed in `f64` as `in[p, c] * scale[c] + shift[c]` with
/// [`BatchNorm::affine`]'s factors, rounded once. Preconditions (else an error): the four parameter
/// slices have one length `C > 0`, `input.len()` is a multiple of `C`, and
/// `output.len() == input.len()`.
pub fn batch_norm(bn: &BatchNorm<'_>, input: &[f32], output: &mut [f32]) -> Result<()> {
    check_len("bn output", input.len(), output.len())?;
    output.copy_from_slice(input);
    batch_norm_in_place(bn, output)
}

/// [`batch_norm`] in place on `data` (as the executor runs a `bn` epilogue).
pub fn batch_norm_in_place(bn: &BatchNorm<'_>, data: &mut [f32]) -> Result<()> {
    let channels = bn.channels()?;
    Affine::apply_in_place(channels, |c| bn.channel(c), "bn", data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    // Two channels; eps = 1 so that sqrt(var + eps) = sqrt(3 + 1) = 2 and sqrt(15 + 1) = 4.
    const BN: BatchNorm<'static> = BatchNorm {
        gamma: &[2.0, 0.5],
        beta: &[1.0, -1.0],
        running_mean: &[1.0, 2.0],
        running_var: &[3.0, 15.0],
        eps: 1.0,
    };

    #[test]
    fn normalises_per_channel() {
        // Pixels [1, 2] and [3, 4].
        // Channel 0: (x - 1) / 2 * 2 + 1 = x  -> 1, 3.
        // Channel 1: (x - 2) / 4 * 0.5 - 1    -> (0) - 1 = -1; (2/4)*0.5 - 1 = -0.75.
        let input = [1.0, 2.0, 3.0, 4.0];
        let mut out = [0.0; 4];
        batch_norm(&BN, &input, &mut out).unwrap();
        assert_close(&out, &[1.0, -1.0, 3.0, -0.75]);
        let mut data = input;
        batch_norm_in_place(&BN, &mut data).unwrap();
        assert_close(&data, &[1.0, -1.0, 3.0, -0.75]);
    }

    #[test]
    fn default_eps() {
        // One channel, var 1 - 1e-5 + eps 1e-5 = 1: (x - 0.5) / 1 * 1 + 0 -> 1.5 - 0.5 = 1.
        let bn = BatchNorm {
            gamma: &[1.0],
            beta: &[0.0],
            running_mean: &[0.5],
            running_var: &[1.0 - 1e-5],
            eps: 1e-5,
        };
        let mut data = [1.5];
        batch_norm_in_place(&bn, &mut data).unwrap();
        assert_close(&data, &[1.0]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut out = [0.0; 3];
        assert!(batch_norm(&BN, &[1.0, 2.0, 3.0], &mut out).is_err());
        assert!(batch_norm(&BN, &[1.0, 2.0], &mut out).is_err());
        let short = BatchNorm {
            running_var: &[1.0],
            ..BN
        };
        assert!(matches!(
            batch_norm_in_place(&short, &mut [0.0, 0.0]),
            Err(KernelError::Length {
                what: "bn running_var",
                ..
            })
        ));
    }
}
