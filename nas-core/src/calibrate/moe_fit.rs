//! Fitting the MoE MLP model (`cost/moe.rs`) to the MoE layers, routed MoE
//! MLPs and grouped GEMMs measured by `calibration/harness/moe_mla.py`, with
//! the same bounded, relative least squares as the other models. A grouped
//! GEMM is billed the slower of its compute and memory sides, so the fit
//! alternates: bill every GEMM by the current constants, solve, repeat until
//! no GEMM changes side. The ramp is chosen by leave-one-config-out error on
//! the training configs. The `validation` configs are never fitted on.

use std::collections::BTreeMap;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cost::kernel_aware::Unit;
use crate::cost::moe::{
    self, check_shape, KernelWork, MoeConstants, MoeForm, MoeMlpShape, Pipeline, Routing, COUNT, MOE_RESOURCES,
};
use crate::error::{Error, Result};
use crate::gpu::PeakUnit;

use super::profile::{throughput, FittedResource, PhysicalLimits, ResidualStats, MAX_MS_PER_UNIT};

/// Bytes of each grouped GEMM's weights billed at the ramp's extra cost, MiB,
/// that the fit chooses among.
pub const RAMP_CHOICES_MIB: [f64; 5] = [0.0, 16.0, 64.0, 256.0, 1024.0];

/// Most alternations of the fit (it settles in a handful).
const MAX_ROUNDS: usize = 60;

/// Where the alternating fit starts: every FLOP resource at this multiple of
/// its peak's cost, every byte resource at the second.
const START_SCALES: [(f64, f64); 9] = [
    (1.0, 1.0),
    (1.0, 1.5),
    (1.0, 3.0),
    (1.5, 1.0),
    (1.5, 1.5),
    (1.5, 3.0),
    (3.0, 1.0),
    (3.0, 1.5),
    (3.0, 3.0),
];

/// What one measured record is.
#[derive(Clone, Debug, PartialEq)]
pub enum MoeSubject {
    /// A whole MoE MLP (`moe` or `moe_routed`).
    Layer {
        shape: MoeMlpShape,
        routing: Routing,
        pipeline: Pipeline,
    },
    /// One grouped GEMM alone (`grouped_mm`): `out[rows, n] = x[rows, k] @ W_e^T`.
    GroupedGemm { routing: Routing, n: u64, k: u64 },
}

/// One measured MoE record.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeRecord {
    /// `moe_prefill`, `moe_decode`, `moe_routed` or `grouped_mm`.
    pub kind: String,
    /// The harness's config name (`mixtral_8x7b`).
    pub config: String,
    /// `train` or `validation`.
    pub set: String,
    pub gpu: String,
    pub subject: MoeSubject,
    pub median_ms: f64,
}

impl MoeRecord {
    /// Kernels of this record under `form`.
    pub fn work(&self, form: &MoeForm) -> Vec<KernelWork> {
        match &self.subject {
            MoeSubject::Layer {
                shape,
                routing,
                pipeline,
            } => moe::layer_work(shape, routing, *pipeline, form).to_vec(),
            MoeSubject::GroupedGemm { routing, n, k } => {
                vec![KernelWork::Gemm(moe::grouped_gemm_work(routing, *n, *k, form))]
            }
        }
    }
}

/// The MoE model fitted to one GPU (or carried over from another).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoeModelFit {
    /// Bytes of each grouped GEMM's weights billed at the ramp's extra cost.
    pub ramp_bytes: f64,
    pub fitted: BTreeMap<String, FittedResource>,
    /// The configs whose records were fitted on; the others are validation.
    pub trained_on: Vec<String>,
    /// Records in the data (all sets).
    pub records: usize,
    pub data_sha256: String,
    /// `train`, `validation` and `leave_one_config_out` over every kind, and
    /// `<set>_<kind>` per kind of record, on the GPU the data was measured on.
    pub residuals: BTreeMap<String, ResidualStats>,
    /// Set when these constants were carried over from another GPU's fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_from: Option<String>,
}

impl MoeModelFit {
    /// The constants predictions multiply by, for a GPU of `sm_count` SMs.
    pub fn constants(&self, sm_count: u64) -> MoeConstants {
        let mut ms_per_unit = [0.0; COUNT];
        for (slot, (name, _, _)) in ms_per_unit.iter_mut().zip(MOE_RESOURCES) {
            *slot = self.fitted.get(name).map_or(0.0, |f| f.ms_per_unit);
        }
        MoeConstants {
            form: MoeForm {
                sm_count,
                ramp_bytes: self.ramp_bytes,
            },
            ms_per_unit,
        }
    }

