//! The MoE and MLA fidelity report (`docs/results/moe-mla-fidelity.md`):
//! every measured MoE MLP, grouped GEMM and MLA layer against the profile's
//! MoE and MLA models, train and validation apart, with a spec-sheet roofline
//! beside. A pure function of its inputs, so a test regenerates the committed
//! report byte for byte.

use std::fmt::Write;

use crate::cost::mla::{self, Base};
use crate::cost::moe::{self, MoeConstants};
use crate::error::{Error, Result};

use super::mla_fit::MlaRecord;
use super::moe_fit::{predict_record, MoeRecord, MoeSubject};
use super::profile::{CalibrationProfile, ResidualStats};

/// What the report needs besides the records.
pub struct ReportInput<'a> {
    pub profile: &'a CalibrationProfile,
    /// How the profile is named (its path).
    pub profile_place: &'a str,
    pub moe: &'a [MoeRecord],
    pub moe_sha256: &'a str,
    pub mla: &'a [MlaRecord],
    pub mla_sha256: &'a str,
    /// The command that wrote the report.
    pub command: &'a str,
}

struct Row {
    kind: String,
    set: String,
    label: String,
    measured: f64,
    ours: f64,
    roofline: f64,
}

fn describe_moe(r: &MoeRecord) -> String {
    match &r.subject {
        MoeSubject::Layer { shape, .. } => {
            let imb = if shape.imbalance > 1.0 {
                format!(", imbalance {}", shape.imbalance)
            } else {
                String::new()
            };
            format!(
                "{} tokens {} ({}/{} experts, ffn {}{imb})",
                r.config, shape.tokens, shape.top_k, shape.experts, shape.expert_ffn
            )
        }
        MoeSubject::GroupedGemm { routing, n, k } => format!(
            "{} rows {} over {} experts, N {n} K {k}",
            r.config, routing.rows, routing.experts
        ),
    }
}

