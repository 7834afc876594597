//! Deployment precision: the format a candidate's weights and KV cache are
//! served in. The rules live here once; shapes, memory, the cost models and
//! every front end (DSL, JSON spec, CLI) name the formats through this module.
//!
//! - `bf16`: two bytes per value (what a plain layer is).
//! - `fp8`: e4m3 values, one byte each, with one fp32 scale per tensor (per
//!   weight matrix; per layer for K and V); the activation entering each fp8
//!   GEMM is quantized on the fly (dynamic per-tensor: `amax / 448`), which is
//!   part of the GEMM's cost.
//! - `int4` (weights only): weight-only int4 with group-wise bf16 scales and
//!   zeros, groups of [`INT4_GROUP`] = 128 values along K; activations stay
//!   bf16 (the tinygemm layout PyTorch ships, `torch._weight_int4pack_mm`).
//!
//! Only the four attention projections (q, k, v, o) and the three MLP
//! matrices take the weight format: embeddings, norms and the LM head stay
//! bf16, as serving engines keep them (vLLM's fp8 and the GPTQ/AWQ int4
//! formats quantize the decoder layers' linear layers only).

use serde::{Deserialize, Serialize};

use crate::error::hint;

/// Values per int4 group: each group of 128 weights along K has its own bf16
/// scale and zero.
pub const INT4_GROUP: u64 = 128;

/// Bytes of the fp32 scale an fp8 tensor carries (one per tensor).
pub const FP8_SCALE_BYTES: u64 = 4;

/// The format of the projection and MLP weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightPrecision {
    #[default]
    Bf16,
    Fp8,
    Int4,
}

/// The format of the KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvCachePrecision {
    #[default]
    Bf16,
    Fp8,
}

impl WeightPrecision {
    pub const ALL: [WeightPrecision; 3] = [WeightPrecision::Bf16, WeightPrecision::Fp8, WeightPrecision::Int4];

    /// The word every front end uses: `bf16`, `fp8`, `int4`.
    pub fn name(self) -> &'static str {
        match self {
            WeightPrecision::Bf16 => "bf16",
            WeightPrecision::Fp8 => "fp8",
            WeightPrecision::Int4 => "int4",
        }
    }

    /// A weight format by its word; anything else is an error with a hint.
    pub fn from_name(name: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            format!(
                "unknown weight precision `{name}`{}; known: bf16, fp8 (e4m3, per-tensor scales), int4 \
                 (weight-only, group {INT4_GROUP})",
                hint(name, Self::ALL.map(|p| p.name()))
            )
        })
    }

    /// What the format is, in one phrase (for reports).
    pub fn describe(self) -> &'static str {
        match self {
            WeightPrecision::Bf16 => "bf16 weights",
            WeightPrecision::Fp8 => "fp8 weights (e4m3, per-tensor scales, dynamic per-tensor activation quantization)",
            WeightPrecision::Int4 => "int4 weights (weight-only, group 128, bf16 scales and zeros)",
        }
    }

    pub fn is_bf16(&self) -> bool {
        *self == WeightPrecision::Bf16
    }

    /// Bytes of one `[n, k]` weight matrix (`out = x @ W^T`, K the reduction)
    /// in this format, exactly: bf16 `2nk`; fp8 `nk` plus its fp32 scale;
    /// int4 `n * K' / 2` packed (K' = K rounded up to whole groups: the
    /// packer pads) plus a bf16 scale and zero per group and output,
    /// `(K'/128) * n * 2 * 2`. `None` if the count overflows a u64.
    pub fn matrix_bytes(self, n: u64, k: u64) -> Option<u64> {
        match self {
            WeightPrecision::Bf16 => n.checked_mul(k)?.checked_mul(2),
            WeightPrecision::Fp8 => n.checked_mul(k)?.checked_add(FP8_SCALE_BYTES),
            WeightPrecision::Int4 => {
                let groups = k.div_ceil(INT4_GROUP);
                let packed = n.checked_mul(groups)?.checked_mul(INT4_GROUP / 2)?;
                packed.checked_add(groups.checked_mul(n)?.checked_mul(4)?)
            }
        }
    }
}

