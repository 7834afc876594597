//! The streaming search gives what full materialization gives, on spaces
//! small enough to do both.

use nas::calibrate::CalibrationBlock;
use nas::gpu::{CostModelKind, Gpu, GpuTarget, Latencies, Registry};
use nas::model::StepLatency;
use nas::search::constraints::{Bound, CmpOp, Constraint, Constraints, Metric, Proxies};
use nas::search::family::{Axis, AxisKind, AxisValue, Family, FfnRounding, GqaRounding, Labeled, Rounding, Workload};
use nas::search::seed::{self, SEARCH_FAMILY, WORKLOAD};
use nas::search::stream::{search, Ranked, StreamSpec};
use nas::search::{rank_order, RankMetric};
use nas::shapes::Candidate;
use proptest::prelude::*;

/// Rankings computed the plain way: expand every candidate, evaluate all, sort.
struct Materialized {
    valid: u64,
    passing: u64,
    /// Per GPU: candidates passing every clause on it.
    passing_gpu: Vec<u64>,
    /// Per GPU: names by total, by ms per Mparam, constrained, Pareto front.
    per_gpu: Vec<[Vec<String>; 4]>,
}

/// The seed's GPUs on its constants, and a mix: a seed GPU beside two
/// measured ones (the engine makes one pass per layer model).
fn gpu_sets() -> [Vec<Gpu>; 2] {
    let mixed = [
        GpuTarget::builtin("h100"),
        GpuTarget::builtin("a100").with_cost_model(CostModelKind::Seed),
        GpuTarget::builtin("h200"),
    ];
    [
        seed::seed_gpus().unwrap(),
        Registry::builtin().resolve_all(&mixed).unwrap(),
    ]
}

/// Rankings computed the plain way, the constrained list by `rank_by`, latency clauses with each GPU's own latencies.
fn materialize_by(
    gpus: &[Gpu],
    family: &Family,
    workload: Workload,
    constraints: &Constraints,
    k: usize,
    rank_by: RankMetric,
) -> Materialized {
    let candidates: Vec<Candidate> = family.expand(workload).unwrap().candidates;
    let shapes: Vec<_> = candidates.iter().map(|c| c.shape).collect();
    let latency = Latencies::new(gpus, &shapes);
    let proxies: Vec<Proxies> = shapes.iter().map(Proxies::of).collect();
    let passes: Vec<bool> = shapes.iter().map(|s| constraints.report(s).passes).collect();
    let names = |order: Vec<usize>| -> Vec<String> { order.iter().map(|&i| candidates[i].name.to_string()).collect() };
    let mut passing_gpu = Vec::new();
    let per_gpu = (0..gpus.len())
        .map(|g| {
            let total: Vec<f64> = (0..shapes.len()).map(|i| latency.total_ms(i, g)).collect();
            let step = gpus[g].step_throughputs().unwrap();
            let whole: Vec<StepLatency> = (0..shapes.len())
                .map(|i| nas::model::step_latency_on(&shapes[i], &gpus[g], &step, total[i]).unwrap())
                .collect();
            let passes: Vec<bool> = (0..shapes.len())
                .map(|i| constraints.report_on(&shapes[i], Some(&whole[i])).passes)
                .collect();
            passing_gpu.push(passes.iter().filter(|p| **p).count() as u64);
            let key: Vec<f64> = (0..shapes.len())
                .map(|i| rank_by.key(total[i], total[i] / proxies[i].param_proxy_raw, &whole[i]))
                .collect();
            let efficiency: Vec<f64> = (0..shapes.len())
                .map(|i| total[i] / proxies[i].param_proxy_raw)
                .collect();
            let mut by_total = rank_order(&total);
            by_total.truncate(k);
            let mut by_efficiency = rank_order(&efficiency);
            by_efficiency.truncate(k);
            let mut constrained: Vec<usize> = (0..shapes.len()).filter(|&i| passes[i]).collect();
            constrained.sort_by(|&a, &b| {
                key[a]
                    .total_cmp(&key[b])
                    .then(proxies[b].quality_proxy.total_cmp(&proxies[a].quality_proxy))
                    .then_with(|| candidates[a].name.cmp(&candidates[b].name))
            });
            constrained.truncate(k);
            // Pareto front by brute force: nobody at most as slow with more quality, or faster with as much.
            let mut front: Vec<usize> = (0..shapes.len())
                .filter(|&i| {
                    !(0..shapes.len()).any(|j| {
                        let (tj, qj, ti, qi) = (total[j], proxies[j].quality_proxy, total[i], proxies[i].quality_proxy);
                        (tj <= ti && qj > qi) || (tj < ti && qj >= qi) || (tj == ti && qj == qi && j < i)
                    })
                })
                .collect();
            front.sort_by(|&a, &b| total[a].total_cmp(&total[b]));
            [names(by_total), names(by_efficiency), names(constrained), names(front)]
        })
        .collect();
    Materialized {
        valid: candidates.len() as u64,
        passing: passes.iter().filter(|p| **p).count() as u64,
        passing_gpu,
        per_gpu,
    }
}

