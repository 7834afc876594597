//! What bad input gets: every row of docs/RELIABILITY.md has a test here (or
//! a trybuild case under tests/ui/fail), asserting the exact message the user
//! sees. Each CLI case checks the rules of the CLI too: exit code 2, nothing
//! on standard output, one line on standard error starting with `error: `,
//! never a panic. Paths under the test's temporary folder are shown as `DIR`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas")).args(args).output().unwrap()
}

/// A temporary folder, removed at the end of the test.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nas-reliability-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        std::fs::write(self.0.join(name), text).unwrap();
        self.path(name)
    }

    /// The file names in the folder, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Runs `nas`, checks that it failed as the CLI must, and returns the
    /// message (without `error: `, the folder shown as `DIR`).
    fn error(&self, args: &[&str]) -> String {
        let out = nas(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "exit code 2; stderr: {stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout on error");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        let line = stderr
            .trim_end()
            .strip_prefix("error: ")
            .expect("starts with `error: `");
        line.replace(&self.0.to_string_lossy().into_owned(), "DIR")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn good_shape() -> Value {
    json!({"name": "a", "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 2, "head_dim": 128,
           "ffn_dim": 8192, "seq_len": 2048, "batch_size": 1, "use_qk_norm": true, "window_size": 1024})
}

/// `nas predict --hardware h100` on one shape: `good_shape` with `changes`.
fn predict_shape(dir: &Dir, changes: Value) -> String {
    let mut s = good_shape();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() && k != "window_size" {
            s.as_object_mut().unwrap().remove(k);
        } else {
            s[k] = v.clone();
        }
    }
    let path = dir.file("c.json", &json!([s]).to_string());
    dir.error(&["predict", "--hardware", "h100", "--configs", &path])
}

fn predict_file(dir: &Dir, text: &str) -> String {
    let path = dir.file("c.json", text);
    dir.error(&["predict", "--hardware", "h100", "--configs", &path])
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------- CLI arguments

#[test]
fn unknown_hardware_has_a_did_you_mean() {
    let dir = Dir::new("hw");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "h1000", "--configs", &path]),
        "unknown hardware `h1000` (did you mean `h100`?); known: a100, t4, h100, h200"
    );
}

#[test]
fn override_that_is_not_a_number() {
    let dir = Dir::new("ovnum");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "h100",
            "--configs",
            &path,
            "--override",
            "matmul_tflops=fast"
        ]),
        "override `matmul_tflops=fast`: `fast` is not a number"
    );
}

#[test]
fn override_of_an_unknown_key() {
    let dir = Dir::new("ovkey");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--configs", &path, "--override", "matmul_tflop=3"]),
        "unknown override key `matmul_tflop` (did you mean `matmul_tflops`?); known: hbm_bandwidth_gbps, rmsnorm_gbps, rmsnorm_gbps_small, qk_norm_rope_gbps, qk_norm_rope_separate_gbps, geglu_gbps, matmul_tflops, matmul_tflops_small, attention_tflops, residual_add_gbps"
    );
}

#[test]
fn override_that_is_infinite() {
    let dir = Dir::new("ovinf");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "h100",
            "--configs",
            &path,
            "--override",
            "matmul_tflops=inf"
        ]),
        "override `matmul_tflops` must be a finite positive number, got inf"
    );
}

#[test]
fn override_so_small_latencies_would_be_infinite() {
    let dir = Dir::new("ovtiny");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "h100",
            "--configs",
            &path,
            "--override",
            "matmul_tflops=1e-300"
        ]),
        "override `matmul_tflops` = 1e-300 is absurdly small (the limit is 0.001)"
    );
}

#[test]
fn missing_input_file() {
    let dir = Dir::new("missing");
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--configs", &dir.path("nope.json")]),
        "DIR/nope.json: No such file or directory (os error 2)"
    );
}

#[test]
fn input_that_is_a_folder() {
    let dir = Dir::new("folderin");
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--configs", &dir.path("")]),
        "DIR/: is a folder, not a file"
    );
}

#[test]
fn bench_with_zero_candidates() {
    let dir = Dir::new("bench");
    assert_eq!(
        dir.error(&["bench", "--candidates", "0"]),
        "--candidates must be between 1 and 100663296 (the bench family's size)"
    );
}

#[test]
fn override_with_a_calibration_profile() {
    let dir = Dir::new("ovprof");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let profile = repo("calibration/h100-sxm.json");
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "h100",
            "--configs",
            &path,
            "--calibration",
            &profile,
            "--override",
            "matmul_tflops=600"
        ]),
        "--override changes seed-model throughputs; add --cost-model seed (a measured profile has its own fitted ones)"
    );
}

