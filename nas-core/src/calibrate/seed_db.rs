//! Reading the seed's calibration DB into A100 overrides and the pack's
//! `calibration` block (status, path, SHA-256, per-operator summaries).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::hardware::Overrides;
use crate::search::constraints::round_places;
use crate::shapes::kind_of;

/// The GPU whose records override the `a100` profile.
pub const A100_GPU_NAME: &str = "NVIDIA A100-SXM4-80GB";

/// DB operator -> a100 profile key it overrides (with its max best metric).
/// The DB stores RMSNorm throughput in its "tflops" field; the seed reads it as GB/s.
const A100_OVERRIDES: [(&str, &str); 3] = [
    ("attention", "attention_tflops"),
    ("matmul", "matmul_tflops"),
    ("rmsnorm", "rmsnorm_gbps"),
];

const NOTES: [&str; 2] = [
    "A100 rmsnorm/matmul/attention constants are overridden when matching persisted records exist.",
    "Other hardware profiles remain hardcoded proxy constants until measured artifacts are available.",
];

/// Whether the DB was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationStatus {
    Loaded,
    /// A path was given but no file is there.
    Unavailable,
    /// No path was given.
    Disabled,
}

/// Record count, median and max of one operator's best metric on one GPU.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OperatorSummary {
    pub max_best_metric: f64,
    pub median_best_metric: f64,
    pub record_count: usize,
}

/// The pack's `calibration` block, exactly as the seed writes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationBlock {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<String>>,
    /// hardware key -> profile key -> value.
    pub profile_overrides: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    pub status: CalibrationStatus,
    /// operator -> GPU name -> summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<BTreeMap<String, BTreeMap<String, OperatorSummary>>>,
}

/// Largest `best_tflops` a record may give (TFLOP/s or GB/s): far above any
/// GPU, small enough that summaries (means, rounding) stay finite.
pub const MAX_BEST_METRIC: f64 = 1e9;

impl CalibrationBlock {
    /// No DB asked for.
    pub fn disabled() -> Self {
        CalibrationBlock {
            notes: None,
            profile_overrides: BTreeMap::new(),
            source_path: None,
            source_sha256: None,
            status: CalibrationStatus::Disabled,
            summary: None,
        }
    }

