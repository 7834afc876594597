//! What one collective call costs on a group of GPUs: a fixed latency per
//! call, a latency per ring step, and bytes over the link's bus bandwidth.
//!
//! The form is NCCL's ring algorithm as nccl-tests describes it: an
//! all-reduce of `B` bytes over `n` GPUs runs `2(n-1)` steps and moves
//! `2(n-1)/n * B` bytes over each GPU's link; an all-gather or a
//! reduce-scatter half of that; an all-to-all `(n-1)` steps and `(n-1)/n * B`.
//! The constants are either analytic (the link's data-sheet bandwidth and an
//! assumed latency, said so in `source`) or fitted per GPU count on measured
//! NCCL calls with the bandwidth bounded by the data sheet.

use std::borrow::Cow;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::calibrate::fit::fit_relative_bounded;
use crate::error::{Error, Result};

/// A collective operation a tensor- or expert-parallel layer calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collective {
    /// Sum of every GPU's buffer, left on every GPU (after row-parallel GEMMs).
    AllReduce,
    /// Every GPU's shard, concatenated on every GPU (the LM head's logits).
    AllGather,
    /// Each GPU sends a different part of its buffer to each other GPU (MoE
    /// dispatch and combine under expert parallelism).
    AllToAll,
}

impl Collective {
    /// Every collective, in a fixed order.
    pub const ALL: [Collective; 3] = [Collective::AllReduce, Collective::AllGather, Collective::AllToAll];

    /// The name records and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Collective::AllReduce => "all_reduce",
            Collective::AllGather => "all_gather",
            Collective::AllToAll => "all_to_all",
        }
    }

    /// Ring steps of one call over `gpus` GPUs.
    pub fn steps(self, gpus: u64) -> f64 {
        let n = gpus.saturating_sub(1) as f64;
        match self {
            Collective::AllReduce => 2.0 * n,
            Collective::AllGather | Collective::AllToAll => n,
        }
    }

    /// Bytes each GPU's link carries for a call on `bytes` (the buffer each
    /// GPU holds: the reduced tensor, the gathered result, or what one GPU
    /// sends in all).
    pub fn link_bytes(self, gpus: u64, bytes: f64) -> f64 {
        if gpus <= 1 {
            return 0.0;
        }
        let n = gpus as f64;
        let share = (n - 1.0) / n;
        match self {
            Collective::AllReduce => 2.0 * share * bytes,
            Collective::AllGather | Collective::AllToAll => share * bytes,
        }
    }
}

/// The cost of collectives on one group of `gpus` GPUs of one kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectiveModel {
    /// GPUs in the group.
    pub gpus: u64,
    /// Fixed cost of one call, microseconds.
    pub call_us: f64,
    /// Cost of one ring step, microseconds.
    pub step_us: f64,
    /// Bytes per second each GPU's link moves, GB/s (10^9 B/s); never above
    /// the data sheet's per-direction link bandwidth.
    pub bus_gbps: f64,
    /// How these constants were obtained.
    pub source: Cow<'static, str>,
}

/// Latency of one NCCL call assumed when none was measured, microseconds:
/// the order nccl-tests reports for small all-reduces inside one NVLink
/// node. An assumption, and [`CollectiveModel::analytic`] says so.
pub const ASSUMED_CALL_US: f64 = 5.0;

/// Latency of one ring step assumed when none was measured, microseconds.
pub const ASSUMED_STEP_US: f64 = 1.0;

impl CollectiveModel {
    /// A group of one GPU: every collective is free (no call is made).
    pub fn single() -> Self {
        CollectiveModel {
            gpus: 1,
            call_us: 0.0,
            step_us: 0.0,
            bus_gbps: f64::INFINITY,
            source: Cow::Borrowed("one GPU: no collective runs"),
        }
    }

    /// Constants from the data sheet's link bandwidth (GB/s per direction)
    /// and the assumed latencies: an estimate, not a measurement.
    pub fn analytic(gpus: u64, link_gbps: f64, link: &str) -> Self {
        if gpus <= 1 {
            return Self::single();
        }
        CollectiveModel {
            gpus,
            call_us: ASSUMED_CALL_US,
            step_us: ASSUMED_STEP_US,
            bus_gbps: link_gbps,
            source: Cow::Owned(format!(
                "analytic, not measured: ring algorithm at the data sheet's {link} bandwidth ({link_gbps} GB/s per \
                 direction), {ASSUMED_CALL_US} us per call and {ASSUMED_STEP_US} us per ring step assumed"
            )),
        }
    }

    /// The collectives of `gpus` GPUs of the built-in kind `gpu_key`: analytic
    /// from its data-sheet link, since no multi-GPU measurement exists yet.
    pub fn for_gpu(gpu_key: &str, gpus: u64) -> Result<Self> {
        if gpus <= 1 {
            return Ok(Self::single());
        }
        let link = crate::gpu::spec_sheet::interconnect(gpu_key).ok_or_else(|| {
            Error::Spec(format!(
                "the link between `{gpu_key}` GPUs is not known, so tensor parallelism cannot be costed on it; \
                 built-in GPUs with a known link: h100, h200, a100, t4"
            ))
        })?;
        Ok(Self::analytic(gpus, link.gbps_per_direction, link.name))
    }

