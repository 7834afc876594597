// Precision as fields and axes: the tables carry it, and the pack says it.

nas::nas_search! {
    search Served {
        hardware: [h200, h100],
        workload { seq_len: 2048, batch_size: 16, context_len: 8192 }
        known llama3_8b_fp8 { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336,
                              qk_norm: false, num_layers: 32, vocab_size: 128256, weights: fp8, kv_cache: "fp8" }
        family gen {
            hidden_dim: [2048, 4096],
            head_dim: 128,
            gqa_group: 4,
            ffn_ratio: 3.5,
            qk_norm: false,
            num_layers: 24,
            vocab_size: 128256,
            weights: [bf16, fp8, int4],
            name: "gen_h{hidden_dim}_{weights}",
        }
    }
}

fn main() {
    use nas::precision::{KvCachePrecision, WeightPrecision};
    assert_eq!(Served::CANDIDATES.len(), 1 + 6);
    let first = &Served::CANDIDATES[0].shape.precision;
    assert_eq!((first.weights, first.kv_cache), (WeightPrecision::Fp8, KvCachePrecision::Fp8));
    assert_eq!(Served::CANDIDATES[3].name, "gen_h2048_int4");
    assert_eq!(Served::CANDIDATES[3].shape.precision.weights, WeightPrecision::Int4);
    let pack = Served::evaluate().unwrap();
    let md = pack.to_markdown();
    assert!(md.contains("| precision |"), "a precision column");
    assert!(md.contains("fp8 \\+ fp8 KV"), "its label, escaped for Markdown");
    assert!(pack.to_json().unwrap().contains("\"precision\": \"fp8 + fp8 KV\""));
    let h100 = &pack.reports["h100"].environment.provenance;
    assert!(h100.precision.as_deref().unwrap().contains("transferred from NVIDIA H200"));
}
