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
        "DIR/s.json: cost_model: unknown cost model `guess` (no known name is close); known: measured, seed"
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
    use nas::search::family::{
        Axis, AxisKind, AxisValue, Family, FfnRounding, GqaRounding, Labeled, Rounding, Workload,
    };
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
        gqa_rounding: GqaRounding::Exact,
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
        "DIR/s.json: constraints[0].fits.gpu: `fits` names `a100`, which is not a target of this search (no known name is close); targets: h100"
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

/// Two lines of the committed mixed-stack decode steps, the second changed by `edit`.
fn stack_decode_error(dir: &Dir, edit: impl Fn(&mut Value)) -> String {
    let text = std::fs::read_to_string(repo("calibration/data/h200/decode-mixed.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().take(2).collect();
    let mut second: Value = serde_json::from_str(lines[1]).unwrap();
    edit(&mut second);
    let m = dir.file("m.jsonl", &format!("{}\n{second}\n", lines[0]));
    let out = dir.path("x");
    dir.error(&[
        "fidelity",
        "--calibration",
        &repo("calibration/h200.json"),
        "--stacks",
        &m,
        "--out",
        &out,
    ])
}

#[test]
fn stack_decode_records_of_two_gpus() {
    let dir = Dir::new("stackgpus");
    assert_eq!(
        stack_decode_error(&dir, |r| r["gpu"] = json!("NVIDIA H100 80GB HBM3")),
        "DIR/m.jsonl:2: measured on `NVIDIA H100 80GB HBM3`, but the records before it on `NVIDIA H200`: one GPU at a time"
    );
}

#[test]
fn stack_decode_record_with_a_bad_config() {
    let dir = Dir::new("stackcfg");
    assert_eq!(
        stack_decode_error(&dir, |r| r["config"]["num_key_value_heads"] = json!(3)),
        "DIR/m.jsonl:2: config: num_key_value_heads: 3 does not divide num_attention_heads = 8"
    );
    assert_eq!(
        stack_decode_error(&dir, |r| r["batch"] = json!(0)),
        "DIR/m.jsonl:2: `batch` must be an integer from 1 to 16777216"
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
        "DIR/s.json: family.axes[2]: unknown field `intermediate_size` (did you mean `ffn_dim`?); a family takes the axes hidden_dim, head_dim, num_heads, kv_heads, gqa_group, ffn_dim, ffn_ratio, window, qk_norm, seq_len, batch_size, num_layers, vocab_size, tie_embeddings, context_len, weights, kv_cache, experts, top_k, expert_ffn_dim, shared_experts, shared_expert_ffn_dim, first_dense_layers, layer_pattern, kv_lora_rank, q_lora_rank, rope_head_dim, v_head_dim and `name`, `source`"
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

#[test]
fn search_spec_with_an_unknown_weight_precision() {
    let dir = Dir::new("specPrecUnknown");
    let axes = AXES.replace("]}]", r#"]}, {"axis": "weights", "values": ["bf16", "fp16"]}]"#);
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": ["h100"], "family": {{"axes": {axes}, "name": "x{{weights}}"}}}}"#)
        ),
        "DIR/s.json: family.axes[3].values[1]: unknown weight precision `fp16` (did you mean `fp8`?); known: bf16, fp8 (e4m3, per-tensor scales), int4 (weight-only, group 128)"
    );
}

#[test]
fn search_spec_with_fp8_on_a_t4() {
    let dir = Dir::new("specPrecT4");
    let axes = AXES.replace("]}]", r#"]}, {"axis": "weights", "values": ["bf16", "fp8"]}]"#);
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h200", "t4"], "cost_model": {{"t4": "seed"}}, "family": {{"axes": {axes}, "name": "x{{weights}}"}}}}"#
            )
        ),
        "DIR/s.json: family.axes[3].values[1]: hardware `t4` cannot run fp8 weights: it has no fp8 tensor cores (its kernels run bf16 weights)"
    );
}

#[test]
fn search_spec_with_an_int4_kv_cache() {
    let dir = Dir::new("specPrecKv");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h200"], "workload": {{"kv_cache": "int4"}}, "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: workload.kv_cache: unknown KV-cache precision `int4` (no known name is close); known: bf16, fp8 (e4m3, per-tensor scales)"
    );
}

#[test]
fn shape_with_a_weights_key_that_is_not_a_string() {
    let dir = Dir::new("shapeWeights8");
    assert_eq!(
        predict_shape(&dir, json!({"weights": 8})),
        "DIR/c.json: configs[0]: `weights` must be a string (\"bf16\", \"fp8\"...), got 8"
    );
}

#[test]
fn shape_with_an_int4_kv_cache() {
    let dir = Dir::new("shapeKvInt4");
    assert_eq!(
        predict_shape(&dir, json!({"kv_cache": "int4"})),
        "DIR/c.json: configs[0].kv_cache: unknown KV-cache precision `int4` (no known name is close); known: bf16, fp8 (e4m3, per-tensor scales)"
    );
}

#[test]
fn predict_with_an_unknown_weights_flag() {
    let dir = Dir::new("flagWeights");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "h200", "--configs", &path, "--weights", "fp16"]),
        "--weights: unknown weight precision `fp16` (did you mean `fp8`?); known: bf16, fp8 (e4m3, per-tensor scales), int4 (weight-only, group 128)"
    );
}

#[test]
fn predict_int4_on_a_t4() {
    let dir = Dir::new("flagT4Int4");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "t4", "--cost-model", "seed", "--configs", &path, "--weights", "int4"]),
        "DIR/c.json: `a`: hardware `t4` cannot run int4 weights: it has no bf16 tensor cores for the int4 kernels (its kernels run bf16 weights)"
    );
}

#[test]
fn predict_an_fp8_kv_cache_on_an_a100() {
    let dir = Dir::new("flagA100Kv");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "a100", "--cost-model", "seed", "--configs", &path, "--kv-cache", "fp8"]),
        "DIR/c.json: `a`: hardware `a100` cannot read an fp8 KV cache: it has no fp8 conversion in its tensor cores (its kernels read a bf16 KV cache)"
    );
}

#[test]
fn predict_fp8_under_the_seed_cost_model() {
    let dir = Dir::new("flagSeedFp8");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--cost-model", "seed", "--configs", &path, "--weights", "fp8"]),
        "DIR/c.json: `a`: hardware `h100` under the seed cost model prices bf16 only (the seed tool's formula has no precision): ask for the measured cost model (`cost_model: measured`, `--cost-model measured`) to price fp8"
    );
}

