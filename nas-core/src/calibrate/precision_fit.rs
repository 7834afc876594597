//! The precision section of a profile: the fp8 and int4 resources of the
//! layer, kernel and decode models, fitted to measurements of fp8 and int4
//! kernels, layers and decode steps with every bf16 constant of the profile
//! fixed (each row's bf16 part is a known offset), by the same bounded,
//! relative least squares; and carried to another GPU through the two spec
//! sheets.
//!
//! Three sets of constants, because the same kernel costs differently where
//! it runs (calibration/README.md):
//! - `layer`: fp8 GEMMs inside a compiled prefill layer (the activation's
//!   quantization fused by the compiler with the kernel before it), fitted on
//!   fp8 layers;
//! - `kernel`: one fp8 GEMM on its own with its quantization kernels (what
//!   `nas kernel` answers for 128 rows and more), fitted on fp8 GEMM
//!   micro-benchmarks;
//! - `decode`: fp8 and int4 decode GEMMs inside a compiled decode step,
//!   fitted on whole decode steps and the GEMMs of fewer than 128 rows.

use std::collections::BTreeMap;
use std::path::Path;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cost::decode::{self as dm, DecodeConstants, Work, COUNT, DECODE_PRECISION_RESOURCES};
use crate::cost::kernel_aware::{self as ka, Unit, BLOCK, PRECISION_RESOURCE_TABLE, RESOURCES};
use crate::error::{Error, Result};
use crate::gpu::PeakUnit;
use crate::model;
use crate::precision::WeightPrecision;
use crate::shapes::LayerShape;

use super::decode::{for_each_json_line, DecodeRecord};
use super::profile::{throughput, CalibrationProfile, FittedResource, PhysicalLimits, ResidualStats, MAX_MS_PER_UNIT};

/// How an fp8 KV cache is priced (no kernel on the measured GPU reads one fast).
pub const KV_CACHE_FP8: &str = "estimated, not measured: no SDPA backend on the measured GPU reads an fp8 \
     (e4m3) K/V cache, and compiled flex_attention, which does, ran slower with it than with bf16 K/V \
     (calibration/README.md); decode attention is priced as the bytes model: one byte per cached value \
     at the bf16 cache's fitted bandwidth";

/// How int4 prefill GEMMs are priced.
pub const INT4_PREFILL: &str = "estimated, not measured: the device's int4 kernel (tinygemm, \
     torch._weight_int4pack_mm) is a decode kernel, slower than bf16 from 16 rows on; prefill GEMMs \
     with int4 weights are priced as bf16 GEMMs (dequantized into the bf16 tensor cores) reading \
     int4 weight bytes";

/// The fitted precision constants of one GPU (or carried over from another).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionFit {
    /// fp8 GEMMs inside a compiled prefill layer: [`ka::PRECISION_RESOURCES`].
    pub layer: BTreeMap<String, FittedResource>,
    /// One fp8 GEMM on its own with its quantization kernels (`nas kernel`).
    pub kernel: BTreeMap<String, FittedResource>,
    /// fp8 and int4 decode GEMMs in a compiled decode step: [`DECODE_PRECISION_RESOURCES`].
    pub decode: BTreeMap<String, FittedResource>,
    pub data: PrecisionData,
    /// `layer_train`, `layer_leave_one_out`, `layer_validation` (fp8 layers
    /// never fitted on), `kernel_train`, `kernel_validation`,
    /// `decode_fp8_train`, `decode_fp8_validation`, `decode_int4_train`,
    /// `decode_int4_validation`, `decode_leave_one_model_out`, `decode_micro_*`:
    /// on the GPU the data was measured on.
    pub residuals: BTreeMap<String, ResidualStats>,
    /// Set when these constants were carried over from another GPU's fit:
    /// not measured on this GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_from: Option<String>,
    /// How an fp8 KV cache is priced.
    pub kv_cache_fp8: String,
    /// How int4 prefill GEMMs are priced.
    pub int4_prefill: String,
}

/// Where the fitted data came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionData {
    pub files: Vec<String>,
    pub sha256: String,
    /// Records used per kind (`fp8_layer`, `fp8_gemm`, `int4_gemm`, `decode_fp8`, `decode_int4`).
    pub records: BTreeMap<String, usize>,
    /// Records read but not used (bf16 twins, bare GEMMs, probes, failed or warm records).
    pub skipped: usize,
}

