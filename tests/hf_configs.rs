//! Hugging Face configs read into stacks: every fixture's parameter count
//! (and active count for mixtures) equals what transformers builds
//! (`tests/fixtures/hf-configs/transformers-counts.json`, measured by
//! building each config on the meta device; see the README there), KV-cache
//! bytes per kind, today's shapes through the stack, and hostile configs.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use nas::stack::hf;
use nas::stack::{params, ModelStack};

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
        assert_eq!(p.total, expected["params"].as_u64().unwrap(), "{name}: total parameters");
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
