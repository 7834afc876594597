//! A calibration profile: the kernel-aware model's throughputs fitted to one
//! GPU's measurements, with where the data came from and how well it fits.

use std::collections::BTreeMap;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::cost::kernel_aware::{KernelAwareModel, Unit, RESOURCES, RESOURCE_UNITS};
use crate::cost::{work_matrix, CostModel, LatencyMatrix, LayerModel};
use crate::error::{Error, Result};
use crate::model::StepThroughputs;
use crate::shapes::LayerShape;

use super::fit::fit_relative;
use super::measurements::{MeasurementSet, Subject, MAX_SM_COUNT};

/// Name of the model a profile belongs to.
pub const MODEL: &str = "kernel_aware_v1";

/// Largest cost per unit of work a profile may give: a second per FLOP, byte
/// or launch. Real ones are about 1e-12 (FLOPs) to 5e-3 (launches); the cap
/// keeps every prediction of a valid shape finite.
pub const MAX_MS_PER_UNIT: f64 = 1e3;

/// Resources that borrow a related resource's value when no measurement
/// exercises them (say, no misaligned GEMM was timed).
const FALLBACKS: [(&str, &str); 6] = [
    ("gemm_misaligned_flops", "gemm_flops"),
    ("attention_small_head_flops", "attention_flops"),
    ("attention_fallback_flops", "attention_flops"),
    ("attention_window_flops", "attention_flops"),
    ("attention_window_wide_head_flops", "attention_window_flops"),
    ("qk_norm_bytes", "elementwise_bytes"),
];

/// One fitted resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedResource {
    /// Milliseconds per unit of work (FLOP, byte or launch): what the model multiplies by.
    pub ms_per_unit: f64,
    /// The same as people read it: TFLOP/s, GB/s, or microseconds per launch.
    pub throughput: f64,
    pub unit: String,
}

/// How well a model matches measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// Where the fitted data came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Decode throughputs fitted to measured decode steps, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<super::decode::DecodeFit>,
    /// Residuals on each measurement set left out of the fit (`validation`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub validation: BTreeMap<String, ResidualStats>,
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

