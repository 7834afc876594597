//! Quality constraints: comparisons and ranges over named metrics, combined
//! with all/any, and the per-candidate report the seed writes.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{hint, Error, Result};
use crate::shapes::{LayerShape, ShapeField};

pub use crate::model::StepLatency;

/// Rounds like Python's `round(x, places)`: to the nearest decimal of the
/// exact binary value, ties to even.
pub fn round_places(x: f64, places: usize) -> f64 {
    format!("{x:.places$}").parse().unwrap_or(x)
}

/// hidden_dim below which `quality_proxy` is scaled down (the seed's floor).
pub const QUALITY_PROXY_HIDDEN_FLOOR: f64 = 2048.0;
/// ffn_ratio below which `quality_proxy` is scaled down (the seed's floor).
pub const QUALITY_PROXY_RATIO_FLOOR: f64 = 3.75;

/// A number or flag known about a candidate's shape, usable in constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    HiddenDim,
    NumHeads,
    NumKvHeads,
    HeadDim,
    FfnDim,
    SeqLen,
    BatchSize,
    GqaGroup,
    UseQkNorm,
    FfnRatio,
    ParamProxyM,
    QualityProxy,
    /// Whole-model metrics (need `num_layers` and `vocab_size`; a candidate
    /// without them fails any clause on them).
    NumLayers,
    VocabSize,
    ContextLen,
    /// Exact parameters, in millions.
    ParamsM,
    NonEmbeddingParamsM,
    /// Weights in the candidate's precision, GiB.
    WeightGib,
    /// The KV cache (in its precision) of `batch_size` sequences of the decode context, GiB.
    KvCacheGib,
    /// Scaling-law loss (needs training tokens).
    LossEstimate,
    /// Whole-model latencies on a GPU: the prefill of `batch_size` sequences
    /// of `seq_len` tokens (time to first token), one decode step at
    /// `batch_size` with the decode context cached, and `batch_size` / that
    /// step in seconds. They depend on the GPU: a clause on them holds per GPU.
    PrefillMs,
    DecodeMs,
    DecodeTokensPerS,
}

/// What kind of value a metric has, so that `use_qk_norm >= 3` is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Int,
    Float,
    Bool,
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricType::Int => "an integer",
            MetricType::Float => "a number",
            MetricType::Bool => "a boolean",
        })
    }
}