/// A resource's name, unit and the peak that bounds it.
type Resource = (&'static str, Unit, Option<PeakUnit>);

/// One measured fp8 or int4 record.
#[derive(Clone, Debug, PartialEq)]
pub enum PrecisionRecord {
    /// A compiled prefill layer with fp8 weights.
    Layer {
        origin: String,
        set: String,
        shape: LayerShape,
        median_ms: f64,
    },
    /// A compiled decode step with fp8 or int4 weights.
    Step(DecodeRecord),
    /// One GEMM (fp8 with its activation's quantization, or int4 tinygemm).
    Gemm {
        origin: String,
        set: String,
        weights: WeightPrecision,
        m: u64,
        n: u64,
        k: u64,
        median_ms: f64,
    },
}

/// Precision records read from files.
#[derive(Clone, Debug, PartialEq)]
pub struct PrecisionSet {
    pub records: Vec<PrecisionRecord>,
    pub skipped: usize,
    pub sha256: String,
    pub files: Vec<String>,
    pub gpu: String,
}

/// Kinds the harness writes that no precision fit uses (bf16 baselines,
/// bare GEMMs, the quantizer alone, KV-cache probes).
const UNUSED_KINDS: [&str; 6] = [
    "bf16_gemm",
    "fp8_gemm_bare",
    "fp8_quant",
    "fp8_kv_probe",
    "flex_kv",
    "probe",
];

/// Reads `calibration/harness/precision_micro.py`'s JSON lines: fp8 layers
/// (`kind: layer`, `precision: fp8`), fp8 and int4 decode steps (`decode`,
/// `decode_stack` with `shape.weights`), fp8 and int4 GEMMs. Unused kinds and
/// failed records are counted, not read; an unknown kind is an error.
pub fn read(paths: &[impl AsRef<Path>]) -> Result<PrecisionSet> {
    let mut records = Vec::new();
    let mut skipped = 0;
    let mut gpus: Vec<(String, String)> = Vec::new();
    let sha = for_each_json_line(paths, |place, v| {
        let text = |key: &str| -> Option<String> { v.get(key).and_then(Value::as_str).map(str::to_string) };
        let kind = text("kind").ok_or_else(|| Error::input(place, "missing string `kind`"))?;
        let failed = v.get("error").is_some_and(|e| !e.is_null());
        let median_ms = v
            .get("median_ms")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t > 0.0);
        if UNUSED_KINDS.contains(&kind.as_str()) || failed {
            skipped += 1;
            return Ok(());
        }
        let median_ms = median_ms.ok_or_else(|| Error::input(place, "`median_ms` must be a finite positive number"))?;
        let gpu = text("gpu").ok_or_else(|| Error::input(place, "missing string `gpu`"))?;
        gpus.push((gpu, place.to_string()));
        let set = text("set").unwrap_or_else(|| "train".into());
        let shape = v.get("shape").ok_or_else(|| Error::input(place, "missing `shape`"))?;
        let int = |key: &str| -> Result<u64> {
            shape
                .get(key)
                .and_then(Value::as_u64)
                .filter(|x| (1..=crate::shapes::MAX_DIM).contains(x))
                .ok_or_else(|| Error::input(place, format!("`shape.{key}` must be an integer from 1 to 2^24")))
        };
        match kind.as_str() {
            "layer" => match text("precision").as_deref() {
                Some("fp8") => {
                    let (_, mut s) = LayerShape::from_json(shape, &format!("{place}: shape"))?;
                    s.precision.weights = WeightPrecision::Fp8;
                    records.push(PrecisionRecord::Layer {
                        origin: place.to_string(),
                        set,
                        shape: s,
                        median_ms,
                    });
                }
                Some("bf16") => skipped += 1,
                other => {
                    return Err(Error::input(
                        place,
                        format!("a precision layer needs `precision` \"fp8\" or \"bf16\", got {other:?}"),
                    ))
                }
            },
            "decode" | "decode_stack" => {
                let (_, s) = LayerShape::from_json(shape, &format!("{place}: shape"))?;
                if model::figures(&s).is_none() {
                    return Err(Error::input(place, "the shape needs `num_layers` and `vocab_size`"));
                }
                if s.precision.weights.is_bf16() {
                    return Err(Error::input(
                        place,
                        "a bf16 decode step: those fit the bf16 decode model (`--decode`), not the precision section",
                    ));
                }
                records.push(PrecisionRecord::Step(DecodeRecord {
                    model: text("model").ok_or_else(|| Error::input(place, "missing string `model`"))?,
                    set,
                    gpu: text("gpu").unwrap_or_default(),
                    shape: s,
                    median_ms,
                    truth: text("truth"),
                }));
            }
            "fp8_gemm" | "int4_gemm" => {
                let fast = v.get("fast_accum").and_then(Value::as_bool).unwrap_or(false);
                let tiles = v.get("inner_k_tiles").and_then(Value::as_u64).unwrap_or(8);
                if fast || tiles != 8 || v.get("padded_M").is_some() {
                    skipped += 1;
                    return Ok(());
                }
                records.push(PrecisionRecord::Gemm {
                    origin: place.to_string(),
                    set,
                    weights: if kind == "fp8_gemm" {
                        WeightPrecision::Fp8
                    } else {
                        WeightPrecision::Int4
                    },
                    m: int("M")?,
                    n: int("N")?,
                    k: int("K")?,
                    median_ms,
                });
            }
            other => {
                return Err(Error::input(
                    place,
                    format!(
                        "unknown precision record kind `{other}` (expected layer, decode, decode_stack, fp8_gemm, \
                         int4_gemm, or one of {})",
                        UNUSED_KINDS.join(", ")
                    ),
                ))
            }
        }
        Ok(())
    })?;
    let Some((gpu, _)) = gpus.first().cloned() else {
        return Err(Error::Spec("the precision files hold no usable record".into()));
    };
    if let Some((other, place)) = gpus.iter().find(|(g, _)| *g != gpu) {
        return Err(Error::input(
            place,
            format!("measured on `{other}`, not on `{gpu}` like the rest: fit one GPU at a time"),
        ));
    }
    Ok(PrecisionSet {
        records,
        skipped,
        sha256: sha,
        files: paths.iter().map(|p| p.as_ref().display().to_string()).collect(),
        gpu,
    })
}

