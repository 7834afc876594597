//! The `nas_search!` macro on arbitrary text: whatever tokens it is given, it
//! must return tokens (an expansion or `compile_error!`), never panic.
//!
//! A proc-macro crate exports only its macros, so the macro's modules are
//! compiled into this target by path; `engine::expand` is the same entry the
//! `#[proc_macro]` shim calls.
#![no_main]

#[path = "../../nas-macros/src/ast.rs"]
mod ast;
#[path = "../../nas-macros/src/engine.rs"]
mod engine;
#[path = "../../nas-macros/src/expand.rs"]
mod expand;
#[path = "../../nas-macros/src/kw.rs"]
mod kw;
#[path = "../../nas-macros/src/parse.rs"]
mod parse;
#[path = "../../nas-macros/src/validate.rs"]
mod validate;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Text that does not lex as Rust tokens never reaches a macro.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(tokens) = text.parse::<proc_macro2::TokenStream>() else {
        return;
    };
    let _ = engine::expand(tokens);
});