impl Metric {
    pub const ALL: [Metric; 23] = [
        Metric::HiddenDim,
        Metric::NumHeads,
        Metric::NumKvHeads,
        Metric::HeadDim,
        Metric::FfnDim,
        Metric::SeqLen,
        Metric::BatchSize,
        Metric::GqaGroup,
        Metric::UseQkNorm,
        Metric::FfnRatio,
        Metric::ParamProxyM,
        Metric::QualityProxy,
        Metric::NumLayers,
        Metric::VocabSize,
        Metric::ContextLen,
        Metric::ParamsM,
        Metric::NonEmbeddingParamsM,
        Metric::WeightGib,
        Metric::KvCacheGib,
        Metric::LossEstimate,
        Metric::PrefillMs,
        Metric::DecodeMs,
        Metric::DecodeTokensPerS,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::HiddenDim => "hidden_dim",
            Metric::NumHeads => "num_heads",
            Metric::NumKvHeads => "num_kv_heads",
            Metric::HeadDim => "head_dim",
            Metric::FfnDim => "ffn_dim",
            Metric::SeqLen => "seq_len",
            Metric::BatchSize => "batch_size",
            Metric::GqaGroup => "gqa_group",
            Metric::UseQkNorm => "use_qk_norm",
            Metric::FfnRatio => "ffn_ratio",
            Metric::ParamProxyM => "param_proxy_m",
            Metric::QualityProxy => "quality_proxy",
            Metric::NumLayers => "num_layers",
            Metric::VocabSize => "vocab_size",
            Metric::ContextLen => "context_len",
            Metric::ParamsM => "params_m",
            Metric::NonEmbeddingParamsM => "non_embedding_params_m",
            Metric::WeightGib => "weight_gib",
            Metric::KvCacheGib => "kv_cache_gib",
            Metric::LossEstimate => "loss_estimate",
            Metric::PrefillMs => "prefill_ms",
            Metric::DecodeMs => "decode_ms",
            Metric::DecodeTokensPerS => "decode_tokens_per_s",
        }
    }

    pub fn from_name(name: &str) -> Result<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            Error::Spec(format!(
                "unknown metric `{name}`{}; known: {}",
                hint(name, Metric::ALL.iter().map(|m| m.name())),
                Metric::ALL.map(|m| m.name()).join(", ")
            ))
        })
    }

    pub fn kind(self) -> MetricType {
        match self {
            Metric::UseQkNorm => MetricType::Bool,
            Metric::FfnRatio
            | Metric::ParamProxyM
            | Metric::QualityProxy
            | Metric::ParamsM
            | Metric::NonEmbeddingParamsM
            | Metric::WeightGib
            | Metric::KvCacheGib
            | Metric::LossEstimate
            | Metric::PrefillMs
            | Metric::DecodeMs
            | Metric::DecodeTokensPerS => MetricType::Float,
            _ => MetricType::Int,
        }
    }

    /// The shape fields this metric's value depends on.
    pub fn fields(self) -> &'static [ShapeField] {
        use ShapeField::*;
        match self {
            Metric::HiddenDim => &[HiddenDim],
            Metric::NumHeads => &[NumHeads],
            Metric::NumKvHeads => &[NumKvHeads],
            Metric::HeadDim => &[HeadDim],
            Metric::FfnDim => &[FfnDim],
            Metric::SeqLen => &[SeqLen],
            Metric::BatchSize => &[BatchSize],
            Metric::GqaGroup => &[NumHeads, NumKvHeads],
            Metric::UseQkNorm => &[UseQkNorm],
            Metric::FfnRatio | Metric::ParamProxyM | Metric::QualityProxy => &[HiddenDim, FfnDim],
            Metric::NumLayers => &[NumLayers],
            Metric::VocabSize => &[VocabSize],
            Metric::ContextLen => &[ContextLen, SeqLen],
            // Parameters (and the loss) do not depend on precision.
            Metric::ParamsM | Metric::NonEmbeddingParamsM | Metric::LossEstimate => &[
                HiddenDim,
                NumHeads,
                NumKvHeads,
                HeadDim,
                FfnDim,
                UseQkNorm,
                NumLayers,
                VocabSize,
                TieEmbeddings,
            ],
            Metric::WeightGib => &[
                HiddenDim,
                NumHeads,
                NumKvHeads,
                HeadDim,
                FfnDim,
                UseQkNorm,
                NumLayers,
                VocabSize,
                TieEmbeddings,
                Weights,
            ],
            Metric::KvCacheGib => &[
                NumLayers, NumKvHeads, HeadDim, BatchSize, SeqLen, ContextLen, WindowSize, KvCache,
            ],
            Metric::PrefillMs | Metric::DecodeMs | Metric::DecodeTokensPerS => &[
                HiddenDim, NumHeads, NumKvHeads, HeadDim, FfnDim, SeqLen, BatchSize, UseQkNorm, WindowSize, NumLayers,
                VocabSize, ContextLen, Weights, KvCache,
            ],
        }
    }

    /// The stem of failure codes: `param_proxy_m` fails as `param_proxy_below_floor`.
    fn failure_stem(self) -> &'static str {
        match self {
            Metric::ParamProxyM => "param_proxy",
            other => other.name(),
        }
    }

    /// Whether the metric describes a whole model (needs `num_layers` and `vocab_size`).
    pub fn is_whole_model(self) -> bool {
        matches!(
            self,
            Metric::NumLayers
                | Metric::VocabSize
                | Metric::ParamsM
                | Metric::NonEmbeddingParamsM
                | Metric::WeightGib
                | Metric::KvCacheGib
                | Metric::LossEstimate
                | Metric::PrefillMs
                | Metric::DecodeMs
                | Metric::DecodeTokensPerS
        )
    }

    /// Whether the metric is a latency on a GPU (`prefill_ms`, `decode_ms`,
    /// `decode_tokens_per_s`): known only per GPU, never at compile time.
    pub fn is_latency(self) -> bool {
        matches!(self, Metric::PrefillMs | Metric::DecodeMs | Metric::DecodeTokensPerS)
    }

    /// The metric's value for a shape on a GPU whose whole-model latencies
    /// are `latency` (latency metrics are unrounded; without `latency` they
    /// are `Float(NaN)`).
    pub fn value_on(self, s: &LayerShape, latency: Option<&StepLatency>) -> Bound {
        match (self, latency) {
            (Metric::PrefillMs, Some(l)) => Bound::Float(l.prefill_ms),
            (Metric::DecodeMs, Some(l)) => Bound::Float(l.decode_ms),
            (Metric::DecodeTokensPerS, Some(l)) => Bound::Float(l.decode_tokens_per_s),
            _ => self.value(s),
        }
    }

    /// The metric's value for a shape (derived metrics rounded to 6 places,
    /// as reported). A whole-model metric of a plain layer (or a loss without
    /// training tokens) is `Float(NaN)`: no comparison holds on it.
    pub fn value(self, s: &LayerShape) -> Bound {
        let p = Proxies::of(s);
        let model = |f: &dyn Fn(&crate::model::ModelFigures) -> Option<f64>| {
            Bound::Float(
                crate::model::figures(s)
                    .and_then(|m| f(&m))
                    .map_or(f64::NAN, |v| round_places(v, 6)),
            )
        };
        let gib = crate::model::GIB;
        match self {
            Metric::HiddenDim => Bound::Int(s.hidden_dim as i64),
            Metric::NumHeads => Bound::Int(s.num_heads as i64),
            Metric::NumKvHeads => Bound::Int(s.num_kv_heads as i64),
            Metric::HeadDim => Bound::Int(s.head_dim as i64),
            Metric::FfnDim => Bound::Int(s.ffn_dim as i64),
            Metric::SeqLen => Bound::Int(s.seq_len as i64),
            Metric::BatchSize => Bound::Int(s.batch_size as i64),
            Metric::GqaGroup => Bound::Int(s.gqa_group() as i64),
            Metric::UseQkNorm => Bound::Bool(s.use_qk_norm),
            Metric::FfnRatio => Bound::Float(p.ffn_ratio),
            Metric::ParamProxyM => Bound::Float(p.param_proxy_m),
            Metric::QualityProxy => Bound::Float(p.quality_proxy),
            Metric::NumLayers => s
                .model
                .num_layers
                .map_or(Bound::Float(f64::NAN), |v| Bound::Int(v as i64)),
            Metric::VocabSize => s
                .model
                .vocab_size
                .map_or(Bound::Float(f64::NAN), |v| Bound::Int(v as i64)),
            Metric::ContextLen => Bound::Int(crate::model::context_of(s) as i64),
            Metric::ParamsM => model(&|m| Some(m.parameters.total as f64 / 1e6)),
            Metric::NonEmbeddingParamsM => model(&|m| Some(m.parameters.non_embedding as f64 / 1e6)),
            Metric::WeightGib => model(&|m| Some(m.memory.weight_bytes as f64 / gib)),
            Metric::KvCacheGib => model(&|_| {
                crate::model::kv_cache_bytes(s, s.batch_size, crate::model::context_of(s)).map(|b| b as f64 / gib)
            }),
            Metric::LossEstimate => model(&|m| m.loss_estimate),
            // Known per GPU only (`value_on`).
            Metric::PrefillMs | Metric::DecodeMs | Metric::DecodeTokensPerS => Bound::Float(f64::NAN),
        }
    }
}

