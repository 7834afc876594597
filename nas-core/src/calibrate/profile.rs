//! A calibration profile: the kernel-aware model's throughputs fitted to one
//! GPU's measurements, with where the data came from and how well it fits.

use std::collections::BTreeMap;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::cost::kernel_aware::{KernelAwareModel, Unit, ALL_RESOURCES, RESOURCES, RESOURCE_BOUNDS, RESOURCE_UNITS};
use crate::cost::{work_matrix, CostModel, LatencyMatrix, LayerModel};
use crate::error::{Error, Result};
use crate::gpu::{spec_sheet, PeakUnit, SpecSheet};
use crate::model::StepThroughputs;
use crate::shapes::LayerShape;

use super::fit::fit_relative_bounded;
use super::measurements::{MeasurementSet, Subject, MAX_SM_COUNT};

/// Name of the model a profile belongs to. `kernel_aware_v1` (until 2026-11)
/// had a separate wave-tail throughput, L2-speed byte rates and a QK-norm
/// bandwidth; its fitted constants were faster than the hardware, so its
/// profiles are not read: refit them with `nas calibrate`.
pub const MODEL: &str = "kernel_aware_v2";

/// Largest cost per unit of work a profile may give: a second per FLOP, byte
/// or launch. Real ones are about 1e-12 (FLOPs) to 5e-3 (launches); the cap
/// keeps every prediction of a valid shape finite.
pub const MAX_MS_PER_UNIT: f64 = 1e3;

/// Resources that borrow a related resource's value when no measurement
/// exercises them (say, no misaligned GEMM was timed).
const FALLBACKS: [(&str, &str); 6] = [
    ("gemm_misaligned_flops", "gemm_flops"),
    ("gemm_bytes", "elementwise_bytes"),
    ("attention_small_head_flops", "attention_flops"),
    ("attention_fallback_flops", "attention_flops"),
    ("attention_window_flops", "attention_flops"),
    ("attention_window_wide_head_flops", "attention_window_flops"),
];

/// The physical peaks a profile's throughputs are bounded by (from the GPU's
/// spec sheet, or given to `nas calibrate` for a GPU it does not know).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalLimits {
    /// Peak HBM bandwidth, GB/s: bounds every `GB/s` resource.
    pub hbm_gbps: f64,
    /// Dense bf16 tensor-core peak, TFLOP/s: bounds every `TFLOP/s` resource.
    pub dense_bf16_tflops: f64,
    /// Dense fp8 tensor-core peak, TFLOP/s: bounds the fp8 GEMM resources of
    /// the precision section (absent on GPUs without fp8 and in older profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense_fp8_tflops: Option<f64>,
    /// Where the figures come from.
    pub source: String,
}

impl PhysicalLimits {
    /// The limits of a spec sheet that has both figures.
    pub fn from_spec(sheet: &SpecSheet) -> Option<Self> {
        Some(PhysicalLimits {
            hbm_gbps: sheet.hbm_gbps?,
            dense_bf16_tflops: sheet.dense_bf16_tflops?,
            dense_fp8_tflops: sheet.dense_fp8_tflops,
            source: sheet.source.to_string(),
        })
    }

    /// The built-in spec sheet of a GPU named as the harness reports it.
    pub fn for_device_name(gpu: &str) -> Option<Self> {
        spec_sheet::for_device_name(gpu).and_then(Self::from_spec)
    }

    fn check(&self) -> std::result::Result<(), String> {
        for (key, v) in [
            ("hbm_gbps", self.hbm_gbps),
            ("dense_bf16_tflops", self.dense_bf16_tflops),
            ("dense_fp8_tflops", self.dense_fp8_tflops.unwrap_or(1.0)),
        ] {
            if !(v.is_finite() && (1e-3..=1e9).contains(&v)) {
                return Err(format!(
                    "`limits.{key}` must be a finite number from 0.001 to 1e9, got {v:?}"
                ));
            }
        }
        Ok(())
    }

    /// The limit of one kind of peak, in that resource's own unit.
    /// A GPU without an fp8 peak is bounded at its bf16 peak for fp8 work (it
    /// runs none: precision checks refuse fp8 there first).
    pub fn limit(&self, unit: PeakUnit) -> f64 {
        match unit {
            PeakUnit::HbmGbps => self.hbm_gbps,
            PeakUnit::DenseBf16Tflops => self.dense_bf16_tflops,
            PeakUnit::DenseFp8Tflops => self.dense_fp8_tflops.unwrap_or(self.dense_bf16_tflops),
        }
    }

    /// Smallest cost per unit of work (ms) a resource bounded by `unit` may have.
    pub fn min_ms_per_unit(&self, unit: PeakUnit) -> f64 {
        match unit {
            PeakUnit::HbmGbps => 1.0 / (self.hbm_gbps * 1e6),
            PeakUnit::DenseBf16Tflops | PeakUnit::DenseFp8Tflops => 1.0 / (self.limit(unit) * 1e9),
        }
    }

    /// FLOPs per byte at which dense fp8 compute and HBM take equally long.
    pub fn fp8_ridge_flops_per_byte(&self) -> f64 {
        self.limit(PeakUnit::DenseFp8Tflops) * 1e12 / (self.hbm_gbps * 1e9)
    }

    /// FLOPs per byte at which dense compute and HBM take equally long.
    pub fn ridge_flops_per_byte(&self) -> f64 {
        self.dense_bf16_tflops * 1e12 / (self.hbm_gbps * 1e9)
    }
}

/// One fitted resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedResource {
    /// Milliseconds per unit of work (FLOP, byte or launch): what the model multiplies by.
    pub ms_per_unit: f64,
    /// The same as people read it: TFLOP/s, GB/s, or microseconds per launch.
    pub throughput: f64,
    pub unit: String,
}

