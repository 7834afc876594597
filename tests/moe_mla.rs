//! The MoE and MLA models against the committed H200 measurements and
//! profiles: the fidelity report regenerates byte for byte, every fitted
//! constant respects its spec sheet, profiles round-trip, and the public
//! per-kernel functions agree with the fit.

use nas::calibrate::moe_fit::{self, MoeSubject};
use nas::calibrate::{mla_fit, moe_mla_report, CalibrationProfile};
use nas::cost::mla::{self, MlaShape};
use nas::cost::moe::{self, MoeMlpShape, Phase};
use nas::gpu::{CostModelKind, GpuTarget, Registry};

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn profile(name: &str) -> CalibrationProfile {
    let text = std::fs::read_to_string(repo(name)).unwrap();
    CalibrationProfile::from_json(&text, name).unwrap()
}

const MOE_FILES: [&str; 2] = [
    "calibration/data/h200/moe.jsonl",
    "calibration/data/h200/moe-routed.jsonl",
];
const MLA_FILES: [&str; 2] = [
    "calibration/data/h200/mla.jsonl",
    "calibration/data/h200/mla-decode-split.jsonl",
];

#[test]
fn the_fidelity_report_is_what_the_committed_data_and_profile_give() {
    let p = profile("calibration/h200.json");
    let abs = |files: &[&str]| files.iter().map(|f| repo(f)).collect::<Vec<_>>();
    let (moe, _, moe_sha) = moe_fit::read(&abs(&MOE_FILES)).unwrap();
    let (mla, _, mla_sha) = mla_fit::read(&abs(&MLA_FILES)).unwrap();
    let command = format!(
        "nas fidelity --calibration calibration/h200.json --moe {} --mla {} --out docs/results/moe-mla-fidelity",
        MOE_FILES.join(" "),
        MLA_FILES.join(" ")
    );
    let md = moe_mla_report::fidelity_markdown(&moe_mla_report::ReportInput {
        profile: &p,
        profile_place: "calibration/h200.json",
        moe: &moe,
        moe_sha256: &moe_sha,
        mla: &mla,
        mla_sha256: &mla_sha,
        command: &command,
    })
    .unwrap();
    let committed = std::fs::read_to_string(repo("docs/results/moe-mla-fidelity.md")).unwrap();
    assert_eq!(md, committed, "rerun calibration/fit.sh");
    // the profile's data hashes are the files'
    assert_eq!(p.moe_model.as_ref().unwrap().data_sha256, moe_sha);
    assert_eq!(p.mla_model.as_ref().unwrap().data_sha256, mla_sha);
}

