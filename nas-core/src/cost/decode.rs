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
use crate::precision::{KvCachePrecision, WeightPrecision, INT4_GROUP};
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

/// Number of decode resources of the bf16 model (what `decode_model` fits).
pub const COUNT: usize = DECODE_RESOURCES.len();

/// The resources of fp8 and int4 decode GEMMs (the profile's `precision`
/// section fits them, with the bf16 ones fixed): fp8 weights streamed from
/// HBM (the activation's dynamic quantization a fixed cost of the GEMM and
/// its bytes elementwise), fp8 FLOPs past the fp8 ridge point; int4
/// (tinygemm) weights and their group scales streamed, its FLOPs (tinygemm's
/// time grows with the rows past a few), a fixed cost per int4 GEMM.
pub const DECODE_PRECISION_RESOURCES: [(&str, Unit, Option<PeakUnit>); 6] = [
    ("decode_fp8_weight_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("decode_fp8_gemm_flops", Unit::Flops, Some(PeakUnit::DenseFp8Tflops)),
    ("decode_fp8_gemm", Unit::Launches, None),
    ("decode_int4_weight_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("decode_int4_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    ("decode_int4_gemm", Unit::Launches, None),
];

/// Every decode resource: the bf16 model's, then the precision ones.
pub const TOTAL: usize = COUNT + DECODE_PRECISION_RESOURCES.len();

/// Name, unit and bound of decode resource `j` (of [`TOTAL`]).
pub fn resource(j: usize) -> (&'static str, Unit, Option<PeakUnit>) {
    if j < COUNT {
        DECODE_RESOURCES[j]
    } else {
        DECODE_PRECISION_RESOURCES[j - COUNT]
    }
}

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
    pub const FP8_BYTES: usize = 13;
    pub const FP8_FLOPS: usize = 14;
    pub const FP8_GEMM: usize = 15;
    pub const INT4_BYTES: usize = 16;
    pub const INT4_FLOPS: usize = 17;
    pub const INT4_GEMM: usize = 18;
}

/// The shape-side parameters of the decode model: what the work depends on
/// besides the shape (fixed per profile, not fitted by least squares).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeForm {
    /// Bytes per kernel billed at the ramp's extra cost.
    pub ramp_bytes: f64,
    /// Dense FLOPs per HBM byte at which a GEMM turns compute-bound (spec sheet).
    pub ridge_flops_per_byte: f64,
    /// The same for fp8 GEMMs (dense fp8 peak over HBM; 0: none known, every
    /// fp8 decode GEMM billed its bytes).
    pub fp8_ridge_flops_per_byte: f64,
}

/// Fitted decode constants: milliseconds per unit of each resource's work
/// (the precision resources 0 where no precision section was fitted).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeConstants {
    pub form: DecodeForm,
    pub ms_per_unit: [f64; TOTAL],
}

/// Work of one decode kernel, per resource (bf16 ones, then precision ones).
pub type Work = [f64; TOTAL];

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
    let mut w = [0.0; TOTAL];
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