impl KvCachePrecision {
    pub const ALL: [KvCachePrecision; 2] = [KvCachePrecision::Bf16, KvCachePrecision::Fp8];

    pub fn name(self) -> &'static str {
        match self {
            KvCachePrecision::Bf16 => "bf16",
            KvCachePrecision::Fp8 => "fp8",
        }
    }

    pub fn from_name(name: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            format!(
                "unknown KV-cache precision `{name}`{}; known: bf16, fp8 (e4m3, per-tensor scales)",
                hint(name, Self::ALL.map(|p| p.name()))
            )
        })
    }

    pub fn is_bf16(&self) -> bool {
        *self == KvCachePrecision::Bf16
    }

    /// Bytes of one cached K or V value: bf16 2, fp8 1 (the per-layer scales
    /// of K and V are a few bytes per layer, not per token).
    pub fn bytes_per_value(self) -> u64 {
        match self {
            KvCachePrecision::Bf16 => 2,
            KvCachePrecision::Fp8 => 1,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            KvCachePrecision::Bf16 => "bf16 KV cache",
            KvCachePrecision::Fp8 => "fp8 KV cache (e4m3, per-tensor scales)",
        }
    }
}

impl std::fmt::Display for WeightPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for KvCachePrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A candidate's deployment precision. Both parts are omitted from JSON when
/// bf16, so a bf16 shape serializes exactly as before precision existed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Precision {
    #[serde(default, skip_serializing_if = "WeightPrecision::is_bf16")]
    pub weights: WeightPrecision,
    #[serde(default, skip_serializing_if = "KvCachePrecision::is_bf16")]
    pub kv_cache: KvCachePrecision,
}

impl Precision {
    /// bf16 weights and KV cache: every plain layer.
    pub const BF16: Precision = Precision {
        weights: WeightPrecision::Bf16,
        kv_cache: KvCachePrecision::Bf16,
    };

    pub const fn new(weights: WeightPrecision, kv_cache: KvCachePrecision) -> Self {
        Precision { weights, kv_cache }
    }

    pub fn is_bf16(&self) -> bool {
        self.weights.is_bf16() && self.kv_cache.is_bf16()
    }

    /// The label a report row carries: `None` for bf16 (the seed's schema has no such key).
    pub fn report_label(&self) -> Option<String> {
        (!self.is_bf16()).then(|| self.label())
    }

    /// A short label for report rows: `bf16`, `fp8`, `int4`, `fp8 + fp8 KV`, `bf16 + fp8 KV`.
    pub fn label(&self) -> String {
        match self.kv_cache {
            KvCachePrecision::Bf16 => self.weights.name().to_string(),
            KvCachePrecision::Fp8 => format!("{} + fp8 KV", self.weights.name()),
        }
    }
}

/// Which formats a GPU's tensor cores and kernels run, as its spec sheet says:
/// fp8 needs fp8 tensor cores (a dense fp8 peak on the sheet: Hopper, Ada);
/// int4 weight-only needs bf16 tensor cores (sm80 and later: the int4 kernels
/// dequantize into bf16 MMAs; the T4 has fp16 ones only).
pub fn supported_weights(sheet: &crate::gpu::SpecSheet) -> Vec<WeightPrecision> {
    WeightPrecision::ALL
        .into_iter()
        .filter(|p| match p {
            WeightPrecision::Bf16 => true,
            WeightPrecision::Fp8 => sheet.dense_fp8_tflops.is_some(),
            WeightPrecision::Int4 => sheet.bf16_tensor_cores == Some(true),
        })
        .collect()
}

/// KV-cache formats a GPU's attention kernels can read: fp8 needs fp8
/// conversion in hardware (the GPUs with fp8 tensor cores).
pub fn supported_kv_cache(sheet: &crate::gpu::SpecSheet) -> Vec<KvCachePrecision> {
    KvCachePrecision::ALL
        .into_iter()
        .filter(|p| match p {
            KvCachePrecision::Bf16 => true,
            KvCachePrecision::Fp8 => sheet.dense_fp8_tflops.is_some(),
        })
        .collect()
}