/// `nas predict ARGS --configs` on one good shape: the error line, with the
/// repository's path shown as `REPO/`.
fn predict_good_shape(tag: &str, args: &[&str]) -> String {
    let dir = Dir::new(tag);
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let mut all = vec!["predict"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--configs", &path]);
    dir.error(&all).replace(&repo(""), "REPO/")
}

#[test]
fn measured_model_of_a_gpu_without_a_profile() {
    assert_eq!(
        predict_good_shape("nomeasured", &["--hardware", "a100"]),
        "hardware `a100` has no measured profile: ask for the seed's constants for it (`cost_model: seed` in a spec, `--cost-model seed` on the command line), or measure it (calibration/README.md) and name its profile"
    );
}

#[test]
fn seed_model_of_a_gpu_the_seed_never_had() {
    assert_eq!(
        predict_good_shape("noseed", &["--hardware", "h200", "--cost-model", "seed"]),
        "hardware `h200` has no seed constants (the seed tool knew a100, t4 and h100); use the measured cost model for it"
    );
}

#[test]
fn unknown_cost_model() {
    assert_eq!(
        predict_good_shape("badcm", &["--hardware", "h100", "--cost-model", "measurd"]),
        "--cost-model: unknown cost model `measurd` (did you mean `measured`?); known: measured, seed"
    );
}

#[test]
fn profile_of_another_gpu() {
    let profile = repo("calibration/h200.json");
    assert_eq!(
        predict_good_shape("othergpu", &["--hardware", "h100", "--calibration", &profile]),
        "hardware `h100`: the profile `REPO/calibration/h200.json` was measured on `NVIDIA H200`, not on an H100"
    );
}

#[test]
fn measured_profile_with_the_seed_model() {
    let profile = repo("calibration/h100-sxm.json");
    assert_eq!(
        predict_good_shape(
            "profileseed",
            &["--hardware", "h100", "--cost-model", "seed", "--calibration", &profile]
        ),
        "--calibration REPO/calibration/h100-sxm.json is a measured profile, but --cost-model seed was asked for"
    );
}

#[test]
fn seed_db_without_the_seed_model() {
    let db = repo("calibration/seed/noeris-cost-model-training.json");
    assert_eq!(
        predict_good_shape("dbmeasured", &["--hardware", "h100", "--calibration", &db]),
        "--calibration names the seed's calibration DB, which adjusts the seed model: add --cost-model seed"
    );
}

#[test]
fn profile_for_another_model() {
    let mut profile: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("calibration/h100-sxm.json")).unwrap()).unwrap();
    profile["model"] = json!("roofline_v9");
    let dir = Dir::new("othermodel");
    let profile = dir.file("p.json", &profile.to_string());
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "h100",
            "--calibration",
            &profile,
            "--configs",
            &path
        ]),
        "DIR/p.json: model `roofline_v9` is not `kernel_aware_v2`"
    );
}

// ---------------------------------------------------------------- output paths

/// Runs `nas` with its standard output on `/dev/full` (every write fails):
/// the error line it prints.
#[cfg(target_os = "linux")]
fn error_on_full_stdout(args: &[&str]) -> String {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(args)
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed write is a failure; stderr: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr.trim_end().strip_prefix("error: ").unwrap().to_string()
}

#[cfg(target_os = "linux")]
#[test]
fn standard_output_on_a_full_disk() {
    assert_eq!(
        error_on_full_stdout(&["hardware"]),
        "standard output: No space left on device (os error 28)"
    );
    let spec = repo("examples/specs/gqa-sweep.json");
    assert_eq!(
        error_on_full_stdout(&["search", "--spec", &spec, "--quiet"]),
        "standard output: No space left on device (os error 28)"
    );
}

