//! Whole models: exact parameter counts, memory, prefill and decode latency,
//! and a scaling-law loss estimate.
//!
//! A [`LayerShape`] describes one decoder layer; its optional [`ModelDims`]
//! (layers, vocabulary, tied embeddings, decode context, training tokens)
//! make it a whole model. Everything here is a pure function of the shape and
//! a GPU's throughputs.
//!
//! The architecture counted is the Llama family's, which the seed's layer
//! model also assumes: bias-free attention projections (q, k, v, o), a gated
//! MLP of three matrices (gate, up, down), two RMSNorm weight vectors per
//! layer, QK-norm weights of `head_dim` each for q and k when QK-norm is on,
//! a final norm, token embeddings and an LM head unless tied. Biases, learned
//! position embeddings, ungated MLPs and extra "sandwich" norms (GPT-2,
//! Qwen2.5, Gemma-2) are not counted.
//!
//! Bytes follow the shape's precision ([`crate::precision`]): the seven
//! projection and MLP matrices of each layer in its weight format (bf16 2
//! bytes a parameter, fp8 1 plus a 4-byte scale per matrix, int4 half a byte
//! plus bf16 scales and zeros per group of 128), norms, embeddings and the LM
//! head in bf16 (as serving engines keep them); the KV cache in its own format
//! (bf16 2 bytes a value, fp8 1). Parameters do not depend on precision.

pub mod scaling;

use serde::{Deserialize, Serialize};

use crate::hardware::Throughputs;
use crate::precision::WeightPrecision;
use crate::shapes::LayerShape;

pub use scaling::{LossFit, ParamCount, ScalingLaw};

/// Bytes of one bf16 value: weights, activations and KV cache.
pub const BYTES_PER_VALUE: u64 = 2;

/// Bytes in a GiB, for memory figures shown to people.
pub const GIB: f64 = (1u64 << 30) as f64;

/// What turns a layer into a whole model. Every field is optional, so a
/// plain layer (the seed's candidates) carries none and serializes as before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelDims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<u64>,
    /// Whether the LM head reuses the embedding matrix (default: untied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_embeddings: Option<bool>,
    /// Tokens already in the KV cache when one decode step runs (default: `seq_len`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_len: Option<u64>,
    /// Training tokens D of the scaling-law loss estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_tokens: Option<u64>,
    /// Which published fit the loss estimate uses, and what N counts.
    #[serde(skip)]
    pub loss_fit: LossFit,
}

impl ModelDims {
    /// A plain layer: no model dimensions.
    pub const NONE: ModelDims = ModelDims {
        num_layers: None,
        vocab_size: None,
        tie_embeddings: None,
        context_len: None,
        training_tokens: None,
        loss_fit: LossFit::DEFAULT,
    };

    /// Whether any whole-model field is set.
    pub fn is_set(&self) -> bool {
        self.num_layers.is_some()
            || self.vocab_size.is_some()
            || self.tie_embeddings.is_some()
            || self.context_len.is_some()
            || self.training_tokens.is_some()
    }
}

/// Exact parameter counts of a whole model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Parameters {
    /// Token embedding matrix: vocab x hidden.
    pub embedding: u64,
    /// q, k, v and o projections of one layer.
    pub attention_per_layer: u64,
    /// Gate, up and down matrices of one layer.
    pub mlp_per_layer: u64,
    /// The two RMSNorm weight vectors of one layer, plus QK-norm weights.
    pub norms_per_layer: u64,
    pub final_norm: u64,
    /// 0 when tied to the embedding.
    pub lm_head: u64,
    pub total: u64,
    /// Everything but the embedding and the LM head (Kaplan et al.'s N).
    pub non_embedding: u64,
    /// A mixture of experts only: the parameters one token touches (all but
    /// the routed experts it does not select; shared experts, routers and
    /// embeddings count). Absent for a dense model, whose every parameter is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<u64>,
}

