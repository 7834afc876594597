//! Serde types of the multi-hardware pack, field for field the seed's schema.
//! Serialized through `serde_json::Value`, whose maps keep keys sorted as the
//! seed's `json.dumps(sort_keys=True)` does.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::calibrate::CalibrationBlock;
use crate::cost::TilePenalties;
use crate::error::{Error, Result};
use crate::model::{ModelFigures, StepTime};
use crate::search::constraints::{ConstraintReport, Constraints};
use crate::shapes::LayerShape;

/// Version of the pack schema; bumped when an existing key changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// The multi-hardware pack: every candidate on every GPU, ranked.
#[derive(Clone, Debug, Serialize)]
pub struct Pack {
    pub calibration: CalibrationBlock,
    pub candidate_catalog: Vec<CatalogEntry>,
    pub candidate_count: usize,
    pub experiment: String,
    /// Hardware keys in the spec's order (reports are keyed by them).
    pub hardware_profiles: Vec<String>,
    pub limitations: Vec<String>,
    pub quality_constraints: Map<String, Value>,
    pub reports: BTreeMap<String, HardwareReport>,
    pub schema_version: u32,
    pub summary: BTreeMap<String, PackSummary>,
    /// How whole-model figures were obtained (only when a candidate is a whole model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole_model_notes: Option<Vec<String>>,
    /// The clauses behind `quality_constraints`, for the Markdown.
    #[serde(skip)]
    pub constraints: Constraints,
}

/// One candidate as the catalog lists it.
#[derive(Clone, Debug, Serialize)]
pub struct CatalogEntry {
    pub config: LayerShape,
    pub constraints: ConstraintReport,
    /// Parameters, memory and loss estimate of a whole-model candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelFigures>,
    pub name: String,
    pub source: String,
}

/// The headline of one GPU in the pack's `summary`.
#[derive(Clone, Debug, Serialize)]
pub struct PackSummary {
    pub fastest_config: Option<String>,
    pub quality_constrained_candidate_count: usize,
    pub quality_constrained_fastest_config: Option<String>,
}

/// Everything about one GPU.
#[derive(Clone, Debug, Serialize)]
pub struct HardwareReport {
    pub calibration: CalibrationBlock,
    pub candidate_count: usize,
    pub candidate_source_counts: BTreeMap<String, usize>,
    pub comparison: Vec<Comparison>,
    pub environment: Environment,
    pub experiment: String,
    pub generated_candidate_count: usize,
    pub generated_search: GeneratedSearchReport,
    pub hardware: String,
    pub kernel_cliffs: BTreeMap<String, CliffReport>,
    pub quality_constraints: Map<String, Value>,
    pub rankings: Rankings,
    pub schema_version: u32,
    pub summary: HardwareSummary,
    /// Prefill, decode and memory fit of the whole-model candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole_model: Option<WholeModelReport>,
}

/// The whole-model candidates on one GPU.
#[derive(Clone, Debug, Serialize)]
pub struct WholeModelReport {
    /// Every whole-model candidate, in catalog order.
    pub candidates: Vec<WholeModelEntry>,
    /// By one decode step's latency, fastest first.
    pub decode_ms_ranking: Vec<WholeModelRank>,
    /// By prefill (time to first token), fastest first.
    pub prefill_ms_ranking: Vec<WholeModelRank>,
    /// Candidates that pass every constraint on this GPU (latency clauses
    /// with this GPU's latencies), by decode latency.
    pub quality_constrained_decode_ranking: Vec<WholeModelRank>,
    /// What `constrained_ranking` orders by: the spec's `rank_by` when it is
    /// a whole-model metric (`prefill_ms`, `decode_ms`, `decode_tokens_per_s`), else `decode_ms`.
    pub rank_by: String,
    /// Candidates that pass every constraint on this GPU, by `rank_by`.
    pub constrained_ranking: Vec<WholeModelRank>,
    /// Candidates no other beats on both decode latency and loss estimate,
    /// fastest first (empty without training tokens).
    pub loss_decode_pareto_front: Vec<WholeModelRank>,
}

