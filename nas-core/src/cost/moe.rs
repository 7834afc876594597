//! The kernel-aware MoE MLP model: one mixture-of-experts MLP layer (router
//! GEMM and top-k, tokens grouped by expert, grouped gate-up GEMM, SiLU-and-mul,
//! grouped down GEMM, weighted combine) as work on a few fitted constants, each
//! bounded by the GPU's spec sheet (`MOE_RESOURCES`).
//!
//! What it captures, from the H200 measurements (calibration/README.md, "MoE
//! MLPs and MLA attention"):
//! - a grouped GEMM (`torch._grouped_mm`, CUTLASS) runs whole tiles per expert:
//!   128x256 tiles, or 64x128 when the mean rows per expert (`rows / experts`,
//!   rounded down) or the output width is at most 128; tiles of one expert pair
//!   up along the rows (a 2x1 cluster), so an expert's row tiles are rounded up
//!   to an even count. Its compute side is those tiles' FLOPs, the output
//!   written, and a cost per tile per SM (a tile's prologue and epilogue); its
//!   memory side the weights of the experts that got rows (and the rows read),
//!   with the first `ramp_bytes` of weights dearer (a stream that has not
//!   reached full bandwidth). It is billed whichever side is slower, plus a
//!   fixed cost per call;
//! - routing: balanced (each expert `tokens * top_k / experts` rows, within
//!   one), imbalanced (the busiest expert `imbalance` x the mean), or, in
//!   decode, the rows of a batch spread over the experts it touches, in
//!   expectation `experts * (1 - (1 - top_k / experts)^tokens)`;
//! - the rest is memory-bound bytes (softmax, the gather of token rows, the
//!   activation, the weighting, the combine) and a fixed cost per kernel; the
//!   harness's combine (`index_add_`, atomic adds of bf16 rows) has a rate of
//!   its own, as has the gather-and-sum combine of routed tokens;
//! - how many kernels the compiled layer launches depends on the size of the
//!   sort of the `tokens * top_k` expert ids (an in-register sort up to 512, a
//!   radix sort in shared memory up to 4096, cub's device-wide radix sort
//!   beyond: 18, 24 and 40 kernels per layer were counted by the profiler).
//!
//! Where a GPU has no fitted MoE model, `moe_mlp_ms` answers with a
//! spec-sheet roofline (every FLOP at the dense peak, every byte at HBM
//! bandwidth, no fixed costs), and says so ([`moe_source`]).

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuCost, PeakUnit};

use super::kernel_aware::Unit;

/// One MoE MLP layer's shape. Routing is balanced: every expert gets
/// `tokens * top_k / experts` rows, within one, unless `imbalance` > 1 (the
/// busiest expert then gets `imbalance` x the mean rows, the others share the
/// rest evenly). In decode, `tokens` is the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeMlpShape {
    pub tokens: u64,
    pub hidden: u64,
    pub expert_ffn: u64,
    pub experts: u64,
    pub top_k: u64,
    pub imbalance: f64,
}

/// Prefill (routing balanced, or imbalanced) or decode (`tokens` = batch;
/// the rows spread over the experts the batch touches, in expectation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Prefill,
    Decode,
}

/// Most experts a layer may have (far above any published model).
pub const MAX_EXPERTS: u64 = 1 << 16;