/// Memory of a whole model on a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// Weights in the shape's precision (projections and MLP in its weight
    /// format; norms, embeddings and LM head bf16).
    pub weight_bytes: u64,
    /// K and V of every layer for one token (before any window), in the KV cache's format.
    pub kv_cache_bytes_per_token: u64,
    /// Peak of live activations in one prefill layer at the shape's batch
    /// and sequence: the residual stream plus the largest kernel's inputs
    /// and outputs (flash attention: no score matrix).
    pub activation_peak_bytes: u64,
}

/// A whole model's figures that need no GPU.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ModelFigures {
    pub parameters: Parameters,
    pub memory: Memory,
    /// Scaling-law loss, when training tokens are declared.
    pub loss_estimate: Option<f64>,
}

/// The figures of a shape that has `num_layers` and `vocab_size`; `None`
/// for a plain layer. Counts saturate rather than wrap (validated shapes
/// never come near).
pub fn figures(shape: &LayerShape) -> Option<ModelFigures> {
    if shape.arch.is_set() {
        return crate::stack::candidate::figures(shape);
    }
    let parameters = parameters(shape)?;
    let memory = Memory {
        weight_bytes: weight_bytes(shape, &parameters)?,
        kv_cache_bytes_per_token: kv_cache_bytes_per_token(shape)?,
        activation_peak_bytes: activation_peak_bytes(shape),
    };
    let loss_estimate = shape
        .model
        .training_tokens
        .map(|tokens| shape.model.loss_fit.loss(&parameters, tokens));
    Some(ModelFigures {
        parameters,
        memory,
        loss_estimate,
    })
}

fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |acc, &f| acc.saturating_mul(f))
}

/// Exact parameter counts, when the shape has `num_layers` and `vocab_size`.
pub fn parameters(shape: &LayerShape) -> Option<Parameters> {
    let (layers, vocab) = (shape.model.num_layers?, shape.model.vocab_size?);
    let (d, hd) = (shape.hidden_dim, shape.head_dim);
    let q_width = mul(&[shape.num_heads, hd]);
    let kv_width = mul(&[shape.num_kv_heads, hd]);
    // q and o: d x (heads * head_dim); k and v: d x (kv heads * head_dim).
    let attention_per_layer = mul(&[2, d, q_width]).saturating_add(mul(&[2, d, kv_width]));
    let mlp_per_layer = mul(&[3, d, shape.ffn_dim]);
    let qk_norm = if shape.use_qk_norm { 2 * hd } else { 0 };
    let norms_per_layer = (2 * d).saturating_add(qk_norm);
    let per_layer = attention_per_layer
        .saturating_add(mlp_per_layer)
        .saturating_add(norms_per_layer);
    let embedding = mul(&[vocab, d]);
    let lm_head = if shape.model.tie_embeddings.unwrap_or(false) {
        0
    } else {
        embedding
    };
    let non_embedding = mul(&[layers, per_layer]).saturating_add(d);
    Some(Parameters {
        embedding,
        attention_per_layer,
        mlp_per_layer,
        norms_per_layer,
        final_norm: d,
        lm_head,
        total: non_embedding.saturating_add(embedding).saturating_add(lm_head),
        non_embedding,
        active: None,
    })
}

/// The seven projection and MLP matrices of one layer as `(n, k)` (`out = x @ W^T`):
/// q, k, v, o, gate, up, down.
pub fn layer_matrices(shape: &LayerShape) -> [(u64, u64); 7] {
    let (d, f) = (shape.hidden_dim, shape.ffn_dim);
    let q = mul(&[shape.num_heads, shape.head_dim]);
    let kv = mul(&[shape.num_kv_heads, shape.head_dim]);
    [(q, d), (kv, d), (kv, d), (d, q), (f, d), (f, d), (d, f)]
}

/// Bytes of one layer's projection and MLP matrices in `weights` (saturating).
pub fn layer_matrix_bytes(shape: &LayerShape, weights: WeightPrecision) -> u64 {
    layer_matrices(shape)
        .iter()
        .map(|&(n, k)| weights.matrix_bytes(n, k).unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add)
}