/// One fitted or predicted row, for reports.
#[derive(Clone, Debug, PartialEq)]
pub struct PrecisionRow {
    /// `prefill_layer`, `kernel`, `decode_fp8`, `decode_int4`, `decode_kernel_fp8`, `decode_kernel_int4`.
    pub group: &'static str,
    /// `train` or `validation` (never fitted on).
    pub set: &'static str,
    /// What was measured, in a few words.
    pub name: String,
    pub measured_ms: f64,
    pub predicted_ms: f64,
    /// The bf16 part (fixed constants) of the prediction, and the precision part, per resource.
    pub parts: Vec<(String, f64)>,
}

impl PrecisionRow {
    pub fn relative_error(&self) -> f64 {
        (self.predicted_ms - self.measured_ms) / self.measured_ms
    }
}

/// A row of the design: its precision work, its fixed bf16 milliseconds, and
/// what it is.
struct Row {
    x: Vec<f64>,
    fixed: f64,
    y: f64,
    validation: bool,
    group: &'static str,
    name: String,
    /// For leave-one-group-out (a decode model, a layer's origin).
    key: String,
}

fn lower_bounds(table: &[(&str, Unit, Option<PeakUnit>)], limits: &PhysicalLimits) -> Vec<f64> {
    table
        .iter()
        .map(|(_, _, b)| b.map_or(0.0, |p| limits.min_ms_per_unit(p)))
        .collect()
}

fn solve(rows: &[&Row], lower: &[f64]) -> Vec<f64> {
    let cols = lower.len();
    let x = DMatrix::from_fn(rows.len(), cols, |i, j| rows[i].x[j]);
    let y: Vec<f64> = rows.iter().map(|r| r.y).collect();
    let fixed: Vec<f64> = rows.iter().map(|r| r.fixed).collect();
    super::fit::fit_relative_with_fixed(&x, &y, &fixed, lower)
        .iter()
        .copied()
        .collect()
}

