//! What the CLI prints for a stack: `nas predict`'s figures of a config
//! ([`StackPrediction`]) and `nas import`'s DSL `known` block and JSON shape
//! ([`import`]). Typed here so the CLI stays a thin front end.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::params::{self, KvCacheKind};
use super::{latency, Attention, LayerKind, Mlp, ModelStack, NormKind, QkNorm, StackWorkload};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::{LossFit, StepLatency, GIB};

/// Why an MoE model gets no loss estimate.
pub const MOE_LOSS_NOTE: &str = "the scaling-law loss estimate covers dense models only: a mixture's total \
                                 parameters are not dense parameters, so no loss is estimated";

/// Where the MoE and MLA kernels' times come from.
pub const ESTIMATE_NOTE: &str = "the kernels listed in estimated_kernels (MoE experts, latent attention) are \
                                 spec-sheet roofline estimates (HBM bandwidth and dense bf16 peak of the data \
                                 sheet), not measured";

/// The KV cache at the workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KvCacheReport {
    pub context: u64,
    pub batch: u64,
    /// One sequence at the context, windows applied.
    pub bytes_per_sequence: u64,
    /// `batch` sequences.
    pub bytes: u64,
    pub per_kind: Vec<KvCacheKind>,
}

/// One layer kind: what it is, its parameters and its time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindReport {
    pub kind: String,
    pub layers: u64,
    /// The first layer of this kind (0-based).
    pub first_layer: usize,
    pub attention: Attention,
    pub mlp: Mlp,
    pub norm: NormKind,
    pub norms: u64,
    pub params_per_layer: u64,
    pub active_params_per_layer: u64,
    pub prefill_ms_per_layer: f64,
    pub decode_ms_per_layer: f64,
    pub prefill_per_kernel: BTreeMap<String, f64>,
    pub decode_per_kernel: BTreeMap<String, f64>,
}

/// `nas predict`'s answer for one Hugging Face config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackPrediction {
    pub name: String,
    pub model_type: String,
    pub params: u64,
    /// Mixtures only: the parameters one token touches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_params: Option<u64>,
    pub weight_bytes: u64,
    /// KV bytes one token adds to every layer, before any window.
    pub kv_cache_bytes_per_token: u64,
    pub kv_cache: KvCacheReport,
    pub workload: StackWorkload,
    pub layer_kinds: Vec<KindReport>,
    pub prefill_ms: f64,
    pub prefill_per_kernel: BTreeMap<String, f64>,
    pub decode_ms: f64,
    pub decode_per_kernel: BTreeMap<String, f64>,
    pub decode_tokens_per_s: f64,
    pub memory_needed_bytes: u64,
    /// Whether `memory_needed_bytes` fits the GPU's memory, where it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fits: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_estimate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_estimate_note: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub estimated_kernels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_note: Option<&'static str>,
    /// Where the MoE and latent-attention kernels' times come from.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kernel_sources: BTreeMap<&'static str, String>,
    pub cost_model: &'static str,
    pub source: String,
}

