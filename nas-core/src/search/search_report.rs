//! What `nas search` prints: the streaming search's result as serde types,
//! per GPU with its cost model and provenance, and per entry the whole-model
//! figures where they apply. The CLI only serializes it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::gpu::CostProvenance;
use crate::model;
use crate::search::stream::{GpuResult, Ranked, StreamResult, StreamSpec};
use crate::shapes::LayerShape;

/// The result of `nas search`.
#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    pub combinations: u64,
    pub valid_candidates: u64,
    /// Valid candidates that pass the GPU-independent clauses (latency
    /// clauses, which hold per GPU, assumed to hold; each GPU's own count is
    /// in its result).
    pub quality_constrained_candidates: u64,
    pub top_k: usize,
    /// What each GPU's `quality_constrained_top` is ordered by.
    pub rank_by: &'static str,
    pub quality_constraints: Map<String, Value>,
    /// Whether some clause reads `prefill_ms`, `decode_ms` or
    /// `decode_tokens_per_s`, and so holds per GPU.
    pub latency_constraints_per_gpu: bool,
    pub results: Vec<GpuSearchResult>,
}

/// One GPU's part of a search.
#[derive(Clone, Debug, Serialize)]
pub struct GpuSearchResult {
    pub hardware: String,
    /// `measured` or `seed`.
    pub cost_model: &'static str,
    pub provenance: CostProvenance,
    /// Valid candidates that pass every clause on this GPU.
    pub quality_constrained_candidates: u64,
    pub total_ms_top: Vec<SearchEntry>,
    pub ms_per_mparam_proxy_top: Vec<SearchEntry>,
    /// Passing candidates on this GPU by the spec's `rank_by`.
    pub quality_constrained_top: Vec<SearchEntry>,
    pub pareto_front: Vec<SearchEntry>,
}

/// One candidate in a list; whole-model keys only for whole models.
#[derive(Clone, Debug, Serialize)]
pub struct SearchEntry {
    pub rank: usize,
    pub name: String,
    /// The shape in the seed's keys (`weights`, `kv_cache` when not bf16).
    pub config: LayerShape,
    /// The deployment precision: `bf16`, `fp8`, `int4`, `fp8 + fp8 KV`...
    pub precision: String,
    pub total_ms: f64,
    pub ms_per_mparam_proxy: f64,
    pub quality_proxy: f64,
    pub constraint_passes: bool,
    pub bottleneck: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cache_bytes_per_token: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_per_kernel: Option<BTreeMap<&'static str, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_per_kernel: Option<BTreeMap<&'static str, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_tokens_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_estimate: Option<f64>,
}

impl SearchEntry {
    fn new(rank: usize, r: &Ranked, step: Option<&model::StepThroughputs>) -> Self {
        let figures = model::figures(&r.shape);
        let step = step.filter(|_| figures.is_some());
        let prefill = step.and_then(|s| model::prefill(&r.shape, s, r.total_ms));
        let decode = step.and_then(|s| model::decode(&r.shape, s, r.shape.batch_size, model::context_of(&r.shape)));
        SearchEntry {
            rank,
            name: r.name.clone(),
            config: r.shape,
            precision: r.shape.precision.label(),
            total_ms: r.total_ms,
            ms_per_mparam_proxy: r.ms_per_mparam_proxy,
            quality_proxy: r.quality_proxy,
            constraint_passes: r.passes,
            bottleneck: r.bottleneck,
            params: figures.map(|f| f.parameters.total),
            weight_bytes: figures.map(|f| f.memory.weight_bytes),
            kv_cache_bytes_per_token: figures.map(|f| f.memory.kv_cache_bytes_per_token),
            prefill_ms: prefill.as_ref().map(|p| p.total_ms),
            prefill_per_kernel: prefill.map(|p| p.per_kernel),
            decode_tokens_per_s: decode
                .as_ref()
                .map(|d| model::StepLatency::tokens_per_s(r.shape.batch_size, d.total_ms)),
            decode_ms: decode.as_ref().map(|d| d.total_ms),
            decode_per_kernel: decode.map(|d| d.per_kernel),
            loss_estimate: figures.and_then(|f| f.loss_estimate),
        }
    }
}

impl SearchReport {
    /// The report of `result`, the search of `spec`.
    pub fn new(spec: &StreamSpec, result: &StreamResult) -> Self {
        let results = result
            .per_gpu
            .iter()
            .zip(spec.hardware)
            .map(|(g, gpu): (&GpuResult, _)| {
                let step = gpu.step_throughputs().ok();
                let entries = |list: &[Ranked]| -> Vec<SearchEntry> {
                    list.iter()
                        .enumerate()
                        .map(|(r, e)| SearchEntry::new(r + 1, e, step.as_ref()))
                        .collect()
                };
                GpuSearchResult {
                    hardware: g.hardware.clone(),
                    cost_model: gpu.cost_model().name(),
                    provenance: gpu.provenance(),
                    quality_constrained_candidates: g.passing,
                    total_ms_top: entries(&g.total_ms_top),
                    ms_per_mparam_proxy_top: entries(&g.ms_per_mparam_proxy_top),
                    quality_constrained_top: entries(&g.constrained_top),
                    pareto_front: entries(&g.pareto_front),
                }
            })
            .collect();
        SearchReport {
            combinations: result.combinations,
            valid_candidates: result.valid,
            quality_constrained_candidates: result.passing,
            top_k: spec.top_k,
            rank_by: spec.rank_by.name(),
            quality_constraints: spec.constraints.describe(),
            latency_constraints_per_gpu: spec.constraints.reads_latency(),
            results,
        }
    }

    /// Pretty JSON with sorted keys, ending in a newline: the same search gives the same bytes.
    pub fn to_json(&self) -> crate::error::Result<String> {
        let value = serde_json::to_value(self).map_err(|e| crate::error::Error::Spec(e.to_string()))?;
        let text = serde_json::to_string_pretty(&value).map_err(|e| crate::error::Error::Spec(e.to_string()))?;
        Ok(text + "\n")
    }
}