fn refs<'a>(rows: &'a [Row], idx: &[usize]) -> Vec<&'a Row> {
    idx.iter().filter_map(|&i| rows.get(i)).collect()
}

fn predict(r: &Row, t: &[f64]) -> f64 {
    r.fixed + r.x.iter().zip(t).map(|(a, b)| a * b).sum::<f64>()
}

fn errors(rows: &[&Row], t: &[f64]) -> Vec<f64> {
    rows.iter().map(|r| (predict(r, t) - r.y) / r.y).collect()
}

/// Leave-one-key-out: each key's training rows predicted by a fit without them.
fn leave_one_out(rows: &[&Row], lower: &[f64]) -> Vec<f64> {
    let mut keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let keep: Vec<&Row> = rows.iter().copied().filter(|r| r.key != key).collect();
        let held: Vec<&Row> = rows.iter().copied().filter(|r| r.key == key).collect();
        let t = solve(&keep, lower);
        out.extend(errors(&held, &t));
    }
    out
}

fn fitted_map(table: &[(&str, Unit, Option<PeakUnit>)], t: &[f64]) -> BTreeMap<String, FittedResource> {
    table
        .iter()
        .zip(t)
        .map(|((name, unit, _), &ms)| (name.to_string(), FittedResource::of(*unit, ms)))
        .collect()
}

fn values(table: &[(&str, Unit, Option<PeakUnit>)], map: &BTreeMap<String, FittedResource>) -> Vec<f64> {
    table
        .iter()
        .map(|(name, _, _)| map.get(*name).map_or(0.0, |f| f.ms_per_unit))
        .collect()
}

fn shape_label(s: &LayerShape) -> String {
    format!(
        "D{} H{}/{} Dh{} F{} S{} B{}{}{}",
        s.hidden_dim,
        s.num_heads,
        s.num_kv_heads,
        s.head_dim,
        s.ffn_dim,
        s.seq_len,
        s.batch_size,
        if s.use_qk_norm { " qk" } else { "" },
        s.window_size.map_or(String::new(), |w| format!(" w{w}"))
    )
}

impl PrecisionFit {
    /// The layer model's precision constants in [`ka::PRECISION_RESOURCES`] order.
    pub fn layer_values(&self) -> Vec<f64> {
        values(&PRECISION_RESOURCE_TABLE, &self.layer)
    }

    /// The single-kernel constants in [`ka::PRECISION_RESOURCES`] order.
    pub fn kernel_values(&self) -> Vec<f64> {
        values(&PRECISION_RESOURCE_TABLE, &self.kernel)
    }

    /// `base` (a bf16 decode model's constants) with the precision resources filled and the fp8 ridge point set.
    pub fn decode_constants(&self, base: &DecodeConstants, limits: Option<&PhysicalLimits>) -> DecodeConstants {
        let mut c = *base;
        for (j, v) in values(&DECODE_PRECISION_RESOURCES, &self.decode)
            .into_iter()
            .enumerate()
        {
            c.ms_per_unit[COUNT + j] = v;
        }
        c.form.fp8_ridge_flops_per_byte = limits.map_or(0.0, |l| l.fp8_ridge_flops_per_byte());
        c
    }

