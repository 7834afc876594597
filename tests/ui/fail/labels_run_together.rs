nas::nas_search! {
    search S {
        hardware: [h100],
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
        space wide top 10 {
            hidden_dim: [2048 as "2k", 4096 as "2"],
            head_dim: [128],
            ffn_dim: [8192 as "8", 12288 as "k8"],
            name: "w{hidden_dim}{ffn_dim}",
        }
    }
}

fn main() {}
