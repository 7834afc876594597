//! The pack's charts as SVG, drawn with plotters (the fidelity report's
//! setup: SVG backend into a string, white card, sans-serif text). Charts
//! take plain numbers, so each can be drawn and tested on its own; the
//! output has no ids, no clock and no randomness: same numbers, same bytes.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::error::{Error, Result};

use super::markdown::kernel_names;
use super::Pack;

/// A chart of the pack, named by what it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chart {
    /// Latency vs quality proxy of every candidate on one GPU, front highlighted.
    Pareto { gpu: String },
    /// Stacked per-kernel time of the top candidates on one GPU.
    Breakdown { gpu: String },
    /// One cliff sweep on every GPU.
    Cliff { axis: String },
}

impl Chart {
    /// A caption in words (the figure's caption and accessible name).
    pub fn caption(&self) -> String {
        match self {
            Chart::Pareto { gpu } => format!(
                "{}: latency vs quality proxy of every candidate; their Pareto front in red, numbered as in the table; the generated space's front, if any, dashed orange",
                gpu.to_uppercase()
            ),
            Chart::Breakdown { gpu } => format!("{}: per-kernel time of the top candidates", gpu.to_uppercase()),
            Chart::Cliff { axis } => {
                format!("{axis} sweep: latency relative to the sweep's first point, per GPU; hollow = not a multiple of 128")
            }
        }
    }
}

/// Categorical colours (Tableau 10), readable on the white card in both themes.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];
const FRONT: RGBColor = RGBColor(200, 30, 40);
const OTHER: RGBColor = RGBColor(230, 120, 20);
const PASS: RGBColor = RGBColor(33, 102, 172);
const FAIL: RGBColor = RGBColor(150, 150, 150);
const FONT: &str = "sans-serif";

fn chart_error(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Spec(format!("drawing the {what} chart: {e}"))
}

/// `lo..hi` widened by `pad` of its span (or by 1 when it is a single value).
fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    let span = hi - lo;
    if !(span.is_finite()) || span <= 0.0 {
        let d = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - d, hi + d)
    } else {
        (lo - span * pad, hi + span * pad)
    }
}

fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// One candidate in a Pareto chart.
#[derive(Clone, Debug)]
pub struct ParetoPoint {
    pub name: String,
    pub total_ms: f64,
    pub quality: f64,
    pub passes: bool,
}

/// Latency (x) vs quality (y) of every point, both on log scales; the
/// `front` (indices, fastest first) is joined as a staircase, ringed and
/// numbered 1, 2, ... in its order (equal points share a label: `4,5`), as
/// the report's front table numbers them. `other_front` (fastest first), the
/// front of a larger space, is drawn beside it as a dashed orange staircase.
pub fn pareto_svg(title: &str, points: &[ParetoPoint], front: &[usize], other_front: &[ParetoPoint]) -> Result<String> {
    let err = chart_error("Pareto");
    let drawable =
        |p: &&ParetoPoint| p.total_ms > 0.0 && p.quality > 0.0 && p.total_ms.is_finite() && p.quality.is_finite();
    let all = || points.iter().chain(other_front).filter(drawable);
    let (x0, x1) = extent(all().map(|p| p.total_ms)).ok_or_else(|| err("no candidate".into()))?;
    let (y0, y1) = extent(all().map(|p| p.quality)).ok_or_else(|| err("no candidate".into()))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 * 0.85..x1 * 1.2).log_scale(), (y0 * 0.8..y1 * 1.3).log_scale())
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("predicted layer time (ms, log scale)")
            .y_desc("quality proxy (log scale)")
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let front_points: Vec<&ParetoPoint> = front.iter().filter_map(|&i| points.get(i)).filter(drawable).collect();
        let other: Vec<&ParetoPoint> = other_front.iter().filter(drawable).collect();
        if !other.is_empty() {
            chart
                .draw_series(DashedLineSeries::new(staircase(&other), 6, 4, OTHER.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label("generated space's Pareto front")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], OTHER.stroke_width(2)));
            chart
                .draw_series(
                    other
                        .iter()
                        .map(|p| TriangleMarker::new((p.total_ms, p.quality), 5, OTHER.filled())),
                )
                .map_err(|e| err(e.to_string()))?;
        }
        let stairs = staircase(&front_points);
        chart
            .draw_series(LineSeries::new(stairs, FRONT.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label("Pareto front (numbered as in the table)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], FRONT.stroke_width(2)));
        chart
            .draw_series(
                points
                    .iter()
                    .filter(drawable)
                    .filter(|p| !p.passes)
                    .map(|p| Circle::new((p.total_ms, p.quality), 4, FAIL.stroke_width(2))),
            )
            .map_err(|e| err(e.to_string()))?
            .label("fails the constraints")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, FAIL.stroke_width(2)));
        chart
            .draw_series(
                points
                    .iter()
                    .filter(drawable)
                    .filter(|p| p.passes)
                    .map(|p| Circle::new((p.total_ms, p.quality), 4, PASS.filled())),
            )
            .map_err(|e| err(e.to_string()))?
            .label("passes the constraints")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, PASS.filled()));
        // One ring and one label per distinct front point.
        let mut labels: Vec<((f64, f64), String)> = Vec::new();
        for (k, p) in front_points.iter().enumerate() {
            let at = (p.total_ms, p.quality);
            match labels.last_mut() {
                Some((last, text)) if *last == at => text.push_str(&format!(",{}", k + 1)),
                _ => labels.push((at, (k + 1).to_string())),
            }
        }
        chart
            .draw_series(labels.into_iter().map(|(at, text)| {
                EmptyElement::at(at)
                    + Circle::new((0, 0), 7, FRONT.stroke_width(2))
                    + Text::new(text, (-4, -22), (FONT, 12).into_font().color(&FRONT))
            }))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// A front as a staircase: from each point right to the next one's latency, then up.
