//! The one Markdown renderer of the pack. Every report is built as a
//! [`Document`] of blocks (headings, paragraphs, lists, tables) with chart
//! slots between them: the Markdown file is its blocks, the HTML page the same
//! blocks converted by pulldown-cmark with the charts drawn in the slots.
//!
//! For the seed's pack the first part is the seed's summary to the byte;
//! everything after it (per GPU tops, Pareto fronts, per-kernel breakdowns,
//! generated-search tops, cliff sweeps) is new and follows it.

use std::collections::BTreeMap;

use crate::search::constraints::{CmpOp, Constraint, Metric};
use crate::search::pareto_front;

use super::charts::Chart;
use super::{Comparison, Pack};

/// How many rows the "top" tables show.
pub const TOP_ROWS: usize = 10;
/// How many candidates the per-kernel breakdown shows (fastest, then fastest passing).
pub const BREAKDOWN_EACH: usize = 5;

/// One piece of a report: Markdown text, or the place of a chart.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Markdown(String),
    Chart(Chart),
}

/// A report as blocks of Markdown with chart slots between them; blocks are
/// separated by one blank line and the text ends with a newline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    parts: Vec<Part>,
    started: bool,
}

impl Document {
    pub fn new() -> Self {
        Self::default()
    }

    fn block(&mut self, text: &str) {
        let sep = if self.started { "\n" } else { "" };
        self.started = true;
        match self.parts.last_mut() {
            Some(Part::Markdown(md)) => {
                md.push_str(sep);
                md.push_str(text);
            }
            _ => self.parts.push(Part::Markdown(format!("{sep}{text}"))),
        }
    }

    /// A heading; `text` is inline Markdown (escape names with [`escape`]).
    pub fn heading(&mut self, level: usize, text: &str) {
        self.block(&format!("{} {}\n", "#".repeat(level.clamp(1, 6)), text));
    }

    /// A paragraph of inline Markdown; lines stay lines.
    pub fn paragraph(&mut self, text: &str) {
        self.block(&format!("{}\n", text.trim_end()));
    }

    /// A bullet list, one item per inline-Markdown string.
    pub fn list<S: AsRef<str>>(&mut self, items: &[S]) {
        let text: String = items.iter().map(|i| format!("- {}\n", i.as_ref())).collect();
        self.block(&text);
    }

    pub fn table(&mut self, table: &Table) {
        self.block(&table.render());
    }

    /// The place of a chart: nothing in the Markdown, an SVG in the HTML.
    pub fn chart(&mut self, chart: Chart) {
        self.parts.push(Part::Chart(chart));
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The Markdown text: every block, no chart.
    pub fn markdown(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Markdown(md) => Some(md.as_str()),
                Part::Chart(_) => None,
            })
            .collect()
    }
}

/// Alignment of a table column (`---` or `---:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A GFM table whose cells are inline Markdown (names go through [`escape`]).
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are left empty and extra cells dropped, so
    /// the table always has as many cells per row as columns.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut s = String::from("|");
            for c in cells {
                s.push(' ');
                s.push_str(c);
                s.push_str(" |");
            }
            s.push('\n');
            s
        };
        let mut out = line(&mut self.columns.iter().map(|(h, _)| h.as_str()));
        out.push('|');
        for (_, a) in &self.columns {
            out.push_str(match a {
                Align::Left => "---|",
                Align::Right => "---:|",
            });
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(&mut r.iter().map(String::as_str)));
        }
        out
    }
}

