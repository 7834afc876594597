//! The streaming search gives what full materialization gives, on spaces
//! small enough to do both.

use nas::calibrate::CalibrationBlock;
use nas::gpu::{CostModelKind, Gpu, GpuTarget, Latencies, Registry};
use nas::search::constraints::{Bound, CmpOp, Constraint, Constraints, Metric, Proxies};
use nas::search::family::{Axis, AxisKind, AxisValue, Family, FfnRounding, Labeled, Rounding, Workload};
use nas::search::rank_order;
use nas::search::seed::{self, SEARCH_FAMILY, WORKLOAD};
use nas::search::stream::{search, Ranked, StreamSpec};
use nas::shapes::Candidate;
use proptest::prelude::*;

/// Rankings computed the plain way: expand every candidate, evaluate all, sort.
struct Materialized {
    valid: u64,
    passing: u64,
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

fn materialize(gpus: &[Gpu], family: &Family, workload: Workload, constraints: &Constraints, k: usize) -> Materialized {
    let candidates: Vec<Candidate> = family.expand(workload).unwrap().candidates;
    let shapes: Vec<_> = candidates.iter().map(|c| c.shape).collect();
    let latency = Latencies::new(gpus, &shapes);
    let proxies: Vec<Proxies> = shapes.iter().map(Proxies::of).collect();
    let passes: Vec<bool> = shapes.iter().map(|s| constraints.report(s).passes).collect();
    let names = |order: Vec<usize>| -> Vec<String> { order.iter().map(|&i| candidates[i].name.to_string()).collect() };
    let per_gpu = (0..gpus.len())
        .map(|g| {
            let total: Vec<f64> = (0..shapes.len()).map(|i| latency.total_ms(i, g)).collect();
            let efficiency: Vec<f64> = (0..shapes.len())
                .map(|i| total[i] / proxies[i].param_proxy_raw)
                .collect();
            let mut by_total = rank_order(&total);
            by_total.truncate(k);
            let mut by_efficiency = rank_order(&efficiency);
            by_efficiency.truncate(k);
            let mut constrained: Vec<usize> = (0..shapes.len()).filter(|&i| passes[i]).collect();
            constrained.sort_by(|&a, &b| {
                total[a]
                    .total_cmp(&total[b])
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
        per_gpu,
    }
}

fn streamed(
    gpus: &[Gpu],
    family: &Family,
    workload: Workload,
    constraints: &Constraints,
    k: usize,
) -> nas::search::stream::StreamResult {
    let spec = StreamSpec {
        family,
        workload,
        hardware: gpus,
        constraints,
        top_k: k,
    };
    search(&spec, &|_| {}).unwrap()
}

fn assert_same(family: &Family, workload: Workload, constraints: &Constraints, k: usize) {
    for gpus in gpu_sets() {
        assert_same_on(&gpus, family, workload, constraints, k);
    }
}

fn assert_same_on(gpus: &[Gpu], family: &Family, workload: Workload, constraints: &Constraints, k: usize) {
    let want = materialize(gpus, family, workload, constraints, k);
    let got = streamed(gpus, family, workload, constraints, k);
    assert_eq!((got.valid, got.passing), (want.valid, want.passing));
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
