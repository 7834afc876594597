//! Layer shapes and candidates, and the rules that make a shape valid.
//!
//! Validation lives here once: the CLI, the pack builder and the `nas_search!`
//! macro all call [`LayerShape::validate`], so a shape accepted anywhere is
//! accepted everywhere.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::arch::{Architecture, LayerPattern, ARCH_KEYS};
use crate::error::{hint_or_list, Error, Result};
use crate::model::ModelDims;
use crate::precision::{KvCachePrecision, Precision, WeightPrecision};

/// Largest value accepted for any single size. Far above any real model
/// (Llama-3-405B has 16384 hidden, 53248 ffn), small enough that a typo like
/// `4096000000` is caught as absurd rather than silently evaluated.
pub const MAX_DIM: u64 = 1 << 24;

/// `use_qk_norm` of a shape that does not say (a JSON shape without the key,
/// a DSL or JSON-spec candidate without `qk_norm`, a family without a
/// `qk_norm` axis): off, as in Llama, Mistral and Qwen2.5, and in every
/// Hugging Face config, which has no such key. The seed tool defaulted to on;
/// its data says `true` where it meant it (`search/seed.rs`), and every shape
/// a report shows carries the value it was evaluated with.
pub const DEFAULT_USE_QK_NORM: bool = false;

/// One decoder layer's shape in the seed tool's keys.
///
/// `hidden_dim` need not equal `num_heads * head_dim` (Gemma-3-1B has 1152
/// hidden and 4 heads of 256), so both are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerShape {
    pub hidden_dim: u64,
    pub num_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    pub ffn_dim: u64,
    pub seq_len: u64,
    pub batch_size: u64,
    /// RMSNorm of queries and keys before RoPE (Qwen3, Gemma 3, OLMo 2 have
    /// it; Llama, Mistral, Qwen2.5 do not). Where a shape is written without
    /// it, it is [`DEFAULT_USE_QK_NORM`]: off.
    pub use_qk_norm: bool,
    /// Sliding-window size in tokens; `None` is full causal attention.
    pub window_size: Option<u64>,
    /// What makes the layer a whole model (layers, vocabulary...); none for
    /// the seed's plain layers, and then absent from their JSON.
    #[serde(flatten)]
    pub model: ModelDims,
    /// The deployment precision of the weights and KV cache (`weights`,
    /// `kv_cache` in JSON, both omitted when bf16, so a bf16 shape reads and
    /// writes as before precision existed).
    #[serde(flatten)]
    pub precision: Precision,
    /// Mixture of experts, layer pattern and latent attention
    /// ([`crate::arch`]): every key omitted from JSON when unset, so a dense
    /// uniform shape reads and writes as before they existed.
    #[serde(flatten)]
    pub arch: Architecture,
}

/// The JSON keys of a shape, in the seed's order (and `name`, which travels with it).
pub const SHAPE_KEYS: [&str; 10] = [
    "name",
    "hidden_dim",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "ffn_dim",
    "seq_len",
    "batch_size",
    "use_qk_norm",
    "window_size",
];

/// The JSON keys that make a shape a whole model (all optional).
pub const MODEL_KEYS: [&str; 5] = [
    "num_layers",
    "vocab_size",
    "tie_embeddings",
    "context_len",
    "training_tokens",
];

/// The JSON keys of a shape's deployment precision (both optional, bf16 when absent).
pub const PRECISION_KEYS: [&str; 2] = ["weights", "kv_cache"];

/// Most layers a model may have.
pub const MAX_LAYERS: u64 = 1 << 16;

/// Most experts a mixture-of-experts layer may have (the largest released
/// models have a few hundred).
pub const MAX_EXPERTS: u64 = 1 << 16;

/// Most training tokens a loss estimate accepts (10^16, far beyond any run so far).
pub const MAX_TRAINING_TOKENS: u64 = 10_000_000_000_000_000;

impl LayerShape {
    /// Tokens in one forward pass: the M of every GEMM.
    pub fn tokens(&self) -> u64 {
        self.batch_size * self.seq_len
    }

    /// Keys attended per query: the window when one is set, else the sequence.
    pub fn kv_len(&self) -> u64 {
        match self.window_size {
            Some(w) if w > 0 => w.min(self.seq_len),
            _ => self.seq_len,
        }
    }

