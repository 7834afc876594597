//! One kernel on one GPU: what `nas kernel` answers. A user asks how long a
//! GEMM, a decode attention, a causal prefill attention, a routed MoE MLP or
//! an MLA decode attention takes, and what limits it, and checks the model
//! kernel by kernel against their engine.
//!
//! On the measured model a GEMM with fewer rows than one 128-row tile (a
//! decode GEMM) uses the decode model where the profile has one, every other
//! GEMM and prefill attention the layer model, decode attention the decode
//! model; on the seed model (and where a profile lacks the decode model) a
//! roofline of the GPU's step throughputs answers. A MoE MLP uses the
//! profile's MoE model (`cost/moe.rs`, the engine form), MLA decode its MLA
//! constants (`cost/mla.rs`); without them a spec-sheet roofline answers and
//! `source` says so.

use serde::Serialize;
use serde_json::Value;

use crate::cost::decode::{self as dm, DecodeConstants};
use crate::cost::kernel_aware::{
    self as ka, MicroKernel, Unit, BLOCK, PRECISION_RESOURCE_TABLE, RESOURCES, RESOURCE_UNITS,
};
use crate::error::{Error, Result};
use crate::model::{StepThroughputs, BYTES_PER_VALUE};
use crate::precision::{KvCachePrecision, Precision, WeightPrecision};
use crate::shapes::{kind_of, MAX_DIM};

use super::{Gpu, GpuCost};

/// What an fp8 GEMM query runs in.
const FP8: Precision = Precision {
    weights: WeightPrecision::Fp8,
    kv_cache: KvCachePrecision::Bf16,
};

/// Most queries one file may hold.
pub const MAX_QUERIES: usize = 100_000;

/// The data type of a GEMM query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemmDtype {
    /// bf16 operands and output.
    #[default]
    Bf16,
    /// e4m3 weight and activation with per-tensor scales, bf16 output, the
    /// activation's dynamic per-tensor quantization included.
    Fp8,
}

impl GemmDtype {
    pub fn name(self) -> &'static str {
        match self {
            GemmDtype::Bf16 => "bf16",
            GemmDtype::Fp8 => "fp8",
        }
    }
}

/// One kernel to predict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelQuery {
    /// `out[m, n] = a[m, k] @ w[n, k]^T` in `dtype`.
    Gemm { m: u64, n: u64, k: u64, dtype: GemmDtype },
    /// One new query token per sequence attending to `kv_len` cached tokens
    /// (itself included; its K/V write into the cache counted).
    DecodeAttention {
        batch: u64,
        kv_len: u64,
        num_heads: u64,
        num_kv_heads: u64,
        head_dim: u64,
        window: Option<u64>,
    },
    /// Causal attention over `seq_len` tokens per sequence.
    PrefillAttention {
        batch: u64,
        seq_len: u64,
        num_heads: u64,
        num_kv_heads: u64,
        head_dim: u64,
        window: Option<u64>,
    },
    /// One MoE MLP of `num_tokens` tokens already routed: grouped gate-up,
    /// activation, grouped down, combine (the router too when `router`).
    Moe {
        shape: crate::cost::moe::MoeMlpShape,
        router: bool,
    },
    /// MLA decode attention (absorbed form) of `batch` sequences, each
    /// attending to `kv_len` cached latents (itself included).
    MlaDecode {
        shape: crate::cost::mla::MlaShape,
        batch: u64,
        kv_len: u64,
    },
}

/// One resource's share of a kernel's time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceTime {
    pub resource: String,
    pub ms: f64,
}

/// What `nas kernel` prints for one query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelAnswer {
    pub kernel: &'static str,
    pub latency_ms: f64,
    /// What limits it: `compute`, `memory` or `latency` (the fixed cost of a launch).
    pub bound: &'static str,
    /// The model that answered: `prefill` (the layer model), `decode`, or `roofline`.
    pub model: &'static str,
    /// Milliseconds per fitted resource (those above zero), largest first.
    pub per_resource: Vec<ResourceTime>,
    /// Milliseconds per kernel, for the kernels made of several (`moe`, `mla_decode`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_kernel: Vec<KernelTime>,
    /// `measured` or `seed`, and where the numbers come from in one line.
    pub cost_model: &'static str,
    pub source: String,
}

/// One kernel's share of a composite kernel's time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub ms: f64,
}

fn err(place: &str, problem: impl Into<String>) -> Error {
    Error::Input {
        place: place.to_string(),
        problem: problem.into(),
    }
}