/// The MoE model's fitted resources: name, unit of work, and the physical peak
/// bounding it (`None`: a fixed cost or a ramp, only non-negative).
pub const MOE_RESOURCES: [(&str, Unit, Option<PeakUnit>); 14] = [
    ("moe_gemm_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    (
        "moe_gemm_small_tile_flops",
        Unit::Flops,
        Some(PeakUnit::DenseBf16Tflops),
    ),
    ("moe_gemm_output_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("moe_gemm_tile", Unit::Launches, None),
    ("moe_gemm_weight_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("moe_gemm_ramp_bytes", Unit::Bytes, None),
    ("moe_gemm_call", Unit::Launches, None),
    ("moe_router_flops", Unit::Flops, Some(PeakUnit::DenseBf16Tflops)),
    ("moe_elementwise_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("moe_kernel", Unit::Launches, None),
    ("moe_sort_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("moe_combine_atomic_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("moe_combine_gather_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
    ("moe_combine_gather_wide_bytes", Unit::Bytes, Some(PeakUnit::HbmGbps)),
];

/// Number of MoE resources.
pub const COUNT: usize = MOE_RESOURCES.len();

pub(crate) mod r {
    pub const GEMM_FLOPS: usize = 0;
    pub const GEMM_SMALL_FLOPS: usize = 1;
    pub const GEMM_OUTPUT: usize = 2;
    pub const GEMM_TILE: usize = 3;
    pub const GEMM_WEIGHTS: usize = 4;
    pub const GEMM_RAMP: usize = 5;
    pub const GEMM_CALL: usize = 6;
    pub const ROUTER_FLOPS: usize = 7;
    pub const ELEMENTWISE: usize = 8;
    pub const KERNEL: usize = 9;
    pub const SORT: usize = 10;
    pub const COMBINE_ATOMIC: usize = 11;
    pub const COMBINE_GATHER: usize = 12;
    pub const COMBINE_GATHER_WIDE: usize = 13;
}

/// The kernels of one MoE MLP layer, in order.
pub const MOE_KERNELS: [&str; 6] = [
    "moe_router",
    "moe_grouping",
    "moe_gate_up",
    "moe_activation",
    "moe_down",
    "moe_combine",
];

/// Work of one kernel, per resource.
pub type Work = [f64; COUNT];

/// Bytes per element (bf16).
const ELEM: f64 = 2.0;

/// Rows per expert from which the 64x128 tiles give way to 128x256.
pub const SMALL_TILE_ROWS: u64 = 128;

/// Sort sizes (`tokens * top_k`) that change the kernels the compiled layer launches.
pub const SORT_IN_REGISTERS: f64 = 512.0;
pub const SORT_IN_SHARED: f64 = 4096.0;

/// `top_k` from which inductor's gather-and-sum combine takes its slower form.
pub const WIDE_COMBINE_TOP_K: u64 = 8;

/// Expected distinct experts a batch of `tokens` touches when each token
/// picks `top_k` of `experts` uniformly: `experts * (1 - (1 - top_k / experts)^tokens)`.
pub fn expected_experts(experts: u64, top_k: u64, tokens: u64) -> f64 {
    let (e, k) = (experts as f64, top_k.min(experts) as f64);
    if e == 0.0 {
        return 0.0;
    }
    e * (1.0 - (1.0 - k / e).powf(tokens as f64))
}

/// How `rows` (token, expert) slots spread over the experts: groups of
/// (number of experts, rows each); experts with no rows are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    pub groups: Vec<(f64, f64)>,
    /// Every slot: tokens x top_k.
    pub rows: f64,
    pub experts: u64,
}

impl Routing {
    /// Each expert `rows / experts` rows, within one.
    pub fn balanced(tokens: u64, top_k: u64, experts: u64) -> Routing {
        let n = tokens as u128 * top_k as u128;
        let e = experts.max(1) as u128;
        let (q, m) = (n / e, n % e);
        Routing {
            groups: [((e - m) as f64, q as f64), (m as f64, (q + 1) as f64)]
                .into_iter()
                .filter(|(c, r)| *c > 0.0 && *r > 0.0)
                .collect(),
            rows: n as f64,
            experts,
        }
    }

    /// The busiest expert gets `imbalance` x the mean rows (at most all of
    /// them), the others share the rest evenly; `imbalance` <= 1 is balanced.
    pub fn imbalanced(tokens: u64, top_k: u64, experts: u64, imbalance: f64) -> Routing {
        if imbalance.is_nan() || imbalance <= 1.0 || experts < 2 {
            return Routing::balanced(tokens, top_k, experts);
        }
        let n = tokens as u128 * top_k as u128;
        let mean = n as f64 / experts as f64;
        let hot = ((imbalance * mean).round() as u128).min(n);
        let rest = n - hot;
        let others = (experts - 1) as u128;
        let (q, m) = (rest / others, rest % others);
        Routing {
            groups: [
                (1.0, hot as f64),
                ((others - m) as f64, q as f64),
                (m as f64, (q + 1) as f64),
            ]
            .into_iter()
            .filter(|(c, r)| *c > 0.0 && *r > 0.0)
            .collect(),
            rows: n as f64,
            experts,
        }
    }

    /// The rows spread evenly over `touched` experts (a measured decode step
    /// names how many its batch touched).
    pub fn over(tokens: u64, top_k: u64, experts: u64, touched: f64) -> Routing {
        let n = tokens as f64 * top_k as f64;
        let t = touched.clamp(1.0_f64.min(experts as f64), experts as f64).min(n);
        Routing {
            groups: vec![(t, n / t)],
            rows: n,
            experts,
        }
    }

    /// A decode step's routing: the batch's rows over the experts it touches
    /// in expectation ([`expected_experts`]).
    pub fn decode(tokens: u64, top_k: u64, experts: u64) -> Routing {
        Routing::over(tokens, top_k, experts, expected_experts(experts, top_k, tokens))
    }

    /// Experts that get at least one row.
    pub fn touched(&self) -> f64 {
        self.groups.iter().map(|(c, _)| c).sum()
    }
}

/// The form of the model besides its fitted constants: the SMs tiles are
/// spread over and the bytes of each grouped GEMM's weights billed at the
/// ramp's extra cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeForm {
    pub sm_count: u64,
    pub ramp_bytes: f64,
}

/// A grouped GEMM's work: its compute side, its memory side (billed the
/// slower of the two) and its fixed cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupedGemmWork {
    pub compute: Work,
    pub memory: Work,
    pub fixed: Work,
}

/// The work of `out[rows, n] = x[rows, k] @ W_e[n, k]^T` over the experts of
/// `routing` (each expert its own weight).
pub fn grouped_gemm_work(routing: &Routing, n: u64, k: u64, form: &MoeForm) -> GroupedGemmWork {
    let mean_rows = (routing.rows / routing.experts.max(1) as f64).floor();
    let small = mean_rows <= SMALL_TILE_ROWS as f64 || n <= SMALL_TILE_ROWS;
    let (bm, bn) = if small { (64.0, 128.0) } else { (128.0, 256.0) };
    let (nf, kf) = (n as f64, k as f64);
    let row_tiles: f64 = routing
        .groups
        .iter()
        .map(|(count, rows)| count * ((rows / bm).ceil() / 2.0).ceil() * 2.0)
        .sum();
    let tiles = row_tiles * (nf / bn).ceil();
    let mut compute = [0.0; COUNT];
    compute[if small { r::GEMM_SMALL_FLOPS } else { r::GEMM_FLOPS }] = 2.0 * tiles * bm * bn * kf;
    compute[r::GEMM_OUTPUT] = ELEM * routing.rows * nf;
    compute[r::GEMM_TILE] = tiles / form.sm_count.max(1) as f64;
    let weights = ELEM * routing.touched() * nf * kf;
    let mut memory = [0.0; COUNT];
    memory[r::GEMM_WEIGHTS] = weights + ELEM * routing.rows * kf;
    memory[r::GEMM_RAMP] = weights.min(form.ramp_bytes);
    let mut fixed = [0.0; COUNT];
    fixed[r::GEMM_CALL] = 1.0;
    GroupedGemmWork { compute, memory, fixed }
}

/// One kernel's work: plain, or a grouped GEMM (the slower of its two sides).
/// Fixed arrays on the stack (six per layer), so the size difference is kept.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelWork {
    Plain(Work),
    Gemm(GroupedGemmWork),
}

/// Which MoE MLP: as the harness's `moe` layers run it (router, index_add
/// combine), as its `moe_routed` runs tokens already routed (no router, the
/// combine a gather and a sum), or as a serving engine runs routed tokens
/// (`nas kernel`'s `moe`: no grouping kernels, the down GEMM writes rows in
/// token order and the combine is a contiguous weighted sum; the router only
/// when asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipeline {
    Layer,
    Routed,
    Engine { router: bool },
}

