// A spec's tables are what the macro computed at compile time, and
// `evaluate` turns them into a pack at run time.

nas::nas_search! {
    search Small {
        hardware: [a100, h100, l4ish],
        cost_model: { a100: seed, l4ish: seed },
        gpu l4ish: t4 { matmul_tflops: 120.0, label: "L4-ish", provenance: "made up for a test" }
        known llama3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false }
        family gen {
            hidden_dim: [1536, 2048, 2560],
            head_dim: [128, 256],
            gqa_group: 4,
            ffn_ratio: 4.0,
            window: 1024,
            name: "gen_h{hidden_dim}_hd{head_dim}",
        }
        constraints { hidden_dim >= 2048 }
    }
}

fn main() {
    // 1536 / 256 = 6 and 2560 / 256 = 10 heads do not split into groups of
    // 4: those two combinations are skipped, not given a group of 6 or 5
    assert_eq!(Small::CANDIDATES.len(), 1 + 4);
    assert!(!Small::CANDIDATES.iter().any(|c| c.name == "gen_h1536_hd256" || c.name == "gen_h2560_hd256"));
    assert_eq!(Small::CANDIDATES[1].name, "gen_h1536_hd128");
    assert_eq!(Small::CANDIDATES[1].shape.num_kv_heads, 3);
    assert_eq!(Small::CANDIDATES[1].shape.ffn_dim, 6144);
    let spec = Small::spec().unwrap();
    let mine = spec.hardware[2].seed_throughputs().unwrap();
    assert_eq!(mine.matmul_tflops, 120.0);
    assert_eq!(mine.geglu_gbps, 150.0, "inherited from t4");
    let cost_models: Vec<&str> = spec.hardware.iter().map(|g| g.cost_model().name()).collect();
    assert_eq!(cost_models, ["seed", "measured", "seed"]);
    let pack = Small::evaluate().unwrap();
    assert_eq!(pack.reports["h100"].environment.cost_model, "measured");
    assert_eq!(pack.hardware_profiles, ["a100", "h100", "l4ish"]);
    let h100 = &pack.reports["h100"];
    assert_eq!(h100.rankings.total_ms.len(), 5);
    assert_eq!(h100.rankings.quality_constrained_latency.len(), 4);
    assert_eq!(pack.quality_constraints["min_hidden_dim"], 2048);
}
