//! Tensor and expert parallelism of a whole [`ModelStack`] (Hugging Face
//! configs: mixed layer kinds, MoE, latent attention).
//!
//! One GPU's share is itself a stack, so parameters, memory and latency
//! come from the stack's own functions:
//! - standard attention: `heads / tp` query heads, KV heads divided or
//!   replicated as in [`super::shard`]; latent attention: `heads / tp` heads,
//!   the low-rank down-projections (q and kv) replicated, as vLLM shards it;
//! - dense MLPs and shared experts: `ffn / tp`;
//! - routed experts: with `ep = 1` every expert's FFN is split over the
//!   group (`expert_ffn / tp`); with `ep = tp` each GPU holds
//!   `experts / ep` whole experts and computes the rows routed to them (the
//!   same rows per expert, `tokens * top_k / experts`, as on one GPU);
//! - the vocabulary: `ceil(vocab / tp)` rows of the embedding and LM head.
//!
//! Collectives per layer: an all-reduce of the residual stream after the
//! attention and one after the MLP; under expert parallelism the MLP's
//! all-reduce is replaced by an all-to-all that dispatches each GPU's
//! routed rows to the experts' GPUs and one that combines them back.

use serde::Serialize;

use super::{Collective, CollectiveModel, EMBEDDING_ALL_REDUCE, LAYER_ALL_REDUCE, LOGITS_ALL_GATHER, MAX_TP};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{BYTES_PER_VALUE, GIB};
use crate::stack::{params, Attention, Mlp, ModelStack, StackLatency, StackWorkload};

/// Name of the expert-parallel all-to-all in a step's breakdown.
pub const EXPERT_ALL_TO_ALL: &str = "ep_all_to_all";

/// How a stack is spread over one group of GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// GPUs the attention, dense MLPs and vocabulary are split over.
    pub tp: u64,
    /// 1 (experts split by FFN over the `tp` GPUs) or `tp` (experts spread whole).
    pub ep: u64,
}

fn problem(field: &str, message: String) -> Error {
    Error::Spec(format!("{field}: {message}"))
}

/// One GPU's share of `stack` under `deployment`, or which size does not divide.
pub fn shard_stack(stack: &ModelStack, deployment: Deployment) -> Result<ModelStack> {
    let Deployment { tp, ep } = deployment;
    if tp == 0 || tp > MAX_TP {
        return Err(problem("tp", format!("`tp` = {tp} must be between 1 and {MAX_TP}")));
    }
    if ep != 1 && ep != tp {
        return Err(problem(
            "ep",
            format!("`ep` = {ep} must be 1 (experts split by FFN) or equal `tp` = {tp} (experts spread whole over the group)"),
        ));
    }
    if ep > 1 && !stack.is_moe() {
        return Err(problem(
            "ep",
            format!("`ep` = {ep} needs a mixture of experts; this model has none"),
        ));
    }
    let divide = |field: &str, value: u64, by: u64| {
        if value % by == 0 {
            Ok(value / by)
        } else {
            Err(problem(field, format!("`{field}` = {value} does not divide by {by}")))
        }
    };
    let mut out = stack.clone();
    out.vocab = stack.vocab.div_ceil(tp);
    for kind in &mut out.kinds {
        match &mut kind.attention {
            Attention::Standard(a) => {
                a.heads = divide("num_attention_heads", a.heads, tp)?;
                a.kv_heads = if a.kv_heads >= tp {
                    divide("num_key_value_heads", a.kv_heads, tp)?
                } else if tp % a.kv_heads == 0 {
                    1
                } else {
                    return Err(problem(
                        "num_key_value_heads",
                        format!(
                            "`num_key_value_heads` = {} neither divides by tp = {tp} nor divides it",
                            a.kv_heads
                        ),
                    ));
                };
            }
            Attention::Latent(a) => a.heads = divide("num_attention_heads", a.heads, tp)?,
        }
        match &mut kind.mlp {
            Mlp::Dense(m) => m.ffn = divide("intermediate_size", m.ffn, tp)?,
            Mlp::Moe(m) => {
                m.shared_ffn = if m.shared_ffn > 0 {
                    divide("shared_expert_intermediate_size", m.shared_ffn, tp)?
                } else {
                    0
                };
                if ep > 1 {
                    let local = divide("num_experts", m.experts, ep)?;
                    m.experts = local;
                    m.top_k = m.top_k.min(local);
                } else {
                    m.expert_ffn = divide("moe_intermediate_size", m.expert_ffn, tp)?;
                }
            }
        }
    }
    Ok(out)
}

