//! Reference kernels: one plain, obviously correct loop nest per layer kind.
//! They are the oracle every JIT kernel is tested against, so clarity wins
//! over speed everywhere in this module.
//!
//! # Conventions
//!
//! - Activations are one image laid out HWC (height, width, channel): the
//!   element at row `y`, column `x`, channel `k` of an `h x w x c` volume is
//!   at `(y * w + x) * c + k`. A flat vector of `n` features is treated as a
//!   `1 x 1 x n` volume (see [`Dims`]).
//! - Weights are in PyTorch's layouts: conv `[K, Cin/groups, Fh, Fw]` and
//!   bias `[K]`; dense `[N, Nin]` and bias `[N]`; batch norm `weight`
//!   (gamma), `bias` (beta), `running_mean`, `running_var`, each `[C]`; all
//!   row-major; prelu `weight` `[C]`, its slopes; layernorm `weight`
//!   (gamma) and `bias` (beta), affine `weight` and `bias`, each `[C]`.
//! - Semantics are PyTorch's (inference mode): `Conv2d`, `Linear`,
//!   `MaxPool2d`, `AvgPool2d` (with `ceil_mode` and `count_include_pad`),
//!   `AdaptiveAvgPool2d(1)`/`AdaptiveMaxPool2d(1)`, `BatchNorm2d` with running
//!   statistics, `LocalResponseNorm`, the element-wise activations, `PReLU`,
//!   `Softmax` over the channels of each pixel, `LayerNorm` over the
//!   channels of each pixel, a per-channel affine map, ShuffleNet's
//!   `channel_shuffle` and channel `narrow`, `ConvTranspose2d` (one group)
//!   and `Upsample` (nearest, and bilinear without `align_corners`). Where PyTorch has only
//!   symmetric padding, the asymmetric [`Padding`](crate::ir::Padding) of
//!   the IR generalises it in the obvious way (top/left wherever PyTorch uses
//!   `pad` before the input, bottom/right wherever it uses `pad` after it).
//! - Sums (conv, dense, average pooling, LRN, softmax) accumulate in `f64`
//!   and round once to `f32`, so the oracle sits closer to the exact result
//!   than any `f32` kernel; compare fast kernels with a relative tolerance.
//!
//! # Contract
//!
//! Every kernel checks the lengths of the slices it is given against the
//! shapes it is given and returns a [`KernelError`] rather than panicking (the
//! executor guarantees the lengths, so an error is a bug upstream). A kernel
//! that produces a volume of a size it computes (conv, pool, concat) returns
//! the output's [`Dims`]; the `*_output_dims` functions give it beforehand.
//! Nothing here uses `unsafe`.

mod activation;
mod add;
mod affine;
mod batchnorm;
mod channels;
mod concat;
mod conv;
mod deconv;
mod dense;
mod layernorm;
mod lrn;
mod pool;
mod prelu;
mod scale;
mod upsample;

pub use activation::{activate, activation, activation_in_place, softmax, softmax_in_place};
pub use add::{add, add_in_place};
pub use affine::affine_in_place;
pub use batchnorm::{batch_norm, batch_norm_in_place, Affine, BatchNorm};
pub use channels::{shuffle, slice};
pub use concat::{concat, concat_part};
pub use conv::{conv2d, conv2d_output_dims};
pub use deconv::{deconv2d, deconv2d_output_dims};
pub use dense::{dense, permute_dense_weight_chw_to_hwc};
pub use layernorm::layer_norm;
pub use lrn::lrn;
pub use pool::{global_pool, pool2d, pool2d_output_dims};
pub use prelu::prelu_in_place;
pub use scale::scale;
pub use upsample::upsample;

use crate::ir::Shape;

/// The (height, width, channels) of one image's tensor, as `usize`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Dims {
    /// A volume of `h x w x c`.
    pub const fn new(h: usize, w: usize, c: usize) -> Dims {
        Dims { h, w, c }
    }

    /// A flat vector of `n` features, seen as a `1 x 1 x n` volume.
    pub const fn flat(n: usize) -> Dims {
        Dims { h: 1, w: 1, c: n }
    }

    /// Number of `f32` elements, `h * w * c`. It saturates at `usize::MAX`
    /// instead of overflowing, so an absurd shape never matches a real
    /// slice's length and the kernels report it as a length error.
    pub const fn len(&self) -> usize {
        self.pixels().saturating_mul(self.c)
    }

    /// Whether the tensor holds no element.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of pixels, `h * w` (saturating like [`Dims::len`]).
    pub const fn pixels(&self) -> usize {
        self.h.saturating_mul(self.w)
    }
}

impl From<Shape> for Dims {
    /// A volume keeps its dimensions; `Flat(n)` becomes `1 x 1 x n`.
    fn from(shape: Shape) -> Dims {
        match shape {
            Shape::Volume { h, w, c } => Dims::new(h as usize, w as usize, c as usize),
            Shape::Flat(n) => Dims::flat(n as usize),
        }
    }
}

/// Why a reference kernel refused its arguments.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A slice does not have the length its shape requires.
    #[error("{what}: expected {expected} elements, found {found}")]
    Length {
        /// Which argument (e.g. `"conv weight"`).
        what: &'static str,
        /// The length the shapes require.
        expected: usize,
        /// The slice's length.
        found: usize,
    },
    /// The hyper-parameters do not fit the input (a kernel larger than its
    /// padded input, a stride of zero, channels not divisible by groups...).
    #[error("{0}")]
    Invalid(String),
}

/// The result of a reference kernel.
pub type Result<T> = std::result::Result<T, KernelError>;

