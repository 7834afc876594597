//! The precision fidelity report: how well a profile's precision section
//! predicts fp8 prefill layers, fp8 and int4 decode steps and fp8 / int4
//! GEMMs measured on its GPU, on the rows it was fitted on and on those it
//! never saw (`nas fidelity --precision`, `docs/results/precision-fidelity-h200.md`).

use std::collections::BTreeMap;

use crate::calibrate::precision_fit::{PrecisionRow, PrecisionSet};
use crate::calibrate::profile::{CalibrationProfile, ResidualStats};

use super::fidelity::spearman;
use super::markdown::{escape, Align, Document, Table};

/// The groups of rows, in report order, with what they are.
const GROUPS: [(&str, &str); 6] = [
    ("prefill_layer", "fp8 prefill layers (compiled, four projections fp8)"),
    (
        "decode_fp8",
        "fp8 decode steps (whole models, compiled, one CUDA graph)",
    ),
    ("decode_int4", "int4 decode steps (whole models, tinygemm)"),
    (
        "kernel",
        "fp8 GEMMs of 128 rows or more, one kernel with its quantization",
    ),
    (
        "decode_kernel_fp8",
        "fp8 GEMMs of fewer than 128 rows (the decode model)",
    ),
    (
        "decode_kernel_int4",
        "int4 GEMMs of fewer than 128 rows (the decode model)",
    ),
];

fn stats(rows: &[&PrecisionRow]) -> (ResidualStats, f64) {
    let errors: Vec<f64> = rows.iter().map(|r| r.relative_error()).collect();
    let m: Vec<f64> = rows.iter().map(|r| r.measured_ms).collect();
    let p: Vec<f64> = rows.iter().map(|r| r.predicted_ms).collect();
    (ResidualStats::of(&errors), spearman(&m, &p))
}

fn pct(v: f64) -> String {
    format!("{:+.1}%", 100.0 * v)
}

