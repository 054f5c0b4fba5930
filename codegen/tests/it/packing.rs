//! The weight packers write exactly the layouts their module docs state.
//!
//! Each packer is compared, bit for bit, with a straightforward one written
//! here from the layout alone: one output element at a time, its source index
//! spelt out. The fast packers write in a cache-friendly order; these say
//! what they must write. With a bn's factors, a packer must give what
//! packing the folded weights gives (`params::fold_batch_norm`'s rounding:
//! the product in `f64`, rounded once).

use cnnjit_codegen::conv::{ConvSpec, BLOCK};
use cnnjit_codegen::depthwise::DepthwiseSpec;
use cnnjit_codegen::native::{Isa, WIDTH};
use cnnjit_codegen::native_gemv;
use cnnjit_codegen::winograd::WinogradSpec;
use proptest::prelude::*;

/// `n` distinct, exactly representable values (so a misplaced one shows).
fn weights(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.25 - 100.0).collect()
}

/// A factor per output channel that rounds differently in `f32` and `f64`.
fn factors(channels: usize) -> Vec<f64> {
    (0..channels).map(|k| 1.0 / (3.0 + k as f64)).collect()
}

/// `weight` with each of its `channels` output channels times its factor.
fn folded(weight: &[f32], scale: &[f64]) -> Vec<f32> {
    let per_channel = weight.len() / scale.len();
    weight
        .iter()
        .enumerate()
        .map(|(i, &w)| (f64::from(w) * scale[i / per_channel]) as f32)
        .collect()
}

fn conv_spec(
    groups: usize,
    in_per_group: usize,
    out_per_group: usize,
    kernel: [usize; 2],
    native: Option<Isa>,
) -> ConvSpec {
    ConvSpec {
        input: [9, 9, groups * in_per_group],
        output: [9 - kernel[0] + 1, 9 - kernel[1] + 1, groups * out_per_group],
        kernel,
        stride: [1, 1],
        dilation: [1, 1],
        pad: [0, 0],
        groups,
        epilogue: Vec::new(),
        native,
        slice: None,
    }
}

/// Output channels per packed block: the native tiles' width (every ISA's),
/// or the Cranelift tile's.
fn block(native: Option<Isa>) -> usize {
    if native.is_some() {
        WIDTH
    } else {
        BLOCK
    }
}

