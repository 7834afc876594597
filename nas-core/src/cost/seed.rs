//! The seed tool's cost model, to the letter of SEED-MODEL.md (parity mode).

use crate::hardware::Throughputs;
use crate::shapes::{LayerShape, ShapeField};

use super::tile_efficiency;

/// The nine kernels of a decoder layer, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    PreAttnRmsnorm,
    QkvProjection,
    QkNormRope,
    Attention,
    OutputProjection,
    ResidualAdd1,
    PreMlpRmsnorm,
    GegluMlp,
    ResidualAdd2,
}

impl Kernel {
    pub const COUNT: usize = 9;
    pub const ALL: [Kernel; Kernel::COUNT] = [
        Kernel::PreAttnRmsnorm,
        Kernel::QkvProjection,
        Kernel::QkNormRope,
        Kernel::Attention,
        Kernel::OutputProjection,
        Kernel::ResidualAdd1,
        Kernel::PreMlpRmsnorm,
        Kernel::GegluMlp,
        Kernel::ResidualAdd2,
    ];

    /// The shape fields this kernel's time depends on.
    pub fn fields(self) -> &'static [ShapeField] {
        use ShapeField::*;
        match self {
            Kernel::PreAttnRmsnorm | Kernel::PreMlpRmsnorm | Kernel::ResidualAdd1 | Kernel::ResidualAdd2 => {
                &[BatchSize, SeqLen, HiddenDim]
            }
            Kernel::QkvProjection => &[BatchSize, SeqLen, HiddenDim, NumHeads, NumKvHeads, HeadDim],
            Kernel::QkNormRope => &[BatchSize, SeqLen, NumHeads, NumKvHeads, HeadDim, UseQkNorm],
            Kernel::Attention => &[BatchSize, SeqLen, NumHeads, HeadDim, WindowSize],
            Kernel::OutputProjection => &[BatchSize, SeqLen, HiddenDim, NumHeads, HeadDim],
            Kernel::GegluMlp => &[BatchSize, SeqLen, HiddenDim, FfnDim],
        }
    }

    /// The seed's name; the third kernel is `rope_only` without QK-norm.
    pub fn name(self, use_qk_norm: bool) -> &'static str {
        match self {
            Kernel::PreAttnRmsnorm => "pre_attn_rmsnorm",
            Kernel::QkvProjection => "qkv_projection",
            Kernel::QkNormRope if use_qk_norm => "qk_norm_rope",
            Kernel::QkNormRope => "rope_only",
            Kernel::Attention => "attention",
            Kernel::OutputProjection => "output_projection",
            Kernel::ResidualAdd1 => "residual_add_1",
            Kernel::PreMlpRmsnorm => "pre_mlp_rmsnorm",
            Kernel::GegluMlp => "geglu_mlp",
            Kernel::ResidualAdd2 => "residual_add_2",
        }
    }
}

/// A throughput of the GPU that a kernel's work is divided by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Rmsnorm,
    RmsnormSmall,
    QkNormRope,
    QkNormRopeSeparate,
    Geglu,
    Matmul,
    MatmulSmall,
    Attention,
    ResidualAdd,
}

impl Resource {
    /// Work units per millisecond at this resource's throughput: GB/s become
    /// bytes/ms as `bw * 1e6`; TFLOP/s become FLOP/ms as `tf * 1e9`.
    pub fn throughput_per_ms(self, t: &Throughputs) -> f64 {
        match self {
            Resource::Rmsnorm => t.rmsnorm_gbps * 1e6,
            Resource::RmsnormSmall => t.rmsnorm_gbps_small * 1e6,
            Resource::QkNormRope => t.qk_norm_rope_gbps * 1e6,
            Resource::QkNormRopeSeparate => t.qk_norm_rope_separate_gbps * 1e6,
            Resource::Geglu => t.geglu_gbps * 1e6,
            Resource::Matmul => t.matmul_tflops * 1e9,
            Resource::MatmulSmall => t.matmul_tflops_small * 1e9,
            Resource::Attention => t.attention_tflops * 1e9,
            Resource::ResidualAdd => t.residual_add_gbps * 1e6,
        }
    }