#[test]
fn no_fitted_or_transferred_constant_is_faster_than_its_spec_sheet() {
    for (name, sheet) in [
        ("calibration/h200.json", nas::gpu::spec_sheet::H200),
        ("calibration/h100-sxm.json", nas::gpu::spec_sheet::H100),
    ] {
        let p = profile(name);
        let limits = nas::calibrate::PhysicalLimits::from_spec(&sheet).unwrap();
        let moe = p.moe_model.as_ref().unwrap();
        let mla = p.mla_model.as_ref().unwrap();
        let tables = [
            (&moe.fitted, &moe::MOE_RESOURCES[..]),
            (&mla.fitted, &mla::MLA_RESOURCES[..]),
        ];
        let mut checked = 0;
        for (fitted, table) in tables {
            for (resource, _, bound) in table {
                let f = &fitted[*resource];
                assert!(f.ms_per_unit.is_finite() && f.ms_per_unit >= 0.0, "{name}: {resource}");
                if let Some(peak) = bound {
                    assert!(
                        f.ms_per_unit >= limits.min_ms_per_unit(*peak) * (1.0 - 1e-9),
                        "{name}: `{resource}` = {} {} beats {}",
                        f.throughput,
                        f.unit,
                        limits.limit(*peak)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 15, "{checked}");
        // the H100's are carried over, and say so
        assert_eq!(
            name.contains("h100"),
            moe.transferred_from.is_some() && mla.transferred_from.is_some()
        );
    }
}

#[test]
fn profiles_with_moe_and_mla_round_trip_and_refuse_a_constant_beyond_hbm() {
    let p = profile("calibration/h200.json");
    let text = p.to_json().unwrap();
    assert_eq!(CalibrationProfile::from_json(&text, "p.json").unwrap(), p);
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ms = 1.0 / (9000.0 * 1e6); // 9000 GB/s on a 4800 GB/s GPU
    v["moe_model"]["fitted"]["moe_gemm_weight_bytes"] =
        serde_json::json!({"ms_per_unit": ms, "throughput": 9000.0, "unit": "GB/s"});
    let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("p.json")
            && e.contains(
                "`moe_model.moe_gemm_weight_bytes` = 9000.0 GB/s is faster than the physical limit 4800.0 GB/s"
            ),
        "{e}"
    );
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["mla_model"]["fitted"]
        .as_object_mut()
        .unwrap()
        .remove("mla_score_bytes");
    let e = CalibrationProfile::from_json(&v.to_string(), "p.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`mla_model` is missing `mla_score_bytes`"), "{e}");
    // a profile without the new sections still reads
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("moe_model");
    v.as_object_mut().unwrap().remove("mla_model");
    let old = CalibrationProfile::from_json(&v.to_string(), "old.json").unwrap();
    assert!(old.moe_model.is_none() && old.mla_model.is_none());
}

#[test]
fn the_per_kernel_functions_agree_with_the_fit_on_measured_records() {
    let gpu = Registry::builtin().resolve(&GpuTarget::builtin("h200")).unwrap();
    let p = profile("calibration/h200.json");
    let c = p.moe_model.as_ref().unwrap().constants(p.sm_count);
    let (records, _, _) = moe_fit::read(&[repo(MOE_FILES[0])]).unwrap();
    let mut seen = 0;
    for r in records.iter().filter(|r| r.kind == "moe_prefill") {
        let MoeSubject::Layer { shape, .. } = &r.subject else {
            continue;
        };
        let ms: f64 = moe::moe_mlp_ms(&gpu, shape, Phase::Prefill)
            .unwrap()
            .iter()
            .map(|x| x.1)
            .sum();
        let fit = moe_fit::predict_record(&c, r);
        assert!((ms - fit).abs() <= 1e-12 * fit, "{}: {ms} vs {fit}", r.config);
        seen += 1;
    }
    assert!(seen > 40, "{seen}");
    // decode: the expected experts grow with the batch, and so does the time
    let mixtral = MoeMlpShape {
        tokens: 1,
        hidden: 4096,
        expert_ffn: 14336,
        experts: 8,
        top_k: 2,
        imbalance: 1.0,
    };
    let decode = |b| {
        moe::moe_mlp_ms(&gpu, &MoeMlpShape { tokens: b, ..mixtral }, Phase::Decode)
            .unwrap()
            .iter()
            .map(|x| x.1)
            .sum::<f64>()
    };
    assert!(decode(1) < decode(4) && decode(4) < decode(32));
    let kernels: Vec<&str> = moe::moe_mlp_ms(&gpu, &mixtral, Phase::Decode)
        .unwrap()
        .iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(kernels, moe::MOE_KERNELS);
    let e = moe::moe_mlp_ms(&gpu, &MoeMlpShape { top_k: 9, ..mixtral }, Phase::Decode).unwrap_err();
    assert!(e.to_string().contains("`top_k` = 9 is more than `experts` = 8"), "{e}");
    // MLA: prefill grows with the sequence, decode with the context
    let v3 = MlaShape {
        hidden: 7168,
        heads: 128,
        q_lora_rank: Some(1536),
        kv_lora_rank: 512,
        qk_nope_head_dim: 128,
        qk_rope_head_dim: 64,
        v_head_dim: 128,
    };
    let sum = |v: Vec<(&str, f64)>| v.iter().map(|x| x.1).sum::<f64>();
    assert!(
        sum(mla::mla_prefill_ms(&gpu, &v3, 1, 8192).unwrap())
            > 4.0 * sum(mla::mla_prefill_ms(&gpu, &v3, 1, 2048).unwrap())
    );
    assert!(
        sum(mla::mla_decode_ms(&gpu, &v3, 8, 32768).unwrap()) > sum(mla::mla_decode_ms(&gpu, &v3, 8, 1024).unwrap())
    );
    // a seed GPU has no fit: its answers are the spec-sheet roofline's
    let a100 = Registry::builtin()
        .resolve(&GpuTarget::builtin("a100").with_cost_model(CostModelKind::Seed))
        .unwrap();
    assert!(moe::moe_source(&a100).contains("spec-sheet roofline estimate"));
    assert!(sum(moe::moe_mlp_ms(&a100, &mixtral, Phase::Decode).unwrap()) > 0.0);
    assert!(mla::mla_source(&a100).contains("spec-sheet roofline estimate"));
}

/// Whole-model decode of mixed sliding/global stacks and MoE models on the
/// H200, none of it fitted on: the committed report is what the code gives,
/// and the stack's prediction meets the bars (mixed <= 10%, MoE <= 15%).
#[test]
fn stack_decode_fidelity_report_regenerates_and_meets_its_bars() {
    use nas::calibrate::stack_decode;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        root.join("calibration/data/h200/decode-mixed.jsonl"),
        root.join("calibration/data/h200/decode-moe.jsonl"),
    ];
    let (records, sha) = stack_decode::read(&files).unwrap();
    assert!(records.iter().all(|r| r.set == "validation"));
    // As `nas fidelity` prices them: with the profile file (tests run in the package root).
    let gpu = Registry::builtin().resolve_profile("calibration/h200.json").unwrap();
    let checked = stack_decode::check(&records, &gpu).unwrap();
    let (mixed, n_mixed) = stack_decode::mape(&records, &checked, "decode_mixed").unwrap();
    let (moe, n_moe) = stack_decode::mape(&records, &checked, "decode_moe").unwrap();
    assert!(n_mixed >= 20 && n_moe >= 14, "{n_mixed} {n_moe}");
    assert!(mixed <= 10.0, "mixed stacks: MAPE {mixed:.2}%");
    assert!(moe <= 15.0, "MoE models: MAPE {moe:.2}%");
    let command = "nas fidelity --calibration calibration/h200.json --stacks calibration/data/h200/decode-mixed.jsonl \
                   calibration/data/h200/decode-moe.jsonl --out docs/results/stack-decode-fidelity-h200";
    let md = stack_decode::fidelity_markdown(&records, &checked, &gpu, &sha, command);
    let committed = std::fs::read_to_string(root.join("docs/results/stack-decode-fidelity-h200.md")).unwrap();
    assert_eq!(md, committed, "regenerate with the command in the report");
}
