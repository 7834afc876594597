//! The kernel-aware model: what a torch.compile'd bf16 decoder layer spends
//! its time on, on a real GPU, as work that is linear in a few fitted
//! inverse throughputs (so the seed's matrix form and least squares carry over).
//! Every resource is bounded by a physical peak of the GPU's spec sheet
//! ([`RESOURCE_BOUNDS`]): a fitted throughput above it is a bug in the model.
//!
//! What it captures that the seed model does not, each from measurements
//! (calibration/README.md):
//! - GEMMs are quantized into 128x256 output tiles spread over the GPU's SMs
//!   in waves; the last, partial wave's idle tile slots cost an eighth of a
//!   busy one (cuBLAS fills most of them by splitting K; 1/8 chosen by
//!   cross-validation), all at the one GEMM rate. A GEMM whose N or K is not a
//!   multiple of 8 loses the fast tensor-core path. A GEMM whose arithmetic
//!   intensity is below the GPU's ridge point (dense peak / HBM bandwidth) is
//!   billed its operand bytes instead of its FLOPs (a roofline choice made with
//!   spec-sheet ratios, so the model stays linear): bytes and FLOPs overlap;
//! - causal attention only computes the lower triangle (in 128x128 blocks),
//!   a sliding window only its band; head dims are padded (96 and 100 cost
//!   as 128), head dims <= 64 run less efficiently, head dims that are not a
//!   multiple of 8 fall back to a slower kernel, and windows run through
//!   flex_attention, a different kernel again (slower still above head dim 128);
//!   reading query rows and writing output rows costs per query block;
//! - norms, QK-norm, RoPE, the GeGLU activation and residual adds are
//!   memory-bound: bytes at a bandwidth no faster than HBM's;
//! - every kernel launch costs a fixed few microseconds even in a CUDA graph
//!   (QK-norm adds one kernel);
//! - fp8 weights (e4m3, per-tensor scales) run the four GEMMs on the fp8
//!   tensor cores (`_scaled_mm`; sizes padded to 16) at their own fitted rate,
//!   bounded by the dense fp8 peak, each with the dynamic quantization of its
//!   activation (read twice, written once in e4m3, a fixed cost): the
//!   [`PRECISION_RESOURCES`], fitted with the bf16 ones fixed (the profile's
//!   `precision` section). int4 weights have no measured prefill kernel on the
//!   device (its int4 kernel is decode-only): they are priced as bf16 GEMMs
//!   reading int4 weight bytes, estimated, not measured.

use crate::gpu::PeakUnit;
use crate::precision::WeightPrecision;
use crate::shapes::{LayerShape, ShapeField};

use super::CostModel;

/// Edge of the attention blocks (queries x keys) and the GEMM tiles' M side.
pub const BLOCK: u64 = 128;

/// GEMM output tiles are BLOCK x GEMM_TILE_N (cuBLAS's usual Hopper tile;
/// 128x256 fitted the measurements better than 128x128).
pub const GEMM_TILE_N: u64 = 256;

/// What an idle tile slot of a GEMM's last, partial wave costs, as a share
/// of a busy one (chosen by leave-one-out cross-validation on the training
/// layers of both GPUs: 0.05, 0.1, 0.125, 0.15, 0.2 tried).
pub const WAVE_TAIL_SHARE: f64 = 0.125;

/// Kernel launches of one compiled layer: four GEMMs, attention and about
/// five fused memory-bound kernels; QK-norm adds [`QK_NORM_LAUNCHES`].
pub const LAUNCHES_PER_LAYER: f64 = 10.0;

/// Extra kernel launches of a layer with QK-norm.
pub const QK_NORM_LAUNCHES: f64 = 1.0;

/// Bytes per element (bf16).
const ELEM: f64 = 2.0;

const KERNELS: [&str; 12] = [
    "pre_attn_rmsnorm",
    "qkv_projection",
    "qk_norm_rope",
    "attention",
    "output_projection",
    "residual_add_1",
    "pre_mlp_rmsnorm",
    "mlp_gate_up",
    "geglu_activation",
    "mlp_down",
    "residual_add_2",
    "launch_overhead",
];

