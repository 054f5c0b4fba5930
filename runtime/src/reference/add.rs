//! The join of a `residual`: the element-wise sum of the body and the shortcut.

use super::{check_len, Result};

/// `output[i] = a[i] + b[i]`. Preconditions (else an error): all three
/// slices have one length.
pub fn add(a: &[f32], b: &[f32], output: &mut [f32]) -> Result<()> {
    check_len("add second input", a.len(), b.len())?;
    check_len("add output", a.len(), output.len())?;
    for ((out, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *out = x + y;
    }
    Ok(())
}

/// `acc[i] += other[i]` (as the executor runs a residual add epilogue).
/// Preconditions (else an error): both slices have one length.
pub fn add_in_place(acc: &mut [f32], other: &[f32]) -> Result<()> {
    check_len("add shortcut", acc.len(), other.len())?;
    for (x, &y) in acc.iter_mut().zip(other) {
        *x += y;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::testutil::assert_close;

    #[test]
    fn sums() {
        // [1, 2, -3] + [10, 20, 3] = [11, 22, 0].
        let mut out = [0.0; 3];
        add(&[1.0, 2.0, -3.0], &[10.0, 20.0, 3.0], &mut out).unwrap();
        assert_close(&out, &[11.0, 22.0, 0.0]);
        let mut acc = [1.0, 2.0, -3.0];
        add_in_place(&mut acc, &[10.0, 20.0, 3.0]).unwrap();
        assert_close(&acc, &[11.0, 22.0, 0.0]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut out = [0.0; 2];
        assert!(add(&[1.0, 2.0], &[1.0], &mut out).is_err());
        assert!(add(&[1.0, 2.0], &[1.0, 2.0], &mut out[..1]).is_err());
        assert!(add_in_place(&mut out, &[1.0]).is_err());
    }
}
