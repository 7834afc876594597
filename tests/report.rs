//! The pack's Markdown and HTML, read back: the Markdown parsed with
//! pulldown-cmark (headings, table columns, row counts, cells against the
//! JSON), every SVG chart parsed as XML, the page checked self-contained.

use std::path::{Path, PathBuf};

use nas::calibrate::CalibrationBlock;
use nas::report::Pack;
use nas::search::{seed, SearchSpec};
use nas::shapes::{Candidate, LayerShape};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn seed_pack() -> Pack {
    let calibration = CalibrationBlock::load(&repo("calibration/seed/noeris-cost-model-training.json")).unwrap();
    seed::pack_spec(calibration).unwrap().evaluate().unwrap()
}

/// A Markdown document as a sequence of headings and tables.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Heading(usize, String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

fn outline(md: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut text: Option<String> = None;
    let mut level = 0;
    let mut table: Option<(Vec<String>, Vec<Vec<String>>)> = None;
    let mut in_head = false;
    for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::Heading { level: l, .. }) => {
                level = match l {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    _ => 4,
                };
                text = Some(String::new());
            }
            Event::End(TagEnd::Heading(_)) => blocks.push(Block::Heading(level, text.take().unwrap())),
            Event::Start(Tag::Table(_)) => table = Some((Vec::new(), Vec::new())),
            Event::End(TagEnd::Table) => {
                let (header, rows) = table.take().unwrap();
                blocks.push(Block::Table { header, rows });
            }
            Event::Start(Tag::TableHead) => in_head = true,
            Event::End(TagEnd::TableHead) => in_head = false,
            Event::Start(Tag::TableRow) => table.as_mut().unwrap().1.push(Vec::new()),
            Event::Start(Tag::TableCell) => text = Some(String::new()),
            Event::End(TagEnd::TableCell) => {
                let cell = text.take().unwrap();
                let t = table.as_mut().unwrap();
                if in_head {
                    t.0.push(cell);
                } else {
                    t.1.last_mut().unwrap().push(cell);
                }
            }
            Event::Text(s) | Event::Code(s) => {
                if let Some(t) = text.as_mut() {
                    t.push_str(&s);
                }
            }
            _ => {}
        }
    }
    blocks
}

/// The table right after the heading `title`.
fn table_after<'a>(blocks: &'a [Block], title: &str) -> (&'a [String], &'a [Vec<String>]) {
    let i = blocks
        .iter()
        .position(|b| matches!(b, Block::Heading(_, t) if t == title))
        .unwrap_or_else(|| panic!("no heading `{title}`"));
    match blocks[i + 1..].iter().find(|b| matches!(b, Block::Table { .. })) {
        Some(Block::Table { header, rows }) => (header, rows),
        _ => panic!("no table after `{title}`"),
    }
}

/// Pareto front by definition: no other point at most as slow and at least as good, better in one.
fn dominated(i: usize, t: &[f64], q: &[f64]) -> bool {
    (0..t.len()).any(|j| t[j] <= t[i] && q[j] >= q[i] && (t[j] < t[i] || q[j] > q[i]))
}

/// The generated space's front on H100 (no calibration override there),
/// from every candidate expanded and evaluated, not streamed.
fn generated_front_by_brute_force() -> Vec<String> {
    let spec = seed::pack_spec(CalibrationBlock::disabled()).unwrap();
    let g = spec.generated_search.as_ref().unwrap();
    let candidates = g.family.expand(g.workload).unwrap().candidates;
    let shapes: Vec<LayerShape> = candidates.iter().map(|c| c.shape).collect();
    let h100 = nas::hardware::seed_constants("h100").unwrap();
    let latency = nas::cost::LatencyMatrix::seed(&shapes, &[h100]);
    let t: Vec<f64> = (0..shapes.len()).map(|i| latency.total_ms(i, 0)).collect();
    let q: Vec<f64> = shapes
        .iter()
        .map(|s| spec.constraints.report(s).quality_proxy)
        .collect();
    let mut front: Vec<String> = (0..t.len())
        .filter(|&i| !dominated(i, &t, &q))
        .map(|i| candidates[i].name.to_string())
        .collect();
    front.sort();
    front
}

