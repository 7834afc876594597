//! The JSON search-spec reader (`nas search --spec`) on arbitrary bytes: it
//! never panics, and a spec it accepts streams (its first candidates) with
//! finite results.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nas_core::search::spec_json::JsonSearch;
use nas_core::search::stream::{search_range, StreamSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = nas_core::input::parse_json(data, "fuzz.json") else {
        return;
    };
    let Ok(spec) = JsonSearch::from_json(&doc) else {
        return;
    };
    let stream = StreamSpec {
        family: &spec.family,
        workload: spec.workload,
        hardware: &spec.hardware,
        constraints: &spec.constraints,
        top_k: spec.top_k.min(8),
        rank_by: spec.rank_by,
    };
    let Ok(result) = search_range(&stream, Some(64), &|_| {}) else {
        return;
    };
    for gpu in &result.per_gpu {
        for e in gpu.total_ms_top.iter().chain(&gpu.pareto_front) {
            assert!(
                e.total_ms.is_finite() && e.total_ms > 0.0,
                "{} has latency {}",
                e.name,
                e.total_ms
            );
        }
    }
});
