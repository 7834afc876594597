nas::nas_search! {
    search S {
        hardware: [h100],
        family gen {
            hidden_dim: [],
            head_dim: 128,
            ffn_ratio: 4.0,
            name: "gen_h{hidden_dim}",
        }
    }
}

fn main() {}
