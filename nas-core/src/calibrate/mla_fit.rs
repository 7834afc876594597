//! Fitting MLA's own constants (`cost/mla.rs`) to the MLA attention layers
//! measured by `calibration/harness/moe_mla.py`. Everything MLA shares with a
//! dense layer (GEMMs, memory-bound bytes, launches) comes from the profile's
//! layer and decode fits, so the fit solves only for what is left: bounded,
//! relative least squares on the remainder, `train` configs only.
//!
//! Decode is fitted on the split latent cache (`cache: "split"`,
//! `mla-decode-split.jsonl`); the first run's joint cache (one tensor,
//! sliced: cuBLAS falls back to unaligned kernels for the strided slice) is
//! read as `mla_decode_joint`, predicted and reported, never fitted on.

use std::collections::BTreeMap;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cost::mla::{self, Base, MlaShape, Part, COUNT, MLA_RESOURCES};
use crate::error::{Error, Result};

use super::moe_fit::{check_resources, transfer_resources};
use super::profile::{CalibrationProfile, FittedResource, PhysicalLimits, ResidualStats};

/// One measured MLA record.
#[derive(Clone, Debug, PartialEq)]
pub struct MlaRecord {
    /// `mla_prefill`, `mla_decode` (split cache) or `mla_decode_joint`.
    pub kind: String,
    pub config: String,
    pub set: String,
    pub gpu: String,
    pub shape: MlaShape,
    pub batch: u64,
    /// Sequence length (prefill) or cached tokens before the new one (decode).
    pub tokens: u64,
    pub median_ms: f64,
}

impl MlaRecord {
    pub fn parts(&self, base: &Base) -> Vec<Part> {
        match self.kind.as_str() {
            "mla_prefill" => mla::prefill_parts(base, &self.shape, self.batch, self.tokens),
            _ => mla::decode_parts(base, &self.shape, self.batch, self.tokens),
        }
    }

    pub fn predict(&self, base: &Base, c: &[f64; COUNT]) -> f64 {
        mla::parts_ms(&self.parts(base), c).iter().map(|(_, ms)| ms).sum()
    }
}

/// MLA's own constants fitted to one GPU (or carried over from another).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlaModelFit {
    pub fitted: BTreeMap<String, FittedResource>,
    pub trained_on: Vec<String>,
    pub records: usize,
    pub data_sha256: String,
    /// `<set>_<kind>` per kind of record (`train_mla_prefill`, `validation_mla_decode`, ...).
    pub residuals: BTreeMap<String, ResidualStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_from: Option<String>,
}

impl MlaModelFit {
    pub fn constants(&self) -> [f64; COUNT] {
        let mut c = [0.0; COUNT];
        for (slot, (name, _, _)) in c.iter_mut().zip(MLA_RESOURCES) {
            *slot = self.fitted.get(name).map_or(0.0, |f| f.ms_per_unit);
        }
        c
    }

    pub fn check(&self, limits: Option<&PhysicalLimits>) -> std::result::Result<(), String> {
        check_resources("mla_model", &self.fitted, &MLA_RESOURCES, limits)
    }

    pub fn transfer(&self, from: &PhysicalLimits, to: &PhysicalLimits, source: &str) -> MlaModelFit {
        let mut out = self.clone();
        transfer_resources(&mut out.fitted, &MLA_RESOURCES, from, to);
        out.transferred_from = Some(source.to_string());
        out
    }
}

/// Reads MLA records (`mla_prefill`, `mla_decode`); failed ones are left out
/// (counted). All from one GPU.
pub fn read(paths: &[impl AsRef<std::path::Path>]) -> Result<(Vec<MlaRecord>, usize, String)> {
    let mut out: Vec<MlaRecord> = Vec::new();
    let mut skipped = 0;
    let sha = super::decode::for_each_json_line(paths, |place, v| {
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !matches!(kind, "mla_prefill" | "mla_decode") {
            return Err(Error::input(
                place,
                format!("expected a record of kind `mla_prefill` or `mla_decode`, got `{kind}`"),
            ));
        }
        let Some(median_ms) = v
            .get("median_ms")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t > 0.0)
        else {
            skipped += 1;
            return Ok(());
        };
        let s = v.get("shape").ok_or_else(|| Error::input(place, "missing `shape`"))?;
        let max = crate::shapes::MAX_DIM;
        let int = |key: &str| -> Result<u64> {
            s.get(key)
                .and_then(Value::as_u64)
                .filter(|x| (1..=max).contains(x))
                .ok_or_else(|| Error::input(place, format!("`shape.{key}` must be an integer from 1 to {max}")))
        };
        let q_lora_rank = match s.get("q_lora_rank") {
            None | Some(Value::Null) => None,
            Some(_) => Some(int("q_lora_rank")?),
        };
        let shape = MlaShape {
            hidden: int("hidden")?,
            heads: int("heads")?,
            q_lora_rank,
            kv_lora_rank: int("kv_lora_rank")?,
            qk_nope_head_dim: int("qk_nope_head_dim")?,
            qk_rope_head_dim: int("qk_rope_head_dim")?,
            v_head_dim: int("v_head_dim")?,
        };
        let (kind, tokens) = match kind {
            "mla_prefill" => ("mla_prefill", int("seq_len")?),
            _ => {
                let split = s.get("cache").and_then(Value::as_str) == Some("split");
                (if split { "mla_decode" } else { "mla_decode_joint" }, int("context")?)
            }
        };
        let text = |key: &str| -> Result<String> {
            v.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| Error::input(place, format!("missing string `{key}`")))
        };
        let rec = MlaRecord {
            kind: kind.to_string(),
            config: s.get("config").and_then(Value::as_str).unwrap_or("unnamed").to_string(),
            set: text("set")?,
            gpu: text("gpu")?,
            shape,
            batch: int("batch")?,
            tokens,
            median_ms,
        };
        mla::check_shape(&rec.shape, rec.batch, "tokens", rec.tokens).map_err(|p| Error::input(place, p))?;
        if let Some(first) = out.first() {
            if first.gpu != rec.gpu {
                return Err(Error::input(
                    place,
                    format!(
                        "MLA records of two GPUs (`{}` and `{}`): fit one GPU at a time",
                        first.gpu, rec.gpu
                    ),
                ));
            }
        }
        out.push(rec);
        Ok(())
    })?;
    Ok((out, skipped, sha))
}