/// Whether a GPU with this spec sheet runs `precision`; the error names the
/// GPU (`who`), the format and what the GPU does support.
pub fn check_supported(sheet: &crate::gpu::SpecSheet, who: &str, precision: &Precision) -> Result<(), String> {
    let weights = supported_weights(sheet);
    if !weights.contains(&precision.weights) {
        let why = match precision.weights {
            WeightPrecision::Fp8 => "it has no fp8 tensor cores",
            _ => "it has no bf16 tensor cores for the int4 kernels",
        };
        return Err(format!(
            "hardware `{who}` cannot run {} weights: {why} (its kernels run {} weights)",
            precision.weights,
            weights.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
        ));
    }
    let kv = supported_kv_cache(sheet);
    if !kv.contains(&precision.kv_cache) {
        return Err(format!(
            "hardware `{who}` cannot read an fp8 KV cache: it has no fp8 conversion in its tensor cores \
             (its kernels read a {} KV cache)",
            kv.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::spec_sheet::{A100, H100, H200, T4};

    #[test]
    fn bytes_follow_the_format_exactly() {
        let (n, k) = (4096u64, 14336u64);
        assert_eq!(WeightPrecision::Bf16.matrix_bytes(n, k), Some(2 * n * k));
        assert_eq!(WeightPrecision::Fp8.matrix_bytes(n, k), Some(n * k + 4));
        // K a multiple of the group: N*K/2 + (K/128)*N*2*2, the issue's formula.
        assert_eq!(
            WeightPrecision::Int4.matrix_bytes(n, k),
            Some(n * k / 2 + (k / 128) * n * 2 * 2)
        );
        // K not a multiple: the packer pads to whole groups.
        assert_eq!(
            WeightPrecision::Int4.matrix_bytes(8, 130),
            Some(8 * 256 / 2 + 2 * 8 * 4)
        );
        assert_eq!(WeightPrecision::Bf16.matrix_bytes(u64::MAX, 3), None);
        assert_eq!(KvCachePrecision::Fp8.bytes_per_value(), 1);
        assert_eq!(KvCachePrecision::Bf16.bytes_per_value(), 2);
    }

    #[test]
    fn names_round_trip_and_unknown_ones_get_a_hint() {
        for p in WeightPrecision::ALL {
            assert_eq!(WeightPrecision::from_name(p.name()), Ok(p));
        }
        let e = WeightPrecision::from_name("fp16").unwrap_err();
        assert!(
            e.contains("unknown weight precision `fp16`") && e.contains("did you mean"),
            "{e}"
        );
        let e = KvCachePrecision::from_name("int4").unwrap_err();
        assert!(e.contains("unknown KV-cache precision `int4`"), "{e}");
        let p = Precision::new(WeightPrecision::Fp8, KvCachePrecision::Fp8);
        assert_eq!(p.label(), "fp8 + fp8 KV");
        assert_eq!(serde_json::to_string(&Precision::BF16).unwrap(), "{}");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"weights":"fp8","kv_cache":"fp8"}"#
        );
    }

    #[test]
    fn gpus_run_what_their_tensor_cores_support() {
        let fp8 = Precision::new(WeightPrecision::Fp8, KvCachePrecision::Bf16);
        let int4 = Precision::new(WeightPrecision::Int4, KvCachePrecision::Bf16);
        let kv8 = Precision::new(WeightPrecision::Bf16, KvCachePrecision::Fp8);
        for sheet in [&H100, &H200] {
            for p in [fp8, int4, kv8] {
                assert_eq!(check_supported(sheet, "x", &p), Ok(()));
            }
        }
        let e = check_supported(&T4, "t4", &fp8).unwrap_err();
        assert_eq!(
            e,
            "hardware `t4` cannot run fp8 weights: it has no fp8 tensor cores (its kernels run bf16 weights)"
        );
        let e = check_supported(&T4, "t4", &int4).unwrap_err();
        assert!(
            e.contains("cannot run int4 weights: it has no bf16 tensor cores"),
            "{e}"
        );
        let e = check_supported(&A100, "a100", &fp8).unwrap_err();
        assert!(e.contains("(its kernels run bf16, int4 weights)"), "{e}");
        assert_eq!(check_supported(&A100, "a100", &int4), Ok(()));
        let e = check_supported(&A100, "a100", &kv8).unwrap_err();
        assert!(e.contains("cannot read an fp8 KV cache"), "{e}");
    }
}
