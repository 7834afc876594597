nas::nas_search! {
    search S {
        hardware: [h100],
        family f { hidden_dim: 2048, head_dim: 128, ffn_ratio: [0.0, "four"], name: "f{ffn_ratio}" }
    }
}

fn main() {}