    /// Every resource present, finite, non-negative and not faster than its peak.
    pub fn check(&self, limits: Option<&PhysicalLimits>) -> std::result::Result<(), String> {
        if !(self.ramp_bytes.is_finite() && (0.0..=1e13).contains(&self.ramp_bytes)) {
            return Err(format!(
                "`moe_model.ramp_bytes` = {:?} is out of range",
                self.ramp_bytes
            ));
        }
        check_resources("moe_model", &self.fitted, &MOE_RESOURCES, limits)
    }

    /// These constants carried to a GPU with limits `to`: bandwidth terms
    /// scale by the HBM ratio, FLOP terms by the dense-peak ratio, fixed costs
    /// stay (the same chip generation and software).
    pub fn transfer(&self, from: &PhysicalLimits, to: &PhysicalLimits, source: &str) -> MoeModelFit {
        let mut out = self.clone();
        transfer_resources(&mut out.fitted, &MOE_RESOURCES, from, to);
        out.transferred_from = Some(source.to_string());
        out
    }
}

/// Checks fitted resources against their table and the physical limits.
pub(crate) fn check_resources(
    section: &str,
    fitted: &BTreeMap<String, FittedResource>,
    table: &[(&str, Unit, Option<PeakUnit>)],
    limits: Option<&PhysicalLimits>,
) -> std::result::Result<(), String> {
    for (name, unit, bound) in table {
        let Some(f) = fitted.get(*name) else {
            return Err(format!("`{section}` is missing `{name}`"));
        };
        if !(f.ms_per_unit.is_finite() && (0.0..=MAX_MS_PER_UNIT).contains(&f.ms_per_unit)) {
            return Err(format!(
                "`{section}.{name}.ms_per_unit` must be finite, from 0 to {MAX_MS_PER_UNIT:e}, got {:?}",
                f.ms_per_unit
            ));
        }
        let (want, shown) = throughput(*unit, f.ms_per_unit);
        if !f.throughput.is_finite() || (f.throughput - want).abs() > 1e-9 * want.abs().max(f.throughput.abs()) {
            return Err(format!(
                "`{section}.{name}.throughput` = {:?} does not match its `ms_per_unit` ({want:?} {shown})",
                f.throughput
            ));
        }
        if let (Some(limits), Some(peak)) = (limits, bound) {
            if f.ms_per_unit < limits.min_ms_per_unit(*peak) * (1.0 - 1e-9) {
                return Err(format!(
                    "`{section}.{name}` = {:.1} {shown} is faster than the physical limit {:.1} {shown}",
                    want,
                    limits.limit(*peak)
                ));
            }
        }
    }
    if let Some(extra) = fitted.keys().find(|k| !table.iter().any(|(n, _, _)| n == k)) {
        return Err(format!("`{section}` has an unknown resource `{extra}`"));
    }
    Ok(())
}

pub(crate) fn transfer_resources(
    fitted: &mut BTreeMap<String, FittedResource>,
    table: &[(&str, Unit, Option<PeakUnit>)],
    from: &PhysicalLimits,
    to: &PhysicalLimits,
) {
    for (name, unit, bound) in table {
        let Some(f) = fitted.get_mut(*name) else { continue };
        let scale = match (unit, bound) {
            (Unit::Flops, _) => from.dense_bf16_tflops / to.dense_bf16_tflops,
            (Unit::Bytes, _) => from.hbm_gbps / to.hbm_gbps,
            (Unit::Launches, _) => 1.0,
        };
        *f = FittedResource::of(*unit, f.ms_per_unit * scale);
    }
}

fn int(v: &Value, key: &str, place: &str, max: u64) -> Result<u64> {
    v.get(key)
        .and_then(Value::as_u64)
        .filter(|x| (1..=max).contains(x))
        .ok_or_else(|| Error::input(place, format!("`shape.{key}` must be an integer from 1 to {max}")))
}