/// Weight bytes of a whole model in its precision: every layer's matrices in
/// the weight format, its norms, the final norm, the embedding and an untied
/// LM head in bf16.
pub fn weight_bytes(shape: &LayerShape, p: &Parameters) -> Option<u64> {
    let layers = shape.model.num_layers?;
    let per_layer = layer_matrix_bytes(shape, shape.precision.weights)
        .saturating_add(p.norms_per_layer.saturating_mul(BYTES_PER_VALUE));
    Some(
        mul(&[layers, per_layer])
            .saturating_add(mul(&[p.final_norm + p.embedding, BYTES_PER_VALUE]))
            .saturating_add(mul(&[p.lm_head, BYTES_PER_VALUE])),
    )
}

/// K and V of every layer for one token, in the KV cache's format, when `num_layers` is known.
pub fn kv_cache_bytes_per_token(shape: &LayerShape) -> Option<u64> {
    Some(mul(&[
        2,
        shape.model.num_layers?,
        shape.num_kv_heads,
        shape.head_dim,
        shape.precision.kv_cache.bytes_per_value(),
    ]))
}

/// Tokens of context the decode step attends to: the declared context (or
/// the sequence length), capped by the sliding window, which is also all a
/// windowed cache keeps.
pub fn cached_tokens(shape: &LayerShape, context: u64) -> u64 {
    match shape.window_size {
        Some(w) => w.min(context),
        None => context,
    }
}

/// The decode context of a shape: `context_len`, else `seq_len`.
pub fn context_of(shape: &LayerShape) -> u64 {
    shape.model.context_len.unwrap_or(shape.seq_len)
}

/// KV-cache bytes for `batch` sequences of `context` tokens (a stack
/// candidate's through its stack: each kind's window caps its own layers).
pub fn kv_cache_bytes(shape: &LayerShape, batch: u64, context: u64) -> Option<u64> {
    if shape.arch.is_set() {
        return crate::stack::candidate::kv_cache_bytes(shape, batch, context);
    }
    Some(mul(&[
        kv_cache_bytes_per_token(shape)?,
        batch,
        cached_tokens(shape, context),
    ]))
}

/// Live activation bytes at the peak of one prefill layer.
pub fn activation_peak_bytes(shape: &LayerShape) -> u64 {
    let m = mul(&[shape.batch_size, shape.seq_len]);
    let (d, f) = (shape.hidden_dim, shape.ffn_dim);
    let qkv = mul(&[shape.num_heads + 2 * shape.num_kv_heads, shape.head_dim]);
    let attn_out = mul(&[shape.num_heads, shape.head_dim]);
    let kernels = [
        d.saturating_add(qkv),        // qkv projection: x in, q k v out
        qkv.saturating_add(attn_out), // attention: q k v in, o out
        d.saturating_add(2 * f),      // gate-up: x in, gate and up out
        (2 * f).saturating_add(f),    // activation: gate and up in, product out
        f.saturating_add(d),          // down: product in, y out
    ];
    let widest = kernels.into_iter().max().unwrap_or(0);
    // The residual stream stays live beside every kernel.
    mul(&[m, d.saturating_add(widest), BYTES_PER_VALUE])
}

/// Whether weights, the KV cache of `batch` x `context` tokens and the
/// activation peak of a `batch`-row decode fit in `capacity_bytes`.
pub fn fits(shape: &LayerShape, capacity_bytes: f64, batch: u64, context: u64) -> Option<bool> {
    let figures = figures(shape)?;
    let needed = memory_needed(shape, &figures, batch, context)?;
    Some((needed as f64) <= capacity_bytes)
}

/// Bytes a serving GPU needs: weights, KV cache, and one prefill layer's
/// activation peak at the shape's batch and sequence.
pub fn memory_needed(shape: &LayerShape, figures: &ModelFigures, batch: u64, context: u64) -> Option<u64> {
    Some(
        figures
            .memory
            .weight_bytes
            .saturating_add(kv_cache_bytes(shape, batch, context)?)
            .saturating_add(figures.memory.activation_peak_bytes),
    )
}

/// Kernels of one decode step (per layer, then the model's own), in order.
pub const DECODE_KERNELS: [&str; 9] = [
    "norms",
    "qkv_projection",
    "attention_over_context",
    "output_projection",
    "mlp_gate_up",
    "mlp_activation",
    "mlp_down",
    "embedding",
    "lm_head",
];

