//! A Hugging Face `config.json` read into a [`ModelStack`], as transformers'
//! own config and model classes build it (transformers 5: the defaults of
//! its config classes, the layers its model classes create).
//!
//! Every key is one of three things per `model_type`:
//! - read: it changes what is built (sizes, biases, layer kinds); a value
//!   that cannot be honoured is an error `FILE: key: problem`;
//! - allowed: it does not change the cost (token ids, RoPE settings, dropout,
//!   `transformers_version`...), or transformers' class ignores it; accepted
//!   silently;
//! - unknown: anything else, accepted with a warning naming it (returned to
//!   the caller; the CLI prints warnings on stderr).
//!
//! Sizes are bounded by [`crate::shapes`]'s limits before anything
//! proportional to them is allocated (`num_hidden_layers` by `MAX_LAYERS`),
//! and nothing here panics on any JSON.

use std::cell::RefCell;

use serde_json::{Map, Value};

use super::{
    Attention, DenseMlp, LatentAttention, LayerKind, Mlp, ModelStack, MoeMlp, NormKind, QkNorm, StandardAttention,
};
use crate::error::{Error, Result};
use crate::shapes::{kind_of, MAX_DIM, MAX_EXPERTS, MAX_LAYERS};

/// The `model_type`s read.
pub const SUPPORTED: [&str; 14] = [
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "gemma2",
    "gemma3_text",
    "phi3",
    "mixtral",
    "deepseek_v2",
    "deepseek_v3",
    "gpt_oss",
    "olmo2",
    "gpt2",
];

/// Unknown keys named one by one in warnings; the rest are counted.
pub const MAX_KEY_WARNINGS: usize = 16;

/// Activations transformers knows (`ACT2FN`); they all cost the same here.
const ACTIVATIONS: [&str; 24] = [
    "gelu",
    "gelu_10",
    "gelu_accurate",
    "gelu_fast",
    "gelu_new",
    "gelu_python",
    "gelu_python_tanh",
    "gelu_pytorch_tanh",
    "hardswish",
    "laplace",
    "leaky_relu",
    "linear",
    "mish",
    "prelu",
    "quick_gelu",
    "relu",
    "relu2",
    "relu6",
    "sigmoid",
    "silu",
    "sqrtsoftplus",
    "swish",
    "tanh",
    "xielu",
];

/// Keys of every config that never change what is built: token ids, the
/// serialization's bookkeeping, generation and training settings.
const COMMON_ALLOWED: &[&str] = &[
    "_name_or_path",
    "architectures",
    "auto_map",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "sep_token_id",
    "decoder_start_token_id",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "use_cache",
    "initializer_range",
    "tokenizer_class",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "torchscript",
    "id2label",
    "label2id",
    "problem_type",
    "prefix",
    "finetuning_task",
    "task_specific_params",
    "chunk_size_feed_forward",
    "max_position_embeddings",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "attention_dropout",
    "_attn_implementation",
    "name",
];

/// How a family defaults `num_key_value_heads` and `head_dim` when absent.
#[derive(Clone, Copy)]
enum Default {
    Fixed(u64),
    /// `num_key_value_heads` = heads (MHA).
    Heads,
    /// `head_dim` = `hidden_size // num_attention_heads`.
    HiddenOverHeads,
}

/// A family's defaults for absent keys, as its transformers config class has them.
struct Defaults {
    vocab: u64,
    hidden: u64,
    ffn: u64,
    layers: u64,
    heads: u64,
    kv_heads: Default,
    head_dim: Default,
    tie: bool,
}

/// The config being read: the keys it reads are recorded, so the rest can be
/// told apart into allowed and unknown.
struct Config<'a> {
    obj: &'a Map<String, Value>,
    file: &'a str,
    read: RefCell<Vec<&'static str>>,
}

impl<'a> Config<'a> {
    fn err(&self, key: &str, problem: impl std::fmt::Display) -> Error {
        Error::input(self.file, format!("{key}: {problem}"))
    }

