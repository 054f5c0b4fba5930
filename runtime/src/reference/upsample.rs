//! `upsample(s)`: nearest and bilinear upsampling by an integer factor, as
//! PyTorch's `nn.Upsample(scale_factor = s)` (`mode = "nearest"`, and
//! `mode = "bilinear"` with `align_corners = False`).

use super::{check_len, Dims, KernelError, Result};
use crate::ir::Upsample;

/// Upsamples `input` (HWC, `dims`) by `op.scale` along both axes into
/// `output` (HWC, `H s x W s x C`).
///
/// Nearest: `out[oy, ox] = in[oy / s, ox / s]` (integer division; PyTorch's
/// `floor(o * (1 / s))`, exact for an integer factor, and ONNX `Resize`
/// nearest with `asymmetric` coordinates and `floor`).
///
/// Bilinear, along each axis: the source coordinate
/// `max(0, (o + 0.5) / s - 0.5)` (`half_pixel`), its floor `i0`, `i1 =
/// min(i0 + 1, n - 1)` and weight `l = src - i0`; the output is
/// `(1 - ly) ((1 - lx) x00 + lx x01) + ly ((1 - lx) x10 + lx x11)`, in `f64`.
///
/// Preconditions (else an error): `op.scale >= 1`, `input` of `dims`' length
/// and `output` of the upsampled length.
pub fn upsample(op: &Upsample, input: &[f32], dims: Dims, output: &mut [f32]) -> Result<()> {
    let s = op.scale as usize;
    if s == 0 {
        return Err(KernelError::Invalid("upsample: a scale of zero".into()));
    }
    let out = Dims::new(dims.h.saturating_mul(s), dims.w.saturating_mul(s), dims.c);
    check_len("upsample input", dims.len(), input.len())?;
    check_len("upsample output", out.len(), output.len())?;
    let c = dims.c;
    let at = |y: usize, x: usize| (y * dims.w + x) * c;
    if !op.bilinear {
        for oy in 0..out.h {
            for ox in 0..out.w {
                let from = at(oy / s, ox / s);
                let to = (oy * out.w + ox) * c;
                output[to..to + c].copy_from_slice(&input[from..from + c]);
            }
        }
        return Ok(());
    }
    // Per output coordinate along an axis of `n` inputs: (i0, i1, l).
    let taps = |o: usize, n: usize| {
        let src = ((o as f64 + 0.5) / s as f64 - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n - 1);
        (i0, (i0 + 1).min(n - 1), src - i0 as f64)
    };
    for oy in 0..out.h {
        let (y0, y1, ly) = taps(oy, dims.h);
        for ox in 0..out.w {
            let (x0, x1, lx) = taps(ox, dims.w);
            let to = (oy * out.w + ox) * c;
            for ch in 0..c {
                let v = |y: usize, x: usize| f64::from(input[at(y, x) + ch]);
                let top = (1.0 - lx) * v(y0, x0) + lx * v(y0, x1);
                let bottom = (1.0 - lx) * v(y1, x0) + lx * v(y1, x1);
                output[to + ch] = ((1.0 - ly) * top + ly * bottom) as f32;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    fn up(scale: u32, bilinear: bool) -> Upsample {
        Upsample { scale, bilinear }
    }

    #[test]
    fn nearest_repeats_each_pixel() {
        // 1x2 pixels of 2 channels: [a0 a1] [b0 b1], by 2: two rows of a a b b.
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut out = [0.0; 16];
        upsample(&up(2, false), &x, Dims::new(1, 2, 2), &mut out).unwrap();
        let row = [1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0];
        assert_eq!(out[..8], row);
        assert_eq!(out[8..], row);
    }

    /// `F.interpolate(torch.tensor([[[[1., 2.]]]]), scale_factor = 2,
    /// mode = "bilinear", align_corners = False)` along a row of [1 2]:
    /// sources max(0, -0.25) = 0, 0.25, 0.75, 1.25 (clamped to the last
    /// pixel) give 1, 1.25, 1.75, 2; by hand from the formula above.
    #[test]
    fn bilinear_interpolates_at_half_pixels() {
        let mut out = [0.0; 8];
        upsample(&up(2, true), &[1.0, 2.0], Dims::new(1, 2, 1), &mut out).unwrap();
        assert_close(&out, &[1.0, 1.25, 1.75, 2.0, 1.0, 1.25, 1.75, 2.0]);
        // Scale 1 is the identity.
        let x = [1.0, 5.0, -2.0, 7.0];
        let mut same = [0.0; 4];
        upsample(&up(1, true), &x, Dims::new(2, 2, 1), &mut same).unwrap();
        assert_close(&same, &x);
    }

    #[test]
    fn mismatches_are_errors() {
        let mut out = [0.0; 8];
        assert!(upsample(
            &up(0, false),
            &[1.0, 2.0],
            Dims::new(1, 2, 1),
            &mut out[..0]
        )
        .is_err());
        assert!(upsample(
            &up(2, false),
            &[1.0, 2.0],
            Dims::new(1, 2, 1),
            &mut out[..7]
        )
        .is_err());
        assert!(upsample(&up(2, true), &[1.0], Dims::new(1, 2, 1), &mut out).is_err());
    }
}
