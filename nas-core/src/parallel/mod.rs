//! Tensor parallelism: what each GPU of a tensor-parallel group holds and
//! computes, and what its collectives cost.
//!
//! Megatron-style sharding: the QKV and gate-up projections are split by
//! columns (each GPU owns `heads / tp` query heads and `ffn / tp` of the
//! MLP), the output and down projections by rows, so each layer ends its
//! attention and its MLP with one all-reduce of the residual stream. The
//! embedding and the LM head are split by vocabulary: the embedding's
//! partial rows are all-reduced, the logits all-gathered. Norms are
//! replicated. When a model has fewer KV heads than GPUs, each KV head is
//! replicated on `tp / kv_heads` GPUs (each holds one), as vLLM and
//! Megatron do.
//!
//! A GPU's share is itself a [`LayerShape`] (hidden size unchanged, heads,
//! KV heads, FFN and vocabulary divided), so every cost model and memory
//! figure applies to it unchanged; the collectives are added on top.

pub mod collective;
pub mod stack;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Latencies};
use crate::model::{self, StepThroughputs, StepTime, BYTES_PER_VALUE, GIB};
use crate::shapes::LayerShape;

pub use collective::{Collective, CollectiveModel, CollectiveRecord};

/// Largest tensor-parallel degree accepted: beyond any one NVLink domain
/// (an NVL72 rack has 72 GPUs).
pub const MAX_TP: u64 = 72;

/// A problem with a tensor-parallel degree, and the shape key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardProblem {
    /// `tp`, or the shape key that does not divide.
    pub key: &'static str,
    pub message: String,
}

/// One GPU's share of a model under tensor parallelism.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TensorShard {
    /// GPUs in the tensor-parallel group.
    pub tp: u64,
    /// What one GPU holds and computes.
    pub per_gpu: LayerShape,
    /// GPUs holding a copy of each KV head: 1 unless KV heads < tp.
    pub kv_replication: u64,
}

/// Splits `shape` over `tp` GPUs, or says which size does not divide.
pub fn shard(shape: &LayerShape, tp: u64) -> Result<TensorShard, ShardProblem> {
    if tp == 0 || tp > MAX_TP {
        return Err(ShardProblem {
            key: "tp",
            message: format!("`tp` = {tp} must be between 1 and {MAX_TP}"),
        });
    }
    let divides = |key: &'static str, value: u64| {
        if value % tp == 0 {
            Ok(value / tp)
        } else {
            Err(ShardProblem {
                key,
                message: format!("`{key}` = {value} does not divide by tp = {tp}"),
            })
        }
    };
    let heads = divides("num_heads", shape.num_heads)?;
    let ffn = divides("ffn_dim", shape.ffn_dim)?;
    let kv = shape.num_kv_heads;
    let (kv_per_gpu, kv_replication) = if kv >= tp {
        (divides("num_kv_heads", kv)?, 1)
    } else if tp % kv == 0 {
        (1, tp / kv)
    } else {
        return Err(ShardProblem {
            key: "num_kv_heads",
            message: format!(
                "`num_kv_heads` = {kv} neither divides by tp = {tp} nor divides it (so KV heads cannot be \
                 replicated evenly)"
            ),
        });
    };
    let mut per_gpu = *shape;
    per_gpu.num_heads = heads;
    per_gpu.num_kv_heads = kv_per_gpu;
    per_gpu.ffn_dim = ffn;
    // Vocabulary-parallel embedding and LM head: each GPU owns ceil(vocab / tp) rows.
    per_gpu.model.vocab_size = shape.model.vocab_size.map(|v| v.div_ceil(tp));
    Ok(TensorShard {
        tp,
        per_gpu,
        kv_replication,
    })
}

/// Names of the collective kernels added to a step's breakdown.
pub const LAYER_ALL_REDUCE: &str = "tp_all_reduce";
pub const EMBEDDING_ALL_REDUCE: &str = "tp_embedding_all_reduce";
pub const LOGITS_ALL_GATHER: &str = "tp_logits_all_gather";

/// A step on one GPU of the group: its own kernels plus the collectives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParallelStep {
    /// Per-kernel ms, collectives included (under the `tp_*` names).
    pub step: StepTime,
    /// Milliseconds of the step spent in collectives.
    pub collectives_ms: f64,
    /// `collectives_ms / step.total_ms`.
    pub collective_share: f64,
}

