//! Shape inference: the output shape of one op from its inputs' shapes.
//!
//! This module knows nothing of syntax or spans: [`output_shape`] is a pure
//! function of an [`Op`] and input [`Shape`]s, so the expander (which attaches
//! the offending token to a [`ShapeError`]), [`Graph::verify`](crate::Graph::verify)
//! and later importers all share one set of rules. All arithmetic is checked:
//! a shape that does not fit a `u32` is [`ShapeError::Overflow`], never a wrap.

use crate::{Conv2d, Deconv, Hw, Op, Padding, Pool2d, Shape, Upsample};
use thiserror::Error;

/// Why an op cannot be applied to its inputs.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ShapeError {
    /// A spatial op met a flat vector.
    #[error("expected a volume (H,W,C), found the flat vector {found}")]
    ExpectedVolume {
        /// The input's shape.
        found: Shape,
    },
    /// `dense` met a volume.
    #[error("expected a flat input, found the volume {found}; add `flatten` before it")]
    ExpectedFlat {
        /// The input's shape.
        found: Shape,
    },
    /// The (dilated) window does not fit in the padded input.
    #[error("the kernel ({}x{}) is larger than its padded input ({}x{}x{})", kernel.h, kernel.w, padded.0, padded.1, padded.2)]
    KernelTooLarge {
        /// The window, dilation applied.
        kernel: Hw,
        /// The padded input (height, width, channels).
        padded: (u64, u64, u32),
    },
    /// A layer would produce no element.
    #[error("the output would have size zero ({what})")]
    ZeroOutput {
        /// What is zero.
        what: &'static str,
    },
    /// Channels not divisible by the groups.
    #[error("{which} channels ({channels}) are not divisible by groups = {groups}")]
    Groups {
        /// `input` or `output`.
        which: &'static str,
        /// The channel count.
        channels: u32,
        /// The groups.
        groups: u32,
    },
    /// Branches of a concat disagree.
    #[error(
        "branches must agree in spatial size: branch 1 gives {first}, branch {index} gives {other}"
    )]
    Concat {
        /// The first branch's output.
        first: Shape,
        /// The 1-based index of the disagreeing branch.
        index: usize,
        /// Its output.
        other: Shape,
    },
    /// The two sides of an add differ.
    #[error("the body gives {body} but the shortcut gives {shortcut}; the shortcut must end in the body's shape")]
    Add {
        /// The body's output.
        body: Shape,
        /// The shortcut's output.
        shortcut: Shape,
    },
    /// A `scale` gate of the wrong shape.
    #[error("the body must end in (1,1,{c}) or the input's shape {input}, found {gate}", c = input.channels())]
    Scale {
        /// The scaled input.
        input: Shape,
        /// The gate.
        gate: Shape,
    },
    /// A `slice` past its input's channels.
    #[error("channels [{first}, {end}) are not within the input's {channels} channels", end = *first as u64 + *count as u64)]
    Slice {
        /// The first channel taken.
        first: u32,
        /// How many channels are taken.
        count: u32,
        /// The input's channels.
        channels: u32,
    },
    /// A `deconv` whose padding crops away its whole output.
    #[error("pad = {padding} crops the whole output: (H - 1) stride + kernel gives {full_h}x{full_w} before 2 x {padding} rows and columns are cut")]
    DeconvCrop {
        /// The padding cut from each side.
        padding: u32,
        /// The uncropped output's height.
        full_h: u64,
        /// The uncropped output's width.
        full_w: u64,
    },
    /// A figure does not fit the integer type.
    #[error("arithmetic overflows: the network is too large")]
    Overflow,
}