/// What `nas predict --tp N [--ep N]` reports for a Hugging Face config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackParallelFigures {
    pub tp: u64,
    pub ep: u64,
    pub weight_bytes_per_gpu: u64,
    pub kv_cache_bytes_per_token_per_gpu: u64,
    pub memory_needed_bytes_per_gpu: u64,
    pub fits_per_gpu: Option<bool>,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// One GPU's kernels with the collectives (`tp_*`, `ep_all_to_all`).
    pub prefill_per_kernel: std::collections::BTreeMap<String, f64>,
    pub decode_per_kernel: std::collections::BTreeMap<String, f64>,
    pub prefill_collective_share: f64,
    pub decode_collective_share: f64,
    pub collectives_source: String,
}

/// `stack` on a group of `deployment.tp` GPUs of `gpu`'s kind at `w`.
pub fn stack_figures(
    stack: &ModelStack,
    gpu: &Gpu,
    w: &StackWorkload,
    deployment: Deployment,
) -> Result<StackParallelFigures> {
    let share = shard_stack(stack, deployment)?;
    let links = CollectiveModel::for_gpu(&gpu.key, deployment.tp)?;
    let time = crate::stack::latency::predict(&share, gpu, w)?;
    // Under expert parallelism the share's router covers only the local
    // experts; every GPU holds the whole router (hidden x experts).
    let router = replicated_router_params(stack, &share) * BYTES_PER_VALUE;
    let counts = params::count(&share);
    let needed = params::memory_needed(&share, w) + router;
    let (prefill_per_kernel, prefill_share) = with_collectives(
        stack,
        &time,
        &links,
        deployment,
        w.batch * w.seq_len,
        w.batch,
        Step::Prefill,
    );
    let (decode_per_kernel, decode_share) =
        with_collectives(stack, &time, &links, deployment, w.batch, w.batch, Step::Decode);
    Ok(StackParallelFigures {
        tp: deployment.tp,
        ep: deployment.ep,
        weight_bytes_per_gpu: params::weight_bytes(&counts) + router,
        kv_cache_bytes_per_token_per_gpu: params::kv_cache(&share, w.context).bytes_per_token,
        memory_needed_bytes_per_gpu: needed,
        fits_per_gpu: gpu.memory_gib().map(|gib| needed as f64 <= gib * GIB),
        prefill_ms: prefill_per_kernel.values().sum(),
        decode_ms: decode_per_kernel.values().sum(),
        prefill_per_kernel,
        decode_per_kernel,
        prefill_collective_share: prefill_share,
        decode_collective_share: decode_share,
        collectives_source: links.source.into_owned(),
    })
}

/// Router parameters every GPU holds beyond what `share`'s (local) routers count.
fn replicated_router_params(stack: &ModelStack, share: &ModelStack) -> u64 {
    stack
        .layers
        .iter()
        .map(|&k| match (&stack.kinds[k].mlp, &share.kinds[k].mlp) {
            (Mlp::Moe(full), Mlp::Moe(local)) => stack.hidden * (full.experts - local.experts),
            _ => 0,
        })
        .sum()
}

#[derive(Clone, Copy, PartialEq)]
enum Step {
    Prefill,
    Decode,
}

