// A per-GPU cost model for a GPU the search does not target, and one named twice.
nas::nas_search! {
    search S {
        hardware: [h100, a100],
        cost_model: { a100: seed, t4: seed, a100: seed },
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

fn main() {}
