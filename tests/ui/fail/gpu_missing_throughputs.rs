nas::nas_search! {
    search S {
        hardware: [mine],
        cost_model: seed,
        gpu mine { matmul_tflops: 300.0, attention_tflops: 250.0 }
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

fn main() {}
