nas::nas_search! {
    search S {
        hardware: [h100],
        family f { hidden_dim: 2048, head_dim: 128, ffn_ratio: 4.0 }
    }
}

fn main() {}
