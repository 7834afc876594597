//! What a GPU's data sheet says: the physical limits no fitted constant may
//! exceed, and the sizes (SMs, L2, memory) that kernels are quantized by and
//! memory fits are checked against.

use std::borrow::Cow;

/// A GPU's published (or, where said, driver-reported) figures. Every field a
/// user's own GPU leaves out is `None`; a built-in GPU has them all but
/// `fp8_dense_tflops` on GPUs without fp8 tensor cores.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecSheet {
    /// Streaming multiprocessors: GEMM tiles run in waves of this many.
    pub sm_count: Option<u64>,
    /// Last-level cache in bytes: weights smaller than this can stay resident.
    pub l2_bytes: Option<u64>,
    /// Peak memory bandwidth (GB/s, 10^9 bytes per second): no memory-bound
    /// kernel reading from HBM can be faster.
    pub hbm_gbps: Option<f64>,
    /// Dense (no sparsity) 16-bit tensor-core peak, TFLOP/s: bf16 where the
    /// GPU has it (fp16 on the T4, which has no bf16 tensor cores).
    pub dense_bf16_tflops: Option<f64>,
    /// Dense fp8 tensor-core peak, TFLOP/s (Hopper and later): `None` on a
    /// GPU without fp8 tensor cores, which then runs no fp8 weights or KV cache.
    pub dense_fp8_tflops: Option<f64>,
    /// Whether the tensor cores run bf16 (sm80 and later), which the int4
    /// weight-only kernels dequantize into; `None` when not declared.
    pub bf16_tensor_cores: Option<bool>,
    /// Memory capacity in GiB, for memory-fit constraints.
    pub memory_gib: Option<f64>,
    /// Where these figures come from, in one sentence.
    pub source: Cow<'static, str>,
}

impl SpecSheet {
    /// A sheet that knows nothing but where that nothing comes from.
    pub const UNKNOWN: SpecSheet = SpecSheet {
        sm_count: None,
        l2_bytes: None,
        hbm_gbps: None,
        dense_bf16_tflops: None,
        dense_fp8_tflops: None,
        bf16_tensor_cores: None,
        memory_gib: None,
        source: Cow::Borrowed("not declared"),
    };

    /// A fitted memory-bound throughput (GB/s) above `hbm_gbps` is faster than
    /// the hardware; a fitted tensor-core throughput (TFLOP/s) above the dense
    /// peak likewise. Returns the limit a value of `unit` may not exceed.
    pub fn limit(&self, unit: PeakUnit) -> Option<f64> {
        match unit {
            PeakUnit::HbmGbps => self.hbm_gbps,
            PeakUnit::DenseBf16Tflops => self.dense_bf16_tflops,
            PeakUnit::DenseFp8Tflops => self.dense_fp8_tflops,
        }
    }
}

/// Which physical peak a fitted throughput is bounded by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakUnit {
    /// Bytes from HBM, GB/s.
    HbmGbps,
    /// Dense 16-bit tensor-core FLOPs, TFLOP/s.
    DenseBf16Tflops,
    /// Dense fp8 tensor-core FLOPs, TFLOP/s.
    DenseFp8Tflops,
}

const GIB: f64 = (1u64 << 30) as f64;

/// NVIDIA A100 SXM4 80 GB (NVIDIA A100 datasheet).
pub const A100: SpecSheet = SpecSheet {
    sm_count: Some(108),
    l2_bytes: Some(40 << 20),
    hbm_gbps: Some(2039.0),
    dense_bf16_tflops: Some(312.0),
    dense_fp8_tflops: None,
    bf16_tensor_cores: Some(true),
    memory_gib: Some(80.0),
    source: Cow::Borrowed(
        "NVIDIA A100 datasheet (SXM4 80 GB): 108 SMs, 40 MB L2, 2039 GB/s HBM2e, 312 TFLOP/s dense bf16",
    ),
};

/// NVIDIA T4 (NVIDIA T4 datasheet); Turing has fp16 but no bf16 tensor cores.
pub const T4: SpecSheet = SpecSheet {
    sm_count: Some(40),
    l2_bytes: Some(4 << 20),
    hbm_gbps: Some(320.0),
    dense_bf16_tflops: Some(65.0),
    dense_fp8_tflops: None,
    bf16_tensor_cores: Some(false),
    memory_gib: Some(16.0),
    source: Cow::Borrowed(
        "NVIDIA T4 datasheet: 40 SMs, 4 MB L2, 320 GB/s GDDR6, 65 TFLOP/s dense fp16 (no bf16 tensor cores)",
    ),
};

/// NVIDIA H100 SXM5 80 GB (NVIDIA H100 datasheet; SMs and L2 as the driver
/// reported them on the H100 the calibration data was measured on).
pub const H100: SpecSheet = SpecSheet {
    sm_count: Some(132),
    l2_bytes: Some(50 << 20),
    hbm_gbps: Some(3350.0),
    dense_bf16_tflops: Some(989.4),
    dense_fp8_tflops: Some(1978.9),
    bf16_tensor_cores: Some(true),
    memory_gib: Some(80.0),
    source: Cow::Borrowed(
        "NVIDIA H100 datasheet (SXM5 80 GB): 132 SMs, 50 MB L2, 3350 GB/s HBM3, 989 TFLOP/s dense bf16, \
         1979 dense fp8",
    ),
};