#[test]
fn pack_of_the_seed_in_fp8_on_its_gpus() {
    let dir = Dir::new("packFp8");
    let out = dir.path("p");
    assert_eq!(
        dir.error(&["pack", "--seed", "--weights", "fp8", "--out", &out]),
        "candidate `gemma4_e2b`: hardware `a100` cannot run fp8 weights: it has no fp8 tensor cores (its kernels run bf16, int4 weights)"
    );
}

#[test]
fn kernel_query_with_an_unknown_dtype() {
    let dir = Dir::new("kernelDtype");
    let q = dir.file(
        "q.json",
        r#"[{"kernel": "gemm", "m": 16, "n": 4096, "k": 4096, "dtype": "int8"}]"#,
    );
    assert_eq!(
        dir.error(&["kernel", "--hardware", "h200", "--queries", &q]),
        "DIR/q.json: queries[0].dtype: unknown GEMM dtype `int8` (no known name is close); known: bf16, fp8 (e4m3, per-tensor scales, the activation's dynamic quantization included)"
    );
}

#[test]
fn kernel_query_in_fp8_on_an_a100() {
    let dir = Dir::new("kernelFp8A100");
    let q = dir.file(
        "q.json",
        r#"[{"kernel": "gemm", "m": 16, "n": 4096, "k": 4096, "dtype": "fp8"}]"#,
    );
    assert_eq!(
        dir.error(&["kernel", "--hardware", "a100", "--cost-model", "seed", "--queries", &q]),
        "DIR/q.json: queries[0]: hardware `a100` cannot run fp8 weights: it has no fp8 tensor cores (its kernels run bf16, int4 weights)"
    );
}

#[test]
fn profile_whose_fp8_gemm_rate_beats_the_fp8_peak() {
    let dir = Dir::new("profileFp8Peak");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(repo("calibration/h200.json")).unwrap()).unwrap();
    // 4000 TFLOP/s on a GPU whose dense fp8 peak is 1978.9
    v["precision"]["layer"]["gemm_fp8_flops"] =
        json!({"ms_per_unit": 1.0 / 4e12, "throughput": 4000.0, "unit": "TFLOP/s"});
    let p = dir.file("p.json", &v.to_string());
    let c = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "h200", "--calibration", &p, "--configs", &c]),
        "DIR/p.json: `precision.layer.gemm_fp8_flops` = 4000.0 TFLOP/s is faster than the physical limit 1978.9 TFLOP/s"
    );
}

#[test]
fn profile_without_a_precision_section_asked_for_fp8() {
    let dir = Dir::new("profileNoPrec");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(repo("calibration/h200.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("precision");
    let p = dir.file("p.json", &v.to_string());
    let c = dir.file("c.json", &json!([good_shape()]).to_string());
    assert_eq!(
        dir.error(&["predict", "--hardware", "h200", "--calibration", &p, "--configs", &c, "--weights", "fp8"]),
        "DIR/c.json: `a`: hardware `h200`: the measured profile DIR/p.json: it has no precision section, so it prices bf16 weights only: fit one with `nas calibrate --precision FILE...` (calibration/README.md) to price fp8 weights"
    );
}

#[test]
fn calibrate_precision_with_a_bf16_decode_step() {
    let dir = Dir::new("calibPrecBf16");
    let line = std::fs::read_to_string(repo("calibration/data/h200/decode.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let f = dir.file("p.jsonl", &line);
    let out = dir.path("out.json");
    let h200 = |f: &str| repo(&format!("calibration/data/h200/{f}"));
    let (layers, decode, micro) = (h200("layers.jsonl"), h200("decode.jsonl"), h200("decode-micro.jsonl"));
    assert_eq!(
        dir.error(&[
            "calibrate",
            "--out",
            &out,
            "--measurements",
            &layers,
            "--decode",
            &decode,
            "--decode-micro",
            &micro,
            "--precision",
            &f
        ]),
        "DIR/p.jsonl:1: a bf16 decode step: those fit the bf16 decode model (`--decode`), not the precision section"
    );
}

// ---------------------------------------------------------------- Hugging Face configs (nas predict --configs, nas import)

#[test]
fn hf_config_with_an_unsupported_model_type() {
    let dir = Dir::new("hf_config_with_an_unsupported_model_type");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "bert"}"#),
        "DIR/c.json: model_type: `bert` is not supported (no known name is close); supported: llama, mistral, qwen2, qwen3, qwen3_moe, gemma2, gemma3_text, phi3, mixtral, deepseek_v2, deepseek_v3, gpt_oss, olmo2, gpt2"
    );
}

#[test]
fn hf_config_of_multimodal_gemma3() {
    let dir = Dir::new("hf_config_of_multimodal_gemma3");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "gemma3"}"#),
        "DIR/c.json: model_type: `gemma3` is not supported (a multimodal Gemma-3 config: give its `text_config`, model_type gemma3_text); supported: llama, mistral, qwen2, qwen3, qwen3_moe, gemma2, gemma3_text, phi3, mixtral, deepseek_v2, deepseek_v3, gpt_oss, olmo2, gpt2"
    );
}

#[test]
fn hf_config_with_model_type_not_a_string() {
    let dir = Dir::new("hf_config_with_model_type_not_a_string");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": 3}"#),
        "DIR/c.json: model_type: must be a string, got a number"
    );
}

#[test]
fn hf_config_with_kv_heads_not_dividing_heads() {
    let dir = Dir::new("hf_config_with_kv_heads_not_dividing_heads");
    assert_eq!(
        predict_file(
            &dir,
            r#"{"model_type": "llama", "num_attention_heads": 32, "num_key_value_heads": 3}"#
        ),
        "DIR/c.json: num_key_value_heads: 3 does not divide num_attention_heads = 32"
    );
}

#[test]
fn hf_config_with_an_absurd_hidden_size() {
    let dir = Dir::new("hf_config_with_an_absurd_hidden_size");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "llama", "hidden_size": 1000000000000}"#),
        "DIR/c.json: hidden_size: 1000000000000 is absurdly large (the limit is 16777216)"
    );
}

