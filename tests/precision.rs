//! Deployment precision end to end: bytes follow the format exactly and
//! parameters do not move; the per-kernel breakdowns of prefill and decode
//! change where the format says they do; `nas kernel` answers fp8 GEMMs;
//! the committed precision fidelity report is what the code writes, and the
//! H200's held-out fp8 layers and decode steps are predicted within 8%.

use nas::gpu::{GemmDtype, GpuTarget, KernelQuery, Registry};
use nas::model::{self, ModelDims};
use nas::precision::{KvCachePrecision, Precision, WeightPrecision, INT4_GROUP};
use nas::shapes::LayerShape;

fn repo(path: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .to_string_lossy()
        .into_owned()
}

/// Llama-3-8B's layer and model dimensions, served at batch 16 with 8192 cached tokens.
fn llama3_8b(weights: WeightPrecision, kv_cache: KvCachePrecision) -> LayerShape {
    LayerShape {
        hidden_dim: 4096,
        num_heads: 32,
        num_kv_heads: 8,
        head_dim: 128,
        ffn_dim: 14336,
        seq_len: 2048,
        batch_size: 16,
        use_qk_norm: false,
        window_size: None,
        model: ModelDims {
            num_layers: Some(32),
            vocab_size: Some(128256),
            tie_embeddings: Some(false),
            context_len: Some(8192),
            ..ModelDims::NONE
        },
        precision: Precision { weights, kv_cache },
        arch: nas::arch::Architecture::NONE,
    }
}

#[test]
fn bytes_follow_the_format_exactly_and_parameters_do_not_move() {
    let bf16 = llama3_8b(WeightPrecision::Bf16, KvCachePrecision::Bf16);
    let f = model::figures(&bf16).unwrap();
    // The seven matrices of a layer as (N, K), and what stays bf16.
    let (d, f_, q, kv) = (4096u64, 14336u64, 32 * 128u64, 8 * 128u64);
    let mats = [(q, d), (kv, d), (kv, d), (d, q), (f_, d), (f_, d), (d, f_)];
    let bf16_rest = 2 * (32 * 2 * d + d + 2 * 128256 * d);
    let layer_params: u64 = mats.iter().map(|(n, k)| n * k).sum();
    assert_eq!(f.memory.weight_bytes, 2 * 32 * layer_params + bf16_rest);
    let fp8: u64 = mats.iter().map(|(n, k)| n * k + 4).sum();
    let int4: u64 = mats.iter().map(|(n, k)| n * k / 2 + (k / INT4_GROUP) * n * 2 * 2).sum();
    for (weights, per_layer) in [(WeightPrecision::Fp8, fp8), (WeightPrecision::Int4, int4)] {
        let s = llama3_8b(weights, KvCachePrecision::Bf16);
        let g = model::figures(&s).unwrap();
        assert_eq!(g.memory.weight_bytes, 32 * per_layer + bf16_rest, "{weights}");
        assert_eq!(g.parameters, f.parameters, "parameters are unchanged by {weights}");
        assert_eq!(g.memory.kv_cache_bytes_per_token, f.memory.kv_cache_bytes_per_token);
        assert_eq!(g.memory.activation_peak_bytes, f.memory.activation_peak_bytes);
    }
    // KV cache: 2 (K and V) x layers x kv heads x head dim x bytes per value.
    let kv8 = model::figures(&llama3_8b(WeightPrecision::Bf16, KvCachePrecision::Fp8)).unwrap();
    assert_eq!(f.memory.kv_cache_bytes_per_token, 2 * 32 * 8 * 128 * 2);
    assert_eq!(kv8.memory.kv_cache_bytes_per_token, 2 * 32 * 8 * 128);
    assert_eq!(kv8.parameters, f.parameters);
    // `fits`: 16 GB of bf16 weights do not fit in 12 GiB, 8 GB of fp8 ones do.
    let gib = (1u64 << 30) as f64;
    let fits = |s: &LayerShape| model::fits(s, 12.0 * gib, 1, 1024).unwrap();
    assert!(!fits(&bf16));
    assert!(fits(&llama3_8b(WeightPrecision::Fp8, KvCachePrecision::Bf16)));
    // and the cache: at batch 64 and 32k tokens the fp8 cache needs half.
    let cache = |s: &LayerShape| model::kv_cache_bytes(s, 64, 32768).unwrap();
    assert_eq!(2 * cache(&kv8_shape()), cache(&bf16));
}

