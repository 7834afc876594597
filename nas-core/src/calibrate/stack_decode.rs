//! Whole-model decode steps of mixed sliding/global stacks and of MoE
//! models, measured on a GPU (`calibration/harness/decode_stacks.py`), and
//! how well the stack's prediction ([`crate::stack::report::predict`], the
//! path `nas predict --configs` takes) meets them.
//!
//! Nothing is fitted on these records: every one is a check. Each carries
//! the Hugging Face config it was built from, so the prediction reads the
//! same file a user would give.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::decode::for_each_json_line;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::stack::{hf, ModelStack, StackWorkload};

/// The record kinds this module reads.
pub const KINDS: [&str; 2] = ["decode_mixed", "decode_moe"];

/// Largest batch or context a record may ask for (the harness's are at most
/// 128 and 32k): a bound on the work of one prediction.
pub const MAX_TOKENS: u64 = 1 << 24;

/// One measured decode step of a whole model built from a config.
#[derive(Clone, Debug)]
pub struct StackDecodeRecord {
    /// `decode_mixed` or `decode_moe`.
    pub kind: String,
    /// The model's name in the harness (`gemma3_4b_like`).
    pub model: String,
    pub set: String,
    pub gpu: String,
    pub batch: u64,
    pub context: u64,
    pub stack: ModelStack,
    pub median_ms: f64,
}

/// Reads stack decode records; one GPU, at least one record.
pub fn read(paths: &[impl AsRef<Path>]) -> Result<(Vec<StackDecodeRecord>, String)> {
    let mut records = Vec::new();
    let sha = for_each_json_line(paths, |place, v| {
        let kind = match v.get("kind").and_then(Value::as_str) {
            Some(k) if KINDS.contains(&k) => k.to_string(),
            _ => {
                return Err(Error::input(
                    place,
                    "expected a record with \"kind\": \"decode_mixed\" or \"decode_moe\"",
                ))
            }
        };
        let text = |key: &str| -> Result<String> {
            match v.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(Error::input(place, format!("`{key}` must be a string, got {other}"))),
                None => Err(Error::input(place, format!("missing string `{key}`"))),
            }
        };
        let count = |key: &str| -> Result<u64> {
            match v.get(key).and_then(Value::as_u64) {
                Some(n) if (1..=MAX_TOKENS).contains(&n) => Ok(n),
                _ => Err(Error::input(
                    place,
                    format!("`{key}` must be an integer from 1 to {MAX_TOKENS}"),
                )),
            }
        };
        let config = v.get("config").ok_or_else(|| Error::input(place, "missing `config`"))?;
        let stack = hf::from_config(config, &format!("{place}: config"))?.stack;
        let set = match v.get("set") {
            None => "train".to_string(),
            Some(_) => text("set")?,
        };
        let gpu = text("gpu")?;
        if let Some(first) = records.first().filter(|f: &&StackDecodeRecord| f.gpu != gpu) {
            return Err(Error::input(
                place,
                format!(
                    "measured on `{gpu}`, but the records before it on `{}`: one GPU at a time",
                    first.gpu
                ),
            ));
        }
        records.push(StackDecodeRecord {
            kind,
            model: text("model")?,
            set,
            gpu,
            batch: count("batch")?,
            context: count("context")?,
            stack,
            median_ms: super::measurements::check_median_ms(v.get("median_ms")).map_err(|e| Error::input(place, e))?,
        });
        Ok(())
    })?;
    if records.is_empty() {
        return Err(Error::Spec("no stack decode records in the given files".into()));
    }
    Ok((records, sha))
}

/// One record's prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub predicted_ms: f64,
    /// (predicted - measured) / measured, in percent.
    pub error_pct: f64,
}

/// The stack's decode step for each record on `gpu`.
pub fn check(records: &[StackDecodeRecord], gpu: &Gpu) -> Result<Vec<Checked>> {
    records
        .iter()
        .map(|r| {
            let workload = StackWorkload {
                seq_len: r.context,
                batch: r.batch,
                context: r.context,
            };
            let p = crate::stack::report::predict(&r.model, &r.stack, gpu, &workload, None)?;
            Ok(Checked {
                predicted_ms: p.decode_ms,
                error_pct: 100.0 * (p.decode_ms - r.median_ms) / r.median_ms,
            })
        })
        .collect()
}

/// Mean absolute percentage error of the checks of `kind`, and their count.
pub fn mape(records: &[StackDecodeRecord], checked: &[Checked], kind: &str) -> Option<(f64, usize)> {
    let errors: Vec<f64> = records
        .iter()
        .zip(checked)
        .filter(|(r, _)| r.kind == kind)
        .map(|(_, c)| c.error_pct.abs())
        .collect();
    (!errors.is_empty()).then(|| (errors.iter().sum::<f64>() / errors.len() as f64, errors.len()))
}

/// The fidelity report (Markdown): every record, and the MAPE per kind.
pub fn fidelity_markdown(
    records: &[StackDecodeRecord],
    checked: &[Checked],
    gpu: &Gpu,
    sha256: &str,
    command: &str,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Whole-model decode of mixed and MoE stacks: {}\n", gpu.label);
    let _ = writeln!(
        md,
        "Generated by `{command}`.\n\n\
         Each row is one decode step of a whole model built from its Hugging Face config (`batch` sequences, \
         `context` cached tokens each), measured on `{}` by `calibration/harness/decode_stacks.py`: compiled layer \
         kinds, the whole step one CUDA graph, random weights (MoE: the router's own top-k, tokens sorted by \
         expert, `torch._grouped_mm`); median of 5 rounds. Data SHA-256 `{sha256}`.\n\n\
         The prediction is `nas predict --hardware {} --configs CONFIG --batch B --context C`: the stack's decode \
         step ({}). None of these records was fitted on.\n",
        records.first().map_or("", |r| r.gpu.as_str()),
        gpu.key,
        gpu.provenance().summary(),
    );
    for kind in KINDS {
        let Some((mape, n)) = mape(records, checked, kind) else {
            continue;
        };
        let title = match kind {
            "decode_mixed" => "Mixed sliding/global stacks",
            _ => "Mixture-of-experts models",
        };
        let _ = writeln!(md, "## {title} (`{kind}`): MAPE {mape:.2}% over {n} steps\n");
        if kind == "decode_moe" {
            let _ = writeln!(md, "Routed experts: {}.\n", crate::cost::moe::moe_source(gpu));
        }
        let _ = writeln!(
            md,
            "| model | model_type | layers | batch | context | measured ms | predicted ms | error |"
        );
        let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (r, c) in records.iter().zip(checked).filter(|(r, _)| r.kind == kind) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:+.1}% |",
                r.model,
                r.stack.model_type,
                r.stack.layers.len(),
                r.batch,
                r.context,
                r.median_ms,
                c.predicted_ms,
                c.error_pct
            );
        }
        md.push('\n');
    }
    md
}
