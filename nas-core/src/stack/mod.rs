//! Whole models as stacks of layer kinds.
//!
//! A [`ModelStack`] is what transformers builds from a `config.json`: token
//! embeddings (and GPT-2's learned position embeddings), an ordered list of
//! layers, each one of a few [`LayerKind`]s, a final norm and an LM head
//! (tied to the embeddings or not). A kind is an attention kind
//! ([`Attention`]: standard MHA/GQA/MQA with its biases, QK-norm, window and
//! sinks, or DeepSeek's latent attention) times an MLP kind ([`Mlp`]: gated
//! or ungated dense, or a mixture of experts) and its norms.
//!
//! - `params.rs`: exact parameter counts (as transformers counts them),
//!   active parameters, weight and KV-cache bytes, memory fit;
//! - `hf.rs`: a Hugging Face `config.json` read into a stack;
//! - `latency.rs`: prefill and decode of a stack on a GPU, kind by kind;
//! - `report.rs`: what `nas predict` and `nas import` print for a stack;
//! - `candidate.rs`: a candidate shape with MoE, layer-pattern or latent
//!   fields (`crate::arch`) through its stack: its whole-model figures.
//!
//! Today's uniform dense [`LayerShape`] with [`crate::model::ModelDims`] is a
//! stack of one kind ([`ModelStack::from_layer_shape`]); its counts through
//! the stack equal [`crate::model::figures`] exactly.

pub mod candidate;
pub mod hf;
pub mod latency;
pub mod params;
pub mod report;

use serde::Serialize;

use crate::shapes::{LayerShape, MAX_DIM, MAX_EXPERTS, MAX_LAYERS};

pub use latency::{KindLatency, StackLatency, StackWorkload};
pub use params::{KindParams, KvCache, KvCacheKind, StackParams};

/// Which norm a model uses: RMSNorm (a weight vector) or LayerNorm (weight and bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    RmsNorm,
    LayerNorm,
}

impl NormKind {
    /// Parameters of one norm over `width` values.
    pub fn params(self, width: u64) -> u64 {
        match self {
            NormKind::RmsNorm => width,
            NormKind::LayerNorm => width.saturating_mul(2),
        }
    }
}

/// QK-norm: none, per head (a `head_dim` weight for q and one for k: Qwen3,
/// Gemma-3) or over the whole projection (`heads * head_dim` for q,
/// `kv_heads * head_dim` for k: OLMo-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QkNorm {
    None,
    PerHead,
    WholeProjection,
}

/// Standard multi-head attention: MHA (kv heads = heads), GQA or MQA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct StandardAttention {
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub q_bias: bool,
    pub k_bias: bool,
    pub v_bias: bool,
    pub o_bias: bool,
    pub qk_norm: QkNorm,
    /// Sliding window in tokens; `None` is full causal attention.
    pub window: Option<u64>,
    /// One learned logit per head added to the softmax (gpt-oss).
    pub sinks: bool,
}

/// DeepSeek's multi-head latent attention: queries through an optional
/// low-rank `q_lora_rank` (V2-Lite has none), keys and values through a
/// compressed `kv_lora_rank` latent plus a shared RoPE key of
/// `qk_rope_head_dim`, each compression with its RMSNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct LatentAttention {
    pub heads: u64,
    pub q_lora_rank: Option<u64>,
    pub kv_lora_rank: u64,
    pub qk_nope_head_dim: u64,
    pub qk_rope_head_dim: u64,
    pub v_head_dim: u64,
    /// Biases on `q_a_proj` (with a q rank), `kv_a_proj_with_mqa` and `o_proj`
    /// (transformers' `attention_bias`).
    pub bias: bool,
}

impl LatentAttention {
    /// Query and key width per head: `qk_nope_head_dim + qk_rope_head_dim`.
    pub fn qk_head_dim(&self) -> u64 {
        self.qk_nope_head_dim.saturating_add(self.qk_rope_head_dim)
    }
}

/// The attention of a layer kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Attention {
    Standard(StandardAttention),
    Latent(LatentAttention),
}