#[test]
fn seed_pack_markdown_has_the_expected_structure() {
    let pack = seed_pack();
    let md = pack.to_markdown();
    let blocks = outline(&md);
    let headings: Vec<(usize, String)> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading(l, t) => Some((*l, t.clone())),
            _ => None,
        })
        .collect();
    let mut expected = vec![
        (1, "Kernel-Aware NAS Multi-Hardware Pack".to_string()),
        (2, "Constraints".into()),
        (2, "Limitations".into()),
        (2, "Where the numbers come from".into()),
    ];
    for gpu in ["A100", "T4", "H100"] {
        expected.push((2, gpu.into()));
        for sub in [
            "Pareto front of latency vs quality",
            "Pareto front of the generated space",
            "fastest candidates",
            "fastest under the constraints",
            "where the time goes",
            "generated search",
        ] {
            expected.push((3, format!("{gpu}: {sub}")));
        }
    }
    expected.push((2, "Kernel cliffs".into()));
    expected.push((3, "ffn_dim sweep".into()));
    expected.push((3, "hidden_dim sweep".into()));
    assert_eq!(headings, expected);
    // Every GPU of the seed's pack says it runs on the seed's constants; nothing claims a mix.
    for gpu in ["a100", "t4", "h100"] {
        assert!(
            md.contains(&format!(
                "- {gpu}: seed (seed tool's hand-set constants (not measured))"
            )),
            "{gpu}"
        );
    }
    assert!(!md.contains("mixes cost models"));

    for key in ["a100", "t4", "h100"] {
        let gpu = key.to_uppercase();
        let report = &pack.reports[key];

        let (header, rows) = table_after(&blocks, &format!("{gpu}: fastest candidates"));
        assert_eq!(
            header,
            [
                "rank",
                "candidate",
                "source",
                "total ms",
                "bottleneck",
                "param proxy (M)",
                "quality proxy",
                "passes constraints"
            ]
        );
        assert_eq!(rows.len(), 10);
        for (row, entry) in rows.iter().zip(&report.rankings.total_ms) {
            assert_eq!(row[1], entry.name);
            assert_eq!(row[3], format!("{:.4}", entry.total_ms));
            assert_eq!(row[4], entry.bottleneck);
        }
        assert_eq!(rows[0][1], report.summary.fastest_config.clone().unwrap());

        let (header, rows) = table_after(&blocks, &format!("{gpu}: fastest under the constraints"));
        assert_eq!(header.len(), 7);
        assert_eq!(rows.len(), 10.min(report.rankings.quality_constrained_latency.len()));
        assert_eq!(
            rows[0][1],
            report.summary.quality_constrained_fastest_config.clone().unwrap()
        );

        let (header, rows) = table_after(&blocks, &format!("{gpu}: Pareto front of latency vs quality"));
        assert_eq!(
            header,
            ["#", "candidate", "total ms", "quality proxy", "passes constraints"]
        );
        let t: Vec<f64> = report.comparison.iter().map(|c| c.total_ms).collect();
        let q: Vec<f64> = report.comparison.iter().map(|c| c.quality_proxy).collect();
        let mut front: Vec<&str> = (0..t.len())
            .filter(|&i| !dominated(i, &t, &q))
            .map(|i| report.comparison[i].name.as_str())
            .collect();
        let numbers: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
        assert_eq!(numbers, (1..=rows.len()).map(|k| k.to_string()).collect::<Vec<_>>());
        let mut listed: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
        front.sort();
        listed.sort();
        assert!(front.len() >= 2, "a front worth drawing");
        assert_eq!(listed, front);

        let (header, rows) = table_after(&blocks, &format!("{gpu}: Pareto front of the generated space"));
        assert_eq!(header.len(), 6);
        assert!(rows.len() >= 2);
        if key == "h100" {
            let mut listed: Vec<String> = rows.iter().map(|r| r[1].clone()).collect();
            listed.sort();
            assert_eq!(listed, generated_front_by_brute_force());
        }

        let (header, rows) = table_after(&blocks, &format!("{gpu}: where the time goes"));
        let kernels = report.comparison[0].per_kernel.len();
        assert_eq!(header.len(), 2 + kernels);
        assert_eq!(rows.len(), 10, "5 fastest + 5 fastest passing (disjoint here)");
        for row in rows {
            let sum: f64 = row[2..].iter().map(|c| c.parse::<f64>().unwrap()).sum();
            let total: f64 = row[1].parse().unwrap();
            assert!((sum - total).abs() < 1e-3, "kernels add up to the total: {row:?}");
        }

        let (_, rows) = table_after(&blocks, &format!("{gpu}: generated search"));
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0][1], report.summary.fastest_generated_config.clone().unwrap());
    }

    for axis in ["ffn_dim", "hidden_dim"] {
        let (header, rows) = table_after(&blocks, &format!("{axis} sweep"));
        assert_eq!(
            header,
            [
                axis,
                "aligned to 128",
                "tile efficiency",
                "wasted work %",
                "A100 ms",
                "T4 ms",
                "H100 ms",
                "bottleneck"
            ]
        );
        let sweep = &pack.reports["h100"].kernel_cliffs[axis];
        assert_eq!(rows.len(), sweep.values.len());
        for (row, p) in rows.iter().zip(&sweep.values) {
            assert_eq!(row[0], p.value.to_string());
            assert_eq!(row[1], if p.aligned_128 { "yes" } else { "no" });
            assert_eq!(row[6], format!("{:.4}", p.total_ms));
        }
    }
}

fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("an <svg> is closed") + start + "</svg>".len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

#[test]
fn seed_pack_html_is_self_contained_with_well_formed_charts() {
    let pack = seed_pack();
    let html = pack.to_html().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>\n"));
    let charts = svgs(&html);
    assert_eq!(
        charts.len(),
        3 * 2 + 2,
        "Pareto and breakdown per GPU, one per cliff sweep"
    );
    for svg in &charts {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("SVG not well-formed: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(doc.descendants().filter(|n| n.has_tag_name("text")).count() > 5);
    }
    let tables = outline(&pack.to_markdown())
        .iter()
        .filter(|b| matches!(b, Block::Table { .. }))
        .count();
    assert_eq!(
        html.matches("<table>").count(),
        tables,
        "every Markdown table is in the page"
    );
    for banned in ["<script", "<link", "<img", "<iframe", "src=", "url(", "@import"] {
        assert!(
            !html.contains(banned),
            "the page must need nothing outside it: found `{banned}`"
        );
    }
    let outside = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !outside.contains("http:") && !outside.contains("https:"),
        "no URL in the page"
    );
    assert!(html.contains("@media (prefers-color-scheme: dark)"));
    assert_eq!(html, pack.to_html().unwrap(), "same pack, same bytes");
}

#[test]
fn names_with_markdown_characters_stay_themselves_in_tables_and_html() {
    let shape = |d: u64| LayerShape {
        hidden_dim: d,
        num_heads: 16,
        num_kv_heads: 4,
        head_dim: 128,
        ffn_dim: 4 * d,
        seq_len: 2048,
        batch_size: 1,
        use_qk_norm: true,
        window_size: None,
        model: nas::model::ModelDims::NONE,
        precision: nas::precision::Precision::BF16,
    };
    let names = ["a|b", "*star*", "_under_", "x<y>&z", "[l](u)"];
    let candidates: Vec<Candidate> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Candidate::new(n.to_string(), "odd|source", shape(2048 + 512 * i as u64)))
        .collect();
    let spec = SearchSpec {
        candidates,
        generated_search: None,
        cliffs: vec![],
        ..seed::pack_spec(CalibrationBlock::disabled()).unwrap()
    };
    let pack = spec.evaluate().unwrap();
    let blocks = outline(&pack.to_markdown());
    let (header, rows) = table_after(&blocks, "H100: fastest candidates");
    assert_eq!(header.len(), 8);
    assert_eq!(rows.len(), names.len());
    let mut listed: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    listed.sort();
    let mut expected = names.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(rows.iter().all(|r| r[2] == "odd|source"));
    assert!(!blocks
        .iter()
        .any(|b| matches!(b, Block::Heading(_, t) if t == "Kernel cliffs")));

    let html = pack.to_html().unwrap();
    assert!(html.contains("x&lt;y&gt;&amp;z"));
    assert!(!html.contains("<y>"));
    assert!(
        !html.contains("<em>") && !html.contains("<a href"),
        "no emphasis or link from names"
    );
    for svg in svgs(&html) {
        roxmltree::Document::parse(svg).unwrap();
    }
}

