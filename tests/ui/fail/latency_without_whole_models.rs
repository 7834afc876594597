// Ranking or constraining by a whole-model latency on plain layers (no num_layers, no vocab_size).
nas::nas_search! {
    search Layers {
        hardware: [h100],
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
        constraints { prefill_ms <= 200.0 }
        rank_by: decode_ms,
    }
}

fn main() {}
