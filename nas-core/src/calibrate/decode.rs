//! Decode steps measured on a GPU (`calibration/harness/decode.py`), and the
//! two numbers a decode prediction needs fitted to them: the bandwidth a
//! decode step really reaches, and a fixed cost per kernel.
//!
//! The decode model (`model::decode`) is linear in (1 / bandwidth, cost per
//! kernel) once it is memory-bound, which a decode step is: its FLOPs at the
//! GPU's throughput are a few percent of its bytes at the bandwidth. So the
//! fit is the same weighted non-negative least squares as the layer model's.

use std::fmt::Write;
use std::path::Path;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{self, StepThroughputs};
use crate::shapes::LayerShape;

/// One measured decode step.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeRecord {
    /// The model's name in the harness (`llama3_8b`).
    pub model: String,
    /// `train` or `validation`.
    pub set: String,
    pub gpu: String,
    /// The whole model; `batch_size` sequences with `context_len` cached tokens.
    pub shape: LayerShape,
    pub median_ms: f64,
    /// How the step was measured: `compiled_graph` (compiled layers, the
    /// whole step one CUDA graph: what decode is fitted on), or `None` for
    /// the older eager steps replayed in a graph.
    pub truth: Option<String>,
}

/// The fitted decode throughputs and how well they predict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeFit {
    /// Bandwidth a decode step reaches (GB/s): weights and KV cache read once.
    pub bandwidth_gbps: f64,
    /// Fixed cost per kernel of the decode model (ms).
    pub launch_ms: f64,
    /// The models fitted on; the others are validation.
    pub trained_on: Vec<String>,
    pub records: usize,
    pub data_sha256: String,
    pub train_mape_pct: f64,
    pub validation_mape_pct: Option<f64>,
}

impl DecodeFit {
    /// Bounds that keep every decode prediction finite: a bandwidth of at
    /// least [`crate::hardware::MIN_THROUGHPUT`] GB/s, a launch cost of at
    /// most 1 s.
    pub fn check(&self) -> std::result::Result<(), String> {
        let min = crate::hardware::MIN_THROUGHPUT;
        if !(self.bandwidth_gbps.is_finite() && self.bandwidth_gbps >= min) {
            return Err(format!(
                "`decode.bandwidth_gbps` must be a finite number of at least {min}, got {:?}",
                self.bandwidth_gbps
            ));
        }
        if !(self.launch_ms.is_finite() && (0.0..=1e3).contains(&self.launch_ms)) {
            return Err(format!(
                "`decode.launch_ms` must be finite, from 0 to 1000, got {:?}",
                self.launch_ms
            ));
        }
        for (key, v) in [
            ("train_mape_pct", Some(self.train_mape_pct)),
            ("validation_mape_pct", self.validation_mape_pct),
        ] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(format!(
                    "`decode.{key}` must be a finite non-negative percentage, got {v:?}"
                ));
            }
        }
        if self.train_mape_pct > super::profile::MAX_TRAINING_MAPE_PCT {
            return Err(format!(
                "`decode`: the fit misses its own training steps by {:.3e}% on average (more than {}%); a fit so \
                 far off predicts nothing and is refused",
                self.train_mape_pct,
                super::profile::MAX_TRAINING_MAPE_PCT
            ));
        }
        Ok(())
    }

    /// Decode throughputs: fitted bandwidth and launch cost; FLOP throughputs
    /// from `compute` (they matter only where a step is compute-bound).
    pub fn step(&self, compute: &StepThroughputs) -> StepThroughputs {
        StepThroughputs {
            bandwidth_gbps: self.bandwidth_gbps,
            launch_ms: self.launch_ms,
            ..*compute
        }
    }
}

/// Calls `each` with the place (`FILE:LINE`) and value of every non-empty
/// JSON line of `paths`; returns the SHA-256 of all their bytes, in order.
pub fn for_each_json_line(
    paths: &[impl AsRef<Path>],
    mut each: impl FnMut(&str, Value) -> Result<()>,
) -> Result<String> {
    let mut all = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes = crate::input::read_file(path)?;
        all.extend_from_slice(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| Error::input(path.display().to_string(), "not UTF-8 text"))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let place = format!("{}:{}", path.display(), n + 1);
            // a key given twice is an error, as in every JSON input
            let v: Value = crate::input::parse_json(line.as_bytes(), &place)?;
            each(&place, v)?;
        }
    }
    Ok(crate::calibrate::seed_db::sha256_hex(&all))
}

/// Decode data of `what` (decode steps, decode micro-benchmarks) measured on
/// `theirs` goes into, or is compared with, a profile of `ours` only when the
/// two are one GPU: the error names both.
pub fn check_same_gpu(what: &str, theirs: &str, ours: &str) -> Result<()> {
    if theirs != ours {
        return Err(Error::Spec(format!(
            "the {what} were measured on `{theirs}`, the profile's layers on `{ours}`: one profile is one GPU's"
        )));
    }
    Ok(())
}

