//! A streaming search written as JSON, for people who do not write Rust
//! (`nas search --spec FILE.json`): the same concepts as `nas_search!`.
//!
//! ```json
//! {
//!   "hardware": ["a100", "t4", "h100", {"key": "mine", "base": "h100", "matmul_tflops": 600}],
//!   "workload": {"seq_len": 2048, "batch_size": 1},
//!   "family": {
//!     "axes": [
//!       {"axis": "hidden_dim", "values": [1536, 2048, 2560]},
//!       {"axis": "head_dim", "values": [64, 128]},
//!       {"axis": "gqa_group", "values": [4]},
//!       {"axis": "ffn_ratio", "values": [4.0, {"value": 5.333, "label": "5p33"}], "round": "up", "multiple": 128},
//!       {"axis": "window", "values": [512, null]},
//!       {"axis": "qk_norm", "values": [true, false]}
//!     ],
//!     "name": "g_h{hidden_dim}_hd{head_dim}_f{ffn_ratio}_w{window}_{qk_norm}"
//!   },
//!   "constraints": [
//!     {"metric": "hidden_dim", "op": ">=", "value": 2048},
//!     {"metric": "ffn_ratio", "in": [3.75, 5.5]},
//!     {"any": [{"metric": "num_heads", "op": ">=", "value": 16}, {"metric": "head_dim", "op": "==", "value": 256}]}
//!   ],
//!   "top_k": 25
//! }
//! ```

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::{hint, Error, Result};
use crate::gpu::{CostModelKind, Gpu, GpuTarget, OwnGpu, Registry};
use crate::hardware::{Overrides, Throughputs, THROUGHPUT_KEYS};
use crate::model::{LossFit, ParamCount, ScalingLaw};
use crate::search::constraints::{Bound, CmpOp, Constraint, Constraints, Metric};
use crate::search::family::{Axis, AxisKind, AxisValue, Family, FfnRounding, Labeled, Rounding, Workload};
use crate::shapes::{canonical_key, kind_of, GENERATED_CANDIDATE, MAX_DIM};

/// A search read from JSON, ready for [`crate::search::stream::search`].
#[derive(Clone, Debug)]
pub struct JsonSearch {
    /// The GPUs, resolved with the cost model asked for (profile files read).
    pub hardware: Vec<Gpu>,
    pub workload: Workload,
    pub family: Family,
    pub constraints: Constraints,
    pub top_k: usize,
    /// What each GPU's constrained top is ordered by (default `total_ms`).
    pub rank_by: crate::search::RankMetric,
}

fn err(place: &str, problem: impl Into<String>) -> Error {
    Error::Input {
        place: place.to_string(),
        problem: problem.into(),
    }
}

fn object<'v>(v: &'v Value, place: &str) -> Result<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| err(place, format!("expected an object, got {}", kind_of(v))))
}