/// The output shape of `op` applied to `inputs`.
pub fn output_shape(op: &Op, inputs: &[Shape]) -> Result<Shape, ShapeError> {
    let first = || {
        inputs
            .first()
            .copied()
            .ok_or(ShapeError::ZeroOutput { what: "no input" })
    };
    match op {
        Op::Input => first(),
        Op::Conv2d(conv) => conv_shape(conv, first()?),
        Op::Dense(dense) => match first()? {
            Shape::Flat(_) if dense.out_features == 0 => Err(ShapeError::ZeroOutput {
                what: "zero output features",
            }),
            Shape::Flat(_) => Ok(Shape::Flat(dense.out_features)),
            found => Err(ShapeError::ExpectedFlat { found }),
        },
        Op::Pool2d(pool) => pool_shape(pool, first()?),
        Op::GlobalPool(_) => {
            let (_, _, c) = volume(first()?)?;
            Ok(Shape::Volume { h: 1, w: 1, c })
        }
        Op::Flatten => {
            let len = first()?.len();
            Ok(Shape::Flat(
                u32::try_from(len).map_err(|_| ShapeError::Overflow)?,
            ))
        }
        Op::Lrn(_) if inputs.len() == 1 => {
            volume(first()?)?;
            first()
        }
        Op::BatchNorm { .. }
        | Op::LayerNorm { .. }
        | Op::Affine { .. }
        | Op::Activation(_)
        | Op::PRelu
        | Op::Softmax
        | Op::Dropout { .. }
        | Op::Identity
        | Op::Lrn(_) => first(),
        Op::Concat => concat_shape(inputs),
        Op::Upsample(up) => upsample_shape(up, first()?),
        Op::Deconv(deconv) => deconv_shape(deconv, first()?),
        Op::Shuffle { groups } => {
            let (_, _, c) = volume(first()?)?;
            if *groups == 0 {
                return Err(ShapeError::ZeroOutput { what: "groups = 0" });
            }
            if !c.is_multiple_of(*groups) {
                return Err(ShapeError::Groups {
                    which: "input",
                    channels: c,
                    groups: *groups,
                });
            }
            first()
        }
        Op::Slice {
            first: start,
            count,
        } => {
            let (h, w, c) = volume(first()?)?;
            if *count == 0 {
                return Err(ShapeError::ZeroOutput {
                    what: "a slice of no channel",
                });
            }
            if u64::from(*start) + u64::from(*count) > u64::from(c) {
                return Err(ShapeError::Slice {
                    first: *start,
                    count: *count,
                    channels: c,
                });
            }
            Ok(Shape::Volume { h, w, c: *count })
        }
        Op::Add => match inputs {
            [body, shortcut] if body == shortcut => Ok(*body),
            [body, shortcut] => Err(ShapeError::Add {
                body: *body,
                shortcut: *shortcut,
            }),
            _ => Err(ShapeError::ZeroOutput {
                what: "an add needs two inputs",
            }),
        },
        Op::Scale => match inputs {
            [input, gate]
                if gate == input
                    || matches!((input, gate), (Shape::Volume { c, .. }, Shape::Volume { h: 1, w: 1, c: g }) if c == g) =>
            {
                Ok(*input)
            }
            [input, gate] => Err(ShapeError::Scale {
                input: *input,
                gate: *gate,
            }),
            _ => Err(ShapeError::ZeroOutput {
                what: "a scale needs two inputs",
            }),
        },
    }
}

/// The (height, width, channels) of a volume, or [`ShapeError::ExpectedVolume`].
pub fn volume(shape: Shape) -> Result<(u32, u32, u32), ShapeError> {
    match shape {
        Shape::Volume { h, w, c } => Ok((h, w, c)),
        found => Err(ShapeError::ExpectedVolume { found }),
    }
}

/// The padding `same` needs on one axis: total `max((ceil(n/s)-1)*s + d(f-1)+1 - n, 0)`,
/// the extra row or column at the bottom or right (TensorFlow's rule).
pub fn same_padding_1d(
    n: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
) -> Result<(u32, u32), ShapeError> {
    let (n, k, s, d) = (
        n as u64,
        kernel as u64,
        stride.max(1) as u64,
        dilation as u64,
    );
    let effective = d * k.saturating_sub(1) + 1;
    let out = n.div_ceil(s);
    let total = ((out.saturating_sub(1)) * s + effective).saturating_sub(n);
    let before = u32::try_from(total / 2).map_err(|_| ShapeError::Overflow)?;
    let after = u32::try_from(total - total / 2).map_err(|_| ShapeError::Overflow)?;
    Ok((before, after))
}

/// The padding `same` needs on both axes of an `h x w` input.
pub fn same_padding(
    h: u32,
    w: u32,
    kernel: Hw,
    stride: Hw,
    dilation: Hw,
) -> Result<Padding, ShapeError> {
    let (top, bottom) = same_padding_1d(h, kernel.h, stride.h, dilation.h)?;
    let (left, right) = same_padding_1d(w, kernel.w, stride.w, dilation.w)?;
    Ok(Padding {
        top,
        left,
        bottom,
        right,
    })
}