    /// Reads the DB at `path`. A missing file is `unavailable` (as in the
    /// seed); a file that exists but is not a valid DB is an error.
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.to_string_lossy().into_owned();
        let bytes = match crate::input::read_file(path) {
            Ok(bytes) => bytes,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CalibrationBlock {
                    source_path: Some(shown),
                    status: CalibrationStatus::Unavailable,
                    ..CalibrationBlock::disabled()
                })
            }
            Err(e) => return Err(e),
        };
        Self::from_bytes(&shown, &bytes)
    }

    /// Parses DB bytes; `shown_path` is what the block reports as its source.
    pub fn from_bytes(shown_path: &str, bytes: &[u8]) -> Result<Self> {
        let place = |p: String| format!("calibration DB {shown_path}: {p}");
        let doc: Value = crate::input::parse_json(bytes, "").map_err(|e| match e {
            // "calibration DB PATH: not valid JSON: <problem>", the problem said as every reader says it
            Error::Input { problem, .. } => Error::input(
                place("not valid JSON".into()),
                problem.strip_prefix("invalid JSON: ").unwrap_or(&problem).to_string(),
            ),
            other => other,
        })?;
        let records = doc
            .get("records")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::input(place("top level".into()), "expected an object with a `records` object"))?;

        // operator -> gpu -> best metrics, in record order
        let mut metrics: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for (key, entry) in records {
            let operator = key.split(':').next().unwrap_or_default().to_string();
            let list: Vec<&Value> = match entry {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for record in list {
                let at = || place(format!("records[\"{key}\"]"));
                let shape_key = record
                    .get("shape_key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::input(at(), "missing string `shape_key`"))?;
                let best = record
                    .get("best_tflops")
                    .ok_or_else(|| Error::input(at(), "missing `best_tflops`"))?;
                let best = best.as_f64().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| {
                    Error::input(
                        at(),
                        format!("`best_tflops` must be a non-negative number, got {}", kind_of(best)),
                    )
                })?;
                if best > MAX_BEST_METRIC {
                    return Err(Error::input(
                        at(),
                        format!("`best_tflops` = {best:?} is absurdly large (the limit is {MAX_BEST_METRIC:e})"),
                    ));
                }
                let gpu = shape_key.rsplit(':').next().unwrap_or_default().to_string();
                metrics
                    .entry(operator.clone())
                    .or_default()
                    .entry(gpu)
                    .or_default()
                    .push(best);
            }
        }

        let mut a100 = BTreeMap::new();
        for (operator, key) in A100_OVERRIDES {
            if let Some(values) = metrics.get(operator).and_then(|g| g.get(A100_GPU_NAME)) {
                let max = values.iter().copied().fold(f64::MIN, f64::max);
                a100.insert(key.to_string(), round_places(max, 4));
            }
        }
        // Overrides must be usable throughputs; the seed accepted anything.
        Overrides::new(a100.iter().map(|(k, v)| (k.clone(), *v)))
            .map_err(|e| Error::input(place("a100 overrides".into()), e.to_string()))?;

        let summary = metrics
            .iter()
            .map(|(op, gpus)| {
                let per_gpu = gpus
                    .iter()
                    .map(|(gpu, values)| {
                        let s = OperatorSummary {
                            max_best_metric: round_places(values.iter().copied().fold(f64::MIN, f64::max), 4),
                            median_best_metric: round_places(median(values), 4),
                            record_count: values.len(),
                        };
                        (gpu.clone(), s)
                    })
                    .collect();
                (op.clone(), per_gpu)
            })
            .collect();

        let mut profile_overrides = BTreeMap::new();
        if !a100.is_empty() {
            profile_overrides.insert("a100".to_string(), a100);
        }
        Ok(CalibrationBlock {
            notes: Some(NOTES.iter().map(|s| s.to_string()).collect()),
            profile_overrides,
            source_path: Some(shown_path.to_string()),
            source_sha256: Some(sha256_hex(bytes)),
            status: CalibrationStatus::Loaded,
            summary: Some(summary),
        })
    }

    /// The overrides for one hardware key (empty when none).
    pub fn overrides_for(&self, hardware: &str) -> Overrides {
        let values = self.profile_overrides.get(hardware).into_iter().flatten();
        Overrides::new(values.map(|(k, v)| (k.clone(), *v))).unwrap_or_default()
    }
}

/// Median as Python's `statistics.median`: the mean of the middle two for even counts.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_overrides_a100() {
        let db = br#"{"records": {
            "matmul:a:NVIDIA A100-SXM4-80GB": {"shape_key": "matmul:a:NVIDIA A100-SXM4-80GB", "best_tflops": 100.0},
            "matmul:b:NVIDIA A100-SXM4-80GB": {"shape_key": "matmul:b:NVIDIA A100-SXM4-80GB", "best_tflops": 232.11},
            "softmax:a:NVIDIA H100": [{"shape_key": "softmax:a:NVIDIA H100", "best_tflops": 5.0}]
        }}"#;
        let b = CalibrationBlock::from_bytes("db.json", db).unwrap();
        assert_eq!(b.status, CalibrationStatus::Loaded);
        assert_eq!(b.profile_overrides["a100"]["matmul_tflops"], 232.11);
        assert_eq!(b.profile_overrides["a100"].len(), 1);
        let s = &b.summary.as_ref().unwrap()["matmul"][A100_GPU_NAME];
        assert_eq!((s.record_count, s.median_best_metric), (2, 166.055));
        assert!(b.summary.as_ref().unwrap()["softmax"].contains_key("NVIDIA H100"));
    }

    #[test]
    fn bad_db_is_an_error_and_missing_is_unavailable() {
        let e = CalibrationBlock::from_bytes("db.json", b"{\"records\": 3}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("db.json") && e.contains("`records` object"), "{e}");
        let e = CalibrationBlock::from_bytes("db.json", b"{\"records\": {\"x\": {\"shape_key\": \"x\"}}}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing `best_tflops`"), "{e}");
        let b = CalibrationBlock::load(Path::new("/nonexistent/db.json")).unwrap();
        assert_eq!(b.status, CalibrationStatus::Unavailable);
    }
}
