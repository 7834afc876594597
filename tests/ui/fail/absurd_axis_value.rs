nas::nas_search! {
    search S {
        hardware: [h100],
        workload { seq_len: 4294967296 }
        space s top 5 { hidden_dim: [2048, 4096000000], head_dim: 128, ffn_ratio: 4.0, name: "s{hidden_dim}" }
    }
}

fn main() {}