/// One axis of a sliding window: the padded size, and the output size.
struct Axis {
    padded: u64,
    out: u64,
}

fn window_axis(
    n: u32,
    before: u32,
    after: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    ceil: bool,
) -> Option<Axis> {
    let padded = n as u64 + before as u64 + after as u64;
    let effective = (dilation as u64).checked_mul((kernel as u64).checked_sub(1)?)? + 1;
    let span = padded.checked_sub(effective)?;
    let stride = stride as u64;
    if stride == 0 {
        return None;
    }
    let mut out = if ceil {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    // PyTorch's ceil_mode: the last window must start inside the input or its left padding.
    if ceil && (out - 1) * stride >= n as u64 + before as u64 {
        out -= 1;
    }
    Some(Axis { padded, out })
}

#[allow(clippy::too_many_arguments)]
fn window_shape(
    input: Shape,
    kernel: Hw,
    stride: Hw,
    dilation: Hw,
    padding: Padding,
    ceil: bool,
    out_channels: u32,
) -> Result<Shape, ShapeError> {
    let (h, w, c) = volume(input)?;
    let too_large = || ShapeError::KernelTooLarge {
        kernel: Hw {
            h: dilation
                .h
                .saturating_mul(kernel.h.saturating_sub(1))
                .saturating_add(1),
            w: dilation
                .w
                .saturating_mul(kernel.w.saturating_sub(1))
                .saturating_add(1),
        },
        padded: (
            h as u64 + padding.top as u64 + padding.bottom as u64,
            w as u64 + padding.left as u64 + padding.right as u64,
            c,
        ),
    };
    if kernel.h == 0 || kernel.w == 0 {
        return Err(ShapeError::ZeroOutput {
            what: "a kernel of size zero",
        });
    }
    if stride.h == 0 || stride.w == 0 || dilation.h == 0 || dilation.w == 0 {
        return Err(ShapeError::ZeroOutput {
            what: "a stride or dilation of zero",
        });
    }
    let rows = window_axis(
        h,
        padding.top,
        padding.bottom,
        kernel.h,
        stride.h,
        dilation.h,
        ceil,
    )
    .ok_or_else(too_large)?;
    let cols = window_axis(
        w,
        padding.left,
        padding.right,
        kernel.w,
        stride.w,
        dilation.w,
        ceil,
    )
    .ok_or_else(too_large)?;
    debug_assert!(rows.padded >= 1 && cols.padded >= 1);
    let fit = |n: u64| u32::try_from(n).map_err(|_| ShapeError::Overflow);
    Ok(Shape::Volume {
        h: fit(rows.out)?,
        w: fit(cols.out)?,
        c: out_channels,
    })
}

fn conv_shape(conv: &Conv2d, input: Shape) -> Result<Shape, ShapeError> {
    let (_, _, c) = volume(input)?;
    if conv.out_channels == 0 {
        return Err(ShapeError::ZeroOutput {
            what: "zero output channels",
        });
    }
    if conv.groups == 0 {
        return Err(ShapeError::ZeroOutput { what: "groups = 0" });
    }
    if !c.is_multiple_of(conv.groups) {
        return Err(ShapeError::Groups {
            which: "input",
            channels: c,
            groups: conv.groups,
        });
    }
    if !conv.out_channels.is_multiple_of(conv.groups) {
        return Err(ShapeError::Groups {
            which: "output",
            channels: conv.out_channels,
            groups: conv.groups,
        });
    }
    window_shape(
        input,
        conv.kernel,
        conv.stride,
        conv.dilation,
        conv.padding,
        false,
        conv.out_channels,
    )
}

fn upsample_shape(up: &Upsample, input: Shape) -> Result<Shape, ShapeError> {
    let (h, w, c) = volume(input)?;
    if up.scale == 0 {
        return Err(ShapeError::ZeroOutput {
            what: "a scale of zero",
        });
    }
    Ok(Shape::Volume {
        h: h.checked_mul(up.scale).ok_or(ShapeError::Overflow)?,
        w: w.checked_mul(up.scale).ok_or(ShapeError::Overflow)?,
        c,
    })
}

/// PyTorch's `ConvTranspose2d` size, `(H - 1) stride - 2 pad + kernel` (no
/// output padding, no dilation), at least 1.
fn deconv_shape(deconv: &Deconv, input: Shape) -> Result<Shape, ShapeError> {
    let (h, w, _) = volume(input)?;
    if deconv.out_channels == 0 {
        return Err(ShapeError::ZeroOutput {
            what: "zero output channels",
        });
    }
    let (kernel, stride) = (deconv.kernel, deconv.stride);
    if kernel.h == 0 || kernel.w == 0 {
        return Err(ShapeError::ZeroOutput {
            what: "a kernel of size zero",
        });
    }
    if stride.h == 0 || stride.w == 0 {
        return Err(ShapeError::ZeroOutput {
            what: "a stride of zero",
        });
    }
    // In u64 every term fits: (2^32 - 1)^2 + 2^32 < 2^64.
    let full = |n: u32, s: u32, k: u32| (n as u64 - 1) * s as u64 + k as u64;
    let (full_h, full_w) = (full(h, stride.h, kernel.h), full(w, stride.w, kernel.w));
    let cut = 2 * deconv.padding as u64;
    if full_h <= cut || full_w <= cut {
        return Err(ShapeError::DeconvCrop {
            padding: deconv.padding,
            full_h,
            full_w,
        });
    }
    let fit = |n: u64| u32::try_from(n).map_err(|_| ShapeError::Overflow);
    Ok(Shape::Volume {
        h: fit(full_h - cut)?,
        w: fit(full_w - cut)?,
        c: deconv.out_channels,
    })
}

fn pool_shape(pool: &Pool2d, input: Shape) -> Result<Shape, ShapeError> {
    let (_, _, c) = volume(input)?;
    window_shape(
        input,
        pool.kernel,
        pool.stride,
        Hw::square(1),
        pool.padding,
        pool.ceil,
        c,
    )
}

fn concat_shape(inputs: &[Shape]) -> Result<Shape, ShapeError> {
    let Some(&first) = inputs.first() else {
        return Err(ShapeError::ZeroOutput {
            what: "a concat of no branch",
        });
    };
    let mut channels: u32 = 0;
    for (i, &shape) in inputs.iter().enumerate() {
        let agrees = match (first, shape) {
            (Shape::Volume { h, w, .. }, Shape::Volume { h: h2, w: w2, .. }) => h == h2 && w == w2,
            (Shape::Flat(_), Shape::Flat(_)) => true,
            _ => false,
        };
        if !agrees {
            return Err(ShapeError::Concat {
                first,
                index: i + 1,
                other: shape,
            });
        }
        channels = channels
            .checked_add(shape.channels())
            .ok_or(ShapeError::Overflow)?;
    }
    Ok(match first {
        Shape::Volume { h, w, .. } => Shape::Volume { h, w, c: channels },
        Shape::Flat(_) => Shape::Flat(channels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolKind;

    fn conv(k: u32, f: u32, s: u32, p: u32) -> Op {
        Op::Conv2d(Conv2d {
            out_channels: k,
            kernel: Hw::square(f),
            stride: Hw::square(s),
            dilation: Hw::square(1),
            padding: Padding {
                top: p,
                left: p,
                bottom: p,
                right: p,
            },
            groups: 1,
            bias: true,
            depthwise: false,
        })
    }

    fn vol(h: u32, w: u32, c: u32) -> Shape {
        Shape::Volume { h, w, c }
    }

    #[test]
    fn lenet_conv_and_alexnet_conv1() {
        // (32 - 5)/1 + 1 = 28 (the lecture's LeNet conv1).
        assert_eq!(
            output_shape(&conv(6, 5, 1, 0), &[vol(32, 32, 1)]),
            Ok(vol(28, 28, 6))
        );
        // (227 - 11)/4 + 1 = 55 (the lecture's AlexNet conv1).
        assert_eq!(
            output_shape(&conv(96, 11, 4, 0), &[vol(227, 227, 3)]),
            Ok(vol(55, 55, 96))
        );
    }

    #[test]
    fn kernel_larger_than_padded_input() {
        let err = output_shape(&conv(16, 5, 1, 0), &[vol(4, 4, 6)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the kernel (5x5) is larger than its padded input (4x4x6)"
        );
    }

    #[test]
    fn same_padding_puts_the_extra_at_the_end() {
        // 224 with a 7x7 stride-2 window: out 112, total pad (111*2 + 7) - 224 = 5 -> 2 + 3.
        assert_eq!(same_padding_1d(224, 7, 2, 1), Ok((2, 3)));
        // 28 with 3x3 stride 1: total 2 -> 1 + 1.
        assert_eq!(same_padding_1d(28, 3, 1, 1), Ok((1, 1)));
    }

    #[test]
    fn pool_ceil_mode_follows_pytorch() {
        let pool = |ceil, p| {
            Op::Pool2d(Pool2d {
                kind: PoolKind::Max,
                kernel: Hw::square(3),
                stride: Hw::square(2),
                padding: Padding {
                    top: p,
                    left: p,
                    bottom: p,
                    right: p,
                },
                ceil,
                count_include_pad: true,
            })
        };
        // GoogLeNet: 112 -> ceil((112-3)/2)+1 = 56 with ceil_mode, 55 without.
        assert_eq!(
            output_shape(&pool(true, 0), &[vol(112, 112, 64)]),
            Ok(vol(56, 56, 64))
        );
        assert_eq!(
            output_shape(&pool(false, 0), &[vol(112, 112, 64)]),
            Ok(vol(55, 55, 64))
        );
        // 6x6, k3 s2 p1, ceil: ceil((8-3)/2)+1 = 4, but the 4th window would start at
        // 6 >= 6 + 1? no (6 < 7), so 4 stays (PyTorch gives 4).
        assert_eq!(
            output_shape(&pool(true, 1), &[vol(6, 6, 1)]),
            Ok(vol(4, 4, 1))
        );
        // 5x5, k3 s2 p0, ceil: ceil(2/2)+1 = 2; start of window 2 is 2 < 5, kept.
        assert_eq!(
            output_shape(&pool(true, 0), &[vol(5, 5, 1)]),
            Ok(vol(2, 2, 1))
        );
        // 4x4, k3 s2 p1, ceil: ceil((6-3)/2)+1 = 3; window 3 starts at 4 >= 4 + 1? no -> 3.
        // 4x4, k2 s2 p1... (from PyTorch: MaxPool2d(2, 2, 1, ceil_mode=True)(4x4) is 3x3).
        assert_eq!(
            output_shape(&pool(true, 1), &[vol(4, 4, 1)]),
            Ok(vol(3, 3, 1))
        );
    }

    #[test]
    fn groups_must_divide_channels() {
        let op = Op::Conv2d(Conv2d {
            groups: 4,
            ..match conv(8, 3, 1, 1) {
                Op::Conv2d(c) => c,
                _ => unreachable!(),
            }
        });
        assert_eq!(
            output_shape(&op, &[vol(8, 8, 6)]),
            Err(ShapeError::Groups {
                which: "input",
                channels: 6,
                groups: 4
            })
        );
    }

    #[test]
    fn dense_needs_flat_and_concat_needs_equal_sizes() {
        let dense = Op::Dense(crate::Dense {
            out_features: 10,
            bias: true,
        });
        assert!(matches!(
            output_shape(&dense, &[vol(5, 5, 16)]),
            Err(ShapeError::ExpectedFlat { .. })
        ));
        assert_eq!(
            output_shape(&dense, &[Shape::Flat(400)]),
            Ok(Shape::Flat(10))
        );
        assert_eq!(
            output_shape(&Op::Concat, &[vol(28, 28, 64), vol(28, 28, 128)]),
            Ok(vol(28, 28, 192))
        );
        assert!(matches!(
            output_shape(&Op::Concat, &[vol(28, 28, 64), vol(14, 14, 128)]),
            Err(ShapeError::Concat { index: 2, .. })
        ));
    }

    /// U-Net's up-convolution, `ConvTranspose2d(128, 64, 2, stride = 2)` on
    /// 8x8 gives 16x16 ((8 - 1) 2 + 2); a 3x3 of stride 2 and padding 1 on
    /// 8x8 gives (8 - 1) 2 - 2 + 3 = 15; FPN's nearest `upsample(2)` doubles
    /// each side. PyTorch's sizes, by the formula in its documentation.
    #[test]
    fn deconv_and_upsample_shapes() {
        let deconv = |k: u32, s: u32, padding: u32| Deconv {
            out_channels: 64,
            kernel: Hw::square(k),
            stride: Hw::square(s),
            padding,
            bias: true,
        };
        assert_eq!(
            output_shape(&Op::Deconv(deconv(2, 2, 0)), &[vol(8, 8, 128)]),
            Ok(vol(16, 16, 64))
        );
        assert_eq!(
            output_shape(&Op::Deconv(deconv(3, 2, 1)), &[vol(8, 8, 128)]),
            Ok(vol(15, 15, 64))
        );
        // A 1x1 input and a 2x2 kernel give 2x2; cropping 1 each side leaves nothing.
        assert_eq!(
            output_shape(&Op::Deconv(deconv(2, 2, 1)), &[vol(1, 1, 4)]),
            Err(ShapeError::DeconvCrop {
                padding: 1,
                full_h: 2,
                full_w: 2
            })
        );
        assert!(matches!(
            output_shape(&Op::Deconv(deconv(2, 0, 0)), &[vol(2, 2, 4)]),
            Err(ShapeError::ZeroOutput { .. })
        ));
        assert!(matches!(
            output_shape(&Op::Deconv(deconv(2, 2, 0)), &[Shape::Flat(4)]),
            Err(ShapeError::ExpectedVolume { .. })
        ));
        let up = |scale: u32| {
            Op::Upsample(Upsample {
                scale,
                bilinear: false,
            })
        };
        assert_eq!(output_shape(&up(2), &[vol(7, 5, 3)]), Ok(vol(14, 10, 3)));
        assert!(matches!(
            output_shape(&up(0), &[vol(7, 5, 3)]),
            Err(ShapeError::ZeroOutput { .. })
        ));
        assert_eq!(
            output_shape(&up(u32::MAX), &[vol(2, 1, 3)]),
            Err(ShapeError::Overflow)
        );
    }

    /// ShuffleNetV2's shapes: a 116-channel unit shuffles in 2 groups and
    /// splits into two slices of 58 (torchvision's `shufflenet_v2_x1_0`).
    #[test]
    fn shuffle_keeps_the_shape_and_slice_takes_its_channels() {
        let shuffle = Op::Shuffle { groups: 2 };
        assert_eq!(
            output_shape(&shuffle, &[vol(28, 28, 116)]),
            Ok(vol(28, 28, 116))
        );
        assert_eq!(
            output_shape(&Op::Shuffle { groups: 3 }, &[vol(28, 28, 116)]),
            Err(ShapeError::Groups {
                which: "input",
                channels: 116,
                groups: 3
            })
        );
        assert!(matches!(
            output_shape(&Op::Shuffle { groups: 0 }, &[vol(2, 2, 4)]),
            Err(ShapeError::ZeroOutput { .. })
        ));
        assert!(matches!(
            output_shape(&shuffle, &[Shape::Flat(8)]),
            Err(ShapeError::ExpectedVolume { .. })
        ));
        let second_half = Op::Slice {
            first: 58,
            count: 58,
        };
        assert_eq!(
            output_shape(&second_half, &[vol(28, 28, 116)]),
            Ok(vol(28, 28, 58))
        );
        assert_eq!(
            output_shape(&second_half, &[vol(28, 28, 115)]),
            Err(ShapeError::Slice {
                first: 58,
                count: 58,
                channels: 115
            })
        );
        // first + count past u32 is out of range, not an overflow.
        let far = Op::Slice {
            first: u32::MAX,
            count: u32::MAX,
        };
        assert!(matches!(
            output_shape(&far, &[vol(1, 1, 4)]),
            Err(ShapeError::Slice { .. })
        ));
        assert!(matches!(
            output_shape(&Op::Slice { first: 0, count: 0 }, &[vol(1, 1, 4)]),
            Err(ShapeError::ZeroOutput { .. })
        ));
        assert!(matches!(
            output_shape(&second_half, &[Shape::Flat(116)]),
            Err(ShapeError::ExpectedVolume { .. })
        ));
    }
}
