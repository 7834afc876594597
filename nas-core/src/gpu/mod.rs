//! GPUs: a spec sheet (the physical limits) plus the cost model a GPU is
//! evaluated with, and the one registry every path asks for them.
//!
//! A search names its GPUs with [`GpuTarget`]s (a key, the cost model asked
//! for, and for a GPU of the user's own its figures); the [`Registry`]
//! resolves each into a [`Gpu`]. There is no silent fallback: asking for the
//! measured model of a GPU without a measured profile is an error that names
//! the GPU and the way out.

pub mod kernel_query;
pub mod registry;
pub mod spec_sheet;

use std::borrow::Cow;
use std::sync::Arc;

use nalgebra::DMatrix;
use serde::Serialize;

use crate::calibrate::CalibrationProfile;
use crate::cost::{KernelTimes, LatencyMatrix, LayerModel, SeedModel};
use crate::error::{hint, Error, Result};
use crate::hardware::Throughputs;
use crate::model::StepThroughputs;
use crate::shapes::LayerShape;

pub use kernel_query::{GemmDtype, KernelAnswer, KernelQuery};
pub use registry::{GpuTarget, OwnGpu, Registry, RegistryEntry};
pub use spec_sheet::{PeakUnit, SpecSheet};

/// Which cost model a GPU is evaluated with: the same word in the DSL
/// (`cost_model: measured`), the JSON spec and the CLI (`--cost-model`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CostModelKind {
    /// The kernel-aware model with throughputs fitted to this GPU's
    /// measurements (the default).
    #[default]
    Measured,
    /// The seed tool's formula with its hand-set constants (parity mode).
    Seed,
}

impl CostModelKind {
    pub const ALL: [CostModelKind; 2] = [CostModelKind::Measured, CostModelKind::Seed];

    pub fn name(self) -> &'static str {
        match self {
            CostModelKind::Measured => "measured",
            CostModelKind::Seed => "seed",
        }
    }

    /// `measured` or `seed`; anything else is an error with a hint.
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        CostModelKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown cost model `{name}`{}; known: measured, seed",
                    hint(name, CostModelKind::ALL.map(|k| k.name()))
                )
            })
    }
}

/// A measured profile and where it was read from (an embedded file of the
/// repository, or the user's file).
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredProfile {
    pub profile: Arc<CalibrationProfile>,
    /// `calibration/h100-sxm.json (built in)` or the user's path.
    pub source: Cow<'static, str>,
}

/// How a GPU's latencies are computed.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuCost {
    /// The seed's formula (SEED-MODEL.md) with these throughputs.
    Seed {
        throughputs: Throughputs,
        /// Where the throughputs come from, in one sentence.
        provenance: Cow<'static, str>,
    },
    /// The kernel-aware model with a fitted profile.
    Measured(MeasuredProfile),
}

/// One GPU as a search evaluates it: what it is, and how its latencies are computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpu {
    /// Short key used in specs, reports and the CLI (`h100`).
    pub key: Cow<'static, str>,
    /// Name shown to people (`H100`).
    pub label: Cow<'static, str>,
    pub spec: SpecSheet,
    pub cost: GpuCost,
}

impl Gpu {
    pub fn cost_model(&self) -> CostModelKind {
        match self.cost {
            GpuCost::Seed { .. } => CostModelKind::Seed,
            GpuCost::Measured(_) => CostModelKind::Measured,
        }
    }

    /// Memory capacity (GiB) for memory-fit constraints.
    pub fn memory_gib(&self) -> Option<f64> {
        self.spec.memory_gib
    }

    /// The layer model this GPU's latencies come from.
    pub fn layer_model(&self) -> LayerModel {
        match &self.cost {
            GpuCost::Seed { .. } => LayerModel::Seed,
            GpuCost::Measured(m) => LayerModel::KernelAware(m.profile.model()),
        }
    }

    /// This GPU's inverse throughputs, one per resource of [`Gpu::layer_model`].
    pub fn inverse_throughputs(&self) -> DMatrix<f64> {
        match &self.cost {
            GpuCost::Seed { throughputs, .. } => SeedModel::inverse_throughputs(std::slice::from_ref(throughputs)),
            GpuCost::Measured(m) => m.profile.inverse_throughputs(),
        }
    }

    /// Throughputs of whole-model prefill and decode steps.
    pub fn step_throughputs(&self) -> Result<StepThroughputs> {
        match &self.cost {
            GpuCost::Seed { throughputs, .. } => Ok(StepThroughputs::seed(throughputs)),
            GpuCost::Measured(m) => m.profile.step_throughputs().ok_or_else(|| {
                Error::Hardware(format!(
                    "hardware `{}`: the measured profile {} has no fitted memory, GEMM or attention throughput \
                     for whole-model steps",
                    self.key, m.source
                ))
            }),
        }
    }

