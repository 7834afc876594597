//! The kernel-aware decode model: one decode step (one token for each of
//! `batch` sequences through a whole model, compiled, the step one CUDA
//! graph) as work that is linear in a few fitted constants, like the prefill
//! model, so the same least squares fits it and one profile holds both.
//!
//! What it captures (calibration/README.md, "Decode steps, compiled"):
//! - a decode GEMM (GEMV at batch 1) streams its weights: its time is a
//!   fixed latency plus its bytes at a bandwidth that ramps up with the bytes
//!   one kernel moves (the first `ramp_bytes` of every kernel cost more: too
//!   little in flight to reach peak), or its FLOPs at the GEMM rate when the
//!   batch makes it compute-bound (the roofline choice is made with the spec
//!   sheet's ridge point, so the model stays linear);
//! - attention over the cache reads K and V of every cached token (`window`
//!   caps them), plus a cost per (sequence, query head);
//! - norms, RoPE, the KV write, residual adds and the MLP activation are
//!   memory-bound bytes;
//! - every kernel costs a fixed latency even in a CUDA graph, every layer a
//!   few fused elementwise kernels more, every step the embedding, final norm
//!   and graph overhead.

use crate::gpu::PeakUnit;
use crate::model::{cached_tokens, BYTES_PER_VALUE};
use crate::shapes::LayerShape;

use super::kernel_aware::Unit;

