// The expansion names everything by absolute path: it compiles with no prelude.
#![no_implicit_prelude]

::nas::nas_search! {
    /// A search in a crate with no prelude.
    pub search NoPrelude {
        hardware: [a100, t4, h100, mine],
        cost_model: { a100: seed, t4: seed, mine: seed },
        gpu mine: h100 { matmul_tflops: 600.0 }
        workload { seq_len: 1024, batch_size: 2 }
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192, window: 512 }
        family gen {
            hidden_dim: [2048, 4096],
            head_dim: 128,
            gqa_group: 4,
            ffn_ratio: [4.0, 16.0 / 3.0] round_to 128,
            window: [1024, full],
            qk_norm: [true as "qk", false as "rope"],
            name: "gen_h{hidden_dim}_ffn{ffn_ratio}_w{window}_{qk_norm}",
        }
        space wide top 3 {
            hidden_dim: [1536, 2048],
            head_dim: [64, 128],
            kv_heads: [1, 2],
            ffn_dim: 8192,
            name: "w_h{hidden_dim}_hd{head_dim}_kv{kv_heads}",
        }
        sweep hidden_dim in 1920..2176 step 64 { heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
        constraints {
            hidden_dim >= 2048,
            (ffn_ratio in 3.75..=5.5 && qk_norm == true) || num_heads > 16,
        }
        rank_by: ms_per_mparam_proxy,
    }
}

fn main() {
    let _ = NoPrelude::evaluate();
}
