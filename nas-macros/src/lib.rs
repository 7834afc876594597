//! `nas_search!`: a search spec written in Rust, checked while the code
//! compiles, expanded into typed `const` candidate tables.
//!
//! Thin on purpose: parse (`parse.rs`, one `Parse` impl per node) -> check
//! with nas-core's own rules (`validate.rs`, all errors combined, each at its
//! tokens) -> expand (`expand.rs`). See `docs/DSL.md` for the language.
//!
//! `engine::expand` is the whole macro on proc-macro2 tokens; this file is
//! only the `#[proc_macro]` shim over it (the fuzz target includes `engine.rs`
//! and its siblings by path, see `fuzz/`).

mod ast;
mod engine;
mod expand;
mod kw;
mod parse;
mod validate;

#[cfg(test)]
mod front_ends;

use proc_macro::TokenStream;

/// Declares a search; see `docs/DSL.md`. Re-exported as `nas::nas_search!`.
#[proc_macro]
pub fn nas_search(input: TokenStream) -> TokenStream {
    engine::expand(input.into()).into()
}

#[cfg(test)]
mod tests {
    use quote::quote;

    fn pretty(tokens: proc_macro2::TokenStream) -> String {
        prettyplease::unparse(&syn::parse2::<syn::File>(tokens).expect("the expansion is a valid Rust file"))
    }

    /// The expansion of a small spec, checked in at snapshots/small_search.rs.
    /// Run with `UPDATE_SNAPSHOTS=1` to rewrite it after an intended change.
    #[test]
    fn expansion_snapshot() {
        let spec = quote! {
            /// A fixed candidate, a family and a sweep on a built-in and a custom GPU.
            pub search Small {
                hardware: [h100, mine],
                cost_model: { mine: seed },
                gpu mine: a100 { matmul_tflops: 250.0, label: "Mine" }
                workload { seq_len: 1024, batch_size: 2 }
                known llama3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false }
                family gen {
                    hidden_dim: [2048, 2560],
                    head_dim: 128,
                    gqa_group: 4,
                    ffn_ratio: 4.0,
                    window: [512, full],
                    name: "gen_h{hidden_dim}_w{window}",
                }
                sweep ffn_dim in 8064..8320 step 128 { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128 }
                constraints { hidden_dim >= 2048, ffn_ratio in 3.75..=5.5 || qk_norm == false }
            }
        };
        let got = pretty(super::engine::expand(spec));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/small_search.rs");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(path, &got).unwrap();
        }
        let want = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            got == want,
            "expansion changed; rerun with UPDATE_SNAPSHOTS=1 if intended:\n{got}"
        );
    }

    /// Arbitrary fragments of a valid spec never panic the macro.
    #[test]
    fn truncated_specs_give_errors_not_panics() {
        let full = quote! {
            search S {
                hardware: [h100],
                known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192, window: full }
                family gen { hidden_dim: [1024, 2048], head_dim: 128, ffn_ratio: [4.0 as "4"] round_to 64, name: "g{hidden_dim}" }
                sweep hidden_dim in 1024..2048 step 256 { heads: 8, kv_heads: 1, head_dim: 128, ffn_dim: 4096 }
                constraints { (hidden_dim >= 1024 && qk_norm == true) || ffn_ratio in 1.0..8.0 }
                rank_by: total_ms,
            }
        }
        .to_string();
        let words: Vec<&str> = full.split(' ').collect();
        for end in 0..words.len() {
            for skip in [None, Some(end / 2)] {
                let text: Vec<&str> = words[..end]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != skip)
                    .map(|(_, w)| *w)
                    .collect();
                if let Ok(tokens) = text.join(" ").parse::<proc_macro2::TokenStream>() {
                    let _ = super::engine::expand(tokens);
                }
            }
        }
        assert!(super::engine::expand(full.parse().unwrap())
            .to_string()
            .contains("struct S"));
    }
}

#[cfg(test)]
mod hostile {
    /// Constraints nested thousands of parentheses deep: an error, not a stack
    /// overflow (the parser recurses once per level; tests run on 2 MiB stacks).
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for depth in [33usize, 1000, 20000] {
            let text = format!(
                "search S {{ hardware: [h100], constraints {{ {}hidden_dim >= 1{} }} }}",
                "(".repeat(depth),
                ")".repeat(depth)
            );
            let out = super::engine::expand(text.parse().unwrap()).to_string();
            assert_eq!(
                out,
                ":: core :: compile_error ! { \"nested more than 32 levels deep\" }"
            );
        }
        // 30 levels of parentheses (32 with the braces) are fine
        let text = format!(
            "search S {{ hardware: [h100], known a {{ hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }} constraints {{ {}hidden_dim >= 1{} }} }}",
            "(".repeat(30),
            ")".repeat(30)
        );
        let out = super::engine::expand(text.parse().unwrap()).to_string();
        assert!(out.contains("struct S"), "{out}");
    }

    /// A sweep of 2^64 points is an error before any point is listed.
    #[test]
    fn huge_sweeps_are_refused_before_listing() {
        let text = "search S { hardware: [h100], sweep hidden_dim in 1..18446744073709551615 step 1 \
                    { heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 } }";
        let out = super::engine::expand(text.parse().unwrap()).to_string();
        assert_eq!(
            out,
            ":: core :: compile_error ! { \"the sweep has 18446744073709551614 points, more than the limit of 10000\" }"
        );
    }
}
