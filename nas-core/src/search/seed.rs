//! The seed tool's search, as data: its known models, hand-picked
//! candidates, generated families, cliff sweeps and constraints.

use std::borrow::Cow;

use crate::calibrate::CalibrationBlock;
use crate::error::Result;
use crate::gpu::{CostModelKind, GpuTarget, Registry};
use crate::model::ModelDims;
use crate::shapes::{Candidate, LayerShape, GENERATED_CANDIDATE, KNOWN_MODEL, SEED_CANDIDATE};

use super::constraints::{Bound, CmpOp, Constraint, Constraints, Metric};
use super::family::{Axis, AxisKind, AxisValue, Family, FfnRounding, GqaRounding, Labeled, Rounding, Workload};
use super::{CliffAxis, CliffSweep, GeneratedSearch, SearchSpec, SEED_LIMITATIONS};

/// The seed's workload: one sequence of 2048 tokens.
pub const WORKLOAD: Workload = Workload::layer(2048, 1);

const fn shape(d: u64, h: u64, kv: u64, dh: u64, f: u64, qk: bool, w: Option<u64>) -> LayerShape {
    LayerShape {
        hidden_dim: d,
        num_heads: h,
        num_kv_heads: kv,
        head_dim: dh,
        ffn_dim: f,
        seq_len: 2048,
        batch_size: 1,
        use_qk_norm: qk,
        window_size: w,
        model: ModelDims::NONE,
        precision: crate::precision::Precision::BF16,
    }
}

const fn fixed(name: &'static str, source: &'static str, shape: LayerShape) -> Candidate {
    Candidate {
        name: Cow::Borrowed(name),
        source: Cow::Borrowed(source),
        shape,
    }
}

/// Published models the seed compares against.
pub const KNOWN_MODELS: [Candidate; 4] = [
    fixed("gemma4_e2b", KNOWN_MODEL, shape(1536, 8, 1, 256, 6144, true, Some(512))),
    fixed(
        "gemma4_31b",
        KNOWN_MODEL,
        shape(5376, 32, 16, 256, 21504, true, Some(1024)),
    ),
    fixed("llama3_8b", KNOWN_MODEL, shape(4096, 32, 8, 128, 14336, false, None)),
    fixed("llama3_70b", KNOWN_MODEL, shape(8192, 64, 8, 128, 28672, false, None)),
];

/// The seed's hand-picked candidates.
pub const SEED_CANDIDATES: [Candidate; 5] = [
    fixed(
        "optimal_2b",
        SEED_CANDIDATE,
        shape(2048, 16, 2, 128, 8192, true, Some(1024)),
    ),
    fixed(
        "wide_ffn_2b",
        SEED_CANDIDATE,
        shape(1536, 8, 1, 256, 8192, true, Some(1024)),
    ),
    fixed(
        "narrow_heads",
        SEED_CANDIDATE,
        shape(2048, 32, 4, 64, 8192, true, Some(1024)),
    ),
    fixed(
        "deep_narrow",
        SEED_CANDIDATE,
        shape(1024, 8, 1, 128, 4096, true, Some(512)),
    ),
    fixed(
        "big_head_gqa",
        SEED_CANDIDATE,
        shape(2048, 8, 1, 256, 8192, true, Some(1024)),
    ),
];

const fn int(v: u64) -> Labeled {
    Labeled::new(AxisValue::Int(v))
}

const fn window(v: u64) -> Labeled {
    Labeled::new(AxisValue::Window(Some(v)))
}

/// The 40-candidate family of the pack: five widths x two head sizes x two
/// FFN ratios x two windows, GQA group 4.
pub const PACK_FAMILY: Family = Family {
    source: Cow::Borrowed(GENERATED_CANDIDATE),
    axes: Cow::Borrowed(&[
        Axis {
            kind: AxisKind::HiddenDim,
            values: Cow::Borrowed(&[int(1536), int(2048), int(2560), int(3072), int(4096)]),
        },
        Axis {
            kind: AxisKind::HeadDim,
            values: Cow::Borrowed(&[int(128), int(256)]),
        },
        Axis {
            kind: AxisKind::GqaGroup,
            values: Cow::Borrowed(&[int(4)]),
        },
        Axis {
            kind: AxisKind::FfnRatio,
            values: Cow::Borrowed(&[
                Labeled::with_label(AxisValue::Ratio(4.0), "4p0"),
                Labeled::with_label(AxisValue::Ratio(16.0 / 3.0), "5p33"),
            ]),
        },
        Axis {
            kind: AxisKind::Window,
            values: Cow::Borrowed(&[window(512), window(1024)]),
        },
        // The seed's layers have QK-norm unless it says otherwise.
        Axis {
            kind: AxisKind::QkNorm,
            values: Cow::Borrowed(&[Labeled::new(AxisValue::Bool(true))]),
        },
    ]),
    ffn_rounding: FfnRounding {
        multiple: 128,
        rounding: Rounding::NearestEven,
    },
    // The seed's rule: kv heads = max(1, heads // 4), so 6 heads (1536 / 256)
    // get 1 kv head and 10 heads get 2; its names show the declared group.
    gqa_rounding: GqaRounding::Down,
    template: Cow::Borrowed("gen_h{hidden_dim}_hd{head_dim}_gqa{gqa_group}_ffn{ffn_ratio}_w{window}"),
};

