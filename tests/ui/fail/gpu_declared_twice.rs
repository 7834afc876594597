nas::nas_search! {
    search S {
        hardware: [mine],
        cost_model: seed,
        gpu mine: h100 { memory_gib: 80 }
        gpu mine: h100 { memory_gib: 40 }
        known m { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336 }
    }
}

fn main() {}