fn streamed(
    gpus: &[Gpu],
    family: &Family,
    workload: Workload,
    constraints: &Constraints,
    k: usize,
    rank_by: RankMetric,
) -> nas::search::stream::StreamResult {
    let spec = StreamSpec {
        family,
        workload,
        hardware: gpus,
        constraints,
        top_k: k,
        rank_by,
    };
    search(&spec, &|_| {}).unwrap()
}

fn assert_same(family: &Family, workload: Workload, constraints: &Constraints, k: usize) {
    for gpus in gpu_sets() {
        assert_same_on(&gpus, family, workload, constraints, k);
    }
}

fn assert_same_on(gpus: &[Gpu], family: &Family, workload: Workload, constraints: &Constraints, k: usize) {
    assert_same_by(gpus, family, workload, constraints, k, RankMetric::TotalMs);
}

fn assert_same_by(
    gpus: &[Gpu],
    family: &Family,
    workload: Workload,
    constraints: &Constraints,
    k: usize,
    rank_by: RankMetric,
) {
    let want = materialize_by(gpus, family, workload, constraints, k, rank_by);
    let got = streamed(gpus, family, workload, constraints, k, rank_by);
    assert_eq!((got.valid, got.passing), (want.valid, want.passing));
    let passing: Vec<u64> = got.per_gpu.iter().map(|g| g.passing).collect();
    assert_eq!(passing, want.passing_gpu, "passing per GPU");
    assert_eq!(got.per_gpu.len(), gpus.len());
    let names = |r: &[Ranked]| -> Vec<String> { r.iter().map(|e| e.name.clone()).collect() };
    for ((g, w), gpu) in got.per_gpu.iter().zip(&want.per_gpu).zip(gpus) {
        assert_eq!(g.hardware, gpu.key, "GPUs stay in order");
        assert_eq!(names(&g.total_ms_top), w[0], "{} by total", g.hardware);
        assert_eq!(
            names(&g.ms_per_mparam_proxy_top),
            w[1],
            "{} by ms per Mparam",
            g.hardware
        );
        assert_eq!(names(&g.constrained_top), w[2], "{} constrained", g.hardware);
        assert_eq!(names(&g.pareto_front), w[3], "{} Pareto front", g.hardware);
    }
}

#[test]
fn the_seed_generated_search_streams_to_the_materialized_result() {
    let constraints = Constraints {
        clauses: seed::CONSTRAINTS.to_vec().into(),
    };
    assert_same(&SEARCH_FAMILY, WORKLOAD, &constraints, 25);
    assert_same(&SEARCH_FAMILY, WORKLOAD, &constraints, 600); // k above the family size
}

#[test]
fn the_streamed_generated_search_is_the_seeds() {
    // The pack's generated_search comes from the streaming engine: parity with the seed holds.
    let pack = seed::pack_spec(CalibrationBlock::disabled())
        .unwrap()
        .evaluate()
        .unwrap();
    let h100 = &pack.reports["h100"];
    assert_eq!(h100.generated_candidate_count, 540);
    assert_eq!(
        h100.generated_search.total_ms_top[0].name,
        "gen_h1536_hd64_kv1_ffn3_win512_rope"
    );
}

