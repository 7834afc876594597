//! What makes a candidate more than one uniform dense layer repeated: a
//! mixture of experts, a layer pattern of sliding-window and full layers,
//! and multi-head latent attention. The rules live here once; the shape
//! ([`crate::shapes::LayerShape::validate`]), the spec builder (DSL and JSON
//! spec), the family axes and the CLI read them through this module.
//!
//! A candidate with any of these fields is a whole model built as a stack of
//! layer kinds ([`crate::stack::ModelStack::from_layer_shape`]): its
//! parameters, active parameters, weight and KV-cache bytes, memory fit,
//! prefill and decode come from the stack, never from a second formula.
//!
//! - **Mixture of experts**: `experts` routed experts (at least 2), `top_k`
//!   of them per token, each a gated MLP of `expert_ffn_dim` (default: the
//!   shape's `ffn_dim`); `shared_experts` shared experts of
//!   `shared_expert_ffn_dim` each (default: `expert_ffn_dim`) that see every
//!   token; a router (hidden x experts, no bias). `first_dense_layers`: the
//!   first layers are dense MLPs of `ffn_dim` (DeepSeek's
//!   `first_k_dense_replace`). The routing the costs assume is balanced.
//! - **Layer pattern** `"a:b"`: `a` sliding-window layers (the shape's
//!   `window_size`) then `b` full-attention layers, repeating from the first
//!   layer over `num_layers` (`"5:1"`: Gemma-3; `"1:1"`: Gemma-2 and
//!   gpt-oss alternation). Without a pattern every layer has the shape's window.
//! - **Latent attention** (DeepSeek's MLA): keys and values through a
//!   compressed `kv_lora_rank` latent plus a shared RoPE key of
//!   `rope_head_dim` (default 64, transformers' default), queries through an
//!   optional `q_lora_rank`; the shape's `head_dim` is the no-RoPE part of a
//!   query/key head, `v_head_dim` the value head (default `head_dim`). It has
//!   no kv heads of its own (`num_kv_heads` = `num_heads`), no window and no
//!   QK-norm (its norms sit on the compressed q and kv).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::shapes::{LayerShape, ShapeProblem, MAX_DIM, MAX_EXPERTS, MAX_LAYERS};

/// transformers' default `qk_rope_head_dim` (DeepSeek-V2/V3).
pub const DEFAULT_ROPE_HEAD_DIM: u64 = 64;

/// The JSON keys and DSL fields of [`Architecture`], in order.
pub const ARCH_KEYS: [&str; 11] = [
    "experts",
    "top_k",
    "expert_ffn_dim",
    "shared_experts",
    "shared_expert_ffn_dim",
    "first_dense_layers",
    "layer_pattern",
    "kv_lora_rank",
    "q_lora_rank",
    "rope_head_dim",
    "v_head_dim",
];

/// `"a:b"`: `sliding` sliding-window layers, then `full` full-attention
/// layers, repeating from the first layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LayerPattern {
    pub sliding: u64,
    pub full: u64,
}

impl LayerPattern {
    /// Whether layer `i` (0-based) is a sliding-window layer.
    pub fn is_sliding(&self, layer: u64) -> bool {
        layer % (self.sliding + self.full) < self.sliding
    }
}

impl fmt::Display for LayerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.sliding, self.full)
    }
}

impl FromStr for LayerPattern {
    type Err = String;

    /// `"5:1"`: two positive integers (at most [`MAX_LAYERS`] each) around a colon.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`layer_pattern` must be \"a:b\" (a sliding-window layers, then b full-attention layers, two \
                 positive integers: \"5:1\", \"1:1\"), got {text:?}"
            )
        };
        let (a, b) = text.split_once(':').ok_or_else(bad)?;
        let number = |s: &str| -> Result<u64, String> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u64 = s.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(format!(
                    "`layer_pattern` {text:?}: both counts must be at least 1 (a pattern without sliding or without \
                     full layers is a uniform stack: give `window` alone, or no window)"
                ));
            }
            if n > MAX_LAYERS {
                return Err(format!(
                    "`layer_pattern` {text:?}: {n} layers is absurdly many (the limit is {MAX_LAYERS})"
                ));
            }
            Ok(n)
        };
        Ok(LayerPattern {
            sliding: number(a)?,
            full: number(b)?,
        })
    }
}

impl TryFrom<String> for LayerPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<LayerPattern> for String {
    fn from(p: LayerPattern) -> String {
        p.to_string()
    }
}