    /// Every resource present, finite, non-negative and no faster than its
    /// physical peak; no unknown resource.
    pub fn check(&self, limits: Option<&PhysicalLimits>) -> std::result::Result<(), String> {
        let sections: [(&str, &BTreeMap<String, FittedResource>, &[Resource]); 3] = [
            ("layer", &self.layer, &PRECISION_RESOURCE_TABLE),
            ("kernel", &self.kernel, &PRECISION_RESOURCE_TABLE),
            ("decode", &self.decode, &DECODE_PRECISION_RESOURCES),
        ];
        for (section, map, table) in sections {
            for (name, unit, bound) in table {
                let Some(f) = map.get(*name) else {
                    return Err(format!("`precision.{section}` is missing `{name}`"));
                };
                if !(f.ms_per_unit.is_finite() && (0.0..=MAX_MS_PER_UNIT).contains(&f.ms_per_unit)) {
                    return Err(format!(
                        "`precision.{section}.{name}.ms_per_unit` must be finite, from 0 to {MAX_MS_PER_UNIT:e}, got {:?}",
                        f.ms_per_unit
                    ));
                }
                let (want, want_unit) = throughput(*unit, f.ms_per_unit);
                if !f.throughput.is_finite()
                    || (f.throughput - want).abs() > 1e-9 * want.abs().max(f.throughput.abs())
                    || f.unit != want_unit
                {
                    return Err(format!(
                        "`precision.{section}.{name}.throughput` = {:?} {} does not match its `ms_per_unit` ({want:?} {want_unit})",
                        f.throughput, f.unit
                    ));
                }
                if let (Some(limits), Some(peak)) = (limits, bound) {
                    let floor = limits.min_ms_per_unit(*peak);
                    if f.ms_per_unit < floor * (1.0 - 1e-9) {
                        let (value, shown) = throughput(*unit, f.ms_per_unit);
                        return Err(format!(
                            "`precision.{section}.{name}` = {value:.1} {shown} is faster than the physical limit {:.1} {shown}",
                            limits.limit(*peak)
                        ));
                    }
                }
            }
            if let Some(extra) = map.keys().find(|k| !table.iter().any(|(n, _, _)| n == k)) {
                return Err(format!("`precision.{section}` has an unknown resource `{extra}`"));
            }
        }
        Ok(())
    }

    /// These constants carried to a GPU with limits `to` from the one they
    /// were fitted on (`from`): bytes scale by the HBM ratio, FLOPs by the
    /// ratio of the peak that bounds them (dense fp8 or bf16), fixed costs
    /// stay (the same chip generation). `source` says where they came from.
    pub fn transfer(&self, from: &PhysicalLimits, to: &PhysicalLimits, source: &str) -> PrecisionFit {
        let mut out = self.clone();
        let scale = |unit: Unit, bound: Option<PeakUnit>| match (unit, bound) {
            (Unit::Bytes, _) => from.hbm_gbps / to.hbm_gbps,
            (Unit::Flops, Some(p)) => from.limit(p) / to.limit(p),
            _ => 1.0,
        };
        for (map, table) in [
            (&mut out.layer, &PRECISION_RESOURCE_TABLE[..]),
            (&mut out.kernel, &PRECISION_RESOURCE_TABLE[..]),
            (&mut out.decode, &DECODE_PRECISION_RESOURCES[..]),
        ] {
            for (name, unit, bound) in table {
                if let Some(f) = map.get_mut(*name) {
                    *f = FittedResource::of(*unit, f.ms_per_unit * scale(*unit, *bound));
                }
            }
        }
        out.transferred_from = Some(source.to_string());
        out
    }
}

/// The design rows of `data` under `base`'s bf16 constants: layer, kernel and decode rows.
struct Rows {
    layer: Vec<Row>,
    kernel: Vec<Row>,
    decode: Vec<Row>,
    counts: BTreeMap<String, usize>,
}

