// One expert is a dense MLP: refused as a field and as an axis value.
nas::nas_search! {
    search S {
        hardware: [h200],
        known m { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, experts: 1, top_k: 1 }
        family f {
            hidden_dim: 2048, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936,
            experts: [1, 8], top_k: 1,
            name: "f{experts}",
        }
    }
}

fn main() {}
