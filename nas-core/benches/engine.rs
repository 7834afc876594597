//! criterion benchmarks of the engine's kernels: the seed model through
//! nalgebra, the seed pack, the streaming search, the kernel-aware model, and
//! the streaming engine on the measured model against a plain scalar loop of
//! the seed model (`engine_vs_scalar`, both counted in valid candidate-GPU
//! evaluations per second).
//!
//!     cargo bench -p nas-core --bench engine
//!     cargo bench -p nas-core --bench engine -- engine_vs_scalar --warm-up-time 1 --measurement-time 3

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use nas_core::calibrate::CalibrationBlock;
use nas_core::cost::{KernelAwareModel, LatencyMatrix};
use nas_core::hardware::SEED_CONSTANTS;
use nas_core::search::constraints::Constraints;
use nas_core::search::seed::{pack_spec, CONSTRAINTS, SEARCH_FAMILY, WORKLOAD};
use nas_core::search::stream::{bench_family, search_range, StreamSpec};

/// The 540 shapes of the seed's generated search.
fn seed_search_shapes() -> Vec<nas_core::shapes::LayerShape> {
    let expanded = SEARCH_FAMILY.expand(WORKLOAD).unwrap();
    expanded.candidates.iter().map(|c| c.shape).collect()
}

fn seed_model(c: &mut Criterion) {
    let shapes = seed_search_shapes();
    let gpus: Vec<_> = SEED_CONSTANTS.iter().map(|(_, t)| *t).collect();
    let mut group = c.benchmark_group("seed_model");
    group.throughput(Throughput::Elements((shapes.len() * gpus.len()) as u64));
    group.bench_function("latency_matrix_540x3", |b| {
        b.iter(|| LatencyMatrix::seed(black_box(&shapes), black_box(&gpus)).total_ms(0, 0))
    });
    group.finish();
}

fn seed_pack(c: &mut Criterion) {
    c.bench_function("seed_pack_evaluate_and_render", |b| {
        b.iter(|| {
            let pack = pack_spec(CalibrationBlock::disabled()).unwrap().evaluate().unwrap();
            (pack.to_json().unwrap().len(), pack.to_markdown().len())
        })
    });
}

fn streaming(c: &mut Criterion) {
    let family = bench_family();
    let constraints = Constraints::new(CONSTRAINTS.to_vec()).unwrap();
    let gpus = nas_core::search::seed::seed_gpus().unwrap();
    let spec = StreamSpec {
        family: &family,
        workload: WORKLOAD,
        hardware: &gpus,
        constraints: &constraints,
        top_k: 25,
        rank_by: nas_core::search::RankMetric::TotalMs,
    };
    let mut group = c.benchmark_group("stream");
    group.sample_size(10);
    for n in [1_000_000u64, 10_000_000] {
        group.throughput(Throughput::Elements(n * gpus.len() as u64));
        group.bench_function(format!("search_{n}_candidates_x3_gpus"), |b| {
            b.iter(|| search_range(black_box(&spec), Some(n), &|_| {}).unwrap().valid)
        });
    }
    group.finish();
}

fn kernel_aware(c: &mut Criterion) {
    let model = KernelAwareModel::new(132, 0.0);
    let shapes = seed_search_shapes();
    let inverse = nalgebra::DMatrix::from_element(nas_core::cost::kernel_aware::RESOURCES.len(), 1, 1e-12);
    c.bench_function("kernel_aware_latency_matrix_540", |b| {
        b.iter(|| {
            LatencyMatrix::new(
                nas_core::cost::LayerModel::KernelAware(model),
                black_box(&shapes),
                &inverse,
            )
            .total_ms(0, 0)
        })
    });
}

/// Candidates of the bench family both walk: the first 10^7 (the engine's
/// table building weighs in), and the whole family of 100,663,296.
const CANDIDATES: [u64; 2] = [10_000_000, 100_663_296];