    /// Query heads per kv head.
    pub fn gqa_group(&self) -> u64 {
        self.num_heads / self.num_kv_heads
    }

    /// Checks the shape and returns the first problem, with the key it is about.
    ///
    /// Rejects zero and absurd sizes, kv heads above heads or not dividing
    /// them, and sizes whose FLOP or byte counts would not fit in a u64.
    pub fn validate(&self) -> std::result::Result<(), ShapeProblem> {
        let sizes = [
            ("hidden_dim", self.hidden_dim),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("ffn_dim", self.ffn_dim),
            ("seq_len", self.seq_len),
            ("batch_size", self.batch_size),
        ];
        for (key, v) in sizes {
            if v == 0 {
                return Err(ShapeProblem::at(key, format!("`{key}` must be at least 1, got 0")));
            }
            if v > MAX_DIM {
                let message = format!("`{key}` = {v} is absurdly large (the limit is {MAX_DIM})");
                return Err(ShapeProblem::at(key, message));
            }
        }
        match self.window_size {
            Some(0) => {
                let message = "`window_size` must be at least 1, or null for full attention";
                return Err(ShapeProblem::at("window_size", message));
            }
            Some(w) if w > MAX_DIM => {
                let message =
                    format!("`window_size` = {w} is absurdly large (the limit is {MAX_DIM}; null is full attention)");
                return Err(ShapeProblem::at("window_size", message));
            }
            _ => {}
        }
        let (h, kv) = (self.num_heads, self.num_kv_heads);
        if kv > h {
            let message = format!("`num_kv_heads` = {kv} is above `num_heads` = {h}");
            return Err(ShapeProblem::at("num_kv_heads", message));
        }
        if h % kv != 0 {
            let message = format!("`num_kv_heads` = {kv} does not divide `num_heads` = {h}");
            return Err(ShapeProblem::at("num_kv_heads", message));
        }
        self.validate_model()?;
        self.arch.check(self)?;
        if self.arch.is_set() {
            // The dense layer that stands in for it in the layer models, and
            // its stack's counts, must be valid too.
            self.layer_view().validate().map_err(|p| ShapeProblem {
                key: None,
                message: p.message,
            })?;
            if let Some(stack) = crate::stack::ModelStack::from_layer_shape(self) {
                stack.validate().map_err(|(field, message)| ShapeProblem {
                    key: None,
                    message: format!("its stack of layers: `{field}` {message}"),
                })?;
            }
        }
        match self.largest_count() {
            Some(_) => Ok(()),
            None => Err(ShapeProblem {
                key: None,
                message: "these sizes make FLOP or byte counts overflow a 64-bit integer".into(),
            }),
        }
    }

    /// Checks the whole-model fields that are set.
    fn validate_model(&self) -> std::result::Result<(), ShapeProblem> {
        let m = &self.model;
        let limits = [
            ("num_layers", m.num_layers, MAX_LAYERS),
            ("vocab_size", m.vocab_size, MAX_DIM),
            ("context_len", m.context_len, MAX_DIM),
            ("training_tokens", m.training_tokens, MAX_TRAINING_TOKENS),
        ];
        for (key, value, limit) in limits {
            match value {
                Some(0) => return Err(ShapeProblem::at(key, format!("`{key}` must be at least 1, got 0"))),
                Some(v) if v > limit => {
                    let message = format!("`{key}` = {v} is absurdly large (the limit is {limit})");
                    return Err(ShapeProblem::at(key, message));
                }
                _ => {}
            }
        }
        if let (Some(layers), Some(vocab)) = (m.num_layers, m.vocab_size) {
            // Every parameter and weight byte must fit in a u64.
            let d = self.hidden_dim;
            let per_layer = [
                mul(&[4, d, self.num_heads, self.head_dim]),
                mul(&[3, d, self.ffn_dim]),
                mul(&[4, d, self.num_kv_heads, self.head_dim]),
            ];
            let total = per_layer
                .into_iter()
                .try_fold(0u64, |acc, x| acc.checked_add(x?))
                .and_then(|layer| mul(&[layer, layers, 2]))
                .and_then(|layers| mul(&[2, vocab, d, 2])?.checked_add(layers));
            if total.is_none() {
                let message = "these sizes make the parameter count overflow a 64-bit integer";
                return Err(ShapeProblem::at("num_layers", message));
            }
        }
        Ok(())
    }

