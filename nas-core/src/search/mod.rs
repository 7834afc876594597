//! Searches: candidates (fixed and from families), constraints, rankings,
//! kernel-cliff sweeps, and their evaluation into a [`Pack`].

pub mod constraints;
pub mod family;
pub mod search_report;
pub mod seed;
pub mod spec_builder;
pub mod spec_json;
pub mod stream;
pub mod whole_model;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::calibrate::CalibrationBlock;
use crate::cost::{tile_efficiency, TilePenalties};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Latencies};
use crate::report::{
    CatalogEntry, CliffPoint, CliffReport, Comparison, ConstrainedEntry, Environment, GeneratedSearchReport,
    HardwareReport, HardwareSummary, Pack, PackSummary, RankEntry, Rankings, SCHEMA_VERSION,
};
use crate::shapes::{Candidate, LayerShape};

use constraints::{ConstraintReport, Constraints, Proxies};

/// What a ranking orders by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankMetric {
    TotalMs,
    /// total_ms per million of D*F: latency per unit of size.
    MsPerMparamProxy,
    /// Whole-model prefill on the GPU (time to first token), lower first.
    PrefillMs,
    /// One whole-model decode step on the GPU, lower first.
    DecodeMs,
    /// batch_size / the decode step in seconds, higher first.
    DecodeTokensPerS,
}

impl RankMetric {
    pub const ALL: [RankMetric; 5] = [
        RankMetric::TotalMs,
        RankMetric::MsPerMparamProxy,
        RankMetric::PrefillMs,
        RankMetric::DecodeMs,
        RankMetric::DecodeTokensPerS,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RankMetric::TotalMs => "total_ms",
            RankMetric::MsPerMparamProxy => "ms_per_mparam_proxy",
            RankMetric::PrefillMs => "prefill_ms",
            RankMetric::DecodeMs => "decode_ms",
            RankMetric::DecodeTokensPerS => "decode_tokens_per_s",
        }
    }

    /// One of [`RankMetric::ALL`]; anything else is an error with a hint.
    pub fn from_name(name: &str) -> Result<Self> {
        RankMetric::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            Error::Spec(format!(
                "unknown ranking metric `{name}`{}; known: {}",
                crate::error::hint(name, RankMetric::ALL.map(|m| m.name())),
                RankMetric::ALL.map(|m| m.name()).join(", ")
            ))
        })
    }

    /// Whether the metric needs whole models (`num_layers` and `vocab_size`).
    pub fn is_whole_model(self) -> bool {
        matches!(
            self,
            RankMetric::PrefillMs | RankMetric::DecodeMs | RankMetric::DecodeTokensPerS
        )
    }

    /// The key a ranking sorts ascending: the metric, negated where higher
    /// is better (tokens per second). NaN (a plain layer's whole-model
    /// latency) sorts after every number.
    pub fn key(self, total_ms: f64, ms_per_mparam_proxy: f64, latency: &crate::model::StepLatency) -> f64 {
        let k = match self {
            RankMetric::TotalMs => total_ms,
            RankMetric::MsPerMparamProxy => ms_per_mparam_proxy,
            RankMetric::PrefillMs => latency.prefill_ms,
            RankMetric::DecodeMs => latency.decode_ms,
            RankMetric::DecodeTokensPerS => -latency.decode_tokens_per_s,
        };
        if k.is_nan() {
            f64::INFINITY
        } else {
            k
        }
    }
}

/// Indices of `values` in ascending order; ties keep their input order.
pub fn rank_order(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
}

/// The Pareto front of (latency, quality): indices of the points that no
/// other point beats on both (lower latency, higher quality), fastest first.
/// Equal points are all on it (neither beats the other); NaN quality never is.
pub fn pareto_front(latency: &[f64], quality: &[f64]) -> Vec<usize> {
    let n = latency.len().min(quality.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        latency[a]
            .total_cmp(&latency[b])
            .then(quality[b].total_cmp(&quality[a]))
    });
    let mut front: Vec<usize> = Vec::new();
    for i in order {
        let keep = match front.last() {
            None => !quality[i].is_nan(),
            Some(&j) => quality[i] > quality[j] || (quality[i] == quality[j] && latency[i] == latency[j]),
        };
        if keep {
            front.push(i);
        }
    }
    front
}

/// Which dimension a kernel-cliff sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CliffAxis {
    HiddenDim,
    FfnDim,
}

