//! `shuffle(groups)` and `slice(first, count)`: data movement across the
//! channels of each pixel, nothing computed (ShuffleNet's channel shuffle and
//! its split into two branches).

use super::{check_len, Dims, KernelError, Result};

/// ShuffleNet's channel shuffle, PyTorch's `channel_shuffle(x, groups)`:
/// `x.view(N, groups, C / groups, H, W).transpose(1, 2).reshape(N, C, H, W)`.
/// At every pixel, output channel `j groups + g` is input channel
/// `g (C / groups) + j`, for `g < groups` and `j < C / groups`.
///
/// Preconditions (else an error): `groups >= 1` divides `dims.c`, and
/// `input` and `output` are of `dims`' length.
pub fn shuffle(groups: usize, input: &[f32], dims: Dims, output: &mut [f32]) -> Result<()> {
    check_len("shuffle input", dims.len(), input.len())?;
    check_len("shuffle output", dims.len(), output.len())?;
    if groups == 0 || !dims.c.is_multiple_of(groups) {
        return Err(KernelError::Invalid(format!(
            "shuffle: {} channels do not divide into {groups} groups",
            dims.c
        )));
    }
    let per_group = dims.c / groups;
    for (from, to) in input
        .chunks_exact(dims.c.max(1))
        .zip(output.chunks_exact_mut(dims.c.max(1)))
    {
        for g in 0..groups {
            for j in 0..per_group {
                to[j * groups + g] = from[g * per_group + j];
            }
        }
    }
    Ok(())
}

/// The channels `[first, first + count)` of `input` (HWC, `dims`) into
/// `output` (HWC, `count` channels): PyTorch's `x.narrow(1, first, count)`.
///
/// Preconditions (else an error): the channels within `dims.c`, `input` of
/// `dims`' length and `output` of `dims.pixels() * count`.
pub fn slice(
    first: usize,
    count: usize,
    input: &[f32],
    dims: Dims,
    output: &mut [f32],
) -> Result<()> {
    check_len("slice input", dims.len(), input.len())?;
    check_len(
        "slice output",
        dims.pixels().saturating_mul(count),
        output.len(),
    )?;
    if count == 0 || first.saturating_add(count) > dims.c {
        return Err(KernelError::Invalid(format!(
            "slice: channels [{first}, {}) of {} channels",
            first.saturating_add(count),
            dims.c
        )));
    }
    for (from, to) in input
        .chunks_exact(dims.c)
        .zip(output.chunks_exact_mut(count))
    {
        to.copy_from_slice(&from[first..first + count]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pixel of 6 channels in 2 groups, by hand from PyTorch's view and
    /// transpose: groups [0 1 2] and [3 4 5] interleave to 0 3 1 4 2 5; in 3
    /// groups [0 1] [2 3] [4 5] give 0 2 4 1 3 5.
    #[test]
    fn shuffle_interleaves_the_groups() {
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut out = [0.0; 12];
        shuffle(2, &x, Dims::new(1, 2, 6), &mut out).unwrap();
        assert_eq!(out, [0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]);
        shuffle(3, &x[..6], Dims::new(1, 1, 6), &mut out[..6]).unwrap();
        assert_eq!(out[..6], [0., 2., 4., 1., 3., 5.]);
        // One group, or as many as channels, changes nothing.
        for g in [1, 6] {
            shuffle(g, &x[..6], Dims::new(1, 1, 6), &mut out[..6]).unwrap();
            assert_eq!(out[..6], x[..6]);
        }
    }

    #[test]
    fn slice_takes_each_pixels_channels() {
        // Two pixels of 4 channels: [0 1 2 3], [4 5 6 7]; channels [1, 3).
        let x: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let mut out = [0.0; 4];
        slice(1, 2, &x, Dims::new(2, 1, 4), &mut out).unwrap();
        assert_eq!(out, [1., 2., 5., 6.]);
    }

    #[test]
    fn mismatches_are_errors() {
        let x = [0.0; 8];
        let mut out = [0.0; 8];
        assert!(shuffle(3, &x, Dims::new(2, 1, 4), &mut out).is_err());
        assert!(shuffle(0, &x, Dims::new(2, 1, 4), &mut out).is_err());
        assert!(shuffle(2, &x, Dims::new(1, 1, 4), &mut out).is_err());
        assert!(slice(3, 2, &x, Dims::new(2, 1, 4), &mut out[..4]).is_err());
        assert!(slice(0, 0, &x, Dims::new(2, 1, 4), &mut out[..0]).is_err());
        assert!(slice(0, 2, &x, Dims::new(2, 1, 4), &mut out).is_err());
    }
}
