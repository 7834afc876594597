//! Candidate shapes with mixture-of-experts, layer-pattern and
//! latent-attention fields (`nas::arch`): their whole-model figures come
//! from their stack, and equal what the same model gives read from its
//! Hugging Face config (whose counts equal transformers',
//! `tests/fixtures/hf-configs/transformers-counts.json`).

use std::path::Path;

use serde_json::{json, Value};

use nas::arch::{Architecture, LayerPattern};
use nas::gpu::{GpuTarget, Latencies, Registry};
use nas::model::{self, ModelDims};
use nas::shapes::LayerShape;
use nas::stack::{hf, latency, params, ModelStack, StackWorkload};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/hf-configs/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn transformers(name: &str) -> Value {
    fixture("transformers-counts")["models"][name].clone()
}

fn config_stack(name: &str) -> ModelStack {
    hf::from_config(&fixture(name), &format!("{name}.json")).unwrap().stack
}

fn gpu(key: &'static str) -> nas::gpu::Gpu {
    Registry::builtin().resolve(&GpuTarget::builtin(key)).unwrap()
}

fn shape(json: Value) -> LayerShape {
    let (_, s) = LayerShape::from_json(&json, "test").unwrap();
    s.validate().unwrap();
    s
}

/// Qwen3-30B-A3B written as a candidate shape.
fn qwen3_30b_a3b() -> LayerShape {
    shape(json!({
        "hidden_dim": 2048, "num_heads": 32, "num_kv_heads": 4, "head_dim": 128, "ffn_dim": 6144,
        "seq_len": 1024, "batch_size": 16, "use_qk_norm": true, "num_layers": 48, "vocab_size": 151936,
        "context_len": 4096, "tie_embeddings": false,
        "experts": 128, "top_k": 8, "expert_ffn_dim": 768
    }))
}

/// DeepSeek-V2-Lite written as a candidate shape: latent attention, one
/// dense first layer, 64 routed experts (6 a token) and 2 shared ones.
fn deepseek_v2_lite() -> LayerShape {
    shape(json!({
        "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 16, "head_dim": 128, "ffn_dim": 10944,
        "seq_len": 1024, "batch_size": 8, "use_qk_norm": false, "num_layers": 27, "vocab_size": 102400,
        "context_len": 4096,
        "experts": 64, "top_k": 6, "expert_ffn_dim": 1408, "shared_experts": 2, "first_dense_layers": 1,
        "kv_lora_rank": 512, "rope_head_dim": 64, "v_head_dim": 128
    }))
}

fn workload(s: &LayerShape) -> StackWorkload {
    StackWorkload {
        seq_len: s.seq_len,
        batch: s.batch_size,
        context: model::context_of(s),
    }
}

/// The shape and the config give one stack, up to the name it was read
/// from and the dense layers' activation (which no count or cost reads).
fn same_stack(ours: &ModelStack, theirs: &ModelStack) {
    assert_eq!(ours.layers, theirs.layers);
    assert_eq!(ours.kinds.len(), theirs.kinds.len());
    for (a, b) in ours.kinds.iter().zip(&theirs.kinds) {
        assert_eq!(a.attention, b.attention);
        assert_eq!(a.norms, b.norms);
        match (&a.mlp, &b.mlp) {
            (nas::stack::Mlp::Dense(x), nas::stack::Mlp::Dense(y)) => {
                assert_eq!((x.ffn, x.gated, x.bias), (y.ffn, y.gated, y.bias))
            }
            (x, y) => assert_eq!(x, y),
        }
    }
    assert_eq!(
        (ours.hidden, ours.vocab, ours.tie_embeddings),
        (theirs.hidden, theirs.vocab, theirs.tie_embeddings)
    );
}