impl CliffAxis {
    pub fn name(self) -> &'static str {
        match self {
            CliffAxis::HiddenDim => "hidden_dim",
            CliffAxis::FfnDim => "ffn_dim",
        }
    }

    fn set(self, base: &LayerShape, value: u64) -> LayerShape {
        match self {
            CliffAxis::HiddenDim => LayerShape {
                hidden_dim: value,
                ..*base
            },
            CliffAxis::FfnDim => LayerShape {
                ffn_dim: value,
                ..*base
            },
        }
    }
}

/// Most points a cliff sweep may have (each is a candidate evaluated on
/// every GPU and listed in the report).
pub const MAX_SWEEP_POINTS: u64 = 10_000;

/// One dimension swept around a base shape, to show where tiles make cliffs.
#[derive(Clone, Debug, PartialEq)]
pub struct CliffSweep {
    pub axis: CliffAxis,
    pub base: LayerShape,
    pub values: Cow<'static, [u64]>,
}

/// A larger generated space of which only the top entries are reported.
/// It is streamed (`stream.rs`), never materialized, whatever its size.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedSearch {
    pub family: family::Family,
    pub workload: family::Workload,
    pub top_k: usize,
}

/// A complete search: what the `nas_search!` macro and `nas pack` build, and
/// what [`SearchSpec::evaluate`] turns into a pack.
#[derive(Clone, Debug)]
pub struct SearchSpec {
    pub candidates: Vec<Candidate>,
    /// The GPUs, each with the cost model it is evaluated with.
    pub hardware: Vec<Gpu>,
    pub constraints: Constraints,
    pub generated_search: Option<GeneratedSearch>,
    pub cliffs: Vec<CliffSweep>,
    pub calibration: CalibrationBlock,
    pub limitations: Vec<String>,
    /// The metric the search is ranked by (both rankings are always reported).
    pub rank_by: RankMetric,
}

/// The caveats of a pack on `gpus`: the seed's own when every GPU runs on
/// the seed's constants (parity), else those true of the measured model.
pub fn limitations_for(gpus: &[Gpu]) -> Vec<String> {
    if gpus.iter().all(|g| g.cost_model() == crate::gpu::CostModelKind::Seed) {
        return SEED_LIMITATIONS.iter().map(|s| s.to_string()).collect();
    }
    let mut out = vec![
        "Latencies are predictions of each GPU's cost model, not measurements of these candidates: a measured \
         profile predicts layers it never saw within its held-out error (see where the numbers come from)."
            .to_string(),
        "Quality constraints are size/capacity proxies until real training or eval measurements are added.".to_string(),
    ];
    if gpus.iter().any(|g| g.cost_model() == crate::gpu::CostModelKind::Seed) {
        out.push("GPUs on the seed cost model use hand-set constants, not measurements.".to_string());
    }
    out
}

/// The seed's caveats, true of every pack the seed model makes.
pub const SEED_LIMITATIONS: [&str; 3] = [
    "This is a latency proxy, not a measured model-quality or accuracy estimate.",
    "Quality constraints are size/capacity proxies until real training or eval measurements are added.",
    "Only A100 constants are calibrated from local persisted records when available.",
];

impl SearchSpec {
    fn generated_search_source(&self) -> String {
        self.generated_search
            .as_ref()
            .map_or_else(String::new, |g| g.family.source.to_string())
    }

    /// Checks everything evaluation relies on; the error names the culprit.
    pub fn check(&self) -> Result<()> {
        let mut names = BTreeSet::new();
        for c in &self.candidates {
            c.shape
                .validate()
                .map_err(|p| Error::shape(format!("candidate `{}`", c.name), p))?;
            if !names.insert(c.name.as_ref()) {
                return Err(Error::Spec(format!("two candidates are named `{}`", c.name)));
            }
        }
        let mut keys = BTreeSet::new();
        for h in &self.hardware {
            if !keys.insert(h.key.as_ref()) {
                return Err(Error::Spec(format!("hardware `{}` is listed twice", h.key)));
            }
            if let Some(t) = h.seed_throughputs() {
                t.check()
                    .map_err(|e| Error::Hardware(format!("hardware `{}`: {e}", h.key)))?;
            }
        }
        if self.hardware.is_empty() {
            return Err(Error::Spec("a search needs at least one hardware target".into()));
        }
        // Every precision a candidate asks for must run on every GPU.
        for c in &self.candidates {
            for h in &self.hardware {
                h.check_precision(&c.shape.precision)
                    .map_err(|e| Error::Spec(format!("candidate `{}`: {e}", c.name)))?;
            }
        }
        if let Some(g) = &self.generated_search {
            g.family.check()?;
            stream::check_precisions(&g.family, g.workload, &self.hardware)?;
        }
        for sweep in &self.cliffs {
            for &v in sweep.values.iter() {
                sweep
                    .axis
                    .set(&sweep.base, v)
                    .validate()
                    .map_err(|p| Error::shape(format!("{} sweep at {v}", sweep.axis.name()), p))?;
            }
        }
        self.constraints.check()
    }