impl TensorShard {
    /// Collectives of one step processing `rows` tokens (batch x sequence in
    /// prefill, batch in decode) whose logits are taken for `logit_rows`.
    fn collectives(&self, links: &CollectiveModel, rows: u64, logit_rows: u64) -> [(&'static str, f64); 3] {
        let v = BYTES_PER_VALUE as f64;
        let d = self.per_gpu.hidden_dim as f64;
        let layers = self.per_gpu.model.num_layers.unwrap_or(1) as f64;
        let residual = v * rows as f64 * d;
        let vocab = self.per_gpu.model.vocab_size.unwrap_or(0) as f64 * self.tp as f64;
        [
            (
                LAYER_ALL_REDUCE,
                2.0 * layers * links.ms(Collective::AllReduce, residual),
            ),
            (EMBEDDING_ALL_REDUCE, links.ms(Collective::AllReduce, residual)),
            (
                LOGITS_ALL_GATHER,
                links.ms(Collective::AllGather, v * logit_rows as f64 * vocab),
            ),
        ]
    }

    fn with_collectives(&self, mut step: StepTime, collectives: [(&'static str, f64); 3]) -> ParallelStep {
        if self.tp > 1 {
            for (name, ms) in collectives {
                step.per_kernel.insert(name, ms);
            }
        }
        let collectives_ms: f64 = if self.tp > 1 {
            collectives.iter().map(|(_, ms)| ms).sum()
        } else {
            0.0
        };
        step.total_ms = step.per_kernel.values().sum();
        let collective_share = if step.total_ms > 0.0 {
            collectives_ms / step.total_ms
        } else {
            0.0
        };
        ParallelStep {
            step,
            collectives_ms,
            collective_share,
        }
    }

    /// One decode step of `batch` sequences with `context` cached tokens on
    /// each GPU of the group; `None` for a plain layer.
    pub fn decode(
        &self,
        gpu: &StepThroughputs,
        links: &CollectiveModel,
        batch: u64,
        context: u64,
    ) -> Option<ParallelStep> {
        let step = model::decode(&self.per_gpu, gpu, batch, context)?;
        Some(self.with_collectives(step, self.collectives(links, batch, batch)))
    }

    /// The whole prefill on each GPU, its layer (the per-GPU shape) taking
    /// `layer_ms`; `None` for a plain layer.
    pub fn prefill(&self, gpu: &StepThroughputs, links: &CollectiveModel, layer_ms: f64) -> Option<ParallelStep> {
        let step = model::prefill(&self.per_gpu, gpu, layer_ms)?;
        let s = &self.per_gpu;
        Some(self.with_collectives(step, self.collectives(links, s.batch_size * s.seq_len, s.batch_size)))
    }
}

/// What `nas predict --tp N` reports for a whole model: one GPU's share,
/// its memory, and its prefill and decode with the collectives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorParallelFigures {
    pub tp: u64,
    pub kv_replication: u64,
    /// The sizes one GPU holds (hidden size and layers are unchanged).
    pub per_gpu_heads: u64,
    pub per_gpu_kv_heads: u64,
    pub per_gpu_ffn_dim: u64,
    pub per_gpu_vocab_size: u64,
    pub weight_bytes_per_gpu: u64,
    pub kv_cache_bytes_per_token_per_gpu: u64,
    /// Weights, the KV cache of the shape's batch at its context and one
    /// prefill layer's activation peak, on one GPU.
    pub memory_needed_bytes_per_gpu: u64,
    /// `None` when the GPU's memory is not declared.
    pub fits_per_gpu: Option<bool>,
    pub prefill: ParallelStep,
    pub decode: ParallelStep,
    /// Where the collective costs come from.
    pub collectives_source: String,
}

/// The tensor-parallel figures of a whole-model shape on `tp` GPUs of
/// `gpu`'s kind at the shape's batch, sequence and context; `Ok(None)` for a
/// plain layer. Errors name the size that does not divide.
pub fn figures(shape: &LayerShape, gpu: &Gpu, tp: u64) -> Result<Option<TensorParallelFigures>> {
    let sharded = shard(shape, tp).map_err(|p| Error::Spec(p.message))?;
    let per_gpu = sharded.per_gpu;
    let Some(figures) = model::figures(&per_gpu) else {
        return Ok(None);
    };
    let links = CollectiveModel::for_gpu(&gpu.key, tp)?;
    let step = gpu.step_throughputs()?;
    let layer_ms = Latencies::new(std::slice::from_ref(gpu), &[per_gpu]).total_ms(0, 0);
    let context = model::context_of(&per_gpu);
    let (Some(prefill), Some(decode), Some(needed)) = (
        sharded.prefill(&step, &links, layer_ms),
        sharded.decode(&step, &links, per_gpu.batch_size, context),
        model::memory_needed(&per_gpu, &figures, per_gpu.batch_size, context),
    ) else {
        return Ok(None);
    };
    Ok(Some(TensorParallelFigures {
        tp,
        kv_replication: sharded.kv_replication,
        per_gpu_heads: per_gpu.num_heads,
        per_gpu_kv_heads: per_gpu.num_kv_heads,
        per_gpu_ffn_dim: per_gpu.ffn_dim,
        per_gpu_vocab_size: per_gpu.model.vocab_size.unwrap_or(0),
        weight_bytes_per_gpu: figures.memory.weight_bytes,
        kv_cache_bytes_per_token_per_gpu: figures.memory.kv_cache_bytes_per_token,
        memory_needed_bytes_per_gpu: needed,
        fits_per_gpu: gpu.memory_gib().map(|gib| needed as f64 <= gib * GIB),
        prefill,
        decode,
        collectives_source: links.source.into_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelDims;

    /// Llama-3.1-70B as Meta publishes it: 8192 hidden, 64 heads of 128, 8
    /// KV heads, 28672 FFN, 80 layers, 128256 vocabulary, untied.
    fn llama_70b() -> LayerShape {
        LayerShape {
            hidden_dim: 8192,
            num_heads: 64,
            num_kv_heads: 8,
            head_dim: 128,
            ffn_dim: 28672,
            seq_len: 2048,
            batch_size: 1,
            use_qk_norm: false,
            window_size: None,
            precision: crate::precision::Precision::BF16,
            model: ModelDims {
                num_layers: Some(80),
                vocab_size: Some(128_256),
                tie_embeddings: Some(false),
                ..ModelDims::NONE
            },
        }
    }

    #[test]
    fn shards_divide_heads_and_ffn_and_replicate_scarce_kv_heads() {
        let s = shard(&llama_70b(), 4).unwrap();
        assert_eq!(
            (s.per_gpu.num_heads, s.per_gpu.num_kv_heads, s.per_gpu.ffn_dim),
            (16, 2, 7168)
        );
        assert_eq!((s.per_gpu.hidden_dim, s.kv_replication), (8192, 1));
        assert_eq!(s.per_gpu.model.vocab_size, Some(32_064));
        let s16 = shard(&llama_70b(), 16).unwrap();
        assert_eq!((s16.per_gpu.num_kv_heads, s16.kv_replication), (1, 2));
        let mut odd = llama_70b();
        odd.num_heads = 60;
        odd.num_kv_heads = 6;
        let err = shard(&odd, 8).unwrap_err();
        assert_eq!(err.key, "num_heads");
        assert!(
            err.message.contains("`num_heads` = 60 does not divide by tp = 8"),
            "{}",
            err.message
        );
        odd.num_heads = 64;
        odd.num_kv_heads = 8;
        odd.ffn_dim = 28670;
        assert_eq!(shard(&odd, 4).unwrap_err().key, "ffn_dim");
        let mut kv3 = llama_70b();
        kv3.num_kv_heads = 4;
        kv3.num_heads = 48;
        kv3.ffn_dim = 24576;
        // 6 divides the heads and the FFN, but 4 KV heads cannot be spread over 6 GPUs.
        assert_eq!(shard(&kv3, 6).unwrap_err().key, "num_kv_heads");
        kv3.num_kv_heads = 3;
        assert_eq!(shard(&kv3, 6).unwrap().kv_replication, 2);
        assert_eq!(shard(&llama_70b(), 0).unwrap_err().key, "tp");
        assert_eq!(shard(&llama_70b(), MAX_TP + 1).unwrap_err().key, "tp");
    }

    /// Llama-3.1-70B in bf16: 70,553,706,496 parameters, 141.1 GB of
    /// weights. Each of two GPUs holds half of every sharded matrix and all
    /// of the norms.
    #[test]
    fn per_gpu_weight_bytes_are_exact() {
        let full = model::figures(&llama_70b()).unwrap();
        assert_eq!(full.parameters.total, 70_553_706_496);
        let half = model::figures(&shard(&llama_70b(), 2).unwrap().per_gpu).unwrap();
        let d = 8192u64;
        let norms = 80 * 2 * d + d;
        assert_eq!(
            half.parameters.total,
            (full.parameters.total - norms) / 2 + norms,
            "everything but the norms is split in two"
        );
        assert_eq!(half.memory.weight_bytes, 2 * half.parameters.total);
        // KV cache per token per GPU: 4 of the 8 KV heads.
        assert_eq!(
            half.memory.kv_cache_bytes_per_token,
            full.memory.kv_cache_bytes_per_token / 2
        );
    }

    /// Llama-3.1-70B in bf16 (141.1 GB of weights) does not fit one 80 GB
    /// H100, but fits two H200s, each holding half of every sharded matrix.
    #[test]
    fn llama_70b_fits_two_h200s_but_not_one_h100() {
        let registry = crate::gpu::registry::Registry::builtin();
        let gpu = |key: &str| {
            registry
                .resolve(&crate::gpu::registry::GpuTarget::builtin_owned(key))
                .unwrap()
        };
        let mut shape = llama_70b();
        shape.batch_size = 8;
        shape.model.context_len = Some(8192);
        let h100 = figures(&shape, &gpu("h100"), 1).unwrap().unwrap();
        assert_eq!(h100.weight_bytes_per_gpu, 2 * 70_553_706_496);
        assert_eq!(h100.fits_per_gpu, Some(false));
        let h200 = figures(&shape, &gpu("h200"), 2).unwrap().unwrap();
        let norms = 80 * 2 * 8192 + 8192;
        assert_eq!(h200.weight_bytes_per_gpu, 2 * ((70_553_706_496 - norms) / 2 + norms));
        // 8 x 8192 tokens of 4 KV heads of 128, K and V, 80 layers, bf16.
        assert_eq!(h200.kv_cache_bytes_per_token_per_gpu, 2 * 80 * 4 * 128 * 2);
        assert_eq!(h200.fits_per_gpu, Some(true));
        assert!(h200.decode.collectives_ms > 0.0 && h200.collectives_source.contains("not measured"));
        let err = figures(&shape, &gpu("h200"), 3).unwrap_err().to_string();
        assert!(err.contains("`num_heads` = 64 does not divide by tp = 3"), "{err}");
    }

    #[test]
    fn collectives_appear_only_on_more_than_one_gpu() {
        let gpu = StepThroughputs::seed(&crate::hardware::seed_constants("h100").unwrap());
        let links = CollectiveModel::analytic(2, 450.0, "NVLink 4");
        let one = shard(&llama_70b(), 1).unwrap();
        let d1 = one.decode(&gpu, &CollectiveModel::single(), 8, 4096).unwrap();
        assert_eq!(d1.collectives_ms, 0.0);
        assert_eq!(d1.step, model::decode(&llama_70b(), &gpu, 8, 4096).unwrap());
        let two = shard(&llama_70b(), 2).unwrap();
        let d2 = two.decode(&gpu, &links, 8, 4096).unwrap();
        // 160 all-reduces of 8 x 8192 bf16 values, each at least the call latency.
        assert!(d2.step.per_kernel[LAYER_ALL_REDUCE] >= 160.0 * links.call_us / 1e3);
        assert!(d2.collective_share > 0.0 && d2.collective_share < 1.0);
        assert!(
            d2.step.total_ms < d1.step.total_ms,
            "two GPUs read half the weights each"
        );
        let p2 = two.prefill(&gpu, &links, 1.0).unwrap();
        assert!(p2.step.per_kernel.contains_key(LOGITS_ALL_GATHER));
    }
}