    /// The value of `key`; `None` when absent or null (transformers' None).
    fn get(&self, key: &'static str) -> Option<&'a Value> {
        self.read.borrow_mut().push(key);
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// `sliding_window`: absent takes the family's default, null is full attention.
    fn window(&self, default: Option<u64>) -> Result<Option<u64>> {
        match self.obj.get("sliding_window") {
            None => {
                self.read.borrow_mut().push("sliding_window");
                Ok(default)
            }
            Some(_) => self.optional_size("sliding_window"),
        }
    }

    /// A non-negative integer (also `2048.0`), or an error naming the key.
    fn integer(&self, key: &'static str, v: &Value) -> Result<u64> {
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        n.ok_or_else(|| {
            let shown = match v {
                Value::Number(_) => v.to_string(),
                other => kind_of(other).to_string(),
            };
            self.err(key, format!("must be a positive integer, got {shown}"))
        })
    }

    /// An integer in `1..=limit`.
    fn bounded(&self, key: &'static str, v: &Value, limit: u64) -> Result<u64> {
        match self.integer(key, v)? {
            0 => Err(self.err(key, "must be at least 1, got 0")),
            n if n > limit => Err(self.err(key, format!("{n} is absurdly large (the limit is {limit})"))),
            n => Ok(n),
        }
    }

    /// A size: absent or null takes `default`, none is an error.
    fn size_limit(&self, key: &'static str, default: Option<u64>, limit: u64) -> Result<u64> {
        match (self.get(key), default) {
            (Some(v), _) => self.bounded(key, v, limit),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.err(
                key,
                "missing (no default: transformers cannot build the model without it)",
            )),
        }
    }

    fn size(&self, key: &'static str, default: Option<u64>) -> Result<u64> {
        self.size_limit(key, default, MAX_DIM)
    }

    /// A size that may be absent or null (`None`), else in bounds.
    fn optional_size(&self, key: &'static str) -> Result<Option<u64>> {
        self.get(key).map(|v| self.bounded(key, v, MAX_DIM)).transpose()
    }

    /// A count that may be 0 (shared experts, dense prefix).
    fn count(&self, key: &'static str, default: u64, limit: u64) -> Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match self.integer(key, v)? {
                n if n > limit => Err(self.err(key, format!("{n} is absurdly large (the limit is {limit})"))),
                n => Ok(n),
            },
        }
    }

    fn boolean(&self, key: &'static str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(key, format!("must be true or false, got {}", kind_of(other)))),
        }
    }

    fn activation(&self, key: &'static str, default: &'static str) -> Result<&'static str> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::String(s)) => ACTIVATIONS.iter().find(|a| **a == s.as_str()).copied().ok_or_else(|| {
                self.err(
                    key,
                    format!(
                        "`{}` is not an activation transformers knows{}; known: {}",
                        short(s),
                        crate::error::hint(s, ACTIVATIONS),
                        ACTIVATIONS.join(", ")
                    ),
                )
            }),
            Some(other) => Err(self.err(key, format!("must be a string, got {}", kind_of(other)))),
        }
    }

    /// Two spellings of one key (an alias transformers maps onto the other):
    /// the value of whichever is given; both given and different is an error.
    fn size_either(&self, key: &'static str, alias: &'static str, default: u64, limit: u64) -> Result<u64> {
        let a = self.get(key).map(|v| self.bounded(key, v, limit)).transpose()?;
        let b = self.get(alias).map(|v| self.bounded(alias, v, limit)).transpose()?;
        match (a, b) {
            (Some(x), Some(y)) if x != y => Err(self.err(
                key,
                format!("{x} disagrees with `{alias}` = {y} (transformers reads them as one setting)"),
            )),
            (Some(x), _) | (None, Some(x)) => Ok(x),
            (None, None) => Ok(default),
        }
    }

    /// `layer_types`: one of `sliding_attention` / `full_attention` per
    /// layer (true = sliding); absent or null is `None`.
    fn layer_types(&self, layers: u64) -> Result<Option<Vec<bool>>> {
        let Some(v) = self.get("layer_types") else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(self.err("layer_types", format!("must be a list of strings, got {}", kind_of(v))));
        };
        if items.len() as u64 != layers {
            return Err(self.err(
                "layer_types",
                format!(
                    "has {} entries, but num_hidden_layers is {layers} (one entry per layer)",
                    items.len()
                ),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                Some(other) => Err(self.err(
                    "layer_types",
                    format!(
                        "entry {i} is `{}`, a layer kind nas cannot build; known: sliding_attention, full_attention",
                        short(other)
                    ),
                )),
                None => Err(self.err(
                    "layer_types",
                    format!("entry {i} must be a string, got {}", kind_of(item)),
                )),
            })
            .collect::<Result<Vec<bool>>>()
            .map(Some)
    }

    /// The common decoder sizes, bounded and checked.
    fn common(&self, d: &Defaults) -> Result<Common> {
        let vocab = self.size("vocab_size", Some(d.vocab))?;
        let hidden = self.size("hidden_size", Some(d.hidden))?;
        let ffn = self.size("intermediate_size", Some(d.ffn))?;
        let layers = self.size_limit("num_hidden_layers", Some(d.layers), MAX_LAYERS)?;
        let heads = self.size("num_attention_heads", Some(d.heads))?;
        let kv_default = match d.kv_heads {
            Default::Fixed(n) => n,
            _ => heads,
        };
        let kv_heads = self.size("num_key_value_heads", Some(kv_default))?;
        let head_dim = match (self.optional_size("head_dim")?, d.head_dim) {
            (Some(h), _) => h,
            (None, Default::Fixed(h)) => h,
            (None, _) => match hidden / heads {
                0 => {
                    return Err(self.err(
                        "num_attention_heads",
                        format!("{heads} heads leave no width of hidden_size = {hidden} for a head (head_dim = 0)"),
                    ))
                }
                h => h,
            },
        };
        self.check_kv(heads, kv_heads)?;
        let tie = self.boolean("tie_word_embeddings", d.tie)?;
        Ok(Common {
            vocab,
            hidden,
            ffn,
            layers,
            heads,
            kv_heads,
            head_dim,
            tie,
        })
    }

    fn check_kv(&self, heads: u64, kv_heads: u64) -> Result<()> {
        if kv_heads > heads {
            return Err(self.err(
                "num_key_value_heads",
                format!("{kv_heads} is above num_attention_heads = {heads}"),
            ));
        }
        if heads % kv_heads != 0 {
            return Err(self.err(
                "num_key_value_heads",
                format!("{kv_heads} does not divide num_attention_heads = {heads}"),
            ));
        }
        Ok(())
    }

    /// `quantization_config`: fp8 (DeepSeek-V3) and mxfp4 (gpt-oss) are
    /// accepted with a warning that weights are counted in bf16; any other
    /// method is an error.
    fn quantization(&self, warnings: &mut Vec<String>) -> Result<()> {
        let Some(v) = self.get("quantization_config") else {
            return Ok(());
        };
        let key = "quantization_config";
        let method = match v {
            Value::Object(q) => match q.get("quant_method") {
                Some(Value::String(s)) => s.as_str(),
                Some(other) => {
                    return Err(self.err(key, format!("`quant_method` must be a string, got {}", kind_of(other))))
                }
                None => return Err(self.err(key, "has no `quant_method`")),
            },
            other => return Err(self.err(key, format!("must be an object, got {}", kind_of(other)))),
        };
        match method {
            "fp8" | "mxfp4" => {
                warnings.push(format!(
                    "{}: {key}: `{method}` weights are counted as bf16 (2 bytes per parameter) until quantized \
                     weights are modelled; parameter counts are exact either way",
                    self.file
                ));
                Ok(())
            }
            other => Err(self.err(
                key,
                format!(
                    "quant_method `{}` is not one nas can honour (fp8 and mxfp4 are counted as bf16 weights; \
                     remove quantization_config to count the bf16 model)",
                    short(other)
                ),
            )),
        }
    }

    /// Warnings for the keys neither read nor allowed (the first
    /// [`MAX_KEY_WARNINGS`], then how many more).
    fn unknown_keys(&self, model_type: &str, allowed: &[&str], warnings: &mut Vec<String>) {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self
            .obj
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "model_type" && !read.contains(k) && !COMMON_ALLOWED.contains(k) && !allowed.contains(k))
            .collect();
        for k in unknown.iter().take(MAX_KEY_WARNINGS) {
            warnings.push(format!(
                "{}: {}: not a key nas reads or knows to be irrelevant for `{model_type}`; ignored",
                self.file,
                short(k)
            ));
        }
        if unknown.len() > MAX_KEY_WARNINGS {
            warnings.push(format!(
                "{}: and {} more unknown keys, ignored",
                self.file,
                unknown.len() - MAX_KEY_WARNINGS
            ));
        }
    }
}