    /// Every candidate on every GPU, ranked, as a pack.
    pub fn evaluate(&self) -> Result<Pack> {
        self.check()?;
        let profiles: Vec<Gpu> = self
            .hardware
            .iter()
            .map(|h| h.with_overrides(&self.calibration.overrides_for(&h.key)))
            .collect();

        let shapes: Vec<LayerShape> = self.candidates.iter().map(|c| c.shape).collect();
        let latency = Latencies::new(&profiles, &shapes);
        let reports: Vec<ConstraintReport> = shapes.iter().map(|s| self.constraints.report(s)).collect();
        let proxies: Vec<Proxies> = shapes.iter().map(Proxies::of).collect();

        let generated = match &self.generated_search {
            Some(g) => {
                let spec = stream::StreamSpec {
                    family: &g.family,
                    workload: g.workload,
                    hardware: &profiles,
                    constraints: &self.constraints,
                    top_k: g.top_k,
                    rank_by: self.rank_by,
                };
                Some(stream::search(&spec, &|_| {})?)
            }
            None => None,
        };
        let cliffs: Vec<(&CliffSweep, Latencies)> = self
            .cliffs
            .iter()
            .map(|sweep| {
                let shapes: Vec<LayerShape> = sweep.values.iter().map(|&v| sweep.axis.set(&sweep.base, v)).collect();
                (sweep, Latencies::new(&profiles, &shapes))
            })
            .collect();

        let quality_constraints = self.constraints.describe();
        let mut source_counts = BTreeMap::new();
        for c in &self.candidates {
            *source_counts.entry(c.source.to_string()).or_insert(0) += 1;
        }

        let mut hardware_reports = BTreeMap::new();
        let mut summary = BTreeMap::new();
        let any_whole_model = shapes.iter().any(|s| crate::model::figures(s).is_some());
        for (g, profile) in profiles.iter().enumerate() {
            // Whole-model latencies on this GPU, and the constraints on it
            // (latency clauses hold per GPU; the catalog's report assumes them).
            let step_latency: Vec<crate::model::StepLatency> = if any_whole_model {
                let step = profile.step_throughputs()?;
                shapes
                    .iter()
                    .enumerate()
                    .map(|(i, s)| crate::model::step_latency(s, &step, latency.total_ms(i, g)))
                    .collect()
            } else {
                vec![crate::model::StepLatency::UNAVAILABLE; shapes.len()]
            };
            let gpu_reports: Vec<ConstraintReport> = if self.constraints.reads_latency() {
                shapes
                    .iter()
                    .zip(&step_latency)
                    .map(|(s, l)| self.constraints.report_on(s, Some(l)))
                    .collect()
            } else {
                reports.clone()
            };
            let ctx = GpuContext {
                g,
                candidates: &self.candidates,
                latency: &latency,
                reports: &gpu_reports,
                proxies: &proxies,
            };
            let total = ctx.ranking(RankMetric::TotalMs);
            let efficiency = ctx.ranking(RankMetric::MsPerMparamProxy);
            let constrained = ctx.constrained();
            let generated_report = generated
                .as_ref()
                .map(|result| generated_top(&result.per_gpu[g], &self.generated_search_source()))
                .unwrap_or_default();

            let hardware_summary = HardwareSummary {
                deep_narrow_unconstrained_rank: total.iter().find(|e| e.name == "deep_narrow").map(|e| e.rank),
                fastest_config: total.first().map(|e| e.name.clone()),
                fastest_generated_config: generated_report.total_ms_top.first().map(|e| e.name.clone()),
                fastest_generated_total_ms: generated_report.total_ms_top.first().map(|e| e.total_ms),
                fastest_total_ms: total.first().map(|e| e.total_ms),
                most_efficient_config: efficiency.first().map(|e| e.name.clone()),
                most_efficient_ms_per_mparam_proxy: efficiency.first().map(|e| e.ms_per_mparam_proxy),
                quality_constrained_candidate_count: constrained.len(),
                quality_constrained_fastest_config: constrained.first().map(|e| e.name.clone()),
                quality_constrained_fastest_total_ms: constrained.first().map(|e| e.total_ms),
            };
            summary.insert(
                profile.key.to_string(),
                PackSummary {
                    fastest_config: hardware_summary.fastest_config.clone(),
                    quality_constrained_candidate_count: constrained.len(),
                    quality_constrained_fastest_config: hardware_summary.quality_constrained_fastest_config.clone(),
                },
            );
            let report = HardwareReport {
                calibration: self.calibration.clone(),
                candidate_count: self.candidates.len(),
                candidate_source_counts: source_counts.clone(),
                comparison: (0..self.candidates.len()).map(|i| ctx.comparison(i)).collect(),
                environment: Environment::for_gpu(profile),
                experiment: "kernel_aware_nas".into(),
                generated_candidate_count: generated.as_ref().map_or(0, |r| r.valid as usize),
                generated_search: generated_report,
                hardware: profile.key.to_string(),
                kernel_cliffs: cliffs.iter().map(|(sweep, lat)| cliff_report(sweep, lat, g)).collect(),
                quality_constraints: quality_constraints.clone(),
                rankings: Rankings {
                    ms_per_mparam_proxy: efficiency,
                    quality_constrained_latency: constrained,
                    total_ms: total,
                },
                schema_version: SCHEMA_VERSION,
                summary: hardware_summary,
                whole_model: whole_model::report(&self.candidates, &latency, &gpu_reports, profile, g, self.rank_by)?,
            };
            hardware_reports.insert(profile.key.to_string(), report);
        }

        Ok(Pack {
            calibration: self.calibration.clone(),
            candidate_catalog: self
                .candidates
                .iter()
                .zip(&reports)
                .map(|(c, r)| CatalogEntry {
                    config: c.shape,
                    constraints: r.clone(),
                    model: crate::model::figures(&c.shape),
                    name: c.name.to_string(),
                    source: c.source.to_string(),
                })
                .collect(),
            candidate_count: self.candidates.len(),
            experiment: "kernel_aware_nas_multi_hardware".into(),
            hardware_profiles: profiles.iter().map(|p| p.key.to_string()).collect(),
            limitations: self.limitations.clone(),
            quality_constraints,
            reports: hardware_reports,
            schema_version: SCHEMA_VERSION,
            summary,
            whole_model_notes: whole_model::notes(&self.candidates, &profiles),
            constraints: self.constraints.clone(),
        })
    }
}

