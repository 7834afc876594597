//! One table of cases run through both front ends: the `nas_search!` DSL
//! (through `engine::expand`, without compiling user code) and the JSON spec
//! of `nas search` (`JsonSearch::from_json` on text parsed by
//! `nas_core::input::parse_json`). Each case is written in both syntaxes
//! side by side; both must accept it, or both must refuse it with the same
//! message fragment (the rules live once, in nas-core's spec builder).

use nas_core::search::spec_json::JsonSearch;

/// The axes most cases share, and the name template.
const AXES_DSL: &str = r#"hidden_dim: [2048, 4096], head_dim: 128, ffn_ratio: 4.0, name: "s{hidden_dim}","#;
const AXES_JSON: &str = r#""axes": [{"axis": "hidden_dim", "values": [2048, 4096]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s{hidden_dim}""#;
const H100_DSL: &str = "hardware: [h100],";
const H100_JSON: &str = r#""hardware": ["h100"],"#;
const THROUGHPUTS_DSL: &str = "hbm_bandwidth_gbps: 1000.0, rmsnorm_gbps: 800.0, rmsnorm_gbps_small: 400.0, \
    qk_norm_rope_gbps: 500.0, qk_norm_rope_separate_gbps: 400.0, geglu_gbps: 700.0, matmul_tflops: 300.0, \
    matmul_tflops_small: 150.0, attention_tflops: 200.0, residual_add_gbps: 900.0";
const THROUGHPUTS_JSON: &str = r#""hbm_bandwidth_gbps": 1000.0, "rmsnorm_gbps": 800.0, "rmsnorm_gbps_small": 400.0,
    "qk_norm_rope_gbps": 500.0, "qk_norm_rope_separate_gbps": 400.0, "geglu_gbps": 700.0, "matmul_tflops": 300.0,
    "matmul_tflops_small": 150.0, "attention_tflops": 200.0, "residual_add_gbps": 900.0"#;

/// One case: (what, DSL head items, DSL space body, DSL tail items, `top`;
/// JSON top-level entries before `family`, JSON family body, JSON entries
/// after it; `None` to accept, else the fragment both must report).
struct Case {
    what: &'static str,
    dsl: [String; 4],
    json: [String; 3],
    refuse: Option<&'static str>,
}

fn case(
    what: &'static str,
    dsl: (&str, &str, &str, &str),
    json: (&str, &str, &str),
    refuse: Option<&'static str>,
) -> Case {
    Case {
        what,
        dsl: [dsl.0.into(), dsl.1.into(), dsl.2.into(), dsl.3.into()],
        json: [json.0.into(), json.1.into(), json.2.into()],
        refuse,
    }
}

