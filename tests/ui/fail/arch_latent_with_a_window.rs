// Latent attention attends to the whole context here: no window, and no
// window through a layer pattern either.
nas::nas_search! {
    search S {
        hardware: [h200],
        known windowed { hidden_dim: 2048, heads: 16, kv_heads: 16, head_dim: 128, ffn_dim: 10944, num_layers: 27, vocab_size: 102400, kv_lora_rank: 512, window: 4096 }
        known patterned { hidden_dim: 2048, heads: 16, kv_heads: 16, head_dim: 128, ffn_dim: 10944, num_layers: 27, vocab_size: 102400, kv_lora_rank: 512, window: 4096, layer_pattern: "3:1" }
    }
}

fn main() {}