#[test]
fn hf_config_with_an_absurd_layer_count() {
    let dir = Dir::new("hf_config_with_an_absurd_layer_count");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "qwen3", "num_hidden_layers": 1000000000}"#),
        "DIR/c.json: num_hidden_layers: 1000000000 is absurdly large (the limit is 65536)"
    );
}

#[test]
fn hf_config_whose_parameter_count_overflows() {
    let dir = Dir::new("hf_config_whose_parameter_count_overflows");
    assert_eq!(
        predict_file(
            &dir,
            r#"{"model_type": "llama", "hidden_size": 16777216, "intermediate_size": 16777216, "num_hidden_layers": 65536, "num_attention_heads": 1}"#
        ),
        "DIR/c.json: num_hidden_layers: these sizes make the parameter count overflow a 64-bit integer"
    );
}

#[test]
fn hf_config_with_a_size_as_a_string() {
    let dir = Dir::new("hf_config_with_a_size_as_a_string");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "mistral", "hidden_size": "4096"}"#),
        "DIR/c.json: hidden_size: must be a positive integer, got a string"
    );
}

#[test]
fn hf_config_with_a_negative_size() {
    let dir = Dir::new("hf_config_with_a_negative_size");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "qwen2", "intermediate_size": -1}"#),
        "DIR/c.json: intermediate_size: must be a positive integer, got -1"
    );
}

#[test]
fn hf_config_with_a_fractional_size() {
    let dir = Dir::new("hf_config_with_a_fractional_size");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "qwen2", "intermediate_size": 2.5}"#),
        "DIR/c.json: intermediate_size: must be a positive integer, got 2.5"
    );
}

#[test]
fn hf_config_with_a_zero_vocabulary() {
    let dir = Dir::new("hf_config_with_a_zero_vocabulary");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "olmo2", "vocab_size": 0}"#),
        "DIR/c.json: vocab_size: must be at least 1, got 0"
    );
}

#[test]
fn hf_config_with_nan() {
    let dir = Dir::new("hf_config_with_nan");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "qwen2", "intermediate_size": NaN}"#),
        "DIR/c.json: invalid JSON: expected value at line 1 column 46"
    );
}

#[test]
fn hf_config_with_a_boolean_as_a_string() {
    let dir = Dir::new("hf_config_with_a_boolean_as_a_string");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "gpt2", "tie_word_embeddings": "no"}"#),
        "DIR/c.json: tie_word_embeddings: must be true or false, got a string"
    );
}

#[test]
fn hf_config_with_a_huge_layer_types_list() {
    let dir = Dir::new("hf_config_with_a_huge_layer_types_list");
    let list = vec!["full_attention"; 1_000_000];
    let path = dir.file(
        "c.json",
        &json!({"model_type": "gemma2", "layer_types": list}).to_string(),
    );
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--configs", &path]),
        "DIR/c.json: layer_types: has 1000000 entries, but num_hidden_layers is 26 (one entry per layer)"
    );
}

#[test]
fn hf_config_with_an_unknown_layer_type() {
    let dir = Dir::new("hf_config_with_an_unknown_layer_type");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "gpt_oss", "num_hidden_layers": 2, "layer_types": ["sliding_attention", "chunked_attention"]}"#),
        "DIR/c.json: layer_types: entry 1 is `chunked_attention`, a layer kind nas cannot build; known: sliding_attention, full_attention"
    );
}

#[test]
fn hf_config_missing_a_key_without_default() {
    let dir = Dir::new("hf_config_missing_a_key_without_default");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "deepseek_v2"}"#),
        "DIR/c.json: num_experts_per_tok: missing (DeepSeek-V2's default is None, which routes no token)"
    );
}

#[test]
fn hf_config_with_top_k_above_experts() {
    let dir = Dir::new("hf_config_with_top_k_above_experts");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "mixtral", "num_experts_per_tok": 9}"#),
        "DIR/c.json: num_experts_per_tok: 9 is above num_local_experts = 8"
    );
}

#[test]
fn hf_config_with_an_unknown_activation() {
    let dir = Dir::new("hf_config_with_an_unknown_activation");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "llama", "hidden_act": "swiglu"}"#),
        "DIR/c.json: hidden_act: `swiglu` is not an activation transformers knows (did you mean `silu`?); known: gelu, gelu_10, gelu_accurate, gelu_fast, gelu_new, gelu_python, gelu_python_tanh, gelu_pytorch_tanh, hardswish, laplace, leaky_relu, linear, mish, prelu, quick_gelu, relu, relu2, relu6, sigmoid, silu, sqrtsoftplus, swish, tanh, xielu"
    );
}

#[test]
fn hf_config_with_a_quantization_nas_cannot_honour() {
    let dir = Dir::new("hf_config_with_a_quantization_nas_cannot_honour");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "llama", "quantization_config": {"quant_method": "gptq", "bits": 4}}"#),
        "DIR/c.json: quantization_config: quant_method `gptq` is not one nas can honour (fp8 and mxfp4 are counted as bf16 weights; remove quantization_config to count the bf16 model)"
    );
}

#[test]
fn hf_config_with_moe_layer_freq_transformers_ignores() {
    let dir = Dir::new("hf_config_with_moe_layer_freq_transformers_ignores");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "deepseek_v3", "moe_layer_freq": 2}"#),
        "DIR/c.json: moe_layer_freq: 2 is not what transformers builds: its DeepSeek classes ignore this key and put a mixture in every layer from first_k_dense_replace on"
    );
}

#[test]
fn hf_config_of_a_bidirectional_embedding_model() {
    let dir = Dir::new("hf_config_of_a_bidirectional_embedding_model");
    assert_eq!(
        predict_file(
            &dir,
            r#"{"model_type": "gemma3_text", "use_bidirectional_attention": true}"#
        ),
        "DIR/c.json: use_bidirectional_attention: true makes an embedding model, not a causal language model"
    );
}

#[test]
fn hf_config_with_a_zero_sliding_window_pattern() {
    let dir = Dir::new("hf_config_with_a_zero_sliding_window_pattern");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "gemma3_text", "sliding_window_pattern": 0}"#),
        "DIR/c.json: sliding_window_pattern: must be at least 1, got 0"
    );
}

#[test]
fn hf_config_gpt2_with_heads_not_dividing_width() {
    let dir = Dir::new("hf_config_gpt2_with_heads_not_dividing_width");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "gpt2", "n_head": 7}"#),
        "DIR/c.json: n_head: 7 does not divide n_embd = 768 (transformers' GPT-2 refuses it)"
    );
}

