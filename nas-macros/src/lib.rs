//! `nas_search!`: a search spec written in Rust, checked while the code
//! compiles, expanded into typed `const` candidate tables.
//!
//! Thin on purpose: parse (`parse.rs`, one `Parse` impl per node) -> check
//! with nas-core's own rules (`validate.rs`, all errors combined, each at its
//! tokens) -> expand (`expand.rs`). See `docs/DSL.md` for the language.

mod ast;
mod expand;
mod kw;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Declares a search; see `docs/DSL.md`. Re-exported as `nas::nas_search!`.
#[proc_macro]
pub fn nas_search(input: TokenStream) -> TokenStream {
    expand_tokens(input.into()).into()
}

/// The whole macro on proc-macro2 tokens, so tests can run it outside a compiler.
fn expand_tokens(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let spec: ast::Spec = match syn::parse2(input) {
        Ok(spec) => spec,
        Err(e) => return e.to_compile_error(),
    };
    match validate::validate(&spec) {
        Ok(checked) => expand::expand(&spec, &checked),
        Err(e) => e.to_compile_error(),
    }
}