#[test]
fn qwen3_30b_a3b_as_a_shape_counts_what_transformers_builds() {
    let s = qwen3_30b_a3b();
    let truth = transformers("qwen3-30b-a3b");
    let f = model::figures(&s).unwrap();
    assert_eq!(f.parameters.total, truth["params"].as_u64().unwrap());
    assert_eq!(f.parameters.total, 30_532_122_624);
    assert_eq!(f.parameters.active, truth["active_params"].as_u64());
    let stack = ModelStack::from_layer_shape(&s).unwrap();
    let config = config_stack("qwen3-30b-a3b");
    same_stack(&stack, &config);
    let counts = params::count(&config);
    assert_eq!(f.parameters.active, Some(counts.active));
    // All experts resident, bf16.
    assert_eq!(f.memory.weight_bytes, 2 * counts.total);
    // 48 layers x K and V of 4 heads of 128, bf16.
    assert_eq!(f.memory.kv_cache_bytes_per_token, 48 * 2 * 4 * 128 * 2);
    assert_eq!(
        model::kv_cache_bytes(&s, 16, 4096),
        Some(params::kv_cache(&config, 4096).bytes_per_sequence * 16)
    );
    // A mixture gets no loss estimate, even with training tokens.
    let trained = LayerShape {
        model: ModelDims {
            training_tokens: Some(36_000_000_000_000),
            ..s.model
        },
        ..s
    };
    assert_eq!(model::figures(&trained).unwrap().loss_estimate, None);
}

#[test]
fn a_stack_candidate_is_timed_as_its_config_on_every_gpu() {
    for (s, name) in [
        (qwen3_30b_a3b(), "qwen3-30b-a3b"),
        (deepseek_v2_lite(), "deepseek-v2-lite"),
    ] {
        let config = config_stack(name);
        for key in ["h100", "h200"] {
            let g = gpu(key);
            let step = g.step_throughputs().unwrap();
            let (prefill, decode) = model::steps_on(&s, &g, &step, 123.0).unwrap().unwrap();
            let t = latency::predict(&config, &g, &workload(&s)).unwrap();
            assert_eq!(prefill.total_ms, t.prefill_ms, "{name} on {key}");
            assert_eq!(decode.total_ms, t.decode_ms, "{name} on {key}");
            assert_eq!(decode.per_kernel.len(), t.decode_per_kernel.len());
            for (k, ms) in &t.decode_per_kernel {
                assert_eq!(decode.per_kernel[k.as_str()], *ms, "{name} {k} on {key}");
            }
            // The layer's own time (123 ms above) does not enter a stack's steps.
            let other = model::steps_on(&s, &g, &step, 1.0).unwrap().unwrap();
            assert_eq!(other.0.total_ms, prefill.total_ms);
            // What constraints and rankings read.
            let l = model::step_latency_on(&s, &g, &step, 0.0).unwrap();
            assert_eq!((l.prefill_ms, l.decode_ms), (prefill.total_ms, decode.total_ms));
            assert_eq!(l.decode_tokens_per_s, s.batch_size as f64 / (decode.total_ms / 1e3));
            // The dense formulas refuse a stack candidate rather than price it as dense.
            assert!(model::decode(&s, &step, s.batch_size, 4096).is_none());
            assert!(model::prefill(&s, &step, 1.0).is_none());
        }
    }
}

#[test]
fn deepseek_v2_lite_as_a_shape_counts_what_transformers_builds() {
    let s = deepseek_v2_lite();
    let truth = transformers("deepseek-v2-lite");
    let f = model::figures(&s).unwrap();
    assert_eq!(f.parameters.total, truth["params"].as_u64().unwrap());
    assert_eq!(f.parameters.active, truth["active_params"].as_u64());
    same_stack(
        &ModelStack::from_layer_shape(&s).unwrap(),
        &config_stack("deepseek-v2-lite"),
    );
    // Latent attention caches kv_lora_rank + rope_head_dim values per token and layer.
    assert_eq!(f.memory.kv_cache_bytes_per_token, 27 * (512 + 64) * 2);
    assert_eq!(model::kv_cache_bytes(&s, 3, 1000), Some(3 * 1000 * 27 * (512 + 64) * 2));
}