/// At most 64 characters of a string from the input, for messages.
fn short(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(64).collect::<String>())
    }
}

struct Common {
    vocab: u64,
    hidden: u64,
    ffn: u64,
    layers: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    tie: bool,
}

impl Common {
    fn attention(&self, bias: [bool; 4], qk_norm: QkNorm, window: Option<u64>) -> StandardAttention {
        StandardAttention {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            q_bias: bias[0],
            k_bias: bias[1],
            v_bias: bias[2],
            o_bias: bias[3],
            qk_norm,
            window,
            sinks: false,
        }
    }
}

fn gated(ffn: u64, bias: bool, activation: &'static str) -> Mlp {
    Mlp::Dense(DenseMlp {
        ffn,
        gated: true,
        bias,
        activation,
    })
}

fn rms(attention: StandardAttention, mlp: Mlp, norms: u64) -> LayerKind {
    LayerKind {
        attention: Attention::Standard(attention),
        mlp,
        norm: NormKind::RmsNorm,
        norms,
    }
}

/// A stack read from a config, and the warnings (unknown keys, weights
/// counted in bf16) to show the user.
#[derive(Clone, Debug)]
pub struct Imported {
    pub stack: ModelStack,
    pub warnings: Vec<String>,
}

/// Whether a JSON value is a Hugging Face config (an object with `model_type`).
pub fn is_hf_config(value: &Value) -> bool {
    value.get("model_type").is_some()
}