/// Work per kernel ([`MOE_KERNELS`] order) of one MoE MLP.
pub fn layer_work(shape: &MoeMlpShape, routing: &Routing, pipeline: Pipeline, form: &MoeForm) -> [KernelWork; 6] {
    let (t, h, f, e) = (
        shape.tokens as f64,
        shape.hidden as f64,
        shape.expert_ffn as f64,
        shape.experts as f64,
    );
    let rows = routing.rows;
    let tier = if rows <= SORT_IN_REGISTERS {
        0
    } else if rows <= SORT_IN_SHARED {
        1
    } else {
        2
    };
    let plain = |entries: &[(usize, f64)]| {
        let mut w = [0.0; COUNT];
        for (i, v) in entries {
            w[*i] += v;
        }
        KernelWork::Plain(w)
    };
    let router = |on: bool| {
        if on {
            plain(&[
                (r::ROUTER_FLOPS, 2.0 * t * h * e),
                (r::ELEMENTWISE, 16.0 * t * e),
                (r::KERNEL, 5.0),
            ])
        } else {
            plain(&[])
        }
    };
    let grouping = |kernels: [f64; 3]| {
        plain(&[
            (r::SORT, if tier == 2 { 8.0 * rows } else { 0.0 }),
            (r::ELEMENTWISE, ELEM * (rows * h + t * h)),
            (r::KERNEL, kernels[tier]),
        ])
    };
    let gate_up = KernelWork::Gemm(grouped_gemm_work(routing, 2 * shape.expert_ffn, shape.hidden, form));
    let activation = plain(&[(r::ELEMENTWISE, ELEM * 3.0 * rows * f), (r::KERNEL, 1.0)]);
    let down = KernelWork::Gemm(grouped_gemm_work(routing, shape.hidden, shape.expert_ffn, form));
    match pipeline {
        Pipeline::Layer => [
            router(true),
            grouping([5.0, 11.0, 27.0]),
            gate_up,
            activation,
            down,
            plain(&[
                (r::ELEMENTWISE, ELEM * (2.0 * rows * h + t * h)),
                (r::COMBINE_ATOMIC, ELEM * rows * h),
                (r::KERNEL, 3.0),
            ]),
        ],
        Pipeline::Routed => [
            router(false),
            grouping([4.0, 10.0, 27.0]),
            gate_up,
            activation,
            down,
            plain(&[
                (
                    if shape.top_k >= WIDE_COMBINE_TOP_K {
                        r::COMBINE_GATHER_WIDE
                    } else {
                        r::COMBINE_GATHER
                    },
                    ELEM * rows * h,
                ),
                (r::ELEMENTWISE, ELEM * t * h),
                (r::KERNEL, 1.0),
            ]),
        ],
        Pipeline::Engine { router: with_router } => [
            router(with_router),
            plain(&[]),
            gate_up,
            activation,
            down,
            plain(&[(r::ELEMENTWISE, ELEM * (rows * h + t * h)), (r::KERNEL, 1.0)]),
        ],
    }
}