fn build_rows(
    base: &CalibrationProfile,
    data: &PrecisionSet,
    validation_shapes: &[LayerShape],
    limits: &PhysicalLimits,
) -> Result<Rows> {
    let decode_base = base.decode_model.as_ref().ok_or_else(|| {
        Error::Spec(
            "the precision fit needs the profile's bf16 decode model (--decode or --transfer-decode-from)".into(),
        )
    })?;
    let model = base.model().with_fp8_ridge(limits.fp8_ridge_flops_per_byte());
    let inverse = base.inverse_throughputs();
    let base_ms: Vec<f64> = (0..RESOURCES.len()).map(|j| inverse[(j, 0)]).collect();
    let launch_ms = base.fitted.get("kernel_launch").map_or(0.0, |f| f.ms_per_unit);
    let mut dc = decode_base.constants();
    dc.form.fp8_ridge_flops_per_byte = limits.fp8_ridge_flops_per_byte();
    let form = dc.form;

    let mut layer_rows = Vec::new();
    let mut kernel_rows = Vec::new();
    let mut decode_rows = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &data.records {
        match r {
            PrecisionRecord::Layer {
                origin,
                set,
                shape,
                median_ms,
            } => {
                let w = super::profile::per_resource(&model, shape);
                let bf16 = crate::shapes::LayerShape {
                    precision: crate::precision::Precision::BF16,
                    ..*shape
                };
                let fixed: f64 = w[..RESOURCES.len()].iter().zip(&base_ms).map(|(a, b)| a * b).sum();
                layer_rows.push(Row {
                    x: w[RESOURCES.len()..].to_vec(),
                    fixed,
                    y: *median_ms,
                    validation: set == "validation" || validation_shapes.contains(&bf16),
                    group: "prefill_layer",
                    name: shape_label(shape),
                    key: origin.clone(),
                });
                *counts.entry("fp8_layer".into()).or_default() += 1;
            }
            PrecisionRecord::Gemm {
                set,
                weights,
                m,
                n,
                k,
                median_ms,
                ..
            } => {
                let validation = set == "micro_validation";
                let name = format!("M{m} N{n} K{k}");
                if *m >= BLOCK && *weights == WeightPrecision::Fp8 {
                    let w = ka::fp8_gemm_work(*m, *n, *k, model.sm_count, model.fp8_ridge_flops_per_byte);
                    kernel_rows.push(Row {
                        x: w.to_vec(),
                        fixed: launch_ms,
                        y: *median_ms,
                        validation,
                        group: "kernel",
                        name,
                        key: String::new(),
                    });
                } else if *m < BLOCK {
                    let w = dm::gemm_work_in(*m, *n, *k, *weights, &form);
                    decode_rows.push(Row {
                        x: w[COUNT..].to_vec(),
                        fixed: w[..COUNT].iter().zip(&dc.ms_per_unit).map(|(a, b)| a * b).sum(),
                        y: *median_ms,
                        validation,
                        group: if *weights == WeightPrecision::Fp8 {
                            "decode_kernel_fp8"
                        } else {
                            "decode_kernel_int4"
                        },
                        name,
                        key: "micro".into(),
                    });
                } else {
                    // int4 GEMMs of 128 rows or more: no prefill int4 kernel is modelled.
                    continue;
                }
                *counts.entry(format!("{}_gemm", weights.name())).or_default() += 1;
            }
            PrecisionRecord::Step(d) => {
                let s = &d.shape;
                let w: Work = dm::step_work(s, s.batch_size, model::context_of(s), &form)
                    .ok_or_else(|| Error::Spec(format!("decode record of `{}` is not a whole model", d.model)))?;
                decode_rows.push(Row {
                    x: w[COUNT..].to_vec(),
                    fixed: w[..COUNT].iter().zip(&dc.ms_per_unit).map(|(a, b)| a * b).sum(),
                    y: d.median_ms,
                    validation: d.set == "validation",
                    group: if s.precision.weights == WeightPrecision::Fp8 {
                        "decode_fp8"
                    } else {
                        "decode_int4"
                    },
                    name: format!("{} b{} ctx{}", d.model, s.batch_size, model::context_of(s)),
                    key: d.model.clone(),
                });
                *counts
                    .entry(format!("decode_{}", s.precision.weights.name()))
                    .or_default() += 1;
            }
        }
    }
    Ok(Rows {
        layer: layer_rows,
        kernel: kernel_rows,
        decode: decode_rows,
        counts,
    })
}

