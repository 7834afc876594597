// Each stack lists its layers: a family of stacks builds at most 2^25 layers in all.
nas::nas_search! {
    search S {
        hardware: [h200],
        family f {
            hidden_dim: 2048, head_dim: 128, ffn_dim: 6144, vocab_size: 151936,
            num_layers: [32, 65536],
            experts: [8, 16, 32, 64, 128, 256, 512, 1024],
            top_k: [1, 2, 4, 8],
            expert_ffn_dim: [256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096],
            name: "f{num_layers}_{experts}_{top_k}_{expert_ffn_dim}",
        }
    }
}

fn main() {}