/// `Ok` when `found == expected`, else [`KernelError::Length`].
pub(crate) fn check_len(what: &'static str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            found,
        })
    }
}

/// The output length along one axis of a sliding window (conv or pool), as
/// PyTorch computes it:
///
/// ```text
/// span = n + before + after - (dilation (kernel - 1) + 1)
/// out  = floor(span / stride) + 1            (ceil = false)
/// out  = ceil(span / stride) + 1             (ceil = true), then minus one if
///        the last window would start at or past n + before, i.e. inside the
///        right padding (PyTorch's pooling_output_shape)
/// ```
///
/// `None` when the kernel, stride or dilation is zero, or the (dilated)
/// kernel is larger than the padded input.
pub fn window_output_len(
    n: usize,
    before: usize,
    after: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let padded = n.checked_add(before)?.checked_add(after)?;
    let effective = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let span = padded.checked_sub(effective)?;
    let steps = if ceil {
        span.div_ceil(stride)
    } else {
        span / stride
    };
    // The last window starts at `steps * stride` in padded coordinates.
    let last_start_in_right_padding = steps
        .checked_mul(stride)
        .is_none_or(|start| start >= n + before);
    if ceil && steps > 0 && last_start_in_right_padding {
        Some(steps)
    } else {
        steps.checked_add(1)
    }
}

/// The input coordinate that output position `out`, kernel tap `tap` reads
/// along one axis: `out * stride + tap * dilation - before`, or `None` when
/// that falls in the padding (outside `0..n`).
pub(crate) fn input_coord(
    out: usize,
    tap: usize,
    stride: usize,
    dilation: usize,
    before: usize,
    n: usize,
) -> Option<usize> {
    let padded = out * stride + tap * dilation;
    let coord = padded.checked_sub(before)?;
    (coord < n).then_some(coord)
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Asserts that `actual` and `expected` agree element-wise within
    /// `1e-6 * max(1, |expected|)` (exact equality for infinities and NaNs).
    #[track_caller]
    pub fn assert_close(actual: &[f32], expected: &[f32]) {
        assert_eq!(
            actual.len(),
            expected.len(),
            "lengths differ: {actual:?} vs {expected:?}"
        );
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let ok = if e.is_nan() {
                a.is_nan()
            } else if e.is_infinite() {
                a == e
            } else {
                (a - e).abs() <= 1e-6 * e.abs().max(1.0)
            };
            assert!(
                ok,
                "element {i}: got {a}, expected {e}\n got {actual:?}\nwant {expected:?}"
            );
        }
    }

    /// The 3x3 single-channel grid used throughout the tests:
    ///
    /// ```text
    /// 1 2 3
    /// 4 5 6
    /// 7 8 9
    /// ```
    pub const GRID: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_from_shapes() {
        assert_eq!(
            Dims::from(Shape::Volume { h: 2, w: 3, c: 4 }),
            Dims::new(2, 3, 4)
        );
        assert_eq!(Dims::from(Shape::Flat(7)), Dims::new(1, 1, 7));
        assert_eq!(Dims::new(2, 3, 4).len(), 24);
        assert_eq!(Dims::new(usize::MAX, 2, 1).len(), usize::MAX);
    }

    #[test]
    fn window_lengths_follow_pytorch() {
        // 3 with a 2-window, stride 1: positions 0 and 1.
        assert_eq!(window_output_len(3, 0, 0, 2, 1, 1, false), Some(2));
        // 3 padded by 1 each side = 5, window 2, stride 2: floor(3/2)+1 = 2.
        assert_eq!(window_output_len(3, 1, 1, 2, 2, 1, false), Some(2));
        // 4 with a 2-window dilated by 2 (spans 3): floor(1/1)+1 = 2.
        assert_eq!(window_output_len(4, 0, 0, 2, 1, 2, false), Some(2));
        // 3, window 2, stride 2, ceil: ceil(1/2)+1 = 2; last start 2 < 3 kept.
        assert_eq!(window_output_len(3, 0, 0, 2, 2, 1, true), Some(2));
        assert_eq!(window_output_len(3, 0, 0, 2, 2, 1, false), Some(1));
        // 6 padded 1+1, window 3, stride 2, ceil: ceil(5/2)+1 = 4, but the
        // 4th window starts at 6 >= 6 + 1? no: 6 < 7, kept -> 4.
        assert_eq!(window_output_len(6, 1, 1, 3, 2, 1, true), Some(4));
        // 5 padded 1+1, window 2, stride 2, ceil: ceil(5/2)+1 = 4; the 4th
        // window starts at 6 >= 5 + 1: dropped -> 3.
        assert_eq!(window_output_len(5, 1, 1, 2, 2, 1, true), Some(3));
        // Kernel larger than the padded input, zero stride, zero kernel.
        assert_eq!(window_output_len(2, 0, 0, 3, 1, 1, false), None);
        assert_eq!(window_output_len(2, 0, 0, 1, 0, 1, false), None);
        assert_eq!(window_output_len(2, 0, 0, 0, 1, 1, false), None);
    }

    #[test]
    fn input_coords_skip_padding() {
        // out 0, tap 0, before 1: padded 0 is padding.
        assert_eq!(input_coord(0, 0, 1, 1, 1, 3), None);
        assert_eq!(input_coord(0, 1, 1, 1, 1, 3), Some(0));
        // out 1, stride 2, tap 1, dilation 2, before 1: 2 + 2 - 1 = 3 >= 3.
        assert_eq!(input_coord(1, 1, 2, 2, 1, 3), None);
        assert_eq!(input_coord(1, 1, 2, 2, 2, 3), Some(2));
    }
}