/// The mixture-of-experts, layer-pattern and latent-attention fields of a
/// candidate (all optional; every key omitted from JSON when unset, so a
/// dense uniform shape reads and writes as before they existed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Architecture {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert_ffn_dim: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_experts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_expert_ffn_dim: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_dense_layers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_pattern: Option<LayerPattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_lora_rank: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_lora_rank: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_head_dim: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v_head_dim: Option<u64>,
}

/// The mixture of a candidate, defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moe {
    pub experts: u64,
    pub top_k: u64,
    pub expert_ffn_dim: u64,
    pub shared_experts: u64,
    /// Each shared expert's width.
    pub shared_expert_ffn_dim: u64,
    pub first_dense_layers: u64,
}

impl Moe {
    /// The total width of the shared experts.
    pub fn shared_ffn(&self) -> u64 {
        self.shared_experts.saturating_mul(self.shared_expert_ffn_dim)
    }

    /// The width one token passes through: `top_k * expert_ffn_dim` plus the shared experts.
    pub fn token_width(&self) -> u64 {
        self.top_k
            .saturating_mul(self.expert_ffn_dim)
            .saturating_add(self.shared_ffn())
    }
}

/// The latent attention of a candidate, defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latent {
    pub kv_lora_rank: u64,
    pub q_lora_rank: Option<u64>,
    pub rope_head_dim: u64,
    pub v_head_dim: u64,
}

fn at(key: &'static str, message: impl Into<String>) -> ShapeProblem {
    ShapeProblem::at(key, message)
}

impl Architecture {
    /// A dense uniform candidate: nothing set.
    pub const NONE: Architecture = Architecture {
        experts: None,
        top_k: None,
        expert_ffn_dim: None,
        shared_experts: None,
        shared_expert_ffn_dim: None,
        first_dense_layers: None,
        layer_pattern: None,
        kv_lora_rank: None,
        q_lora_rank: None,
        rope_head_dim: None,
        v_head_dim: None,
    };

    /// Whether any field is set (the candidate is then a stack of layer kinds).
    pub fn is_set(&self) -> bool {
        *self != Architecture::NONE
    }

