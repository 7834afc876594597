nas::nas_search! {
    search S {
        hardware: [h100],
        workload { training_tokens: 2e12, scaling_law: "kaplan", loss_params: "embeddings" }
        known m { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, num_layers: 32, vocab_size: 128256 }
    }
}

fn main() {}
