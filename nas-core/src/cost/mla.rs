//! Multi-head latent attention (DeepSeek-V2/V3): the attention half of a
//! layer in prefill (expanded form) and decode (absorbed form), built from the
//! GPU's fitted layer and decode models (GEMMs, memory-bound bytes, launches)
//! plus the few constants only MLA has, fitted to the H200 measurements of
//! `calibration/harness/moe_mla.py` (`MLA_RESOURCES`).
//!
//! Prefill, expanded: RMSNorm; q = x Wq (or q_a = x Wqa, RMSNorm, q = q_a Wqb);
//! [c_kv, k_pe] = x Wkva, RMSNorm(c_kv), [k_nope, v] = c_kv Wkvb; RoPE and the
//! concatenations; causal attention with qk dim nope + rope and v dim
//! `v_head_dim` (its own fitted rate: cuDNN attention with unequal head dims);
//! o = attn Wo; residual. GEMMs and bytes at the layer model's fitted rates.
//!
//! Decode, absorbed: the projections at the decode model's rates; q_nope
//! absorbed through W_UK and the output through W_UV (batched GEMMs that read
//! those weights: `mla_absorb_bytes`); attention over the latent cache of
//! `kv_lora_rank + qk_rope_head_dim` values per token as batched GEMMs (the
//! cache read twice, `mla_latent_cache_bytes`; the fp32 scores written and
//! read, `mla_score_bytes`; their FLOPs, `mla_decode_attention_flops`) and a
//! fixed cost for the layer's many small kernels (`mla_decode_layer`).

use crate::calibrate::CalibrationProfile;
use crate::cost::decode::{self as dm, DecodeConstants};
use crate::cost::kernel_aware::{self as ka, Unit, BLOCK};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuCost, PeakUnit};

/// The attention of one MLA layer.
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

