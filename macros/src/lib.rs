//! The `cnn!` proc macro: tokens in, [`cnnjit_lang::emit::expand_macro`],
//! tokens out. All logic lives in `cnnjit-lang`, where it is tested
//! without a proc-macro context.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// Compiles networks written in the cnnjit layer language into types with
/// `const` figures. See the `cnnjit` crate and docs/language.md.
#[proc_macro]
pub fn cnn(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    cnnjit_lang::emit::expand_macro(input.into()).into()
}