#[test]
fn a_layer_pattern_caps_only_its_sliding_layers() {
    let dense = json!({
        "hidden_dim": 2048, "num_heads": 8, "num_kv_heads": 2, "head_dim": 256, "ffn_dim": 8192,
        "seq_len": 2048, "batch_size": 4, "num_layers": 26, "vocab_size": 262144, "window_size": 512,
        "context_len": 8192, "training_tokens": 2000000000000u64
    });
    let mut patterned = dense.clone();
    patterned["layer_pattern"] = json!("5:1");
    let (uniform, s) = (shape(dense), shape(patterned));
    assert_eq!(s.arch.layer_pattern, Some(LayerPattern { sliding: 5, full: 1 }));
    // 26 layers of 5:1: layers 5, 11, 17, 23 are full, the other 22 sliding.
    let per_token_layer = 2 * 2 * 256 * 2;
    let expected = 4 * per_token_layer * (22 * 512 + 4 * 8192);
    assert_eq!(model::kv_cache_bytes(&s, 4, 8192), Some(expected));
    assert_eq!(
        model::kv_cache_bytes(&uniform, 4, 8192),
        Some(4 * per_token_layer * 26 * 512)
    );
    // Same weights: a pattern moves windows, not parameters; dense, so it keeps a loss estimate.
    let (fs, fu) = (model::figures(&s).unwrap(), model::figures(&uniform).unwrap());
    assert_eq!(fs.parameters.total, fu.parameters.total);
    assert_eq!(fs.parameters.active, None);
    assert_eq!(fs.memory.weight_bytes, fu.memory.weight_bytes);
    assert_eq!(fs.loss_estimate, fu.loss_estimate);
    assert!(fs.loss_estimate.is_some());
    // Its full layers read the whole context: decode is slower than the uniform window's.
    let g = gpu("h200");
    let step = g.step_throughputs().unwrap();
    let d = |x: &LayerShape| model::step_latency_on(x, &g, &step, 1.0).unwrap().decode_ms;
    assert!(d(&s) > d(&uniform), "{} vs {}", d(&s), d(&uniform));
    // 1:1 alternates from a sliding first layer.
    let stack = ModelStack::from_layer_shape(&LayerShape {
        arch: Architecture {
            layer_pattern: Some(LayerPattern { sliding: 1, full: 1 }),
            ..Architecture::NONE
        },
        ..s
    })
    .unwrap();
    let windows: Vec<Option<u64>> = stack
        .layers
        .iter()
        .map(|&k| stack.kinds[k].attention.window())
        .collect();
    assert_eq!(&windows[..4], &[Some(512), None, Some(512), None]);
}

#[test]
fn a_stack_candidates_layer_is_its_dense_stand_in() {
    let s = qwen3_30b_a3b();
    let view = s.layer_view();
    assert!(!view.arch.is_set());
    // The width one token passes through.
    assert_eq!(view.ffn_dim, 8 * 768);
    for key in ["h100", "h200"] {
        let g = gpu(key);
        let both = Latencies::new(std::slice::from_ref(&g), &[s, view]);
        assert_eq!(both.total_ms(0, 0), both.total_ms(1, 0));
    }
    let lite = deepseek_v2_lite().layer_view();
    assert_eq!(
        (lite.head_dim, lite.num_kv_heads, lite.window_size),
        (128 + 64, 16, None)
    );
    assert_eq!(lite.ffn_dim, 6 * 1408 + 2 * 1408);
}

#[test]
fn a_shape_round_trips_through_json_with_its_arch_fields() {
    let s = deepseek_v2_lite();
    let text = serde_json::to_value(s).unwrap();
    assert_eq!(text["kv_lora_rank"], 512);
    assert_eq!(text["first_dense_layers"], 1);
    assert!(text.get("q_lora_rank").is_none());
    let (_, back) = LayerShape::from_json(&text, "again").unwrap();
    assert_eq!(back, s);
    // A dense shape writes no arch key at all.
    let dense = LayerShape {
        arch: Architecture::NONE,
        ..qwen3_30b_a3b()
    };
    let keys = serde_json::to_value(dense).unwrap();
    for key in nas::arch::ARCH_KEYS {
        assert!(keys.get(key).is_none(), "{key}");
    }
}

#[test]
fn tensor_parallelism_refuses_a_stack_candidate_by_name() {
    let e = nas::parallel::shard(&qwen3_30b_a3b(), 2).unwrap_err();
    assert_eq!(e.key, "experts");
    assert!(e.message.contains("--configs"), "{}", e.message);
    assert!(nas::parallel::shard(&qwen3_30b_a3b(), 1).is_ok());
}