/// The Markdown report.
pub fn fidelity_markdown(input: &ReportInput) -> Result<String> {
    let p = input.profile;
    let moe_fit = p.moe_model.as_ref().ok_or_else(|| {
        Error::input(
            input.profile_place,
            "the profile has no MoE model (run `nas calibrate ... --moe FILE`)",
        )
    })?;
    let limits = p
        .physical_limits()
        .ok_or_else(|| Error::Spec(format!("no physical limits known for `{}`", p.gpu)))?;
    let ours_moe = moe_fit.constants(p.sm_count);
    let roof_moe = MoeConstants::roofline(limits.hbm_gbps, limits.dense_bf16_tflops, p.sm_count);
    let mut rows: Vec<Row> = input
        .moe
        .iter()
        .map(|r| Row {
            kind: r.kind.clone(),
            set: r.set.clone(),
            label: describe_moe(r),
            measured: r.median_ms,
            ours: predict_record(&ours_moe, r),
            roofline: predict_record(&roof_moe, r),
        })
        .collect();
    if !input.mla.is_empty() {
        let mla_fit = p.mla_model.as_ref().ok_or_else(|| {
            Error::input(
                input.profile_place,
                "the profile has no MLA model (run `nas calibrate ... --mla FILE`)",
            )
        })?;
        let base = Base::Fitted(p);
        let roof = Base::Roofline {
            hbm_gbps: limits.hbm_gbps,
            dense_tflops: limits.dense_bf16_tflops,
        };
        let mut roof_c = [0.0; mla::COUNT];
        for (slot, (_, unit, _)) in roof_c.iter_mut().zip(mla::MLA_RESOURCES) {
            *slot = match unit {
                crate::cost::kernel_aware::Unit::Flops => 1.0 / (limits.dense_bf16_tflops * 1e9),
                crate::cost::kernel_aware::Unit::Bytes => 1.0 / (limits.hbm_gbps * 1e6),
                crate::cost::kernel_aware::Unit::Launches => 0.0,
            };
        }
        let ours_c = mla_fit.constants();
        rows.extend(input.mla.iter().map(|r| Row {
            kind: r.kind.clone(),
            set: r.set.clone(),
            label: format!(
                "{} batch {} {} {}",
                r.config,
                r.batch,
                if r.kind == "mla_prefill" { "seq" } else { "context" },
                r.tokens
            ),
            measured: r.median_ms,
            ours: r.predict(&base, &ours_c),
            roofline: r.predict(&roof, &roof_c),
        }));
    }
    let err = |p: f64, m: f64| (p - m) / m;
    let mut md = String::new();
    let _ = writeln!(md, "# MoE and MLA fidelity: {}\n", p.gpu);
    let _ = writeln!(
        md,
        "Measured by `calibration/harness/moe_mla.py` on the {} (calibration/README.md, \"MoE MLPs and MLA \
         attention\"): each point a CUDA graph of back-to-back calls of a `torch.compile`d MoE MLP or MLA \
         attention half (the grouped GEMMs eager), weights rotated past L2, the median of 5 rounds. MoE data \
         SHA-256 `{}`; MLA data SHA-256 `{}`.\n",
        p.gpu, input.moe_sha256, input.mla_sha256
    );
    let _ = writeln!(
        md,
        "Predictions: the MoE model and MLA constants of `{}` (fitted on the `train` configs only; the \
         `validation` configs were chosen before any measurement and never fitted on), MLA's GEMMs and \
         bytes from the same profile's layer and decode fits. Beside them a spec-sheet roofline ({:.0} GB/s, \
         {:.1} TFLOP/s bf16, no fixed costs).\n",
        input.profile_place, limits.hbm_gbps, limits.dense_bf16_tflops
    );
    let _ = writeln!(md, "Written by `{}`.\n", input.command);
    let kinds: [(&str, &str); 7] = [
        (
            "moe_prefill",
            "MoE MLP, prefill (router, balanced or imbalanced routing, index_add combine)",
        ),
        (
            "moe_decode",
            "MoE MLP, decode (the router's own top-k on random weights)",
        ),
        (
            "moe_routed",
            "MoE MLP of routed tokens (balanced; gather-and-sum combine)",
        ),
        ("grouped_mm", "one grouped GEMM (`torch._grouped_mm`, eager)"),
        ("mla_prefill", "MLA attention, prefill (expanded form)"),
        (
            "mla_decode",
            "MLA attention, decode (absorbed form, split latent cache)",
        ),
        (
            "mla_decode_joint",
            "MLA decode with one joint latent cache (first run; not fitted on)",
        ),
    ];
    let _ = writeln!(
        md,
        "| kind | set | records | MAPE | within ±10% | worst | roofline MAPE |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|");
    for (kind, what) in kinds {
        for set in ["train", "validation"] {
            let of: Vec<&Row> = rows
                .iter()
                .filter(|r| r.kind == kind && (r.set == "validation") == (set == "validation"))
                .collect();
            if of.is_empty() {
                continue;
            }
            let ours = ResidualStats::of(&of.iter().map(|r| err(r.ours, r.measured)).collect::<Vec<_>>());
            let roof = ResidualStats::of(&of.iter().map(|r| err(r.roofline, r.measured)).collect::<Vec<_>>());
            let _ = writeln!(
                md,
                "| {what} | {set} | {} | {:.2}% | {:.1}% | {:.1}% | {:.1}% |",
                of.len(),
                ours.mape_pct,
                ours.within_10_pct,
                ours.max_abs_pct,
                roof.mape_pct
            );
        }
    }
    // nas kernel's moe: the engine form beside the measured routed MLPs
    let engine: Vec<(f64, f64)> = input
        .moe
        .iter()
        .filter(|r| r.kind == "moe_routed")
        .filter_map(|r| match &r.subject {
            MoeSubject::Layer { shape, routing, .. } => {
                let w = moe::layer_work(shape, routing, moe::Pipeline::Engine { router: false }, &ours_moe.form);
                Some((w.iter().map(|k| ours_moe.kernel_ms(k)).sum::<f64>(), r.median_ms))
            }
            MoeSubject::GroupedGemm { .. } => None,
        })
        .collect();
    if !engine.is_empty() {
        let ratios: Vec<f64> = engine.iter().map(|(e, m)| e / m).collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            md,
            "\n`nas kernel`'s `moe` answers the engine form of a routed MoE MLP (grouped gate-up, activation, \
             grouped down, a contiguous weighted sum as the combine: no sort, gather or gather-and-sum kernels, \
             which a serving engine fuses into its GEMMs). On the {} measured routed MLPs it is {:.2}x the \
             measured time on average ({:.2}x to {:.2}x): the difference is what the harness spends on grouping \
             and on inductor's gather-and-sum combine. That form is not measured here.",
            engine.len(),
            mean,
            min,
            max
        );
    }
    let mut worst: Vec<&Row> = rows.iter().filter(|r| r.set == "validation").collect();
    worst.sort_by(|a, b| {
        err(b.ours, b.measured)
            .abs()
            .total_cmp(&err(a.ours, a.measured).abs())
            .then_with(|| a.label.cmp(&b.label))
    });
    if !worst.is_empty() {
        let _ = writeln!(md, "\n## Worst validation records\n");
        let _ = writeln!(
            md,
            "| kind | record | measured ms | predicted ms | error | roofline ms |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
        for r in worst.iter().take(10) {
            let _ = writeln!(
                md,
                "| {} | {} | {:.4} | {:.4} | {:+.1}% | {:.4} |",
                r.kind,
                r.label,
                r.measured,
                r.ours,
                err(r.ours, r.measured) * 100.0,
                r.roofline
            );
        }
    }
    let _ = writeln!(md, "\n## Fitted constants\n");
    let _ = writeln!(
        md,
        "MoE ramp: the first {} MiB of each grouped GEMM's weights (chosen by leave-one-config-out error \
         among {:?} MiB). A constant at its physical limit is marked.\n",
        moe_fit.ramp_bytes / 1048576.0,
        super::moe_fit::RAMP_CHOICES_MIB
    );
    let _ = writeln!(md, "| resource | value | unit |");
    let _ = writeln!(md, "|---|---:|---|");
    let at_limit =
        |name: &str, ms: f64, table: &[(&str, crate::cost::kernel_aware::Unit, Option<crate::gpu::PeakUnit>)]| {
            table
                .iter()
                .find(|(n, _, _)| *n == name)
                .and_then(|(_, _, b)| *b)
                .is_some_and(|b| ms <= limits.min_ms_per_unit(b) * (1.0 + 1e-9))
        };
    for (name, f) in &moe_fit.fitted {
        let mark = if at_limit(name, f.ms_per_unit, &moe::MOE_RESOURCES) {
            " (at its limit)"
        } else {
            ""
        };
        let _ = writeln!(md, "| {name} | {:.3} | {}{mark} |", f.throughput, f.unit);
    }
    if let Some(m) = &p.mla_model {
        for (name, f) in &m.fitted {
            let mark = if at_limit(name, f.ms_per_unit, &mla::MLA_RESOURCES) {
                " (at its limit)"
            } else {
                ""
            };
            let _ = writeln!(md, "| {name} | {:.3} | {}{mark} |", f.throughput, f.unit);
        }
    }
    Ok(md)
}