/// Reads a Hugging Face `config.json` (`file` names it in messages).
pub fn from_config(value: &Value, file: &str) -> Result<Imported> {
    let obj = value.as_object().ok_or_else(|| {
        Error::input(
            file,
            format!("expected a Hugging Face config (a JSON object), got {}", kind_of(value)),
        )
    })?;
    let model_type = match obj.get("model_type") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(Error::input(
                file,
                format!("model_type: must be a string, got {}", kind_of(other)),
            ))
        }
        None => return Err(Error::input(file, "model_type: missing")),
    };
    let c = Config {
        obj,
        file,
        read: RefCell::new(Vec::new()),
    };
    let mut warnings = Vec::new();
    let (kinds, allowed) = match model_type {
        "llama" => (llama(&c)?, &["rms_norm_eps", "pretraining_tp"][..]),
        "mistral" => (mistral(&c)?, &["rms_norm_eps", "attention_bias"][..]),
        "qwen2" => (qwen2(&c, false)?, &["rms_norm_eps", "attention_bias", "use_mrope"][..]),
        "qwen3" => (qwen2(&c, true)?, &["rms_norm_eps"][..]),
        "qwen3_moe" => (
            qwen3_moe(&c)?,
            &[
                "rms_norm_eps",
                "norm_topk_prob",
                "router_aux_loss_coef",
                "output_router_logits",
                "max_window_layers",
            ][..],
        ),
        "gemma2" | "gemma3_text" => (
            gemma(&c, model_type == "gemma3_text")?,
            &[
                "rms_norm_eps",
                "hidden_act",
                "query_pre_attn_scalar",
                "attn_logit_softcapping",
                "final_logit_softcapping",
                "cache_implementation",
                "sliding_window_size",
                "rope_local_base_freq",
            ][..],
        ),
        "phi3" => (
            phi3(&c)?,
            &[
                "rms_norm_eps",
                "attention_bias",
                "mlp_bias",
                "lm_head_bias",
                "embd_pdrop",
                "resid_pdrop",
                "original_max_position_embeddings",
                "partial_rotary_factor",
                "full_attn_mod",
                "interpolate_factor",
            ][..],
        ),
        "mixtral" => (
            mixtral(&c)?,
            &[
                "rms_norm_eps",
                "attention_bias",
                "router_jitter_noise",
                "router_aux_loss_coef",
                "output_router_logits",
            ][..],
        ),
        "deepseek_v2" | "deepseek_v3" => (
            deepseek(&c, model_type == "deepseek_v3")?,
            &[
                "rms_norm_eps",
                "pretraining_tp",
                "num_key_value_heads",
                "head_dim",
                "qk_head_dim",
                "n_group",
                "topk_group",
                "topk_method",
                "routed_scaling_factor",
                "scoring_func",
                "norm_topk_prob",
                "aux_loss_alpha",
                "seq_aux",
                "ep_size",
                "num_nextn_predict_layers",
                "rope_interleave",
                "output_router_logits",
            ][..],
        ),
        "gpt_oss" => (
            gpt_oss(&c)?,
            &[
                "rms_norm_eps",
                "hidden_act",
                "experts_per_token",
                "swiglu_limit",
                "swiglu_alpha",
                "initial_context_length",
                "router_aux_loss_coef",
                "output_router_logits",
            ][..],
        ),
        "olmo2" => (olmo2(&c)?, &["rms_norm_eps"][..]),
        "gpt2" => (
            gpt2(&c)?,
            &[
                "n_ctx",
                "attn_pdrop",
                "embd_pdrop",
                "resid_pdrop",
                "layer_norm_epsilon",
                "summary_activation",
                "summary_first_dropout",
                "summary_proj_to_labels",
                "summary_type",
                "summary_use_proj",
                "scale_attn_weights",
                "scale_attn_by_inverse_layer_idx",
                "reorder_and_upcast_attn",
            ][..],
        ),
        other => {
            let hint = if other == "gemma3" {
                " (a multimodal Gemma-3 config: give its `text_config`, model_type gemma3_text)".to_string()
            } else {
                crate::error::hint(other, SUPPORTED)
            };
            return Err(Error::input(
                file,
                format!(
                    "model_type: `{}` is not supported{hint}; supported: {}",
                    short(other),
                    SUPPORTED.join(", ")
                ),
            ));
        }
    };
    c.quantization(&mut warnings)?;
    let Built {
        layers,
        hidden,
        vocab,
        tie,
        final_norm,
        positions,
    } = kinds;
    let mut stack = ModelStack::from_layers(model_type, hidden, vocab, &layers, final_norm, tie);
    stack.position_embeddings = positions;
    stack.validate().map_err(|(field, problem)| {
        let key = match field.as_str() {
            "layers" => "num_hidden_layers",
            _ => "config",
        };
        c.err(key, problem)
    })?;
    c.unknown_keys(model_type, allowed, &mut warnings);
    Ok(Imported { stack, warnings })
}