    /// The first field that is set, by its key.
    pub fn first_key(&self) -> Option<&'static str> {
        self.sizes()
            .into_iter()
            .find(|(_, v)| v.is_some())
            .map(|(k, _)| k)
            .or(self.layer_pattern.map(|_| "layer_pattern"))
    }

    /// The size fields with their keys (every field but the pattern).
    fn sizes(&self) -> [(&'static str, Option<u64>); 10] {
        [
            ("experts", self.experts),
            ("top_k", self.top_k),
            ("expert_ffn_dim", self.expert_ffn_dim),
            ("shared_experts", self.shared_experts),
            ("shared_expert_ffn_dim", self.shared_expert_ffn_dim),
            ("first_dense_layers", self.first_dense_layers),
            ("kv_lora_rank", self.kv_lora_rank),
            ("q_lora_rank", self.q_lora_rank),
            ("rope_head_dim", self.rope_head_dim),
            ("v_head_dim", self.v_head_dim),
        ]
    }

    /// The mixture, with defaults, if `experts` and `top_k` are set.
    pub fn moe(&self, ffn_dim: u64) -> Option<Moe> {
        let (experts, top_k) = (self.experts?, self.top_k?);
        let expert_ffn_dim = self.expert_ffn_dim.unwrap_or(ffn_dim);
        Some(Moe {
            experts,
            top_k,
            expert_ffn_dim,
            shared_experts: self.shared_experts.unwrap_or(0),
            shared_expert_ffn_dim: self.shared_expert_ffn_dim.unwrap_or(expert_ffn_dim),
            first_dense_layers: self.first_dense_layers.unwrap_or(0),
        })
    }

    /// The latent attention, with defaults, if `kv_lora_rank` is set.
    pub fn latent(&self, head_dim: u64) -> Option<Latent> {
        Some(Latent {
            kv_lora_rank: self.kv_lora_rank?,
            q_lora_rank: self.q_lora_rank,
            rope_head_dim: self.rope_head_dim.unwrap_or(DEFAULT_ROPE_HEAD_DIM),
            v_head_dim: self.v_head_dim.unwrap_or(head_dim),
        })
    }

    /// The rules, for a shape whose own fields are already valid; the first
    /// problem with the key it is about.
    pub fn check(&self, shape: &LayerShape) -> Result<(), ShapeProblem> {
        if !self.is_set() {
            return Ok(());
        }
        let limits = [
            ("experts", self.experts, MAX_EXPERTS),
            ("top_k", self.top_k, MAX_EXPERTS),
            ("expert_ffn_dim", self.expert_ffn_dim, MAX_DIM),
            ("shared_experts", self.shared_experts, MAX_EXPERTS),
            ("shared_expert_ffn_dim", self.shared_expert_ffn_dim, MAX_DIM),
            ("first_dense_layers", self.first_dense_layers, MAX_LAYERS),
            ("kv_lora_rank", self.kv_lora_rank, MAX_DIM),
            ("q_lora_rank", self.q_lora_rank, MAX_DIM),
            ("rope_head_dim", self.rope_head_dim, MAX_DIM),
            ("v_head_dim", self.v_head_dim, MAX_DIM),
        ];
        for (key, value, limit) in limits {
            match value {
                Some(0) => return Err(at(key, format!("`{key}` must be at least 1, got 0"))),
                Some(v) if v > limit => {
                    return Err(at(
                        key,
                        format!("`{key}` = {v} is absurdly large (the limit is {limit})"),
                    ))
                }
                _ => {}
            }
        }
        // A stack needs its layers and vocabulary.
        if shape.model.num_layers.is_none() || shape.model.vocab_size.is_none() {
            let key = self.first_key().unwrap_or("experts");
            return Err(at(
                key,
                format!(
                    "`{key}` makes the candidate a stack of layer kinds: it needs `num_layers` and `vocab_size` \
                     (a whole model)"
                ),
            ));
        }
        if !shape.precision.is_bf16() {
            let key = if shape.precision.weights.is_bf16() {
                "kv_cache"
            } else {
                "weights"
            };
            return Err(at(
                key,
                format!(
                    "{} is not priced for mixture-of-experts, layer-pattern or latent-attention candidates yet \
                     (their stacks are counted and timed in bf16): leave `{key}` at bf16",
                    shape.precision.label()
                ),
            ));
        }
        self.check_moe(shape)?;
        self.check_pattern(shape)?;
        self.check_latent(shape)
    }

    fn check_moe(&self, shape: &LayerShape) -> Result<(), ShapeProblem> {
        let Some(experts) = self.experts else {
            for (key, value) in [
                ("top_k", self.top_k),
                ("expert_ffn_dim", self.expert_ffn_dim),
                ("shared_experts", self.shared_experts),
                ("shared_expert_ffn_dim", self.shared_expert_ffn_dim),
                ("first_dense_layers", self.first_dense_layers),
            ] {
                if value.is_some() {
                    return Err(at(
                        key,
                        format!("`{key}` is a mixture-of-experts field: it needs `experts` (how many routed experts)"),
                    ));
                }
            }
            return Ok(());
        };
        if experts < 2 {
            return Err(at(
                "experts",
                "`experts` = 1 is a dense MLP: a mixture needs at least 2 experts (leave `experts` out for a dense \
                 layer)",
            ));
        }
        let Some(top_k) = self.top_k else {
            return Err(at(
                "experts",
                "`experts` needs `top_k`: how many experts each token is routed to",
            ));
        };
        if top_k > experts {
            return Err(at(
                "top_k",
                format!(
                    "`top_k` = {top_k} is above `experts` = {experts}: a token cannot pick more experts than exist"
                ),
            ));
        }
        if self.shared_expert_ffn_dim.is_some() && self.shared_experts.is_none() {
            return Err(at(
                "shared_expert_ffn_dim",
                "`shared_expert_ffn_dim` needs `shared_experts` (how many shared experts)",
            ));
        }
        let layers = shape.model.num_layers.unwrap_or(0);
        if let Some(dense) = self.first_dense_layers {
            if dense >= layers {
                return Err(at(
                    "first_dense_layers",
                    format!(
                        "`first_dense_layers` = {dense} leaves no mixture-of-experts layer among the {layers} \
                         (it must be below `num_layers`)"
                    ),
                ));
            }
        }
        let moe = self
            .moe(shape.ffn_dim)
            .ok_or_else(|| at("experts", "internal: no mixture"))?;
        let width = moe.token_width();
        if width > MAX_DIM {
            return Err(at(
                "top_k",
                format!(
                    "the width one token passes through the mixture (top_k x expert_ffn_dim + shared experts) = \
                     {width} is absurdly large (the limit is {MAX_DIM})"
                ),
            ));
        }
        Ok(())
    }

    fn check_pattern(&self, shape: &LayerShape) -> Result<(), ShapeProblem> {
        let Some(p) = self.layer_pattern else {
            return Ok(());
        };
        if shape.window_size.is_none() {
            return Err(at(
                "layer_pattern",
                format!(
                    "`layer_pattern` = \"{p}\" places sliding-window layers: it needs a `window` (the sliding \
                     layers' window in tokens)"
                ),
            ));
        }
        Ok(())
    }

    fn check_latent(&self, shape: &LayerShape) -> Result<(), ShapeProblem> {
        let Some(rank) = self.kv_lora_rank else {
            for (key, value) in [
                ("q_lora_rank", self.q_lora_rank),
                ("rope_head_dim", self.rope_head_dim),
                ("v_head_dim", self.v_head_dim),
            ] {
                if value.is_some() {
                    return Err(at(
                        key,
                        format!(
                            "`{key}` is a latent-attention field: it needs `kv_lora_rank` (the compressed KV width)"
                        ),
                    ));
                }
            }
            return Ok(());
        };
        let d = shape.hidden_dim;
        if rank >= d {
            return Err(at(
                "kv_lora_rank",
                format!(
                    "`kv_lora_rank` = {rank} is not below `hidden_dim` = {d}: a latent that wide compresses nothing"
                ),
            ));
        }
        if let Some(q) = self.q_lora_rank {
            if q >= d {
                return Err(at(
                    "q_lora_rank",
                    format!("`q_lora_rank` = {q} is not below `hidden_dim` = {d}: a query latent that wide compresses nothing"),
                ));
            }
        }
        if shape.num_kv_heads != shape.num_heads {
            return Err(at(
                "num_kv_heads",
                format!(
                    "latent attention expands its keys and values for every head: `kv_heads` must equal `heads` = {} \
                     (got {})",
                    shape.num_heads, shape.num_kv_heads
                ),
            ));
        }
        if let Some(w) = shape.window_size {
            return Err(at(
                "window_size",
                format!("latent attention attends to the whole context here: it takes no window (got {w})"),
            ));
        }
        if shape.use_qk_norm {
            return Err(at(
                "use_qk_norm",
                "latent attention has no QK-norm (its norms sit on the compressed q and kv): set `qk_norm: false`",
            ));
        }
        Ok(())
    }
}

