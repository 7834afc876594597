//! The cost of DeepSeek's multi-head latent attention (the attention half of
//! a layer) on a GPU.
//!
//! ESTIMATED, NOT MEASURED: this body is a spec-sheet roofline (every kernel
//! takes the longer of its bytes at the data sheet's HBM bandwidth and its
//! FLOPs at the dense bf16 peak, no launch cost), a placeholder with the
//! signatures the measured model will keep.

use super::moe::{peaks, roofline_ms};
use crate::error::Result;
use crate::gpu::Gpu;

/// The sizes of one latent-attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlaShape {
    pub hidden: u64,
    pub heads: u64,
    pub q_lora_rank: Option<u64>,
    pub kv_lora_rank: u64,
    pub qk_nope_head_dim: u64,
    pub qk_rope_head_dim: u64,
    pub v_head_dim: u64,
}

const ELEM: f64 = 2.0;

/// A GEMM of `m` rows, `k` in, `n` out: (bytes, flops).
fn gemm(m: f64, k: f64, n: f64) -> (f64, f64) {
    (ELEM * (k * n + m * (k + n)), 2.0 * m * k * n)
}

/// The query projections: `q_a_proj`, its norm and `q_b_proj`, or `q_proj`.
fn q_projection(a: &MlaShape, m: f64) -> (f64, f64) {
    let (d, h) = (a.hidden as f64, a.heads as f64);
    let q_out = h * (a.qk_nope_head_dim + a.qk_rope_head_dim) as f64;
    match a.q_lora_rank {
        Some(r) => {
            let r = r as f64;
            let (b1, f1) = gemm(m, d, r);
            let (b2, f2) = gemm(m, r, q_out);
            (b1 + b2 + ELEM * 2.0 * m * r, f1 + f2)
        }
        None => gemm(m, d, q_out),
    }
}

/// Prefill in the expanded form (per-kernel ms of the attention half of a layer: projections, norms, attention, output projection).
///
/// Estimated, not measured: keys and values are expanded from the latent
/// (`kv_b_proj`) and attention is causal over `seq_len` (half the square).
pub fn mla_prefill_ms(gpu: &Gpu, a: &MlaShape, batch: u64, seq_len: u64) -> Result<Vec<(&'static str, f64)>> {
    let p = peaks(gpu, "MLA")?;
    let m = (batch as f64) * (seq_len as f64);
    let (d, h, s) = (a.hidden as f64, a.heads as f64, seq_len as f64);
    let (nope, rope, v, r) = (
        a.qk_nope_head_dim as f64,
        a.qk_rope_head_dim as f64,
        a.v_head_dim as f64,
        a.kv_lora_rank as f64,
    );
    let q = q_projection(a, m);
    let kv_a = gemm(m, d, r + rope);
    let kv_b = gemm(m, r, h * (nope + v));
    let attention_flops = 2.0 * (batch as f64) * h * s * s * (nope + rope + v) / 2.0;
    let attention_bytes = ELEM * m * h * (2.0 * (nope + rope) + 2.0 * v);
    let o = gemm(m, h * v, d);
    Ok(vec![
        ("mla_q_projection", roofline_ms(q.0, q.1, p)),
        ("mla_kv_a_projection", roofline_ms(kv_a.0, kv_a.1, p)),
        ("mla_kv_norm", roofline_ms(ELEM * 2.0 * m * r, 0.0, p)),
        ("mla_kv_b_projection", roofline_ms(kv_b.0, kv_b.1, p)),
        ("mla_attention", roofline_ms(attention_bytes, attention_flops, p)),
        ("mla_output_projection", roofline_ms(o.0, o.1, p)),
    ])
}

/// Decode in the absorbed form (attention over the latent cache of `context` tokens).
///
/// Estimated, not measured: `kv_b_proj` is absorbed into the query (W_UK)
/// and the output (W_UV), attention reads `kv_lora_rank + qk_rope_head_dim`
/// values per cached token and does its dot products in the latent width.
pub fn mla_decode_ms(gpu: &Gpu, a: &MlaShape, batch: u64, context: u64) -> Result<Vec<(&'static str, f64)>> {
    let p = peaks(gpu, "MLA")?;
    let b = batch as f64;
    let (d, h, c) = (a.hidden as f64, a.heads as f64, context as f64);
    let (nope, rope, v, r) = (
        a.qk_nope_head_dim as f64,
        a.qk_rope_head_dim as f64,
        a.v_head_dim as f64,
        a.kv_lora_rank as f64,
    );
    let q = q_projection(a, b);
    let kv_a = gemm(b, d, r + rope);
    // W_UK (h x nope x r) on the query, W_UV (h x r x v) on the output: kv_b's weights, read once.
    let absorb_bytes = ELEM * (h * (nope + v) * r + b * h * (nope + 2.0 * r + v));
    let absorb_flops = 2.0 * b * h * r * (nope + v);
    let attention_bytes = ELEM * (b * c * (r + rope) + b * h * (2.0 * r + rope));
    let attention_flops = 2.0 * b * h * c * (r + rope) + 2.0 * b * h * c * r;
    let o = gemm(b, h * v, d);
    Ok(vec![
        ("mla_q_projection", roofline_ms(q.0, q.1, p)),
        ("mla_kv_a_projection", roofline_ms(kv_a.0, kv_a.1, p)),
        ("mla_absorbed_projections", roofline_ms(absorb_bytes, absorb_flops, p)),
        ("mla_attention", roofline_ms(attention_bytes, attention_flops, p)),
        ("mla_output_projection", roofline_ms(o.0, o.1, p)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DeepSeek-V3's attention: the absorbed decode reads the latent cache,
    /// so its attention time grows with the context; the prefill's grows
    /// with the square of the sequence.
    #[test]
    fn decode_reads_the_latent_cache_and_prefill_is_quadratic() {
        let gpu = crate::gpu::Registry::builtin()
            .resolve(&crate::gpu::GpuTarget::builtin("h200"))
            .unwrap();
        let a = MlaShape {
            hidden: 7168,
            heads: 128,
            q_lora_rank: Some(1536),
            kv_lora_rank: 512,
            qk_nope_head_dim: 128,
            qk_rope_head_dim: 64,
            v_head_dim: 128,
        };
        let attention = |v: Vec<(&'static str, f64)>| v.iter().find(|(k, _)| *k == "mla_attention").unwrap().1;
        let short = attention(mla_decode_ms(&gpu, &a, 64, 4096).unwrap());
        let long = attention(mla_decode_ms(&gpu, &a, 64, 32768).unwrap());
        assert!(long > 6.0 * short, "{short} {long}");
        // 64 sequences x 32768 tokens x 576 values x 2 bytes at 4.8 TB/s is at least this long.
        assert!(long >= 64.0 * 32768.0 * 576.0 * 2.0 / 4.8e12 * 1e3);
        let p1 = attention(mla_prefill_ms(&gpu, &a, 1, 4096).unwrap());
        let p2 = attention(mla_prefill_ms(&gpu, &a, 1, 8192).unwrap());
        assert!((p2 / p1 - 4.0).abs() < 0.2, "{p1} {p2}");
    }
}