/// The decode model's fitted resources: name, unit of work, and the physical
/// peak bounding it (`None`: a fixed cost, only non-negative).
pub const DECODE_RESOURCES: [(&str, Unit, Option<PeakUnit>); 13] = [
    ("decode_weight_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("decode_misaligned_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("decode_ramp_bytes", Unit::Bytes, None),
    ("decode_gemm_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    ("decode_kv_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("decode_kv_bytes_wide_head", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("decode_attention", Unit::Launches, None),
    ("decode_query_heads", Unit::Launches, None),
    ("decode_elementwise_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("decode_gemm", Unit::Launches, None),
    ("decode_kernel", Unit::Launches, None),
    ("decode_layer", Unit::Launches, None),
    ("decode_step", Unit::Launches, None),
];

/// Number of decode resources.
pub const COUNT: usize = DECODE_RESOURCES.len();

mod r {
    pub const WEIGHT_BYTES: usize = 0;
    pub const MISALIGNED_BYTES: usize = 1;
    pub const RAMP_BYTES: usize = 2;
    pub const GEMM_FLOPS: usize = 3;
    pub const KV_BYTES: usize = 4;
    pub const KV_BYTES_WIDE_HEAD: usize = 5;
    pub const ATTENTION: usize = 6;
    pub const QUERY_HEADS: usize = 7;
    pub const ELEMENTWISE: usize = 8;
    pub const GEMM: usize = 9;
    pub const KERNEL: usize = 10;
    pub const LAYER: usize = 11;
    pub const STEP: usize = 12;
}

/// The shape-side parameters of the decode model: what the work depends on
/// besides the shape (fixed per profile, not fitted by least squares).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeForm {
    /// Bytes per kernel billed at the ramp's extra cost.
    pub ramp_bytes: f64,
    /// Dense FLOPs per HBM byte at which a GEMM turns compute-bound (spec sheet).
    pub ridge_flops_per_byte: f64,
}

/// Fitted decode constants: milliseconds per unit of each resource's work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeConstants {
    pub form: DecodeForm,
    pub ms_per_unit: [f64; COUNT],
}

/// Work of one decode kernel, per resource.
pub type Work = [f64; COUNT];

/// The work of a decode GEMM `out[b, n] = x[b, k] @ W[n, k]^T`: bytes (weights
/// and activations) or FLOPs, whichever binds at the ridge point, and one
/// kernel. A GEMM whose N or K is not a multiple of 8 loses cuBLAS's aligned
/// kernels (GPT-2's vocabulary of 50,257): its bytes have their own rate.
pub fn gemm_work(b: u64, n: u64, k: u64, form: &DecodeForm) -> Work {
    let aligned = n % 8 == 0 && k % 8 == 0;
    let (b, n, k) = (b as f64, n as f64, k as f64);
    let v = BYTES_PER_VALUE as f64;
    let bytes = v * (k * n + b * (k + n));
    let flops = 2.0 * b * k * n;
    let mut w = [0.0; COUNT];
    if form.ridge_flops_per_byte > 0.0 && flops > form.ridge_flops_per_byte * bytes {
        w[r::GEMM_FLOPS] = flops;
    } else {
        w[if aligned { r::WEIGHT_BYTES } else { r::MISALIGNED_BYTES }] = bytes;
        w[r::RAMP_BYTES] = bytes.min(form.ramp_bytes);
    }
    // A GEMM's fixed latency is its own (cuBLAS's), not an elementwise kernel's.
    w[r::GEMM] = 1.0;
    w
}

/// The work of attention of one query per sequence over `cached` tokens of
/// K and V (`kv_heads` x `head_dim` each), `heads` query heads: one kernel
/// with a fixed cost of its own (a split over the cache and its reduction);
/// head dims above 128 read the cache at a lower rate.
pub fn attention_work(batch: u64, heads: u64, kv_heads: u64, head_dim: u64, cached: u64) -> Work {
    let v = BYTES_PER_VALUE as f64;
    let (b, h, kv, hd, c) = (
        batch as f64,
        heads as f64,
        kv_heads as f64,
        head_dim as f64,
        cached as f64,
    );
    let mut w = [0.0; COUNT];
    let kv_bytes = v * b * 2.0 * kv * hd * c;
    w[if head_dim > 128 {
        r::KV_BYTES_WIDE_HEAD
    } else {
        r::KV_BYTES
    }] = kv_bytes;
    w[r::ELEMENTWISE] = v * b * 2.0 * h * hd; // q read, output written
    w[r::QUERY_HEADS] = b * h;
    w[r::ATTENTION] = 1.0;
    w
}

/// [`attention_work`] with the new token's K and V written into the cache
/// (what a single decode-attention call does; a step counts the write with
/// the layer's fused elementwise kernels).
pub fn attention_with_write_work(batch: u64, heads: u64, kv_heads: u64, head_dim: u64, cached: u64) -> Work {
    let mut w = attention_work(batch, heads, kv_heads, head_dim, cached);
    w[r::ELEMENTWISE] += BYTES_PER_VALUE as f64 * 2.0 * batch as f64 * kv_heads as f64 * head_dim as f64;
    w
}

/// A memory-bound kernel moving `bytes`.
pub fn elementwise_work(bytes: f64) -> Work {
    let mut w = [0.0; COUNT];
    w[r::ELEMENTWISE] = bytes;
    w[r::KERNEL] = 1.0;
    w
}

/// The work of decode kernel `kernel` (an index of [`crate::model::DECODE_KERNELS`])
/// once: per layer for the first seven, per step for the embedding and the
/// LM head. `None` without a vocabulary for the LM head.
pub fn kernel_work(shape: &LayerShape, batch: u64, context: u64, kernel: usize, form: &DecodeForm) -> Option<Work> {
    let v = BYTES_PER_VALUE as f64;
    let b = batch as f64;
    let (d, h, kv, hd, f) = (
        shape.hidden_dim,
        shape.num_heads,
        shape.num_kv_heads,
        shape.head_dim,
        shape.ffn_dim,
    );
    let (df, ff) = (d as f64, f as f64);
    Some(match kernel {
        // Two RMSNorms and two residual adds, RoPE on q and k, the K/V write,
        // fused by the compiler into a few kernels: a per-layer fixed cost.
        0 => {
            let mut w = [0.0; COUNT];
            let qk = ((h + kv) * hd) as f64;
            w[r::ELEMENTWISE] = v * b * (2.0 * 2.0 * df + 2.0 * 3.0 * df + 2.0 * qk + 2.0 * (kv * hd) as f64);
            w[r::LAYER] = 1.0;
            w
        }
        1 => gemm_work(batch, (h + 2 * kv) * hd, d, form),
        2 => attention_work(batch, h, kv, hd, cached_tokens(shape, context)),
        3 => gemm_work(batch, d, h * hd, form),
        4 => gemm_work(batch, 2 * f, d, form),
        5 => elementwise_work(v * 3.0 * b * ff),
        6 => gemm_work(batch, d, f, form),
        // Embedding gather and the final norm; the step's fixed cost.
        7 => {
            let mut w = [0.0; COUNT];
            w[r::ELEMENTWISE] = v * 4.0 * b * df;
            w[r::STEP] = 1.0;
            w
        }
        _ => gemm_work(batch, shape.model.vocab_size?, d, form),
    })
}

/// The whole step's work: per-layer kernels times `num_layers`, plus the
/// step's own; `None` for a plain layer.
pub fn step_work(shape: &LayerShape, batch: u64, context: u64, form: &DecodeForm) -> Option<Work> {
    let layers = shape.model.num_layers? as f64;
    let mut total = [0.0; COUNT];
    for k in 0..crate::model::DECODE_KERNELS.len() {
        let w = kernel_work(shape, batch, context, k, form)?;
        let times = if crate::model::decode_kernel_per_layer(k) {
            layers
        } else {
            1.0
        };
        for (t, x) in total.iter_mut().zip(w) {
            *t += times * x;
        }
    }
    Some(total)
}

impl DecodeConstants {
    /// Milliseconds of `work`.
    pub fn ms(&self, work: &Work) -> f64 {
        work.iter().zip(&self.ms_per_unit).map(|(w, t)| w * t).sum()
    }

    /// The time of decode kernel `kernel` once (see [`kernel_work`]).
    pub fn kernel_ms(&self, shape: &LayerShape, batch: u64, context: u64, kernel: usize) -> Option<f64> {
        kernel_work(shape, batch, context, kernel, &self.form).map(|w| self.ms(&w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAMP_BYTES: f64 = 8.0 * 1024.0 * 1024.0;
    const FORM: DecodeForm = DecodeForm {
        ramp_bytes: RAMP_BYTES,
        ridge_flops_per_byte: 206.0,
    };

    #[test]
    fn gemvs_stream_bytes_and_large_batches_turn_compute_bound() {
        let gemv = gemm_work(1, 4096, 4096, &FORM);
        assert_eq!(gemv[r::WEIGHT_BYTES], 2.0 * (4096.0 * 4096.0 + 8192.0));
        assert_eq!(gemv[r::RAMP_BYTES], RAMP_BYTES);
        assert_eq!((gemv[r::GEMM_FLOPS], gemv[r::GEMM]), (0.0, 1.0));
        // 512 rows: 2*512 FLOPs per weight element, 1024 per 2 bytes, past the ridge.
        let wide = gemm_work(512, 4096, 4096, &FORM);
        assert_eq!(wide[r::GEMM_FLOPS], 2.0 * 512.0 * 4096.0 * 4096.0);
        assert_eq!(wide[r::WEIGHT_BYTES], 0.0);
    }

    #[test]
    fn a_window_caps_the_cache_attention_reads() {
        let mut s = crate::search::seed::KNOWN_MODELS[0].shape;
        s.window_size = Some(1024);
        let w = kernel_work(&s, 4, 8192, 2, &FORM).unwrap();
        assert_eq!(
            w[r::KV_BYTES] + w[r::KV_BYTES_WIDE_HEAD],
            2.0 * 4.0 * 2.0 * (s.num_kv_heads * s.head_dim) as f64 * 1024.0
        );
        assert_eq!(w[r::QUERY_HEADS], 4.0 * s.num_heads as f64);
    }
}
