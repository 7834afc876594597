nas::nas_search! {
    search S {
        hardware: [h100],
        family f { hidden_dim: 2048, head_dim: 128, kv_heads: 2, gqa_group: 4, ffn_ratio: 4.0, name: "f" }
    }
}

fn main() {}