    /// The largest FLOP or byte count any kernel of this layer needs, in
    /// either cost model (the seed's exact counts, and the kernel-aware
    /// model's counts on tiles, padded head sizes and whole blocks), if every
    /// one of them fits in a u64.
    fn largest_count(&self) -> Option<u64> {
        let (b, s, d, h, kv, dh, f) = (
            self.batch_size,
            self.seq_len,
            self.hidden_dim,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
            self.ffn_dim,
        );
        let m = b.checked_mul(s)?;
        let qkv_n = h.checked_add(kv.checked_mul(2)?)?.checked_mul(dh)?;
        let attn_heads_dim = h.checked_mul(dh)?;
        let ffn2 = f.checked_mul(2)?;
        let up = |x: u64, to: u64| x.checked_next_multiple_of(to);
        let dh_padded = if dh <= 64 { 64 } else { up(dh, 128)? };
        let q_blocks = s.div_ceil(128);
        let blocks = mul(&[q_blocks, q_blocks + 1])? / 2;
        // the GEMMs as (N, K), M = tokens: qkv, output, gate-up, down
        let gemms = [(qkv_n, d), (d, attn_heads_dim), (ffn2, d), (d, f)];
        let mut counts = vec![
            // attention: 4*B*H*S*S_kv*Dh; per block in the kernel-aware model
            mul(&[4, b, h, s, self.kv_len(), dh])?,
            mul(&[4, b, h, blocks, 128 * 128, dh_padded])?,
            mul(&[4, b, h, up(s, 128)?, dh_padded])?,
            // residual bytes, activation bytes, q/k norm bytes
            mul(&[6, m, d])?,
            mul(&[6, m, f])?,
            mul(&[4, m, h.checked_add(kv)?, dh])?,
        ];
        for (n, k) in gemms {
            // 2*M*N*K, on whole 128 x 256 tiles, and the bytes of A, B and C
            counts.push(mul(&[2, m, n, k])?);
            counts.push(mul(&[2, up(m, 128)?, up(n, 256)?, k])?);
            let bytes = mul(&[m, k])?.checked_add(mul(&[n, k])?)?.checked_add(mul(&[m, n])?)?;
            counts.push(mul(&[2, bytes])?);
        }
        counts.into_iter().max()
    }

