//! Whole models: exact parameter counts and KV-cache sizes of published
//! models, memory fit, decode, and the scaling-law estimate.
//!
//! Published parameter counts are the totals of the models' released
//! safetensors as listed on their Hugging Face model pages (Meta Llama 2 / 3 /
//! 3.2, Mistral AI, Qwen3); KV bytes per token are 2 (K and V) x layers x kv
//! heads x head_dim x 2 bytes (bf16) from their configs (Llama-3-8B's 131,072
//! is the figure the issue quotes).

use nas::model::{self, LossFit, ModelDims, ParamCount, ScalingLaw, StepThroughputs};
use nas::shapes::LayerShape;

struct Published {
    name: &'static str,
    hidden: u64,
    layers: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    ffn: u64,
    vocab: u64,
    tied: bool,
    qk_norm: bool,
    params: u64,
    kv_bytes_per_token: u64,
}

const PUBLISHED: [Published; 9] = [
    Published {
        name: "Llama-3-8B",
        hidden: 4096,
        layers: 32,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        ffn: 14336,
        vocab: 128256,
        tied: false,
        qk_norm: false,
        params: 8_030_261_248,
        kv_bytes_per_token: 131_072,
    },
    Published {
        name: "Llama-3-70B",
        hidden: 8192,
        layers: 80,
        heads: 64,
        kv_heads: 8,
        head_dim: 128,
        ffn: 28672,
        vocab: 128256,
        tied: false,
        qk_norm: false,
        params: 70_553_706_496,
        kv_bytes_per_token: 327_680,
    },
    Published {
        name: "Mistral-7B-v0.1",
        hidden: 4096,
        layers: 32,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        ffn: 14336,
        vocab: 32000,
        tied: false,
        qk_norm: false,
        params: 7_241_732_096,
        kv_bytes_per_token: 131_072,
    },
    Published {
        name: "Llama-2-7B",
        hidden: 4096,
        layers: 32,
        heads: 32,
        kv_heads: 32,
        head_dim: 128,
        ffn: 11008,
        vocab: 32000,
        tied: false,
        qk_norm: false,
        params: 6_738_415_616,
        kv_bytes_per_token: 524_288,
    },
    Published {
        name: "Llama-3.2-1B",
        hidden: 2048,
        layers: 16,
        heads: 32,
        kv_heads: 8,
        head_dim: 64,
        ffn: 8192,
        vocab: 128256,
        tied: true,
        qk_norm: false,
        params: 1_235_814_400,
        kv_bytes_per_token: 32_768,
    },
    Published {
        name: "Llama-3.2-3B",
        hidden: 3072,
        layers: 28,
        heads: 24,
        kv_heads: 8,
        head_dim: 128,
        ffn: 8192,
        vocab: 128256,
        tied: true,
        qk_norm: false,
        params: 3_212_749_824,
        kv_bytes_per_token: 114_688,
    },
    Published {
        name: "Qwen3-8B",
        hidden: 4096,
        layers: 36,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        ffn: 12288,
        vocab: 151936,
        tied: false,
        qk_norm: true,
        params: 8_190_735_360,
        kv_bytes_per_token: 147_456,
    },
    Published {
        name: "Qwen3-4B",
        hidden: 2560,
        layers: 36,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        ffn: 9728,
        vocab: 151936,
        tied: true,
        qk_norm: true,
        params: 4_022_468_096,
        kv_bytes_per_token: 147_456,
    },
    Published {
        name: "Qwen3-0.6B",
        hidden: 1024,
        layers: 28,
        heads: 16,
        kv_heads: 8,
        head_dim: 128,
        ffn: 3072,
        vocab: 151936,
        tied: true,
        qk_norm: true,
        params: 596_049_920,
        kv_bytes_per_token: 114_688,
    },
];

fn shape(p: &Published) -> LayerShape {
    LayerShape {
        hidden_dim: p.hidden,
        num_heads: p.heads,
        num_kv_heads: p.kv_heads,
        head_dim: p.head_dim,
        ffn_dim: p.ffn,
        seq_len: 2048,
        batch_size: 1,
        use_qk_norm: p.qk_norm,
        window_size: None,
        model: ModelDims {
            num_layers: Some(p.layers),
            vocab_size: Some(p.vocab),
            tie_embeddings: Some(p.tied),
            ..ModelDims::NONE
        },
        precision: nas::precision::Precision::BF16,
    }
}

#[test]
fn parameter_counts_and_kv_cache_match_published_models() {
    for p in &PUBLISHED {
        let s = shape(p);
        s.validate().unwrap();
        let figures = model::figures(&s).unwrap();
        assert_eq!(figures.parameters.total, p.params, "{} parameters", p.name);
        assert_eq!(
            figures.memory.kv_cache_bytes_per_token, p.kv_bytes_per_token,
            "{} KV bytes per token",
            p.name
        );
        assert_eq!(figures.memory.weight_bytes, 2 * p.params, "{} bf16 weights", p.name);
        let embeddings = p.vocab * p.hidden * if p.tied { 1 } else { 2 };
        assert_eq!(figures.parameters.non_embedding + embeddings, p.params, "{}", p.name);
    }
}