#[test]
fn hf_config_gpt2_with_cross_attention() {
    let dir = Dir::new("hf_config_gpt2_with_cross_attention");
    assert_eq!(
        predict_file(&dir, r#"{"model_type": "gpt2", "add_cross_attention": true}"#),
        "DIR/c.json: add_cross_attention: true adds encoder-decoder cross-attention layers, which a decoder-only stack does not have"
    );
}

#[test]
fn hf_config_in_an_array_with_a_bad_key() {
    let dir = Dir::new("hf_config_in_an_array_with_a_bad_key");
    assert_eq!(
        predict_file(&dir, r#"[{"model_type": "llama", "num_key_value_heads": 5}]"#),
        "DIR/c.json: configs[0]: num_key_value_heads: 5 does not divide num_attention_heads = 32"
    );
}

#[test]
fn hf_config_in_an_array_with_a_name_not_a_string() {
    let dir = Dir::new("hf_config_in_an_array_with_a_name_not_a_string");
    assert_eq!(
        predict_file(&dir, r#"[{"model_type": "llama", "name": 5}]"#),
        "DIR/c.json: configs[0]: name: must be a string"
    );
}

#[test]
fn predict_with_a_zero_batch() {
    let dir = Dir::new("predict_with_a_zero_batch");
    let cfg = dir.file("cfg.json", r#"{"model_type": "llama", "num_hidden_layers": 1}"#);
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--configs", &cfg, "--batch", "0"]),
        "--batch: must be between 1 and 16777216, got 0"
    );
}

#[test]
fn predict_of_a_config_whose_workload_overflows() {
    let dir = Dir::new("predict_of_a_config_whose_workload_overflows");
    let cfg = dir.file("cfg.json", r#"{"model_type": "llama", "num_hidden_layers": 1}"#);
    assert_eq!(
        dir.error(&["predict", "--hardware", "h100", "--configs", &cfg, "--seq-len", "16777216", "--batch", "16777216"]),
        "`cfg`: layer kind `full_dense`: its dense stand-in at this workload is not a valid layer: these sizes make FLOP or byte counts overflow a 64-bit integer"
    );
}

#[test]
fn import_of_a_file_that_is_not_a_config() {
    let dir = Dir::new("import_of_a_file_that_is_not_a_config");
    let arr = dir.file("arr.json", r#"[1]"#);
    assert_eq!(
        dir.error(&["import", &arr]),
        "DIR/arr.json: expected a Hugging Face config (a JSON object with `model_type`)"
    );
}

#[test]
fn import_of_a_bad_config() {
    let dir = Dir::new("import_of_a_bad_config");
    let bad = dir.file("bad.json", r#"{"model_type": "qwen2", "num_key_value_heads": 5}"#);
    assert_eq!(
        dir.error(&["import", &bad]),
        "DIR/bad.json: num_key_value_heads: 5 does not divide num_attention_heads = 32"
    );
}

// ---------------------------------------------------------------- issue 14, second pass

#[test]
fn unknown_hardware_in_capitals() {
    let dir = Dir::new("hwCaps");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    // `a100` and `h100` are both one edit from `H100`; the case-blind match wins
    assert_eq!(
        dir.error(&["predict", "--hardware", "H100", "--configs", &path]),
        "unknown hardware `H100` (did you mean `h100`?); known: a100, t4, h100, h200"
    );
}

#[test]
fn unknown_hardware_with_nothing_close() {
    let dir = Dir::new("hwFar");
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    // one edit from `h200`, but another first letter: another GPU, not a typo
    assert_eq!(
        dir.error(&["predict", "--hardware", "b200", "--configs", &path]),
        "unknown hardware `b200` (no known name is close); known: a100, t4, h100, h200"
    );
}

/// A Llama-3-8B layer written without `use_qk_norm` is predicted without
/// QK-norm (it was read as QK-norm on), and the output shows the value used.
#[test]
fn shape_without_use_qk_norm_has_no_qk_norm() {
    let dir = Dir::new("qkDefault");
    let llama = json!({"name": "llama3_8b", "hidden_dim": 4096, "num_heads": 32, "num_kv_heads": 8,
                       "head_dim": 128, "ffn_dim": 14336, "seq_len": 2048});
    let predict = |shape: &Value| -> Value {
        let path = dir.file("c.json", &json!([shape]).to_string());
        let out = nas(&["predict", "--hardware", "h100", "--configs", &path]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains(r#""use_qk_norm": false"#) || shape["use_qk_norm"] == json!(true),
            "{text}"
        );
        serde_json::from_str::<Value>(&text).unwrap()[0].clone()
    };
    let unsaid = predict(&llama);
    let mut off = llama.clone();
    off["use_qk_norm"] = json!(false);
    let mut on = llama.clone();
    on["use_qk_norm"] = json!(true);
    assert_eq!(unsaid["config"]["use_qk_norm"], json!(false));
    assert_eq!(unsaid["total_ms"], predict(&off)["total_ms"]);
    assert_ne!(unsaid["total_ms"], predict(&on)["total_ms"]);
}

#[test]
fn search_spec_whose_gqa_group_divides_no_heads() {
    let dir = Dir::new("specGqa");
    // 1536 / 256 = 6 heads: not in groups of 4 (it was rounded to 1 kv head, the name still saying 4)
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": ["h100"], "family": {"axes": [{"axis": "hidden_dim", "values": [1536]}, {"axis": "head_dim", "values": [256]}, {"axis": "gqa_group", "values": [4]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "g{gqa_group}"}}"#
        ),
        "DIR/s.json: family: the family yields no valid candidate (e.g. hidden_dim=1536, head_dim=256, gqa_group=4, ffn_ratio=4: gqa_group 4 does not divide num_heads 6)"
    );
}

/// A group that divides some heads and not others skips the others, counted
/// out of `valid_candidates`; `"round": "down"` asks for the seed's rule.
#[test]
fn search_spec_whose_gqa_group_divides_some_heads() {
    let dir = Dir::new("specGqaSome");
    let spec = |round: &str| {
        format!(
            r#"{{"hardware": ["h100"], "family": {{"axes": [{{"axis": "hidden_dim", "values": [1536, 2048]}}, {{"axis": "head_dim", "values": [256]}}, {{"axis": "gqa_group", "values": [4]{round}}}, {{"axis": "ffn_ratio", "values": [4.0]}}], "name": "h{{hidden_dim}}_g{{gqa_group}}"}}}}"#
        )
    };
    let run = |text: &str| -> Value {
        let path = dir.file("s.json", text);
        let out = nas(&["search", "--spec", &path, "--quiet"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let exact = run(&spec(""));
    assert_eq!(
        (exact["combinations"].as_u64(), exact["valid_candidates"].as_u64()),
        (Some(2), Some(1))
    );
    let text = exact.to_string();
    assert!(
        !text.contains("h1536_g4") && text.contains("h2048_g4"),
        r#"h1536_g4 is skipped: "valid_candidates": 1"#
    );
    let down = run(&spec(r#", "round": "down""#));
    assert_eq!(down["valid_candidates"].as_u64(), Some(2));
    let h1536 = down["results"][0]["total_ms_top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == json!("h1536_g4"))
        .unwrap()
        .clone();
    assert_eq!(h1536["config"]["num_kv_heads"], json!(1), "max(1, 6 / 4)");
}

#[test]
fn search_spec_with_too_many_gpus() {
    let dir = Dir::new("specGpus");
    let gpus: Vec<Value> = (0..65)
        .map(|i| json!({"key": format!("g{i}"), "base": "h100", "cost_model": "seed"}))
        .collect();
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": {}, "family": {{"axes": {AXES}, "name": "x"}}}}"#, json!(gpus))
        ),
        "DIR/s.json: hardware: 65 GPUs listed; a search targets at most 64 (its time and its report grow with every GPU)"
    );
}

#[test]
fn search_spec_that_reports_too_many_candidates() {
    let dir = Dir::new("specReported");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100", "h200", {{"key": "a", "base": "a100", "cost_model": "seed"}}, {{"key": "b", "base": "a100", "cost_model": "seed"}}, {{"key": "c", "base": "a100", "cost_model": "seed"}}, {{"key": "d", "base": "a100", "cost_model": "seed"}}], "top_k": 10000, "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: top_k: `top_k` = 10000 on 6 GPUs reports 60000 candidates per list; a search reports at most 50000 (top_k x GPUs): ask for fewer"
    );
}

#[test]
fn search_spec_with_too_many_comparisons() {
    let dir = Dir::new("specClauses");
    let clauses: Vec<Value> = (0..300)
        .map(|i| json!({"metric": "param_proxy_m", "op": ">=", "value": i as f64 * 0.001}))
        .collect();
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "constraints": {}}}"#,
                json!(clauses)
            )
        ),
        "DIR/s.json: constraints[256]: the constraints hold 300 comparisons, more than the 256 a search takes (the first beyond them is here)"
    );
}

#[test]
fn search_spec_gpu_with_absurd_memory() {
    let dir = Dir::new("specMemory");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": [{{"key": "mine", "base": "h100", "cost_model": "seed", "memory_gib": 1e308}}], "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: hardware[0].memory_gib: `memory_gib`: 1e308 GiB is absurdly large (the limit is 1048576)"
    );
}

#[test]
fn search_spec_labels_and_sources_that_are_not_strings() {
    let dir = Dir::new("specLabels");
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": [{"key": "mine", "base": "h100", "cost_model": "seed", "label": 5}], "family": {"axes": [{"axis": "hidden_dim", "values": [{"value": 2048, "label": 7}]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [8192]}], "name": "x", "source": 3}}"#
        ),
        "DIR/s.json: hardware[0].label: `label` must be a string; family.source: `source` must be a string; family.axes[0].values[0].label: a label must be a string, got 7"
    );
}