/// The step's kernels plus its collectives, and the collectives' share.
fn with_collectives(
    stack: &ModelStack,
    time: &StackLatency,
    links: &CollectiveModel,
    deployment: Deployment,
    rows: u64,
    logit_rows: u64,
    step: Step,
) -> (std::collections::BTreeMap<String, f64>, f64) {
    let mut kernels = match step {
        Step::Prefill => time.prefill_per_kernel.clone(),
        Step::Decode => time.decode_per_kernel.clone(),
    };
    if deployment.tp <= 1 {
        return (kernels, 0.0);
    }
    let v = BYTES_PER_VALUE as f64;
    let residual = v * rows as f64 * stack.hidden as f64;
    let mut layer_all_reduces = 0.0;
    let mut all_to_all = 0.0;
    for &k in &stack.layers {
        layer_all_reduces += links.ms(Collective::AllReduce, residual);
        match (&stack.kinds[k].mlp, deployment.ep > 1) {
            (Mlp::Moe(m), true) => {
                // Dispatch and combine: each GPU's share of the routed rows, both ways.
                let routed = v * (rows as f64 / deployment.ep as f64) * m.top_k as f64 * stack.hidden as f64;
                all_to_all += 2.0 * links.ms(Collective::AllToAll, routed);
            }
            _ => layer_all_reduces += links.ms(Collective::AllReduce, residual),
        }
    }
    let logits = v * logit_rows as f64 * stack.vocab as f64;
    let added = [
        (LAYER_ALL_REDUCE, layer_all_reduces),
        (EXPERT_ALL_TO_ALL, all_to_all),
        (EMBEDDING_ALL_REDUCE, links.ms(Collective::AllReduce, residual)),
        (LOGITS_ALL_GATHER, links.ms(Collective::AllGather, logits)),
    ];
    let collectives: f64 = added.iter().map(|(_, ms)| ms).sum();
    for (name, ms) in added {
        if ms > 0.0 {
            kernels.insert(name.to_string(), ms);
        }
    }
    let total: f64 = kernels.values().sum();
    (kernels, if total > 0.0 { collectives / total } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::registry::{GpuTarget, Registry};
    use crate::stack::hf;

    fn config(text: &str) -> ModelStack {
        hf::from_config(&serde_json::from_str(text).unwrap(), "test")
            .unwrap()
            .stack
    }

    /// Mixtral-8x7B's published shape (config.json of mistralai/Mixtral-8x7B-v0.1).
    fn mixtral() -> ModelStack {
        config(
            r#"{"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
                "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
                "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000,
                "tie_word_embeddings": false}"#,
        )
    }

    #[test]
    fn experts_split_by_ffn_or_spread_whole_hold_the_same_expert_bytes() {
        let full = params::count(&mixtral());
        let by_ffn = params::count(&shard_stack(&mixtral(), Deployment { tp: 2, ep: 1 }).unwrap());
        let spread_share = shard_stack(&mixtral(), Deployment { tp: 2, ep: 2 }).unwrap();
        let spread = params::count(&spread_share);
        // Half the experts or half of every expert; the router (4096 x 8 per layer) is whole on every GPU.
        let router = replicated_router_params(&mixtral(), &spread_share);
        assert_eq!(router, 32 * 4096 * 4);
        assert_eq!(by_ffn.total, spread.total + router);
        assert!(by_ffn.total * 2 > full.total && by_ffn.total * 2 < full.total + full.total / 100);
        let err = shard_stack(&mixtral(), Deployment { tp: 2, ep: 4 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("`ep` = 4 must be 1"), "{err}");
        let err = shard_stack(&mixtral(), Deployment { tp: 16, ep: 16 })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`num_attention_heads` = 32 does not divide by 16") || err.contains("num_experts"),
            "{err}"
        );
    }

    #[test]
    fn expert_parallel_steps_use_all_to_all_instead_of_the_mlp_all_reduce() {
        let gpu = Registry::builtin().resolve(&GpuTarget::builtin_owned("h200")).unwrap();
        let w = StackWorkload {
            seq_len: 1024,
            batch: 16,
            context: 4096,
        };
        let one = stack_figures(&mixtral(), &gpu, &w, Deployment { tp: 1, ep: 1 }).unwrap();
        assert_eq!(one.decode_collective_share, 0.0);
        assert!(one.fits_per_gpu == Some(true), "93 GB of weights fit one H200");
        assert_eq!(one.weight_bytes_per_gpu, 2 * 46_702_792_704);
        let tp = stack_figures(&mixtral(), &gpu, &w, Deployment { tp: 4, ep: 1 }).unwrap();
        let ep = stack_figures(&mixtral(), &gpu, &w, Deployment { tp: 4, ep: 4 }).unwrap();
        assert!(
            tp.decode_per_kernel.contains_key(LAYER_ALL_REDUCE)
                && !tp.decode_per_kernel.contains_key(EXPERT_ALL_TO_ALL)
        );
        assert!(ep.decode_per_kernel.contains_key(EXPERT_ALL_TO_ALL));
        assert!(
            tp.decode_ms < one.decode_ms,
            "four GPUs read a quarter of the weights each"
        );
        assert!(tp.collectives_source.contains("not measured"));
    }
}