/// The seed's size proxies of a shape, rounded to 6 places as it reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proxies {
    /// D*F / 1e6, unrounded: rankings divide by this one.
    pub param_proxy_raw: f64,
    pub param_proxy_m: f64,
    pub ffn_ratio: f64,
    pub quality_proxy: f64,
}

impl Proxies {
    pub fn of(s: &LayerShape) -> Self {
        let param_proxy_raw = (s.hidden_dim as f64 * s.ffn_dim as f64) / 1e6;
        let ratio_raw = s.ffn_dim as f64 / s.hidden_dim as f64;
        let quality = param_proxy_raw
            * (s.hidden_dim as f64 / QUALITY_PROXY_HIDDEN_FLOOR).min(1.0)
            * (ratio_raw / QUALITY_PROXY_RATIO_FLOOR).min(1.0);
        Proxies {
            param_proxy_raw,
            param_proxy_m: round_places(param_proxy_raw, 6),
            ffn_ratio: round_places(ratio_raw, 6),
            quality_proxy: round_places(quality, 6),
        }
    }
}

/// A constant a metric is compared to; integers stay integers in JSON.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Bound {
    pub fn kind(self) -> MetricType {
        match self {
            Bound::Int(_) => MetricType::Int,
            Bound::Float(_) => MetricType::Float,
            Bound::Bool(_) => MetricType::Bool,
        }
    }

    pub fn as_f64(self) -> Option<f64> {
        match self {
            Bound::Int(v) => Some(v as f64),
            Bound::Float(v) => Some(v),
            Bound::Bool(_) => None,
        }
    }

    fn to_json(self) -> Value {
        match self {
            Bound::Int(v) => Value::from(v),
            Bound::Float(v) => Value::from(v),
            Bound::Bool(v) => Value::from(v),
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Int(v) => write!(f, "{v}"),
            Bound::Float(v) => write!(f, "{v:?}"),
            Bound::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// Comparison operators of constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Ge => ">=",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Lt => "<",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }

    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Ge => ord != Less,
            CmpOp::Gt => ord == Greater,
            CmpOp::Le => ord != Greater,
            CmpOp::Lt => ord == Less,
            CmpOp::Eq => ord == Equal,
            CmpOp::Ne => ord != Equal,
        }
    }
}

