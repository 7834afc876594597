// Which 1-8B decoder generates fastest at batch 16 with 8k tokens of context,
// on the measured H100 and H200 models, among those that could also hold 16
// sequences of 32k tokens on an H200 and whose prefill (16 prompts of 1024
// tokens) takes at most 200 ms?
//
//     cargo run --release -p nas-examples --example measured_decode
//
// Writes docs/results/measured-decode.{json,md,html}. The layer latencies come
// from the kernel-aware model fitted on each GPU's measurements; prefill is
// num_layers x that layer plus embedding and LM head; decode is a roofline of
// the fitted bandwidth and throughputs (with a per-kernel cost where decode
// steps were measured). The prefill bound holds per GPU: a model may pass on
// the H200 and fail on the H100 (the pack's per-GPU rankings show it).

nas::nas_search! {
    /// Whole 1-8B decoders ranked by one decode step (batch 16, 8k context).
    pub search MeasuredDecode {
        hardware: [h100, h200],
        workload {
            seq_len: 1024,
            batch_size: 16,
            context_len: 8192,
        }

        known llama3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false, num_layers: 32, vocab_size: 128256 }
        known qwen3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 12288, qk_norm: true, num_layers: 36, vocab_size: 151936 }
        known qwen3_4b { hidden_dim: 2560, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 9728, qk_norm: true, num_layers: 36, vocab_size: 151936, tie_embeddings: true }
        known llama3_2_3b { hidden_dim: 3072, heads: 24, kv_heads: 8, head_dim: 128, ffn_dim: 8192, qk_norm: false, num_layers: 28, vocab_size: 128256, tie_embeddings: true }
        known llama3_2_1b { hidden_dim: 2048, heads: 32, kv_heads: 8, head_dim: 64, ffn_dim: 8192, qk_norm: false, num_layers: 16, vocab_size: 128256, tie_embeddings: true }
        known llama2_7b { hidden_dim: 4096, heads: 32, kv_heads: 32, head_dim: 128, ffn_dim: 11008, qk_norm: false, num_layers: 32, vocab_size: 32000 }

        family gen {
            hidden_dim: [2048, 3072, 4096],
            head_dim: [128],
            gqa_group: [1, 4, 8],
            ffn_ratio: [3.5, 4.0] round_to 256,
            num_layers: [16, 24, 32, 40],
            vocab_size: [128256, 151936],
            qk_norm: false,
            name: "gen_h{hidden_dim}_g{gqa_group}_f{ffn_ratio}_l{num_layers}_v{vocab_size}",
        }

        constraints {
            fits(h200, batch: 16, context: 32768),
            prefill_ms <= 200.0,
        }
        rank_by: decode_ms,
    }
}

fn main() -> Result<(), nas::Error> {
    let pack = MeasuredDecode::evaluate()?;
    for gpu in ["h100", "h200"] {
        let report = pack.reports[gpu].whole_model.as_ref().expect("whole-model candidates");
        println!(
            "{gpu}: {} of {} candidates pass (16 x 32k tokens fit the H200, prefill <= 200 ms on the {gpu})",
            report.constrained_ranking.len(),
            report.candidates.len()
        );
        for r in report.constrained_ranking.iter().take(5) {
            println!(
                "  #{} {}: decode {:.3} ms ({:.0} tokens/s), prefill {:.1} ms, {:.2}B parameters",
                r.rank,
                r.name,
                r.decode_ms,
                r.decode_tokens_per_s,
                r.prefill_ms,
                r.params as f64 / 1e9
            );
        }
    }
    pack.write("docs/results/measured-decode")?;
    println!("wrote docs/results/measured-decode.json, .md and .html");
    Ok(())
}
