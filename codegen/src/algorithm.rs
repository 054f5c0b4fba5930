//! What a compiled kernel is, in a user's words: its algorithm and its
//! register tile, for `Model::kernels()` and `cnnjit bench --plan/--profile`.
//!
//! The code generator owns [`Algorithm`]: a kernel family that chooses between
//! algorithms (a Winograd or a native-vector convolution, say) adds its
//! variant here and answers for its specs in [`Kernel::algorithm`], so the
//! report names exactly the code that runs. Reporting reads specs only; it
//! never changes what is compiled.

use super::elementwise::Binary;
use super::native::Isa;
use super::separable::Half;
use super::{depthwise, native_depthwise, Kernel};
use std::fmt;

/// The algorithm a compiled kernel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// A k x k (or grouped) convolution computed directly, tap by tap, on a
    /// register tile of pixels by output channels.
    Direct,
    /// [`Direct`](Algorithm::Direct) with a native tile ([`super::native`])
    /// of this ISA as its innermost loop.
    NativeDirect(Isa),
    /// A 1x1 convolution over several pixels: a packed matrix product.
    Gemm,
    /// [`Gemm`](Algorithm::Gemm) on a native tile of this ISA.
    NativeGemm(Isa),
    /// One output pixel from a flat input (a dense layer, or a 1x1
    /// convolution of a 1x1 input): a packed matrix-vector product.
    Gemv,
    /// [`Gemv`](Algorithm::Gemv) on the native GEMV ([`super::native_gemv`])
    /// of this ISA.
    NativeGemv(Isa),
    /// Winograd F(`tile` x `tile`, 3 x 3) ([`super::winograd`]), chosen by
    /// the cost model ([`super::choice`]).
    Winograd {
        /// The output tile side: 2 or 4.
        tile: usize,
    },
    /// Depthwise convolution, vectorised across channels.
    Depthwise,
    /// A depthwise convolution and the pointwise one it feeds, fused into
    /// one pass ([`super::separable`]).
    DepthwisePointwise,
    /// A `1xk` convolution and the `kx1` one it feeds, fused into one pass
    /// ([`super::separable`]).
    SpatiallySeparable,
    /// Windowed max or average pooling.
    Pool,
    /// One window over the whole input.
    GlobalPool,
    /// An element-wise add of two tensors.
    Add,
    /// An element-wise product, or a per-channel gate (squeeze-excite).
    Scale,
    /// Softmax over channels.
    Softmax,
    /// Concat branches copied into their channel slices.
    Concat,
    /// Local response normalisation across channels ([`super::lrn`]).
    Lrn,
}

impl Algorithm {
    /// A short name for tables and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Direct => "direct",
            Algorithm::NativeDirect(Isa::Avx2) => "direct-avx2",
            Algorithm::NativeDirect(Isa::Avx512) => "direct-avx512",
            Algorithm::Gemm => "1x1-gemm",
            Algorithm::NativeGemm(Isa::Avx2) => "1x1-gemm-avx2",
            Algorithm::NativeGemm(Isa::Avx512) => "1x1-gemm-avx512",
            Algorithm::Gemv => "gemv",
            Algorithm::NativeGemv(Isa::Avx2) => "gemv-avx2",
            Algorithm::NativeGemv(Isa::Avx512) => "gemv-avx512",
            Algorithm::Winograd { tile: 2 } => "winograd-f2x2",
            Algorithm::Winograd { .. } => "winograd-f4x4",
            Algorithm::Depthwise => "depthwise",
            Algorithm::DepthwisePointwise => "dw+pw",
            Algorithm::SpatiallySeparable => "1xk+kx1",
            Algorithm::Pool => "pool",
            Algorithm::GlobalPool => "global-pool",
            Algorithm::Add => "add",
            Algorithm::Scale => "scale",
            Algorithm::Softmax => "softmax",
            Algorithm::Concat => "concat",
            Algorithm::Lrn => "lrn",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A kernel's register tile: the output pixels (of one row) and output
/// channels one iteration of its inner loop computes, and the ISA of the
/// native tile that computes it, if one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Output pixels.
    pub pixels: usize,
    /// Output channels.
    pub channels: usize,
    /// The native tile's ISA ([`super::native`]); `None` for Cranelift code.
    pub isa: Option<Isa>,
}