/// Solves `base + X t ~ y` in relative terms with `t >= lower` (NNLS on the
/// shifted, column-scaled system).
fn fit_offset_bounded(x: &DMatrix<f64>, base: &[f64], y: &[f64], lower: &[f64]) -> Vec<f64> {
    let (n, m) = (x.nrows(), x.ncols());
    let a = DMatrix::from_fn(n, m, |i, j| x[(i, j)] / y[i]);
    let rest = DVector::from_fn(n, |i, _| {
        1.0 - base[i] / y[i] - (0..m).map(|j| a[(i, j)] * lower[j]).sum::<f64>()
    });
    let norms: Vec<f64> = (0..m).map(|j| a.column(j).norm()).collect();
    let scaled = DMatrix::from_fn(n, m, |i, j| if norms[j] > 0.0 { a[(i, j)] / norms[j] } else { 0.0 });
    let s = super::fit::nnls(&scaled, &rest);
    (0..m)
        .map(|j| lower[j] + if norms[j] > 0.0 { s[j] / norms[j] } else { 0.0 })
        .collect()
}

/// Fits MLA's constants on the `train` prefill and split-cache decode records,
/// the rest borrowed from `profile` (its layer fit and decode model).
pub fn fit(records: &[MlaRecord], data_sha256: &str, profile: &CalibrationProfile) -> Result<MlaModelFit> {
    let limits = profile
        .physical_limits()
        .ok_or_else(|| Error::Spec(format!("no physical limits known for `{}`", profile.gpu)))?;
    if profile.decode_model.is_none() {
        return Err(Error::Spec(
            "an MLA fit needs the profile's decode model (fit it in the same `nas calibrate` with --decode)".into(),
        ));
    }
    let base = Base::Fitted(profile);
    let fitted_kinds = ["mla_prefill", "mla_decode"];
    let train: Vec<&MlaRecord> = records
        .iter()
        .filter(|r| r.set != "validation" && fitted_kinds.contains(&r.kind.as_str()))
        .collect();
    let mut configs: Vec<String> = train.iter().map(|r| r.config.clone()).collect();
    configs.sort();
    configs.dedup();
    if train.len() <= COUNT || configs.len() < 2 {
        return Err(Error::Spec(format!(
            "{} training MLA records of {} configs to fit {COUNT} constants: measure more",
            train.len(),
            configs.len()
        )));
    }
    let rows: Vec<(f64, [f64; COUNT])> = train
        .iter()
        .map(|r| {
            let parts = r.parts(&base);
            let mut w = [0.0; COUNT];
            for p in &parts {
                for (a, b) in w.iter_mut().zip(p.work) {
                    *a += b;
                }
            }
            (parts.iter().map(|p| p.base_ms).sum(), w)
        })
        .collect();
    let x = DMatrix::from_fn(rows.len(), COUNT, |i, j| rows[i].1[j]);
    let known: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let y: Vec<f64> = train.iter().map(|r| r.median_ms).collect();
    let lower: Vec<f64> = MLA_RESOURCES
        .iter()
        .map(|(_, _, b)| b.map_or(0.0, |p| limits.min_ms_per_unit(p)))
        .collect();
    let t = fit_offset_bounded(&x, &known, &y, &lower);
    let mut c = [0.0; COUNT];
    c.copy_from_slice(&t);
    let mut residuals = BTreeMap::new();
    let mut kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        for set in ["train", "validation"] {
            let errors: Vec<f64> = records
                .iter()
                .filter(|r| r.kind == kind && (r.set == "validation") == (set == "validation"))
                .map(|r| (r.predict(&base, &c) - r.median_ms) / r.median_ms)
                .collect();
            if !errors.is_empty() {
                residuals.insert(format!("{set}_{kind}"), ResidualStats::of(&errors));
            }
        }
    }
    let fitted = MLA_RESOURCES
        .iter()
        .zip(c)
        .map(|((name, unit, _), ms)| (name.to_string(), FittedResource::of(*unit, ms)))
        .collect();
    let out = MlaModelFit {
        fitted,
        trained_on: configs,
        records: records.len(),
        data_sha256: data_sha256.to_string(),
        residuals,
        transferred_from: None,
    };
    out.check(Some(&limits))
        .map_err(|e| Error::Spec(format!("the MLA fit broke its own bounds (a bug): {e}")))?;
    Ok(out)
}
