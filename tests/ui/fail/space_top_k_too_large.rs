nas::nas_search! {
    search S {
        hardware: [h100],
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
        space wide top 1000000000000000000 {
            hidden_dim: [2048, 4096],
            head_dim: [128],
            ffn_ratio: 4.0,
            name: "w_h{hidden_dim}",
        }
    }
}

fn main() {}