/// MLA's own fitted resources: name, unit, bounding peak.
pub const MLA_RESOURCES: [(&str, Unit, Option<PeakUnit>); 6] = [
    (
        "mla_prefill_attention_flops",
        Unit::Flops,
        Some(PeakUnit::DenseBf16Tflops),
    ),
    ("mla_absorb_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("mla_latent_cache_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("mla_score_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    (
        "mla_decode_attention_flops",
        Unit::Flops,
        Some(PeakUnit::DenseBf16Tflops),
    ),
    ("mla_decode_layer", Unit::Launches, None),
];

/// Number of MLA resources.
pub const COUNT: usize = MLA_RESOURCES.len();

/// Work on MLA's own resources.
pub type Work = [f64; COUNT];

/// Kernels of the prefill attention half, in order.
pub const MLA_PREFILL_KERNELS: [&str; 7] = [
    "mla_input_norm",
    "mla_q_projection",
    "mla_kv_projection",
    "mla_rope",
    "mla_attention",
    "mla_output_projection",
    "mla_residual",
];

/// Kernels of the decode attention half, in order.
pub const MLA_DECODE_KERNELS: [&str; 9] = [
    "mla_input_norm",
    "mla_q_projection",
    "mla_kv_projection",
    "mla_rope",
    "mla_absorb",
    "mla_attention",
    "mla_output_projection",
    "mla_residual",
    "mla_small_kernels",
];

/// Most heads or rank an MLA shape may have (each size at most 2^24 too).
const ELEM: f64 = 2.0;

/// What MLA borrows from a GPU's other models: GEMMs, memory-bound bytes
/// and launches, fitted (a measured profile) or a spec-sheet roofline.
#[derive(Clone, Copy, Debug)]
pub enum Base<'a> {
    Fitted(&'a CalibrationProfile),
    Roofline { hbm_gbps: f64, dense_tflops: f64 },
}

impl Base<'_> {
    fn layer(&self, name: &str) -> f64 {
        match self {
            Base::Fitted(p) => p.fitted.get(name).map_or(0.0, |f| f.ms_per_unit),
            Base::Roofline { .. } => 0.0,
        }
    }

    fn decode(&self) -> Option<DecodeConstants> {
        match self {
            Base::Fitted(p) => p.decode_model.as_ref().map(|d| d.constants()),
            Base::Roofline { .. } => None,
        }
    }

    fn roofline(&self, flops: f64, bytes: f64) -> f64 {
        match *self {
            Base::Roofline { hbm_gbps, dense_tflops } => (flops / (dense_tflops * 1e9)).max(bytes / (hbm_gbps * 1e6)),
            Base::Fitted(_) => 0.0,
        }
    }

    /// A prefill GEMM `out[m, n] = a[m, k] @ w[n, k]^T`.
    pub fn prefill_gemm_ms(&self, m: u64, n: u64, k: u64) -> f64 {
        match self {
            Base::Fitted(p) => {
                let model = p.model();
                let w = ka::gemm_work(m, n, k, model.sm_count, model.ridge_flops_per_byte);
                w[0] * self.layer("gemm_flops")
                    + w[1] * self.layer("gemm_misaligned_flops")
                    + w[2] * self.layer("gemm_bytes")
            }
            Base::Roofline { .. } => {
                let (m, n, k) = (m as f64, n as f64, k as f64);
                self.roofline(2.0 * m * n * k, ELEM * (m * k + n * k + m * n))
            }
        }
    }

    /// Memory-bound bytes of a prefill kernel.
    pub fn prefill_bytes_ms(&self, bytes: f64) -> f64 {
        match self {
            Base::Fitted(_) => bytes * self.layer("elementwise_bytes"),
            Base::Roofline { .. } => self.roofline(0.0, bytes),
        }
    }

    /// One kernel launch in a prefill layer.
    pub fn prefill_launch_ms(&self) -> f64 {
        self.layer("kernel_launch")
    }

    /// A decode GEMM of `b` rows (the decode model's, where the profile has one).
    pub fn decode_gemm_ms(&self, b: u64, n: u64, k: u64) -> f64 {
        match self.decode() {
            Some(c) => c.ms(&dm::gemm_work(b, n, k, &c.form)),
            None => self.prefill_gemm_ms(b, n, k) + self.prefill_launch_ms(),
        }
    }

    /// Memory-bound bytes of a decode kernel (no launch).
    pub fn decode_bytes_ms(&self, bytes: f64) -> f64 {
        match self.decode() {
            Some(c) => c.ms(&dm::elementwise_work(bytes)) - c.ms(&dm::elementwise_work(0.0)),
            None => self.prefill_bytes_ms(bytes),
        }
    }

    /// One fused memory-bound decode kernel's fixed cost.
    pub fn decode_kernel_ms(&self) -> f64 {
        match self.decode() {
            Some(c) => c.ms(&dm::elementwise_work(0.0)),
            None => self.prefill_launch_ms(),
        }
    }
}

/// One kernel: milliseconds from the borrowed models, and work on MLA's own resources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Part {
    pub name: &'static str,
    pub base_ms: f64,
    pub work: Work,
}

fn part(name: &'static str, base_ms: f64, entries: &[(usize, f64)]) -> Part {
    let mut work = [0.0; COUNT];
    for (i, v) in entries {
        work[*i] += v;
    }
    Part { name, base_ms, work }
}

/// Checks a shape and a workload: every size from 1 to 2^24 (a rank of
/// `None` is no q compression). Errors name the field.
pub fn check_shape(a: &MlaShape, batch: u64, tokens_name: &str, tokens: u64) -> std::result::Result<(), String> {
    let max = crate::shapes::MAX_DIM;
    for (name, v) in [
        ("hidden", a.hidden),
        ("heads", a.heads),
        ("kv_lora_rank", a.kv_lora_rank),
        ("qk_nope_head_dim", a.qk_nope_head_dim),
        ("qk_rope_head_dim", a.qk_rope_head_dim),
        ("v_head_dim", a.v_head_dim),
        ("q_lora_rank", a.q_lora_rank.unwrap_or(1)),
        ("batch", batch),
        (tokens_name, tokens),
    ] {
        if v == 0 {
            return Err(format!("`{name}` must be at least 1"));
        }
        if v > max {
            return Err(format!("`{name}` = {v} is absurdly large (the limit is {max})"));
        }
    }
    Ok(())
}