    /// Milliseconds of one `op` call on a buffer of `bytes` per GPU.
    pub fn ms(&self, op: Collective, bytes: f64) -> f64 {
        if self.gpus <= 1 {
            return 0.0;
        }
        let us =
            self.call_us + self.step_us * op.steps(self.gpus) + op.link_bytes(self.gpus, bytes) / (self.bus_gbps * 1e3);
        us / 1e3
    }

    /// Fits the constants to measured calls on `gpus` GPUs (any mix of
    /// operations), weighted by 1/measured, with the bandwidth bounded by
    /// `link_gbps` (the fit may not be faster than the link).
    pub fn fit(records: &[CollectiveRecord], gpus: u64, link_gbps: f64, source: &str) -> Result<Self> {
        let rows: Vec<&CollectiveRecord> = records.iter().filter(|r| r.gpus == gpus).collect();
        if gpus <= 1 {
            return Ok(Self::single());
        }
        if rows.len() < 3 {
            return Err(Error::Spec(format!(
                "{source}: {} collective records on {gpus} GPUs; at least 3 are needed to fit one",
                rows.len()
            )));
        }
        if !(link_gbps.is_finite() && link_gbps > 0.0) {
            return Err(Error::Spec(format!(
                "{source}: link bandwidth {link_gbps} GB/s is not a positive number"
            )));
        }
        // Columns: calls (ms per call), steps (ms per step), link bytes (ms per byte).
        let x = DMatrix::from_fn(rows.len(), 3, |i, j| match j {
            0 => 1.0,
            1 => rows[i].op.steps(gpus),
            _ => rows[i].op.link_bytes(gpus, rows[i].bytes as f64),
        });
        let y: Vec<f64> = rows.iter().map(|r| r.median_ms).collect();
        let ms_per_byte_floor = 1.0 / (link_gbps * 1e6);
        let t = fit_relative_bounded(&x, &y, &[0.0, 0.0, ms_per_byte_floor]);
        Ok(CollectiveModel {
            gpus,
            call_us: t[0] * 1e3,
            step_us: t[1] * 1e3,
            bus_gbps: 1.0 / (t[2] * 1e6),
            source: Cow::Owned(format!(
                "fitted on {} measured NCCL calls on {gpus} GPUs ({source})",
                rows.len()
            )),
        })
    }
}

/// One measured collective call, as `calibration/harness/collectives.py` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectiveRecord {
    pub op: Collective,
    pub gpus: u64,
    /// The buffer each GPU holds (see [`Collective::link_bytes`]).
    pub bytes: u64,
    pub median_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gpu_costs_nothing_and_rings_follow_nccl_bus_factors() {
        let single = CollectiveModel::analytic(1, 450.0, "NVLink");
        assert_eq!(single.ms(Collective::AllReduce, 1e9), 0.0);
        // All-reduce: 2(n-1)/n of the buffer per link; all-gather half of it.
        assert_eq!(Collective::AllReduce.link_bytes(4, 1000.0), 1500.0);
        assert_eq!(Collective::AllGather.link_bytes(4, 1000.0), 750.0);
        assert_eq!(Collective::AllReduce.steps(8), 14.0);
        let m = CollectiveModel::analytic(8, 450.0, "NVLink");
        let big = m.ms(Collective::AllReduce, 1e9);
        // 1 GB at 2*7/8 over 450 GB/s is 3.89 ms, plus 19 us of latency.
        assert!((big - (1.75e9 / 450e9 * 1e3 + 0.019)).abs() < 1e-9, "{big}");
        assert!(m.source.contains("not measured"));
    }

    #[test]
    fn a_fit_recovers_its_constants_and_never_beats_the_link() {
        let truth = CollectiveModel {
            gpus: 4,
            call_us: 7.0,
            step_us: 2.0,
            bus_gbps: 360.0,
            source: Cow::Borrowed("truth"),
        };
        let records: Vec<CollectiveRecord> = [Collective::AllReduce, Collective::AllGather]
            .into_iter()
            .flat_map(|op| (12..31).step_by(3).map(move |p| (op, 1u64 << p)))
            .map(|(op, bytes)| CollectiveRecord {
                op,
                gpus: 4,
                bytes,
                median_ms: truth.ms(op, bytes as f64),
            })
            .collect();
        let fitted = CollectiveModel::fit(&records, 4, 450.0, "synthetic").unwrap();
        assert!((fitted.bus_gbps - 360.0).abs() < 1e-6 * 360.0, "{fitted:?}");
        assert!((fitted.call_us - 7.0).abs() < 1e-6 && (fitted.step_us - 2.0).abs() < 1e-6);
        // Data faster than the link: the bandwidth is held at the link's.
        let fast: Vec<CollectiveRecord> = records
            .iter()
            .map(|r| CollectiveRecord {
                median_ms: r.median_ms / 4.0,
                ..r.clone()
            })
            .collect();
        let bounded = CollectiveModel::fit(&fast, 4, 450.0, "too fast").unwrap();
        assert!(bounded.bus_gbps <= 450.0 * (1.0 + 1e-12), "{bounded:?}");
        // Too few records on that GPU count is an error naming the count.
        let err = CollectiveModel::fit(&records[..2], 4, 450.0, "x").unwrap_err();
        assert!(err.to_string().contains("2 collective records on 4 GPUs"), "{err}");
    }
}