impl FittedResource {
    /// A resource of `unit` costing `ms_per_unit`, with its throughput shown.
    pub fn of(unit: Unit, ms_per_unit: f64) -> Self {
        let (throughput, shown) = throughput(unit, ms_per_unit);
        FittedResource {
            ms_per_unit,
            throughput,
            unit: shown.to_string(),
        }
    }
}

/// How well a model matches measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidualStats {
    pub rows: usize,
    /// Mean absolute percentage error.
    pub mape_pct: f64,
    pub max_abs_pct: f64,
    /// Share of rows within +-10%, in percent.
    pub within_10_pct: f64,
}

impl ResidualStats {
    /// Statistics of relative errors `(predicted - measured) / measured`.
    pub fn of(relative: &[f64]) -> Self {
        let n = relative.len().max(1) as f64;
        ResidualStats {
            rows: relative.len(),
            mape_pct: relative.iter().map(|r| r.abs()).sum::<f64>() / n * 100.0,
            max_abs_pct: relative.iter().fold(0.0f64, |m, r| m.max(r.abs())) * 100.0,
            within_10_pct: relative.iter().filter(|r| r.abs() <= 0.10).count() as f64 / n * 100.0,
        }
    }

    /// Statistics a profile read from disk may hold: finite, non-negative
    /// errors, `max_abs_pct` not below `mape_pct`, a share from 0 to 100.
    pub fn check(&self, place: &str) -> std::result::Result<(), String> {
        for (key, v) in [("mape_pct", self.mape_pct), ("max_abs_pct", self.max_abs_pct)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "`{place}.{key}` must be a finite non-negative percentage, got {v:?}"
                ));
            }
        }
        if self.max_abs_pct < self.mape_pct * (1.0 - 1e-9) {
            return Err(format!(
                "`{place}.max_abs_pct` = {:?} is below its mean `mape_pct` = {:?}",
                self.max_abs_pct, self.mape_pct
            ));
        }
        if !(self.within_10_pct.is_finite() && (0.0..=100.0).contains(&self.within_10_pct)) {
            return Err(format!(
                "`{place}.within_10_pct` must be a share from 0 to 100, got {:?}",
                self.within_10_pct
            ));
        }
        Ok(())
    }

    /// A fit's errors on its own training data must be at most
    /// [`MAX_TRAINING_MAPE_PCT`]: one further off predicts nothing (medians in
    /// the wrong unit or absurd, another GPU's data, the wrong model).
    pub fn check_training_fit(&self, place: &str) -> std::result::Result<(), String> {
        if self.mape_pct > MAX_TRAINING_MAPE_PCT {
            return Err(format!(
                "`{place}`: the fit misses its own training data by {:.3e}% on average (more than \
                 {MAX_TRAINING_MAPE_PCT}%): its medians are not these kernels' times in milliseconds, or not one \
                 GPU's; a profile so far off predicts nothing and is refused",
                self.mape_pct
            ));
        }
        Ok(())
    }
}

/// Most measurements one layer fit takes (the committed fits take 83):
/// leave-one-out refits once per record, about 6 s at this limit.
pub const MAX_FIT_RECORDS: usize = 4096;

/// Most a fit may miss its own training data by, on average (MAPE in
/// percent): the committed fits miss by 2-6%.
pub const MAX_TRAINING_MAPE_PCT: f64 = 50.0;

/// A fitted resource's shown `throughput` and `unit` must be what its
/// `ms_per_unit` gives: whole-model steps read the throughput, so one that
/// disagrees (negative, subnormal, edited) is refused.
pub(crate) fn check_shown_throughput(place: &str, unit: Unit, f: &FittedResource) -> std::result::Result<(), String> {
    let (want, want_unit) = throughput(unit, f.ms_per_unit);
    let close = (f.throughput - want).abs() <= 1e-9 * want.abs().max(f.throughput.abs());
    if !f.throughput.is_finite() || !close || f.unit != want_unit {
        return Err(format!(
            "`{place}.throughput` = {:?} {} does not match its `ms_per_unit` ({want:?} {want_unit})",
            f.throughput, f.unit
        ));
    }
    Ok(())
}

/// Where the fitted data came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataProvenance {
    pub files: Vec<String>,
    /// SHA-256 over the files' bytes, in the order given.
    pub sha256: String,
    /// Measurement sets used in the fit (`validation` never is).
    pub sets_used: Vec<String>,
    pub records_used: usize,
    pub records_failed_in_harness: usize,
}

/// A fitted kernel-aware profile of one GPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationProfile {
    pub schema_version: u32,
    pub model: String,
    /// The GPU as the harness reported it.
    pub gpu: String,
    pub sm_count: u64,
    pub fitted: BTreeMap<String, FittedResource>,
    /// Resources with no data, and the resource whose value they use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fallbacks: BTreeMap<String, String>,
    pub data: DataProvenance,
    /// Residuals of the fit on its own data, overall and per kind of record.
    pub residuals: BTreeMap<String, ResidualStats>,
    /// The physical peaks the fit was bounded by and the profile is checked
    /// against (absent in profiles written before bounds existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PhysicalLimits>,
    /// Leave-one-out cross-validation on the fitted records (each predicted
    /// by a fit without it): `leave_one_out`, and `leave_one_out_<kind>` per
    /// kind of record when there are several.
    #[serde(default)]
    pub cross_validation: BTreeMap<String, ResidualStats>,
    /// Held-out error: the records of each excluded set present in the
    /// measurement files (`validation`, normally), predicted by this profile.
    #[serde(default)]
    pub validation: BTreeMap<String, ResidualStats>,
    /// Decode throughputs fitted to measured decode steps, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<super::decode::DecodeFit>,
    /// The kernel-aware decode model fitted to compiled decode steps (or
    /// carried over from another GPU's fit: `transferred_from` says so).
    /// Whole-model decode uses it when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_model: Option<super::decode_fit::DecodeModelFit>,
    /// The MoE MLP model (`cost/moe.rs`) fitted to measured MoE layers, routed
    /// MoE MLPs and grouped GEMMs (or transferred: `transferred_from` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe_model: Option<super::moe_fit::MoeModelFit>,
    /// MLA attention's own constants (`cost/mla.rs`), fitted to measured MLA
    /// layers on top of the layer and decode fits (or transferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla_model: Option<super::mla_fit::MlaModelFit>,
    /// fp8 and int4 constants of the layer, kernel and decode models, fitted
    /// with the bf16 ones fixed (or carried over from another GPU's fit:
    /// `transferred_from` says so); without it the GPU prices bf16 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<super::precision_fit::PrecisionFit>,
}