#[cfg(unix)]
#[test]
fn output_to_a_device_node() {
    // /dev/null stays a device: the result is written into it, not renamed over it.
    let spec = repo("examples/specs/gqa-sweep.json");
    let out = nas(&["search", "--spec", &spec, "--quiet", "--out", "/dev/null"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    let dir = Dir::new("devfull");
    assert_eq!(
        dir.error(&["search", "--spec", &spec, "--quiet", "--out", "/dev/full"]),
        "/dev/full: No space left on device (os error 28)"
    );
    assert!(!std::fs::metadata("/dev/full").unwrap().is_file());
}

#[test]
fn output_into_a_missing_folder() {
    let dir = Dir::new("outmissing");
    assert_eq!(
        dir.error(&["pack", "--seed", "--out", &dir.path("no/such/pack")]),
        "DIR/no/such/pack.json: folder DIR/no/such does not exist"
    );
    assert!(dir.names().is_empty(), "nothing written");
}

#[test]
fn output_onto_a_folder() {
    let dir = Dir::new("outfolder");
    std::fs::create_dir(dir.0.join("out.json")).unwrap();
    let spec = repo("examples/specs/gqa-sweep.json");
    assert_eq!(
        dir.error(&["search", "--spec", &spec, "--quiet", "--out", &dir.path("out.json")]),
        "DIR/out.json: is a folder, not a file"
    );
    assert_eq!(dir.names(), ["out.json"], "no temporary file left");
}

/// A pack is two files: when the second cannot be written, the first is not
/// replaced either, and no temporary file is left.
#[test]
fn report_half_of_which_cannot_be_written() {
    let dir = Dir::new("outhalf");
    std::fs::write(dir.0.join("pack.json"), "old").unwrap();
    std::fs::create_dir(dir.0.join("pack.md")).unwrap();
    assert_eq!(
        dir.error(&["pack", "--seed", "--out", &dir.path("pack")]),
        "DIR/pack.md: is a folder, not a file"
    );
    assert_eq!(std::fs::read_to_string(dir.0.join("pack.json")).unwrap(), "old");
    assert_eq!(dir.names(), ["pack.json", "pack.md"]);
}

// ---------------------------------------------------------------- input files: size and syntax

#[test]
fn input_that_is_not_json() {
    let dir = Dir::new("notjson");
    assert_eq!(
        predict_file(&dir, "[{\"name\": "),
        "DIR/c.json: invalid JSON: EOF while parsing a value at line 1 column 10"
    );
}

#[test]
fn json_nested_too_deep() {
    let dir = Dir::new("deep");
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert_eq!(
        predict_file(&dir, &deep),
        "DIR/c.json: invalid JSON: nested more than 128 levels deep (line 1, column 128)"
    );
}

/// A 1 GiB file (sparse, so the test writes nothing) is refused after
/// reading 64 MiB of it.
#[test]
fn input_file_of_1_gib() {
    let dir = Dir::new("huge");
    let path = dir.path("c.json");
    std::fs::File::create(&path).unwrap().set_len(1 << 30).unwrap();
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--configs", &path]),
        "DIR/c.json: larger than 64 MiB, the limit for an input file"
    );
}

#[test]
fn input_that_never_ends() {
    let dir = Dir::new("zero");
    assert_eq!(
        dir.error(&["search", "--spec", "/dev/zero"]),
        "/dev/zero: larger than 64 MiB, the limit for an input file"
    );
}

// ---------------------------------------------------------------- shapes (nas predict --configs)

#[test]
fn shapes_not_in_an_array() {
    let dir = Dir::new("notarray");
    assert_eq!(
        predict_file(&dir, "{}"),
        "DIR/c.json: expected a JSON array of shapes, got an object"
    );
}

#[test]
fn shape_without_a_key() {
    let dir = Dir::new("nokey");
    assert_eq!(
        predict_shape(&dir, json!({"ffn_dim": null})),
        "DIR/c.json: configs[0]: missing key `ffn_dim`"
    );
}

#[test]
fn shape_with_a_misspelt_key() {
    let dir = Dir::new("typo");
    assert_eq!(
        predict_shape(&dir, json!({"hidden_dmi": 1})),
        "DIR/c.json: configs[0]: unknown key `hidden_dmi` (did you mean `hidden_dim`?)"
    );
}

#[test]
fn shape_size_that_is_a_string() {
    let dir = Dir::new("string");
    assert_eq!(
        predict_shape(&dir, json!({"hidden_dim": "2048"})),
        r#"DIR/c.json: configs[0]: `hidden_dim` must be a positive integer, got "2048""#
    );
}

#[test]
fn shape_size_that_is_negative() {
    let dir = Dir::new("negative");
    assert_eq!(
        predict_shape(&dir, json!({"seq_len": -4})),
        "DIR/c.json: configs[0]: `seq_len` must be a positive integer, got -4"
    );
}

#[test]
fn shape_size_that_is_zero() {
    let dir = Dir::new("zerosize");
    assert_eq!(
        predict_shape(&dir, json!({"ffn_dim": 0})),
        "DIR/c.json: configs[0] (`a`): `ffn_dim` must be at least 1, got 0"
    );
}

#[test]
fn shape_size_beyond_u64() {
    let dir = Dir::new("beyond");
    assert_eq!(
        predict_file(
            &dir,
            r#"[{"name": "a", "hidden_dim": 99999999999999999999999, "num_heads": 16, "num_kv_heads": 2, "head_dim": 128, "ffn_dim": 8192, "seq_len": 2048}]"#
        ),
        "DIR/c.json: configs[0]: `hidden_dim` must be a positive integer, got 1e+23"
    );
}

#[test]
fn shape_size_that_is_absurd() {
    let dir = Dir::new("absurd");
    assert_eq!(
        predict_shape(&dir, json!({"head_dim": 1u64 << 40})),
        "DIR/c.json: configs[0] (`a`): `head_dim` = 1099511627776 is absurdly large (the limit is 16777216)"
    );
}

#[test]
fn shape_window_that_is_absurd() {
    let dir = Dir::new("window");
    assert_eq!(
        predict_shape(&dir, json!({"window_size": u64::MAX})),
        "DIR/c.json: configs[0] (`a`): `window_size` = 18446744073709551615 is absurdly large (the limit is 16777216; null is full attention)"
    );
}

#[test]
fn shape_with_kv_heads_not_dividing_heads() {
    let dir = Dir::new("kv");
    assert_eq!(
        predict_shape(&dir, json!({"num_kv_heads": 3})),
        "DIR/c.json: configs[0] (`a`): `num_kv_heads` = 3 does not divide `num_heads` = 16"
    );
}

/// Every size is allowed, but the attention FLOPs (4*B*H*S*S*Dh) exceed a u64.
#[test]
fn shape_whose_flop_count_overflows_u64() {
    let dir = Dir::new("overflow");
    assert_eq!(
        predict_shape(
            &dir,
            json!({"seq_len": 16_000_000, "batch_size": 16_000_000, "window_size": null})
        ),
        "DIR/c.json: configs[0] (`a`): these sizes make FLOP or byte counts overflow a 64-bit integer"
    );
}

/// Every count of the seed model fits in a u64, but the kernel-aware model's
/// attention reads whole 128-token blocks of padded heads: 2^69 bytes here.
#[test]
fn shape_whose_padded_byte_count_overflows_u64() {
    let dir = Dir::new("padded");
    let shape = LayerShapeJson {
        hidden_dim: 1,
        num_heads: 1 << 24,
        num_kv_heads: 1,
        head_dim: 1 << 14,
        ffn_dim: 1,
        seq_len: 1,
        batch_size: 1 << 24,
    };
    let profile = repo("calibration/h100-sxm.json");
    let path = dir.file("c.json", &json!([shape.json()]).to_string());
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "h100",
            "--configs",
            &path,
            "--calibration",
            &profile
        ]),
        "DIR/c.json: configs[0] (`p`): these sizes make FLOP or byte counts overflow a 64-bit integer"
    );
}

struct LayerShapeJson {
    hidden_dim: u64,
    num_heads: u64,
    num_kv_heads: u64,
    head_dim: u64,
    ffn_dim: u64,
    seq_len: u64,
    batch_size: u64,
}

impl LayerShapeJson {
    fn json(&self) -> Value {
        json!({"name": "p", "hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
               "num_kv_heads": self.num_kv_heads, "head_dim": self.head_dim, "ffn_dim": self.ffn_dim,
               "seq_len": self.seq_len, "batch_size": self.batch_size, "window_size": 1})
    }
}

// ---------------------------------------------------------------- calibration files

#[test]
fn calibration_db_without_records() {
    let dir = Dir::new("dbrec");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let db = dir.file("db.json", r#"{"records": []}"#);
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "a100",
            "--configs",
            &path,
            "--calibration",
            &db
        ]),
        "calibration DB DIR/db.json: top level: expected an object with a `records` object"
    );
}

#[test]
fn calibration_db_with_an_absurd_throughput() {
    let dir = Dir::new("dbbig");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let db = dir.file(
        "db.json",
        r#"{"records": {"matmul:x": [{"shape_key": "m:NVIDIA A100-SXM4-80GB", "best_tflops": 1e300}]}}"#,
    );
    assert_eq!(
        dir.error(&[
            "predict",
            "--hardware",
            "a100",
            "--configs",
            &path,
            "--calibration",
            &db
        ]),
        r#"calibration DB DIR/db.json: records["matmul:x"]: `best_tflops` = 1e300 is absurdly large (the limit is 1e9)"#
    );
}