/// The prefill kernels of `batch` sequences of `seq_len` tokens.
pub fn prefill_parts(base: &Base, a: &MlaShape, batch: u64, seq_len: u64) -> Vec<Part> {
    let t = batch * seq_len;
    let (d, h, kl) = (a.hidden, a.heads, a.kv_lora_rank);
    let (dn, dr, dv) = (a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim);
    let (tf, df, hf) = (t as f64, d as f64, h as f64);
    let launch = base.prefill_launch_ms();
    let q = match a.q_lora_rank {
        Some(ql) => {
            base.prefill_gemm_ms(t, ql, d)
                + base.prefill_bytes_ms(ELEM * 2.0 * tf * ql as f64)
                + base.prefill_gemm_ms(t, h * (dn + dr), ql)
                + 3.0 * launch
        }
        None => base.prefill_gemm_ms(t, h * (dn + dr), d) + launch,
    };
    let kv = base.prefill_gemm_ms(t, kl + dr, d)
        + base.prefill_bytes_ms(ELEM * 2.0 * tf * kl as f64)
        + base.prefill_gemm_ms(t, h * (dn + dv), kl)
        + 3.0 * launch;
    // RoPE on q_pe and k_pe, q and k assembled per head, v made contiguous
    let rope_bytes = ELEM * tf * hf * (2.0 * (dn + dr) as f64 + (dn + dr) as f64 + (dn + dv) as f64);
    let blocks = ka::attention_blocks(seq_len, None) as f64;
    let attn_flops = 2.0 * batch as f64 * hf * blocks * (BLOCK * BLOCK) as f64 * (dn + dr + dv) as f64;
    vec![
        part(
            "mla_input_norm",
            base.prefill_bytes_ms(ELEM * 2.0 * tf * df) + launch,
            &[],
        ),
        part("mla_q_projection", q, &[]),
        part("mla_kv_projection", kv, &[]),
        part("mla_rope", base.prefill_bytes_ms(rope_bytes) + 2.0 * launch, &[]),
        part("mla_attention", launch, &[(0, attn_flops)]),
        part(
            "mla_output_projection",
            base.prefill_gemm_ms(t, d, h * dv) + launch,
            &[],
        ),
        part(
            "mla_residual",
            base.prefill_bytes_ms(ELEM * 3.0 * tf * df) + launch,
            &[],
        ),
    ]
}

/// The decode kernels of `batch` sequences with `context` tokens cached
/// before the new one (attention reads `context + 1`).
pub fn decode_parts(base: &Base, a: &MlaShape, batch: u64, context: u64) -> Vec<Part> {
    let keys = context as f64 + 1.0;
    let (d, h, kl) = (a.hidden, a.heads, a.kv_lora_rank);
    let (dn, dr, dv) = (a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim);
    let (b, df, hf, klf) = (batch as f64, d as f64, h as f64, kl as f64);
    let kernel = base.decode_kernel_ms();
    let q = match a.q_lora_rank {
        Some(ql) => {
            base.decode_gemm_ms(batch, ql, d)
                + base.decode_bytes_ms(ELEM * 2.0 * b * ql as f64)
                + kernel
                + base.decode_gemm_ms(batch, h * (dn + dr), ql)
        }
        None => base.decode_gemm_ms(batch, h * (dn + dr), d),
    };
    let kv = base.decode_gemm_ms(batch, kl + dr, d) + base.decode_bytes_ms(ELEM * 2.0 * b * klf) + kernel;
    let rope_bytes = ELEM * (4.0 * b * hf * (dn + dr) as f64 + b * (kl + dr) as f64);
    let absorb = ELEM * (hf * (dn + dv) as f64 * klf + b * hf * (dn as f64 + 2.0 * klf + dv as f64));
    let cache = ELEM * b * keys * ((kl + dr) as f64 + klf);
    let scores = 12.0 * b * hf * keys;
    let flops = 2.0 * b * hf * keys * (2.0 * klf + dr as f64);
    vec![
        part(
            "mla_input_norm",
            base.decode_bytes_ms(ELEM * 2.0 * b * df) + kernel,
            &[],
        ),
        part("mla_q_projection", q, &[]),
        part("mla_kv_projection", kv, &[]),
        part("mla_rope", base.decode_bytes_ms(rope_bytes) + kernel, &[]),
        part("mla_absorb", 0.0, &[(1, absorb)]),
        part("mla_attention", 0.0, &[(2, cache), (3, scores), (4, flops)]),
        part("mla_output_projection", base.decode_gemm_ms(batch, d, h * dv), &[]),
        part("mla_residual", base.decode_bytes_ms(ELEM * 3.0 * b * df) + kernel, &[]),
        part("mla_small_kernels", 0.0, &[(5, 1.0)]),
    ]
}

