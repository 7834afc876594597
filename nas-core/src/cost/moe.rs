//! The cost of one mixture-of-experts MLP layer on a GPU.
//!
//! ESTIMATED, NOT MEASURED: this body is a spec-sheet roofline (every kernel
//! takes the longer of its bytes at the data sheet's HBM bandwidth and its
//! FLOPs at the dense bf16 peak, no launch cost), a placeholder with the
//! signature the measured model will keep. Routing is balanced.

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// One MoE MLP layer's work: `tokens` rows of `hidden` in, each routed to
/// `top_k` of `experts` gated experts of `expert_ffn`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeMlpShape {
    pub tokens: u64,
    pub hidden: u64,
    pub expert_ffn: u64,
    pub experts: u64,
    pub top_k: u64,
    /// 1.0 is balanced routing; the busiest expert gets `imbalance` x the mean rows.
    pub imbalance: f64,
}

/// Whether a layer runs inside a prefill (the whole prompt) or a decode step (one token per sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Prefill,
    Decode,
}

/// Bytes of one bf16 value.
const ELEM: f64 = 2.0;

/// The spec sheet's HBM bandwidth (GB/s) and dense bf16 peak (TFLOP/s), or
/// an error naming the GPU: the roofline needs both.
pub(crate) fn peaks(gpu: &Gpu, what: &str) -> Result<(f64, f64)> {
    match (gpu.spec.hbm_gbps, gpu.spec.dense_bf16_tflops) {
        (Some(hbm), Some(peak)) if hbm > 0.0 && peak > 0.0 => Ok((hbm, peak)),
        _ => Err(Error::Hardware(format!(
            "hardware `{}`: the {what} estimate needs the spec sheet's HBM bandwidth and dense bf16 peak, \
             which this GPU does not declare",
            gpu.key
        ))),
    }
}

/// Roofline milliseconds of a kernel moving `bytes` and doing `flops`.
pub(crate) fn roofline_ms(bytes: f64, flops: f64, (hbm_gbps, peak_tflops): (f64, f64)) -> f64 {
    (bytes / (hbm_gbps * 1e9)).max(flops / (peak_tflops * 1e12)) * 1e3
}

/// Expected distinct experts that `tokens` tokens touch under uniform
/// routing: `experts * (1 - (1 - top_k/experts)^tokens)`.
pub fn experts_touched(experts: u64, top_k: u64, tokens: u64) -> f64 {
    let e = experts as f64;
    let miss = 1.0 - (top_k as f64 / e).min(1.0);
    e * (1.0 - miss.powf(tokens as f64))
}

/// Per-kernel ms of one MoE MLP layer (router GEMM + top-k, grouping, grouped gate-up, activation, grouped down, combine) on `gpu`; routed tokens balanced (imbalance 1.0 = balanced; the busiest expert gets imbalance x the mean rows). Decode: tokens = batch, experts read = experts * (1 - (1 - top_k/experts)^tokens).
///
/// Estimated, not measured (see the module): weights are read for the
/// experts touched, the grouped GEMMs' FLOPs scale with `imbalance` (the
/// busiest expert sets the pace), the prefill groups tokens by expert with a
/// copy of the routed rows, a decode step gathers them inside the GEMM.
pub fn moe_mlp_ms(gpu: &Gpu, shape: &MoeMlpShape, phase: Phase) -> Result<Vec<(&'static str, f64)>> {
    let p = peaks(gpu, "MoE")?;
    let (t, d, f, e) = (
        shape.tokens as f64,
        shape.hidden as f64,
        shape.expert_ffn as f64,
        shape.experts as f64,
    );
    let k = shape.top_k as f64;
    let imbalance = if shape.imbalance.is_finite() && shape.imbalance >= 1.0 {
        shape.imbalance
    } else {
        1.0
    };
    let rows = t * k;
    let touched = experts_touched(shape.experts, shape.top_k, shape.tokens);
    let grouping = match phase {
        Phase::Prefill => roofline_ms(ELEM * 2.0 * rows * d, 0.0, p),
        Phase::Decode => 0.0,
    };
    Ok(vec![
        (
            "moe_router",
            roofline_ms(ELEM * (d * e + t * d + t * e), 2.0 * t * d * e, p),
        ),
        ("moe_topk", roofline_ms(ELEM * t * e + 8.0 * rows, 0.0, p)),
        ("moe_grouping", grouping),
        (
            "moe_gate_up",
            roofline_ms(
                ELEM * (touched * d * 2.0 * f + rows * (d + 2.0 * f)),
                2.0 * rows * d * 2.0 * f * imbalance,
                p,
            ),
        ),
        ("moe_activation", roofline_ms(ELEM * 3.0 * rows * f, 0.0, p)),
        (
            "moe_down",
            roofline_ms(
                ELEM * (touched * f * d + rows * (f + d)),
                2.0 * rows * f * d * imbalance,
                p,
            ),
        ),
        ("moe_combine", roofline_ms(ELEM * (rows * d + t * d), 0.0, p)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_the_experts_a_batch_touches() {
        assert!((experts_touched(8, 2, 1) - 2.0).abs() < 1e-12);
        // 64 tokens of top-8 among 128: most experts, not all.
        let t = experts_touched(128, 8, 64);
        assert!(t > 120.0 && t < 128.0, "{t}");
        let gpu = crate::gpu::Registry::builtin()
            .resolve(&crate::gpu::GpuTarget::builtin("h200"))
            .unwrap();
        let shape = |tokens| MoeMlpShape {
            tokens,
            hidden: 4096,
            expert_ffn: 14336,
            experts: 8,
            top_k: 2,
            imbalance: 1.0,
        };
        let ms = |tokens| -> f64 {
            moe_mlp_ms(&gpu, &shape(tokens), Phase::Decode)
                .unwrap()
                .iter()
                .map(|(_, v)| v)
                .sum()
        };
        // One token reads 2 of 8 experts; 64 tokens read all 8: about 4x the bytes.
        let ratio = ms(64) / ms(1);
        assert!(ratio > 3.5 && ratio < 4.5, "{ratio}");
    }
}