/// Fitted (or roofline) constants: milliseconds per unit of each resource.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeConstants {
    pub form: MoeForm,
    pub ms_per_unit: [f64; COUNT],
}

impl MoeConstants {
    pub fn ms(&self, w: &Work) -> f64 {
        w.iter().zip(&self.ms_per_unit).map(|(a, b)| a * b).sum()
    }

    /// The work a kernel is billed: a grouped GEMM's slower side plus its fixed cost.
    pub fn billed(&self, k: &KernelWork) -> Work {
        match k {
            KernelWork::Plain(w) => *w,
            KernelWork::Gemm(g) => {
                let side = if self.ms(&g.compute) >= self.ms(&g.memory) {
                    g.compute
                } else {
                    g.memory
                };
                let mut w = g.fixed;
                for (a, b) in w.iter_mut().zip(side) {
                    *a += b;
                }
                w
            }
        }
    }

    pub fn kernel_ms(&self, k: &KernelWork) -> f64 {
        self.ms(&self.billed(k))
    }

    /// The spec-sheet roofline: every FLOP at `dense_tflops`, every byte at
    /// `hbm_gbps`, no fixed costs.
    pub fn roofline(hbm_gbps: f64, dense_tflops: f64, sm_count: u64) -> MoeConstants {
        let mut ms_per_unit = [0.0; COUNT];
        for (slot, (_, unit, bound)) in ms_per_unit.iter_mut().zip(MOE_RESOURCES) {
            *slot = match (unit, bound) {
                (Unit::Flops, _) => 1.0 / (dense_tflops * 1e9),
                (Unit::Bytes, Some(_)) => 1.0 / (hbm_gbps * 1e6),
                _ => 0.0,
            };
        }
        MoeConstants {
            form: MoeForm {
                sm_count,
                ramp_bytes: 0.0,
            },
            ms_per_unit,
        }
    }
}