    /// Reads a shape from a JSON object in the seed's keys. `place` names the
    /// object in error messages (e.g. `configs[3]`).
    ///
    /// Unknown keys are errors (with a "did you mean"), so a typo never
    /// silently falls back to a default.
    pub fn from_json(value: &Value, place: &str) -> Result<(Option<String>, LayerShape)> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::input(place, format!("expected a JSON object, got {}", kind_of(value))))?;
        for key in obj.keys() {
            if !SHAPE_KEYS.contains(&key.as_str())
                && !MODEL_KEYS.contains(&key.as_str())
                && !PRECISION_KEYS.contains(&key.as_str())
                && !ARCH_KEYS.contains(&key.as_str())
            {
                return Err(Error::input(
                    place,
                    format!(
                        "unknown key `{key}`{}",
                        hint_or_list(
                            key,
                            SHAPE_KEYS
                                .iter()
                                .chain(&MODEL_KEYS)
                                .chain(&PRECISION_KEYS)
                                .chain(&ARCH_KEYS)
                                .copied(),
                        )
                    ),
                ));
            }
        }
        let name = match obj.get("name") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(Error::input(
                    place,
                    format!("`name` must be a string, got {}", kind_of(other)),
                ))
            }
        };
        let size = |key: &str, default: Option<u64>| -> Result<u64> {
            match (obj.get(key), default) {
                (None, Some(d)) => Ok(d),
                (None, None) => Err(Error::input(place, format!("missing key `{key}`"))),
                (Some(v), _) => json_size(v)
                    .ok_or_else(|| Error::input(place, format!("`{key}` must be a positive integer, got {v}"))),
            }
        };
        let use_qk_norm = match obj.get("use_qk_norm") {
            None => DEFAULT_USE_QK_NORM,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::input(
                    place,
                    format!("`use_qk_norm` must be true or false, got {other}"),
                ))
            }
        };
        let window_size = match obj.get("window_size") {
            None | Some(Value::Null) => None,
            Some(v) => Some(json_size(v).ok_or_else(|| {
                Error::input(
                    place,
                    format!("`window_size` must be a positive integer or null, got {v}"),
                )
            })?),
        };
        let optional = |key: &str| -> Result<Option<u64>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => json_size(v)
                    .map(Some)
                    .ok_or_else(|| Error::input(place, format!("`{key}` must be a positive integer, got {v}"))),
            }
        };
        let tie_embeddings = match obj.get("tie_embeddings") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(Error::input(
                    place,
                    format!("`tie_embeddings` must be true or false, got {other}"),
                ))
            }
        };
        let word = |key: &str| -> Result<Option<&str>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(Error::input(
                    place,
                    format!("`{key}` must be a string (\"bf16\", \"fp8\"...), got {other}"),
                )),
            }
        };
        let weights = match word("weights")? {
            None => WeightPrecision::Bf16,
            Some(w) => WeightPrecision::from_name(w).map_err(|e| Error::input(format!("{place}.weights"), e))?,
        };
        let kv_cache = match word("kv_cache")? {
            None => KvCachePrecision::Bf16,
            Some(w) => KvCachePrecision::from_name(w).map_err(|e| Error::input(format!("{place}.kv_cache"), e))?,
        };
        let layer_pattern = match obj.get("layer_pattern") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(
                text.parse::<LayerPattern>()
                    .map_err(|e| Error::input(format!("{place}.layer_pattern"), e))?,
            ),
            Some(other) => {
                return Err(Error::input(
                    place,
                    format!("`layer_pattern` must be a string (\"5:1\"), got {other}"),
                ))
            }
        };
        let arch = Architecture {
            experts: optional("experts")?,
            top_k: optional("top_k")?,
            expert_ffn_dim: optional("expert_ffn_dim")?,
            shared_experts: optional("shared_experts")?,
            shared_expert_ffn_dim: optional("shared_expert_ffn_dim")?,
            first_dense_layers: optional("first_dense_layers")?,
            layer_pattern,
            kv_lora_rank: optional("kv_lora_rank")?,
            q_lora_rank: optional("q_lora_rank")?,
            rope_head_dim: optional("rope_head_dim")?,
            v_head_dim: optional("v_head_dim")?,
        };
        let model = ModelDims {
            num_layers: optional("num_layers")?,
            vocab_size: optional("vocab_size")?,
            tie_embeddings,
            context_len: optional("context_len")?,
            training_tokens: optional("training_tokens")?,
            ..ModelDims::NONE
        };
        let shape = LayerShape {
            hidden_dim: size("hidden_dim", None)?,
            num_heads: size("num_heads", None)?,
            num_kv_heads: size("num_kv_heads", None)?,
            head_dim: size("head_dim", None)?,
            ffn_dim: size("ffn_dim", None)?,
            seq_len: size("seq_len", None)?,
            batch_size: size("batch_size", Some(1))?,
            use_qk_norm,
            window_size,
            model,
            precision: Precision::new(weights, kv_cache),
            arch,
        };
        let label = match &name {
            Some(n) => format!("{place} (`{n}`)"),
            None => place.to_string(),
        };
        shape.validate().map_err(|problem| Error::shape(label, problem))?;
        Ok((name, shape))
    }
}

/// Reads a list of named shapes (the file of `nas predict --configs`): a JSON
/// array of shape objects, each with a `name`. `place` names the file.
pub fn configs_from_json(doc: &Value, place: &str) -> Result<Vec<(String, LayerShape)>> {
    let items = doc
        .as_array()
        .ok_or_else(|| Error::input(place, format!("expected a JSON array of shapes, got {}", kind_of(doc))))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{place}: configs[{i}]");
            let (name, shape) = LayerShape::from_json(item, &at)?;
            let name = name.ok_or_else(|| Error::input(&at, "missing key `name`"))?;
            Ok((name, shape))
        })
        .collect()
}

/// Why a shape is invalid, and which key (seed spelling) it is about, so
/// that the macro can point at that token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeProblem {
    pub key: Option<&'static str>,
    pub message: String,
}

