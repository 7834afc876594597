//! The whole macro on proc-macro2 tokens: parse -> validate -> expand.
//!
//! Kept apart from `lib.rs` (the `#[proc_macro]` shim) so code that is not a
//! proc-macro crate can run the macro: the unit tests below `lib.rs`, and the
//! fuzz target `fuzz/fuzz_targets/dsl_macro.rs`, which includes this file and
//! its sibling modules with `#[path]` (a proc-macro crate exports nothing
//! else, so it cannot be linked). This file and its siblings therefore name
//! each other only through `crate::{ast, kw, parse, validate, expand}` and
//! must never use the `proc_macro` crate itself.

use proc_macro2::TokenStream;

/// Runs `nas_search!` on `tokens`. Never panics: a bad spec comes back as
/// `compile_error!` tokens at the offending spans (all errors combined).
pub fn expand(tokens: TokenStream) -> TokenStream {
    let spec: crate::ast::Spec = match syn::parse2(tokens) {
        Ok(spec) => spec,
        Err(e) => return e.to_compile_error(),
    };
    match crate::validate::validate(&spec) {
        Ok(checked) => crate::expand::expand(&spec, &checked),
        Err(e) => e.to_compile_error(),
    }
}