/// Every figure of `stack` on `gpu` at `workload`; a dense stack gets a loss
/// estimate when `training` gives the fit and the training tokens.
pub fn predict(
    name: &str,
    stack: &ModelStack,
    gpu: &Gpu,
    workload: &StackWorkload,
    training: Option<(LossFit, u64)>,
) -> Result<StackPrediction> {
    let counts = params::count(stack);
    let cache = params::kv_cache(stack, workload.context);
    let time = latency::predict(stack, gpu, workload).map_err(|e| match e {
        crate::error::Error::Spec(m) => crate::error::Error::Spec(format!("`{name}`: {m}")),
        other => other,
    })?;
    let first_layer = |k: usize| stack.layers.iter().position(|&l| l == k).unwrap_or(0);
    let layer_kinds = stack
        .kinds
        .iter()
        .enumerate()
        .zip(counts.per_kind.iter().zip(&time.per_kind))
        .map(|((i, kind), (p, t))| KindReport {
            kind: p.kind.clone(),
            layers: p.layers,
            first_layer: first_layer(i),
            attention: kind.attention,
            mlp: kind.mlp,
            norm: kind.norm,
            norms: kind.norms,
            params_per_layer: p.per_layer,
            active_params_per_layer: p.active_per_layer,
            prefill_ms_per_layer: t.prefill_ms_per_layer,
            decode_ms_per_layer: t.decode_ms_per_layer,
            prefill_per_kernel: t.prefill_per_kernel.clone(),
            decode_per_kernel: t.decode_per_kernel.clone(),
        })
        .collect();
    let moe = stack.is_moe();
    let loss_estimate = match (moe, training) {
        (false, Some((fit, tokens))) => Some(fit.loss_of(counts.total, counts.non_embedding, tokens)),
        _ => None,
    };
    let estimated = !time.estimated.is_empty();
    Ok(StackPrediction {
        name: name.to_string(),
        model_type: stack.model_type.clone(),
        params: counts.total,
        active_params: moe.then_some(counts.active),
        weight_bytes: params::weight_bytes(&counts),
        kv_cache_bytes_per_token: cache.bytes_per_token,
        kv_cache: KvCacheReport {
            context: cache.context,
            batch: workload.batch,
            bytes_per_sequence: cache.bytes_per_sequence,
            bytes: cache.bytes_per_sequence.saturating_mul(workload.batch),
            per_kind: cache.per_kind,
        },
        workload: *workload,
        layer_kinds,
        prefill_ms: time.prefill_ms,
        prefill_per_kernel: time.prefill_per_kernel,
        decode_ms: time.decode_ms,
        decode_per_kernel: time.decode_per_kernel,
        decode_tokens_per_s: StepLatency::tokens_per_s(workload.batch, time.decode_ms),
        memory_needed_bytes: params::memory_needed(stack, workload),
        fits: gpu.memory_gib().map(|gib| params::fits(stack, workload, gib * GIB)),
        loss_estimate,
        loss_estimate_note: moe.then_some(MOE_LOSS_NOTE),
        estimated_kernels: time.estimated,
        estimate_note: estimated.then_some(ESTIMATE_NOTE),
        kernel_sources: time.sources,
        cost_model: gpu.cost_model().name(),
        source: gpu.provenance().summary(),
    })
}

/// A Rust identifier for the DSL from a file stem: `qwen2.5-7b` -> `qwen2_5_7b`.
pub fn dsl_name(stem: &str) -> String {
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "m_");
    }
    const KEYWORDS: [&str; 12] = [
        "as", "fn", "if", "in", "let", "loop", "match", "mod", "self", "type", "use", "where",
    ];
    if KEYWORDS.contains(&name.as_str()) || name == "_" {
        name.push_str("_model");
    }
    name
}

/// The kind with the most layers (the first of equals): what the DSL's one
/// uniform layer stands for.
fn main_kind(stack: &ModelStack) -> Option<(usize, &LayerKind)> {
    let counts = stack.layer_counts();
    let best = (0..counts.len()).max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)))?;
    stack.kinds.get(best).map(|k| (best, k))
}

/// Today's shape fields for `kind`: (heads, kv_heads, head_dim, ffn_dim, qk_norm, window).
fn shape_fields(kind: &LayerKind) -> (u64, u64, u64, u64, bool, Option<u64>) {
    let (heads, kv, hd, qk, window) = match &kind.attention {
        Attention::Standard(a) => (a.heads, a.kv_heads, a.head_dim, a.qk_norm != QkNorm::None, a.window),
        Attention::Latent(a) => (a.heads, a.heads, a.qk_head_dim(), false, None),
    };
    let ffn = match &kind.mlp {
        Mlp::Dense(m) if m.gated => m.ffn,
        Mlp::Dense(m) => (m.ffn * 2 + 1) / 3,
        Mlp::Moe(m) => m.top_k * m.expert_ffn + m.shared_ffn,
    };
    (heads, kv, hd, ffn, qk, window)
}