/// Where a decode or prefill step's time goes, in ms, per kernel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepTime {
    pub total_ms: f64,
    pub per_kernel: std::collections::BTreeMap<std::borrow::Cow<'static, str>, f64>,
}

/// Throughputs a whole-model step needs: memory bandwidth and matrix FLOPs,
/// and a fixed cost per kernel launch (0 for the seed's constants).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepThroughputs {
    pub bandwidth_gbps: f64,
    pub matmul_tflops: f64,
    pub attention_tflops: f64,
    pub launch_ms: f64,
    /// The kernel-aware decode model's constants, where a profile fitted
    /// them: decode kernels then use it instead of the roofline above.
    pub decode: Option<crate::cost::decode::DecodeConstants>,
}

impl StepThroughputs {
    /// From the seed's constants: HBM bandwidth and the large-matmul and
    /// attention throughputs; no launch cost.
    pub fn seed(t: &Throughputs) -> Self {
        StepThroughputs {
            bandwidth_gbps: t.hbm_bandwidth_gbps,
            matmul_tflops: t.matmul_tflops,
            attention_tflops: t.attention_tflops,
            launch_ms: 0.0,
            decode: None,
        }
    }

    /// An elementwise kernel moving `bytes`: at the bandwidth, plus the launch cost.
    pub fn elementwise_ms(&self, bytes: f64) -> f64 {
        self.kernel_ms(bytes, 0.0, self.matmul_tflops)
    }

    /// Roofline time of a kernel moving `bytes` and doing `flops`.
    fn kernel_ms(&self, bytes: f64, flops: f64, tflops: f64) -> f64 {
        let memory = bytes / (self.bandwidth_gbps * 1e9) * 1e3;
        let compute = flops / (tflops * 1e12) * 1e3;
        memory.max(compute) + self.launch_ms
    }
}

/// The shape fields each of [`DECODE_KERNELS`] reads at the shape's own
/// batch and decode context (`batch_size`, `context_len` else `seq_len`).
pub fn decode_kernel_fields(kernel: usize) -> &'static [crate::shapes::ShapeField] {
    use crate::shapes::ShapeField::*;
    match kernel {
        // norms, residuals, RoPE and the K/V write (in the cache's format)
        0 => &[BatchSize, HiddenDim, NumHeads, NumKvHeads, HeadDim, KvCache],
        1 => &[BatchSize, HiddenDim, NumHeads, NumKvHeads, HeadDim, Weights],
        2 => &[
            BatchSize, NumHeads, NumKvHeads, HeadDim, WindowSize, ContextLen, SeqLen, KvCache,
        ],
        3 => &[BatchSize, HiddenDim, NumHeads, HeadDim, Weights],
        4 | 6 => &[BatchSize, HiddenDim, FfnDim, Weights],
        5 => &[BatchSize, FfnDim],
        7 => &[BatchSize, HiddenDim],
        _ => &[BatchSize, HiddenDim, VocabSize],
    }
}

/// Whether decode kernel `kernel` runs once per layer (else once per step).
pub fn decode_kernel_per_layer(kernel: usize) -> bool {
    kernel < 7
}