impl LayerShape {
    /// The dense layer that stands in for this candidate in the layer models
    /// (which have no expert or latent kernels): a mixture's MLP at the width
    /// one token passes through (`top_k * expert_ffn_dim` + shared experts),
    /// latent attention as its heads at the query/key head width
    /// (`head_dim + rope_head_dim`, kv heads = heads), as
    /// [`crate::stack::latency::stand_in`] builds it for a stack's kind. A
    /// dense uniform shape is its own view.
    pub fn layer_view(&self) -> LayerShape {
        if !self.arch.is_set() {
            return *self;
        }
        let mut view = LayerShape {
            arch: Architecture::NONE,
            ..*self
        };
        if let Some(m) = self.arch.moe(self.ffn_dim) {
            view.ffn_dim = m.token_width().clamp(1, MAX_DIM);
        }
        if let Some(l) = self.arch.latent(self.head_dim) {
            view.num_kv_heads = view.num_heads;
            view.head_dim = self.head_dim.saturating_add(l.rope_head_dim).min(MAX_DIM);
            view.use_qk_norm = false;
            view.window_size = None;
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_read_and_write_as_text() {
        let p: LayerPattern = "5:1".parse().unwrap();
        assert_eq!(p, LayerPattern { sliding: 5, full: 1 });
        assert_eq!(p.to_string(), "5:1");
        let placed: Vec<bool> = (0..12).map(|i| p.is_sliding(i)).collect();
        assert_eq!(
            placed,
            [true, true, true, true, true, false, true, true, true, true, true, false]
        );
        for bad in ["5", "5:", ":1", "a:1", "5:1:1", "-1:1", "5 :1", "+5:1"] {
            let e = bad.parse::<LayerPattern>().unwrap_err();
            assert!(e.contains("must be \"a:b\""), "{bad}: {e}");
        }
        assert!("0:1".parse::<LayerPattern>().unwrap_err().contains("at least 1"));
        assert!("70000:1".parse::<LayerPattern>().unwrap_err().contains("absurdly many"));
        assert!("99999999999999999999999:1"
            .parse::<LayerPattern>()
            .unwrap_err()
            .contains("must be"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"5:1\"");
        assert!(serde_json::from_str::<LayerPattern>("\"0:1\"").is_err());
    }
}
