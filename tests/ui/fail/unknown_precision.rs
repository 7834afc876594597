nas::nas_search! {
    search S {
        hardware: [h200],
        known m { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, weights: fp16 }
        known n { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, kv_cache: int4 }
    }
}

fn main() {}
