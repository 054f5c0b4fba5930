//! The code generator's integration tests: the packers against their
//! documented layouts, and the lowering pass (which needs nets the language
//! builds; the crate itself does not depend on the language).

mod conv_order;
mod lower;
mod lowering;
mod native_epilogue;
mod packing;