/// `nas predict` of one good shape with the committed H100 profile, changed by `edit`.
fn predict_with_profile(dir: &Dir, edit: impl FnOnce(&mut Value)) -> String {
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let mut profile: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("calibration/h100-sxm.json")).unwrap()).unwrap();
    edit(&mut profile);
    let profile = dir.file("p.json", &profile.to_string());
    dir.error(&[
        "predict",
        "--hardware",
        "h100",
        "--configs",
        &path,
        "--calibration",
        &profile,
    ])
}

#[test]
fn calibration_profile_with_a_negative_cost() {
    let dir = Dir::new("profneg");
    assert_eq!(
        predict_with_profile(&dir, |p| p["fitted"]["gemm_flops"]["ms_per_unit"] = json!(-1.0)),
        "DIR/p.json: `gemm_flops.ms_per_unit` must be finite and non-negative, got -1"
    );
}

#[test]
fn calibration_profile_with_an_absurd_cost() {
    let dir = Dir::new("profbig");
    assert_eq!(
        predict_with_profile(&dir, |p| p["fitted"]["kernel_launch"]["ms_per_unit"] = json!(1e300)),
        "DIR/p.json: `kernel_launch.ms_per_unit` = 1e300 is absurdly large (the limit is 1e3)"
    );
}

#[test]
fn calibration_profile_with_an_absurd_sm_count() {
    let dir = Dir::new("profsm");
    assert_eq!(
        predict_with_profile(&dir, |p| p["sm_count"] = json!(u64::MAX)),
        "DIR/p.json: `sm_count` = 18446744073709551615 is absurdly large (the limit is 65536)"
    );
}

/// The first layer record of the committed H100 data, changed by `edit`.
fn measurement(edit: impl FnOnce(&mut Value)) -> String {
    let text = std::fs::read_to_string(repo("calibration/data/h100/layers.jsonl")).unwrap();
    let mut v: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    edit(&mut v);
    v.to_string()
}

fn calibrate(dir: &Dir, text: &str) -> String {
    let path = dir.file("m.jsonl", text);
    let e = dir.error(&["calibrate", "--measurements", &path, "--out", &dir.path("out.json")]);
    assert!(!dir.0.join("out.json").exists(), "no profile written");
    e
}

#[test]
fn measurement_line_that_is_not_json() {
    let dir = Dir::new("measjson");
    let first = measurement(|_| {});
    assert_eq!(
        calibrate(&dir, &format!("{first}\n{{\"kind\": \"layer\", \"set\"")),
        "DIR/m.jsonl:2: invalid JSON: EOF while parsing an object at line 1 column 23"
    );
}

#[test]
fn measurement_file_that_is_not_text() {
    let dir = Dir::new("measutf8");
    let path = dir.path("m.jsonl");
    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(
        dir.error(&["calibrate", "--measurements", &path, "--out", &dir.path("out.json")]),
        "DIR/m.jsonl: not UTF-8 text"
    );
}

#[test]
fn measurement_of_a_gemm_whose_flops_overflow_u64() {
    let dir = Dir::new("measgemm");
    let text = measurement(|v| {
        v["kind"] = json!("gemm");
        v["shape"] = json!({"M": 1 << 24, "N": 1 << 24, "K": 1 << 24});
    });
    assert_eq!(
        calibrate(&dir, &text),
        "DIR/m.jsonl:1: these `shape` sizes make the kernel's FLOP or byte count overflow a 64-bit integer"
    );
}

#[test]
fn measurement_with_an_absurd_size() {
    let dir = Dir::new("meassize");
    let text = measurement(|v| {
        v["kind"] = json!("rmsnorm");
        v["shape"] = json!({"rows": u64::MAX, "cols": 2});
    });
    assert_eq!(
        calibrate(&dir, &text),
        "DIR/m.jsonl:1: `shape.rows` = 18446744073709551615 is absurdly large (the limit is 16777216)"
    );
}

#[test]
fn measurements_from_two_gpus() {
    let dir = Dir::new("meas2");
    let a = measurement(|_| {});
    let b = measurement(|v| v["gpu"] = json!("Other GPU"));
    assert_eq!(
        calibrate(&dir, &format!("{a}\n{b}\n")),
        "DIR/m.jsonl:2: measured on `Other GPU` (132 SMs), but DIR/m.jsonl:1 was measured on `NVIDIA H100 80GB HBM3` (132 SMs): calibrate one GPU at a time"
    );
}

// ---------------------------------------------------------------- search specs (nas search --spec)

fn search(dir: &Dir, spec: &str) -> String {
    let path = dir.file("s.json", spec);
    dir.error(&["search", "--spec", &path, "--quiet"])
}

const AXES: &str = r#"[{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [8192]}]"#;

#[test]
fn search_spec_with_an_unknown_cost_model() {
    let dir = Dir::new("specCm");
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": ["h100"], "cost_model": "guess", "family": {{"axes": {AXES}, "name": "x"}}}}"#)
        ),
        "DIR/s.json: cost_model: unknown cost model `guess`; known: measured, seed"
    );
}