/// One constraint clause.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    Compare {
        metric: Metric,
        op: CmpOp,
        bound: Bound,
    },
    /// `lo <= metric <= hi` (or `< hi` when not inclusive).
    Range {
        metric: Metric,
        lo: Bound,
        hi: Bound,
        inclusive: bool,
    },
    All(Cow<'static, [Constraint]>),
    Any(Cow<'static, [Constraint]>),
    /// `fits(gpu, batch: B, context: C)`: weights (in their precision), the KV cache of B
    /// sequences of C tokens and one prefill layer's activation peak fit in
    /// the GPU's memory (its capacity resolved when the spec is built).
    Fits {
        gpu: Cow<'static, str>,
        memory_gib: f64,
        batch: u64,
        context: u64,
    },
}

impl Constraint {
    /// Every metric the clause reads.
    pub fn metrics(&self, out: &mut Vec<Metric>) {
        match self {
            Constraint::Compare { metric, .. } | Constraint::Range { metric, .. } => out.push(*metric),
            Constraint::All(cs) | Constraint::Any(cs) => cs.iter().for_each(|c| c.metrics(out)),
            // What the memory it needs depends on.
            Constraint::Fits { .. } => out.extend([
                Metric::ParamsM,
                Metric::WeightGib,
                Metric::KvCacheGib,
                Metric::QualityProxy,
            ]),
        }
    }

    /// Checks types and bounds: a bool metric compared to a number, an
    /// ordering on a bool, an empty or reversed range.
    pub fn check(&self) -> Result<()> {
        match self {
            Constraint::Compare { metric, op, bound } => {
                check_type(*metric, *bound)?;
                if metric.kind() == MetricType::Bool && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(Error::Spec(format!(
                        "`{}` is a boolean: compare it with == or !=, not {}",
                        metric.name(),
                        op.symbol()
                    )));
                }
                Ok(())
            }
            Constraint::Range {
                metric,
                lo,
                hi,
                inclusive,
            } => {
                if metric.kind() == MetricType::Bool {
                    return Err(Error::Spec(format!(
                        "`{}` is a boolean and has no range",
                        metric.name()
                    )));
                }
                check_type(*metric, *lo)?;
                check_type(*metric, *hi)?;
                let (l, h) = (lo.as_f64().unwrap_or(0.0), hi.as_f64().unwrap_or(0.0));
                if l > h || (!inclusive && l >= h) {
                    let dots = if *inclusive { "..=" } else { ".." };
                    return Err(Error::Spec(format!(
                        "the range `{lo}{dots}{hi}` of `{}` is empty: its lower bound is not below its upper bound",
                        metric.name()
                    )));
                }
                Ok(())
            }
            Constraint::All(cs) | Constraint::Any(cs) => cs.iter().try_for_each(Constraint::check),
            Constraint::Fits {
                gpu,
                memory_gib,
                batch,
                context,
            } => {
                if !memory_gib.is_finite() || *memory_gib <= 0.0 {
                    return Err(Error::Spec(format!(
                        "`fits({gpu}, ...)`: the GPU's memory must be a positive number of GiB, got {memory_gib}"
                    )));
                }
                if *batch == 0 || *context == 0 || *batch > crate::shapes::MAX_DIM || *context > crate::shapes::MAX_DIM
                {
                    return Err(Error::Spec(format!(
                        "`fits({gpu}, ...)`: batch and context must be between 1 and {}",
                        crate::shapes::MAX_DIM
                    )));
                }
                Ok(())
            }
        }
    }

    /// Whether a shape satisfies the clause, GPU-independently: clauses on
    /// latency metrics are assumed to hold (they are evaluated per GPU by
    /// [`Constraint::holds_on`]). Since no clause negates another, this is
    /// an upper bound: what fails here fails on every GPU.
    pub fn holds(&self, s: &LayerShape) -> bool {
        self.holds_on(s, None)
    }

    /// Whether any clause reads a latency metric (and so holds per GPU).
    pub fn reads_latency(&self) -> bool {
        let mut metrics = Vec::new();
        self.metrics(&mut metrics);
        metrics.iter().any(|m| m.is_latency())
    }

    /// Whether a shape satisfies the clause on a GPU whose whole-model
    /// latencies are `latency` (`None`: latency clauses are assumed to hold).
    pub fn holds_on(&self, s: &LayerShape, latency: Option<&StepLatency>) -> bool {
        match self {
            Constraint::Compare { metric, .. } | Constraint::Range { metric, .. }
                if metric.is_latency() && latency.is_none() =>
            {
                true
            }
            Constraint::Compare { metric, op, bound } => {
                compare(metric.value_on(s, latency), *bound).is_some_and(|o| op.holds(o))
            }
            Constraint::Range {
                metric,
                lo,
                hi,
                inclusive,
            } => {
                let v = metric.value_on(s, latency);
                let above_lo = compare(v, *lo).is_some_and(|o| CmpOp::Ge.holds(o));
                let below_hi = compare(v, *hi).is_some_and(|o| {
                    if *inclusive {
                        CmpOp::Le.holds(o)
                    } else {
                        CmpOp::Lt.holds(o)
                    }
                });
                above_lo && below_hi
            }
            Constraint::All(cs) => cs.iter().all(|c| c.holds_on(s, latency)),
            Constraint::Any(cs) => cs.iter().any(|c| c.holds_on(s, latency)),
            Constraint::Fits {
                memory_gib,
                batch,
                context,
                ..
            } => crate::model::fits(s, memory_gib * crate::model::GIB, *batch, *context).unwrap_or(false),
        }
    }

    /// Failure codes for a shape, in the seed's vocabulary where it has one
    /// (`hidden_dim_below_floor`, `ffn_ratio_above_ceiling`), else the clause.
    fn failures(&self, s: &LayerShape, latency: Option<&StepLatency>, out: &mut Vec<String>) {
        let holds = self.holds_on(s, latency);
        match self {
            Constraint::Compare { metric, .. } | Constraint::Range { metric, .. }
                if !holds && metric.value_on(s, latency).as_f64().is_some_and(f64::is_nan) =>
            {
                out.push(format!("{}_unavailable", metric.name()));
            }
            Constraint::Compare { metric, op, .. } if !holds => {
                let stem = metric.failure_stem();
                out.push(match op {
                    CmpOp::Ge | CmpOp::Gt => format!("{stem}_below_floor"),
                    CmpOp::Le | CmpOp::Lt => format!("{stem}_above_ceiling"),
                    CmpOp::Eq => format!("{stem}_not_equal"),
                    CmpOp::Ne => format!("{stem}_excluded"),
                });
            }
            Constraint::Range { metric, lo, .. } if !holds => {
                let below = compare(metric.value_on(s, latency), *lo).is_some_and(|o| o == std::cmp::Ordering::Less);
                let side = if below { "below_floor" } else { "above_ceiling" };
                out.push(format!("{}_{side}", metric.failure_stem()));
            }
            Constraint::All(_) | Constraint::Any(_) if !holds => out.push(format!("failed: {self}")),
            Constraint::Fits { gpu, .. } if !holds => out.push(format!("does_not_fit_{gpu}")),
            _ => {}
        }
    }

    /// Adds this clause to the report's `quality_constraints` block.
    fn describe(&self, block: &mut Map<String, Value>) {
        match self {
            Constraint::Compare { metric, op, bound } => {
                let key = match op {
                    CmpOp::Ge => format!("min_{}", metric.name()),
                    CmpOp::Gt => format!("min_exclusive_{}", metric.name()),
                    CmpOp::Le => format!("max_{}", metric.name()),
                    CmpOp::Lt => format!("max_exclusive_{}", metric.name()),
                    CmpOp::Eq => format!("equals_{}", metric.name()),
                    CmpOp::Ne => format!("excludes_{}", metric.name()),
                };
                block.insert(key, bound.to_json());
            }
            Constraint::Range {
                metric,
                lo,
                hi,
                inclusive,
            } => {
                block.insert(format!("min_{}", metric.name()), lo.to_json());
                let max = if *inclusive { "max" } else { "max_exclusive" };
                block.insert(format!("{max}_{}", metric.name()), hi.to_json());
            }
            Constraint::All(_) | Constraint::Any(_) | Constraint::Fits { .. } => {
                let list = block.entry("expressions").or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(items) = list {
                    items.push(Value::from(self.to_string()));
                }
            }
        }
    }
}