fn kv8_shape() -> LayerShape {
    llama3_8b(WeightPrecision::Bf16, KvCachePrecision::Fp8)
}

#[test]
fn the_breakdowns_change_where_the_format_says() {
    let h200 = Registry::builtin().resolve(&GpuTarget::builtin("h200")).unwrap();
    let step = h200.step_throughputs().unwrap();
    let decode = |s: &LayerShape| model::decode(s, &step, s.batch_size, model::context_of(s)).unwrap();
    let bf16 = decode(&llama3_8b(WeightPrecision::Bf16, KvCachePrecision::Bf16));
    let fp8 = decode(&llama3_8b(WeightPrecision::Fp8, KvCachePrecision::Bf16));
    let kv8 = decode(&llama3_8b(WeightPrecision::Fp8, KvCachePrecision::Fp8));
    for gemm in ["qkv_projection", "output_projection", "mlp_gate_up", "mlp_down"] {
        assert!(
            fp8.per_kernel[gemm] < bf16.per_kernel[gemm],
            "{gemm} reads fewer bytes in fp8"
        );
    }
    for same in [
        "attention_over_context",
        "lm_head",
        "embedding",
        "mlp_activation",
        "norms",
    ] {
        assert_eq!(
            fp8.per_kernel[same], bf16.per_kernel[same],
            "{same} does not read the weights"
        );
    }
    // An fp8 cache halves what attention reads; the projections do not change.
    assert!(kv8.per_kernel["attention_over_context"] < 0.6 * fp8.per_kernel["attention_over_context"]);
    assert_eq!(kv8.per_kernel["mlp_down"], fp8.per_kernel["mlp_down"]);
    // The KV cache is a larger share of every fp8 step.
    let share = |d: &model::StepTime| d.per_kernel["attention_over_context"] / d.total_ms;
    assert!(share(&fp8) > share(&bf16));
    // Prefill: the four GEMMs run on the fp8 rate; attention and norms do not change.
    let layer = |s: LayerShape| {
        let latency = nas::gpu::Latencies::new(std::slice::from_ref(&h200), &[s]);
        latency.kernels(0, 0)
    };
    let (p16, p8) = (
        layer(llama3_8b(WeightPrecision::Bf16, KvCachePrecision::Bf16)),
        layer(llama3_8b(WeightPrecision::Fp8, KvCachePrecision::Bf16)),
    );
    assert!(p8.get("mlp_gate_up") < 0.8 * p16.get("mlp_gate_up"));
    assert_eq!(p8.get("attention"), p16.get("attention"));
    assert_eq!(p8.get("pre_attn_rmsnorm"), p16.get("pre_attn_rmsnorm"));
}

#[test]
fn nas_kernel_answers_fp8_gemms_and_the_h100_says_it_is_transferred() {
    let r = Registry::builtin();
    let h200 = r.resolve(&GpuTarget::builtin("h200")).unwrap();
    let h100 = r.resolve(&GpuTarget::builtin("h100")).unwrap();
    let gemm = |m, dtype| KernelQuery::Gemm {
        m,
        n: 28672,
        k: 8192,
        dtype,
    };
    for m in [1u64, 16, 128, 1024, 8192, 32768] {
        let (b, f) = (
            h200.kernel(&gemm(m, GemmDtype::Bf16)).unwrap(),
            h200.kernel(&gemm(m, GemmDtype::Fp8)).unwrap(),
        );
        assert!(
            f.latency_ms < b.latency_ms,
            "fp8 is faster at M = {m}: {} vs {}",
            f.latency_ms,
            b.latency_ms
        );
        let sum: f64 = f.per_resource.iter().map(|p| p.ms).sum();
        assert!((sum - f.latency_ms).abs() < 1e-12 * f.latency_ms);
        assert!(
            f.per_resource.iter().any(|p| p.resource.contains("fp8")),
            "{:?}",
            f.per_resource
        );
    }
    let big = h200.kernel(&gemm(32768, GemmDtype::Fp8)).unwrap();
    assert_eq!(big.bound, "compute");
    // The quantization of the activation is part of the answer.
    assert!(big.per_resource.iter().any(|p| p.resource == "fp8_quant_bytes"));
    let moved = h100.kernel(&gemm(4096, GemmDtype::Fp8)).unwrap();
    assert!(
        moved.source.contains("transferred from NVIDIA H200"),
        "{}",
        moved.source
    );
    assert!(!h200
        .kernel(&gemm(4096, GemmDtype::Fp8))
        .unwrap()
        .source
        .contains("transferred"));
}

