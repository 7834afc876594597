//! Kernel work -> matrices -> latency.
//!
//! Each kernel's time is its work (FLOPs or bytes, after tile efficiency)
//! times the inverse throughput of the resource it runs on. Stacking the work
//! of N candidates as an N x C matrix `W` (C = kernel/resource columns) and the
//! inverse throughputs of G GPUs as a C x G matrix `T`, `W * T` is every
//! candidate on every GPU at once; a kernel's time is the row-wise product
//! summed over that kernel's columns.

pub mod seed;

use nalgebra::DMatrix;
use serde::Serialize;

use crate::hardware::Throughputs;
use crate::shapes::LayerShape;

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

/// Predicted times of one candidate on one GPU, kernel by kernel, in the
/// seed's kernel order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelTimes {
    pub ms: [f64; Kernel::COUNT],
    /// Whether the third kernel is `qk_norm_rope` (true) or `rope_only`.
    pub use_qk_norm: bool,
}

impl KernelTimes {
    /// Names and times in kernel order.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        Kernel::ALL
            .iter()
            .zip(self.ms)
            .map(|(k, ms)| (k.name(self.use_qk_norm), ms))
    }

    /// The first kernel with the largest time, as the seed picks it.
    pub fn bottleneck(&self) -> &'static str {
        let mut best = 0;
        for (i, &ms) in self.ms.iter().enumerate() {
            if ms > self.ms[best] {
                best = i;
            }
        }
        Kernel::ALL[best].name(self.use_qk_norm)
    }

    pub fn sum(&self) -> f64 {
        self.ms.iter().sum()
    }
}

/// Every candidate's latency on every GPU: the work matrix, the inverse
/// throughput matrix, and their product.
#[derive(Clone, Debug)]
pub struct LatencyMatrix {
    work: DMatrix<f64>,
    inverse_throughput: DMatrix<f64>,
    total: DMatrix<f64>,
    use_qk_norm: Vec<bool>,
}

impl LatencyMatrix {
    /// Evaluates the seed model for `shapes` (validated) on `gpus`.
    pub fn seed(shapes: &[LayerShape], gpus: &[Throughputs]) -> Self {
        let model = SeedModel;
        let mut work = DMatrix::zeros(shapes.len(), SeedModel::COLUMNS.len());
        let mut row = [0.0; SeedModel::COLUMNS.len()];
        for (i, shape) in shapes.iter().enumerate() {
            model.work_row(shape, &mut row);
            for (c, w) in row.iter().enumerate() {
                work[(i, c)] = *w;
            }
        }
        let inverse_throughput = DMatrix::from_fn(SeedModel::COLUMNS.len(), gpus.len(), |c, g| {
            SeedModel::COLUMNS[c].resource.inverse_throughput(&gpus[g])
        });
        let total = &work * &inverse_throughput;
        LatencyMatrix {
            work,
            inverse_throughput,
            total,
            use_qk_norm: shapes.iter().map(|s| s.use_qk_norm).collect(),
        }
    }

    /// Total predicted milliseconds of candidate `i` on GPU `g`.
    pub fn total_ms(&self, i: usize, g: usize) -> f64 {
        self.total[(i, g)]
    }

    /// The kernel-by-kernel breakdown of candidate `i` on GPU `g`.
    pub fn kernels(&self, i: usize, g: usize) -> KernelTimes {
        let mut ms = [0.0; Kernel::COUNT];
        for (c, column) in SeedModel::COLUMNS.iter().enumerate() {
            ms[column.kernel as usize] += self.work[(i, c)] * self.inverse_throughput[(c, g)];
        }
        KernelTimes {
            ms,
            use_qk_norm: self.use_qk_norm[i],
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
}
