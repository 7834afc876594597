//! The DSL end to end: the seed's search written with `nas_search!`
//! (examples/seed_pack.rs) gives the seed's numbers and the very bytes that
//! `nas pack --seed` writes with the same calibration DB.

use std::process::Command;

use serde_json::Value;

#[allow(dead_code)]
mod seed_pack {
    include!("../examples/seed_pack.rs");
}

use seed_pack::SeedPack;

const DB: &str = "calibration/seed/noeris-cost-model-training.json";

#[test]
fn the_dsl_seed_pack_is_the_cli_seed_pack_byte_for_byte() {
    // Integration tests run in the package root, where the example's relative DB path resolves.
    let pack = SeedPack::evaluate().unwrap();
    let dir = std::env::temp_dir().join(format!("nas-dsl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("cli");
    let status = Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(["pack", "--seed", "--calibration-db", DB, "--out"])
        .arg(&prefix)
        .status()
        .unwrap();
    assert!(status.success());
    let cli_json = std::fs::read_to_string(dir.join("cli.json")).unwrap();
    let cli_md = std::fs::read_to_string(dir.join("cli.md")).unwrap();
    assert_eq!(pack.to_json().unwrap(), cli_json);
    assert_eq!(pack.to_markdown(), cli_md);

    pack.write(dir.join("dsl")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("dsl.json")).unwrap(), cli_json);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_dsl_tables_hold_the_seed_search() {
    assert_eq!(SeedPack::CANDIDATES.len(), 49);
    let sources: Vec<&str> = SeedPack::CANDIDATES.iter().map(|c| c.source.as_ref()).collect();
    assert_eq!(sources.iter().filter(|s| **s == "known_model").count(), 4);
    assert_eq!(sources.iter().filter(|s| **s == "seed_candidate").count(), 5);
    assert_eq!(SeedPack::CANDIDATES[9].name, "gen_h1536_hd128_gqa4_ffn4p0_w512");
    let (space, top) = SeedPack::SPACE.unwrap();
    assert_eq!((space.combinations(), top), (648, 25));
    assert_eq!(
        space,
        nas::search::seed::SEARCH_FAMILY,
        "the space's axes are the seed's generated search"
    );
    assert_eq!(SeedPack::SWEEPS.len(), 2);
    assert_eq!(SeedPack::CALIBRATION_DB, Some(DB));
}

#[test]
fn the_dsl_matches_the_seed_reference_numbers() {
    let ours: Value = serde_json::from_str(&SeedPack::evaluate().unwrap().to_json().unwrap()).unwrap();
    let seed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/noeris-multihardware-pack.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for hw in ["a100", "t4", "h100"] {
        let (a, b) = (&ours["reports"][hw], &seed["reports"][hw]);
        assert_eq!(a["rankings"]["total_ms"].as_array().unwrap().len(), 49);
        for key in ["total_ms", "ms_per_mparam_proxy", "quality_constrained_latency"] {
            let names = |v: &Value| -> Vec<Value> {
                v["rankings"][key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["name"].clone())
                    .collect()
            };
            assert_eq!(names(a), names(b), "{hw} {key}");
        }
        for (x, y) in a["comparison"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["comparison"].as_array().unwrap())
        {
            let (x, y) = (x["total_ms"].as_f64().unwrap(), y["total_ms"].as_f64().unwrap());
            assert!((x - y).abs() <= 1e-9 * y, "{hw}: {x} vs {y}");
        }
        assert_eq!(
            a["summary"]["quality_constrained_fastest_config"],
            b["summary"]["quality_constrained_fastest_config"]
        );
    }
}

#[allow(dead_code)]
mod decode_budget {
    include!("../examples/decode_budget.rs");
}

#[test]
fn whole_model_searches_rank_by_decode_under_memory_and_loss() {
    use nas::model::{self, GIB};
    let pack = decode_budget::DecodeBudget::evaluate().unwrap();
    let h100 = pack.reports["h100"].whole_model.as_ref().unwrap();
    assert_eq!(h100.candidates.len(), pack.candidate_count);
    let passing: Vec<&str> = h100
        .quality_constrained_decode_ranking
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert!(!passing.is_empty());
    for c in &pack.candidate_catalog {
        let s = &c.config;
        let fits = model::fits(s, 80.0 * GIB, 8, 8192).unwrap();
        let loss = c.model.unwrap().loss_estimate.unwrap();
        let big_enough = c.model.unwrap().parameters.total >= 6_000_000_000;
        assert_eq!(c.constraints.passes, fits && loss <= 1.95 && big_enough, "{}", c.name);
        assert_eq!(passing.contains(&c.name.as_str()), c.constraints.passes, "{}", c.name);
    }
    let decode: Vec<f64> = h100
        .quality_constrained_decode_ranking
        .iter()
        .map(|r| r.decode_ms)
        .collect();
    assert!(decode.windows(2).all(|w| w[0] <= w[1]), "fastest first");
    // The front: no member is beaten on both decode latency and loss by any candidate.
    for f in &h100.loss_decode_pareto_front {
        let loss = f.loss_estimate.unwrap();
        assert!(!h100
            .decode_ms_ranking
            .iter()
            .any(|r| r.decode_ms < f.decode_ms && r.loss_estimate.unwrap() < loss));
    }
    // Each GPU's own memory decides its fit: the H200's 139.8 GiB hold what the H100's 80 do not.
    let h200 = pack.reports["h200"].whole_model.as_ref().unwrap();
    let h200_gib = 150_109_880_320.0 / GIB;
    for (entry, c) in h200.candidates.iter().zip(&pack.candidate_catalog) {
        assert_eq!(
            entry.fits_memory,
            model::fits(&c.config, h200_gib * GIB, 8, 8192),
            "{}",
            c.name
        );
    }
    for (a, b) in h200.candidates.iter().zip(&h100.candidates) {
        assert!(
            a.fits_memory >= b.fits_memory,
            "what fits the H100 fits the H200: {}",
            a.name
        );
        assert!(a.memory_needed_bytes == b.memory_needed_bytes);
    }
    // Both GPUs are measured, and the pack says so, with the profile's held-out error.
    for gpu in ["h100", "h200"] {
        let env = &pack.reports[gpu].environment;
        assert_eq!(env.cost_model, "measured");
        assert!(env.provenance.validation.as_ref().is_some_and(|v| v.rows > 0), "{gpu}");
    }
    let md = pack.to_markdown();
    assert!(md.contains("## Whole models"));
    assert!(md.contains("not a measurement"), "the loss is called an estimate");
}

nas::nas_search! {
    /// A GPU of one's own on a measured profile named by file (read at run time).
    search OwnMeasured {
        hardware: [h100, mine],
        gpu mine: h100 { profile: "calibration/h100-sxm.json", label: "My H100" }
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

nas::nas_search! {
    /// The same with a file that is not there, and one of another GPU.
    search MissingProfile {
        hardware: [mine],
        gpu mine: h100 { profile: "calibration/no-such-profile.json" }
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

nas::nas_search! {
    search FasterThanItsSheet {
        hardware: [mine],
        gpu mine: h100 { profile: "calibration/h200.json" }
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
    }
}

#[test]
fn a_gpu_can_name_its_measured_profile_file() {
    // Integration tests run in the package root, where the path is relative to.
    let pack = OwnMeasured::evaluate().unwrap();
    let (builtin, mine) = (&pack.reports["h100"], &pack.reports["mine"]);
    assert_eq!(mine.environment.cost_model, "measured");
    assert_eq!(
        mine.environment.provenance.profile.as_deref(),
        Some("calibration/h100-sxm.json")
    );
    assert_eq!(
        builtin.rankings.total_ms[0].total_ms,
        mine.rankings.total_ms[0].total_ms
    );

    let e = MissingProfile::evaluate().unwrap_err().to_string();
    assert!(e.contains("calibration/no-such-profile.json"), "{e}");
    // The H200's fitted bandwidths are faster than an H100's HBM: refused, not used.
    let e = FasterThanItsSheet::evaluate().unwrap_err().to_string();
    assert!(
        e.contains("hardware `mine`: the profile `calibration/h200.json`") && e.contains("faster than"),
        "{e}"
    );
}

#[allow(dead_code)]
mod measured_decode {
    include!("../examples/measured_decode.rs");
}

/// The example's per-GPU whole-model ranking is brute force's: every
/// candidate's prefill and decode on each measured GPU, the memory fit on
/// the H200 and the prefill bound on the GPU itself, ordered by decode.
#[test]
fn measured_decode_ranks_whole_models_by_decode_under_per_gpu_constraints() {
    use nas::gpu::{GpuTarget, Registry};
    use nas::model::{self, GIB};
    let pack = measured_decode::MeasuredDecode::evaluate().unwrap();
    let gpus = Registry::builtin()
        .resolve_all(&[GpuTarget::builtin("h100"), GpuTarget::builtin("h200")])
        .unwrap();
    let h200_bytes = gpus[1].memory_gib().unwrap() * GIB;
    let mut passing_counts = Vec::new();
    for gpu in &gpus {
        let report = &pack.reports[gpu.key.as_ref()];
        assert_eq!(report.environment.cost_model, "measured");
        let step = gpu.step_throughputs().unwrap();
        let mut want: Vec<(String, f64, f64)> = Vec::new();
        for (c, cmp) in pack.candidate_catalog.iter().zip(&report.comparison) {
            assert_eq!(c.name, cmp.name);
            let latency = model::step_latency(&c.config, &step, cmp.total_ms);
            let fits = model::fits(&c.config, h200_bytes, 16, 32768).unwrap();
            if fits && latency.prefill_ms <= 200.0 {
                want.push((c.name.clone(), latency.decode_ms, latency.prefill_ms));
            }
        }
        want.sort_by(|a, b| a.1.total_cmp(&b.1)); // stable: ties in catalog order
        let whole = report.whole_model.as_ref().unwrap();
        assert_eq!(whole.rank_by, "decode_ms");
        let got: Vec<(String, f64, f64)> = whole
            .constrained_ranking
            .iter()
            .map(|r| (r.name.clone(), r.decode_ms, r.prefill_ms))
            .collect();
        assert_eq!(got, want, "{}", gpu.key);
        assert_eq!(report.summary.quality_constrained_candidate_count, want.len());
        passing_counts.push(want.len());
    }
    // Both constraints bite: some candidates do not fit, some fit but prefill too slowly,
    // and the prefill bound is the GPU's own.
    let fitting = pack.candidate_catalog.iter().filter(|c| c.constraints.passes).count();
    assert!(fitting < pack.candidate_count, "the memory fit excludes some");
    assert!(
        passing_counts.iter().all(|&n| n > 0 && n < fitting),
        "{passing_counts:?} of {fitting}"
    );
    assert_ne!(passing_counts[0], passing_counts[1], "the H100 and the H200 differ");
    let md = pack.to_markdown();
    assert!(md.contains("### H200: fastest decode among candidates that pass the constraints"));
    assert!(md.contains("latency clauses use H100's own prefill and decode"));
}