impl ShapeProblem {
    pub(crate) fn at(key: &'static str, message: impl Into<String>) -> Self {
        ShapeProblem {
            key: Some(key),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ShapeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ShapeProblem> for String {
    fn from(p: ShapeProblem) -> String {
        p.message
    }
}

/// Short spellings accepted for shape keys in specs (`heads` for `num_heads`...).
pub const KEY_ALIASES: [(&str, &str); 4] = [
    ("heads", "num_heads"),
    ("kv_heads", "num_kv_heads"),
    ("qk_norm", "use_qk_norm"),
    ("window", "window_size"),
];

/// The seed spelling of a shape key or alias, if it is one.
pub fn canonical_key(name: &str) -> Option<&'static str> {
    KEY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, key)| *key)
        .or_else(|| SHAPE_KEYS.iter().find(|k| **k == name).copied())
        .or_else(|| MODEL_KEYS[..4].iter().find(|k| **k == name).copied())
        .or_else(|| PRECISION_KEYS.iter().find(|k| **k == name).copied())
        .or_else(|| ARCH_KEYS.iter().find(|k| **k == name).copied())
}

fn mul(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f))
}

/// A non-negative JSON integer (also `2048.0`), or None. Sign and size are
/// checked later by `validate`, so `0` passes here and is rejected there.
fn json_size(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

/// "a string", "an array"...: for error messages about JSON values.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A named shape with the label of where it came from (`known_model`,
/// `seed_candidate`, `generated_candidate`, or a user's own).
///
/// Names and labels are `Cow<'static, str>` so that `nas_search!` can emit
/// candidate tables as `const` items while run-time code builds owned ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    pub name: Cow<'static, str>,
    pub source: Cow<'static, str>,
    pub shape: LayerShape,
}

impl Candidate {
    pub fn new(name: impl Into<Cow<'static, str>>, source: impl Into<Cow<'static, str>>, shape: LayerShape) -> Self {
        Candidate {
            name: name.into(),
            source: source.into(),
            shape,
        }
    }
}

/// A field of [`LayerShape`], for saying what a kernel or a metric reads
/// (the streaming search computes each term once per distinct value of the
/// fields it reads, not once per candidate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShapeField {
    HiddenDim,
    NumHeads,
    NumKvHeads,
    HeadDim,
    FfnDim,
    SeqLen,
    BatchSize,
    UseQkNorm,
    WindowSize,
    NumLayers,
    VocabSize,
    TieEmbeddings,
    ContextLen,
    /// The weights' precision: which GEMM kernels run and how many bytes they read.
    Weights,
    /// The KV cache's precision: how many bytes decode attention reads.
    KvCache,
    /// Mixture of experts ([`crate::arch`]).
    Experts,
    TopK,
    ExpertFfnDim,
    SharedExperts,
    SharedExpertFfnDim,
    FirstDenseLayers,
    /// Which layers are sliding-window layers.
    LayerPattern,
    /// Latent attention.
    KvLoraRank,
    QLoraRank,
    RopeHeadDim,
    VHeadDim,
}

impl ShapeField {
    /// The fields a mixture of experts reads (what the MLP of the layer
    /// models' dense stand-in, [`LayerShape::layer_view`], depends on beyond `ffn_dim`).
    pub const MOE: [ShapeField; 5] = [
        ShapeField::Experts,
        ShapeField::TopK,
        ShapeField::ExpertFfnDim,
        ShapeField::SharedExperts,
        ShapeField::SharedExpertFfnDim,
    ];
    /// The fields of latent attention that change its dense stand-in's heads.
    pub const LATENT_VIEW: [ShapeField; 2] = [ShapeField::KvLoraRank, ShapeField::RopeHeadDim];
    /// The fields of a candidate that fields of its dense stand-in
    /// ([`LayerShape::layer_view`]) are made of: a kernel of the layer
    /// models that reads `fields` of the stand-in reads these of the
    /// candidate (its FFN width from the mixture, its heads, head width,
    /// window and QK-norm from latent attention).
    pub fn through_layer_view(fields: &[ShapeField]) -> Vec<ShapeField> {
        use ShapeField::*;
        let mut out: Vec<ShapeField> = fields.to_vec();
        let mut add = |extra: &[ShapeField]| {
            for f in extra {
                if !out.contains(f) {
                    out.push(*f);
                }
            }
        };
        for f in fields {
            match f {
                FfnDim => add(&ShapeField::MOE),
                NumKvHeads => add(&[NumHeads, KvLoraRank]),
                HeadDim => add(&ShapeField::LATENT_VIEW),
                UseQkNorm | WindowSize => add(&[KvLoraRank]),
                _ => {}
            }
        }
        out
    }