    /// Milliseconds per unit of work: an entry of the matrix `T`.
    pub fn inverse_throughput(self, t: &Throughputs) -> f64 {
        1.0 / self.throughput_per_ms(t)
    }
}

/// One column of the work matrix: a kernel's work on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub kernel: Kernel,
    pub resource: Resource,
}

const fn col(kernel: Kernel, resource: Resource) -> Column {
    Column { kernel, resource }
}

/// The seed model: SEED-MODEL.md's nine kernels as sixteen work columns
/// (a kernel whose resource depends on the shape gets one column per choice;
/// the unused one holds zero work).
#[derive(Clone, Copy, Debug, Default)]
pub struct SeedModel;

/// Resource rows of the seed model, in [`Resource`] order.
const RESOURCES: [Resource; 9] = [
    Resource::Rmsnorm,
    Resource::RmsnormSmall,
    Resource::QkNormRope,
    Resource::QkNormRopeSeparate,
    Resource::Geglu,
    Resource::Matmul,
    Resource::MatmulSmall,
    Resource::Attention,
    Resource::ResidualAdd,
];

const KERNEL_NAMES: [&str; Kernel::COUNT] = [
    "pre_attn_rmsnorm",
    "qkv_projection",
    "qk_norm_rope",
    "attention",
    "output_projection",
    "residual_add_1",
    "pre_mlp_rmsnorm",
    "geglu_mlp",
    "residual_add_2",
];

const RESOURCE_NAMES: [&str; 9] = [
    "rmsnorm",
    "rmsnorm_small",
    "qk_norm_rope",
    "qk_norm_rope_separate",
    "geglu",
    "matmul",
    "matmul_small",
    "attention",
    "residual_add",
];

/// The columns as (kernel, resource) indices, derived from [`SeedModel::COLUMNS`].
const INDEXED: [(usize, usize); 16] = {
    let mut out = [(0, 0); 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (
            SeedModel::COLUMNS[i].kernel as usize,
            SeedModel::COLUMNS[i].resource as usize,
        );
        i += 1;
    }
    out
};

impl super::CostModel for SeedModel {
    fn kernels(&self) -> &[&'static str] {
        &KERNEL_NAMES
    }

    fn resources(&self) -> &[&'static str] {
        &RESOURCE_NAMES
    }

    fn columns(&self) -> &[(usize, usize)] {
        &INDEXED
    }

    fn work_row(&self, shape: &LayerShape, row: &mut [f64]) {
        let mut fixed = [0.0; 16];
        SeedModel::work_row(self, shape, &mut fixed);
        row.copy_from_slice(&fixed);
    }

    fn kernel_name(&self, kernel: usize, shape: &LayerShape) -> &'static str {
        Kernel::ALL[kernel].name(shape.use_qk_norm)
    }

    fn kernel_fields(&self, kernel: usize) -> &'static [ShapeField] {
        Kernel::ALL[kernel].fields()
    }
}

/// The product of `factors` as f64, rounded once, as the seed's Python
/// integers are. Counts of validated shapes fit in a u64 (the fast path:
/// u128 to f64 is a slow software routine); larger ones saturate.
fn count(factors: &[u128]) -> f64 {
    let mut product: u64 = 1;
    for &factor in factors {
        match u64::try_from(factor).ok().and_then(|f| product.checked_mul(f)) {
            Some(p) => product = p,
            None => return factors.iter().fold(1u128, |p, &f| p.saturating_mul(f)) as f64,
        }
    }
    product as f64
}

impl SeedModel {
    /// The R x G matrix of inverse throughputs (ms per byte or FLOP) of the seed's resources.
    pub fn inverse_throughputs(gpus: &[Throughputs]) -> nalgebra::DMatrix<f64> {
        nalgebra::DMatrix::from_fn(RESOURCES.len(), gpus.len(), |r, g| {
            RESOURCES[r].inverse_throughput(&gpus[g])
        })
    }

