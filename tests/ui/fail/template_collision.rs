nas::nas_search! {
    search S {
        hardware: [h100],
        family gen {
            hidden_dim: [2048, 4096],
            head_dim: 128,
            ffn_ratio: 4.0,
            window: [512, 1024],
            name: "gen_h{hidden_dim}",
        }
    }
}

fn main() {}