    /// Every field of [`Architecture`].
    pub const ARCH: [ShapeField; 11] = [
        ShapeField::Experts,
        ShapeField::TopK,
        ShapeField::ExpertFfnDim,
        ShapeField::SharedExperts,
        ShapeField::SharedExpertFfnDim,
        ShapeField::FirstDenseLayers,
        ShapeField::LayerPattern,
        ShapeField::KvLoraRank,
        ShapeField::QLoraRank,
        ShapeField::RopeHeadDim,
        ShapeField::VHeadDim,
    ];
}

/// Source label of the seed's known models.
pub const KNOWN_MODEL: &str = "known_model";
/// Source label of the seed's hand-picked candidates.
pub const SEED_CANDIDATE: &str = "seed_candidate";
/// Source label of candidates produced by a family.
pub const GENERATED_CANDIDATE: &str = "generated_candidate";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> LayerShape {
        LayerShape {
            hidden_dim: 2048,
            num_heads: 16,
            num_kv_heads: 2,
            head_dim: 128,
            ffn_dim: 8192,
            seq_len: 2048,
            batch_size: 1,
            use_qk_norm: true,
            window_size: Some(1024),
            model: ModelDims::NONE,
            precision: Precision::BF16,
            arch: Architecture::NONE,
        }
    }

    #[test]
    fn gemma_style_hidden_differs_from_heads_times_head_dim() {
        let s = LayerShape {
            hidden_dim: 1152,
            num_heads: 4,
            num_kv_heads: 1,
            head_dim: 256,
            ..base()
        };
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(canonical_key("kv_heads"), Some("num_kv_heads"));
        assert_eq!(canonical_key("ffn_dim"), Some("ffn_dim"));
        assert_eq!(canonical_key("ffn"), None);
    }

    #[test]
    fn rejects_bad_kv_heads_zero_and_overflow() {
        let e = LayerShape {
            num_kv_heads: 32,
            ..base()
        }
        .validate()
        .unwrap_err();
        assert!(e.message.contains("above `num_heads`"), "{e}");
        assert_eq!(e.key, Some("num_kv_heads"));
        let e = LayerShape {
            num_kv_heads: 3,
            ..base()
        }
        .validate()
        .unwrap_err();
        assert!(e.message.contains("does not divide"), "{e}");
        let e = LayerShape { ffn_dim: 0, ..base() }.validate().unwrap_err();
        assert_eq!(e.key, Some("ffn_dim"));
        assert!(e.message.contains("`ffn_dim` must be at least 1"), "{e}");
        let big = LayerShape {
            seq_len: MAX_DIM,
            batch_size: MAX_DIM,
            window_size: None,
            ..base()
        };
        assert!(big.validate().unwrap_err().message.contains("overflow"));
    }

    #[test]
    fn json_reader_names_key_and_place() {
        let e = LayerShape::from_json(&json!({"hidden_dim": 1}), "configs[2]").unwrap_err();
        assert_eq!(e.to_string(), "configs[2]: missing key `num_heads`");
        let v = json!({"name": "x", "hiden_dim": 1});
        let e = LayerShape::from_json(&v, "configs[0]").unwrap_err();
        assert!(e.to_string().contains("did you mean `hidden_dim`"), "{e}");
        let v = json!({"hidden_dim": -5, "num_heads": 1, "num_kv_heads": 1, "head_dim": 1, "ffn_dim": 1, "seq_len": 1});
        let e = LayerShape::from_json(&v, "configs[0]").unwrap_err();
        assert!(
            e.to_string()
                .contains("`hidden_dim` must be a positive integer, got -5"),
            "{e}"
        );
    }

    #[test]
    fn json_reader_applies_the_defaults() {
        let v = json!({"name": "a", "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 2,
                       "head_dim": 128, "ffn_dim": 8192, "seq_len": 2048});
        let (name, s) = LayerShape::from_json(&v, "c").unwrap();
        assert_eq!(name.as_deref(), Some("a"));
        // no QK-norm unless the shape says so (a Llama-style layer; the seed's
        // `true` lives in its own data)
        assert_eq!((s.batch_size, s.use_qk_norm, s.window_size), (1, false, None));
        let mut v = v;
        v["use_qk_norm"] = json!(true);
        assert!(LayerShape::from_json(&v, "c").unwrap().1.use_qk_norm);
    }
}
