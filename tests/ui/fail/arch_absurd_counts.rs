nas::nas_search! {
    search S {
        hardware: [h200],
        known m { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, experts: 100000, top_k: 8 }
        family f {
            hidden_dim: 2048, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936,
            experts: [128, 100000], top_k: 8,
            name: "f{experts}",
        }
    }
}

fn main() {}