impl fmt::Display for Tile {
    /// `6px x 16ch avx2`, `14px x 32ch avx512` (the wide tile, two blocks
    /// a call), or `4px x 8ch` for Cranelift code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let isa = self.isa.map_or_else(String::new, |isa| format!(" {isa}"));
        f.pad(&format!("{}px x {}ch{isa}", self.pixels, self.channels))
    }
}

impl Kernel {
    /// The algorithm this spec compiles to.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Kernel::Conv(spec) => {
                let pointwise = spec.kernel == [1, 1] && spec.stride == [1, 1] && spec.groups == 1;
                match (pointwise, spec.output[0] * spec.output[1], spec.native) {
                    (true, 1, None) => Algorithm::Gemv,
                    (true, 1, Some(isa)) => Algorithm::NativeGemv(isa),
                    (true, _, None) => Algorithm::Gemm,
                    (true, _, Some(isa)) => Algorithm::NativeGemm(isa),
                    (false, _, None) => Algorithm::Direct,
                    (false, _, Some(isa)) => Algorithm::NativeDirect(isa),
                }
            }
            Kernel::Winograd(spec) => Algorithm::Winograd { tile: spec.tile },
            Kernel::Depthwise(_) => Algorithm::Depthwise,
            Kernel::Separable(spec) => match spec.first {
                Half::Depthwise(_) => Algorithm::DepthwisePointwise,
                Half::Conv(_) => Algorithm::SpatiallySeparable,
            },
            Kernel::Pool(spec) if spec.output == [1, 1] && spec.kernel == spec.input => {
                Algorithm::GlobalPool
            }
            Kernel::Pool(_) => Algorithm::Pool,
            Kernel::Elementwise(spec) => match spec.op {
                Binary::Add => Algorithm::Add,
                Binary::Mul => Algorithm::Scale,
            },
            Kernel::Softmax(_) => Algorithm::Softmax,
            Kernel::Concat(_) => Algorithm::Concat,
            Kernel::Lrn(_) => Algorithm::Lrn,
        }
    }

    /// Its register tile, clipped to the output's width.
    pub fn tile(&self) -> Tile {
        let (pixels, channels, width, isa) = match self {
            Kernel::Conv(spec) => {
                let (pixels, channels) = spec.widest_tile();
                (pixels, channels, spec.output[1], spec.native)
            }
            Kernel::Winograd(spec) => {
                let (pixels, channels) = spec.widest_tile();
                (pixels, channels, spec.run_lengths().1, spec.native)
            }
            Kernel::Depthwise(spec) => match spec.native {
                Some(isa) => (
                    native_depthwise::PIXELS,
                    native_depthwise::lanes(isa),
                    spec.output[1],
                    Some(isa),
                ),
                None => (depthwise::TILE, 4, spec.output[1], None),
            },
            // The second half's tile: the first's rows are computed into scratch.
            Kernel::Separable(spec) => match &spec.second {
                Half::Conv(conv) => {
                    let (pixels, channels) = conv.widest_tile();
                    (pixels, channels, conv.output[1], conv.native)
                }
                Half::Depthwise(dw) => (depthwise::TILE, 4, dw.output[1], None),
            },
            Kernel::Pool(spec) => (1, 4, spec.output[1], None),
            Kernel::Elementwise(spec) => (1, 4, spec.shape[1], None),
            Kernel::Softmax(_) | Kernel::Concat(_) | Kernel::Lrn(_) => (1, 4, 1, None),
        };
        Tile {
            pixels: pixels.min(width),
            channels,
            isa,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{self, ConvSpec};
    use crate::pool::PoolSpec;
    use cnnjit_ir::{Dense, PoolKind, Shape};

    fn conv(kernel: usize, input: [usize; 3], output: [usize; 3]) -> Kernel {
        Kernel::Conv(ConvSpec {
            input,
            output,
            kernel: [kernel; 2],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [kernel / 2; 2],
            groups: 1,
            epilogue: Vec::new(),
            native: None,
            slice: None,
        })
    }

    #[test]
    fn convolutions_are_named_by_their_shape() {
        let k3 = conv(3, [8, 8, 8], [8, 8, 16]);
        assert_eq!(k3.algorithm(), Algorithm::Direct);
        assert_eq!(
            k3.tile(),
            Tile {
                pixels: conv::TILE,
                channels: conv::BLOCK,
                isa: None
            }
        );
        assert_eq!(k3.tile().to_string(), "4px x 8ch");
        assert_eq!(conv(1, [8, 8, 4], [8, 8, 16]).algorithm(), Algorithm::Gemm);
        let Kernel::Conv(cranelift) = k3 else {
            unreachable!()
        };
        // Named by the ISA whether or not this host runs it: the spec says
        // what is compiled (where the host lacks it, `of_conv` never asks).
        for (isa, name) in [(Isa::Avx2, "direct-avx2"), (Isa::Avx512, "direct-avx512")] {
            let native = Kernel::Conv(ConvSpec {
                native: Some(isa),
                ..cranelift.clone()
            });
            assert_eq!(native.algorithm(), Algorithm::NativeDirect(isa));
            assert_eq!(native.algorithm().name(), name);
            let tile = Tile {
                pixels: isa.rows().min(8),
                channels: crate::native::WIDTH,
                isa: Some(isa),
            };
            assert_eq!(native.tile(), tile);
            assert_eq!(
                tile.to_string(),
                format!("{}px x 16ch {name}", tile.pixels).replace("direct-", "")
            );
            // A Winograd kernel's GEMMs and a 1x1 convolution name it too.
            let winograd = crate::winograd::WinogradSpec::of_conv(&cranelift, 4).unwrap();
            let winograd = crate::winograd::WinogradSpec {
                native: Some(isa),
                ..winograd
            };
            assert_eq!(Kernel::Winograd(winograd).tile().isa, Some(isa));
            let Kernel::Conv(pointwise) = conv(1, [8, 8, 4], [8, 8, 16]) else {
                unreachable!()
            };
            let pointwise = Kernel::Conv(ConvSpec {
                native: Some(isa),
                ..pointwise
            });
            assert_eq!(pointwise.algorithm(), Algorithm::NativeGemm(isa));
        }
        // A 1x1 convolution of one pixel (a squeeze-excite bottleneck) is a dense layer.
        assert_eq!(conv(1, [1, 1, 4], [1, 1, 16]).algorithm(), Algorithm::Gemv);
        let dense = Kernel::Conv(ConvSpec::of_dense(
            &Dense {
                out_features: 10,
                bias: true,
            },
            84,
            Vec::new(),
            None,
        ));
        assert_eq!(dense.algorithm(), Algorithm::Gemv);
        assert_eq!(dense.tile().pixels, 1);
        for isa in Isa::on_host() {
            let Kernel::Conv(cranelift) = &dense else {
                unreachable!()
            };
            let native = Kernel::Conv(ConvSpec {
                native: Some(isa),
                ..cranelift.clone()
            });
            assert_eq!(native.algorithm(), Algorithm::NativeGemv(isa));
            assert_eq!(native.tile().channels, crate::native_gemv::WIDTH);
        }
    }

    #[test]
    fn depthwise_tiles_name_their_isa() {
        let spec = crate::depthwise::DepthwiseSpec {
            channels: 32,
            input: [20, 20],
            output: [20, 20],
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [1, 1],
            epilogue: Vec::new(),
            slice: None,
            native: None,
        };
        assert_eq!(
            Kernel::Depthwise(spec.clone()).tile().to_string(),
            "4px x 4ch"
        );
        // By hand: 8 pixels of 8 (ymm) or 16 (zmm) channels.
        for (isa, name) in [
            (Isa::Avx2, "8px x 8ch avx2"),
            (Isa::Avx512, "8px x 16ch avx512"),
        ] {
            let native = Kernel::Depthwise(crate::depthwise::DepthwiseSpec {
                native: Some(isa),
                ..spec.clone()
            });
            assert_eq!(native.algorithm(), Algorithm::Depthwise);
            assert_eq!(native.tile().to_string(), name);
        }
    }

    #[test]
    fn pools_are_windowed_or_global() {
        let input = Shape::Volume { h: 7, w: 7, c: 32 };
        let global = PoolSpec::of_global(PoolKind::Avg, input, Vec::new()).unwrap();
        assert_eq!(Kernel::Pool(global).algorithm(), Algorithm::GlobalPool);
    }
}
