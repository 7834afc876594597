//! Exact parameter counts of a stack, as transformers counts them (every
//! weight and bias, tied embeddings once, buffers not at all), the active
//! parameters of a mixture of experts, weight and KV-cache bytes, and the
//! memory a serving GPU needs.
//!
//! Counts saturate rather than wrap; [`super::ModelStack::validate`] refuses
//! sizes whose total comes near `u64::MAX`.

use serde::Serialize;

use super::{Attention, LayerKind, Mlp, ModelStack, QkNorm};
use crate::model::BYTES_PER_VALUE;

fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |acc, &f| acc.saturating_mul(f))
}

fn sum(terms: &[u64]) -> u64 {
    terms.iter().fold(0u64, |acc, &t| acc.saturating_add(t))
}

/// `x` if `on`, else 0: a bias vector that may or may not be there.
fn bias(on: bool, width: u64) -> u64 {
    if on {
        width
    } else {
        0
    }
}

/// The parameters of one layer kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KindParams {
    /// [`LayerKind::label`].
    pub kind: String,
    /// Layers of this kind.
    pub layers: u64,
    /// Projections, their biases, QK-norm or latent norms, sinks.
    pub attention: u64,
    /// The MLP: all experts, shared experts and router for a mixture.
    pub mlp: u64,
    /// The norms over the hidden width.
    pub norms: u64,
    pub per_layer: u64,
    /// What one token touches: `per_layer` less the routed experts it does not select.
    pub active_per_layer: u64,
}

/// Exact parameter counts of a whole stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackParams {
    /// Token embeddings: vocab x hidden.
    pub embedding: u64,
    /// Learned position embeddings (GPT-2): positions x hidden; 0 with RoPE.
    pub position_embedding: u64,
    /// 0 when tied to the embedding (transformers counts a tied matrix once).
    pub lm_head: u64,
    pub final_norm: u64,
    pub per_kind: Vec<KindParams>,
    pub total: u64,
    /// `total` less, in every MoE layer, the routed experts a token does not
    /// select: `(experts - top_k)` experts' weights (equal to `total` for a
    /// dense model). Shared experts, routers and embeddings count.
    pub active: u64,
    /// Everything but the token embeddings and the LM head.
    pub non_embedding: u64,
}

/// Attention parameters of one layer.
pub fn attention_params(hidden: u64, attention: &Attention) -> u64 {
    let d = hidden;
    match attention {
        Attention::Standard(a) => {
            let q = mul(&[a.heads, a.head_dim]);
            let kv = mul(&[a.kv_heads, a.head_dim]);
            let qk_norm = match a.qk_norm {
                QkNorm::None => 0,
                QkNorm::PerHead => mul(&[2, a.head_dim]),
                QkNorm::WholeProjection => q.saturating_add(kv),
            };
            sum(&[
                mul(&[d, q]),
                bias(a.q_bias, q),
                mul(&[2, d, kv]),
                bias(a.k_bias, kv),
                bias(a.v_bias, kv),
                mul(&[q, d]),
                bias(a.o_bias, d),
                qk_norm,
                bias(a.sinks, a.heads),
            ])
        }
        Attention::Latent(a) => {
            let q_out = mul(&[a.heads, a.qk_head_dim()]);
            let q = match a.q_lora_rank {
                // q_a_proj (+ bias), q_a_layernorm, q_b_proj
                Some(r) => sum(&[mul(&[d, r]), bias(a.bias, r), r, mul(&[r, q_out])]),
                None => mul(&[d, q_out]),
            };
            let kv_a = a.kv_lora_rank.saturating_add(a.qk_rope_head_dim);
            let kv_b = mul(&[a.heads, a.qk_nope_head_dim.saturating_add(a.v_head_dim)]);
            sum(&[
                q,
                mul(&[d, kv_a]),
                bias(a.bias, kv_a),
                a.kv_lora_rank, // kv_a_layernorm
                mul(&[a.kv_lora_rank, kv_b]),
                mul(&[a.heads, a.v_head_dim, d]),
                bias(a.bias, d),
            ])
        }
    }
}

