//! Reading measurement files written by the calibration harness
//! (calibration/harness/measure.py): JSON lines, one timed layer or kernel each.

use std::path::Path;

use serde_json::Value;

use crate::cost::kernel_aware::MicroKernel;
use crate::error::{Error, Result};
use crate::shapes::{kind_of, LayerShape, MAX_DIM};

/// Most streaming multiprocessors a GPU may have (an H100 has 132).
pub const MAX_SM_COUNT: u64 = 1 << 16;

/// Shortest median time a measurement may report: 1 ns (a kernel launch
/// alone takes microseconds; CUDA events resolve about 0.5 us).
pub const MIN_MEDIAN_MS: f64 = 1e-6;

/// Longest: 1e7 ms, about 2.8 hours for one kernel, layer or decode step.
pub const MAX_MEDIAN_MS: f64 = 1e7;

/// A measured median in milliseconds: a finite number from
/// [`MIN_MEDIAN_MS`] to [`MAX_MEDIAN_MS`]. Medians outside that range (in
/// seconds or nanoseconds by mistake, or absurd) made fits that predict
/// nothing: the error says so instead.
pub fn check_median_ms(value: Option<&Value>) -> std::result::Result<f64, String> {
    match value.and_then(Value::as_f64) {
        Some(t) if t.is_finite() && (MIN_MEDIAN_MS..=MAX_MEDIAN_MS).contains(&t) => Ok(t),
        Some(t) if t.is_finite() && t > 0.0 => Err(format!(
            "`median_ms` = {t:?} is absurd for one GPU kernel, layer or step (from {MIN_MEDIAN_MS:e} to \
             {MAX_MEDIAN_MS:e} ms: 1 ns to 2.8 hours; is it in milliseconds?)"
        )),
        _ => Err(format!(
            "`median_ms` must be a finite positive number of milliseconds, got {}",
            value.map_or("nothing".to_string(), |v| v.to_string())
        )),
    }
}

/// What was timed.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// A whole decoder layer.
    Layer(Box<LayerShape>),
    /// One kernel on its own; `kind` is the harness's name for it (`gemm`, `rmsnorm`...).
    Micro { kind: String, kernel: MicroKernel },
}

/// One measurement: what, where, and its median time.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// `file:line`, for messages.
    pub origin: String,
    pub gpu: String,
    pub sm_count: u64,
    /// `train`, `validation` or `micro`.
    pub set: String,
    pub subject: Subject,
    pub median_ms: f64,
}

/// Measurements read from files, with what identifies the data.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasurementSet {
    pub measurements: Vec<Measurement>,
    /// Records the harness marked as failed (they carry an `error`), skipped.
    pub failed_records: usize,
    /// SHA-256 over the files' bytes, in the order given.
    pub sha256: String,
    pub files: Vec<String>,
}

