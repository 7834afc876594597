//! The pack's Markdown summary. For the seed's pack it is the seed's text to
//! the byte; every line is built from the pack itself.

use std::fmt::Write;

use crate::search::constraints::{CmpOp, Constraint, Metric};

use super::Pack;

impl Pack {
    /// The Markdown summary (ends with a newline).
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = self.write_summary(&mut md);
        let _ = self.write_whole_models(&mut md);
        md
    }

    /// Parameters, memory, loss, and per GPU the decode ranking of the
    /// whole-model candidates (nothing for a pack of plain layers).
    fn write_whole_models(&self, md: &mut String) -> std::fmt::Result {
        let Some(notes) = &self.whole_model_notes else {
            return Ok(());
        };
        writeln!(md)?;
        writeln!(md, "## Whole models")?;
        writeln!(md)?;
        for note in notes {
            writeln!(md, "- {note}")?;
        }
        writeln!(md)?;
        writeln!(
            md,
            "| candidate | parameters | non-embedding | weights (GiB) | KV cache per token (bytes) | loss estimate | constraints |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|---|")?;
        for c in &self.candidate_catalog {
            let Some(m) = &c.model else { continue };
            writeln!(
                md,
                "| {} | {} | {} | {:.2} | {} | {} | {} |",
                escape(&c.name),
                m.parameters.total,
                m.parameters.non_embedding,
                m.memory.weight_bytes as f64 / crate::model::GIB,
                m.memory.kv_cache_bytes_per_token,
                m.loss_estimate.map_or("n/a".to_string(), |l| format!("{l:.4}")),
                if c.constraints.passes {
                    "pass".to_string()
                } else {
                    escape(&c.constraints.failed.join(", "))
                }
            )?;
        }
        for key in &self.hardware_profiles {
            let Some(report) = self.reports.get(key).and_then(|r| r.whole_model.as_ref()) else {
                continue;
            };
            writeln!(md)?;
            writeln!(
                md,
                "### {}: fastest decode among candidates that pass the constraints",
                key.to_uppercase()
            )?;
            writeln!(md)?;
            if report.quality_constrained_decode_ranking.is_empty() {
                writeln!(md, "No whole-model candidate passes the constraints.")?;
                continue;
            }
            writeln!(
                md,
                "| rank | candidate | decode ms | prefill ms | fits memory | loss estimate |"
            )?;
            writeln!(md, "|---:|---|---:|---:|---|---:|")?;
            for r in &report.quality_constrained_decode_ranking {
                writeln!(
                    md,
                    "| {} | {} | {:.4} | {:.3} | {} | {} |",
                    r.rank,
                    escape(&r.name),
                    r.decode_ms,
                    r.prefill_ms,
                    r.fits_memory.map_or("unknown", |f| if f { "yes" } else { "no" }),
                    r.loss_estimate.map_or("n/a".to_string(), |l| format!("{l:.4}"))
                )?;
            }
        }
        Ok(())
    }

    fn write_summary(&self, md: &mut String) -> std::fmt::Result {
        writeln!(md, "# Kernel-Aware NAS Multi-Hardware Pack")?;
        writeln!(md)?;
        writeln!(
            md,
            "This artifact is a deterministic latency proxy. It does not measure model quality, perplexity, or downstream accuracy."
        )?;
        writeln!(md)?;
        writeln!(md, "Candidate count: `{}`", self.candidate_count)?;
        let status = serde_json::to_value(self.calibration.status).unwrap_or_default();
        writeln!(md, "Calibration status: `{}`", status.as_str().unwrap_or("unknown"))?;
        writeln!(md)?;
        writeln!(
            md,
            "| Hardware | unconstrained fastest | constrained fastest | constrained candidates |"
        )?;
        writeln!(md, "|---|---|---|---:|")?;
        for key in &self.hardware_profiles {
            let Some(s) = self.summary.get(key) else {
                continue;
            };
            writeln!(
                md,
                "| {} | {} | {} | {} |",
                key.to_uppercase(),
                escape(s.fastest_config.as_deref().unwrap_or("none")),
                escape(s.quality_constrained_fastest_config.as_deref().unwrap_or("none")),
                s.quality_constrained_candidate_count
            )?;
        }
        writeln!(md)?;
        writeln!(md, "## Constraints")?;
        writeln!(md)?;
        if self.constraints.clauses.is_empty() {
            writeln!(md, "- None: every candidate passes.")?;
        }
        for clause in self.constraints.clauses.iter() {
            writeln!(md, "- {}", describe(clause))?;
        }
        writeln!(md)?;
        writeln!(md, "## Limitations")?;
        writeln!(md)?;
        for line in &self.limitations {
            writeln!(md, "- {line}")?;
        }
        Ok(())
    }
}

/// A clause in words; the seed's three clauses read exactly as the seed wrote them.
fn describe(clause: &Constraint) -> String {
    match clause {
        Constraint::Compare {
            metric: Metric::HiddenDim,
            op: CmpOp::Ge,
            bound,
        } => {
            format!("Minimum hidden dimension: `{bound}`")
        }
        Constraint::Compare {
            metric: Metric::ParamProxyM,
            op: CmpOp::Ge,
            bound,
        } => {
            format!("Minimum parameter proxy: `{bound}M`")
        }
        Constraint::Range {
            metric: Metric::FfnRatio,
            lo,
            hi,
            inclusive: true,
        } => {
            format!("FFN ratio range: `{lo}` to `{hi}`")
        }
        other => format!("`{other}`"),
    }
}

/// Escapes the characters that would break a Markdown table cell or add emphasis.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '|' | '*' | '_' | '`' | '\\' | '[' | ']' | '<' | '>') && needs_escape(text) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Plain identifiers like `gen_h2048_hd128` render the same escaped or not
/// (intra-word underscores are not emphasis), and the seed wrote them bare.
fn needs_escape(text: &str) -> bool {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    !plain || text.starts_with('_') || text.ends_with('_')
}