fn check_type(metric: Metric, bound: Bound) -> Result<()> {
    let ok = match (metric.kind(), bound.kind()) {
        (a, b) if a == b => true,
        (MetricType::Float, MetricType::Int) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Spec(format!(
            "`{}` is {}, but it is compared with {} ({bound})",
            metric.name(),
            metric.kind(),
            bound.kind()
        )))
    }
}

fn compare(a: Bound, b: Bound) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Bound::Bool(x), Bound::Bool(y)) => Some(x.cmp(&y)),
        (Bound::Int(x), Bound::Int(y)) => Some(x.cmp(&y)),
        (x, y) => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, cs: &[Constraint], sep: &str| {
            write!(f, "(")?;
            for (i, c) in cs.iter().enumerate() {
                if i > 0 {
                    write!(f, " {sep} ")?;
                }
                write!(f, "{c}")?;
            }
            write!(f, ")")
        };
        match self {
            Constraint::Compare { metric, op, bound } => {
                write!(f, "{} {} {bound}", metric.name(), op.symbol())
            }
            Constraint::Range {
                metric,
                lo,
                hi,
                inclusive,
            } => {
                write!(
                    f,
                    "{} in {lo}..{}{hi}",
                    metric.name(),
                    if *inclusive { "=" } else { "" }
                )
            }
            Constraint::All(cs) => join(f, cs, "&&"),
            Constraint::Any(cs) => join(f, cs, "||"),
            Constraint::Fits {
                gpu, batch, context, ..
            } => write!(f, "fits({gpu}, batch: {batch}, context: {context})"),
        }
    }
}

