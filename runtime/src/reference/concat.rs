//! `concat { .. }`: channel concatenation of branches of equal spatial size.

use super::{check_len, Dims, KernelError, Result};

/// Concatenates `inputs` (each HWC with its [`Dims`]; all of one height and
/// width) along the channels into `output`, in order: at every pixel, the
/// first input's channels, then the second's, and so on (PyTorch's
/// `torch.cat(dim=1)` on NCHW). Flat vectors are `1 x 1 x n`
/// ([`Dims::flat`]) and are simply appended. Returns the output's
/// dimensions (channels summed).
///
/// Preconditions (else an error): at least one input, equal heights and
/// widths, each slice of its dims' length, `output.len()` the total.
pub fn concat(inputs: &[(&[f32], Dims)], output: &mut [f32]) -> Result<Dims> {
    let Some(&(_, first)) = inputs.first() else {
        return Err(KernelError::Invalid("concat: no input".into()));
    };
    let mut channels = 0usize;
    for &(data, dims) in inputs {
        if (dims.h, dims.w) != (first.h, first.w) {
            return Err(KernelError::Invalid(format!(
                "concat: an input of {}x{} pixels among inputs of {}x{}",
                dims.h, dims.w, first.h, first.w
            )));
        }
        check_len("concat input", dims.len(), data.len())?;
        channels = channels.saturating_add(dims.c);
    }
    let out = Dims::new(first.h, first.w, channels);
    let mut offset = 0;
    for &(data, dims) in inputs {
        concat_part(data, dims, offset, out, output)?;
        offset += dims.c;
    }
    Ok(out)
}

/// Writes one input of a concat into its channel slice of `output`: at every
/// pixel, `dims.c` channels starting at channel `offset` of `out`.
///
/// Preconditions (else an error): `data` of `dims`' length, `output` of
/// `out`'s, equal pixel counts, and the slice within `out`'s channels.
pub fn concat_part(
    data: &[f32],
    dims: Dims,
    offset: usize,
    out: Dims,
    output: &mut [f32],
) -> Result<()> {
    check_len("concat input", dims.len(), data.len())?;
    check_len("concat output", out.len(), output.len())?;
    if dims.pixels() != out.pixels() || offset.saturating_add(dims.c) > out.c {
        return Err(KernelError::Invalid(format!(
            "concat: {}x{}x{} at channel {offset} does not fit {}x{}x{}",
            dims.h, dims.w, dims.c, out.h, out.w, out.c
        )));
    }
    for p in 0..out.pixels() {
        output[p * out.c + offset..p * out.c + offset + dims.c]
            .copy_from_slice(&data[p * dims.c..(p + 1) * dims.c]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    #[test]
    fn concatenates_channels_per_pixel() {
        // 1x2 pixels. A: 1 channel [1], [2]. B: 2 channels [10, 11], [20, 21].
        // C: 1 channel [-1], [-2]. Pixel 0 -> [1, 10, 11, -1]; pixel 1 -> [2, 20, 21, -2].
        let a = [1.0, 2.0];
        let b = [10.0, 11.0, 20.0, 21.0];
        let c = [-1.0, -2.0];
        let mut out = [0.0; 8];
        let d = concat(
            &[
                (&a, Dims::new(1, 2, 1)),
                (&b, Dims::new(1, 2, 2)),
                (&c, Dims::new(1, 2, 1)),
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(d, Dims::new(1, 2, 4));
        assert_close(&out, &[1.0, 10.0, 11.0, -1.0, 2.0, 20.0, 21.0, -2.0]);
    }

    #[test]
    fn flat_vectors_append() {
        // [1, 2] then [3]: [1, 2, 3].
        let mut out = [0.0; 3];
        let d = concat(
            &[(&[1.0, 2.0], Dims::flat(2)), (&[3.0], Dims::flat(1))],
            &mut out,
        )
        .unwrap();
        assert_eq!(d, Dims::flat(3));
        assert_close(&out, &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn mismatches_are_errors() {
        let mut out = [0.0; 4];
        assert!(concat(&[], &mut out).is_err());
        assert!(concat(
            &[
                (&[1.0, 2.0], Dims::new(1, 2, 1)),
                (&[1.0, 2.0], Dims::new(2, 1, 1))
            ],
            &mut out
        )
        .is_err());
        assert!(concat(&[(&[1.0], Dims::new(1, 2, 1))], &mut out).is_err());
        assert!(concat(&[(&[1.0, 2.0], Dims::new(1, 2, 1))], &mut out).is_err());
    }
}