impl Attention {
    /// The sliding window, if the attention has one.
    pub fn window(&self) -> Option<u64> {
        match self {
            Attention::Standard(a) => a.window,
            Attention::Latent(_) => None,
        }
    }
}

/// A dense MLP: gated (`down(act(gate(x)) * up(x))`, Llama) or ungated
/// (`down(act(up(x)))`, GPT-2), with or without biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct DenseMlp {
    pub ffn: u64,
    pub gated: bool,
    pub bias: bool,
    /// The activation as transformers names it (`silu`, `gelu_pytorch_tanh`...).
    pub activation: &'static str,
}

/// A mixture-of-experts MLP: a router picks `top_k` of `experts` gated
/// experts of `expert_ffn` per token; shared experts (a dense gated MLP of
/// `shared_ffn`, DeepSeek's `n_shared_experts * moe_intermediate_size`) see
/// every token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct MoeMlp {
    pub experts: u64,
    pub top_k: u64,
    pub expert_ffn: u64,
    /// How many shared experts (0: none); their total width is `shared_ffn`.
    pub shared_experts: u64,
    pub shared_ffn: u64,
    /// A sigmoid gate (hidden x 1, no bias) on the shared expert's output (Qwen2-MoE).
    pub shared_expert_gate: bool,
    /// A bias on the router's logits as a parameter (gpt-oss; DeepSeek-V3's
    /// correction bias is a buffer in transformers, not a parameter).
    pub router_bias: bool,
    /// Biases on every expert's gate-up and down projections (gpt-oss).
    pub expert_bias: bool,
    pub activation: &'static str,
}

/// The MLP of a layer kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mlp {
    Dense(DenseMlp),
    Moe(MoeMlp),
}

/// One kind of decoder layer: attention x MLP x norms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct LayerKind {
    pub attention: Attention,
    pub mlp: Mlp,
    pub norm: NormKind,
    /// Norms over the hidden width per layer: 2 (pre-attention and pre-MLP,
    /// or OLMo-2's two post-norms), 4 in Gemma-2/3 (pre and post each).
    pub norms: u64,
}

impl LayerKind {
    /// A short, stable name: `full_dense`, `sliding512_dense`, `latent_moe`...
    pub fn label(&self) -> String {
        let attention = match &self.attention {
            Attention::Standard(StandardAttention { window: Some(w), .. }) => format!("sliding{w}"),
            Attention::Standard(_) => "full".to_string(),
            Attention::Latent(_) => "latent".to_string(),
        };
        let mlp = match &self.mlp {
            Mlp::Dense(_) => "dense",
            Mlp::Moe(_) => "moe",
        };
        format!("{attention}_{mlp}")
    }
}

/// A whole decoder-only model: embeddings, layers (each a kind), final norm, LM head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelStack {
    /// The Hugging Face `model_type` it was read from (`layer_shape` for a
    /// stack built from today's shapes).
    pub model_type: String,
    pub hidden: u64,
    pub vocab: u64,
    /// Learned position embeddings (GPT-2's `n_positions`); none with RoPE.
    pub position_embeddings: Option<u64>,
    pub final_norm: NormKind,
    /// Whether the LM head reuses the embedding matrix.
    pub tie_embeddings: bool,
    /// The distinct kinds, in order of first appearance.
    pub kinds: Vec<LayerKind>,
    /// For each layer in order, the index of its kind in `kinds`.
    pub layers: Vec<usize>,
}

impl ModelStack {
    /// Builds a stack from one kind per layer, deduplicating kinds in order
    /// of first appearance.
    pub fn from_layers(
        model_type: impl Into<String>,
        hidden: u64,
        vocab: u64,
        layer_kinds: &[LayerKind],
        final_norm: NormKind,
        tie_embeddings: bool,
    ) -> ModelStack {
        let mut kinds: Vec<LayerKind> = Vec::new();
        let layers = layer_kinds
            .iter()
            .map(|k| match kinds.iter().position(|x| x == k) {
                Some(i) => i,
                None => {
                    kinds.push(*k);
                    kinds.len() - 1
                }
            })
            .collect();
        ModelStack {
            model_type: model_type.into(),
            hidden,
            vocab,
            position_embeddings: None,
            final_norm,
            tie_embeddings,
            kinds,
            layers,
        }
    }

