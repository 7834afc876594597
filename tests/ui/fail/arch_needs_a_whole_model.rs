// A mixture, a layer pattern or latent attention makes a stack of layers:
// a whole model, with layers and a vocabulary.
nas::nas_search! {
    search S {
        hardware: [h200],
        known layer { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 128, ffn_dim: 6144, experts: 128, top_k: 8 }
        family f {
            hidden_dim: 2048, head_dim: 128, ffn_dim: 6144, experts: [64, 128], top_k: 8,
            name: "f{experts}",
        }
    }
}

fn main() {}
