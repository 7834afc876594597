// The same search in bf16 and in fp8 weights on the H200: which 3-9B decoder
// generates fastest at batch 32 with 8k tokens of context, among those that
// reach a loss estimate and fit the H200? Every architecture is there twice
// (`weights: [bf16, fp8]`), so the pack ranks both and shows, per kernel,
// why the order moves: fp8 halves the weight bytes every decode step reads,
// so the KV cache becomes a larger share of every step and the GQA ratio,
// the head size and the window matter more.
//
//     cargo run --release -p nas-examples --example precision_search
//
// Writes docs/results/precision-search-h200.{json,md,html} (the pack) and
// docs/results/precision-search-h200-ranking.md (each architecture's rank
// among the bf16 candidates and among the fp8 ones). fp8 here is e4m3 with
// per-tensor scales and the dynamic quantization of every GEMM's activation,
// priced by the H200 profile's precision section (fitted on fp8 layers and
// decode steps measured on the H200: calibration/README.md).

use std::collections::BTreeMap;
use std::fmt::Write;

nas::nas_search! {
    /// 3-9B decoders in bf16 and fp8, ranked by one decode step (batch 32, 8k context).
    pub search PrecisionSearch {
        hardware: [h200],
        workload {
            seq_len: 1024,
            batch_size: 32,
            context_len: 8192,
            training_tokens: 15000000000000,
        }

        family gen {
            hidden_dim: [3072, 4096],
            head_dim: [64, 128, 256],
            gqa_group: [1, 4, 8],
            ffn_ratio: 3.5 round_to 256,
            num_layers: [24, 32],
            vocab_size: 128256,
            window: [1024, full],
            qk_norm: false,
            weights: [bf16, fp8],
            name: "m_h{hidden_dim}_d{head_dim}_g{gqa_group}_l{num_layers}_w{window}_{weights}",
        }

        constraints {
            fits(h200, batch: 32, context: 8192),
            loss_estimate <= 1.99,
        }
        rank_by: decode_ms,
    }
}

/// An architecture's place in one precision's ranking: (rank, decode ms, KV share).
type Place = (usize, f64, f64);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pack = PrecisionSearch::evaluate()?;
    let report = pack.reports["h200"]
        .whole_model
        .as_ref()
        .expect("whole-model candidates");
    // Each architecture's rank among the passing bf16 candidates and among the fp8 ones.
    let mut ranks: BTreeMap<String, [Option<Place>; 2]> = BTreeMap::new();
    let mut seen = [0usize; 2];
    for r in &report.constrained_ranking {
        let (arch, p) = match r.name.strip_suffix("_fp8") {
            Some(a) => (a.to_string(), 1),
            None => (r.name.trim_end_matches("_bf16").to_string(), 0),
        };
        seen[p] += 1;
        let entry = report
            .candidates
            .iter()
            .find(|c| c.name == r.name)
            .expect("a candidate");
        let kv = entry.decode.per_kernel["attention_over_context"] / entry.decode.total_ms;
        ranks.entry(arch).or_default()[p] = Some((seen[p], r.decode_ms, kv));
    }
    let mut rows: Vec<(&String, Place, Place)> =
        ranks.iter().filter_map(|(a, [b, f])| Some((a, (*b)?, (*f)?))).collect();
    rows.sort_by_key(|(_, b, _)| b.0);
    let mut md = String::new();
    writeln!(
        md,
        "# The same search in bf16 and fp8 on the H200: where the ranking changes\n"
    )?;
    writeln!(
        md,
        "From `cargo run --release -p nas-examples --example precision_search` (the pack: `precision-search-h200.md`). Each \
         architecture's rank by decode latency (batch 32, 8192 tokens of context, on the H200's measured model) among \
         the {} bf16 candidates and among the {} fp8 ones that pass the constraints (fits the H200 at batch 32 x 8k; \
         loss estimate <= 1.99). `KV share` = attention over the cache / the whole decode step: fp8 weights halve \
         the weight bytes, so the cache's share grows and architectures with a larger cache (fewer query heads per KV \
         head, larger heads, no window) fall.\n",
        seen[0], seen[1]
    )?;
    writeln!(
        md,
        "| architecture | bf16 rank | bf16 decode ms | bf16 KV share | fp8 rank | fp8 decode ms | fp8 KV share | rank change |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for (arch, b, f) in &rows {
        let change = b.0 as i64 - f.0 as i64;
        writeln!(
            md,
            "| `{arch}` | {} | {:.3} | {:.1}% | {} | {:.3} | {:.1}% | {} |",
            b.0,
            b.1,
            100.0 * b.2,
            f.0,
            f.1,
            100.0 * f.2,
            match change {
                0 => "=".to_string(),
                c => format!("{c:+}"),
            }
        )?;
    }
    let moved = rows.iter().filter(|(_, b, f)| b.0 != f.0).count();
    writeln!(
        md,
        "\n{moved} of {} architectures change rank between bf16 and fp8.",
        rows.len()
    )?;
    std::fs::create_dir_all("docs/results")?;
    std::fs::write("docs/results/precision-search-h200-ranking.md", &md)?;
    pack.write("docs/results/precision-search-h200")?;
    print!("{md}");
    println!("wrote docs/results/precision-search-h200.json, .md, .html and -ranking.md");
    Ok(())
}
