// Which 7-9B decoder serves a token fastest on an H100, among those that fit
// its memory with 8 sequences of 8192 tokens and whose scaling-law loss at
// 15T training tokens is low enough?
//
//     cargo run --release -p nas-examples --example decode_budget
//
// Writes docs/results/decode-budget.{json,md,html}. Decode latency is a roofline
// estimate on the seed's constants (weights and KV cache at HBM bandwidth),
// the loss an extrapolation from Chinchilla's published fit: estimates, not
// measurements (the pack says so).

nas::nas_search! {
    /// Whole 7-9B-class models ranked by one decode step (batch 8, 8k context).
    pub search DecodeBudget {
        hardware: [h100, h200],
        workload {
            seq_len: 2048,
            batch_size: 8,
            context_len: 8192,
            training_tokens: 15e12,
            scaling_law: "chinchilla",
            loss_params: "all",
        }

        known llama3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false, num_layers: 32, vocab_size: 128256 }
        known mistral_7b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false, num_layers: 32, vocab_size: 32000, window: 4096 }
        known qwen3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 12288, qk_norm: true, num_layers: 36, vocab_size: 151936 }
        known llama2_7b { hidden_dim: 4096, heads: 32, kv_heads: 32, head_dim: 128, ffn_dim: 11008, qk_norm: false, num_layers: 32, vocab_size: 32000 }

        family gen {
            hidden_dim: [3584, 4096, 4608],
            head_dim: [128],
            gqa_group: [4, 8],
            ffn_ratio: [3.5, 4.0] round_to 256,
            num_layers: [24, 28, 32, 36],
            vocab_size: 128256,
            window: [4096, full],
            qk_norm: false,
            name: "gen_h{hidden_dim}_g{gqa_group}_f{ffn_ratio}_l{num_layers}_w{window}",
        }

        constraints {
            fits(h100, batch: 8, context: 8192),
            loss_estimate <= 1.95,
            params_m >= 6000.0,
        }
    }
}

fn main() -> Result<(), nas::Error> {
    let pack = DecodeBudget::evaluate()?;
    let h100 = pack.reports["h100"]
        .whole_model
        .as_ref()
        .expect("whole-model candidates");
    for r in h100.quality_constrained_decode_ranking.iter().take(5) {
        println!(
            "#{} {}: decode {:.3} ms, prefill {:.1} ms, {:.2}B parameters, loss {:.4}",
            r.rank,
            r.name,
            r.decode_ms,
            r.prefill_ms,
            r.params as f64 / 1e9,
            r.loss_estimate.unwrap_or(f64::NAN)
        );
    }
    pack.write("docs/results/decode-budget")?;
    println!("wrote docs/results/decode-budget.json, .md and .html");
    Ok(())
}