/// A conjunction of clauses: a candidate passes when every clause holds.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Constraints {
    pub clauses: Cow<'static, [Constraint]>,
}

/// What the seed writes for each candidate under `constraints`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConstraintReport {
    pub failed: Vec<String>,
    pub ffn_ratio: f64,
    pub param_proxy_m: f64,
    pub passes: bool,
    pub quality_proxy: f64,
}

/// Most comparisons (`fits` and ranges count one each, `any`/`all` their
/// members) the constraints of one search hold: checking them for
/// contradictions, and the search's tables, grow with the count.
pub const MAX_CONSTRAINT_ATOMS: usize = 256;

impl Constraints {
    pub fn new(clauses: Vec<Constraint>) -> Result<Self> {
        let c = Constraints {
            clauses: clauses.into(),
        };
        c.check()?;
        Ok(c)
    }

    pub fn check(&self) -> Result<()> {
        fn atoms(c: &Constraint) -> usize {
            match c {
                Constraint::All(cs) | Constraint::Any(cs) => cs.iter().map(atoms).sum(),
                _ => 1,
            }
        }
        let n: usize = self.clauses.iter().map(atoms).sum();
        if n > MAX_CONSTRAINT_ATOMS {
            return Err(Error::Spec(format!(
                "the constraints hold {n} comparisons; a search takes at most {MAX_CONSTRAINT_ATOMS}"
            )));
        }
        self.clauses.iter().try_for_each(Constraint::check)
    }