fn known_keys(obj: &Map<String, Value>, known: &[&str], place: &str) -> Result<()> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(err(
            place,
            format!(
                "unknown key `{k}`{}; expected: {}",
                hint(k, known.iter().copied()),
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn positive(v: &Value, place: &str) -> Result<u64> {
    v.as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| err(place, format!("expected a positive integer, got {v}")))
}

/// A positive integer of at most [`MAX_DIM`] (a size of a layer).
fn size(v: &Value, place: &str) -> Result<u64> {
    let n = positive(v, place)?;
    if n > MAX_DIM {
        return Err(err(place, format!("{n} is absurdly large (the limit is {MAX_DIM})")));
    }
    Ok(n)
}

impl JsonSearch {
    /// Reads and checks a search spec; every error names the JSON path.
    pub fn from_json(v: &Value) -> Result<Self> {
        let top = object(v, "spec")?;
        known_keys(
            top,
            &[
                "hardware",
                "cost_model",
                "workload",
                "training",
                "family",
                "constraints",
                "top_k",
                "rank_by",
            ],
            "spec",
        )?;
        let cost_models = read_cost_models(top.get("cost_model"))?;
        let hardware = match top.get("hardware") {
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut seen = std::collections::BTreeSet::new();
                let mut gpus = Vec::new();
                for (i, h) in items.iter().enumerate() {
                    let place = format!("hardware[{i}]");
                    let target = read_hardware(h, &place, &cost_models)?;
                    if !seen.insert(target.key.to_string()) {
                        return Err(err(&place, format!("hardware `{}` is listed twice", target.key)));
                    }
                    gpus.push(
                        Registry::builtin()
                            .resolve(&target)
                            .map_err(|e| err(&place, e.to_string()))?,
                    );
                }
                if let Some(key) = cost_models.per_gpu.keys().find(|k| !seen.contains(*k)) {
                    return Err(err(
                        &format!("cost_model.{key}"),
                        format!("`{key}` is not listed in `hardware`"),
                    ));
                }
                gpus
            }
            Some(other) => return Err(err("hardware", format!("expected a non-empty array, got {other}"))),
            None => return Err(err("spec", "missing key `hardware`")),
        };
        let mut workload = match top.get("workload") {
            None => Workload::layer(2048, 1),
            Some(w) => {
                let w = object(w, "workload")?;
                known_keys(w, &["seq_len", "batch_size", "context_len"], "workload")?;
                let get = |key: &str, default: u64| -> Result<u64> {
                    w.get(key).map_or(Ok(default), |v| size(v, &format!("workload.{key}")))
                };
                let mut workload = Workload::layer(get("seq_len", 2048)?, get("batch_size", 1)?);
                if let Some(c) = w.get("context_len") {
                    workload.model.context_len = Some(size(c, "workload.context_len")?);
                }
                workload
            }
        };
        if let Some(t) = top.get("training") {
            let (tokens, fit) = read_training(t)?;
            workload.model.training_tokens = Some(tokens);
            workload.model.loss_fit = fit;
        }
        let family = read_family(top.get("family").ok_or_else(|| err("spec", "missing key `family`"))?)?;
        let clauses = match top.get("constraints") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, c)| read_constraint(c, &format!("constraints[{i}]"), &hardware))
                .collect::<Result<Vec<_>>>()?,
            Some(other) => return Err(err("constraints", format!("expected an array, got {other}"))),
        };
        let constraints = Constraints::new(clauses).map_err(|e| err("constraints", e.to_string()))?;
        let top_k = match top.get("top_k") {
            None => 25,
            Some(v) => positive(v, "top_k")? as usize,
        };
        let rank_by = match top.get("rank_by") {
            None => crate::search::RankMetric::TotalMs,
            Some(Value::String(name)) => {
                crate::search::RankMetric::from_name(name).map_err(|e| err("rank_by", e.to_string()))?
            }
            Some(other) => return Err(err("rank_by", format!("expected a string, got {other}"))),
        };
        family.check().map_err(|e| err("family", e.to_string()))?;
        family
            .check_names_distinct()
            .map_err(|e| err("family.name", e.to_string()))?;
        Ok(JsonSearch {
            hardware,
            workload,
            family,
            constraints,
            top_k,
            rank_by,
        })
    }
}

/// The spec's `cost_model`: one word for every GPU, or an object of GPU
/// keys to words (GPUs it does not name take `measured`).
#[derive(Default)]
struct CostModels {
    all: Option<CostModelKind>,
    per_gpu: std::collections::BTreeMap<String, CostModelKind>,
}

impl CostModels {
    fn of(&self, key: &str) -> Option<CostModelKind> {
        self.per_gpu.get(key).copied().or(self.all)
    }
}

fn cost_model_word(v: &Value, place: &str) -> Result<CostModelKind> {
    match v {
        Value::String(word) => CostModelKind::from_name(word).map_err(|e| err(place, e)),
        other => Err(err(place, format!("expected `measured` or `seed`, got {other}"))),
    }
}

fn read_cost_models(v: Option<&Value>) -> Result<CostModels> {
    match v {
        None => Ok(CostModels::default()),
        Some(Value::Object(map)) => {
            let mut per_gpu = std::collections::BTreeMap::new();
            for (key, word) in map {
                per_gpu.insert(key.clone(), cost_model_word(word, &format!("cost_model.{key}"))?);
            }
            Ok(CostModels { all: None, per_gpu })
        }
        Some(other) => Ok(CostModels {
            all: Some(cost_model_word(other, "cost_model")?),
            per_gpu: Default::default(),
        }),
    }
}