/// Checks a shape: every size from 1 to its limit, `top_k` at most
/// `experts`, `imbalance` from 1 to `experts`. Errors name the field.
pub fn check_shape(s: &MoeMlpShape) -> std::result::Result<(), String> {
    for (name, v, max) in [
        ("tokens", s.tokens, crate::shapes::MAX_DIM),
        ("hidden", s.hidden, crate::shapes::MAX_DIM),
        ("expert_ffn", s.expert_ffn, crate::shapes::MAX_DIM),
        ("experts", s.experts, MAX_EXPERTS),
        ("top_k", s.top_k, MAX_EXPERTS),
    ] {
        if v == 0 {
            return Err(format!("`{name}` must be at least 1"));
        }
        if v > max {
            return Err(format!("`{name}` = {v} is absurdly large (the limit is {max})"));
        }
    }
    if s.top_k > s.experts {
        return Err(format!("`top_k` = {} is more than `experts` = {}", s.top_k, s.experts));
    }
    if !(s.imbalance.is_finite() && s.imbalance >= 1.0 && s.imbalance <= s.experts as f64) {
        return Err(format!(
            "`imbalance` must be from 1 (balanced) to `experts` = {} (every row on one expert), got {}",
            s.experts, s.imbalance
        ));
    }
    Ok(())
}

/// The constants a GPU's MoE predictions use, and where they come from.
pub fn moe_constants(gpu: &Gpu) -> Result<(MoeConstants, String)> {
    if let GpuCost::Measured(m) = &gpu.cost {
        if let Some(fit) = &m.profile.moe_model {
            return Ok((fit.constants(m.profile.sm_count), moe_source(gpu)));
        }
    }
    let (Some(hbm), Some(peak)) = (gpu.spec.hbm_gbps, gpu.spec.dense_bf16_tflops) else {
        return Err(Error::Hardware(format!(
            "hardware `{}` has no MoE fit and no spec-sheet HBM bandwidth and bf16 peak for a roofline estimate",
            gpu.key
        )));
    };
    Ok((
        MoeConstants::roofline(hbm, peak, gpu.spec.sm_count.unwrap_or(1)),
        moe_source(gpu),
    ))
}

/// Whether `gpu`'s profile has a fitted (or transferred) `moe_model` section;
/// without one its MoE times are spec-sheet roofline estimates.
pub fn moe_is_fitted(gpu: &Gpu) -> bool {
    matches!(&gpu.cost, GpuCost::Measured(m) if m.profile.moe_model.is_some())
}

/// Where a GPU's MoE numbers come from, in one sentence.
pub fn moe_source(gpu: &Gpu) -> String {
    if let GpuCost::Measured(m) = &gpu.cost {
        if let Some(fit) = &m.profile.moe_model {
            let held = fit.residuals.get("validation").map_or_else(
                || "no held-out configs".to_string(),
                |v| format!("held-out MAPE {:.2}% on {} records", v.mape_pct, v.rows),
            );
            return match &fit.transferred_from {
                Some(from) => format!(
                    "MoE model transferred from {from} through the two spec sheets: not measured on this GPU; \
                     on its own GPU {held}"
                ),
                None => format!(
                    "MoE model fitted on {} records of {} measured on {} ({held})",
                    fit.records,
                    fit.trained_on.join(", "),
                    m.profile.gpu
                ),
            };
        }
    }
    "spec-sheet roofline estimate (FLOPs at the dense bf16 peak, bytes at HBM bandwidth, no fixed costs): \
     no MoE layer was measured on this GPU"
        .to_string()
}

