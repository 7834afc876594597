// A search around a real mixture of experts: Qwen3-30B-A3B (48 layers of
// 32 query heads and 4 KV heads of 128 with QK-norm, hidden 2048, 128 routed
// experts of 768 of which each token takes 8, no shared experts, untied
// embeddings over 151,936 tokens), with its expert count, its top-k and its
// expert width as axes. Which of these mixtures generates fastest on the
// H200 at batch 16 with 4k tokens of context, among those whose weights,
// cache and activations fit the H200's memory?
//
//     cargo run --release -p nas-examples --example moe_search
//
// Writes docs/results/moe-search.{json,md,html}. Every candidate is a stack
// of layer kinds (nas_core::stack): its parameters and active parameters
// are exact counts (the base point's equal transformers' count of the
// Hugging Face config, tests/arch.rs), its decode step is the sum over its
// layers of the H200's measured models: the dense attention kernels and the
// fitted MoE model (calibration/README.md: routed experts from MoE layers
// measured on the H200, balanced routing). There is no loss estimate: the
// scaling-law fits are for dense models, and a mixture's total parameters
// are not dense parameters, so the pack says so instead of pretending.

nas::nas_search! {
    /// Mixtures around Qwen3-30B-A3B, ranked by one decode step (batch 16, 4k context) on the H200.
    pub search MoeSearch {
        hardware: [h200],
        workload { seq_len: 1024, batch_size: 16, context_len: 4096 }

        known qwen3_30b_a3b {
            hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, qk_norm: true,
            num_layers: 48, vocab_size: 151936, tie_embeddings: false,
            experts: 128, top_k: 8, expert_ffn_dim: 768,
        }

        family moe {
            hidden_dim: 2048, num_heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, qk_norm: true,
            num_layers: 48, vocab_size: 151936, tie_embeddings: false,
            experts: [32, 64, 128, 256, 512],
            top_k: [1, 2, 4, 8],
            expert_ffn_dim: [384, 768, 1536],
            name: "moe_e{experts}_k{top_k}_f{expert_ffn_dim}",
        }

        constraints { fits(h200, batch: 16, context: 4096) }
        rank_by: decode_ms,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pack = MoeSearch::evaluate()?;
    let base = pack.candidate_catalog[0].model.expect("a whole model");
    // Qwen3-30B-A3B's published size, and transformers' count of its config.
    assert_eq!(base.parameters.total, 30_532_122_624);
    assert_eq!(base.parameters.active, Some(3_353_032_704));
    std::fs::create_dir_all("docs/results")?;
    pack.write("docs/results/moe-search")?;
    let h200 = pack.reports["h200"].whole_model.as_ref().expect("whole models");
    println!("fastest decode steps that fit the H200 (batch 16, 4096 tokens of context):");
    for r in h200.constrained_ranking.iter().take(10) {
        println!(
            "{:>3} {:<24} {:>8.3} ms  {:>6.1}B params",
            r.rank,
            r.name,
            r.decode_ms,
            r.params as f64 / 1e9
        );
    }
    println!("wrote docs/results/moe-search.json, .md and .html");
    Ok(())
}
