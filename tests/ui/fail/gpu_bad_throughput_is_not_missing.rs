nas::nas_search! {
    search S {
        hardware: [mine],
        cost_model: seed,
        gpu mine { matmul_tflops: "fast", hbm_bandwidth_gbps: 1000.0, rmsnorm_gbps: 800.0, rmsnorm_gbps_small: 400.0, qk_norm_rope_gbps: 500.0, qk_norm_rope_separate_gbps: 400.0, geglu_gbps: 700.0, matmul_tflops_small: 150.0, attention_tflops: 200.0, residual_add_gbps: 900.0 }
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

fn main() {}
