// A space of stacks is validated and timed candidate by candidate: at most 2^18.
nas::nas_search! {
    search S {
        hardware: [h200],
        space s top 5 {
            hidden_dim: [1024, 1536, 2048, 2560, 3072, 3584, 4096, 4608, 5120],
            head_dim: 128,
            ffn_dim: [1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192],
            num_layers: [8, 16, 24, 32, 40, 48, 56, 64],
            vocab_size: [32000, 151936],
            experts: [8, 16, 32, 64, 128, 256, 512, 1024],
            top_k: [1, 2, 4, 8],
            expert_ffn_dim: [256, 512, 768, 1024, 1280, 1536, 1792, 2048],
            name: "s{hidden_dim}_{ffn_dim}_{num_layers}_{vocab_size}_{experts}_{top_k}_{expert_ffn_dim}",
        }
    }
}

fn main() {}
