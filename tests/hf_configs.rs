//! Hugging Face configs read into stacks: every fixture's parameter count
//! (and active count for mixtures) equals what transformers builds
//! (`tests/fixtures/hf-configs/transformers-counts.json`, measured by
//! building each config on the meta device; see the README there), KV-cache
//! bytes per kind, today's shapes through the stack, and hostile configs.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use nas::gpu::{GpuTarget, Latencies, Registry};
use nas::model::{self, ModelDims};
use nas::shapes::LayerShape;
use nas::stack::hf;
use nas::stack::{latency, params, Attention, Mlp, ModelStack, StackWorkload};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-configs")
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn truth() -> Value {
    read(&fixtures().join("transformers-counts.json"))
}

/// (name, config) of every fixture config, the default-only ones named `defaults__<model_type>`.
fn configs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (dir, prefix) in [(fixtures(), ""), (fixtures().join("defaults"), "defaults__")] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("transformers-counts.json"))
            .collect();
        files.sort();
        for f in files {
            let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((format!("{prefix}{stem}"), read(&f)));
        }
    }
    out
}

fn import(name: &str, config: &Value) -> nas::Result<hf::Imported> {
    hf::from_config(config, &format!("{name}.json"))
}

#[test]
fn every_fixture_counts_exactly_what_transformers_builds() {
    let truth = truth();
    let models = truth["models"].as_object().unwrap();
    let mut checked = 0;
    for (name, config) in configs() {
        let Some(expected) = models.get(&name) else {
            panic!("{name} has no count in transformers-counts.json");
        };
        let imported = match import(&name, &config) {
            Ok(i) => i,
            // DeepSeek-V2's default top-k is None: a model that routes nothing.
            Err(e) if name == "defaults__deepseek_v2" => {
                assert!(e.to_string().contains("num_experts_per_tok: missing"), "{e}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let p = params::count(&imported.stack);
        assert_eq!(
            p.total,
            expected["params"].as_u64().unwrap(),
            "{name}: total parameters"
        );
        match expected.get("active_params") {
            Some(active) => {
                assert!(imported.stack.is_moe(), "{name} is a mixture in transformers");
                assert_eq!(p.active, active.as_u64().unwrap(), "{name}: active parameters");
            }
            None => {
                assert!(!imported.stack.is_moe(), "{name} is dense in transformers");
                assert_eq!(p.active, p.total, "{name}");
            }
        }
        checked += 1;
    }
    // 29 published configs and 13 default-only ones.
    assert_eq!(checked, 42);
}

#[test]
fn published_counts_quoted_by_the_issue() {
    let published = [
        ("qwen2.5-7b", 7_615_616_512u64),
        ("gemma-2-9b", 9_241_705_984),
        ("mixtral-8x7b-v0.1", 46_702_792_704),
        ("gpt2", 124_439_808),
        ("llama-3.1-8b", 8_030_261_248),
        ("mistral-7b-v0.1", 7_241_732_096),
        ("qwen3-8b", 8_190_735_360),
        ("qwen3-30b-a3b", 30_532_122_624),
        ("gemma-3-1b", 999_885_952),
        ("phi-3-mini-4k-instruct", 3_821_079_552),
        ("deepseek-v2-lite", 15_706_484_224),
        ("gpt-oss-20b", 20_914_757_184),
        ("olmo-2-1124-7b", 7_298_617_344),
        ("qwen2.5-0.5b", 494_032_768),
        ("llama-3.2-1b", 1_235_814_400),
    ];
    for (name, count) in published {
        let config = read(&fixtures().join(format!("{name}.json")));
        let stack = import(name, &config).unwrap().stack;
        assert_eq!(params::count(&stack).total, count, "{name}");
    }
}

fn fixture(name: &str) -> ModelStack {
    let config = read(&fixtures().join(format!("{name}.json")));
    import(name, &config).unwrap().stack
}

/// `base` with `changes` (null removes a key), read as a config.
fn changed(base: &Value, changes: Value) -> nas::Result<hf::Imported> {
    let mut v = base.clone();
    for (k, x) in changes.as_object().unwrap() {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    import("c", &v)
}

/// Per layer: whether it slides (its window) and whether its MLP is a mixture.
fn pattern(stack: &ModelStack) -> Vec<(Option<u64>, bool)> {
    stack
        .layers
        .iter()
        .map(|&k| {
            let kind = &stack.kinds[k];
            (kind.attention.window(), matches!(kind.mlp, Mlp::Moe(_)))
        })
        .collect()
}

#[test]
fn kv_cache_of_sliding_layers_is_capped_at_the_window_and_latent_attention_caches_its_latent() {
    // Gemma-3-1B: 26 layers, every 6th global; one kv head of 256, window 512.
    let gemma = fixture("gemma-3-1b");
    let per_token_layer = 2 * 256 * 2;
    let cache = params::kv_cache(&gemma, 32768);
    let sliding = cache.per_kind.iter().find(|k| k.kind == "sliding512_dense").unwrap();
    let full = cache.per_kind.iter().find(|k| k.kind == "full_dense").unwrap();
    assert_eq!((sliding.layers, full.layers), (22, 4));
    assert_eq!(sliding.bytes_per_token_per_layer, per_token_layer);
    assert_eq!((sliding.cached_tokens, full.cached_tokens), (512, 32768));
    assert_eq!(
        cache.bytes_per_sequence,
        22 * per_token_layer * 512 + 4 * per_token_layer * 32768
    );
    assert_eq!(cache.bytes_per_token, 26 * per_token_layer);
    // Below the window nothing is capped.
    assert_eq!(
        params::kv_cache(&gemma, 100).bytes_per_sequence,
        26 * per_token_layer * 100
    );
    // DeepSeek-V3: 61 layers cache kv_lora_rank + qk_rope_head_dim = 576 bf16 values each.
    let v3 = fixture("deepseek-v3");
    let cache = params::kv_cache(&v3, 4096);
    assert_eq!(cache.bytes_per_token, 61 * 576 * 2);
    assert_eq!(cache.bytes_per_sequence, 61 * 576 * 2 * 4096);
    // gpt-oss-20b: 12 sliding layers of 128 tokens, 12 full; 8 kv heads of 64.
    let oss = params::kv_cache(&fixture("gpt-oss-20b"), 8192);
    assert_eq!(
        oss.bytes_per_sequence,
        12 * 2 * 8 * 64 * 2 * 128 + 12 * 2 * 8 * 64 * 2 * 8192
    );
}

#[test]
fn layer_patterns_are_placed_as_transformers_places_them() {
    // Gemma-2: even layers (0, 2, ...) slide. Gemma-3: every `sliding_window_pattern`-th is global.
    let g2 = pattern(&fixture("gemma-2-9b"));
    assert!(g2.iter().enumerate().all(|(i, p)| p.0 == (i % 2 == 0).then_some(4096)));
    let base = read(&fixtures().join("gemma-3-1b.json"));
    let g3 = changed(&base, json!({"num_hidden_layers": 6, "sliding_window_pattern": 3})).unwrap();
    let w = Some(512);
    assert_eq!(
        pattern(&g3.stack),
        vec![
            (w, false),
            (w, false),
            (None, false),
            (w, false),
            (w, false),
            (None, false)
        ]
    );
    // An explicit `layer_types` wins over the pattern.
    let types = json!([
        "full_attention",
        "sliding_attention",
        "full_attention",
        "full_attention",
        "full_attention",
        "full_attention"
    ]);
    let g3 = changed(&base, json!({"num_hidden_layers": 6, "layer_types": types})).unwrap();
    assert_eq!(pattern(&g3.stack)[..2], [(None, false), (w, false)]);
    // DeepSeek-V3: 3 dense layers, then mixtures.
    let v3 = pattern(&fixture("deepseek-v3"));
    assert!(v3[..3].iter().all(|p| !p.1) && v3[3..].iter().all(|p| p.1));
    // Qwen3-MoE: decoder_sparse_step 2 and mlp_only_layers [3] over 6 layers
    // (what transformers 5 builds: dense, moe, dense, dense, dense, moe).
    let base = read(&fixtures().join("qwen3-30b-a3b.json"));
    let q = changed(
        &base,
        json!({"num_hidden_layers": 6, "decoder_sparse_step": 2, "mlp_only_layers": [3, 99]}),
    )
    .unwrap();
    let moe: Vec<bool> = pattern(&q.stack).iter().map(|p| p.1).collect();
    assert_eq!(moe, [false, true, false, false, false, true]);
    // Qwen2/3 slide from max_window_layers on, only with use_sliding_window.
    let base = read(&fixtures().join("qwen3-8b.json"));
    let q = changed(
        &base,
        json!({"num_hidden_layers": 6, "use_sliding_window": true, "sliding_window": 256, "max_window_layers": 2}),
    )
    .unwrap();
    let windows: Vec<Option<u64>> = pattern(&q.stack).iter().map(|p| p.0).collect();
    assert_eq!(windows, [None, None, Some(256), Some(256), Some(256), Some(256)]);
    let q = changed(
        &base,
        json!({"num_hidden_layers": 6, "sliding_window": 256, "max_window_layers": 2}),
    )
    .unwrap();
    assert!(pattern(&q.stack).iter().all(|p| p.0.is_none()));
    // Mistral-7B-v0.1 slides on every layer.
    assert!(pattern(&fixture("mistral-7b-v0.1")).iter().all(|p| p.0 == Some(4096)));
    // DeepSeek-V2-Lite has no q rank.
    let lite = fixture("deepseek-v2-lite");
    assert!(matches!(lite.kinds[0].attention, Attention::Latent(a) if a.q_lora_rank.is_none()));
}

fn gpu(key: &'static str) -> nas::gpu::Gpu {
    Registry::builtin().resolve(&GpuTarget::builtin(key)).unwrap()
}

fn seed_gpu(key: &'static str) -> nas::gpu::Gpu {
    Registry::builtin()
        .resolve(&GpuTarget::builtin(key).with_cost_model(nas::gpu::CostModelKind::Seed))
        .unwrap()
}

/// Today's whole-model shapes through the stack give today's figures: the
/// same parameters, bytes and memory fit, and the same layer, embedding,
/// LM-head and decode-kernel times (the stack adds only a final norm).
#[test]
fn a_layer_shape_through_the_stack_gives_todays_figures_exactly() {
    let base = LayerShape {
        hidden_dim: 4096,
        num_heads: 32,
        num_kv_heads: 8,
        head_dim: 128,
        ffn_dim: 14336,
        seq_len: 2048,
        batch_size: 4,
        use_qk_norm: false,
        window_size: None,
        precision: nas::precision::Precision::BF16,
        model: ModelDims {
            num_layers: Some(32),
            vocab_size: Some(128256),
            tie_embeddings: Some(false),
            context_len: Some(8192),
            ..ModelDims::NONE
        },
        arch: nas::arch::Architecture::NONE,
    };
    let shapes = [
        base,
        LayerShape {
            use_qk_norm: true,
            window_size: Some(1024),
            model: ModelDims {
                tie_embeddings: Some(true),
                ..base.model
            },
            ..base
        },
        LayerShape {
            hidden_dim: 1152,
            num_heads: 4,
            num_kv_heads: 1,
            head_dim: 256,
            ffn_dim: 6912,
            batch_size: 1,
            model: ModelDims {
                num_layers: Some(26),
                vocab_size: Some(262144),
                tie_embeddings: None,
                context_len: None,
                ..ModelDims::NONE
            },
            ..base
        },
    ];
    for shape in shapes {
        let stack = ModelStack::from_layer_shape(&shape).unwrap();
        stack.validate().unwrap();
        let figures = model::figures(&shape).unwrap();
        let counts = params::count(&stack);
        let p = figures.parameters;
        assert_eq!(
            (
                counts.total,
                counts.non_embedding,
                counts.embedding,
                counts.lm_head,
                counts.final_norm
            ),
            (p.total, p.non_embedding, p.embedding, p.lm_head, p.final_norm)
        );
        assert_eq!(
            counts.per_kind[0].per_layer,
            p.attention_per_layer + p.mlp_per_layer + p.norms_per_layer
        );
        assert_eq!(params::weight_bytes(&counts), figures.memory.weight_bytes);
        let context = model::context_of(&shape);
        let w = StackWorkload {
            seq_len: shape.seq_len,
            batch: shape.batch_size,
            context,
        };
        let cache = params::kv_cache(&stack, context);
        assert_eq!(cache.bytes_per_token, figures.memory.kv_cache_bytes_per_token);
        assert_eq!(
            cache.bytes_per_sequence * shape.batch_size,
            model::kv_cache_bytes(&shape, shape.batch_size, context).unwrap()
        );
        assert_eq!(
            params::memory_needed(&stack, &w),
            model::memory_needed(&shape, &figures, shape.batch_size, context).unwrap()
        );
        for g in [gpu("h100"), gpu("h200"), seed_gpu("a100")] {
            let step = g.step_throughputs().unwrap();
            let t = latency::predict(&stack, &g, &w).unwrap();
            let layer_ms = Latencies::new(std::slice::from_ref(&g), &[shape]).total_ms(0, 0);
            assert_eq!(t.per_kind[0].prefill_ms_per_layer, layer_ms, "{}", g.key);
            let today = model::prefill(&shape, &step, layer_ms).unwrap();
            let layers = shape.model.num_layers.unwrap() as f64;
            assert_eq!(t.per_kind[0].prefill_ms_per_layer * layers, today.per_kernel["layers"]);
            for k in ["embedding", "lm_head"] {
                assert_eq!(t.prefill_per_kernel[k], today.per_kernel[k], "{k} on {}", g.key);
            }
            let decode = model::decode(&shape, &step, shape.batch_size, context).unwrap();
            for (k, ms) in &decode.per_kernel {
                assert_eq!(t.decode_per_kernel[k.as_ref()], *ms, "decode {k} on {}", g.key);
            }
            let final_norm = t.decode_per_kernel["final_norm"];
            assert_eq!(t.decode_per_kernel.len(), decode.per_kernel.len() + 1);
            assert!(((t.decode_ms - final_norm) / decode.total_ms - 1.0).abs() < 1e-12);
        }
    }
}

#[test]
fn a_sliding_window_caps_decode_attention_and_more_experts_are_read_at_larger_batches() {
    let g = gpu("h200");
    let base = read(&fixtures().join("gemma-3-1b.json"));
    let all_full = json!(vec!["full_attention"; 26]);
    let windowed = fixture("gemma-3-1b");
    let global = changed(&base, json!({ "layer_types": all_full })).unwrap().stack;
    assert_eq!(params::count(&windowed).total, params::count(&global).total);
    let w = StackWorkload {
        seq_len: 2048,
        batch: 8,
        context: 32768,
    };
    let attention = |s: &ModelStack| latency::predict(s, &g, &w).unwrap().decode_per_kernel["attention_over_context"];
    assert!(attention(&windowed) < 0.3 * attention(&global));
    // Qwen3-30B-A3B: one token reads 8 of 128 experts, 64 tokens most of them.
    let moe = fixture("qwen3-30b-a3b");
    let gate_up = |batch| {
        let w = StackWorkload { batch, ..w };
        latency::predict(&moe, &g, &w).unwrap().decode_per_kernel["moe_gate_up"]
    };
    // 64 tokens touch about 126 experts where one touches 8: the extra experts'
    // gate-up weights (2048 x 1536 bf16 each) take at least their bytes at the
    // H200's 4.8 TB/s to read.
    let touched = |t: i32| 128.0 * (1.0 - (1.0f64 - 8.0 / 128.0).powi(t));
    let extra_bytes = (touched(64) - touched(1)) * 2048.0 * 1536.0 * 2.0;
    assert!(
        gate_up(64) - gate_up(1) >= extra_bytes / 4.8e12 * 1e3,
        "{} {}",
        gate_up(1),
        gate_up(64)
    );
    assert!(gate_up(64) > 3.0 * gate_up(1));
    let t = latency::predict(&moe, &g, &w).unwrap();
    // The H200's MoE model is fitted on its own measurements: no kernel is a roofline estimate.
    assert!(t.estimated.is_empty(), "{:?}", t.estimated);
    assert!(t.sources["moe"].contains("fitted on"), "{}", t.sources["moe"]);
    // A GPU without a MoE fit prices the experts by its spec sheet, and says so.
    let a100 = latency::predict(&moe, &seed_gpu("a100"), &w).unwrap();
    assert!(a100.estimated.iter().any(|k| k == "moe_gate_up"));
    assert!(a100.sources["moe"].contains("roofline"), "{}", a100.sources["moe"]);
    assert!(!t.decode_per_kernel.contains_key("mlp_gate_up"));
    // DeepSeek's latent attention replaces the attention kernels.
    let lite = latency::predict(&fixture("deepseek-v2-lite"), &g, &w).unwrap();
    assert!(lite.decode_per_kernel.contains_key("mla_attention"));
    assert!(!lite.decode_per_kernel.contains_key("attention_over_context"));
    assert!(lite.prefill_ms.is_finite() && lite.decode_ms > 0.0);
}

#[test]
fn no_json_value_in_any_key_of_any_fixture_panics() {
    let hostile = [
        json!(null),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(1e300),
        json!(u64::MAX),
        json!("4096"),
        json!(true),
        json!([]),
        json!([1, 2]),
        json!({}),
        json!(["sliding_attention"]),
    ];
    let mut errors = 0;
    for (name, config) in configs() {
        let keys: Vec<String> = config.as_object().unwrap().keys().cloned().collect();
        for key in keys {
            for value in &hostile {
                let mut v = config.clone();
                v[key.as_str()] = value.clone();
                if let Ok(imported) = import(&name, &v) {
                    imported.stack.validate().unwrap();
                    let _ = params::count(&imported.stack);
                } else {
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > 1000, "hostile values are refused: {errors}");
}

#[test]
fn long_lists_and_many_unknown_keys_stay_linear_and_bounded() {
    // Two million layer indices (every layer, many times over, and past the last).
    let base = read(&fixtures().join("qwen3-30b-a3b.json"));
    let indices: Vec<u64> = (0..2_000_000u64).map(|i| i % 60).collect();
    let q = changed(&base, json!({ "mlp_only_layers": indices })).unwrap();
    assert!(pattern(&q.stack).iter().all(|p| !p.1), "every layer dense");
    assert_eq!(params::count(&q.stack).active, params::count(&q.stack).total);
    // A hundred unknown keys: the first sixteen named, the rest counted.
    let mut v = base.clone();
    for i in 0..100 {
        v[format!("unknown_{i:03}")] = json!(i);
    }
    let warnings = import("many", &v).unwrap().warnings;
    assert_eq!(warnings.len(), hf::MAX_KEY_WARNINGS + 1);
    assert!(warnings[0].contains("unknown_000"), "{}", warnings[0]);
    assert_eq!(warnings[16], "many.json: and 84 more unknown keys, ignored");
}
