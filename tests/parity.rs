//! Parity with the seed tool: every number within 1e-9 relative, every name,
//! order, rank, flag and key identical; only `environment` blocks differ.

use std::path::{Path, PathBuf};
use std::process::Command;

use nas::calibrate::CalibrationBlock;
use nas::search::seed::pack_spec;
use serde_json::Value;

const SEED_DB: &str = "calibration/seed/noeris-cost-model-training.json";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(repo("tests/fixtures").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every difference between two JSON documents, as `path: what`.
fn differences(ours: &Value, seed: &Value, path: &str, out: &mut Vec<String>) {
    if path.ends_with(".environment") {
        return;
    }
    match (ours, seed) {
        (Value::Object(a), Value::Object(b)) => {
            let keys_a: Vec<_> = a.keys().collect();
            let keys_b: Vec<_> = b.keys().collect();
            if keys_a != keys_b {
                out.push(format!("{path}: keys {keys_a:?} != {keys_b:?}"));
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    differences(v, w, &format!("{path}.{k}"), out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path}: {} items != {}", a.len(), b.len()));
            }
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                differences(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            // Integers must stay integers (2048, not 2048.0) and equal.
            if a.is_f64() != b.is_f64() {
                out.push(format!("{path}: {a} and {b} differ in type"));
            }
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            if (x - y).abs() > 1e-9 * x.abs().max(y.abs()) {
                out.push(format!("{path}: {x} != {y}"));
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} != {b}")),
    }
}

fn assert_parity(ours: &Value, seed: &Value) {
    let mut diffs = Vec::new();
    differences(ours, seed, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "{} differences, first ones:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
}

fn seed_pack(calibration: CalibrationBlock) -> nas::report::Pack {
    pack_spec(calibration).unwrap().evaluate().unwrap()
}

#[test]
fn calibrated_pack_matches_the_seed() {
    let bytes = std::fs::read(repo(SEED_DB)).unwrap();
    // Reported under the path the seed's own run used.
    let calibration = CalibrationBlock::from_bytes(".noeris/cost-model-training.json", &bytes).unwrap();
    let pack = seed_pack(calibration);
    let ours: Value = serde_json::from_str(&pack.to_json().unwrap()).unwrap();
    assert_parity(&ours, &fixture("noeris-multihardware-pack.json"));
    assert_seed_summary_first(&pack.to_markdown());
}

/// The seed's Markdown summary is the exact beginning of ours; what is new
/// follows it as new sections.
fn assert_seed_summary_first(md: &str) {
    let seed_md = std::fs::read_to_string(repo("tests/fixtures/noeris-multihardware-pack.md")).unwrap();
    let same = md.bytes().zip(seed_md.bytes()).take_while(|(a, b)| a == b).count();
    assert!(
        md.starts_with(&seed_md),
        "the seed's summary is not the beginning of ours; they differ at byte {same}: ours {:?}, seed's {:?}",
        &md[same..md.len().min(same + 80)],
        &seed_md[same..seed_md.len().min(same + 80)]
    );
    assert!(
        md[seed_md.len()..].starts_with("\n## "),
        "new sections follow the seed's summary"
    );
}

#[test]
fn uncalibrated_pack_matches_the_seed() {
    let calibration = CalibrationBlock::load(Path::new("missing-calibration.json")).unwrap();
    let ours: Value = serde_json::from_str(&seed_pack(calibration).to_json().unwrap()).unwrap();
    assert_parity(&ours, &fixture("noeris-multihardware-pack-uncalibrated.json"));
}

#[test]
fn the_comparator_catches_differences() {
    let seed = fixture("noeris-multihardware-pack-uncalibrated.json");
    let mut changed = seed.clone();
    changed["reports"]["h100"]["comparison"][3]["total_ms"] = Value::from(1.000_000_01);
    changed["candidate_count"] = Value::from(49.0);
    let mut diffs = Vec::new();
    differences(&changed, &seed, "", &mut diffs);
    assert_eq!(diffs.len(), 2, "{diffs:?}");
}

#[test]
fn cli_pack_matches_the_seed_and_is_deterministic() {
    let dir = std::env::temp_dir().join(format!("nas-parity-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(".noeris")).unwrap();
    std::fs::copy(repo(SEED_DB), dir.join(".noeris/cost-model-training.json")).unwrap();
    let run = |prefix: &str| {
        let status = Command::new(env!("CARGO_BIN_EXE_nas"))
            .current_dir(&dir)
            .args([
                "pack",
                "--seed",
                "--calibration-db",
                ".noeris/cost-model-training.json",
                "--out",
                prefix,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(dir.join(format!("{prefix}.json"))).unwrap()
    };
    let first = run("a");
    assert_eq!(first, run("b"), "same spec, same bytes");
    let ours: Value = serde_json::from_slice(&first).unwrap();
    assert_parity(&ours, &fixture("noeris-multihardware-pack.json"));
    let md = std::fs::read_to_string(dir.join("a.md")).unwrap();
    assert_seed_summary_first(&md);
    assert_eq!(md, std::fs::read_to_string(dir.join("b.md")).unwrap());
    let html = std::fs::read_to_string(dir.join("a.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html, std::fs::read_to_string(dir.join("b.html")).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The library's `Pack::write` creates the folder it writes into (a new
/// user's `pack.write("out/seed")`); the CLI's `--out` does not (RELIABILITY row 10).
#[test]
fn pack_write_creates_its_folder() {
    let dir = std::env::temp_dir().join(format!("nas-pack-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pack = seed_pack(CalibrationBlock::load(Path::new("missing-calibration.json")).unwrap());
    pack.write(dir.join("a/b/seed")).unwrap();
    for ext in ["json", "md", "html"] {
        assert!(dir.join(format!("a/b/seed.{ext}")).is_file(), "{ext}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
