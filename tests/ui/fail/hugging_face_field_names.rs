nas::nas_search! {
    search S {
        hardware: [h100],
        known m {
            hidden_size: 4096,
            num_attention_heads: 32,
            num_key_value_heads: 8,
            head_dim: 128,
            intermediate_size: 14336,
            num_hidden_layers: 32,
        }
    }
}

fn main() {}