/// Every rule of `Architecture::check`, with the key it points at.
#[test]
fn the_rules_of_mixtures_patterns_and_latent_attention() {
    let base = json!({
        "hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 16, "head_dim": 128, "ffn_dim": 8192,
        "seq_len": 1024, "batch_size": 1, "use_qk_norm": false, "window_size": null,
        "num_layers": 24, "vocab_size": 32000
    });
    let with = |extra: Value| {
        let mut v = base.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let problem = |extra: Value| {
        // serde's reader checks nothing: the rules are `validate`'s (which `from_json` also runs).
        let s: LayerShape = serde_json::from_value(with(extra.clone())).unwrap();
        let p = s.validate().expect_err(&extra.to_string());
        let e = LayerShape::from_json(&with(extra.clone()), "t").unwrap_err();
        assert!(e.to_string().contains(&p.message), "{e}");
        (p.key, p.message)
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"experts": 8, "top_k": 0}), "top_k", "at least 1"),
        (json!({"experts": 1, "top_k": 1}), "experts", "at least 2 experts"),
        (json!({"experts": 8, "top_k": 9}), "top_k", "above `experts` = 8"),
        (json!({"experts": 8}), "experts", "needs `top_k`"),
        (json!({"top_k": 2}), "top_k", "needs `experts`"),
        (
            json!({"experts": 8, "top_k": 2, "shared_expert_ffn_dim": 512}),
            "shared_expert_ffn_dim",
            "needs `shared_experts`",
        ),
        (
            json!({"experts": 8, "top_k": 2, "first_dense_layers": 24}),
            "first_dense_layers",
            "below `num_layers`",
        ),
        (json!({"experts": 100000, "top_k": 2}), "experts", "absurdly large"),
        (json!({"layer_pattern": "5:1"}), "layer_pattern", "needs a `window`"),
        (
            json!({"kv_lora_rank": 512, "window_size": 1024}),
            "window_size",
            "takes no window",
        ),
        (
            json!({"kv_lora_rank": 512, "window_size": 1024, "layer_pattern": "1:1"}),
            "window_size",
            "takes no window",
        ),
        (json!({"kv_lora_rank": 2048}), "kv_lora_rank", "compresses nothing"),
        (
            json!({"kv_lora_rank": 512, "q_lora_rank": 4096}),
            "q_lora_rank",
            "compresses nothing",
        ),
        (
            json!({"kv_lora_rank": 512, "num_kv_heads": 4}),
            "num_kv_heads",
            "must equal `heads`",
        ),
        (
            json!({"kv_lora_rank": 512, "use_qk_norm": true}),
            "use_qk_norm",
            "no QK-norm",
        ),
        (json!({"rope_head_dim": 64}), "rope_head_dim", "needs `kv_lora_rank`"),
        (
            json!({"experts": 8, "top_k": 2, "weights": "fp8"}),
            "weights",
            "leave `weights` at bf16",
        ),
    ];
    for (extra, key, fragment) in cases {
        let (k, message) = problem(extra.clone());
        assert_eq!(k, Some(key), "{extra}: {message}");
        assert!(message.contains(fragment), "{extra}: {message}");
    }
    // A stack needs a whole model.
    let layer: LayerShape = serde_json::from_value(
        json!({"hidden_dim": 2048, "num_heads": 16, "num_kv_heads": 16, "head_dim": 128, "ffn_dim": 8192,
                "seq_len": 1024, "batch_size": 1, "use_qk_norm": false, "window_size": null,
                "experts": 8, "top_k": 2}),
    )
    .unwrap();
    let p = layer.validate().unwrap_err();
    assert_eq!(p.key, Some("experts"));
    assert!(
        p.message.contains("needs `num_layers` and `vocab_size`"),
        "{}",
        p.message
    );
    // Patterns: text in, text out; nonsense refused where it is read.
    for bad in ["5-1", "0:0", "0:1", "5:0", "a:b", ""] {
        let e = LayerShape::from_json(&with(json!({"layer_pattern": bad, "window_size": 512})), "t").unwrap_err();
        assert!(e.to_string().contains("layer_pattern"), "{bad}: {e}");
    }
    let e = LayerShape::from_json(&with(json!({"layer_pattern": 5})), "t").unwrap_err();
    assert!(e.to_string().contains("must be a string"), "{e}");
}