/// A profile with `residuals`, `decode_model`... edited by hand, or fitted
/// to medians that are not times: refused when read.
fn profile_error(dir: &Dir, edit: impl FnOnce(&mut Value)) -> String {
    let mut profile: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("calibration/h200.json")).unwrap()).unwrap();
    edit(&mut profile);
    let profile = dir.file("p.json", &serde_json::to_string_pretty(&profile).unwrap());
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    dir.error(&[
        "predict",
        "--hardware",
        "h200",
        "--calibration",
        &profile,
        "--configs",
        &path,
    ])
}

#[test]
fn calibration_profile_far_from_its_own_data() {
    let dir = Dir::new("profileFar");
    assert_eq!(
        profile_error(&dir, |p| {
            p["residuals"]["all"]["mape_pct"] = json!(80.0);
            p["residuals"]["all"]["max_abs_pct"] = json!(100.0);
        }),
        "DIR/p.json: `residuals.all`: the fit misses its own training data by 8.000e1% on average (more than 50%): its medians are not these kernels' times in milliseconds, or not one GPU's; a profile so far off predicts nothing and is refused"
    );
}

#[test]
fn calibration_profile_with_a_statistic_out_of_range() {
    let dir = Dir::new("profileStat");
    assert_eq!(
        profile_error(&dir, |p| p["decode_model"]["residuals"]["validation"]
            ["within_10_pct"] = json!(150.0)),
        "DIR/p.json: `decode_model.residuals.validation.within_10_pct` must be a share from 0 to 100, got 150.0"
    );
}

#[test]
fn calibration_profile_with_a_decode_throughput_that_disagrees() {
    let dir = Dir::new("profileDecodeTp");
    let e = profile_error(&dir, |p| {
        p["decode_model"]["fitted"]["decode_kv_bytes"]["throughput"] = json!(1e-310)
    });
    assert!(
        e.starts_with(
            "DIR/p.json: `decode_model.decode_kv_bytes.throughput` = 1e-310 GB/s does not match its `ms_per_unit`"
        ),
        "{e}"
    );
}

#[test]
fn calibration_profile_with_a_misspelt_key() {
    let dir = Dir::new("profileKey");
    let e = profile_error(&dir, |p| {
        let d = p.as_object_mut().unwrap().remove("decode_model").unwrap();
        p["decode_modle"] = d;
    });
    // a misspelt decode model was silently "no decode model" (the roofline instead)
    assert!(
        e.starts_with("DIR/p.json: not a calibration profile: unknown field `decode_modle`"),
        "{e}"
    );
}

#[test]
fn calibration_profile_with_a_key_given_twice() {
    let dir = Dir::new("profileTwice");
    let text = std::fs::read_to_string(repo("calibration/h200.json")).unwrap();
    let twice = text.replacen("\"sm_count\": 132,", "\"sm_count\": 132,\n  \"sm_count\": 66,", 1);
    let profile = dir.file("p.json", &twice);
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let e = dir.error(&[
        "predict",
        "--hardware",
        "h200",
        "--calibration",
        &profile,
        "--configs",
        &path,
    ]);
    assert!(
        e.starts_with("DIR/p.json: top level: key `sm_count` is given twice"),
        "{e}"
    );
}