/// Milliseconds of each part under MLA's own constants.
pub fn parts_ms(parts: &[Part], mla: &[f64; COUNT]) -> Vec<(&'static str, f64)> {
    parts
        .iter()
        .map(|p| {
            (
                p.name,
                p.base_ms + p.work.iter().zip(mla).map(|(w, c)| w * c).sum::<f64>(),
            )
        })
        .collect()
}

/// What a GPU's MLA predictions use: the borrowed models, MLA's own
/// constants, and where they come from.
pub fn mla_constants(gpu: &Gpu) -> Result<(Base<'_>, [f64; COUNT], String)> {
    if let GpuCost::Measured(m) = &gpu.cost {
        if let Some(fit) = &m.profile.mla_model {
            return Ok((Base::Fitted(&m.profile), fit.constants(), mla_source(gpu)));
        }
    }
    let (Some(hbm), Some(peak)) = (gpu.spec.hbm_gbps, gpu.spec.dense_bf16_tflops) else {
        return Err(Error::Hardware(format!(
            "hardware `{}` has no MLA fit and no spec-sheet HBM bandwidth and bf16 peak for a roofline estimate",
            gpu.key
        )));
    };
    let mut c = [0.0; COUNT];
    for (slot, (_, unit, _)) in c.iter_mut().zip(MLA_RESOURCES) {
        *slot = match unit {
            Unit::Flops => 1.0 / (peak * 1e9),
            Unit::Bytes => 1.0 / (hbm * 1e6),
            Unit::Launches => 0.0,
        };
    }
    Ok((
        Base::Roofline {
            hbm_gbps: hbm,
            dense_tflops: peak,
        },
        c,
        mla_source(gpu),
    ))
}

/// Whether `gpu`'s profile has a fitted (or transferred) `mla_model` section;
/// without one its MLA times are spec-sheet roofline estimates.
pub fn mla_is_fitted(gpu: &Gpu) -> bool {
    matches!(&gpu.cost, GpuCost::Measured(m) if m.profile.mla_model.is_some())
}

/// Where a GPU's MLA numbers come from, in one sentence.
pub fn mla_source(gpu: &Gpu) -> String {
    if let GpuCost::Measured(m) = &gpu.cost {
        if let Some(fit) = &m.profile.mla_model {
            let held = ["validation_mla_prefill", "validation_mla_decode"]
                .iter()
                .filter_map(|k| {
                    fit.residuals
                        .get(*k)
                        .map(|s| format!("{k} MAPE {:.2}% on {}", s.mape_pct, s.rows))
                })
                .collect::<Vec<_>>();
            let held = if held.is_empty() {
                "no held-out configs".to_string()
            } else {
                held.join(", ")
            };
            return match &fit.transferred_from {
                Some(from) => format!(
                    "MLA constants transferred from {from} through the two spec sheets (not measured on this GPU; \
                     on its own GPU {held}), GEMMs and bytes from this GPU's layer and decode models"
                ),
                None => format!(
                    "MLA constants fitted on {} records of {} measured on {} ({held}), GEMMs and bytes from the \
                     layer and decode models",
                    fit.records,
                    fit.trained_on.join(", "),
                    m.profile.gpu
                ),
            };
        }
    }
    "spec-sheet roofline estimate (FLOPs at the dense bf16 peak, bytes at HBM bandwidth, no fixed costs): no MLA \
     layer was measured on this GPU"
        .to_string()
}