    pub const COLUMNS: [Column; 16] = [
        col(Kernel::PreAttnRmsnorm, Resource::Rmsnorm),
        col(Kernel::PreAttnRmsnorm, Resource::RmsnormSmall),
        col(Kernel::QkvProjection, Resource::Matmul),
        col(Kernel::QkvProjection, Resource::MatmulSmall),
        col(Kernel::QkNormRope, Resource::QkNormRope),
        col(Kernel::QkNormRope, Resource::QkNormRopeSeparate),
        col(Kernel::Attention, Resource::Attention),
        col(Kernel::OutputProjection, Resource::Matmul),
        col(Kernel::OutputProjection, Resource::MatmulSmall),
        col(Kernel::ResidualAdd1, Resource::ResidualAdd),
        col(Kernel::PreMlpRmsnorm, Resource::Rmsnorm),
        col(Kernel::PreMlpRmsnorm, Resource::RmsnormSmall),
        col(Kernel::GegluMlp, Resource::Matmul),
        col(Kernel::GegluMlp, Resource::MatmulSmall),
        col(Kernel::GegluMlp, Resource::Geglu),
        col(Kernel::ResidualAdd2, Resource::ResidualAdd),
    ];

    /// Fills `row` with the work of each column for a validated shape.
    ///
    /// Counts are exact integer products converted to f64 once, as the
    /// seed's Python integers are (see [`count`]).
    pub fn work_row(&self, s: &LayerShape, row: &mut [f64; 16]) {
        let (b, seq, d) = (s.batch_size as u128, s.seq_len as u128, s.hidden_dim as u128);
        let (h, hkv, dh, f) = (
            s.num_heads as u128,
            s.num_kv_heads as u128,
            s.head_dim as u128,
            s.ffn_dim as u128,
        );
        let m = b * seq;
        let te = |x: u128| tile_efficiency(u64::try_from(x).unwrap_or(u64::MAX));
        // A GEMM's work after tile efficiency, on the large or the small resource.
        let gemm = |flops: &[u128], eff: f64| count(flops) / eff;
        let small = |dims: &[u128]| dims.iter().min().is_some_and(|&x| x < 1024);
        let split = |work: f64, is_small: bool| if is_small { (0.0, work) } else { (work, 0.0) };

        let norm_bytes = count(&[2, b, seq, d, 2]);

        let qkv_n = (h + 2 * hkv) * dh;
        let qkv = split(gemm(&[2, m, qkv_n, d], te(m) * te(qkv_n)), small(&[m, qkv_n, d]));

        let qk_bytes = count(&[2, b, h + hkv, seq, dh, 2]);
        let (qk_fused, qk_separate) = if s.use_qk_norm {
            (qk_bytes, 0.0)
        } else {
            (0.0, qk_bytes * 0.5)
        };

        let attention = count(&[4, b, h, seq, s.kv_len() as u128, dh]);

        let out_k = h * dh;
        let out = split(gemm(&[2, m, d, out_k], te(m) * te(d)), small(&[m, d, out_k]));

        let residual = count(&[3, b, seq, d, 2]);

        let mlp_flops = gemm(&[2, m, 2 * f, d], te(m) * te(2 * f)) + gemm(&[2, m, d, f], te(m) * te(d));
        let mlp = split(mlp_flops, small(&[m, d, f]));
        let activation = count(&[3, b, seq, f, 2]);

        let (norm_large, norm_small) = split(norm_bytes, d < 2048);
        *row = [
            norm_large,
            norm_small,
            qkv.0,
            qkv.1,
            qk_fused,
            qk_separate,
            attention,
            out.0,
            out.1,
            residual,
            norm_large,
            norm_small,
            mlp.0,
            mlp.1,
            activation,
            residual,
        ];
    }
}