/// The candidates' numbers on one GPU, for building that GPU's report.
struct GpuContext<'a> {
    g: usize,
    candidates: &'a [Candidate],
    latency: &'a Latencies,
    reports: &'a [ConstraintReport],
    proxies: &'a [Proxies],
}

impl GpuContext<'_> {
    fn metric(&self, i: usize, metric: RankMetric) -> f64 {
        let total = self.latency.total_ms(i, self.g);
        match metric {
            RankMetric::MsPerMparamProxy => total / self.proxies[i].param_proxy_raw,
            // The layer rankings; whole models are ranked in `whole_model.rs`.
            _ => total,
        }
    }

    fn ranking(&self, metric: RankMetric) -> Vec<RankEntry> {
        let values: Vec<f64> = (0..self.candidates.len()).map(|i| self.metric(i, metric)).collect();
        rank_order(&values)
            .into_iter()
            .enumerate()
            .map(|(r, i)| {
                let mut e = rank_entry(&self.candidates[i], self.latency, i, self.g, r + 1);
                e.constraint_passes = Some(self.reports[i].passes);
                e.quality_proxy = Some(self.reports[i].quality_proxy);
                e
            })
            .collect()
    }

    /// Passing candidates by (total_ms, -quality_proxy, name).
    fn constrained(&self) -> Vec<ConstrainedEntry> {
        let mut passing: Vec<usize> = (0..self.candidates.len()).filter(|&i| self.reports[i].passes).collect();
        passing.sort_by(|&a, &b| {
            let key = |i: usize| (self.latency.total_ms(i, self.g), -self.reports[i].quality_proxy);
            let (ta, qa) = key(a);
            let (tb, qb) = key(b);
            ta.total_cmp(&tb)
                .then(qa.total_cmp(&qb))
                .then_with(|| self.candidates[a].name.cmp(&self.candidates[b].name))
        });
        passing
            .into_iter()
            .enumerate()
            .map(|(r, i)| ConstrainedEntry {
                bottleneck: self.latency.kernels(i, self.g).bottleneck().to_string(),
                name: self.candidates[i].name.to_string(),
                precision: self.candidates[i].shape.precision.report_label(),
                param_proxy_m: self.reports[i].param_proxy_m,
                quality_proxy: self.reports[i].quality_proxy,
                rank: r + 1,
                source: self.candidates[i].source.to_string(),
                total_ms: self.latency.total_ms(i, self.g),
            })
            .collect()
    }

    fn comparison(&self, i: usize) -> Comparison {
        let c = &self.candidates[i];
        let kernels = self.latency.kernels(i, self.g);
        let total_ms = self.latency.total_ms(i, self.g);
        Comparison {
            attention_ms: kernels.get("attention"),
            bottleneck: kernels.bottleneck().to_string(),
            config: c.shape,
            constraints: self.reports[i].clone(),
            matmul_ms: kernels.get("qkv_projection") + kernels.get("output_projection"),
            // The seed's one MLP kernel, or the kernel-aware model's three.
            mlp_ms: kernels.get("geglu_mlp")
                + kernels.get("mlp_gate_up")
                + kernels.get("geglu_activation")
                + kernels.get("mlp_down"),
            ms_per_mparam_proxy: total_ms / self.reports[i].param_proxy_m,
            name: c.name.to_string(),
            per_kernel: kernels.named().map(|(k, v)| (k.to_string(), v)).collect(),
            quality_proxy: self.reports[i].quality_proxy,
            source: c.source.to_string(),
            tile_penalties: TilePenalties::of(&c.shape),
            total_ms,
        }
    }
}