/// Runs `nas calibrate` into `DIR/p.json`; returns its error, and checks that no profile was written.
fn calibrate_error(dir: &Dir, args: &[&str]) -> String {
    let out = dir.path("p.json");
    let mut all = vec!["calibrate", "--out", &out];
    all.extend_from_slice(args);
    let e = dir.error(&all);
    assert!(!Path::new(&out).exists(), "no profile is written");
    e
}

/// The committed H100 layer measurements, with `edit` applied to each record.
fn h100_layers(dir: &Dir, edit: impl Fn(usize, &mut Value)) -> String {
    let text = std::fs::read_to_string(repo("calibration/data/h100/layers.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            edit(i, &mut v);
            v.to_string()
        })
        .collect();
    dir.file("m.jsonl", &(lines.join("\n") + "\n"))
}

#[test]
fn measurement_with_an_absurd_median() {
    let dir = Dir::new("medianAbsurd");
    let m = h100_layers(&dir, |i, v| {
        if i == 2 {
            v["median_ms"] = json!(1e300);
        }
    });
    assert_eq!(
        calibrate_error(&dir, &["--measurements", &m]),
        "DIR/m.jsonl:3: `median_ms` = 1e300 is absurd for one GPU kernel, layer or step (from 1e-6 to 1e7 ms: 1 ns to 2.8 hours; is it in milliseconds?)"
    );
}

/// Medians in seconds (1000 times too small): the fit, held at the GPU's
/// peaks, misses them all, and its profile (all at the peaks, launches free)
/// is not written.
#[test]
fn measurements_a_fit_cannot_follow() {
    let dir = Dir::new("medianSeconds");
    let m = h100_layers(&dir, |_, v| {
        if let Some(t) = v["median_ms"].as_f64() {
            v["median_ms"] = json!(t / 1000.0);
        }
    });
    let e = calibrate_error(&dir, &["--measurements", &m]);
    assert!(
        e.starts_with("the fitted profile: `residuals.all`: the fit misses its own training data by"),
        "{e}"
    );
    assert!(e.ends_with("; it is not written"), "{e}");
}

#[test]
fn measurements_too_many_to_fit() {
    let dir = Dir::new("fitTooMany");
    let text = std::fs::read_to_string(repo("calibration/data/h100/layers.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"set\": \"train\"")).collect();
    let many: Vec<&str> = lines.iter().cycle().take(4097).copied().collect();
    let m = dir.file("m.jsonl", &(many.join("\n") + "\n"));
    assert_eq!(
        calibrate_error(&dir, &["--measurements", &m]),
        "4097 measurements to fit; a fit takes at most 4096 (its leave-one-out cross-validation refits once per record, so time grows with their square): fit a sample"
    );
}

#[test]
fn measurement_line_with_a_key_given_twice() {
    let dir = Dir::new("measTwice");
    let text = std::fs::read_to_string(repo("calibration/data/h100/layers.jsonl")).unwrap();
    let first =
        text.lines()
            .next()
            .unwrap()
            .replacen("\"set\": \"train\"", "\"set\": \"train\", \"set\": \"validation\"", 1);
    let m = dir.file("m.jsonl", &format!("{first}\n"));
    let e = calibrate_error(&dir, &["--measurements", &m]);
    assert!(
        e.starts_with("DIR/m.jsonl:1: top level: key `set` is given twice"),
        "{e}"
    );
}

#[test]
fn decode_steps_of_another_gpu_than_the_layers() {
    let dir = Dir::new("decodeOtherGpu");
    // H200 decode steps into a profile of H100 layers
    assert_eq!(
        calibrate_error(
            &dir,
            &[
                "--measurements",
                &repo("calibration/data/h100/layers.jsonl"),
                "--decode",
                &repo("calibration/data/h200/decode.jsonl"),
            ]
        ),
        "the decode steps were measured on `NVIDIA H200`, the profile's layers on `NVIDIA H100 80GB HBM3`: one profile is one GPU's"
    );
}

#[test]
fn decode_micro_benchmarks_of_two_gpus() {
    let dir = Dir::new("microTwoGpus");
    let text = std::fs::read_to_string(repo("calibration/data/h200/decode-micro.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 5 {
                l.replace("NVIDIA H200", "NVIDIA H100 80GB HBM3")
            } else {
                l.to_string()
            }
        })
        .collect();
    let micro = dir.file("micro.jsonl", &(lines.join("\n") + "\n"));
    assert_eq!(
        calibrate_error(
            &dir,
            &[
                "--measurements",
                &repo("calibration/data/h200/layers.jsonl"),
                "--decode",
                &repo("calibration/data/h200/decode.jsonl"),
                "--decode-micro",
                &micro,
            ]
        ),
        "DIR/micro.jsonl:6: measured on `NVIDIA H100 80GB HBM3`, but the records before it on `NVIDIA H200`: one GPU at a time"
    );
}

#[test]
fn decode_record_with_a_set_that_is_not_a_string() {
    let dir = Dir::new("decodeSet");
    let text = std::fs::read_to_string(repo("calibration/data/h200/decode.jsonl")).unwrap();
    let mut first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    // it was read as `train`: a validation model fitted on
    first["set"] = json!(["validation"]);
    let d = dir.file("d.jsonl", &format!("{first}\n"));
    assert_eq!(
        calibrate_error(
            &dir,
            &[
                "--measurements",
                &repo("calibration/data/h200/layers.jsonl"),
                "--decode",
                &d
            ]
        ),
        "DIR/d.jsonl:1: `set` must be a string, got [\"validation\"]"
    );
}