fn read_hardware(v: &Value, place: &str, cost_models: &CostModels) -> Result<GpuTarget> {
    match v {
        Value::String(key) => {
            Registry::builtin().entry(key).map_err(|e| err(place, e.to_string()))?;
            Ok(GpuTarget {
                cost_model: cost_models.of(key),
                ..GpuTarget::builtin_owned(key)
            })
        }
        Value::Object(obj) => {
            let key = obj
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| err(place, "missing string `key`"))?;
            let mut known: Vec<&str> = vec![
                "key",
                "base",
                "label",
                "provenance",
                "memory_gib",
                "cost_model",
                "profile",
            ];
            known.extend(THROUGHPUT_KEYS);
            known_keys(obj, &known, place)?;
            let text = |k: &str| -> Result<Option<String>> {
                match obj.get(k) {
                    None => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => Err(err(&format!("{place}.{k}"), format!("expected a string, got {other}"))),
                }
            };
            let mut values = Vec::new();
            for k in THROUGHPUT_KEYS {
                if let Some(v) = obj.get(k) {
                    let x = v
                        .as_f64()
                        .ok_or_else(|| err(&format!("{place}.{k}"), format!("expected a number, got {v}")))?;
                    values.push((k.to_string(), x));
                }
            }
            let overrides = Overrides::new(values.clone()).map_err(|e| err(place, e.to_string()))?;
            let base = match obj.get("base") {
                Some(Value::String(base)) => Some(
                    Registry::builtin()
                        .entry(base)
                        .map_err(|e| err(&format!("{place}.base"), e.to_string()))?,
                ),
                Some(other) => {
                    return Err(err(
                        &format!("{place}.base"),
                        format!("expected a GPU key, got {other}"),
                    ))
                }
                None => None,
            };
            let seed = match base.and_then(|b| b.seed) {
                Some(t) => Some(t.apply(&overrides)),
                None if values.is_empty() => None,
                None if values.len() != THROUGHPUT_KEYS.len() => {
                    let missing: Vec<&str> = THROUGHPUT_KEYS
                        .iter()
                        .filter(|k| !obj.contains_key(**k))
                        .copied()
                        .collect();
                    return Err(err(
                        place,
                        format!(
                            "without a `base` that has seed constants, give every throughput; missing {}",
                            missing.join(", ")
                        ),
                    ));
                }
                None => {
                    let mut all = [0.0; 10];
                    for (slot, k) in all.iter_mut().zip(THROUGHPUT_KEYS) {
                        *slot = values.iter().find(|(key, _)| key == k).map_or(0.0, |(_, v)| *v);
                    }
                    let t = Throughputs::from_values(all);
                    t.check().map_err(|e| err(place, format!("hardware `{key}`: {e}")))?;
                    Some(t)
                }
            };
            let label = text("label")?.unwrap_or_else(|| key.to_uppercase());
            let provenance = text("provenance")?.unwrap_or_else(|| "declared in the search spec".into());
            let mut spec = base.map_or(crate::gpu::SpecSheet::UNKNOWN, |b| b.spec.clone());
            if let Some(m) = obj.get("memory_gib") {
                let place = format!("{place}.memory_gib");
                let gib = m
                    .as_f64()
                    .ok_or_else(|| err(&place, format!("expected a positive number of GiB, got {m}")))?;
                spec.memory_gib = Some(crate::gpu::spec_sheet::check_memory_gib(gib).map_err(|p| err(&place, p))?);
            }
            let cost_model = match obj.get("cost_model") {
                Some(word) => Some(cost_model_word(word, &format!("{place}.cost_model"))?),
                None => cost_models.of(key),
            };
            Ok(GpuTarget {
                key: Cow::Owned(key.to_string()),
                cost_model,
                profile: text("profile")?.map(Cow::Owned),
                own: Some(OwnGpu {
                    label: Cow::Owned(label),
                    spec,
                    seed: seed.map(|t| (t, Cow::Owned(provenance))),
                }),
            })
        }
        other => Err(err(place, format!("expected a GPU key or an object, got {other}"))),
    }
}