/// What the DSL and today's shapes cannot say about `stack` yet, one item each.
pub fn not_expressed(stack: &ModelStack) -> Vec<String> {
    let mut out = Vec::new();
    let Some((main, kind)) = main_kind(stack) else {
        return out;
    };
    let counts = stack.layer_counts();
    for (i, other) in stack.kinds.iter().enumerate() {
        if i != main {
            out.push(format!(
                "{} of the {} layers are `{}` (first at layer {}), not `{}`: the layer pattern",
                counts[i],
                stack.layers.len(),
                other.label(),
                stack.layers.iter().position(|&l| l == i).unwrap_or(0),
                kind.label()
            ));
        }
    }
    match &kind.attention {
        Attention::Standard(a) => {
            let biases: Vec<&str> = [(a.q_bias, "q"), (a.k_bias, "k"), (a.v_bias, "v"), (a.o_bias, "o")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| *n)
                .collect();
            if !biases.is_empty() {
                out.push(format!("attention biases on {}", biases.join(", ")));
            }
            if a.qk_norm == QkNorm::WholeProjection {
                out.push("QK-norm over the whole projection (written as per-head qk_norm)".into());
            }
            if a.sinks {
                out.push("attention sinks (one logit per head)".into());
            }
        }
        Attention::Latent(a) => out.push(format!(
            "latent attention (q_lora_rank {}, kv_lora_rank {}, qk_nope_head_dim {}, qk_rope_head_dim {}, \
             v_head_dim {}): written as multi-head attention of head_dim {}",
            a.q_lora_rank.map_or("none".to_string(), |r| r.to_string()),
            a.kv_lora_rank,
            a.qk_nope_head_dim,
            a.qk_rope_head_dim,
            a.v_head_dim,
            a.qk_head_dim()
        )),
    }
    match &kind.mlp {
        Mlp::Dense(m) if !m.gated => out.push(format!(
            "an ungated {} MLP of {} (written as the gated width {} of the same weights)",
            m.activation,
            m.ffn,
            (m.ffn * 2 + 1) / 3
        )),
        Mlp::Dense(_) => {}
        Mlp::Moe(m) => out.push(format!(
            "a mixture of {} experts of {}, top-{}{}{}: written as the dense width a token passes through",
            m.experts,
            m.expert_ffn,
            m.top_k,
            if m.shared_ffn > 0 {
                format!(", {} shared experts of total width {}", m.shared_experts, m.shared_ffn)
            } else {
                String::new()
            },
            if m.router_bias || m.expert_bias {
                ", router and expert biases"
            } else {
                ""
            }
        )),
    }
    if let Mlp::Dense(m) = &kind.mlp {
        if m.bias {
            out.push("MLP biases".into());
        }
    }
    if kind.norm == NormKind::LayerNorm {
        out.push("LayerNorm (with biases) instead of RMSNorm".into());
    }
    if kind.norms != 2 {
        out.push(format!("{} norms per layer (the DSL's layer has 2)", kind.norms));
    }
    if let Some(p) = stack.position_embeddings {
        out.push(format!("learned position embeddings ({p} positions)"));
    }
    out
}

/// The JSON shape of a stack: today's shape keys (of its main kind, at
/// `seq_len`), plus `stack` (everything the stack has) and `not_expressed`.
/// Without those two keys it is a shape `nas predict --configs` reads.
pub fn shape_json(name: &str, stack: &ModelStack, seq_len: u64) -> Value {
    if let Some(shape) = stack_candidate(stack, seq_len) {
        let mut v = json!({
            "name": name,
            "hidden_dim": shape.hidden_dim,
            "num_heads": shape.num_heads,
            "num_kv_heads": shape.num_kv_heads,
            "head_dim": shape.head_dim,
            "ffn_dim": shape.ffn_dim,
            "seq_len": seq_len,
            "batch_size": 1,
            "use_qk_norm": shape.use_qk_norm,
            "window_size": shape.window_size,
            "num_layers": stack.layers.len(),
            "vocab_size": stack.vocab,
            "tie_embeddings": stack.tie_embeddings,
            "stack": stack,
            "not_expressed": Vec::<String>::new(),
        });
        if let (Value::Object(obj), Ok(Value::Object(arch))) = (&mut v, serde_json::to_value(shape.arch)) {
            obj.extend(arch);
        }
        return v;
    }
    let (heads, kv, hd, ffn, qk, window) = main_kind(stack).map_or((0, 0, 0, 0, false, None), |(_, k)| shape_fields(k));
    json!({
        "name": name,
        "hidden_dim": stack.hidden,
        "num_heads": heads,
        "num_kv_heads": kv,
        "head_dim": hd,
        "ffn_dim": ffn,
        "seq_len": seq_len,
        "batch_size": 1,
        "use_qk_norm": qk,
        "window_size": window,
        "num_layers": stack.layers.len(),
        "vocab_size": stack.vocab,
        "tie_embeddings": stack.tie_embeddings,
        "stack": stack,
        "not_expressed": not_expressed(stack),
    })
}