fn size(obj: &serde_json::Map<String, Value>, key: &str, place: &str) -> Result<u64> {
    let v = obj.get(key).ok_or_else(|| err(place, format!("missing `{key}`")))?;
    let n = v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
        err(
            &format!("{place}.{key}"),
            format!("expected a positive integer, got {v}"),
        )
    })?;
    if n > MAX_DIM {
        return Err(err(
            &format!("{place}.{key}"),
            format!("{n} is absurdly large (the limit is {MAX_DIM})"),
        ));
    }
    Ok(n)
}

fn window(obj: &serde_json::Map<String, Value>, place: &str) -> Result<Option<u64>> {
    match obj.get("window") {
        None | Some(Value::Null) => Ok(None),
        Some(_) => size(obj, "window", place).map(Some),
    }
}

fn known(obj: &serde_json::Map<String, Value>, keys: &[&str], place: &str) -> Result<()> {
    match obj
        .keys()
        .find(|k| !keys.contains(&k.as_str()) && k.as_str() != "kernel")
    {
        Some(k) => Err(err(
            place,
            format!(
                "unknown key `{k}`{}; expected: kernel, {}",
                crate::error::hint(k, keys.iter().copied()),
                keys.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn positive_float(obj: &serde_json::Map<String, Value>, key: &str, place: &str, default: f64) -> Result<f64> {
    match obj.get(key) {
        None => Ok(default),
        Some(v) => v.as_f64().filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| {
            err(
                &format!("{place}.{key}"),
                format!("expected a positive number, got {v}"),
            )
        }),
    }
}

fn boolean(obj: &serde_json::Map<String, Value>, key: &str, place: &str) -> Result<bool> {
    match obj.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(err(
            &format!("{place}.{key}"),
            format!("expected true or false, got {v}"),
        )),
    }
}

/// The kernels `nas kernel` answers.
pub const KERNELS: [&str; 5] = ["gemm", "decode_attention", "prefill_attention", "moe", "mla_decode"];

impl KernelQuery {
    /// Reads a JSON array of queries; every error names its place (`queries[2].m`).
    pub fn list_from_json(v: &Value) -> Result<Vec<KernelQuery>> {
        let items = v.as_array().ok_or_else(|| {
            err(
                "queries",
                format!("expected an array of kernel queries, got {}", kind_of(v)),
            )
        })?;
        if items.len() > MAX_QUERIES {
            return Err(err(
                "queries",
                format!("{} queries; at most {MAX_QUERIES} per file", items.len()),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, q)| KernelQuery::from_json(q, &format!("queries[{i}]")))
            .collect()
    }

    fn from_json(v: &Value, place: &str) -> Result<KernelQuery> {
        let obj = v
            .as_object()
            .ok_or_else(|| err(place, format!("expected an object, got {}", kind_of(v))))?;
        let kinds = KERNELS;
        let kind = match obj.get("kernel") {
            Some(Value::String(k)) if kinds.contains(&k.as_str()) => k.as_str(),
            Some(Value::String(k)) => {
                return Err(err(
                    &format!("{place}.kernel"),
                    format!(
                        "unknown kernel `{k}`{}; known: {}",
                        crate::error::hint(k, kinds),
                        kinds.join(", ")
                    ),
                ))
            }
            Some(other) => {
                return Err(err(
                    &format!("{place}.kernel"),
                    format!("expected a string, got {other}"),
                ))
            }
            None => return Err(err(place, format!("missing `kernel` ({})", KERNELS.join(", ")))),
        };
        let heads = |obj: &serde_json::Map<String, Value>| -> Result<(u64, u64, u64)> {
            let (h, kv, hd) = (
                size(obj, "num_heads", place)?,
                size(obj, "num_kv_heads", place)?,
                size(obj, "head_dim", place)?,
            );
            if kv > h || h % kv != 0 {
                return Err(err(
                    place,
                    format!("`num_kv_heads` = {kv} does not divide `num_heads` = {h}"),
                ));
            }
            Ok((h, kv, hd))
        };
        Ok(match kind {
            "gemm" => {
                known(obj, &["m", "n", "k", "dtype"], place)?;
                let dtype = match obj.get("dtype") {
                    None => GemmDtype::Bf16,
                    Some(Value::String(d)) if d == "bf16" => GemmDtype::Bf16,
                    Some(Value::String(d)) if d == "fp8" => GemmDtype::Fp8,
                    Some(other) => {
                        let shown = other.as_str().map_or_else(|| other.to_string(), |d| format!("`{d}`"));
                        return Err(err(
                            &format!("{place}.dtype"),
                            format!(
                                "unknown GEMM dtype {shown}{}; known: bf16, fp8 (e4m3, per-tensor scales, the \
                                 activation's dynamic quantization included)",
                                other
                                    .as_str()
                                    .map_or(String::new(), |d| crate::error::hint(d, ["bf16", "fp8"]))
                            ),
                        ));
                    }
                };
                KernelQuery::Gemm {
                    m: size(obj, "m", place)?,
                    n: size(obj, "n", place)?,
                    k: size(obj, "k", place)?,
                    dtype,
                }
            }
            "decode_attention" => {
                known(
                    obj,
                    &["batch", "kv_len", "num_heads", "num_kv_heads", "head_dim", "window"],
                    place,
                )?;
                let (num_heads, num_kv_heads, head_dim) = heads(obj)?;
                KernelQuery::DecodeAttention {
                    batch: size(obj, "batch", place)?,
                    kv_len: size(obj, "kv_len", place)?,
                    num_heads,
                    num_kv_heads,
                    head_dim,
                    window: window(obj, place)?,
                }
            }
            "moe" => {
                known(
                    obj,
                    &[
                        "num_tokens",
                        "hidden_size",
                        "inter_size",
                        "num_experts",
                        "topk",
                        "imbalance",
                        "router",
                    ],
                    place,
                )?;
                let experts = size(obj, "num_experts", place)?;
                if experts > crate::cost::moe::MAX_EXPERTS {
                    return Err(err(
                        &format!("{place}.num_experts"),
                        format!(
                            "{experts} is absurdly large (the limit is {})",
                            crate::cost::moe::MAX_EXPERTS
                        ),
                    ));
                }
                let topk = size(obj, "topk", place)?;
                if topk > experts {
                    return Err(err(
                        &format!("{place}.topk"),
                        format!("`topk` = {topk} is more than `num_experts` = {experts}"),
                    ));
                }
                let imbalance = positive_float(obj, "imbalance", place, 1.0)?;
                if imbalance < 1.0 || imbalance > experts as f64 {
                    return Err(err(
                        &format!("{place}.imbalance"),
                        format!(
                            "`imbalance` must be from 1 (balanced) to `num_experts` = {experts} (every row on one expert), got {imbalance}"
                        ),
                    ));
                }
                KernelQuery::Moe {
                    shape: crate::cost::moe::MoeMlpShape {
                        tokens: size(obj, "num_tokens", place)?,
                        hidden: size(obj, "hidden_size", place)?,
                        expert_ffn: size(obj, "inter_size", place)?,
                        experts,
                        top_k: topk,
                        imbalance,
                    },
                    router: boolean(obj, "router", place)?,
                }
            }
            "mla_decode" => {
                known(
                    obj,
                    &[
                        "batch",
                        "kv_len",
                        "hidden_size",
                        "num_heads",
                        "q_lora_rank",
                        "kv_lora_rank",
                        "qk_nope_head_dim",
                        "qk_rope_head_dim",
                        "v_head_dim",
                    ],
                    place,
                )?;
                let q_lora_rank = match obj.get("q_lora_rank") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(size(obj, "q_lora_rank", place)?),
                };
                KernelQuery::MlaDecode {
                    shape: crate::cost::mla::MlaShape {
                        hidden: size(obj, "hidden_size", place)?,
                        heads: size(obj, "num_heads", place)?,
                        q_lora_rank,
                        kv_lora_rank: size(obj, "kv_lora_rank", place)?,
                        qk_nope_head_dim: size(obj, "qk_nope_head_dim", place)?,
                        qk_rope_head_dim: size(obj, "qk_rope_head_dim", place)?,
                        v_head_dim: size(obj, "v_head_dim", place)?,
                    },
                    batch: size(obj, "batch", place)?,
                    kv_len: size(obj, "kv_len", place)?,
                }
            }
            _ => {
                known(
                    obj,
                    &["batch", "seq_len", "num_heads", "num_kv_heads", "head_dim", "window"],
                    place,
                )?;
                let (num_heads, num_kv_heads, head_dim) = heads(obj)?;
                KernelQuery::PrefillAttention {
                    batch: size(obj, "batch", place)?,
                    seq_len: size(obj, "seq_len", place)?,
                    num_heads,
                    num_kv_heads,
                    head_dim,
                    window: window(obj, place)?,
                }
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            KernelQuery::Gemm { .. } => "gemm",
            KernelQuery::DecodeAttention { .. } => "decode_attention",
            KernelQuery::PrefillAttention { .. } => "prefill_attention",
            KernelQuery::Moe { .. } => "moe",
            KernelQuery::MlaDecode { .. } => "mla_decode",
        }
    }
}

/// Which bound a unit of work stands for.
fn bound_of(unit: Unit) -> &'static str {
    match unit {
        Unit::Flops => "compute",
        Unit::Bytes => "memory",
        Unit::Launches => "latency",
    }
}

/// Names, units and milliseconds per resource -> the answer.
fn answer(kernel: &'static str, model: &'static str, parts: Vec<(&str, Unit, f64)>) -> KernelAnswer {
    let latency_ms = parts.iter().map(|(_, _, ms)| ms).sum();
    let mut by_bound: [(&str, f64); 3] = [("compute", 0.0), ("memory", 0.0), ("latency", 0.0)];
    for (_, unit, ms) in &parts {
        if let Some(b) = by_bound.iter_mut().find(|(name, _)| *name == bound_of(*unit)) {
            b.1 += ms;
        }
    }
    let bound = by_bound
        .iter()
        .fold(by_bound[0], |best, b| if b.1 > best.1 { *b } else { best })
        .0;
    let mut per_resource: Vec<ResourceTime> = parts
        .into_iter()
        .filter(|(_, _, ms)| *ms > 0.0)
        .map(|(name, _, ms)| ResourceTime {
            resource: name.to_string(),
            ms,
        })
        .collect();
    per_resource.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    KernelAnswer {
        kernel,
        latency_ms,
        bound,
        model,
        per_resource,
        per_kernel: Vec::new(),
        cost_model: "",
        source: String::new(),
    }
}

fn decode_answer(kernel: &'static str, c: &DecodeConstants, work: &dm::Work) -> KernelAnswer {
    let parts = (0..dm::TOTAL)
        .map(|j| {
            let (name, unit, _) = dm::resource(j);
            (name, unit, work[j] * c.ms_per_unit[j])
        })
        .collect();
    answer(kernel, "decode", parts)
}

/// The roofline answer from step throughputs (seed GPUs; profiles without a decode model).
fn roofline(kernel: &'static str, step: &StepThroughputs, bytes: f64, flops: f64, tflops: f64) -> KernelAnswer {
    let memory = bytes / (step.bandwidth_gbps * 1e9) * 1e3;
    let compute = flops / (tflops * 1e12) * 1e3;
    let mut parts = vec![("launch", Unit::Launches, step.launch_ms)];
    if memory >= compute {
        parts.push(("bandwidth", Unit::Bytes, memory));
    } else {
        parts.push(("compute", Unit::Flops, compute));
    }
    answer(kernel, "roofline", parts)
}

impl Gpu {
    /// The predicted time of one kernel on this GPU and what limits it.
    pub fn kernel(&self, q: &KernelQuery) -> Result<KernelAnswer> {
        let (mut a, own) = match q {
            KernelQuery::Moe { shape, router } => moe_answer(self, shape, *router)?,
            KernelQuery::MlaDecode { shape, batch, kv_len } => mla_answer(self, shape, *batch, *kv_len)?,
            _ => (self.kernel_alone(q)?, None),
        };
        a.cost_model = self.cost_model().name();
        a.source = match own {
            Some(own) => format!("{}; {own}", self.provenance().summary()),
            None => self.provenance().summary(),
        };
        if let KernelQuery::Gemm {
            dtype: GemmDtype::Fp8, ..
        } = q
        {
            if let Some(p) = self.precision_provenance(&FP8) {
                a.source = format!("{}; {p}", a.source);
            }
        }
        Ok(a)
    }

    /// An fp8 GEMM on its own: of fewer than 128 rows, the decode model's fp8
    /// GEMM; else the precision section's single-kernel constants (its
    /// quantization kernels included), plus one launch.
    fn fp8_gemm(&self, m: u64, n: u64, k: u64) -> Result<KernelAnswer> {
        self.check_precision(&FP8)?;
        let GpuCost::Measured(mp) = &self.cost else {
            return Err(Error::Hardware(format!(
                "hardware `{}`: fp8 needs the measured cost model",
                self.key
            )));
        };
        let p = &mp.profile;
        let fit = p
            .precision
            .as_ref()
            .ok_or_else(|| Error::Hardware(format!("hardware `{}`: the profile has no precision section", self.key)))?;
        if m < BLOCK {
            if let Some(c) = self.step_throughputs()?.decode {
                return Ok(decode_answer(
                    "gemm",
                    &c,
                    &dm::gemm_work_in(m, n, k, WeightPrecision::Fp8, &c.form),
                ));
            }
        }
        let model = p.model();
        let work = ka::fp8_gemm_work(m, n, k, model.sm_count, model.fp8_ridge_flops_per_byte);
        let mut parts: Vec<(&str, Unit, f64)> = PRECISION_RESOURCE_TABLE
            .iter()
            .zip(work)
            .zip(fit.kernel_values())
            .map(|(((name, unit, _), w), t)| (*name, *unit, w * t))
            .collect();
        let launch = p.fitted.get("kernel_launch").map_or(0.0, |f| f.ms_per_unit);
        parts.push(("kernel_launch", Unit::Launches, launch));
        Ok(answer("gemm", "prefill", parts))
    }

    fn kernel_alone(&self, q: &KernelQuery) -> Result<KernelAnswer> {
        let step = self.step_throughputs()?;
        let v = BYTES_PER_VALUE as f64;
        let kernel = q.name();
        let profile = match &self.cost {
            GpuCost::Measured(m) => Some(&m.profile),
            GpuCost::Seed { .. } => None,
        };
        let layer = |micro: MicroKernel| -> Option<KernelAnswer> {
            let p = profile?;
            let work = p.model().micro_work(&micro);
            let inverse = p.inverse_throughputs();
            let parts = RESOURCES
                .iter()
                .zip(RESOURCE_UNITS)
                .enumerate()
                .map(|(r, (name, unit))| (*name, unit, work[r] * inverse[(r, 0)]))
                .collect();
            Some(answer(kernel, "prefill", parts))
        };
        let decode = step.decode.filter(|_| profile.is_some());
        Ok(match *q {
            KernelQuery::Moe { .. } | KernelQuery::MlaDecode { .. } => {
                return Err(Error::Spec(format!("`{}` is answered by its own model", q.name())))
            }
            KernelQuery::Gemm {
                m,
                n,
                k,
                dtype: GemmDtype::Fp8,
            } => self.fp8_gemm(m, n, k)?,
            KernelQuery::Gemm { m, n, k, .. } => {
                let (bytes, flops) = (v * (m * k + n * k + m * n) as f64, 2.0 * (m * n) as f64 * k as f64);
                match (decode, m < BLOCK) {
                    (Some(c), true) => decode_answer(kernel, &c, &dm::gemm_work(m, n, k, &c.form)),
                    _ => layer(MicroKernel::Gemm { m, n, k })
                        .unwrap_or_else(|| roofline(kernel, &step, bytes, flops, step.matmul_tflops)),
                }
            }
            KernelQuery::DecodeAttention {
                batch,
                kv_len,
                num_heads,
                num_kv_heads,
                head_dim,
                window,
            } => {
                let cached = window.map_or(kv_len, |w| w.min(kv_len));
                // In f64: sizes up to 2^24 each would overflow a u64 product.
                let (b, h, kv, hd, c) = (
                    batch as f64,
                    num_heads as f64,
                    num_kv_heads as f64,
                    head_dim as f64,
                    cached as f64,
                );
                let write = 2.0 * v * b * kv * hd;
                match decode {
                    Some(c) => decode_answer(
                        kernel,
                        &c,
                        &dm::attention_with_write_work(batch, num_heads, num_kv_heads, head_dim, cached),
                    ),
                    None => {
                        let bytes = v * b * 2.0 * kv * hd * c + write;
                        let flops = 4.0 * b * h * hd * c;
                        roofline(kernel, &step, bytes, flops, step.attention_tflops)
                    }
                }
            }
            KernelQuery::PrefillAttention {
                batch,
                seq_len,
                num_heads,
                num_kv_heads,
                head_dim,
                window,
            } => {
                let micro = MicroKernel::Attention {
                    batch,
                    heads: num_heads,
                    seq: seq_len,
                    head_dim,
                    window,
                };
                layer(micro).unwrap_or_else(|| {
                    let keys = window.map_or(seq_len, |w| w.min(seq_len)) as f64;
                    let pairs = seq_len as f64 * keys - keys * (keys - 1.0) / 2.0;
                    let (b, s, hd) = (batch as f64, seq_len as f64, head_dim as f64);
                    let flops = 4.0 * b * num_heads as f64 * hd * pairs;
                    let bytes = v * b * s * hd * 2.0 * (num_heads + num_kv_heads) as f64;
                    roofline(kernel, &step, bytes, flops, step.attention_tflops)
                })
            }
        })
    }
}

/// The MoE answer: the engine form of a routed MoE MLP (`cost::moe::Pipeline::Engine`).
fn moe_answer(
    gpu: &Gpu,
    shape: &crate::cost::moe::MoeMlpShape,
    router: bool,
) -> Result<(KernelAnswer, Option<String>)> {
    use crate::cost::moe::{self as m, MOE_KERNELS, MOE_RESOURCES};
    m::check_shape(shape).map_err(|p| Error::shape("moe", p))?;
    let (c, source) = m::moe_constants(gpu)?;
    let fitted = matches!(&gpu.cost, GpuCost::Measured(p) if p.profile.moe_model.is_some());
    let routing = m::Routing::imbalanced(shape.tokens, shape.top_k, shape.experts, shape.imbalance);
    let work = m::layer_work(shape, &routing, m::Pipeline::Engine { router }, &c.form);
    let mut per = [0.0; m::COUNT];
    let mut per_kernel = Vec::new();
    for (name, k) in MOE_KERNELS.iter().zip(work.iter()) {
        let billed = c.billed(k);
        let ms = c.ms(&billed);
        if billed.iter().any(|w| *w != 0.0) {
            per_kernel.push(KernelTime {
                kernel: name.to_string(),
                ms,
            });
        }
        for ((p, w), t) in per.iter_mut().zip(billed).zip(c.ms_per_unit) {
            *p += w * t;
        }
    }
    let parts = MOE_RESOURCES
        .iter()
        .zip(per)
        .map(|((name, unit, _), ms)| (*name, *unit, ms))
        .collect();
    let mut a = answer("moe", if fitted { "moe" } else { "roofline" }, parts);
    a.per_kernel = per_kernel;
    let form = if router {
        "router GEMM and top-k, grouped gate-up, activation, grouped down, combine"
    } else {
        "grouped gate-up, activation, grouped down, combine (router excluded)"
    };
    Ok((
        a,
        Some(format!(
            "moe: {form}; routing {}; the combine a contiguous weighted sum of each token's rows as a serving \
             engine runs it (that form is not measured: the measured routed MLPs add grouping and a slower \
             gather-and-sum combine); {source}",
            if shape.imbalance > 1.0 {
                format!("imbalanced, the busiest expert {} x the mean rows", shape.imbalance)
            } else {
                "balanced (tokens x topk / num_experts rows per expert)".to_string()
            }
        )),
    ))
}

/// The MLA decode answer: the attention half of one MLA layer, absorbed form.
fn mla_answer(
    gpu: &Gpu,
    shape: &crate::cost::mla::MlaShape,
    batch: u64,
    kv_len: u64,
) -> Result<(KernelAnswer, Option<String>)> {
    use crate::cost::mla as a;
    a::check_shape(shape, batch, "kv_len", kv_len).map_err(|p| Error::shape("mla_decode", p))?;
    let (base, c, source) = a::mla_constants(gpu)?;
    let parts = a::decode_parts(&base, shape, batch, kv_len - 1);
    let per_kernel: Vec<KernelTime> = a::parts_ms(&parts, &c)
        .into_iter()
        .map(|(kernel, ms)| KernelTime {
            kernel: kernel.to_string(),
            ms,
        })
        .collect();
    let mut own = [0.0; a::COUNT];
    let mut borrowed = 0.0;
    for p in &parts {
        borrowed += p.base_ms;
        for ((o, w), t) in own.iter_mut().zip(p.work).zip(c) {
            *o += w * t;
        }
    }
    let mut list: Vec<(&str, Unit, f64)> = a::MLA_RESOURCES
        .iter()
        .zip(own)
        .map(|((name, unit, _), ms)| (*name, *unit, ms))
        .collect();
    list.push((
        "projections_norms_rope (layer and decode models)",
        Unit::Bytes,
        borrowed,
    ));
    let fitted = matches!(base, a::Base::Fitted(_));
    let mut ans = answer("mla_decode", if fitted { "mla" } else { "roofline" }, list);
    ans.per_kernel = per_kernel;
    Ok((ans, Some(format!("mla_decode: {source}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{CostModelKind, GpuTarget, Registry};
    use serde_json::json;

    fn h200() -> Gpu {
        Registry::builtin().resolve(&GpuTarget::builtin("h200")).unwrap()
    }

    #[test]
    fn reads_queries_and_names_the_place_of_a_bad_one() {
        let q = json!([{"kernel": "gemm", "m": 1, "n": 4096, "k": 4096},
                       {"kernel": "decode_attention", "batch": 8, "kv_len": 8192, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128},
                       {"kernel": "prefill_attention", "batch": 1, "seq_len": 4096, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128, "window": 1024}]);
        assert_eq!(KernelQuery::list_from_json(&q).unwrap().len(), 3);
        let bad = json!([{"kernel": "gemm", "m": 1, "n": 4096}]);
        let e = KernelQuery::list_from_json(&bad).unwrap_err().to_string();
        assert_eq!(e, "queries[0]: missing `k`");
        let bad = json!([{"kernel": "gemv", "m": 1}]);
        let e = KernelQuery::list_from_json(&bad).unwrap_err().to_string();
        assert!(e.contains("queries[0].kernel: unknown kernel `gemv`"), "{e}");
        let bad = json!([{"kernel": "decode_attention", "batch": 1, "kv_len": 1, "num_heads": 32, "num_kv_heads": 5, "head_dim": 128}]);
        let e = KernelQuery::list_from_json(&bad).unwrap_err().to_string();
        assert!(e.contains("does not divide"), "{e}");
    }

    #[test]
    fn answers_grow_with_work_and_say_what_limits_them() {
        let gpu = h200();
        let gemm = |m| {
            gpu.kernel(&KernelQuery::Gemm {
                m,
                n: 8192,
                k: 8192,
                dtype: GemmDtype::Bf16,
            })
            .unwrap()
        };
        let (small, big) = (gemm(1), gemm(16384));
        assert!(big.latency_ms > 50.0 * small.latency_ms);
        assert_eq!(big.bound, "compute");
        assert_eq!(big.model, "prefill");
        let attn = |kv_len| {
            gpu.kernel(&KernelQuery::DecodeAttention {
                batch: 16,
                kv_len,
                num_heads: 32,
                num_kv_heads: 8,
                head_dim: 128,
                window: None,
            })
            .unwrap()
        };
        assert!(attn(32768).latency_ms > attn(1024).latency_ms);
        let sum: f64 = big.per_resource.iter().map(|r| r.ms).sum();
        assert!((sum - big.latency_ms).abs() < 1e-12 * big.latency_ms);
        let seed = Registry::builtin()
            .resolve(&GpuTarget::builtin("h100").with_cost_model(CostModelKind::Seed))
            .unwrap();
        assert_eq!(
            seed.kernel(&KernelQuery::Gemm {
                m: 1,
                n: 8192,
                k: 8192,
                dtype: GemmDtype::Bf16,
            })
            .unwrap()
            .model,
            "roofline"
        );
    }
    #[test]
    fn moe_and_mla_queries_are_read_and_every_bad_key_is_named() {
        let q = json!([{"kernel": "moe", "num_tokens": 4096, "hidden_size": 2048, "inter_size": 768, "num_experts": 128, "topk": 8},
                       {"kernel": "moe", "num_tokens": 1, "hidden_size": 4096, "inter_size": 14336, "num_experts": 8, "topk": 2, "router": true, "imbalance": 1.5},
                       {"kernel": "mla_decode", "batch": 8, "kv_len": 8192, "hidden_size": 7168, "num_heads": 128, "q_lora_rank": 1536,
                        "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128},
                       {"kernel": "mla_decode", "batch": 1, "kv_len": 1, "hidden_size": 2048, "num_heads": 16, "q_lora_rank": null,
                        "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128}]);
        assert_eq!(KernelQuery::list_from_json(&q).unwrap().len(), 4);
        let moe = |extra: serde_json::Value| {
            let mut q = json!({"kernel": "moe", "num_tokens": 16, "hidden_size": 2048, "inter_size": 768, "num_experts": 128, "topk": 8});
            for (k, v) in extra.as_object().unwrap() {
                q[k] = v.clone();
            }
            KernelQuery::list_from_json(&json!([q])).unwrap_err().to_string()
        };
        assert_eq!(
            moe(json!({"topk": 129})),
            "queries[0].topk: `topk` = 129 is more than `num_experts` = 128"
        );
        assert_eq!(
            moe(json!({"num_tokens": 0})),
            "queries[0].num_tokens: expected a positive integer, got 0"
        );
        assert!(moe(json!({"num_experts": 1_000_000, "topk": 1}))
            .contains("queries[0].num_experts: 1000000 is absurdly large"));
        assert!(moe(json!({"hidden_size": 1u64 << 40})).contains("queries[0].hidden_size:"));
        let e = moe(json!({"num_expert": 8}));
        assert!(
            e.starts_with("queries[0]: unknown key `num_expert` (did you mean `num_experts`?)"),
            "{e}"
        );
        assert!(moe(json!({"imbalance": 0.5})).contains("queries[0].imbalance: `imbalance` must be from 1"));
        assert!(moe(json!({"imbalance": "2"})).contains("queries[0].imbalance: expected a positive number"));
        assert!(moe(json!({"router": 1})).contains("queries[0].router: expected true or false, got 1"));
        let mla = json!([{"kernel": "mla_decode", "batch": 8, "kv_len": 8192, "hidden_size": 7168, "num_heads": 128,
                          "kv_lora_rank": 0, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128}]);
        let e = KernelQuery::list_from_json(&mla).unwrap_err().to_string();
        assert_eq!(e, "queries[0].kv_lora_rank: expected a positive integer, got 0");
    }

    #[test]
    fn moe_answers_grow_with_tokens_and_sum_their_kernels() {
        let gpu = h200();
        let moe = |tokens, router| {
            gpu.kernel(&KernelQuery::Moe {
                shape: crate::cost::moe::MoeMlpShape {
                    tokens,
                    hidden: 2048,
                    expert_ffn: 768,
                    experts: 128,
                    top_k: 8,
                    imbalance: 1.0,
                },
                router,
            })
            .unwrap()
        };
        let (small, big) = (moe(1, false), moe(16384, false));
        assert!(
            big.latency_ms > 5.0 * small.latency_ms,
            "{} vs {}",
            big.latency_ms,
            small.latency_ms
        );
        assert_eq!((small.bound, big.bound), ("memory", "compute"));
        assert_eq!(big.model, "moe");
        for a in [&small, &big] {
            let kernels: f64 = a.per_kernel.iter().map(|k| k.ms).sum();
            let resources: f64 = a.per_resource.iter().map(|r| r.ms).sum();
            assert!((kernels - a.latency_ms).abs() < 1e-9 * a.latency_ms);
            assert!((resources - a.latency_ms).abs() < 1e-9 * a.latency_ms);
            assert!(!a
                .per_kernel
                .iter()
                .any(|k| k.kernel == "moe_router" || k.kernel == "moe_grouping"));
        }
        assert!(moe(1, true).latency_ms > small.latency_ms);
        assert!(moe(1, true).per_kernel.iter().any(|k| k.kernel == "moe_router"));
        assert!(
            big.source.contains("MoE model fitted on") && big.source.contains("balanced"),
            "{}",
            big.source
        );
        // a GPU with no MoE fit answers with a labelled roofline
        let seed = Registry::builtin()
            .resolve(&GpuTarget::builtin("a100").with_cost_model(CostModelKind::Seed))
            .unwrap();
        let q = KernelQuery::Moe {
            shape: crate::cost::moe::MoeMlpShape {
                tokens: 64,
                hidden: 4096,
                expert_ffn: 14336,
                experts: 8,
                top_k: 2,
                imbalance: 1.0,
            },
            router: false,
        };
        let a = seed.kernel(&q).unwrap();
        assert_eq!(a.model, "roofline");
        assert!(a.source.contains("spec-sheet roofline estimate"), "{}", a.source);
        // the transferred H100 says so
        let h100 = Registry::builtin().resolve(&GpuTarget::builtin("h100")).unwrap();
        assert!(h100.kernel(&q).unwrap().source.contains("transferred from NVIDIA H200"));
    }

    #[test]
    fn mla_decode_answers_grow_with_the_cache() {
        let gpu = h200();
        let mla = |kv_len| {
            gpu.kernel(&KernelQuery::MlaDecode {
                shape: crate::cost::mla::MlaShape {
                    hidden: 7168,
                    heads: 128,
                    q_lora_rank: Some(1536),
                    kv_lora_rank: 512,
                    qk_nope_head_dim: 128,
                    qk_rope_head_dim: 64,
                    v_head_dim: 128,
                },
                batch: 8,
                kv_len,
            })
            .unwrap()
        };
        let (short, long) = (mla(1024), mla(32768));
        assert!(long.latency_ms > short.latency_ms);
        assert_eq!(long.model, "mla");
        let kernels: f64 = long.per_kernel.iter().map(|k| k.ms).sum();
        assert!((kernels - long.latency_ms).abs() < 1e-9 * long.latency_ms);
        assert_eq!(long.per_kernel.len(), crate::cost::mla::MLA_DECODE_KERNELS.len());
    }
}
