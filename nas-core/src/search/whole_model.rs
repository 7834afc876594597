//! The whole-model part of a pack: per GPU, prefill and decode of every
//! candidate that has `num_layers` and `vocab_size`, its memory fit, and
//! rankings by decode and prefill latency.

use crate::error::Result;
use crate::gpu::{Gpu, Latencies};
use crate::model::{self, GIB};
use crate::report::pack::{WholeModelEntry, WholeModelRank, WholeModelReport};
use crate::search::constraints::ConstraintReport;
use crate::search::RankMetric;
use crate::shapes::Candidate;

/// The report for GPU `g`, or `None` when no candidate is a whole model.
pub fn report(
    candidates: &[Candidate],
    latency: &Latencies,
    constraints: &[ConstraintReport],
    profile: &Gpu,
    g: usize,
    rank_by: RankMetric,
) -> Result<Option<WholeModelReport>> {
    if !candidates.iter().any(|c| model::figures(&c.shape).is_some()) {
        return Ok(None);
    }
    let gpu = profile.step_throughputs()?;
    let mut entries = Vec::new();
    let mut rows = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let Some(figures) = model::figures(&c.shape) else {
            continue;
        };
        let (batch, context) = (c.shape.batch_size, model::context_of(&c.shape));
        let (Some((prefill, decode)), Some(memory_needed_bytes)) = (
            model::steps_on(&c.shape, profile, &gpu, latency.total_ms(i, g))?,
            model::memory_needed(&c.shape, &figures, batch, context),
        ) else {
            continue;
        };
        let fits_memory = profile.memory_gib().map(|m| memory_needed_bytes as f64 <= m * GIB);
        rows.push((
            WholeModelRank {
                rank: 0,
                name: c.name.to_string(),
                precision: c.shape.precision.report_label(),
                decode_ms: decode.total_ms,
                prefill_ms: prefill.total_ms,
                decode_tokens_per_s: model::StepLatency::tokens_per_s(batch, decode.total_ms),
                params: figures.parameters.total,
                loss_estimate: figures.loss_estimate,
                fits_memory,
            },
            constraints[i].passes,
        ));
        entries.push(WholeModelEntry {
            name: c.name.to_string(),
            precision: c.shape.precision.report_label(),
            decode_batch: batch,
            decode_context: context,
            decode,
            prefill,
            memory_needed_bytes,
            fits_memory,
            loss_estimate: figures.loss_estimate,
        });
    }
    if entries.is_empty() {
        return Ok(None);
    }
    // The spec's rank_by where it is a whole-model metric, else decode.
    let whole_rank_by = if rank_by.is_whole_model() {
        rank_by
    } else {
        RankMetric::DecodeMs
    };
    // Stable sorts: ties keep catalog order.
    let ranking = |key: &dyn Fn(&WholeModelRank) -> f64, only_passing: bool| -> Vec<WholeModelRank> {
        let mut list: Vec<WholeModelRank> = rows
            .iter()
            .filter(|(_, passes)| !only_passing || *passes)
            .map(|(r, _)| r.clone())
            .collect();
        list.sort_by(|a, b| key(a).total_cmp(&key(b)));
        for (r, row) in list.iter_mut().enumerate() {
            row.rank = r + 1;
        }
        list
    };
    // Lower loss is better: the front maximizes its negation.
    let decode: Vec<f64> = rows.iter().map(|(r, _)| r.decode_ms).collect();
    let neg_loss: Vec<f64> = rows
        .iter()
        .map(|(r, _)| r.loss_estimate.map_or(f64::NAN, |l| -l))
        .collect();
    let loss_decode_pareto_front = crate::search::pareto_front(&decode, &neg_loss)
        .into_iter()
        .enumerate()
        .map(|(r, i)| WholeModelRank {
            rank: r + 1,
            ..rows[i].0.clone()
        })
        .collect();
    Ok(Some(WholeModelReport {
        candidates: entries,
        loss_decode_pareto_front,
        decode_ms_ranking: ranking(&|r| r.decode_ms, false),
        prefill_ms_ranking: ranking(&|r| r.prefill_ms, false),
        quality_constrained_decode_ranking: ranking(&|r| r.decode_ms, true),
        rank_by: whole_rank_by.name().to_string(),
        constrained_ranking: ranking(
            &|r| {
                let latency = model::StepLatency {
                    prefill_ms: r.prefill_ms,
                    decode_ms: r.decode_ms,
                    decode_tokens_per_s: r.decode_tokens_per_s,
                };
                whole_rank_by.key(r.decode_ms, r.decode_ms, &latency)
            },
            true,
        ),
    }))
}

