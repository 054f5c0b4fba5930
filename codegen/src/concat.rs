//! One branch of a channel concatenation: copies its HWC tensor into its
//! channel slice of the output, `[offset, offset + channels)` of every pixel.
//! A concat runs one such kernel per input that its own step did not write
//! in place (the network's input, a residual's output, ...; see
//! `plan::concat_in_place` and [`super::Kernel::sliced`]), each writing a
//! disjoint slice.
//! The copy is in `f32x4` vectors, unrolled over the channels, with a
//! partial one for the tail, so it never writes a neighbouring branch's
//! channels.

use super::{clamp, for_range, vector, Args, Lengths};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// Everything a concat branch's copy is specialised to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConcatSpec {
    /// Pixels (the rows `[begin, end)` ranges over).
    pub pixels: usize,
    /// The branch's channels.
    pub channels: usize,
    /// Its first channel in the output.
    pub offset: usize,
    /// The output's channels.
    pub total: usize,
}

impl ConcatSpec {
    /// The buffer lengths of the kernel's safety contract.
    pub fn lengths(&self) -> Lengths {
        Lengths {
            input: self.pixels * self.channels,
            output: self.pixels * self.total,
            rows: self.pixels,
            ..Lengths::default()
        }
    }
}

/// Emits the kernel body for pixels `[begin, end)`.
pub(crate) fn emit(spec: &ConcatSpec, b: &mut FunctionBuilder, a: &Args) {
    let lo = clamp(b, a.begin, 0, spec.pixels as i64);
    let hi = clamp(b, a.end, 0, spec.pixels as i64);
    for_range(b, lo, hi, 1, |b, p| {
        let from = b.ins().imul_imm_s(p, (spec.channels * 4) as i64);
        let from = b.ins().iadd(a.input, from);
        let to = b.ins().imul_imm_s(p, (spec.total * 4) as i64);
        let to = b.ins().iadd(a.output, to);
        let to = b.ins().iadd_imm_s(to, (spec.offset * 4) as i64);
        // Unrolled: a copy is a load and a store per vector, so a loop's
        // counter and address arithmetic would cost as much as the copy.
        let full = spec.channels / 4;
        for v in 0..full {
            copy(b, [from, to], (v * 16) as i64, 4);
        }
        if !spec.channels.is_multiple_of(4) {
            copy(b, [from, to], (full * 16) as i64, spec.channels % 4);
        }
    });
}

fn copy(b: &mut FunctionBuilder, [from, to]: [Value; 2], offset: i64, lanes: usize) {
    let v = vector::load_partial(b, from, offset, lanes);
    vector::store_partial(b, v, to, offset, lanes);
}
