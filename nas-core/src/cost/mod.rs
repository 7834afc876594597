//! Kernel work -> matrices -> latency.
//!
//! Each kernel's time is its work (FLOPs or bytes, after tile efficiency)
//! times the inverse throughput of the resource it runs on. Stacking the work
//! of N candidates as an N x C matrix `W` (C = kernel/resource columns) and the
//! inverse throughputs of G GPUs as a C x G matrix `T`, `W * T` is every
//! candidate on every GPU at once; a kernel's time is the row-wise product
//! summed over that kernel's columns.

pub mod decode;
pub mod kernel_aware;
pub mod mla;
pub mod moe;
pub mod seed;

use nalgebra::DMatrix;
use serde::Serialize;

use crate::hardware::Throughputs;
use crate::shapes::{LayerShape, ShapeField};

pub use kernel_aware::KernelAwareModel;
pub use seed::{Kernel, Resource, SeedModel};

/// GEMM tile edge the seed model quantizes to.
pub const TILE: u64 = 128;

/// Share of a tiled GEMM dimension that does useful work: `d / (ceil(d/128)*128)`.
pub fn tile_efficiency(d: u64) -> f64 {
    d as f64 / (d.div_ceil(TILE) * TILE) as f64
}

/// How much a dimension loses to 128-wide tiles, as the seed reports it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TilePenalty {
    pub aligned_128: bool,
    pub efficiency: f64,
    pub value: u64,
    pub wasted_work_pct: f64,
}

/// The tile penalty of one dimension.
pub fn tile_penalty(d: u64) -> TilePenalty {
    let efficiency = tile_efficiency(d);
    TilePenalty {
        aligned_128: d % TILE == 0,
        efficiency,
        value: d,
        wasted_work_pct: (1.0 / efficiency - 1.0) * 100.0,
    }
}

/// Tile penalties of hidden_dim, ffn_dim and head_dim, keyed as in the seed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TilePenalties {
    pub ffn_dim: TilePenalty,
    pub head_dim: TilePenalty,
    pub hidden_dim: TilePenalty,
}

impl TilePenalties {
    pub fn of(shape: &LayerShape) -> Self {
        TilePenalties {
            ffn_dim: tile_penalty(shape.ffn_dim),
            head_dim: tile_penalty(shape.head_dim),
            hidden_dim: tile_penalty(shape.hidden_dim),
        }
    }
}

/// A cost model: which kernels a layer has, which resources (throughputs)
/// they run on, and how much work each (kernel, resource) column does.
/// Time is linear in the resources' inverse throughputs, so every model is
/// evaluated (and fitted) through the same matrices.
pub trait CostModel {
    /// Kernel names in report order (a kernel may be renamed per shape: see `kernel_name`).
    fn kernels(&self) -> &[&'static str];
    /// Resource names: the rows of the inverse-throughput matrix.
    fn resources(&self) -> &[&'static str];
    /// Work columns as (kernel index, resource index).
    fn columns(&self) -> &[(usize, usize)];
    /// Fills one row of the work matrix for a validated shape.
    fn work_row(&self, shape: &LayerShape, row: &mut [f64]);
    /// The shape fields kernel `kernel`'s work depends on (and nothing
    /// else): the streaming search computes each kernel once per distinct
    /// assignment of these fields.
    fn kernel_fields(&self, kernel: usize) -> &'static [ShapeField];
    /// The name a kernel reports for this shape (the seed's third kernel is
    /// `rope_only` without QK-norm).
    fn kernel_name(&self, kernel: usize, shape: &LayerShape) -> &'static str {
        let _ = shape;
        self.kernels()[kernel]
    }
}

/// The layer models a GPU can be evaluated with: the seed's (parity) or the
/// kernel-aware one (with the GPU's SM count, which sets GEMM waves).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerModel {
    Seed,
    KernelAware(KernelAwareModel),
}

impl LayerModel {
    fn inner(&self) -> &dyn CostModel {
        match self {
            LayerModel::Seed => &SeedModel,
            LayerModel::KernelAware(m) => m,
        }
    }
}

impl CostModel for LayerModel {
    fn kernels(&self) -> &[&'static str] {
        match self {
            LayerModel::Seed => SeedModel.kernels(),
            LayerModel::KernelAware(m) => m.kernels(),
        }
    }