fn throughput(unit: Unit, ms_per_unit: f64) -> (f64, &'static str) {
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
    /// memory-bound kernels (`elementwise_bytes`), GEMM and attention FLOPs
    /// (`gemm_flops`, `attention_flops`) and the cost of one launch; the
    /// bandwidth and launch cost of measured decode steps when fitted.
    pub fn step_throughputs(&self) -> Option<StepThroughputs> {
        let get = |name: &str| self.fitted.get(name).map(|f| f.throughput).filter(|t| *t > 0.0);
        let layer = StepThroughputs {
            bandwidth_gbps: get("elementwise_bytes")?,
            matmul_tflops: get("gemm_flops")?,
            attention_tflops: get("attention_flops")?,
            launch_ms: self.fitted.get("kernel_launch").map_or(0.0, |f| f.ms_per_unit),
        };
        Some(match &self.decode {
            Some(decode) => decode.step(&layer),
            None => layer,
        })
    }

    /// Fits the kernel-aware model to every measurement whose set is not in
    /// `exclude_sets` (the validation set, normally). Returns the profile and
    /// each fitted row's residual.
    pub fn fit(data: &MeasurementSet, exclude_sets: &[&str]) -> Result<(Self, Vec<FitRow>)> {
        let used: Vec<_> = data
            .measurements
            .iter()
            .filter(|m| !exclude_sets.contains(&m.set.as_str()))
            .collect();
        if used.len() < RESOURCES.len() {
            return Err(Error::Spec(format!(
                "{} measurements to fit {} throughputs: measure more shapes",
                used.len(),
                RESOURCES.len()
            )));
        }
        let model = KernelAwareModel {
            sm_count: data.measurements[0].sm_count,
        };
        let design = DMatrix::from_fn(used.len(), RESOURCES.len(), |_, _| 0.0);
        let mut design = design;
        for (i, m) in used.iter().enumerate() {
            let row = match &m.subject {
                Subject::Layer(shape) => per_resource(&model, shape),
                Subject::Micro { kernel, .. } => model.micro_work(kernel),
            };
            for (j, w) in row.iter().enumerate() {
                design[(i, j)] = *w;
            }
        }
        let y: Vec<f64> = used.iter().map(|m| m.median_ms).collect();
        let t = fit_relative(&design, &y);

        let mut values: Vec<f64> = t.iter().copied().collect();
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

        let predicted = &design * nalgebra::DVector::from_vec(values.clone());
        let rows: Vec<FitRow> = used
            .iter()
            .enumerate()
            .map(|(i, m)| FitRow {
                origin: m.origin.clone(),
                kind: match &m.subject {
                    Subject::Layer(_) => "layer".to_string(),
                    Subject::Micro { kind, .. } => kind.clone(),
                },
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
            .map(|((name, unit), &ms)| {
                let (value, unit) = throughput(unit, ms);
                (
                    name.to_string(),
                    FittedResource {
                        ms_per_unit: ms,
                        throughput: value,
                        unit: unit.to_string(),
                    },
                )
            })
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
            decode: None,
            validation: held_out_residuals(data, exclude_sets, &model, &values),
        };
        Ok((profile, rows))
    }

    /// The model this profile parameterizes.
    pub fn model(&self) -> KernelAwareModel {
        KernelAwareModel {
            sm_count: self.sm_count,
        }
    }

    /// Inverse throughputs as the R x 1 matrix `LatencyMatrix` takes.
    pub fn inverse_throughputs(&self) -> DMatrix<f64> {
        DMatrix::from_fn(RESOURCES.len(), 1, |r, _| {
            self.fitted.get(RESOURCES[r]).map_or(0.0, |f| f.ms_per_unit)
        })
    }

    /// Predictions for validated shapes on this GPU.
    pub fn predict(&self, shapes: &[LayerShape]) -> LatencyMatrix {
        LatencyMatrix::new(
            LayerModel::KernelAware(self.model()),
            shapes,
            &self.inverse_throughputs(),
        )
    }

    pub fn to_json(&self) -> Result<String> {
        let value = serde_json::to_value(self).map_err(|e| Error::Spec(format!("serializing the profile: {e}")))?;
        let mut text = serde_json::to_string_pretty(&value).map_err(|e| Error::Spec(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }

    /// Reads a profile; `place` names it in errors. Every resource must be
    /// present with a finite, non-negative value.
    pub fn from_json(text: &str, place: &str) -> Result<Self> {
        let p: CalibrationProfile = serde_json::from_str(text).map_err(|e| {
            Error::input(
                place,
                format!("not a calibration profile: {}", crate::input::json_problem(&e)),
            )
        })?;
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
        Ok(p)
    }
}

/// Residuals of the fitted `values` on the records of each excluded set.
fn held_out_residuals(
    data: &MeasurementSet,
    exclude_sets: &[&str],
    model: &KernelAwareModel,
    values: &[f64],
) -> BTreeMap<String, ResidualStats> {
    let t = nalgebra::DVector::from_column_slice(values);
    let mut errors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for m in data
        .measurements
        .iter()
        .filter(|m| exclude_sets.contains(&m.set.as_str()))
    {
        let row = match &m.subject {
            Subject::Layer(shape) => per_resource(model, shape),
            Subject::Micro { kernel, .. } => model.micro_work(kernel),
        };
        let predicted = nalgebra::DVector::from_vec(row).dot(&t);
        errors
            .entry(m.set.clone())
            .or_default()
            .push((predicted - m.median_ms) / m.median_ms);
    }
    errors
        .into_iter()
        .map(|(set, e)| (set, ResidualStats::of(&e)))
        .collect()
}

/// A layer's work summed per resource: one row of the fit's design matrix.
fn per_resource(model: &KernelAwareModel, shape: &LayerShape) -> Vec<f64> {
    let work = work_matrix(model, std::slice::from_ref(shape));
    let mut row = vec![0.0; RESOURCES.len()];
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
        let model = KernelAwareModel { sm_count: 132 };
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
                };
                subjects.push(Subject::Layer(layer));
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
                    Subject::Layer(s) => per_resource(&model, s),
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

    #[test]
    fn the_fit_recovers_known_throughputs() {
        // ms per unit: 700 TFLOP/s GEMMs, 300 misaligned, ..., 3 us per launch.
        let per_flop = |tflops: f64| 1.0 / (tflops * 1e9);
        let per_byte = |gbps: f64| 1.0 / (gbps * 1e6);
        let truth = [
            per_flop(700.0),
            per_flop(300.0),
            per_flop(5000.0),
            per_byte(6000.0),
            per_flop(550.0),
            per_flop(450.0),
            per_flop(200.0),
            per_flop(400.0),
            per_flop(250.0),
            per_byte(500.0),
            per_byte(3000.0),
            per_byte(2000.0),
            3e-3,
        ];
        let data = synthetic(&truth);
        let (profile, rows) = CalibrationProfile::fit(&data, &["validation"]).unwrap();
        for r in &rows {
            assert!(r.relative_error().abs() < 1e-6, "{r:?}");
        }
        for (name, want) in RESOURCES.iter().zip(truth) {
            let got = profile.fitted[*name].ms_per_unit;
            assert!((got - want).abs() <= 1e-4 * want, "{name}: {got} vs {want}");
        }
        assert!((profile.fitted["gemm_flops"].throughput - 700.0).abs() < 0.1);
        assert!(profile.fallbacks.is_empty());
        let back = CalibrationProfile::from_json(&profile.to_json().unwrap(), "p").unwrap();
        assert_eq!(back, profile);
    }

    #[test]
    fn profiles_with_missing_or_bad_values_are_rejected() {
        let truth = [1e-12; 13];
        let (profile, _) = CalibrationProfile::fit(&synthetic(&truth), &[]).unwrap();
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
        let mut data = synthetic(&[1e-12; 13]);
        data.measurements.truncate(5);
        let e = CalibrationProfile::fit(&data, &[]).unwrap_err().to_string();
        assert!(e.contains("5 measurements to fit 13 throughputs"), "{e}");
    }
}