    /// A candidate shape as a stack. Today's uniform dense layer is a stack
    /// of one kind: bias-free q, k, v and o, QK-norm per head when on, a
    /// gated MLP (GeGLU, as the harness measures it), two RMSNorms per layer,
    /// a final RMSNorm. Its [`crate::arch`] fields make more kinds: a layer
    /// pattern places its window on the sliding layers only (full attention
    /// on the others), `experts` makes every layer past `first_dense_layers`
    /// a mixture (router without bias, gated SiLU experts, shared experts of
    /// `shared_experts * shared_expert_ffn_dim`), `kv_lora_rank` makes the
    /// attention latent (no bias; `head_dim` is the no-RoPE query/key part).
    /// `None` for a plain layer (no `num_layers` or `vocab_size`).
    pub fn from_layer_shape(shape: &LayerShape) -> Option<ModelStack> {
        let (layers, vocab) = (shape.model.num_layers?, shape.model.vocab_size?);
        let standard = |window: Option<u64>| {
            Attention::Standard(StandardAttention {
                heads: shape.num_heads,
                kv_heads: shape.num_kv_heads,
                head_dim: shape.head_dim,
                q_bias: false,
                k_bias: false,
                v_bias: false,
                o_bias: false,
                qk_norm: if shape.use_qk_norm {
                    QkNorm::PerHead
                } else {
                    QkNorm::None
                },
                window,
                sinks: false,
            })
        };
        let latent = shape.arch.latent(shape.head_dim).map(|l| {
            Attention::Latent(LatentAttention {
                heads: shape.num_heads,
                q_lora_rank: l.q_lora_rank,
                kv_lora_rank: l.kv_lora_rank,
                qk_nope_head_dim: shape.head_dim,
                qk_rope_head_dim: l.rope_head_dim,
                v_head_dim: l.v_head_dim,
                bias: false,
            })
        });
        let dense = Mlp::Dense(DenseMlp {
            ffn: shape.ffn_dim,
            gated: true,
            bias: false,
            activation: "gelu_pytorch_tanh",
        });
        let moe = shape.arch.moe(shape.ffn_dim);
        let mixture = moe.map(|m| {
            Mlp::Moe(MoeMlp {
                experts: m.experts,
                top_k: m.top_k,
                expert_ffn: m.expert_ffn_dim,
                shared_experts: m.shared_experts,
                shared_ffn: m.shared_ffn(),
                shared_expert_gate: false,
                router_bias: false,
                expert_bias: false,
                activation: "silu",
            })
        });
        let kind = |attention: Attention, mlp: Mlp| LayerKind {
            attention,
            mlp,
            norm: NormKind::RmsNorm,
            norms: 2,
        };
        // A validated shape has at most MAX_LAYERS layers.
        let count = layers.min(MAX_LAYERS);
        let first_dense = moe.map_or(0, |m| m.first_dense_layers);
        let layer_kinds: Vec<LayerKind> = (0..count)
            .map(|i| {
                let attention = match (latent, shape.arch.layer_pattern) {
                    (Some(a), _) => a,
                    (None, Some(p)) if !p.is_sliding(i) => standard(None),
                    (None, _) => standard(shape.window_size),
                };
                let mlp = match mixture {
                    Some(m) if i >= first_dense => m,
                    _ => dense,
                };
                kind(attention, mlp)
            })
            .collect();
        let mut stack = ModelStack::from_layers(
            "layer_shape",
            shape.hidden_dim,
            vocab,
            &layer_kinds,
            NormKind::RmsNorm,
            shape.model.tie_embeddings.unwrap_or(false),
        );
        if stack.kinds.is_empty() {
            stack
                .kinds
                .push(kind(latent.unwrap_or(standard(shape.window_size)), dense));
        }
        Some(stack)
    }