/// Reads MoE records (`moe`, `moe_routed`, `grouped_mm`) from JSON lines;
/// records that failed in the harness and the probe are left out (counted
/// in the second value). All records must come from one GPU.
pub fn read(paths: &[impl AsRef<std::path::Path>]) -> Result<(Vec<MoeRecord>, usize, String)> {
    let mut out: Vec<MoeRecord> = Vec::new();
    let mut skipped = 0;
    let sha = super::decode::for_each_json_line(paths, |place, v| {
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        if kind == "grouped_mm_probe" {
            skipped += 1;
            return Ok(());
        }
        if !matches!(kind.as_str(), "moe" | "moe_routed" | "grouped_mm") {
            return Err(Error::input(
                place,
                format!("expected a record of kind `moe`, `moe_routed` or `grouped_mm`, got `{kind}`"),
            ));
        }
        let Some(median_ms) = v
            .get("median_ms")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t > 0.0)
        else {
            skipped += 1;
            return Ok(());
        };
        let text = |key: &str| -> Result<String> {
            v.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| Error::input(place, format!("missing string `{key}`")))
        };
        let s = v.get("shape").ok_or_else(|| Error::input(place, "missing `shape`"))?;
        let config = s.get("config").and_then(Value::as_str).unwrap_or("unnamed").to_string();
        let dim = crate::shapes::MAX_DIM;
        let (kind, subject) = if kind == "grouped_mm" {
            let rows = int(s, "rows", place, dim.saturating_mul(moe::MAX_EXPERTS))?;
            let groups = int(s, "groups", place, moe::MAX_EXPERTS)?;
            let routing = Routing::balanced(rows, 1, groups);
            (
                kind,
                MoeSubject::GroupedGemm {
                    routing,
                    n: int(s, "N", place, dim)?,
                    k: int(s, "K", place, dim)?,
                },
            )
        } else {
            let shape = MoeMlpShape {
                tokens: int(s, "tokens", place, dim)?,
                hidden: int(s, "hidden", place, dim)?,
                expert_ffn: int(s, "expert_ffn", place, dim)?,
                experts: int(s, "experts", place, moe::MAX_EXPERTS)?,
                top_k: int(s, "top_k", place, moe::MAX_EXPERTS)?,
                imbalance: s.get("imbalance").and_then(Value::as_f64).unwrap_or(1.0),
            };
            check_shape(&shape).map_err(|p| Error::input(place, p))?;
            let phase = s.get("phase").and_then(Value::as_str).unwrap_or_default();
            match (kind.as_str(), phase) {
                ("moe_routed", _) => (
                    "moe_routed".to_string(),
                    MoeSubject::Layer {
                        routing: Routing::imbalanced(shape.tokens, shape.top_k, shape.experts, shape.imbalance),
                        shape,
                        pipeline: Pipeline::Routed,
                    },
                ),
                (_, "decode") => {
                    let touched = v
                        .get("experts_touched")
                        .and_then(Value::as_u64)
                        .filter(|t| (1..=shape.experts).contains(t))
                        .ok_or_else(|| {
                            Error::input(place, "a decode record needs `experts_touched` from 1 to `experts`")
                        })?;
                    (
                        "moe_decode".to_string(),
                        MoeSubject::Layer {
                            routing: Routing::over(shape.tokens, shape.top_k, shape.experts, touched as f64),
                            shape,
                            pipeline: Pipeline::Layer,
                        },
                    )
                }
                (_, "prefill") => (
                    "moe_prefill".to_string(),
                    MoeSubject::Layer {
                        routing: Routing::imbalanced(shape.tokens, shape.top_k, shape.experts, shape.imbalance),
                        shape,
                        pipeline: Pipeline::Layer,
                    },
                ),
                (_, other) => {
                    return Err(Error::input(
                        place,
                        format!("`shape.phase` must be `prefill` or `decode`, got `{other}`"),
                    ))
                }
            }
        };
        let rec = MoeRecord {
            kind,
            config,
            set: text("set")?,
            gpu: text("gpu")?,
            subject,
            median_ms,
        };
        if let Some(first) = out.first() {
            if first.gpu != rec.gpu {
                return Err(Error::input(
                    place,
                    format!(
                        "MoE records of two GPUs (`{}` and `{}`): fit one GPU at a time",
                        first.gpu, rec.gpu
                    ),
                ));
            }
        }
        out.push(rec);
        Ok(())
    })?;
    Ok((out, skipped, sha))
}