/// What a family reader builds: one kind per layer and the model's own parts.
struct Built {
    layers: Vec<LayerKind>,
    hidden: u64,
    vocab: u64,
    tie: bool,
    final_norm: NormKind,
    positions: Option<u64>,
}

impl Built {
    fn rms(common: &Common, layers: Vec<LayerKind>) -> Built {
        Built {
            layers,
            hidden: common.hidden,
            vocab: common.vocab,
            tie: common.tie,
            final_norm: NormKind::RmsNorm,
            positions: None,
        }
    }
}

/// `layers` copies of `kind` (after `layers` was bounded by MAX_LAYERS).
fn uniform(layers: u64, kind: LayerKind) -> Vec<LayerKind> {
    vec![kind; layers as usize]
}

fn llama(c: &Config) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 32000,
        hidden: 4096,
        ffn: 11008,
        layers: 32,
        heads: 32,
        kv_heads: Default::Heads,
        head_dim: Default::HiddenOverHeads,
        tie: false,
    })?;
    let bias = c.boolean("attention_bias", false)?;
    let mlp_bias = c.boolean("mlp_bias", false)?;
    let act = c.activation("hidden_act", "silu")?;
    let kind = rms(
        common.attention([bias; 4], QkNorm::None, None),
        gated(common.ffn, mlp_bias, act),
        2,
    );
    Ok(Built::rms(&common, uniform(common.layers, kind)))
}

fn mistral(c: &Config) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 32000,
        hidden: 4096,
        ffn: 14336,
        layers: 32,
        heads: 32,
        kv_heads: Default::Fixed(8),
        head_dim: Default::HiddenOverHeads,
        tie: false,
    })?;
    // transformers' Mistral uses the window on every layer (default 4096).
    let window = c.window(Some(4096))?;
    let act = c.activation("hidden_act", "silu")?;
    let kind = rms(
        common.attention([false; 4], QkNorm::None, window),
        gated(common.ffn, false, act),
        2,
    );
    Ok(Built::rms(&common, uniform(common.layers, kind)))
}

/// Qwen2 (q/k/v biases) and Qwen3 (QK-norm per head, `attention_bias`
/// honoured, head_dim 128 by default); both place sliding layers from
/// `max_window_layers` on when `use_sliding_window` is set, or by `layer_types`.
fn qwen2(c: &Config, qwen3: bool) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 151936,
        hidden: 4096,
        ffn: 22016,
        layers: 32,
        heads: 32,
        kv_heads: Default::Fixed(32),
        head_dim: if qwen3 {
            Default::Fixed(128)
        } else {
            Default::HiddenOverHeads
        },
        tie: false,
    })?;
    let window = qwen_window(c)?;
    let max_window_layers = c.count("max_window_layers", 28, u64::MAX)?;
    let types = c.layer_types(common.layers)?;
    let act = c.activation("hidden_act", "silu")?;
    let (bias, qk_norm) = if qwen3 {
        let b = c.boolean("attention_bias", false)?;
        ([b; 4], QkNorm::PerHead)
    } else {
        ([true, true, true, false], QkNorm::None)
    };
    let layers = (0..common.layers)
        .map(|i| {
            let sliding = match &types {
                Some(t) => t[i as usize],
                None => window.is_some() && i >= max_window_layers,
            };
            let w = if sliding { window } else { None };
            rms(common.attention(bias, qk_norm, w), gated(common.ffn, false, act), 2)
        })
        .collect();
    Ok(Built::rms(&common, layers))
}

/// `sliding_window` if `use_sliding_window` (Qwen's configs).
fn qwen_window(c: &Config) -> Result<Option<u64>> {
    let use_window = c.boolean("use_sliding_window", false)?;
    let window = c.window(Some(4096))?;
    Ok(if use_window { window } else { None })
}

