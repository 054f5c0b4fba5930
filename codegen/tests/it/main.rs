//! The code generator's integration tests: the packers against their
//! documented layouts, and the lowering pass (which needs nets the language
//! builds; the crate itself does not depend on the language).

mod batch;
mod conv_order;
mod lower;
mod lowering;
mod native_epilogue;
mod packing;

use cnnjit_codegen::{KernelId, Lengths, Program};
use std::ops::Range;

/// The buffers of one kernel call.
pub struct Buffers<'a> {
    pub input: &'a [f32],
    pub weights: &'a [f32],
    pub params: &'a [f32],
    pub extra: &'a [f32],
    pub output: &'a mut [f32],
    pub scratch: &'a mut [f32],
}

/// Calls `program`'s kernel `id` on its rows `rows`, after asserting that
/// every buffer holds what `lengths` (the kernel's contract) requires.
pub fn call_rows(
    program: &Program,
    id: KernelId,
    lengths: &Lengths,
    buffers: Buffers<'_>,
    rows: Range<usize>,
) {
    let Buffers {
        input,
        weights,
        params,
        extra,
        output,
        scratch,
    } = buffers;
    assert!(input.len() >= lengths.input && weights.len() >= lengths.weights);
    assert!(params.len() >= lengths.params && extra.len() >= lengths.extra);
    assert!(output.len() >= lengths.output && scratch.len() >= lengths.scratch);
    assert!(rows.start <= rows.end && rows.end <= lengths.rows);
    // SAFETY: every buffer holds at least what `lengths` requires and
    // `rows` lies within the kernel's rows, both asserted above; `program`
    // outlives the call.
    unsafe {
        program.function(id)(
            input.as_ptr(),
            weights.as_ptr(),
            params.as_ptr(),
            extra.as_ptr(),
            output.as_mut_ptr(),
            scratch.as_mut_ptr(),
            rows.start as i64,
            rows.end as i64,
        )
    };
}