#[test]
fn pack_write_puts_three_files_beside_each_other() {
    let dir = std::env::temp_dir().join(format!("nas-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pack = seed_pack();
    pack.write(dir.join("p")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("p.md")).unwrap(), pack.to_markdown());
    assert_eq!(
        std::fs::read_to_string(dir.join("p.html")).unwrap(),
        pack.to_html().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("p.json")).unwrap(),
        pack.to_json().unwrap()
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3, "no temporary file left");
    let e = pack
        .write_into_existing_folder(dir.join("missing/p"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn committed_seed_pack_is_what_the_code_writes() {
    let prefix = "docs/results/kernel-aware-nas-multihardware";
    let pack = seed_pack();
    for (ext, ours) in [("md", pack.to_markdown()), ("html", pack.to_html().unwrap())] {
        let committed = std::fs::read_to_string(repo(&format!("{prefix}.{ext}"))).unwrap();
        assert!(
            committed == ours,
            "{prefix}.{ext} is not what the code writes: run `cargo run --release -p nas-examples --example seed_pack`"
        );
    }
}

#[test]
fn a_pack_mixing_cost_models_says_so_with_each_gpus_provenance() {
    use nas::gpu::{CostModelKind, GpuTarget, Registry};
    let mut spec = nas::search::seed::pack_spec(nas::calibrate::CalibrationBlock::disabled()).unwrap();
    let targets = [
        GpuTarget::builtin("h200"),
        GpuTarget::builtin("a100").with_cost_model(CostModelKind::Seed),
    ];
    spec.hardware = Registry::builtin().resolve_all(&targets).unwrap();
    spec.limitations = nas::search::limitations_for(&spec.hardware);
    let pack = spec.evaluate().unwrap();
    let md = pack.to_markdown();
    assert!(
        md.contains("This pack mixes cost models: H200 on measured profiles, A100 on the seed's hand-set constants.")
    );
    let h200 = &pack.reports["h200"].environment.provenance;
    let held_out = h200.validation.as_ref().unwrap();
    assert!(md.contains(&format!("held-out MAPE {:.2}%", held_out.mape_pct)), "{md}");
    assert!(md.contains("calibration/h200.json (built in)"));
    assert!(
        !md.contains("deterministic latency proxy"),
        "the seed's sentence is not claimed for measured GPUs"
    );
    let json: serde_json::Value = serde_json::from_str(&pack.to_json().unwrap()).unwrap();
    assert_eq!(json["reports"]["h200"]["environment"]["cost_model"], "measured");
    assert_eq!(json["reports"]["a100"]["environment"]["cost_model"], "seed");
    assert_eq!(
        json["reports"]["h200"]["environment"]["provenance"]["data_sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );
}