fn qwen3_moe(c: &Config) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 151936,
        hidden: 2048,
        ffn: 6144,
        layers: 24,
        heads: 32,
        kv_heads: Default::Fixed(4),
        head_dim: Default::HiddenOverHeads,
        tie: false,
    })?;
    let window = qwen_window(c)?;
    let experts = c.size_either("num_experts", "num_local_experts", 128, MAX_EXPERTS)?;
    let top_k = c.size_limit("num_experts_per_tok", Some(8), MAX_EXPERTS)?;
    let expert_ffn = c.size("moe_intermediate_size", Some(768))?;
    let step = c.size_limit("decoder_sparse_step", Some(1), MAX_LAYERS)?;
    let dense_only = layer_set(c, "mlp_only_layers", common.layers)?;
    let bias = c.boolean("attention_bias", false)?;
    let act = c.activation("hidden_act", "silu")?;
    if top_k > experts {
        return Err(c.err(
            "num_experts_per_tok",
            format!("{top_k} is above num_experts = {experts}"),
        ));
    }
    let attention = common.attention([bias; 4], QkNorm::PerHead, window);
    let moe = Mlp::Moe(MoeMlp {
        experts,
        top_k,
        expert_ffn,
        shared_experts: 0,
        shared_ffn: 0,
        shared_expert_gate: false,
        router_bias: false,
        expert_bias: false,
        activation: act,
    });
    let layers = (0..common.layers)
        .map(|i| {
            let sparse = !dense_only[i as usize] && (i + 1) % step == 0;
            let mlp = if sparse { moe } else { gated(common.ffn, false, act) };
            rms(attention, mlp, 2)
        })
        .collect();
    Ok(Built::rms(&common, layers))
}

/// A list of layer indices (`mlp_only_layers`), as one flag per layer
/// (indices past the last layer name no layer, as in transformers).
fn layer_set(c: &Config, key: &'static str, layers: u64) -> Result<Vec<bool>> {
    // `layers` was bounded by MAX_LAYERS.
    let mut out = vec![false; layers as usize];
    let Some(v) = c.get(key) else {
        return Ok(out);
    };
    let Value::Array(items) = v else {
        return Err(c.err(key, format!("must be a list of layer indices, got {}", kind_of(v))));
    };
    for item in items {
        let i = c.integer(key, item)?;
        if let Some(flag) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            *flag = true;
        }
    }
    Ok(out)
}

/// Gemma-2 (1:1 sliding/global) and Gemma-3 (`sliding_window_pattern`, 5:1
/// by default; QK-norm per head): four norms per layer, tied embeddings.
fn gemma(c: &Config, gemma3: bool) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: if gemma3 { 262208 } else { 256000 },
        hidden: 2304,
        ffn: 9216,
        layers: 26,
        heads: 8,
        kv_heads: Default::Fixed(4),
        head_dim: Default::Fixed(256),
        tie: true,
    })?;
    if c.boolean("use_bidirectional_attention", false)? {
        return Err(c.err(
            "use_bidirectional_attention",
            "true makes an embedding model, not a causal language model",
        ));
    }
    let window = c.window(Some(4096))?;
    let pattern = if gemma3 {
        c.size_limit("sliding_window_pattern", Some(6), MAX_LAYERS)?
    } else {
        2
    };
    let types = c.layer_types(common.layers)?;
    let bias = c.boolean("attention_bias", false)?;
    let act = c.activation("hidden_activation", "gelu_pytorch_tanh")?;
    let qk_norm = if gemma3 { QkNorm::PerHead } else { QkNorm::None };
    let layers = (0..common.layers)
        .map(|i| {
            let sliding = match &types {
                Some(t) => t[i as usize],
                None => (i + 1) % pattern != 0,
            };
            let w = if sliding { window } else { None };
            rms(
                common.attention([bias; 4], qk_norm, w),
                gated(common.ffn, false, act),
                4,
            )
        })
        .collect();
    Ok(Built::rms(&common, layers))
}

fn phi3(c: &Config) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 32064,
        hidden: 3072,
        ffn: 8192,
        layers: 32,
        heads: 32,
        kv_heads: Default::Heads,
        head_dim: Default::HiddenOverHeads,
        tie: false,
    })?;
    let window = c.optional_size("sliding_window")?;
    let act = c.activation("hidden_act", "silu")?;
    let kind = rms(
        common.attention([false; 4], QkNorm::None, window),
        gated(common.ffn, false, act),
        2,
    );
    Ok(Built::rms(&common, uniform(common.layers, kind)))
}

fn mixtral(c: &Config) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 32000,
        hidden: 4096,
        ffn: 14336,
        layers: 32,
        heads: 32,
        kv_heads: Default::Fixed(8),
        head_dim: Default::HiddenOverHeads,
        tie: false,
    })?;
    let window = c.optional_size("sliding_window")?;
    let experts = c.size_either("num_local_experts", "num_experts", 8, MAX_EXPERTS)?;
    let top_k = c.size_limit("num_experts_per_tok", Some(2), MAX_EXPERTS)?;
    if top_k > experts {
        return Err(c.err(
            "num_experts_per_tok",
            format!("{top_k} is above num_local_experts = {experts}"),
        ));
    }
    let act = c.activation("hidden_act", "silu")?;
    let kind = rms(
        common.attention([false; 4], QkNorm::None, window),
        Mlp::Moe(MoeMlp {
            experts,
            top_k,
            expert_ffn: common.ffn,
            shared_experts: 0,
            shared_ffn: 0,
            shared_expert_gate: false,
            router_bias: false,
            expert_bias: false,
            activation: act,
        }),
        2,
    );
    Ok(Built::rms(&common, uniform(common.layers, kind)))
}

