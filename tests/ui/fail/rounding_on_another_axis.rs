nas::nas_search! {
    search S {
        hardware: [h100],
        family f { hidden_dim: [2048] round_to 64, head_dim: 128, ffn_ratio: 4.0, name: "f" }
    }
}

fn main() {}