/// The 540-combination generated search (top 25 reported by each metric).
pub const SEARCH_FAMILY: Family = Family {
    source: Cow::Borrowed(GENERATED_CANDIDATE),
    axes: Cow::Borrowed(&[
        Axis {
            kind: AxisKind::HiddenDim,
            values: Cow::Borrowed(&[int(1536), int(2048), int(2560)]),
        },
        Axis {
            kind: AxisKind::HeadDim,
            values: Cow::Borrowed(&[int(64), int(128), int(256)]),
        },
        Axis {
            kind: AxisKind::KvHeads,
            values: Cow::Borrowed(&[int(1), int(2), int(4), int(8)]),
        },
        Axis {
            kind: AxisKind::FfnRatio,
            values: Cow::Borrowed(&[
                Labeled::new(AxisValue::Ratio(3.0)),
                Labeled::new(AxisValue::Ratio(4.0)),
                Labeled::new(AxisValue::Ratio(5.333)),
            ]),
        },
        Axis {
            kind: AxisKind::Window,
            values: Cow::Borrowed(&[window(512), window(1024), Labeled::new(AxisValue::Window(None))]),
        },
        Axis {
            kind: AxisKind::QkNorm,
            values: Cow::Borrowed(&[
                Labeled::with_label(AxisValue::Bool(true), "qknorm"),
                Labeled::with_label(AxisValue::Bool(false), "rope"),
            ]),
        },
    ]),
    ffn_rounding: FfnRounding {
        multiple: 128,
        rounding: Rounding::Up,
    },
    gqa_rounding: GqaRounding::Exact,
    template: Cow::Borrowed("gen_h{hidden_dim}_hd{head_dim}_kv{kv_heads}_ffn{ffn_ratio}_win{window}_{qk_norm}"),
};

/// Top entries of the generated search kept per metric.
pub const SEARCH_TOP_K: usize = 25;

/// The seed's quality constraints.
pub const CONSTRAINTS: [Constraint; 3] = [
    Constraint::Compare {
        metric: Metric::HiddenDim,
        op: CmpOp::Ge,
        bound: Bound::Int(2048),
    },
    Constraint::Compare {
        metric: Metric::ParamProxyM,
        op: CmpOp::Ge,
        bound: Bound::Float(16.0),
    },
    Constraint::Range {
        metric: Metric::FfnRatio,
        lo: Bound::Float(3.75),
        hi: Bound::Float(5.5),
        inclusive: true,
    },
];

/// The seed's two kernel-cliff sweeps.
pub fn cliffs() -> Vec<CliffSweep> {
    vec![
        CliffSweep {
            axis: CliffAxis::HiddenDim,
            base: shape(4096, 32, 8, 128, 14336, false, None),
            values: (3840..4352).step_by(32).collect::<Vec<u64>>().into(),
        },
        CliffSweep {
            axis: CliffAxis::FfnDim,
            base: shape(2048, 16, 2, 128, 8192, true, Some(1024)),
            values: (7936..8448).step_by(64).collect::<Vec<u64>>().into(),
        },
    ]
}

/// The seed's GPUs, in its order, on its own constants (parity mode).
pub fn seed_gpus() -> Result<Vec<crate::gpu::Gpu>> {
    let targets = ["a100", "t4", "h100"].map(|k| GpuTarget::builtin(k).with_cost_model(CostModelKind::Seed));
    Registry::builtin().resolve_all(&targets)
}

/// The seed's whole multi-hardware search: 49 candidates on a100, t4, h100.
pub fn pack_spec(calibration: CalibrationBlock) -> Result<SearchSpec> {
    let mut candidates: Vec<Candidate> = KNOWN_MODELS.to_vec();
    candidates.extend(SEED_CANDIDATES);
    candidates.extend(PACK_FAMILY.expand(WORKLOAD)?.candidates);
    Ok(SearchSpec {
        candidates,
        hardware: seed_gpus()?,
        constraints: Constraints {
            clauses: Cow::Borrowed(&CONSTRAINTS),
        },
        generated_search: Some(GeneratedSearch {
            family: SEARCH_FAMILY,
            workload: WORKLOAD,
            top_k: SEARCH_TOP_K,
        }),
        cliffs: cliffs(),
        calibration,
        limitations: SEED_LIMITATIONS.iter().map(|s| s.to_string()).collect(),
        rank_by: super::RankMetric::TotalMs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_the_seed_sizes() {
        assert_eq!(PACK_FAMILY.expand(WORKLOAD).unwrap().candidates.len(), 40);
        assert_eq!(SEARCH_FAMILY.expand(WORKLOAD).unwrap().candidates.len(), 540);
    }
}
