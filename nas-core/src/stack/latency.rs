//! Prefill and decode of a stack on a GPU: the sum over its layers of each
//! kind's time, plus the embedding, the final norm and the LM head.
//!
//! Where each kind's time comes from:
//! - standard attention and dense MLPs: the GPU's own cost models, through a
//!   dense stand-in [`LayerShape`] of the kind ([`stand_in`]): the prefill
//!   layer model ([`crate::gpu::Latencies`]: seed or kernel-aware) and the
//!   decode kernels ([`crate::model::decode_kernel_ms`]); a sliding window
//!   caps attention work and cache reads as it does for today's shapes;
//! - an ungated MLP of width `f` (GPT-2) costs as the gated MLP of width
//!   `2f/3`: the same weights and FLOPs (`2·d·f = 3·d·(2f/3)`);
//! - a mixture of experts: [`crate::cost::moe::moe_mlp_ms`] for the routed
//!   experts (balanced routing), the dense MLP kernels at `shared_ffn` for
//!   shared experts;
//! - latent attention: [`crate::cost::mla::mla_prefill_ms`] (expanded form)
//!   and [`crate::cost::mla::mla_decode_ms`] (absorbed form);
//! - biases: one elementwise pass (read and write) over each biased output at
//!   the GPU's memory bandwidth, no launch of its own (compiled code fuses
//!   them into neighbouring kernels): a small upper estimate;
//! - norms beyond the two a layer model has (Gemma-2/3's four): each as much
//!   as the layer model's pre-attention norm (prefill) or one elementwise
//!   pass over the hidden width (decode);
//! - attention sinks and Qwen's shared-expert gate: not costed (a scalar per
//!   head in the softmax; a hidden x 1 product);
//! - the final norm: one elementwise pass over the hidden width (today's
//!   whole-model figures leave it out; the stack adds it as `final_norm`).
//!
//! The MoE and MLA models are fitted where the GPU's profile has their
//! sections (`moe_model`, `mla_model`; the H200's measured, the H100's
//! transferred) and spec-sheet rooflines elsewhere: [`StackLatency::sources`]
//! says which, and roofline kernels are listed in [`StackLatency::estimated`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Attention, LayerKind, Mlp, ModelStack};
use crate::cost::mla::{mla_decode_ms, mla_is_fitted, mla_prefill_ms, mla_source, MlaShape};
use crate::cost::moe::{moe_is_fitted, moe_mlp_ms, moe_source, MoeMlpShape, Phase};
use crate::cost::CostModel;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Latencies};
use crate::model::{self, ModelDims, StepThroughputs, BYTES_PER_VALUE, DECODE_KERNELS};
use crate::shapes::{LayerShape, ShapeField, MAX_DIM};

/// What a stack is evaluated at: the prompt of a prefill (`seq_len` tokens
/// for each of `batch` sequences) and one decode step (`batch` sequences
/// with `context` tokens in their caches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StackWorkload {
    pub seq_len: u64,
    pub batch: u64,
    pub context: u64,
}

/// One kind's time per layer, kernel by kernel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindLatency {
    pub kind: String,
    pub layers: u64,
    pub prefill_ms_per_layer: f64,
    pub decode_ms_per_layer: f64,
    pub prefill_per_kernel: BTreeMap<String, f64>,
    pub decode_per_kernel: BTreeMap<String, f64>,
}

/// A stack's prefill and decode step on one GPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackLatency {
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Every kernel summed over the layers, plus `embedding`, `final_norm`, `lm_head`.
    pub prefill_per_kernel: BTreeMap<String, f64>,
    pub decode_per_kernel: BTreeMap<String, f64>,
    pub per_kind: Vec<KindLatency>,
    /// Kernels whose time is a spec-sheet estimate, not a measured model.
    pub estimated: Vec<String>,
    /// Where the MoE (`moe`) and latent-attention (`mla`) kernels' times come
    /// from, for the models this stack uses.
    pub sources: BTreeMap<&'static str, String>,
}

