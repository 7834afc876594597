//! Predicted against measured: how well a calibration profile (and the seed
//! model, beside it) predicts layers it was not fitted on.

use std::fmt::Write;

use plotters::prelude::*;

use crate::calibrate::measurements::{MeasurementSet, Subject};
use crate::calibrate::profile::ResidualStats;
use crate::calibrate::CalibrationProfile;
use crate::cost::kernel_aware::{padded_head_dim, BLOCK};
use crate::error::{Error, Result};
use crate::shapes::LayerShape;

/// One layer: measured, predicted by the profile, predicted by the seed model.
#[derive(Clone, Debug, PartialEq)]
pub struct FidelityRow {
    pub shape: LayerShape,
    pub measured_ms: f64,
    pub predicted_ms: f64,
    pub seed_ms: f64,
    /// The profile's largest kernel for this layer.
    pub bottleneck: &'static str,
}

impl FidelityRow {
    pub fn error(&self) -> f64 {
        (self.predicted_ms - self.measured_ms) / self.measured_ms
    }

    pub fn seed_error(&self) -> f64 {
        (self.seed_ms - self.measured_ms) / self.measured_ms
    }

    /// What makes this layer unusual for a cost model, in words.
    pub fn traits(&self) -> String {
        let s = &self.shape;
        let mut t = Vec::new();
        if s.tokens() <= 512 {
            t.push(format!("tiny ({} tokens: launch- and latency-bound)", s.tokens()));
        }
        let odd = [("hidden_dim", s.hidden_dim), ("ffn_dim", s.ffn_dim)]
            .into_iter()
            .filter(|(_, v)| v % 8 != 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>();
        if !odd.is_empty() {
            t.push(format!("GEMM not 8-aligned ({})", odd.join(", ")));
        }
        if s.head_dim % 8 != 0 {
            t.push(format!("head_dim {} (FlashAttention fallback)", s.head_dim));
        } else if padded_head_dim(s.head_dim) != s.head_dim {
            t.push(format!(
                "head_dim {} padded to {}",
                s.head_dim,
                padded_head_dim(s.head_dim)
            ));
        }
        if let Some(w) = s.window_size {
            t.push(format!("window {w} (flex_attention)"));
        }
        if s.seq_len >= 8192 {
            t.push(format!("long sequence ({})", s.seq_len));
        }
        if s.batch_size > 1 {
            t.push(format!("batch {}", s.batch_size));
        }
        if s.hidden_dim % BLOCK != 0 || s.ffn_dim % BLOCK != 0 {
            t.push("sizes not multiples of 128".into());
        }
        if t.is_empty() {
            "regular".into()
        } else {
            t.join("; ")
        }
    }
}

/// The fidelity of a profile on one measurement set.
#[derive(Clone, Debug)]
pub struct FidelityReport {
    pub gpu: String,
    pub set: String,
    pub profile_source: String,
    pub seed_hardware: String,
    pub data_files: Vec<String>,
    pub data_sha256: String,
    pub rows: Vec<FidelityRow>,
}

/// Spearman's rank correlation (ties get their average rank).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

impl FidelityReport {
    /// Predicts every layer of `set` in `data` with the profile and the seed model.
    pub fn build(
        profile: &CalibrationProfile,
        profile_source: &str,
        data: &MeasurementSet,
        set: &str,
        seed: &crate::gpu::Gpu,
    ) -> Result<Self> {
        let layers: Vec<(LayerShape, f64)> = data
            .measurements
            .iter()
            .filter(|m| m.set == set)
            .filter_map(|m| match &m.subject {
                Subject::Layer(s) => Some((**s, m.median_ms)),
                Subject::Micro { .. } => None,
            })
            .collect();
        if layers.is_empty() {
            return Err(Error::Spec(format!("no layer measurement in set `{set}`")));
        }
        if data.measurements[0].gpu != profile.gpu {
            return Err(Error::Spec(format!(
                "the profile was fitted on `{}` but the measurements come from `{}`",
                profile.gpu, data.measurements[0].gpu
            )));
        }
        let shapes: Vec<LayerShape> = layers.iter().map(|(s, _)| *s).collect();
        let ours = profile.predict(&shapes);
        let theirs = crate::gpu::Latencies::new(std::slice::from_ref(seed), &shapes);
        let rows = layers
            .iter()
            .enumerate()
            .map(|(i, (shape, measured))| FidelityRow {
                shape: *shape,
                measured_ms: *measured,
                predicted_ms: ours.total_ms(i, 0),
                seed_ms: theirs.total_ms(i, 0),
                bottleneck: ours.kernels(i, 0).bottleneck(),
            })
            .collect();
        Ok(FidelityReport {
            gpu: profile.gpu.clone(),
            set: set.to_string(),
            profile_source: profile_source.to_string(),
            seed_hardware: seed.key.to_string(),
            data_files: data.files.clone(),
            data_sha256: data.sha256.clone(),
            rows,
        })
    }