/// How the whole-model figures were obtained, for the pack.
pub fn notes(candidates: &[Candidate], profiles: &[Gpu]) -> Option<Vec<String>> {
    let first = candidates.iter().find(|c| model::figures(&c.shape).is_some())?;
    // Stacks of layer kinds have a note of their own (below); the Llama
    // decoder's formulas are said only where a dense uniform model uses them.
    let dense = candidates
        .iter()
        .any(|c| !c.shape.arch.is_set() && model::figures(&c.shape).is_some());
    let mut notes = vec![
        "Parameters are exact counts of a Llama-style decoder (bias-free q/k/v/o, gated MLP of three matrices, \
         two RMSNorms per layer, QK-norm weights when on, final norm, embeddings, LM head unless tied); weights and \
         KV cache are bf16."
            .to_string(),
        format!(
            "prefill_ms = num_layers x the layer's predicted total_ms + embedding lookup + LM head for the last token \
             of each sequence. decode_ms = one decode step at the candidate's batch_size with context_len (else \
             seq_len) tokens cached: per kernel the longer of its bytes at a bandwidth and its FLOPs at a throughput \
             (roofline), plus a cost per kernel where fitted. Per GPU: {}.",
            profiles
                .iter()
                .map(|p| format!("{} {}", p.label, p.provenance().decode))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        format!(
            "Memory needed = weights + KV cache of the decode batch and context + one prefill layer's activation \
             peak, against each GPU's memory ({}).",
            profiles
                .iter()
                .map(|p| match p.memory_gib() {
                    Some(m) => format!("{} {} GiB", p.label, (m * 10.0).round() / 10.0),
                    None => format!("{} unknown", p.label),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if !dense {
        notes.drain(..2);
    }
    if candidates.iter().any(|c| c.shape.arch.is_set()) {
        notes.push(
            "Candidates with `experts`, `layer_pattern` or `kv_lora_rank` are stacks of layer kinds (nas_core::stack, \
             as a Hugging Face config is read): their parameters (total, and `active` for a mixture: all but the \
             routed experts a token does not select), weights (all experts resident, bf16), KV cache (sliding layers \
             capped at their window, latent attention caching kv_lora_rank + rope_head_dim values per token and \
             layer), memory need, prefill and decode come from the stack, kind by kind; their total_ms is the layer \
             models' time of one dense stand-in layer (the width a token passes through: top_k x expert_ffn_dim + \
             shared experts; latent heads at head_dim + rope_head_dim). Routing is assumed balanced."
                .to_string(),
        );
        if !dense {
            notes.push(format!(
                "decode_ms = one decode step at the candidate's batch_size with context_len (else seq_len) tokens \
                 cached, summed over the stack's layers; prefill_ms = the whole prompt through every layer, the \
                 embedding lookup, the final norm and the LM head for the last token of each sequence. The dense \
                 kernels per GPU: {}.",
                profiles
                    .iter()
                    .map(|p| format!("{} {}", p.label, p.provenance().decode))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        let moe = candidates.iter().any(|c| c.shape.arch.experts.is_some());
        let mla = candidates.iter().any(|c| c.shape.arch.kv_lora_rank.is_some());
        for p in profiles {
            let mut sources = Vec::new();
            if moe {
                sources.push(format!("routed experts: {}", crate::cost::moe::moe_source(p)));
            }
            if mla {
                sources.push(format!("latent attention: {}", crate::cost::mla::mla_source(p)));
            }
            if !sources.is_empty() {
                notes.push(format!("{}: {}.", p.label, sources.join("; ")));
            }
        }
    }
    if candidates.iter().any(|c| c.shape.arch.experts.is_some()) {
        notes.push(format!("Mixtures of experts: {}.", crate::stack::report::MOE_LOSS_NOTE));
    }
    if candidates.iter().any(|c| c.shape.model.training_tokens.is_some()) {
        notes.push(first.shape.model.loss_fit.describe());
    }
    Some(notes)
}