/// Reads decode records (JSON lines with `"kind": "decode"` or `"decode_stack"`) from files.
pub fn read(paths: &[impl AsRef<Path>]) -> Result<(Vec<DecodeRecord>, String)> {
    let mut records = Vec::new();
    let sha = for_each_json_line(paths, |place, v| {
        {
            // `decode_stack`: a truncated stack of a larger model's layers and its head.
            if !matches!(v.get("kind").and_then(Value::as_str), Some("decode" | "decode_stack")) {
                return Err(Error::input(
                    place,
                    "expected a record with \"kind\": \"decode\" or \"decode_stack\"",
                ));
            }
            let text_of = |key: &str| -> Result<String> {
                v.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| Error::input(place, format!("missing string `{key}`")))
            };
            let shape_json = v.get("shape").ok_or_else(|| Error::input(place, "missing `shape`"))?;
            let (_, shape) = LayerShape::from_json(shape_json, &format!("{place}: shape"))?;
            if model::figures(&shape).is_none() {
                return Err(Error::input(place, "the shape needs `num_layers` and `vocab_size`"));
            }
            let median_ms =
                super::measurements::check_median_ms(v.get("median_ms")).map_err(|e| Error::input(place, e))?;
            // optional strings: absent is the default, any other type an error (never read as the default)
            let optional = |key: &str| -> Result<Option<String>> {
                match v.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => Err(Error::input(place, format!("`{key}` must be a string, got {other}"))),
                }
            };
            records.push(DecodeRecord {
                model: text_of("model")?,
                set: optional("set")?.unwrap_or_else(|| "train".into()),
                gpu: text_of("gpu")?,
                shape,
                median_ms,
                truth: optional("truth")?,
            });
        }
        Ok(())
    })?;
    if let Some(other) = records.iter().find(|r| r.gpu != records[0].gpu) {
        return Err(Error::Spec(format!(
            "decode records of two GPUs (`{}` and `{}`): fit one GPU at a time",
            records[0].gpu, other.gpu
        )));
    }
    if records.is_empty() {
        return Err(Error::Spec("no decode records in the given files".into()));
    }
    Ok((records, sha))
}

/// (bytes read, kernels) of one decode step: the two columns of the fit.
fn columns(shape: &LayerShape) -> Option<(f64, f64)> {
    let context = model::context_of(shape);
    // 1e-6 GB/s makes a kernel's time its bytes; unbounded FLOPs and no launch.
    let bytes_only = StepThroughputs {
        bandwidth_gbps: 1e-6,
        matmul_tflops: f64::INFINITY,
        attention_tflops: f64::INFINITY,
        launch_ms: 0.0,
        decode: None,
    };
    let launches_only = StepThroughputs {
        bandwidth_gbps: f64::INFINITY,
        launch_ms: 1.0,
        ..bytes_only
    };
    Some((
        model::decode(shape, &bytes_only, shape.batch_size, context)?.total_ms,
        model::decode(shape, &launches_only, shape.batch_size, context)?.total_ms,
    ))
}

/// Fits bandwidth and cost per kernel on the `train` records.
pub fn fit(records: &[DecodeRecord], data_sha256: &str, compute: &StepThroughputs) -> Result<DecodeFit> {
    let train: Vec<&DecodeRecord> = records.iter().filter(|r| r.set != "validation").collect();
    if train.len() < 2 {
        return Err(Error::Spec("a decode fit needs at least two training records".into()));
    }
    let rows: Vec<(f64, f64)> = train.iter().filter_map(|r| columns(&r.shape)).collect();
    let x = DMatrix::from_fn(rows.len(), 2, |i, j| if j == 0 { rows[i].0 } else { rows[i].1 });
    let y: Vec<f64> = train.iter().map(|r| r.median_ms).collect();
    let t = super::fit::fit_relative(&x, &y);
    if t[0] <= 0.0 {
        return Err(Error::Spec("the decode fit found no bandwidth term".into()));
    }
    let mut fit = DecodeFit {
        bandwidth_gbps: 1.0 / (t[0] * 1e6),
        launch_ms: t[1],
        trained_on: {
            let mut m: Vec<String> = train.iter().map(|r| r.model.clone()).collect();
            m.dedup();
            m
        },
        records: records.len(),
        data_sha256: data_sha256.to_string(),
        train_mape_pct: 0.0,
        validation_mape_pct: None,
    };
    let step = fit.step(compute);
    let mape = |set: &dyn Fn(&DecodeRecord) -> bool| -> Option<f64> {
        let errors: Vec<f64> = records
            .iter()
            .filter(|r| set(r))
            .filter_map(|r| predict(r, &step).map(|p| ((p - r.median_ms) / r.median_ms).abs()))
            .collect();
        (!errors.is_empty()).then(|| 100.0 * errors.iter().sum::<f64>() / errors.len() as f64)
    };
    fit.train_mape_pct = mape(&|r| r.set != "validation").unwrap_or(0.0);
    fit.validation_mape_pct = mape(&|r| r.set == "validation");
    Ok(fit)
}

