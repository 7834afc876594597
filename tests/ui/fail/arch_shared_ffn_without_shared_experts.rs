nas::nas_search! {
    search S {
        hardware: [h200],
        known m { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, experts: 64, top_k: 6, shared_expert_ffn_dim: 2816 }
    }
}

fn main() {}