#[test]
fn calibration_db_with_a_key_given_twice() {
    let dir = Dir::new("dbTwice");
    let db = dir.file(
        "db.json",
        r#"{"records": {"matmul:x": {"shape_key": "a:NVIDIA A100-SXM4-80GB", "best_tflops": 1.0, "best_tflops": 900.0}}}"#,
    );
    let path = dir.file("c.json", &json!([good_shape()]).to_string());
    let e = dir.error(&[
        "predict",
        "--hardware",
        "a100",
        "--cost-model",
        "seed",
        "--calibration",
        &db,
        "--configs",
        &path,
    ]);
    assert!(
        e.starts_with("calibration DB DIR/db.json: not valid JSON: records.matmul:x: key `best_tflops` is given twice"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn report_prefix_that_is_a_device() {
    let dir = Dir::new("prefixDevice");
    // it wrote /dev/null.json, /dev/null.md and /dev/null.html into /dev
    assert_eq!(
        dir.error(&["pack", "--seed", "--out", "/dev/null"]),
        "/dev/null: is a device or a pipe, but a report is several files named from its prefix (.json, .md, .html): give a prefix in a folder, such as out/report"
    );
    assert!(!Path::new("/dev/null.json").exists());
}

#[cfg(unix)]
#[test]
fn output_through_a_symbolic_link() {
    let dir = Dir::new("outLink");
    std::fs::create_dir(dir.0.join("elsewhere")).unwrap();
    std::fs::write(dir.0.join("elsewhere/r.json"), "old").unwrap();
    std::os::unix::fs::symlink("elsewhere/r.json", dir.0.join("link.json")).unwrap();
    let spec = repo("examples/specs/gqa-sweep.json");
    let out = nas(&["search", "--spec", &spec, "--quiet", "--out", &dir.path("link.json")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = std::fs::symlink_metadata(dir.0.join("link.json")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "(the file the link names is replaced; the link stays)"
    );
    let written = std::fs::read_to_string(dir.0.join("elsewhere/r.json")).unwrap();
    assert!(written.contains("\"valid_candidates\""), "{written}");
    assert_eq!(dir.names(), ["elsewhere", "link.json"], "no temporary file left");
}

#[test]
fn search_spec_of_eight_axes_of_65536_values() {
    let dir = Dir::new("spec2p128");
    // 2^128 combinations: one more than a u128 holds (the count once wrapped to a small number)
    let axes: Vec<Value> = [
        "seq_len",
        "batch_size",
        "num_layers",
        "vocab_size",
        "context_len",
        "ffn_dim",
        "num_heads",
        "kv_heads",
    ]
    .iter()
    .map(|a| json!({"axis": a, "values": (1..=65536).collect::<Vec<u64>>()}))
    .chain([
        json!({"axis": "hidden_dim", "values": [2048]}),
        json!({"axis": "head_dim", "values": [128]}),
    ])
    .collect();
    assert_eq!(
        search(
            &dir,
            &json!({"hardware": ["h100"], "family": {"axes": axes, "name": "x{seq_len}_{batch_size}_{num_layers}_{vocab_size}_{context_len}_{ffn_dim}_{num_heads}_{kv_heads}"}}).to_string()
        ),
        "DIR/s.json: family: the family has 2^128 or more combinations; the streaming search handles at most 2^62"
    );
}

#[test]
fn search_spec_listing_a_gpu_twice() {
    let dir = Dir::new("specGpuTwice");
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": ["h100", "h100"], "family": {{"axes": {AXES}, "name": "x"}}}}"#)
        ),
        "DIR/s.json: hardware[1]: hardware `h100` is listed twice; hardware[0]: `h100` is first listed here"
    );
}

#[test]
fn search_spec_gpu_named_like_a_builtin_but_for_case() {
    let dir = Dir::new("specGpuCase");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": [{{"key": "H100", "base": "h100", "cost_model": "seed"}}], "family": {{"axes": {AXES}, "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: hardware[0]: `H100` is the built-in GPU `h100` but for case; give yours another name"
    );
}

#[test]
fn search_spec_gpu_profile_that_is_not_a_string() {
    let dir = Dir::new("specGpuProfile");
    // one error: the throughputs are not also reported missing, nor the profile absent
    assert_eq!(
        search(
            &dir,
            &format!(r#"{{"hardware": [{{"key": "mine", "profile": 5}}], "family": {{"axes": {AXES}, "name": "x"}}}}"#)
        ),
        "DIR/s.json: hardware[0].profile: `profile` must be a string"
    );
}

#[test]
fn search_spec_comparison_whose_op_is_not_a_string() {
    let dir = Dir::new("specOp");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h100"], "family": {{"axes": {AXES}, "name": "x"}}, "constraints": [{{"metric": "hidden_dim", "op": 5, "value": 1}}]}}"#
            )
        ),
        "DIR/s.json: constraints[0]: `op` is one of >=, >, <=, <, ==, !=; got 5"
    );
}

// ---------------------------------------------------------------- issue 13: mixtures, layer patterns, latent attention

/// A whole model written as a JSON shape, Qwen3-30B-A3B's attention and sizes, with `extra` keys.
fn stack_shape(dir: &Dir, extra: &str, args: &[&str]) -> String {
    let text = format!(
        r#"[{{"name": "m", "hidden_dim": 2048, "num_heads": 32, "num_kv_heads": 4, "head_dim": 128, "ffn_dim": 6144,
             "seq_len": 1024, "batch_size": 1, "use_qk_norm": true, "num_layers": 48, "vocab_size": 151936, {extra}}}]"#
    );
    let path = dir.file("c.json", &text);
    let mut all = vec!["predict", "--hardware", "h200", "--configs", &path];
    all.extend(args);
    dir.error(&all)
}