fn cases() -> Vec<Case> {
    let own_gpu_dsl = format!("hardware: [h100, mine], cost_model: {{ mine: seed }}, gpu mine {{ {THROUGHPUTS_DSL} }}");
    let own_gpu_json = format!(r#""hardware": ["h100", {{"key": "mine", "cost_model": "seed", {THROUGHPUTS_JSON}}}],"#);
    let whole_dsl = r#"hidden_dim: [2048, 4096], head_dim: 128, ffn_ratio: 4.0, num_layers: 16, vocab_size: 32000, name: "s{hidden_dim}","#;
    let whole_json = r#""axes": [{"axis": "hidden_dim", "values": [2048, 4096]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0]}, {"axis": "num_layers", "values": [16]}, {"axis": "vocab_size", "values": [32000]}], "name": "s{hidden_dim}""#;
    let one = |axis: &str, value: &str| -> (String, String) {
        (
            format!(r#"{axis}: {value}, head_dim: 128, ffn_ratio: 4.0, name: "s{{hidden_dim}}","#),
            format!(
                r#""axes": [{{"axis": "{axis}", "values": [{value}]}}, {{"axis": "head_dim", "values": [128]}}, {{"axis": "ffn_ratio", "values": [4.0]}}], "name": "s{{hidden_dim}}""#
            ),
        )
    };
    let (zero_d, zero_j) = one("hidden_dim", "0");
    let (frac_d, frac_j) = one("hidden_dim", "2048.5");
    let (absurd_d, absurd_j) = one("hidden_dim", "4096000000");
    let (typo_d, typo_j) = one("hiden_dim", "2048");
    let (odd_d, odd_j) = one("hidden_dim", "1000");
    let c = |clause_dsl: &str, clause_json: &str| {
        (
            format!("constraints {{ {clause_dsl} }}"),
            format!(r#", "constraints": [{clause_json}]"#),
        )
    };
    let (ok_c_d, ok_c_j) = c(
        "hidden_dim >= 2048",
        r#"{"metric": "hidden_dim", "op": ">=", "value": 2048}"#,
    );
    let (contra_d, contra_j) = c(
        "hidden_dim >= 4096, hidden_dim <= 2048",
        r#"{"metric": "hidden_dim", "op": ">=", "value": 4096}, {"metric": "hidden_dim", "op": "<=", "value": 2048}"#,
    );
    let (empty_d, empty_j) = c(
        "ffn_ratio in 5.5..=3.75",
        r#"{"metric": "ffn_ratio", "in": [5.5, 3.75]}"#,
    );
    let (metric_d, metric_j) = c(
        "param_proxy >= 1.0",
        r#"{"metric": "param_proxy", "op": ">=", "value": 1.0}"#,
    );
    let (boolm_d, boolm_j) = c(
        "use_qk_norm >= 1.0",
        r#"{"metric": "use_qk_norm", "op": ">=", "value": 1.0}"#,
    );
    let (numb_d, numb_j) = c(
        "hidden_dim == true",
        r#"{"metric": "hidden_dim", "op": "==", "value": true}"#,
    );
    let (any_d, any_j) = c(
        "hidden_dim >= 4096 || qk_norm == false",
        r#"{"any": [{"metric": "hidden_dim", "op": ">=", "value": 4096}, {"metric": "qk_norm", "op": "==", "value": false}]}"#,
    );
    let (fits_a_d, fits_a_j) = c(
        "fits(a100, batch: 1, context: 1024)",
        r#"{"fits": {"gpu": "a100", "batch": 1, "context": 1024}}"#,
    );
    let (fits_ok_d, fits_ok_j) = c(
        "fits(h100, batch: 1, context: 1024)",
        r#"{"fits": {"gpu": "h100", "batch": 1, "context": 1024}}"#,
    );
    let (fits_mine_d, fits_mine_j) = c(
        "fits(mine, batch: 1, context: 1024)",
        r#"{"fits": {"gpu": "mine", "batch": 1, "context": 1024}}"#,
    );
    let (fits_zero_d, fits_zero_j) = c(
        "fits(h100, batch: 0, context: 1024)",
        r#"{"fits": {"gpu": "h100", "batch": 0, "context": 1024}}"#,
    );
    vec![
        case("a plain space", (H100_DSL, AXES_DSL, "", "5"), (H100_JSON, AXES_JSON, ""), None),
        case("a constraint", (H100_DSL, AXES_DSL, &ok_c_d, "5"), (H100_JSON, AXES_JSON, &ok_c_j), None),
        case("any of two clauses", (H100_DSL, AXES_DSL, &any_d, "5"), (H100_JSON, AXES_JSON, &any_j), None),
        case(
            "contradictory bounds",
            (H100_DSL, AXES_DSL, &contra_d, "5"),
            (H100_JSON, AXES_JSON, &contra_j),
            Some("contradictory bounds: no `hidden_dim` satisfies this and an earlier clause"),
        ),
        case(
            "an empty range",
            (H100_DSL, AXES_DSL, &empty_d, "5"),
            (H100_JSON, AXES_JSON, &empty_j),
            Some("the range `5.5..=3.75` of `ffn_ratio` is empty"),
        ),
        case(
            "an unknown metric",
            (H100_DSL, AXES_DSL, &metric_d, "5"),
            (H100_JSON, AXES_JSON, &metric_j),
            Some("unknown metric `param_proxy` (did you mean `param_proxy_m`?)"),
        ),
        case(
            "a boolean metric compared with a number",
            (H100_DSL, AXES_DSL, &boolm_d, "5"),
            (H100_JSON, AXES_JSON, &boolm_j),
            Some("`use_qk_norm` is a boolean, but it is compared with a number"),
        ),
        case(
            "a number metric compared with a boolean",
            (H100_DSL, AXES_DSL, &numb_d, "5"),
            (H100_JSON, AXES_JSON, &numb_j),
            Some("`hidden_dim` is an integer, but it is compared with a boolean"),
        ),
        case(
            "an unknown axis",
            (H100_DSL, &typo_d, "", "5"),
            (H100_JSON, &typo_j, ""),
            Some("unknown field `hiden_dim` (did you mean `hidden_dim`?)"),
        ),
        case(
            "an unknown GPU",
            ("hardware: [h1000],", AXES_DSL, "", "5"),
            (r#""hardware": ["h1000"],"#, AXES_JSON, ""),
            Some("unknown hardware `h1000` (did you mean `h100`?)"),
        ),
        case(
            "an unknown cost model",
            ("hardware: [h100], cost_model: guess,", AXES_DSL, "", "5"),
            (r#""hardware": ["h100"], "cost_model": "guess","#, AXES_JSON, ""),
            Some("unknown cost model `guess` (no known name is close); known: measured, seed"),
        ),
        case(
            "a GPU listed twice",
            ("hardware: [h100, h100],", AXES_DSL, "", "5"),
            (r#""hardware": ["h100", "h100"],"#, AXES_JSON, ""),
            Some("hardware `h100` is listed twice"),
        ),
        case(
            "a measured GPU without a profile",
            ("hardware: [a100],", AXES_DSL, "", "5"),
            (r#""hardware": ["a100"],"#, AXES_JSON, ""),
            Some("hardware `a100` has no measured profile"),
        ),
        case(
            "the seed model of a GPU the seed never had",
            ("hardware: [h200], cost_model: seed,", AXES_DSL, "", "5"),
            (r#""hardware": ["h200"], "cost_model": "seed","#, AXES_JSON, ""),
            Some("hardware `h200` has no seed constants"),
        ),
        case(
            "the seed model per GPU",
            ("hardware: [h100, a100], cost_model: { a100: seed },", AXES_DSL, "", "5"),
            (r#""hardware": ["h100", "a100"], "cost_model": {"a100": "seed"},"#, AXES_JSON, ""),
            None,
        ),
        case(
            "a cost model for an unlisted GPU",
            ("hardware: [h100], cost_model: { t4: seed },", AXES_DSL, "", "5"),
            (r#""hardware": ["h100"], "cost_model": {"t4": "seed"},"#, AXES_JSON, ""),
            Some("`cost_model` names `t4`, which is not listed in `hardware`"),
        ),
        case(
            "a declared GPU with every throughput",
            (&own_gpu_dsl, AXES_DSL, "", "5"),
            (&own_gpu_json, AXES_JSON, ""),
            None,
        ),
        case(
            "a declared GPU missing throughputs",
            ("hardware: [mine], cost_model: seed, gpu mine { matmul_tflops: 300.0 }", AXES_DSL, "", "5"),
            (r#""hardware": [{"key": "mine", "matmul_tflops": 300.0}], "cost_model": "seed","#, AXES_JSON, ""),
            Some("gpu `mine` is missing `hbm_bandwidth_gbps`"),
        ),
        case(
            "a declared GPU far too slow",
            ("hardware: [mine], cost_model: seed, gpu mine: h100 { attention_tflops: 1e-300 }", AXES_DSL, "", "5"),
            (r#""hardware": [{"key": "mine", "base": "h100", "attention_tflops": 1e-300}], "cost_model": "seed","#, AXES_JSON, ""),
            Some("hardware `mine`: `attention_tflops` = 1e-300 is absurdly small"),
        ),
        case(
            "a declared GPU named like a built-in one",
            ("hardware: [t4], cost_model: seed, gpu t4: h100 { matmul_tflops: 300.0 }", AXES_DSL, "", "5"),
            (r#""hardware": [{"key": "t4", "base": "h100", "matmul_tflops": 300.0}], "cost_model": "seed","#, AXES_JSON, ""),
            Some("`t4` is a built-in GPU; give yours another name"),
        ),
        case("fits on a target", (H100_DSL, whole_dsl, &fits_ok_d, "5"), (H100_JSON, whole_json, &fits_ok_j), None),
        case(
            "fits on a GPU that is not a target",
            (H100_DSL, whole_dsl, &fits_a_d, "5"),
            (H100_JSON, whole_json, &fits_a_j),
            Some("`fits` names `a100`, which is not a target of this search"),
        ),
        case(
            "fits on a GPU without memory",
            (&own_gpu_dsl, whole_dsl, &fits_mine_d, "5"),
            (&own_gpu_json, whole_json, &fits_mine_j),
            Some("gpu `mine` declares no memory"),
        ),
        case(
            "fits with batch 0",
            (H100_DSL, whole_dsl, &fits_zero_d, "5"),
            (H100_JSON, whole_json, &fits_zero_j),
            Some("`batch` must be at least 1, got 0"),
        ),
        case("a size of 0", (H100_DSL, &zero_d, "", "5"), (H100_JSON, &zero_j, ""), Some("`hidden_dim` must be at least 1, got 0")),
        case(
            "a fractional size",
            (H100_DSL, &frac_d, "", "5"),
            (H100_JSON, &frac_j, ""),
            Some("`hidden_dim` must be an integer, got 2048.5"),
        ),
        case(
            "an absurd size",
            (H100_DSL, &absurd_d, "", "5"),
            (H100_JSON, &absurd_j, ""),
            Some("`hidden_dim` = 4096000000 is absurdly large (the limit is 16777216)"),
        ),
        case(
            "an axis without values",
            (H100_DSL, r#"hidden_dim: [], head_dim: 128, ffn_ratio: 4.0, name: "s{hidden_dim}","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": []}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s{hidden_dim}""#, ""),
            Some("axis `hidden_dim` has no values"),
        ),
        case(
            "a family with no valid candidate",
            (H100_DSL, &odd_d, "", "5"),
            (H100_JSON, &odd_j, ""),
            Some("yields no valid candidate"),
        ),
        case(
            "kv heads that never divide heads",
            (H100_DSL, r#"hidden_dim: 2048, head_dim: 128, kv_heads: 3, ffn_ratio: 4.0, name: "s","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "kv_heads", "values": [3]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s""#, ""),
            Some("yields no valid candidate"),
        ),
        case(
            "a template that does not name a varying axis",
            (H100_DSL, r#"hidden_dim: [2048, 4096], head_dim: 128, ffn_ratio: 4.0, name: "s","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [2048, 4096]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s""#, ""),
            Some("does not name the axis `hidden_dim`"),
        ),
        case(
            "a template naming an unknown axis",
            (H100_DSL, r#"hidden_dim: 2048, head_dim: 128, ffn_ratio: 4.0, name: "s{hiden_dim}","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s{hiden_dim}""#, ""),
            Some("unknown axis `hiden_dim` (did you mean `hidden_dim`?)"),
        ),
        case("top_k 0", (H100_DSL, AXES_DSL, "", "0"), (H100_JSON, AXES_JSON, r#", "top_k": 0"#), Some("`top_k` must be at least 1, got 0")),
        case(
            "ffn rounding up",
            (H100_DSL, r#"hidden_dim: 2048, head_dim: 128, ffn_ratio: [4.0, 5.333] round_up_to 64, name: "s{ffn_ratio}","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [2048]}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0, 5.333], "round": "up", "multiple": 64}], "name": "s{ffn_ratio}""#, ""),
            None,
        ),
        case(
            "rounding on another axis",
            (H100_DSL, r#"hidden_dim: [2048] round_to 64, head_dim: 128, ffn_ratio: 4.0, name: "s","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [2048], "round": "up"}, {"axis": "head_dim", "values": [128]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s""#, ""),
            Some("rounding applies to `ffn_ratio` (`round_to M`) and `gqa_group` (`round_down`) only"),
        ),
        case(
            "a gqa group that divides none of the heads (6 heads in groups of 4): skipped, not rounded",
            (H100_DSL, r#"hidden_dim: 1536, head_dim: 256, gqa_group: 4, ffn_ratio: 4.0, name: "s{gqa_group}","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [1536]}, {"axis": "head_dim", "values": [256]}, {"axis": "gqa_group", "values": [4]}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s{gqa_group}""#, ""),
            Some("yields no valid candidate"),
        ),
        case(
            "the seed's gqa rounding, asked for",
            (H100_DSL, r#"hidden_dim: 1536, head_dim: 256, gqa_group: 4 round_down, ffn_ratio: 4.0, name: "s{gqa_group}","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [1536]}, {"axis": "head_dim", "values": [256]}, {"axis": "gqa_group", "values": [4], "round": "down"}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s{gqa_group}""#, ""),
            None,
        ),
        case(
            "a gqa group rounded to a multiple",
            (H100_DSL, r#"hidden_dim: 1536, head_dim: 256, gqa_group: 4 round_down_to 2, ffn_ratio: 4.0, name: "s{gqa_group}","#, "", "5"),
            (H100_JSON, r#""axes": [{"axis": "hidden_dim", "values": [1536]}, {"axis": "head_dim", "values": [256]}, {"axis": "gqa_group", "values": [4], "round": "down", "multiple": 2}, {"axis": "ffn_ratio", "values": [4.0]}], "name": "s{gqa_group}""#, ""),
            Some("`gqa_group` rounds only down, to no multiple"),
        ),
        case(
            "an unknown scaling law",
            ("hardware: [h100], workload { training_tokens: 1e12, scaling_law: \"kaplan\" }", AXES_DSL, "", "5"),
            (r#""hardware": ["h100"], "training": {"tokens": 1e12, "law": "kaplan"},"#, AXES_JSON, ""),
            Some(r#"expected "chinchilla" or "epoch", got "kaplan""#),
        ),
        case(
            "fractional training tokens",
            ("hardware: [h100], workload { training_tokens: 1.5 }", AXES_DSL, "", "5"),
            (r#""hardware": ["h100"], "training": {"tokens": 1.5},"#, AXES_JSON, ""),
            Some("expected a whole number of tokens from 1 to 1e16, got 1.5"),
        ),
        case(
            "an absurd sequence length",
            ("hardware: [h100], workload { seq_len: 4294967296 }", AXES_DSL, "", "5"),
            (r#""hardware": ["h100"], "workload": {"seq_len": 4294967296},"#, AXES_JSON, ""),
            Some("`seq_len` = 4294967296 is absurdly large"),
        ),
        case(
            "a workload and whole models",
            ("hardware: [h100], workload { seq_len: 1024, batch_size: 2, context_len: 4096, training_tokens: 2e12, scaling_law: \"epoch\" }", whole_dsl, "", "5"),
            (r#""hardware": ["h100"], "workload": {"seq_len": 1024, "batch_size": 2, "context_len": 4096}, "training": {"tokens": 2e12, "law": "epoch"},"#, whole_json, ""),
            None,
        ),
    ]
}

/// The DSL's result: Ok, or the messages of its `compile_error!`s.
fn run_dsl(c: &Case) -> Result<(), String> {
    let [head, axes, tail, top] = &c.dsl;
    let text = format!("search S {{ {head} space s top {top} {{ {axes} }} {tail} }}");
    let tokens: proc_macro2::TokenStream = text.parse().map_err(|e| format!("does not lex: {e}"))?;
    let out = crate::engine::expand(tokens).to_string();
    if out.contains("compile_error") {
        Err(out.replace("\\\"", "\""))
    } else {
        Ok(())
    }
}

fn run_json(c: &Case) -> Result<(), String> {
    let [head, family, tail] = &c.json;
    let text = format!(r#"{{ {head} "family": {{ {family} }} {tail} }}"#);
    let doc = nas_core::input::parse_json(text.as_bytes(), "s.json").map_err(|e| e.to_string())?;
    JsonSearch::from_json(&doc).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn both_front_ends_agree_on_every_case() {
    let cases = cases();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        for (front, got) in [("DSL", run_dsl(c)), ("JSON", run_json(c))] {
            match (c.refuse, got) {
                (None, Ok(())) => {}
                (Some(fragment), Err(e)) if e.contains(fragment) => {}
                (None, Err(e)) => failures.push(format!("{}: {front} refused it: {e}", c.what)),
                (Some(fragment), Ok(())) => {
                    failures.push(format!("{}: {front} accepted it (expected `{fragment}`)", c.what))
                }
                (Some(fragment), Err(e)) => failures.push(format!("{}: {front} said `{e}`, not `{fragment}`", c.what)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What only one syntax can say: JSON's duplicate keys (the DSL names a
/// field given twice itself), and a JSON `inclusive` or `round` of the wrong type.
#[test]
fn json_only_mistakes_are_refused() {
    for (text, fragment) in [
        (
            format!(r#"{{ {H100_JSON} "family": {{ {AXES_JSON} }}, "top_k": 3, "top_k": 4 }}"#),
            "top level: key `top_k` is given twice",
        ),
        (
            format!(
                r#"{{ {H100_JSON} "family": {{ {AXES_JSON} }}, "constraints": [{{"metric": "ffn_ratio", "in": [3, 5], "inclusive": "no"}}] }}"#
            ),
            "constraints[0].inclusive: `inclusive` must be `true` or `false`",
        ),
    ] {
        let got =
            nas_core::input::parse_json(text.as_bytes(), "s.json").and_then(|d| JsonSearch::from_json(&d).map(|_| ()));
        let e = got.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(fragment), "expected `{fragment}` in `{e}`");
    }
}