fn ints(kind: AxisKind, values: Vec<u64>) -> Axis {
    Axis {
        kind,
        values: values
            .into_iter()
            .map(|v| Labeled::new(AxisValue::Int(v)))
            .collect::<Vec<_>>()
            .into(),
    }
}

prop_compose! {
    fn small_family()(
        hidden in prop::collection::btree_set(prop::sample::select(vec![512u64, 768, 1000, 1024, 1536, 2048, 2304, 3072]), 1..4),
        head in prop::collection::btree_set(prop::sample::select(vec![64u64, 96, 128, 256]), 1..3),
        gqa in prop::collection::btree_set(1u64..9, 1..3),
        ratios in prop::collection::btree_set(0usize..4, 1..3),
        windows in prop::collection::btree_set(prop::sample::select(vec![0u64, 256, 1024]), 1..3),
        seqs in prop::collection::btree_set(prop::sample::select(vec![256u64, 1024, 2048]), 1..3),
        up in any::<bool>(),
        gqa_down in any::<bool>(),
    ) -> Family {
        Family {
            source: "generated_candidate".into(),
            axes: vec![
                ints(AxisKind::HiddenDim, hidden.into_iter().collect()),
                ints(AxisKind::HeadDim, head.into_iter().collect()),
                ints(AxisKind::GqaGroup, gqa.into_iter().collect()),
                Axis { kind: AxisKind::FfnRatio, values: ratios.into_iter().map(|r| Labeled::new(AxisValue::Ratio([2.5, 3.0, 4.0, 5.333][r]))).collect::<Vec<_>>().into() },
                Axis { kind: AxisKind::Window, values: windows.into_iter().map(|w| Labeled::new(AxisValue::Window((w > 0).then_some(w)))).collect::<Vec<_>>().into() },
                ints(AxisKind::SeqLen, seqs.into_iter().collect()),
                Axis { kind: AxisKind::QkNorm, values: vec![Labeled::new(AxisValue::Bool(true)), Labeled::new(AxisValue::Bool(false))].into() },
            ].into(),
            ffn_rounding: FfnRounding { multiple: 128, rounding: if up { Rounding::Up } else { Rounding::NearestEven } },
            gqa_rounding: if gqa_down { GqaRounding::Down } else { GqaRounding::Exact },
            template: "h{hidden_dim}_hd{head_dim}_g{gqa_group}_f{ffn_ratio}_w{window}_s{seq_len}_{qk_norm}".into(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_families_stream_to_the_materialized_result(family in small_family(), k in 1usize..12) {
        prop_assume!(family.expand(WORKLOAD).map(|e| !e.candidates.is_empty()).unwrap_or(false));
        let constraints = Constraints::new(vec![
            Constraint::Compare { metric: Metric::HiddenDim, op: CmpOp::Ge, bound: Bound::Int(1024) },
            Constraint::Any(vec![
                Constraint::Compare { metric: Metric::FfnRatio, op: CmpOp::Le, bound: Bound::Float(4.0) },
                Constraint::Compare { metric: Metric::UseQkNorm, op: CmpOp::Eq, bound: Bound::Bool(true) },
            ].into()),
        ]).unwrap();
        assert_same(&family, Workload::layer(2048, 2), &constraints, k);
    }
}

/// Whole models (layers, vocabulary, decode context and batch as axes) on the
/// mixed seed + measured GPU set: ranked by decode latency and by decode
/// tokens per second under a prefill bound and a clause mixing a latency with
/// a shape, each GPU with its own latencies.
#[test]
fn whole_models_stream_by_decode_under_latency_constraints() {
    let family = Family {
        source: "generated_candidate".into(),
        axes: vec![
            ints(AxisKind::HiddenDim, vec![2048, 3072, 4096]),
            ints(AxisKind::HeadDim, vec![128]),
            ints(AxisKind::GqaGroup, vec![2, 4, 8]),
            Axis {
                kind: AxisKind::FfnRatio,
                values: vec![Labeled::new(AxisValue::Ratio(3.5)), Labeled::new(AxisValue::Ratio(4.0))].into(),
            },
            ints(AxisKind::NumLayers, vec![16, 24, 32]),
            ints(AxisKind::VocabSize, vec![32000, 128256]),
            Axis {
                kind: AxisKind::Window,
                values: vec![Labeled::new(AxisValue::Window(Some(1024))), Labeled::new(AxisValue::Window(None))].into(),
            },
            ints(AxisKind::BatchSize, vec![1, 8]),
            ints(AxisKind::ContextLen, vec![4096, 16384]),
        ]
        .into(),
        ffn_rounding: FfnRounding {
            multiple: 256,
            rounding: Rounding::NearestEven,
        },
        gqa_rounding: GqaRounding::Exact,
        template: "m_h{hidden_dim}_g{gqa_group}_f{ffn_ratio}_l{num_layers}_v{vocab_size}_w{window}_b{batch_size}_c{context_len}"
            .into(),
    };
    let workload = Workload::layer(2048, 1);
    let [_, mixed] = gpu_sets();
    // Bounds midway between two neighbours around the median of the first GPU,
    // so that both clauses bite and no candidate sits on a bound (where the
    // streamed sum and the exact one may differ in the last bit).
    let candidates = family.expand(workload).unwrap().candidates;
    let shapes: Vec<_> = candidates.iter().map(|c| c.shape).collect();
    let latency = Latencies::new(&mixed, &shapes);
    let step = mixed[0].step_throughputs().unwrap();
    let mut whole: Vec<StepLatency> = (0..shapes.len())
        .map(|i| nas::model::step_latency(&shapes[i], &step, latency.total_ms(i, 0)))
        .collect();
    whole.sort_by(|a, b| a.prefill_ms.total_cmp(&b.prefill_ms));
    let midway = |v: &[f64]| -> f64 {
        let m = v.len() / 2;
        let next = v[m..].iter().copied().find(|x| *x > v[m]).unwrap();
        (v[m] + next) / 2.0
    };
    let prefill_bound = midway(&whole.iter().map(|w| w.prefill_ms).collect::<Vec<_>>());
    whole.sort_by(|a, b| a.decode_tokens_per_s.total_cmp(&b.decode_tokens_per_s));
    let tokens_bound = midway(&whole.iter().map(|w| w.decode_tokens_per_s).collect::<Vec<_>>());
    let constraints = Constraints::new(vec![
        Constraint::Compare {
            metric: Metric::PrefillMs,
            op: CmpOp::Le,
            bound: Bound::Float(prefill_bound),
        },
        Constraint::Any(
            vec![
                Constraint::Compare {
                    metric: Metric::DecodeTokensPerS,
                    op: CmpOp::Ge,
                    bound: Bound::Float(tokens_bound),
                },
                Constraint::Compare {
                    metric: Metric::HiddenDim,
                    op: CmpOp::Ge,
                    bound: Bound::Int(4096),
                },
            ]
            .into(),
        ),
        Constraint::Range {
            metric: Metric::DecodeMs,
            lo: Bound::Float(0.0),
            hi: Bound::Float(1e6),
            inclusive: true,
        },
    ])
    .unwrap();
    let want = materialize_by(&mixed, &family, workload, &constraints, 7, RankMetric::DecodeMs);
    assert!(
        want.passing_gpu.iter().all(|&p| p > 0 && p < want.passing),
        "the latency clauses bite on every GPU: {:?} of {}",
        want.passing_gpu,
        want.passing
    );
    assert_ne!(want.passing_gpu[0], want.passing_gpu[2], "and differently per GPU");
    for rank_by in [
        RankMetric::DecodeMs,
        RankMetric::PrefillMs,
        RankMetric::DecodeTokensPerS,
        RankMetric::TotalMs,
    ] {
        for k in [1, 7, 2000] {
            assert_same_by(&mixed, &family, workload, &constraints, k, rank_by);
        }
    }
    // The streamed entries carry each GPU's exact latencies.
    let got = streamed(&mixed, &family, workload, &constraints, 3, RankMetric::DecodeMs);
    for (g, result) in got.per_gpu.iter().enumerate() {
        let step = mixed[g].step_throughputs().unwrap();
        for r in &result.constrained_top {
            let exact = nas::model::step_latency(&r.shape, &step, r.total_ms);
            assert_eq!(r.latency, Some(exact));
            assert!(r.passes && exact.prefill_ms <= prefill_bound);
        }
    }
}

/// A window not below the sequence length is kept, not skipped, in both
/// paths (docs/SEARCH.md, docs/DSL.md): it is priced as a sliding-window kernel
/// attending to every earlier token.
#[test]
fn windows_not_below_the_sequence_length_are_kept() {
    let int = |kind, v: &[u64]| Axis {
        kind,
        values: v
            .iter()
            .map(|&x| Labeled::new(AxisValue::Int(x)))
            .collect::<Vec<_>>()
            .into(),
    };
    let family = Family {
        source: "generated_candidate".into(),
        axes: vec![
            int(AxisKind::HiddenDim, &[2048]),
            int(AxisKind::HeadDim, &[128]),
            int(AxisKind::FfnDim, &[8192]),
            Axis {
                kind: AxisKind::Window,
                values: vec![
                    Labeled::new(AxisValue::Window(Some(2048))),
                    Labeled::new(AxisValue::Window(Some(8192))),
                    Labeled::new(AxisValue::Window(None)),
                ]
                .into(),
            },
        ]
        .into(),
        ffn_rounding: FfnRounding {
            multiple: 128,
            rounding: Rounding::NearestEven,
        },
        gqa_rounding: GqaRounding::Exact,
        template: "w{window}".into(),
    };
    let workload = Workload::layer(2048, 1);
    let listed = family.expand(workload).unwrap();
    assert_eq!(listed.candidates.len(), 3, "none skipped: {:?}", listed.skipped);
    let gpus = Registry::builtin().resolve_all(&[GpuTarget::builtin("h100")]).unwrap();
    let constraints = Constraints::default();
    let spec = StreamSpec {
        family: &family,
        workload,
        hardware: &gpus,
        constraints: &constraints,
        top_k: 3,
        rank_by: RankMetric::TotalMs,
    };
    let streamed = search(&spec, &|_| {}).unwrap();
    assert_eq!((streamed.combinations, streamed.valid), (3, 3));
    let mut names: Vec<&str> = streamed.per_gpu[0]
        .total_ms_top
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["w2048", "w8192", "wfull"]);
}

/// Precision axes (weights bf16 / fp8 / int4, KV cache bf16 / fp8) change
/// which kernels' work and rates apply: the streamed search, whose tables are
/// built from the fields each kernel declares it reads, equals full
/// materialization on the measured GPUs, by every ranking.
#[test]
fn precision_axes_stream_to_the_materialized_result() {
    use nas::precision::{KvCachePrecision, WeightPrecision};
    let family = Family {
        source: "generated_candidate".into(),
        axes: vec![
            ints(AxisKind::HiddenDim, vec![2048, 4096]),
            ints(AxisKind::HeadDim, vec![64, 128]),
            ints(AxisKind::GqaGroup, vec![1, 4, 8]),
            Axis {
                kind: AxisKind::FfnRatio,
                values: vec![Labeled::new(AxisValue::Ratio(3.5))].into(),
            },
            ints(AxisKind::NumLayers, vec![24]),
            ints(AxisKind::VocabSize, vec![128256]),
            Axis {
                kind: AxisKind::Weights,
                values: WeightPrecision::ALL
                    .map(|p| Labeled::new(AxisValue::Weights(p)))
                    .to_vec()
                    .into(),
            },
            Axis {
                kind: AxisKind::KvCache,
                values: KvCachePrecision::ALL
                    .map(|p| Labeled::new(AxisValue::KvCache(p)))
                    .to_vec()
                    .into(),
            },
            ints(AxisKind::BatchSize, vec![1, 32]),
            ints(AxisKind::ContextLen, vec![8192]),
        ]
        .into(),
        ffn_rounding: FfnRounding {
            multiple: 256,
            rounding: Rounding::NearestEven,
        },
        gqa_rounding: GqaRounding::Exact,
        template: "m_h{hidden_dim}_d{head_dim}_g{gqa_group}_{weights}_kv{kv_cache}_b{batch_size}".into(),
    };
    let workload = Workload::layer(2048, 1);
    let gpus = Registry::builtin()
        .resolve_all(&[GpuTarget::builtin("h200"), GpuTarget::builtin("h100")])
        .unwrap();
    // 8 GiB of weights: the 4096-wide models pass in fp8 and int4, not in bf16.
    let constraints = Constraints::new(vec![
        Constraint::Compare {
            metric: Metric::HiddenDim,
            op: CmpOp::Ge,
            bound: Bound::Int(2048),
        },
        Constraint::Compare {
            metric: Metric::WeightGib,
            op: CmpOp::Le,
            bound: Bound::Float(8.0),
        },
    ])
    .unwrap();
    // The axes matter: the same architecture is faster in fp8 than in bf16 on decode.
    let candidates = family.expand(workload).unwrap().candidates;
    let shapes: Vec<_> = candidates.iter().map(|c| c.shape).collect();
    let latency = Latencies::new(&gpus, &shapes);
    let step = gpus[0].step_throughputs().unwrap();
    let decode = |w: WeightPrecision, kv: KvCachePrecision| {
        let i = shapes
            .iter()
            .position(|s| s.precision.weights == w && s.precision.kv_cache == kv && s.batch_size == 32)
            .unwrap();
        nas::model::step_latency(&shapes[i], &step, latency.total_ms(i, 0)).decode_ms
    };
    assert!(
        decode(WeightPrecision::Fp8, KvCachePrecision::Bf16) < decode(WeightPrecision::Bf16, KvCachePrecision::Bf16)
    );
    assert!(decode(WeightPrecision::Fp8, KvCachePrecision::Fp8) < decode(WeightPrecision::Fp8, KvCachePrecision::Bf16));
    let passing = |w: WeightPrecision| {
        shapes
            .iter()
            .filter(|s| s.hidden_dim == 4096 && s.precision.weights == w && constraints.report(s).passes)
            .count()
    };
    assert_eq!(passing(WeightPrecision::Bf16), 0);
    assert!(passing(WeightPrecision::Fp8) > 0 && passing(WeightPrecision::Int4) > 0);
    for rank_by in [RankMetric::DecodeMs, RankMetric::PrefillMs, RankMetric::TotalMs] {
        for k in [1, 5, 500] {
            assert_same_by(&gpus, &family, workload, &constraints, k, rank_by);
        }
    }
}

fn patterns(values: &[&str]) -> Axis {
    Axis {
        kind: AxisKind::LayerPattern,
        values: values
            .iter()
            .map(|p| Labeled::new(AxisValue::Pattern(p.parse().unwrap())))
            .collect::<Vec<_>>()
            .into(),
    }
}

fn family_of(axes: Vec<Axis>, template: &str) -> Family {
    Family {
        source: "generated_candidate".into(),
        axes: axes.into(),
        ffn_rounding: FfnRounding {
            multiple: 128,
            rounding: Rounding::NearestEven,
        },
        gqa_rounding: GqaRounding::Exact,
        template: template.to_string().into(),
    }
}

/// Families of stacks (mixture-of-experts, layer-pattern and latent-attention
/// axes) stream to what materialization gives, on the mixed seed + measured
/// GPU set, by every whole-model ranking, under a memory fit and per-GPU
/// latency clauses; invalid combinations (top_k above experts, a pattern
/// without a window) are skipped in both.
#[test]
fn families_of_stacks_stream_to_the_materialized_result() {
    let window = |w: &[Option<u64>]| Axis {
        kind: AxisKind::Window,
        values: w
            .iter()
            .map(|&w| Labeled::new(AxisValue::Window(w)))
            .collect::<Vec<_>>()
            .into(),
    };
    let moe = family_of(
        vec![
            ints(AxisKind::HiddenDim, vec![1024, 2048]),
            ints(AxisKind::HeadDim, vec![128]),
            ints(AxisKind::GqaGroup, vec![4]),
            ints(AxisKind::FfnDim, vec![4096]),
            ints(AxisKind::NumLayers, vec![8, 12]),
            ints(AxisKind::VocabSize, vec![32000]),
            ints(AxisKind::Experts, vec![4, 8, 16]),
            ints(AxisKind::TopK, vec![1, 2, 8]),
            ints(AxisKind::ExpertFfnDim, vec![512, 1024]),
            ints(AxisKind::FirstDenseLayers, vec![1, 2]),
            ints(AxisKind::BatchSize, vec![1, 16]),
        ],
        "m_h{hidden_dim}_l{num_layers}_e{experts}_k{top_k}_f{expert_ffn_dim}_d{first_dense_layers}_b{batch_size}",
    );
    let pattern = family_of(
        vec![
            ints(AxisKind::HiddenDim, vec![2048]),
            ints(AxisKind::HeadDim, vec![128, 256]),
            ints(AxisKind::GqaGroup, vec![2]),
            ints(AxisKind::FfnDim, vec![8192]),
            ints(AxisKind::NumLayers, vec![12, 26]),
            ints(AxisKind::VocabSize, vec![32000]),
            window(&[Some(512), Some(1024), None]),
            patterns(&["5:1", "1:1", "2:3"]),
            ints(AxisKind::ContextLen, vec![4096, 32768]),
        ],
        "p_hd{head_dim}_l{num_layers}_w{window}_p{layer_pattern}_c{context_len}",
    );
    let latent = family_of(
        vec![
            ints(AxisKind::HiddenDim, vec![2048]),
            ints(AxisKind::HeadDim, vec![64, 128]),
            ints(AxisKind::NumHeads, vec![16]),
            ints(AxisKind::GqaGroup, vec![1]),
            ints(AxisKind::FfnDim, vec![8192]),
            ints(AxisKind::NumLayers, vec![16]),
            ints(AxisKind::VocabSize, vec![32000]),
            ints(AxisKind::KvLoraRank, vec![256, 512]),
            ints(AxisKind::RopeHeadDim, vec![32, 64]),
            ints(AxisKind::QLoraRank, vec![768, 1536]),
            ints(AxisKind::Experts, vec![8]),
            ints(AxisKind::TopK, vec![2]),
            ints(AxisKind::SharedExperts, vec![1, 2]),
        ],
        "l_hd{head_dim}_r{kv_lora_rank}_rope{rope_head_dim}_q{q_lora_rank}_s{shared_experts}",
    );
    let workload = Workload::layer(1024, 4);
    let [_, mixed] = gpu_sets();
    for (family, skipped) in [(&moe, true), (&pattern, true), (&latent, false)] {
        assert!(family.is_arch());
        let listed = family.expand(workload).unwrap();
        assert_eq!(!listed.skipped.is_empty(), skipped, "{:?}", listed.skipped.first());
        assert!(listed.candidates.len() > 8);
        // A bound midway through the first GPU's decode times, so that it bites.
        let shapes: Vec<_> = listed.candidates.iter().map(|c| c.shape).collect();
        let step = mixed[0].step_throughputs().unwrap();
        let mut decode: Vec<f64> = shapes
            .iter()
            .map(|s| nas::model::step_latency_on(s, &mixed[0], &step, 0.0).unwrap().decode_ms)
            .collect();
        decode.sort_by(f64::total_cmp);
        let m = decode.len() / 2;
        let next = decode[m..].iter().copied().find(|x| *x > decode[m]).unwrap();
        let constraints = Constraints::new(vec![
            Constraint::Compare {
                metric: Metric::DecodeMs,
                op: CmpOp::Le,
                bound: Bound::Float((decode[m] + next) / 2.0),
            },
            Constraint::Compare {
                metric: Metric::ParamsM,
                op: CmpOp::Ge,
                bound: Bound::Float(100.0),
            },
            Constraint::Fits {
                gpu: "h100".into(),
                memory_gib: 80.0,
                batch: 64,
                context: 32768,
            },
        ])
        .unwrap();
        let want = materialize_by(&mixed, family, workload, &constraints, 5, RankMetric::DecodeMs);
        assert!(
            want.passing_gpu[0] > 0 && want.passing_gpu[0] < want.valid,
            "{:?}",
            want.passing_gpu
        );
        for rank_by in [
            RankMetric::DecodeMs,
            RankMetric::PrefillMs,
            RankMetric::DecodeTokensPerS,
            RankMetric::TotalMs,
        ] {
            for k in [1, 5, 1000] {
                assert_same_by(&mixed, family, workload, &constraints, k, rank_by);
            }
        }
        // The streamed entries carry each GPU's exact stack latencies.
        let got = streamed(&mixed, family, workload, &constraints, 3, RankMetric::DecodeMs);
        for (g, result) in got.per_gpu.iter().enumerate() {
            let step = mixed[g].step_throughputs().unwrap();
            for r in &result.constrained_top {
                assert!(r.shape.arch.is_set());
                let exact = nas::model::step_latency_on(&r.shape, &mixed[g], &step, r.total_ms).unwrap();
                assert_eq!(r.latency, Some(exact));
            }
        }
    }
}

/// A family of stacks has at most 2^18 combinations (each validated and
/// timed one by one); the count of valid ones is exact.
#[test]
fn families_of_stacks_are_bounded_and_counted_exactly() {
    let big = family_of(
        vec![
            ints(AxisKind::HiddenDim, (1..=64).map(|i| 1024 + 64 * i).collect()),
            ints(AxisKind::HeadDim, vec![128]),
            ints(AxisKind::FfnDim, (1..=64).map(|i| 2048 + 64 * i).collect()),
            ints(AxisKind::NumLayers, vec![8, 16, 24, 32]),
            ints(AxisKind::VocabSize, vec![32000, 64000]),
            ints(AxisKind::Experts, vec![4, 8, 16, 32, 64, 128, 256, 512]),
            ints(AxisKind::TopK, vec![1, 2]),
        ],
        "b_{hidden_dim}_{ffn_dim}_{num_layers}_{vocab_size}_{experts}_{top_k}",
    );
    let e = nas::search::stream::count_valid(&big, Workload::layer(1024, 1)).unwrap_err();
    assert!(e.to_string().contains("at most 262144"), "{e}");
    let small = family_of(
        vec![
            ints(AxisKind::HiddenDim, vec![2048]),
            ints(AxisKind::HeadDim, vec![128]),
            ints(AxisKind::FfnDim, vec![4096]),
            ints(AxisKind::NumLayers, vec![4, 8]),
            ints(AxisKind::VocabSize, vec![32000]),
            ints(AxisKind::Experts, vec![2, 4, 8]),
            ints(AxisKind::TopK, vec![1, 2, 4, 8]),
            ints(AxisKind::FirstDenseLayers, vec![2, 4, 6]),
        ],
        "s_{num_layers}_{experts}_{top_k}_{first_dense_layers}",
    );
    let listed = small.expand(Workload::layer(1024, 1)).unwrap().candidates.len() as u64;
    // top_k <= experts: 1+2+3+4 = ... per layer count; first_dense_layers below num_layers.
    let by_rule: u64 = [4u64, 8]
        .iter()
        .map(|&layers| {
            let k_pairs: u64 = [2u64, 4, 8]
                .iter()
                .map(|&e| [1u64, 2, 4, 8].iter().filter(|&&k| k <= e).count() as u64)
                .sum();
            let dense = [2u64, 4, 6].iter().filter(|&&d| d < layers).count() as u64;
            k_pairs * dense
        })
        .sum();
    assert_eq!(listed, by_rule);
    assert_eq!(
        nas::search::stream::count_valid(&small, Workload::layer(1024, 1)).unwrap(),
        listed
    );
}