#[test]
fn search_spec_gpu_without_a_measured_profile() {
    let dir = Dir::new("specNoProfile");
    assert_eq!(
        search(&dir, &format!(r#"{{"hardware": ["h100", "t4"], "family": {{"axes": {AXES}, "name": "x"}}}}"#)),
        "DIR/s.json: hardware[1]: hardware `t4` has no measured profile: ask for the seed's constants for it (`cost_model: seed` in a spec, `--cost-model seed` on the command line), or measure it (calibration/README.md) and name its profile"
    );
}

#[test]
fn search_spec_with_an_unknown_key() {
    let dir = Dir::new("specKey");
    assert_eq!(
        search(&dir, &format!(r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "top": 3}}"#)),
        "DIR/s.json: spec: unknown key `top` (did you mean `top_k`?); expected: hardware, cost_model, workload, training, family, constraints, top_k, rank_by"
    );
}

#[test]
fn search_spec_with_an_unknown_rank_by() {
    let dir = Dir::new("specRankBy");
    assert_eq!(
        search(&dir, &format!(r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "rank_by": "decode_msec"}}"#)),
        "DIR/s.json: rank_by: unknown ranking metric `decode_msec` (did you mean `decode_ms`?); known: total_ms, ms_per_mparam_proxy, prefill_ms, decode_ms, decode_tokens_per_s"
    );
}

#[test]
fn search_spec_with_top_k_zero() {
    let dir = Dir::new("specTopk");
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "top_k": 0}}"#)
        ),
        "DIR/s.json: top_k: `top_k` must be at least 1, got 0"
    );
}

#[test]
fn search_spec_gpu_so_slow_latencies_would_be_infinite() {
    let dir = Dir::new("specGpu");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": [{{"key": "mine", "base": "h100", "attention_tflops": 1e-320}}], "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: hardware[0]: hardware `mine`: `attention_tflops` = 1e-320 is absurdly small (the limit is 0.001)"
    );
}

#[test]
fn search_spec_with_a_sequence_too_long() {
    let dir = Dir::new("specSeq");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "workload": {{"seq_len": 4294967296}}, "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: workload.seq_len: `seq_len` = 4294967296 is absurdly large (the limit is 16777216)"
    );
}

/// A huge FFN ratio: ffn_dim = hidden_dim * ratio, rounded up to a multiple
/// of 128, would not fit a u64 (the rounding used to overflow).
#[test]
fn search_spec_with_an_absurd_ffn_ratio() {
    let dir = Dir::new("specRatio");
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [1e300], "round": "up", "multiple": 128}], "name": "x"}}"#
        ),
        "DIR/s.json: family.axes[2].values[0]: `ffn_ratio` = 1e300 is absurdly large (the limit is 16777216)"
    );
}

/// A family of 10^21 combinations (seven axes of 1000 values): more than the
/// streaming engine can index is refused up front, nothing is allocated.
#[test]
fn search_spec_family_beyond_the_streaming_limit() {
    let dir = Dir::new("specHuge");
    let values: Vec<u64> = (1..=1000).map(|i| i * 64).collect();
    let axis = |name: &str| json!({"axis": name, "values": values});
    let spec = json!({
        "hardware": ["h100"],
        "family": {
            "axes": [axis("hidden_dim"), axis("head_dim"), axis("num_heads"), axis("kv_heads"), axis("ffn_dim"), axis("seq_len"), axis("window")],
            "name": "x{hidden_dim}_{head_dim}_{num_heads}_{kv_heads}_{ffn_dim}_{seq_len}_{window}"
        }
    });
    assert_eq!(
        search(&dir, &spec.to_string()),
        "DIR/s.json: family: the family has 1000000000000000000000 combinations; the streaming search handles at most 2^62"
    );
}

// ---------------------------------------------------------------- library: materializing a family

/// `Family::expand` (what the pack and the DSL's `family` use) refuses a
/// family of 10^15 combinations before allocating anything.
#[test]
fn family_of_10_15_candidates_refuses_to_materialize() {
    use nas::search::family::{Axis, AxisKind, AxisValue, Family, FfnRounding, Labeled, Rounding, Workload};
    let axis = |kind, values: Vec<u64>| Axis {
        kind,
        values: values
            .into_iter()
            .map(|v| Labeled {
                value: AxisValue::Int(v),
                label: None,
            })
            .collect::<Vec<_>>()
            .into(),
    };
    let range = |n: u64| (1..=n).map(|i| i * 8).collect::<Vec<u64>>();
    let family = Family {
        source: "test".into(),
        axes: vec![
            axis(AxisKind::HiddenDim, range(1000)),
            axis(AxisKind::HeadDim, range(1000)),
            axis(AxisKind::FfnDim, range(1000)),
            axis(AxisKind::SeqLen, range(1000)),
            axis(AxisKind::BatchSize, range(1000)),
        ]
        .into(),
        ffn_rounding: FfnRounding {
            multiple: 1,
            rounding: Rounding::NearestEven,
        },
        template: "x".into(),
    };
    assert_eq!(family.combinations(), 1_000_000_000_000_000);
    let e = family.expand(Workload::layer(2048, 1)).unwrap_err().to_string();
    assert_eq!(
        e,
        "the family has 1000000000000000 combinations, more than the 1000000 that can be listed one by one; stream it instead (a `space` in nas_search!, or `nas search --spec`)"
    );
}

// ---------------------------------------------------------------- the catalogue itself

/// docs/RELIABILITY.md cannot drift: every row names a test that exists and
/// shows the message that test asserts (for DSL rows, the first line of the
/// case's .stderr snapshot), and every test in this file has a row.
#[test]
fn whole_model_with_zero_layers() {
    let dir = Dir::new("layers0");
    assert_eq!(
        predict_shape(&dir, json!({"num_layers": 0, "vocab_size": 32000})),
        "DIR/c.json: configs[0] (`a`): `num_layers` must be at least 1, got 0"
    );
}

#[test]
fn whole_model_with_absurd_training_tokens() {
    let dir = Dir::new("tokens");
    assert_eq!(
        predict_shape(&dir, json!({"num_layers": 32, "vocab_size": 32000, "training_tokens": 1e17})),
        "DIR/c.json: configs[0] (`a`): `training_tokens` = 100000000000000000 is absurdly large (the limit is 10000000000000000)"
    );
}