/// Per-kernel ms of one MoE MLP layer (router GEMM + top-k, grouping, grouped gate-up, activation, grouped down, combine) on `gpu`; routed tokens balanced (imbalance 1.0 = balanced; the busiest expert gets imbalance x the mean rows). Decode: tokens = batch, experts read = experts * (1 - (1 - top_k/experts)^tokens).
pub fn moe_mlp_ms(
    gpu: &crate::gpu::Gpu,
    shape: &MoeMlpShape,
    phase: Phase,
) -> crate::error::Result<Vec<(&'static str, f64)>> {
    check_shape(shape).map_err(|problem| Error::shape("moe", problem))?;
    let (c, _) = moe_constants(gpu)?;
    let routing = match phase {
        Phase::Prefill => Routing::imbalanced(shape.tokens, shape.top_k, shape.experts, shape.imbalance),
        Phase::Decode => Routing::decode(shape.tokens, shape.top_k, shape.experts),
    };
    let work = layer_work(shape, &routing, Pipeline::Layer, &c.form);
    Ok(MOE_KERNELS
        .iter()
        .zip(work.iter())
        .map(|(name, w)| (*name, c.kernel_ms(w)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_experts_follow_uniform_routing() {
        // one token touches exactly top_k experts; every expert at top_k = experts
        assert!((expected_experts(128, 8, 1) - 8.0).abs() < 1e-9);
        assert_eq!(expected_experts(8, 8, 3), 8.0);
        // 8 of 256 experts, batch 128: 256 (1 - (31/32)^128)
        let want = 256.0 * (1.0 - (31.0f64 / 32.0).powi(128));
        assert!((expected_experts(256, 8, 128) - want).abs() < 1e-9);
        // grows with the batch, never past the experts
        let mut last = 0.0;
        for b in [1, 2, 4, 16, 64, 1024, 1 << 20] {
            let x = expected_experts(64, 6, b);
            assert!(x >= last && x <= 64.0, "{b}: {x}");
            last = x;
        }
        assert!((last - 64.0).abs() < 1e-9);
        // the harness's router touched 55 of 128 experts at batch 8, top-8 (expected 51.6)
        assert!((expected_experts(128, 8, 8) - 51.62).abs() < 0.01);
    }

    #[test]
    fn routings_keep_every_row() {
        let b = Routing::balanced(128, 22, 512);
        assert_eq!(b.rows, 2816.0);
        assert_eq!(b.groups, vec![(256.0, 5.0), (256.0, 6.0)]);
        let sum = |r: &Routing| r.groups.iter().map(|(c, x)| c * x).sum::<f64>();
        assert_eq!(sum(&b), b.rows);
        // Mixtral at 2048 tokens, imbalance 2: the hot expert 1024 rows, the others 439 or 440
        let i = Routing::imbalanced(2048, 2, 8, 2.0);
        assert_eq!(i.groups[0], (1.0, 1024.0));
        assert_eq!(sum(&i), 4096.0);
        assert_eq!(Routing::imbalanced(2048, 2, 8, 1.0), Routing::balanced(2048, 2, 8));
        let d = Routing::decode(1, 2, 8);
        assert!((d.touched() - 2.0).abs() < 1e-9 && (sum(&d) - 2.0).abs() < 1e-9);
        assert_eq!(Routing::balanced(1, 1, 128).touched(), 1.0);
    }

    #[test]
    fn grouped_gemms_quantize_rows_into_paired_tiles() {
        let form = MoeForm {
            sm_count: 132,
            ramp_bytes: 0.0,
        };
        // DeepSeek-V2-Lite gate-up at 4096 tokens: 384 rows per expert, 128x256 tiles:
        // 3 row tiles paired up to 4, 11 column tiles, 64 experts
        let g = grouped_gemm_work(&Routing::balanced(4096, 6, 64), 2816, 2048, &form);
        assert_eq!(
            g.compute[r::GEMM_FLOPS],
            2.0 * (64.0 * 4.0 * 11.0) * 128.0 * 256.0 * 2048.0
        );
        assert_eq!(g.compute[r::GEMM_SMALL_FLOPS], 0.0);
        // 16 rows per expert: 64x128 tiles, one row tile paired up to 2
        let s = grouped_gemm_work(&Routing::balanced(256, 8, 128), 1536, 2048, &form);
        assert_eq!(
            s.compute[r::GEMM_SMALL_FLOPS],
            2.0 * (128.0 * 2.0 * 12.0) * 64.0 * 128.0 * 2048.0
        );
        // only the experts with rows are read
        let d = grouped_gemm_work(&Routing::over(1, 8, 256, 8.0), 4096, 7168, &form);
        assert_eq!(
            d.memory[r::GEMM_WEIGHTS],
            2.0 * 8.0 * 4096.0 * 7168.0 + 2.0 * 8.0 * 7168.0
        );
    }

    #[test]
    fn bad_shapes_name_their_field() {
        let ok = MoeMlpShape {
            tokens: 16,
            hidden: 2048,
            expert_ffn: 768,
            experts: 128,
            top_k: 8,
            imbalance: 1.0,
        };
        assert!(check_shape(&ok).is_ok());
        let e = check_shape(&MoeMlpShape { top_k: 129, ..ok }).unwrap_err();
        assert!(e.contains("`top_k` = 129 is more than `experts` = 128"), "{e}");
        let e = check_shape(&MoeMlpShape { tokens: 0, ..ok }).unwrap_err();
        assert!(e.contains("`tokens` must be at least 1"), "{e}");
        let e = check_shape(&MoeMlpShape {
            imbalance: f64::NAN,
            ..ok
        })
        .unwrap_err();
        assert!(e.contains("`imbalance`"), "{e}");
        let e = check_shape(&MoeMlpShape {
            experts: 1 << 20,
            top_k: 1,
            ..ok
        })
        .unwrap_err();
        assert!(e.contains("absurdly large"), "{e}");
    }
}