    /// Whether this GPU runs and prices `precision`: its tensor cores must
    /// support it ([`crate::precision::check_supported`]), and its cost model
    /// must price it (the seed's formula is bf16 only; a measured profile
    /// needs its precision section for fp8 or int4 weights).
    pub fn check_precision(&self, precision: &crate::precision::Precision) -> Result<()> {
        if precision.is_bf16() {
            return Ok(());
        }
        crate::precision::check_supported(&self.spec, &self.key, precision).map_err(Error::Hardware)?;
        match &self.cost {
            GpuCost::Seed { .. } => Err(Error::Hardware(format!(
                "hardware `{}` under the seed cost model prices bf16 only (the seed tool's formula has no \
                 precision): ask for the measured cost model (`cost_model: measured`, `--cost-model measured`) \
                 to price {}",
                self.key,
                precision.label()
            ))),
            GpuCost::Measured(m) => m.profile.precision_ready(precision).map_err(|e| {
                Error::Hardware(format!(
                    "hardware `{}`: the measured profile {}: {e}",
                    self.key, m.source
                ))
            }),
        }
    }

    /// Where this GPU's prices for `precision` come from, in one line (for
    /// reports): measured, transferred, or estimated.
    pub fn precision_provenance(&self, precision: &crate::precision::Precision) -> Option<String> {
        if precision.is_bf16() {
            return None;
        }
        let GpuCost::Measured(m) = &self.cost else {
            return None;
        };
        let p = m.profile.precision.as_ref()?;
        let mut parts = Vec::new();
        if !precision.weights.is_bf16() {
            let how = match &p.transferred_from {
                Some(from) => format!(
                    "{} weights: transferred from {from} through the two spec sheets, not measured on this GPU",
                    precision.weights
                ),
                None => {
                    let v = |k: &str| {
                        p.residuals
                            .get(k)
                            .map_or("n/a".to_string(), |r| format!("{:.2}%", r.mape_pct))
                    };
                    format!(
                        "{} weights: fitted on {} (held-out MAPE: fp8 layers {}, fp8 decode {}, int4 decode {})",
                        precision.weights,
                        m.profile.gpu,
                        v("layer_validation"),
                        v("decode_fp8_validation"),
                        v("decode_int4_validation")
                    )
                }
            };
            parts.push(how);
            if precision.weights == crate::precision::WeightPrecision::Int4 {
                parts.push(format!("int4 prefill {}", p.int4_prefill));
            }
        }
        if !precision.kv_cache.is_bf16() {
            parts.push(format!("fp8 KV cache {}", p.kv_cache_fp8));
        }
        Some(parts.join("; "))
    }

    /// The seed throughputs, for the seed's calibration DB overrides; `None`
    /// under the measured model.
    pub fn seed_throughputs(&self) -> Option<&Throughputs> {
        match &self.cost {
            GpuCost::Seed { throughputs, .. } => Some(throughputs),
            GpuCost::Measured(_) => None,
        }
    }

    /// The same GPU with some seed throughputs replaced (no effect on a measured GPU).
    pub fn with_overrides(&self, overrides: &crate::hardware::Overrides) -> Gpu {
        match &self.cost {
            GpuCost::Seed {
                throughputs,
                provenance,
            } if !overrides.is_empty() => Gpu {
                cost: GpuCost::Seed {
                    throughputs: throughputs.apply(overrides),
                    provenance: provenance.clone(),
                },
                ..self.clone()
            },
            _ => self.clone(),
        }
    }

    /// Where this GPU's numbers come from, for every report.
    pub fn provenance(&self) -> CostProvenance {
        match &self.cost {
            GpuCost::Seed { provenance, .. } => CostProvenance {
                hardware: self.key.to_string(),
                cost_model: CostModelKind::Seed.name(),
                source: provenance.to_string(),
                profile: None,
                measured_on: None,
                data_sha256: None,
                validation: None,
                decode: "roofline of the seed's constants: bytes at hbm_bandwidth_gbps, FLOPs at \
                         matmul/attention throughput, no cost per kernel; not measured"
                    .into(),
                precision: None,
            },
            GpuCost::Measured(m) => {
                let p = &m.profile;
                let decode = match (&p.decode_model, &p.decode) {
                    (Some(d), _) => {
                        let held_out = d.residuals.get("validation").map_or_else(
                            || "no held-out models".to_string(),
                            |v| format!("held-out MAPE {:.2}% on {} steps", v.mape_pct, v.rows),
                        );
                        match &d.transferred_from {
                            Some(from) => format!(
                                "kernel-aware decode model transferred from {from} through the two spec sheets \
                                 (bandwidth terms scaled by HBM, fixed latencies kept): not measured on this GPU; \
                                 on its own GPU {held_out}"
                            ),
                            None => format!(
                                "kernel-aware decode model fitted on compiled decode steps of {} ({held_out})",
                                d.trained_on.join(", ")
                            ),
                        }
                    }
                    (None, Some(d)) => format!(
                        "bandwidth and cost per kernel fitted on eager decode steps of {} (validation MAPE {}), \
                         a slower truth than a compiled step",
                        d.trained_on.join(", "),
                        d.validation_mape_pct
                            .map_or_else(|| "not measured".to_string(), |v| format!("{v:.2}%"))
                    ),
                    (None, None) => "no decode steps measured on this GPU: roofline of the layer fit's memory-bound \
                                     bandwidth and GEMM/attention throughputs (not validated on decode)"
                        .to_string(),
                };
                CostProvenance {
                    hardware: self.key.to_string(),
                    cost_model: CostModelKind::Measured.name(),
                    source: format!(
                        "kernel-aware model fitted on {} layer records of set(s) {} measured on {}",
                        p.data.records_used,
                        p.data.sets_used.join(", "),
                        p.gpu
                    ),
                    profile: Some(m.source.to_string()),
                    measured_on: Some(p.gpu.clone()),
                    data_sha256: Some(p.data.sha256.clone()),
                    validation: p.held_out(),
                    decode,
                    precision: p.precision.as_ref().map(|x| match &x.transferred_from {
                        Some(from) => format!(
                            "fp8 and int4 weights: transferred from {from} through the two spec sheets (bytes by HBM, \
                             FLOPs by the dense peaks, fixed costs kept), not measured on this GPU; fp8 KV cache {}",
                            x.kv_cache_fp8
                        ),
                        None => {
                            let v = |k: &str| {
                                x.residuals.get(k).map_or("n/a".to_string(), |r| format!("{:.2}%", r.mape_pct))
                            };
                            format!(
                                "fp8 and int4 weights: fitted on {}'s fp8 layers, fp8/int4 decode steps and GEMMs with the \
                                 bf16 constants fixed (held-out MAPE: fp8 layers {}, fp8 decode {}, int4 decode {}); \
                                 int4 prefill {}; fp8 KV cache {}",
                                p.gpu,
                                v("layer_validation"),
                                v("decode_fp8_validation"),
                                v("decode_int4_validation"),
                                x.int4_prefill,
                                x.kv_cache_fp8
                            )
                        }
                    }),
                }
            }
        }
    }
}

