//! `affine`: a learned factor and shift per channel, `x w_c + b_c`
//! (ConvNeXt's layer scale, `(x - mean) / std` baked into a model).

use super::{check_len, Affine, Result};

/// `x * scale[c] + shift[c]` on every element of `data` (HWC, `scale.len()`
/// channels), in place, computed in `f64` and rounded once. A layer without
/// a factor passes `scale` all ones, one without a shift `shift` all zeros
/// (which change nothing: `x * 1 + 0` is `x`). Preconditions (else an
/// error): at least one channel, `shift` as long as `scale`, whole pixels.
pub fn affine_in_place(scale: &[f32], shift: &[f32], data: &mut [f32]) -> Result<()> {
    check_len("affine shift", scale.len(), shift.len())?;
    let map = |c: usize| Affine {
        scale: f64::from(scale[c]),
        shift: f64::from(shift[c]),
    };
    Affine::apply_in_place(scale.len(), map, "affine", data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_has_its_factor_and_shift() {
        // Two pixels of two channels, factors [2, -0.5], shifts [1, 0]:
        // [3, 4] -> [7, -2]; [-1, 0] -> [-1, 0 (0 * -0.5 is -0, plus 0 is +0)].
        let mut data = [3.0, 4.0, -1.0, 0.0];
        affine_in_place(&[2.0, -0.5], &[1.0, 0.0], &mut data).unwrap();
        assert_eq!(data, [7.0, -2.0, -1.0, 0.0]);
        assert!(data[3].is_sign_positive());
    }

    #[test]
    fn partial_pixels_are_errors() {
        let mut data = [1.0; 5];
        assert!(affine_in_place(&[1.0, 1.0], &[0.0, 0.0], &mut data).is_err());
        assert!(affine_in_place(&[1.0], &[0.0, 0.0], &mut data).is_err());
        assert!(affine_in_place(&[], &[], &mut data).is_err());
    }
}