    pub fn stats(&self) -> (ResidualStats, f64) {
        let errors: Vec<f64> = self.rows.iter().map(FidelityRow::error).collect();
        (ResidualStats::of(&errors), self.spearman(|r| r.predicted_ms))
    }

    pub fn seed_stats(&self) -> (ResidualStats, f64) {
        let errors: Vec<f64> = self.rows.iter().map(FidelityRow::seed_error).collect();
        (ResidualStats::of(&errors), self.spearman(|r| r.seed_ms))
    }

    fn spearman(&self, predicted: impl Fn(&FidelityRow) -> f64) -> f64 {
        let measured: Vec<f64> = self.rows.iter().map(|r| r.measured_ms).collect();
        let p: Vec<f64> = self.rows.iter().map(predicted).collect();
        spearman(&measured, &p)
    }

    /// The report in Markdown; `svg_name` is the scatter plot's file name beside it.
    pub fn to_markdown(&self, svg_name: &str, command: &str) -> String {
        let mut md = String::new();
        let _ = self.write_markdown(&mut md, svg_name, command);
        md
    }

    fn write_markdown(&self, md: &mut String, svg_name: &str, command: &str) -> std::fmt::Result {
        let (ours, rho) = self.stats();
        let (seed, seed_rho) = self.seed_stats();
        writeln!(md, "# Fidelity on {}: predicted vs measured decoder layers\n", self.gpu)?;
        writeln!(
            md,
            "{} bf16 decoder layers of the `{}` set, measured on an {} by the calibration harness \
             (torch.compile, CUDA-graph replay, median of 5 rounds; see calibration/README.md). \
             None of them was used to fit the profile `{}`. The seed model's predictions use its `{}` constants.\n",
            self.rows.len(),
            self.set,
            self.gpu,
            self.profile_source,
            self.seed_hardware
        )?;
        writeln!(
            md,
            "Generated by `{command}` from {} (SHA-256 `{}`).\n",
            self.data_files.join(", "),
            self.data_sha256
        )?;
        writeln!(md, "| model | MAPE | within ±10% | max error | Spearman |")?;
        writeln!(md, "|---|---:|---:|---:|---:|")?;
        for (name, s, r) in [("kernel-aware (this profile)", &ours, rho), ("seed", &seed, seed_rho)] {
            writeln!(
                md,
                "| {name} | {:.2}% | {:.1}% | {:.1}% | {:.4} |",
                s.mape_pct, s.within_10_pct, s.max_abs_pct, r
            )?;
        }
        writeln!(md, "\n![predicted vs measured]({svg_name})\n")?;
        writeln!(md, "## Worst cases\n")?;
        let mut worst: Vec<&FidelityRow> = self.rows.iter().collect();
        worst.sort_by(|a, b| b.error().abs().total_cmp(&a.error().abs()));
        writeln!(
            md,
            "| layer | measured ms | predicted ms | error | largest kernel | what is unusual |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---|---|")?;
        for r in worst.iter().take(5) {
            writeln!(
                md,
                "| {} | {:.4} | {:.4} | {:+.1}% | {} | {} |",
                describe(&r.shape),
                r.measured_ms,
                r.predicted_ms,
                r.error() * 100.0,
                r.bottleneck,
                r.traits()
            )?;
        }
        let traits: String = worst.iter().take(5).map(|r| r.traits()).collect::<Vec<_>>().join("; ");
        let explanations = [
            (
                "not 8-aligned",
                "GEMM sizes that are not a multiple of 8 elements lose cuBLAS's aligned tensor-core kernels, \
                 and inductor may pad the operands instead; which happens varies from shape to shape, so \
                 the one fitted `gemm_misaligned_flops` throughput is an average over quite different cases.",
            ),
            (
                "FlashAttention fallback",
                "head_dim 100 is not a multiple of 8: PyTorch runs FlashAttention instead of cuDNN, padded \
                 to 128, with its own (fitted) throughput and few training layers to learn it from.",
            ),
            (
                "tiny",
                "Tiny layers take tens of microseconds, most of it about ten kernel launches (a fitted cost \
                 per launch) and latency; the measurement's own round-to-round spread is largest there.",
            ),
            (
                "flex_attention",
                "Sliding windows run through flex_attention, whose efficiency depends on the window and the \
                 head size more than one throughput (two, split at head_dim 128) captures.",
            ),
        ];
        let relevant: Vec<&str> = explanations
            .iter()
            .filter(|(key, _)| traits.contains(key))
            .map(|(_, text)| *text)
            .collect();
        if !relevant.is_empty() {
            writeln!(md, "\nWhy these are the hard cases:\n")?;
            for text in relevant {
                writeln!(md, "- {text}")?;
            }
        }
        writeln!(md, "\n## Every layer\n")?;
        writeln!(
            md,
            "| layer | measured ms | predicted ms | error | seed ms | seed error |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
        for r in &self.rows {
            writeln!(
                md,
                "| {} | {:.4} | {:.4} | {:+.1}% | {:.4} | {:+.1}% |",
                describe(&r.shape),
                r.measured_ms,
                r.predicted_ms,
                r.error() * 100.0,
                r.seed_ms,
                r.seed_error() * 100.0
            )?;
        }
        writeln!(
            md,
            "\nLayer key: D hidden, H heads / kv heads x head_dim, F ffn, S sequence, B batch, qk = QK-norm, w = window."
        )?;
        Ok(())
    }

    /// The report as a self-contained HTML page: the Markdown converted, the
    /// scatter plot inlined where the Markdown shows `svg_name`.
    pub fn to_html(&self, svg_name: &str, command: &str) -> Result<String> {
        let svg = self.to_svg()?;
        let body = super::html::markdown_to_html(&self.to_markdown(svg_name, command), &[(svg_name, &svg)]);
        Ok(super::html::page(&format!("Fidelity on {}", self.gpu), &body))
    }

    /// A log-log scatter of predicted against measured, both models, as SVG.
    pub fn to_svg(&self) -> Result<String> {
        let mut svg = String::new();
        let lo = self
            .rows
            .iter()
            .flat_map(|r| [r.measured_ms, r.predicted_ms, r.seed_ms])
            .fold(f64::INFINITY, f64::min)
            * 0.7;
        let hi = self
            .rows
            .iter()
            .flat_map(|r| [r.measured_ms, r.predicted_ms, r.seed_ms])
            .fold(0.0f64, f64::max)
            * 1.4;
        let chart_error = |e: String| Error::Spec(format!("drawing the fidelity chart: {e}"));
        {
            let root = SVGBackend::with_string(&mut svg, (720, 560)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| chart_error(e.to_string()))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!("{}: predicted vs measured layer time", self.gpu),
                    ("sans-serif", 18),
                )
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(60)
                .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
                .map_err(|e| chart_error(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("measured (ms)")
                .y_desc("predicted (ms)")
                .draw()
                .map_err(|e| chart_error(e.to_string()))?;
            chart
                .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.5)))
                .map_err(|e| chart_error(e.to_string()))?
                .label("exact")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.5)));
            for (band, style) in [(1.1, BLACK.mix(0.2)), (1.0 / 1.1, BLACK.mix(0.2))] {
                chart
                    .draw_series(LineSeries::new([(lo, lo * band), (hi, hi * band)], style))
                    .map_err(|e| chart_error(e.to_string()))?;
            }
            let seed_color = RGBColor(214, 96, 77);
            let ours_color = RGBColor(33, 102, 172);
            chart
                .draw_series(
                    self.rows
                        .iter()
                        .map(|r| TriangleMarker::new((r.measured_ms, r.seed_ms), 5, seed_color)),
                )
                .map_err(|e| chart_error(e.to_string()))?
                .label("seed model")
                .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 5, seed_color));
            chart
                .draw_series(
                    self.rows
                        .iter()
                        .map(|r| Circle::new((r.measured_ms, r.predicted_ms), 4, ours_color.filled())),
                )
                .map_err(|e| chart_error(e.to_string()))?
                .label("kernel-aware (calibrated)")
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, ours_color.filled()));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(|e| chart_error(e.to_string()))?;
            root.present().map_err(|e| chart_error(e.to_string()))?;
        }
        Ok(svg)
    }
}

/// `D2048 H16/4x128 F8192 S4096 B1 qk w1024`
pub fn describe(s: &LayerShape) -> String {
    let mut d = format!(
        "D{} H{}/{}x{} F{} S{} B{}",
        s.hidden_dim, s.num_heads, s.num_kv_heads, s.head_dim, s.ffn_dim, s.seq_len, s.batch_size
    );
    if s.use_qk_norm {
        d.push_str(" qk");
    }
    if let Some(w) = s.window_size {
        let _ = write!(d, " w{w}");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::spearman;

    #[test]
    fn spearman_of_monotone_and_reversed_data() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 25.0, 100.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
    }
}