/// The predicted decode step of a record.
pub fn predict(record: &DecodeRecord, step: &StepThroughputs) -> Option<f64> {
    let shape = &record.shape;
    model::decode(shape, step, shape.batch_size, model::context_of(shape)).map(|d| d.total_ms)
}

/// Predicted vs measured decode steps, with the seed's roofline beside ours:
/// per set MAPE, share within ±10% and Spearman, every step, and the
/// per-kernel breakdown of the worst validation steps. `method` says how the
/// steps were measured, `ours_described` what predicted them.
pub fn fidelity_markdown(
    records: &[DecodeRecord],
    method: &str,
    ours_described: &str,
    seed: &StepThroughputs,
    ours: &StepThroughputs,
) -> String {
    let mut md = String::new();
    let gpu = records.first().map_or("unknown GPU", |r| r.gpu.as_str());
    let _ = writeln!(md, "# Decode fidelity: {gpu}\n");
    let _ = writeln!(md, "{method}\n");
    let _ = writeln!(md, "Predictions: {ours_described}. Beside them the seed's roofline (its H100 constants: 3350 GB/s, no cost per kernel).\n");
    struct Row<'a> {
        r: &'a DecodeRecord,
        seed: f64,
        ours: f64,
    }
    let rows: Vec<Row> = records
        .iter()
        .filter_map(|r| {
            Some(Row {
                r,
                seed: predict(r, seed)?,
                ours: predict(r, ours)?,
            })
        })
        .collect();
    let err = |p: f64, m: f64| (p - m) / m;
    let mut sets: Vec<&str> = rows.iter().map(|x| x.r.set.as_str()).collect();
    sets.sort_unstable();
    sets.dedup();
    let _ = writeln!(
        md,
        "| set | steps | ours MAPE | ours within ±10% | ours Spearman | seed MAPE | seed Spearman |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for set in &sets {
        let of: Vec<&Row> = rows.iter().filter(|x| x.r.set == *set).collect();
        let measured: Vec<f64> = of.iter().map(|x| x.r.median_ms).collect();
        let o: Vec<f64> = of.iter().map(|x| err(x.ours, x.r.median_ms)).collect();
        let s: Vec<f64> = of.iter().map(|x| err(x.seed, x.r.median_ms)).collect();
        let (so, ss) = (
            super::profile::ResidualStats::of(&o),
            super::profile::ResidualStats::of(&s),
        );
        let rho = |p: Vec<f64>| crate::report::fidelity::spearman(&p, &measured);
        let _ = writeln!(
            md,
            "| {set} | {} | {:.2}% | {:.1}% | {:.4} | {:.2}% | {:.4} |",
            of.len(),
            so.mape_pct,
            so.within_10_pct,
            rho(of.iter().map(|x| x.ours).collect()),
            ss.mape_pct,
            rho(of.iter().map(|x| x.seed).collect())
        );
    }
    let mut worst: Vec<&Row> = rows.iter().filter(|x| x.r.set == "validation").collect();
    worst.sort_by(|a, b| {
        err(b.ours, b.r.median_ms)
            .abs()
            .total_cmp(&err(a.ours, a.r.median_ms).abs())
    });
    if !worst.is_empty() {
        let _ = writeln!(
            md,
            "\n## Worst validation steps, kernel by kernel (ms per step, ours)\n"
        );
        let _ = writeln!(
            md,
            "| model | batch | context | measured | predicted | error | {} |",
            model::DECODE_KERNELS.join(" | ")
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|{}",
            "---:|".repeat(model::DECODE_KERNELS.len())
        );
        for x in worst.iter().take(5) {
            let s = &x.r.shape;
            let Some(d) = model::decode(s, ours, s.batch_size, model::context_of(s)) else {
                continue;
            };
            let kernels: Vec<String> = model::DECODE_KERNELS
                .iter()
                .map(|k| format!("{:.3}", d.per_kernel[k]))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.3} | {:+.1}% | {} |",
                x.r.model,
                s.batch_size,
                model::context_of(s),
                x.r.median_ms,
                x.ours,
                100.0 * err(x.ours, x.r.median_ms),
                kernels.join(" | ")
            );
        }
    }
    let _ = writeln!(md, "\n## Every step\n");
    let _ = writeln!(
        md,
        "| model | set | layers | batch | context | measured ms | seed ms | seed error | ours ms | ours error |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for x in &rows {
        let s = &x.r.shape;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:+.1}% | {:.3} | {:+.1}% |",
            x.r.model,
            x.r.set,
            s.model.num_layers.unwrap_or(0),
            s.batch_size,
            model::context_of(s),
            x.r.median_ms,
            x.seed,
            100.0 * err(x.seed, x.r.median_ms),
            x.ours,
            100.0 * err(x.ours, x.r.median_ms)
        );
    }
    md
}