/// The time of decode kernel `kernel` (an index of [`DECODE_KERNELS`]) in
/// one step: per layer for the first seven, per step for the embedding and
/// the LM head. `None` without a vocabulary for the LM head.
pub fn decode_kernel_ms(
    shape: &LayerShape,
    gpu: &StepThroughputs,
    batch: u64,
    context: u64,
    kernel: usize,
) -> Option<f64> {
    if let Some(constants) = &gpu.decode {
        return constants.kernel_ms(shape, batch, context, kernel);
    }
    let b = batch as f64;
    let v = BYTES_PER_VALUE as f64;
    let (d, f) = (shape.hidden_dim as f64, shape.ffn_dim as f64);
    let (h, kv, hd) = (shape.num_heads as f64, shape.num_kv_heads as f64, shape.head_dim as f64);
    // A GEMV-like matrix product: weights k x n read once, b rows in and out.
    let gemm = |k: f64, n: f64| gpu.kernel_ms(v * (k * n + b * (k + n)), 2.0 * b * k * n, gpu.matmul_tflops);
    // The same with the weights in the shape's format (the LM head stays bf16).
    let weights = shape.precision.weights;
    let layer_gemm = |k: f64, n: f64| match weights {
        WeightPrecision::Bf16 => gemm(k, n),
        p => {
            let w = p.matrix_bytes(n as u64, k as u64).map_or(f64::INFINITY, |x| x as f64);
            gpu.kernel_ms(w + v * b * (k + n), 2.0 * b * k * n, gpu.matmul_tflops)
        }
    };
    let kv_value = shape.precision.kv_cache.bytes_per_value() as f64;
    Some(match kernel {
        0 => 2.0 * gpu.kernel_ms(v * 2.0 * b * d, 0.0, gpu.matmul_tflops),
        1 => layer_gemm(d, (h + 2.0 * kv) * hd),
        2 => {
            let cached = cached_tokens(shape, context) as f64;
            let bytes = if shape.precision.kv_cache.is_bf16() {
                v * b * (2.0 * kv * hd * cached + 2.0 * h * hd)
            } else {
                kv_value * b * 2.0 * kv * hd * cached + v * b * 2.0 * h * hd
            };
            gpu.kernel_ms(bytes, 4.0 * b * h * hd * cached, gpu.attention_tflops)
        }
        3 => layer_gemm(h * hd, d),
        4 => layer_gemm(d, 2.0 * f),
        5 => gpu.kernel_ms(v * 3.0 * b * f, 0.0, gpu.matmul_tflops),
        6 => layer_gemm(f, d),
        7 => gpu.kernel_ms(v * 2.0 * b * d, 0.0, gpu.matmul_tflops),
        _ => gemm(d, shape.model.vocab_size? as f64),
    })
}

/// One decode step: every sequence of `batch` generates one token with
/// `context` tokens in its cache. Memory-bound: each kernel takes the longer
/// of its bytes at the GPU's bandwidth and its FLOPs at its throughput
/// (roofline); weights are read once per step, the KV cache once per
/// sequence. `None` for a plain layer.
pub fn decode(shape: &LayerShape, gpu: &StepThroughputs, batch: u64, context: u64) -> Option<StepTime> {
    if shape.arch.is_set() {
        // A stack candidate's steps come from its stack: `steps_on`.
        return None;
    }
    let layers = shape.model.num_layers? as f64;
    shape.model.vocab_size?;
    let mut per_kernel = std::collections::BTreeMap::new();
    for (k, name) in DECODE_KERNELS.iter().enumerate() {
        let ms = decode_kernel_ms(shape, gpu, batch, context, k)?;
        per_kernel.insert(
            (*name).into(),
            if decode_kernel_per_layer(k) { ms * layers } else { ms },
        );
    }
    let total_ms = per_kernel.values().sum();
    Some(StepTime { total_ms, per_kernel })
}

/// A whole model's latencies on one GPU, at its own batch and decode context:
/// what latency constraints and rankings read.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StepLatency {
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// `batch_size` tokens per decode step: batch / (decode_ms / 1000).
    pub decode_tokens_per_s: f64,
}

impl StepLatency {
    /// What a plain layer has: no whole-model latency (no comparison holds on NaN).
    pub const UNAVAILABLE: StepLatency = StepLatency {
        prefill_ms: f64::NAN,
        decode_ms: f64::NAN,
        decode_tokens_per_s: f64::NAN,
    };

    /// Tokens per second of a decode step of `decode_ms` at `batch`.
    pub fn tokens_per_s(batch: u64, decode_ms: f64) -> f64 {
        batch as f64 / (decode_ms / 1e3)
    }
}