/// Where one GPU's predictions come from: in every pack and in `predict`
/// and `search` output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostProvenance {
    pub hardware: String,
    /// `measured` or `seed`.
    pub cost_model: &'static str,
    /// What produced the numbers, in one sentence.
    pub source: String,
    /// The measured profile's file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The GPU the profile's data was measured on, as its driver named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_on: Option<String>,
    /// SHA-256 of the measurement files fitted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// Error on held-out layers never fitted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::calibrate::profile::HeldOut>,
    /// How whole-model decode steps are predicted.
    pub decode: String,
    /// How fp8 and int4 weights and an fp8 KV cache are priced (measured,
    /// transferred or estimated); absent where only bf16 is priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

impl CostProvenance {
    /// One line for people: `h100: measured (calibration/h100-sxm.json; held-out MAPE 4.72% on 28 layers)`.
    pub fn summary(&self) -> String {
        match (&self.profile, &self.validation) {
            (Some(profile), Some(v)) => format!(
                "{}: {} ({profile}; {}; held-out MAPE {:.2}%, {:.1}% within ±10% on {} layers)",
                self.hardware, self.cost_model, self.source, v.mape_pct, v.within_10_pct, v.rows
            ),
            (Some(profile), None) => format!(
                "{}: {} ({profile}; {}; no held-out layers)",
                self.hardware, self.cost_model, self.source
            ),
            _ => format!("{}: {} ({})", self.hardware, self.cost_model, self.source),
        }
    }
}

/// Every shape's prefill-layer latency on every GPU: GPUs that share a layer
/// model share one work matrix (`W * T` with one column per GPU), so the seed's
/// GPUs are evaluated exactly as the seed evaluates them.
pub struct Latencies {
    groups: Vec<LatencyMatrix>,
    /// Per GPU: (group, column).
    at: Vec<(usize, usize)>,
}

impl Latencies {
    /// Evaluates validated `shapes` on `gpus`.
    pub fn new(gpus: &[Gpu], shapes: &[LayerShape]) -> Self {
        let mut models: Vec<LayerModel> = Vec::new();
        let mut at = Vec::with_capacity(gpus.len());
        for gpu in gpus {
            let model = gpu.layer_model();
            let group = models.iter().position(|m| *m == model).unwrap_or_else(|| {
                models.push(model);
                models.len() - 1
            });
            let column = at.iter().filter(|(g, _)| *g == group).count();
            at.push((group, column));
        }
        let groups = models
            .iter()
            .enumerate()
            .map(|(group, model)| {
                let columns: Vec<DMatrix<f64>> = gpus
                    .iter()
                    .zip(&at)
                    .filter(|(_, a)| a.0 == group)
                    .map(|(g, _)| g.inverse_throughputs())
                    .collect();
                let rows = columns.first().map_or(0, |c| c.nrows());
                let inverse = DMatrix::from_fn(rows, columns.len(), |r, c| columns[c][(r, 0)]);
                LatencyMatrix::new(*model, shapes, &inverse)
            })
            .collect();
        Latencies { groups, at }
    }

    pub fn total_ms(&self, i: usize, g: usize) -> f64 {
        let (group, column) = self.at[g];
        self.groups[group].total_ms(i, column)
    }

    pub fn kernels(&self, i: usize, g: usize) -> KernelTimes {
        let (group, column) = self.at[g];
        self.groups[group].kernels(i, column)
    }
}