/// The fitted resources, the unit of work each is divided into, and the
/// physical peak that bounds its throughput (`None`: no bound, a launch cost).
const RESOURCE_TABLE: [(&str, Unit, Option<PeakUnit>); 11] = [
    ("gemm_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    ("gemm_misaligned_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    ("gemm_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("attention_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    (
        "attention_small_head_flops",
        Unit::Flops,
        Some(PeakUnit::DenseBf16Tflops),
    ),
    ("attention_fallback_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    ("attention_window_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    (
        "attention_window_wide_head_flops",
        Unit::Flops,
        Some(PeakUnit::DenseBf16Tflops),
    ),
    ("attention_row_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("elementwise_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("kernel_launch", Unit::Launches, None),
];

/// The resources of fp8 GEMMs in a layer (the profile's `precision` section):
/// tile FLOPs on the fp8 tensor cores, the operand bytes of memory-bound fp8
/// GEMMs, the bytes of the activation's quantization and its fixed cost.
pub const PRECISION_RESOURCE_TABLE: [(&str, Unit, Option<PeakUnit>); 4] = [
    ("gemm_fp8_flops", Unit::Flops, Some(PeakUnit::DenseFp8Tflops)),
    ("gemm_fp8_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("fp8_quant_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("fp8_quant_launch", Unit::Launches, None),
];

/// Names of [`PRECISION_RESOURCE_TABLE`].
pub const PRECISION_RESOURCES: [&str; 4] = [
    PRECISION_RESOURCE_TABLE[0].0,
    PRECISION_RESOURCE_TABLE[1].0,
    PRECISION_RESOURCE_TABLE[2].0,
    PRECISION_RESOURCE_TABLE[3].0,
];

/// Every resource of the model: the bf16 ones (what the profile's `fitted`
/// holds), then the precision ones.
pub const ALL_RESOURCES: [&str; RESOURCE_TABLE.len() + 4] = {
    let mut out = [""; RESOURCE_TABLE.len() + 4];
    let mut i = 0;
    while i < out.len() {
        out[i] = if i < RESOURCE_TABLE.len() {
            RESOURCE_TABLE[i].0
        } else {
            PRECISION_RESOURCE_TABLE[i - RESOURCE_TABLE.len()].0
        };
        i += 1;
    }
    out
};

/// Resource names of the bf16 model, the first resources of [`ALL_RESOURCES`].
pub const RESOURCES: [&str; RESOURCE_TABLE.len()] = {
    let mut out = [""; RESOURCE_TABLE.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = RESOURCE_TABLE[i].0;
        i += 1;
    }
    out
};

/// Units of each resource's work, for showing fitted throughputs to people.
pub const RESOURCE_UNITS: [Unit; RESOURCE_TABLE.len()] = {
    let mut out = [Unit::Flops; RESOURCE_TABLE.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = RESOURCE_TABLE[i].1;
        i += 1;
    }
    out
};

/// The physical peak each resource's throughput may not exceed.
pub const RESOURCE_BOUNDS: [Option<PeakUnit>; RESOURCE_TABLE.len()] = {
    let mut out = [None; RESOURCE_TABLE.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = RESOURCE_TABLE[i].2;
        i += 1;
    }
    out
};

/// What a resource's work counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Flops,
    Bytes,
    Launches,
}

mod k {
    pub const NORM1: usize = 0;
    pub const QKV: usize = 1;
    pub const ROPE: usize = 2;
    pub const ATTN: usize = 3;
    pub const OUT: usize = 4;
    pub const RES1: usize = 5;
    pub const NORM2: usize = 6;
    pub const UP: usize = 7;
    pub const ACT: usize = 8;
    pub const DOWN: usize = 9;
    pub const RES2: usize = 10;
    pub const LAUNCH: usize = 11;
}

mod r {
    pub const GEMM: usize = 0;
    pub const GEMM_MISALIGNED: usize = 1;
    pub const GEMM_BYTES: usize = 2;
    pub const ATTN: usize = 3;
    pub const ATTN_SMALL_HEAD: usize = 4;
    pub const ATTN_FALLBACK: usize = 5;
    pub const ATTN_WINDOW: usize = 6;
    pub const ATTN_WINDOW_WIDE: usize = 7;
    pub const ATTN_ROWS: usize = 8;
    pub const ELEMENTWISE: usize = 9;
    pub const LAUNCH: usize = 10;
    pub const FP8_FLOPS: usize = 11;
    pub const FP8_BYTES: usize = 12;
    pub const QUANT_BYTES: usize = 13;
    pub const QUANT_LAUNCH: usize = 14;
}

/// Columns per GEMM kernel: one per GEMM resource, bf16 and fp8.
const GEMM_RESOURCES: usize = 7;

const fn gemm_columns(kernel: usize) -> [(usize, usize); GEMM_RESOURCES] {
    [
        (kernel, r::GEMM),
        (kernel, r::GEMM_MISALIGNED),
        (kernel, r::GEMM_BYTES),
        (kernel, r::FP8_FLOPS),
        (kernel, r::FP8_BYTES),
        (kernel, r::QUANT_BYTES),
        (kernel, r::QUANT_LAUNCH),
    ]
}

const N_COLUMNS: usize = 4 * GEMM_RESOURCES + 13;

/// (kernel, resource) columns of the work matrix.
const COLUMNS: [(usize, usize); N_COLUMNS] = {
    let g = [
        gemm_columns(k::QKV),
        gemm_columns(k::OUT),
        gemm_columns(k::UP),
        gemm_columns(k::DOWN),
    ];
    let rest = [
        (k::ATTN, r::ATTN),
        (k::ATTN, r::ATTN_SMALL_HEAD),
        (k::ATTN, r::ATTN_FALLBACK),
        (k::ATTN, r::ATTN_WINDOW),
        (k::ATTN, r::ATTN_WINDOW_WIDE),
        (k::ATTN, r::ATTN_ROWS),
        (k::NORM1, r::ELEMENTWISE),
        (k::ROPE, r::ELEMENTWISE),
        (k::RES1, r::ELEMENTWISE),
        (k::NORM2, r::ELEMENTWISE),
        (k::ACT, r::ELEMENTWISE),
        (k::RES2, r::ELEMENTWISE),
        (k::LAUNCH, r::LAUNCH),
    ];
    let mut out = [(0, 0); N_COLUMNS];
    let mut i = 0;
    while i < 4 * GEMM_RESOURCES {
        out[i] = g[i / GEMM_RESOURCES][i % GEMM_RESOURCES];
        i += 1;
    }
    while i < N_COLUMNS {
        out[i] = rest[i - 4 * GEMM_RESOURCES];
        i += 1;
    }
    out
};

/// First column of each GEMM kernel's, in the order qkv, out, up, down.
const GEMM_SLOTS: [usize; 4] = [0, GEMM_RESOURCES, 2 * GEMM_RESOURCES, 3 * GEMM_RESOURCES];
const ATTN_SLOT: usize = 4 * GEMM_RESOURCES;
const ATTN_ROWS_SLOT: usize = ATTN_SLOT + 5;
const ELEMENTWISE_SLOTS: usize = ATTN_ROWS_SLOT + 1;
const LAUNCH_SLOT: usize = ELEMENTWISE_SLOTS + 6;

/// The kernel-aware model of one GPU: the SM count sets GEMM wave sizes, the
/// ridge point (dense FLOP/s over HBM bytes/s of the spec sheet) which GEMMs
/// are memory-bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelAwareModel {
    pub sm_count: u64,
    /// FLOPs per byte below which a GEMM is billed its bytes, not its FLOPs;
    /// 0 bills every GEMM its FLOPs (no spec sheet known).
    pub ridge_flops_per_byte: f64,
    /// The same for fp8 GEMMs (dense fp8 peak over HBM; 0: none known).
    pub fp8_ridge_flops_per_byte: f64,
}

impl KernelAwareModel {
    /// The model of a GPU with `sm_count` SMs whose spec sheet gives the
    /// ridge point `ridge_flops_per_byte` (0 or not finite: none).
    pub fn new(sm_count: u64, ridge_flops_per_byte: f64) -> Self {
        let ridge = if ridge_flops_per_byte.is_finite() && ridge_flops_per_byte > 0.0 {
            ridge_flops_per_byte
        } else {
            0.0
        };
        KernelAwareModel {
            sm_count,
            ridge_flops_per_byte: ridge,
            fp8_ridge_flops_per_byte: 0.0,
        }
    }

    /// The same model with the fp8 ridge point `ridge` (0 or not finite: none).
    pub fn with_fp8_ridge(self, ridge: f64) -> Self {
        KernelAwareModel {
            fp8_ridge_flops_per_byte: if ridge.is_finite() && ridge > 0.0 { ridge } else { 0.0 },
            ..self
        }
    }
}

/// Tile FLOPs of a GEMM on 128x256 output tiles in waves over `sm_count`
/// SMs, the last wave's idle slots at [`WAVE_TAIL_SHARE`].
fn tile_flops(m: u64, n: u64, k: u64, sm_count: u64) -> f64 {
    let (m, n, k) = (m as u128, n as u128, k as u128);
    let tile = (BLOCK * GEMM_TILE_N) as u128;
    let tiles = m.div_ceil(BLOCK as u128) * n.div_ceil(GEMM_TILE_N as u128);
    let sms = sm_count.max(1) as u128;
    let idle_tiles = tiles.div_ceil(sms) * sms - tiles;
    2.0 * k as f64 * ((tiles * tile) as f64 + WAVE_TAIL_SHARE * (idle_tiles * tile) as f64)
}

/// The work of one fp8 GEMM with its activation's dynamic quantization, in
/// [`PRECISION_RESOURCES`] order: tile FLOPs on sizes padded to 16 (what
/// `_scaled_mm` needs), or, below the fp8 ridge point, the operand bytes (e4m3
/// activation and weight, bf16 output); the quantization's bytes (the bf16
/// activation read twice, amax then cast, and written once in e4m3: `5mk`);
/// one quantization.
pub fn fp8_gemm_work(m: u64, n: u64, k: u64, sm_count: u64, fp8_ridge: f64) -> [f64; 4] {
    let flops = tile_flops(m, n.next_multiple_of(16), k.next_multiple_of(16), sm_count);
    let (mf, nf, kf) = (m as f64, n as f64, k as f64);
    let bytes = mf * kf + nf * kf + 2.0 * mf * nf;
    let quant = 5.0 * mf * kf;
    if flops < fp8_ridge * bytes {
        [0.0, bytes, quant, 1.0]
    } else {
        [flops, 0.0, quant, 1.0]
    }
}

/// One layer GEMM's work in all its columns (bf16 resources, then fp8 ones)
/// for weights in `weights`.
fn layer_gemm_work(
    model: &KernelAwareModel,
    m: u64,
    n: u64,
    k: u64,
    weights: WeightPrecision,
) -> [f64; GEMM_RESOURCES] {
    let mut out = [0.0; GEMM_RESOURCES];
    match weights {
        WeightPrecision::Bf16 => {
            out[..3].copy_from_slice(&gemm_work(m, n, k, model.sm_count, model.ridge_flops_per_byte));
        }
        WeightPrecision::Fp8 => {
            out[3..].copy_from_slice(&fp8_gemm_work(m, n, k, model.sm_count, model.fp8_ridge_flops_per_byte));
        }
        WeightPrecision::Int4 => {
            // Estimated: bf16 tensor-core work (the weights dequantized), reading int4 weight bytes.
            let bf16 = gemm_work(m, n, k, model.sm_count, model.ridge_flops_per_byte);
            let weight = WeightPrecision::Int4
                .matrix_bytes(n, k)
                .map_or(f64::INFINITY, |x| x as f64);
            let bytes = ELEM * (m as f64 * k as f64 + m as f64 * n as f64) + weight;
            // memory-bound: the bytes the GEMM really reads
            out[..3].copy_from_slice(&if bf16[2] > 0.0 { [0.0, 0.0, bytes] } else { bf16 });
        }
    }
    out
}

/// The work of one GEMM `out[M,N] = A[M,K] @ W[N,K]^T` in the GEMM resources:
/// wave-quantized tile FLOPs (on the aligned or the misaligned resource), or,
/// when those FLOPs per operand byte are below `ridge`, its operand bytes.
pub fn gemm_work(m: u64, n: u64, k: u64, sm_count: u64, ridge: f64) -> [f64; 3] {
    let flops = tile_flops(m, n, k, sm_count);
    // u128: exact for any u64 sizes (a validated shape's counts fit a u64 anyway).
    let (m, n, k) = (m as u128, n as u128, k as u128);
    let bytes = ELEM * (m * k + n * k + m * n) as f64;
    // compute as the GPU runs it (whole tiles, the wave tail) against bytes
    if flops < ridge * bytes {
        return [0.0, 0.0, bytes];
    }
    // A GEMM whose N (output) or K (reduction) is not a multiple of 8 elements
    // (16 bytes) cannot use the aligned tensor-core kernels (inside a compiled
    // layer inductor may pad it instead): it has its own throughput.
    if n % 8 == 0 && k % 8 == 0 {
        [flops, 0.0, 0.0]
    } else {
        [0.0, flops, 0.0]
    }
}

/// Head dim as the attention kernels compute it: 64, 128, or a multiple of 128.
pub fn padded_head_dim(head_dim: u64) -> u64 {
    if head_dim <= 64 {
        64
    } else {
        head_dim.div_ceil(BLOCK) * BLOCK
    }
}

/// 128x128 (query block, key block) pairs a causal attention over `seq`
/// tokens computes, within a sliding window when one is given.
pub fn attention_blocks(seq: u64, window: Option<u64>) -> u64 {
    let q_blocks = seq.div_ceil(BLOCK);
    match window {
        None => q_blocks * (q_blocks + 1) / 2,
        Some(w) => {
            // key block j is visited by query block i when some key in it is
            // within the window of some query: (i - j) * 128 - 127 < w.
            let reach = w.saturating_add(BLOCK - 2) / BLOCK; // largest i - j visited
            (0..q_blocks).map(|i| i.min(reach) + 1).sum()
        }
    }
}

/// Bytes of the query rows read and output rows written by attention (per
/// query block, whatever the keys): what makes short sequences relatively slow.
pub fn attention_row_bytes(batch: u64, heads: u64, seq: u64, head_dim: u64) -> f64 {
    let seq_padded = seq.div_ceil(BLOCK) as u128 * BLOCK as u128;
    2.0 * ELEM * (batch as u128 * heads as u128 * seq_padded * padded_head_dim(head_dim) as u128) as f64
}

/// Attention work: (resource, FLOPs computed over visited blocks, head dim padded).
pub fn attention_work(batch: u64, heads: u64, seq: u64, head_dim: u64, window: Option<u64>) -> (usize, f64) {
    let blocks = attention_blocks(seq, window);
    let flops = 4.0
        * (batch as u128 * heads as u128) as f64
        * (blocks as u128 * (BLOCK * BLOCK) as u128) as f64
        * padded_head_dim(head_dim) as f64;
    let resource = if window.is_some() && head_dim > BLOCK {
        r::ATTN_WINDOW_WIDE
    } else if window.is_some() {
        r::ATTN_WINDOW
    } else if head_dim % 8 != 0 {
        r::ATTN_FALLBACK
    } else if head_dim <= 64 {
        r::ATTN_SMALL_HEAD
    } else {
        r::ATTN
    };
    (resource, flops)
}

impl CostModel for KernelAwareModel {
    fn kernels(&self) -> &[&'static str] {
        &KERNELS
    }

    fn resources(&self) -> &[&'static str] {
        &ALL_RESOURCES
    }

    fn columns(&self) -> &[(usize, usize)] {
        &COLUMNS
    }

    fn kernel_name(&self, kernel: usize, shape: &LayerShape) -> &'static str {
        match kernel {
            k::ROPE if !shape.use_qk_norm => "rope_only",
            other => KERNELS[other],
        }
    }

    fn kernel_fields(&self, kernel: usize) -> &'static [ShapeField] {
        use ShapeField::*;
        match kernel {
            k::NORM1 | k::RES1 | k::NORM2 | k::RES2 => &[BatchSize, SeqLen, HiddenDim],
            k::QKV => &[BatchSize, SeqLen, HiddenDim, NumHeads, NumKvHeads, HeadDim, Weights],
            k::ROPE => &[BatchSize, SeqLen, NumHeads, NumKvHeads, HeadDim, UseQkNorm],
            // Prefill attention reads the fresh bf16 K and V (the cache's
            // format only changes what is written for decode).
            k::ATTN => &[BatchSize, SeqLen, NumHeads, HeadDim, WindowSize],
            k::OUT => &[BatchSize, SeqLen, HiddenDim, NumHeads, HeadDim, Weights],
            k::UP | k::DOWN => &[BatchSize, SeqLen, HiddenDim, FfnDim, Weights],
            k::ACT => &[BatchSize, SeqLen, HiddenDim, FfnDim],
            // QK-norm is a kernel launch of its own.
            _ => &[UseQkNorm],
        }
    }

    fn work_row(&self, s: &LayerShape, row: &mut [f64]) {
        let m = s.tokens();
        let (d, h, hkv, dh, f) = (s.hidden_dim, s.num_heads, s.num_kv_heads, s.head_dim, s.ffn_dim);
        let gemms = [((h + 2 * hkv) * dh, d), (d, h * dh), (2 * f, d), (d, f)];
        for (slot, (n, kdim)) in GEMM_SLOTS.iter().zip(gemms) {
            row[*slot..*slot + GEMM_RESOURCES].copy_from_slice(&layer_gemm_work(self, m, n, kdim, s.precision.weights));
        }
        let (resource, flops) = attention_work(s.batch_size, h, s.seq_len, dh, s.window_size);
        row[ATTN_SLOT + resource - r::ATTN] = flops;
        row[ATTN_ROWS_SLOT] = attention_row_bytes(s.batch_size, h, s.seq_len, dh);

        let (m, d, f) = (m as f64, d as f64, f as f64);
        row[ELEMENTWISE_SLOTS..LAUNCH_SLOT].copy_from_slice(&[
            2.0 * ELEM * m * d,                       // pre-attention RMSNorm: read and write [M, D]
            2.0 * ELEM * m * ((h + hkv) * dh) as f64, // (QK-RMSNorm +) RoPE on q and k: read and write
            3.0 * ELEM * m * d,                       // residual add: two reads, one write
            2.0 * ELEM * m * d,                       // pre-MLP RMSNorm
            3.0 * ELEM * m * f,                       // GeGLU: read [M, 2F], write [M, F]
            3.0 * ELEM * m * d,                       // residual add
        ]);
        row[LAUNCH_SLOT] = LAUNCHES_PER_LAYER + if s.use_qk_norm { QK_NORM_LAUNCHES } else { 0.0 };
    }
}

/// One measured kernel on its own (a micro-benchmark), as work on the resources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MicroKernel {
    Gemm {
        m: u64,
        n: u64,
        k: u64,
    },
    Attention {
        batch: u64,
        heads: u64,
        seq: u64,
        head_dim: u64,
        window: Option<u64>,
    },
    /// A memory-bound kernel moving `bytes`; `qk_norm`: QK-norm + RoPE, which
    /// launches one more kernel.
    Elementwise {
        bytes: f64,
        qk_norm: bool,
    },
}