/// `[K, Cin/g, Fh, Fw]` as `[g][block][ky][kx][ci][width]`, zero past each
/// group's channels.
fn conv_layout(spec: &ConvSpec, weight: &[f32]) -> Vec<f32> {
    let width = block(spec.native);
    let (cg, kg, [fh, fw]) = (
        spec.input[2] / spec.groups,
        spec.output[2] / spec.groups,
        spec.kernel,
    );
    let blocks = kg.div_ceil(width);
    let mut packed = Vec::new();
    for g in 0..spec.groups {
        for blk in 0..blocks {
            for ky in 0..fh {
                for kx in 0..fw {
                    for ci in 0..cg {
                        for lane in 0..width {
                            let k = blk * width + lane;
                            packed.push(if k < kg {
                                weight[(((g * kg + k) * cg + ci) * fh + ky) * fw + kx]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
    }
    packed
}

/// A dense layer's `[K, C]` as the native GEMV's `[block][C][64]`, zero
/// past `K`: each block of 64 output channels one contiguous stream.
fn gemv_layout(c: usize, k: usize, weight: &[f32]) -> Vec<f32> {
    let width = native_gemv::WIDTH;
    assert_eq!(width, 64, "the doc's layout");
    let mut packed = Vec::new();
    for blk in 0..k.div_ceil(width) {
        for ci in 0..c {
            for lane in 0..width {
                let o = blk * width + lane;
                packed.push(if o < k { weight[o * c + ci] } else { 0.0 });
            }
        }
    }
    packed
}

/// `[C, 1, Fh, Fw]` as `[ky][kx][C']`, `C'` the channels rounded up to a
/// multiple of 4, zero past `C`.
fn depthwise_layout(spec: &DepthwiseSpec, weight: &[f32]) -> Vec<f32> {
    let (c, [fh, fw]) = (spec.channels, spec.kernel);
    let padded = c.div_ceil(4) * 4;
    let mut packed = Vec::new();
    for ky in 0..fh {
        for kx in 0..fw {
            for ci in 0..padded {
                packed.push(if ci < c {
                    weight[(ci * fh + ky) * fw + kx]
                } else {
                    0.0
                });
            }
        }
    }
    packed
}

/// `U = G g Gᵀ` per output and input channel, in `f64` with the packer's
/// order of operations, as `[alpha²][block][ci][width]`, zero past `K`.
fn winograd_layout(spec: &WinogradSpec, g: &[[f64; 3]], weight: &[f32]) -> Vec<f32> {
    let alpha = g.len();
    let width = block(spec.native);
    let (c, k) = (spec.input[2], spec.output[2]);
    let blocks = k.div_ceil(width);
    let mut packed = Vec::new();
    for a in 0..alpha {
        for b in 0..alpha {
            for blk in 0..blocks {
                for ci in 0..c {
                    for lane in 0..width {
                        let ko = blk * width + lane;
                        if ko >= k {
                            packed.push(0.0);
                            continue;
                        }
                        let w =
                            |y: usize, x: usize| f64::from(weight[(ko * c + ci) * 9 + y * 3 + x]);
                        let gw =
                            |x: usize| g[a][0] * w(0, x) + g[a][1] * w(1, x) + g[a][2] * w(2, x);
                        packed.push((gw(0) * g[b][0] + gw(1) * g[b][1] + gw(2) * g[b][2]) as f32);
                    }
                }
            }
        }
    }
    packed
}

/// `G` of F(2x2, 3x3) and F(4x4, 3x3), as in Lavin and Gray (2016).
fn transform(tile: usize) -> Vec<[f64; 3]> {
    if tile == 2 {
        vec![
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ]
    } else {
        vec![
            [1.0 / 4.0, 0.0, 0.0],
            [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
            [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
            [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
            [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
            [0.0, 0.0, 1.0],
        ]
    }
}

fn same_bits(fast: &[f32], plain: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(fast.len(), plain.len());
    if let Some(i) = (0..fast.len()).find(|&i| fast[i].to_bits() != plain[i].to_bits()) {
        return Err(TestCaseError::fail(format!(
            "element {i}: packed {}, layout says {}",
            fast[i], plain[i]
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv_packing_is_the_layout(
        groups in 1usize..4,
        in_per_group in 1usize..12,
        out_per_group in 1usize..40,
        kernel in (1usize..4, 1usize..4),
        native in prop::option::of(prop::sample::select(Isa::ALL.to_vec())),
    ) {
        let spec = conv_spec(groups, in_per_group, out_per_group, [kernel.0, kernel.1], native);
        let weight = weights(groups * out_per_group * in_per_group * kernel.0 * kernel.1);
        same_bits(&spec.pack_weights(&weight, None), &conv_layout(&spec, &weight))?;
        let scale = factors(groups * out_per_group);
        same_bits(
            &spec.pack_weights(&weight, Some(&scale)),
            &conv_layout(&spec, &folded(&weight, &scale)),
        )?;
    }

    #[test]
    fn gemv_packing_is_the_layout(
        c in 1usize..40,
        k in 1usize..200,
        isa in prop::sample::select(Isa::ALL.to_vec()),
    ) {
        let spec = ConvSpec {
            input: [1, 1, c],
            output: [1, 1, k],
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0, 0],
            groups: 1,
            epilogue: Vec::new(),
            native: Some(isa),
            slice: None,
        };
        prop_assert!(spec.gemv());
        let weight = weights(k * c);
        same_bits(&spec.pack_weights(&weight, None), &gemv_layout(c, k, &weight))?;
        let scale = factors(k);
        same_bits(
            &spec.pack_weights(&weight, Some(&scale)),
            &gemv_layout(c, k, &folded(&weight, &scale)),
        )?;
        // A per-channel vector: one column of the layout.
        let bias = weights(k);
        same_bits(&spec.pack_vector(&bias), &gemv_layout(1, k, &bias))?;
    }

    #[test]
    fn depthwise_packing_is_the_layout(
        channels in 1usize..40,
        kernel in (1usize..6, 1usize..6),
    ) {
        let spec = DepthwiseSpec {
            channels,
            input: [9, 9],
            output: [10 - kernel.0, 10 - kernel.1],
            kernel: [kernel.0, kernel.1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0, 0],
            epilogue: Vec::new(),
            slice: None,
            native: None,
        };
        let weight = weights(channels * kernel.0 * kernel.1);
        same_bits(&spec.pack_weights(&weight, None), &depthwise_layout(&spec, &weight))?;
        let scale = factors(channels);
        same_bits(
            &spec.pack_weights(&weight, Some(&scale)),
            &depthwise_layout(&spec, &folded(&weight, &scale)),
        )?;
    }

    #[test]
    fn winograd_packing_is_the_layout(
        tile in prop_oneof![Just(2usize), Just(4usize)],
        channels in 1usize..21,
        outputs in 1usize..40,
        native in prop::option::of(prop::sample::select(Isa::ALL.to_vec())),
    ) {
        let conv = conv_spec(1, channels, outputs, [3, 3], native);
        let spec = WinogradSpec::of_conv(&conv, tile).expect("a 3x3 stride-1 conv");
        let weight = weights(outputs * channels * 9);
        let g = transform(tile);
        same_bits(&spec.pack_weights(&weight, None), &winograd_layout(&spec, &g, &weight))?;
        let scale = factors(outputs);
        same_bits(
            &spec.pack_weights(&weight, Some(&scale)),
            &winograd_layout(&spec, &g, &folded(&weight, &scale)),
        )?;
    }
}