/// A profile's error on layers it was never fitted on, as reports cite it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeldOut {
    /// The measurement set (`validation`).
    pub set: String,
    pub rows: usize,
    pub mape_pct: f64,
    pub within_10_pct: f64,
    pub max_abs_pct: f64,
}

pub(crate) fn throughput(unit: Unit, ms_per_unit: f64) -> (f64, &'static str) {
    if ms_per_unit <= 0.0 {
        return (0.0, unit_name(unit));
    }
    let value = match unit {
        Unit::Flops => 1.0 / (ms_per_unit * 1e9),
        Unit::Bytes => 1.0 / (ms_per_unit * 1e6),
        Unit::Launches => ms_per_unit * 1e3,
    };
    (value, unit_name(unit))
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Flops => "TFLOP/s",
        Unit::Bytes => "GB/s",
        Unit::Launches => "us per launch",
    }
}

/// One fitted row: where it came from, what it is, measured and predicted.
#[derive(Clone, Debug, PartialEq)]
pub struct FitRow {
    pub origin: String,
    pub kind: String,
    pub measured_ms: f64,
    pub predicted_ms: f64,
}

impl FitRow {
    pub fn relative_error(&self) -> f64 {
        (self.predicted_ms - self.measured_ms) / self.measured_ms
    }
}

impl CalibrationProfile {
    /// The held-out error reports cite: the `validation` set's, else the
    /// first set left out; `None` when every record was fitted on.
    pub fn held_out(&self) -> Option<HeldOut> {
        let (set, s) = self
            .validation
            .get_key_value("validation")
            .or_else(|| self.validation.iter().next())?;
        Some(HeldOut {
            set: set.clone(),
            rows: s.rows,
            mape_pct: s.mape_pct,
            within_10_pct: s.within_10_pct,
            max_abs_pct: s.max_abs_pct,
        })
    }

    /// What a whole-model step needs, from the fitted resources: bandwidth of
    /// memory-bound kernels (`elementwise_bytes`, bounded by HBM: never above
    /// the limits' `hbm_gbps`), GEMM and attention FLOPs (`gemm_flops`,
    /// `attention_flops`) and the cost of one launch; the bandwidth and launch
    /// cost of measured decode steps when fitted.
    pub fn step_throughputs(&self) -> Option<StepThroughputs> {
        let get = |name: &str| self.fitted.get(name).map(|f| f.throughput).filter(|t| *t > 0.0);
        let hbm = self.physical_limits().map_or(f64::INFINITY, |l| l.hbm_gbps);
        let layer = StepThroughputs {
            bandwidth_gbps: get("elementwise_bytes")?.min(hbm),
            matmul_tflops: get("gemm_flops")?,
            attention_tflops: get("attention_flops")?,
            launch_ms: self.fitted.get("kernel_launch").map_or(0.0, |f| f.ms_per_unit),
            decode: None,
        };
        Some(match (&self.decode_model, &self.decode) {
            (Some(model), _) => StepThroughputs {
                decode: Some(match &self.precision {
                    Some(p) => p.decode_constants(&model.constants(), self.physical_limits().as_ref()),
                    None => model.constants(),
                }),
                ..layer
            },
            (None, Some(decode)) => decode.step(&layer),
            (None, None) => layer,
        })
    }