#[test]
fn whole_model_with_tie_embeddings_not_a_boolean() {
    let dir = Dir::new("tie");
    assert_eq!(
        predict_shape(
            &dir,
            json!({"num_layers": 32, "vocab_size": 32000, "tie_embeddings": "yes"})
        ),
        "DIR/c.json: configs[0]: `tie_embeddings` must be true or false, got \"yes\""
    );
}

#[test]
fn calibration_profile_with_a_negative_decode_constant() {
    let dir = Dir::new("profdecode");
    assert_eq!(
        predict_with_profile(&dir, |p| p["decode_model"]["fitted"]["decode_weight_bytes"]
            ["ms_per_unit"] = json!(-1.0)),
        "DIR/p.json: `decode_model.decode_weight_bytes.ms_per_unit` must be finite, from 0 to 1e3, got -1.0"
    );
}

#[test]
fn calibration_profile_with_decode_faster_than_hbm() {
    let dir = Dir::new("profdecodefast");
    assert_eq!(
        predict_with_profile(&dir, |p| p["decode_model"]["fitted"]["decode_kv_bytes"]
            ["ms_per_unit"] = json!(1e-10)),
        "DIR/p.json: `decode_model.decode_kv_bytes` = 10000.0 GB/s is faster than the physical limit 3350.0 GB/s"
    );
}

#[test]
fn search_spec_fits_on_a_gpu_it_does_not_target() {
    let dir = Dir::new("specFits");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "constraints": [{{"fits": {{"gpu": "a100", "batch": 1, "context": 1}}}}]}}"#
            )
        ),
        "DIR/s.json: constraints[0].fits.gpu: `fits` names `a100`, which is not a target of this search (did you mean `h100`?); targets: h100"
    );
}

#[test]
fn search_spec_with_an_unknown_scaling_law() {
    let dir = Dir::new("specLaw");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "training": {{"tokens": 1e12, "law": "kaplan"}}, "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: training.law: expected \"chinchilla\" or \"epoch\", got \"kaplan\""
    );
}

#[test]
fn search_spec_with_a_key_given_twice() {
    let dir = Dir::new("specDup");
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": ["h100"], "top_k": 1, "top_k": 2, "family": {{"axes": {AXES}, "name": "x"}}}}"#)
        ),
        "DIR/s.json: top level: key `top_k` is given twice (line 1, column 45)"
    );
}

#[test]
fn search_spec_with_contradictory_bounds() {
    let dir = Dir::new("specContra");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "constraints": [{{"metric": "hidden_dim", "op": ">=", "value": 4096}}, {{"metric": "hidden_dim", "op": "<=", "value": 2048}}]}}"#
            )
        ),
        "DIR/s.json: constraints[1]: contradictory bounds: no `hidden_dim` satisfies this and an earlier clause; constraints[0]: the clause it contradicts"
    );
}

#[test]
fn search_spec_with_inclusive_not_a_boolean() {
    let dir = Dir::new("specIncl");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "constraints": [{{"metric": "ffn_ratio", "in": [3.0, 5.0], "inclusive": "no"}}]}}"#
            )
        ),
        "DIR/s.json: constraints[0].inclusive: `inclusive` must be `true` or `false`, got \"no\""
    );
}

#[test]
fn search_spec_with_a_rounding_that_is_not_a_word() {
    let dir = Dir::new("specRound");
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0], "round": 1}], "name": "x"}}"#
        ),
        "DIR/s.json: family.axes[2].round: the rounding is \"nearest\", \"up\" or \"down\", got 1"
    );
}

#[test]
fn decode_measurements_without_whole_models() {
    let dir = Dir::new("decodeRec");
    let record = json!({"kind": "decode", "model": "m", "set": "train", "gpu": "G", "median_ms": 1.0,
                        "shape": good_shape()});
    let path = dir.file("d.jsonl", &format!("{record}\n"));
    let out = dir.0.join("p.json");
    assert_eq!(
        dir.error(&[
            "calibrate",
            "--out",
            out.to_str().unwrap(),
            "--measurements",
            &repo("calibration/data/h100/layers.jsonl"),
            "--decode",
            &path
        ]),
        "DIR/d.jsonl:1: the shape needs `num_layers` and `vocab_size`"
    );
    assert!(!out.exists(), "no profile is written");
}

#[test]
fn decode_records_of_two_gpus() {
    let dir = Dir::new("decode2gpu");
    let lines: Vec<String> = std::fs::read_to_string(repo("calibration/data/h100/decode.jsonl"))
        .unwrap()
        .lines()
        .take(2)
        .map(String::from)
        .collect();
    let mut other: Value = serde_json::from_str(&lines[1]).unwrap();
    other["gpu"] = json!("NVIDIA H200");
    let path = dir.file("d.jsonl", &format!("{}\n{other}\n", lines[0]));
    let out = dir.0.join("p.json");
    assert_eq!(
        dir.error(&[
            "calibrate",
            "--out",
            out.to_str().unwrap(),
            "--measurements",
            &repo("calibration/data/h100/layers.jsonl"),
            "--decode",
            &path
        ]),
        "decode records of two GPUs (`NVIDIA H100 80GB HBM3` and `NVIDIA H200`): fit one GPU at a time"
    );
    assert!(!out.exists(), "no profile is written");
}

#[test]
fn profile_whose_shown_throughput_disagrees() {
    let dir = Dir::new("badthroughput");
    let mut profile: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("calibration/h100-sxm.json")).unwrap()).unwrap();
    profile["fitted"]["gemm_flops"]["throughput"] = json!(-1.0);
    let profile = dir.file("p.json", &profile.to_string());
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let e = dir.error(&[
        "predict",
        "--hardware",
        "h100",
        "--calibration",
        &profile,
        "--configs",
        &path,
    ]);
    assert!(
        e.starts_with("DIR/p.json: `gemm_flops.throughput` = -1.0 TFLOP/s does not match its `ms_per_unit`"),
        "{e}"
    );
}