/// Escapes text for inline Markdown (table cells included) so that it reads
/// back as itself: every ASCII punctuation character gets a backslash, line
/// breaks become spaces. Plain identifiers like `gen_h2048_hd128` (letters,
/// digits, `-`, `.`, and `_` only between letters or digits) cannot start
/// emphasis or a table cell and are kept bare, as the seed wrote them.
pub fn escape(text: &str) -> String {
    if is_plain(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

fn is_plain(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    !chars.is_empty()
        && chars.iter().enumerate().all(|(i, &c)| {
            c.is_ascii_alphanumeric()
                || ((c == '-' || c == '.') && i > 0)
                || (c == '_'
                    && i > 0
                    && i + 1 < chars.len()
                    && chars[i - 1].is_ascii_alphanumeric()
                    && chars[i + 1].is_ascii_alphanumeric())
        })
}

fn ms(v: f64) -> String {
    format!("{v:.4}")
}

impl Pack {
    /// The Markdown summary (ends with a newline): the seed's summary first,
    /// then the per-GPU results and the cliff sweeps.
    pub fn to_markdown(&self) -> String {
        self.document().markdown()
    }

    /// The report as blocks and chart slots (the Markdown and the HTML both come from it).
    pub fn document(&self) -> Document {
        let mut doc = Document::new();
        self.seed_summary(&mut doc);
        self.provenance_section(&mut doc);
        for key in &self.hardware_profiles {
            self.gpu_section(&mut doc, key);
        }
        self.cliff_section(&mut doc);
        self.whole_model_section(&mut doc);
        doc
    }

    /// Parameters, memory, loss, and per GPU the decode ranking of the
    /// whole-model candidates (nothing for a pack of plain layers).
    fn whole_model_section(&self, doc: &mut Document) {
        let Some(notes) = &self.whole_model_notes else {
            return;
        };
        doc.heading(2, "Whole models");
        doc.list(notes);
        let mut t = Table::new(&self.columns(&[
            ("candidate", Align::Left),
            ("parameters", Align::Right),
            ("non-embedding", Align::Right),
            ("weights (GiB)", Align::Right),
            ("KV cache per token (bytes)", Align::Right),
            ("loss estimate", Align::Right),
            ("constraints", Align::Left),
        ]));
        for c in &self.candidate_catalog {
            let Some(m) = &c.model else { continue };
            let label = c.config.precision.label();
            t.row(self.cells(
                vec![
                    escape(&c.name),
                    m.parameters.total.to_string(),
                    m.parameters.non_embedding.to_string(),
                    format!("{:.2}", m.memory.weight_bytes as f64 / crate::model::GIB),
                    m.memory.kv_cache_bytes_per_token.to_string(),
                    m.loss_estimate.map_or("n/a".to_string(), |l| format!("{l:.4}")),
                    if c.constraints.passes {
                        "pass".to_string()
                    } else {
                        escape(&c.constraints.failed.join(", "))
                    },
                ],
                0,
                Some(&label),
            ));
        }
        doc.table(&t);
        let latency_clauses = self.constraints.reads_latency();
        if latency_clauses {
            doc.paragraph(
                "Clauses on `prefill_ms`, `decode_ms` and `decode_tokens_per_s` hold per GPU: the constraints column \
                 above shows the GPU-independent clauses (latency clauses assumed to hold); each GPU's ranking below \
                 applies them with that GPU's latencies.",
            );
        }
        for key in &self.hardware_profiles {
            let Some(report) = self.reports.get(key).and_then(|r| r.whole_model.as_ref()) else {
                continue;
            };
            let by = match report.rank_by.as_str() {
                "prefill_ms" => "fastest prefill",
                "decode_tokens_per_s" => "most decode tokens per second",
                _ => "fastest decode",
            };
            doc.heading(
                3,
                &format!(
                    "{}: {by} among candidates that pass the constraints",
                    escape(&key.to_uppercase())
                ),
            );
            if report.constrained_ranking.is_empty() {
                doc.paragraph("No whole-model candidate passes the constraints.");
                continue;
            }
            doc.paragraph(&format!(
                "Ranked by `{}`{}.",
                escape(&report.rank_by),
                if latency_clauses {
                    format!(
                        "; latency clauses use {}'s own prefill and decode",
                        escape(&key.to_uppercase())
                    )
                } else {
                    String::new()
                }
            ));
            let mut t = Table::new(&self.columns(&[
                ("rank", Align::Right),
                ("candidate", Align::Left),
                ("decode ms", Align::Right),
                ("prefill ms", Align::Right),
                ("decode tokens/s", Align::Right),
                ("fits memory", Align::Left),
                ("loss estimate", Align::Right),
            ]));
            for r in &report.constrained_ranking {
                t.row(self.cells(
                    vec![
                    r.rank.to_string(),
                    escape(&r.name),
                    ms(r.decode_ms),
                    format!("{:.3}", r.prefill_ms),
                    format!("{:.1}", r.decode_tokens_per_s),
                    r.fits_memory
                        .map_or("unknown", |f| if f { "yes" } else { "no" })
                        .to_string(),
                    r.loss_estimate.map_or("n/a".to_string(), |l| format!("{l:.4}")),
                ],
                    1,
                    r.precision.as_deref(),
                ));
            }
            doc.table(&t);
            if self.precisioned() {
                self.decode_breakdown(doc, key, report);
            }
            if !report.loss_decode_pareto_front.is_empty() {
                doc.paragraph(&format!(
                    "Pareto front of decode latency vs loss estimate on {} (no other candidate is both faster and lower in loss): {}.",
                    escape(&key.to_uppercase()),
                    report
                        .loss_decode_pareto_front
                        .iter()
                        .map(|r| format!("{} ({} ms, {:.4})", escape(&r.name), ms(r.decode_ms), r.loss_estimate.unwrap_or(f64::NAN)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }

    /// Each GPU's cost model and where its numbers come from; a pack that
    /// mixes measured and seed GPUs says so first.
    fn provenance_section(&self, doc: &mut Document) {
        doc.heading(2, "Where the numbers come from");
        let of = |key: &String| self.reports.get(key).map(|r| &r.environment.provenance);
        let kinds: Vec<(&String, &str)> = self
            .hardware_profiles
            .iter()
            .filter_map(|k| of(k).map(|p| (k, p.cost_model)))
            .collect();
        let measured: Vec<String> = kinds
            .iter()
            .filter(|(_, c)| *c == "measured")
            .map(|(k, _)| k.to_uppercase())
            .collect();
        let seed: Vec<String> = kinds
            .iter()
            .filter(|(_, c)| *c == "seed")
            .map(|(k, _)| k.to_uppercase())
            .collect();
        if !measured.is_empty() && !seed.is_empty() {
            doc.paragraph(&escape_prose(&format!(
                "This pack mixes cost models: {} on measured profiles, {} on the seed's hand-set constants. \
                 Latencies of the two kinds are not equally trustworthy: compare across them with care.",
                measured.join(", "),
                seed.join(", ")
            )));
        }
        let items: Vec<String> = self
            .hardware_profiles
            .iter()
            .filter_map(of)
            .map(|p| match (&p.precision, self.precisioned()) {
                (Some(x), true) => escape_prose(&format!("{}. Decode: {}. Precision: {x}.", p.summary(), p.decode)),
                _ => escape_prose(&format!("{}. Decode: {}.", p.summary(), p.decode)),
            })
            .collect();
        doc.list(&items);
        if self.precisioned() {
            doc.paragraph(
                "Precision: `fp8` weights are e4m3 with per-tensor scales and dynamic per-tensor quantization of every \
                 GEMM's activation (included in the projection and MLP times); `int4` weights are weight-only int4 \
                 with bf16 scales and zeros per group of 128; only the four attention projections and the MLP take \
                 the weight format (embeddings, norms and the LM head stay bf16); an `fp8 KV` cache stores one byte \
                 per value (estimated, not measured: no attention kernel on the measured GPU reads it fast).",
            );
        }
    }

    /// Whether some candidate is not bf16: the tables then carry a precision column.
    pub fn precisioned(&self) -> bool {
        self.candidate_catalog.iter().any(|c| !c.config.precision.is_bf16())
            || self.reports.values().any(|r| {
                r.generated_search
                    .total_ms_top
                    .iter()
                    .chain(&r.generated_search.pareto_front)
                    .any(|e| e.precision.is_some())
            })
    }

    /// `columns` with a `precision` column after the candidate's when the pack is precisioned.
    fn columns<'a>(&self, columns: &[(&'a str, Align)]) -> Vec<(&'a str, Align)> {
        let mut out = columns.to_vec();
        if self.precisioned() {
            let at = out.iter().position(|(c, _)| *c == "candidate").map_or(0, |i| i + 1);
            out.insert(at, ("precision", Align::Left));
        }
        out
    }

    /// `cells` with the precision label inserted after the candidate's (index `at`) when precisioned.
    fn cells(&self, mut cells: Vec<String>, at: usize, precision: Option<&str>) -> Vec<String> {
        if self.precisioned() {
            cells.insert(at + 1, escape(precision.unwrap_or("bf16")));
        }
        cells
    }

    /// True when every GPU of the pack runs on the seed's constants.
    fn all_seed(&self) -> bool {
        self.reports.values().all(|r| r.environment.cost_model == "seed")
    }

    /// The seed's own summary, byte for byte (for a pack on the seed's model).
    fn seed_summary(&self, doc: &mut Document) {
        doc.heading(1, "Kernel-Aware NAS Multi-Hardware Pack");
        doc.paragraph(if self.all_seed() {
            "This artifact is a deterministic latency proxy. It does not measure model quality, perplexity, or downstream accuracy."
        } else {
            "This artifact predicts latency with each GPU's cost model (see where the numbers come from, below). It does not measure model quality, perplexity, or downstream accuracy."
        });
        let status = serde_json::to_value(self.calibration.status).unwrap_or_default();
        doc.paragraph(&format!(
            "Candidate count: `{}`\nCalibration status: `{}`",
            self.candidate_count,
            status.as_str().unwrap_or("unknown")
        ));
        let mut t = Table::new(&[
            ("Hardware", Align::Left),
            ("unconstrained fastest", Align::Left),
            ("constrained fastest", Align::Left),
            ("constrained candidates", Align::Right),
        ]);
        for key in &self.hardware_profiles {
            let Some(s) = self.summary.get(key) else {
                continue;
            };
            t.row(vec![
                escape(&key.to_uppercase()),
                escape(s.fastest_config.as_deref().unwrap_or("none")),
                escape(s.quality_constrained_fastest_config.as_deref().unwrap_or("none")),
                s.quality_constrained_candidate_count.to_string(),
            ]);
        }
        doc.table(&t);
        doc.heading(2, "Constraints");
        if self.constraints.clauses.is_empty() {
            doc.list(&["None: every candidate passes."]);
        } else {
            let items: Vec<String> = self.constraints.clauses.iter().map(describe).collect();
            doc.list(&items);
        }
        doc.heading(2, "Limitations");
        let items: Vec<String> = self.limitations.iter().map(|l| escape_prose(l)).collect();
        doc.list(&items);
    }

    fn gpu_section(&self, doc: &mut Document, key: &str) {
        let Some(report) = self.reports.get(key) else {
            return;
        };
        let by_name: BTreeMap<&str, &Comparison> = report.comparison.iter().map(|c| (c.name.as_str(), c)).collect();
        let gpu = escape(&key.to_uppercase());
        doc.heading(2, &gpu);
        let s = &report.summary;
        let mut lines = vec![format!(
            "Cost model: `{}`. {} candidates, {} of them pass the constraints.",
            escape_code(&report.environment.cost_model),
            report.candidate_count,
            s.quality_constrained_candidate_count
        )];
        if let (Some(name), Some(t)) = (&s.fastest_config, s.fastest_total_ms) {
            lines.push(format!("Fastest: **{}** ({} ms).", escape(name), ms(t)));
        }
        if let (Some(name), Some(t)) = (
            &s.quality_constrained_fastest_config,
            s.quality_constrained_fastest_total_ms,
        ) {
            lines.push(format!(
                "Fastest under the constraints: **{}** ({} ms).",
                escape(name),
                ms(t)
            ));
        }
        if let (Some(name), Some(v)) = (&s.most_efficient_config, s.most_efficient_ms_per_mparam_proxy) {
            lines.push(format!(
                "Least time per million parameters (proxy): **{}** ({v:.6} ms/M).",
                escape(name)
            ));
        }
        doc.list(&lines);
        self.pareto_section(doc, key, &gpu);

        doc.heading(3, &format!("{gpu}: fastest candidates"));
        let mut t = Table::new(&self.columns(&[
            ("rank", Align::Right),
            ("candidate", Align::Left),
            ("source", Align::Left),
            ("total ms", Align::Right),
            ("bottleneck", Align::Left),
            ("param proxy (M)", Align::Right),
            ("quality proxy", Align::Right),
            ("passes constraints", Align::Left),
        ]));
        for e in report.rankings.total_ms.iter().take(TOP_ROWS) {
            let c = by_name.get(e.name.as_str());
            t.row(self.cells(
                vec![
                    e.rank.to_string(),
                    escape(&e.name),
                    escape(&e.source),
                    ms(e.total_ms),
                    escape(&e.bottleneck),
                    c.map_or_else(String::new, |c| format!("{:.1}", c.constraints.param_proxy_m)),
                    c.map_or_else(String::new, |c| format!("{:.3}", c.quality_proxy)),
                    match e.constraint_passes {
                        Some(true) => "yes".into(),
                        Some(false) => "no".into(),
                        None => String::new(),
                    },
                ],
                1,
                e.precision.as_deref(),
            ));
        }
        doc.table(&t);

        doc.heading(3, &format!("{gpu}: fastest under the constraints"));
        let constrained = &report.rankings.quality_constrained_latency;
        if constrained.is_empty() {
            doc.paragraph("No candidate passes the constraints.");
        } else {
            let mut t = Table::new(&self.columns(&[
                ("rank", Align::Right),
                ("candidate", Align::Left),
                ("source", Align::Left),
                ("total ms", Align::Right),
                ("bottleneck", Align::Left),
                ("param proxy (M)", Align::Right),
                ("quality proxy", Align::Right),
            ]));
            for e in constrained.iter().take(TOP_ROWS) {
                t.row(self.cells(
                    vec![
                        e.rank.to_string(),
                        escape(&e.name),
                        escape(&e.source),
                        ms(e.total_ms),
                        escape(&e.bottleneck),
                        format!("{:.1}", e.param_proxy_m),
                        format!("{:.3}", e.quality_proxy),
                    ],
                    1,
                    e.precision.as_deref(),
                ));
            }
            doc.table(&t);
        }

        let rows = self.breakdown_rows(key);
        if !rows.is_empty() {
            doc.heading(3, &format!("{gpu}: where the time goes"));
            doc.paragraph(&format!(
                "Per-kernel time (ms) of the {BREAKDOWN_EACH} fastest candidates and the {BREAKDOWN_EACH} fastest that pass the constraints."
            ));
            doc.chart(Chart::Breakdown { gpu: key.to_string() });
            let kernels = kernel_names(&rows);
            let mut columns: Vec<(&str, Align)> = vec![("candidate", Align::Left), ("total ms", Align::Right)];
            let escaped: Vec<String> = kernels.iter().map(|k| escape(k)).collect();
            columns.extend(escaped.iter().map(|k| (k.as_str(), Align::Right)));
            let mut t = Table::new(&self.columns(&columns));
            for c in &rows {
                let mut cells = vec![escape(&c.name), ms(c.total_ms)];
                cells.extend(kernels.iter().map(|k| ms(c.per_kernel.get(k).copied().unwrap_or(0.0))));
                let label = c.config.precision.label();
                t.row(self.cells(cells, 0, Some(&label)));
            }
            doc.table(&t);
        }

        let top = &report.generated_search.total_ms_top;
        if !top.is_empty() {
            doc.heading(3, &format!("{gpu}: generated search"));
            doc.paragraph(&format!(
                "The fastest of the {} valid candidates of the generated space (it is streamed, only its top is kept).",
                report.generated_candidate_count
            ));
            let mut t = Table::new(&self.columns(&[
                ("rank", Align::Right),
                ("candidate", Align::Left),
                ("total ms", Align::Right),
                ("ms per M param proxy", Align::Right),
                ("bottleneck", Align::Left),
            ]));
            for e in top.iter().take(TOP_ROWS) {
                t.row(self.cells(
                    vec![
                        e.rank.to_string(),
                        escape(&e.name),
                        ms(e.total_ms),
                        format!("{:.6}", e.ms_per_mparam_proxy),
                        escape(&e.bottleneck),
                    ],
                    1,
                    e.precision.as_deref(),
                ));
            }
            doc.table(&t);
        }
    }

    fn pareto_section(&self, doc: &mut Document, key: &str, gpu: &str) {
        doc.heading(3, &format!("{gpu}: Pareto front of latency vs quality"));
        doc.paragraph("Candidates that no other candidate beats on both latency and quality proxy, fastest first.");
        doc.chart(Chart::Pareto { gpu: key.to_string() });
        let front = self.pareto(key);
        let mut t = Table::new(&self.columns(&[
            ("#", Align::Right),
            ("candidate", Align::Left),
            ("total ms", Align::Right),
            ("quality proxy", Align::Right),
            ("passes constraints", Align::Left),
        ]));
        for (k, c) in front.iter().enumerate() {
            let label = c.config.precision.label();
            t.row(self.cells(
                vec![
                    (k + 1).to_string(),
                    escape(&c.name),
                    ms(c.total_ms),
                    format!("{:.3}", c.quality_proxy),
                    if c.constraints.passes { "yes" } else { "no" }.into(),
                ],
                1,
                Some(&label),
            ));
        }
        doc.table(&t);

        let Some(report) = self.reports.get(key) else {
            return;
        };
        let generated = &report.generated_search.pareto_front;
        if !generated.is_empty() {
            doc.heading(3, &format!("{gpu}: Pareto front of the generated space"));
            doc.paragraph(&format!(
                "The front over the {} valid candidates of the generated space (streamed, not held in memory; dashed orange in the chart above).",
                report.generated_candidate_count
            ));
            let mut t = Table::new(&self.columns(&[
                ("#", Align::Right),
                ("candidate", Align::Left),
                ("total ms", Align::Right),
                ("quality proxy", Align::Right),
                ("passes constraints", Align::Left),
                ("bottleneck", Align::Left),
            ]));
            for e in generated {
                t.row(self.cells(
                    vec![
                        e.rank.to_string(),
                        escape(&e.name),
                        ms(e.total_ms),
                        e.quality_proxy.map_or_else(String::new, |q| format!("{q:.3}")),
                        match e.constraint_passes {
                            Some(true) => "yes".into(),
                            Some(false) => "no".into(),
                            None => String::new(),
                        },
                        escape(&e.bottleneck),
                    ],
                    1,
                    e.precision.as_deref(),
                ));
            }
            doc.table(&t);
        }
    }

    /// Where each ranked whole model's decode step goes, per kernel, with the
    /// KV cache's share: what makes the ranking move with precision.
    fn decode_breakdown(&self, doc: &mut Document, key: &str, report: &crate::report::pack::WholeModelReport) {
        let rows: Vec<&crate::report::pack::WholeModelEntry> = report
            .constrained_ranking
            .iter()
            .take(TOP_ROWS)
            .filter_map(|r| report.candidates.iter().find(|c| c.name == r.name))
            .collect();
        if rows.is_empty() {
            return;
        }
        doc.paragraph(&format!(
            "Where {}'s decode step goes (ms per kernel, all layers; `KV share` = attention over the cache / the step).",
            escape(&key.to_uppercase())
        ));
        let kernels = crate::model::DECODE_KERNELS;
        let mut columns: Vec<(&str, Align)> = vec![("candidate", Align::Left), ("decode ms", Align::Right)];
        columns.extend(kernels.iter().map(|k| (*k, Align::Right)));
        columns.push(("KV share", Align::Right));
        let mut t = Table::new(&self.columns(&columns));
        for c in rows {
            let mut cells = vec![escape(&c.name), ms(c.decode.total_ms)];
            cells.extend(
                kernels
                    .iter()
                    .map(|k| ms(c.decode.per_kernel.get(k).copied().unwrap_or(0.0))),
            );
            let kv = c
                .decode
                .per_kernel
                .get("attention_over_context")
                .copied()
                .unwrap_or(0.0);
            cells.push(format!("{:.1}%", 100.0 * kv / c.decode.total_ms));
            t.row(self.cells(cells, 0, c.precision.as_deref()));
        }
        doc.table(&t);
    }

    fn cliff_section(&self, doc: &mut Document) {
        let Some(first) = self.hardware_profiles.first().and_then(|k| self.reports.get(k)) else {
            return;
        };
        if first.kernel_cliffs.is_empty() {
            return;
        }
        doc.heading(2, "Kernel cliffs");
        doc.paragraph(
            "One dimension swept around a base shape on every GPU: sizes that are not multiples of the 128-wide tiles waste work, and latency jumps.",
        );
        for (axis, sweep) in &first.kernel_cliffs {
            doc.heading(3, &format!("{} sweep", escape(axis)));
            let base: Vec<String> = sweep
                .base_config
                .iter()
                .map(|(k, v)| format!("{} {}", escape(k), escape(&v.to_string())))
                .collect();
            doc.paragraph(&format!("Base shape: {}.", base.join(", ")));
            doc.chart(Chart::Cliff { axis: axis.clone() });
            let gpus: Vec<(String, &super::CliffReport)> = self
                .hardware_profiles
                .iter()
                .filter_map(|k| {
                    let r = self.reports.get(k)?.kernel_cliffs.get(axis)?;
                    Some((format!("{} ms", escape(&k.to_uppercase())), r))
                })
                .collect();
            let axis_header = escape(axis);
            let mut columns: Vec<(&str, Align)> = vec![
                (axis_header.as_str(), Align::Right),
                ("aligned to 128", Align::Left),
                ("tile efficiency", Align::Right),
                ("wasted work %", Align::Right),
            ];
            columns.extend(gpus.iter().map(|(h, _)| (h.as_str(), Align::Right)));
            columns.push(("bottleneck", Align::Left));
            let mut t = Table::new(&columns);
            for (i, p) in sweep.values.iter().enumerate() {
                let mut cells = vec![
                    p.value.to_string(),
                    if p.aligned_128 { "yes" } else { "no" }.into(),
                    format!("{:.4}", p.tile_efficiency),
                    format!("{:.2}", p.wasted_work_pct),
                ];
                let mut bottlenecks: Vec<&str> = Vec::new();
                for (_, r) in &gpus {
                    match r.values.get(i) {
                        Some(q) => {
                            cells.push(ms(q.total_ms));
                            if !bottlenecks.contains(&q.bottleneck.as_str()) {
                                bottlenecks.push(&q.bottleneck);
                            }
                        }
                        None => cells.push(String::new()),
                    }
                }
                cells.push(bottlenecks.iter().map(|b| escape(b)).collect::<Vec<_>>().join(", "));
                t.row(cells);
            }
            doc.table(&t);
        }
    }

    /// The Pareto front of latency vs quality proxy on one GPU, fastest first.
    pub fn pareto(&self, key: &str) -> Vec<&Comparison> {
        let Some(report) = self.reports.get(key) else {
            return Vec::new();
        };
        let latency: Vec<f64> = report.comparison.iter().map(|c| c.total_ms).collect();
        let quality: Vec<f64> = report.comparison.iter().map(|c| c.quality_proxy).collect();
        pareto_front(&latency, &quality)
            .into_iter()
            .map(|i| &report.comparison[i])
            .collect()
    }

    /// The candidates of the per-kernel breakdown on one GPU: the fastest,
    /// then the fastest passing ones not already shown.
    pub fn breakdown_rows(&self, key: &str) -> Vec<&Comparison> {
        let Some(report) = self.reports.get(key) else {
            return Vec::new();
        };
        let by_name: BTreeMap<&str, &Comparison> = report.comparison.iter().map(|c| (c.name.as_str(), c)).collect();
        let mut names: Vec<&str> = report
            .rankings
            .total_ms
            .iter()
            .take(BREAKDOWN_EACH)
            .map(|e| e.name.as_str())
            .collect();
        for e in report.rankings.quality_constrained_latency.iter() {
            if names.len() >= 2 * BREAKDOWN_EACH {
                break;
            }
            if !names.contains(&e.name.as_str()) {
                names.push(&e.name);
            }
        }
        names.into_iter().filter_map(|n| by_name.get(n).copied()).collect()
    }
}

/// The kernels of some candidates, in the order of their first appearance.
pub fn kernel_names(rows: &[&Comparison]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in rows {
        for k in c.per_kernel.keys() {
            if !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// Prose keeps its punctuation; only what could start markup is escaped.
fn escape_prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '|' | '*' | '_' | '`' | '\\' | '[' | ']' | '<' | '>' | '#' | '&' | '~' | '!'
        ) {
            out.push('\\');
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Text for inside a code span: backticks cannot be escaped there, so they go.
fn escape_code(text: &str) -> String {
    text.chars()
        .map(|c| if c == '`' || c.is_control() { '\'' } else { c })
        .collect()
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
        other => format!("`{}`", escape_code(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

    /// The text of every table cell of `md`, row by row.
    fn cells(md: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut cell: Option<String> = None;
        for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
            match ev {
                Event::Start(Tag::TableHead) | Event::Start(Tag::TableRow) => rows.push(Vec::new()),
                Event::Start(Tag::TableCell) => cell = Some(String::new()),
                Event::End(TagEnd::TableCell) => {
                    if let (Some(c), Some(r)) = (cell.take(), rows.last_mut()) {
                        r.push(c);
                    }
                }
                Event::Text(t) | Event::Code(t) => {
                    if let Some(c) = cell.as_mut() {
                        c.push_str(&t);
                    }
                }
                Event::Start(Tag::Emphasis) | Event::Start(Tag::Strong) | Event::Start(Tag::Link { .. }) => {
                    if let Some(c) = cell.as_mut() {
                        c.push_str("<markup>");
                    }
                }
                Event::Html(h) | Event::InlineHtml(h) => {
                    if let Some(c) = cell.as_mut() {
                        c.push_str(&format!("<html {h}>"));
                    }
                }
                _ => {}
            }
        }
        rows
    }

    #[test]
    fn names_with_markdown_characters_read_back_as_themselves() {
        for name in [
            "a|b",
            "*star*",
            "_under_",
            "a-_b_-c",
            "x__y",
            "<b>bold</b>",
            "[link](http://x)",
            "back\\slash|",
            "&amp;",
            "`code`",
            "gen_h2048_hd128_gqa4_ffn4p0_w512",
        ] {
            let mut t = Table::new(&[("name", Align::Left), ("n", Align::Right)]);
            t.row(vec![escape(name), "1".into()]);
            let rows = cells(&t.render());
            assert_eq!(
                rows,
                vec![vec!["name".to_string(), "n".into()], vec![name.to_string(), "1".into()]]
            );
        }
        assert_eq!(escape("gen_h2048_hd128"), "gen_h2048_hd128", "seed names stay bare");
        assert_eq!(escape("a|b"), "a\\|b");
    }

    #[test]
    fn tables_keep_their_shape_and_alignment() {
        let mut t = Table::new(&[("a", Align::Left), ("b", Align::Right)]);
        t.row(vec!["1".into()]);
        t.row(vec!["1".into(), "2".into(), "3".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---:|\n| 1 |  |\n| 1 | 2 |\n");
    }

    #[test]
    fn documents_separate_blocks_and_keep_chart_slots() {
        let mut d = Document::new();
        d.heading(1, "T");
        d.chart(Chart::Cliff { axis: "x".into() });
        d.paragraph("p");
        assert_eq!(d.markdown(), "# T\n\np\n");
        assert_eq!(d.parts().len(), 3);
    }

    proptest! {
        #[test]
        fn any_printable_name_survives_a_table_cell(name in "[!-~][ -~]{0,20}[!-~]") {
            let mut t = Table::new(&[("name", Align::Left)]);
            t.row(vec![escape(&name)]);
            let rows = cells(&t.render());
            prop_assert_eq!(rows.len(), 2);
            prop_assert_eq!(&rows[1], &vec![name.clone()]);
        }
    }
}