    /// How many layers each kind has, in `kinds` order.
    pub fn layer_counts(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.kinds.len()];
        for &k in &self.layers {
            if let Some(c) = counts.get_mut(k) {
                *c += 1;
            }
        }
        counts
    }

    /// Whether any layer is a mixture of experts.
    pub fn is_moe(&self) -> bool {
        self.kinds.iter().any(|k| matches!(k.mlp, Mlp::Moe(_)))
    }

    /// Whether any layer uses latent attention.
    pub fn has_latent_attention(&self) -> bool {
        self.kinds.iter().any(|k| matches!(k.attention, Attention::Latent(_)))
    }

    /// Checks every size against the bounds of [`crate::shapes`] and the
    /// structural rules (kv heads dividing heads, top-k at most experts,
    /// every layer naming a kind), and that the parameter count fits in a
    /// u64 with room for bytes. Returns the first problem with the field it
    /// is about (stack field names; the config reader names its own keys
    /// before this runs).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, message: String| Err((field.to_string(), message));
        let size = |field: &str, v: u64, limit: u64| -> Result<(), (String, String)> {
            if v == 0 {
                return bad(field, "must be at least 1, got 0".into());
            }
            if v > limit {
                return bad(field, format!("{v} is absurdly large (the limit is {limit})"));
            }
            Ok(())
        };
        size("hidden", self.hidden, MAX_DIM)?;
        size("vocab", self.vocab, MAX_DIM)?;
        if let Some(p) = self.position_embeddings {
            size("position_embeddings", p, MAX_DIM)?;
        }
        size("layers", self.layers.len() as u64, MAX_LAYERS)?;
        if let Some(&k) = self.layers.iter().find(|&&k| k >= self.kinds.len()) {
            return bad("layers", format!("names kind {k}, but there are {}", self.kinds.len()));
        }
        for kind in &self.kinds {
            match &kind.attention {
                Attention::Standard(a) => {
                    size("heads", a.heads, MAX_DIM)?;
                    size("kv_heads", a.kv_heads, MAX_DIM)?;
                    size("head_dim", a.head_dim, MAX_DIM)?;
                    if let Some(w) = a.window {
                        size("window", w, MAX_DIM)?;
                    }
                    if a.kv_heads > a.heads || a.heads % a.kv_heads != 0 {
                        return bad(
                            "kv_heads",
                            format!("{} does not divide heads = {}", a.kv_heads, a.heads),
                        );
                    }
                }
                Attention::Latent(a) => {
                    size("heads", a.heads, MAX_DIM)?;
                    if let Some(q) = a.q_lora_rank {
                        size("q_lora_rank", q, MAX_DIM)?;
                    }
                    size("kv_lora_rank", a.kv_lora_rank, MAX_DIM)?;
                    size("qk_nope_head_dim", a.qk_nope_head_dim, MAX_DIM)?;
                    size("qk_rope_head_dim", a.qk_rope_head_dim, MAX_DIM)?;
                    size("v_head_dim", a.v_head_dim, MAX_DIM)?;
                }
            }
            match &kind.mlp {
                Mlp::Dense(m) => size("ffn", m.ffn, MAX_DIM)?,
                Mlp::Moe(m) => {
                    size("experts", m.experts, MAX_EXPERTS)?;
                    size("top_k", m.top_k, MAX_EXPERTS)?;
                    size("expert_ffn", m.expert_ffn, MAX_DIM)?;
                    if m.shared_ffn > MAX_DIM {
                        return bad(
                            "shared_ffn",
                            format!("{} is absurdly large (the limit is {MAX_DIM})", m.shared_ffn),
                        );
                    }
                    if m.top_k > m.experts {
                        return bad("top_k", format!("{} is above experts = {}", m.top_k, m.experts));
                    }
                }
            }
            if kind.norms > 8 {
                return bad(
                    "norms",
                    format!("{} norms per layer is more than any model has (8)", kind.norms),
                );
            }
        }
        // Every count and byte figure must fit in a u64: counts saturate, so
        // a saturated total is an overflow.
        let total = params::count(self).total;
        if total >= u64::MAX / 64 {
            return bad(
                "layers",
                "these sizes make the parameter count overflow a 64-bit integer".into(),
            );
        }
        Ok(())
    }
}