/// One routed expert of a mixture: gate, up and down (and their biases).
fn expert_params(hidden: u64, ffn: u64, with_bias: bool) -> u64 {
    sum(&[
        mul(&[3, hidden, ffn]),
        bias(with_bias, mul(&[2, ffn])),
        bias(with_bias, hidden),
    ])
}

/// MLP parameters of one layer, and those a token does not touch.
pub fn mlp_params(hidden: u64, mlp: &Mlp) -> (u64, u64) {
    let d = hidden;
    match mlp {
        Mlp::Dense(m) if m.gated => (
            sum(&[mul(&[3, d, m.ffn]), bias(m.bias, mul(&[2, m.ffn])), bias(m.bias, d)]),
            0,
        ),
        Mlp::Dense(m) => (sum(&[mul(&[2, d, m.ffn]), bias(m.bias, m.ffn), bias(m.bias, d)]), 0),
        Mlp::Moe(m) => {
            let expert = expert_params(d, m.expert_ffn, m.expert_bias);
            let total = sum(&[
                mul(&[m.experts, d]),
                bias(m.router_bias, m.experts),
                mul(&[m.experts, expert]),
                mul(&[3, d, m.shared_ffn]),
                bias(m.shared_expert_gate, d),
            ]);
            let unselected = mul(&[m.experts.saturating_sub(m.top_k), expert]);
            (total, unselected)
        }
    }
}

/// Parameters of one layer of `kind`: (attention, mlp, norms, not touched by a token).
pub fn kind_params(hidden: u64, kind: &LayerKind) -> (u64, u64, u64, u64) {
    let attention = attention_params(hidden, &kind.attention);
    let (mlp, unselected) = mlp_params(hidden, &kind.mlp);
    let norms = mul(&[kind.norms, kind.norm.params(hidden)]);
    (attention, mlp, norms, unselected)
}

/// Every count of a stack.
pub fn count(stack: &ModelStack) -> StackParams {
    let d = stack.hidden;
    let embedding = mul(&[stack.vocab, d]);
    let position_embedding = stack.position_embeddings.map_or(0, |p| mul(&[p, d]));
    let lm_head = if stack.tie_embeddings { 0 } else { embedding };
    let final_norm = stack.final_norm.params(d);
    let counts = stack.layer_counts();
    let per_kind: Vec<KindParams> = stack
        .kinds
        .iter()
        .zip(&counts)
        .map(|(kind, &layers)| {
            let (attention, mlp, norms, unselected) = kind_params(d, kind);
            let per_layer = sum(&[attention, mlp, norms]);
            KindParams {
                kind: kind.label(),
                layers,
                attention,
                mlp,
                norms,
                per_layer,
                active_per_layer: per_layer.saturating_sub(unselected),
            }
        })
        .collect();
    let layers_total = per_kind
        .iter()
        .fold(0u64, |acc, k| acc.saturating_add(mul(&[k.layers, k.per_layer])));
    let layers_active = per_kind
        .iter()
        .fold(0u64, |acc, k| acc.saturating_add(mul(&[k.layers, k.active_per_layer])));
    let non_embedding = sum(&[layers_total, position_embedding, final_norm]);
    let outside = sum(&[embedding, lm_head]);
    StackParams {
        embedding,
        position_embedding,
        lm_head,
        final_norm,
        per_kind,
        total: non_embedding.saturating_add(outside),
        active: sum(&[layers_active, position_embedding, final_norm, outside]),
        non_embedding,
    }
}

/// Bytes of bf16 weights for `params` parameters, all experts resident: the
/// one place weight bytes are computed (quantized weights plug in here).
pub fn weight_bytes(params: &StackParams) -> u64 {
    params.total.saturating_mul(BYTES_PER_VALUE)
}

