//! `nas predict` and `nas import` on Hugging Face configs: a lone config
//! named by its file stem, arrays mixing configs and today's shapes, the
//! workload flags, warnings on stderr, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas")).args(args).output().unwrap()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nas-cli-stack-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf-configs")
        .join(format!("{name}.json"))
        .to_string_lossy()
        .into_owned()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// transformers' own count of a fixture.
fn truth(name: &str, key: &str) -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-configs/transformers-counts.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all["models"][name][key].as_u64().unwrap()
}

/// Runs a successful `nas` and returns (stdout as JSON or text, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let out = nas(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn predict(args: &[&str]) -> (Vec<Value>, String) {
    let mut all = vec!["predict", "--hardware", "h100"];
    all.extend_from_slice(args);
    let (stdout, stderr) = ok(&all);
    (serde_json::from_str(&stdout).unwrap(), stderr)
}

#[test]
fn predict_takes_a_config_as_it_is_named_by_its_file_stem() {
    let (out, stderr) = predict(&["--configs", &fixture("qwen2.5-7b")]);
    assert!(stderr.is_empty(), "no warnings for a real config: {stderr}");
    let m = &out[0];
    assert_eq!(m["name"], "qwen2.5-7b");
    assert_eq!(m["model_type"], "qwen2");
    assert_eq!(m["params"], 7_615_616_512u64);
    assert_eq!(m["weight_bytes"], 2 * 7_615_616_512u64);
    assert!(m.get("active_params").is_none(), "dense: no active_params");
    assert_eq!(m["workload"], json!({"seq_len": 2048, "batch": 1, "context": 2048}));
    // 28 layers x 2 (K, V) x 4 kv heads x 128 x 2 bytes.
    assert_eq!(m["kv_cache_bytes_per_token"], 28 * 2 * 4 * 128 * 2);
    assert_eq!(m["kv_cache"]["bytes"], 28 * 2 * 4 * 128 * 2 * 2048u64);
    assert_eq!(m["fits"], true);
    assert_eq!(m["cost_model"], "measured");
    assert!(m["source"].as_str().unwrap().starts_with("h100: measured"));
    let prefill: f64 = m["prefill_per_kernel"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((prefill / m["prefill_ms"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!(
        m["decode_per_kernel"]["bias_adds"].as_f64().unwrap() > 0.0,
        "Qwen2's q/k/v biases cost"
    );
    assert!(m.get("loss_estimate").is_none() && m.get("estimated_kernels").is_none());
    // With training tokens a dense model gets a loss estimate.
    let (out, _) = predict(&[
        "--configs",
        &fixture("qwen2.5-7b"),
        "--training-tokens",
        "18000000000000",
    ]);
    let loss = out[0]["loss_estimate"].as_f64().unwrap();
    assert!(loss > 1.5 && loss < 2.5, "{loss}");
}

#[test]
fn a_mixture_says_its_active_parameters_and_gets_no_dense_loss_estimate() {
    let (out, stderr) = predict(&[
        "--configs",
        &fixture("mixtral-8x7b-v0.1"),
        "--batch",
        "16",
        "--context",
        "4096",
        "--training-tokens",
        "1000000000000",
    ]);
    assert!(stderr.is_empty(), "{stderr}");
    let m = &out[0];
    assert_eq!(m["params"], 46_702_792_704u64);
    assert_eq!(m["active_params"], truth("mixtral-8x7b-v0.1", "active_params"));
    assert!(m.get("loss_estimate").is_none());
    assert!(m["loss_estimate_note"].as_str().unwrap().contains("dense models only"));
    // The H100's MoE model is the H200's fit carried over: said, and no kernel is a roofline estimate.
    let moe_source = m["kernel_sources"]["moe"].as_str().unwrap();
    assert!(moe_source.contains("transferred from NVIDIA H200"), "{moe_source}");
    assert!(m.get("estimated_kernels").is_none() && m.get("estimate_note").is_none());
    assert_eq!(m["workload"], json!({"seq_len": 2048, "batch": 16, "context": 4096}));
    assert_eq!(m["kv_cache"]["bytes"], 16 * 32 * 2 * 8 * 128 * 2 * 4096u64);
    // 93 GB of bf16 weights do not fit an 80 GB H100.
    assert_eq!(m["fits"], false);
    let tps = m["decode_tokens_per_s"].as_f64().unwrap();
    assert!((tps - 16.0 / (m["decode_ms"].as_f64().unwrap() / 1e3)).abs() < 1e-6);
}

#[test]
fn an_array_mixes_configs_and_shapes_and_shapes_keep_todays_output() {
    let dir = TempDir::new("mixed");
    let shape = json!({"name": "s", "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 2, "head_dim": 128,
                       "ffn_dim": 8192, "seq_len": 2048, "batch_size": 1, "context_len": 2048,
                       "num_layers": 24, "vocab_size": 32000});
    let mut gemma = fixture_json("gemma-3-1b");
    gemma["name"] = json!("g");
    let mut olmo = fixture_json("olmo-2-1124-7b");
    olmo.as_object_mut().unwrap().remove("name");
    olmo["_name_or_path"] = json!("allenai/OLMo-2-1124-7B");
    let mixed = dir.file("mixed.json", &json!([gemma, shape, olmo]).to_string());
    let alone = dir.file("alone.json", &json!([shape]).to_string());
    let (out, _) = predict(&["--configs", &mixed]);
    let names: Vec<&str> = out.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["g", "s", "allenai/OLMo-2-1124-7B"]);
    assert_eq!(out[0]["params"], 999_885_952u64);
    assert_eq!(out[2]["params"], 7_298_617_344u64);
    let (today, _) = predict(&["--configs", &alone]);
    assert_eq!(out[1], today[0], "a shape in a mixed array predicts as alone");
    // A config that shares its array with shapes takes the flags; shapes that set their keys keep them.
    let (flagged, _) = predict(&["--configs", &mixed, "--batch", "4", "--context", "512"]);
    assert_eq!(flagged[1], today[0]);
    assert_eq!(
        flagged[0]["workload"],
        json!({"seq_len": 2048, "batch": 4, "context": 512})
    );
}

#[test]
fn workload_flags_fill_what_shapes_leave_out() {
    let dir = TempDir::new("flags");
    let shape = json!({"name": "s", "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 2, "head_dim": 128,
                       "ffn_dim": 8192, "num_layers": 24, "vocab_size": 32000});
    let without = dir.file("without.json", &json!([shape]).to_string());
    // No seq_len anywhere: the shape is incomplete, as today.
    let out = nas(&["predict", "--hardware", "h100", "--configs", &without]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("missing key `seq_len`"));
    let (filled, _) = predict(&[
        "--configs",
        &without,
        "--seq-len",
        "1024",
        "--batch",
        "2",
        "--context",
        "4096",
    ]);
    let mut full = shape.clone();
    for (k, v) in [("seq_len", 1024), ("batch_size", 2), ("context_len", 4096)] {
        full[k] = json!(v);
    }
    let explicit = dir.file("explicit.json", &json!([full]).to_string());
    let (same, _) = predict(&["--configs", &explicit]);
    assert_eq!(filled, same);
    // A config's context defaults to its sequence length.
    let (out, _) = predict(&["--configs", &fixture("llama-3.2-1b"), "--seq-len", "512"]);
    assert_eq!(out[0]["workload"], json!({"seq_len": 512, "batch": 1, "context": 512}));
}

#[test]
fn unknown_keys_are_warnings_on_stderr_and_bad_values_exit_2() {
    let dir = TempDir::new("warn");
    let mut cfg = fixture_json("llama-3.2-1b");
    cfg["frobnicate"] = json!(1);
    let path = dir.file("odd.json", &cfg.to_string());
    let (out, stderr) = predict(&["--configs", &path]);
    assert_eq!(out[0]["params"], 1_235_814_400u64, "an unknown key changes nothing");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("warning: ") && stderr.contains("frobnicate"),
        "{stderr}"
    );
    // DeepSeek-V3's fp8 checkpoint: counted, with a warning that weights are bf16 here.
    let (out, stderr) = predict(&["--configs", &fixture("deepseek-v3")]);
    assert_eq!(out[0]["params"], truth("deepseek-v3", "params"));
    assert_eq!(out[0]["active_params"], truth("deepseek-v3", "active_params"));
    assert!(stderr.contains("quantization_config: `fp8`"), "{stderr}");
    cfg["num_key_value_heads"] = json!(3);
    let bad = dir.file("bad.json", &cfg.to_string());
    let out = nas(&["predict", "--hardware", "h100", "--configs", &bad]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr.trim_end(),
        format!("error: {bad}: num_key_value_heads: 3 does not divide num_attention_heads = 32")
    );
}

#[test]
fn import_prints_a_known_block_and_a_json_shape_predict_reads() {
    let (text, stderr) = ok(&["import", &fixture("llama-3.1-8b"), &fixture("gemma-2-9b")]);
    assert!(stderr.is_empty(), "{stderr}");
    assert!(text.contains(
        "known llama_3_1_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, \
         qk_norm: false, window: full, num_layers: 32, vocab_size: 128256, tie_embeddings: false }"
    ));
    assert!(text.contains("known gemma_2_9b {"));
    assert!(
        text.contains("the layer pattern"),
        "Gemma-2's alternation is named as missing"
    );
    assert!(text.contains("4 norms per layer"));
    // The JSON shape of Llama (nothing the DSL cannot say) predicts the config's own count.
    let start = text.find("{\n").unwrap();
    let end = start + text[start..].find("\n}").unwrap() + 2;
    let mut shape: Value = serde_json::from_str(&text[start..end]).unwrap();
    assert_eq!(shape["stack"]["model_type"], "llama");
    assert_eq!(shape["not_expressed"], json!([]));
    let obj = shape.as_object_mut().unwrap();
    obj.remove("stack");
    obj.remove("not_expressed");
    let dir = TempDir::new("import");
    let path = dir.file("shape.json", &json!([shape]).to_string());
    let (out, _) = predict(&["--configs", &path]);
    assert_eq!(out[0]["params"], 8_030_261_248u64);
    // A mixture the DSL says whole: its block has its mixture fields, nothing is missing.
    let (text, _) = ok(&["import", &fixture("qwen3-30b-a3b")]);
    assert!(text.contains("experts: 128, top_k: 8, expert_ffn_dim: 768 }"), "{text}");
    assert!(!text.contains("not expressed in the DSL"), "{text}");
    assert!(text.contains("30532122624 parameters (3353032704 active)"));
    // Its JSON shape predicts the config's own counts.
    let start = text.find("{\n").unwrap();
    let end = start + text[start..].find("\n}").unwrap() + 2;
    let mut shape: Value = serde_json::from_str(&text[start..end]).unwrap();
    assert_eq!(shape["experts"], 128);
    let obj = shape.as_object_mut().unwrap();
    obj.remove("stack");
    obj.remove("not_expressed");
    let path = dir.file("moe.json", &json!([shape]).to_string());
    let (out, _) = predict(&["--configs", &path]);
    assert_eq!(out[0]["params"], 30_532_122_624u64);
    assert_eq!(out[0]["active_params"], 3_353_032_704u64);
    // One the DSL cannot say whole (gpt-oss: sinks, biases) still says what its block stands for.
    let (text, _) = ok(&["import", &fixture("gpt-oss-20b")]);
    assert!(
        text.contains("written as the dense width a token passes through"),
        "{text}"
    );
}

#[test]
fn the_known_blocks_import_prints_compile_as_dsl() {
    let case =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/pass/imported_known_blocks.rs"))
            .unwrap();
    let names = [
        "gemma-2-9b",
        "deepseek-v3",
        "gpt2",
        "qwen3-30b-a3b",
        "gpt-oss-20b",
        "olmo-2-1124-7b",
    ];
    for name in names {
        let (text, _) = ok(&["import", &fixture(name)]);
        let known = text.lines().find(|l| l.starts_with("known ")).unwrap();
        assert!(
            case.contains(known),
            "tests/ui/pass/imported_known_blocks.rs lacks `{known}`"
        );
    }
}