#[test]
fn kernel_query_with_a_missing_size() {
    let dir = Dir::new("kernelq");
    let q = dir.file("q.json", r#"[{"kernel": "gemm", "m": 1, "n": 4096}]"#);
    assert_eq!(
        dir.error(&["kernel", "--hardware", "h200", "--queries", &q]),
        "DIR/q.json: queries[0]: missing `k`"
    );
}

#[test]
fn kernel_query_of_an_unknown_kernel() {
    let dir = Dir::new("kernelk");
    let q = dir.file("q.json", r#"[{"kernel": "gemv", "m": 1}]"#);
    assert_eq!(
        dir.error(&["kernel", "--hardware", "h200", "--queries", &q]),
        "DIR/q.json: queries[0].kernel: unknown kernel `gemv` (did you mean `gemm`?); known: gemm, decode_attention, prefill_attention, moe, mla_decode"
    );
}

#[test]
fn kernel_query_moe_with_more_topk_than_experts() {
    let dir = Dir::new("kernelmoetopk");
    let q = dir.file(
        "q.json",
        r#"[{"kernel": "moe", "num_tokens": 16, "hidden_size": 4096, "inter_size": 14336, "num_experts": 8, "topk": 9}]"#,
    );
    assert_eq!(
        dir.error(&["kernel", "--hardware", "h200", "--queries", &q]),
        "DIR/q.json: queries[0].topk: `topk` = 9 is more than `num_experts` = 8"
    );
}

#[test]
fn kernel_query_moe_with_a_misspelled_key() {
    let dir = Dir::new("kernelmoekey");
    let q = dir.file(
        "q.json",
        r#"[{"kernel": "moe", "num_tokens": 16, "hidden_size": 4096, "inter_size": 14336, "num_expert": 8, "topk": 2}]"#,
    );
    assert_eq!(
        dir.error(&["kernel", "--hardware", "h200", "--queries", &q]),
        "DIR/q.json: queries[0]: unknown key `num_expert` (did you mean `num_experts`?); expected: kernel, num_tokens, hidden_size, inter_size, num_experts, topk, imbalance, router"
    );
}

#[test]
fn kernel_query_mla_with_a_zero_rank() {
    let dir = Dir::new("kernelmla");
    let q = dir.file(
        "q.json",
        r#"[{"kernel": "mla_decode", "batch": 8, "kv_len": 8192, "hidden_size": 7168, "num_heads": 128, "kv_lora_rank": 0, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128}]"#,
    );
    assert_eq!(
        dir.error(&["kernel", "--hardware", "h200", "--queries", &q]),
        "DIR/q.json: queries[0].kv_lora_rank: expected a positive integer, got 0"
    );
}

#[test]
fn profile_whose_moe_model_beats_hbm() {
    let dir = Dir::new("moeprofile");
    let mut p: Value = serde_json::from_str(&std::fs::read_to_string(repo("calibration/h200.json")).unwrap()).unwrap();
    p["moe_model"]["fitted"]["moe_gemm_weight_bytes"] =
        json!({"ms_per_unit": 1.0 / (9000.0 * 1e6), "throughput": 9000.0, "unit": "GB/s"});
    let path = dir.file("p.json", &p.to_string());
    let q = dir.file("q.json", r#"[{"kernel": "gemm", "m": 1, "n": 64, "k": 64}]"#);
    assert_eq!(
        dir.error(&["kernel", "--hardware", "h200", "--calibration", &path, "--queries", &q]),
        "DIR/p.json: `moe_model.moe_gemm_weight_bytes` = 9000.0 GB/s is faster than the physical limit 4800.0 GB/s"
    );
}

#[test]
fn moe_records_of_two_gpus() {
    let dir = Dir::new("moegpus");
    let lines: Vec<String> = std::fs::read_to_string(repo("calibration/data/h200/moe.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .take(2)
        .map(str::to_string)
        .collect();
    let mut second: Value = serde_json::from_str(&lines[1]).unwrap();
    second["gpu"] = json!("NVIDIA H100 80GB HBM3");
    let m = dir.file("m.jsonl", &format!("{}\n{second}\n", lines[0]));
    let out = dir.path("x");
    assert_eq!(
        dir.error(&[
            "fidelity",
            "--calibration",
            &repo("calibration/h200.json"),
            "--moe",
            &m,
            "--out",
            &out
        ]),
        "DIR/m.jsonl:2: MoE records of two GPUs (`NVIDIA H200` and `NVIDIA H100 80GB HBM3`): fit one GPU at a time"
    );
}

#[test]
fn every_row_of_the_reliability_table_has_a_test() {
    let doc = std::fs::read_to_string(repo("docs/RELIABILITY.md")).unwrap();
    let source = std::fs::read_to_string(repo("tests/reliability.rs")).unwrap();
    let unescaped = source.replace("\\\"", "\"");
    let mut rows = 0;
    let mut named = Vec::new();
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| ") && l.as_bytes()[2].is_ascii_digit())
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 5, "five cells: {line}");
        rows += 1;
        assert_eq!(cells[0], rows.to_string(), "rows are numbered in order: {line}");
        let seen = cells[3]
            .strip_prefix("`` ")
            .and_then(|c| c.strip_suffix(" ``"))
            .unwrap_or_else(|| panic!("the message is a ``code span``: {line}"));
        let test = cells[4].trim_matches('`');
        if let Some(name) = test.strip_prefix("reliability::") {
            assert!(source.contains(&format!("#[test]\nfn {name}()")), "no test `{name}`");
            let message = seen.strip_prefix("error: ").unwrap_or(seen);
            let body = &unescaped[unescaped.find(&format!("fn {name}()")).unwrap()..];
            let body = &body[..body[3..].find("\n#[test]").map_or(body.len(), |i| i + 3)];
            assert!(body.contains(message), "`{name}` does not assert: {message}");
            named.push(name.to_string());
        } else if let Some(case) = test.strip_prefix("ui/fail/") {
            let rs = repo(&format!("tests/ui/fail/{case}"));
            assert!(Path::new(&rs).exists(), "no trybuild case {rs}");
            let stderr = std::fs::read_to_string(rs.replace(".rs", ".stderr")).unwrap();
            assert_eq!(stderr.lines().next(), Some(seen), "first line of {case}'s .stderr");
        } else {
            panic!("unknown kind of test `{test}`");
        }
    }
    assert!(rows >= 30, "at least 30 rows, got {rows}");
    for name in source.split("#[test]\nfn ").skip(1).map(|s| &s[..s.find('(').unwrap()]) {
        if name != "every_row_of_the_reliability_table_has_a_test" {
            assert!(
                named.iter().any(|n| n == name),
                "test `{name}` has no row in docs/RELIABILITY.md"
            );
        }
    }
}

#[test]
fn search_spec_with_a_huge_top_k() {
    let dir = Dir::new("specTopK");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "top_k": 1000000000000000000, "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: top_k: `top_k` = 1000000000000000000 is more than a search reports (the limit is 10000)"
    );
}

#[test]
fn search_spec_with_a_name_template_of_a_million_characters() {
    let dir = Dir::new("specLongName");
    let template = format!("{}{{hidden_dim}}", "n".repeat(1_000_000));
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "{template}"}}}}"#)
        ),
        "DIR/s.json: family: name template `nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...` makes names of up to 1000004 bytes; a candidate name has at most 256"
    );
}