fn read_family(v: &Value) -> Result<Family> {
    let obj = object(v, "family")?;
    known_keys(obj, &["axes", "name", "source"], "family")?;
    let template = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err("family", "missing string `name` (the name template)"))?;
    let source = obj.get("source").and_then(Value::as_str).unwrap_or(GENERATED_CANDIDATE);
    let items = obj
        .get("axes")
        .and_then(Value::as_array)
        .ok_or_else(|| err("family", "missing array `axes`"))?;
    let mut axes = Vec::new();
    let mut rounding = FfnRounding {
        multiple: 128,
        rounding: Rounding::NearestEven,
    };
    for (i, item) in items.iter().enumerate() {
        let place = format!("family.axes[{i}]");
        let axis = object(item, &place)?;
        known_keys(axis, &["axis", "values", "round", "multiple"], &place)?;
        let name = axis
            .get("axis")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&place, "missing string `axis`"))?;
        let kind = AxisKind::from_name(name).map_err(|e| err(&place, e.to_string()))?;
        let values = axis
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| err(&place, "missing array `values`"))?;
        if values.is_empty() {
            return Err(err(&place, format!("axis `{name}` has no values")));
        }
        let values = values
            .iter()
            .enumerate()
            .map(|(j, v)| read_axis_value(kind, v, &format!("{place}.values[{j}]")))
            .collect::<Result<Vec<_>>>()?;
        if axis.contains_key("round") || axis.contains_key("multiple") {
            if kind != AxisKind::FfnRatio {
                return Err(err(&place, "`round` and `multiple` apply to `ffn_ratio` only"));
            }
            rounding = FfnRounding {
                multiple: axis
                    .get("multiple")
                    .map_or(Ok(128), |m| positive(m, &format!("{place}.multiple")))?,
                rounding: match axis.get("round").and_then(Value::as_str) {
                    None | Some("nearest") => Rounding::NearestEven,
                    Some("up") => Rounding::Up,
                    Some("down") => Rounding::Down,
                    Some(other) => {
                        return Err(err(&place, format!("`round` is nearest, up or down, got `{other}`")));
                    }
                },
            };
        }
        axes.push(Axis {
            kind,
            values: values.into(),
        });
    }
    Ok(Family {
        source: source.to_string().into(),
        axes: axes.into(),
        ffn_rounding: rounding,
        template: template.to_string().into(),
    })
}

fn read_axis_value(kind: AxisKind, v: &Value, place: &str) -> Result<Labeled> {
    let (value, label) = match v {
        Value::Object(obj) => {
            known_keys(obj, &["value", "label"], place)?;
            let label = obj
                .get("label")
                .and_then(Value::as_str)
                .map(|l| Cow::Owned(l.to_string()));
            (obj.get("value").unwrap_or(&Value::Null), label)
        }
        other => (other, None),
    };
    let value = match (kind, value) {
        (AxisKind::QkNorm | AxisKind::TieEmbeddings, Value::Bool(b)) => AxisValue::Bool(*b),
        (AxisKind::Window, Value::Null) => AxisValue::Window(None),
        (AxisKind::Window, w) => AxisValue::Window(Some(size(w, place)?)),
        (AxisKind::FfnRatio, r) => match r.as_f64() {
            Some(x) if x.is_finite() && x > MAX_DIM as f64 => {
                return Err(err(place, format!("{r} is absurdly large (the limit is {MAX_DIM})")))
            }
            Some(x) if x.is_finite() && x > 0.0 => AxisValue::Ratio(x),
            _ => return Err(err(place, format!("expected a positive number, got {r}"))),
        },
        (AxisKind::QkNorm | AxisKind::TieEmbeddings, other) => {
            return Err(err(place, format!("expected true or false, got {other}")))
        }
        (_, n) => AxisValue::Int(size(n, place)?),
    };
    Ok(Labeled { value, label })
}

