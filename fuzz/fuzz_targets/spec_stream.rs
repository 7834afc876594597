//! The JSON search spec (`nas search --spec`) through the whole streaming
//! engine, as `nas search` runs it: the spec's own `top_k` (not capped here),
//! the plan's lookup tables, and the first 4096 candidates. Run with
//! `-rss_limit_mb=2048` (`fuzz/run.sh`): any accepted spec must stay within
//! the engine's documented memory bounds (docs/RELIABILITY.md, limits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nas_core::search::family::MAX_NAME_LEN;
use nas_core::search::spec_json::JsonSearch;
use nas_core::search::stream::{count_valid, search_range, StreamSpec, MAX_TOP_K};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = nas_core::input::parse_json(data, "fuzz.json") else {
        return;
    };
    let Ok(spec) = JsonSearch::from_json(&doc) else {
        return;
    };
    assert!(spec.top_k <= MAX_TOP_K, "top_k {} accepted", spec.top_k);
    let _ = count_valid(&spec.family, spec.workload);
    let stream = StreamSpec {
        family: &spec.family,
        workload: spec.workload,
        hardware: &spec.hardware,
        constraints: &spec.constraints,
        top_k: spec.top_k,
        rank_by: spec.rank_by,
    };
    let Ok(result) = search_range(&stream, Some(4096), &|_| {}) else {
        return;
    };
    assert!(result.valid <= result.combinations);
    for gpu in &result.per_gpu {
        assert!(gpu.total_ms_top.len() <= spec.top_k && gpu.constrained_top.len() <= spec.top_k);
        for e in gpu.total_ms_top.iter().chain(&gpu.pareto_front).chain(&gpu.constrained_top) {
            assert!(e.name.len() <= MAX_NAME_LEN, "a name of {} bytes", e.name.len());
            assert!(e.total_ms.is_finite() && e.total_ms > 0.0, "{} has latency {}", e.name, e.total_ms);
        }
    }
});
