// Latency clauses cannot be known at compile time: they never make "no candidate
// satisfies" fire, however tight, and contradictions among them are still caught
// elsewhere (`contradictory_bounds`).
nas::nas_search! {
    search Tight {
        hardware: [h100],
        known llama3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false, num_layers: 32, vocab_size: 128256 }
        constraints { prefill_ms <= 0.001, decode_tokens_per_s >= 1e12 || decode_ms < 0.0001 }
        rank_by: decode_tokens_per_s,
    }
}

fn main() {
    assert_eq!(Tight::RANK_BY, nas::search::RankMetric::DecodeTokensPerS);
    let pack = Tight::evaluate().unwrap();
    // The catalog is GPU-independent: latency clauses are assumed to hold there...
    assert!(pack.candidate_catalog[0].constraints.passes);
    // ...and fail on the H100 itself.
    assert_eq!(pack.summary["h100"].quality_constrained_candidate_count, 0);
}
