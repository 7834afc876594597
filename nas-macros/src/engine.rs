//! The whole macro on proc-macro2 tokens: parse -> validate -> expand.
//!
//! Kept apart from `lib.rs` (the `#[proc_macro]` shim) so code that is not a
//! proc-macro crate can run the macro: the unit tests below `lib.rs`, and the
//! fuzz target `fuzz/fuzz_targets/dsl_macro.rs`, which includes this file and
//! its sibling modules with `#[path]` (a proc-macro crate exports nothing
//! else, so it cannot be linked). This file and its siblings therefore name
//! each other only through `crate::{ast, kw, parse, validate, expand}` and
//! must never use the `proc_macro` crate itself.

use proc_macro2::{Span, TokenStream, TokenTree};

/// Deepest nesting of brackets, braces and parentheses accepted. Real specs
/// nest a few levels; the parser recurses once per level, so a hostile spec
/// nested thousands deep would otherwise overflow the compiler's stack.
pub const MAX_NESTING: usize = 32;

/// Runs `nas_search!` on `tokens`. Never panics: a bad spec comes back as
/// `compile_error!` tokens at the offending spans (all errors combined).
pub fn expand(tokens: TokenStream) -> TokenStream {
    if let Some(span) = too_deep(&tokens, 0) {
        let message = format!("nested more than {MAX_NESTING} levels deep");
        return syn::Error::new(span, message).to_compile_error();
    }
    let spec: crate::ast::Spec = match syn::parse2(tokens) {
        Ok(spec) => spec,
        Err(e) => return e.to_compile_error(),
    };
    match crate::validate::validate(&spec) {
        Ok(checked) => crate::expand::expand(&spec, &checked),
        Err(e) => e.to_compile_error(),
    }
}

/// The first group nested deeper than [`MAX_NESTING`], if any. Recurses at
/// most `MAX_NESTING + 1` levels, whatever the input.
fn too_deep(tokens: &TokenStream, depth: usize) -> Option<Span> {
    tokens.clone().into_iter().find_map(|tree| match tree {
        TokenTree::Group(g) if depth == MAX_NESTING => Some(g.span_open()),
        TokenTree::Group(g) => too_deep(&g.stream(), depth + 1),
        _ => None,
    })
}
