// The seed tool's whole multi-hardware search, written in the DSL.
//
// Run from the repository root:
//     cargo run --release -p nas-examples --example seed_pack
// It writes docs/results/kernel-aware-nas-multihardware.{json,md,html}, the same
// bytes as `nas pack --seed --calibration-db calibration/seed/noeris-cost-model-training.json`,
// and numbers equal to the seed's own reference pack (parity).

nas::nas_search! {
    /// The seed's search: 4 known models, 5 seed candidates and a 40-candidate
    /// family on A100, T4 and H100, a 540-candidate space, two cliff sweeps.
    pub search SeedPack {
        hardware: [a100, t4, h100],
        // Parity with the seed tool: its formula and hand-set constants.
        cost_model: seed,
        workload { seq_len: 2048, batch_size: 1 }
        // The seed's A100 measurements (MIT, see calibration/seed/README.md).
        calibration_db: "calibration/seed/noeris-cost-model-training.json",

        known gemma4_e2b { hidden_dim: 1536, heads: 8, kv_heads: 1, head_dim: 256, ffn_dim: 6144, window: 512, qk_norm: true }
        known gemma4_31b { hidden_dim: 5376, heads: 32, kv_heads: 16, head_dim: 256, ffn_dim: 21504, window: 1024, qk_norm: true }
        known llama3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false }
        known llama3_70b { hidden_dim: 8192, heads: 64, kv_heads: 8, head_dim: 128, ffn_dim: 28672, qk_norm: false }

        seed optimal_2b { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192, window: 1024, qk_norm: true }
        seed wide_ffn_2b { hidden_dim: 1536, heads: 8, kv_heads: 1, head_dim: 256, ffn_dim: 8192, window: 1024, qk_norm: true }
        seed narrow_heads { hidden_dim: 2048, heads: 32, kv_heads: 4, head_dim: 64, ffn_dim: 8192, window: 1024, qk_norm: true }
        seed deep_narrow { hidden_dim: 1024, heads: 8, kv_heads: 1, head_dim: 128, ffn_dim: 4096, window: 512, qk_norm: true }
        seed big_head_gqa { hidden_dim: 2048, heads: 8, kv_heads: 1, head_dim: 256, ffn_dim: 8192, window: 1024, qk_norm: true }

        family gen {
            hidden_dim: [1536, 2048, 2560, 3072, 4096],
            head_dim: [128, 256],
            gqa_group: 4 round_down, // the seed: kv heads = max(1, heads / 4), rounded down
            ffn_ratio: [4.0 as "4p0", 16.0 / 3.0 as "5p33"] round_to 128,
            window: [512, 1024],
            qk_norm: true,
            name: "gen_h{hidden_dim}_hd{head_dim}_gqa{gqa_group}_ffn{ffn_ratio}_w{window}",
        }

        space generated top 25 {
            hidden_dim: [1536, 2048, 2560],
            head_dim: [64, 128, 256],
            kv_heads: [1, 2, 4, 8],
            ffn_ratio: [3.0, 4.0, 5.333] round_up_to 128,
            window: [512, 1024, full],
            qk_norm: [true as "qknorm", false as "rope"],
            name: "gen_h{hidden_dim}_hd{head_dim}_kv{kv_heads}_ffn{ffn_ratio}_win{window}_{qk_norm}",
        }

        sweep hidden_dim in 3840..4352 step 32 {
            heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false, window: full,
        }
        sweep ffn_dim in 7936..8448 step 64 {
            hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, window: 1024, qk_norm: true,
        }

        constraints {
            hidden_dim >= 2048,
            param_proxy_m >= 16.0,
            ffn_ratio in 3.75..=5.5,
        }
        rank_by: total_ms,
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), nas::Error> {
    let prefix = "docs/results/kernel-aware-nas-multihardware";
    SeedPack::evaluate()?.write(prefix)?;
    println!("wrote {prefix}.json, {prefix}.md and {prefix}.html");
    Ok(())
}