/// One whole-model candidate on one GPU.
#[derive(Clone, Debug, Serialize)]
pub struct WholeModelEntry {
    pub name: String,
    /// The candidate's precision (`fp8`, `int4`, `fp8 + fp8 KV`...); absent for bf16 (the seed's schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// Sequences decoded together (the candidate's batch_size).
    pub decode_batch: u64,
    /// Tokens in each sequence's KV cache during the decode step.
    pub decode_context: u64,
    pub decode: StepTime,
    pub prefill: StepTime,
    /// Weights + KV cache of the decode batch and context + a prefill layer's activation peak.
    pub memory_needed_bytes: u64,
    /// Whether that fits this GPU's memory (`None` when its capacity is unknown).
    pub fits_memory: Option<bool>,
    pub loss_estimate: Option<f64>,
}

/// A row of a whole-model ranking.
#[derive(Clone, Debug, Serialize)]
pub struct WholeModelRank {
    pub rank: usize,
    pub name: String,
    /// The candidate's precision (`fp8`, `int4`, `fp8 + fp8 KV`...); absent for bf16 (the seed's schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    pub decode_ms: f64,
    pub prefill_ms: f64,
    /// batch / the decode step in seconds.
    pub decode_tokens_per_s: f64,
    pub params: u64,
    pub loss_estimate: Option<f64>,
    pub fits_memory: Option<bool>,
}

/// A candidate's prediction on one GPU, kernel by kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub attention_ms: f64,
    pub bottleneck: String,
    pub config: LayerShape,
    pub constraints: ConstraintReport,
    /// qkv + output projections.
    pub matmul_ms: f64,
    pub mlp_ms: f64,
    /// total_ms over the *rounded* param_proxy_m (the seed's quirk, kept).
    pub ms_per_mparam_proxy: f64,
    pub name: String,
    pub per_kernel: BTreeMap<String, f64>,
    pub quality_proxy: f64,
    pub source: String,
    pub tile_penalties: TilePenalties,
    pub total_ms: f64,
}

/// A row of a ranking by total_ms or ms_per_mparam_proxy.
#[derive(Clone, Debug, Serialize)]
pub struct RankEntry {
    pub bottleneck: String,
    pub constraint_passes: Option<bool>,
    /// total_ms over the unrounded D*F/1e6.
    pub ms_per_mparam_proxy: f64,
    pub name: String,
    /// The candidate's precision (`fp8`, `int4`, `fp8 + fp8 KV`...); absent for bf16 (the seed's schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    pub quality_proxy: Option<f64>,
    pub rank: usize,
    pub source: String,
    pub total_ms: f64,
}

/// A row of the quality-constrained ranking.
#[derive(Clone, Debug, Serialize)]
pub struct ConstrainedEntry {
    pub bottleneck: String,
    pub name: String,
    /// The candidate's precision (`fp8`, `int4`, `fp8 + fp8 KV`...); absent for bf16 (the seed's schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    pub param_proxy_m: f64,
    pub quality_proxy: f64,
    pub rank: usize,
    pub source: String,
    pub total_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rankings {
    pub ms_per_mparam_proxy: Vec<RankEntry>,
    pub quality_constrained_latency: Vec<ConstrainedEntry>,
    pub total_ms: Vec<RankEntry>,
}

/// The top of a larger generated space, by each metric.
#[derive(Clone, Debug, Serialize, Default)]
pub struct GeneratedSearchReport {
    pub ms_per_mparam_proxy_top: Vec<RankEntry>,
    pub total_ms_top: Vec<RankEntry>,
    /// The whole space's Pareto front of latency vs quality proxy, fastest
    /// first (with quality and constraint verdict). Not in the JSON, whose
    /// schema is the seed's: the Markdown and the HTML show it.
    #[serde(skip)]
    pub pareto_front: Vec<RankEntry>,
}

/// A sweep of one dimension around a base shape: where tiles make cliffs.
#[derive(Clone, Debug, Serialize)]
pub struct CliffReport {
    /// The base shape without the swept key.
    pub base_config: Map<String, Value>,
    pub values: Vec<CliffPoint>,
}

/// One point of a sweep; `axis` is serialized under the swept key's name.
#[derive(Clone, Debug)]
pub struct CliffPoint {
    pub axis: &'static str,
    pub value: u64,
    pub aligned_128: bool,
    pub bottleneck: String,
    pub tile_efficiency: f64,
    pub total_ms: f64,
    pub wasted_work_pct: f64,
}

impl Serialize for CliffPoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("aligned_128", &self.aligned_128)?;
        map.serialize_entry("bottleneck", &self.bottleneck)?;
        map.serialize_entry(self.axis, &self.value)?;
        map.serialize_entry("tile_efficiency", &self.tile_efficiency)?;
        map.serialize_entry("total_ms", &self.total_ms)?;
        map.serialize_entry("wasted_work_pct", &self.wasted_work_pct)?;
        map.end()
    }
}

