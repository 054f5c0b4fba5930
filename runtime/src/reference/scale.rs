//! `scale { .. }` (squeeze-and-excitation): the input multiplied by a gate.

use super::{check_len, Dims, KernelError, Result};

/// Multiplies `input` (HWC, `dims`) by `gate` into `output`:
///
/// - a gate of `C` values (a `1 x 1 x C` body output) scales each channel:
///   `out[p, c] = in[p, c] * gate[c]`;
/// - a gate of the input's own length multiplies element-wise.
///
/// (When the input is `1 x 1 x C` both readings agree.) Preconditions
/// (else an error): `input.len() == dims.len() == output.len()` and the gate
/// has one of those two lengths.
pub fn scale(input: &[f32], dims: Dims, gate: &[f32], output: &mut [f32]) -> Result<()> {
    check_len("scale input", dims.len(), input.len())?;
    check_len("scale output", dims.len(), output.len())?;
    if gate.len() == dims.len() {
        for ((out, &x), &g) in output.iter_mut().zip(input).zip(gate) {
            *out = x * g;
        }
    } else if gate.len() == dims.c {
        for (pixel_in, pixel_out) in input
            .chunks_exact(dims.c)
            .zip(output.chunks_exact_mut(dims.c))
        {
            for c in 0..dims.c {
                pixel_out[c] = pixel_in[c] * gate[c];
            }
        }
    } else {
        return Err(KernelError::Invalid(format!(
            "scale: a gate of {} elements fits neither the {} channels nor the {} elements of a {}x{}x{} input",
            gate.len(),
            dims.c,
            dims.len(),
            dims.h,
            dims.w,
            dims.c
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    #[test]
    fn per_channel_gate() {
        // 1x2 pixels of 2 channels: [1, 2], [3, 4]; gate [10, 100] -> [10, 200], [30, 400].
        let mut out = [0.0; 4];
        scale(
            &[1.0, 2.0, 3.0, 4.0],
            Dims::new(1, 2, 2),
            &[10.0, 100.0],
            &mut out,
        )
        .unwrap();
        assert_close(&out, &[10.0, 200.0, 30.0, 400.0]);
    }

    #[test]
    fn element_wise_gate() {
        // [1, 2, 3, 4] * [2, 3, 4, 5] = [2, 6, 12, 20].
        let mut out = [0.0; 4];
        scale(
            &[1.0, 2.0, 3.0, 4.0],
            Dims::new(1, 2, 2),
            &[2.0, 3.0, 4.0, 5.0],
            &mut out,
        )
        .unwrap();
        assert_close(&out, &[2.0, 6.0, 12.0, 20.0]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut out = [0.0; 4];
        let input = [1.0, 2.0, 3.0, 4.0];
        assert!(scale(&input, Dims::new(1, 2, 2), &[1.0, 2.0, 3.0], &mut out).is_err());
        assert!(scale(&input, Dims::new(1, 2, 2), &[1.0, 2.0], &mut out[..3]).is_err());
        assert!(scale(&input[..3], Dims::new(1, 2, 2), &[1.0, 2.0], &mut out).is_err());
    }
}