    /// Whether a shape passes every clause on a GPU (`None`: latency clauses assumed to hold).
    pub fn passes_on(&self, s: &LayerShape, latency: Option<&StepLatency>) -> bool {
        self.clauses.iter().all(|c| c.holds_on(s, latency))
    }

    /// Whether any clause reads a latency metric, so that passing depends on the GPU.
    pub fn reads_latency(&self) -> bool {
        self.clauses.iter().any(Constraint::reads_latency)
    }

    /// The GPU-independent report: clauses on latency metrics are assumed
    /// to hold (they are evaluated per GPU, [`Constraints::report_on`]).
    pub fn report(&self, s: &LayerShape) -> ConstraintReport {
        self.report_on(s, None)
    }

    /// The report on a GPU whose whole-model latencies are `latency`.
    pub fn report_on(&self, s: &LayerShape, latency: Option<&StepLatency>) -> ConstraintReport {
        let p = Proxies::of(s);
        let mut failed = Vec::new();
        for c in self.clauses.iter() {
            c.failures(s, latency, &mut failed);
        }
        ConstraintReport {
            passes: failed.is_empty(),
            failed,
            ffn_ratio: p.ffn_ratio,
            param_proxy_m: p.param_proxy_m,
            quality_proxy: p.quality_proxy,
        }
    }

