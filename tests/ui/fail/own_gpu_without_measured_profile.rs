// Hand-set throughputs are the seed formula's; under the default measured model
// a GPU of one's own needs a measured profile.
nas::nas_search! {
    search S {
        hardware: [mine],
        gpu mine: h100 { matmul_tflops: 600.0 }
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

fn main() {}