/// The headline numbers of one GPU.
#[derive(Clone, Debug, Serialize)]
pub struct HardwareSummary {
    /// Rank of the seed's `deep_narrow` candidate, when the spec has one.
    pub deep_narrow_unconstrained_rank: Option<usize>,
    pub fastest_config: Option<String>,
    pub fastest_generated_config: Option<String>,
    pub fastest_generated_total_ms: Option<f64>,
    pub fastest_total_ms: Option<f64>,
    pub most_efficient_config: Option<String>,
    pub most_efficient_ms_per_mparam_proxy: Option<f64>,
    pub quality_constrained_candidate_count: usize,
    pub quality_constrained_fastest_config: Option<String>,
    pub quality_constrained_fastest_total_ms: Option<f64>,
}

/// What produced the report. Deterministic on purpose (no clock, no host):
/// the same spec gives the same bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// `measured` or `seed`.
    pub cost_model: String,
    /// Where this GPU's numbers come from (profile, data hash, held-out error).
    pub provenance: crate::gpu::CostProvenance,
    pub tool: String,
    pub tool_version: String,
}

impl Environment {
    pub fn for_gpu(gpu: &crate::gpu::Gpu) -> Self {
        Environment {
            cost_model: gpu.cost_model().name().to_string(),
            provenance: gpu.provenance(),
            tool: "nas".to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

impl Pack {
    /// The pack as pretty JSON with sorted keys and a final newline.
    pub fn to_json(&self) -> Result<String> {
        let value = serde_json::to_value(self).map_err(|e| Error::Spec(format!("serializing the pack: {e}")))?;
        let mut text =
            serde_json::to_string_pretty(&value).map_err(|e| Error::Spec(format!("serializing the pack: {e}")))?;
        text.push('\n');
        Ok(text)
    }

    /// Writes `PREFIX.json`, `PREFIX.md` and `PREFIX.html`, each through a
    /// temporary file renamed into place, so a failure never leaves half a
    /// report. Everything is rendered before the first file is written.
    ///
    /// The folder of `prefix` is created when it does not exist (the CLI,
    /// which refuses a missing `--out` folder, calls [`Pack::write_into_existing_folder`]).
    pub fn write(&self, prefix: impl AsRef<std::path::Path>) -> Result<()> {
        let prefix = prefix.as_ref();
        if let Some(folder) = prefix.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|e| crate::error::Error::io(folder, e))?;
        }
        self.write_into_existing_folder(prefix)
    }

    /// As [`Pack::write`], but a folder that does not exist is an error.
    pub fn write_into_existing_folder(&self, prefix: impl AsRef<std::path::Path>) -> Result<()> {
        let prefix = prefix.as_ref();
        let json = self.to_json()?;
        let md = self.to_markdown();
        let html = self.to_html()?;
        let paths = super::write::report_paths(prefix, &["json", "md", "html"])?;
        let (json_path, md_path, html_path) = (&paths[0], &paths[1], &paths[2]);
        super::write::write_all_atomic(&[
            (json_path, json.as_bytes()),
            (md_path, md.as_bytes()),
            (html_path, html.as_bytes()),
        ])
    }
}
