// A Gemma-2B-class search of our own design: which ~2B-parameter-class layer
// shape is fastest on each GPU while keeping enough width and FFN capacity?
//
//     cargo run --release -p nas-examples --example gemma2b_class
//
// Writes docs/results/gemma-2b-class.{json,md,html}. H100 and H200 latencies come
// from their measured profiles, the A100 from the seed's hand-set constants (see
// `nas hardware` and each GPU's provenance in the pack).

nas::nas_search! {
    /// Gemma-2B-class decoder layers (2048-2560 wide, head_dim 128/256, GQA,
    /// sliding windows) on three GPUs, 4k-token prefill.
    pub search Gemma2bClass {
        hardware: [h100, h200, a100],
        // H100 and H200 on their measured profiles; the A100 has none yet.
        cost_model: { a100: seed },
        workload { seq_len: 4096, batch_size: 1 }

        // Reference points: Gemma-2-2B-like and Gemma-3-1B-like layers at this workload.
        known gemma2_2b_like { hidden_dim: 2304, heads: 8, kv_heads: 4, head_dim: 256, ffn_dim: 9216, window: 4096, qk_norm: false }
        known gemma3_1b_like { hidden_dim: 1152, heads: 4, kv_heads: 1, head_dim: 256, ffn_dim: 6912, window: 512, qk_norm: true }

        family g2b {
            hidden_dim: [2048, 2304, 2560],
            head_dim: [128, 256],
            gqa_group: [2, 4, 8],
            ffn_ratio: [4.0, 16.0 / 3.0, 6.0] round_to 256,
            window: [1024, 4096, full],
            qk_norm: [true as "qk", false as "noqk"],
            name: "g2b_h{hidden_dim}_hd{head_dim}_g{gqa_group}_f{ffn_ratio}_w{window}_{qk_norm}",
        }

        constraints {
            hidden_dim >= 2048,
            param_proxy_m >= 18.0,
            ffn_ratio in 3.75..=6.0,
            // Keep attention capacity: at least 8 query heads, or wide heads.
            num_heads >= 8 || head_dim >= 256,
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
    let pack = Gemma2bClass::evaluate()?;
    for (gpu, summary) in &pack.summary {
        println!(
            "{gpu}: fastest {} ; fastest passing the constraints {} ({} pass)",
            summary.fastest_config.as_deref().unwrap_or("none"),
            summary.quality_constrained_fastest_config.as_deref().unwrap_or("none"),
            summary.quality_constrained_candidate_count
        );
    }
    pack.write("docs/results/gemma-2b-class")?;
    println!("wrote docs/results/gemma-2b-class.json, .md and .html");
    Ok(())
}
