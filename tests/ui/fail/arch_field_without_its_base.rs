// Mixture fields need `experts`; latent fields need `kv_lora_rank`.
nas::nas_search! {
    search S {
        hardware: [h200],
        known routed { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, top_k: 8 }
        known roped { hidden_dim: 2048, heads: 16, kv_heads: 16, head_dim: 128, ffn_dim: 10944, num_layers: 27, vocab_size: 102400, rope_head_dim: 64 }
    }
}

fn main() {}
