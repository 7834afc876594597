nas::nas_search! {
    search S {
        hardware: [h100],
        family f { hidden_dim: 1536, head_dim: 256, gqa_group: 4 round_down_to 2, ffn_ratio: 4.0, name: "f" }
    }
}

fn main() {}