#[test]
fn plain_layers_have_no_whole_model_figures() {
    let mut s = shape(&PUBLISHED[0]);
    s.model.num_layers = None;
    assert!(model::figures(&s).is_none());
    assert!(model::decode(
        &s,
        &StepThroughputs::seed(&nas::hardware::seed_constants("h100").unwrap()),
        1,
        1024
    )
    .is_none());
}

#[test]
fn kv_cache_grows_with_batch_and_context_up_to_the_window() {
    let mut s = shape(&PUBLISHED[0]);
    assert_eq!(model::kv_cache_bytes(&s, 8, 8192), Some(131_072 * 8 * 8192));
    s.window_size = Some(4096);
    assert_eq!(model::kv_cache_bytes(&s, 8, 8192), Some(131_072 * 8 * 4096));
    assert_eq!(model::kv_cache_bytes(&s, 8, 1024), Some(131_072 * 8 * 1024));
}

#[test]
fn memory_fit_follows_capacity() {
    let s = shape(&PUBLISHED[0]); // 16 GB of weights, 1 GiB of KV per 8192 tokens
    let h100 = 80.0 * model::GIB;
    assert_eq!(model::fits(&s, h100, 8, 8192), Some(true)); // 16 GB + 8 GiB
    assert_eq!(model::fits(&s, h100, 128, 8192), Some(false)); // + 128 GiB of cache
                                                               // 15 GiB of weights leave a 16 GiB T4 room for a short context only.
    assert_eq!(model::fits(&s, 16.0 * model::GIB, 1, 1024), Some(true));
    assert_eq!(model::fits(&s, 16.0 * model::GIB, 8, 8192), Some(false));
    // Llama-3-70B's 131 GiB of weights do not fit one H100.
    assert_eq!(model::fits(&shape(&PUBLISHED[1]), h100, 1, 1), Some(false));
}

#[test]
fn decode_is_bound_by_reading_the_weights() {
    let s = shape(&PUBLISHED[0]);
    let h100 = StepThroughputs::seed(&nas::hardware::seed_constants("h100").unwrap());
    let one = model::decode(&s, &h100, 1, 1024).unwrap();
    // Every weight but the embedding table (of which only one row per
    // sequence is read) at 3350 GB/s: about 4.5 ms, a little more for the cache.
    let weights_ms = 2.0 * (8_030_261_248.0 - 128_256.0 * 4096.0) / 3350e9 * 1e3;
    assert!(
        one.total_ms > weights_ms && one.total_ms < weights_ms * 1.05,
        "{}",
        one.total_ms
    );
    // More context: more cache to read, nothing else changes.
    let long = model::decode(&s, &h100, 1, 65536).unwrap();
    assert!(long.per_kernel["attention_over_context"] > 10.0 * one.per_kernel["attention_over_context"]);
    assert_eq!(long.per_kernel["mlp_down"], one.per_kernel["mlp_down"]);
    let sum: f64 = one.per_kernel.values().sum();
    assert!((sum - one.total_ms).abs() < 1e-12);
}

#[test]
fn loss_estimates_use_the_published_constants() {
    let mut s = shape(&PUBLISHED[1]); // about 70.55e9 parameters
    s.model.training_tokens = Some(1_400_000_000_000);
    let n = 70_553_706_496f64;
    // Chinchilla (Hoffmann et al. 2022): E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28.
    let chinchilla = model::figures(&s).unwrap().loss_estimate.unwrap();
    let expected = 1.69 + 406.4 / n.powf(0.34) + 410.7 / 1.4e12f64.powf(0.28);
    assert!((chinchilla - expected).abs() < 1e-12);
    assert!((chinchilla - 1.936).abs() < 0.01); // Chinchilla-70B-sized, as the paper's fit gives
    s.model.loss_fit = LossFit {
        law: ScalingLaw::Epoch,
        count: ParamCount::All,
    };
    let epoch = model::figures(&s).unwrap().loss_estimate.unwrap();
    assert!((epoch - 1.974).abs() < 0.01, "{epoch}");
    // Counting only non-embedding parameters gives a smaller N, so a higher loss.
    s.model.loss_fit.count = ParamCount::NonEmbedding;
    assert!(model::figures(&s).unwrap().loss_estimate.unwrap() > epoch);
    // More data, lower loss.
    s.model.training_tokens = Some(15_000_000_000_000);
    assert!(model::figures(&s).unwrap().loss_estimate.unwrap() < epoch);
}

#[test]
fn absurd_model_sizes_are_rejected_at_the_input() {
    let mut s = shape(&PUBLISHED[0]);
    s.model.num_layers = Some(0);
    assert_eq!(s.validate().unwrap_err().key, Some("num_layers"));
    s.model.num_layers = Some(1 << 20);
    assert!(s.validate().unwrap_err().message.contains("absurdly large"));
    s.model.num_layers = Some(32);
    s.model.training_tokens = Some(u64::MAX);
    assert_eq!(s.validate().unwrap_err().key, Some("training_tokens"));
}