/// DeepSeek-V2/V3: latent attention in every layer, a dense MLP in the first
/// `first_k_dense_replace` layers and a mixture (routed plus shared experts)
/// in the rest.
fn deepseek(c: &Config, v3: bool) -> Result<Built> {
    let d = |v2: u64, v3v: u64| if v3 { v3v } else { v2 };
    let vocab = c.size("vocab_size", Some(d(102400, 129280)))?;
    let hidden = c.size("hidden_size", Some(d(4096, 7168)))?;
    let ffn = c.size("intermediate_size", Some(d(11008, 18432)))?;
    let expert_ffn = c.size("moe_intermediate_size", Some(d(1407, 2048)))?;
    let layers = c.size_limit("num_hidden_layers", Some(d(32, 61)), MAX_LAYERS)?;
    let heads = c.size("num_attention_heads", Some(d(32, 128)))?;
    let experts = c.size_limit("n_routed_experts", Some(d(64, 256)), MAX_EXPERTS)?;
    let shared = c.count("n_shared_experts", d(2, 1), MAX_EXPERTS)?;
    if c.obj.get("n_shared_experts").is_some_and(Value::is_null) {
        return Err(c.err("n_shared_experts", "must be a non-negative integer, got null"));
    }
    let top_k = match (c.get("num_experts_per_tok"), v3) {
        (Some(v), _) => c.bounded("num_experts_per_tok", v, MAX_EXPERTS)?,
        (None, true) => 8,
        (None, false) => {
            return Err(c.err(
                "num_experts_per_tok",
                "missing (DeepSeek-V2's default is None, which routes no token)",
            ))
        }
    };
    if top_k > experts {
        return Err(c.err(
            "num_experts_per_tok",
            format!("{top_k} is above n_routed_experts = {experts}"),
        ));
    }
    let dense_prefix = c.count("first_k_dense_replace", d(0, 3), MAX_LAYERS)?;
    let freq = c.count("moe_layer_freq", 1, MAX_LAYERS)?;
    if freq != 1 {
        return Err(c.err(
            "moe_layer_freq",
            format!(
                "{freq} is not what transformers builds: its DeepSeek classes ignore this key and put a mixture \
                 in every layer from first_k_dense_replace on"
            ),
        ));
    }
    let q_lora_rank = match c.obj.get("q_lora_rank") {
        None => Some(1536),
        Some(_) => c.optional_size("q_lora_rank")?,
    };
    let latent = LatentAttention {
        heads,
        q_lora_rank,
        kv_lora_rank: c.size("kv_lora_rank", Some(512))?,
        qk_nope_head_dim: c.size("qk_nope_head_dim", Some(128))?,
        qk_rope_head_dim: c.size("qk_rope_head_dim", Some(64))?,
        v_head_dim: c.size("v_head_dim", Some(128))?,
        bias: c.boolean("attention_bias", false)?,
    };
    if !v3 && c.boolean("mlp_bias", false)? {
        return Err(c.err(
            "mlp_bias",
            "true is not modelled for DeepSeek (no released model has MLP biases)",
        ));
    }
    let act = c.activation("hidden_act", "silu")?;
    let tie = c.boolean("tie_word_embeddings", false)?;
    let dense = LayerKind {
        attention: Attention::Latent(latent),
        mlp: gated(ffn, false, act),
        norm: NormKind::RmsNorm,
        norms: 2,
    };
    let moe = LayerKind {
        mlp: Mlp::Moe(MoeMlp {
            experts,
            top_k,
            expert_ffn,
            shared_experts: shared,
            shared_ffn: shared.saturating_mul(expert_ffn),
            shared_expert_gate: false,
            router_bias: false,
            expert_bias: false,
            activation: act,
        }),
        ..dense
    };
    if shared.saturating_mul(expert_ffn) > MAX_DIM {
        return Err(c.err(
            "n_shared_experts",
            format!("{shared} shared experts of {expert_ffn} are absurdly wide (the limit is {MAX_DIM})"),
        ));
    }
    let layers = (0..layers)
        .map(|i| if i < dense_prefix { dense } else { moe })
        .collect();
    Ok(Built {
        layers,
        hidden,
        vocab,
        tie,
        final_norm: NormKind::RmsNorm,
        positions: None,
    })
}