impl MeasurementSet {
    /// Reads JSON-lines files. Every record must be well formed and all must
    /// come from one GPU; the error names the file and line.
    pub fn read(paths: &[impl AsRef<Path>]) -> Result<Self> {
        let sources = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                Ok((p.display().to_string(), crate::input::read_file(p)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_sources(&sources)
    }

    /// [`MeasurementSet::read`] on contents already read: `(file name, bytes)`.
    pub fn from_sources(sources: &[(String, Vec<u8>)]) -> Result<Self> {
        if sources.is_empty() {
            return Err(Error::Spec("no measurement file given".into()));
        }
        let mut all = Vec::new();
        let mut failed_records = 0;
        let mut bytes_all = Vec::new();
        let mut files = Vec::new();
        for (name, bytes) in sources {
            bytes_all.extend_from_slice(bytes);
            let text = std::str::from_utf8(bytes).map_err(|_| Error::input(name, "not UTF-8 text"))?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let origin = format!("{name}:{}", n + 1);
                // a key given twice is an error, as in every JSON input
                let value: Value = crate::input::parse_json(line.as_bytes(), &origin)?;
                if value.get("error").is_some_and(|e| !e.is_null()) {
                    failed_records += 1;
                    continue;
                }
                all.push(parse_record(&value, origin)?);
            }
            files.push(name.clone());
        }
        if all.is_empty() {
            return Err(Error::Spec("the measurement files hold no usable record".into()));
        }
        if let Some(other) = all
            .iter()
            .find(|m| m.gpu != all[0].gpu || m.sm_count != all[0].sm_count)
        {
            return Err(Error::input(
                &other.origin,
                format!(
                    "measured on `{}` ({} SMs), but {} was measured on `{}` ({} SMs): calibrate one GPU at a time",
                    other.gpu, other.sm_count, all[0].origin, all[0].gpu, all[0].sm_count
                ),
            ));
        }
        Ok(MeasurementSet {
            measurements: all,
            failed_records,
            sha256: super::seed_db::sha256_hex(&bytes_all),
            files,
        })
    }
}

fn parse_record(v: &Value, origin: String) -> Result<Measurement> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::input(&origin, format!("expected a JSON object, got {}", kind_of(v))))?;
    let text = |key: &str| -> Result<String> {
        obj.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::input(&origin, format!("missing string `{key}`")))
    };
    let kind = text("kind")?;
    let gpu = text("gpu")?;
    let set = text("set")?;
    let sm_count = obj
        .get("sm_count")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::input(&origin, "missing positive integer `sm_count`"))?;
    if sm_count > MAX_SM_COUNT {
        let message = format!("`sm_count` = {sm_count} is absurdly large (the limit is {MAX_SM_COUNT})");
        return Err(Error::input(&origin, message));
    }
    let median_ms = check_median_ms(obj.get("median_ms")).map_err(|e| Error::input(&origin, e))?;
    let shape = obj
        .get("shape")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::input(&origin, "missing object `shape`"))?;
    let size = |key: &str| -> Result<u64> {
        shape
            .get(key)
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::input(&origin, format!("`shape.{key}` must be a positive integer")))
            .and_then(|n| {
                if n > MAX_DIM {
                    let message = format!("`shape.{key}` = {n} is absurdly large (the limit is {MAX_DIM})");
                    return Err(Error::input(&origin, message));
                }
                Ok(n)
            })
    };
    // The kernel's FLOP or byte count, which must fit in a u64 (as a layer's do).
    let count = |factors: &[u64]| -> Result<f64> {
        factors
            .iter()
            .try_fold(1u64, |acc, &f| acc.checked_mul(f))
            .map(|c| c as f64)
            .ok_or_else(|| {
                Error::input(
                    &origin,
                    "these `shape` sizes make the kernel's FLOP or byte count overflow a 64-bit integer",
                )
            })
    };
    let window = |key: &str| -> Result<Option<u64>> {
        match shape.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(w) => w
                .as_u64()
                .filter(|n| *n > 0 && *n <= MAX_DIM)
                .map(Some)
                .ok_or_else(|| Error::input(&origin, format!("`shape.{key}` must be a positive integer or null"))),
        }
    };
    let flag = |key: &str| -> Result<bool> {
        shape
            .get(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| Error::input(&origin, format!("`shape.{key}` must be true or false")))
    };
    let elementwise = |bytes: f64, qk_norm: bool| MicroKernel::Elementwise { bytes, qk_norm };
    let subject = match kind.as_str() {
        "layer" => {
            let (_, s) = LayerShape::from_json(&Value::Object(shape.clone()), &origin)?;
            Subject::Layer(Box::new(s))
        }
        other => {
            let kernel = match other {
                "gemm" => {
                    let (m, n, k) = (size("M")?, size("N")?, size("K")?);
                    // 2*M*N*K on whole 128 x 256 tiles
                    count(&[2, m.next_multiple_of(128), n.next_multiple_of(256), k])?;
                    MicroKernel::Gemm { m, n, k }
                }
                "attention" => {
                    let (batch, heads, seq, head_dim) = (size("B")?, size("H")?, size("S")?, size("Dh")?);
                    // 4*B*H*S*S*Dh, on whole blocks and padded head sizes
                    let (s, dh) = (seq.next_multiple_of(128), head_dim.next_multiple_of(128));
                    count(&[4, batch, heads, s, s, dh])?;
                    MicroKernel::Attention {
                        batch,
                        heads,
                        seq,
                        head_dim,
                        window: window("window")?,
                    }
                }
                "rmsnorm" => elementwise(count(&[4, size("rows")?, size("cols")?])?, false),
                "residual_add" => elementwise(count(&[6, size("rows")?, size("cols")?])?, false),
                "geglu" => elementwise(count(&[6, size("M")?, size("F")?])?, false),
                "qk_norm_rope" => {
                    let heads = size("H")? + size("Hkv")?;
                    elementwise(count(&[4, size("tokens")?, heads, size("Dh")?])?, flag("qk_norm")?)
                }
                unknown => {
                    return Err(Error::input(
                        &origin,
                        format!("unknown kind `{unknown}` (expected layer, gemm, attention, rmsnorm, residual_add, geglu, qk_norm_rope)"),
                    ))
                }
            };
            Subject::Micro {
                kind: other.to_string(),
                kernel,
            }
        }
    };
    Ok(Measurement {
        origin,
        gpu,
        sm_count,
        set,
        subject,
        median_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("nas-meas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const LAYER: &str = r#"{"kind": "layer", "set": "train", "gpu": "G", "sm_count": 132, "median_ms": 0.5, "shape": {"hidden_dim": 512, "num_heads": 8, "num_kv_heads": 8, "head_dim": 64, "ffn_dim": 2048, "seq_len": 128, "batch_size": 1, "use_qk_norm": false, "window_size": null}}"#;

    #[test]
    fn reads_layers_micro_and_skips_failed_records() {
        let gemm = r#"{"kind": "gemm", "set": "micro", "gpu": "G", "sm_count": 132, "median_ms": 0.01, "shape": {"M": 64, "N": 64, "K": 64}}"#;
        let failed = r#"{"kind": "gemm", "set": "micro", "gpu": "G", "sm_count": 132, "median_ms": null, "error": "OOM", "shape": {}}"#;
        let p = write("ok.jsonl", &format!("{LAYER}\n{gemm}\n\n{failed}\n"));
        let set = MeasurementSet::read(&[&p]).unwrap();
        assert_eq!((set.measurements.len(), set.failed_records), (2, 1));
        assert!(matches!(set.measurements[1].subject, Subject::Micro { .. }));
        assert_eq!(set.sha256.len(), 64);
    }

    #[test]
    fn bad_records_name_file_and_line() {
        let p = write("bad.jsonl", &format!("{LAYER}\n{{\"kind\": \"layer\""));
        let e = MeasurementSet::read(&[&p]).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2: invalid JSON"), "{e}");
        let p = write("neg.jsonl", &LAYER.replace("0.5", "-1"));
        let e = MeasurementSet::read(&[&p]).unwrap_err().to_string();
        assert!(e.contains("neg.jsonl:1") && e.contains("median_ms"), "{e}");
        let p = write("kv.jsonl", &LAYER.replace("\"num_kv_heads\": 8", "\"num_kv_heads\": 3"));
        assert!(MeasurementSet::read(&[&p])
            .unwrap_err()
            .to_string()
            .contains("does not divide"));
        let p = write("two.jsonl", &format!("{LAYER}\n{}", LAYER.replace("\"G\"", "\"H\"")));
        assert!(MeasurementSet::read(&[&p])
            .unwrap_err()
            .to_string()
            .contains("one GPU at a time"));
        let p = write("kind.jsonl", &LAYER.replace("\"layer\"", "\"softmax\""));
        assert!(MeasurementSet::read(&[&p])
            .unwrap_err()
            .to_string()
            .contains("unknown kind `softmax`"));
    }
}