/// Fits the precision section on `data` with `base`'s bf16 constants fixed.
/// `validation_shapes` are the bf16 fit's validation layers: an fp8 layer of
/// one of those shapes (or of set `validation`) is predicted, never fitted
/// on; decode steps of `validation` models and GEMMs of set
/// `micro_validation` likewise. Returns the fit and every row.
pub fn fit(
    base: &CalibrationProfile,
    data: &PrecisionSet,
    validation_shapes: &[LayerShape],
    limits: &PhysicalLimits,
) -> Result<(PrecisionFit, Vec<PrecisionRow>)> {
    if limits.dense_fp8_tflops.is_none() {
        return Err(Error::Spec(format!(
            "no dense fp8 peak is known for `{}`: the fp8 fit is bounded by it",
            base.gpu
        )));
    }
    let Rows {
        layer: layer_rows,
        kernel: kernel_rows,
        decode: decode_rows,
        counts,
    } = build_rows(base, data, validation_shapes, limits)?;
    let train = |rows: &[Row]| -> Vec<usize> { (0..rows.len()).filter(|&i| !rows[i].validation).collect() };
    let need = |what: &str, n: usize, of: usize| -> Result<()> {
        if n <= of {
            return Err(Error::Spec(format!(
                "{n} training rows of {what} to fit {of} precision constants: measure more"
            )));
        }
        Ok(())
    };
    let (lt, kt, dt) = (train(&layer_rows), train(&kernel_rows), train(&decode_rows));
    need("fp8 layers", lt.len(), 4)?;
    need("fp8 GEMMs of at least 128 rows", kt.len(), 4)?;
    need("fp8/int4 decode steps and GEMMs", dt.len(), 6)?;

    let layer_lower = lower_bounds(&PRECISION_RESOURCE_TABLE, limits);
    let decode_lower = lower_bounds(&DECODE_PRECISION_RESOURCES, limits);
    let t_layer = solve(&refs(&layer_rows, &lt), &layer_lower);
    let t_kernel = solve(&refs(&kernel_rows, &kt), &layer_lower);
    let t_decode = solve(&refs(&decode_rows, &dt), &decode_lower);

    let mut residuals = BTreeMap::new();
    let mut stats = |key: &str, rows: Vec<&Row>, t: &[f64]| {
        if !rows.is_empty() {
            residuals.insert(key.to_string(), ResidualStats::of(&errors(&rows, t)));
        }
    };
    let of = |rows: &[Row], group: Option<&str>, validation: bool| -> Vec<usize> {
        (0..rows.len())
            .filter(|&i| rows[i].validation == validation && group.is_none_or(|g| rows[i].group == g))
            .collect()
    };
    stats(
        "layer_train",
        refs(&layer_rows, &of(&layer_rows, None, false)),
        &t_layer,
    );
    stats(
        "layer_validation",
        refs(&layer_rows, &of(&layer_rows, None, true)),
        &t_layer,
    );
    stats(
        "kernel_train",
        refs(&kernel_rows, &of(&kernel_rows, None, false)),
        &t_kernel,
    );
    stats(
        "kernel_validation",
        refs(&kernel_rows, &of(&kernel_rows, None, true)),
        &t_kernel,
    );
    for (key, group) in [
        ("decode_fp8", "decode_fp8"),
        ("decode_int4", "decode_int4"),
        ("decode_micro_fp8", "decode_kernel_fp8"),
        ("decode_micro_int4", "decode_kernel_int4"),
    ] {
        stats(
            &format!("{key}_train"),
            refs(&decode_rows, &of(&decode_rows, Some(group), false)),
            &t_decode,
        );
        stats(
            &format!("{key}_validation"),
            refs(&decode_rows, &of(&decode_rows, Some(group), true)),
            &t_decode,
        );
    }
    residuals.insert(
        "layer_leave_one_out".into(),
        ResidualStats::of(&leave_one_out(&refs(&layer_rows, &lt), &layer_lower)),
    );
    // Leave one decode model out (its steps), the micro-benchmarks always kept.
    let steps: Vec<&Row> = refs(&decode_rows, &dt);
    let mut models: Vec<&str> = steps
        .iter()
        .filter(|r| r.key != "micro")
        .map(|r| r.key.as_str())
        .collect();
    models.sort_unstable();
    models.dedup();
    let mut lomo = Vec::new();
    for m in models {
        let keep: Vec<&Row> = steps.iter().copied().filter(|r| r.key != m).collect();
        let held: Vec<&Row> = steps.iter().copied().filter(|r| r.key == m).collect();
        lomo.extend(errors(&held, &solve(&keep, &decode_lower)));
    }
    residuals.insert("decode_leave_one_model_out".into(), ResidualStats::of(&lomo));

    let fit = PrecisionFit {
        layer: fitted_map(&PRECISION_RESOURCE_TABLE, &t_layer),
        kernel: fitted_map(&PRECISION_RESOURCE_TABLE, &t_kernel),
        decode: fitted_map(&DECODE_PRECISION_RESOURCES, &t_decode),
        data: PrecisionData {
            files: data.files.clone(),
            sha256: data.sha256.clone(),
            records: counts,
            skipped: data.skipped,
        },
        residuals,
        transferred_from: None,
        kv_cache_fp8: KV_CACHE_FP8.to_string(),
        int4_prefill: INT4_PREFILL.to_string(),
    };
    fit.check(Some(limits))
        .map_err(|e| Error::Spec(format!("the precision fit broke its own bounds (a bug): {e}")))?;

    let out = report_rows(&layer_rows, &kernel_rows, &decode_rows, &t_layer, &t_kernel, &t_decode);
    Ok((fit, out))
}

