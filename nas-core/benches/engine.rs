//! criterion benchmarks of the engine's kernels: the seed model through
//! nalgebra, the seed pack, the streaming search, the kernel-aware model.
//!
//!     cargo bench -p nas-core --bench engine

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
    let model = KernelAwareModel { sm_count: 132 };
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

criterion_group!(benches, seed_model, seed_pack, streaming, kernel_aware);
criterion_main!(benches);
