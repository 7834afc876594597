nas::nas_search! {
    search S {
        hardware: [h100],
        // 1536 / 256 = 6 heads and 2560 / 256 = 10: neither splits into groups of 4
        family f { hidden_dim: [1536, 2560], head_dim: 256, gqa_group: 4, ffn_ratio: 4.0, name: "f{hidden_dim}_g{gqa_group}" }
    }
}

fn main() {}