fn staircase(front: &[&ParetoPoint]) -> Vec<(f64, f64)> {
    let mut stairs = Vec::new();
    for (k, p) in front.iter().enumerate() {
        stairs.push((p.total_ms, p.quality));
        if let Some(next) = front.get(k + 1) {
            stairs.push((next.total_ms, p.quality));
        }
    }
    stairs
}

/// A tick label with as many decimals as its size needs.
fn short(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One bar of a breakdown: a candidate's time per kernel.
#[derive(Clone, Debug)]
pub struct BreakdownBar {
    pub name: String,
    pub kernels: Vec<f64>,
}

/// Horizontal stacked bars, one per candidate (first on top), one colour per kernel.
pub fn breakdown_svg(title: &str, kernels: &[String], bars: &[BreakdownBar]) -> Result<String> {
    let err = chart_error("per-kernel breakdown");
    if bars.is_empty() || kernels.is_empty() {
        return Err(err("no candidate or no kernel".into()));
    }
    let xmax = bars
        .iter()
        .map(|b| b.kernels.iter().filter(|v| v.is_finite()).sum::<f64>())
        .fold(0.0f64, f64::max);
    let xmax = if xmax > 0.0 { xmax } else { 1.0 };
    let n = bars.len() as i32;
    let longest = bars.iter().map(|b| b.name.chars().count()).max().unwrap_or(0) as u32;
    let height = 120 + 30 * bars.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, height.max(260))).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        // Room on the right for the legend.
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size((longest * 7 + 16).clamp(60, 320))
            .build_cartesian_2d(0.0..xmax * 1.45, (0..n).into_segmented())
            .map_err(|e| err(e.to_string()))?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => bars
                .get((n - 1 - i) as usize)
                .map_or_else(String::new, |b| b.name.clone()),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len())
            .y_label_formatter(&label)
            .x_desc("predicted time (ms)")
            .light_line_style(BLACK.mix(0.06))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (k, kernel) in kernels.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let rects = bars.iter().enumerate().map(|(i, b)| {
                let start: f64 = b.kernels[..k.min(b.kernels.len())].iter().sum();
                let width = b.kernels.get(k).copied().unwrap_or(0.0);
                let row = n - 1 - i as i32;
                let mut r = Rectangle::new(
                    [
                        (start, SegmentValue::Exact(row)),
                        (start + width, SegmentValue::Exact(row + 1)),
                    ],
                    color.filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            });
            chart
                .draw_series(rects)
                .map_err(|e| err(e.to_string()))?
                .label(kernel.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// One GPU's line in a cliff chart.
#[derive(Clone, Debug)]
pub struct CliffLine {
    pub gpu: String,
    pub total_ms: Vec<f64>,
}

/// Latency relative to the first point along the swept values, one line per
/// GPU; points whose value is not a multiple of 128 are hollow.
pub fn cliff_svg(axis: &str, values: &[u64], aligned: &[bool], lines: &[CliffLine]) -> Result<String> {
    let err = chart_error("kernel-cliff");
    let (x0, x1) = extent(values.iter().map(|&v| v as f64)).ok_or_else(|| err("no sweep value".into()))?;
    let rel = |l: &CliffLine| -> Vec<f64> {
        let first = l.total_ms.first().copied().unwrap_or(1.0);
        l.total_ms.iter().map(|t| t / first).collect()
    };
    let rels: Vec<Vec<f64>> = lines.iter().map(rel).collect();
    let (y0, y1) = extent(rels.iter().flatten().copied()).ok_or_else(|| err("no latency".into()))?;
    let (x0, x1) = padded(x0, x1, 0.03);
    let (y0, y1) = padded(y0, y1, 0.08);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Kernel cliffs: {axis} sweep"), (FONT, 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(axis)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc(format!(
                "time / time at {axis} = {}",
                values.first().copied().unwrap_or(0)
            ))
            .light_line_style(BLACK.mix(0.06))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (g, (line, rel)) in lines.iter().zip(&rels).enumerate() {
            let color = PALETTE[g % PALETTE.len()];
            let pts: Vec<(f64, f64)> = values.iter().map(|&v| v as f64).zip(rel.iter().copied()).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(line.gpu.to_uppercase())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
            chart
                .draw_series(pts.iter().zip(aligned).map(|(&p, &a)| {
                    let style = if a { color.filled() } else { WHITE.filled() };
                    EmptyElement::at(p) + Circle::new((0, 0), 4, style) + Circle::new((0, 0), 4, color.stroke_width(2))
                }))
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

impl Pack {
    /// Draws one of the pack's charts as SVG.
    pub fn draw(&self, chart: &Chart) -> Result<String> {
        let missing = |what: String| Error::Spec(format!("no chart for {what}: the pack has no such report"));
        match chart {
            Chart::Pareto { gpu } => {
                let report = self.reports.get(gpu).ok_or_else(|| missing(format!("GPU `{gpu}`")))?;
                let points: Vec<ParetoPoint> = report
                    .comparison
                    .iter()
                    .map(|c| ParetoPoint {
                        name: c.name.clone(),
                        total_ms: c.total_ms,
                        quality: c.quality_proxy,
                        passes: c.constraints.passes,
                    })
                    .collect();
                let latency: Vec<f64> = points.iter().map(|p| p.total_ms).collect();
                let quality: Vec<f64> = points.iter().map(|p| p.quality).collect();
                let front = crate::search::pareto_front(&latency, &quality);
                let generated: Vec<ParetoPoint> = report
                    .generated_search
                    .pareto_front
                    .iter()
                    .filter_map(|e| {
                        Some(ParetoPoint {
                            name: e.name.clone(),
                            total_ms: e.total_ms,
                            quality: e.quality_proxy?,
                            passes: e.constraint_passes.unwrap_or(false),
                        })
                    })
                    .collect();
                pareto_svg(
                    &format!("{}: latency vs quality proxy", gpu.to_uppercase()),
                    &points,
                    &front,
                    &generated,
                )
            }
            Chart::Breakdown { gpu } => {
                let rows = self.breakdown_rows(gpu);
                let kernels = kernel_names(&rows);
                let bars: Vec<BreakdownBar> = rows
                    .iter()
                    .map(|c| BreakdownBar {
                        name: c.name.clone(),
                        kernels: kernels
                            .iter()
                            .map(|k| c.per_kernel.get(k).copied().unwrap_or(0.0))
                            .collect(),
                    })
                    .collect();
                breakdown_svg(&format!("{}: where the time goes", gpu.to_uppercase()), &kernels, &bars)
            }
            Chart::Cliff { axis } => {
                let mut values = Vec::new();
                let mut aligned = Vec::new();
                let mut lines = Vec::new();
                for key in &self.hardware_profiles {
                    let Some(sweep) = self.reports.get(key).and_then(|r| r.kernel_cliffs.get(axis)) else {
                        continue;
                    };
                    if values.is_empty() {
                        values = sweep.values.iter().map(|p| p.value).collect();
                        aligned = sweep.values.iter().map(|p| p.aligned_128).collect();
                    }
                    lines.push(CliffLine {
                        gpu: key.clone(),
                        total_ms: sweep.values.iter().map(|p| p.total_ms).collect(),
                    });
                }
                if lines.is_empty() {
                    return Err(missing(format!("the `{axis}` sweep")));
                }
                cliff_svg(axis, &values, &aligned, &lines)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well_formed(svg: &str) -> roxmltree::Document<'_> {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed: {e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc
    }

    fn texts(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_string())
            .collect()
    }

    #[test]
    fn pareto_chart_labels_the_front_and_escapes_names() {
        let points = vec![
            ParetoPoint {
                name: "fast<&>".into(),
                total_ms: 1.0,
                quality: 1.0,
                passes: true,
            },
            ParetoPoint {
                name: "slow_good".into(),
                total_ms: 2.0,
                quality: 3.0,
                passes: false,
            },
            ParetoPoint {
                name: "dominated".into(),
                total_ms: 3.0,
                quality: 2.0,
                passes: true,
            },
        ];
        let svg = pareto_svg("t", &points, &[0, 1], &[]).unwrap();
        let doc = well_formed(&svg);
        let t = texts(&doc);
        assert!(t.contains(&"1".to_string()) && t.contains(&"2".to_string()), "{t:?}");
        assert!(!t.contains(&"3".to_string()), "only the front is numbered: {t:?}");
        let red_rings = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle") && n.attribute("stroke") == Some("#C81E28"))
            .count();
        assert_eq!(red_rings, 2, "one ring per front point");
        let same = vec![points[0].clone(), points[0].clone()];
        let t = texts(&well_formed(&pareto_svg("t", &same, &[0, 1], &[]).unwrap()));
        assert!(t.contains(&"1,2".to_string()), "equal points share a label: {t:?}");
        let with_other = pareto_svg("t", &points, &[0, 1], &points[2..]).unwrap();
        let doc = well_formed(&with_other);
        assert!(texts(&doc).contains(&"generated space's Pareto front".to_string()));
        let orange = doc
            .descendants()
            .filter(|n| n.attribute("fill") == Some("#E67814") || n.attribute("stroke") == Some("#E67814"))
            .count();
        assert!(orange >= 2, "the other front is drawn: {orange}");
        assert_eq!(svg, pareto_svg("t", &points, &[0, 1], &[]).unwrap(), "deterministic");
        assert!(pareto_svg("t", &[], &[], &[]).is_err());
    }

    #[test]
    fn breakdown_chart_has_one_rectangle_per_bar_and_kernel() {
        let kernels = vec!["a".to_string(), "b".to_string()];
        let bars = vec![
            BreakdownBar {
                name: "x".into(),
                kernels: vec![1.0, 2.0],
            },
            BreakdownBar {
                name: "y".into(),
                kernels: vec![0.5, 0.5],
            },
        ];
        let svg = breakdown_svg("t", &kernels, &bars).unwrap();
        let doc = well_formed(&svg);
        let t = texts(&doc);
        for label in ["x", "y", "a", "b"] {
            assert!(t.contains(&label.to_string()), "{label} missing from {t:?}");
        }
        let colored = |c: RGBColor| {
            let hex = format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
            doc.descendants()
                .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(hex.as_str()))
                .count()
        };
        // two bars plus the legend's swatch, per kernel
        assert_eq!(colored(PALETTE[0]), 3);
        assert_eq!(colored(PALETTE[1]), 3);
        assert!(breakdown_svg("t", &kernels, &[]).is_err());
    }

    #[test]
    fn cliff_chart_is_well_formed_for_a_single_point() {
        let svg = cliff_svg(
            "hidden_dim",
            &[4096],
            &[true],
            &[CliffLine {
                gpu: "h100".into(),
                total_ms: vec![0.5],
            }],
        )
        .unwrap();
        let t = texts(&well_formed(&svg));
        assert!(t.contains(&"H100".to_string()), "{t:?}");
        assert!(cliff_svg("x", &[], &[], &[]).is_err());
    }
}
