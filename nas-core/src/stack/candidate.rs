//! A candidate shape with mixture-of-experts, layer-pattern or latent
//! fields ([`crate::arch`]) through its stack: the one path its whole-model
//! figures take ([`ModelStack::from_layer_shape`], then this module's
//! neighbours `params.rs` and `latency.rs`). [`crate::model`] hands such
//! shapes here; a dense uniform shape keeps its own, identical, formulas.

use std::borrow::Cow;

use super::params::{self, kind_params};
use super::{latency, Attention, ModelStack, QkNorm, StackWorkload};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::{context_of, Memory, ModelFigures, Parameters, StepTime};
use crate::shapes::LayerShape;

/// The workload a candidate is evaluated at: its own sequence, batch and
/// decode context (`context_len`, else `seq_len`).
pub fn workload(shape: &LayerShape) -> StackWorkload {
    StackWorkload {
        seq_len: shape.seq_len,
        batch: shape.batch_size,
        context: context_of(shape),
    }
}

/// Parameters, memory and loss estimate of a stack candidate; `None` for a
/// plain layer. Per-layer counts are those of its last layer (a mixture's,
/// past any dense first layers), QK-norm weights among the norms as for a
/// dense shape; `active` is set for a mixture. A mixture gets no loss
/// estimate: the scaling laws are fits to dense models
/// ([`super::report::MOE_LOSS_NOTE`]).
pub fn figures(shape: &LayerShape) -> Option<ModelFigures> {
    let stack = ModelStack::from_layer_shape(shape)?;
    let counts = params::count(&stack);
    let last = stack.layers.last().and_then(|&k| stack.kinds.get(k))?;
    let (attention, mlp, norms, _) = kind_params(stack.hidden, last);
    let qk_norm = match &last.attention {
        Attention::Standard(a) if a.qk_norm == QkNorm::PerHead => 2 * a.head_dim,
        _ => 0,
    };
    let moe = stack.is_moe();
    let parameters = Parameters {
        embedding: counts.embedding,
        attention_per_layer: attention.saturating_sub(qk_norm),
        mlp_per_layer: mlp,
        norms_per_layer: norms.saturating_add(qk_norm),
        final_norm: counts.final_norm,
        lm_head: counts.lm_head,
        total: counts.total,
        non_embedding: counts.non_embedding,
        active: moe.then_some(counts.active),
    };
    let w = workload(shape);
    let memory = Memory {
        weight_bytes: params::weight_bytes(&counts),
        kv_cache_bytes_per_token: params::kv_cache(&stack, w.context).bytes_per_token,
        activation_peak_bytes: params::activation_peak_bytes(&stack, &w),
    };
    let loss_estimate = match (moe, shape.model.training_tokens) {
        (false, Some(tokens)) => Some(shape.model.loss_fit.loss(&parameters, tokens)),
        _ => None,
    };
    Some(ModelFigures {
        parameters,
        memory,
        loss_estimate,
    })
}

/// KV-cache bytes of `batch` sequences of `context` tokens, each kind's
/// window capping its own layers, a latent cache at `kv_lora_rank +
/// rope_head_dim` values a token and layer.
pub fn kv_cache_bytes(shape: &LayerShape, batch: u64, context: u64) -> Option<u64> {
    let stack = ModelStack::from_layer_shape(shape)?;
    Some(
        params::kv_cache(&stack, context)
            .bytes_per_sequence
            .saturating_mul(batch),
    )
}

/// Prefill and decode of a stack candidate on `gpu` at its own workload
/// ([`latency::predict`]): the kernels of every layer kind summed over its
/// layers, with the embedding, final norm and LM head; `None` for a plain layer.
pub fn steps(shape: &LayerShape, gpu: &Gpu) -> Result<Option<(StepTime, StepTime)>> {
    let Some(stack) = ModelStack::from_layer_shape(shape) else {
        return Ok(None);
    };
    let time = latency::predict(&stack, gpu, &workload(shape))?;
    let owned = |m: std::collections::BTreeMap<String, f64>| m.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect();
    Ok(Some((
        StepTime {
            total_ms: time.prefill_ms,
            per_kernel: owned(time.prefill_per_kernel),
        },
        StepTime {
            total_ms: time.decode_ms,
            per_kernel: owned(time.decode_per_kernel),
        },
    )))
}

/// The kernels of a stack candidate whose times are spec-sheet estimates on
/// `gpu`, not measured models (empty when every kernel is measured).
pub fn estimated_kernels(shape: &LayerShape, gpu: &Gpu) -> Result<Vec<String>> {
    let Some(stack) = ModelStack::from_layer_shape(shape) else {
        return Ok(Vec::new());
    };
    Ok(latency::predict(&stack, gpu, &workload(shape))?.estimated)
}