fn lower_bounds(limits: &PhysicalLimits) -> Vec<f64> {
    MOE_RESOURCES
        .iter()
        .map(|(_, _, b)| b.map_or(0.0, |p| limits.min_ms_per_unit(p)))
        .collect()
}

fn constants_of(t: &[f64], form: MoeForm) -> MoeConstants {
    let mut ms_per_unit = [0.0; COUNT];
    ms_per_unit.copy_from_slice(&t[..COUNT]);
    MoeConstants { form, ms_per_unit }
}

/// The billed work of every record under `c` (a design matrix).
fn design(works: &[Vec<KernelWork>], c: &MoeConstants) -> DMatrix<f64> {
    DMatrix::from_fn(works.len(), COUNT, |i, j| {
        works[i].iter().map(|k| c.billed(k)[j]).sum::<f64>()
    })
}

/// Sum of squared relative errors of `c` on `works`.
fn loss(works: &[Vec<KernelWork>], y: &[f64], c: &MoeConstants) -> f64 {
    works
        .iter()
        .zip(y)
        .map(|(w, y)| ((predict(c, w) - y) / y).powi(2))
        .sum()
}

/// Alternating bounded fit of `y` (ms) to `works`; returns the constants.
/// Started from the peaks and from slower constants ([`START_SCALES`]),
/// every start alternating until no GEMM changes side; the start with the
/// least error wins.
fn solve(works: &[Vec<KernelWork>], y: &[f64], limits: &PhysicalLimits, form: MoeForm) -> MoeConstants {
    let lower = lower_bounds(limits);
    let mut best: Option<(f64, MoeConstants)> = None;
    for (scale_compute, scale_memory) in START_SCALES {
        let start: Vec<f64> = MOE_RESOURCES
            .iter()
            .zip(&lower)
            .map(|((_, unit, _), l)| match unit {
                Unit::Flops => l * scale_compute,
                Unit::Bytes => l * scale_memory,
                Unit::Launches => 0.0,
            })
            .collect();
        let mut c = constants_of(&start, form);
        let mut last: Option<DMatrix<f64>> = None;
        let mut kept: Option<(f64, MoeConstants)> = None;
        for _ in 0..MAX_ROUNDS {
            let x = design(works, &c);
            if last.as_ref() == Some(&x) {
                break;
            }
            let t: Vec<f64> = super::fit::fit_relative_bounded(&x, y, &lower)
                .iter()
                .copied()
                .collect();
            c = constants_of(&t, form);
            let l = loss(works, y, &c);
            if kept.as_ref().is_none_or(|(k, _)| l < *k) {
                kept = Some((l, c));
            }
            last = Some(x);
        }
        if let Some((l, c)) = kept {
            if best.as_ref().is_none_or(|(b, _)| l < *b) {
                best = Some((l, c));
            }
        }
    }
    best.map_or_else(|| constants_of(&lower, form), |(_, c)| c)
}

fn predict(c: &MoeConstants, work: &[KernelWork]) -> f64 {
    work.iter().map(|k| c.kernel_ms(k)).sum()
}