fn rank_entry(c: &Candidate, latency: &Latencies, i: usize, g: usize, rank: usize) -> RankEntry {
    let total_ms = latency.total_ms(i, g);
    RankEntry {
        bottleneck: latency.kernels(i, g).bottleneck().to_string(),
        constraint_passes: None,
        ms_per_mparam_proxy: total_ms / Proxies::of(&c.shape).param_proxy_raw,
        name: c.name.to_string(),
        precision: c.shape.precision.report_label(),
        quality_proxy: None,
        rank,
        source: c.source.to_string(),
        total_ms,
    }
}

/// The generated search's tops as the seed reports them.
fn generated_top(result: &stream::GpuResult, source: &str) -> GeneratedSearchReport {
    let entries = |list: &[stream::Ranked]| -> Vec<RankEntry> {
        list.iter()
            .enumerate()
            .map(|(r, e)| RankEntry {
                bottleneck: e.bottleneck.to_string(),
                constraint_passes: None,
                ms_per_mparam_proxy: e.ms_per_mparam_proxy,
                name: e.name.clone(),
                precision: e.shape.precision.report_label(),
                quality_proxy: None,
                rank: r + 1,
                source: source.to_string(),
                total_ms: e.total_ms,
            })
            .collect()
    };
    let front = entries(&result.pareto_front)
        .into_iter()
        .zip(&result.pareto_front)
        .map(|(mut e, r): (RankEntry, _)| {
            e.quality_proxy = Some(r.quality_proxy);
            e.constraint_passes = Some(r.passes);
            e
        })
        .collect();
    GeneratedSearchReport {
        ms_per_mparam_proxy_top: entries(&result.ms_per_mparam_proxy_top),
        total_ms_top: entries(&result.total_ms_top),
        pareto_front: front,
    }
}

fn cliff_report(sweep: &CliffSweep, latency: &Latencies, g: usize) -> (String, CliffReport) {
    let mut base_config = match serde_json::to_value(sweep.base) {
        Ok(Value::Object(map)) => map,
        _ => Default::default(),
    };
    base_config.remove(sweep.axis.name());
    let values = sweep
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let penalty = crate::cost::tile_penalty(v);
            CliffPoint {
                axis: sweep.axis.name(),
                value: v,
                aligned_128: penalty.aligned_128,
                bottleneck: latency.kernels(i, g).bottleneck().to_string(),
                tile_efficiency: tile_efficiency(v),
                total_ms: latency.total_ms(i, g),
                wasted_work_pct: penalty.wasted_work_pct,
            }
        })
        .collect();
    (sweep.axis.name().to_string(), CliffReport { base_config, values })
}
