nas::nas_search! {
    search S {
        hardware: [h100],
        sweep ffn_dim in 7936..8448 step 64 { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

fn main() {}