/// Fits the MoE model on the `train` records of one GPU with `sm_count` SMs,
/// bounded by `limits`; the `validation` records are predicted, never fitted on.
pub fn fit(records: &[MoeRecord], data_sha256: &str, limits: &PhysicalLimits, sm_count: u64) -> Result<MoeModelFit> {
    let train: Vec<&MoeRecord> = records.iter().filter(|r| r.set != "validation").collect();
    let mut configs: Vec<String> = train.iter().map(|r| r.config.clone()).collect();
    configs.sort();
    configs.dedup();
    if train.len() <= COUNT || configs.len() < 3 {
        return Err(Error::Spec(format!(
            "{} training MoE records of {} configs to fit {COUNT} constants: measure more",
            train.len(),
            configs.len()
        )));
    }
    let y: Vec<f64> = train.iter().map(|r| r.median_ms).collect();
    let form_of = |mib: f64| MoeForm {
        sm_count,
        ramp_bytes: mib * 1024.0 * 1024.0,
    };
    let leave_one_config_out = |form: MoeForm| -> Vec<f64> {
        let works: Vec<Vec<KernelWork>> = train.iter().map(|r| r.work(&form)).collect();
        let mut errors = Vec::with_capacity(train.len());
        for cfg in &configs {
            let keep: Vec<usize> = (0..train.len()).filter(|&i| &train[i].config != cfg).collect();
            let c = solve(
                &keep.iter().map(|&i| works[i].clone()).collect::<Vec<_>>(),
                &keep.iter().map(|&i| y[i]).collect::<Vec<_>>(),
                limits,
                form,
            );
            for i in (0..train.len()).filter(|&i| &train[i].config == cfg) {
                errors.push((predict(&c, &works[i]) - y[i]) / y[i]);
            }
        }
        errors
    };
    let mut best: Option<(f64, MoeForm, Vec<f64>)> = None;
    for mib in RAMP_CHOICES_MIB {
        let form = form_of(mib);
        let errors = leave_one_config_out(form);
        let mape = ResidualStats::of(&errors).mape_pct;
        if best.as_ref().is_none_or(|(m, _, _)| mape < *m) {
            best = Some((mape, form, errors));
        }
    }
    let Some((_, form, loco)) = best else {
        return Err(Error::Spec("no ramp to choose from".into()));
    };
    let works: Vec<Vec<KernelWork>> = train.iter().map(|r| r.work(&form)).collect();
    let c = solve(&works, &y, limits, form);
    let mut residuals = BTreeMap::new();
    let errors_of = |list: &[&MoeRecord]| -> Vec<f64> {
        list.iter()
            .map(|r| (predict(&c, &r.work(&form)) - r.median_ms) / r.median_ms)
            .collect()
    };
    let validation: Vec<&MoeRecord> = records.iter().filter(|r| r.set == "validation").collect();
    residuals.insert("train".to_string(), ResidualStats::of(&errors_of(&train)));
    residuals.insert("leave_one_config_out".to_string(), ResidualStats::of(&loco));
    if !validation.is_empty() {
        residuals.insert("validation".to_string(), ResidualStats::of(&errors_of(&validation)));
    }
    let mut kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        for (set, list) in [("train", &train), ("validation", &validation)] {
            let of: Vec<&MoeRecord> = list.iter().filter(|r| r.kind == kind).copied().collect();
            if !of.is_empty() {
                residuals.insert(format!("{set}_{kind}"), ResidualStats::of(&errors_of(&of)));
            }
        }
    }
    let fitted = MOE_RESOURCES
        .iter()
        .zip(c.ms_per_unit)
        .map(|((name, unit, _), ms)| (name.to_string(), FittedResource::of(*unit, ms)))
        .collect();
    let out = MoeModelFit {
        ramp_bytes: form.ramp_bytes,
        fitted,
        trained_on: configs,
        records: records.len(),
        data_sha256: data_sha256.to_string(),
        residuals,
        transferred_from: None,
    };
    out.check(Some(limits))
        .map_err(|e| Error::Spec(format!("the MoE fit broke its own bounds (a bug): {e}")))?;
    Ok(out)
}

