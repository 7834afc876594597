nas::nas_search! {
    search S {
        hardware: [h100],
        family odd {
            hidden_dim: [1000, 1100],
            head_dim: 128,
            ffn_dim: 4096,
            name: "odd_h{hidden_dim}",
        }
    }
}

fn main() {}