/// The dense layer that stands in for `kind` in the layer and decode
/// models: its attention (latent attention: its heads at the q/k head
/// width), the width a token passes through its MLP (ungated: `2f/3`; a
/// mixture: `top_k * expert_ffn + shared_ffn`), QK-norm when it has one, at
/// the workload, with the stack's vocabulary.
pub fn stand_in(stack: &ModelStack, kind: &LayerKind, w: &StackWorkload) -> LayerShape {
    let (heads, kv_heads, head_dim, window, qk_norm) = match &kind.attention {
        Attention::Standard(a) => (
            a.heads,
            a.kv_heads,
            a.head_dim,
            a.window,
            a.qk_norm != super::QkNorm::None,
        ),
        Attention::Latent(a) => (a.heads, a.heads, a.qk_head_dim(), None, false),
    };
    LayerShape {
        hidden_dim: stack.hidden,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        ffn_dim: mlp_width(&kind.mlp),
        seq_len: w.seq_len,
        batch_size: w.batch,
        use_qk_norm: qk_norm,
        window_size: window,
        precision: crate::precision::Precision::BF16,
        arch: crate::arch::Architecture::NONE,
        model: ModelDims {
            num_layers: Some((stack.layers.len() as u64).max(1)),
            vocab_size: Some(stack.vocab),
            tie_embeddings: Some(stack.tie_embeddings),
            context_len: Some(w.context),
            ..ModelDims::NONE
        },
    }
}

/// The dense gated width that costs as `mlp`.
fn mlp_width(mlp: &Mlp) -> u64 {
    let width = match mlp {
        Mlp::Dense(m) if m.gated => m.ffn,
        Mlp::Dense(m) => (m.ffn.saturating_mul(2).saturating_add(1) / 3).max(1),
        Mlp::Moe(m) => m.top_k.saturating_mul(m.expert_ffn).saturating_add(m.shared_ffn),
    };
    width.min(MAX_DIM)
}

/// Which half of a layer a kernel belongs to, by the shape fields it reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    Attention,
    Mlp,
    /// Norms, residual adds, launches: kept for every kind.
    Common,
}

fn half_of(fields: &[ShapeField]) -> Half {
    use ShapeField::*;
    if fields.contains(&FfnDim) {
        Half::Mlp
    } else if fields
        .iter()
        .any(|f| matches!(f, NumHeads | NumKvHeads | HeadDim | WindowSize))
    {
        Half::Attention
    } else {
        Half::Common
    }
}

/// The decode kernel `k`'s half: `norms` (norms, residuals, RoPE, the K/V
/// write) is common; the projections and attention are the attention half.
fn decode_half(k: usize) -> Half {
    match half_of(model::decode_kernel_fields(k)) {
        Half::Attention if k == 0 => Half::Common,
        h => h,
    }
}

fn mla_shape(hidden: u64, a: &super::LatentAttention) -> MlaShape {
    MlaShape {
        hidden,
        heads: a.heads,
        q_lora_rank: a.q_lora_rank,
        kv_lora_rank: a.kv_lora_rank,
        qk_nope_head_dim: a.qk_nope_head_dim,
        qk_rope_head_dim: a.qk_rope_head_dim,
        v_head_dim: a.v_head_dim,
    }
}

/// Widths of the biased outputs of one layer, per token, and per routed row
/// (a mixture's experts see `top_k` rows per token).
fn bias_widths(hidden: u64, kind: &LayerKind) -> (u64, u64) {
    let on = |b: bool, w: u64| if b { w } else { 0 };
    let attention = match &kind.attention {
        Attention::Standard(a) => {
            let (q, kv) = (a.heads * a.head_dim, a.kv_heads * a.head_dim);
            on(a.q_bias, q) + on(a.k_bias, kv) + on(a.v_bias, kv) + on(a.o_bias, hidden)
        }
        Attention::Latent(a) => {
            let q = a.q_lora_rank.unwrap_or(0);
            on(a.bias, q + a.kv_lora_rank + a.qk_rope_head_dim + hidden)
        }
    };
    match &kind.mlp {
        Mlp::Dense(m) if m.gated => (attention + on(m.bias, 2 * m.ffn + hidden), 0),
        Mlp::Dense(m) => (attention + on(m.bias, m.ffn + hidden), 0),
        Mlp::Moe(m) => (
            attention + on(m.router_bias, m.experts),
            on(m.expert_bias, 2 * m.expert_ffn + hidden),
        ),
    }
}

/// Milliseconds of the bias adds of one layer over `tokens` tokens.
fn bias_ms(step: &StepThroughputs, hidden: u64, kind: &LayerKind, tokens: u64) -> f64 {
    let (per_token, per_row) = bias_widths(hidden, kind);
    let rows = match &kind.mlp {
        Mlp::Moe(m) => tokens as f64 * m.top_k as f64,
        Mlp::Dense(_) => 0.0,
    };
    let values = tokens as f64 * per_token as f64 + rows * per_row as f64;
    2.0 * BYTES_PER_VALUE as f64 * values / (step.bandwidth_gbps * 1e9) * 1e3
}

fn bad_kind(kind: &LayerKind, problem: impl std::fmt::Display) -> Error {
    Error::Spec(format!(
        "layer kind `{}`: its dense stand-in at this workload is not a valid layer: {problem}",
        kind.label()
    ))
}