/// NVIDIA H200 SXM 141 GB (NVIDIA H200 datasheet; SMs, L2 and memory as the
/// driver reported them on the H200 the calibration data was measured on).
pub const H200: SpecSheet = SpecSheet {
    sm_count: Some(132),
    l2_bytes: Some(60 << 20),
    hbm_gbps: Some(4800.0),
    dense_bf16_tflops: Some(989.4),
    dense_fp8_tflops: Some(1978.9),
    bf16_tensor_cores: Some(true),
    memory_gib: Some(150_109_880_320.0 / GIB),
    source: Cow::Borrowed(
        "NVIDIA H200 datasheet (SXM 141 GB): 4800 GB/s HBM3e, 989 TFLOP/s dense bf16, 1979 dense fp8; \
         132 SMs, 60 MiB L2 and 150,109,880,320 bytes of memory as the driver reported them",
    ),
};

/// A GPU's link to the other GPUs of its host: what a collective's bytes
/// cross. Bandwidth is per direction, per GPU (half the data sheet's
/// bidirectional figure).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interconnect {
    pub name: &'static str,
    /// GB/s (10^9 B/s) each way: no fitted bus bandwidth may exceed it.
    pub gbps_per_direction: f64,
    pub source: &'static str,
}

/// The link of a built-in GPU, by registry key (`h100`, `h200`, `a100`,
/// `t4`); `None` for a GPU whose link is not known.
pub fn interconnect(gpu_key: &str) -> Option<&'static Interconnect> {
    const NVLINK4: Interconnect = Interconnect {
        name: "NVLink 4",
        gbps_per_direction: 450.0,
        source: "NVIDIA H100/H200 SXM datasheets: NVLink 900 GB/s per GPU (bidirectional)",
    };
    const NVLINK3: Interconnect = Interconnect {
        name: "NVLink 3",
        gbps_per_direction: 300.0,
        source: "NVIDIA A100 SXM4 datasheet: NVLink 600 GB/s per GPU (bidirectional)",
    };
    const PCIE3: Interconnect = Interconnect {
        name: "PCIe Gen3 x16",
        gbps_per_direction: 16.0,
        source: "NVIDIA T4 datasheet: PCIe Gen3 x16, 32 GB/s (bidirectional)",
    };
    match gpu_key {
        "h100" | "h200" => Some(&NVLINK4),
        "a100" => Some(&NVLINK3),
        "t4" => Some(&PCIE3),
        _ => None,
    }
}

/// Largest GPU memory accepted, in GiB (a pebibyte): far above any GPU, and
/// small enough that byte counts stay exact in an f64.
pub const MAX_MEMORY_GIB: f64 = (1u64 << 20) as f64;

/// Checks a declared memory capacity: a finite positive number of GiB of at
/// most [`MAX_MEMORY_GIB`].
pub fn check_memory_gib(gib: f64) -> Result<f64, String> {
    if !gib.is_finite() || gib <= 0.0 {
        return Err(format!("expected a positive number of GiB, got {gib}"));
    }
    if gib > MAX_MEMORY_GIB {
        return Err(format!("{gib:?} GiB is absurdly large (the limit is {MAX_MEMORY_GIB})"));
    }
    Ok(gib)
}

/// The built-in spec sheet of a GPU named as the driver reports it
/// (`torch.cuda.get_device_name`, `nvidia-smi`): "NVIDIA H100 80GB HBM3" is
/// the H100, "NVIDIA H200" the H200, "NVIDIA A100-SXM4-80GB" the A100,
/// "Tesla T4" the T4. Case and punctuation do not matter; a name that
/// mentions none of them, or more than one, is unknown.
pub fn for_device_name(name: &str) -> Option<&'static SpecSheet> {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let known: [(&str, &'static SpecSheet); 4] = [("h200", &H200), ("h100", &H100), ("a100", &A100), ("t4", &T4)];
    let mut found = known.iter().filter(|(key, _)| words.iter().any(|w| w == key));
    match (found.next(), found.next()) {
        (Some((_, sheet)), None) => Some(sheet),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_find_their_spec_sheets() {
        assert_eq!(for_device_name("NVIDIA H100 80GB HBM3"), Some(&H100));
        assert_eq!(for_device_name("NVIDIA H200"), Some(&H200));
        assert_eq!(for_device_name("NVIDIA A100-SXM4-80GB"), Some(&A100));
        assert_eq!(for_device_name("Tesla T4"), Some(&T4));
        assert_eq!(for_device_name("NVIDIA GeForce RTX 4090"), None);
        assert_eq!(for_device_name("H100 or H200"), None);
        assert_eq!(for_device_name(""), None);
    }
}