/// The report as Markdown. `profile_name` names the profile file, `command`
/// the command that wrote the report.
pub fn markdown(
    profile: &CalibrationProfile,
    profile_name: &str,
    data: &PrecisionSet,
    rows: &[PrecisionRow],
    command: &str,
) -> String {
    let mut doc = Document::new();
    doc.heading(1, &format!("Precision fidelity: {}", escape(&profile.gpu)));
    // Text inside backticks needs no escaping (no name or command here has a backtick).
    let code = |s: &str| format!("`{}`", s.replace('`', "'"));
    let fit = profile.precision.as_ref();
    let origin = match fit.and_then(|f| f.transferred_from.as_ref()) {
        Some(from) => format!(
            "its precision section was transferred from {} through the two spec sheets: not measured on this GPU",
            code(from)
        ),
        None => "its precision section was fitted on the rows marked `train` below, with every bf16 constant of \
                 the profile fixed; `validation` rows were never fitted on"
            .to_string(),
    };
    doc.paragraph(&format!(
        "fp8 (e4m3, per-tensor scales, dynamic per-tensor activation quantization included) and int4 (weight-only, \
         bf16 scales and zeros per group of 128) measurements of `calibration/harness/precision_micro.py`, predicted \
         by {}: {origin}. Data SHA-256 `{}` ({} records used, {} read but not used: bf16 twins, bare GEMMs, \
         probes). Written by {}.",
        code(profile_name),
        data.sha256,
        rows.len(),
        data.skipped,
        code(command)
    ));
    doc.paragraph(
        "Validation sets, chosen before anything was fitted: fp8 layers of the shapes of the bf16 fit's validation \
         set (`calibration/harness/shapes.py`); the decode steps of the models `decode_compiled.py` marks \
         `validation` (every third of each list); 20 random fp8 GEMMs (`micro_validation`).",
    );
    let mut t = Table::new(&[
        ("rows", Align::Left),
        ("set", Align::Left),
        ("n", Align::Right),
        ("MAPE", Align::Right),
        ("within ±10%", Align::Right),
        ("max", Align::Right),
        ("Spearman", Align::Right),
    ]);
    for (group, what) in GROUPS {
        for set in ["train", "validation"] {
            let of: Vec<&PrecisionRow> = rows.iter().filter(|r| r.group == group && r.set == set).collect();
            if of.is_empty() {
                continue;
            }
            let (s, rho) = stats(&of);
            t.row(vec![
                what.to_string(),
                set.to_string(),
                s.rows.to_string(),
                format!("{:.2}%", s.mape_pct),
                format!("{:.1}%", s.within_10_pct),
                format!("{:.1}%", s.max_abs_pct),
                format!("{rho:.4}"),
            ]);
        }
    }
    doc.table(&t);
    if let Some(f) = fit {
        let cv: Vec<String> = [
            ("layer_leave_one_out", "fp8 layers, leave one out"),
            ("decode_leave_one_model_out", "decode steps, leave one model out"),
        ]
        .iter()
        .filter_map(|(k, what)| {
            f.residuals
                .get(*k)
                .map(|s| format!("{what}: {:.2}% MAPE on {} rows", s.mape_pct, s.rows))
        })
        .collect();
        if !cv.is_empty() {
            doc.paragraph(&format!(
                "Cross-validation on the training rows (from the fit): {}.",
                cv.join("; ")
            ));
        }
        doc.heading(2, "Fitted constants");
        let limits = profile.physical_limits();
        let mut t = Table::new(&[
            ("section", Align::Left),
            ("resource", Align::Left),
            ("value", Align::Right),
            ("unit", Align::Left),
        ]);
        for (section, map) in [("layer", &f.layer), ("kernel", &f.kernel), ("decode", &f.decode)] {
            for (name, r) in map {
                t.row(vec![
                    section.to_string(),
                    code(name),
                    format!("{:.3}", r.throughput),
                    r.unit.clone(),
                ]);
            }
        }
        doc.table(&t);
        if let Some(l) = limits {
            doc.paragraph(&format!(
                "Every value is bounded by the spec sheet: HBM {:.0} GB/s, dense bf16 {:.1} TFLOP/s, dense fp8 {} \
                 TFLOP/s ({}); a value at its bound had no data pulling it below (fp8 decode GEMMs never pass \
                 the fp8 ridge point at these batches).",
                l.hbm_gbps,
                l.dense_bf16_tflops,
                l.dense_fp8_tflops.map_or("n/a".to_string(), |v| format!("{v:.1}")),
                l.source
            ));
        }
        doc.paragraph(&format!(
            "fp8 KV cache: {}. int4 prefill: {}.",
            f.kv_cache_fp8, f.int4_prefill
        ));
    }
    doc.heading(2, "Every validation row");
    doc.paragraph("Predicted = the bf16 part (the profile's fixed bf16 constants) + the precision resources.");
    let mut t = Table::new(&[
        ("rows", Align::Left),
        ("what", Align::Left),
        ("measured ms", Align::Right),
        ("predicted ms", Align::Right),
        ("error", Align::Right),
        ("bf16 part ms", Align::Right),
        ("precision part (ms per resource)", Align::Left),
    ]);
    for (group, _) in GROUPS {
        for r in rows.iter().filter(|r| r.group == group && r.set == "validation") {
            let fixed = r.parts.first().map_or(0.0, |p| p.1);
            let rest: Vec<String> = r.parts[1..]
                .iter()
                .map(|(n, ms)| format!("{} {:.4}", code(n), ms))
                .collect();
            t.row(vec![
                group.to_string(),
                code(&r.name),
                format!("{:.4}", r.measured_ms),
                format!("{:.4}", r.predicted_ms),
                pct(r.relative_error()),
                format!("{fixed:.4}"),
                rest.join(", "),
            ]);
        }
    }
    doc.table(&t);
    doc.heading(2, "Worst training rows");
    let mut worst: Vec<&PrecisionRow> = rows.iter().filter(|r| r.set == "train").collect();
    worst.sort_by(|a, b| b.relative_error().abs().total_cmp(&a.relative_error().abs()));
    let mut t = Table::new(&[
        ("rows", Align::Left),
        ("what", Align::Left),
        ("measured ms", Align::Right),
        ("predicted ms", Align::Right),
        ("error", Align::Right),
    ]);
    for r in worst.iter().take(10) {
        t.row(vec![
            r.group.to_string(),
            code(&r.name),
            format!("{:.4}", r.measured_ms),
            format!("{:.4}", r.predicted_ms),
            pct(r.relative_error()),
        ]);
    }
    doc.table(&t);
    doc.markdown()
}

/// MAPE per (group, set), for tests and summaries.
pub fn mape_by_group(rows: &[PrecisionRow]) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for (group, _) in GROUPS {
        for set in ["train", "validation"] {
            let of: Vec<&PrecisionRow> = rows.iter().filter(|r| r.group == group && r.set == set).collect();
            if !of.is_empty() {
                out.insert((group.to_string(), set.to_string()), stats(&of).0.mape_pct);
            }
        }
    }
    out
}