/// The KV cache of the layers of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KvCacheKind {
    pub kind: String,
    pub layers: u64,
    /// Bytes one token adds to one layer: 2 (K and V) x kv heads x head_dim x
    /// 2 (bf16) for standard attention; `(kv_lora_rank + qk_rope_head_dim)`
    /// x 2 for latent attention (the compressed latent and the RoPE key).
    pub bytes_per_token_per_layer: u64,
    /// Tokens the cache holds at the context: the window caps a sliding layer.
    pub cached_tokens: u64,
    /// Bytes of one sequence's cache in all layers of this kind, at the context.
    pub bytes_per_sequence: u64,
}

/// The KV cache of a stack for one sequence of `context` tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KvCache {
    pub context: u64,
    pub per_kind: Vec<KvCacheKind>,
    /// Bytes one token adds to every layer, before any window caps it.
    pub bytes_per_token: u64,
    /// Bytes of one sequence's cache at the context, windows applied.
    pub bytes_per_sequence: u64,
}

/// KV-cache bytes one token adds to one layer of `kind`.
pub fn kv_bytes_per_token(kind: &LayerKind) -> u64 {
    match &kind.attention {
        Attention::Standard(a) => mul(&[2, a.kv_heads, a.head_dim, BYTES_PER_VALUE]),
        Attention::Latent(a) => mul(&[a.kv_lora_rank.saturating_add(a.qk_rope_head_dim), BYTES_PER_VALUE]),
    }
}

/// Tokens a layer of `kind` keeps at `context`: its window caps it.
pub fn cached_tokens(kind: &LayerKind, context: u64) -> u64 {
    match kind.attention.window() {
        Some(w) => w.min(context),
        None => context,
    }
}

/// The KV cache of one sequence of `context` tokens.
pub fn kv_cache(stack: &ModelStack, context: u64) -> KvCache {
    let counts = stack.layer_counts();
    let per_kind: Vec<KvCacheKind> = stack
        .kinds
        .iter()
        .zip(&counts)
        .map(|(kind, &layers)| {
            let per_token = kv_bytes_per_token(kind);
            let cached = cached_tokens(kind, context);
            KvCacheKind {
                kind: kind.label(),
                layers,
                bytes_per_token_per_layer: per_token,
                cached_tokens: cached,
                bytes_per_sequence: mul(&[layers, per_token, cached]),
            }
        })
        .collect();
    let bytes_per_token = per_kind.iter().fold(0u64, |acc, k| {
        acc.saturating_add(mul(&[k.layers, k.bytes_per_token_per_layer]))
    });
    let bytes_per_sequence = per_kind
        .iter()
        .fold(0u64, |acc, k| acc.saturating_add(k.bytes_per_sequence));
    KvCache {
        context,
        per_kind,
        bytes_per_token,
        bytes_per_sequence,
    }
}

/// Bytes a serving GPU needs for `batch` sequences of `context` tokens:
/// weights (all experts), the KV cache, and the activation peak of one
/// prefill layer at the workload (the widest kind's, as
/// [`crate::model::activation_peak_bytes`] counts it on the kind's dense
/// stand-in: a mixture counts the width a token passes through,
/// `top_k * expert_ffn + shared_ffn`).
pub fn memory_needed(stack: &ModelStack, workload: &super::StackWorkload) -> u64 {
    let weights = weight_bytes(&count(stack));
    let cache = kv_cache(stack, workload.context)
        .bytes_per_sequence
        .saturating_mul(workload.batch);
    let peak = stack
        .kinds
        .iter()
        .map(|k| crate::model::activation_peak_bytes(&super::latency::stand_in(stack, k, workload)))
        .max()
        .unwrap_or(0);
    sum(&[weights, cache, peak])
}

/// Whether [`memory_needed`] fits in `capacity_bytes`.
pub fn fits(stack: &ModelStack, workload: &super::StackWorkload, capacity_bytes: f64) -> bool {
    (memory_needed(stack, workload) as f64) <= capacity_bytes
}