impl KernelAwareModel {
    /// Work per resource (length `RESOURCES.len()`) of one micro-benchmarked kernel, launch included.
    pub fn micro_work(&self, kernel: &MicroKernel) -> Vec<f64> {
        let mut w = vec![0.0; RESOURCES.len()];
        match *kernel {
            MicroKernel::Gemm { m, n, k } => {
                w[r::GEMM..=r::GEMM_BYTES].copy_from_slice(&gemm_work(
                    m,
                    n,
                    k,
                    self.sm_count,
                    self.ridge_flops_per_byte,
                ));
            }
            MicroKernel::Attention {
                batch,
                heads,
                seq,
                head_dim,
                window,
            } => {
                let (resource, flops) = attention_work(batch, heads, seq, head_dim, window);
                w[resource] = flops;
                w[r::ATTN_ROWS] = attention_row_bytes(batch, heads, seq, head_dim);
            }
            MicroKernel::Elementwise { bytes, qk_norm } => {
                w[r::ELEMENTWISE] = bytes;
                if qk_norm {
                    w[r::LAUNCH] += QK_NORM_LAUNCHES;
                }
            }
        }
        w[r::LAUNCH] += 1.0;
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_blocks_match_flex_attention_block_masks() {
        // flex_attention reported 150 of 1024 blocks visited for S=4096, W=512.
        assert_eq!(attention_blocks(4096, Some(512)), 150);
        assert_eq!(attention_blocks(4096, None), 32 * 33 / 2);
        assert_eq!(attention_blocks(4096, Some(1 << 20)), attention_blocks(4096, None));
        assert_eq!(attention_blocks(100, Some(64)), 1);
    }

    #[test]
    fn gemm_work_quantizes_tiles_and_waves() {
        // 64 x 4096 x 4096 on 132 SMs: 16 tiles of 128x256, one wave, 116 idle
        // tiles at an eighth each; with no ridge point it is billed FLOPs.
        let w = gemm_work(64, 4096, 4096, 132, 0.0);
        assert_eq!(w[0], 2.0 * 4096.0 * (16.0 + 116.0 / 8.0) * (128 * 256) as f64);
        assert_eq!((w[1], w[2]), (0.0, 0.0));
        for odd in [
            gemm_work(4096, 4113, 4096, 132, 0.0),
            gemm_work(4096, 4096, 4113, 132, 0.0),
        ] {
            assert_eq!((odd[0], odd[1] > 0.0, odd[2]), (0.0, true, 0.0));
        }
    }

    #[test]
    fn gemms_below_the_ridge_point_are_billed_their_bytes() {
        // H100: 989.4 TFLOP/s over 3350 GB/s = 295 FLOP/byte. M = 64 tokens
        // through a 4096 x 4096 weight: 16 tiles + 116/8 idle ones of 128x256,
        // 2 * 4096 FLOPs each, over 2 * (64 * 4096 * 2 + 4096^2) bytes: 238
        // FLOP/byte, memory-bound.
        let ridge = 989.4e12 / 3350e9;
        let w = gemm_work(64, 4096, 4096, 132, ridge);
        assert_eq!(w, [0.0, 0.0, 2.0 * (64 * 4096 + 4096 * 4096 + 64 * 4096) as f64]);
        // 4096 tokens: 1365 FLOP/byte, compute-bound.
        let w = gemm_work(4096, 4096, 4096, 132, ridge);
        assert!(w[0] > 0.0 && w[2] == 0.0);
        assert_eq!(KernelAwareModel::new(132, f64::NAN).ridge_flops_per_byte, 0.0);
    }

    #[test]
    fn head_dims_are_padded() {
        assert_eq!(
            [64, 96, 100, 128, 192, 256].map(padded_head_dim),
            [64, 128, 128, 128, 256, 256]
        );
        assert_eq!(attention_work(1, 8, 1024, 100, None).0, r::ATTN_FALLBACK);
        assert_eq!(attention_work(1, 8, 1024, 64, None).0, r::ATTN_SMALL_HEAD);
        assert_eq!(attention_work(1, 8, 1024, 96, Some(512)).0, r::ATTN_WINDOW);
    }
}
