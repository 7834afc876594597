//! The `nas` binary: predictions equal the seed's, and bad input gets a
//! one-line error naming the problem and exit code 2, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas")).args(args).output().unwrap()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nas-cli-{tag}-{}", std::process::id()));
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

fn good_shape() -> Value {
    json!({"name": "a", "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 2, "head_dim": 128,
           "ffn_dim": 8192, "seq_len": 2048, "batch_size": 1, "use_qk_norm": true, "window_size": 1024})
}

/// Runs `predict` on `configs` and returns the error line; asserts exit 2 and one line.
fn predict_error(dir: &TempDir, configs: &str, extra: &[&str]) -> String {
    let path = dir.file("configs.json", configs);
    let mut args = vec!["predict", "--hardware", "h100", "--configs", &path];
    args.extend_from_slice(extra);
    let out = nas(&args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn predict_reproduces_the_seed_per_kernel_numbers() {
    let seed: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/noeris-multihardware-pack-uncalibrated.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = TempDir::new("predict");
    for hw in ["a100", "t4", "h100"] {
        let comparison = seed["reports"][hw]["comparison"].as_array().unwrap();
        let configs: Vec<Value> = comparison
            .iter()
            .map(|c| {
                let mut cfg = c["config"].clone();
                cfg["name"] = c["name"].clone();
                cfg
            })
            .collect();
        let path = dir.file("all.json", &serde_json::to_string(&configs).unwrap());
        let out = nas(&["predict", "--hardware", hw, "--cost-model", "seed", "--configs", &path]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got.len(), comparison.len());
        for (g, want) in got.iter().zip(comparison) {
            assert_eq!(g["name"], want["name"], "input order kept");
            assert_eq!(g["bottleneck"], want["bottleneck"]);
            assert_eq!(g["tile_penalties"], want["tile_penalties"]);
            let close = |a: &Value, b: &Value| {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
            };
            assert!(close(&g["total_ms"], &want["total_ms"]), "{hw} {}", want["name"]);
            let kernels = want["per_kernel"].as_object().unwrap();
            assert_eq!(g["per_kernel"].as_object().unwrap().len(), kernels.len());
            for (k, v) in kernels {
                assert!(close(&g["per_kernel"][k], v), "{hw} {} {k}", want["name"]);
            }
        }
    }
}

#[test]
fn predict_applies_overrides_and_calibration_db() {
    let dir = TempDir::new("override");
    let path = dir.file("one.json", &json!([good_shape()]).to_string());
    let total = |args: &[&str]| -> f64 {
        let mut all = vec![
            "predict",
            "--hardware",
            "a100",
            "--cost-model",
            "seed",
            "--configs",
            &path,
        ];
        all.extend_from_slice(args);
        let out = nas(&all);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["total_ms"].as_f64().unwrap()
    };
    let base = total(&[]);
    assert!(
        total(&["--override", "matmul_tflops=400"]) < base,
        "faster matmuls, lower latency"
    );
    let db = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/calibration/seed/noeris-cost-model-training.json"
    );
    assert!(total(&["--calibration", db]) < base, "the DB raises A100 throughputs");
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_code_2() {
    let dir = TempDir::new("bad");
    let with = |key: &str, value: Value| {
        let mut s = good_shape();
        s[key] = value;
        json!([s]).to_string()
    };
    let without = |key: &str| {
        let mut s = good_shape();
        s.as_object_mut().unwrap().remove(key);
        json!([s]).to_string()
    };
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        ("[{\"name\": ".into(), vec![], "invalid JSON"),
        ("{}".into(), vec![], "expected a JSON array"),
        (without("ffn_dim"), vec![], "configs[0]: missing key `ffn_dim`"),
        (without("name"), vec![], "missing key `name`"),
        (
            with("hidden_dim", json!("2048")),
            vec![],
            "`hidden_dim` must be a positive integer",
        ),
        (
            with("use_qk_norm", json!(1)),
            vec![],
            "`use_qk_norm` must be true or false",
        ),
        (
            with("hidden_dmi", json!(1)),
            vec![],
            "unknown key `hidden_dmi` (did you mean `hidden_dim`?)",
        ),
        (with("ffn_dim", json!(0)), vec![], "`ffn_dim` must be at least 1"),
        (
            with("seq_len", json!(-4)),
            vec![],
            "`seq_len` must be a positive integer, got -4",
        ),
        (
            with("num_kv_heads", json!(32)),
            vec![],
            "`num_kv_heads` = 32 is above `num_heads` = 16",
        ),
        (with("num_kv_heads", json!(3)), vec![], "does not divide"),
        (with("head_dim", json!(1u64 << 40)), vec![], "absurdly large"),
        (
            {
                let mut s = good_shape();
                s["seq_len"] = json!(16_000_000);
                s["batch_size"] = json!(16_000_000);
                s["window_size"] = Value::Null;
                json!([s]).to_string()
            },
            vec![],
            "overflow",
        ),
        (
            json!([good_shape()]).to_string(),
            vec!["--cost-model", "seed", "--override", "matmul_tflop=3"],
            "unknown override key `matmul_tflop`",
        ),
        (
            json!([good_shape()]).to_string(),
            vec!["--cost-model", "seed", "--override", "matmul_tflops=NaN"],
            "finite positive",
        ),
        (
            json!([good_shape()]).to_string(),
            vec!["--cost-model", "seed", "--override", "matmul_tflops=-1"],
            "finite positive",
        ),
        (
            json!([good_shape()]).to_string(),
            vec!["--cost-model", "seed", "--override", "matmul_tflops"],
            "is not KEY=VALUE",
        ),
    ];
    for (configs, extra, expected) in cases {
        let err = predict_error(&dir, &configs, &extra);
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    }
}

#[test]
fn unknown_hardware_and_missing_files_are_errors() {
    let dir = TempDir::new("hw");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let out = nas(&["predict", "--hardware", "h1000", "--configs", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown hardware `h1000` (did you mean `h100`?)"), "{err}");

    let out = nas(&["predict", "--hardware", "h100", "--configs", "/nonexistent/c.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/c.json"));

    let bad_db = dir.file("db.json", "{\"records\": []}");
    let out = nas(&[
        "predict",
        "--hardware",
        "a100",
        "--cost-model",
        "seed",
        "--configs",
        &path,
        "--calibration",
        &bad_db,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("`records` object"));
}

#[test]
fn pack_into_a_missing_folder_fails_cleanly() {
    let dir = TempDir::new("pack");
    let prefix = dir.0.join("no/such/folder/pack");
    let out = nas(&["pack", "--seed", "--out", prefix.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0, "nothing written");
}

#[test]
fn hardware_lists_profiles_and_provenance() {
    let out = nas(&["hardware"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Per GPU: its spec sheet, each cost model with where its numbers come from.
    let section = |key: &str| -> String {
        let start = text.find(&format!("\n{key} (")).map_or(0, |i| i + 1);
        let rest = &text[start..];
        let end = rest[1..]
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .find(|&i| rest[1..][i..].starts_with(|c: char| c.is_ascii_alphanumeric()))
            .map_or(rest.len(), |i| i + 1);
        rest[..end].to_string()
    };
    for key in ["a100", "t4"] {
        let s = section(key);
        assert!(s.contains("cost model `seed`: seed tool's hand-set constants"), "{s}");
        assert!(
            s.contains("cost model `measured`: not available") && s.contains("no measured profile"),
            "{s}"
        );
    }
    for (key, profile) in [("h100", "calibration/h100-sxm.json"), ("h200", "calibration/h200.json")] {
        let s = section(key);
        assert!(
            s.contains("cost model `measured` (default): kernel-aware model fitted on"),
            "{s}"
        );
        assert!(
            s.contains(&format!("profile: {profile} (built in), data sha256 ")),
            "{s}"
        );
        assert!(
            s.contains("held out: MAPE ") && s.contains("`validation` layers never fitted on"),
            "{s}"
        );
        assert!(s.contains("spec sheet: 132 SMs"), "{s}");
    }
    assert!(section("h200").contains("cost model `seed`: not available"));
    assert!(section("h100").contains("matmul_tflops=500"));
    assert!(text.contains("memory 16 GiB") && text.contains("memory 80 GiB"));
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_committed_profiles_are_reproducible_from_the_committed_data() {
    let dir = TempDir::new("calibrate");
    for (gpu, profile) in [("h100", "calibration/h100-sxm.json"), ("h200", "calibration/h200.json")] {
        let out = dir.0.join(format!("{gpu}.json"));
        let files: Vec<String> = ["layers.jsonl", "layers-supplement.jsonl", "layers-supplement-2.jsonl"]
            .iter()
            .map(|f| repo(&format!("calibration/data/{gpu}/{f}")))
            .collect();
        let mut args = vec!["calibrate", "--out", out.to_str().unwrap(), "--measurements"];
        args.extend(files.iter().map(String::as_str));
        let run = nas(&args);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let ours: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let committed: Value = serde_json::from_str(&std::fs::read_to_string(repo(profile)).unwrap()).unwrap();
        assert_eq!(
            ours["fitted"], committed["fitted"],
            "{profile} is what `nas calibrate` gives"
        );
        assert_eq!(ours["data"]["sha256"], committed["data"]["sha256"]);
        assert_eq!(
            ours["data"]["sets_used"],
            json!(["train"]),
            "validation is never fitted on"
        );
    }
}

#[test]
fn fidelity_on_the_validation_layers_meets_the_bar() {
    let dir = TempDir::new("fidelity");
    let prefix = dir.0.join("fid");
    for (gpu, profile) in [("h100", "calibration/h100-sxm.json"), ("h200", "calibration/h200.json")] {
        let run = nas(&[
            "fidelity",
            "--calibration",
            &repo(profile),
            "--measurements",
            &repo(&format!("calibration/data/{gpu}/layers.jsonl")),
            "--out",
            prefix.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let md = std::fs::read_to_string(dir.0.join("fid.md")).unwrap();
        let ours = md.lines().find(|l| l.starts_with("| kernel-aware")).unwrap();
        let cells: Vec<f64> = ours
            .split('|')
            .filter_map(|c| c.trim().trim_end_matches('%').parse().ok())
            .collect();
        let (mape, within, spearman) = (cells[0], cells[1], cells[3]);
        assert!(mape <= 5.0 && within >= 90.0 && spearman >= 0.995, "{gpu}: {ours}");
        let svg = std::fs::read_to_string(dir.0.join("fid.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // The page holds the scatter plot itself, not a link to the file.
        let html = std::fs::read_to_string(dir.0.join("fid.html")).unwrap();
        assert!(html.contains(svg.trim_end()), "{gpu}: the SVG is inlined");
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(!html.contains("<img") && !html.contains("fid.svg"));
        assert!(html.contains("<table>") && html.contains("predicted vs measured"));
    }
}

#[test]
fn predict_with_a_profile_uses_the_kernel_aware_model() {
    let dir = TempDir::new("profile");
    let mut big = good_shape();
    big["name"] = json!("b");
    big["seq_len"] = json!(8192);
    let path = dir.file("c.json", &json!([good_shape(), big]).to_string());
    let out = nas(&[
        "predict",
        "--hardware",
        "h100",
        "--calibration",
        &repo("calibration/h100-sxm.json"),
        "--configs",
        &path,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let kernels = v[0]["per_kernel"].as_object().unwrap();
    for k in [
        "qkv_projection",
        "attention",
        "mlp_gate_up",
        "mlp_down",
        "launch_overhead",
    ] {
        assert!(kernels.contains_key(k), "{kernels:?}");
    }
    let sum: f64 = kernels.values().map(|x| x.as_f64().unwrap()).sum();
    let total = v[0]["total_ms"].as_f64().unwrap();
    assert!((sum - total).abs() < 1e-12 * total);
    assert!(v[1]["total_ms"].as_f64().unwrap() > 2.0 * total, "4x the tokens");

    assert_eq!(v[0]["cost_model"], "measured");
    assert!(
        v[0]["source"].as_str().unwrap().contains("calibration/h100-sxm.json"),
        "{}",
        v[0]
    );
    let builtin = nas(&["predict", "--hardware", "h100", "--configs", &path]);
    let builtin: Vec<Value> = serde_json::from_slice(&builtin.stdout).unwrap();
    assert_eq!(
        builtin[0]["total_ms"], v[0]["total_ms"],
        "the built-in profile is the committed one"
    );

    let bad = nas(&[
        "predict",
        "--hardware",
        "h100",
        "--calibration",
        &repo("calibration/h100-sxm.json"),
        "--override",
        "matmul_tflops=1",
        "--configs",
        &path,
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn bad_measurement_files_are_errors_and_nothing_is_written() {
    let dir = TempDir::new("badmeas");
    let out = dir.0.join("profile.json");
    let good = std::fs::read_to_string(repo("calibration/data/h100/layers.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    let cases = [
        (
            format!("{first}\n{{\"kind\": \"layer\", \"set\""),
            "bad.jsonl:2: invalid JSON",
        ),
        (
            first.replace("\"median_ms\": 0.03411", "\"median_ms\": -1"),
            "median_ms",
        ),
        (
            first.replace("\"num_kv_heads\": 8", "\"num_kv_heads\": 3"),
            "does not divide",
        ),
        (
            first.replace("\"kind\": \"layer\"", "\"kind\": \"softmax\""),
            "unknown kind `softmax`",
        ),
        (String::new(), "no usable record"),
        (first.to_string(), "1 measurements to fit"),
    ];
    for (text, expected) in cases {
        let path = dir.file("bad.jsonl", &text);
        let run = nas(&["calibrate", "--measurements", &path, "--out", out.to_str().unwrap()]);
        let err = String::from_utf8(run.stderr).unwrap();
        assert_eq!(run.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "expected `{expected}` in {err}");
        assert!(!out.exists(), "no profile written");
    }
}

#[test]
fn search_streams_a_json_spec_deterministically() {
    let spec = repo("examples/specs/gqa-sweep.json");
    let run = || nas(&["search", "--spec", &spec, "--quiet"]);
    let (a, b) = (run(), run());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout, "same spec, same bytes");
    let v: Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["combinations"], 4320);
    let h100 = &v["results"][2];
    assert_eq!(h100["hardware"], "h100");
    assert_eq!(h100["total_ms_top"].as_array().unwrap().len(), 10);
    let front = h100["pareto_front"].as_array().unwrap();
    assert!(front.windows(2).all(|w| {
        w[0]["total_ms"].as_f64() < w[1]["total_ms"].as_f64()
            && w[0]["quality_proxy"].as_f64() < w[1]["quality_proxy"].as_f64()
    }));
    for e in h100["quality_constrained_top"].as_array().unwrap() {
        assert_eq!(e["constraint_passes"], true);
    }
}

#[test]
fn bad_search_specs_and_bench_arguments_are_errors() {
    let dir = TempDir::new("search");
    let cases = [
        ("{\"hardware\": [\"h100\"]}", "missing key `family`"),
        ("[1, 2]", "expected an object"),
        (
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [1000]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [4096]}], "name": "x{hidden_dim}"}}"#,
            "no valid candidate",
        ),
        (
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [1024]}, {"axis": "head_dim", "values": [128]}, {"axis": "window", "values": [0]}, {"axis": "ffn_dim", "values": [4096]}], "name": "x"}}"#,
            "family.axes[2].values[0]: `window` must be at least 1, got 0",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.file("spec.json", text);
        let out = nas(&["search", "--spec", &path]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "expected `{expected}` in {err}");
    }
    let out = nas(&["bench", "--candidates", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = nas(&["bench", "--candidates", "1000", "--hardware", "h100,x9"]);
    assert!(String::from_utf8(out.stderr).unwrap().contains("unknown hardware `x9`"));
}

#[test]
fn bench_prints_one_json_line() {
    let out = nas(&[
        "bench",
        "--candidates",
        "100000",
        "--hardware",
        "a100,h100",
        "--cost-model",
        "seed",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["candidates"].as_u64(), v["hardware"].as_u64()),
        (Some(100_000), Some(2))
    );
    for key in [
        "seconds",
        "valid_evaluations_per_second",
        "combinations_per_second",
        "valid_candidates",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {text}");
    }
    // The headline counts valid candidate x GPU evaluations only.
    let (valid, seconds) = (v["valid_candidates"].as_f64().unwrap(), v["seconds"].as_f64().unwrap());
    let headline = v["valid_evaluations_per_second"].as_f64().unwrap();
    assert!((headline - valid * 2.0 / seconds).abs() <= 1e-9 * headline, "{text}");
    assert!(valid < 100_000.0, "the bench family has invalid combinations");
    assert_eq!(v["cost_models"], json!(["a100: seed", "h100: seed"]));
}

fn llama3_8b() -> Value {
    json!({"name": "llama3_8b", "hidden_dim": 4096, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128,
           "ffn_dim": 14336, "seq_len": 2048, "batch_size": 8, "use_qk_norm": false, "num_layers": 32,
           "vocab_size": 128256, "tie_embeddings": false, "context_len": 8192, "training_tokens": 15e12})
}

#[test]
fn predict_adds_whole_model_keys_when_the_input_has_them() {
    let dir = TempDir::new("whole");
    let configs = dir.file("c.json", &json!([llama3_8b(), good_shape()]).to_string());
    let run = nas(&[
        "predict",
        "--hardware",
        "h100",
        "--cost-model",
        "seed",
        "--configs",
        &configs,
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out: Value = serde_json::from_slice(&run.stdout).unwrap();
    let (model, layer) = (&out[0], &out[1]);
    assert_eq!(model["params"], 8_030_261_248u64);
    assert_eq!(model["weight_bytes"], 2 * 8_030_261_248u64);
    assert_eq!(model["kv_cache_bytes_per_token"], 131_072);
    let (prefill, layer_ms) = (
        model["prefill_ms"].as_f64().unwrap(),
        model["total_ms"].as_f64().unwrap(),
    );
    assert!(prefill > 32.0 * layer_ms, "32 layers plus embedding and LM head");
    let decode: f64 = model["decode_per_kernel"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_f64)
        .sum();
    assert!((decode - model["decode_ms"].as_f64().unwrap()).abs() < 1e-9);
    assert!((1.9..2.0).contains(&model["loss_estimate"].as_f64().unwrap()));
    for key in ["params", "weight_bytes", "prefill_ms", "decode_ms", "loss_estimate"] {
        assert!(layer.get(key).is_none(), "a plain layer has no `{key}`");
    }
    // The Epoch AI refit gives another estimate; the calibrated profile another decode.
    let epoch = nas(&[
        "predict",
        "--hardware",
        "h100",
        "--cost-model",
        "seed",
        "--configs",
        &configs,
        "--scaling-law",
        "epoch",
    ]);
    let epoch: Value = serde_json::from_slice(&epoch.stdout).unwrap();
    assert_ne!(epoch[0]["loss_estimate"], model["loss_estimate"]);
    let profile = repo("calibration/h100-sxm.json");
    let fitted = nas(&[
        "predict",
        "--hardware",
        "h100",
        "--configs",
        &configs,
        "--calibration",
        &profile,
    ]);
    let fitted: Value = serde_json::from_slice(&fitted.stdout).unwrap();
    assert!(fitted[0]["decode_ms"].as_f64().unwrap() > model["decode_ms"].as_f64().unwrap());
    // A bad whole-model key is an error at its place.
    let mut bad = llama3_8b();
    bad["num_layers"] = json!(0);
    let err = predict_error(&dir, &json!([bad]).to_string(), &[]);
    assert!(
        err.contains("configs[0] (`llama3_8b`): `num_layers` must be at least 1"),
        "{err}"
    );
}

#[test]
fn search_specs_take_whole_model_axes_and_fits_constraints() {
    let dir = TempDir::new("search-model");
    let run = nas(&["search", "--spec", &repo("examples/specs/decode-fit.json"), "--quiet"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out: Value = serde_json::from_slice(&run.stdout).unwrap();
    let h100 = &out["results"][0];
    assert_eq!(
        (h100["hardware"].as_str(), h100["cost_model"].as_str()),
        (Some("h100"), Some("measured"))
    );
    for e in h100["quality_constrained_top"].as_array().unwrap() {
        assert!(e["loss_estimate"].as_f64().unwrap() <= 1.95);
        let weights = e["weight_bytes"].as_f64().unwrap();
        let kv = e["kv_cache_bytes_per_token"].as_f64().unwrap() * 8.0 * 4096f64.min(8192.0);
        assert!(weights + kv < 80.0 * (1u64 << 30) as f64, "{e}");
    }
    let spec = |constraint: &str| {
        format!(
            r#"{{"hardware": ["h100", {{"key": "mine", "base": "t4", "memory_gib": MEMORY}}], "cost_model": {{"mine": "seed"}}, "family": {{"axes": [{{"axis": "hidden_dim", "values": [2048]}}, {{"axis": "head_dim", "values": [128]}}, {{"axis": "ffn_dim", "values": [8192]}}, {{"axis": "num_layers", "values": [16]}}, {{"axis": "vocab_size", "values": [32000]}}], "name": "x"}}, "constraints": [{constraint}]}}"#
        )
    };
    for (constraint, expected) in [
        (
            r#"{"fits": {"gpu": "h10", "batch": 1, "context": 1}}"#,
            "constraints[0].fits.gpu: `fits` names `h10`, which is not a target of this search (did you mean `h100`?)",
        ),
        (
            r#"{"fits": {"gpu": "h100", "batch": 0, "context": 1}}"#,
            "constraints[0].fits.batch: `batch` must be at least 1, got 0",
        ),
        (
            r#"{"metric": "params_m", "op": ">=", "value": 1}"#,
            "hardware[1].memory_gib: `memory_gib`: expected a positive number of GiB",
        ),
    ] {
        let memory = if expected.contains("memory_gib") { "0" } else { "16" };
        let path = dir.file("spec.json", &spec(constraint).replace("MEMORY", memory));
        let out = nas(&["search", "--spec", &path]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "expected `{expected}` in {err}");
    }
}

#[test]
fn decode_fit_is_reproducible_and_beats_the_seed_on_unfitted_models() {
    let dir = TempDir::new("decode");
    let out = dir.0.join("p.json");
    let h200 = |f: &str| repo(&format!("calibration/data/h200/{f}"));
    let run = nas(&[
        "calibrate",
        "--out",
        out.to_str().unwrap(),
        "--measurements",
        &h200("layers.jsonl"),
        &h200("layers-supplement.jsonl"),
        &h200("layers-supplement-2.jsonl"),
        "--decode",
        &h200("decode.jsonl"),
        &h200("decode-stack.jsonl"),
        "--decode-micro",
        &h200("decode-micro.jsonl"),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let ours: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let committed = |p: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(repo(p)).unwrap()).unwrap() };
    assert_eq!(
        ours["decode_model"],
        committed("calibration/h200.json")["decode_model"],
        "the committed decode model is what `nas calibrate` gives"
    );
    let trained: Vec<&str> = ours["decode_model"]["trained_on"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for validation in ["llama3_2_1b", "llama3_2_3b", "qwen2_5_7b", "llama2_7b"] {
        assert!(!trained.contains(&validation), "{validation} is never fitted on");
    }
    // The H100's decode model is the H200's carried over, and says so.
    let h100 = committed("calibration/h100-sxm.json");
    assert!(h100["decode_model"]["transferred_from"]
        .as_str()
        .unwrap()
        .contains("NVIDIA H200"));
    let bw = |p: &Value| {
        p["decode_model"]["fitted"]["decode_weight_bytes"]["throughput"]
            .as_f64()
            .unwrap()
    };
    assert!((bw(&h100) / bw(&ours) - 3350.0 / 4800.0).abs() < 1e-9);
    let prefix = dir.0.join("dec");
    let run = nas(&[
        "fidelity",
        "--calibration",
        out.to_str().unwrap(),
        "--decode",
        &h200("decode.jsonl"),
        &h200("decode-stack.jsonl"),
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let md = std::fs::read_to_string(dir.0.join("dec.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| validation |")).unwrap();
    let cells: Vec<f64> = row
        .split('|')
        .filter_map(|c| c.trim().trim_end_matches('%').parse().ok())
        .collect();
    let (mape, within, rho, seed) = (cells[1], cells[2], cells[3], cells[4]);
    assert!(mape <= 8.0 && within >= 80.0 && rho >= 0.98, "{row}");
    assert!(mape < seed / 3.0, "{row}");
}

#[test]
fn search_specs_name_cost_models_and_profile_files() {
    let dir = TempDir::new("search-cost");
    let axes = r#"[{"axis": "hidden_dim", "values": [2048, 4096]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [8192]}]"#;
    let profile = repo("calibration/h100-sxm.json");
    let spec = dir.file(
        "s.json",
        &format!(
            r#"{{"hardware": ["h100", "a100", {{"key": "mine", "base": "h100", "profile": "{profile}"}}],
                 "cost_model": {{"a100": "seed"}}, "family": {{"axes": {axes}, "name": "x{{hidden_dim}}"}}}}"#
        ),
    );
    let run = nas(&["search", "--spec", &spec, "--quiet"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out: Value = serde_json::from_slice(&run.stdout).unwrap();
    let results = out["results"].as_array().unwrap();
    let models: Vec<&str> = results.iter().map(|r| r["cost_model"].as_str().unwrap()).collect();
    assert_eq!(models, ["measured", "seed", "measured"]);
    assert_eq!(results[2]["provenance"]["profile"], profile.as_str());
    assert_eq!(
        results[0]["total_ms_top"][0]["total_ms"],
        results[2]["total_ms_top"][0]["total_ms"]
    );
    // --cost-model seed replaces the spec's choice for every GPU: a profile file cannot run on it.
    let run = nas(&["search", "--spec", &spec, "--cost-model", "seed", "--quiet"]);
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8(run.stderr).unwrap();
    assert!(
        err.contains("hardware[2]") && err.contains("is a measured profile, but the seed cost model was asked for"),
        "{err}"
    );
}

#[test]
fn search_specs_rank_by_decode_under_a_per_gpu_prefill_bound() {
    let dir = TempDir::new("search-latency");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("examples/specs/decode-fit.json")).unwrap()).unwrap();
    spec["rank_by"] = json!("decode_ms");
    spec["top_k"] = json!(400);
    spec["constraints"] = json!([{"metric": "prefill_ms", "op": "<=", "value": 365}]);
    let path = dir.file("spec.json", &spec.to_string());
    let run = nas(&["search", "--spec", &path, "--quiet"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(out["rank_by"], json!("decode_ms"));
    assert_eq!(out["latency_constraints_per_gpu"], json!(true));
    let valid = out["valid_candidates"].as_u64().unwrap();
    // The GPU-independent count assumes the latency clause; each GPU applies its own.
    assert_eq!(out["quality_constrained_candidates"].as_u64(), Some(valid));
    for gpu in out["results"].as_array().unwrap() {
        let top = gpu["quality_constrained_top"].as_array().unwrap();
        let passing = gpu["quality_constrained_candidates"].as_u64().unwrap();
        assert!(passing > 0 && passing < valid, "the bound bites: {passing} of {valid}");
        assert_eq!(top.len() as u64, passing.min(400));
        let decode: Vec<f64> = top.iter().map(|e| e["decode_ms"].as_f64().unwrap()).collect();
        assert!(decode.windows(2).all(|w| w[0] <= w[1]), "by decode, fastest first");
        for e in top {
            assert!(e["prefill_ms"].as_f64().unwrap() <= 365.0, "{e}");
            let tokens = e["decode_tokens_per_s"].as_f64().unwrap();
            assert!((tokens - 8.0 / (e["decode_ms"].as_f64().unwrap() / 1e3)).abs() <= 1e-9 * tokens);
        }
    }
    let counts: Vec<u64> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["quality_constrained_candidates"].as_u64().unwrap())
        .collect();
    assert!(counts[0] < counts[1], "the bound is each GPU's own: {counts:?}");
    // Deterministic: the same spec gives the same bytes.
    let again = nas(&["search", "--spec", &path, "--quiet"]);
    assert_eq!(run.stdout, again.stdout);
}

#[test]
fn kernel_answers_single_kernels_in_input_order_with_provenance() {
    let dir = TempDir::new("kernel");
    let queries = dir.file(
        "q.json",
        &json!([
            {"kernel": "gemm", "m": 1, "n": 4096, "k": 4096},
            {"kernel": "gemm", "m": 16384, "n": 4096, "k": 4096},
            {"kernel": "decode_attention", "batch": 16, "kv_len": 8192, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128},
            {"kernel": "decode_attention", "batch": 16, "kv_len": 8192, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128, "window": 1024},
            {"kernel": "prefill_attention", "batch": 1, "seq_len": 4096, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128}
        ])
        .to_string(),
    );
    let run = nas(&["kernel", "--hardware", "h200", "--queries", &queries]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out: Vec<Value> = serde_json::from_slice(&run.stdout).unwrap();
    let field = |i: usize, k: &str| out[i][k].as_str().unwrap().to_string();
    assert_eq!(out.len(), 5);
    assert_eq!(
        (field(0, "kernel"), field(0, "model"), field(0, "bound")),
        ("gemm".into(), "decode".into(), "memory".into())
    );
    assert_eq!(
        (field(1, "model"), field(1, "bound")),
        ("prefill".into(), "compute".into())
    );
    assert_eq!(
        (field(2, "model"), field(2, "bound")),
        ("decode".into(), "memory".into())
    );
    assert_eq!(field(4, "model"), "prefill");
    let ms = |i: usize| out[i]["latency_ms"].as_f64().unwrap();
    assert!(ms(3) < ms(2) / 4.0, "a 1024-token window reads an eighth of the cache");
    // A 4096 x 4096 GEMV streams 32 MiB: no faster than the H200's HBM.
    assert!(ms(0) >= 32.0 * 1048576.0 / 4.8e12 * 1e3);
    assert!(field(0, "source").contains("calibration/h200.json"));
    let seed = nas(&[
        "kernel",
        "--hardware",
        "h100",
        "--cost-model",
        "seed",
        "--queries",
        &queries,
    ]);
    let seed: Vec<Value> = serde_json::from_slice(&seed.stdout).unwrap();
    assert!(seed
        .iter()
        .all(|a| a["model"] == "roofline" && a["cost_model"] == "seed"));
}

/// `--tp N`: each whole model gets one GPU's shard, its memory and its
/// steps with the collectives; a degree that does not divide is exit 2.
#[test]
fn predict_tensor_parallel_reports_one_gpus_share() {
    let dir = TempDir::new("tp");
    let mut model = good_shape();
    model["num_layers"] = json!(24);
    model["vocab_size"] = json!(32000);
    model["window_size"] = Value::Null;
    let configs = dir.file("m.json", &json!([model, good_shape()]).to_string());
    let run = |tp: &str| nas(&["predict", "--hardware", "h200", "--configs", &configs, "--tp", tp]);
    let one: Value = serde_json::from_slice(&run("1").stdout).unwrap();
    let two = run("2");
    assert!(two.status.success(), "{}", String::from_utf8_lossy(&two.stderr));
    let two: Value = serde_json::from_slice(&two.stdout).unwrap();
    let (t1, t2) = (&one[0]["tensor_parallel"], &two[0]["tensor_parallel"]);
    assert_eq!(t1["weight_bytes_per_gpu"], one[0]["weight_bytes"]);
    assert_eq!(t1["decode"]["collectives_ms"], 0.0);
    assert_eq!(
        (t2["per_gpu_heads"].as_u64(), t2["per_gpu_kv_heads"].as_u64()),
        (Some(8), Some(1))
    );
    assert_eq!(
        t2["kv_cache_bytes_per_token_per_gpu"].as_u64().unwrap() * 2,
        one[0]["kv_cache_bytes_per_token"].as_u64().unwrap()
    );
    assert!(t2["decode"]["step"]["per_kernel"]["tp_all_reduce"].as_f64().unwrap() > 0.0);
    assert!(
        two[1].get("tensor_parallel").is_none(),
        "a plain layer has no whole-model figures"
    );
    for (tp, says) in [
        ("3", "`num_heads` = 16 does not divide by tp = 3"),
        ("0", "`tp` = 0 must be between 1 and 72"),
    ] {
        let out = run(tp);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
}

/// `--tp` and `--ep` on a Hugging Face MoE config: expert parallelism puts
/// all-to-alls in the step; an `--ep` that is neither 1 nor `--tp` is exit 2.
#[test]
fn predict_tensor_and_expert_parallel_configs() {
    let mixtral = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-configs/mixtral-8x7b-v0.1.json");
    let mixtral = mixtral.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["predict", "--hardware", "h200", "--configs", mixtral, "--batch", "8"];
        args.extend_from_slice(extra);
        nas(&args)
    };
    let figures = |out: Output| -> Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0]["tensor_parallel"].clone()
    };
    let tp = figures(run(&["--tp", "4"]));
    let ep = figures(run(&["--tp", "4", "--ep", "4"]));
    assert!(tp["decode_per_kernel"].get("ep_all_to_all").is_none());
    assert!(ep["decode_per_kernel"]["ep_all_to_all"].as_f64().unwrap() > 0.0);
    // Mixtral-8x7B: 46,702,792,704 parameters; a quarter of every matrix but the
    // norms and (under expert parallelism) the router on each GPU.
    let per_gpu = tp["weight_bytes_per_gpu"].as_u64().unwrap();
    assert!(
        per_gpu > 2 * 46_702_792_704 / 4 && per_gpu < 2 * 46_702_792_704 / 4 + 10_000_000,
        "{per_gpu}"
    );
    let out = run(&["--tp", "4", "--ep", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`ep` = 2 must be 1"));
}