/// gpt-oss: biases on every projection, attention sinks, 1:1 sliding/full
/// layers, a mixture whose router and experts have biases.
fn gpt_oss(c: &Config) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 201088,
        hidden: 2880,
        ffn: 2880,
        layers: 36,
        heads: 64,
        kv_heads: Default::Fixed(8),
        head_dim: Default::Fixed(64),
        tie: false,
    })?;
    let window = c.window(Some(128))?;
    let experts = c.size_either("num_local_experts", "num_experts", 128, MAX_EXPERTS)?;
    let top_k = c.size_limit("num_experts_per_tok", Some(4), MAX_EXPERTS)?;
    if top_k > experts {
        return Err(c.err(
            "num_experts_per_tok",
            format!("{top_k} is above num_local_experts = {experts}"),
        ));
    }
    let bias = c.boolean("attention_bias", true)?;
    let types = c.layer_types(common.layers)?;
    let moe = Mlp::Moe(MoeMlp {
        experts,
        top_k,
        expert_ffn: common.ffn,
        shared_experts: 0,
        shared_ffn: 0,
        shared_expert_gate: false,
        router_bias: true,
        expert_bias: true,
        activation: "silu",
    });
    let layers = (0..common.layers)
        .map(|i| {
            let sliding = match &types {
                Some(t) => t[i as usize],
                None => (i + 1) % 2 != 0,
            };
            let mut attention = common.attention([bias; 4], QkNorm::None, if sliding { window } else { None });
            attention.sinks = true;
            rms(attention, moe, 2)
        })
        .collect();
    Ok(Built::rms(&common, layers))
}

/// OLMo-2: QK-norm over the whole projection, two post-norms per layer.
fn olmo2(c: &Config) -> Result<Built> {
    let common = c.common(&Defaults {
        vocab: 50304,
        hidden: 4096,
        ffn: 11008,
        layers: 32,
        heads: 32,
        kv_heads: Default::Heads,
        head_dim: Default::HiddenOverHeads,
        tie: false,
    })?;
    let bias = c.boolean("attention_bias", false)?;
    let act = c.activation("hidden_act", "silu")?;
    let kind = rms(
        common.attention([bias; 4], QkNorm::WholeProjection, None),
        gated(common.ffn, false, act),
        2,
    );
    Ok(Built::rms(&common, uniform(common.layers, kind)))
}

/// GPT-2: learned positions, LayerNorms with biases, biased projections, an
/// ungated MLP of `n_inner` (default 4 x `n_embd`), tied embeddings.
fn gpt2(c: &Config) -> Result<Built> {
    let vocab = c.size("vocab_size", Some(50257))?;
    let hidden = c.size("n_embd", Some(768))?;
    let layers = c.size_limit("n_layer", Some(12), MAX_LAYERS)?;
    let heads = c.size("n_head", Some(12))?;
    let positions = c.size("n_positions", Some(1024))?;
    if hidden % heads != 0 {
        return Err(c.err(
            "n_head",
            format!("{heads} does not divide n_embd = {hidden} (transformers' GPT-2 refuses it)"),
        ));
    }
    let ffn = match c.optional_size("n_inner")? {
        Some(f) => f,
        None => hidden.saturating_mul(4).min(MAX_DIM.saturating_add(1)),
    };
    if ffn > MAX_DIM {
        return Err(c.err(
            "n_embd",
            format!("{hidden} makes the default n_inner = 4 x n_embd absurdly large (the limit is {MAX_DIM})"),
        ));
    }
    if c.boolean("add_cross_attention", false)? {
        return Err(c.err(
            "add_cross_attention",
            "true adds encoder-decoder cross-attention layers, which a decoder-only stack does not have",
        ));
    }
    let act = c.activation("activation_function", "gelu_new")?;
    let tie = c.boolean("tie_word_embeddings", true)?;
    let kind = LayerKind {
        attention: Attention::Standard(StandardAttention {
            heads,
            kv_heads: heads,
            head_dim: hidden / heads,
            q_bias: true,
            k_bias: true,
            v_bias: true,
            o_bias: true,
            qk_norm: QkNorm::None,
            window: None,
            sinks: false,
        }),
        mlp: Mlp::Dense(DenseMlp {
            ffn,
            gated: false,
            bias: true,
            activation: act,
        }),
        norm: NormKind::LayerNorm,
        norms: 2,
    };
    Ok(Built {
        layers: uniform(layers, kind),
        hidden,
        vocab,
        tie,
        final_norm: NormKind::LayerNorm,
        positions: Some(positions),
    })
}