/// The work of a decode GEMM whose weight is in `weights`: bf16 as
/// [`gemm_work`]; fp8: the e4m3 weight, the e4m3 activation and the bf16
/// output streamed (`nk + bk + 2bn` bytes, or the FLOPs on sizes padded to
/// 16, as `_scaled_mm` needs, past the fp8 ridge point), the first
/// `ramp_bytes` at the ramp's cost, the activation's dynamic quantization
/// (read twice, written once in e4m3: `5bk` bytes) elementwise, and one fixed
/// cost for the GEMM with its quantization kernels; int4: the packed weight
/// with its group scales and zeros and the bf16 activation and output
/// streamed, the ramp, tinygemm's FLOPs (on K padded to whole groups) and a
/// fixed cost.
pub fn gemm_work_in(b: u64, n: u64, k: u64, weights: WeightPrecision, form: &DecodeForm) -> Work {
    let (bf, nf, kf) = (b as f64, n as f64, k as f64);
    let mut w = [0.0; TOTAL];
    match weights {
        WeightPrecision::Bf16 => return gemm_work(b, n, k, form),
        WeightPrecision::Fp8 => {
            let bytes = nf * kf + bf * kf + 2.0 * bf * nf;
            let flops = 2.0 * bf * n.next_multiple_of(16) as f64 * k.next_multiple_of(16) as f64;
            if form.fp8_ridge_flops_per_byte > 0.0 && flops > form.fp8_ridge_flops_per_byte * bytes {
                w[r::FP8_FLOPS] = flops;
            } else {
                w[r::FP8_BYTES] = bytes;
                w[r::RAMP_BYTES] = bytes.min(form.ramp_bytes);
            }
            w[r::ELEMENTWISE] = 5.0 * bf * kf;
            w[r::FP8_GEMM] = 1.0;
        }
        WeightPrecision::Int4 => {
            let weight = WeightPrecision::Int4
                .matrix_bytes(n, k)
                .map_or(f64::INFINITY, |x| x as f64);
            let bytes = weight + 2.0 * bf * (kf + nf);
            w[r::INT4_BYTES] = bytes;
            w[r::RAMP_BYTES] = bytes.min(form.ramp_bytes);
            w[r::INT4_FLOPS] = 2.0 * bf * nf * k.div_ceil(INT4_GROUP) as f64 * INT4_GROUP as f64;
            w[r::INT4_GEMM] = 1.0;
        }
    }
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
    let mut w = [0.0; TOTAL];
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

/// [`attention_work`] over a cache in `kv_cache`: an fp8 cache reads one byte
/// per value at the same fitted rate as a bf16 one. No attention kernel on the
/// measured GPU reads an fp8 cache (calibration/README.md): this is the bytes
/// model, estimated, not measured.
pub fn attention_work_in(
    batch: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    cached: u64,
    kv_cache: KvCachePrecision,
) -> Work {
    let mut w = attention_work(batch, heads, kv_heads, head_dim, cached);
    if kv_cache == KvCachePrecision::Fp8 {
        for j in [r::KV_BYTES, r::KV_BYTES_WIDE_HEAD] {
            w[j] *= kv_cache.bytes_per_value() as f64 / BYTES_PER_VALUE as f64;
        }
    }
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
    let mut w = [0.0; TOTAL];
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
            let mut w = [0.0; TOTAL];
            let qk = ((h + kv) * hd) as f64;
            w[r::ELEMENTWISE] = match shape.precision.kv_cache {
                KvCachePrecision::Bf16 => v * b * (2.0 * 2.0 * df + 2.0 * 3.0 * df + 2.0 * qk + 2.0 * (kv * hd) as f64),
                // the K/V write in the cache's own bytes (its quantization fused into it)
                p => {
                    v * b * (2.0 * 2.0 * df + 2.0 * 3.0 * df + 2.0 * qk)
                        + p.bytes_per_value() as f64 * b * 2.0 * (kv * hd) as f64
                }
            };
            w[r::LAYER] = 1.0;
            w
        }
        1 => gemm_work_in(batch, (h + 2 * kv) * hd, d, shape.precision.weights, form),
        2 => attention_work_in(
            batch,
            h,
            kv,
            hd,
            cached_tokens(shape, context),
            shape.precision.kv_cache,
        ),
        3 => gemm_work_in(batch, d, h * hd, shape.precision.weights, form),
        4 => gemm_work_in(batch, 2 * f, d, shape.precision.weights, form),
        5 => elementwise_work(v * 3.0 * b * ff),
        6 => gemm_work_in(batch, d, f, shape.precision.weights, form),
        // Embedding gather and the final norm; the step's fixed cost.
        7 => {
            let mut w = [0.0; TOTAL];
            w[r::ELEMENTWISE] = v * 4.0 * b * df;
            w[r::STEP] = 1.0;
            w
        }
        // The LM head stays bf16 whatever the weights of the layers.
        _ => gemm_work(batch, shape.model.vocab_size?, d, form),
    })
}

/// The whole step's work: per-layer kernels times `num_layers`, plus the
/// step's own; `None` for a plain layer.
pub fn step_work(shape: &LayerShape, batch: u64, context: u64, form: &DecodeForm) -> Option<Work> {
    let layers = shape.model.num_layers? as f64;
    let mut total = [0.0; TOTAL];
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
    /// Milliseconds of `work` (every resource, precision ones included).
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
        fp8_ridge_flops_per_byte: 412.0,
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
    fn fp8_and_int4_gemms_stream_their_own_bytes() {
        let (n, k) = (4096u64, 14336u64);
        let fp8 = gemm_work_in(1, n, k, WeightPrecision::Fp8, &FORM);
        assert_eq!(fp8[r::FP8_BYTES], (n * k + k + 2 * n) as f64);
        assert_eq!((fp8[r::WEIGHT_BYTES], fp8[r::GEMM], fp8[r::FP8_GEMM]), (0.0, 0.0, 1.0));
        assert_eq!(fp8[r::ELEMENTWISE], 5.0 * k as f64);
        let int4 = gemm_work_in(4, n, k, WeightPrecision::Int4, &FORM);
        let weight = n * k / 2 + (k / 128) * n * 4;
        assert_eq!(int4[r::INT4_BYTES], weight as f64 + 2.0 * 4.0 * (k + n) as f64);
        assert_eq!(int4[r::INT4_FLOPS], 2.0 * 4.0 * (n * k) as f64);
        assert_eq!(
            gemm_work_in(3, n, k, WeightPrecision::Bf16, &FORM),
            gemm_work(3, n, k, &FORM)
        );
        // 1024 rows of fp8: past the fp8 ridge point, billed FLOPs
        let wide = gemm_work_in(1024, n, k, WeightPrecision::Fp8, &FORM);
        assert!(wide[r::FP8_FLOPS] > 0.0 && wide[r::FP8_BYTES] == 0.0);
    }

    #[test]
    fn an_fp8_cache_halves_the_bytes_attention_reads() {
        let bf = attention_work_in(16, 32, 8, 128, 8192, KvCachePrecision::Bf16);
        let f8 = attention_work_in(16, 32, 8, 128, 8192, KvCachePrecision::Fp8);
        assert_eq!(f8[r::KV_BYTES] * 2.0, bf[r::KV_BYTES]);
        assert_eq!(f8[r::ATTENTION], bf[r::ATTENTION]);
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