    fn resources(&self) -> &[&'static str] {
        match self {
            LayerModel::Seed => SeedModel.resources(),
            LayerModel::KernelAware(m) => m.resources(),
        }
    }

    fn columns(&self) -> &[(usize, usize)] {
        match self {
            LayerModel::Seed => SeedModel.columns(),
            LayerModel::KernelAware(m) => m.columns(),
        }
    }

    fn work_row(&self, shape: &LayerShape, row: &mut [f64]) {
        self.inner().work_row(shape, row)
    }

    fn kernel_fields(&self, kernel: usize) -> &'static [ShapeField] {
        self.inner().kernel_fields(kernel)
    }

    fn kernel_name(&self, kernel: usize, shape: &LayerShape) -> &'static str {
        self.inner().kernel_name(kernel, shape)
    }
}

/// Predicted times of one candidate on one GPU, kernel by kernel, in report order.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTimes {
    pub names: Vec<&'static str>,
    pub ms: Vec<f64>,
}

impl KernelTimes {
    /// Names and times in kernel order.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.names.iter().copied().zip(self.ms.iter().copied())
    }

    /// The first kernel with the largest time, as the seed picks it.
    pub fn bottleneck(&self) -> &'static str {
        let mut best = 0;
        for (i, &ms) in self.ms.iter().enumerate() {
            if ms > self.ms[best] {
                best = i;
            }
        }
        self.names.get(best).copied().unwrap_or("none")
    }

    pub fn sum(&self) -> f64 {
        self.ms.iter().sum()
    }

    /// The time of one kernel by name (0 when the model has no such kernel).
    pub fn get(&self, name: &str) -> f64 {
        self.named().find(|(n, _)| *n == name).map_or(0.0, |(_, ms)| ms)
    }
}

/// Work rows of `shapes` under `model`: the N x C matrix `W`.
pub fn work_matrix(model: &dyn CostModel, shapes: &[LayerShape]) -> DMatrix<f64> {
    let columns = model.columns().len();
    let mut work = DMatrix::zeros(shapes.len(), columns);
    let mut row = vec![0.0; columns];
    for (i, shape) in shapes.iter().enumerate() {
        row.iter_mut().for_each(|w| *w = 0.0);
        model.work_row(shape, &mut row);
        for (c, w) in row.iter().enumerate() {
            work[(i, c)] = *w;
        }
    }
    work
}

/// Every candidate's latency on every GPU: the work matrix, the inverse
/// throughput matrix, and their product.
pub struct LatencyMatrix {
    model: LayerModel,
    shapes: Vec<LayerShape>,
    work: DMatrix<f64>,
    inverse_throughput: DMatrix<f64>,
    total: DMatrix<f64>,
}

impl LatencyMatrix {
    /// Evaluates `model` for `shapes` (validated) on GPUs given as one column
    /// of per-resource inverse throughputs (ms per unit of work) each.
    pub fn new(model: LayerModel, shapes: &[LayerShape], per_resource: &DMatrix<f64>) -> Self {
        let work = work_matrix(&model, shapes);
        let inverse_throughput = DMatrix::from_fn(model.columns().len(), per_resource.ncols(), |c, g| {
            per_resource[(model.columns()[c].1, g)]
        });
        let total = &work * &inverse_throughput;
        LatencyMatrix {
            model,
            shapes: shapes.to_vec(),
            work,
            inverse_throughput,
            total,
        }
    }

    /// The seed model on the seed's throughput profiles.
    pub fn seed(shapes: &[LayerShape], gpus: &[Throughputs]) -> LatencyMatrix {
        LatencyMatrix::new(LayerModel::Seed, shapes, &SeedModel::inverse_throughputs(gpus))
    }

    /// Total predicted milliseconds of candidate `i` on GPU `g`.
    pub fn total_ms(&self, i: usize, g: usize) -> f64 {
        self.total[(i, g)]
    }

