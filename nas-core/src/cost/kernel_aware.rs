//! The kernel-aware model: what a torch.compile'd bf16 decoder layer spends
//! its time on, on a real GPU, as work that is linear in a few fitted
//! inverse throughputs (so the seed's matrix form and least squares carry over).
//!
//! What it captures that the seed model does not, each from measurements
//! (calibration/README.md):
//! - GEMMs are quantized into 128x128 output tiles spread over the GPU's SMs
//!   in waves: a GEMM with few tiles leaves SMs idle (the wave tail), one
//!   whose N or K is not a multiple of 8 loses the fast tensor-core path, and
//!   every GEMM moves its operands through memory;
//! - causal attention only computes the lower triangle (in 128x128 blocks),
//!   a sliding window only its band; head dims are padded (96 and 100 cost
//!   as 128), head dims <= 64 run less efficiently, head dims that are not a
//!   multiple of 8 fall back to a slower kernel, and windows run through
//!   flex_attention, a different kernel again;
//! - norms, RoPE, the GeGLU activation and residual adds are memory-bound:
//!   bytes at a bandwidth (QK-norm + RoPE has its own, lower, one);
//! - every kernel launch costs a fixed few microseconds even in a CUDA graph.

use crate::shapes::LayerShape;

use super::CostModel;

/// Output tile edge of the GEMM and attention blocks the model quantizes to.
pub const BLOCK: u64 = 128;

/// Kernel launches of one compiled layer: four GEMMs, attention and about
/// five fused memory-bound kernels.
pub const LAUNCHES_PER_LAYER: f64 = 10.0;

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

/// The fitted resources, each with the unit of work it is divided into.
pub const RESOURCES: [&str; 11] = [
    "gemm_flops",
    "gemm_misaligned_flops",
    "gemm_wave_tail_flops",
    "gemm_bytes",
    "attention_flops",
    "attention_small_head_flops",
    "attention_fallback_flops",
    "attention_window_flops",
    "elementwise_bytes",
    "qk_norm_bytes",
    "kernel_launch",
];

/// Units of each resource's work, for showing fitted throughputs to people.
pub const RESOURCE_UNITS: [Unit; 11] = [
    Unit::Flops,
    Unit::Flops,
    Unit::Flops,
    Unit::Bytes,
    Unit::Flops,
    Unit::Flops,
    Unit::Flops,
    Unit::Flops,
    Unit::Bytes,
    Unit::Bytes,
    Unit::Launches,
];

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
    pub const GEMM_TAIL: usize = 2;
    pub const GEMM_BYTES: usize = 3;
    pub const ATTN: usize = 4;
    pub const ATTN_SMALL_HEAD: usize = 5;
    pub const ATTN_FALLBACK: usize = 6;
    pub const ATTN_WINDOW: usize = 7;
    pub const ELEMENTWISE: usize = 8;
    pub const QK_NORM: usize = 9;
    pub const LAUNCH: usize = 10;
}

const fn gemm_columns(kernel: usize) -> [(usize, usize); 4] {
    [
        (kernel, r::GEMM),
        (kernel, r::GEMM_MISALIGNED),
        (kernel, r::GEMM_TAIL),
        (kernel, r::GEMM_BYTES),
    ]
}

/// (kernel, resource) columns of the work matrix.
const COLUMNS: [(usize, usize); 28] = {
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
        (k::NORM1, r::ELEMENTWISE),
        (k::ROPE, r::ELEMENTWISE),
        (k::ROPE, r::QK_NORM),
        (k::RES1, r::ELEMENTWISE),
        (k::NORM2, r::ELEMENTWISE),
        (k::ACT, r::ELEMENTWISE),
        (k::RES2, r::ELEMENTWISE),
        (k::LAUNCH, r::LAUNCH),
    ];
    let mut out = [(0, 0); 28];
    let mut i = 0;
    while i < 16 {
        out[i] = g[i / 4][i % 4];
        i += 1;
    }
    while i < 28 {
        out[i] = rest[i - 16];
        i += 1;
    }
    out
};

/// First column of each GEMM kernel's four, in the order qkv, out, up, down.
const GEMM_SLOTS: [usize; 4] = [0, 4, 8, 12];
const ATTN_SLOT: usize = 16;
const ELEMENTWISE_SLOTS: usize = 20;
const LAUNCH_SLOT: usize = 27;

/// The kernel-aware model of one GPU; the SM count sets GEMM wave sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelAwareModel {
    pub sm_count: u64,
}