/// A plain scalar loop, one thread, written the way one would by hand: an
/// odometer over the bench family's axes (no allocation), each candidate's
/// shape built from its axis values with the family's rules, invalid ones
/// skipped by integer checks, the seed model's work row times each GPU's
/// inverse throughputs, a top-25 per GPU. Returns the valid count.
fn scalar_seed_loop(
    family: &nas_core::search::family::Family,
    gpus: &[nas_core::hardware::Throughputs],
    n: u64,
) -> u64 {
    use nas_core::cost::{CostModel, LayerModel, SeedModel};
    use nas_core::search::family::AxisValue;
    use nas_core::shapes::LayerShape;
    let model = LayerModel::Seed;
    let columns = model.columns();
    let inverse = SeedModel::inverse_throughputs(gpus);
    // Per column, the inverse throughput of each GPU, laid out flat.
    let inv: Vec<f64> = (0..columns.len())
        .flat_map(|c| (0..gpus.len()).map(move |g| (c, g)))
        .map(|(c, g)| inverse[(columns[c].1, g)])
        .collect();
    let ints = |a: usize| -> Vec<u64> {
        family.axes[a]
            .values
            .iter()
            .map(|v| match v.value {
                AxisValue::Int(x) => x,
                _ => 0,
            })
            .collect()
    };
    // The bench family's axes: seq_len, hidden_dim, head_dim, kv_heads, ffn_ratio, window, qk_norm.
    let (seq, hidden, head_dim, kv) = (ints(0), ints(1), ints(2), ints(3));
    let ratio: Vec<f64> = family.axes[4]
        .values
        .iter()
        .map(|v| match v.value {
            AxisValue::Ratio(r) => r,
            _ => 0.0,
        })
        .collect();
    let window: Vec<Option<u64>> = family.axes[5]
        .values
        .iter()
        .map(|v| match v.value {
            AxisValue::Window(w) => w,
            _ => None,
        })
        .collect();
    let qk = [true, false];
    let radix: Vec<usize> = family.axes.iter().map(|a| a.values.len()).collect();
    let mut d = [0usize; 7];
    let mut tops: Vec<Vec<(f64, u64)>> = vec![Vec::with_capacity(26); gpus.len()];
    let mut row = [0.0; 16];
    let mut totals = [0.0; 8];
    let mut valid = 0;
    for i in 0..n {
        let (h, hd, k) = (hidden[d[1]], head_dim[d[2]], kv[d[3]]);
        let heads = h / hd;
        if h % hd == 0 && k <= heads && heads % k == 0 {
            let shape = LayerShape {
                hidden_dim: h,
                num_heads: heads,
                num_kv_heads: k,
                head_dim: hd,
                ffn_dim: family.ffn_rounding.apply(h, ratio[d[4]]),
                seq_len: seq[d[0]],
                batch_size: WORKLOAD.batch_size,
                use_qk_norm: qk[d[6]],
                window_size: window[d[5]],
                model: WORKLOAD.model,
                precision: WORKLOAD.precision,
            };
            if shape.validate().is_ok() {
                valid += 1;
                model.work_row(&shape, &mut row);
                totals.iter_mut().for_each(|t| *t = 0.0);
                for (c, w) in row.iter().enumerate() {
                    for g in 0..gpus.len() {
                        totals[g] += w * inv[c * gpus.len() + g];
                    }
                }
                for (g, top) in tops.iter_mut().enumerate() {
                    let total = totals[g];
                    if top.len() < 25 || total < top[top.len() - 1].0 {
                        let at = top.partition_point(|e| e.0 <= total);
                        top.insert(at, (total, i));
                        top.truncate(25);
                    }
                }
            }
        }
        // The odometer: the last axis turns fastest, as the family enumerates.
        let mut a = 6;
        loop {
            d[a] += 1;
            if d[a] < radix[a] || a == 0 {
                break;
            }
            d[a] = 0;
            a -= 1;
        }
    }
    black_box(&tops);
    valid
}

fn engine_vs_scalar(c: &mut Criterion) {
    use nas_core::gpu::{GpuTarget, Registry};
    let family = bench_family();
    let constraints = Constraints::new(CONSTRAINTS.to_vec()).unwrap();
    let measured = Registry::builtin()
        .resolve_all(&[GpuTarget::builtin("h100"), GpuTarget::builtin("h200")])
        .unwrap();
    let spec = StreamSpec {
        family: &family,
        workload: WORKLOAD,
        hardware: &measured,
        constraints: &constraints,
        top_k: 25,
        rank_by: nas_core::search::RankMetric::TotalMs,
    };
    // The seed's constants of two GPUs (the H200 has none): the same two evaluations per candidate.
    let seed: Vec<_> = SEED_CONSTANTS
        .iter()
        .filter(|(k, _)| *k == "h100" || *k == "a100")
        .map(|(_, t)| *t)
        .collect();
    let mut group = c.benchmark_group("engine_vs_scalar");
    group.sample_size(10);
    for n in CANDIDATES {
        let engine_valid = search_range(&spec, Some(n), &|_| {}).unwrap().valid;
        let scalar_valid = scalar_seed_loop(&family, &seed, n);
        // Both walk the same candidates in the same order: the loop finds what the engine finds.
        assert_eq!(
            scalar_valid, engine_valid,
            "the scalar loop and the engine agree on validity"
        );
        // Counted as valid candidate x GPU evaluations (two GPUs each).
        group.throughput(Throughput::Elements(engine_valid * 2));
        group.bench_function(format!("measured_engine_h100_h200_first_{n}"), |b| {
            b.iter(|| search_range(black_box(&spec), Some(n), &|_| {}).unwrap().valid)
        });
        group.bench_function(format!("scalar_seed_loop_h100_a100_first_{n}"), |b| {
            b.iter(|| scalar_seed_loop(black_box(&family), black_box(&seed), n))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    seed_model,
    seed_pack,
    streaming,
    kernel_aware,
    engine_vs_scalar
);
criterion_main!(benches);
