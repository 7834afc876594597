nas::nas_search! {
    search S {
        hardware: [h200, t4],
        cost_model: { t4: seed },
        family f {
            hidden_dim: [2048, 4096],
            head_dim: 128,
            ffn_ratio: 4.0,
            weights: [bf16, fp8],
            kv_cache: fp8,
            name: "f_h{hidden_dim}_{weights}",
        }
    }
}

fn main() {}