    /// The time of kernel `kernel` (an index into the model's kernels) of candidate `i` on GPU `g`.
    pub fn kernel_ms(&self, i: usize, g: usize, kernel: usize) -> f64 {
        self.model
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| *k == kernel)
            .map(|(c, _)| self.work[(i, c)] * self.inverse_throughput[(c, g)])
            .sum()
    }

    /// The kernel-by-kernel breakdown of candidate `i` on GPU `g`.
    pub fn kernels(&self, i: usize, g: usize) -> KernelTimes {
        let count = self.model.kernels().len();
        let mut ms = vec![0.0; count];
        for (c, (kernel, _)) in self.model.columns().iter().enumerate() {
            ms[*kernel] += self.work[(i, c)] * self.inverse_throughput[(c, g)];
        }
        KernelTimes {
            names: (0..count).map(|k| self.model.kernel_name(k, &self.shapes[i])).collect(),
            ms,
        }
    }

    pub fn candidates(&self) -> usize {
        self.total.nrows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_efficiency_matches_the_seed_definition() {
        assert_eq!(tile_efficiency(4096), 1.0);
        assert_eq!(tile_efficiency(3872), 3872.0 / 3968.0);
        let p = tile_penalty(3872);
        assert!(!p.aligned_128);
        assert!((p.wasted_work_pct - 2.479338842975).abs() < 1e-9);
    }

    /// Changing a shape field a kernel does not declare leaves that kernel's
    /// work unchanged: the streaming search relies on the declarations.
    #[test]
    fn kernels_read_only_the_fields_they_declare() {
        use crate::model::ModelDims;
        let base = LayerShape {
            hidden_dim: 2048,
            num_heads: 16,
            num_kv_heads: 4,
            head_dim: 128,
            ffn_dim: 8192,
            seq_len: 1024,
            batch_size: 2,
            use_qk_norm: true,
            window_size: Some(512),
            model: ModelDims::NONE,
            precision: crate::precision::Precision::BF16,
        };
        use crate::precision::{KvCachePrecision, Precision, WeightPrecision};
        let in_precision = |weights, kv_cache| LayerShape {
            precision: Precision { weights, kv_cache },
            ..base
        };
        let variants: [(ShapeField, LayerShape); 12] = [
            (
                ShapeField::Weights,
                in_precision(WeightPrecision::Fp8, KvCachePrecision::Bf16),
            ),
            (
                ShapeField::Weights,
                in_precision(WeightPrecision::Int4, KvCachePrecision::Bf16),
            ),
            (
                ShapeField::KvCache,
                in_precision(WeightPrecision::Bf16, KvCachePrecision::Fp8),
            ),
            (
                ShapeField::HiddenDim,
                LayerShape {
                    hidden_dim: 2560,
                    ..base
                },
            ),
            (ShapeField::NumHeads, LayerShape { num_heads: 32, ..base }),
            (
                ShapeField::NumKvHeads,
                LayerShape {
                    num_kv_heads: 8,
                    ..base
                },
            ),
            (ShapeField::HeadDim, LayerShape { head_dim: 96, ..base }),
            (ShapeField::FfnDim, LayerShape { ffn_dim: 7001, ..base }),
            (ShapeField::SeqLen, LayerShape { seq_len: 4096, ..base }),
            (ShapeField::BatchSize, LayerShape { batch_size: 3, ..base }),
            (
                ShapeField::UseQkNorm,
                LayerShape {
                    use_qk_norm: false,
                    ..base
                },
            ),
            (
                ShapeField::WindowSize,
                LayerShape {
                    window_size: None,
                    ..base
                },
            ),
        ];
        let models = [
            LayerModel::Seed,
            LayerModel::KernelAware(KernelAwareModel::new(132, 295.0).with_fp8_ridge(590.0)),
        ];
        for model in models {
            let work = |s: &LayerShape| work_matrix(&model, std::slice::from_ref(s));
            let w0 = work(&base);
            for (field, changed) in &variants {
                changed.validate().unwrap();
                let w1 = work(changed);
                for (c, (kernel, _)) in model.columns().iter().enumerate() {
                    if !model.kernel_fields(*kernel).contains(field) {
                        assert_eq!(
                            w0[(0, c)],
                            w1[(0, c)],
                            "{model:?}: kernel `{}` reads {field:?} but does not declare it",
                            model.kernels()[*kernel]
                        );
                    }
                }
            }
        }
    }
}