/// `{"gpu": "h100", "batch": 8, "context": 8192}`: the GPU must be a target with a known memory.
fn read_fits(v: &Value, place: &str, hardware: &[Gpu]) -> Result<Constraint> {
    let obj = object(v, place)?;
    known_keys(obj, &["gpu", "batch", "context"], place)?;
    let key = obj
        .get("gpu")
        .and_then(Value::as_str)
        .ok_or_else(|| err(place, "missing string `gpu`"))?;
    let profile = hardware.iter().find(|h| h.key == key).ok_or_else(|| {
        err(
            &format!("{place}.gpu"),
            format!(
                "`{key}` is not a target of this search{}",
                hint(key, hardware.iter().map(|h| h.key.as_ref()))
            ),
        )
    })?;
    let memory_gib = profile.memory_gib().ok_or_else(|| {
        err(
            &format!("{place}.gpu"),
            format!("gpu `{key}` declares no memory: add \"memory_gib\" to it"),
        )
    })?;
    let size = |k: &str| -> Result<u64> {
        let v = obj.get(k).ok_or_else(|| err(place, format!("missing `{k}`")))?;
        positive(v, &format!("{place}.{k}"))
    };
    let fits = Constraint::Fits {
        gpu: Cow::Owned(key.to_string()),
        memory_gib,
        batch: size("batch")?,
        context: size("context")?,
    };
    fits.check().map_err(|e| err(place, e.to_string()))?;
    Ok(fits)
}

/// `{"tokens": 2e12, "law": "chinchilla" | "epoch", "params": "all" | "non_embedding"}`.
fn read_training(v: &Value) -> Result<(u64, LossFit)> {
    let obj = object(v, "training")?;
    known_keys(obj, &["tokens", "law", "params"], "training")?;
    let tokens = match obj.get("tokens") {
        Some(t) => t
            .as_f64()
            .filter(|x| x.fract() == 0.0 && *x >= 1.0 && *x <= crate::shapes::MAX_TRAINING_TOKENS as f64)
            .map(|x| x as u64)
            .ok_or_else(|| {
                err(
                    "training.tokens",
                    format!("expected a whole number of tokens from 1 to 1e16, got {t}"),
                )
            })?,
        None => return Err(err("training", "missing key `tokens`")),
    };
    let mut fit = LossFit::DEFAULT;
    if let Some(law) = obj.get("law") {
        let name = law.as_str().unwrap_or_default();
        fit.law = ScalingLaw::from_name(name).ok_or_else(|| {
            err(
                "training.law",
                format!("expected \"chinchilla\" or \"epoch\", got {law}"),
            )
        })?;
    }
    if let Some(count) = obj.get("params") {
        let name = count.as_str().unwrap_or_default();
        fit.count = ParamCount::from_name(name).ok_or_else(|| {
            err(
                "training.params",
                format!("expected \"all\" or \"non_embedding\", got {count}"),
            )
        })?;
    }
    Ok((tokens, fit))
}

fn read_bound(v: &Value, place: &str) -> Result<Bound> {
    match v {
        Value::Bool(b) => Ok(Bound::Bool(*b)),
        Value::Number(n) if n.is_i64() => Ok(Bound::Int(n.as_i64().unwrap_or_default())),
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Bound::Float)
            .ok_or_else(|| err(place, format!("expected a finite number, got {n}"))),
        other => Err(err(place, format!("expected a number or a boolean, got {other}"))),
    }
}