#[test]
fn the_committed_precision_fidelity_report_is_what_the_code_writes() {
    use nas::calibrate::precision_fit;
    let h200 = |f: &str| repo(&format!("calibration/data/h200/{f}"));
    let files: Vec<String> = [
        "fp8-micro.jsonl",
        "int4-micro.jsonl",
        "fp8-layers.jsonl",
        "precision-layers.jsonl",
        "precision-micro.jsonl",
        "precision-decode.jsonl",
        "precision-decode-stack.jsonl",
    ]
    .map(h200)
    .to_vec();
    let profile = nas::calibrate::CalibrationProfile::from_json(
        &std::fs::read_to_string(repo("calibration/h200.json")).unwrap(),
        "p",
    )
    .unwrap();
    let data = precision_fit::read(&files).unwrap();
    let layers = nas::calibrate::MeasurementSet::read(&[h200("layers.jsonl")]).unwrap();
    let validation: Vec<LayerShape> = layers
        .measurements
        .iter()
        .filter(|m| m.set == "validation")
        .filter_map(|m| match &m.subject {
            nas::calibrate::Subject::Layer(s) => Some(**s),
            _ => None,
        })
        .collect();
    let rows = precision_fit::predict_rows(&profile, &data, &validation).unwrap();
    // The committed section is what the fit gives on these files (with the bf16 constants fixed).
    let limits = profile.physical_limits().unwrap();
    let (refit, fitted_rows) = precision_fit::fit(&profile, &data, &validation, &limits).unwrap();
    let committed = profile.precision.as_ref().unwrap();
    assert_eq!(refit.layer_values(), committed.layer_values());
    assert_eq!(refit.kernel_values(), committed.kernel_values());
    assert_eq!(refit.residuals, committed.residuals);
    assert_eq!(fitted_rows.len(), rows.len());
    // Every fitted rate within its spec-sheet bound, none faster.
    refit.check(Some(&limits)).unwrap();
    // The Must-show: held-out fp8 layers and fp8 decode steps within 8% MAPE.
    let mape = nas::report::precision_fidelity::mape_by_group(&rows);
    let held = |g: &str| mape[&(g.to_string(), "validation".to_string())];
    assert!(held("prefill_layer") <= 8.0, "{mape:?}");
    assert!(held("decode_fp8") <= 8.0, "{mape:?}");
    assert!(held("decode_int4") <= 15.0, "{mape:?}");
    // Validation rows were never fitted on: 23 fp8 layers of this run and one of the first.
    assert_eq!(
        rows.iter()
            .filter(|r| r.group == "prefill_layer" && r.set == "validation")
            .count(),
        24
    );
    // The committed report, from these files with the command fit.sh runs.
    let rel: Vec<String> = files
        .iter()
        .map(|f| f.trim_start_matches(&repo("")).trim_start_matches('/').to_string())
        .collect();
    let command = format!(
        "nas fidelity --calibration calibration/h200.json --precision {} --measurements calibration/data/h200/layers.jsonl --out docs/results/precision-fidelity-h200",
        rel.join(" ")
    );
    let md = nas::report::precision_fidelity::markdown(&profile, "calibration/h200.json", &data, &rows, &command);
    let committed = std::fs::read_to_string(repo("docs/results/precision-fidelity-h200.md")).unwrap();
    assert!(
        committed == md,
        "docs/results/precision-fidelity-h200.md is not what the code writes: run `bash calibration/fit.sh`"
    );
}