    /// The `quality_constraints` block of a report.
    pub fn describe(&self) -> Map<String, Value> {
        let mut block = Map::new();
        for c in self.clauses.iter() {
            c.describe(&mut block);
        }
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(d: u64, f: u64) -> LayerShape {
        LayerShape {
            hidden_dim: d,
            num_heads: 8,
            num_kv_heads: 1,
            head_dim: 256,
            ffn_dim: f,
            seq_len: 2048,
            batch_size: 1,
            use_qk_norm: true,
            window_size: Some(512),
            model: crate::model::ModelDims::NONE,
            precision: crate::precision::Precision::BF16,
        }
    }

    /// Changing a shape field a metric does not declare leaves its value
    /// unchanged: the streaming search builds its constraint tables from the
    /// declarations (precision included: weight and KV bytes follow it,
    /// parameters do not).
    #[test]
    fn metrics_read_only_the_fields_they_declare() {
        use crate::model::ModelDims;
        use crate::precision::{KvCachePrecision, Precision, WeightPrecision};
        use crate::shapes::ShapeField as F;
        let base = LayerShape {
            model: ModelDims {
                num_layers: Some(24),
                vocab_size: Some(32000),
                tie_embeddings: Some(false),
                context_len: Some(4096),
                training_tokens: Some(1_000_000_000_000),
                ..ModelDims::NONE
            },
            ..shape(2048, 8192)
        };
        let with = |f: &dyn Fn(&mut LayerShape)| {
            let mut s = base;
            f(&mut s);
            s
        };
        let variants: Vec<(F, LayerShape)> = vec![
            (F::HiddenDim, with(&|s| s.hidden_dim = 3072)),
            (F::NumHeads, with(&|s| s.num_heads = 16)),
            (F::NumKvHeads, with(&|s| s.num_kv_heads = 2)),
            (F::HeadDim, with(&|s| s.head_dim = 128)),
            (F::FfnDim, with(&|s| s.ffn_dim = 6144)),
            (F::SeqLen, with(&|s| s.seq_len = 1024)),
            (F::BatchSize, with(&|s| s.batch_size = 4)),
            (F::UseQkNorm, with(&|s| s.use_qk_norm = false)),
            (F::WindowSize, with(&|s| s.window_size = Some(1024))),
            (F::NumLayers, with(&|s| s.model.num_layers = Some(32))),
            (F::VocabSize, with(&|s| s.model.vocab_size = Some(128256))),
            (F::TieEmbeddings, with(&|s| s.model.tie_embeddings = Some(true))),
            (F::ContextLen, with(&|s| s.model.context_len = Some(8192))),
            (
                F::Weights,
                with(&|s| s.precision = Precision::new(WeightPrecision::Fp8, KvCachePrecision::Bf16)),
            ),
            (
                F::Weights,
                with(&|s| s.precision = Precision::new(WeightPrecision::Int4, KvCachePrecision::Bf16)),
            ),
            (
                F::KvCache,
                with(&|s| s.precision = Precision::new(WeightPrecision::Bf16, KvCachePrecision::Fp8)),
            ),
        ];
        let same = |a: Bound, b: Bound| match (a, b) {
            (Bound::Float(x), Bound::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
            (a, b) => a == b,
        };
        for metric in Metric::ALL.into_iter().filter(|m| !m.is_latency()) {
            for (field, changed) in &variants {
                if !metric.fields().contains(field) {
                    assert!(
                        same(metric.value(&base), metric.value(changed)),
                        "`{}` reads {field:?} but does not declare it",
                        metric.name()
                    );
                }
            }
        }
    }

    #[test]
    fn python_rounding() {
        assert_eq!(round_places(2.675, 2), 2.67); // binary 2.67499999...
        assert_eq!(round_places(0.125, 2), 0.12); // exact tie -> even
        assert_eq!(round_places(9.437184, 6), 9.437184);
    }

    #[test]
    fn failure_codes_follow_the_seed() {
        let c = Constraints::new(vec![
            Constraint::Compare {
                metric: Metric::HiddenDim,
                op: CmpOp::Ge,
                bound: Bound::Int(2048),
            },
            Constraint::Compare {
                metric: Metric::ParamProxyM,
                op: CmpOp::Ge,
                bound: Bound::Float(16.0),
            },
            Constraint::Range {
                metric: Metric::FfnRatio,
                lo: Bound::Float(3.75),
                hi: Bound::Float(5.5),
                inclusive: true,
            },
        ])
        .unwrap();
        let r = c.report(&shape(1536, 6144));
        assert_eq!(r.failed, ["hidden_dim_below_floor", "param_proxy_below_floor"]);
        assert_eq!((r.param_proxy_m, r.quality_proxy), (9.437184, 7.077888));
        assert_eq!(c.report(&shape(2048, 16384)).failed, ["ffn_ratio_above_ceiling"]);
        let block = Value::Object(c.describe());
        assert_eq!(block["min_hidden_dim"], Value::from(2048));
        assert_eq!(block["max_ffn_ratio"], Value::from(5.5));
    }

    #[test]
    fn type_and_range_errors() {
        let bad = Constraint::Compare {
            metric: Metric::UseQkNorm,
            op: CmpOp::Ge,
            bound: Bound::Float(1.0),
        };
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("`use_qk_norm` is a boolean"));
        let empty = Constraint::Range {
            metric: Metric::FfnRatio,
            lo: Bound::Float(5.5),
            hi: Bound::Float(3.75),
            inclusive: true,
        };
        assert!(empty.check().unwrap_err().to_string().contains("is empty"));
        assert!(Metric::from_name("hiden_dim")
            .unwrap_err()
            .to_string()
            .contains("did you mean `hidden_dim`"));
    }

    #[test]
    fn any_and_all() {
        let any = Constraint::Any(
            vec![
                Constraint::Compare {
                    metric: Metric::HiddenDim,
                    op: CmpOp::Ge,
                    bound: Bound::Int(4096),
                },
                Constraint::Compare {
                    metric: Metric::UseQkNorm,
                    op: CmpOp::Eq,
                    bound: Bound::Bool(true),
                },
            ]
            .into(),
        );
        assert!(any.holds(&shape(1536, 6144)));
        let c = Constraints::new(vec![Constraint::All(
            vec![
                any.clone(),
                Constraint::Compare {
                    metric: Metric::FfnDim,
                    op: CmpOp::Lt,
                    bound: Bound::Int(100),
                },
            ]
            .into(),
        )])
        .unwrap();
        let r = c.report(&shape(1536, 6144));
        assert_eq!(
            r.failed,
            ["failed: ((hidden_dim >= 4096 || use_qk_norm == true) && ffn_dim < 100)"]
        );
    }
}
