// A layer pattern is "a:b", two positive counts, as a string.
nas::nas_search! {
    search S {
        hardware: [h200],
        known dash { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, window: 1024, layer_pattern: "5-1" }
        known zeros { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, window: 1024, layer_pattern: "0:0" }
        known number { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, window: 1024, layer_pattern: 5 }
        family f {
            hidden_dim: 2048, head_dim: 128, ffn_dim: 6144, num_layers: 48, vocab_size: 151936, window: 1024,
            layer_pattern: ["5:1", "1:0"],
            name: "f{layer_pattern}",
        }
    }
}

fn main() {}