#[test]
fn search_spec_whose_labels_make_names_too_long() {
    let dir = Dir::new("specLongLabels");
    // Twelve axes of 40-byte labels: each name 480 bytes, from a 2 KiB spec.
    let label = "l".repeat(40);
    let axes: Vec<String> = ["seq_len", "batch_size", "num_layers", "vocab_size", "context_len"]
        .iter()
        .map(|a| format!(r#"{{"axis": "{a}", "values": [{{"value": 64, "label": "{label}"}}, 128]}}"#))
        .collect();
    let template: String = ["seq_len", "batch_size", "num_layers", "vocab_size", "context_len"]
        .iter()
        .map(|a| format!("{{{a}}}{label}"))
        .collect();
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": [{{"axis": "hidden_dim", "values": [2048]}}, {{"axis": "head_dim", "values": [128]}}, {{"axis": "ffn_dim", "values": [8192]}}, {}], "name": "{template}"}}}}"#,
                axes.join(", ")
            )
        ),
        "DIR/s.json: family: name template `{seq_len}llllllllllllllllllllllllllllllllllllllll{batch_size...` makes names of up to 400 bytes; a candidate name has at most 256"
    );
}

#[test]
fn search_spec_of_2_30_combinations_whose_tables_would_not_fit() {
    let dir = Dir::new("spec2e30");
    // 1024 widths x 1024 sequence lengths x 1024 windows: attention reads all
    // three, so its table would hold 2^30 entries per GPU (16 GiB).
    let list = |step: u64| {
        (1..=1024)
            .map(|i| (i * step).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": [{{"axis": "hidden_dim", "values": [{}]}}, {{"axis": "head_dim", "values": [128]}}, {{"axis": "ffn_ratio", "values": [4]}}, {{"axis": "seq_len", "values": [{}]}}, {{"axis": "window", "values": [{}]}}], "name": "x{{hidden_dim}}_{{seq_len}}_{{window}}"}}}}"#,
                list(128),
                list(1),
                list(1)
            )
        ),
        "DIR/s.json: the streaming search's lookup tables would hold more than 67108864 values (the axes `hidden_dim` (1024), `head_dim` (1), `seq_len` (1024), `window` (1024) are read together): give these axes fewer values"
    );
}

#[test]
fn search_spec_with_an_axis_of_too_many_values() {
    let dir = Dir::new("specAxis");
    let values: Vec<String> = (1..=65_537).map(|i| i.to_string()).collect();
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": [{{"axis": "hidden_dim", "values": [2048]}}, {{"axis": "head_dim", "values": [128]}}, {{"axis": "ffn_dim", "values": [8192]}}, {{"axis": "seq_len", "values": [{}]}}], "name": "x{{seq_len}}"}}}}"#,
                values.join(", ")
            )
        ),
        "DIR/s.json: family: axis `seq_len` has 65537 values; an axis takes at most 65536"
    );
}

#[test]
fn search_spec_whose_labels_run_together_into_one_name() {
    let dir = Dir::new("specRunTogether");
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [{"value": 2048, "label": "a_b"}, {"value": 4096, "label": "a"}]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [{"value": 8192, "label": "c"}, {"value": 16384, "label": "b_c"}]}], "name": "m_{hidden_dim}_{ffn_dim}"}}"#
        ),
        "DIR/s.json: family.name: name template `m_{hidden_dim}_{ffn_dim}` gives `m_a_b_c` to two candidates (hidden_dim=a_b, ffn_dim=c; hidden_dim=a, ffn_dim=b_c): their labels run into each other; separate the placeholders or change the labels"
    );
}

#[test]
fn search_spec_axis_with_a_hugging_face_name() {
    let dir = Dir::new("specHf");
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "intermediate_size", "values": [8192]}], "name": "x"}}"#
        ),
        "DIR/s.json: family.axes[2]: unknown field `intermediate_size` (did you mean `ffn_dim`?); a family takes the axes hidden_dim, head_dim, num_heads, kv_heads, gqa_group, ffn_dim, ffn_ratio, window, qk_norm, seq_len, batch_size, num_layers, vocab_size, tie_embeddings, context_len and `name`, `source`"
    );
}

#[test]
fn search_spec_window_full_as_a_string() {
    let dir = Dir::new("specWinFull");
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [8192]}, {"axis": "window", "values": [512, "full"]}], "name": "x{window}"}}"#
        ),
        "DIR/s.json: family.axes[3].values[1]: `window` = \"full\" is a string: write bare `full` (no quotes; `null` in a JSON spec) for full attention, or a positive integer"
    );
}
