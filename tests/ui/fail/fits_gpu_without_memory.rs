nas::nas_search! {
    search T {
        hardware: [other],
        cost_model: seed,
        gpu other {
            hbm_bandwidth_gbps: 1000.0, rmsnorm_gbps: 800.0, rmsnorm_gbps_small: 400.0, qk_norm_rope_gbps: 500.0,
            qk_norm_rope_separate_gbps: 300.0, geglu_gbps: 700.0, matmul_tflops: 100.0, matmul_tflops_small: 30.0,
            attention_tflops: 80.0, residual_add_gbps: 900.0,
        }
        known m { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, num_layers: 32, vocab_size: 128256 }
        constraints { fits(other, batch: 1, context: 1024) }
    }
}

fn main() {}
