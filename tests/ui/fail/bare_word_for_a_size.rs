nas::nas_search! {
    search S {
        hardware: [h100],
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: big }
    }
}

fn main() {}