/// The work of one GEMM `out[M,N] = A[M,K] @ W[N,K]^T` in the four GEMM resources.
pub fn gemm_work(m: u64, n: u64, k: u64, sm_count: u64) -> [f64; 4] {
    let tiles = m.div_ceil(BLOCK) * n.div_ceil(BLOCK);
    let tile_flops = 2.0 * k as f64 * (tiles * BLOCK * BLOCK) as f64;
    let sms = sm_count.max(1);
    let idle_tiles = tiles.div_ceil(sms) * sms - tiles;
    let tail_flops = 2.0 * k as f64 * (idle_tiles * BLOCK * BLOCK) as f64;
    let bytes = ELEM * (m * k + n * k + m * n) as f64;
    let aligned = n % 8 == 0 && k % 8 == 0;
    let (fast, slow) = if aligned { (tile_flops, 0.0) } else { (0.0, tile_flops) };
    [fast, slow, tail_flops, bytes]
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
            let reach = (w + BLOCK - 2) / BLOCK; // largest i - j visited
            (0..q_blocks).map(|i| i.min(reach) + 1).sum()
        }
    }
}

/// Attention work: (resource, FLOPs computed over visited blocks, head dim padded).
pub fn attention_work(batch: u64, heads: u64, seq: u64, head_dim: u64, window: Option<u64>) -> (usize, f64) {
    let blocks = attention_blocks(seq, window);
    let flops = 4.0 * (batch * heads) as f64 * (blocks * BLOCK * BLOCK) as f64 * padded_head_dim(head_dim) as f64;
    let resource = if window.is_some() {
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
        &RESOURCES
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

    fn work_row(&self, s: &LayerShape, row: &mut [f64]) {
        let m = s.tokens();
        let (d, h, hkv, dh, f) = (s.hidden_dim, s.num_heads, s.num_kv_heads, s.head_dim, s.ffn_dim);
        let gemms = [((h + 2 * hkv) * dh, d), (d, h * dh), (2 * f, d), (d, f)];
        for (slot, (n, kdim)) in GEMM_SLOTS.iter().zip(gemms) {
            row[*slot..*slot + 4].copy_from_slice(&gemm_work(m, n, kdim, self.sm_count));
        }
        let (resource, flops) = attention_work(s.batch_size, h, s.seq_len, dh, s.window_size);
        row[ATTN_SLOT + resource - r::ATTN] = flops;

        let (m, d, f) = (m as f64, d as f64, f as f64);
        let qk_bytes = 2.0 * ELEM * m * ((h + hkv) * dh) as f64;
        let (rope, qk_norm) = if s.use_qk_norm {
            (0.0, qk_bytes)
        } else {
            (qk_bytes, 0.0)
        };
        row[ELEMENTWISE_SLOTS..LAUNCH_SLOT].copy_from_slice(&[
            2.0 * ELEM * m * d, // pre-attention RMSNorm: read and write [M, D]
            rope,               // RoPE on q and k: read and write
            qk_norm,            // QK-RMSNorm + RoPE on q and k
            3.0 * ELEM * m * d, // residual add: two reads, one write
            2.0 * ELEM * m * d, // pre-MLP RMSNorm
            3.0 * ELEM * m * f, // GeGLU: read [M, 2F], write [M, F]
            3.0 * ELEM * m * d, // residual add
        ]);
        row[LAUNCH_SLOT] = LAUNCHES_PER_LAYER;
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
    /// A memory-bound kernel moving `bytes`; `qk_norm` selects that resource.
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
                w[r::GEMM..=r::GEMM_BYTES].copy_from_slice(&gemm_work(m, n, k, self.sm_count));
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
            }
            MicroKernel::Elementwise { bytes, qk_norm } => {
                w[if qk_norm { r::QK_NORM } else { r::ELEMENTWISE }] = bytes;
            }
        }
        w[r::LAUNCH] = 1.0;
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
        // 64 x 4096 x 4096 on 132 SMs: 32 tiles of 128x128, one wave, 100 idle tiles.
        let w = gemm_work(64, 4096, 4096, 132);
        assert_eq!(w[0], 2.0 * 4096.0 * (32 * 128 * 128) as f64);
        assert_eq!(w[2], 2.0 * 4096.0 * (100 * 128 * 128) as f64);
        assert_eq!(w[1], 0.0);
        let odd = gemm_work(4113, 4113, 4113, 132);
        assert_eq!((odd[0], odd[1] > 0.0), (0.0, true));
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
