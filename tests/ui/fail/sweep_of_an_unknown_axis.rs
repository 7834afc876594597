nas::nas_search! {
    search S {
        hardware: [h100],
        sweep heads in 8..32 step 8 { hidden_dim: 2048, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

fn main() {}
