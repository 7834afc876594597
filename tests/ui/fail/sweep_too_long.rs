nas::nas_search! {
    search S {
        hardware: [h100],
        sweep hidden_dim in 1..18446744073709551615 step 1 { heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

fn main() {}