    /// Fits the kernel-aware model to every measurement whose set is not in
    /// `exclude_sets` (the validation set, normally), each throughput bounded
    /// by its physical peak: `limits`, or the built-in spec sheet of the GPU
    /// the records name (an error if there is none). The excluded records
    /// present are predicted, per set, into [`CalibrationProfile::validation`];
    /// leave-one-out cross-validation goes to `cross_validation`. Returns the
    /// profile and each fitted row's residual.
    pub fn fit(
        data: &MeasurementSet,
        exclude_sets: &[&str],
        limits: Option<PhysicalLimits>,
    ) -> Result<(Self, Vec<FitRow>)> {
        let gpu = &data.measurements[0].gpu;
        let limits = match limits.or_else(|| PhysicalLimits::for_device_name(gpu)) {
            Some(l) => l,
            None => {
                return Err(Error::Spec(format!(
                    "no spec sheet is built in for `{gpu}`: give its peaks (--hbm-gbps, --dense-bf16-tflops) \
                     so the fit can be bounded by them"
                )))
            }
        };
        limits.check().map_err(Error::Spec)?;
        let used: Vec<_> = data
            .measurements
            .iter()
            .filter(|m| !exclude_sets.contains(&m.set.as_str()))
            .collect();
        if used.len() > MAX_FIT_RECORDS {
            return Err(Error::Spec(format!(
                "{} measurements to fit; a fit takes at most {MAX_FIT_RECORDS} (its leave-one-out \
                 cross-validation refits once per record, so time grows with their square): fit a sample",
                used.len()
            )));
        }
        if used.len() < RESOURCES.len() {
            return Err(Error::Spec(format!(
                "{} measurements to fit {} throughputs: measure more shapes",
                used.len(),
                RESOURCES.len()
            )));
        }
        let model = KernelAwareModel::new(data.measurements[0].sm_count, limits.ridge_flops_per_byte());
        let design = design_matrix(&model, &used);
        let y: Vec<f64> = used.iter().map(|m| m.median_ms).collect();
        let lower: Vec<f64> = RESOURCE_BOUNDS
            .iter()
            .map(|b| b.map_or(0.0, |unit| limits.min_ms_per_unit(unit)))
            .collect();
        let solve = |design: &DMatrix<f64>, y: &[f64]| -> (Vec<f64>, BTreeMap<String, String>) {
            let mut values: Vec<f64> = fit_relative_bounded(design, y, &lower).iter().copied().collect();
            let mut fallbacks = BTreeMap::new();
            for (j, name) in RESOURCES.iter().enumerate() {
                if design.column(j).iter().all(|w| *w == 0.0) {
                    if let Some((_, to)) = FALLBACKS.iter().find(|(from, _)| from == name) {
                        let k = RESOURCES.iter().position(|r| r == to).unwrap_or(j);
                        values[j] = values[k];
                        fallbacks.insert(name.to_string(), to.to_string());
                    }
                }
            }
            (values, fallbacks)
        };
        let (values, fallbacks) = solve(&design, &y);

        // Leave-one-out: each fitted record predicted by a fit without it.
        let mut loo: Vec<(String, f64)> = Vec::with_capacity(used.len());
        for i in 0..used.len() {
            let keep: Vec<usize> = (0..used.len()).filter(|&r| r != i).collect();
            let sub = design.select_rows(keep.iter());
            let sub_y: Vec<f64> = keep.iter().map(|&r| y[r]).collect();
            let (v, _) = solve(&sub, &sub_y);
            let predicted: f64 = (0..RESOURCES.len()).map(|j| design[(i, j)] * v[j]).sum();
            loo.push((kind_of(used[i]), (predicted - y[i]) / y[i]));
        }
        let mut cross_validation = BTreeMap::new();
        let all: Vec<f64> = loo.iter().map(|(_, e)| *e).collect();
        cross_validation.insert("leave_one_out".to_string(), ResidualStats::of(&all));
        let loo_kinds: std::collections::BTreeSet<&str> = loo.iter().map(|(k, _)| k.as_str()).collect();
        if loo_kinds.len() > 1 {
            for kind in loo_kinds {
                let rel: Vec<f64> = loo.iter().filter(|(k, _)| k == kind).map(|(_, e)| *e).collect();
                cross_validation.insert(format!("leave_one_out_{kind}"), ResidualStats::of(&rel));
            }
        }

        // Held-out sets present in the files: predicted, never fitted on.
        let mut validation = BTreeMap::new();
        for set in exclude_sets {
            let held: Vec<_> = data.measurements.iter().filter(|m| m.set == *set).collect();
            if held.is_empty() {
                continue;
            }
            let x = design_matrix(&model, &held);
            let rel: Vec<f64> = held
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let p: f64 = (0..RESOURCES.len()).map(|j| x[(i, j)] * values[j]).sum();
                    (p - m.median_ms) / m.median_ms
                })
                .collect();
            validation.insert(set.to_string(), ResidualStats::of(&rel));
        }

        let predicted = &design * nalgebra::DVector::from_vec(values.clone());
        let rows: Vec<FitRow> = used
            .iter()
            .enumerate()
            .map(|(i, m)| FitRow {
                origin: m.origin.clone(),
                kind: kind_of(m),
                measured_ms: m.median_ms,
                predicted_ms: predicted[i],
            })
            .collect();
        let mut residuals = BTreeMap::new();
        let all: Vec<f64> = rows.iter().map(FitRow::relative_error).collect();
        residuals.insert("all".to_string(), ResidualStats::of(&all));
        let kinds: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        for kind in kinds {
            let rel: Vec<f64> = rows
                .iter()
                .filter(|r| r.kind == kind)
                .map(FitRow::relative_error)
                .collect();
            residuals.insert(kind.to_string(), ResidualStats::of(&rel));
        }

        let fitted = RESOURCES
            .iter()
            .zip(RESOURCE_UNITS)
            .zip(&values)
            .map(|((name, unit), &ms)| (name.to_string(), FittedResource::of(unit, ms)))
            .collect();
        let mut sets: Vec<String> = used.iter().map(|m| m.set.clone()).collect();
        sets.sort();
        sets.dedup();
        let profile = CalibrationProfile {
            schema_version: 1,
            model: MODEL.to_string(),
            gpu: data.measurements[0].gpu.clone(),
            sm_count: model.sm_count,
            fitted,
            fallbacks,
            data: DataProvenance {
                files: data.files.clone(),
                sha256: data.sha256.clone(),
                sets_used: sets,
                records_used: used.len(),
                records_failed_in_harness: data.failed_records,
            },
            residuals,
            limits: Some(limits),
            cross_validation,
            validation,
            decode: None,
            decode_model: None,
            moe_model: None,
            mla_model: None,
            precision: None,
        };
        profile
            .check_own_limits()
            .map_err(|e| Error::Spec(format!("the fit broke its own bounds (a bug): {e}")))?;
        Ok((profile, rows))
    }

    /// The limits this profile is bound by: its own `limits`, else the
    /// built-in spec sheet of its GPU, else none.
    pub fn physical_limits(&self) -> Option<PhysicalLimits> {
        self.limits
            .clone()
            .or_else(|| PhysicalLimits::for_device_name(&self.gpu))
    }

    /// Checks every fitted throughput against the physical peak that bounds
    /// it ([`RESOURCE_BOUNDS`]), under [`CalibrationProfile::physical_limits`];
    /// a profile with no known limits passes. The error names the resource,
    /// its value and the limit.
    pub fn check_own_limits(&self) -> std::result::Result<(), String> {
        match self.physical_limits() {
            Some(limits) => self.check_against(&limits),
            None => Ok(()),
        }
    }

    /// [`CalibrationProfile::check_own_limits`] against a given spec sheet
    /// (one without both figures passes).
    pub fn check_physical(&self, sheet: &SpecSheet) -> std::result::Result<(), String> {
        match PhysicalLimits::from_spec(sheet) {
            Some(limits) => self.check_against(&limits),
            None => Ok(()),
        }
    }

    fn check_against(&self, limits: &PhysicalLimits) -> std::result::Result<(), String> {
        for ((name, unit), bound) in RESOURCES.iter().zip(RESOURCE_UNITS).zip(RESOURCE_BOUNDS) {
            let (Some(bound), Some(f)) = (bound, self.fitted.get(*name)) else {
                continue;
            };
            let min = limits.min_ms_per_unit(bound);
            // a relative slack of 1e-9 for the bound's own rounding
            if f.ms_per_unit < min * (1.0 - 1e-9) {
                let (value, unit_name) = throughput(unit, f.ms_per_unit);
                let value = if f.ms_per_unit > 0.0 {
                    format!("{value:.1} {unit_name}")
                } else {
                    format!("infinite {unit_name} (0 ms per unit)")
                };
                return Err(format!(
                    "`{name}` = {value} is faster than the physical limit {:.1} {unit_name} ({})",
                    limits.limit(bound),
                    match bound {
                        PeakUnit::HbmGbps => "HBM bandwidth",
                        PeakUnit::DenseBf16Tflops => "dense bf16 peak",
                        PeakUnit::DenseFp8Tflops => "dense fp8 peak",
                    }
                ));
            }
        }
        if let Some(d) = self
            .decode
            .as_ref()
            .filter(|d| d.bandwidth_gbps > limits.hbm_gbps * (1.0 + 1e-9))
        {
            return Err(format!(
                "`decode.bandwidth_gbps` = {:.1} GB/s is faster than the physical limit {:.1} GB/s (HBM bandwidth)",
                d.bandwidth_gbps, limits.hbm_gbps
            ));
        }
        if let Some(p) = &self.precision {
            p.check(Some(limits))?;
        }
        Ok(())
    }

    /// Whether the fitted resource `name` sits at the peak that bounds it
    /// (the fit would have made it faster).
    pub fn at_limit(&self, name: &str) -> bool {
        let bound = RESOURCES
            .iter()
            .position(|r| *r == name)
            .and_then(|j| RESOURCE_BOUNDS[j]);
        match (bound, self.physical_limits(), self.fitted.get(name)) {
            (Some(unit), Some(limits), Some(f)) => f.ms_per_unit <= limits.min_ms_per_unit(unit) * (1.0 + 1e-9),
            _ => false,
        }
    }

    /// The model this profile parameterizes.
    pub fn model(&self) -> KernelAwareModel {
        let limits = self.physical_limits();
        let ridge = limits.as_ref().map_or(0.0, |l| l.ridge_flops_per_byte());
        let fp8_ridge = limits.as_ref().map_or(0.0, |l| l.fp8_ridge_flops_per_byte());
        KernelAwareModel::new(self.sm_count, ridge).with_fp8_ridge(fp8_ridge)
    }

    /// Inverse throughputs as the R x 1 matrix `LatencyMatrix` takes: the bf16
    /// resources, then the precision section's layer constants (0 without
    /// one: a shape in fp8 is refused before it is priced there).
    pub fn inverse_throughputs(&self) -> DMatrix<f64> {
        self.inverse_with(|p| p.layer_values())
    }

    /// [`CalibrationProfile::inverse_throughputs`] with the precision
    /// section's single-kernel constants (a GEMM on its own, `nas kernel`).
    pub fn kernel_inverse_throughputs(&self) -> DMatrix<f64> {
        self.inverse_with(|p| p.kernel_values())
    }

    fn inverse_with(&self, precision: impl Fn(&super::precision_fit::PrecisionFit) -> Vec<f64>) -> DMatrix<f64> {
        let extra = self.precision.as_ref().map(precision).unwrap_or_default();
        DMatrix::from_fn(ALL_RESOURCES.len(), 1, |r, _| match r < RESOURCES.len() {
            true => self.fitted.get(RESOURCES[r]).map_or(0.0, |f| f.ms_per_unit),
            false => extra.get(r - RESOURCES.len()).copied().unwrap_or(0.0),
        })
    }

    /// Whether this profile prices `precision`: fp8 weights need the
    /// precision section, int4 weights its decode constants; an fp8 KV cache
    /// is the bytes model of the bf16 decode fit (estimated) and needs nothing more.
    pub fn precision_ready(&self, precision: &crate::precision::Precision) -> std::result::Result<(), String> {
        if precision.weights.is_bf16() {
            return Ok(());
        }
        match &self.precision {
            Some(_) => Ok(()),
            None => Err(format!(
                "it has no precision section, so it prices bf16 weights only: fit one with `nas calibrate \
                 --precision FILE...` (calibration/README.md) to price {} weights",
                precision.weights
            )),
        }
    }

    /// Predictions for validated shapes on this GPU.
    pub fn predict(&self, shapes: &[LayerShape]) -> LatencyMatrix {
        LatencyMatrix::new(
            LayerModel::KernelAware(self.model()),
            shapes,
            &self.inverse_throughputs(),
        )
    }

    /// The profile as written to disk. A profile that reading would refuse
    /// (a fit far from its data, a constant out of bounds) is an error here,
    /// so none is ever written.
    pub fn to_json(&self) -> Result<String> {
        let value = serde_json::to_value(self).map_err(|e| Error::Spec(format!("serializing the profile: {e}")))?;
        let mut text = serde_json::to_string_pretty(&value).map_err(|e| Error::Spec(e.to_string()))?;
        text.push('\n');
        Self::from_json(&text, "the fitted profile").map_err(|e| Error::Spec(format!("{e}; it is not written")))?;
        Ok(text)
    }

    /// Reads a profile; `place` names it in errors. Every resource must be
    /// present with a finite, non-negative value.
    pub fn from_json(text: &str, place: &str) -> Result<Self> {
        // JSON first (a key given twice is an error, as in every JSON input),
        // then the profile's fields (an unknown or misspelt one is an error:
        // a misspelt `decode_model` must not quietly mean "none")
        let doc = crate::input::parse_json(text.as_bytes(), place)?;
        let p: CalibrationProfile =
            serde_json::from_value(doc).map_err(|e| Error::input(place, format!("not a calibration profile: {e}")))?;
        if p.model != MODEL {
            return Err(Error::input(place, format!("model `{}` is not `{MODEL}`", p.model)));
        }
        if p.sm_count == 0 {
            return Err(Error::input(place, "`sm_count` must be at least 1"));
        }
        if p.sm_count > MAX_SM_COUNT {
            let message = format!(
                "`sm_count` = {} is absurdly large (the limit is {MAX_SM_COUNT})",
                p.sm_count
            );
            return Err(Error::input(place, message));
        }
        for name in RESOURCES {
            match p.fitted.get(name) {
                None => return Err(Error::input(place, format!("missing fitted resource `{name}`"))),
                Some(f) if !f.ms_per_unit.is_finite() || f.ms_per_unit < 0.0 => {
                    return Err(Error::input(
                        place,
                        format!(
                            "`{name}.ms_per_unit` must be finite and non-negative, got {}",
                            f.ms_per_unit
                        ),
                    ))
                }
                Some(f) if f.ms_per_unit > MAX_MS_PER_UNIT => {
                    return Err(Error::input(
                        place,
                        format!(
                            "`{name}.ms_per_unit` = {:?} is absurdly large (the limit is {MAX_MS_PER_UNIT:e})",
                            f.ms_per_unit
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = p.fitted.keys().find(|k| !RESOURCES.contains(&k.as_str())) {
            return Err(Error::input(place, format!("unknown fitted resource `{extra}`")));
        }
        if let Some(d) = &p.decode {
            d.check().map_err(|problem| Error::input(place, problem))?;
        }
        if let Some(d) = &p.decode_model {
            d.check(p.physical_limits().as_ref())
                .map_err(|problem| Error::input(place, problem))?;
        }
        if let Some(m) = &p.moe_model {
            m.check(p.physical_limits().as_ref())
                .map_err(|problem| Error::input(place, problem))?;
        }
        if let Some(m) = &p.mla_model {
            m.check(p.physical_limits().as_ref())
                .map_err(|problem| Error::input(place, problem))?;
        }
        if let Some(x) = &p.precision {
            if p.decode_model.is_none() {
                return Err(Error::input(
                    place,
                    "a `precision` section needs the `decode_model` its decode constants build on",
                ));
            }
            x.check(p.physical_limits().as_ref())
                .map_err(|problem| Error::input(place, problem))?;
        }
        if let Some(l) = &p.limits {
            l.check().map_err(|problem| Error::input(place, problem))?;
        }
        p.check_own_limits().map_err(|problem| Error::input(place, problem))?;
        for (name, unit) in RESOURCES.iter().zip(RESOURCE_UNITS) {
            check_shown_throughput(name, unit, &p.fitted[*name]).map_err(|problem| Error::input(place, problem))?;
        }
        // Every statistic it shows, and its fit on its own data.
        for (what, stats) in [
            ("residuals", &p.residuals),
            ("cross_validation", &p.cross_validation),
            ("validation", &p.validation),
        ] {
            for (key, s) in stats {
                s.check(&format!("{what}.{key}"))
                    .map_err(|problem| Error::input(place, problem))?;
            }
        }
        if let Some(all) = p.residuals.get("all") {
            all.check_training_fit("residuals.all")
                .map_err(|problem| Error::input(place, problem))?;
        }
        Ok(p)
    }
}

fn kind_of(m: &super::measurements::Measurement) -> String {
    match &m.subject {
        Subject::Layer(_) => "layer".to_string(),
        Subject::Micro { kind, .. } => kind.clone(),
    }
}

/// One row per measurement: its work per bf16 resource (the base fit's columns).
fn design_matrix(model: &KernelAwareModel, rows: &[&super::measurements::Measurement]) -> DMatrix<f64> {
    let mut design = DMatrix::zeros(rows.len(), RESOURCES.len());
    for (i, m) in rows.iter().enumerate() {
        let row = match &m.subject {
            Subject::Layer(shape) => per_resource(model, shape),
            Subject::Micro { kernel, .. } => model.micro_work(kernel),
        };
        for (j, w) in row.iter().take(RESOURCES.len()).enumerate() {
            design[(i, j)] = *w;
        }
    }
    design
}

/// A layer's work summed per resource (every resource, precision ones
/// included): one row of a fit's design matrix.
pub(crate) fn per_resource(model: &KernelAwareModel, shape: &LayerShape) -> Vec<f64> {
    let work = work_matrix(model, std::slice::from_ref(shape));
    let mut row = vec![0.0; ALL_RESOURCES.len()];
    for (c, (_, r)) in model.columns().iter().enumerate() {
        row[*r] += work[(0, c)];
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::measurements::Measurement;
    use crate::cost::kernel_aware::MicroKernel;

    /// Layers and kernels timed by a made-up GPU whose every throughput is known.
    fn synthetic(truth: &[f64]) -> MeasurementSet {
        let model = KernelAwareModel::new(132, test_limits().ridge_flops_per_byte());
        let mut subjects = Vec::new();
        for (i, d) in [512u64, 1000, 1536, 2048, 3000, 4096].into_iter().enumerate() {
            for (j, dh) in [64u64, 100, 128, 256].into_iter().enumerate() {
                let h = (d / dh).max(1);
                let kv = if h % 4 == 0 { h / 4 } else { h };
                let window = [None, Some(512), Some(2048)][(i + j) % 3];
                let f = [4 * d, 3 * d + 5, 8 * d / 3][(i * j) % 3];
                let s = [256u64, 1024, 4096][(i + 2 * j) % 3];
                let layer = LayerShape {
                    hidden_dim: d,
                    num_heads: h,
                    num_kv_heads: kv,
                    head_dim: dh,
                    ffn_dim: f,
                    seq_len: s,
                    batch_size: 1 + (i as u64 % 2),
                    use_qk_norm: (i + j) % 2 == 0,
                    window_size: window,
                    model: crate::model::ModelDims::NONE,
                    precision: crate::precision::Precision::BF16,
                    arch: crate::arch::Architecture::NONE,
                };
                subjects.push(Subject::Layer(Box::new(layer)));
            }
        }
        for m in [64u64, 1000, 4096] {
            subjects.push(Subject::Micro {
                kind: "gemm".into(),
                kernel: MicroKernel::Gemm { m, n: 4099, k: 1024 },
            });
        }
        let t = nalgebra::DVector::from_vec(truth.to_vec());
        let measurements = subjects
            .into_iter()
            .enumerate()
            .map(|(i, subject)| {
                let work = match &subject {
                    Subject::Layer(s) => per_resource(&model, s)[..RESOURCES.len()].to_vec(),
                    Subject::Micro { kernel, .. } => model.micro_work(kernel),
                };
                let ms = nalgebra::DVector::from_vec(work).dot(&t);
                Measurement {
                    origin: format!("synthetic:{i}"),
                    gpu: "Test GPU".into(),
                    sm_count: 132,
                    set: "train".into(),
                    subject,
                    median_ms: ms,
                }
            })
            .collect();
        MeasurementSet {
            measurements,
            failed_records: 0,
            sha256: "0".repeat(64),
            files: vec!["synthetic".into()],
        }
    }

    /// A made-up GPU's peaks (the synthetic records name "Test GPU").
    fn test_limits() -> PhysicalLimits {
        PhysicalLimits {
            hbm_gbps: 3350.0,
            dense_bf16_tflops: 989.4,
            dense_fp8_tflops: None,
            source: "test".into(),
        }
    }

    const PER_FLOP: fn(f64) -> f64 = |tflops| 1.0 / (tflops * 1e9);
    const PER_BYTE: fn(f64) -> f64 = |gbps| 1.0 / (gbps * 1e6);

    /// Every throughput below its peak: 700 TFLOP/s GEMMs, ..., 3 us per launch.
    fn truth() -> [f64; 11] {
        [
            PER_FLOP(700.0),
            PER_FLOP(300.0),
            PER_BYTE(2500.0),
            PER_FLOP(550.0),
            PER_FLOP(450.0),
            PER_FLOP(200.0),
            PER_FLOP(400.0),
            PER_FLOP(250.0),
            PER_BYTE(500.0),
            PER_BYTE(3000.0),
            3e-3,
        ]
    }

    #[test]
    fn the_fit_recovers_known_throughputs() {
        let truth = truth();
        let data = synthetic(&truth);
        let (profile, rows) = CalibrationProfile::fit(&data, &["validation"], Some(test_limits())).unwrap();
        for r in &rows {
            assert!(r.relative_error().abs() < 1e-6, "{r:?}");
        }
        for (name, want) in RESOURCES.iter().zip(truth) {
            let got = profile.fitted[*name].ms_per_unit;
            assert!((got - want).abs() <= 1e-4 * want, "{name}: {got} vs {want}");
        }
        assert!((profile.fitted["gemm_flops"].throughput - 700.0).abs() < 0.1);
        assert!(profile.fallbacks.is_empty());
        assert!(profile.cross_validation["leave_one_out"].mape_pct < 1e-4);
        assert!(profile.validation.is_empty());
        let back = CalibrationProfile::from_json(&profile.to_json().unwrap(), "p").unwrap();
        assert_eq!(back, profile);
    }

    #[test]
    fn a_truth_faster_than_the_hardware_is_fitted_at_the_bound() {
        // elementwise bytes at 6000 GB/s on a 3350 GB/s GPU: the fit stops at 3350.
        let mut truth = truth();
        truth[9] = PER_BYTE(6000.0);
        let (profile, _) = CalibrationProfile::fit(&synthetic(&truth), &[], Some(test_limits())).unwrap();
        let e = &profile.fitted["elementwise_bytes"];
        assert!((e.throughput - 3350.0).abs() < 1e-6, "{e:?}");
        assert!(profile.at_limit("elementwise_bytes") && !profile.at_limit("gemm_flops"));
        for (name, bound) in RESOURCES.iter().zip(RESOURCE_BOUNDS) {
            if let Some(unit) = bound {
                assert!(profile.fitted[*name].ms_per_unit >= test_limits().min_ms_per_unit(unit) * (1.0 - 1e-9));
            }
        }
    }

    #[test]
    fn held_out_sets_are_predicted_not_fitted() {
        let truth = truth();
        let mut data = synthetic(&truth);
        for m in data.measurements.iter_mut().step_by(5) {
            m.set = "validation".into();
            m.median_ms *= 1.1; // 10% slower than the model: a fit on them would move
        }
        let (profile, rows) = CalibrationProfile::fit(&data, &["validation"], Some(test_limits())).unwrap();
        let held = &profile.validation["validation"];
        assert_eq!(
            held.rows,
            data.measurements.iter().filter(|m| m.set == "validation").count()
        );
        assert_eq!(rows.len() + held.rows, data.measurements.len());
        assert!((held.mape_pct - 100.0 / 11.0).abs() < 1e-3, "{held:?}");
        assert!(profile.residuals["all"].mape_pct < 1e-4);
        let text = profile.to_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["validation"]["validation"]["mape_pct"].is_number());
        // an older profile without the new keys still reads
        let mut old = v.clone();
        for key in ["validation", "cross_validation", "limits"] {
            old.as_object_mut().unwrap().remove(key);
        }
        let back = CalibrationProfile::from_json(&old.to_string(), "old.json").unwrap();
        assert!(back.validation.is_empty() && back.limits.is_none());
    }

    #[test]
    fn unknown_gpus_need_limits_and_known_ones_find_theirs() {
        let data = synthetic(&truth());
        let e = CalibrationProfile::fit(&data, &[], None).unwrap_err().to_string();
        assert!(
            e.contains("no spec sheet is built in for `Test GPU`") && e.contains("--hbm-gbps"),
            "{e}"
        );
        let mut h200 = data.clone();
        for m in h200.measurements.iter_mut() {
            m.gpu = "NVIDIA H200".into();
        }
        let (profile, _) = CalibrationProfile::fit(&h200, &[], None).unwrap();
        assert_eq!(profile.limits.as_ref().unwrap().hbm_gbps, 4800.0);
    }

    #[test]
    fn shown_throughputs_must_match_their_ms_per_unit() {
        let (profile, _) = CalibrationProfile::fit(&synthetic(&truth()), &[], Some(test_limits())).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&profile.to_json().unwrap()).unwrap();
        for bad in [
            serde_json::json!(-700.0),
            serde_json::json!(1e-310),
            serde_json::json!(7000.0),
        ] {
            v["fitted"]["gemm_flops"]["throughput"] = bad;
            let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("`gemm_flops.throughput` =") && e.contains("does not match its `ms_per_unit`"),
                "{e}"
            );
        }
    }

    #[test]
    fn profiles_faster_than_the_hardware_are_rejected() {
        let (profile, _) = CalibrationProfile::fit(&synthetic(&truth()), &[], Some(test_limits())).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&profile.to_json().unwrap()).unwrap();
        // 12,696 GB/s, as kernel_aware_v1 fitted on the H200, on a 3350 GB/s GPU
        v["fitted"]["elementwise_bytes"]["ms_per_unit"] = serde_json::json!(PER_BYTE(12696.0));
        let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.json")
                && e.contains("`elementwise_bytes` = 12696.0 GB/s is faster than the physical limit 3350.0 GB/s"),
            "{e}"
        );
        v["fitted"]["elementwise_bytes"]["ms_per_unit"] = serde_json::json!(0.0);
        let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("infinite GB/s"), "{e}");
        // without limits of its own, a profile of a known GPU is checked against its spec sheet
        v["fitted"]["elementwise_bytes"]["ms_per_unit"] = serde_json::json!(PER_BYTE(4000.0));
        v["fitted"]["elementwise_bytes"]["throughput"] = serde_json::json!(4000.0);
        v.as_object_mut().unwrap().remove("limits");
        let back = CalibrationProfile::from_json(&v.to_string(), "p.json");
        assert!(back.is_ok(), "{back:?}");
        v["gpu"] = serde_json::json!("NVIDIA H100 80GB HBM3");
        let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("4000.0 GB/s is faster than the physical limit 3350.0 GB/s"),
            "{e}"
        );
        let p: CalibrationProfile = serde_json::from_value(v).unwrap();
        assert!(p.check_physical(&crate::gpu::spec_sheet::H200).is_ok());
        assert!(p.check_physical(&crate::gpu::spec_sheet::H100).is_err());
        // the whole-model bandwidth never exceeds HBM
        let mut p = p;
        p.fitted.get_mut("elementwise_bytes").unwrap().throughput = 9000.0;
        assert_eq!(p.step_throughputs().unwrap().bandwidth_gbps, 3350.0);
    }

    #[test]
    fn profiles_with_missing_or_bad_values_are_rejected() {
        let (profile, _) = CalibrationProfile::fit(&synthetic(&truth()), &[], Some(test_limits())).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&profile.to_json().unwrap()).unwrap();
        v["fitted"]["gemm_flops"]["ms_per_unit"] = serde_json::json!(-1.0);
        let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.json") && e.contains("gemm_flops"), "{e}");
        v["fitted"].as_object_mut().unwrap().remove("gemm_flops");
        let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing fitted resource `gemm_flops`"), "{e}");
        let e = CalibrationProfile::from_json("{}", "p.json").unwrap_err().to_string();
        assert!(e.contains("not a calibration profile"), "{e}");
    }

    #[test]
    fn too_few_measurements_is_an_error() {
        let mut data = synthetic(&truth());
        data.measurements.truncate(5);
        let e = CalibrationProfile::fit(&data, &[], Some(test_limits()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("5 measurements to fit 11 throughputs"), "{e}");
    }
}