/// Prefill in the expanded form (per-kernel ms of the attention half of a layer: norms, q (down, norm, up) and kv (down, norm, up) projections, RoPE, attention with qk dim nope+rope and v dim v_head_dim, output projection).
pub fn mla_prefill_ms(
    gpu: &crate::gpu::Gpu,
    a: &MlaShape,
    batch: u64,
    seq_len: u64,
) -> crate::error::Result<Vec<(&'static str, f64)>> {
    check_shape(a, batch, "seq_len", seq_len).map_err(|p| Error::shape("mla", p))?;
    let (base, c, _) = mla_constants(gpu)?;
    Ok(parts_ms(&prefill_parts(&base, a, batch, seq_len), &c))
}

/// Decode in the absorbed form (q absorbed into the latent space, attention over the latent cache of kv_lora_rank + qk_rope_head_dim values per token, output absorbed).
pub fn mla_decode_ms(
    gpu: &crate::gpu::Gpu,
    a: &MlaShape,
    batch: u64,
    context: u64,
) -> crate::error::Result<Vec<(&'static str, f64)>> {
    check_shape(a, batch, "context", context.max(1)).map_err(|p| Error::shape("mla", p))?;
    let (base, c, _) = mla_constants(gpu)?;
    Ok(parts_ms(&decode_parts(&base, a, batch, context), &c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: MlaShape = MlaShape {
        hidden: 7168,
        heads: 128,
        q_lora_rank: Some(1536),
        kv_lora_rank: 512,
        qk_nope_head_dim: 128,
        qk_rope_head_dim: 64,
        v_head_dim: 128,
    };

    #[test]
    fn decode_reads_the_latent_cache_and_grows_with_context() {
        let base = Base::Roofline {
            hbm_gbps: 4800.0,
            dense_tflops: 989.4,
        };
        let parts = decode_parts(&base, &V3, 4, 4095);
        let attn = parts.iter().find(|p| p.name == "mla_attention").unwrap();
        // the cache read twice: 576 values, then 512, per token, per sequence
        assert_eq!(attn.work[2], 2.0 * 4.0 * 4096.0 * (576.0 + 512.0));
        let total = |ctx| {
            parts_ms(&decode_parts(&base, &V3, 4, ctx), &[1e-12; COUNT])
                .iter()
                .map(|x| x.1)
                .sum::<f64>()
        };
        assert!(total(32767) > total(1023));
        let prefill = prefill_parts(&base, &V3, 1, 4096);
        assert_eq!(prefill.len(), MLA_PREFILL_KERNELS.len());
        let attn = prefill.iter().find(|p| p.name == "mla_attention").unwrap();
        assert_eq!(attn.work[0], 2.0 * 128.0 * (32.0 * 33.0 / 2.0) * 16384.0 * 320.0);
    }

    #[test]
    fn bad_shapes_name_their_field() {
        assert!(check_shape(&V3, 1, "context", 1).is_ok());
        let e = check_shape(&MlaShape { heads: 0, ..V3 }, 1, "context", 1).unwrap_err();
        assert!(e.contains("`heads` must be at least 1"), "{e}");
        let e = check_shape(
            &MlaShape {
                q_lora_rank: Some(0),
                ..V3
            },
            1,
            "context",
            1,
        )
        .unwrap_err();
        assert!(e.contains("`q_lora_rank`"), "{e}");
        let e = check_shape(&V3, 1 << 30, "context", 1).unwrap_err();
        assert!(e.contains("`batch` = 1073741824 is absurdly large"), "{e}");
    }
}
