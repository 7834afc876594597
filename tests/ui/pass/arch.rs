// Mixtures of experts, layer patterns and latent attention as fields and
// axes: the tables carry them, and the pack counts and times their stacks.

nas::nas_search! {
    search Stacks {
        hardware: [h200],
        workload { seq_len: 1024, batch_size: 16, context_len: 4096, training_tokens: 1e12 }
        known qwen3_30b_a3b { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, qk_norm: true,
                              num_layers: 48, vocab_size: 151936, experts: 128, top_k: 8, expert_ffn_dim: 768 }
        known lite { hidden_dim: 2048, heads: 16, kv_heads: 16, head_dim: 128, ffn_dim: 10944, num_layers: 27,
                     vocab_size: 102400, experts: 64, top_k: 6, expert_ffn_dim: 1408, shared_experts: 2,
                     first_dense_layers: 1, kv_lora_rank: 512, rope_head_dim: 64 }
        family gemma {
            hidden_dim: 1152, heads: 4, kv_heads: 1, head_dim: 256, ffn_dim: 6912, num_layers: 26,
            vocab_size: 262144, window: 512, layer_pattern: ["5:1", "1:1"],
            name: "gemma_{layer_pattern}",
        }
        space moe top 3 {
            hidden_dim: 2048, head_dim: 128, gqa_group: 8, ffn_dim: 6144, num_layers: 48, vocab_size: 151936,
            experts: [64, 128], top_k: [4, 8], expert_ffn_dim: [512, 768],
            name: "moe_e{experts}_k{top_k}_f{expert_ffn_dim}",
        }
        constraints { fits(h200, batch: 16, context: 4096) }
        rank_by: decode_ms,
    }
}

fn main() {
    use nas::arch::LayerPattern;
    assert_eq!(Stacks::CANDIDATES.len(), 4);
    let qwen = &Stacks::CANDIDATES[0].shape;
    assert_eq!((qwen.arch.experts, qwen.arch.top_k, qwen.arch.expert_ffn_dim), (Some(128), Some(8), Some(768)));
    assert_eq!(Stacks::CANDIDATES[1].shape.arch.kv_lora_rank, Some(512));
    assert_eq!(Stacks::CANDIDATES[3].name, "gemma_1:1");
    assert_eq!(Stacks::CANDIDATES[3].shape.arch.layer_pattern, Some(LayerPattern { sliding: 1, full: 1 }));
    let pack = Stacks::evaluate().unwrap();
    let qwen = pack.candidate_catalog[0].model.unwrap();
    assert_eq!(qwen.parameters.total, 30_532_122_624);
    assert!(qwen.parameters.active.is_some());
    assert_eq!(qwen.loss_estimate, None, "a mixture gets no loss estimate");
    assert!(pack.candidate_catalog[3].model.unwrap().loss_estimate.is_some(), "a dense stack does");
    let h200 = pack.reports["h200"].whole_model.as_ref().unwrap();
    assert_eq!(h200.decode_ms_ranking.len(), 4);
    let json = pack.to_json().unwrap();
    assert!(json.contains("the scaling-law loss estimate covers dense models only"));
    let streamed = Stacks::search_space().unwrap().unwrap();
    assert_eq!(streamed.combinations, 8);
    assert_eq!(streamed.per_gpu[0].constrained_top.len(), 3);
}