/// Prefill and decode of `stack` on `gpu` at `w`.
pub fn predict(stack: &ModelStack, gpu: &Gpu, w: &StackWorkload) -> Result<StackLatency> {
    let step = gpu.step_throughputs()?;
    let counts = stack.layer_counts();
    // Stand-ins: one per kind, then one per kind with shared experts.
    let mut shapes: Vec<LayerShape> = Vec::new();
    let mut shared_at: Vec<Option<usize>> = Vec::new();
    for kind in &stack.kinds {
        let shape = stand_in(stack, kind, w);
        shape.validate().map_err(|p| bad_kind(kind, p))?;
        shapes.push(shape);
    }
    for (kind, base) in stack.kinds.iter().zip(shapes.clone()) {
        match &kind.mlp {
            Mlp::Moe(m) if m.shared_ffn > 0 => {
                let shared = LayerShape {
                    ffn_dim: m.shared_ffn,
                    ..base
                };
                shared.validate().map_err(|p| bad_kind(kind, p))?;
                shared_at.push(Some(shapes.len()));
                shapes.push(shared);
            }
            _ => shared_at.push(None),
        }
    }
    let latencies = Latencies::new(std::slice::from_ref(gpu), &shapes);
    let layer_model = gpu.layer_model();
    let mut estimated: Vec<String> = Vec::new();
    let mut sources: BTreeMap<&'static str, String> = BTreeMap::new();
    let (moe_fitted, mla_fitted) = (moe_is_fitted(gpu), mla_is_fitted(gpu));
    let mut per_kind = Vec::with_capacity(stack.kinds.len());
    for (i, kind) in stack.kinds.iter().enumerate() {
        let shape = &shapes[i];
        let kernels = latencies.kernels(i, 0);
        let moe = match &kind.mlp {
            Mlp::Moe(m) => Some(m),
            Mlp::Dense(_) => None,
        };
        let latent = match &kind.attention {
            Attention::Latent(a) => Some(mla_shape(stack.hidden, a)),
            Attention::Standard(_) => None,
        };
        let keep = |half: Half| match half {
            Half::Mlp => moe.is_none(),
            Half::Attention => latent.is_none(),
            Half::Common => true,
        };
        if moe.is_some() {
            sources.entry("moe").or_insert_with(|| moe_source(gpu));
        }
        if latent.is_some() {
            sources.entry("mla").or_insert_with(|| mla_source(gpu));
        }
        let mut estimate = |name: &str, fitted: bool| {
            if !fitted && !estimated.iter().any(|e| e == name) {
                estimated.push(name.to_string());
            }
        };

        // Prefill.
        let mut prefill: BTreeMap<String, f64> = BTreeMap::new();
        for (k, (name, ms)) in kernels.named().enumerate() {
            if keep(half_of(layer_model.kernel_fields(k))) {
                *prefill.entry(name.to_string()).or_default() += ms;
            }
        }
        let tokens = w.batch.saturating_mul(w.seq_len);
        if let Some(m) = moe {
            let routed = MoeMlpShape {
                tokens,
                hidden: stack.hidden,
                expert_ffn: m.expert_ffn,
                experts: m.experts,
                top_k: m.top_k,
                imbalance: 1.0,
            };
            for (name, ms) in moe_mlp_ms(gpu, &routed, Phase::Prefill)? {
                *prefill.entry(name.to_string()).or_default() += ms;
                estimate(name, moe_fitted);
            }
            if let Some(s) = shared_at[i] {
                let shared = latencies.kernels(s, 0);
                for (k, (name, ms)) in shared.named().enumerate() {
                    if half_of(layer_model.kernel_fields(k)) == Half::Mlp {
                        *prefill.entry(format!("shared_expert_{name}")).or_default() += ms;
                    }
                }
            }
        }
        if let Some(a) = &latent {
            for (name, ms) in mla_prefill_ms(gpu, a, w.batch, w.seq_len)? {
                *prefill.entry(name.to_string()).or_default() += ms;
                estimate(name, mla_fitted);
            }
        }
        if kind.norms > 2 {
            let norm = kernels.get("pre_attn_rmsnorm");
            prefill.insert("extra_norms".into(), norm * (kind.norms - 2) as f64);
        }
        let biases = bias_ms(&step, stack.hidden, kind, tokens);
        if biases > 0.0 {
            prefill.insert("bias_adds".into(), biases);
        }
        // A kind the layer model covers whole takes its exact total (W * T).
        let whole = moe.is_none() && latent.is_none() && kind.norms <= 2 && biases == 0.0;
        let prefill_ms_per_layer = if whole {
            latencies.total_ms(i, 0)
        } else {
            prefill.values().sum()
        };

        // Decode.
        let mut decode: BTreeMap<String, f64> = BTreeMap::new();
        for (k, name) in DECODE_KERNELS.iter().enumerate().take(7) {
            if keep(decode_half(k)) {
                let ms = model::decode_kernel_ms(shape, &step, w.batch, w.context, k).unwrap_or(0.0);
                decode.insert(name.to_string(), ms);
            }
        }
        if let Some(m) = moe {
            let routed = MoeMlpShape {
                tokens: w.batch,
                hidden: stack.hidden,
                expert_ffn: m.expert_ffn,
                experts: m.experts,
                top_k: m.top_k,
                imbalance: 1.0,
            };
            for (name, ms) in moe_mlp_ms(gpu, &routed, Phase::Decode)? {
                *decode.entry(name.to_string()).or_default() += ms;
                estimate(name, moe_fitted);
            }
            if let Some(s) = shared_at[i] {
                for (k, name) in DECODE_KERNELS.iter().enumerate().take(7) {
                    if decode_half(k) == Half::Mlp {
                        let ms = model::decode_kernel_ms(&shapes[s], &step, w.batch, w.context, k).unwrap_or(0.0);
                        decode.insert(format!("shared_expert_{name}"), ms);
                    }
                }
            }
        }
        if let Some(a) = &latent {
            for (name, ms) in mla_decode_ms(gpu, a, w.batch, w.context)? {
                *decode.entry(name.to_string()).or_default() += ms;
                estimate(name, mla_fitted);
            }
        }
        if kind.norms > 2 {
            let one = step.elementwise_ms(2.0 * BYTES_PER_VALUE as f64 * w.batch as f64 * stack.hidden as f64);
            decode.insert("extra_norms".into(), one * (kind.norms - 2) as f64);
        }
        let biases = bias_ms(&step, stack.hidden, kind, w.batch);
        if biases > 0.0 {
            decode.insert("bias_adds".into(), biases);
        }
        let decode_ms_per_layer = decode.values().sum();
        per_kind.push(KindLatency {
            kind: kind.label(),
            layers: counts[i],
            prefill_ms_per_layer,
            decode_ms_per_layer,
            prefill_per_kernel: prefill,
            decode_per_kernel: decode,
        });
    }

    // The model's own kernels, from the first kind's stand-in (they read
    // only the batch, the hidden width and the vocabulary).
    let first = shapes
        .first()
        .ok_or_else(|| Error::Spec("a stack without layers has no latency".into()))?;
    let outside = model::prefill(first, &step, 0.0)
        .ok_or_else(|| Error::Spec("a stack without a vocabulary has no latency".into()))?;
    let (d, v) = (stack.hidden as f64, BYTES_PER_VALUE as f64);
    let mut prefill_per_kernel: BTreeMap<String, f64> = BTreeMap::new();
    let mut decode_per_kernel: BTreeMap<String, f64> = BTreeMap::new();
    let mut prefill_layers = 0.0;
    for k in &per_kind {
        let n = k.layers as f64;
        prefill_layers += k.prefill_ms_per_layer * n;
        for (name, ms) in &k.prefill_per_kernel {
            *prefill_per_kernel.entry(name.clone()).or_default() += ms * n;
        }
        for (name, ms) in &k.decode_per_kernel {
            *decode_per_kernel.entry(name.clone()).or_default() += ms * n;
        }
    }
    let tokens = (w.batch as f64) * (w.seq_len as f64);
    let embedding = outside.per_kernel.get("embedding").copied().unwrap_or(0.0);
    let lm_head = outside.per_kernel.get("lm_head").copied().unwrap_or(0.0);
    let final_norm = step.elementwise_ms(2.0 * v * tokens * d);
    prefill_per_kernel.insert("embedding".into(), embedding);
    prefill_per_kernel.insert("lm_head".into(), lm_head);
    prefill_per_kernel.insert("final_norm".into(), final_norm);
    let prefill_ms = prefill_layers + embedding + lm_head + final_norm;
    for k in [7, 8] {
        let ms = model::decode_kernel_ms(first, &step, w.batch, w.context, k).unwrap_or(0.0);
        decode_per_kernel.insert(DECODE_KERNELS[k].to_string(), ms);
    }
    decode_per_kernel.insert("final_norm".into(), step.elementwise_ms(2.0 * v * w.batch as f64 * d));
    let decode_ms = decode_per_kernel.values().sum();
    estimated.sort();
    Ok(StackLatency {
        prefill_ms,
        decode_ms,
        prefill_per_kernel,
        decode_per_kernel,
        per_kind,
        estimated,
        sources,
    })
}
