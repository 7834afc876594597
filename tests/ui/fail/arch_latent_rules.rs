// Latent attention expands its keys and values for every head, has no
// QK-norm of its own and a latent narrower than the hidden width.
nas::nas_search! {
    search S {
        hardware: [h200],
        known gqa { hidden_dim: 2048, heads: 16, kv_heads: 4, head_dim: 128, ffn_dim: 10944, num_layers: 27,
                    vocab_size: 102400, kv_lora_rank: 512 }
        known normed { hidden_dim: 2048, heads: 16, kv_heads: 16, head_dim: 128, ffn_dim: 10944, num_layers: 27, vocab_size: 102400, kv_lora_rank: 512, qk_norm: true }
        known wide { hidden_dim: 2048, heads: 16, kv_heads: 16, head_dim: 128, ffn_dim: 10944, num_layers: 27, vocab_size: 102400, kv_lora_rank: 2048 }
        known wide_q { hidden_dim: 2048, heads: 16, kv_heads: 16, head_dim: 128, ffn_dim: 10944, num_layers: 27, vocab_size: 102400, kv_lora_rank: 512, q_lora_rank: 4096 }
    }
}

fn main() {}
