nas::nas_search! {
    search S {
        hardware: [h100],
        space s top 5 { hidden_dim: 2048, head_dim: 128, ffn_ratio: 4.0, seq_len: [1024, 16000000], batch_size: [1, 16000000], name: "s{seq_len}_{batch_size}" }
    }
}

fn main() {}