/// Prefill and decode of a whole model at its batch and decode context, its
/// layer taking `layer_ms`; [`StepLatency::UNAVAILABLE`] for a plain layer.
pub fn step_latency(shape: &LayerShape, gpu: &StepThroughputs, layer_ms: f64) -> StepLatency {
    let batch = shape.batch_size;
    match (
        decode(shape, gpu, batch, context_of(shape)),
        prefill(shape, gpu, layer_ms),
    ) {
        (Some(d), Some(p)) => StepLatency {
            prefill_ms: p.total_ms,
            decode_ms: d.total_ms,
            decode_tokens_per_s: StepLatency::tokens_per_s(batch, d.total_ms),
        },
        _ => StepLatency::UNAVAILABLE,
    }
}

/// Prefill and decode of a whole model on `gpu` at its own batch and decode
/// context: a dense uniform shape through [`prefill`] (its layer taking
/// `layer_ms`) and [`decode`] on `step` (the GPU's step throughputs); a stack
/// candidate ([`crate::arch`] fields) through its stack
/// ([`crate::stack::candidate::steps`]). `None` for a plain layer.
pub fn steps_on(
    shape: &LayerShape,
    gpu: &crate::gpu::Gpu,
    step: &StepThroughputs,
    layer_ms: f64,
) -> crate::error::Result<Option<(StepTime, StepTime)>> {
    if shape.arch.is_set() {
        return crate::stack::candidate::steps(shape, gpu);
    }
    Ok(prefill(shape, step, layer_ms).zip(decode(shape, step, shape.batch_size, context_of(shape))))
}

/// [`steps_on`] as the latencies constraints and rankings read
/// ([`StepLatency::UNAVAILABLE`] for a plain layer).
pub fn step_latency_on(
    shape: &LayerShape,
    gpu: &crate::gpu::Gpu,
    step: &StepThroughputs,
    layer_ms: f64,
) -> crate::error::Result<StepLatency> {
    Ok(match steps_on(shape, gpu, step, layer_ms)? {
        Some((p, d)) => StepLatency {
            prefill_ms: p.total_ms,
            decode_ms: d.total_ms,
            decode_tokens_per_s: StepLatency::tokens_per_s(shape.batch_size, d.total_ms),
        },
        None => StepLatency::UNAVAILABLE,
    })
}

/// The prefill's time outside its layers (embedding lookup and the LM head
/// for the last token of each sequence); `None` for a plain layer.
pub fn prefill_outside_layers_ms(shape: &LayerShape, gpu: &StepThroughputs) -> Option<f64> {
    let p = prefill(shape, gpu, 0.0)?;
    Some(p.per_kernel.get("embedding").copied().unwrap_or(0.0) + p.per_kernel.get("lm_head").copied().unwrap_or(0.0))
}

