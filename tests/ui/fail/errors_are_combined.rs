nas::nas_search! {
    search S {
        hardware: [h100, t5],
        known a { hidden_dim: 2048, heads: 16, kv_heads: 3, head_dim: 128, ffn_dim: 8192 }
        known b { hidden_dim: 0, heads: 8, kv_heads: 1, head_dim: 128, ffn_dim: 4096 }
        constraints { hidden_dmi >= 2048 }
    }
}

fn main() {}