/// A record's prediction under `c`.
pub fn predict_record(c: &MoeConstants, r: &MoeRecord) -> f64 {
    predict(c, &r.work(&c.form))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PhysicalLimits {
        PhysicalLimits {
            hbm_gbps: 4800.0,
            dense_bf16_tflops: 989.4,
            dense_fp8_tflops: None,
            source: "test".into(),
        }
    }

    /// Records of made-up configs timed by a GPU whose every constant is known.
    fn synthetic(c: &MoeConstants) -> Vec<MoeRecord> {
        let configs = [
            ("a", 4096u64, 14336u64, 8u64, 2u64),
            ("b", 2048, 768, 128, 8),
            ("c", 7168, 2048, 256, 8),
            ("e", 3072, 256, 512, 22),
            ("f", 2880, 2880, 32, 4),
        ];
        let mut out = Vec::new();
        for (i, (name, h, f, e, k)) in configs.into_iter().enumerate() {
            for tokens in [1u64, 32, 2048, 16384] {
                let shape = MoeMlpShape {
                    tokens,
                    hidden: h,
                    expert_ffn: f,
                    experts: e,
                    top_k: k,
                    imbalance: 1.0,
                };
                for (kind, pipeline, routing) in [
                    ("moe_prefill", Pipeline::Layer, Routing::balanced(tokens, k, e)),
                    ("moe_routed", Pipeline::Routed, Routing::balanced(tokens, k, e)),
                    ("moe_decode", Pipeline::Layer, Routing::decode(tokens.min(128), k, e)),
                ] {
                    let shape = MoeMlpShape {
                        tokens: if kind == "moe_decode" { tokens.min(128) } else { tokens },
                        ..shape
                    };
                    let subject = MoeSubject::Layer {
                        shape,
                        routing,
                        pipeline,
                    };
                    let mut r = MoeRecord {
                        kind: kind.into(),
                        config: name.into(),
                        set: if i == 4 { "validation".into() } else { "train".into() },
                        gpu: "Test GPU".into(),
                        subject,
                        median_ms: 1.0,
                    };
                    r.median_ms = predict_record(c, &r);
                    out.push(r);
                }
                let subject = MoeSubject::GroupedGemm {
                    routing: Routing::balanced(tokens, k, e),
                    n: 2 * f,
                    k: h,
                };
                let mut r = MoeRecord {
                    kind: "grouped_mm".into(),
                    config: name.into(),
                    set: "train".into(),
                    gpu: "Test GPU".into(),
                    subject,
                    median_ms: 1.0,
                };
                r.median_ms = predict_record(c, &r);
                out.push(r);
            }
        }
        out
    }

    fn truth() -> MoeConstants {
        let per_flop = |t: f64| 1.0 / (t * 1e9);
        let per_byte = |g: f64| 1.0 / (g * 1e6);
        MoeConstants {
            form: MoeForm {
                sm_count: 132,
                ramp_bytes: 64.0 * 1024.0 * 1024.0,
            },
            ms_per_unit: [
                per_flop(720.0),
                per_flop(480.0),
                per_byte(4000.0),
                9e-4,
                per_byte(3200.0),
                per_byte(3000.0),
                1.1e-2,
                per_flop(600.0),
                per_byte(4200.0),
                3e-3,
                per_byte(2000.0),
                per_byte(250.0),
                per_byte(3000.0),
                per_byte(700.0),
            ],
        }
    }

    #[test]
    fn the_fit_recovers_a_known_gpu_and_never_beats_its_peaks() {
        let c = truth();
        let records = synthetic(&c);
        let fit = fit(&records, &"0".repeat(64), &limits(), 132).unwrap();
        assert_eq!(fit.ramp_bytes, c.form.ramp_bytes, "the true ramp cross-validates best");
        assert!(fit.residuals["validation"].mape_pct < 0.5, "{:?}", fit.residuals);
        assert!(fit.residuals["train"].mape_pct < 0.5, "{:?}", fit.residuals);
        fit.check(Some(&limits())).unwrap();
        // a GPU whose combine would beat HBM is fitted at the bound
        let mut fast = truth();
        fast.ms_per_unit[moe::r::COMBINE_ATOMIC] = 1.0 / (9000.0 * 1e6);
        let records = synthetic(&fast);
        let fit = super::fit(&records, "x", &limits(), 132).unwrap();
        for (name, unit, bound) in MOE_RESOURCES {
            if let Some(p) = bound {
                assert!(
                    fit.fitted[name].ms_per_unit >= limits().min_ms_per_unit(p) * (1.0 - 1e-9),
                    "{name} faster than its peak ({unit:?})"
                );
            }
        }
        // a transferred fit scales bandwidth by HBM and keeps fixed costs
        let h100 = PhysicalLimits {
            hbm_gbps: 3350.0,
            ..limits()
        };
        let moved = fit.transfer(&limits(), &h100, "test");
        moved.check(Some(&h100)).unwrap();
        assert_eq!(moved.fitted["moe_kernel"], fit.fitted["moe_kernel"]);
        let bw = |f: &MoeModelFit| f.fitted["moe_gemm_weight_bytes"].throughput;
        assert!((bw(&moved) / bw(&fit) - 3350.0 / 4800.0).abs() < 1e-9);
        let e = fit
            .check(Some(&PhysicalLimits {
                hbm_gbps: 100.0,
                ..limits()
            }))
            .unwrap_err();
        assert!(e.contains("is faster than the physical limit 100.0 GB/s"), "{e}");
    }

    #[test]
    fn too_few_records_is_an_error() {
        let records = synthetic(&truth());
        let e = fit(&records[..10], "x", &limits(), 132).unwrap_err().to_string();
        assert!(e.contains("training MoE records"), "{e}");
    }
}