#[allow(dead_code)]
mod moe_search {
    include!("../examples/moe_search.rs");
}

/// The committed pack of examples/moe_search.rs is what the code writes
/// (regenerate: `cargo run --release -p nas-examples --example moe_search`),
/// and it says what its figures are.
#[test]
fn the_committed_moe_search_pack_is_what_the_example_writes() {
    let pack = moe_search::MoeSearch::evaluate().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |ext: &str| std::fs::read_to_string(root.join(format!("docs/results/moe-search.{ext}"))).unwrap();
    assert!(
        pack.to_json().unwrap() == read("json") && pack.to_markdown() == read("md"),
        "docs/results/moe-search.* is not what the code writes: run the example"
    );
    let base = pack.candidate_catalog[0].model.unwrap();
    let config = params::count(&config_stack("qwen3-30b-a3b"));
    assert_eq!(
        (base.parameters.total, base.parameters.active),
        (config.total, Some(config.active))
    );
    let md = read("md");
    assert!(md.contains("no loss is estimated"));
    assert!(md.contains("MoE model fitted on"), "where the experts' times come from");
    assert!(
        !md.contains("Llama-style decoder"),
        "no dense formula is claimed for stacks"
    );
    // Ranked by decode under the H200's memory: what does not fit is out.
    let h200 = pack.reports["h200"].whole_model.as_ref().unwrap();
    assert_eq!(h200.rank_by, "decode_ms");
    assert!(h200
        .constrained_ranking
        .windows(2)
        .all(|w| w[0].decode_ms <= w[1].decode_ms));
    assert!(h200.constrained_ranking.iter().all(|r| r.fits_memory == Some(true)));
    assert!(h200.constrained_ranking.len() < h200.decode_ms_ranking.len());
}

/// Every fixture config the DSL can say whole with mixture, pattern or
/// latent fields (`nas import` prints it so) gives, as a shape, its config's
/// stack: the same counts, cache and decode step.
#[test]
fn configs_said_whole_as_shapes_are_their_configs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-configs");
    let mut said = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("transformers-counts.json"))
        .collect();
    files.sort();
    let g = gpu("h200");
    let step = g.step_throughputs().unwrap();
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let stack = config_stack(&name);
        let Some(s) = nas::stack::candidate::candidate_shape(&stack, 512) else {
            continue;
        };
        let f = model::figures(&s).unwrap();
        let truth = transformers(&name);
        assert_eq!(f.parameters.total, truth["params"].as_u64().unwrap(), "{name}");
        if s.arch.experts.is_some() {
            assert_eq!(f.parameters.active, truth["active_params"].as_u64(), "{name}");
        }
        assert_eq!(
            model::kv_cache_bytes(&s, 1, 4096),
            Some(params::kv_cache(&stack, 4096).bytes_per_sequence),
            "{name}"
        );
        let w = StackWorkload {
            seq_len: 512,
            batch: 1,
            context: 512,
        };
        // A dense uniform shape keeps today's step formulas (no final norm:
        // `hf_configs::a_layer_shape_through_the_stack_gives_todays_figures_exactly`).
        if s.arch.is_set() {
            let t = latency::predict(&stack, &g, &w).unwrap();
            let l = model::step_latency_on(&s, &g, &step, 0.0).unwrap();
            assert_eq!((l.prefill_ms, l.decode_ms), (t.prefill_ms, t.decode_ms), "{name}");
            said.push(name);
        }
    }
    // The mixtures and latent attention of the fixtures the DSL now says whole.
    for name in [
        "deepseek-v2-lite",
        "deepseek-v3",
        "mixtral-8x7b-v0.1",
        "qwen3-235b-a22b",
        "qwen3-30b-a3b",
    ] {
        assert!(said.iter().any(|s| s == name), "{name} is not said whole: {said:?}");
    }
    // Sinks, biases, extra norms: not said, rather than said wrong.
    for name in ["gpt-oss-20b", "gemma-2-9b", "gemma-3-1b", "gpt2"] {
        assert!(
            nas::stack::candidate::candidate_shape(&config_stack(name), 512).is_none(),
            "{name}"
        );
    }
}