/// Every row of the three designs as reports show it, predicted with the given constants.
fn report_rows(layer: &[Row], kernel: &[Row], decode: &[Row], tl: &[f64], tk: &[f64], td: &[f64]) -> Vec<PrecisionRow> {
    let mut out = Vec::new();
    let mut push = |rows: &[Row], t: &[f64], names: &dyn Fn(usize) -> String| {
        for r in rows {
            let mut parts = vec![("bf16 part (fixed)".to_string(), r.fixed)];
            parts.extend(
                r.x.iter()
                    .zip(t)
                    .enumerate()
                    .filter(|(_, (w, _))| **w != 0.0)
                    .map(|(j, (w, c))| (names(j), w * c)),
            );
            out.push(PrecisionRow {
                group: r.group,
                set: if r.validation { "validation" } else { "train" },
                name: r.name.clone(),
                measured_ms: r.y,
                predicted_ms: predict(r, t),
                parts,
            });
        }
    };
    push(layer, tl, &|j| ka::PRECISION_RESOURCES[j].to_string());
    push(kernel, tk, &|j| ka::PRECISION_RESOURCES[j].to_string());
    push(decode, td, &|j| dm::resource(COUNT + j).0.to_string());
    out
}

/// Every record of `data` predicted by `profile`'s own precision section
/// (no refit): what the precision fidelity report shows. The rows' sets are
/// those of [`fit`] (`validation_shapes` as there).
pub fn predict_rows(
    profile: &CalibrationProfile,
    data: &PrecisionSet,
    validation_shapes: &[LayerShape],
) -> Result<Vec<PrecisionRow>> {
    let fit = profile
        .precision
        .as_ref()
        .ok_or_else(|| Error::Spec("the profile has no precision section".into()))?;
    let limits = profile
        .physical_limits()
        .ok_or_else(|| Error::Spec(format!("no physical limits known for `{}`", profile.gpu)))?;
    let rows = build_rows(profile, data, validation_shapes, &limits)?;
    Ok(report_rows(
        &rows.layer,
        &rows.kernel,
        &rows.decode,
        &fit.layer_values(),
        &fit.kernel_values(),
        &values(&DECODE_PRECISION_RESOURCES, &fit.decode),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_takes_fp8_and_int4_records_and_counts_the_rest() {
        let dir = std::env::temp_dir().join(format!("nas-precision-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.jsonl");
        let lines = [
            r#"{"kind": "fp8_gemm", "set": "micro", "gpu": "NVIDIA H200", "shape": {"M": 16, "N": 4096, "K": 4096}, "median_ms": 0.0125}"#,
            r#"{"kind": "int4_gemm", "set": "micro", "gpu": "NVIDIA H200", "shape": {"M": 1, "N": 4096, "K": 4096}, "inner_k_tiles": 2, "median_ms": 0.008}"#,
            r#"{"kind": "bf16_gemm", "set": "micro", "gpu": "NVIDIA H200", "shape": {"M": 1, "N": 4096, "K": 4096}, "median_ms": 0.01}"#,
            r#"{"kind": "layer", "set": "validation", "precision": "fp8", "gpu": "NVIDIA H200", "shape": {"hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 4, "head_dim": 128, "ffn_dim": 8192, "seq_len": 2048, "batch_size": 1, "use_qk_norm": false, "window_size": null}, "median_ms": 0.5}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let set = read(&[&path]).unwrap();
        assert_eq!((set.records.len(), set.skipped), (2, 2));
        match &set.records[1] {
            PrecisionRecord::Layer { shape, set, .. } => {
                assert_eq!(shape.precision.weights, WeightPrecision::Fp8);
                assert_eq!(set, "validation");
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(
            &path,
            r#"{"kind": "fp16_gemm", "gpu": "x", "shape": {}, "median_ms": 1.0}"#,
        )
        .unwrap();
        let e = read(&[&path]).unwrap_err().to_string();
        assert!(
            e.contains("p.jsonl:1: unknown precision record kind `fp16_gemm`"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
