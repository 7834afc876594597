nas::nas_search! {
    search S {
        hardware: [h200, h100],
        known m { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, num_layers: 32, vocab_size: 128256 }
        constraints { fits(h10, batch: 8, context: 8192) }
    }
}

fn main() {}
