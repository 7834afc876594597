// The `known` blocks `nas import` prints for six Hugging Face configs
// (tests/cli_stack.rs checks that import still prints each line verbatim):
// they are valid DSL. DeepSeek-V3 and Qwen3-30B-A3B are said whole, with
// their mixture and latent fields.

nas::nas_search! {
    search Imported {
        hardware: [h200],
        known gemma_2_9b { hidden_dim: 3584, heads: 16, kv_heads: 8, head_dim: 256, ffn_dim: 14336, qk_norm: false, window: 4096, num_layers: 42, vocab_size: 256000, tie_embeddings: true }
        known deepseek_v3 { hidden_dim: 7168, heads: 128, kv_heads: 128, head_dim: 128, ffn_dim: 18432, qk_norm: false, window: full, num_layers: 61, vocab_size: 129280, tie_embeddings: false, experts: 256, top_k: 8, expert_ffn_dim: 2048, shared_experts: 1, shared_expert_ffn_dim: 2048, first_dense_layers: 3, kv_lora_rank: 512, q_lora_rank: 1536, rope_head_dim: 64, v_head_dim: 128 }
        known gpt2 { hidden_dim: 768, heads: 12, kv_heads: 12, head_dim: 64, ffn_dim: 2048, qk_norm: false, window: full, num_layers: 12, vocab_size: 50257, tie_embeddings: true }
        known qwen3_30b_a3b { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 768, qk_norm: true, window: full, num_layers: 48, vocab_size: 151936, tie_embeddings: false, experts: 128, top_k: 8, expert_ffn_dim: 768 }
        known gpt_oss_20b { hidden_dim: 2880, heads: 64, kv_heads: 8, head_dim: 64, ffn_dim: 11520, qk_norm: false, window: 128, num_layers: 24, vocab_size: 201088, tie_embeddings: false }
        known olmo_2_1124_7b { hidden_dim: 4096, heads: 32, kv_heads: 32, head_dim: 128, ffn_dim: 11008, qk_norm: true, window: full, num_layers: 32, vocab_size: 100352, tie_embeddings: false }
    }
}

fn main() {
    assert_eq!(Imported::CANDIDATES.len(), 6);
    let pack = Imported::evaluate().unwrap();
    assert_eq!(pack.reports["h200"].rankings.total_ms.len(), 6);
    // Said whole, they count what transformers counts.
    let count = |name: &str| {
        let i = Imported::CANDIDATES.iter().position(|c| c.name == name).unwrap();
        pack.candidate_catalog[i].model.unwrap().parameters
    };
    assert_eq!(count("qwen3_30b_a3b").total, 30_532_122_624);
    assert_eq!(count("deepseek_v3").active, Some(37_552_282_624));
}
