/// A fixed candidate, a family and a sweep on a built-in and a custom GPU.
pub struct Small;
#[allow(dead_code)]
impl Small {
    /// The GPUs this search targets, in declared order, with the cost
    /// model asked for (resolved against the registry at run time).
    pub const HARDWARE: &'static [::nas::__private::GpuTarget] = &[
        ::nas::__private::GpuTarget {
            key: ::nas::__private::Cow::Borrowed("h100"),
            cost_model: ::core::option::Option::None,
            profile: ::core::option::Option::None,
            own: ::core::option::Option::None,
        },
        ::nas::__private::GpuTarget {
            key: ::nas::__private::Cow::Borrowed("mine"),
            cost_model: ::core::option::Option::Some(
                ::nas::__private::CostModelKind::Seed,
            ),
            profile: ::core::option::Option::None,
            own: ::core::option::Option::Some(::nas::__private::OwnGpu {
                label: ::nas::__private::Cow::Borrowed("Mine"),
                spec: ::nas::__private::SpecSheet {
                    sm_count: ::core::option::Option::Some(108u64),
                    l2_bytes: ::core::option::Option::Some(41943040u64),
                    hbm_gbps: ::core::option::Option::Some(2039f64),
                    dense_bf16_tflops: ::core::option::Option::Some(312f64),
                    dense_fp8_tflops: ::core::option::Option::None,
                    bf16_tensor_cores: ::core::option::Option::Some(true),
                    memory_gib: ::core::option::Option::Some(80f64),
                    source: ::nas::__private::Cow::Borrowed(
                        "NVIDIA A100 datasheet (SXM4 80 GB): 108 SMs, 40 MB L2, 2039 GB/s HBM2e, 312 TFLOP/s dense bf16",
                    ),
                },
                seed: ::core::option::Option::Some((
                    ::nas::__private::Throughputs::from_values([
                        2039f64, 1300f64, 600f64, 900f64, 500f64, 1200f64, 250f64, 50f64,
                        155f64, 1800f64,
                    ]),
                    ::nas::__private::Cow::Borrowed(
                        "declared in the spec, from a100 (seed tool's hand-set constants (not measured))",
                    ),
                )),
            }),
        },
    ];
    /// Every candidate, fixed ones and family members, in declared order.
    pub const CANDIDATES: &'static [::nas::__private::Candidate] = &[
        ::nas::__private::candidate(
            "llama3_8b",
            "known_model",
            [4096, 32, 8, 128, 14336, 1024, 2],
            false,
            0,
            ::nas::__private::ModelDims::NONE,
        ),
        ::nas::__private::candidate(
            "gen_h2048_w512",
            "generated_candidate",
            [2048, 16, 4, 128, 8192, 1024, 2],
            false,
            512,
            ::nas::__private::ModelDims::NONE,
        ),
        ::nas::__private::candidate(
            "gen_h2048_wfull",
            "generated_candidate",
            [2048, 16, 4, 128, 8192, 1024, 2],
            false,
            0,
            ::nas::__private::ModelDims::NONE,
        ),
        ::nas::__private::candidate(
            "gen_h2560_w512",
            "generated_candidate",
            [2560, 20, 5, 128, 10240, 1024, 2],
            false,
            512,
            ::nas::__private::ModelDims::NONE,
        ),
        ::nas::__private::candidate(
            "gen_h2560_wfull",
            "generated_candidate",
            [2560, 20, 5, 128, 10240, 1024, 2],
            false,
            0,
            ::nas::__private::ModelDims::NONE,
        ),
    ];
    /// The quality constraints; a candidate passes when all hold.
    pub const CONSTRAINTS: &'static [::nas::__private::Constraint] = &[
        ::nas::__private::Constraint::Compare {
            metric: ::nas::__private::Metric::HiddenDim,
            op: ::nas::__private::CmpOp::Ge,
            bound: ::nas::__private::Bound::Int(2048i64),
        },
        ::nas::__private::Constraint::Any(
            ::nas::__private::Cow::Borrowed(
                &[
                    ::nas::__private::Constraint::Range {
                        metric: ::nas::__private::Metric::FfnRatio,
                        lo: ::nas::__private::Bound::Float(3.75f64),
                        hi: ::nas::__private::Bound::Float(5.5f64),
                        inclusive: true,
                    },
                    ::nas::__private::Constraint::Compare {
                        metric: ::nas::__private::Metric::UseQkNorm,
                        op: ::nas::__private::CmpOp::Eq,
                        bound: ::nas::__private::Bound::Bool(false),
                    },
                ],
            ),
        ),
    ];
    /// The default sequence length and batch size of candidates.
    pub const WORKLOAD: ::nas::__private::Workload = ::nas::__private::Workload {
        seq_len: 1024u64,
        batch_size: 2u64,
        model: ::nas::__private::ModelDims::NONE,
        precision: ::nas::__private::Precision::BF16,
    };
    /// A larger space (its axes, streamed at run time, never a table) and
    /// how many of its best are reported, if declared.
    pub const SPACE: ::core::option::Option<(::nas::__private::Family, usize)> = ::core::option::Option::None;
    /// Kernel-cliff sweeps.
    pub const SWEEPS: &'static [::nas::__private::CliffSweep] = &[
        ::nas::__private::CliffSweep {
            axis: ::nas::__private::CliffAxis::FfnDim,
            base: ::nas::__private::shape([2048, 16, 2, 128, 8064, 1024, 2], false, 0),
            values: ::nas::__private::Cow::Borrowed(&[8064, 8192]),
        },
    ];
    /// The seed-format calibration DB read at run time, if declared.
    pub const CALIBRATION_DB: ::core::option::Option<&'static str> = ::core::option::Option::None;
    /// The metric this search ranks by.
    pub const RANK_BY: ::nas::__private::RankMetric = ::nas::__private::RankMetric::TotalMs;
    /// The search as nas-core values (a measured profile a `gpu` names is read now).
    pub fn spec() -> ::core::result::Result<::nas::search::SearchSpec, ::nas::Error> {
        ::nas::__private::spec(
            Self::HARDWARE,
            Self::CANDIDATES,
            Self::CONSTRAINTS,
            Self::SPACE,
            Self::WORKLOAD,
            Self::SWEEPS,
            Self::RANK_BY,
        )
    }
    /// The declared `space` streamed on every GPU: per GPU its best by each
    /// ranking, its best passing the constraints, and its Pareto front of
    /// latency vs quality proxy (`None` without a `space`).
    pub fn search_space() -> ::core::result::Result<
        ::core::option::Option<::nas::search::stream::StreamResult>,
        ::nas::Error,
    > {
        ::nas::__private::search_space(
            Self::HARDWARE,
            Self::CONSTRAINTS,
            Self::SPACE,
            Self::WORKLOAD,
            Self::RANK_BY,
        )
    }
    /// Every candidate on every GPU, ranked: the pack, ready to `write`.
    pub fn evaluate() -> ::core::result::Result<::nas::report::Pack, ::nas::Error> {
        ::nas::__private::evaluate(Self::spec()?, Self::CALIBRATION_DB)
    }
}