#[test]
fn shape_with_top_k_above_experts() {
    let dir = Dir::new("archTopK");
    assert_eq!(
        stack_shape(&dir, r#""experts": 8, "top_k": 16"#, &[]),
        "DIR/c.json: configs[0] (`m`): `top_k` = 16 is above `experts` = 8: a token cannot pick more experts than exist"
    );
}

#[test]
fn shape_with_one_expert() {
    let dir = Dir::new("archOne");
    assert_eq!(
        stack_shape(&dir, r#""experts": 1, "top_k": 1"#, &[]),
        "DIR/c.json: configs[0] (`m`): `experts` = 1 is a dense MLP: a mixture needs at least 2 experts (leave `experts` out for a dense layer)"
    );
}

#[test]
fn shape_with_a_layer_pattern_that_is_not_a_string() {
    let dir = Dir::new("archPatternType");
    assert_eq!(
        stack_shape(&dir, r#""window_size": 512, "layer_pattern": 5"#, &[]),
        "DIR/c.json: configs[0]: `layer_pattern` must be a string (\"5:1\"), got 5"
    );
}

#[test]
fn shape_with_a_layer_pattern_of_zeros() {
    let dir = Dir::new("archPatternZero");
    assert_eq!(
        stack_shape(&dir, r#""window_size": 512, "layer_pattern": "0:0""#, &[]),
        "DIR/c.json: configs[0].layer_pattern: `layer_pattern` \"0:0\": both counts must be at least 1 (a pattern without sliding or without full layers is a uniform stack: give `window` alone, or no window)"
    );
}

#[test]
fn shape_with_a_hugging_face_expert_key() {
    let dir = Dir::new("archHfKey");
    assert_eq!(
        stack_shape(&dir, r#""num_experts": 8"#, &[]),
        "DIR/c.json: configs[0]: unknown key `num_experts` (did you mean `experts`?)"
    );
}

#[test]
fn shape_with_experts_as_a_string() {
    let dir = Dir::new("archExpertsString");
    assert_eq!(
        stack_shape(&dir, r#""experts": "8", "top_k": 2"#, &[]),
        "DIR/c.json: configs[0]: `experts` must be a positive integer, got \"8\""
    );
}

#[test]
fn shape_with_latent_attention_and_a_window() {
    let dir = Dir::new("archLatentWindow");
    let text = r#"[{"name": "m", "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 16, "head_dim": 128, "ffn_dim": 10944,
                   "seq_len": 1024, "batch_size": 1, "use_qk_norm": false, "window_size": 4096, "num_layers": 27,
                   "vocab_size": 102400, "kv_lora_rank": 512}]"#;
    assert_eq!(
        predict_file(&dir, text),
        "DIR/c.json: configs[0] (`m`): latent attention attends to the whole context here: it takes no window (got 4096)"
    );
}

#[test]
fn stack_shape_under_tensor_parallelism() {
    let dir = Dir::new("archTp");
    assert_eq!(
        stack_shape(&dir, r#""experts": 8, "top_k": 2"#, &["--tp", "2"]),
        "DIR/c.json: `m`: `experts` makes the shape a stack of layer kinds, which `--tp` does not shard yet: write it as a Hugging Face config (`nas predict --configs FILE --tp N`)"
    );
}

const STACK_AXES: &str = r#"{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [6144]}, {"axis": "num_layers", "values": [48]}, {"axis": "vocab_size", "values": [151936]}"#;

#[test]
fn search_spec_with_a_layer_pattern_that_is_not_a_string() {
    let dir = Dir::new("specPatternType");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h200"], "family": {{"axes": [{STACK_AXES}, {{"axis": "window", "values": [512]}}, {{"axis": "layer_pattern", "values": [5]}}], "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: family.axes[6].values[0]: `layer_pattern` takes a string \"a:b\" (a sliding-window layers, then b full-attention layers: \"5:1\"), got 5"
    );
}

#[test]
fn search_spec_with_one_expert() {
    let dir = Dir::new("specOneExpert");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h200"], "family": {{"axes": [{STACK_AXES}, {{"axis": "experts", "values": [1, 8]}}, {{"axis": "top_k", "values": [1]}}], "name": "x{{experts}}"}}}}"#
            )
        ),
        "DIR/s.json: family.axes[5].values[0]: `experts` = 1 is a dense MLP: a mixture needs at least 2 experts (leave `experts` out for a dense layer)"
    );
}

#[test]
fn search_spec_of_stacks_without_layers() {
    let dir = Dir::new("specStackNoLayers");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h200"], "family": {{"axes": {}, {{"axis": "experts", "values": [8]}}, {{"axis": "top_k", "values": [1]}}], "name": "x"}}}}"#,
                AXES.trim_end_matches(']')
            )
        ),
        "DIR/s.json: family: `experts` makes the family's candidates stacks of layer kinds (whole models): it needs the axis `num_layers`"
    );
}

#[test]
fn search_spec_whose_top_k_is_above_every_expert_count() {
    let dir = Dir::new("specTopKAbove");
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h200"], "family": {{"axes": [{STACK_AXES}, {{"axis": "experts", "values": [2]}}, {{"axis": "top_k", "values": [8]}}], "name": "x"}}}}"#
            )
        ),
        "DIR/s.json: family: the family yields no valid candidate (e.g. hidden_dim=2048, head_dim=128, ffn_dim=6144, num_layers=48, vocab_size=151936, experts=2, top_k=8: `top_k` = 8 is above `experts` = 2: a token cannot pick more experts than exist)"
    );
}

#[test]
fn search_spec_of_too_many_stacks() {
    let dir = Dir::new("specTooManyStacks");
    let values = |n: u64, step: u64| -> String {
        let v: Vec<String> = (1..=n).map(|i| (i * step).to_string()).collect();
        v.join(", ")
    };
    assert_eq!(
        search(
            &dir,
            &format!(
                r#"{{"hardware": ["h200"], "family": {{"axes": [{STACK_AXES}, {{"axis": "experts", "values": [{}]}}, {{"axis": "top_k", "values": [1]}}, {{"axis": "expert_ffn_dim", "values": [{}]}}], "name": "x{{experts}}_{{expert_ffn_dim}}"}}}}"#,
                values(512, 2),
                values(1024, 64)
            )
        ),
        "DIR/s.json: family: the family has 524288 combinations; a family with `experts` (a mixture of experts, a layer pattern or latent attention: a stack of layer kinds, timed candidate by candidate) has at most 262144: give its axes fewer values"
    );
}

#[test]
fn search_spec_of_stacks_with_too_many_layers() {
    let dir = Dir::new("specStackLayers");
    assert_eq!(
        search(
            &dir,
            r#"{"hardware": ["h200"], "family": {"axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_dim", "values": [6144]}, {"axis": "num_layers", "values": [65536]}, {"axis": "vocab_size", "values": [151936]}, {"axis": "experts", "values": [8, 16, 32, 64]}, {"axis": "top_k", "values": [1, 2, 4, 8]}, {"axis": "expert_ffn_dim", "values": [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]}, {"axis": "first_dense_layers", "values": [1, 2, 3, 4, 5, 6, 7, 8]}], "name": "x{experts}_{top_k}_{expert_ffn_dim}_{first_dense_layers}"}}"#
        ),
        "DIR/s.json: family: `experts` makes the family's candidates stacks of layer kinds, each listing its layers: its 1024 combinations of up to 65536 layers build 67108864 layers in all, more than the 33554432 a search builds; give it fewer values or fewer layers"
    );
}
