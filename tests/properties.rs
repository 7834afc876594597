//! Properties of the seed model and the rankings, over random shapes.

use nas::cost::{tile_efficiency, LatencyMatrix};
use nas::hardware::{Throughputs, SEED_CONSTANTS};
use nas::search::{pareto_front, rank_order, seed, SearchSpec};
use nas::shapes::{Candidate, LayerShape};
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = LayerShape> {
    (
        1u64..=64, // hidden in units of 64
        prop::sample::select(vec![64u64, 96, 100, 128, 256]),
        0u32..=3,   // gqa group = 2^k
        1u64..=32,  // kv heads
        1u64..=256, // ffn in units of 64
        1u64..=64,  // seq in units of 128
        1u64..=4,   // batch
        any::<bool>(),
        prop::option::of(1u64..=4096),
    )
        .prop_map(|(d, dh, g, kv, f, s, b, qk, w)| LayerShape {
            hidden_dim: d * 64,
            num_heads: kv << g,
            num_kv_heads: kv,
            head_dim: dh,
            ffn_dim: f * 64,
            seq_len: s * 128,
            batch_size: b,
            use_qk_norm: qk,
            window_size: w,
            model: nas::model::ModelDims::NONE,
            precision: nas::precision::Precision::BF16,
        })
}

/// Which small/large throughput each kernel uses: the seed's step at 1024
/// (GEMMs) and 2048 (RMSNorm) is a known non-monotonicity of the seed model,
/// so growth is compared within one regime.
fn regime(s: &LayerShape) -> [bool; 4] {
    let m = s.batch_size * s.seq_len;
    let qkv_n = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim;
    [
        s.hidden_dim >= 2048,
        m.min(qkv_n).min(s.hidden_dim) < 1024,
        m.min(s.hidden_dim).min(s.num_heads * s.head_dim) < 1024,
        m.min(s.hidden_dim).min(s.ffn_dim) < 1024,
    ]
}

/// The seed profiles with the small/large steps removed.
fn flattened() -> Vec<Throughputs> {
    SEED_CONSTANTS
        .iter()
        .map(|(_, t)| Throughputs {
            matmul_tflops_small: t.matmul_tflops,
            rmsnorm_gbps_small: t.rmsnorm_gbps,
            ..*t
        })
        .collect()
}

fn grow(s: &LayerShape, which: usize, by: u64) -> LayerShape {
    let mut g = *s;
    match which {
        0 => g.seq_len += 128 * by,
        1 => g.batch_size += by,
        2 => g.hidden_dim += 128 * by,
        3 => g.ffn_dim += 128 * by,
        4 => g.head_dim += 128 * by,
        5 => g.num_heads += g.num_kv_heads * by,
        _ => g.window_size = g.window_size.map(|w| w + 128 * by),
    }
    g
}

proptest! {
    #[test]
    fn total_is_the_sum_of_kernels(s in shape()) {
        let gpus: Vec<Throughputs> = SEED_CONSTANTS.iter().map(|(_, t)| *t).collect();
        let lat = LatencyMatrix::seed(&[s], &gpus);
        for g in 0..gpus.len() {
            let kernels = lat.kernels(0, g);
            let total = lat.total_ms(0, g);
            prop_assert!((total - kernels.sum()).abs() <= 1e-12 * total, "{total} vs {}", kernels.sum());
            prop_assert!(kernels.ms.iter().all(|&k| k.is_finite() && k >= 0.0));
        }
    }

    #[test]
    fn latency_never_falls_when_a_size_grows_at_fixed_alignment(
        s in shape(), which in 0usize..7, by in 1u64..4
    ) {
        let bigger = grow(&s, which, by);
        prop_assume!(bigger.validate().is_ok());
        let seed: Vec<Throughputs> = SEED_CONSTANTS.iter().map(|(_, t)| *t).collect();
        let flat = flattened();
        for (gpus, same_regime_only) in [(seed, true), (flat, false)] {
            if same_regime_only && regime(&s) != regime(&bigger) {
                continue;
            }
            let lat = LatencyMatrix::seed(&[s, bigger], &gpus);
            for g in 0..gpus.len() {
                prop_assert!(lat.total_ms(1, g) >= lat.total_ms(0, g) * (1.0 - 1e-12),
                    "growing {which} by {by} lowered latency on gpu {g}: {s:?}");
            }
        }
    }

    #[test]
    fn tile_efficiency_is_in_zero_one(d in 1u64..1_000_000) {
        let e = tile_efficiency(d);
        prop_assert!(e > 0.0 && e <= 1.0);
        prop_assert_eq!(e == 1.0, d % 128 == 0);
    }

    #[test]
    fn rankings_are_sorted_complete_and_deterministic(shapes in prop::collection::vec(shape(), 1..30)) {
        let candidates: Vec<Candidate> = shapes.iter().enumerate()
            .map(|(i, s)| Candidate::new(format!("c{i}"), "test", *s)).collect();
        let spec = SearchSpec {
            candidates,
            generated_search: None,
            cliffs: vec![],
            ..seed::pack_spec(nas::calibrate::CalibrationBlock::disabled()).unwrap()
        };
        let pack = spec.evaluate().unwrap();
        prop_assert_eq!(pack.to_json().unwrap(), spec.evaluate().unwrap().to_json().unwrap());
        for report in pack.reports.values() {
            for ranking in [&report.rankings.total_ms, &report.rankings.ms_per_mparam_proxy] {
                prop_assert_eq!(ranking.len(), shapes.len());
                let ranks: Vec<usize> = ranking.iter().map(|e| e.rank).collect();
                prop_assert_eq!(ranks, (1..=shapes.len()).collect::<Vec<_>>());
            }
            prop_assert!(report.rankings.total_ms.windows(2).all(|w| w[0].total_ms <= w[1].total_ms));
            prop_assert!(report.rankings.ms_per_mparam_proxy.windows(2)
                .all(|w| w[0].ms_per_mparam_proxy <= w[1].ms_per_mparam_proxy));
            let constrained = &report.rankings.quality_constrained_latency;
            prop_assert!(constrained.windows(2).all(|w| w[0].total_ms <= w[1].total_ms));
            let passing = pack.candidate_catalog.iter().filter(|c| c.constraints.passes).count();
            prop_assert_eq!(constrained.len(), passing);
        }
    }

    #[test]
    fn pareto_front_is_exactly_the_undominated_points(
        points in prop::collection::vec((0u8..8, 0u8..8), 0..40)
    ) {
        let t: Vec<f64> = points.iter().map(|p| p.0 as f64).collect();
        let q: Vec<f64> = points.iter().map(|p| p.1 as f64).collect();
        let front = pareto_front(&t, &q);
        let beaten = |i: usize| (0..t.len()).any(|j| t[j] <= t[i] && q[j] >= q[i] && (t[j] < t[i] || q[j] > q[i]));
        let mut expected: Vec<usize> = (0..t.len()).filter(|&i| !beaten(i)).collect();
        let mut got = front.clone();
        got.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(got, expected);
        // fastest first, and quality never falls along the front
        prop_assert!(front.windows(2).all(|w| t[w[0]] <= t[w[1]] && q[w[0]] <= q[w[1]]));
    }

    #[test]
    fn rank_order_is_a_stable_sort(values in prop::collection::vec(0u8..5, 0..40)) {
        let v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
        let order = rank_order(&v);
        prop_assert!(order.windows(2).all(|w| v[w[0]] < v[w[1]] || (v[w[0]] == v[w[1]] && w[0] < w[1])));
    }
}