/// The whole prefill (time to first token): `num_layers` times the layer's
/// predicted time, the embedding lookup, and the LM head for the last token
/// of each sequence (all a generating server computes). `None` for a plain
/// layer.
pub fn prefill(shape: &LayerShape, gpu: &StepThroughputs, layer_ms: f64) -> Option<StepTime> {
    if shape.arch.is_set() {
        // A stack candidate's steps come from its stack: `steps_on`.
        return None;
    }
    let layers = shape.model.num_layers? as f64;
    let vocab = shape.model.vocab_size? as f64;
    let v = BYTES_PER_VALUE as f64;
    let d = shape.hidden_dim as f64;
    let b = shape.batch_size as f64;
    let m = b * shape.seq_len as f64;
    let mut per_kernel = std::collections::BTreeMap::new();
    per_kernel.insert("layers".into(), layer_ms * layers);
    per_kernel.insert(
        "embedding".into(),
        gpu.kernel_ms(v * 2.0 * m * d, 0.0, gpu.matmul_tflops),
    );
    per_kernel.insert(
        "lm_head".into(),
        gpu.kernel_ms(
            v * (d * vocab + b * (d + vocab)),
            2.0 * b * d * vocab,
            gpu.matmul_tflops,
        ),
    );
    let total_ms = per_kernel.values().sum();
    Some(StepTime { total_ms, per_kernel })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::ShapeField;

    /// Changing a field a decode kernel does not declare leaves its time
    /// unchanged, on the roofline and on the kernel-aware decode model: the
    /// streaming search builds its decode tables from the declarations.
    #[test]
    fn decode_kernels_read_only_the_fields_they_declare() {
        let base = LayerShape {
            hidden_dim: 2048,
            num_heads: 16,
            num_kv_heads: 4,
            head_dim: 128,
            ffn_dim: 8192,
            seq_len: 1024,
            batch_size: 4,
            use_qk_norm: true,
            window_size: Some(4096),
            model: ModelDims {
                num_layers: Some(24),
                vocab_size: Some(32000),
                tie_embeddings: Some(false),
                context_len: Some(8192),
                ..ModelDims::NONE
            },
            precision: crate::precision::Precision::BF16,
            arch: crate::arch::Architecture::NONE,
        };
        let with_model = |m: ModelDims| LayerShape { model: m, ..base };
        use crate::precision::{KvCachePrecision, Precision, WeightPrecision};
        let in_precision = |weights, kv_cache| LayerShape {
            precision: Precision { weights, kv_cache },
            ..base
        };
        let variants: Vec<(ShapeField, LayerShape)> = vec![
            (
                ShapeField::Weights,
                in_precision(WeightPrecision::Fp8, KvCachePrecision::Bf16),
            ),
            (
                ShapeField::Weights,
                in_precision(WeightPrecision::Int4, KvCachePrecision::Bf16),
            ),
            (
                ShapeField::KvCache,
                in_precision(WeightPrecision::Bf16, KvCachePrecision::Fp8),
            ),
            (
                ShapeField::HiddenDim,
                LayerShape {
                    hidden_dim: 3072,
                    ..base
                },
            ),
            (ShapeField::NumHeads, LayerShape { num_heads: 32, ..base }),
            (
                ShapeField::NumKvHeads,
                LayerShape {
                    num_kv_heads: 8,
                    ..base
                },
            ),
            (ShapeField::HeadDim, LayerShape { head_dim: 256, ..base }),
            (ShapeField::FfnDim, LayerShape { ffn_dim: 7001, ..base }),
            (ShapeField::SeqLen, LayerShape { seq_len: 2048, ..base }),
            (ShapeField::BatchSize, LayerShape { batch_size: 64, ..base }),
            (
                ShapeField::UseQkNorm,
                LayerShape {
                    use_qk_norm: false,
                    ..base
                },
            ),
            (
                ShapeField::WindowSize,
                LayerShape {
                    window_size: Some(512),
                    ..base
                },
            ),
            (
                ShapeField::NumLayers,
                with_model(ModelDims {
                    num_layers: Some(32),
                    ..base.model
                }),
            ),
            (
                ShapeField::VocabSize,
                with_model(ModelDims {
                    vocab_size: Some(50257),
                    ..base.model
                }),
            ),
            (
                ShapeField::TieEmbeddings,
                with_model(ModelDims {
                    tie_embeddings: Some(true),
                    ..base.model
                }),
            ),
            (
                ShapeField::ContextLen,
                with_model(ModelDims {
                    context_len: Some(512),
                    ..base.model
                }),
            ),
        ];
        let roofline = StepThroughputs {
            bandwidth_gbps: 3000.0,
            matmul_tflops: 700.0,
            attention_tflops: 500.0,
            launch_ms: 0.003,
            decode: None,
        };
        let kernel_aware = StepThroughputs {
            decode: Some(crate::cost::decode::DecodeConstants {
                form: crate::cost::decode::DecodeForm {
                    ramp_bytes: 4.0 * 1048576.0,
                    ridge_flops_per_byte: 206.0,
                    fp8_ridge_flops_per_byte: 412.0,
                },
                ms_per_unit: [1e-9; crate::cost::decode::TOTAL],
            }),
            ..roofline
        };
        for gpu in [roofline, kernel_aware] {
            for (k, name) in DECODE_KERNELS.iter().enumerate() {
                let time = |s: &LayerShape| decode_kernel_ms(s, &gpu, s.batch_size, context_of(s), k).unwrap();
                for (field, changed) in &variants {
                    if !decode_kernel_fields(k).contains(field) {
                        assert_eq!(
                            time(&base),
                            time(changed),
                            "`{name}` reads {field:?} but does not declare it"
                        );
                    }
                }
            }
        }
    }
}