/// The candidate shape of a stack the DSL says whole with mixture,
/// pattern or latent fields ([`super::candidate::candidate_shape`]); a
/// dense uniform stack keeps today's block.
fn stack_candidate(stack: &ModelStack, seq_len: u64) -> Option<crate::shapes::LayerShape> {
    super::candidate::candidate_shape(stack, seq_len).filter(|s| s.arch.is_set())
}

/// `nas import`'s text for one config: a comment line, the DSL's `known`
/// block, a comment with what it cannot express, and the JSON shape.
pub fn import(stem: &str, file: &str, stack: &ModelStack, seq_len: u64) -> Result<String> {
    let counts = params::count(stack);
    let name = dsl_name(stem);
    let mut text = format!(
        "// {file}: model_type `{}`, {} layers in {} kind(s), {} parameters{}\n",
        stack.model_type,
        stack.layers.len(),
        stack.kinds.len(),
        counts.total,
        if stack.is_moe() {
            format!(" ({} active)", counts.active)
        } else {
            String::new()
        }
    );
    if let Some(shape) = stack_candidate(stack, seq_len) {
        // Everything it has, the DSL says: its mixture, pattern or latent fields too.
        let mut arch = String::new();
        let a = shape.arch;
        for (key, value) in [
            ("experts", a.experts),
            ("top_k", a.top_k),
            ("expert_ffn_dim", a.expert_ffn_dim),
            ("shared_experts", a.shared_experts),
            ("shared_expert_ffn_dim", a.shared_expert_ffn_dim),
            ("first_dense_layers", a.first_dense_layers),
        ] {
            if let Some(v) = value {
                arch.push_str(&format!(", {key}: {v}"));
            }
        }
        if let Some(p) = a.layer_pattern {
            arch.push_str(&format!(", layer_pattern: \"{p}\""));
        }
        for (key, value) in [
            ("kv_lora_rank", a.kv_lora_rank),
            ("q_lora_rank", a.q_lora_rank),
            ("rope_head_dim", a.rope_head_dim),
            ("v_head_dim", a.v_head_dim),
        ] {
            if let Some(v) = value {
                arch.push_str(&format!(", {key}: {v}"));
            }
        }
        text.push_str(&format!(
            "known {name} {{ hidden_dim: {}, heads: {}, kv_heads: {}, head_dim: {}, ffn_dim: {}, qk_norm: {}, \
             window: {}, num_layers: {}, vocab_size: {}, tie_embeddings: {}{arch} }}\n",
            shape.hidden_dim,
            shape.num_heads,
            shape.num_kv_heads,
            shape.head_dim,
            shape.ffn_dim,
            shape.use_qk_norm,
            shape.window_size.map_or("full".to_string(), |w| w.to_string()),
            stack.layers.len(),
            stack.vocab,
            stack.tie_embeddings
        ));
    } else if let Some((_, kind)) = main_kind(stack) {
        let (heads, kv, hd, ffn, qk, window) = shape_fields(kind);
        text.push_str(&format!(
            "known {name} {{ hidden_dim: {}, heads: {heads}, kv_heads: {kv}, head_dim: {hd}, ffn_dim: {ffn}, \
             qk_norm: {qk}, window: {}, num_layers: {}, vocab_size: {}, tie_embeddings: {} }}\n",
            stack.hidden,
            window.map_or("full".to_string(), |w| w.to_string()),
            stack.layers.len(),
            stack.vocab,
            stack.tie_embeddings
        ));
    }
    let missing = match stack_candidate(stack, seq_len) {
        Some(_) => Vec::new(),
        None => not_expressed(stack),
    };
    if !missing.is_empty() {
        text.push_str("// not expressed in the DSL yet (predict reads the config itself):\n");
        for m in &missing {
            text.push_str(&format!("//   - {m}\n"));
        }
    }
    let json = serde_json::to_string_pretty(&shape_json(stem, stack, seq_len))
        .map_err(|e| crate::error::Error::Spec(e.to_string()))?;
    text.push_str(&json);
    text.push('\n');
    Ok(text)
}
