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