fn read_constraint(v: &Value, place: &str, hardware: &[Gpu]) -> Result<Constraint> {
    let obj = object(v, place)?;
    if let Some(fits) = obj.get("fits") {
        known_keys(obj, &["fits"], place)?;
        return read_fits(fits, &format!("{place}.fits"), hardware);
    }
    for (key, all) in [("all", true), ("any", false)] {
        if let Some(items) = obj.get(key) {
            known_keys(obj, &[key], place)?;
            let parts = items
                .as_array()
                .ok_or_else(|| err(place, format!("`{key}` takes an array of constraints")))?
                .iter()
                .enumerate()
                .map(|(i, c)| read_constraint(c, &format!("{place}.{key}[{i}]"), hardware))
                .collect::<Result<Vec<_>>>()?;
            return Ok(if all {
                Constraint::All(parts.into())
            } else {
                Constraint::Any(parts.into())
            });
        }
    }
    let name = obj
        .get("metric")
        .and_then(Value::as_str)
        .ok_or_else(|| err(place, "missing string `metric` (or `all` / `any`)"))?;
    let metric = Metric::from_name(canonical_key(name).unwrap_or(name)).map_err(|e| err(place, e.to_string()))?;
    let constraint = if let Some(range) = obj.get("in") {
        known_keys(obj, &["metric", "in", "inclusive"], place)?;
        let bounds = range
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or_else(|| err(place, "`in` takes [low, high]"))?;
        Constraint::Range {
            metric,
            lo: read_bound(&bounds[0], place)?,
            hi: read_bound(&bounds[1], place)?,
            inclusive: obj.get("inclusive").and_then(Value::as_bool).unwrap_or(true),
        }
    } else {
        known_keys(obj, &["metric", "op", "value"], place)?;
        let op = match obj.get("op").and_then(Value::as_str) {
            Some(">=") => CmpOp::Ge,
            Some(">") => CmpOp::Gt,
            Some("<=") => CmpOp::Le,
            Some("<") => CmpOp::Lt,
            Some("==") => CmpOp::Eq,
            Some("!=") => CmpOp::Ne,
            other => {
                return Err(err(
                    place,
                    format!("`op` is one of >=, >, <=, <, ==, !=; got {other:?}"),
                ))
            }
        };
        let value = obj.get("value").ok_or_else(|| err(place, "missing `value`"))?;
        Constraint::Compare {
            metric,
            op,
            bound: read_bound(value, place)?,
        }
    };
    constraint.check().map_err(|e| err(place, e.to_string()))?;
    Ok(constraint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "hardware": ["a100", {"key": "mine", "base": "h100", "matmul_tflops": 600}],
            "cost_model": "seed",
            "family": {
                "axes": [
                    {"axis": "hidden_dim", "values": [1536, 2048]},
                    {"axis": "head_dim", "values": [128]},
                    {"axis": "ffn_ratio", "values": [4.0, {"value": 5.333, "label": "5p33"}], "round": "up"},
                    {"axis": "window", "values": [512, null]}
                ],
                "name": "g_h{hidden_dim}_f{ffn_ratio}_w{window}"
            },
            "constraints": [{"metric": "hidden_dim", "op": ">=", "value": 2048}, {"metric": "ffn_ratio", "in": [3.75, 5.5]}],
            "top_k": 3
        })
    }

    #[test]
    fn reads_a_whole_spec() {
        let s = JsonSearch::from_json(&spec()).unwrap();
        let mine = s.hardware[1].seed_throughputs().unwrap();
        assert_eq!((mine.matmul_tflops, mine.attention_tflops), (600.0, 400.0));
        assert_eq!(s.family.combinations(), 8);
        assert_eq!(s.family.ffn_rounding.rounding, Rounding::Up);
        assert_eq!(s.constraints.clauses.len(), 2);
        assert_eq!(s.top_k, 3);
    }

    #[test]
    fn errors_name_the_json_path() {
        let cases = [
            (
                "/family/axes/0/axis",
                json!("hiden_dim"),
                "family.axes[0]: unknown axis `hiden_dim` (did you mean `hidden_dim`?)",
            ),
            (
                "/family/axes/1/values/0",
                json!(-4),
                "family.axes[1].values[0]: expected a positive integer",
            ),
            ("/constraints/0/op", json!("=>"), "constraints[0]: `op` is one of"),
            ("/constraints/1/in", json!([5.5, 3.75]), "constraints[1]: the range"),
            ("/hardware/0", json!("h1000"), "hardware[0]: unknown hardware `h1000`"),
            ("/top_k", json!(0), "top_k: expected a positive integer"),
            ("/family/name", json!("g_h{hidden_dim}"), "family.name: name template"),
        ];
        for (pointer, value, expected) in cases {
            let mut v = spec();
            *v.pointer_mut(pointer).unwrap() = value;
            let e = JsonSearch::from_json(&v).unwrap_err().to_string();
            assert!(e.contains(expected), "{pointer}: expected `{expected}` in `{e}`");
        }
        let mut v = spec();
        v.as_object_mut().unwrap().insert("topk".into(), json!(3));
        assert!(JsonSearch::from_json(&v)
            .unwrap_err()
            .to_string()
            .contains("did you mean `top_k`"));
    }
}