/// `stack` with what no count or cost reads blanked: its name and the
/// activations' labels, layer by layer.
fn comparable(stack: &ModelStack) -> (u64, u64, bool, super::NormKind, Option<u64>, Vec<super::LayerKind>) {
    let blank = |k: &super::LayerKind| {
        let mut k = *k;
        match &mut k.mlp {
            super::Mlp::Dense(m) => m.activation = "",
            super::Mlp::Moe(m) => m.activation = "",
        }
        k
    };
    let layers = stack
        .layers
        .iter()
        .filter_map(|&i| stack.kinds.get(i))
        .map(blank)
        .collect();
    (
        stack.hidden,
        stack.vocab,
        stack.tie_embeddings,
        stack.final_norm,
        stack.position_embeddings,
        layers,
    )
}

/// The candidate shape (at `seq_len`, batch 1) whose stack is `stack`, if
/// the DSL can say it: one attention for every layer (standard, with one
/// window or none, or a pattern of one window and full layers; or latent),
/// dense layers only before the mixture's, no biases, sinks, extra norms,
/// LayerNorms or learned positions. `None` otherwise. Checked by building
/// the shape's stack: it must be `stack`, layer by layer (up to the names of
/// the activations, which no count or cost reads).
pub fn candidate_shape(stack: &ModelStack, seq_len: u64) -> Option<LayerShape> {
    use super::{Attention, Mlp};
    use crate::arch::{Architecture, LayerPattern};
    let kinds: Vec<&super::LayerKind> = stack.layers.iter().filter_map(|&i| stack.kinds.get(i)).collect();
    let first = kinds.first()?;
    let dense = kinds.iter().find_map(|k| match k.mlp {
        Mlp::Dense(m) => Some(m),
        Mlp::Moe(_) => None,
    });
    let moe = kinds.iter().find_map(|k| match k.mlp {
        Mlp::Moe(m) => Some(m),
        Mlp::Dense(_) => None,
    });
    let mut arch = Architecture::NONE;
    let ffn_dim = match (dense, moe) {
        (Some(d), _) => d.ffn,
        (None, Some(m)) => m.expert_ffn,
        (None, None) => return None,
    };
    if let Some(m) = moe {
        arch.experts = Some(m.experts);
        arch.top_k = Some(m.top_k);
        arch.expert_ffn_dim = Some(m.expert_ffn);
        if m.shared_experts > 0 {
            if m.shared_ffn % m.shared_experts != 0 {
                return None;
            }
            arch.shared_experts = Some(m.shared_experts);
            arch.shared_expert_ffn_dim = Some(m.shared_ffn / m.shared_experts);
        }
        let leading = kinds.iter().take_while(|k| matches!(k.mlp, Mlp::Dense(_))).count() as u64;
        if leading > 0 {
            arch.first_dense_layers = Some(leading);
        }
    }
    let (heads, kv_heads, head_dim, qk_norm, window) = match first.attention {
        Attention::Standard(a) => {
            let windows: Vec<Option<u64>> = kinds.iter().map(|k| k.attention.window()).collect();
            let sliding = windows.iter().find_map(|w| *w);
            let window = match (sliding, windows.iter().any(Option::is_none)) {
                (Some(w), true) => {
                    let a = windows.iter().take_while(|x| x.is_some()).count() as u64;
                    let b = windows.iter().skip(a as usize).take_while(|x| x.is_none()).count() as u64;
                    arch.layer_pattern = Some(LayerPattern { sliding: a, full: b });
                    Some(w)
                }
                (w, _) => w,
            };
            (
                a.heads,
                a.kv_heads,
                a.head_dim,
                a.qk_norm == super::QkNorm::PerHead,
                window,
            )
        }
        Attention::Latent(a) => {
            arch.kv_lora_rank = Some(a.kv_lora_rank);
            arch.q_lora_rank = a.q_lora_rank;
            arch.rope_head_dim = Some(a.qk_rope_head_dim);
            arch.v_head_dim = Some(a.v_head_dim);
            (a.heads, a.heads, a.qk_nope_head_dim, false, None)
        }
    };
    let shape = LayerShape {
        hidden_dim: stack.hidden,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        ffn_dim,
        seq_len,
        batch_size: 1,
        use_qk_norm: qk_norm,
        window_size: window,
        model: crate::model::ModelDims {
            num_layers: Some(stack.layers.len() as u64),
            vocab_size: Some(stack.vocab),
            tie_embeddings: Some(stack.tie_embeddings),
            ..crate::model::ModelDims::NONE
        },
        precision: crate::precision::Precision::BF16,
        arch,
    };
    shape.validate().ok()?;
    let ours = ModelStack::from_layer_shape(&shape)?;
    (comparable(&ours) == comparable(stack)).then_some(shape)
}
